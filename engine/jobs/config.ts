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
import { applyPreset } from './presets.js';
import { jobKind } from './registry.js';

/** Parse a config file (.json, .yaml, .yml) into a plain object. */
export function readConfigFile(file: string): Record<string, unknown> {
  if (!fs.existsSync(file)) fail('not-found', `config file ${file} does not exist`);
  const text = fs.readFileSync(file, 'utf8');
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

/** One line describing the first problems zod found. */
export function formatZodError(err: z.ZodError, prefix = 'config'): string {
  const parts = err.issues.slice(0, 3).map((i) => {
    const where = i.path.length ? i.path.join('.') : '(top level)';
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
  if (!parsed.success) fail('config', formatZodError(parsed.error));
  const resolved = parsed.data as { method: string; seed: number } & Record<string, unknown>;
  return preset ? { ...resolved, preset } : resolved;
}
