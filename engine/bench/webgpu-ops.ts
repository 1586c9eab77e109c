/**
 * Forward + backward time of the ops NormLab's WGSL kernels fuse last, on the current webgpu
 * adapter, against the paths they replace: causal self-attention from GPT-2's packed qkv (B, T, 3C)
 * through the packed kernel, through split heads + the heads-major kernel, and on tfjs's stock
 * kernels; RoPE through its kernel and on the stock kernels. The cases run interleaved, REPS times
 * after one untimed round (shader compiles); each prints its fastest wall and process-CPU time.
 *
 *   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json npx tsx engine/bench/webgpu-ops.ts
 *
 * FWD=1 times the forward alone; REPS (default 8) sets the rounds. On a software adapter the
 * times are only relative.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../backend/backend.js';
import { setWebgpuFusedKernels } from '../backend/fused-ops.js';
import { attention, packedSelfAttention, rope } from '../nn/ops.js';
import { seededNormal } from '../nn/random.js';

const [B, T, H, hs] = [4, 128, 4, 32]; // the bench LM's attention (d 128, 4 heads), batch 4
const C = H * hs;
const REPS = Number(process.env.REPS ?? 8);
const forwardOnly = Boolean(process.env.FWD);

await initBackend('webgpu');
const qkv = seededNormal([B, T, 3 * C], 0, 1, 1);
const x = seededNormal([B, H, T, hs], 0, 1, 2);
const cos = seededNormal([T, hs], 0, 1, 3) as tf.Tensor2D;
const sin = seededNormal([T, hs], 0, 1, 4) as tf.Tensor2D;

/** The path packedSelfAttention took before the packed kernel: split, heads-major attention, merge. */
function splitHeads(t: tf.Tensor3D): tf.Tensor {
  const heads = (u: tf.Tensor) => tf.transpose(tf.reshape(u, [B, T, H, hs]), [0, 2, 1, 3]) as tf.Tensor4D; // (B, T, C) -> (B, H, T, hs)
  const [q, k, v] = tf.split(t, 3, -1);
  return tf.reshape(tf.transpose(attention(heads(q), heads(k), heads(v), true), [0, 2, 1, 3]), [B, T, C]);
}

const cases: { name: string; fused: boolean; f: (t: tf.Tensor) => tf.Tensor; input: tf.Tensor }[] = [
  { name: 'attention, packed-qkv kernel', fused: true, f: (t) => packedSelfAttention(t as tf.Tensor3D, H, true), input: qkv },
  { name: 'attention, split heads + heads-major kernel', fused: true, f: (t) => splitHeads(t as tf.Tensor3D), input: qkv },
  { name: 'attention, tfjs stock kernels', fused: false, f: (t) => packedSelfAttention(t as tf.Tensor3D, H, true), input: qkv },
  { name: 'rope, kernel', fused: true, f: (t) => rope(t, cos, sin), input: x },
  { name: 'rope, tfjs stock kernels', fused: false, f: (t) => rope(t, cos, sin), input: x },
];

const best = cases.map(() => ({ wall: Infinity, cpu: Infinity }));
for (let round = 0; round <= REPS; round++) {
  for (const [i, c] of cases.entries()) {
    setWebgpuFusedKernels(c.fused);
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const outs = tf.tidy(() => {
      if (forwardOnly) return [c.f(c.input)];
      const { value, grad } = tf.valueAndGrad((t: tf.Tensor) => tf.sum(tf.square(c.f(t))))(c.input);
      return [value, grad];
    });
    await Promise.all(outs.map((o) => o.data()));
    tf.dispose(outs);
    const cpu = process.cpuUsage(cpu0);
    if (round === 0) continue; // compiles the shaders
    best[i].wall = Math.min(best[i].wall, performance.now() - t0);
    best[i].cpu = Math.min(best[i].cpu, (cpu.user + cpu.system) / 1000);
  }
}
setWebgpuFusedKernels(true);
const what = `${forwardOnly ? 'forward' : 'forward + backward'}, B ${B} T ${T} H ${H} hs ${hs}, causal`;
for (const [i, c] of cases.entries()) console.log(`${c.name}: ${best[i].wall.toFixed(0)} ms (${best[i].cpu.toFixed(0)} CPU ms), ${what}`);
