/**
 * The deployment the compatibility suite runs against: a fresh data dir, a real nats-server (the
 * binary under test, NATS_SERVER_BIN) in operator mode, tenants acme-corp and globex on plan `pro`
 * with the suite's templates (streams, the `compat-kv` bucket, the `compat-obj` store), certificate
 * files on disk for every client program, and the gateway in this process on a fixed port so it can
 * be restarted under connected clients.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { Writable } from "node:stream";
import { initDataDir } from "../../accounts/bootstrap.ts";
import { ControlPlane } from "../../accounts/control-plane.ts";
import { startNatsServer, type RunningNatsServer } from "../../accounts/nats-server-process.ts";
import { NatsFiles } from "../../accounts/operator.ts";
import { getPlan } from "../../accounts/plans.ts";
import { TenantService } from "../../accounts/tenants.ts";
import { createLogger } from "../../common/logger.ts";
import { resolveConfig, type GatewayConfig } from "../../gateway/config.ts";
import { Gateway } from "../../gateway/gateway.ts";
import { issueComponentFiles, issuePlatformIdentityFiles } from "../../pki/authority.ts";
import { DataLayout } from "../../pki/layout.ts";
import { StreamProvisioner } from "../../streams/provisioner.ts";
import { TEMPLATES_DIR_ENV } from "../../streams/templates.ts";

export const EDGE_TENANT = "acme-corp";
export const OTHER_TENANT = "globex";
export const PLAN = "pro";

export interface KeyPairFiles {
  cert: string;
  key: string;
}

/** One gateway log line (pino JSON). */
export interface GatewayLogLine {
  time?: number | string;
  level?: number;
  event?: string;
  cn?: string;
  msg?: string;
  [field: string]: unknown;
}

/** Keeps the gateway's log lines in memory (for per-client excerpts) and in a file. */
class GatewayLog extends Writable {
  readonly lines: GatewayLogLine[] = [];
  private readonly file: fs.FileHandle;

  constructor(file: fs.FileHandle) {
    super();
    this.file = file;
  }

  override _write(chunk: Buffer, _enc: string, done: (err?: Error | null) => void): void {
    for (const text of chunk.toString().split("\n")) {
      if (!text.trim()) continue;
      try {
        this.lines.push(JSON.parse(text) as GatewayLogLine);
      } catch {
        this.lines.push({ msg: text });
      }
    }
    this.file.write(chunk).then(() => done(), done);
  }

  close(): Promise<void> {
    return this.file.close();
  }
}

export interface CompatDeploymentOptions {
  /** nats-server binary under test. */
  serverBin: string;
  /** The suite's templates (streams, kv, object). */
  templatesDir: string;
  /** Client program names; each gets an acme-corp edge certificate `compat-<client>.partition-1`. */
  clients: string[];
  /** The gateway's port, the same across restarts. */
  port: number;
  /** Where the gateway's log goes. */
  logFile: string;
  /** Where the data dir is made. */
  workDir: string;
}

export class CompatDeployment {
  private gatewayInstance: Gateway | undefined;
  private readonly edgeFiles = new Map<string, { leaf: KeyPairFiles; chain: KeyPairFiles }>();
  private adminFiles: KeyPairFiles | undefined;
  private config: GatewayConfig | undefined;
  private log: GatewayLog | undefined;
  /** The edge client's max_payload: the server's, capped by the plan's. */
  maxPayload = 0;
  serverVersion = "";
  private nats: RunningNatsServer | undefined;

  private constructor(
    readonly layout: DataLayout,
    private readonly opts: CompatDeploymentOptions,
  ) {}

  get url(): string {
    return `tls://127.0.0.1:${this.opts.port}`;
  }

  get rootCa(): string {
    return this.layout.rootCert;
  }

  get logLines(): GatewayLogLine[] {
    return this.log?.lines ?? [];
  }

  static async start(opts: CompatDeploymentOptions): Promise<CompatDeployment> {
    await fs.mkdir(opts.workDir, { recursive: true });
    const d = new CompatDeployment(new DataLayout(path.join(opts.workDir, "data")), opts);
    try {
      await d.init();
    } catch (err) {
      await d.stop();
      throw err;
    }
    return d;
  }

