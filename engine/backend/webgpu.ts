/**
 * The `webgpu` backend: tfjs's WebGPU backend (@tensorflow/tfjs-backend-webgpu) on Dawn's Node
 * binding (the `webgpu` package, whose `dawn.node` drives Vulkan, Metal or D3D12). Both are
 * optional dependencies.
 *
 * The adapter is first probed in a short child process: Dawn prints its driver warnings (and
 * native stack lines) straight to stderr when no GPU driver loads, and a child keeps that noise,
 * and any native crash, out of the engine (inside Electron the probe runs in-process, see
 * `probeAdapter`). Only when the probe finds an adapter is tfjs's backend started on it. A software adapter (SwiftShader, llvmpipe/lavapipe, WARP, or one Dawn marks as a fallback
 * adapter) works, but is far slower than the CPU backends, so `auto` skips it; `--backend webgpu`
 * uses it (the tests do, to run every method on a GPU code path without a GPU).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { registerWebgpuKernels } from './webgpu-kernels.js';

/** What the probe reports about the adapter Dawn picks (high-performance preference). */
export interface GpuAdapter {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A software rasterizer or a fallback adapter rather than a GPU. */
  software: boolean;
  limits: { maxBufferSize: number; maxStorageBufferBindingSize: number };
}

/** The probe's answer: an adapter, or the one-line reason there is none. */
export type AdapterProbe = { adapter: GpuAdapter } | { reason: string };

const SOFTWARE_NAMES = /swiftshader|llvmpipe|lavapipe|softpipe|software|microsoft basic render|warp/i;

/** Is this adapter a software implementation (by Dawn's flag or by its name)? */
export function isSoftwareAdapter(a: Omit<GpuAdapter, 'software' | 'limits'> & { fallback?: boolean }): boolean {
  return a.fallback === true || SOFTWARE_NAMES.test(`${a.vendor} ${a.architecture} ${a.device} ${a.description}`);
}

/** "google swiftshader, SwiftShader driver 5.0.0 (software)" */
export function describeAdapter(a: GpuAdapter): string {
  const name = [a.vendor, a.architecture].filter(Boolean).join(' ');
  const desc = a.description || a.device;
  return `${[name, desc].filter(Boolean).join(', ')}${a.software ? ' (software)' : ''}`;
}

function gib(bytes: number): string {
  return bytes >= 2 ** 30 ? `${+(bytes / 2 ** 30).toFixed(2)} GiB` : `${+(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** The backend detail line: adapter and the limits that bound tensor sizes. */
export function webgpuDetail(a: GpuAdapter): string {
  return `webgpu on ${describeAdapter(a)}; maxBufferSize ${gib(a.limits.maxBufferSize)}, maxStorageBufferBindingSize ${gib(a.limits.maxStorageBufferBindingSize)}`;
}

/**
 * Path of the `webgpu` package's entry. Inside a packaged Electron app the package lies in
 * app.asar and also, whole, in app.asar.unpacked (electron-builder's asarUnpack): a native
 * module cannot load from inside the archive, and on Windows dawn.node needs its DLLs beside it.
 */
function webgpuEntry(): string {
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    entry = require.resolve('webgpu');
  } catch {
    throw new Error('the optional package "webgpu" (Dawn) is not installed');
  }
  // In a packaged app, load the whole package from its unpacked copy (electron-builder's asarUnpack).
  const unpacked = entry.replace(/\.asar([\\/])/, '.asar.unpacked$1');
  const dir = path.dirname(fs.existsSync(unpacked) ? unpacked : entry);
  const dawn = path.join(dir, 'dist', `${process.platform}-${process.platform === 'darwin' ? 'universal' : process.arch}`, 'dawn.node');
  if (!fs.existsSync(dawn.replace(/\.asar([\\/])/, '.asar.unpacked$1')))
    throw new Error(`Dawn has no build for ${process.platform}-${process.arch} (${dawn} is missing)`);
  return path.join(dir, path.basename(entry));
}

/** Dawn wants XDG_RUNTIME_DIR; where it is unset, give it a private folder (one per user). */
function ensureRuntimeDir(): void {
  if (process.env.XDG_RUNTIME_DIR) return;
  const dir = path.join(os.tmpdir(), `normlab-xdg-${os.userInfo().uid}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  process.env.XDG_RUNTIME_DIR = dir;
}

/** A module that asks Dawn for its adapter and leaves a description (or null) in `info`. */
function probeModule(entryUrl: string): string {
  return `
const { create, globals } = await import(${JSON.stringify(entryUrl)});
Object.assign(globalThis, globals);
const a = await create([]).requestAdapter({ powerPreference: 'high-performance' });
const i = a?.info ?? {};
const s = (v) => (typeof v === 'string' ? v : '');
const info = a && {
  vendor: s(i.vendor), architecture: s(i.architecture), device: s(i.device), description: s(i.description),
  fallback: i.isFallbackAdapter === true || a.isFallbackAdapter === true,
  limits: { maxBufferSize: Number(a.limits.maxBufferSize), maxStorageBufferBindingSize: Number(a.limits.maxStorageBufferBindingSize) },
};
`;
}

