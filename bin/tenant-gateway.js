#!/usr/bin/env node
// Runs the compiled build (`npm run build` → dist/) when it is current: dist/BUILD newer than every
// source file. Otherwise it runs the TypeScript sources through tsx's loader, so an edited checkout
// never runs stale code. The build is what to deploy: tsx wraps every closure to keep its name,
// which costs heap per connection and CPU per message on the data path.
import { readdirSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const SOURCE_DIRS = ["common", "pki", "accounts", "streams", "gateway", "onboarding", "admin", "cli"];

function mtime(file) {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}

/** The newest modification time under `dir` (0 when it does not exist: an image without sources). */
function newest(dir) {
  let latest = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(full) : mtime(full));
  }
  return latest;
}

const built = mtime(path.join(root, "dist", "BUILD"));
const current = built >= 0 && SOURCE_DIRS.every((dir) => newest(path.join(root, dir)) <= built);
if (current) {
  await import("../dist/cli/main.js");
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import("../cli/main.ts");
}
