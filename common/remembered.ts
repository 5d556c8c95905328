/**
 * A bounded map for facts that never change once computed (a parsed certificate, a verified
 * signature), keyed by something that names the input exactly (a SHA-256 fingerprint). When full,
 * the oldest entry is forgotten first; forgetting only costs recomputing.
 */
export class Remembered<V> {
  private readonly entries = new Map<string, V>();
  private readonly max: number;

  constructor(max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`max must be a positive integer, got ${max}`);
    this.max = max;
  }

  get(key: string): V | undefined {
    return this.entries.get(key);
  }

  set(key: string, value: V): void {
    if (this.entries.size >= this.max && !this.entries.has(key)) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, value);
  }

  get size(): number {
    return this.entries.size;
  }
}
