/**
 * Compute backend selection. `auto` tries, in order: `tensorflow` (tfjs-node-gpu, then tfjs-node,
 * both optional dependencies), `webgpu` on a hardware GPU (./webgpu.ts), `wasm` (XNNPACK + SIMD),
 * `cpu` (pure JS). A forced backend that cannot load is a one-line `backend` error naming why. The
 * wasm and webgpu backends get the kernels they lack for training registered before they are used.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs'; // registers every op's gradient (the core package alone has none)
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import util from 'node:util';
import { fail, NormLabError } from '../core/errors.js';
import { BACKEND_NAMES } from '../protocol/protocol.js';
import { nativeStatus } from './native.js';
import { registerWasmKernels, startWasmWithThreads, wantedWasmThreads } from './wasm-kernels.js';
import { loadWebgpu, webgpuDetail, type GpuAdapter } from './webgpu.js';

export { BACKEND_NAMES };
export type BackendName = (typeof BACKEND_NAMES)[number];
export type BackendChoice = BackendName | 'auto';

export interface BackendInfo {
  /** The tfjs backend that runs: tensorflow, webgpu, wasm or cpu. */
  name: BackendName;
  /** What was loaded, e.g. "@tensorflow/tfjs-node-gpu 4.22.0", "wasm (simd, 1 thread); native kernels (…)", "webgpu on nvidia hopper, …; maxBufferSize …". */
  detail: string;
  /** The GPU adapter (webgpu only). */
  adapter?: GpuAdapter;
  /** Why each backend tried before this one did not load (auto only). */
  skipped: string[];
}

let current: BackendInfo | null = null;

/** The backend that `initBackend` chose, or null before it ran. */
export function currentBackend(): BackendInfo | null {
  return current;
}

/** tfjs-node 4.22 calls util.isNullOrUndefined, which Node 23+ removed. */
function polyfillNodeUtil(): void {
  const u = util as unknown as Record<string, unknown>;
  if (typeof u.isNullOrUndefined !== 'function') {
    u.isNullOrUndefined = (v: unknown) => v === null || v === undefined;
  }
}

/** What a loader brings up: the detail line and, for webgpu, the adapter. */
interface Loaded {
  detail: string;
  adapter?: GpuAdapter;
}

async function loadTensorflow(): Promise<Loaded> {
  polyfillNodeUtil();
  const require = createRequire(import.meta.url);
  const reasons: string[] = [];
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      require(pkg);
      if (!(await tf.setBackend('tensorflow'))) throw new Error('backend did not initialize');
      return { detail: `${pkg} ${tf.version_core}` };
    } catch (err) {
      const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
      reasons.push(`${pkg}: ${msg.includes('Cannot find module') ? 'not installed' : msg}`);
    }
  }
  throw new Error(reasons.join('; '));
}

async function loadWebgpuBackend(auto: boolean): Promise<Loaded> {
  const adapter = await loadWebgpu(auto);
  return { detail: webgpuDetail(adapter), adapter };
}

async function loadWasm(): Promise<Loaded> {
  registerWasmKernels();
  const before = { ex: process.listeners('uncaughtException'), rej: process.listeners('unhandledRejection') };
  const threads = await startWasmWithThreads(wantedWasmThreads()); // 1 unless NORMLAB_WASM_THREADS asks for more
  await tf.ready();
  dropEmscriptenListeners(before);
  const simd = tf.env().getBool('WASM_HAS_SIMD_SUPPORT') ? 'simd' : 'no simd';
  // The addon cannot address the shared memory of wasm's threaded build (../backend/fused-ops.ts).
  const native = threads === 1 ? nativeStatus() : 'no native kernels (wasm threads)';
  return { detail: `wasm (${simd}, ${threads} wasm thread${threads === 1 ? '' : 's'}); ${native}` };
}

/**
 * The wasm module's glue adds process-wide listeners that rethrow any uncaught error, which makes
 * Node print the module's whole minified source. Remove the listeners it added.
 */
function dropEmscriptenListeners(before: { ex: Function[]; rej: Function[] }): void {
  for (const l of process.listeners('uncaughtException')) if (!before.ex.includes(l)) process.removeListener('uncaughtException', l);
  for (const l of process.listeners('unhandledRejection')) if (!before.rej.includes(l)) process.removeListener('unhandledRejection', l);
}

async function loadCpu(): Promise<Loaded> {
  await tf.setBackend('cpu');
  return { detail: 'cpu (pure JavaScript)' };
}

/** Each loader gets `auto` (true when trying backends in order, false when one was asked for). */
const loaders: Record<BackendName, (auto: boolean) => Promise<Loaded>> = {
  tensorflow: loadTensorflow,
  webgpu: loadWebgpuBackend,
  wasm: loadWasm,
  cpu: loadCpu,
};

/**
 * Select and initialize a backend. Idempotent for the same choice; switching backends in one
 * process is allowed (tests compare backends) but tensors of the old backend must be disposed.
 */
export async function initBackend(choice: BackendChoice = 'auto'): Promise<BackendInfo> {
  if (choice !== 'auto' && !BACKEND_NAMES.includes(choice)) {
    fail('config', `unknown backend "${choice}": expected auto, ${BACKEND_NAMES.join(', ')}`);
  }
  if (current && (choice === 'auto' || choice === current.name) && tf.getBackend() === current.name) {
    return current;
  }
  tf.env().set('PROD', true);
  const order: BackendName[] = choice === 'auto' ? [...BACKEND_NAMES] : [choice];
  const skipped: string[] = [];
  for (const name of order) {
    try {
      const loaded = await loaders[name](choice === 'auto');
      current = { name, ...loaded, skipped };
      return current;
    } catch (err) {
      const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
      if (choice !== 'auto') throw new NormLabError('backend', `backend "${name}" cannot load: ${msg}`);
      skipped.push(`${name}: ${msg}`);
    }
  }
  fail('backend', `no backend could load (${skipped.join('; ')})`);
}

/** What `normlab backends` reports about one backend. */
export interface BackendStatus {
  name: BackendName;
  /** It loads when asked for by name (`--backend <name>`). */
  loads: boolean;
  /** What loaded (when it loads) or why it does not. */
  detail: string;
  adapter?: GpuAdapter;
  /** Whether `auto` would take it, and if it loads but auto passes it by, why. */
  auto: { used: boolean; skipped?: string };
}

/**
 * Try every backend by name, in `auto`'s order, and say which one `auto` would choose. Leaves
 * the last backend tried selected (a command that runs afterwards calls initBackend itself).
 */
export async function listBackends(): Promise<{ auto: BackendName | null; backends: BackendStatus[] }> {
  const backends: BackendStatus[] = [];
  let auto: BackendName | null = null;
  for (const name of BACKEND_NAMES) {
    try {
      const info = await initBackend(name);
      const skipped = info.adapter?.software ? 'a software adapter: auto uses webgpu on a hardware GPU only' : undefined;
      const used = auto === null && !skipped;
      if (used) auto = name;
      backends.push({
        name,
        loads: true,
        detail: info.detail,
        ...(info.adapter ? { adapter: info.adapter } : {}),
        auto: { used, ...(skipped ? { skipped } : {}) },
      });
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      backends.push({ name, loads: false, detail: msg.replace(/^backend "\w+" cannot load: /, ''), auto: { used: false } });
    }
  }
  return { auto, backends };
}
