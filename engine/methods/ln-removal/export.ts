/**
 * The two forms of an LN-free GPT-2 on disk.
 *
 * NormLab's own (`ln-free`): the fine-tuned weights unchanged, plus `normlab_ln_sigmas` in
 * config.json (one frozen sigma per LN site); `GPT2` then computes every norm as the fixed map
 * (x - mean(x)) / sigma * gamma + beta. `loadLM` and `normlab eval-lm` read it as is.
 *
 * The paper's released form (`hf-ln-free`), a plain GPT2LMHeadModel: every LN keeps its module,
 * layer_norm_epsilon = 1e12 and gamma is multiplied by 1e6 / sigma_avg, so
 *   (x - mu) / sqrt(var + 1e12) * gamma * 1e6 / sigma ≈ (x - mu) / sigma * gamma
 * (relative error var / 2e12; in float32, 1e12 + var rounds to 1e12 for var < 32768).
 * HF's GPT-2 has one ln_1 module for Q, K and V, so it carries sigma_qk. When the V path's sigma
 * differs (`ln1_sigma: separate`), the ratio r = sigma_qk / sigma_v is folded into the V columns
 * of c_attn, exactly:
 *   ((x - mu) / sigma_v * g + b) Wv + bv = u (r Wv) + (1 - r) b Wv + bv,  u = (x - mu) / sigma_qk * g + b.
 * With the shared sigma (the default, as in the authors' code) r = 1 and c_attn is untouched.
 */
import { fail } from '../../core/errors.js';
import type { HostTensor } from '../../io/safetensors.js';

function f32(t: HostTensor | undefined, name: string): Float32Array {
  if (!t) fail('model', `LN-free model has no tensor ${name}`);
  if (!(t.data instanceof Float32Array)) fail('model', `tensor ${name} is ${t.dtype}; expected F32`);
  return t.data;
}

function scaled(t: HostTensor, k: number, name: string): HostTensor {
  return { dtype: 'F32', shape: [...t.shape], data: f32(t, name).map((v) => v * k) };
}

/** Look a tensor up under its HF name, with or without the `transformer.` prefix. */
function get(tensors: Map<string, HostTensor>, name: string): HostTensor | undefined {
  return tensors.get(name) ?? tensors.get(name.replace(/^transformer\./, ''));
}

/**
 * NormLab LN-free model folder contents -> the HF-compatible form (config + tensors).
 * `config` must hold `normlab_ln_sigmas`.
 */
export function toHfLnFree(
  config: Record<string, unknown>,
  tensors: Map<string, HostTensor>,
): { config: Record<string, unknown>; tensors: Map<string, HostTensor> } {
  const sigmas = config.normlab_ln_sigmas as Record<string, number> | undefined;
  if (!sigmas || typeof sigmas !== 'object') fail('model', 'this model is not LN-free: its config.json has no normlab_ln_sigmas');
  const L = Number(config.n_layer);
  const C = Number(config.n_embd);
  const out = new Map<string, HostTensor>();
  for (const [name, t] of tensors) out.set(name.startsWith('transformer.') || name.startsWith('lm_head') ? name : `transformer.${name}`, t);
  const sigma = (k: string): number => {
    const s = sigmas[k];
    if (!(typeof s === 'number' && s > 0)) fail('model', `normlab_ln_sigmas.${k} is missing or not positive`);
    return s;
  };
  for (let i = 0; i < L; i++) {
    const h = `transformer.h.${i}`;
    const sQK = sigma(`h.${i}.ln_1_qk`);
    const sV = sigma(`h.${i}.ln_1_v`);
    out.set(`${h}.ln_1.weight`, scaled(get(tensors, `${h}.ln_1.weight`)!, 1e6 / sQK, `${h}.ln_1.weight`));
    out.set(`${h}.ln_2.weight`, scaled(get(tensors, `${h}.ln_2.weight`)!, 1e6 / sigma(`h.${i}.ln_2`), `${h}.ln_2.weight`));
    const r = sQK / sV;
    if (r !== 1) {
      // Fold the V path's own scale into c_attn's V columns (weights are Conv1D (C, 3C)).
      const W = f32(get(tensors, `${h}.attn.c_attn.weight`), `${h}.attn.c_attn.weight`);
      const W2 = Float32Array.from(W);
      for (let row = 0; row < C; row++) for (let col = 2 * C; col < 3 * C; col++) W2[row * 3 * C + col] = W[row * 3 * C + col] * r;
      out.set(`${h}.attn.c_attn.weight`, { dtype: 'F32', shape: [C, 3 * C], data: W2 });
      const lnBias = get(tensors, `${h}.ln_1.bias`);
      const attnBias = get(tensors, `${h}.attn.c_attn.bias`);
      if (lnBias) {
        if (!attnBias) fail('model', `${h} has an ln_1 bias but no c_attn bias: cannot fold the V-path scale`);
        const beta = f32(lnBias, `${h}.ln_1.bias`);
        const b2 = Float32Array.from(f32(attnBias, `${h}.attn.c_attn.bias`));
        for (let col = 0; col < C; col++) {
          let dot = 0;
          for (let row = 0; row < C; row++) dot += beta[row] * W[row * 3 * C + 2 * C + col];
          b2[2 * C + col] += (1 - r) * dot;
        }
        out.set(`${h}.attn.c_attn.bias`, { dtype: 'F32', shape: [3 * C], data: b2 });
      }
    }
  }
  out.set('transformer.ln_f.weight', scaled(get(tensors, 'transformer.ln_f.weight')!, 1e6 / sigma('ln_f'), 'transformer.ln_f.weight'));
  const cfg: Record<string, unknown> = { ...config, layer_norm_epsilon: 1e12, normlab_ln_removed: true };
  delete cfg.normlab_ln_sigmas;
  return { config: cfg, tensors: out };
}
