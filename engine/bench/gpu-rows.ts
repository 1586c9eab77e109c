/**
 * The bench's GPU-only measurements (`normlab --backend webgpu bench`, ./bench.ts): matmul
 * throughput and the device memory tfjs holds. A software adapter (SwiftShader, lavapipe) is
 * about a thousand times slower than a GPU, so there the sizes shrink and the rows say so.
 */
import * as tf from '@tensorflow/tfjs-core';
import { seededUniform } from '../nn/random.js';

/** Square matmul size on a GPU, and on a software adapter. */
export const MATMUL_N = 4096;
export const MATMUL_N_SOFTWARE = 256;

/**
 * GFLOP/s of an n x n x n float32 matmul (2 n^3 flops each), `iters` in a row after one warm-up
 * (which compiles the shader). Only one element of the last product is read: the device runs
 * the queue in order, so that read waits for every product.
 */
export async function benchMatmul(n: number, iters: number): Promise<number> {
  const a = seededUniform([n, n], -1, 1, 1);
  const b = seededUniform([n, n], -1, 1, 2);
  const product = () => tf.tidy(() => tf.matMul(a, b));
  const readOne = async (c: tf.Tensor) => {
    const corner = tf.slice(c, [0, 0], [1, 1]);
    await corner.data();
    corner.dispose();
    c.dispose();
  };
  try {
    await readOne(product());
    const t0 = performance.now();
    let last: tf.Tensor | null = null;
    for (let i = 0; i < iters; i++) {
      last?.dispose();
      last = product();
    }
    await readOne(last!);
    const s = (performance.now() - t0) / 1000;
    return (2 * n ** 3 * iters) / s / 1e9;
  } finally {
    tf.dispose([a, b]);
  }
}

/** The device memory of the webgpu backend: held by live tensors, and allocated (live + pooled). */
export interface GpuMemory {
  liveBytes: number;
  allocatedBytes: number;
  tensors: number;
}

/** tf.memory() on webgpu; null on other backends. */
export function gpuMemory(): GpuMemory | null {
  if (tf.getBackend() !== 'webgpu') return null;
  const m = tf.memory() as tf.MemoryInfo & { numBytesInGPU?: number; numBytesAllocatedInGPU?: number };
  return { liveBytes: m.numBytesInGPU ?? 0, allocatedBytes: m.numBytesAllocatedInGPU ?? 0, tensors: m.numTensors };
}

const MiB = 2 ** 20;

/** "12.0 MiB live (34 tensors), 512.0 MiB allocated" */
export function describeGpuMemory(m: GpuMemory): string {
  return `${(m.liveBytes / MiB).toFixed(1)} MiB live (${m.tensors} tensors), ${(m.allocatedBytes / MiB).toFixed(1)} MiB allocated`;
}

/**
 * Tracks the webgpu backend's memory across the bench's rows: the highest allocation seen and
 * whether live memory came back to where it started (a row that leaks tensors would not).
 */
export class GpuMemoryWatch {
  private readonly start: GpuMemory;
  private peakAllocated: number;
  private peakLive: number;

  constructor() {
    this.start = gpuMemory() ?? { liveBytes: 0, allocatedBytes: 0, tensors: 0 };
    this.peakAllocated = this.start.allocatedBytes;
    this.peakLive = this.start.liveBytes;
  }

  /** Take a reading (after each row). */
  sample(): void {
    const m = gpuMemory();
    if (!m) return;
    this.peakAllocated = Math.max(this.peakAllocated, m.allocatedBytes);
    this.peakLive = Math.max(this.peakLive, m.liveBytes);
  }

  /** The gpu_memory row's numbers: peak allocation, and live bytes gained since the start. */
  report(): { peakAllocatedMiB: number; peakLiveMiB: number; liveGrowthMiB: number; now: GpuMemory } {
    this.sample();
    const now = gpuMemory() ?? this.start;
    return {
      peakAllocatedMiB: this.peakAllocated / MiB,
      peakLiveMiB: this.peakLive / MiB,
      liveGrowthMiB: (now.liveBytes - this.start.liveBytes) / MiB,
      now,
    };
  }
}