  private async init(): Promise<void> {
    const layout = this.layout;
    process.env.NATS_SERVER_BIN = this.opts.serverBin;
    await initDataDir(layout, { natsPort: -1 });
    this.nats = await startNatsServer(new NatsFiles(layout).serverConfig);
    const templatesDir = this.opts.templatesDir;
    // The gateway reads the templates (kv and object permissions) from the same place.
    process.env[TEMPLATES_DIR_ENV] = templatesDir;
    const cp = await ControlPlane.open({ dataDir: layout.dir, servers: [this.nats.url], pollMs: 100 });
    try {
      const tenants = new TenantService(cp, new StreamProvisioner({ templatesDir }));
      await tenants.sync();
      for (const slug of [EDGE_TENANT, OTHER_TENANT]) await tenants.create(slug, { plan: PLAN });
      const info = (await cp.system()).info;
      this.serverVersion = info?.version ?? "";
      const plan = getPlan(await cp.plans(), PLAN);
      const serverMax = info?.max_payload ?? 1024 * 1024;
      this.maxPayload = plan.max_payload > 0 ? Math.min(serverMax, plan.max_payload) : serverMax;
    } finally {
      await cp.close();
    }
    for (const client of this.opts.clients) await this.issueEdge(client);
    this.adminFiles = (await issuePlatformIdentityFiles(layout, "admin")).files;
    this.log = new GatewayLog(await fs.open(this.opts.logFile, "w"));
    this.config = await resolveConfig({
      env: {},
      flags: {
        listen: `127.0.0.1:${this.opts.port}`,
        nats: this.nats.url,
        data_dir: layout.dir,
        sync_on_start: false,
        drain_timeout_ms: 500,
        log_level: "debug",
        registry_poll_ms: 500,
      },
    });
    await this.startGateway();
  }

  /** `compat-<client>.partition-1.acme-corp`: the leaf alone, and a copy with leaf + tenant CA. */
  async issueEdge(client: string, tenant = EDGE_TENANT): Promise<{ leaf: KeyPairFiles; chain: KeyPairFiles }> {
    const key = `${tenant}/${client}`;
    const known = this.edgeFiles.get(key);
    if (known) return known;
    const issued = await issueComponentFiles(this.layout, { tenant, component: `compat-${client}`, partition: "partition-1" });
    const leafPem = await fs.readFile(issued.files.cert, "utf8");
    const caPem = await fs.readFile(this.layout.tenantCa(tenant).cert, "utf8");
    const chainFile = issued.files.cert.replace(/\.pem$/, "-leaf-and-ca.pem");
    await fs.writeFile(chainFile, `${leafPem.trimEnd()}\n${caPem.trimEnd()}\n`);
    const files = { leaf: { cert: issued.files.cert, key: issued.files.key }, chain: { cert: chainFile, key: issued.files.key } };
    this.edgeFiles.set(key, files);
    return files;
  }

  edge(client: string, variant: "leaf" | "chain", tenant = EDGE_TENANT): KeyPairFiles {
    const files = this.edgeFiles.get(`${tenant}/${client}`);
    if (!files) throw new Error(`no certificate issued for ${client} in ${tenant}`);
    return files[variant];
  }

  get admin(): KeyPairFiles {
    if (!this.adminFiles) throw new Error("no admin certificate");
    return this.adminFiles;
  }

  private async startGateway(): Promise<void> {
    this.gatewayInstance = await Gateway.start({ ...this.config! }, createLogger({ level: "debug", destination: this.log! }));
  }

  /** Lame duck and close (as SIGTERM does), then a new gateway on the same port with the same data. */
  async restartGateway(): Promise<void> {
    await this.gatewayInstance?.shutdown(500);
    this.gatewayInstance = undefined;
    await this.startGateway();
  }

  natsLog(): string {
    return this.nats?.log() ?? "";
  }

  async stop(): Promise<void> {
    await this.gatewayInstance?.shutdown(0).catch(() => undefined);
    this.gatewayInstance = undefined;
    await this.nats?.stop().catch(() => undefined);
    await this.log?.close().catch(() => undefined);
  }
}
