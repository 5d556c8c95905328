import { randomBytes } from "node:crypto";
import { constants, promises as fs } from "node:fs";
import path from "node:path";
import { CodedError } from "./coded-error.ts";

/** Private keys, seeds and creds: owner read/write only. */
export const SECRET_MODE = 0o600;
export const PUBLIC_MODE = 0o644;

/**
 * Writes a file so that readers see either the old content or the new one, never a half file:
 * write a temporary sibling, fsync, rename over the target. The mode is set before any byte of
 * content is written, so a secret is never briefly world-readable.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = PUBLIC_MODE): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
  const tmp = `${file}.${randomBytes(6).toString("hex")}.tmp`;
  const handle = await fs.open(tmp, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.chmod(tmp, mode);
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

export function writeSecretFile(file: string, data: string | Uint8Array): Promise<void> {
  return writeFileAtomic(file, data, SECRET_MODE);
}

export async function fileExists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

/** Reads a text file, turning "missing" and "unreadable" into coded errors that name the file. */
export async function readTextFile(file: string, what: string): Promise<string> {
  try {
    return await fs.readFile(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new CodedError("file_not_found", `${what} not found: ${file}`, { cause: err });
    if (code === "EISDIR") throw new CodedError("file_unreadable", `${what} is a directory, not a file: ${file}`, { cause: err });
    throw new CodedError("file_unreadable", `cannot read ${what} ${file}: ${code ?? String(err)}`, { cause: err });
  }
}
