/**
 * Data-parallel LM training over Node worker threads: N replicas of one model, each computing the
 * loss and gradients of its shard of the batch rows. The main thread is replica 0 (it trains the
 * job's own model, which stays the source of truth for evaluation, checkpoints and resume); every
 * other replica is a worker thread running its own tfjs backend (./data-parallel-worker.ts).
 *
 * With gradient accumulation (k micro-batches per step) every micro-batch is sharded the same way
 * and each replica receives its shard of all k at once: it accumulates their mean gradient itself
 * (./accumulate.ts), so a step still costs one message each way per replica.
 *
 * One step:
 *  1. the main thread posts each worker its shard (token ids) plus the current trainable
 *     parameters (one transferable Float32Array);
 *  2. it computes its own shard's loss and gradients meanwhile (`lmLossAndGrads`);
 *  3. it averages the gradients weighted by shard rows (the mean cross-entropy of the whole batch
 *     is the row-weighted mean of the shards' means, so the averaged gradient is the full batch's);
 *  4. `lmApplyGrads` then logs per-block norms, clips and applies AdamW exactly as one process does.
 *
 * Parameters are broadcast rather than averaged gradients replayed on every replica: the two
 * messages have the same size (one float per parameter), but broadcasting needs no optimizer state
 * in the workers (no 2x parameter memory of AdamW moments per replica, nothing to restore on
 * resume) and replicas cannot drift apart, while replaying would also cost each worker an AdamW
 * pass per step.
 *
 * A worker that dies, throws or stops answering (see STUCK_FACTOR) fails the step with one line;
 * `close()` terminates every worker.
 */
import * as tf from '@tensorflow/tfjs-core';
import os from 'node:os';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { nativeThreads, setNativeThreads } from '../backend/native.js';
import { appPath, IN_BUNDLE } from '../core/app-paths.js';
import { fail, NormLabError } from '../core/errors.js';
import type { CausalLM } from '../models/lm.js';
import type { AdamW } from '../nn/optim.js';
import { lmAccumulatedLossAndGrads, lmApplyGrads, type LMBatch, type LMStepTensors } from './lm-step.js';

/** Main → worker messages. */
export type ToWorker =
  | { type: 'init'; backend: string; config: Record<string, unknown>; names: string[]; shapes: number[][]; data: Float32Array }
  | { type: 'step'; id: number; params: Float32Array; x: Int32Array; y: Int32Array; rows: number; seq: number; microBatches: number }
  | { type: 'crash' }
  | { type: 'hang' };
/** Worker → main messages. */
export type FromWorker = { type: 'ready' } | { type: 'grads'; id: number; loss: number; grads: Float32Array } | { type: 'error'; message: string };

/** Every worker thread any pool started and has not yet seen exit (tests check it drops to zero). */
const live = new Set<Worker>();
export function liveDataParallelWorkers(): number {
  return live.size;
}

/** Test hook: terminate one live worker thread (as if it died), whichever pool owns it. */
export async function killOneWorkerForTest(): Promise<boolean> {
  const w = live.values().next().value;
  if (!w) return false;
  await w.terminate();
  return true;
}

