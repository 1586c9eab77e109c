/**
 * NormLab's fused kernels for the webgpu backend, as WGSL compute shaders run through
 * tfjs-backend-webgpu's program API (./program.ts): GELU, SwiGLU, RoPE and AdamW
 * (./pointwise.ts), LayerNorm/RMSNorm (./norm.ts), token cross-entropy (./cross-entropy.ts) and
 * attention, heads-major or straight from a packed qkv projection (./attention.ts), each forward
 * and backward, under the same kernel names and contracts as the wasm ones (../wasm/fused.ts), so
 * ../fused-ops.ts wraps both the same way. One difference: attention's `probs` is each query's
 * logsumexp here, not the (T, Tk) probabilities. Written by hand because tfjs has no such kernels:
 * its composition of each op is a chain of stock kernels, each a pass over memory (LayerNorm
 * forward alone is ~8, cross-entropy builds a log-softmax of the whole (N, V) logits).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { attentionKernels } from './attention.js';
import { crossEntropyKernels } from './cross-entropy.js';
import { normKernels } from './norm.js';
import { pointwiseKernels } from './pointwise.js';
import type { Attrs, KernelBody } from './program.js';

const kernels: Record<string, KernelBody> = { ...pointwiseKernels, ...normKernels, ...crossEntropyKernels, ...attentionKernels };

/** The kernel names given a webgpu implementation here. */
export const WEBGPU_FUSED_KERNELS: readonly string[] = Object.keys(kernels);

let registered = false;

/** Register the kernels for `webgpu` (idempotent). */
export function registerWebgpuFusedKernels(): void {
  if (registered) return;
  registered = true;
  for (const [kernelName, body] of Object.entries(kernels)) {
    tf.registerKernel({
      kernelName,
      backendName: 'webgpu',
      kernelFunc: (({ inputs, backend, attrs }: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }) => {
        for (const t of Object.values(inputs))
          if (t && t.dtype !== 'float32' && t.dtype !== 'int32') throw new Error(`${kernelName}: unsupported dtype ${t.dtype}`);
        return body(backend as WebGPUBackend, inputs as Partial<Record<string, tf.TensorInfo>>, (attrs ?? {}) as Attrs);
      }) as unknown as tf.KernelFunc,
    });
  }
}
