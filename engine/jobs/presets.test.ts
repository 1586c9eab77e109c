import { describe, expect, it } from 'vitest';
import { NormLabError } from '../core/errors.js';
import './all.js';
import { resolveConfig } from './config.js';
import { deepMerge, presetsFor, withoutPreset } from './presets.js';
import { jobKind, jobKinds } from './registry.js';

describe('recipe presets', () => {
  it('every registered preset resolves against its job kind and cites a source', () => {
    const all = jobKinds().flatMap((k) => presetsFor(k.name));
    expect(all.length).toBeGreaterThan(0);
    for (const p of all) {
      expect(p.source.length, p.name).toBeGreaterThan(10);
      const r = resolveConfig({ method: p.method, preset: p.name });
      expect(r.preset).toBe(p.name);
      // Every value the preset sets is in the resolved config.
      expect(deepMerge(r, p.config)).toEqual(r);
    }
  });

  it('fills the preset under the user fields: user values win, nested siblings keep the preset', () => {
    const r = resolveConfig({ method: 'lm-pretrain', preset: 'lns-paper-130m', train: { lr: 3e-4, steps: 50, warmup: 5 } }) as unknown as {
      train: Record<string, unknown>;
      model: Record<string, unknown>;
    } & Record<string, unknown>;
    expect(r.train.lr).toBe(3e-4);
    expect(r.train.steps).toBe(50);
    expect(r.train.beta2).toBe(0.999);
    expect(r.train.clip).toBe(0);
    expect((r.train.tokens_per_step as number) / ((r.train.batch as number) * (r.train.seq as number))).toBe(32); // 512 sequences of 256 per step
    expect(r.model).toMatchObject({ layers: 12, d_model: 768, ffn: 2048, heads: 12, norm: 'lns' });
    // What run.json keeps parses again under the kind's strict schema (resume).
    expect(jobKind('lm-pretrain').schema.parse(withoutPreset(r))).toEqual(withoutPreset(r));
  });

  it('an unknown preset is one config error listing the valid ones for that method', () => {
    const err = (() => {
      try {
        resolveConfig({ method: 'lm-pretrain', preset: 'lns-paper-7b' });
      } catch (e) {
        return e as NormLabError;
      }
    })();
    expect(err).toBeInstanceOf(NormLabError);
    expect(err!.code).toBe('config');
    expect(err!.message).toMatch(/unknown preset "lns-paper-7b" for lm-pretrain: expected one of lns-paper-130m, lns-paper-250m, lns-paper-350m, lns-paper-1b/);
    expect(err!.message.split('\n')).toHaveLength(1);
    expect(() => resolveConfig({ method: 'dla', preset: 'x', model: 'm' })).toThrow(/dla has no presets/);
    expect(() => resolveConfig({ method: 'lm-pretrain', preset: 3 })).toThrow(/expected a preset name/);
  });

  it('deepMerge merges mappings key by key and replaces arrays and scalars', () => {
    expect(deepMerge({ a: { b: 1, c: [1, 2] }, d: 1 }, { a: { c: [3] }, d: 2 })).toEqual({ a: { b: 1, c: [3] }, d: 2 });
  });
});
