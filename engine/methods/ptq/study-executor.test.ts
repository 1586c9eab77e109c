/**
 * ptq-study's grid as child runs (one `ptq-preset` per preset) through its executor: in this
 * process and in 2 parallel `normlab run-child` processes, the table equals the top-1 of each
 * preset × bit width computed directly, the way the study evaluated its grid in-process before.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend/backend.js';
import '../../jobs/all.js';
import { runToEnd, tempQueue } from '../../train/resume-harness.js';
import { ptqData } from './data.js';
import { imageBatch, inputNorm, quantizeViT, top1 } from './ptq.js';
import { PRESETS } from './study.js';
import { loadViT } from './vit-io.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const presets = ['uniform', 'repq', 'dopq'];
const bits = [4, 8];
const data = { source: 'mnist', calib_count: 8, eval_count: 40 };
const study = (modelDir: string, executor: Record<string, unknown>) => ({
  method: 'ptq-study',
  seed: 1,
  model_dir: modelDir,
  data,
  bits,
  presets,
  plot_bits: 4,
  export_preset: 'dopq',
  export_bits: 4,
  executor,
});

const ranInProcesses = (config: Record<string, unknown>) => (config.executor as { parallel?: number }).parallel === 2;

describe('ptq-study through its executor', () => {
  it('one child per preset, in process and in 2 parallel processes: the table of the direct in-process evaluation', async () => {
    const q = tempQueue('ptq-exec-');
    const vit = await runToEnd(q, {
      method: 'vit-train',
      seed: 2,
      model: { patch_size: 7, embed_dim: 16, depth: 1, num_heads: 2, mlp_ratio: 2 },
      data: { source: 'mnist', train_count: 40, eval_count: 20 },
      train: { epochs: 1, batch: 8, warmup: 1, lr: 3e-3 },
    });
    const modelDir = String(vit.readSummary()!.model_dir);

    // The grid evaluated directly, cell by cell (what the study did in its own process).
    const model = await loadViT(modelDir);
    const { calib, evalSet } = await ptqData({ seed: 1, data: { ...data, eval_source: undefined } }, model);
    const x = imageBatch(calib.images, 0, calib.n, [calib.height, calib.width, calib.channels], inputNorm(model));
    const expected: Record<string, Record<string, number>> = {};
    for (const b of bits)
      for (const name of presets) {
        const qv = await quantizeViT(model, x, { wBits: b, aBits: b, softmax: PRESETS[name].softmax, lnReparam: PRESETS[name].ln });
        (expected[name] ??= {})[`W${b}A${b}`] = await top1(qv.model, evalSet, qv.hooks());
        qv.dispose();
      }
    const fp = await top1(model, evalSet);
    x.dispose();
    model.dispose();

    for (const executor of [{ kind: 'local' }, { kind: 'local', parallel: 2 }]) {
      const run = await runToEnd(q, study(modelDir, executor));
      const s = run.readSummary()!;
      expect(s.table, JSON.stringify(executor)).toEqual(expected);
      expect(s.fp_top1).toBe(fp);
      expect(s.missing_children).toEqual([]);
      const children = q.project.children(run.id);
      expect(children.map((c) => c.record.method)).toEqual(['ptq-preset', 'ptq-preset', 'ptq-preset']);
      expect(children.every((c) => c.status === 'completed')).toBe(true);
      // The export of dopq W4A4 (done by its child) reproduces the simulated top-1, copied into the study.
      const exp = s.export as Record<string, unknown>;
      expect(exp).toMatchObject({ simulated_top1: expected.dopq.W4A4, reference_top1: expected.dopq.W4A4, matches: true });
      expect(run.artifacts()).toEqual(expect.arrayContaining(['quantized', 'ptq_table.csv', 'ln_scales.json']));
    }

    // A preset whose child ended failed (as a Slurm task can) is collected as missing: a dash in the table.
    const parallel = q.project.listRuns().find((r) => r.record.method === 'ptq-study' && ranInProcesses(r.record.config))!;
    const repq = q.project.children(parallel.id).find((c) => c.record.child_key === 'preset repq')!;
    repq.markFinished('failed', { code: 'internal', message: 'killed' });
    parallel.update({ status: 'queued' });
    q.collect(parallel.id);
    await q.wait(parallel.id);
    const collected = q.project.run(parallel.id).readSummary()!;
    expect(collected.missing_children).toEqual([{ preset: 'repq', run_id: repq.id, status: 'failed' }]);
    expect(collected.table).toEqual({ uniform: expected.uniform, dopq: expected.dopq });
    expect(collected.table_markdown).toMatch(/\| RepQ-ViT \(log-√2 \+ mean\) \| \d+ \| — \| — \|/);
  }, 180_000);
});
