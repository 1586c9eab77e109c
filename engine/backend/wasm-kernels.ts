/**
 * Kernels the tfjs wasm backend lacks but training needs, registered for `wasm` only so that the
 * `tensorflow` and `cpu` backends keep their stock kernels.
 *
 * - UnsortedSegmentSum: the gradient of `gather` (embedding lookups). Written here in TypeScript
 *   over the wasm heap: no library provides it, and it is a single pass over the gradient rows.
 *
 * And faster replacements for stock wasm kernels that training leans on (see ./wasm/):
 * - BatchMatMul (./wasm/matmul.ts): XNNPACK for every batch size and transpose, so backward
 *   matmuls and batched attention no longer run the stock scalar loop.
 * - Slice (./wasm/slice.ts): copies only the kept elements instead of the whole input; SplitV
 *   uses it (./wasm/copy-free.ts).
 * - Identity (./wasm/copy-free.ts): shares data instead of copying (the engine clones every
 *   tensor it saves for backward).
 * - GatherV2 along axis 0 (./wasm/gather.ts): embedding lookups as row copies.
 * - NormLab's fused kernels (./wasm/fused.ts: GELU, SwiGLU, RoPE, norms, attention, cross-entropy,
 *   AdamW), run
 *   by the native addon when it loads; engine/backend/fused-ops.ts decides when ops use them.
 * And ./wasm/threads.ts can start the threaded SIMD build in Node (tfjs turns it off there);
 * backend.ts's loadWasm uses it when NORMLAB_WASM_THREADS asks for more than one thread (opt-in:
 * on a busy machine threads made training slower, see threads.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { batchMatMulConfig } from './wasm/matmul.js';
import { makeSlice } from './wasm/slice.js';
import { makeIdentity, makeSplitV } from './wasm/copy-free.js';
import { fusedKernelConfigs } from './wasm/fused.js';
import { makeGather } from './wasm/gather.js';

export { startWasmWithThreads, wantedWasmThreads } from './wasm/threads.js';

let registered = false;

interface SegmentSumAttrs {
  numSegments: number;
}

/** out[s, :] = sum over i with ids[i] = s of x[i, :]; x is (N, ...rest), ids (N,). */
function unsortedSegmentSum(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as BackendWasm;
  const { x, segmentIds } = args.inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const { numSegments } = args.attrs as unknown as SegmentSumAttrs;
  if (segmentIds.shape.length !== 1 || segmentIds.shape[0] !== x.shape[0]) {
    throw new Error(`UnsortedSegmentSum on wasm expects 1-D segment ids matching x's first axis`);
  }
  const rowSize = x.shape.slice(1).reduce((a, b) => a * b, 1);
  const out = backend.makeOutput([numSegments, ...x.shape.slice(1)], x.dtype);
  const outVals = backend.typedArrayFromHeap(out);
  outVals.fill(0);
  const xVals = backend.typedArrayFromHeap(x);
  const ids = backend.typedArrayFromHeap(segmentIds);
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i];
    if (s < 0 || s >= numSegments) continue; // TF semantics: out-of-range ids are dropped
    const src = i * rowSize;
    const dst = s * rowSize;
    for (let j = 0; j < rowSize; j++) outVals[dst + j] += xVals[src + j];
  }
  return out;
}

interface KernelPair {
  stock: tf.KernelConfig | undefined;
  fast: tf.KernelConfig;
  /** Kept when switching to stock kernels (tfjs has no kernel of that name for wasm). */
  keep?: boolean;
}

/** Every kernel this module replaces, with the stock config it replaced (for A/B checks). */
const pairs = new Map<string, KernelPair>();
let fastOn = true;

/** Replace (or add) the wasm kernel for `kernelName`, keeping the stock one. */
function override(kernelName: string, make: (stock: tf.KernelFunc | undefined) => tf.KernelFunc, keep = false): void {
  const stock = tf.getKernel(kernelName, 'wasm');
  if (stock) tf.unregisterKernel(kernelName, 'wasm'); // re-registering would warn on stderr
  // The stock set-up stays: a wrapper that falls back to the stock kernel needs what it prepares.
  const fast: tf.KernelConfig = { kernelName, backendName: 'wasm', kernelFunc: make(stock?.kernelFunc), setupFunc: stock?.setupFunc };
  tf.registerKernel(fast);
  pairs.set(kernelName, { stock, fast, keep });
}

/** Register NormLab's wasm kernels once per process (idempotent). */
export function registerWasmKernels(): void {
  if (registered) return;
  registered = true;
  override(tf.UnsortedSegmentSum, () => unsortedSegmentSum as unknown as tf.KernelFunc, true);
  override(tf.BatchMatMul, () => batchMatMulConfig.kernelFunc);
  override(tf.Slice, makeSlice);
  override(tf.SplitV, () => makeSplitV(tf.getKernel(tf.Slice, 'wasm')!.kernelFunc));
  override(tf.Identity, makeIdentity);
  override(tf.GatherV2, makeGather);
  for (const cfg of fusedKernelConfigs()) override(cfg.kernelName, () => cfg.kernelFunc);
}

/** Whether NormLab's fast wasm kernels (rather than the stock ones) are registered now. */
export function fastWasmKernelsEnabled(): boolean {
  return fastOn;
}

/**
 * Switch between NormLab's fast wasm kernels and tfjs's stock ones (kernels tfjs lacks, like
 * UnsortedSegmentSum, stay). For tests and the bench's stock-vs-fast comparison; switch only
 * between steps, never inside a gradient tape.
 */
export function setFastWasmKernels(on: boolean): void {
  registerWasmKernels();
  if (on === fastOn) return;
  fastOn = on;
  const wasmReady = tf.findBackend('wasm') !== null;
  for (const [name, { stock, fast, keep }] of pairs) {
    if (keep) continue;
    if (tf.getKernel(name, 'wasm')) tf.unregisterKernel(name, 'wasm');
    const cfg = on ? fast : stock;
    if (!cfg) continue; // a NormLab-only kernel: absent in stock mode, so ops take the tfjs path
    tf.registerKernel(cfg);
    // A stock kernel registered after the backend started has not had its set-up run yet.
    if (!on && wasmReady && cfg.setupFunc) cfg.setupFunc(tf.findBackend('wasm')!);
  }
}
