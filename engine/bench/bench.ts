/**
 * `normlab bench`: throughput of NormLab's real model code on each backend that loads.
 *
 * Rows per backend:
 *  - lm_train: training tokens/s of the bench LM (GPT-2 code, 4 layers, d 128, 4 heads, seq 128,
 *    batch 16, byte vocab, no biases, untied head, AdamW lr 1e-3) through `lmTrainStep`, in one
 *    process (the native kernels, where they load, split each op over every core); on
 *    wasm also with 2 wasm threads (a child process) and on tfjs's stock wasm kernels;
 *  - lm_train_data_parallel (wasm, cpu; 2+ cores): the same step data-parallel on 2 replicas (the
 *    main thread + a worker thread, engine/train/data-parallel.ts, `train.workers: 2`);
 *  - gpt2_forward: forward tokens/s of a GPT-2-small-shaped model (12 layers, d 768, 12 heads,
 *    vocab 50257), batch 1;
 *  - vit_forward: forward images/s of a DeiT-Tiny-shaped ViT (224 px, patch 16, d 192, 12 blocks);
 *  - ptq_calibration: seconds to quantize (W4/A4) that ViT with a few calibration images;
 *  - lct_step: seconds per training step of the `lct` job's own step function on the lct-study
 *    example's network (MLP, width 192, depth 4, latent 4x4x4, batch 128, full recipe) on random
 *    standardized latents (engine/methods/lct/bench-step.ts);
 *  - rss_flat: a tiny LM (2 layers, d 64, batch 8, seq 64) trained 1,000 steps (100 with --quick,
 *    10 on cpu) through `lmTrainStep`; tf.memory().numTensors and the process RSS (after a full
 *    GC) at every tenth of the run, and the RSS growth from the first to the last reading (MiB);
 *  - llama_3.2_1b_eval (wasm, not with --quick): a Llama-3.2-1B-shaped bf16 checkpoint evaluated
 *    by `eval-lm` against PyTorch f32, tokens/s and peak RSS of both (engine/bench/llm-eval.ts);
 *  - memory: peak RSS of the process and tf.memory() after the backend's rows;
 *  - webgpu only: matmul_gflops, gpt2_small_train (GPT-2 small training at seq 1024) and
 *    gpu_memory (see addGpuRows).
 * With --vs-torch the PyTorch twin (engine/bench/torch_lm_step.py) runs the same LM step right
 * before and right after NormLab's wasm (or first) LM rows, with 2 threads and with 1, and the ratio
 * to the faster setting's mean is printed; NormLab's number is the faster of lm_train and
 * lm_train_data_parallel (the table shows both).
 * The twin's JSON names the BLAS PyTorch runs on: Debian's python3-torch uses the system
 * libblas.so.3, the slow reference BLAS unless OpenBLAS is installed, and the table says so.
 * Human output is a table on stdout; --json prints one JSON object there instead. Progress goes to
 * stderr. NORMLAB_BENCH_ROWS=a,b limits the rows (lm_train and memory always run).
 */
import * as tf from '@tensorflow/tfjs-core';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { APP_ROOT, appPath, CLI_ENTRY } from '../core/app-paths.js';
import { currentBackend, initBackend, type BackendName } from '../backend/backend.js';
import { describeAdapter, probeAdapter } from '../backend/webgpu.js';
import { setWebgpuFusedKernels } from '../backend/fused-ops.js';
import { fastWasmKernelsEnabled, setFastWasmKernels } from '../backend/wasm-kernels.js';
import { GPT2, GPT2_DEFAULTS, type GPT2Config } from '../models/gpt2.js';
import { benchLlmEval } from './llm-eval.js';
import { benchMatmul, describeGpuMemory, GpuMemoryWatch, MATMUL_N, MATMUL_N_SOFTWARE } from './gpu-rows.js';
import { AdamW } from '../nn/optim.js';
import { seededUniform } from '../nn/random.js';
import { availableCores, DataParallelPool } from '../train/data-parallel.js';
import { disposeStep, lmTrainStep, readStep, type LMBatch, type LMStepTensors } from '../train/lm-step.js';

export interface BenchOptions {
  json: boolean;
  vsTorch: boolean;
  backends?: string[];
  quick?: boolean;
}

