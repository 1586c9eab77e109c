/**
 * Seeded random tensors: the only place engine code calls tfjs's random ops (an ESLint rule
 * enforces it). tfjs takes a numeric seed but treats a falsy one as "no seed" and draws from
 * `Math.random()` instead (tfjs-core's `rand_util`: `seed ? seed : Math.random()`), so seed 0 —
 * every job's default seed, and what `paramSeed` or a per-step seed can come to — gave
 * different numbers on every call. Here seed 0 goes to tfjs as -1, a seed no caller passes
 * (seeds are integers ≥ 0); every other seed goes through unchanged.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../core/errors.js';

/** The seed tfjs gets for `seed` (an integer ≥ 0): never falsy. */
export function tfjsSeed(seed: number): number {
  if (!Number.isSafeInteger(seed) || seed < 0) fail('internal', `random seed must be an integer ≥ 0, got ${seed}`);
  return seed === 0 ? -1 : seed;
}

/** N(mean, std^2) samples of `shape`, the same for the same seed. */
export function seededNormal(shape: number[], mean: number, std: number, seed: number): tf.Tensor {
  // eslint-disable-next-line no-restricted-syntax -- the one call of tfjs's normal sampler, with a seed it keeps
  return tf.randomNormal(shape, mean, std, 'float32', tfjsSeed(seed));
}

/** Uniform samples in [min, max) of `shape`, the same for the same seed. */
export function seededUniform(shape: number[], min: number, max: number, seed: number): tf.Tensor {
  // eslint-disable-next-line no-restricted-syntax -- the one call of tfjs's uniform sampler, with a seed it keeps
  return tf.randomUniform(shape, min, max, 'float32', tfjsSeed(seed));
}
