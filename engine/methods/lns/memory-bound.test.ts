/**
 * The depth diagnostics stay within the wasm heap: the residual statistics hold one block's
 * intermediates at a time (a Gemma 2 of 24 blocks × 512 once kept every block's soft-capped scores
 * and aborted the 4 GiB heap), leave no tensors behind (also when the forward pass throws),
 * `streaming: auto` streams a model whose in-memory evaluation would outgrow the heap, `never`
 * refuses it in one line, a batch too large even block by block is refused in one line, a depth
 * study runs a large model in its own process, and a wasm abort reads as one line and sends the
 * in-process children after it to their own processes.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend/backend.js';
import { asNormLabError } from '../../core/errors.js';
import type { EvalWindows } from '../../data/batches.js';
import { z } from 'zod';
import { resolveConfig } from '../../jobs/config.js';
import { baseConfig, registerJobKind } from '../../jobs/registry.js';
import '../../jobs/all.js';
import { decoderShape, decoderSpecFromConfig } from '../../models/families.js';
import { openLM } from '../../models/index.js';
import type { CausalLM } from '../../models/lm.js';
import { makeTinyHF } from '../../models/tiny-hf.js';
import { errorOf } from '../../testing/helpers.js';
import { runToEnd, tempQueue } from '../../train/resume-harness.js';
import { isLargeModel, type DepthStudyConfig } from './depth-study.js';
import { residualStats } from './diagnostics.js';
import { diagnosticsUse } from './eval-use.js';

const LAYERS = 8;
const WIDTH = 64;
const SEQ = 64;
const BATCH = 4;
let dir: string;

beforeAll(async () => {
  await initBackend('wasm');
  dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-membound-')), 'gemma2');
  await makeTinyHF('gemma2', dir, { layers: LAYERS, width: WIDTH, seed: 0 });
});

/** The tiny gemma2 in memory. */
async function inMemory(): Promise<{ model: CausalLM; dispose: () => Promise<void> }> {
  const opened = await openLM(dir, { streaming: 'never' });
  if (opened.kind !== 'memory') throw new Error('expected in memory');
  return opened;
}

function windows(count: number): EvalWindows {
  const x = Int32Array.from({ length: count * SEQ }, (_, i) => (i * 37 + 11) % 256);
  return { x, y: x, count, seq: SEQ };
}

/** Call `after` each time the forward pass hands on a residual stream (layer -1..L-1), after the caller's own hook. */
function afterResidual(model: CausalLM, after: (layer: number) => void): void {
  const hidden = model.hidden.bind(model);
  model.hidden = (idx, hooks) =>
    hidden(idx, {
      ...hooks,
      residual: (l, x) => {
        hooks?.residual?.(l, x);
        after(l);
      },
    });
}

/** Live tensor bytes each time the forward pass hands on a residual stream (layer -1..L-1). */
function sampleAtBlocks(model: CausalLM): number[] {
  const samples: number[] = [];
  afterResidual(model, () => samples.push(tf.memory().numBytes));
  return samples;
}

/** A gemma2 folder like the tiny one with another context (its positions are rotary: no weight changes). */
function withContext(context: number): string {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-membound-ctx-'));
  for (const f of fs.readdirSync(dir)) fs.copyFileSync(path.join(dir, f), path.join(out, f));
  const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(path.join(out, 'config.json'), JSON.stringify({ ...cfg, max_position_embeddings: context }));
  return out;
}

describe('residual statistics of a soft-capped, windowed gemma2', () => {
  it('hold one block’s intermediates at a time: the live bytes grow by about a residual stream per block', async () => {
    const opened = await inMemory();
    const model = opened.model;
    const samples = sampleAtBlocks(model);
    await residualStats(model, windows(BATCH), BATCH, BATCH);
    const stream = BATCH * SEQ * WIDTH * 4;
    const scores = BATCH * (WIDTH / 16) * SEQ * SEQ * 4; // one (B, H, T, T) tensor; a block makes 7
    const growth = samples[LAYERS] - samples[1]; // from after block 1 to after block L
    // Kept: each block's output stream and its small measurements. Before the fix every block kept
    // its intermediates: more than 7 score tensors per block.
    expect(growth).toBeLessThanOrEqual((LAYERS - 1) * 2 * stream);
    expect(growth).toBeLessThan((LAYERS - 1) * scores);
    await opened.dispose();
  });

  it('leave no tensors behind, also when the forward pass throws', async () => {
    const opened = await inMemory();
    const model = opened.model;
    await residualStats(model, windows(BATCH), BATCH, BATCH); // the masks and rotary tables it caches
    const before = tf.memory().numTensors;
    await residualStats(model, windows(2 * BATCH), BATCH, BATCH);
    expect(tf.memory().numTensors).toBe(before);
    afterResidual(model, (l) => {
      if (l === 3) throw new Error('stopped at block 4');
    });
    await expect(residualStats(model, windows(BATCH), BATCH, BATCH)).rejects.toThrow('stopped at block 4');
    expect(tf.memory().numTensors).toBe(before);
    await opened.dispose();
  });
});

