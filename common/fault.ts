/**
 * Crash points for tests that prove recovery: when TENANT_GATEWAY_FAULT names this point, the
 * process dies on the spot (SIGKILL, no cleanup), exactly like a power cut between two writes.
 */
export function crashPoint(name: string): void {
  if (process.env.TENANT_GATEWAY_FAULT === name) process.kill(process.pid, "SIGKILL");
}
