import { describe, expect, it } from 'vitest';
import { Rng } from '../../data/rng.js';
import { assignment, otCost, otCouple } from './ot.js';

function permutations(n: number): number[][] {
  if (n === 1) return [[0]];
  const out: number[][] = [];
  for (const p of permutations(n - 1)) for (let i = 0; i <= p.length; i++) out.push([...p.slice(0, i), n - 1, ...p.slice(i)]);
  return out;
}

const costOf = (cost: number[][], perm: ArrayLike<number>) => Array.from(perm).reduce((s, c, r) => s + cost[r][c], 0);

describe('minibatch OT coupling', () => {
  it('finds the brute-force optimum on small batches', () => {
    const rng = new Rng(3);
    for (let trial = 0; trial < 40; trial++) {
      const B = 2 + (trial % 6); // 2..7
      const D = 1 + (trial % 4);
      const x = Float32Array.from({ length: B * D }, () => rng.normal());
      const z = Float32Array.from({ length: B * D }, () => rng.normal());
      const cost = otCost(x, z, B, D);
      const perm = assignment(cost);
      expect([...perm].sort((a, b) => a - b)).toEqual([...Array(B).keys()]);
      const best = Math.min(...permutations(B).map((p) => costOf(cost, p)));
      expect(costOf(cost, perm)).toBeCloseTo(best, 10);
    }
  });

  it('normalizes the squared-distance cost by its max', () => {
    const cost = otCost(Float32Array.of(0, 0, 1, 0), Float32Array.of(0, 0, 3, 0), 2, 2);
    // squared distances: [[0, 9], [1, 4]] / 9
    expect(cost).toEqual([
      [0, 1],
      [1 / 9, 4 / 9],
    ]);
  });

  it('pairs each latent with its assigned noise row and keeps the latents in place', () => {
    // x = [0, 10], z = [9, 1]: the optimum pairs 0 <-> 1 and 10 <-> 9
    const { noise, perm } = otCouple(Float32Array.of(0, 10), Float32Array.of(9, 1), 2, 1);
    expect(Array.from(perm)).toEqual([1, 0]);
    expect(Array.from(noise)).toEqual([1, 9]);
  });
});
