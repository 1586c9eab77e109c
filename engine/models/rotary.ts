/**
 * Rotary position embedding frequencies (RoFormer, Su et al. 2021, eq. 15: θ_j = base^(-2j/d))
 * and the context-extension rules Hugging Face configs name in `rope_scaling`, computed as
 * transformers' `modeling_rope_utils.py` does:
 *   linear  (position interpolation, Chen et al. 2023): θ_j / factor;
 *   dynamic (dynamic NTK): base' = base (factor T / P - (factor - 1))^(d/(d-2)) once the sequence
 *           length T exceeds P = max_position_embeddings, else the plain frequencies;
 *   yarn    (Peng et al. 2023, eqs. 17-23): per-frequency blend of interpolation and extrapolation
 *           by a linear ramp between the correction dimensions of beta_fast and beta_slow, and
 *           cos/sin scaled by the attention factor 0.1 ln(s) + 1 (or mscale / mscale_all_dim);
 *   llama3  (Llama 3.1): wavelengths longer than P_orig / low_freq_factor divided by factor, shorter
 *           than P_orig / high_freq_factor kept, smoothly interpolated between.
 * Any other `rope_type` is a one-line error when the config is read.
 */
import { fail } from '../core/errors.js';

export type RopeScaling =
  | { type: 'default' }
  | { type: 'linear'; factor: number }
  | { type: 'dynamic'; factor: number; maxPositions: number }
  | {
      type: 'yarn';
      factor: number;
      originalMaxPositions: number;
      betaFast: number;
      betaSlow: number;
      attentionFactor: number;
      truncate: boolean;
    }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };

export interface RotarySpec {
  /** Rotated dimensions per head (all of head_dim, or GPT-NeoX's rotary_pct of it); even. */
  dims: number;
  base: number;
  scaling: RopeScaling;
}

function num(v: unknown, where: string, dflt?: number): number {
  if (v === undefined || v === null) {
    if (dflt !== undefined) return dflt;
    return fail('config', `config.json: ${where} is required`);
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) return fail('config', `config.json: ${where} must be a number, got ${JSON.stringify(v)}`);
  return v;
}

/** YaRN's attention temperature factor 0.1 ln(s) + 1 for s > 1 (Peng et al. 2023, eq. 22). */
function yarnMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

/**
 * Read `rope_scaling` (HF key `rope_type`, older `type`) of a config.json. `maxPositions` is the
 * config's max_position_embeddings.
 */
export function ropeScalingFromConfig(raw: unknown, maxPositions: number): RopeScaling {
  if (raw === undefined || raw === null) return { type: 'default' };
  if (typeof raw !== 'object' || Array.isArray(raw)) return fail('config', `config.json: rope_scaling must be an object or null, got ${JSON.stringify(raw)}`);
  const r = raw as Record<string, unknown>;
  const type = r.rope_type ?? r.type;
  const factor = () => {
    const f = num(r.factor, 'rope_scaling.factor');
    if (!(f >= 1)) fail('config', `config.json: rope_scaling.factor must be >= 1, got ${f}`);
    return f;
  };
  switch (type) {
    case 'default':
      return { type: 'default' };
    case 'linear':
      return { type: 'linear', factor: factor() };
    case 'dynamic':
      return { type: 'dynamic', factor: factor(), maxPositions };
    case 'yarn': {
      // transformers 5 keeps `factor` and takes original_max_position_embeddings (else
      // max_position_embeddings) as the pretrained context of the correction range; 4.4x-4.5x
      // replaced the factor by their ratio when both were given (README: "what is refused").
      const f = factor();
      const original =
        r.original_max_position_embeddings === undefined || r.original_max_position_embeddings === null
          ? maxPositions
          : num(r.original_max_position_embeddings, 'rope_scaling.original_max_position_embeddings');
      let attentionFactor: number;
      if (r.attention_factor !== undefined && r.attention_factor !== null) attentionFactor = num(r.attention_factor, 'rope_scaling.attention_factor');
      else if (r.mscale && r.mscale_all_dim)
        attentionFactor = yarnMscale(f, num(r.mscale, 'rope_scaling.mscale')) / yarnMscale(f, num(r.mscale_all_dim, 'rope_scaling.mscale_all_dim'));
      else attentionFactor = yarnMscale(f);
      return {
        type: 'yarn',
        factor: f,
        originalMaxPositions: original,
        betaFast: num(r.beta_fast, 'rope_scaling.beta_fast', 32) || 32,
        betaSlow: num(r.beta_slow, 'rope_scaling.beta_slow', 1) || 1,
        attentionFactor,
        truncate: r.truncate === undefined ? true : Boolean(r.truncate),
      };
    }
    case 'llama3':
      return {
        type: 'llama3',
        factor: factor(),
        lowFreqFactor: num(r.low_freq_factor, 'rope_scaling.low_freq_factor'),
        highFreqFactor: num(r.high_freq_factor, 'rope_scaling.high_freq_factor'),
        originalMaxPositions: num(r.original_max_position_embeddings, 'rope_scaling.original_max_position_embeddings'),
      };
    default:
      return fail('config', `config.json: rope_scaling type ${JSON.stringify(type)} is not supported (default, linear, dynamic, yarn, llama3)`);
  }
}

