/**
 * Tenant plans: the NATS account limits each tenant gets. They live in one JSON file that
 * operators edit (`<data-dir>/plans.json`, copied from the built-in defaults by `init`),
 * validated with ajv; `sync` re-pushes every tenant's account with the current limits.
 */
import { readFileSync } from "node:fs";
import { promises as fs } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { OperatorLimits } from "@nats-io/jwt";
import { CodedError } from "../common/coded-error.ts";
import { fileExists } from "../common/files.ts";
import { ajv, validateOrThrow } from "../common/schema.ts";

export interface Plan {
  description?: string;
  connections: number;
  subscriptions: number;
  max_payload: number;
  /** Leaf nodes (customer sites' own nats-server, through the gateway); absent: as many as connections. */
  leaf_nodes?: number;
  jetstream: { memory: number; disk: number; streams: number; consumers: number };
  /**
   * What one gateway process lets the tenant's clients publish, all its sessions together: enforced
   * by not reading their sockets until the tenant is back under the rate, never by dropping (NATS
   * has no such account limit). Absent or -1: unlimited.
   */
  rate_limits?: PlanRateLimits;
}

export interface PlanRateLimits {
  messages_per_second: number;
  bytes_per_second: number;
}

/** No rate limit. */
export const UNLIMITED_RATE: PlanRateLimits = { messages_per_second: -1, bytes_per_second: -1 };

export interface PlanFile {
  $comment?: string;
  plans: Record<string, Plan>;
}

const limit = { type: "integer", minimum: -1 } as const;

const planFileSchema = {
  type: "object",
  additionalProperties: false,
  required: ["plans"],
  properties: {
    $comment: { type: "string" },
    plans: {
      type: "object",
      minProperties: 1,
      propertyNames: { pattern: "^[a-z0-9][a-z0-9_-]{0,31}$" },
      additionalProperties: {
        type: "object",
        additionalProperties: false,
        required: ["connections", "subscriptions", "max_payload", "jetstream"],
        properties: {
          description: { type: "string" },
          connections: limit,
          subscriptions: limit,
          max_payload: limit,
          leaf_nodes: limit,
          jetstream: {
            type: "object",
            additionalProperties: false,
            required: ["memory", "disk", "streams", "consumers"],
            properties: { memory: limit, disk: limit, streams: limit, consumers: limit },
          },
          rate_limits: {
            type: "object",
            additionalProperties: false,
            properties: {
              // A rate of 0 would stop the tenant's clients for good: suspend the tenant instead.
              messages_per_second: { type: "integer", anyOf: [{ const: -1 }, { minimum: 1 }] },
              bytes_per_second: { type: "integer", anyOf: [{ const: -1 }, { minimum: 1 }] },
            },
          },
        },
      },
    },
  },
};

const validatePlanFile = ajv.compile<PlanFile>(planFileSchema);

export const BUILTIN_PLANS_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), "plans.json");
export const DEFAULT_PLAN = "free";

export function parsePlanFile(text: string, file: string): PlanFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CodedError("invalid_plans_file", `plans file ${file} is not valid JSON: ${(err as Error).message}`);
  }
  return validateOrThrow(validatePlanFile, json, "invalid_plans_file", `plans file ${file}`);
}

export function builtinPlans(): PlanFile {
  return parsePlanFile(readFileSync(BUILTIN_PLANS_FILE, "utf8"), BUILTIN_PLANS_FILE);
}

export function plansFilePath(dataDir: string): string {
  return path.join(dataDir, "plans.json");
}

/** The data dir's plans file if there is one, else the built-in plans. */
export async function loadPlans(dataDir: string): Promise<PlanFile> {
  const file = plansFilePath(dataDir);
  if (!(await fileExists(file))) return builtinPlans();
  return parsePlanFile(await fs.readFile(file, "utf8"), file);
}

export function getPlan(plans: PlanFile, name: string): Plan {
  const plan = plans.plans[name];
  if (!plan) throw new CodedError("unknown_plan", `unknown plan "${name}" (known: ${Object.keys(plans.plans).join(", ")})`);
  return plan;
}

/** A plan's gateway rate limits, every one explicit (-1: unlimited). */
export function rateLimits(plan: Plan): PlanRateLimits {
  return { ...UNLIMITED_RATE, ...plan.rate_limits };
}

/** The account JWT `limits` for a plan: every core limit explicit (2.9 admits no connection without). */
export function accountLimits(plan: Plan): OperatorLimits {
  return {
    subs: plan.subscriptions,
    conn: plan.connections,
    leaf: plan.leaf_nodes ?? plan.connections,
    data: -1,
    payload: plan.max_payload,
    imports: -1,
    exports: -1,
    wildcards: true,
    mem_storage: plan.jetstream.memory,
    disk_storage: plan.jetstream.disk,
    streams: plan.jetstream.streams,
    consumer: plan.jetstream.consumers,
    max_ack_pending: -1,
    mem_max_stream_bytes: -1,
    disk_max_stream_bytes: -1,
    max_bytes_required: false,
  };
}