/** Cores this process may use. */
export function availableCores(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/**
 * Replicas to use for `train.workers` (0 = auto). Auto picks one replica where NormLab's native
 * kernels run on several threads: they already split every operation over the cores, and on
 * 2 cores one such process trained the 10.7 GFLOP bench step in 96 ms against 110 ms for two
 * replicas (5.3 GFLOP: 58 vs 69 ms; 2.7: 31 vs 47). Otherwise one replica per core, at most 2,
 * on the single-threaded backends (wasm, cpu) when each shard keeps at least 2 rows, a step is at
 * least 2 GFLOP (6 · params · tokens) and the run at least 100 GFLOP; else 1. Measured on 2 cores
 * with the wasm kernels: a 0.4 GFLOP step gained 10% (per-op overhead does not shrink with the
 * shard), a 2.9 GFLOP step 1.5x, the 10.7 GFLOP bench step 1.7x. Starting a worker takes about a
 * second.
 */
export function resolveWorkers(requested: number, backend: string, batch: number, seq: number, params: number, steps: number): number {
  if (requested >= 1) return Math.min(requested, batch);
  if (backend !== 'wasm' && backend !== 'cpu') return 1;
  if (backend === 'wasm' && nativeThreads() > 1) return 1;
  const n = Math.min(2, availableCores());
  const stepFlops = 6 * params * seq * batch;
  return n > 1 && batch >= 2 * n && stepFlops >= 2e9 && stepFlops * steps >= 100e9 ? n : 1;
}

/**
 * A worker is stuck when it has not answered within STUCK_FACTOR times the slowest step so far,
 * and never sooner than MIN_TIMEOUT_MS (which also bounds `init`, before any step has run).
 */
const STUCK_FACTOR = 20;
const MIN_TIMEOUT_MS = 120_000;

/** Rows of each shard: as equal as possible, the first ones one larger when batch % n ≠ 0. */
export function shardRows(batch: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.floor(batch / n) + (i < batch % n ? 1 : 0));
}

/** Rows [start, start + rows) of each of the k micro-batches of `micro` rows, concatenated in order. */
function shardOf(ids: Int32Array, k: number, micro: number, start: number, rows: number, seq: number): Int32Array {
  const out = new Int32Array(k * rows * seq);
  for (let m = 0; m < k; m++) out.set(ids.subarray((m * micro + start) * seq, (m * micro + start + rows) * seq), m * rows * seq);
  return out;
}

/**
 * The worker's entry: from source, a plain-JS file that registers tsx and loads
 * ./data-parallel-worker.ts (no build step); in the portable bundle, that worker bundled on its own.
 */
const workerUrl = IN_BUNDLE ? pathToFileURL(appPath('data-parallel-worker.mjs')) : new URL('./data-parallel-boot.mjs', import.meta.url);

interface Pending {
  resolve: (m: FromWorker) => void;
  reject: (e: Error) => void;
}

class Replica {
  readonly worker: Worker;
  private pending: Pending | null = null;
  private dead: Error | null = null;
  private exited: Promise<void>;

  constructor(readonly index: number) {
    this.worker = new Worker(workerUrl, {
      env: { ...process.env, NORMLAB_WASM_THREADS: '1', NORMLAB_NATIVE_THREADS: '1' }, // one core per replica
      stderr: false,
    });
    live.add(this.worker);
    this.worker.on('message', (m: FromWorker) => {
      const p = this.pending;
      this.pending = null;
      if (!p) return;
      if (m.type === 'error') p.reject(this.die(`data-parallel worker ${this.index} failed: ${m.message}`));
      else p.resolve(m);
    });
    this.worker.on('error', (err) => this.reject(`data-parallel worker ${this.index} crashed: ${firstLine(err)}`));
    this.exited = new Promise((resolve) =>
      this.worker.once('exit', (code) => {
        live.delete(this.worker);
        this.reject(`data-parallel worker ${this.index} exited unexpectedly (code ${code})`);
        resolve();
      }),
    );
  }

  private die(message: string): Error {
    if (!this.dead) this.dead = new NormLabError('internal', message);
    return this.dead;
  }

  private reject(message: string): void {
    const err = this.die(message);
    const p = this.pending;
    this.pending = null;
    p?.reject(err);
  }

  /**
   * Post a message and wait for the worker's one reply. A worker silent for `timeoutMs` counts as
   * stuck: the request fails with one line and the worker is stopped.
   */
  request(msg: ToWorker, transfer: ArrayBuffer[], timeoutMs: number): Promise<FromWorker> {
    if (this.dead) return Promise.reject(this.dead);
    if (this.pending) return Promise.reject(new NormLabError('internal', `data-parallel worker ${this.index} is busy`));
    return new Promise<FromWorker>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.reject(`data-parallel worker ${this.index} did not answer within ${(timeoutMs / 1000).toFixed(0)} s and was stopped`);
        void this.worker.terminate();
      }, timeoutMs);
      const settle =
        <T>(f: (v: T) => void) =>
        (v: T) => {
          clearTimeout(timer);
          f(v);
        };
      this.pending = { resolve: settle(resolve), reject: settle(reject) };
      this.worker.postMessage(msg, transfer);
    });
  }

  async terminate(): Promise<void> {
    this.die(`data-parallel worker ${this.index} was stopped`);
    await this.worker.terminate();
    await this.exited;
  }
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0].slice(0, 300);
}

