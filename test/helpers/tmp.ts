import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/** A fresh temporary directory, removed when the process exits. */
export function tempDir(prefix = "ntg-"): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
