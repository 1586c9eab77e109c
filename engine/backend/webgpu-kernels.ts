/**
 * Kernels the tfjs webgpu backend gets wrong for training, replaced for `webgpu` only (the other
 * backends keep theirs):
 *
 * - AddN: the stock kernel binds every input as a storage buffer of one shader, so summing more
 *   inputs than the device's maxStorageBuffersPerShaderStage allows (8 by default, one of them the
 *   output) fails validation and yields garbage. Global-norm clipping sums one term per parameter
 *   (dozens). This AddN sums in groups that fit, with the stock kernel, then sums the groups.
 *   (tfjs's Concat already splits its inputs this way.)
 */
import * as tf from '@tensorflow/tfjs-core';

let registered = false;

interface WebgpuBackendLike {
  device: { limits: { maxStorageBuffersPerShaderStage: number } };
  disposeData(dataId: object): void;
}

/** AddN over inputs in groups of at most `limit - 1` (the output takes one binding). */
function chunkedAddN(stock: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const backend = args.backend as unknown as WebgpuBackendLike;
    const perShader = Math.max(2, backend.device.limits.maxStorageBuffersPerShaderStage - 1);
    let terms = args.inputs as unknown as tf.TensorInfo[];
    const partial: tf.TensorInfo[] = [];
    while (terms.length > perShader) {
      const sums: tf.TensorInfo[] = [];
      for (let i = 0; i < terms.length; i += perShader) {
        const group = terms.slice(i, i + perShader);
        const sum = group.length === 1 ? group[0] : (stock({ ...args, inputs: group as unknown as tf.NamedTensorInfoMap }) as tf.TensorInfo);
        if (group.length > 1) partial.push(sum);
        sums.push(sum);
      }
      terms = sums;
    }
    const out = stock({ ...args, inputs: terms as unknown as tf.NamedTensorInfoMap }) as tf.TensorInfo;
    for (const t of partial) backend.disposeData(t.dataId);
    return out;
  };
}

/** Register the replacements (once, after tfjs-backend-webgpu registered its kernels). */
export function registerWebgpuKernels(): void {
  if (registered) return;
  const addN = tf.getKernel('AddN', 'webgpu');
  if (!addN) throw new Error('tfjs-backend-webgpu registered no AddN kernel');
  tf.unregisterKernel('AddN', 'webgpu');
  tf.registerKernel({ kernelName: 'AddN', backendName: 'webgpu', kernelFunc: chunkedAddN(addN.kernelFunc) });
  registered = true;
}
