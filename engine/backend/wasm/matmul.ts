/**
 * BatchMatMul for the wasm backend that always reaches XNNPACK.
 *
 * The stock kernel uses XNNPACK's fully-connected operator only when both batches are 1 and
 * neither side is transposed; everything else (every backward matmul, batched attention) runs a
 * scalar C++ loop. This kernel reduces every case to that fast one:
 *  - a transposed operand is first transposed into a scratch buffer (O(batch*rows*cols), cheap
 *    next to the O(M*K*N) product): a cache-blocked JS copy for large matrices, the backend's
 *    own Transpose for small ones;
 *  - a batched `a` against a single `b` (linear layers on (B, T, C) inputs) is one call with the
 *    batch folded into the rows; A B^T with a B far larger than A (a tied LM head) is computed
 *    as (B A^T)^T so that B is neither copied nor repacked;
 *  - anything else loops over the (broadcast) batch, pointing temporary tensor ids at each
 *    matrix's slice of the heap, so no data is copied.
 * Tiny products (where the per-call overhead would dominate) use a plain JS loop over the heap.
 * When NormLab's native kernels load (../native.ts), every product is instead one OpenBLAS sgemm
 * per matrix (or one for a batch folded into rows), which takes transposed operands as they lie.
 */
import * as tf from '@tensorflow/tfjs-core';
import { nativeKernels } from '../native.js';
import { idOf, internals, ptrOf, releaseId, tempId, writeWords, type WasmBackendInternals } from './heap.js';

/** Below this many multiply-adds per matrix a JS loop beats an XNNPACK call's set-up cost. */
const XNN_MIN_MACS = 4096;
const F32 = 0; // CppDType.float32

interface MatMulAttrs {
  transposeA: boolean;
  transposeB: boolean;
}

/** out[b] = src[b]^T for `batch` row-major (rows, cols) matrices; src and dst are heap addresses. */
export function transposeOnHeap(be: WasmBackendInternals, src: number, dst: number, batch: number, rows: number, cols: number): void {
  if (rows * cols >= 4096) {
    // Cache-blocked copy in JS: ~4x faster than the backend's unblocked Transpose on large
    // matrices (whose column writes stride a whole row apart).
    const heap = be.wasm.HEAPF32;
    const B = 32;
    for (let b = 0; b < batch; b++) {
      const s = (src >>> 2) + b * rows * cols;
      const d = (dst >>> 2) + b * rows * cols;
      for (let i0 = 0; i0 < rows; i0 += B) {
        const ie = Math.min(i0 + B, rows);
        for (let j0 = 0; j0 < cols; j0 += B) {
          const je = Math.min(j0 + B, cols);
          for (let j = j0; j < je; j++) {
            const dj = d + j * rows;
            for (let i = i0; i < ie; i++) heap[dj + i] = heap[s + i * cols + j];
          }
        }
      }
    }
    return;
  }
  const size = batch * rows * cols;
  const srcId = tempId(be, src, size);
  const dstId = tempId(be, dst, size);
  const [shapePtr, permPtr] =
    batch === 1
      ? writeWords(be, [
          [rows, cols],
          [1, 0],
        ])
      : writeWords(be, [
          [batch, rows, cols],
          [0, 2, 1],
        ]);
  const rank = batch === 1 ? 2 : 3;
  be.wasm._Transpose(srcId, shapePtr, rank, F32, dstId, permPtr, rank);
  releaseId(be, srcId);
  releaseId(be, dstId);
}

/** For each flat index of the broadcast outer shape, the flat batch index into an operand. */
function batchIndex(outOuter: number[], outer: number[]): Int32Array {
  const total = outOuter.reduce((p, d) => p * d, 1);
  const idx = new Int32Array(total);
  const off = outOuter.length - outer.length;
  const strides: number[] = new Array(outer.length);
  let s = 1;
  for (let d = outer.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= outer[d];
  }
  for (let i = 0; i < total; i++) {
    let rem = i;
    let flat = 0;
    for (let d = outOuter.length - 1; d >= 0; d--) {
      const coord = rem % outOuter[d];
      rem = (rem - coord) / outOuter[d];
      const od = d - off;
      if (od >= 0 && outer[od] !== 1) flat += coord * strides[od];
    }
    idx[i] = flat;
  }
  return idx;
}

