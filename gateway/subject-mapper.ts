/**
 * The tenant mapping behind one tiny interface (architecture brief, section 4): map an edge-view
 * subject into the tenant's namespace, and map back only what the tenant owns. The return path
 * checks ownership; it never blindly cuts a prefix.
 */

/** The account-scoped JetStream namespaces (`$JS.API.`, `$JS.ACK.`, `$JS.FC.`) pass into the tenant's own account unprefixed. */
export function isJetStreamPassthrough(subject: string): boolean {
  return subject.startsWith("$JS.API.") || subject.startsWith("$JS.ACK.") || subject.startsWith("$JS.FC.");
}

export interface SubjectMapper {
  /** `acme-corp.` */
  readonly prefix: string;
  /** Edge view → NATS: `events.x` → `acme-corp.events.x`; `$JS.API.…` passes unchanged. */
  toTenant(edgeSubject: string): string;
  /** NATS → edge view, or undefined when the subject is not this tenant's. */
  toEdge(tenantSubject: string): string | undefined;
  /** Is this NATS-side subject inside the tenant's namespace (prefix or JetStream passthrough)? */
  owns(tenantSubject: string): boolean;
}

export function tenantSubjectMapper(slug: string): SubjectMapper {
  const prefix = `${slug}.`;
  return {
    prefix,
    toTenant: (s) => (isJetStreamPassthrough(s) ? s : prefix + s),
    toEdge: (s) => {
      if (s.startsWith(prefix) && s.length > prefix.length) return s.slice(prefix.length);
      if (isJetStreamPassthrough(s)) return s;
      return undefined;
    },
    owns: (s) => (s.startsWith(prefix) && s.length > prefix.length) || isJetStreamPassthrough(s),
  };
}
