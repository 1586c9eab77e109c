/**
 * Recipe presets: a paper's (or an official config file's) settings under one name. A config
 * with `preset: <name>` gets the preset's values deep-merged *under* its own fields, so every
 * field stays overridable; the resolved config (run.json) keeps `preset` and the filled values.
 *
 * Each method folder may export a list of presets from its `presets.ts` and register it with
 * `registerPresets` (from its index.ts). A preset names the job kind it is for (`method`), says
 * what it is (`description`) and where its numbers come from (`source`: the paper and its
 * table/section, or the official config file).
 */
import { fail } from '../core/errors.js';

export interface Preset {
  /** Unique within its method, e.g. `lns-paper-130m`. */
  name: string;
  /** The job kind it fills in (`lm-pretrain`, `lct`, ...). */
  method: string;
  description: string;
  /** Paper + table/section, or the official config file the values come from. */
  source: string;
  /** A partial config, nested like the YAML (`{ model: { layers: 12 }, train: { lr: 1e-3 } }`). */
  config: Record<string, unknown>;
}

const presets = new Map<string, Preset[]>();

/** Register presets (each method's `presets.ts` list). A name used twice for a method is a bug. */
export function registerPresets(list: readonly Preset[]): void {
  for (const p of list) {
    const mine = presets.get(p.method) ?? [];
    if (mine.some((q) => q.name === p.name)) throw new Error(`preset "${p.name}" is registered twice for ${p.method}`);
    if ('method' in p.config || 'preset' in p.config) throw new Error(`preset "${p.name}": its config must not set method or preset`);
    mine.push(p);
    presets.set(p.method, mine);
  }
}

/** The presets of one job kind, in registration order. */
export function presetsFor(method: string): Preset[] {
  return [...(presets.get(method) ?? [])];
}

/** One preset of a job kind; an unknown name is a one-line config error listing the valid ones. */
export function presetFor(method: string, name: string): Preset {
  const mine = presets.get(method) ?? [];
  const p = mine.find((q) => q.name === name);
  if (p) return p;
  fail(
    'config',
    `config preset: unknown preset "${name}" for ${method}: ${mine.length ? `expected one of ${mine.map((q) => q.name).join(', ')}` : `${method} has no presets`}`,
  );
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `over` deep-merged over `base`: nested mappings merge key by key; arrays and scalars replace. */
export function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    out[k] = isPlainObject(v) && isPlainObject(out[k]) ? deepMerge(out[k] as Record<string, unknown>, v) : v;
  }
  return out;
}

/**
 * A raw config with its preset (if it names one) filled in under the user's own fields. Returns
 * the merged config without the `preset` key (the kinds' schemas are strict) and the preset name.
 */
export function applyPreset(raw: Record<string, unknown>): { config: Record<string, unknown>; preset?: string } {
  if (raw.preset === undefined) return { config: raw };
  if (typeof raw.preset !== 'string') fail('config', `config preset: expected a preset name, got ${JSON.stringify(raw.preset)}`);
  const { preset: name, ...own } = raw;
  const p = presetFor(String(raw.method), name as string);
  return { config: deepMerge(structuredClone(p.config), own), preset: p.name };
}

/** A resolved config (run.json) without its `preset` record, as the kind's strict schema reads it. */
export function withoutPreset(config: Record<string, unknown>): Record<string, unknown> {
  const { preset: _preset, ...rest } = config;
  return rest;
}
