/**
 * Multi-threaded tfjs wasm in Node. tfjs-backend-wasm ships a threaded SIMD build, but turns it
 * off whenever it detects Node, for two reasons this module works around during initialization:
 *  1. The pthread workers are started from a `blob:` URL (the worker script as a Blob), which
 *     Node's worker_threads cannot load; and the worker then loads the main script from a Blob
 *     too. We write the worker script to a file in the OS temp folder (with a two-line shim that
 *     loads the main script from tfjs's own `wasm-out/` file) and hand out that path instead.
 *  2. Its C++ caps the thread pool at half the logical cores (assuming hyper-threads), so on a
 *     2-core machine it would run 1 thread; we let it see twice the cores while it starts.
 * Both patches (URL.createObjectURL, os.cpus) are in force only while the backend starts.
 * XNNPACK's operators (matmuls, convolutions) then use the pool; NormLab's JS kernels do not.
 */
import * as tf from '@tensorflow/tfjs-core';
import { setThreadsCount, getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

/**
 * Threads to ask for: NORMLAB_WASM_THREADS (1-8, or `auto` for the machine's cores), else 1.
 * One is the default because every XNNPACK call then wakes the pool: measured on a shared 2-core
 * machine, the 64 small per-head matmuls of batched attention got ~10x slower with 2 threads and
 * a whole training step 2-3x slower; on an idle machine threads speed up the large matmuls.
 */
export function wantedWasmThreads(): number {
  const env = (process.env.NORMLAB_WASM_THREADS ?? '').trim();
  if (env === 'auto') {
    const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
    return Math.max(1, Math.min(cores, 8)); // tfjs pre-creates 8 pthread workers
  }
  const n = Number(env);
  return env !== '' && Number.isInteger(n) && n >= 1 ? Math.min(n, 8) : 1;
}

/** Let the process exit while pool threads wait for work (emscripten refs running workers). */
function unrefWorkers(): void {
  const wasm = (tf.backend() as unknown as { wasm?: { PThread?: { runningWorkers: Worker[]; unusedWorkers: Worker[] } } }).wasm;
  const pt = wasm?.PThread;
  if (!pt) return;
  for (const w of [...pt.runningWorkers, ...pt.unusedWorkers]) (w as unknown as { unref?: () => void }).unref?.();
}

/** Write the worker script next to nothing else of ours; returns its path. */
function writeWorkerScript(): string {
  const require = createRequire(import.meta.url);
  const pkgDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  const mainJs = path.join(pkgDir, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.js');
  const workerJs = path.join(pkgDir, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.worker.js');
  const { wasmWorkerContents } = require(workerJs) as { wasmWorkerContents: string };
  // The contents are a template literal whose "\n" escapes became newlines; tfjs re-escapes them
  // the same way before making its Blob. The shim makes the worker's `importScripts(blob:...)`
  // (the main script, which tfjs passes as a Blob) read tfjs's own main-script file instead.
  const source =
    wasmWorkerContents.replace(/\n/g, '\\n') +
    `\n;global.importScripts=function(f){(0,eval)(require("fs").readFileSync(String(f).startsWith("blob:")?${JSON.stringify(mainJs)}:f,"utf8"))};\n`;
  const dir = path.join(os.tmpdir(), `normlab-tfjs-wasm-${tf.version_core}`);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `worker-${process.pid}.cjs`);
  fs.writeFileSync(file, source);
  return file;
}

/**
 * Start the wasm backend with `threads` threads (call instead of a plain `tf.setBackend('wasm')`
 * before the backend was first used). Falls back to one thread, returning 1, if the threaded build
 * cannot start. Returns the thread count the backend runs with.
 */
export async function startWasmWithThreads(threads: number): Promise<number> {
  if (threads <= 1 || typeof SharedArrayBuffer === 'undefined') {
    if (!(await tf.setBackend('wasm'))) throw new Error('the wasm module did not initialize');
    return 1;
  }
  let workerFile: string | null = null;
  const origCreate = URL.createObjectURL;
  const origCpus = os.cpus;
  try {
    workerFile = writeWorkerScript();
    const file = workerFile;
    URL.createObjectURL = ((obj: Blob) => (obj && (obj as Blob).type === 'application/javascript' ? file : origCreate(obj))) as typeof URL.createObjectURL;
    (os as { cpus: typeof os.cpus }).cpus = () => {
      const c = origCpus();
      return [...c, ...c];
    };
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
    setThreadsCount(threads);
    if (await tf.setBackend('wasm')) {
      unrefWorkers();
      return getThreadsCount();
    }
  } catch {
    // fall through to one thread
  } finally {
    URL.createObjectURL = origCreate;
    (os as { cpus: typeof os.cpus }).cpus = origCpus;
    if (workerFile) {
      const f = workerFile;
      // The workers have read it by the time the backend is up; remove it when the process ends.
      process.once('exit', () => fs.rmSync(f, { force: true }));
    }
  }
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  setThreadsCount(1);
  if (!(await tf.setBackend('wasm'))) throw new Error('the wasm module did not initialize');
  return 1;
}
