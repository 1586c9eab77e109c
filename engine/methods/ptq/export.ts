/**
 * Export of a quantized ViT and its dequantized reference.
 *
 * Folder layout: `config.json` (the ViT's timm-style config plus `normlab_ptq`: bit widths,
 * quantizer choices and every activation quantizer's parameters) and `model.safetensors` with
 * timm names: each linear's `<name>.weight` is replaced by
 *   `<name>.weight_q`          integer codes, timm layout (out, in) (or (D, C, p, p) for the
 *                              patch embedding); U8 for ≤ 8 bits, I32 above
 *   `<name>.weight_scale`      F32 (out), per output channel
 *   `<name>.weight_zero_point` I32 (out)
 * so that W = (weight_q − zero_point) · scale row by row; every other tensor (LayerNorms with the
 * reparameterization folded in, biases, class token, positions) is F32.
 *
 * `loadQuantizedViT` reads such a folder back independently of the simulation: it dequantizes the
 * integer weights into a plain ViT and rebuilds the activation quantizers from the JSON, so its
 * evaluation is the reference the simulated accuracy must reproduce.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../../core/errors.js';
import { loadModelDir, saveModelDir } from '../../io/model-dir.js';
import type { HostTensor } from '../../io/safetensors.js';
import { fromTf } from '../../io/tensors.js';
import { linearNames, type ViT, type ViTHooks } from '../../models/vit.js';
import { dequantizeWeight, fakeQuantSoftmax, fakeQuantUniform } from './quantizers.js';
import type { ActParams, QuantizedViT } from './ptq.js';
import { vitFromTensors } from './vit-io.js';

/** (in, out) row-major → (out, in) row-major. */
function transpose2d<T extends Float32Array | Int32Array | Uint8Array>(a: T, rows: number, cols: number, make: (n: number) => T): T {
  const out = make(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

export async function exportQuantized(q: QuantizedViT, dir: string, extra: Record<string, unknown> = {}): Promise<void> {
  const model = q.model;
  const { embed_dim: D, in_chans: C, patch_size: p } = model.config;
  const tensors: Record<string, HostTensor> = {};
  const quantized = new Set(linearNames(model.config).map((n) => `${n}.weight`));
  const full = model.checkpointTensors();
  try {
    for (const [name, t] of full) if (!quantized.has(name)) tensors[name] = await fromTf(t);
  } finally {
    for (const t of full.values()) t.dispose();
  }
  for (const name of linearNames(model.config)) {
    const w = q.weights.get(name);
    if (!w) fail('internal', `no quantized weight for ${name}`);
    const [nIn, nOut] = w.shape;
    const shape = name === 'patch_embed.proj' ? [D, C, p, p] : [nOut, nIn];
    const codesT = transpose2d(w.codes, nIn, nOut, (n) => new Int32Array(n));
    tensors[`${name}.weight_q`] = w.bits <= 8 ? { dtype: 'U8', shape, data: Uint8Array.from(codesT) } : { dtype: 'I32', shape, data: codesT };
    tensors[`${name}.weight_scale`] = { dtype: 'F32', shape: [nOut], data: Float32Array.from(w.scale) };
    tensors[`${name}.weight_zero_point`] = { dtype: 'I32', shape: [nOut], data: Int32Array.from(w.zero) };
  }
  const ptq = {
    w_bits: q.options.wBits,
    a_bits: q.options.aBits,
    patch_bits: q.options.patchBits,
    softmax: q.options.softmax,
    ln_reparam: q.options.lnReparam,
    activations: Object.fromEntries(q.acts),
    ...extra,
  };
  await saveModelDir(dir, { ...model.hfConfig(), normlab_ptq: ptq }, tensors, { format: 'pt', normlab: 'ptq-vit' });
}

/** A dequantized ViT plus hooks that apply the exported activation quantizers. */
export interface DequantizedViT {
  model: ViT;
  hooks: ViTHooks;
  acts: Map<string, ActParams>;
  dispose(): void;
}

export async function loadQuantizedViT(dir: string): Promise<DequantizedViT> {
  const { config, tensors } = await loadModelDir(dir);
  const ptq = config.normlab_ptq as { activations?: Record<string, ActParams> } | undefined;
  if (!ptq || typeof ptq.activations !== 'object') fail('model', `${dir}/config.json has no normlab_ptq section: not a quantized ViT export`);
  // Dequantize every linear into the plain timm name, then build an ordinary ViT.
  const plain = new Map<string, HostTensor>(tensors);
  for (const [name, t] of tensors) {
    if (!name.endsWith('.weight_q')) continue;
    const base = name.slice(0, -'.weight_q'.length);
    const scale = tensors.get(`${base}.weight_scale`);
    const zero = tensors.get(`${base}.weight_zero_point`);
    if (!scale || !zero) fail('model', `${dir}: ${name} has no ${base}.weight_scale / weight_zero_point`);
    const nOut = t.shape[0];
    const nIn = t.data.length / nOut;
    // Codes are (out, in): row o uses scale[o], zero[o]; dequantizeWeight takes (in, out), so view it as (1·out rows) transposed.
    const deq = dequantizeWeight(
      transpose2d(Int32Array.from(t.data), nOut, nIn, (n) => new Int32Array(n)),
      scale.data,
      zero.data,
      [nIn, nOut],
    );
    plain.set(`${base}.weight`, { dtype: 'F32', shape: t.shape, data: transpose2d(deq, nIn, nOut, (n) => new Float32Array(n)) });
    plain.delete(name);
    plain.delete(`${base}.weight_scale`);
    plain.delete(`${base}.weight_zero_point`);
  }
  const model = vitFromTensors(config, plain, `${dir}/config.json`);
  const acts = new Map(Object.entries(ptq.activations!));
  const perChannel = new Map<string, { scale: tf.Tensor; zero: tf.Tensor }>();
  const hooks: ViTHooks = {
    act: (site, x) => {
      const a = acts.get(site);
      if (!a) return x;
      if (a.kind === 'uniform-per-channel') {
        let t = perChannel.get(site);
        if (!t) perChannel.set(site, (t = { scale: tf.keep(tf.tensor1d(a.scale)), zero: tf.keep(tf.tensor1d(a.zero)) }));
        return fakeQuantUniform(x, t.scale, t.zero, a.bits);
      }
      return fakeQuantSoftmax(x, a);
    },
  };
  return {
    model,
    hooks,
    acts,
    dispose() {
      model.dispose();
      for (const t of perChannel.values()) {
        t.scale.dispose();
        t.zero.dispose();
      }
    },
  };
}
