import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { describeWebgpu } from '../testing/webgpu.js';
import { expectClose, rand } from '../testing/backends.js';
import { initBackend } from './backend.js';
import { describeAdapter, isSoftwareAdapter, noAdapterReason, probeAdapter, webgpuDetail, type GpuAdapter } from './webgpu.js';

const swiftshader: GpuAdapter = {
  vendor: 'google',
  architecture: 'swiftshader',
  device: 'swiftshader-device-subzero-',
  description: 'SwiftShader driver 5.0.0',
  software: true,
  limits: { maxBufferSize: 2 ** 30, maxStorageBufferBindingSize: 2 ** 27 },
};

describe('webgpu adapter classification', () => {
  it('calls SwiftShader, lavapipe and fallback adapters software, and a real GPU hardware', () => {
    expect(isSoftwareAdapter(swiftshader)).toBe(true);
    expect(isSoftwareAdapter({ vendor: 'mesa', architecture: '', device: '', description: 'llvmpipe (LLVM 19.1.7, 256 bits)' })).toBe(true);
    expect(isSoftwareAdapter({ vendor: 'nvidia', architecture: 'hopper', device: '', description: 'NVIDIA H200', fallback: true })).toBe(true);
    expect(isSoftwareAdapter({ vendor: 'nvidia', architecture: 'hopper', device: '', description: 'NVIDIA H200' })).toBe(false);
    expect(isSoftwareAdapter({ vendor: 'apple', architecture: 'metal-3', device: '', description: 'Apple M2' })).toBe(false);
  });

  it('names the adapter and its buffer limits in the detail line', () => {
    expect(describeAdapter(swiftshader)).toBe('google swiftshader, SwiftShader driver 5.0.0 (software)');
    expect(webgpuDetail(swiftshader)).toBe(
      'webgpu on google swiftshader, SwiftShader driver 5.0.0 (software); maxBufferSize 1 GiB, maxStorageBufferBindingSize 128 MiB',
    );
  });

  it("turns Dawn's driver errors into one line", () => {
    expect(noAdapterReason("Error: Couldn't load Vulkan\n    at Foo (bar.cpp:1)")).toMatch(/^no Vulkan loader \(libvulkan\.so\.1/);
    expect(noAdapterReason('Warning: vkCreateInstance: Found no drivers!\n    at CheckVkSuccessImpl (x.cpp:106)')).toBe(
      'no GPU adapter: the Vulkan loader found no driver (ICD)',
    );
    expect(noAdapterReason('    at x (y)\nsomething odd\n')).toBe('no GPU adapter (something odd)');
    expect(noAdapterReason('')).toBe('no GPU adapter');
  });
});

describeWebgpu('webgpu backend on a software Vulkan driver', () => {
  it('is skipped by auto with the reason, and loads when asked for', async () => {
    const probe = await probeAdapter();
    expect('adapter' in probe && probe.adapter.software).toBe(true);
    const auto = await initBackend('auto');
    expect(auto.name).not.toBe('webgpu');
    expect(auto.skipped.find((s) => s.startsWith('webgpu:'))).toMatch(/^webgpu: only a software adapter \(.+\): auto uses webgpu on a hardware GPU only/);

    const gpu = await initBackend('webgpu');
    expect(gpu.name).toBe('webgpu');
    expect(tf.getBackend()).toBe('webgpu');
    expect(gpu.adapter?.software).toBe(true);
    expect(gpu.adapter!.limits.maxBufferSize).toBeGreaterThan(0);
    expect(gpu.detail).toContain(describeAdapter(gpu.adapter!));
  });

  it('sums more tensors in one AddN than a shader can bind (the replaced kernel), as the cpu backend does', async () => {
    const shapes = [
      [3, 5],
      [3, 5],
    ];
    const inputs = Array.from({ length: 23 }, (_, i) => rand(15, 100 + i));
    const run = async (backend: 'cpu' | 'webgpu', n: number) => {
      await initBackend(backend);
      const out = tf.tidy(() => tf.addN(inputs.slice(0, n).map((v) => tf.tensor2d(v, shapes[0] as [number, number]))));
      const vals = Float32Array.from(await out.data());
      out.dispose();
      return vals;
    };
    const before = tf.memory().numTensors;
    for (const n of [2, 7, 8, 23]) expectClose(await run('webgpu', n), await run('cpu', n), 1e-6);
    await initBackend('webgpu');
    expect(tf.memory().numTensors).toBe(before); // the partial sums are freed
  });

  it('computes a matmul and its gradient as the cpu backend does', async () => {
    const a = rand(48 * 40, 1);
    const b = rand(40 * 24, 2);
    const f = () => {
      const A = tf.tensor2d(a, [48, 40]);
      const B = tf.tensor2d(b, [40, 24]);
      const { value, grads } = tf.valueAndGrads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(tf.matMul(x, y))))([A, B]);
      return [value, ...grads];
    };
    const run = async (backend: 'cpu' | 'webgpu') => {
      await initBackend(backend);
      const outs = tf.tidy(f);
      const vals = await Promise.all(outs.map(async (t) => Float32Array.from(await t.data())));
      tf.dispose(outs);
      return vals;
    };
    const want = await run('cpu');
    const got = await run('webgpu');
    for (let i = 0; i < want.length; i++) expectClose(got[i], want[i], 1e-5);
  });
});

describeWebgpu('normlab backends', () => {
  it('lists webgpu with the software adapter, says auto skips it, and names what auto picks', () => {
    const bin = path.resolve(__dirname, '../../bin/normlab.js');
    const r = spawnSync(process.execPath, [bin, 'backends', '--json'], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as {
      auto: string;
      backends: { name: string; loads: boolean; detail: string; adapter?: GpuAdapter; auto: { used: boolean; skipped?: string } }[];
    };
    expect(out.backends.map((b) => b.name)).toEqual(['tensorflow', 'webgpu', 'wasm', 'cpu']);
    const gpu = out.backends.find((b) => b.name === 'webgpu')!;
    expect(gpu.loads).toBe(true);
    expect(gpu.adapter?.software).toBe(true);
    expect(gpu.auto).toEqual({ used: false, skipped: 'a software adapter: auto uses webgpu on a hardware GPU only' });
    expect(out.backends.find((b) => b.name === 'cpu')!.loads).toBe(true);
    expect(out.auto).toBe(out.backends.find((b) => b.auto.used)!.name);
    expect(['tensorflow', 'wasm', 'cpu']).toContain(out.auto);
  });
});
