/**
 * Job configs: JSON or YAML files (or objects from the protocol), validated against the job
 * kind's schema. Errors name the field and what was expected, in one line:
 * `config train.steps: expected a number, got "ten"`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';
import type { z } from 'zod';
import { fail } from '../core/errors.js';
import { readInputFileSync } from '../io/atomic.js';
import { applyPreset } from './presets.js';
import { jobKind } from './registry.js';

/** The largest config file read (a config is a few kilobytes; a grid of thousands of points still fits). */
const MAX_CONFIG_BYTES = 4 * 2 ** 20;

/** Parse a config file (.json, .yaml, .yml) into a plain object: a regular file of at most 4 MiB. */
export function readConfigFile(file: string): Record<string, unknown> {
  if (!fs.existsSync(file)) fail('not-found', `config file ${file} does not exist`);
  const text = readInputFileSync(file, 'config file', MAX_CONFIG_BYTES).toString('utf8');
  let obj: unknown;
  try {
    obj = /\.ya?ml$/i.test(file) ? YAML.parse(text) : JSON.parse(text);
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
    fail('config', `${path.basename(file)} is not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'}: ${msg}`);
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) fail('config', `${path.basename(file)}: a config must be a mapping of keys to values`);
  return obj as Record<string, unknown>;
}

/** Edit distance of two short strings (insertions, deletions, substitutions). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length];
}

/** A schema's definition as far as finding an object's fields needs. */
interface SchemaDef {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
  shape?: Record<string, z.ZodType>;
}

/** The field names of the object schema at `at` inside `schema` (through defaults, optionals, refinements), or []. */
function fieldsAt(schema: z.ZodType, at: readonly PropertyKey[]): string[] {
  let s: z.ZodType | undefined = schema;
  for (let depth = 0; s && depth < 64; depth++) {
    const def: SchemaDef = (s as unknown as { _zod: { def: SchemaDef } })._zod.def;
    if (def.type === 'object') {
      if (at.length === 0) return Object.keys(def.shape ?? {});
      s = def.shape?.[String(at[0])];
      at = at.slice(1);
    } else s = def.innerType ?? (def.type === 'pipe' ? (def.out ?? def.in) : undefined);
  }
  return [];
}

/** ` (did you mean "steps"?)` for a misspelt field name, when one known name is close enough. */
function didYouMean(key: string, known: string[]): string {
  const near = known.map((k) => ({ k, d: distance(key.toLowerCase(), k.toLowerCase()) })).sort((a, b) => a.d - b.d)[0];
  return near && near.d <= (key.length >= 4 ? Math.max(2, Math.floor(key.length / 3)) : 1) ? ` (did you mean "${near.k}"?)` : '';
}

/**
 * One line describing the first problems zod found; with the `schema` they came from, a
 * misspelt field name is answered with the closest known one ("did you mean").
 */
export function formatZodError(err: z.ZodError, prefix = 'config', schema?: z.ZodType): string {
  const parts = err.issues.slice(0, 3).map((i) => {
    const where = i.path.length ? i.path.join('.') : '(top level)';
    if (i.code === 'unrecognized_keys' && schema) {
      const known = fieldsAt(schema, i.path);
      return `${where}: ${i.keys.map((k) => `unknown field "${k}"${didYouMean(k, known)}`).join(', ')}`;
    }
    return `${where}: ${i.message.replace(/^Invalid input: /, '')}`;
  });
  const more = err.issues.length > 3 ? ` (and ${err.issues.length - 3} more)` : '';
  return `${prefix} ${parts.join('; ')}${more}`;
}

/**
 * Validate a config object against its kind's schema; returns the resolved config with defaults.
 * A `preset: <name>` fills in that preset's values under the config's own fields (presets.ts);
 * the resolved config keeps `preset` beside the filled values.
 */
export function resolveConfig(raw: Record<string, unknown>): { method: string; seed: number; preset?: string } & Record<string, unknown> {
  if (typeof raw.method !== 'string') fail('config', 'config method: missing; name the job kind, e.g. "method: lm-pretrain"');
  const kind = jobKind(raw.method);
  const { config, preset } = applyPreset(raw);
  const parsed = kind.schema.safeParse(config);
  if (!parsed.success) fail('config', formatZodError(parsed.error, 'config', kind.schema));
  const resolved = parsed.data as { method: string; seed: number } & Record<string, unknown>;
  return preset ? { ...resolved, preset } : resolved;
}
