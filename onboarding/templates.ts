/**
 * The templates an onboarding bundle is rendered from: the built-in ones in
 * `onboarding/templates/`, each of which an operator may replace with a file of the same path under
 * `<data-dir>/onboarding/templates/`. A template names values as `{{name}}`; a name that is not
 * one of the values, or a rendered YAML or JSON file that does not parse, is refused
 * (`invalid_onboarding_template`, naming the file) before anything is issued.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { CodedError } from "../common/coded-error.ts";

const BUILTIN_ONBOARDING_TEMPLATES_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "templates");

const PLACEHOLDER = /\{\{([a-z][a-z0-9_]*)\}\}/g;

function invalid(file: string, problem: string): CodedError {
  return new CodedError("invalid_onboarding_template", `onboarding template ${file} is invalid: ${problem}`, { details: { file } });
}

/** The operator's copy of `relative` when there is one, else the built-in one. */
export async function readOnboardingTemplate(overrideDir: string | undefined, relative: string): Promise<{ file: string; text: string }> {
  for (const dir of [overrideDir, BUILTIN_ONBOARDING_TEMPLATES_DIR]) {
    if (!dir) continue;
    const file = path.join(dir, relative);
    try {
      return { file, text: await fs.readFile(file, "utf8") };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw new CodedError("file_unreadable", `cannot read onboarding template ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  throw new CodedError("invalid_onboarding_template", `no onboarding template ${relative} in ${overrideDir ? `${overrideDir} or ` : ""}${BUILTIN_ONBOARDING_TEMPLATES_DIR}`);
}

/** Substitutes every `{{name}}`; checks that YAML and JSON results parse. */
export function renderTemplate(file: string, text: string, values: Readonly<Record<string, string>>): string {
  const rendered = text.replace(PLACEHOLDER, (_all, name: string) => {
    const value = values[name];
    if (value === undefined) throw invalid(file, `it names {{${name}}}, which is not one of ${Object.keys(values).sort().map((k) => `{{${k}}}`).join(", ")}`);
    return value;
  });
  const left = /\{\{[^}]*\}\}/.exec(rendered);
  if (left) throw invalid(file, `${left[0]} is not a placeholder (lower-case letters, digits and _)`);
  try {
    if (/\.ya?ml$/.test(file)) YAML.parse(rendered);
    if (file.endsWith(".json")) JSON.parse(rendered);
  } catch (err) {
    throw invalid(file, `once rendered it does not parse: ${(err as Error).message.split("\n")[0]}`);
  }
  return rendered;
}