export interface BenchRow {
  backend: string;
  name: string;
  /** The measured value, or null when the row could not run (see note). */
  value: number | null;
  unit: string;
  detail?: string;
  note?: string;
  /** Row-specific measurements for --json (rss_flat: the checkpoints). */
  data?: Record<string, unknown>;
}

export interface TorchPeer {
  peer: string;
  /** torch's BLAS and the BLAS libraries it loaded, e.g. "generic (libblas.so.3.11.0)". */
  blas?: string;
  tokens_per_s: number;
  step_ms: number;
  params: number;
  threads: number;
}

/** The PyTorch twin at one thread setting: its runs before and after NormLab's LM rows. */
export interface TorchConfig {
  threads: number;
  runs: TorchPeer[];
  /** Mean of the runs. */
  tokens_per_s: number;
}

export interface BenchReport {
  rows: BenchRow[];
  torch?:
    | {
        script: string;
        /** torch.set_num_threads 2 (the twin's default) and 1 (OpenBLAS still threads its own matmuls). */
        configs: TorchConfig[];
        /** The faster configuration's mean: the number NormLab is compared with. */
        tokens_per_s: number;
        best_threads: number;
        /** The NormLab row the ratio uses: lm_train or lm_train_data_parallel, whichever is faster. */
        normlab_row?: string;
        ratio: number | null;
      }
    | { skipped: string };
  maxRssMiB: number;
  versions: Record<string, string>;
}

/** The bench LM: the twin of torch_lm_step.py, built from NormLab's GPT-2 code. */
export const BENCH_LM: GPT2Config = {
  ...GPT2_DEFAULTS,
  vocab_size: 256,
  n_positions: 128,
  n_embd: 128,
  n_layer: 4,
  n_head: 4,
  activation_function: 'gelu', // exact (erf) GELU, like torch.nn.functional.gelu
  tie_word_embeddings: false,
  normlab_bias: false,
};
export const BENCH_BATCH = 16;
export const BENCH_SEQ = 128;

