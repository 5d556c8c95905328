/**
 * A gzipped tar (POSIX ustar) of a few in-memory files: what an onboarding bundle is. Own code
 * rather than a dependency: a bundle is a dozen small files built in memory, and writing ustar
 * headers is about forty lines; Node's zlib does the compression. GNU tar, bsdtar and Python's
 * tarfile read it (the tests extract bundles with the system's tar).
 */
import { gzipSync } from "node:zlib";

export interface TarEntry {
  /** Relative path with `/` separators; directories are implied by the files' paths. */
  path: string;
  data: Buffer | string;
  /** Permission bits, e.g. 0o644, 0o600 (keys), 0o755 (scripts). */
  mode: number;
}

const BLOCK = 512;

function octal(value: number, width: number): string {
  // width includes the terminating NUL
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

function header(name: string, size: number, mode: number, type: "0" | "5", mtime: number): Buffer {
  const h = Buffer.alloc(BLOCK, 0);
  let prefix = "";
  let base = name;
  if (Buffer.byteLength(name) > 100) {
    // ustar splits a long path at a "/" into prefix (155 bytes) and name (100 bytes).
    const cut = name.lastIndexOf("/", name.length - 1 - (type === "5" ? 1 : 0));
    prefix = name.slice(0, cut);
    base = name.slice(cut + 1);
    if (cut <= 0 || Buffer.byteLength(prefix) > 155 || Buffer.byteLength(base) > 100) throw new Error(`path too long for a tar header: ${name}`);
  }
  h.write(base, 0, 100, "utf8");
  h.write(octal(mode & 0o7777, 8), 100, "ascii");
  h.write(octal(0, 8), 108, "ascii"); // uid
  h.write(octal(0, 8), 116, "ascii"); // gid
  h.write(octal(size, 12), 124, "ascii");
  h.write(octal(mtime, 12), 136, "ascii");
  h.write("        ", 148, "ascii"); // checksum field counts as spaces while summing
  h.write(type, 156, "ascii");
  h.write("ustar\0", 257, "ascii");
  h.write("00", 263, "ascii");
  h.write(prefix, 345, 155, "utf8");
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(octal(sum, 7) + " ", 148, "ascii");
  return h;
}

/** The files (and their directories, 0755) as a .tar.gz; timestamps are `mtime` (seconds). */
export function tarGz(entries: readonly TarEntry[], mtime = Math.floor(Date.now() / 1000)): Buffer {
  const parts: Buffer[] = [];
  const dirs = new Set<string>();
  for (const entry of entries) {
    const segments = entry.path.split("/");
    for (let i = 1; i < segments.length; i++) {
      const dir = segments.slice(0, i).join("/") + "/";
      if (dirs.has(dir)) continue;
      dirs.add(dir);
      parts.push(header(dir, 0, 0o755, "5", mtime));
    }
    const data = typeof entry.data === "string" ? Buffer.from(entry.data, "utf8") : entry.data;
    parts.push(header(entry.path, data.length, entry.mode, "0", mtime), data);
    const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
    if (pad > 0) parts.push(Buffer.alloc(pad, 0));
  }
  parts.push(Buffer.alloc(BLOCK * 2, 0));
  return gzipSync(Buffer.concat(parts), { level: 9 });
}
