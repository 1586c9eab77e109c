import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../backend/backend.js';
import { Project } from '../store/runs.js';
import type { KeyResult } from '../stats/stats.js';
import './all.js';
import { JobQueue } from './queue.js';
import { seedCurves, seedKeyResult, seedTable, SINGLE_SEED, type SeedCell } from './seeds.js';

beforeAll(async () => {
  await initBackend('wasm');
});

/** t_{0.975} with 1 and 2 degrees of freedom (scipy.stats.t.ppf(0.975, df)). */
const T975 = { 1: 12.706204736174707, 2: 4.302652729749464 };

describe('seed tables and key results over seeds', () => {
  it('mean ± sample sd and the t interval over seeds, by hand; a missing value is left out', () => {
    const t = seedTable([0, 1, 2], [{ a: { x: 1, y: 5 } }, { a: { x: 2, y: null } }, { a: { x: 4 }, b: { x: 7 } }]);
    const x = t.find((c) => c.row === 'a' && c.metric === 'x')!;
    // mean 7/3; deviations −4/3, −1/3, 5/3; ss = (16 + 1 + 25)/9 = 42/9; sd = √(42/18)
    expect(x.mean).toBeCloseTo(7 / 3, 12);
    expect(x.sd).toBeCloseTo(Math.sqrt(42 / 18), 12);
    expect(x.ci95![0]).toBeCloseTo(7 / 3 - (T975[2] * Math.sqrt(42 / 18)) / Math.sqrt(3), 9);
    expect(x.per_seed).toEqual({ 0: 1, 1: 2, 2: 4 });
    const y = t.find((c) => c.row === 'a' && c.metric === 'y')!;
    expect([y.n, y.mean, y.sd, y.ci95]).toEqual([1, 5, null, null]);
    expect(t.find((c) => c.row === 'b')!.per_seed).toEqual({ 0: null, 1: null, 2: 7 });
  });

  it('a comparison over seeds keeps its direction and says which interval it is; one seed keeps its own', () => {
    const k = (value: number): KeyResult => ({
      label: 'd',
      value,
      ci95: [value - 1, value + 1],
      better: 'lower',
      verdict: 'within noise',
      interval: 'paired t over 4 windows',
    });
    const two = seedKeyResult([3, 4], [k(-0.5), k(-0.7)])!;
    expect(two.value).toBeCloseTo(-0.6, 12);
    const half = (T975[1] * Math.sqrt(0.02)) / Math.sqrt(2);
    expect(two.ci95![0]).toBeCloseTo(-0.6 - half, 9);
    expect(two.verdict).toBe('within noise'); // half-width 1.27 covers 0
    expect(two.interval).toMatch(/^t over 2 seeds \(3, 4\); within each seed: paired t over 4 windows/);
    const one = seedKeyResult([3, 4], [null, k(-0.5)])!;
    expect(one.ci95).toEqual([-1.5, 0.5]);
    expect(one.interval).toMatch(/within seed 4 only/);
  });

  it('curves: mean ± sd at the steps every seed logged', () => {
    const [c] = seedCurves([{ v: { step: [1, 2, 3], value: [1, 2, 3] } }, { v: { step: [2, 3], value: [4, 5] } }]);
    expect(c.x).toEqual([2, 3]);
    expect(c.y).toEqual([3, 4]);
    expect(c.hi[0] - c.y[0]).toBeCloseTo(Math.SQRT2, 12);
  });
});

describe('lns-study over two seeds', () => {
  it("gives each seed's value and the mean ± sd equal to the children's, and the key result's t interval over seeds", async () => {
    const q = new JobQueue(Project.open(fs.mkdtempSync(path.join(os.tmpdir(), 'lns-seeds-'))), 'wasm');
    const run = q.enqueue({
      method: 'lns-study',
      seeds: [0, 1],
      model: { layers: 2, d_model: 16, heads: 2 },
      train: { steps: 4, batch: 2, seq: 16, warmup: 1, eval_every: 2, eval_windows: 4, log_every: 2, checkpoint_every: 4 },
      diagnostics: { sequences: 2, pruning_windows: 2, max_n: 1 },
    });
    await q.wait(run.id);
    const done = q.project.run(run.id);
    expect(done.record.error).toBeNull();
    const s = done.readSummary() as { key_result: KeyResult; seed_table: SeedCell[]; runs: Record<string, string>; warnings: string[] };
    // The children: one lns-study per seed, each with its own variants.
    const children = q.project.children(run.id);
    expect(children.map((c) => (c.record.config as { seed: number }).seed).sort()).toEqual([0, 1]);
    const child = (seed: number) => q.project.run(s.runs[String(seed)]).readSummary() as { key_result: KeyResult; variants: Record<string, number>[] };
    const [c0, c1] = [child(0), child(1)];
    for (const variant of ['pre', 'lns'])
      for (const metric of ['final_val_loss', 'deep_half_prune_drop_mean']) {
        const a = c0.variants.find((v) => (v.variant as unknown) === variant)![metric];
        const b = c1.variants.find((v) => (v.variant as unknown) === variant)![metric];
        const cell = s.seed_table.find((c) => c.row === variant && c.metric === metric)!;
        expect(cell.per_seed).toEqual({ 0: a, 1: b });
        expect(cell.mean).toBeCloseTo((a + b) / 2, 12);
        expect(cell.sd).toBeCloseTo(Math.abs(a - b) / Math.SQRT2, 12); // two values: s = |a − b| / √2
      }
    const [k0, k1] = [c0.key_result.value, c1.key_result.value];
    expect(s.key_result.value).toBeCloseTo((k0 + k1) / 2, 12);
    const half = (T975[1] * (Math.abs(k0 - k1) / Math.SQRT2)) / Math.SQRT2;
    expect(s.key_result.ci95![0]).toBeCloseTo((k0 + k1) / 2 - half, 9);
    expect(s.key_result.ci95![1]).toBeCloseTo((k0 + k1) / 2 + half, 9);
    expect(s.key_result.interval).toMatch(/^t over 2 seeds/);
    expect(s.warnings).not.toContain(SINGLE_SEED);
    for (const f of ['seeds_table.csv', 'seeds_table.md', 'seed_curves.png']) expect(done.artifacts()).toContain(f);
  }, 120_000);
});
