/**
 * Faults injected by tests. Crash points prove recovery: when TENANT_GATEWAY_FAULT names this point, the
 * process dies on the spot (SIGKILL, no cleanup), exactly like a power cut between two writes.
 */
export function crashPoint(name: string): void {
  if (process.env.TENANT_GATEWAY_FAULT === name) process.kill(process.pid, "SIGKILL");
}

const SESSION_FAULT = "session_throw:";

/**
 * A fault injected into one session's data processing, for the tests that prove such a fault ends
 * that session only: when TENANT_GATEWAY_FAULT is `session_throw:<marker>`, a read holding the
 * marker throws inside the rewriter. Undefined (nothing injected) otherwise.
 */
export function sessionFaultMarker(): Buffer | undefined {
  const fault = process.env.TENANT_GATEWAY_FAULT;
  return fault?.startsWith(SESSION_FAULT) ? Buffer.from(fault.slice(SESSION_FAULT.length), "latin1") : undefined;
}