/** The inverse frequencies θ_j (length dims/2) for a sequence of T positions, and the factor on cos/sin. */
export function rotaryFrequencies(spec: RotarySpec, T: number): { invFreq: Float64Array; attentionFactor: number } {
  const { dims, scaling } = spec;
  const half = dims / 2;
  const plain = (base: number) => Float64Array.from({ length: half }, (_, j) => 1 / base ** ((2 * j) / dims));
  switch (scaling.type) {
    case 'default':
      return { invFreq: plain(spec.base), attentionFactor: 1 };
    case 'linear':
      return { invFreq: plain(spec.base).map((f) => f / scaling.factor), attentionFactor: 1 };
    case 'dynamic': {
      const { factor, maxPositions } = scaling;
      const len = Math.max(T, maxPositions);
      const base = spec.base * ((factor * len) / maxPositions - (factor - 1)) ** (dims / (dims - 2));
      return { invFreq: plain(base), attentionFactor: 1 };
    }
    case 'yarn': {
      const { factor, betaFast, betaSlow, originalMaxPositions: P, truncate } = scaling;
      const correctionDim = (rotations: number) => (dims * Math.log(P / (rotations * 2 * Math.PI))) / (2 * Math.log(spec.base));
      let low = correctionDim(betaFast);
      let high = correctionDim(betaSlow);
      if (truncate) {
        low = Math.floor(low);
        high = Math.ceil(high);
      }
      low = Math.max(low, 0);
      high = Math.min(high, dims - 1);
      if (low === high) high += 0.001;
      const extrapolation = plain(spec.base);
      const invFreq = extrapolation.map((f, j) => {
        const ramp = Math.min(1, Math.max(0, (j - low) / (high - low)));
        const extrapolationWeight = 1 - ramp;
        return (f / factor) * (1 - extrapolationWeight) + f * extrapolationWeight;
      });
      return { invFreq, attentionFactor: scaling.attentionFactor };
    }
    case 'llama3': {
      const { factor, lowFreqFactor, highFreqFactor, originalMaxPositions: P } = scaling;
      const lowWavelen = P / lowFreqFactor;
      const highWavelen = P / highFreqFactor;
      const invFreq = plain(spec.base).map((f) => {
        const wavelen = (2 * Math.PI) / f;
        if (wavelen > lowWavelen) return f / factor;
        if (wavelen < highWavelen) return f;
        const smooth = (P / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
        return (1 - smooth) * (f / factor) + smooth * f;
      });
      return { invFreq, attentionFactor: 1 };
    }
  }
}

/**
 * cos/sin tables (T, dims) in HF's rotate-half layout cat(freqs, freqs), times the attention
 * factor (YaRN; 1 otherwise).
 */
export function rotaryTables(spec: RotarySpec, T: number): { cos: Float32Array; sin: Float32Array } {
  const { invFreq, attentionFactor } = rotaryFrequencies(spec, T);
  const { dims } = spec;
  const half = dims / 2;
  const cos = new Float32Array(T * dims);
  const sin = new Float32Array(T * dims);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < half; j++) {
      const angle = t * invFreq[j];
      const c = Math.cos(angle) * attentionFactor;
      const s = Math.sin(angle) * attentionFactor;
      cos[t * dims + j] = cos[t * dims + j + half] = c;
      sin[t * dims + j] = sin[t * dims + j + half] = s;
    }
  }
  return { cos, sin };
}
