/**
 * Real nats-server processes for tests: operator mode with the config `tenant-gateway init`
 * writes (port -1: a random loopback port), a temp data dir. The launcher is the product's own
 * (`tenant-gateway dev` uses it too).
 */
export { startNatsServer, type RunningNatsServer } from "../../accounts/nats-server-process.ts";
