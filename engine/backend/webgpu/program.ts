/**
 * How NormLab's WGSL kernels run: each is one or more compute programs handed to
 * tfjs-backend-webgpu's program API (`runWebGPUProgram`), built from a `Spec` (inputs, output
 * size, uniforms, WGSL body) plus the helpers every program shares (erf, tanh, sigmoid, and the
 * workgroup sum / max of the row reductions).
 *
 * A tfjs-webgpu program has one output, so a kernel with several outputs runs one program per
 * output. Row reductions run one workgroup per row and reduce in workgroup memory; the rest are
 * element-wise (one thread per output element, or per `threads` when each writes several).
 * Inputs are passed as flat views of their buffers (same data, shape [n]), which keeps the
 * programs' uniforms independent of the tensors' ranks.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';

export type Attrs = Record<string, number | boolean>;
export type Uniform = { type: 'int32' | 'float32'; data: number[] };

/** Threads per workgroup: element-wise programs, and the row reductions. */
const FLAT_WG = 128;
export const ROW_WG = 64;

/** The same buffer seen as 1-D (no copy). */
function flat(t: tf.TensorInfo): tf.TensorInfo {
  return { dataId: t.dataId, shape: [tf.util.sizeFromShape(t.shape)], dtype: t.dtype };
}

/** Workgroups for `n` of something, spread over y and z past the 65535 limit of one dimension. */
function dispatchFor(n: number): [number, number, number] {
  const MAX = 65535;
  if (n <= MAX) return [n, 1, 1];
  const y = Math.ceil(n / MAX);
  if (y <= MAX) return [MAX, y, 1];
  return [MAX, MAX, Math.ceil(n / (MAX * MAX))];
}

/** The WGSL helpers every program gets: erf, a saturating tanh, exp, and workgroup sum / max. */
const COMMON = /* wgsl */ `
  // erf(x) as x P(x^2) / Q(x^2) on [-4, 4], saturated outside: the rational approximation of
  // Eigen and XLA, which the native kernels use too.
  fn nlErf(x0 : f32) -> f32 {
    let x = clamp(x0, -4.0, 4.0);
    let x2 = x * x;
    var p = -2.72614225801306e-10;
    p = p * x2 + 2.77068142495902e-08;
    p = p * x2 + -2.10102402082508e-06;
    p = p * x2 + -5.69250639462346e-05;
    p = p * x2 + -7.34990630326855e-04;
    p = p * x2 + -2.95459980854025e-03;
    p = p * x2 + -1.60960333262415e-02;
    var q = -1.45660718464996e-05;
    q = q * x2 + -2.13374055278905e-04;
    q = q * x2 + -1.68282697438203e-03;
    q = q * x2 + -7.37332916720468e-03;
    q = q * x2 + -1.42647390514189e-02;
    return x * p / q;
  }
  // tanh(u) = 1 - 2 / (exp(2u) + 1): no NaN at large |u|, where some drivers' tanh gives one.
  fn nlTanh(u : f32) -> f32 {
    return 1.0 - 2.0 / (exp(2.0 * clamp(u, -40.0, 40.0)) + 1.0);
  }
  fn nlSigmoid(x : f32) -> f32 {
    return 1.0 / (1.0 + exp(-clamp(x, -80.0, 80.0)));
  }
`;

const ROW_REDUCE = /* wgsl */ `
  var<workgroup> nlRed : array<f32, ${ROW_WG}>;
  // Sum (max) of v over the workgroup; every thread gets the result. Call in uniform control flow.
  fn nlWgSum(v : f32) -> f32 {
    nlRed[localId.x] = v;
    workgroupBarrier();
    for (var s = ${ROW_WG / 2}u; s > 0u; s = s / 2u) {
      if (localId.x < s) { nlRed[localId.x] = nlRed[localId.x] + nlRed[localId.x + s]; }
      workgroupBarrier();
    }
    let r = nlRed[0];
    workgroupBarrier();
    return r;
  }
  fn nlWgMax(v : f32) -> f32 {
    nlRed[localId.x] = v;
    workgroupBarrier();
    for (var s = ${ROW_WG / 2}u; s > 0u; s = s / 2u) {
      if (localId.x < s) { nlRed[localId.x] = max(nlRed[localId.x], nlRed[localId.x + s]); }
      workgroupBarrier();
    }
    let r = nlRed[0];
    workgroupBarrier();
    return r;
  }
  // The row this workgroup reduces (one workgroup per row, dispatched over x, y, z).
  fn nlRow() -> i32 {
    return i32(workgroupId.z * numWorkgroups.x * numWorkgroups.y + workgroupId.y * numWorkgroups.x + workgroupId.x);
  }
`;

export interface Spec {
  key: string;
  inputs: string[];
  /** Elements of the (flat) output. */
  n: number;
  /** Element-wise (one thread per output element), or one workgroup per row of `rows`. */
  rows?: number;
  /** Element-wise programs whose threads each write several outputs: the thread count. */
  threads?: number;
  uniforms?: string;
  /** WGSL functions the body calls. */
  functions?: string;
  body: string;
}

function program(s: Spec): WebGPUProgram {
  const rowMode = s.rows !== undefined;
  const groups = rowMode ? s.rows! : Math.ceil((s.threads ?? s.n) / FLAT_WG);
  return {
    variableNames: s.inputs,
    outputShape: [s.n],
    shaderKey: `normlab_${s.key}`,
    dispatchLayout: { x: [0] },
    dispatch: dispatchFor(groups),
    workgroupSize: [rowMode ? ROW_WG : FLAT_WG, 1, 1],
    size: true,
    uniforms: s.uniforms,
    getUserCode: () => `${COMMON}${rowMode ? ROW_REDUCE : ''}${s.functions ?? ''}
      fn main(index : i32) {
        ${s.body}
      }`,
  } as WebGPUProgram;
}

/**
 * Run one program on `inputs` (named by s.inputs, in order); the output gets `shape`. Inputs the
 * body never reads are left out: WebGPU drops unused bindings from the pipeline's layout.
 */
export function run(be: WebGPUBackend, s: Spec, inputs: tf.TensorInfo[], uniforms: Uniform[], shape: number[]): tf.TensorInfo {
  const code = s.body + (s.functions ?? '');
  const used = s.inputs.map((name) => new RegExp(`\\b${name}\\[`).test(code));
  const spec = { ...s, inputs: s.inputs.filter((_, i) => used[i]) };
  const out = be.runWebGPUProgram(program(spec), inputs.filter((_, i) => used[i]).map(flat), 'float32', uniforms);
  return { ...out, shape };
}

export const int = (v: number): Uniform => ({ type: 'int32', data: [v] });
export const float = (v: number): Uniform => ({ type: 'float32', data: [v] });

/** The global index of an element-wise program, and the guard every one starts with. */
export const EACH = 'if (index >= uniforms.size) { return; }\n        let i = index;';

/** A kernel's implementation: its named inputs and attributes to its outputs, in the kernel's order. */
export type KernelBody = (be: WebGPUBackend, inputs: Partial<Record<string, tf.TensorInfo>>, attrs: Attrs) => tf.TensorInfo[];
