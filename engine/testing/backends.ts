/** Helpers for tests that compare backends or kernels: seeded inputs, per-backend runs, tolerances. */
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';
import { initBackend } from '../backend/backend.js';
import { nativeKernels, setNativeKernels } from '../backend/native.js';
import { setFastWasmKernels } from '../backend/wasm-kernels.js';
import { AdamW } from '../nn/optim.js';
import { ParamSet } from '../nn/params.js';

/** Deterministic pseudo-random floats in [-scale, scale) (xorshift32). */
export function rand(n: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (((s >>> 0) / 2 ** 32) * 2 - 1) * scale;
  }
  return out;
}

export const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Run `f` on a backend and return every output's values (tensors are disposed). */
export async function on(backend: 'cpu' | 'wasm' | 'webgpu', f: () => tf.Tensor | tf.Tensor[]): Promise<Float32Array[]> {
  await initBackend(backend);
  const outs = tf.tidy(() => {
    const r = f();
    return Array.isArray(r) ? r : [r];
  });
  const vals = await Promise.all(outs.map(async (t) => Float32Array.from(await t.data())));
  tf.dispose(outs);
  return vals;
}

/** A test input: values and shape. */
export type Input = { v: Float32Array; shape: number[] };

/** f(inputs) and its gradients with respect to every input, under a fixed random weighting. */
export function valueAndGrads(f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: Input[], seed: number): () => tf.Tensor[] {
  return () => {
    const xs = inputs.map(({ v, shape }) => tf.tensor(v, shape));
    const y = f(...xs);
    const w = tf.tensor(rand(y.size, seed), y.shape);
    const g = tf.grads((...args: tf.Tensor[]) => tf.sum(tf.mul(f(...args), w)));
    return [y, ...g(xs)];
  };
}

/** max |got - want| relative to max(1, max |want|) is within tol. */
export function expectClose(got: Float32Array, want: Float32Array, tol = 1e-4): void {
  expect(got.length).toBe(want.length);
  let worst = 0;
  let scale = 1;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  expect(worst / scale).toBeLessThanOrEqual(tol);
}

/** Compare cpu (the reference) against wasm for one function, output by output. */
export async function compare(f: () => tf.Tensor | tf.Tensor[], tol = 1e-4): Promise<void> {
  const want = await on('cpu', f);
  const got = await on('wasm', f);
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) expectClose(got[i], want[i], tol);
}

/** The wasm backend's kernel sets: NormLab's native kernels, NormLab's wasm kernels, tfjs's stock ones. */
export type KernelSet = 'native' | 'wasm' | 'stock';

/** The kernel sets this machine has (native only where the addon loads), fastest first. */
export function kernelSets(): KernelSet[] {
  return nativeKernels() ? ['native', 'wasm', 'stock'] : ['wasm', 'stock'];
}

/** Run `f` with one kernel set registered, then restore the default (native where it loads). */
export async function withKernelSet<T>(set: KernelSet, f: () => T | Promise<T>): Promise<T> {
  setNativeKernels(set === 'native');
  setFastWasmKernels(set !== 'stock');
  try {
    return await f();
  } finally {
    setNativeKernels(true);
    setFastWasmKernels(true);
  }
}

/**
 * Four AdamW steps (weight decay 0.1) on two small parameters, returning the updated weights and
 * moments: one fixed probe for comparing an optimizer kernel across backends.
 */
export function adamwSteps(): tf.Tensor[] {
  const params = new ParamSet();
  const w = params.add('w', tf.tensor(rand(7 * 5, 17), [7, 5]));
  const b = params.add('b', tf.tensor(rand(5, 18), [5]));
  const opt = new AdamW(params, { weightDecay: 0.1 });
  for (let s = 0; s < 4; s++) {
    const grads = new Map<string, tf.Tensor>([
      ['w', tf.tensor(rand(35, 20 + s), [7, 5])],
      ['b', tf.tensor(rand(5, 30 + s), [5])],
    ]);
    opt.step(grads, 1e-2);
    tf.dispose([...grads.values()]);
  }
  const out = [w.clone(), b.clone(), opt.m.get('w')!.clone(), opt.v.get('b')!.clone()];
  opt.dispose();
  params.dispose();
  return out;
}