const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`);

/** Deterministic token ids in [0, vocab). */
function tokens(n: number, vocab: number, seed: number): Int32Array {
  const out = new Int32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s % vocab;
  }
  return out;
}

/** Seconds `fn` takes; it ends by reading its last result, so device work is included. */
async function time(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

/** Run n LM steps; only the last one's loss is read (which waits for the device). */
async function lmSteps(n: number, step: () => LMStepTensors): Promise<number> {
  let loss = NaN;
  for (let i = 0; i < n; i++) {
    const r = step();
    if (i < n - 1) disposeStep(r);
    else loss = (await readStep(r)).loss;
  }
  return loss;
}

/** Training tokens/s of the bench LM on the current backend. */
export async function benchLmTrain(steps: number, warmup: number, batchSize = BENCH_BATCH): Promise<{ tokensPerS: number; stepMs: number; loss: number }> {
  return benchTrain(BENCH_LM, BENCH_SEQ, batchSize, steps, warmup);
}

/** Training tokens/s of a GPT-2 model of config `cfg` (random weights, fixed tokens) through `lmTrainStep`. */
async function benchTrain(
  cfg: GPT2Config,
  seq: number,
  batchSize: number,
  steps: number,
  warmup: number,
): Promise<{ tokensPerS: number; stepMs: number; loss: number }> {
  const model = new GPT2(cfg, 0);
  const opt = new AdamW(model.params, { weightDecay: 0.01 });
  const n = batchSize * seq;
  const batch: LMBatch = { x: tokens(n, cfg.vocab_size, 1), y: tokens(n, cfg.vocab_size, 2), batch: batchSize, seq };
  try {
    await lmSteps(warmup, () => lmTrainStep(model, opt, batch, 1e-3));
    let loss = NaN;
    const s = await time(async () => {
      loss = await lmSteps(steps, () => lmTrainStep(model, opt, batch, 1e-3));
    });
    return { tokensPerS: (n * steps) / s, stepMs: (s / steps) * 1000, loss };
  } finally {
    opt.dispose();
    model.dispose();
  }
}

/**
 * Training tokens/s of the bench LM trained data-parallel on `replicas` replicas (the main thread
 * + worker threads, engine/train/data-parallel.ts); the workers' start-up is not timed.
 */
export async function benchLmTrainDataParallel(
  replicas: number,
  steps: number,
  warmup: number,
  batchSize = BENCH_BATCH,
): Promise<{ tokensPerS: number; stepMs: number; loss: number }> {
  const model = new GPT2(BENCH_LM, 0);
  const opt = new AdamW(model.params, { weightDecay: 0.01 });
  const n = batchSize * BENCH_SEQ;
  const batch: LMBatch = { x: tokens(n, 256, 1), y: tokens(n, 256, 2), batch: batchSize, seq: BENCH_SEQ };
  let pool: DataParallelPool | null = null;
  try {
    pool = await DataParallelPool.start(model, replicas, tf.getBackend());
    for (let i = 0; i < warmup; i++) disposeStep(await pool.step(opt, batch, 1e-3));
    let loss = NaN;
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) loss = (await readStep(await pool.step(opt, batch, 1e-3))).loss;
    const s = (performance.now() - t0) / 1000;
    return { tokensPerS: (n * steps) / s, stepMs: (s / steps) * 1000, loss };
  } finally {
    await pool?.close();
    opt.dispose();
    model.dispose();
  }
}

/** Forward tokens/s of a GPT-2-small-shaped model (random weights), batch 1. */
async function benchGpt2Forward(seq: number, iters: number): Promise<number> {
  const model = new GPT2({ ...GPT2_DEFAULTS, n_positions: 1024 }, 0);
  try {
    const idx = tf.tensor2d(tokens(seq, GPT2_DEFAULTS.vocab_size, 3), [1, seq], 'int32');
    const run = () => tf.tidy(() => model.forward(idx)).dispose();
    run(); // warm-up (packs weights, grows the heap)
    const s = await time(async () => {
      for (let i = 0; i < iters; i++) {
        const y = tf.tidy(() => model.forward(idx));
        await y.data();
        y.dispose();
      }
    });
    idx.dispose();
    return (seq * iters) / s;
  } finally {
    model.dispose();
  }
}

/** Forward images/s of a DeiT-Tiny-shaped ViT (random weights). */
async function benchVitForward(batch: number, iters: number): Promise<number | string> {
  let vitMod: typeof import('../models/vit.js');
  try {
    vitMod = await import('../models/vit.js');
  } catch {
    return 'not available yet (engine/models/vit.ts)';
  }
  const cfg = {
    ...vitMod.VIT_DEFAULTS,
    img_size: 224,
    patch_size: 16,
    in_chans: 3,
    num_classes: 1000,
    embed_dim: 192,
    depth: 12,
    num_heads: 3,
  };
  const model = new vitMod.ViT(cfg, 0);
  try {
    const images = seededUniform([batch, 224, 224, 3], 0, 1, 4) as tf.Tensor4D;
    tf.tidy(() => model.forward(images)).dispose();
    const s = await time(async () => {
      for (let i = 0; i < iters; i++) {
        const y = tf.tidy(() => model.forward(images));
        await y.data();
        y.dispose();
      }
    });
    images.dispose();
    return (batch * iters) / s;
  } finally {
    model.dispose();
  }
}

/** Seconds to calibrate W4/A4 PTQ (RepQ-style: tanq softmax, median LN reparam) of a DeiT-Tiny-shaped ViT. */
async function benchPtqCalibration(images: number): Promise<number | string> {
  let ptq: typeof import('../methods/ptq/ptq.js');
  let vitMod: typeof import('../models/vit.js');
  try {
    ptq = await import('../methods/ptq/ptq.js');
    vitMod = await import('../models/vit.js');
  } catch {
    return 'not available yet (engine/methods/ptq/ptq.ts)';
  }
  const model = new vitMod.ViT({ ...vitMod.VIT_DEFAULTS, embed_dim: 192, depth: 12, num_heads: 3 }, 0);
  const calib = seededUniform([images, 224, 224, 3], 0, 1, 5) as tf.Tensor4D;
  try {
    let q: { dispose(): void } | null = null;
    const s = await time(async () => {
      q = await ptq.quantizeViT(model, calib, { wBits: 4, aBits: 4, softmax: 'tanq', lnReparam: 'median' });
    });
    (q as { dispose(): void } | null)?.dispose();
    return s;
  } finally {
    calib.dispose();
    model.dispose();
  }
}

function rssMiB(): number {
  return process.memoryUsage().rss / 2 ** 20;
}

/** The rss_flat row's LM: the bench LM's shape, smaller. */
export const RSS_FLAT_LM: GPT2Config = { ...BENCH_LM, n_positions: 64, n_embd: 64, n_layer: 2, n_head: 4 };
const RSS_FLAT_BATCH = 8;
const RSS_FLAT_SEQ = 64;

export interface RssPoint {
  step: number;
  tensors: number;
  rssMiB: number;
}

/** V8's full garbage collection, made callable at run time (as `node --expose-gc` would). */
function fullGc(): () => void {
  v8.setFlagsFromString('--expose_gc');
  return vm.runInNewContext('gc') as () => void;
}

/**
 * Trains the rss_flat LM `steps` steps through `lmTrainStep` (a fresh batch of tokens each step) and
 * records tf.memory().numTensors and the process RSS after the steps in `at`. Each RSS reading
 * follows a full garbage collection: without it the collector's sawtooth (~100 MiB here) hides
 * any trend.
 */
export async function benchRssFlat(steps: number, at: number[]): Promise<{ points: RssPoint[]; stepMs: number; loss: number }> {
  const gc = fullGc();
  const model = new GPT2(RSS_FLAT_LM, 0);
  const opt = new AdamW(model.params, { weightDecay: 0.01 });
  const n = RSS_FLAT_BATCH * RSS_FLAT_SEQ;
  const points: RssPoint[] = [];
  let loss = NaN;
  let trainMs = 0;
  try {
    for (let step = 1; step <= steps; step++) {
      const batch: LMBatch = { x: tokens(n, 256, 2 * step), y: tokens(n, 256, 2 * step + 1), batch: RSS_FLAT_BATCH, seq: RSS_FLAT_SEQ };
      const t0 = performance.now();
      loss = (await readStep(lmTrainStep(model, opt, batch, 1e-3))).loss;
      trainMs += performance.now() - t0;
      if (at.includes(step)) {
        gc();
        points.push({ step, tensors: tf.memory().numTensors, rssMiB: rssMiB() });
      }
    }
    return { points, stepMs: trainMs / steps, loss };
  } finally {
    opt.dispose();
    model.dispose();
  }
}

function torchScript(): string | null {
  const script = appPath('engine', 'bench', 'torch_lm_step.py');
  return fs.existsSync(script) ? script : null;
}

function pythonExe(): string {
  if (process.env.NORMLAB_PYTHON) return process.env.NORMLAB_PYTHON;
  return fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'; // Debian's python3-torch lives there
}

/** Run the PyTorch twin once; a string is the reason it could not run. */
function runTorch(script: string, steps: number, warmup: number, threads = 2): TorchPeer | string {
  const r = spawnSync(pythonExe(), [script, '--steps', String(steps), '--warmup', String(warmup), '--threads', String(threads)], {
    encoding: 'utf8',
    timeout: 15 * 60_000,
  });
  if (r.error) return `python3 could not start (${r.error.message})`;
  if (r.status !== 0) {
    const err = (r.stderr || '').trim().split('\n').pop() ?? '';
    return /No module named .?torch/.test(r.stderr) ? 'PyTorch is not installed (python3-torch)' : `the PyTorch twin failed: ${err}`;
  }
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as TorchPeer;
  } catch {
    return `the PyTorch twin printed no result`;
  }
}

function fmt(v: number | null): string {
  if (v === null) return '-';
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  if (Math.abs(v) >= 1 || v === 0) return v.toFixed(2);
  return v.toPrecision(3); // e.g. 0.0734 s/step
}

/** NORMLAB_BENCH_ROWS=lm_train,vit_forward runs only those rows (lm_train and memory always run). */
function want(row: string): boolean {
  const only = process.env.NORMLAB_BENCH_ROWS;
  return (
    !only ||
    only
      .split(',')
      .map((r) => r.trim())
      .includes(row)
  );
}

/** The wasm LM row in a child process started with `threads` wasm threads (a process starts wasm once). */
function lmTrainThreaded(threads: number): Omit<BenchRow, 'backend'> {
  const name = 'lm_train_threads';
  const r = spawnSync(process.execPath, [CLI_ENTRY, 'bench', '--json', '--backend', 'wasm'], {
    encoding: 'utf8',
    env: { ...process.env, NORMLAB_WASM_THREADS: String(threads), NORMLAB_BENCH_ROWS: 'lm_train' },
    timeout: 15 * 60_000,
    maxBuffer: 64 * 2 ** 20,
  });
  try {
    const rep = JSON.parse((r.stdout ?? '').trim().split('\n').pop() ?? '') as BenchReport;
    const row = rep.rows.find((x) => x.name === 'lm_train' && x.backend === 'wasm');
    if (row && row.value !== null) return { name, value: row.value, unit: row.unit, detail: row.detail };
  } catch {
    // reported below
  }
  return { name, value: null, unit: 'tokens/s', note: `the ${threads}-thread child run failed (exit ${r.status})` };
}

/**
 * The webgpu-only rows: matmul GFLOP/s (4096^2 on a GPU, 256^2 on a software adapter, saying so),
 * gpt2_small_train: GPT-2 small (124M) training tokens/s at seq 1024, batch 4 (seq 16, batch 1 on a
 * software adapter; on a GPU also on tfjs's stock kernels, to show what the WGSL kernels give),
 * and gpu_memory: the most device memory tfjs had allocated over the backend's rows (its buffer
 * pool keeps freed buffers, so the allocation after a row is that row's peak) and the live
 * memory left behind, which must be none.
 */
async function addGpuRows(add: (row: Omit<BenchRow, 'backend'>) => BenchRow, watch: GpuMemoryWatch, quick: boolean): Promise<void> {
  const software = currentBackend()?.adapter?.software ?? false;
  if (want('matmul_gflops')) {
    const n = software ? MATMUL_N_SOFTWARE : MATMUL_N;
    const iters = software || quick ? 2 : 10;
    log(`webgpu: matmul ${n}x${n} (${iters} products)`);
    const gflops = await benchMatmul(n, iters);
    add({
      name: 'matmul_gflops',
      value: gflops,
      unit: 'GFLOP/s',
      detail: `float32 ${n}x${n} @ ${n}x${n}, ${iters} products${software ? `; a software adapter, so ${n}^2 instead of ${MATMUL_N}^2` : ''}`,
    });
  }
  if (want('gpt2_small_train')) {
    // NORMLAB_GPT2_SEQ / NORMLAB_GPT2_BATCH set the shape (engine/bench/gpu/run-on-gpu.sh passes the twin's).
    const seq = Number(process.env.NORMLAB_GPT2_SEQ) || (software ? 16 : 1024);
    const batch = Number(process.env.NORMLAB_GPT2_BATCH) || (software ? 1 : 4);
    const steps = software || quick ? 1 : 5;
    log(`webgpu: GPT-2 small training (seq ${seq}, batch ${batch}, ${steps} steps)`);
    try {
      const r = await benchTrain({ ...GPT2_DEFAULTS }, seq, batch, steps, 1);
      add({
        name: 'gpt2_small_train',
        value: r.tokensPerS,
        unit: 'tokens/s',
        detail: `${r.stepMs.toFixed(0)} ms/step, 124M params, B ${batch} T ${seq}, AdamW, loss ${r.loss.toFixed(3)}${software && seq < 1024 ? `; a software adapter, so seq ${seq} instead of 1024` : ''}`,
      });
    } catch (err) {
      add({ name: 'gpt2_small_train', value: null, unit: 'tokens/s', note: err instanceof Error ? err.message.split('\n')[0] : String(err) });
    }
    // Whether NormLab's WGSL kernels pay: the same step on tfjs's stock webgpu kernels (GPU only).
    if (!software && !quick && want('gpt2_small_train_stock_kernels')) {
      setWebgpuFusedKernels(false);
      try {
        log(`webgpu: GPT-2 small training on the stock tfjs kernels (seq ${seq}, batch ${batch})`);
        const r = await benchTrain({ ...GPT2_DEFAULTS }, seq, batch, steps, 1);
        add({
          name: 'gpt2_small_train_stock_kernels',
          value: r.tokensPerS,
          unit: 'tokens/s',
          detail: `${r.stepMs.toFixed(0)} ms/step, B ${batch} T ${seq}, tfjs stock webgpu kernels`,
        });
      } catch (err) {
        add({ name: 'gpt2_small_train_stock_kernels', value: null, unit: 'tokens/s', note: err instanceof Error ? err.message.split('\n')[0] : String(err) });
      } finally {
        setWebgpuFusedKernels(true);
      }
    }
  }
  const mem = watch.report();
  add({
    name: 'gpu_memory',
    value: mem.peakAllocatedMiB,
    unit: 'MiB peak allocated',
    detail: `live between rows at most ${mem.peakLiveMiB.toFixed(1)} MiB; live growth over the rows ${mem.liveGrowthMiB.toFixed(1)} MiB; now ${describeGpuMemory(mem.now)}`,
    data: { peak_allocated_mib: mem.peakAllocatedMiB, peak_live_mib: mem.peakLiveMiB, live_growth_mib: mem.liveGrowthMiB },
  });
}

/** Throws the reason when webgpu has no adapter or only a software one. */
async function hardwareAdapter(): Promise<void> {
  const probe = await probeAdapter();
  if ('reason' in probe) throw new Error(probe.reason);
  if (probe.adapter.software) throw new Error(`only a software adapter (${describeAdapter(probe.adapter)}); --backend webgpu benches it`);
}

export async function runBench(opts: BenchOptions): Promise<BenchReport> {
  const quick = Boolean(opts.quick);
  const backends = (opts.backends ?? ['wasm', 'cpu', 'tensorflow', 'webgpu']) as BackendName[];
  const rows: BenchRow[] = [];
  let torch: BenchReport['torch'];
  const torchConfigs: TorchConfig[] = [2, 1].map((threads) => ({ threads, runs: [], tokens_per_s: 0 }));
  let torchSkip: string | null = null;
  const script = opts.vsTorch ? torchScript() : null;
  if (opts.vsTorch && !script) torchSkip = 'engine/bench/torch_lm_step.py is missing';
  const torchSteps = quick ? 2 : 10;
  /** One run of the twin at each thread setting. */
  const torchOnce = () => {
    for (const cfg of torchConfigs) {
      if (!opts.vsTorch || torchSkip || !script) return;
      log(`PyTorch twin (LM training step, ${cfg.threads} thread${cfg.threads > 1 ? 's' : ''})`);
      const r = runTorch(script, torchSteps, quick ? 1 : 2, cfg.threads);
      if (typeof r === 'string') torchSkip = r;
      else cfg.runs.push(r);
    }
  };
  let lmRowForRatio: BenchRow | null = null;

  for (const name of backends) {
    try {
      // Unasked, webgpu is benched on a hardware GPU only, as `auto` would use it.
      if (name === 'webgpu' && !opts.backends) await hardwareAdapter();
      await initBackend(name);
    } catch (err) {
      rows.push({ backend: name, name: 'load', value: null, unit: '', note: err instanceof Error ? err.message : String(err) });
      continue;
    }
    const detail = tf.getBackend() === 'wasm' || tf.getBackend() === 'webgpu' ? currentBackend()?.detail : undefined;
    const gpuWatch = name === 'webgpu' ? new GpuMemoryWatch() : null;
    // The pure-JS cpu backend and a software GPU adapter (slower still) get the small shapes.
    const slow = name === 'cpu' || (name === 'webgpu' && (currentBackend()?.adapter?.software ?? false));
    const add = (row: Omit<BenchRow, 'backend'>) => {
      gpuWatch?.sample();
      rows.push({ backend: name, ...row });
      log(`${name} ${row.name}: ${row.value === null ? row.note : `${fmt(row.value)} ${row.unit}`}`);
      return rows[rows.length - 1];
    };

    // LM training: the number compared with PyTorch.
    // The pure-JS cpu backend takes minutes a step: one timed step, no warm-up.
    const steps = slow ? 1 : quick ? 2 : 10;
    const warm = slow ? 0 : quick ? 1 : 2;
    const first = lmRowForRatio === null;
    if (first) torchOnce();
    // The pure-JS cpu backend needs minutes per full step: it trains on batch 4 (tokens/s stay comparable).
    const B = slow ? 4 : BENCH_BATCH;
    log(`${name}: LM training (${steps} steps, batch ${B})`);
    const lm = await benchLmTrain(steps, warm, B);
    const row = add({
      name: 'lm_train',
      value: lm.tokensPerS,
      unit: 'tokens/s',
      detail: `${lm.stepMs.toFixed(0)} ms/step, B ${B} T ${BENCH_SEQ}${detail ? `, ${detail}` : ''}`,
    });
    // Data-parallel training over worker threads (train.workers): one replica per core, at most 2.
    const cores = availableCores();
    let dpRow: BenchRow | null = null;
    if ((name === 'wasm' || name === 'cpu') && cores > 1 && want('lm_train_data_parallel')) {
      const replicas = Math.min(2, cores);
      log(`${name}: LM training, data-parallel on ${replicas} replicas (${steps} steps, batch ${B})`);
      try {
        const dp = await benchLmTrainDataParallel(replicas, steps, warm, B);
        dpRow = add({
          name: 'lm_train_data_parallel',
          value: dp.tokensPerS,
          unit: 'tokens/s',
          detail: `${dp.stepMs.toFixed(0)} ms/step, ${replicas} replicas (train.workers ${replicas}), B ${B} T ${BENCH_SEQ}`,
        });
      } catch (err) {
        add({ name: 'lm_train_data_parallel', value: null, unit: 'tokens/s', note: err instanceof Error ? err.message.split('\n')[0] : String(err) });
      }
    }
    if (first) {
      // The headline NormLab number is the faster of the one-thread and the data-parallel rows.
      lmRowForRatio = dpRow && dpRow.value !== null && dpRow.value > (row.value ?? 0) ? dpRow : row;
      torchOnce();
    }
    if (name === 'wasm' && !quick && want('lm_train_threads') && (currentBackend()?.detail ?? '').includes(' 1 wasm thread')) {
      log('wasm: LM training with 2 wasm threads (child process)');
      add(lmTrainThreaded(2));
    }
    if (name === 'wasm' && !quick && want('lm_train_stock_kernels') && fastWasmKernelsEnabled()) {
      setFastWasmKernels(false);
      try {
        log('wasm: LM training on the stock tfjs kernels (1 step)');
        const stock = await benchLmTrain(1, 1);
        add({
          name: 'lm_train_stock_kernels',
          value: stock.tokensPerS,
          unit: 'tokens/s',
          detail: `${stock.stepMs.toFixed(0)} ms/step, tfjs stock wasm kernels`,
        });
      } finally {
        setFastWasmKernels(true);
      }
    }

    const seq = slow ? 16 : quick ? 32 : 128;
    const iters = quick || slow ? 1 : 3;
    if (want('gpt2_small_forward')) log(`${name}: GPT-2-small forward (seq ${seq})`);
    if (want('gpt2_small_forward'))
      add({ name: 'gpt2_small_forward', value: await benchGpt2Forward(seq, iters), unit: 'tokens/s', detail: `batch 1, seq ${seq}, ${iters} iters` });

    const vb = quick || slow ? 1 : 4;
    if (want('vit_forward')) {
      log(`${name}: ViT forward`);
      const vit = await benchVitForward(vb, quick || slow ? 1 : 2);
      add(
        typeof vit === 'number'
          ? { name: 'vit_forward', value: vit, unit: 'images/s', detail: `DeiT-Tiny shape (224 px, d 192, 12 blocks), batch ${vb}` }
          : { name: 'vit_forward', value: null, unit: 'images/s', note: vit },
      );
    }

    if (want('lct_step')) {
      log(`${name}: LCT training step (lct-study network)`);
      try {
        const { benchLctStep } = await import('../methods/lct/bench-step.js');
        const r = await benchLctStep({ quick: quick || slow });
        add({ name: 'lct_step', value: r.msPerStep / 1000, unit: 's/step', detail: `${r.msPerStep.toFixed(1)} ms/step, ${r.detail}` });
      } catch (err) {
        add({ name: 'lct_step', value: null, unit: 's/step', note: err instanceof Error ? err.message.split('\n')[0] : String(err) });
      }
    }
    if (want('rss_flat')) {
      const total = slow ? 10 : quick ? 100 : 1000; // the pure-JS cpu backend takes ~9 s a step here
      const at = Array.from({ length: 10 }, (_, i) => ((i + 1) * total) / 10);
      log(`${name}: RSS over ${total} steps of a tiny LM (2 layers, d 64, B ${RSS_FLAT_BATCH} T ${RSS_FLAT_SEQ})`);
      const r = await benchRssFlat(total, at);
      const a = r.points[0];
      const z = r.points[r.points.length - 1];
      const shown = [a, r.points[Math.floor(r.points.length / 2) - 1], z];
      const pts = shown.map((p) => `step ${p.step}: ${p.tensors} tensors, ${p.rssMiB.toFixed(1)} MiB`).join('; ');
      add({
        name: 'rss_flat',
        value: z.rssMiB - a.rssMiB,
        unit: 'MiB RSS growth',
        detail: `from step ${a.step} to ${z.step}, each after a full GC; ${pts}; ${r.stepMs.toFixed(1)} ms/step`,
        data: { points: r.points, tensor_growth: z.tensors - a.tensors, step_ms: r.stepMs, loss: r.loss },
      });
    }
    if (want('ptq_calibration')) {
      const n = quick || slow ? 1 : 4;
      log(`${name}: PTQ calibration (${n} images)`);
      const ptq = await benchPtqCalibration(n);
      add(
        typeof ptq === 'number'
          ? { name: 'ptq_calibration', value: ptq, unit: 's', detail: `W4/A4, tanq softmax, median LN reparam, DeiT-Tiny shape, ${n} images` }
          : { name: 'ptq_calibration', value: null, unit: 's', note: ptq },
      );
    }

    // A real-size Hugging Face model (minutes; not with --quick): NormLab's eval-lm vs PyTorch f32.
    if (name === 'wasm' && !quick && want('llama_3.2_1b_eval')) add(benchLlmEval(pythonExe(), log));

    if (name === 'webgpu') await addGpuRows(add, gpuWatch!, quick);

    const mem = tf.memory() as tf.MemoryInfo & { numBytesInWASMHeap?: number };
    add({
      name: 'memory',
      value: rssMiB(),
      unit: 'MiB RSS',
      detail: `peak RSS so far ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB; tf ${mem.numTensors} tensors, ${(mem.numBytes / 2 ** 20).toFixed(1)} MiB`,
    });
  }

  if (opts.vsTorch) {
    const ran = torchConfigs.filter((c) => c.runs.length > 0);
    if (ran.length === 0) torch = { skipped: torchSkip ?? 'the PyTorch twin did not run' };
    else if (script) {
      for (const c of ran) c.tokens_per_s = c.runs.reduce((a, r) => a + r.tokens_per_s, 0) / c.runs.length;
      const best = ran.reduce((a, c) => (c.tokens_per_s > a.tokens_per_s ? c : a));
      const ours = (lmRowForRatio as BenchRow | null)?.value ?? null;
      torch = {
        script: path.relative(APP_ROOT, script),
        configs: ran,
        tokens_per_s: best.tokens_per_s,
        best_threads: best.threads,
        normlab_row: (lmRowForRatio as BenchRow | null)?.name,
        ratio: ours === null ? null : ours / best.tokens_per_s,
      };
    }
  }

  const report: BenchReport = {
    rows,
    torch,
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
    versions: { tfjs: tf.version_core, node: process.versions.node },
  };
  if (opts.json) {
    process.stdout.write(JSON.stringify(report) + '\n');
  } else {
    const lines = [['backend', 'bench', 'value', 'unit', 'detail']];
    for (const r of rows) lines.push([r.backend, r.name, fmt(r.value), r.unit, r.note ?? r.detail ?? '']);
    const w = lines[0].map((_, c) => Math.max(...lines.map((l) => (c < 4 ? l[c].length : 0))));
    for (const l of lines) process.stdout.write(l.map((s, c) => (c < 4 ? s.padEnd(w[c]) : s)).join('  ') + '\n');
    if (torch && 'skipped' in torch) process.stdout.write(`vs PyTorch: skipped (${torch.skipped})\n`);
    else if (torch) {
      const peer = torch.configs[0].runs[0];
      for (const c of torch.configs) {
        const runs = c.runs.map((r) => r.tokens_per_s).join(', ');
        process.stdout.write(`PyTorch twin, ${peer.peer}, ${c.threads} thread${c.threads > 1 ? 's' : ''}: ${fmt(c.tokens_per_s)} tokens/s (runs: ${runs})\n`);
      }
      const row = lmRowForRatio as BenchRow | null;
      process.stdout.write(
        `vs PyTorch (its faster setting, ${torch.best_threads} thread${torch.best_threads > 1 ? 's' : ''}): ` +
          `NormLab ${row ? `${row.backend} ${row.name} ${fmt(row.value)}` : '-'} tokens/s; ratio ${torch.ratio === null ? '-' : torch.ratio.toFixed(2)}x\n`,
      );
      const blas = peer.blas ?? '';
      if (blas && !/openblas|mkl|blis|atlas|accelerate/i.test(blas)) {
        process.stdout.write(
          `note: this PyTorch runs its matmuls on the reference BLAS (${blas}); with OpenBLAS (Debian libopenblas0) it is several times faster\n`,
        );
      } else if (blas) process.stdout.write(`PyTorch's BLAS: ${blas}\n`);
    }
    process.stdout.write(`peak RSS ${report.maxRssMiB.toFixed(0)} MiB\n`);
  }
  return report;
}
