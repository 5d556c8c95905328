/**
 * Services the harness runs through the gateway while the client programs run: `globex-decoy`, a
 * service of tenant globex that acme-corp's `$SRV` discovery must never see, and the README's
 * `svc.echo` responder in acme-corp. Both are stock `@nats-io/transport-node` clients that reconnect
 * by themselves when the gateway restarts.
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Svcm } from "@nats-io/services";
import { errorMessage } from "../../common/coded-error.ts";
import type { KeyPairFiles } from "./deployment.ts";

export interface RunningHelper {
  /** `running`, or why it is not. */
  status: string;
  stop(): Promise<void>;
}

function tlsOf(files: KeyPairFiles, ca: string): { certFile: string; keyFile: string; caFile: string } {
  return { certFile: files.cert, keyFile: files.key, caFile: ca };
}

async function connectHelper(url: string, files: KeyPairFiles, ca: string, name: string): Promise<NatsConnection> {
  return connect({ servers: url, tls: tlsOf(files, ca), name, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
}

/** `globex-decoy` with one endpoint (`decoy.echo`), registered with the service framework. */
export async function startDecoyService(url: string, files: KeyPairFiles, ca: string): Promise<RunningHelper> {
  let nc: NatsConnection | undefined;
  try {
    nc = await connectHelper(url, files, ca, "compat-globex-decoy");
    const svc = await new Svcm(nc as unknown as ConstructorParameters<typeof Svcm>[0]).add({ name: "globex-decoy", version: "1.0.0", description: "a globex service acme-corp must not discover" });
    svc.addEndpoint("decoy", { subject: "decoy.echo", handler: (_e, m) => void m.respond(m.data) });
    await nc.flush();
    // Not being discovered from acme-corp proves something only if globex itself discovers it.
    const seen: string[] = [];
    for await (const r of await new Svcm(nc as unknown as ConstructorParameters<typeof Svcm>[0]).client().ping("globex-decoy")) seen.push(r.name);
    const conn = nc;
    return {
      status: seen.includes("globex-decoy") ? "running" : `running, but globex's own $SRV.PING does not find it (${JSON.stringify(seen)})`,
      stop: async () => {
        await svc.stop().catch(() => undefined);
        await conn.close();
      },
    };
  } catch (err) {
    await nc?.close().catch(() => undefined);
    return { status: `not running: ${errorMessage(err)}`, stop: async () => undefined };
  }
}

/** A plain responder on `subject` answering with the request's payload. */
export async function startEchoResponder(url: string, files: KeyPairFiles, ca: string, subject: string): Promise<RunningHelper> {
  try {
    const nc = await connectHelper(url, files, ca, "compat-readme-echo");
    nc.subscribe(subject, { callback: (_e, m) => void m.respond(m.data) });
    await nc.flush();
    return { status: "running", stop: () => nc.close() };
  } catch (err) {
    return { status: `not running: ${errorMessage(err)}`, stop: async () => undefined };
  }
}
