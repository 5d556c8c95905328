/**
 * The baseline any Node gateway starts from: a process that terminates TLS (the gateway's own
 * certificate, a client certificate requested as the gateway does) and forwards bytes to
 * nats-server and back without reading them. Clients start TLS at once (nats-server's INFO comes
 * through the pipe inside TLS) and authenticate to nats-server with their user JWT as direct
 * clients do. The difference between the pipe and the gateway is what parsing, rewriting and
 * admission cost; the difference between direct and the pipe is what Node's I/O and TLS cost.
 *
 *   node --import tsx bench/pipe.ts '{"listen":{"host":"127.0.0.1","port":0},"upstream":{"host":"127.0.0.1","port":4222},"cert":"…","key":"…","ca":"…"}'
 *
 * Prints `{"event":"listening","port":N}` on stdout when ready; SIGTERM stops it.
 */
import { readFileSync } from "node:fs";
import net from "node:net";
import tls from "node:tls";

interface PipeConfig {
  listen: { host: string; port: number };
  upstream: { host: string; port: number };
  /** PEM files: the server certificate chain, its key, and the CA clients' certificates chain to. */
  cert: string;
  key: string;
  ca: string;
}

const config = JSON.parse(process.argv[2] ?? "{}") as PipeConfig;

const server = tls.createServer(
  { cert: readFileSync(config.cert), key: readFileSync(config.key), ca: readFileSync(config.ca), requestCert: true, rejectUnauthorized: false, minVersion: "TLSv1.2" },
  (client) => {
    const upstream = net.connect({ host: config.upstream.host, port: config.upstream.port, noDelay: true });
    client.setNoDelay(true);
    client.pipe(upstream);
    upstream.pipe(client);
    const close = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", close);
    upstream.on("error", close);
    client.on("close", close);
    upstream.on("close", close);
  },
);
server.on("tlsClientError", () => undefined);
server.listen(config.listen.port, config.listen.host, () => {
  const address = server.address() as net.AddressInfo;
  process.stdout.write(`${JSON.stringify({ event: "listening", host: address.address, port: address.port })}\n`);
});
process.on("SIGTERM", () => process.exit(0));
