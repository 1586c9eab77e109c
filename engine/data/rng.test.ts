import { describe, it, expect } from 'vitest';
import { NormLabError } from '../core/errors.js';
import { hashSeed, Rng } from './rng.js';

const draw = (r: Rng, n: number): number[] => Array.from({ length: n }, () => r.next());

describe('Rng', () => {
  it('gives the same sequence for the same seed and different ones for different seeds', () => {
    expect(draw(new Rng(42), 20)).toEqual(draw(new Rng(42), 20));
    expect(draw(new Rng(42), 20)).not.toEqual(draw(new Rng(43), 20));
    expect(draw(new Rng(0), 5)).not.toEqual(draw(new Rng(2 ** 32), 5));
    expect(draw(new Rng('a'), 5)).toEqual(draw(new Rng('a'), 5));
    expect(hashSeed(1)).not.toBe(hashSeed(2));
  });

  it('keeps next() in [0, 1) with a uniform mean and int(n) in [0, n)', () => {
    const r = new Rng(1);
    const xs = draw(r, 20000);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    expect(Math.abs(xs.reduce((a, b) => a + b, 0) / xs.length - 0.5)).toBeLessThan(0.01);
    const counts = new Array(7).fill(0);
    for (let i = 0; i < 7000; i++) counts[r.int(7)]++;
    for (const c of counts) expect(c).toBeGreaterThan(850);
    expect(() => r.int(0)).toThrow(NormLabError);
    expect(() => r.int(2.5)).toThrow(NormLabError);
  });

  it('draws standard normals (mean 0, variance 1)', () => {
    const r = new Rng(7);
    const xs = Array.from({ length: 20000 }, () => r.normal());
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length;
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(variance - 1)).toBeLessThan(0.05);
    expect(xs.every(Number.isFinite)).toBe(true);
  });

  it('shuffles in place to a permutation, deterministically', () => {
    const a = Array.from({ length: 50 }, (_, i) => i);
    const b = new Int32Array(a);
    new Rng(3).shuffle(a);
    new Rng(3).shuffle(b);
    expect(Array.from(b)).toEqual(a);
    expect([...a].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(a).not.toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('continues the same sequence after state()/restore()', () => {
    const r = new Rng(9);
    draw(r, 10);
    const s = r.state();
    const expected = draw(r, 10);
    const resumed = new Rng(123);
    resumed.restore(s);
    expect(draw(resumed, 10)).toEqual(expected);
    expect(() => resumed.restore(-1)).toThrow(NormLabError);
  });
});
