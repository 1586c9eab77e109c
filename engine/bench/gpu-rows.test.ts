import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, expect, it } from 'vitest';
import { initBackend } from '../backend/backend.js';
import { describeWebgpu } from '../testing/webgpu.js';
import { benchMatmul, gpuMemory, GpuMemoryWatch } from './gpu-rows.js';

describeWebgpu('the bench rows for webgpu (software Vulkan)', () => {
  beforeAll(async () => {
    await initBackend('webgpu');
  }, 120_000);

  it('the memory watch sees a tensor kept across rows as live growth, and none once it is disposed', async () => {
    const watch = new GpuMemoryWatch();
    const kept = tf.fill([1024, 256], 1); // 1 MiB of float32
    await kept.data(); // on the device for sure
    watch.sample();
    const held = watch.report();
    expect(held.liveGrowthMiB).toBeCloseTo(1, 5);
    expect(held.peakAllocatedMiB).toBeGreaterThanOrEqual(1);
    kept.dispose();
    const after = watch.report();
    expect(after.liveGrowthMiB).toBeCloseTo(0, 5);
    expect(after.peakLiveMiB).toBeGreaterThanOrEqual(held.now.liveBytes / 2 ** 20); // the peak stays
  });

  it('matmul throughput is measured without leaving tensors behind', async () => {
    const before = gpuMemory()!;
    const gflops = await benchMatmul(64, 2);
    expect(Number.isFinite(gflops) && gflops > 0).toBe(true);
    expect(gpuMemory()!.tensors).toBe(before.tensors);
  });
});
