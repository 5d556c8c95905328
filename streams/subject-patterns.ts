/**
 * Stream subject patterns as templates write them, in the edge view (`events.>`): what makes one
 * valid, and whether two can match the same subject (nats-server refuses overlapping streams, and
 * its message does not say which template was at fault).
 */

/** Why `pattern` is not a usable edge-view stream subject, or undefined when it is. */
export function edgeSubjectPatternProblem(pattern: string): string | undefined {
  if (pattern.length === 0) return "is empty";
  if (/\s/.test(pattern)) return "contains whitespace";
  if (pattern.startsWith("$")) return "is in a reserved namespace ($…); stream subjects are tenant subjects";
  const tokens = pattern.split(".");
  for (const [i, token] of tokens.entries()) {
    if (token.length === 0) return "has an empty token";
    if (token === ">" && i !== tokens.length - 1) return `has ">" before the last token`;
    if (token !== "*" && token !== ">" && /[*>]/.test(token)) return `has a wildcard inside the token "${token}"`;
  }
  return undefined;
}

/** True when some subject matches both patterns (`*` one token, `>` one or more trailing tokens). */
export function subjectPatternsOverlap(a: string, b: string): boolean {
  const x = a.split(".");
  const y = b.split(".");
  for (let i = 0; i < x.length && i < y.length; i++) {
    if (x[i] === ">" || y[i] === ">") return true;
    if (x[i] !== y[i] && x[i] !== "*" && y[i] !== "*") return false;
  }
  return x.length === y.length;
}
