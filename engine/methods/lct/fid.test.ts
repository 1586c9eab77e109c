import { execFileSync, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Rng } from '../../data/rng.js';
import { cIn, cOut, cSkip, cauchy, pseudoHuber } from './edm.js';
import { fidBootstrap, fidReference, frechetDistance, gaussianStats, sqrtPsd, symmetricEigen } from './fid.js';

const hasTorch = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
const here = path.dirname(fileURLToPath(import.meta.url));

function sample(rng: Rng, n: number, d: number, mix: number[][], shift: number[]): Float64Array {
  const out = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    const e = Array.from({ length: d }, () => rng.normal());
    for (let k = 0; k < d; k++) out[i * d + k] = shift[k] + mix[k].reduce((s, w, j) => s + w * e[j], 0);
  }
  return out;
}

describe('FID (Fréchet distance of Gaussian fits)', () => {
  it('is 0 for identical sets and (mu1-mu2)^2 + (s1-s2)^2 in one dimension', () => {
    const a = Float64Array.of(1, 2, 3, 4);
    const g = gaussianStats(a, 4, 1);
    expect(frechetDistance(g, g)).toBeCloseTo(0, 10);
    const b = Float64Array.of(2, 4, 6, 8); // mean 5 vs 2.5, std doubles
    const s1 = Math.sqrt(5 / 3);
    expect(frechetDistance(g, gaussianStats(b, 4, 1))).toBeCloseTo(2.5 ** 2 + (2 * s1 - s1) ** 2, 10);
  });

  it('reduces to sum (sqrt a - sqrt b)^2 for diagonal covariances', () => {
    const g1 = { mean: Float64Array.of(0, 0, 0), cov: Float64Array.of(4, 0, 0, 0, 1, 0, 0, 0, 9), d: 3, n: 10 };
    const g2 = { mean: Float64Array.of(1, 0, 0), cov: Float64Array.of(1, 0, 0, 0, 1, 0, 0, 0, 4), d: 3, n: 10 };
    expect(frechetDistance(g1, g2)).toBeCloseTo(1 + 1 + 0 + 1, 10);
  });

  it('square root of a symmetric PSD matrix squares back to it', () => {
    const rng = new Rng(5);
    const d = 6;
    const a = Array.from({ length: d * d }, () => rng.normal());
    const m = new Float64Array(d * d);
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) for (let k = 0; k < d; k++) m[i * d + j] += a[i * d + k] * a[j * d + k];
    const r = sqrtPsd(m, d);
    for (let i = 0; i < d; i++) {
      for (let j = 0; j < d; j++) {
        let s = 0;
        for (let k = 0; k < d; k++) s += r[i * d + k] * r[k * d + j];
        expect(s).toBeCloseTo(m[i * d + j], 8);
      }
    }
    const { values } = symmetricEigen(m, d);
    let tr = 0;
    for (let i = 0; i < d; i++) tr += m[i * d + i];
    expect(values.reduce((x, y) => x + y, 0)).toBeCloseTo(tr, 9);
  });

  it.skipIf(!hasTorch)('matches PyTorch (torch.cov + eigh) on correlated features, and the loss / EDM formulas', () => {
    const rng = new Rng(9);
    const d = 5;
    const mixA = Array.from({ length: d }, () => Array.from({ length: d }, () => rng.normal()));
    const mixB = Array.from({ length: d }, () => Array.from({ length: d }, () => rng.normal() * 0.7));
    const a = sample(rng, 200, d, mixA, [0, 1, 0, -1, 0.5]);
    const b = sample(rng, 150, d, mixB, [0.3, 0, 0, 0, 0]);
    const rows = (x: Float64Array, n: number) => Array.from({ length: n }, (_, i) => Array.from(x.subarray(i * d, i * d + d)));
    const m = [0, 1e-4, 0.01, 2.5];
    const c = 0.03;
    const sigmas = [0.002, 0.01, 0.5, 3, 80];
    const out = JSON.parse(
      execFileSync('/usr/bin/python3', [path.join(here, 'torch_check.py')], {
        input: JSON.stringify({ a: rows(a, 200), b: rows(b, 150), m, c, sigmas }),
      }).toString(),
    );
    expect(frechetDistance(gaussianStats(a, 200, d), gaussianStats(b, 150, d))).toBeCloseTo(out.fid, 8);
    m.forEach((v, i) => {
      expect(pseudoHuber(v, c)).toBeCloseTo(out.pseudo_huber[i], 12);
      expect(cauchy(v, c)).toBeCloseTo(out.cauchy[i], 10);
    });
    sigmas.forEach((s, i) => {
      expect(cSkip(s)).toBeCloseTo(out.c_skip[i], 12);
      expect(cOut(s)).toBeCloseTo(out.c_out[i], 12);
      expect(cIn(s)).toBeCloseTo(out.c_in[i], 12);
    });
  });
});

/** The first Python with numpy and scipy: NORMLAB_PYTHON, Debian's (CI installs python3-scipy), PATH's. */
const scipyPython =
  [process.env.NORMLAB_PYTHON, '/usr/bin/python3', 'python3'].find(
    (py) => py !== undefined && spawnSync(py, ['-c', 'import numpy, scipy'], { stdio: 'ignore' }).status === 0,
  ) ?? 'python3';
const hasScipy = spawnSync(scipyPython, ['-c', 'import numpy, scipy'], { stdio: 'ignore' }).status === 0;

describe('FID bootstrap standard error', () => {
  it.skipIf(!hasScipy)('matches numpy/scipy (pytorch-fid formula) on the same features and the same resample indices', () => {
    const rng = new Rng(21);
    const d = 4;
    const mixA = Array.from({ length: d }, () => Array.from({ length: d }, () => rng.normal()));
    const mixB = Array.from({ length: d }, () => Array.from({ length: d }, () => rng.normal() * 0.8));
    const [n, nRef, resamples, seed] = [40, 60, 7, 3];
    const gen = sample(rng, n, d, mixA, [0.5, 0, -0.5, 0]);
    const ref = sample(rng, nRef, d, mixB, [0, 0, 0, 0]);
    const b = fidBootstrap(gen, n, d, fidReference(gaussianStats(ref, nRef, d)), resamples, seed);
    // The indices bootstrapSE draws: one Rng(seed), n draws of int(n) per replicate.
    const draw = new Rng(seed);
    const indices = Array.from({ length: resamples }, () => Array.from({ length: n }, () => draw.int(n)));
    const rows = (x: Float64Array, m: number) => Array.from({ length: m }, (_, i) => Array.from(x.subarray(i * d, i * d + d)));
    const out = JSON.parse(
      execFileSync(scipyPython, [path.join(here, 'fid_bootstrap_check.py')], {
        input: JSON.stringify({ gen: rows(gen, n), ref: rows(ref, nRef), indices }),
      }).toString(),
    ) as { fid: number; replicates: number[]; se: number };
    expect(b.fid).toBeCloseTo(out.fid, 8);
    b.replicates.forEach((r, i) => expect(r).toBeCloseTo(out.replicates[i], 8));
    expect(b.se).toBeCloseTo(out.se, 8);
    expect(b.resamples).toBe(resamples);
    // The same seed gives the same SE.
    expect(fidBootstrap(gen, n, d, fidReference(gaussianStats(ref, nRef, d)), resamples, seed).se).toBe(b.se);
  });
});