/**
 * The backend caches XNNPACK's packed weights per b tensor id, and a reshape shares its input's
 * id: the same data used as `b` under a second (K, N) would meet the first packing (wrong sizes,
 * a wasm abort). So a b id gets the cache only for the first (K, N) it is used with.
 */
const packedAs = new WeakMap<object, string>();

function cacheableAs(b: tf.TensorInfo, K: number, N: number): boolean {
  const key = `${K}x${N}`;
  const seen = packedAs.get(b.dataId);
  if (seen === undefined) packedAs.set(b.dataId, key);
  return seen === undefined || seen === key;
}

export function batchMatMul(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const be = internals(args.backend);
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = args.attrs as unknown as MatMulAttrs;
  if (a.dtype !== 'float32' || b.dtype !== 'float32') {
    throw new Error('BatchMatMul on wasm supports float32 only');
  }
  const ar = a.shape.length;
  const br = b.shape.length;
  const M = transposeA ? a.shape[ar - 1] : a.shape[ar - 2];
  const K = transposeA ? a.shape[ar - 2] : a.shape[ar - 1];
  const Kb = transposeB ? b.shape[br - 1] : b.shape[br - 2];
  const N = transposeB ? b.shape[br - 2] : b.shape[br - 1];
  if (K !== Kb) {
    throw new Error(
      `Error in matMul: inner shapes (${K}) and (${Kb}) of Tensors with shapes ${a.shape} and ` +
        `${b.shape} and transposeA=${transposeA} and transposeB=${transposeB} must match.`,
    );
  }
  const aOuter = a.shape.slice(0, -2);
  const bOuter = b.shape.slice(0, -2);
  const outOuter = tf.broadcast_util.assertAndGetBroadcastShape(aOuter, bOuter);
  const batchA = tf.util.sizeFromShape(aOuter);
  const batchB = tf.util.sizeFromShape(bOuter);
  const batch = tf.util.sizeFromShape(outOuter);
  const out = be.makeOutput([...outOuter, M, N], 'float32');
  const outSize = batch * M * N;
  if (outSize === 0) return out;
  if (K === 0 || batchA === 0 || batchB === 0) {
    (be.typedArrayFromHeap(out) as Float32Array).fill(0);
    return out;
  }

  const nk = nativeKernels();
  const heap = be.wasm.HEAPF32; // read after makeOutput, which may grow (and replace) the heap
  if (nk && !(heap.buffer instanceof SharedArrayBuffer)) {
    const [aw, bw, ow] = [ptrOf(be, a) >>> 2, ptrOf(be, b) >>> 2, ptrOf(be, out) >>> 2];
    const ta = transposeA ? 1 : 0;
    const tb = transposeB ? 1 : 0;
    if (batchB === 1 && batchA === batch && !transposeA) {
      nk.gemm(heap, ta, tb, batch * M, N, K, aw, 0, bw, 0, ow, 0, 1); // batch folded into the rows
    } else if ((batchA === batch || batchA === 1) && (batchB === batch || batchB === 1)) {
      nk.gemm(heap, ta, tb, M, N, K, aw, batchA === 1 ? 0 : M * K, bw, batchB === 1 ? 0 : K * N, ow, M * N, batch);
    } else {
      // batches broadcast on both sides: one product per output matrix
      const [ia, ib] = [batchIndex(outOuter, aOuter), batchIndex(outOuter, bOuter)];
      for (let i = 0; i < batch; i++) nk.gemm(heap, ta, tb, M, N, K, aw + ia[i] * M * K, 0, bw + ib[i] * K * N, 0, ow + i * M * N, 0, 1);
    }
    return out;
  }
  const ia = batchIndex(outOuter, aOuter);
  const ib = batchIndex(outOuter, bOuter);
  const small = M * K * N < XNN_MIN_MACS;

  // Bring both operands to row-major (M, K) and (K, N) per batch.
  let aPtr = ptrOf(be, a);
  let bPtr = ptrOf(be, b);
  let aTmp = 0;
  let bTmp = 0;
  const outPtr = ptrOf(be, out);
  if (small) {
    // JS loop, transposes handled by copying through strided reads below.
    const heap = be.wasm.HEAPF32;
    const aw = aPtr >>> 2;
    const bw = bPtr >>> 2;
    const ow = outPtr >>> 2;
    const aT = new Float32Array(M * K);
    const bT = new Float32Array(K * N);
    const o = new Float32Array(M * N);
    for (let i = 0; i < batch; i++) {
      const as = aw + ia[i] * M * K;
      const bs = bw + ib[i] * K * N;
      for (let r = 0; r < M; r++) for (let c = 0; c < K; c++) aT[r * K + c] = transposeA ? heap[as + c * M + r] : heap[as + r * K + c];
      for (let r = 0; r < K; r++) for (let c = 0; c < N; c++) bT[r * N + c] = transposeB ? heap[bs + c * K + r] : heap[bs + r * N + c];
      o.fill(0);
      for (let r = 0; r < M; r++)
        for (let k = 0; k < K; k++) {
          const av = aT[r * K + k];
          for (let c = 0; c < N; c++) o[r * N + c] += av * bT[k * N + c];
        }
      heap.set(o, ow + i * M * N);
    }
    return out;
  }
  let cTmp = 0;
  try {
    const rows = batch * M;
    if (transposeB && !transposeA && batchB === 1 && batchA === batch && 2 * rows * K + rows * N < 2 * N * K) {
      // C = A B^T with B much larger than A (the tied embedding as LM head: B is (50257, 768)).
      // Transposing B would copy it and XNNPACK would pack it again; instead compute
      // C^T = B A^T with B as the operator's input as it lies, A^T as its (small) weights, and
      // transpose the (N, rows) result.
      aTmp = be.wasm._malloc(rows * K * 4) >>> 0;
      transposeOnHeap(be, aPtr, aTmp, 1, rows, K); // (rows, K) -> (K, rows)
      cTmp = be.wasm._malloc(N * rows * 4) >>> 0;
      const wId = tempId(be, aTmp, K * rows);
      const oId = tempId(be, cTmp, N * rows);
      const [inShape, wShape] = writeWords(be, [
        [1, N, K],
        [1, K, rows],
      ]);
      be.wasm._BatchMatMul(idOf(be, b), inShape, 3, wId, wShape, 3, 0, 0, oId);
      releaseId(be, wId);
      releaseId(be, oId);
      transposeOnHeap(be, cTmp, outPtr, 1, N, rows); // (N, rows) -> (rows, N)
      return out;
    }
    if (transposeA) {
      aTmp = be.wasm._malloc(batchA * M * K * 4) >>> 0;
      transposeOnHeap(be, aPtr, aTmp, batchA, K, M);
      aPtr = aTmp;
    }
    if (transposeB) {
      bTmp = be.wasm._malloc(batchB * K * N * 4) >>> 0;
      transposeOnHeap(be, bPtr, bTmp, batchB, N, K);
      bPtr = bTmp;
    }
    const outId = idOf(be, out);
    if (batchB === 1 && batchA === batch) {
      // One XNNPACK call: (batch*M, K) @ (K, N). Real ids where the data is the tensor's own, so
      // the backend can reuse the packed weights it caches per b id.
      const aId = transposeA ? tempId(be, aPtr, batch * M * K) : idOf(be, a);
      const bReal = !transposeB && cacheableAs(b, K, N);
      const bId = bReal ? idOf(be, b) : tempId(be, bPtr, K * N);
      const [aShape, bShape] = writeWords(be, [
        [1, batch * M, K],
        [1, K, N],
      ]);
      be.wasm._BatchMatMul(aId, aShape, 3, bId, bShape, 3, 0, 0, outId);
      if (transposeA) releaseId(be, aId);
      if (!bReal) releaseId(be, bId);
    } else {
      const [aShape, bShape] = writeWords(be, [
        [1, M, K],
        [1, K, N],
      ]);
      for (let i = 0; i < batch; i++) {
        const aId = tempId(be, aPtr + ia[i] * M * K * 4, M * K);
        const bId = tempId(be, bPtr + ib[i] * K * N * 4, K * N);
        const oId = tempId(be, outPtr + i * M * N * 4, M * N);
        be.wasm._BatchMatMul(aId, aShape, 3, bId, bShape, 3, 0, 0, oId);
        releaseId(be, aId);
        releaseId(be, bId);
        releaseId(be, oId);
      }
    }
  } finally {
    if (aTmp) be.wasm._free(aTmp);
    if (bTmp) be.wasm._free(bTmp);
    if (cTmp) be.wasm._free(cTmp);
  }
  return out;
}

export const batchMatMulConfig: tf.KernelConfig = {
  kernelName: tf.BatchMatMul,
  backendName: 'wasm',
  kernelFunc: batchMatMul as unknown as tf.KernelFunc,
};
