/**
 * NormLab's optional native kernels (engine/native: a C addon built by `npm install`, running
 * OpenBLAS's sgemm and fused element-wise kernels directly on the wasm backend's heap, each split
 * over the addon's own process-wide thread pool). Loaded at most once per thread; `nativeKernels()` is null, and `nativeStatus()` says why, when the addon
 * was not built, cannot load, was built for CPU features this machine lacks, or NORMLAB_NATIVE=0.
 * Native code here is chosen for speed: the same products in wasm (XNNPACK) run ~4x slower per
 * core, since wasm has 128-bit SIMD and no FMA.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { appPath } from '../core/app-paths.js';

/** Every operand is an element offset into `heap` (the wasm memory as a Float32Array). */
export interface NativeKernels {
  info(): { blas: string | null; blasError: string | null; simd: string };
  setBlasThreads(n: number): void;
  /** The kernels' own thread pool, the calling thread included; returns the count in effect. */
  setThreads(n: number): number;
  gemm(
    heap: Float32Array,
    transA: number,
    transB: number,
    M: number,
    N: number,
    K: number,
    a: number,
    strideA: number,
    b: number,
    strideB: number,
    c: number,
    strideC: number,
    batch: number,
  ): void;
  geluFwd(heap: Float32Array, x: number, y: number, n: number, tanhForm: number): void;
  geluBwd(heap: Float32Array, x: number, dy: number, dx: number, n: number, tanhForm: number): void;
  swigluFwd(heap: Float32Array, g: number, u: number, y: number, n: number): void;
  swigluBwd(heap: Float32Array, g: number, u: number, dy: number, dg: number, du: number, n: number): void;
  /** backward 0: y = rope(x); 1: dx from dy. */
  rope(heap: Float32Array, x: number, cos: number, sin: number, y: number, rows: number, T: number, hs: number, backward: number): void;
  normFwd(
    heap: Float32Array,
    x: number,
    gamma: number,
    beta: number,
    y: number,
    mean: number,
    rstd: number,
    rows: number,
    C: number,
    eps: number,
    rms: number,
  ): void;
  normBwd(
    heap: Float32Array,
    x: number,
    gamma: number,
    mean: number,
    rstd: number,
    dy: number,
    dx: number,
    dgamma: number,
    dbeta: number,
    rows: number,
    C: number,
    rms: number,
  ): void;
  /** shape: [B, H, T, Tk, hs, causal, then (batch stride, head stride, row stride) of q, k, v, out]. */
  attentionFwd(heap: Float32Array, q: number, k: number, v: number, out: number, probs: number, shape: Int32Array, scale: number): void;
  attentionBwd(
    heap: Float32Array,
    q: number,
    k: number,
    v: number,
    probs: number,
    dout: number,
    dq: number,
    dk: number,
    dv: number,
    shape: Int32Array,
    scale: number,
  ): void;
  xentFwd(heap: Float32Array, logits: number, targets: number, loss: number, lse: number, N: number, V: number): void;
  xentBwd(heap: Float32Array, logits: number, targets: number, lse: number, dloss: number, dlogits: number, N: number, V: number): void;
  adamw(heap: Float32Array, p: number, g: number, m: number, v: number, pOut: number, mOut: number, vOut: number, n: number, hyper: Float64Array): void;
}

const buildDir = appPath('engine', 'native', 'build');

let loaded: { kernels: NativeKernels | null; status: string } | null = null;
let enabled = true;
let threads = 1;

/** NORMLAB_NATIVE_THREADS, else one per core (at most 16). */
function defaultThreads(): number {
  const asked = Number(process.env.NORMLAB_NATIVE_THREADS);
  if (Number.isInteger(asked) && asked >= 1) return asked;
  return Math.min(16, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
}

function cpuHas(features: string[]): boolean {
  try {
    const line =
      fs
        .readFileSync('/proc/cpuinfo', 'utf8')
        .split('\n')
        .find((l) => l.startsWith('flags')) ?? '';
    const flags = new Set(line.split(':')[1]?.trim().split(/\s+/));
    return features.every((f) => flags.has(f));
  } catch {
    return false;
  }
}

function load(): { kernels: NativeKernels | null; status: string } {
  if (process.env.NORMLAB_NATIVE === '0') return { kernels: null, status: 'no native kernels (NORMLAB_NATIVE=0)' };
  const file = path.join(buildDir, 'Release', 'normlab_native.node');
  if (!fs.existsSync(file)) return { kernels: null, status: 'no native kernels (not built: npm install builds them where a C compiler is present)' };
  let arch = 'generic';
  try {
    arch = (JSON.parse(fs.readFileSync(path.join(buildDir, 'target.json'), 'utf8')) as { arch: string }).arch;
  } catch {
    // built by hand without the build script: assume a generic build
  }
  if (arch === 'x86-64-v3' && !cpuHas(['avx2', 'fma'])) return { kernels: null, status: 'no native kernels (built for AVX2+FMA, which this CPU lacks)' };
  try {
    const kernels = createRequire(import.meta.url)(file) as NativeKernels;
    const info = kernels.info();
    if (!info.blas) return { kernels: null, status: `no native kernels (${info.blasError})` };
    // OpenBLAS runs single-threaded: its threads spin while they wait, and on a busy machine made
    // training slower. The kernels split work over their own pool instead (sleeping workers).
    kernels.setBlasThreads(1);
    threads = kernels.setThreads(defaultThreads());
    const [name, version] = info.blas.split(' '); // "OpenBLAS 0.3.21 <build flags> (<core>)"
    const core = /\(([^()]*)\)$/.exec(info.blas)?.[1] ?? '?';
    return { kernels, status: `native kernels (${name} ${version} ${core}, ${info.simd})` };
  } catch (err) {
    return { kernels: null, status: `no native kernels (cannot load: ${err instanceof Error ? err.message.split('\n')[0] : String(err)})` };
  }
}

/** The native kernels, or null when they are unavailable (see nativeStatus) or switched off. */
export function nativeKernels(): NativeKernels | null {
  loaded ??= load();
  return enabled ? loaded.kernels : null;
}

/**
 * Switch the native kernels off (the wasm kernels take over) or back on, for tests and the bench's
 * comparisons; switch only between steps, never inside a gradient tape.
 */
export function setNativeKernels(on: boolean): void {
  enabled = on;
}

/**
 * Threads the native kernels split each operation over (the process-wide pool, shared by worker
 * threads); returns the previous count. Data-parallel training sets 1 while its replicas run.
 */
export function setNativeThreads(n: number): number {
  loaded ??= load();
  if (!loaded.kernels) return 1;
  const before = threads;
  threads = loaded.kernels.setThreads(n);
  return before;
}

/** Threads the native kernels use now (1 without them). */
export function nativeThreads(): number {
  return nativeKernels() ? threads : 1;
}

/** One line: what was loaded, or why the native kernels are not in use. */
export function nativeStatus(): string {
  loaded ??= load();
  if (!loaded.kernels) return loaded.status;
  if (!enabled) return 'no native kernels (switched off)';
  return loaded.status.replace(/\)$/, `, ${threads} thread${threads > 1 ? 's' : ''})`);
}
