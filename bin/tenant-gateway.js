#!/usr/bin/env node
// The CLI runs the TypeScript sources directly through tsx's loader; the runtime cost is
// a one-off transpile at start-up, the data path runs at full V8 speed afterwards.
import { register } from "tsx/esm/api";

register();
await import("../cli/main.ts");
