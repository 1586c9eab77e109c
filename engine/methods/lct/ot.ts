/**
 * Improvement 3 of Dao et al. 2025: minibatch optimal-transport coupling. Each latent x0_i is
 * paired with a noise sample z_{pi(i)} by the exact assignment pi minimizing
 * sum_i ||x0_i - z_{pi(i)}||^2 over the batch (cost matrix normalized by its max, as the paper's
 * code does; normalization does not change the optimum). Latents keep their order (and labels);
 * the noise rows are permuted. The assignment is the `munkres` package's Hungarian algorithm.
 */
import munkres from 'munkres';
import { fail } from '../../core/errors.js';

/** Squared-distance cost matrix (B x B) between rows of x (B, D) and z (B, D), divided by its max. */
export function otCost(x: Float32Array, z: Float32Array, B: number, D: number): number[][] {
  if (x.length !== B * D || z.length !== B * D) fail('shape', `OT coupling: expected two ${B}x${D} batches, got ${x.length} and ${z.length} values`);
  const cost: number[][] = [];
  let max = 0;
  for (let i = 0; i < B; i++) {
    const row = new Array<number>(B);
    for (let j = 0; j < B; j++) {
      let s = 0;
      for (let k = 0; k < D; k++) {
        const d = x[i * D + k] - z[j * D + k];
        s += d * d;
      }
      row[j] = s;
      if (s > max) max = s;
    }
    cost.push(row);
  }
  if (max > 0) for (const row of cost) for (let j = 0; j < B; j++) row[j] /= max;
  return cost;
}

/** The optimal assignment of a square cost matrix: perm[i] = column given to row i. */
export function assignment(cost: number[][]): Int32Array {
  const n = cost.length;
  const perm = new Int32Array(n).fill(-1);
  for (const [r, c] of munkres(cost)) perm[r] = c;
  if (perm.some((c) => c < 0)) fail('internal', 'OT coupling: the assignment left a row unmatched');
  return perm;
}

/** Reorder the noise rows so z_out[i] = z[perm[i]] with perm the OT assignment of x to z. */
export function otCouple(x: Float32Array, z: Float32Array, B: number, D: number): { noise: Float32Array; perm: Int32Array } {
  const perm = assignment(otCost(x, z, B, D));
  const noise = new Float32Array(B * D);
  for (let i = 0; i < B; i++) noise.set(z.subarray(perm[i] * D, perm[i] * D + D), i * D);
  return { noise, perm };
}
