/** jemalloc on this machine: what the image preloads (docker/Dockerfile), for tests that stand in for it. */
import { existsSync } from "node:fs";
import path from "node:path";

/** The path of jemalloc's shared library where Debian puts it (package libjemalloc2), if installed. */
export function jemallocLibrary(): string | undefined {
  for (const dir of ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib"]) {
    const file = path.join(dir, "libjemalloc.so.2");
    if (existsSync(file)) return file;
  }
  return undefined;
}