type RawAdapter = Omit<GpuAdapter, 'software'> & { fallback: boolean };

function fromRaw(raw: RawAdapter): GpuAdapter {
  const { fallback, ...rest } = raw;
  return { ...rest, software: isSoftwareAdapter({ ...rest, fallback }) };
}

/** Dawn's stderr when no adapter came back, as one line a user can act on. */
export function noAdapterReason(stderr: string): string {
  if (/Couldn't load Vulkan|libvulkan/i.test(stderr)) return 'no Vulkan loader (libvulkan.so.1; on Debian: apt-get install libvulkan1)';
  if (/Found no drivers|VK_ERROR_INCOMPATIBLE_DRIVER/.test(stderr)) return 'no GPU adapter: the Vulkan loader found no driver (ICD)';
  const line = stderr.split('\n').find((l) => l.trim() && !/^\s+at /.test(l));
  return `no GPU adapter${line ? ` (${line.trim().slice(0, 200)})` : ''}`;
}

let probed: Promise<AdapterProbe> | null = null;

/**
 * Ask Dawn which adapter it would use, in a child process (cached per process). Inside Electron
 * the probe runs in this process instead: a packaged app may turn off running its binary as
 * Node (the RunAsNode fuse), and its stderr is no terminal.
 */
export function probeAdapter(): Promise<AdapterProbe> {
  probed ??= (async (): Promise<AdapterProbe> => {
    let entry: string;
    try {
      entry = webgpuEntry();
    } catch (err) {
      return { reason: (err as Error).message };
    }
    ensureRuntimeDir();
    const source = probeModule(pathToFileUrl(entry));
    if (process.versions.electron) {
      try {
        const m = (await import(`data:text/javascript,${encodeURIComponent(source + 'export default info;')}`)) as { default: RawAdapter | null };
        return m.default ? { adapter: fromRaw(m.default) } : { reason: 'no GPU adapter' };
      } catch (err) {
        return { reason: noAdapterReason((err as Error).message) };
      }
    }
    return new Promise<AdapterProbe>((resolve) => {
      const script = `${source}\nif (info) process.stdout.write(JSON.stringify(info) + '\\n');\nprocess.exit(0);\n`;
      execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: 60_000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
        const line = stdout.trim().split('\n').pop() ?? '';
        if (line.startsWith('{')) resolve({ adapter: fromRaw(JSON.parse(line) as RawAdapter) });
        else if (err && (err as { killed?: boolean }).killed) resolve({ reason: 'the GPU adapter probe did not answer within 60 s' });
        else resolve({ reason: noAdapterReason(String(stderr)) });
      });
    });
  })();
  return probed;
}

function pathToFileUrl(p: string): string {
  return new URL(
    `file://${path
      .resolve(p)
      .replace(/\\/g, '/')
      .replace(/^([A-Za-z]):/, '/$1:')}`,
  ).href;
}

let loaded: GpuAdapter | null = null;

/**
 * Load tfjs's WebGPU backend on Dawn. `auto` refuses a software adapter (with the reason);
 * a forced `webgpu` takes whatever adapter there is. Returns the adapter in use.
 */
export async function loadWebgpu(auto: boolean): Promise<GpuAdapter> {
  if (!loaded) {
    const probe = await probeAdapter();
    if ('reason' in probe) throw new Error(probe.reason);
    if (auto && probe.adapter.software) {
      throw new Error(`only a software adapter (${describeAdapter(probe.adapter)}): auto uses webgpu on a hardware GPU only; --backend webgpu uses it`);
    }
    const { create, globals } = (await import(pathToFileUrl(webgpuEntry()))) as { create: (flags: string[]) => unknown; globals: object };
    Object.assign(globalThis, globals);
    const g = globalThis as { navigator?: object };
    // Node 20 has no navigator; Node 21+ has one whose properties are getters.
    if (!g.navigator) Object.defineProperty(globalThis, 'navigator', { value: {}, configurable: true, writable: true });
    Object.defineProperty(g.navigator, 'gpu', { value: create([]), configurable: true, writable: true });
    // Registers 'webgpu' now that navigator.gpu exists. A literal import (not a require) so that
    // the portable bundle (engine/bundle/) inlines it, sharing the bundle's one tfjs-core.
    await import('@tensorflow/tfjs-backend-webgpu');
    registerWebgpuKernels();
    loaded = probe.adapter;
  }
  if (!(await tf.setBackend('webgpu'))) {
    throw new Error(`tfjs's webgpu backend did not start on ${describeAdapter(loaded)}`);
  }
  return loaded;
}
