/**
 * `normlab run --help-config [METHOD]`: every job kind's config fields (dotted path, type,
 * default, description) from its zod schema, then its presets with their description and source.
 */
import { z } from 'zod';
import { presetsFor } from '../jobs/presets.js';
import { jobKind, jobKinds, type JobKind } from '../jobs/registry.js';

interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  description?: string;
  anyOf?: JsonSchema[];
}

export interface ConfigField {
  path: string;
  type: string;
  default?: unknown;
  description?: string;
}

function typeOf(s: JsonSchema): string {
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.enum) return s.enum.map((v) => String(v)).join('|');
  if (s.anyOf) return s.anyOf.map(typeOf).join(' or ');
  const t = Array.isArray(s.type) ? s.type.join('|') : (s.type ?? 'any');
  return t === 'array' && s.items ? `${typeOf(s.items)}[]` : t;
}

/** The leaf fields of a job kind's config, nested objects flattened to dotted paths. */
export function configFields(kind: JobKind): ConfigField[] {
  const root = z.toJSONSchema(kind.schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  const out: ConfigField[] = [];
  const walk = (s: JsonSchema, prefix: string) => {
    for (const [k, p] of Object.entries(s.properties ?? {})) {
      const at = prefix ? `${prefix}.${k}` : k;
      if (p.type === 'object' && p.properties) walk(p, at);
      else out.push({ path: at, type: typeOf(p), default: p.default, description: p.description });
    }
  };
  walk(root, '');
  return out;
}

/** The help text for one kind or all of them. */
export function helpConfig(method?: string): string {
  const kinds = method ? [jobKind(method)] : jobKinds();
  const blocks = kinds.map((k) => {
    const fields = configFields(k).map((f) => {
      const d = f.default === undefined ? '' : ` = ${JSON.stringify(f.default)}`;
      return `  ${f.path}: ${f.type}${d}${f.description ? `\n      ${f.description}` : ''}`;
    });
    const presets = presetsFor(k.name).map((p) => `  ${p.name}: ${p.description}\n      source: ${p.source}`);
    const presetBlock = presets.length ? `\n presets (\`preset: <name>\` fills these in under your own fields):\n${presets.join('\n')}` : '';
    return `${k.name} — ${k.title}\n ${k.description}\n fields:\n${fields.join('\n')}${presetBlock}`;
  });
  return blocks.join('\n\n');
}
