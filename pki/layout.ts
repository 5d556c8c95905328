/**
 * The file layout under the data dir, in one place (architecture brief, section 2; the same
 * layout a Kubernetes secret mount gives). Everything that reads or writes these files takes the
 * paths from here.
 */
import path from "node:path";

export const DEFAULT_DATA_DIR = "./data";

export function dataDirFromEnv(flag: string | undefined): string {
  return path.resolve(flag ?? process.env.TENANT_GATEWAY_DATA ?? DEFAULT_DATA_DIR);
}

export interface TenantCaFiles {
  dir: string;
  cert: string;
  key: string;
  chain: string;
}

/** A tenant's registry files (directory store): the record, its account JWT, its two account seeds. */
export interface TenantRecordFiles {
  record: string;
  accountJwt: string;
  /** The account's identity seed: control plane only. */
  accountSeed: string;
  /** The account's signing seed: what the serving gateway signs user JWTs with. */
  signingSeed: string;
}

export interface LeafFiles {
  cert: string;
  key: string;
  chain: string;
}

/**
 * Collections of registry entries beside the tenant records: the inventory of issued certificates
 * (`<tenant-slug | platform>.<serial>`), onboarding packages (`<package-id>`) and the platform's
 * trust state (`trust`: the platform CA's rotation, platform certificate revocations).
 */
export type RegistryCollection = "certificates" | "packages" | "platform";

/** Keys of registry entries: dot-separated tokens that are valid file names and NATS KV keys. */
export const REGISTRY_KEY = /^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$/;

export class DataLayout {
  readonly dir: string;

  constructor(dataDir: string) {
    this.dir = path.resolve(dataDir);
  }

  get rootCert(): string {
    return path.join(this.dir, "root.pem");
  }
  get rootKey(): string {
    return path.join(this.dir, "root-key.pem");
  }
  get platformDir(): string {
    return path.join(this.dir, "platform");
  }
  get platformCaCert(): string {
    return path.join(this.platformDir, "ca.pem");
  }
  get platformCaKey(): string {
    return path.join(this.platformDir, "ca-key.pem");
  }
  get gatewayCert(): string {
    return path.join(this.platformDir, "gateway.pem");
  }
  get gatewayKey(): string {
    return path.join(this.platformDir, "gateway-key.pem");
  }
  get gatewayChain(): string {
    return path.join(this.platformDir, "gateway-chain.pem");
  }
  platformIdentity(name: string): LeafFiles {
    const base = path.join(this.platformDir, "identities", name);
    return { cert: `${base}.pem`, key: `${base}-key.pem`, chain: `${base}-chain.pem` };
  }
  get tenantsDir(): string {
    return path.join(this.dir, "tenants");
  }
  tenantDir(slug: string): string {
    return path.join(this.tenantsDir, slug);
  }
  tenantCa(slug: string): TenantCaFiles {
    const dir = this.tenantDir(slug);
    return { dir, cert: path.join(dir, "ca.pem"), key: path.join(dir, "ca-key.pem"), chain: path.join(dir, "ca-chain.pem") };
  }
  tenantRecord(slug: string): TenantRecordFiles {
    const dir = this.tenantDir(slug);
    return { record: path.join(dir, "tenant.json"), accountJwt: path.join(dir, "account.jwt"), accountSeed: path.join(dir, "account.nk"), signingSeed: path.join(dir, "account-signing.nk") };
  }
  component(slug: string, component: string, partition: string): LeafFiles {
    const base = path.join(this.tenantDir(slug), "components", `${component}-${partition}`);
    return { cert: `${base}.pem`, key: `${base}-key.pem`, chain: `${base}-chain.pem` };
  }
  /** A `.creds` file issued for a service of the tenant (`tenant creds`). */
  tenantCreds(slug: string, name: string): string {
    return path.join(this.tenantDir(slug), "creds", `${name}.creds`);
  }
  /** Registry entries of the directory store (the KV store keeps them in its bucket). */
  get registryDir(): string {
    return path.join(this.dir, "registry");
  }
  registryEntry(collection: RegistryCollection, key: string): string {
    return path.join(this.registryDir, collection, `${key}.json`);
  }
  /** Operator-supplied templates of onboarding bundles, overriding the built-in ones file by file. */
  get onboardingTemplatesDir(): string {
    return path.join(this.dir, "onboarding", "templates");
  }
  /** NATS material: operator, system and platform accounts, server config, resolver and JetStream dirs. */
  get natsDir(): string {
    return path.join(this.dir, "nats");
  }
}
