/**
 * Seeded pseudo-random numbers (mulberry32), deterministic per seed and resumable: the whole
 * state is one uint32 (`state()` / `restore()`), so a resumed run continues the same sequence.
 * Not for cryptography.
 */
import { fail } from '../core/errors.js';

/** Mix any number (or string) into a well-spread uint32 seed (splitmix32-style finalizer). */
export function hashSeed(seed: number | string): number {
  let h: number;
  if (typeof seed === 'string') {
    h = 0x811c9dc5;
    for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 0x01000193);
  } else {
    if (!Number.isFinite(seed)) fail('config', `seed must be a finite number, got ${seed}`);
    // Keep integer seeds above 2^32 distinct from their low bits.
    h = (seed >>> 0) ^ Math.imul(Math.floor(seed / 4294967296) >>> 0, 0x9e3779b1);
  }
  h = Math.imul(h ^ (h >>> 16), 0x21f0aaad);
  h = Math.imul(h ^ (h >>> 15), 0x735a2d97);
  return (h ^ (h >>> 15)) >>> 0;
}

export class Rng {
  private s: number;

  constructor(seed: number | string) {
    this.s = hashSeed(seed);
  }

  /** Uniform in [0, 1), 32 bits of resolution. */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform integer in [0, n); n a positive integer ≤ 2^32. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 4294967296) fail('config', `Rng.int: n must be an integer in [1, 2^32], got ${n}`);
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box–Muller; two uniforms per call, so the state stays one number). */
  normal(): number {
    let u = this.next();
    while (u === 0) u = this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Fisher–Yates shuffle in place; returns the same array. */
  shuffle<A extends { length: number; [i: number]: unknown }>(array: A): A {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = array[i];
      array[i] = array[j];
      array[j] = tmp;
    }
    return array;
  }

  /** The generator's state, to store in a checkpoint. */
  state(): number {
    return this.s;
  }

  /** Continue from a state returned by `state()`. */
  restore(state: number): void {
    if (!Number.isInteger(state) || state < 0 || state > 0xffffffff) fail('config', `invalid RNG state ${state}`);
    this.s = state >>> 0;
  }
}