describe('the in-memory estimate', () => {
  it('counts the unfused soft-capped scores of gemma2', () => {
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(decoderShape(decoderSpecFromConfig(cfg)).scoreTensors).toBe(7);
  });

  it('streams under auto, and refuses under never in one line, a model whose in-memory evaluation would outgrow the heap', async () => {
    // Residual streams kept across the blocks count in memory, not block by block (they live on the host there).
    const use = () => ({ batch: 8, seq: SEQ, streams: 200_000 });
    const auto = await openLM(dir, { streaming: 'auto', use });
    expect(auto.kind).toBe('streamed');
    await auto.dispose();
    const err = await errorOf(openLM(dir, { streaming: 'never', use }));
    expect(err.code).toBe('config');
    expect(err.message).toMatch(
      /^evaluating gemma2 in memory \(batches of 8 x 64 tokens, 200000 residual streams kept\) needs about \d+\.\d GiB, more than the wasm backend \(a 4 GiB heap at most\); streaming always \(or auto\) evaluates it block by block$/,
    );
    const small = await openLM(dir, { streaming: 'auto', use: () => ({ batch: 8, seq: SEQ, streams: LAYERS + 1 }) });
    expect(small.kind).toBe('memory');
    await small.dispose();
  });

  it('refuses in one line a batch whose one block outgrows the heap, in memory or block by block', async () => {
    const long = withContext(16384);
    const use = diagnosticsUse({ batch: 8, sequences: 8, pruningWindows: 8, layers: LAYERS, seq: 16384 });
    for (const streaming of ['auto', 'always'] as const) {
      const err = await errorOf(openLM(long, { streaming, use }));
      expect(err.message).toMatch(
        /^evaluating normlab-membound-ctx-\w+ block by block \(batches of 8 x 16384 tokens\) needs about \d+\.\d GiB, more than the wasm backend \(a 4 GiB heap at most\); use a smaller batch or seq$/,
      );
    }
  });

  it('sends a depth study’s model that needs over 1 GiB to its own process, a small one not', () => {
    const study = (models: string[], seq?: number) =>
      resolveConfig({ method: 'depth-study', models, ...(seq ? { seq } : {}), grad_windows: 0 }) as unknown as DepthStudyConfig;
    const long = withContext(16384);
    expect(isLargeModel(study([dir]), dir)).toBe(false);
    expect(isLargeModel(study([long], 4096), long)).toBe(true);
    expect(isLargeModel(study([long], 64), long)).toBe(false);
  });
});

describe('a wasm abort', () => {
  const abort = () => new WebAssembly.RuntimeError('Aborted(). Build with -sASSERTIONS for more info.');

  it('is one line saying the heap ran out and what runs the model', () => {
    const e = asNormLabError(abort());
    expect(e.code).toBe('backend');
    expect(e.message).toMatch(/^the wasm backend aborted: its heap \(4 GiB at most\) most likely ran out of memory; .*streaming: always/);
    expect(e.message).not.toContain('\n');
  });

  it('sends the in-process children after it to their own processes', async () => {
    registerJobKind({
      name: 'test-wasm-abort',
      title: 'aborts',
      description: 'throws what the wasm module throws when its heap runs out',
      schema: z.object({ method: z.literal('test-wasm-abort'), ...baseConfig }),
      resumable: false,
      run: () => Promise.reject(abort()),
    });
    const diagnose = {
      method: 'lns-diagnostics',
      model: dir,
      data: { source: 'moby-dick', tokenizer: 'byte' },
      seq: 16,
      sequences: 2,
      pruning_windows: 2,
      grad_windows: 0,
      batch: 2,
    };
    registerJobKind({
      name: 'test-abort-parent',
      title: 'children',
      description: 'one child that aborts, then one that diagnoses',
      schema: z.object({ method: z.literal('test-abort-parent'), ...baseConfig }),
      resumable: false,
      parent: true,
      run: async (ctx) => ({
        statuses: (
          await ctx.runChildren([
            { key: 'abort', name: 'abort', config: { method: 'test-wasm-abort' } },
            { key: 'diagnose', name: 'diagnose', config: diagnose },
          ])
        ).map((o) => o.status),
      }),
    });
    const q = tempQueue('normlab-abort-children-');
    const parent = await runToEnd(q, { method: 'test-abort-parent' });
    expect(parent.readSummary()!.statuses).toEqual(['failed', 'completed']);
    const [aborted, next] = q.project.children(parent.id);
    expect(aborted.record.error).toEqual({ code: 'backend', message: asNormLabError(abort()).message });
    // The executor's child process writes process.log into the run folder.
    expect(fs.existsSync(path.join(aborted.dir, 'process.log'))).toBe(false);
    expect(fs.existsSync(path.join(next.dir, 'process.log'))).toBe(true);
  }, 60_000);
});
