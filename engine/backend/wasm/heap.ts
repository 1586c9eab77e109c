/**
 * Low-level access to the tfjs wasm backend's heap and C entry points, shared by NormLab's wasm
 * kernels. The backend's C functions take tensor *ids*, looked up in its C++ tensor registry; to
 * run them on part of a tensor (one matrix of a batch, a transposed copy) we register a temporary
 * id that points at any heap range and dispose it right after the call. Disposing an id also runs
 * the backend's disposal callbacks, which drop any XNNPACK operator cached for it.
 */
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import type { TensorInfo } from '@tensorflow/tfjs-core';

/** The parts of the emscripten module the kernels use (exported by tfjs-backend-wasm 4.22). */
export interface WasmModule {
  HEAPU8: Uint8Array;
  HEAPU32: Uint32Array;
  HEAPF32: Float32Array;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  /** (a_id, a_shape*, a_rank, b_id, b_shape*, b_rank, transpose_a, transpose_b, out_id) */
  _BatchMatMul(...args: number[]): void;
  /** (x_id, x_shape*, x_rank, dtype, out_id, perm*, perm_rank) */
  _Transpose(...args: number[]): void;
  tfjs: {
    registerTensor(id: number, size: number, offset: number): void;
    disposeData(id: number): void;
    getThreadsCount(): number;
  };
}

interface DataEntry {
  id: number;
  memoryOffset: number;
}

export interface WasmBackendInternals {
  wasm: WasmModule;
  dataIdNextNumber: number;
  dataIdMap: { get(dataId: object): DataEntry };
  makeOutput(shape: number[], dtype: string, memoryOffset?: number): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: object, force?: boolean): boolean;
}

export function internals(backend: unknown): WasmBackendInternals {
  return backend as WasmBackendInternals;
}

export type { BackendWasm };

/** Heap address of a tensor's data. */
export function ptrOf(backend: WasmBackendInternals, t: TensorInfo): number {
  return backend.dataIdMap.get(t.dataId).memoryOffset >>> 0;
}

/** The C++ registry id of a tensor. */
export function idOf(backend: WasmBackendInternals, t: TensorInfo): number {
  return backend.dataIdMap.get(t.dataId).id;
}

/** A few words of heap for shape/perm arguments, allocated once per backend instance. */
const scratch = new WeakMap<object, number>();
const SCRATCH_WORDS = 16;

/** Write up to 16 uint32 values into the backend's scratch area; returns the word pointers. */
export function writeWords(backend: WasmBackendInternals, groups: number[][]): number[] {
  let base = scratch.get(backend);
  if (base === undefined) {
    base = backend.wasm._malloc(SCRATCH_WORDS * 4) >>> 0;
    scratch.set(backend, base);
  }
  const heap = backend.wasm.HEAPU32; // re-read: the heap view changes when memory grows
  const ptrs: number[] = [];
  let w = base >>> 2;
  for (const g of groups) {
    ptrs.push(w << 2);
    for (const v of g) heap[w++] = v;
  }
  if (w - (base >>> 2) > SCRATCH_WORDS) throw new Error('wasm scratch overflow');
  return ptrs;
}

/** Register a temporary tensor id over `size` floats at heap address `ptr`. */
export function tempId(backend: WasmBackendInternals, ptr: number, size: number): number {
  const id = backend.dataIdNextNumber++;
  backend.wasm.tfjs.registerTensor(id, size, ptr);
  return id;
}

export function releaseId(backend: WasmBackendInternals, id: number): void {
  backend.wasm.tfjs.disposeData(id);
}
