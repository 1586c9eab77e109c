/**
 * LayerNorm and RMSNorm over the last axis as WGSL kernels: the forward's row statistics (mean,
 * rstd) and the backward's dx each reduce one row per workgroup; y and the gamma / beta gradients
 * are element-wise.
 */
import * as tf from '@tensorflow/tfjs-core';
import { EACH, float, int, ROW_WG, run, type KernelBody, type Uniform } from './program.js';

export const normKernels: Record<string, KernelBody> = {
  /** y = (x - mean) rstd gamma + beta over the last axis; RMSNorm: mean 0. Outputs y, mean, rstd. */
  NormLabNorm(be, { x, gamma, beta }, { eps, rms }) {
    const C = x!.shape[x!.shape.length - 1];
    const rows = tf.util.sizeFromShape(x!.shape) / C;
    const dims: Uniform[] = [int(rows), int(C)];
    const rowLoop = (acc: string) => `var acc = 0.0;
        for (var c = i32(localId.x); c < uniforms.C; c = c + ${ROW_WG}) { ${acc} }`;
    const mean = rms
      ? run(be, { key: 'norm_mean0', inputs: ['x'], n: rows, body: `${EACH}\n        result[i] = 0.0;` }, [x!], [], [rows])
      : run(
          be,
          {
            key: 'norm_mean',
            inputs: ['x'],
            n: rows,
            rows,
            uniforms: 'R : i32, C : i32,',
            body: `let r = nlRow();
        let base = min(r, uniforms.R - 1) * uniforms.C;
        ${rowLoop('acc = acc + x[base + c];')}
        let s = nlWgSum(acc);
        if (localId.x == 0u && r < uniforms.R) { result[r] = s / f32(uniforms.C); }`,
          },
          [x!],
          dims,
          [rows],
        );
    const rstd = run(
      be,
      {
        key: 'norm_rstd',
        inputs: ['x', 'mean'],
        n: rows,
        rows,
        uniforms: 'R : i32, C : i32, eps : f32,',
        body: `let r = nlRow();
        let rr = min(r, uniforms.R - 1);
        let base = rr * uniforms.C;
        let mu = mean[rr];
        ${rowLoop('let d = x[base + c] - mu; acc = acc + d * d;')}
        let s = nlWgSum(acc);
        if (localId.x == 0u && r < uniforms.R) { result[r] = 1.0 / sqrt(s / f32(uniforms.C) + uniforms.eps); }`,
      },
      [x!, mean],
      [...dims, float(eps as number)],
      [rows],
    );
    const names = ['x', 'mean', 'rstd', ...(gamma ? ['gamma'] : []), ...(beta ? ['beta'] : [])];
    const affine = `${gamma ? ' * gamma[c]' : ''}${beta ? ' + beta[c]' : ''}`;
    const y = run(
      be,
      {
        key: `norm_y_${gamma ? 'g' : ''}${beta ? 'b' : ''}`,
        inputs: names,
        n: rows * C,
        uniforms: 'C : i32,',
        body: `${EACH}\n        let r = i / uniforms.C;\n        let c = i - r * uniforms.C;\n        result[i] = (x[i] - mean[r]) * rstd[r]${affine};`,
      },
      [x!, mean, rstd, ...(gamma ? [gamma] : []), ...(beta ? [beta] : [])],
      [int(C)],
      x!.shape,
    );
    return [y, mean, rstd];
  },

  /**
   * xhat = (x - mean) rstd, g = dy gamma: dx = rstd (g - mean(g) - xhat mean(g xhat)) (no mean(g)
   * for RMSNorm); dgamma = sum over rows of dy xhat, dbeta = sum of dy.
   */
  NormLabNormGrad(be, { x, gamma, mean, rstd, dy }, { rms }) {
    const C = x!.shape[x!.shape.length - 1];
    const rows = tf.util.sizeFromShape(x!.shape) / C;
    const g = gamma ? ' * gamma[c]' : '';
    const ins = [x!, mean!, rstd!, dy!, ...(gamma ? [gamma] : [])];
    const names = ['x', 'mean', 'rstd', 'dy', ...(gamma ? ['gamma'] : [])];
    const dx = run(
      be,
      {
        key: `norm_dx_${rms ? 'rms' : 'ln'}${gamma ? '_g' : ''}`,
        inputs: names,
        n: rows * C,
        rows,
        uniforms: 'R : i32, C : i32,',
        body: `let r = nlRow();
        let rr = min(r, uniforms.R - 1);
        let base = rr * uniforms.C;
        let mu = mean[rr];
        let rs = rstd[rr];
        var sg = 0.0;
        var sgx = 0.0;
        for (var c = i32(localId.x); c < uniforms.C; c = c + ${ROW_WG}) {
          let gi = dy[base + c]${g};
          sg = sg + gi;
          sgx = sgx + gi * (x[base + c] - mu) * rs;
        }
        let sumG = nlWgSum(sg);
        let mg = ${rms ? '0.0' : 'sumG / f32(uniforms.C)'};
        let mgx = nlWgSum(sgx) / f32(uniforms.C);
        if (r < uniforms.R) {
          for (var c = i32(localId.x); c < uniforms.C; c = c + ${ROW_WG}) {
            let xhat = (x[base + c] - mu) * rs;
            result[base + c] = rs * (dy[base + c]${g} - mg - xhat * mgx);
          }
        }`,
      },
      ins,
      [int(rows), int(C)],
      x!.shape,
    );
    const column = (key: string, term: string) =>
      run(
        be,
        {
          key,
          inputs: ['x', 'mean', 'rstd', 'dy'],
          n: C,
          uniforms: 'R : i32, C : i32,',
          body: `${EACH}\n        var acc = 0.0;\n        for (var r = 0; r < uniforms.R; r = r + 1) {\n          let j = r * uniforms.C + i;\n          acc = acc + ${term};\n        }\n        result[i] = acc;`,
        },
        [x!, mean!, rstd!, dy!],
        [int(rows), int(C)],
        [C],
      );
    return [dx, column('norm_dgamma', 'dy[j] * (x[j] - mean[r]) * rstd[r]'), column('norm_dbeta', 'dy[j]')];
  },
};
