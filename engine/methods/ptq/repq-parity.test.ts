/**
 * Parity with RepQ-ViT's own quantizer semantics, as ported to PyTorch in torch_check.py (`repq`):
 * log-√2 with its rounding, underflow and clipping search, the per-output-channel weight clipping
 * search, per-channel post-LN activation quantizers and the scale reparameterization. NormLab runs
 * the same searches when given RepQ-ViT's percentiles (its defaults add min/max as a candidate and
 * give log-√2 the same candidate budget as TanQ; docs/methods.md, "DopQ-ViT").
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Rng } from '../../data/rng.js';
import { hasTorch, PYTHON } from '../../testing/torch.js';
import { calibrateLogSqrt2, calibrateUniformPerChannel, quantizeWeight, REPQ_PERCENTILES, softmaxRoundTrip } from './quantizers.js';
import { foldLnReparam, targetScale } from './reparam.js';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Rows of softmax probabilities with mixed temperatures (a power law), float32. */
function probs(rows: number, T: number, rng: Rng): Float32Array {
  const out = new Float32Array(rows * T);
  for (let r = 0; r < rows; r++) {
    const temp = 0.5 + 4 * rng.next();
    const z = Array.from({ length: T }, () => rng.normal() * temp);
    const m = Math.max(...z);
    const e = z.map((v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    for (let t = 0; t < T; t++) out[r * T + t] = e[t] / s;
  }
  return out;
}

const f32 = (n: number, f: (i: number) => number) => Float32Array.from({ length: n }, (_, i) => f(i));
const relClose = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number) => {
  expect(a.length).toBe(b.length);
  const scale = Math.max(...Array.from(b, Math.abs), 1e-12);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i]) / scale, `index ${i}`).toBeLessThan(tol);
};

describe.skipIf(!hasTorch)("RepQ-ViT's quantizer semantics (PyTorch port in torch_check.py)", () => {
  it('log-√2, per-channel weight clipping and the post-LN reparameterization give what RepQ-ViT computes', () => {
    const rng = new Rng(5);
    const bits = 4;
    const P = probs(200, 30, rng);
    const [OUT, IN] = [6, 20];
    const W = f32(OUT * IN, (i) => rng.normal() * (1 + (i % IN === 3 ? 4 : 0)) * (0.5 + (Math.floor(i / IN) % 3))); // (out, in), an outlier column
    const [B, N, C] = [4, 10, 8];
    const A = f32(B * N * C, (i) => rng.normal() * (i % C === 5 ? 12 : 1 + (i % C) / 4) + (i % C) * 0.3); // (B, N, C), channel 5 an outlier
    const gamma = f32(C, () => 1 + 0.3 * rng.normal());
    const beta = f32(C, () => 0.2 * rng.normal());
    const NO = 5;
    const NW = f32(NO * C, () => 0.3 * rng.normal()); // (out, C), PyTorch's Linear layout
    const NB = f32(NO, () => 0.1 * rng.normal());
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'repq-'));
    const inp = path.join(dir, 'in.json');
    const out = path.join(dir, 'out.json');
    const rows = (x: Float32Array, r: number, c: number) => Array.from({ length: r }, (_, i) => Array.from(x.subarray(i * c, (i + 1) * c)));
    fs.writeFileSync(
      inp,
      JSON.stringify({
        bits,
        probs: Array.from(P),
        weight: rows(W, OUT, IN),
        act: Array.from({ length: B }, (_, b) => rows(A.subarray(b * N * C, (b + 1) * N * C), N, C)),
        ln_weight: Array.from(gamma),
        ln_bias: Array.from(beta),
        next_weight: rows(NW, NO, C),
        next_bias: Array.from(NB),
      }),
    );
    execFileSync(PYTHON, [path.join(here, 'torch_check.py'), 'repq', inp, out], { encoding: 'utf8' });
    const ref = JSON.parse(fs.readFileSync(out, 'utf8'));
    const transpose = (x: ArrayLike<number>, r: number, c: number) => f32(r * c, (i) => x[(i % r) * c + Math.floor(i / r)]); // (r, c) -> (c, r)

    // log-√2: the same Δ from the same three quantiles, the same dequantized values (zeros included).
    const lp = calibrateLogSqrt2(P, bits, { percentiles: REPQ_PERCENTILES });
    expect(Math.abs(lp.delta - ref.log_delta) / ref.log_delta).toBeLessThan(1e-6);
    relClose(
      Array.from(P, (x) => softmaxRoundTrip(x, lp)),
      ref.log_dequant,
      1e-6,
    );
    expect(Array.from(P, (x) => softmaxRoundTrip(x, lp)).filter((v) => v === 0).length).toBe(ref.log_dequant.filter((v: number) => v === 0).length);

    // Weights, per output channel: NormLab stores (in, out), PyTorch (out, in).
    const qw = quantizeWeight(transpose(W, OUT, IN), [IN, OUT], bits, REPQ_PERCENTILES);
    relClose(qw.scale, ref.w_delta, 1e-6);
    expect(Array.from(qw.zero)).toEqual(ref.w_zero);
    relClose(qw.dequant, transpose(ref.w_dequant.flat(), OUT, IN), 1e-5);

    // Post-LN activations per channel, then the reparameterization to their mean scale.
    const per = calibrateUniformPerChannel(A, C, bits, REPQ_PERCENTILES);
    const scales = per.map((p) => p.scale);
    const zeros = per.map((p) => p.zero);
    relClose(scales, ref.a_delta, 1e-6);
    expect(zeros).toEqual(ref.a_zero);
    const target = targetScale(scales, zeros, 'mean');
    expect(Math.abs(target.scale - ref.target_delta) / ref.target_delta).toBeLessThan(1e-6);
    expect(target.zero).toBeCloseTo(ref.target_zero, 6);
    const f = foldLnReparam({ gamma, beta }, { weight: transpose(NW, NO, C), bias: NB, out: NO }, scales, zeros, target);
    relClose(f.gamma, ref.ln_weight, 1e-5);
    relClose(f.beta, ref.ln_bias, 1e-5);
    relClose(f.weight, transpose(ref.next_weight.flat(), NO, C), 1e-5);
    relClose(f.bias, ref.next_bias, 1e-5);
  });
});
