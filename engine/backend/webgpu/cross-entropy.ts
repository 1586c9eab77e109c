/**
 * Token cross-entropy as WGSL kernels: each row's logsumexp reduces one row per workgroup, the
 * loss and the gradient softmax(logits) - onehot(target) are element-wise; no log-softmax of the
 * whole (N, V) logits is built.
 */
import { EACH, int, ROW_WG, run, type KernelBody } from './program.js';

export const crossEntropyKernels: Record<string, KernelBody> = {
  /** Per-row logsumexp and loss = lse - logits[target] (NaN for a target outside [0, V)). */
  NormLabCrossEntropy(be, { logits, targets }) {
    const [N, V] = logits!.shape;
    const lse = run(
      be,
      {
        key: 'xent_lse',
        inputs: ['logits'],
        n: N,
        rows: N,
        uniforms: 'R : i32, V : i32,',
        body: `let r = nlRow();
        let base = min(r, uniforms.R - 1) * uniforms.V;
        var m = -3.4e38;
        for (var j = i32(localId.x); j < uniforms.V; j = j + ${ROW_WG}) { m = max(m, logits[base + j]); }
        let mx = nlWgMax(m);
        var z = 0.0;
        for (var j = i32(localId.x); j < uniforms.V; j = j + ${ROW_WG}) { z = z + exp(logits[base + j] - mx); }
        let s = nlWgSum(z);
        if (localId.x == 0u && r < uniforms.R) { result[r] = mx + log(s); }`,
      },
      [logits!],
      [int(N), int(V)],
      [N],
    );
    const loss = run(
      be,
      {
        key: 'xent_loss',
        inputs: ['logits', 'targets', 'lse'],
        n: N,
        uniforms: 'V : i32,',
        body: `${EACH}\n        let t = targets[i];\n        if (t >= 0 && t < uniforms.V) { result[i] = lse[i] - logits[i * uniforms.V + t]; } else { result[i] = uniforms.NAN; }`,
      },
      [logits!, targets!, lse],
      [int(V)],
      [N],
    );
    return [loss, lse];
  },

  /** dlogits = dloss (softmax(logits) - onehot(target)). */
  NormLabCrossEntropyGrad(be, { logits, targets, lse, dloss }) {
    const [N, V] = logits!.shape;
    return [
      run(
        be,
        {
          key: 'xent_grad',
          inputs: ['logits', 'targets', 'lse', 'dloss'],
          n: N * V,
          uniforms: 'V : i32,',
          body: `${EACH}\n        let r = i / uniforms.V;\n        let j = i - r * uniforms.V;\n        var d = exp(logits[i] - lse[r]);\n        if (j == targets[r]) { d = d - 1.0; }\n        result[i] = dloss[r] * d;`,
        },
        [logits!, targets!, lse!, dloss!],
        [int(V)],
        logits!.shape,
      ),
    ];
  },
};
