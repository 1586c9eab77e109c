/**
 * PyTorch parity of every LLaMA norm variant: a checkpoint trained by lm-pretrain and exported
 * with `normlab export RUN --format hf` loads in the plain PyTorch LLaMA of torch_check.py (which
 * applies the variant from config.json's normlab_* keys) and gives the same validation loss.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend/backend.js';
import { evalLM } from '../../cli/eval-lm.js';
import { exportRun } from '../../cli/main.js';
import { writeTokenFile } from '../../data/text.js';
import '../../jobs/all.js';
import { JobQueue } from '../../jobs/queue.js';
import { deepNormConstants } from '../../models/llama.js';
import { Project } from '../../store/runs.js';
import { hasTorch, runTorchScript } from '../../testing/torch.js';
import { loadLMData } from '../../train/lm-data.js';
import { textDataSchema } from '../../train/lm-config.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const VARIANTS = [
  { norm: 'pre', norm_type: 'rmsnorm' },
  { norm: 'post', norm_type: 'rmsnorm' },
  { norm: 'mix', norm_type: 'rmsnorm', mix_k: 2 },
  { norm: 'pre-scaled-init', norm_type: 'rmsnorm' },
  { norm: 'lns', norm_type: 'rmsnorm' },
  { norm: 'lns', norm_type: 'layernorm' },
  { norm: 'post', norm_type: 'layernorm' },
  { norm: 'deepnorm', norm_type: 'rmsnorm', deepnorm: 'official' },
  { norm: 'deepnorm', norm_type: 'rmsnorm', deepnorm: 'deepnet' },
  { norm: 'lns-scaled-init', norm_type: 'rmsnorm' },
] as const;

describe('PyTorch parity of the norm variants', () => {
  it.skipIf(!hasTorch)('an exported checkpoint of each variant gives the same validation loss in plain PyTorch (within 1e-4)', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lns-parity-'));
    const q = new JobQueue(Project.open(root), 'wasm');
    const seq = 32;
    const dirs: string[] = [];
    for (const [i, v] of VARIANTS.entries()) {
      const run = q.enqueue({
        method: 'lm-pretrain',
        seed: 3,
        model: { arch: 'llama', layers: 3, d_model: 16, heads: 2, ...v },
        train: { steps: 6, batch: 4, seq, warmup: 1, lr: 1e-2, eval_every: 6, eval_windows: 2, checkpoint_every: 6, log_every: 2 },
      });
      await q.wait(run.id);
      const done = q.project.run(run.id);
      expect(done.record.error).toBeNull();
      const out = path.join(root, `export-${i}`);
      await exportRun(done, out, 'hf');
      const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
      expect(cfg.normlab_norm_variant).toBe(v.norm);
      expect(cfg.normlab_norm_type).toBe(v.norm_type);
      if (v.norm === 'deepnorm') expect(cfg.normlab_deepnorm_alpha).toBe(deepNormConstants(v.deepnorm, 3).alpha);
      dirs.push(out);
    }
    const { val } = await loadLMData(textDataSchema.parse({}), seq, 256);
    const tokens = path.join(root, 'val.bin');
    await writeTokenFile(tokens, val.subarray(0, 6 * seq + 1));
    const ref = runTorchScript(path.join(__dirname, 'torch_check.py'), [tokens, String(seq), ...dirs]) as Record<
      string,
      { loss: number; tokens: number; variant: string }
    >;
    for (const [i, dir] of dirs.entries()) {
      const ours = await evalLM({ model: dir, tokens, seq });
      expect(ref[dir].variant).toBe(VARIANTS[i].norm);
      expect(ours.tokens).toBe(ref[dir].tokens);
      expect(Math.abs(ours.loss - ref[dir].loss), `${VARIANTS[i].norm}/${VARIANTS[i].norm_type}: normlab ${ours.loss} vs torch ${ref[dir].loss}`).toBeLessThan(
        1e-4,
      );
    }
    // The variants really differ: the same seed and data give different losses.
    const losses = dirs.map((d) => ref[d].loss);
    expect(new Set(losses.map((l) => l.toFixed(6))).size).toBe(losses.length);
  });
});
