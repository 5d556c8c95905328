/** One ajv instance for the project: schemas compile once, errors become one readable sentence. */
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { CodedError } from "./coded-error.ts";

export const ajv = new Ajv({ allErrors: true, strict: true, useDefaults: true, allowUnionTypes: true });

export function describeAjvErrors(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? [])
    .map((e) => {
      const where = e.instancePath || "(top level)";
      if (e.keyword === "additionalProperties") return `${where}: unknown property "${(e.params as { additionalProperty: string }).additionalProperty}"`;
      if (e.keyword === "enum") return `${where}: must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(", ")}`;
      return `${where}: ${e.message ?? e.keyword}`;
    })
    .join("; ");
}

/** Validates `value` or throws a CodedError naming what was being read (e.g. a file path). */
export function validateOrThrow<T>(validate: ValidateFunction<T>, value: unknown, code: string, what: string): T {
  if (!validate(value)) throw new CodedError(code, `${what} is invalid: ${describeAjvErrors(validate.errors)}`);
  return value;
}