/** The values of `tensors` concatenated, in order, into one buffer of `total` floats. */
async function flatten(tensors: tf.Tensor[], total: number): Promise<Float32Array> {
  const out = new Float32Array(total);
  let o = 0;
  for (const t of tensors) {
    const d = (await t.data()) as Float32Array;
    out.set(d, o);
    o += d.length;
  }
  return out;
}

export class DataParallelPool {
  private replicas: Replica[] = [];
  private readonly names: string[];
  private readonly sizes: number[];
  private readonly total: number;
  private nextId = 1;
  private closed = false;

  /** The native kernels' thread count before the pool started (restored by close). */
  private nativeThreadsBefore = 1;
  /** The slowest step so far (ms): a worker silent for STUCK_FACTOR times as long is stuck. */
  private slowestStepMs = 0;
  private minTimeoutMs = MIN_TIMEOUT_MS;

  private constructor(
    private readonly model: CausalLM,
    readonly size: number,
  ) {
    this.names = model.params.trainable().map((v) => model.params.nameOf(v));
    this.sizes = model.params.trainable().map((v) => v.size);
    this.total = this.sizes.reduce((a, b) => a + b, 0);
  }

  /**
   * Start `replicas - 1` workers, each holding a copy of `model` (its config and every parameter,
   * trainable or not, sent once). The main thread is replica 0.
   */
  static async start(model: CausalLM, replicas: number, backend: string, opts: { minTimeoutMs?: number } = {}): Promise<DataParallelPool> {
    if (!Number.isInteger(replicas) || replicas < 2) fail('config', `data-parallel training needs at least 2 replicas, got ${replicas}`);
    for (const [name, v] of model.params.vars)
      if (v.dtype !== 'float32') fail('model', `data-parallel training needs float32 parameters; ${name} is ${v.dtype}`);
    const pool = new DataParallelPool(model, replicas);
    pool.minTimeoutMs = opts.minTimeoutMs ?? MIN_TIMEOUT_MS;
    // Each replica takes one core: the native kernels' own threads would compete with them.
    pool.nativeThreadsBefore = setNativeThreads(1);
    try {
      for (let i = 1; i < replicas; i++) pool.replicas.push(new Replica(i));
      const all = [...model.params.vars];
      const names = all.map(([n]) => n);
      const shapes = all.map(([, v]) => v.shape);
      const total = all.reduce((a, [, v]) => a + v.size, 0);
      await Promise.all(
        pool.replicas.map(async (r) => {
          const data = await flatten(
            all.map(([, v]) => v),
            total,
          );
          return r.request({ type: 'init', backend, config: model.hfConfig(), names, shapes, data }, [data.buffer as ArrayBuffer], pool.minTimeoutMs);
        }),
      );
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  /**
   * One data-parallel optimizer step on `batch` (all rows of all `microBatches` micro-batches); the
   * same result as `lmTrainStep`.
   */
  async step(opt: AdamW, batch: LMBatch, lr: number, opts: { clip?: number; layerGradNorms?: boolean; microBatches?: number } = {}): Promise<LMStepTensors> {
    if (this.closed) fail('state', 'the data-parallel pool is closed');
    const { seq } = batch;
    const nMicro = opts.microBatches ?? 1;
    const micro = batch.batch / nMicro;
    if (!Number.isInteger(micro)) fail('config', `${batch.batch} rows do not split into ${nMicro} equal micro-batches`);
    const rows = shardRows(micro, this.size);
    const starts = rows.map((_, i) => rows.slice(0, i).reduce((a, b) => a + b, 0));
    const vars = this.model.params.trainable();
    const id = this.nextId++;
    const started = performance.now();
    const current = this.replicas.length ? await flatten(vars, this.total) : null;
    const replies = this.replicas.map((r, k) => {
      const i = k + 1;
      const params = k === this.replicas.length - 1 ? current! : current!.slice(); // each buffer moves to its worker
      const x = shardOf(batch.x, nMicro, micro, starts[i], rows[i], seq);
      const y = shardOf(batch.y, nMicro, micro, starts[i], rows[i], seq);
      return r.request(
        { type: 'step', id, params, x, y, rows: rows[i] * nMicro, seq, microBatches: nMicro },
        [params.buffer as ArrayBuffer, x.buffer as ArrayBuffer, y.buffer as ArrayBuffer],
        Math.max(this.minTimeoutMs, STUCK_FACTOR * this.slowestStepMs),
      );
    });
    // A rejection must not go unhandled while the main thread computes its own shard.
    for (const p of replies) p.catch(() => undefined);

    const own = lmAccumulatedLossAndGrads(
      this.model,
      {
        x: nMicro === 1 ? batch.x.subarray(0, rows[0] * seq) : shardOf(batch.x, nMicro, micro, 0, rows[0], seq),
        y: nMicro === 1 ? batch.y.subarray(0, rows[0] * seq) : shardOf(batch.y, nMicro, micro, 0, rows[0], seq),
        batch: rows[0] * nMicro,
        seq,
      },
      { microBatches: nMicro },
    );
    let ownGrads: Map<string, tf.Tensor> | null = own.grads;
    try {
      const got = (await Promise.all(replies)) as Extract<FromWorker, { type: 'grads' }>[];
      for (const g of got) if (g.type !== 'grads' || g.id !== id) fail('internal', `data-parallel worker answered out of order`);
      const w = rows.map((r) => r / micro);
      let loss = (await own.value.data())[0] * w[0];
      got.forEach((g, k) => (loss += g.loss * w[k + 1]));
      const grads = new Map<string, tf.Tensor>();
      let o = 0;
      for (let j = 0; j < this.names.length; j++) {
        const name = this.names[j];
        const mine = ownGrads.get(name)!;
        const n = this.sizes[j];
        const off = o;
        grads.set(
          name,
          tf.tidy(() => {
            let acc = tf.mul(mine, w[0]);
            got.forEach((g, k) => (acc = tf.add(acc, tf.mul(tf.tensor(g.grads.subarray(off, off + n), mine.shape, 'float32'), w[k + 1]))));
            return acc;
          }),
        );
        o += n;
      }
      tf.dispose([...ownGrads.values()]);
      ownGrads = null;
      const r = lmApplyGrads(this.model, opt, grads, lr, opts);
      this.slowestStepMs = Math.max(this.slowestStepMs, performance.now() - started);
      return { loss: tf.scalar(loss), ...r };
    } finally {
      own.value.dispose();
      if (ownGrads) tf.dispose([...ownGrads.values()]);
    }
  }

  /** Test hook: make worker `i` throw an uncaught error. */
  crashWorker(i: number): void {
    this.replicas[i - 1]?.worker.postMessage({ type: 'crash' } satisfies ToWorker);
  }

  /** Test hook: make worker `i` stop answering (it ignores every later message). */
  hangWorker(i: number): void {
    this.replicas[i - 1]?.worker.postMessage({ type: 'hang' } satisfies ToWorker);
  }

  /** Test hook: kill worker `i` as if its thread died. */
  async killWorker(i: number): Promise<void> {
    await this.replicas[i - 1]?.worker.terminate();
  }

  /** Terminate every worker (idempotent); resolves once all have exited. */
  async close(): Promise<void> {
    if (!this.closed) setNativeThreads(this.nativeThreadsBefore);
    this.closed = true;
    const rs = this.replicas;
    this.replicas = [];
    await Promise.all(rs.map((r) => r.terminate()));
  }
}
