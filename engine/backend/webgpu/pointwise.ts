/**
 * NormLab's element-wise WGSL kernels (one thread per output element): GELU, SwiGLU's gate and
 * rotary position embedding, forward and backward, and the AdamW update.
 */
import * as tf from '@tensorflow/tfjs-core';
import { EACH, float, int, run, type KernelBody } from './program.js';

const GELU_TANH = 'let u = 0.7978845608028654 * (v + 0.044715 * v * v * v);';

export const pointwiseKernels: Record<string, KernelBody> = {
  NormLabGelu(be, { x }, { tanh }) {
    const n = tf.util.sizeFromShape(x!.shape);
    const y = tanh ? `${GELU_TANH}\n        result[i] = 0.5 * v * (1.0 + nlTanh(u));` : 'result[i] = 0.5 * v * (1.0 + nlErf(v * 0.7071067811865476));';
    return [run(be, { key: `gelu_${tanh ? 'tanh' : 'erf'}`, inputs: ['x'], n, body: `${EACH}\n        let v = x[i];\n        ${y}` }, [x!], [], x!.shape)];
  },

  /** d/dx of GELU: tanh form 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3c x^2); erf form Phi(x) + x phi(x). */
  NormLabGeluGrad(be, { x, dy }, { tanh }) {
    const n = tf.util.sizeFromShape(x!.shape);
    const d = tanh
      ? `${GELU_TANH}\n        let t = nlTanh(u);\n        let d = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * v * v);`
      : 'let d = 0.5 * (1.0 + nlErf(v * 0.7071067811865476)) + v * exp(-0.5 * v * v) * 0.3989422804014327;';
    return [
      run(
        be,
        {
          key: `gelu_grad_${tanh ? 'tanh' : 'erf'}`,
          inputs: ['x', 'dy'],
          n,
          body: `${EACH}\n        let v = x[i];\n        ${d}\n        result[i] = dy[i] * d;`,
        },
        [x!, dy!],
        [],
        x!.shape,
      ),
    ];
  },

  NormLabSwiGLU(be, { gate, up }) {
    const n = tf.util.sizeFromShape(gate!.shape);
    return [
      run(
        be,
        { key: 'swiglu', inputs: ['gate', 'up'], n, body: `${EACH}\n        let g = gate[i];\n        result[i] = g * nlSigmoid(g) * up[i];` },
        [gate!, up!],
        [],
        gate!.shape,
      ),
    ];
  },

  /** dg = dy u s (1 + g (1 - s)), du = dy g s, s = sigmoid(g). */
  NormLabSwiGLUGrad(be, { gate, up, dy }) {
    const n = tf.util.sizeFromShape(gate!.shape);
    const pre = `${EACH}\n        let g = gate[i];\n        let s = nlSigmoid(g);`;
    const ins = [gate!, up!, dy!];
    return [
      run(
        be,
        { key: 'swiglu_dg', inputs: ['gate', 'up', 'dy'], n, body: `${pre}\n        result[i] = dy[i] * up[i] * s * (1.0 + g * (1.0 - s));` },
        ins,
        [],
        gate!.shape,
      ),
      run(be, { key: 'swiglu_du', inputs: ['gate', 'up', 'dy'], n, body: `${pre}\n        result[i] = dy[i] * g * s;` }, ins, [], gate!.shape),
    ];
  },

  /**
   * Rotary embedding in the rotate-half form (Su et al. 2021, eq. 34) of x (..., T, hs) with cos and
   * sin (T, hs): y = x cos + rotate_half(x) sin, rotate_half(x) = (-x[hs/2:], x[:hs/2]). `backward`
   * maps dy (passed as x) to dx = dy cos + rotate_half^T(dy sin): (dy1 c1 + dy2 s2, dy2 c2 - dy1 s1).
   */
  NormLabRope(be, { x, cos, sin }, { backward }) {
    const [T, hs] = cos!.shape;
    const n = tf.util.sizeFromShape(x!.shape);
    const [lo, hi] = backward
      ? ['x[i] * cos[t + c] + x[i + h] * sin[t + c + h]', 'x[i] * cos[t + c] - x[i - h] * sin[t + c - h]']
      : ['x[i] * cos[t + c] - x[i + h] * sin[t + c]', 'x[i] * cos[t + c] + x[i - h] * sin[t + c]'];
    return [
      run(
        be,
        {
          key: `rope_${backward ? 'bwd' : 'fwd'}`,
          inputs: ['x', 'cos', 'sin'],
          n,
          uniforms: 'T : i32, hs : i32,',
          body: `${EACH}
        let row = i / uniforms.hs;
        let c = i - row * uniforms.hs;
        let t = (row % uniforms.T) * uniforms.hs;
        let h = uniforms.hs / 2;
        if (c < h) { result[i] = ${lo}; } else { result[i] = ${hi}; }`,
        },
        [x!, cos!, sin!],
        [int(T), int(hs)],
        x!.shape,
      ),
    ];
  },

  /** m' = b1 m + (1 - b1) g, v' = b2 v + (1 - b2) g^2, p' = p - lr (m'/bc1 / (sqrt(v'/bc2) + eps) + wd p). */
  NormLabAdamW(be, { p, g, m, v }, { lr, beta1, beta2, eps, weightDecay, bc1, bc2 }) {
    const n = tf.util.sizeFromShape(p!.shape);
    const uniforms = 'lr : f32, b1 : f32, b2 : f32, eps : f32, wd : f32, ib1 : f32, ib2 : f32,';
    const values = [lr, beta1, beta2, eps, weightDecay, 1 / (bc1 as number), 1 / (bc2 as number)].map((u) => float(u as number));
    const pre = `${EACH}
        let gi = g[i];
        let mi = uniforms.b1 * m[i] + (1.0 - uniforms.b1) * gi;
        let vi = uniforms.b2 * v[i] + (1.0 - uniforms.b2) * gi * gi;`;
    const one = (key: string, out: string) =>
      run(be, { key, inputs: ['p', 'g', 'm', 'v'], n, uniforms, body: `${pre}\n        ${out}` }, [p!, g!, m!, v!], values, p!.shape);
    return [
      one('adamw_p', 'result[i] = p[i] - uniforms.lr * (mi * uniforms.ib1 / (sqrt(vi * uniforms.ib2) + uniforms.eps) + uniforms.wd * p[i]);'),
      one('adamw_m', 'result[i] = mi;'),
      one('adamw_v', 'result[i] = vi;'),
    ];
  },
};
