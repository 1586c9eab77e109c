/**
 * One decoder-only transformer for every Hugging Face family NormLab reads (Llama, Mistral, Qwen2,
 * Qwen3, Gemma, Gemma 2, OLMo 2, GPT-NeoX; GPT-2 when it is evaluated block by block), read top-down like nanoGPT's model.py. What differs
 * between the families is data, a `DecoderSpec` that engine/models/families.ts builds from a
 * config.json: where the norms sit, the norm itself, the attention (grouped-query heads, biases,
 * q/k norms, scale, soft-capping, sliding windows), the MLP, the rotary rule and the embedding.
 *
 * Norm placement (`placement`), the subject of a normalization study:
 *   pre:      h = x + Attn(N1(x));                 y = h + MLP(N2(h))          (Llama, Qwen, Mistral, Gemma)
 *   sandwich: h = x + N1'(Attn(N1(x)));            y = h + N2'(MLP(N2(h)))     (Gemma 2)
 *   post:     h = x + N1'(Attn(x));                y = h + N2'(MLP(h))         (OLMo 2: norm after each sublayer)
 *   parallel: y = x + Attn(N1(x)) + MLP(N2(x))                                   (GPT-NeoX / Pythia)
 *   (GPT-2 is `pre` with LayerNorm, learned positions and no rotary.)
 * In every placement "the residual stream after block ℓ" (what the depth diagnostics call x_ℓ) is
 * y, the tensor block ℓ hands to block ℓ + 1; x_0 is the embedding output after any scale.
 *
 * Parameters keep their HF names (so per-block gradient norms find their block); linear weights are
 * held (in, out), transposed once on import and export where the checkpoint stores them (out, in)
 * (every family but GPT-2, whose Conv1D stores (in, out)).
 */
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../core/errors.js';
import { attention, crossEntropy, layerNorm, linear, linearTransposed, rmsNorm, rope } from '../nn/ops.js';
import { ParamSet } from '../nn/params.js';
import { activate, type ActivationName } from './activations.js';
import { assignCheckpointTensor, takeTensor, type CausalLM, type CheckpointSource, type ForwardHooks, type NormSite } from './lm.js';
import { rotaryTables, type RotarySpec } from './rotary.js';

export type NormKind = 'rms' | 'rms-plus-one' | 'layer';
export type NormPlacement = 'pre' | 'sandwich' | 'post' | 'parallel';

/** HF tensor names of one block's parts (templates with `{i}` for the block index). */
export interface DecoderNames {
  embed: string;
  finalNorm: string;
  /** The untied head; null when the head is the embedding. */
  head: string | null;
  /** Norms of block i, by role: n1 before (or, in `post`, after) attention, n2 likewise for the MLP. */
  n1: string;
  n2: string;
  /** Sandwich only: the norms after each sublayer. */
  n1Post?: string;
  n2Post?: string;
  /** Learned absolute positions (GPT-2's wpe), added to the token embedding. */
  positions?: string;
  /** Separate projections (q, k, v, o), or a fused `qkv` (layout in DecoderSpec.attention.qkvLayout). */
  q?: string;
  k?: string;
  v?: string;
  qkv?: string;
  o: string;
  qNorm?: string;
  kNorm?: string;
  /** Gated MLP: down(act(gate x) * up x); plain: down(act(up x)). */
  gate?: string;
  up: string;
  down: string;
}

export interface DecoderSpec {
  /** config.json's model_type. */
  family: string;
  vocab: number;
  width: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  ffn: number;
  maxSeq: number;
  norm: { kind: NormKind; eps: number; bias: boolean };
  placement: NormPlacement;
  attention: {
    qkvBias: boolean;
    oBias: boolean;
    /** q/k RMSNorm: per head over head_dim (Qwen3), over the whole projection (OLMo 2), or none. */
    qkNorm: 'none' | 'head' | 'full';
    /** Multiplier of q·k (HF's `scaling`). */
    scale: number;
    /** GPT-2's scale_attn_by_inverse_layer_idx: block i's scores further divided by i + 1. */
    scaleByInverseLayer?: boolean;
    /** A fused qkv's columns: GPT-NeoX's per head [q; k; v] (`per-head`) or GPT-2's [q | k | v] (`blocks`). */
    qkvLayout?: 'per-head' | 'blocks';
    /** tanh soft-cap of the scores, cap · tanh(s / cap) (Gemma 2), or null. */
    softcap: number | null;
    /** Per block: the sliding window (a query sees the last `w` positions, itself included) or null. */
    windows: (number | null)[];
  };
  mlp: { gated: boolean; act: ActivationName; bias: boolean };
  /** Rotary positions, or null where the family has learned positions (GPT-2). */
  rotary: RotarySpec | null;
  /** How the checkpoint stores linear weights: (out, in) like torch.nn.Linear, or (in, out) like GPT-2's Conv1D. */
  linearLayout: 'out-in' | 'in-out';
  /** A prefix checkpoints may leave out of every name (GPT-2's `transformer.` in the public files). */
  optionalPrefix?: string;
  /** Multiplier of the embedding output (Gemma: √width). */
  embedScale: number;
  /** tanh soft-cap of the logits (Gemma 2), or null. */
  logitSoftcap: number | null;
  tied: boolean;
  names: DecoderNames;
  /** Checkpoint tensors that carry no parameters (GPT-NeoX's cached masks and inverse frequencies). */
  ignoredTensors?: RegExp;
}

/** A weight of the spec and its shape as held here ((in, out) for linears). */
export interface DecoderParam {
  name: string;
  shape: number[];
  linear: boolean;
}

/** Parameter list builder: norms (weight, bias where the spec has one) and linears (weight (in, out), bias). */
function paramList(s: DecoderSpec) {
  const out: DecoderParam[] = [];
  const add = (name: string, shape: number[], isLinear = false) => out.push({ name, shape, linear: isLinear });
  const norm = (name: string, dim: number, bias = s.norm.bias) => {
    add(`${name}.weight`, [dim]);
    if (bias) add(`${name}.bias`, [dim]);
  };
  const lin = (name: string, inDim: number, outDim: number, bias: boolean) => {
    add(`${name}.weight`, [inDim, outDim], true);
    if (bias) add(`${name}.bias`, [outDim]);
  };
  return { out, add, norm, lin };
}

/** The parameters of block i, by HF name. */
export function blockParams(s: DecoderSpec, i: number): DecoderParam[] {
  const { out, norm, lin } = paramList(s);
  const { width: C, heads: H, kvHeads: KV, headDim: hs, ffn: F } = s;
  const n = (t: string | undefined) => t!.replace('{i}', String(i));
  norm(n(s.names.n1), C);
  norm(n(s.names.n2), C);
  if (s.placement === 'sandwich') {
    norm(n(s.names.n1Post), C);
    norm(n(s.names.n2Post), C);
  }
  if (s.names.qkv) lin(n(s.names.qkv), C, 3 * H * hs, s.attention.qkvBias);
  else {
    lin(n(s.names.q), C, H * hs, s.attention.qkvBias);
    lin(n(s.names.k), C, KV * hs, s.attention.qkvBias);
    lin(n(s.names.v), C, KV * hs, s.attention.qkvBias);
  }
  lin(n(s.names.o), H * hs, C, s.attention.oBias);
  if (s.attention.qkNorm === 'head') {
    norm(n(s.names.qNorm), hs, false);
    norm(n(s.names.kNorm), hs, false);
  } else if (s.attention.qkNorm === 'full') {
    norm(n(s.names.qNorm), H * hs, false);
    norm(n(s.names.kNorm), KV * hs, false);
  }
  if (s.mlp.gated) lin(n(s.names.gate), C, F, s.mlp.bias);
  lin(n(s.names.up), C, F, s.mlp.bias);
  lin(n(s.names.down), F, C, s.mlp.bias);
  return out;
}

/** The parameters outside the blocks: embedding, final norm, untied head. */
export function outerParams(s: DecoderSpec): DecoderParam[] {
  const { out, add, norm } = paramList(s);
  add(s.names.embed, [s.vocab, s.width]);
  if (s.names.positions) add(s.names.positions, [s.maxSeq, s.width]);
  norm(s.names.finalNorm, s.width);
  if (!s.tied) add(s.names.head!, [s.vocab, s.width]);
  return out;
}

/** Every parameter of the spec's model. */
export function decoderParams(s: DecoderSpec): DecoderParam[] {
  return [...outerParams(s), ...Array.from({ length: s.layers }, (_, i) => blockParams(s, i)).flat()];
}

export class Decoder implements CausalLM {
  readonly arch = 'hf' as const;
  readonly params = new ParamSet();
  private readonly linears = new Set<string>();
  /** Linear weights held (out, in) as stored, used transposed in the product (streamed models). */
  private readonly asStored: boolean;
  private readonly ropeCache = new Map<number, { cos: tf.Tensor2D; sin: tf.Tensor2D }>();

  /**
   * An uninitialized model: every parameter zero until loadCheckpointTensors fills it. With
   * `allocate: false` it holds no parameter: a streamed evaluation (./streamed.ts) adds the block it
   * runs (setParam) and removes it after, keeping linear weights as the checkpoint stores them.
   */
  constructor(
    readonly spec: DecoderSpec,
    private readonly config: Record<string, unknown>,
    opts: { allocate: boolean } = { allocate: true },
  ) {
    this.asStored = !opts.allocate;
    for (const p of decoderParams(spec)) {
      if (p.linear && spec.linearLayout === 'out-in') this.linears.add(p.name);
      if (opts.allocate) this.params.add(p.name, tf.zeros(p.shape));
    }
  }

  /** The shape of parameter p as the checkpoint stores it. */
  storedShape(p: DecoderParam): number[] {
    return this.linears.has(p.name) ? [p.shape[1], p.shape[0]] : p.shape;
  }

  /** Add (or replace) parameter `name` from a checkpoint tensor in HF orientation; takes ownership of `t`. */
  setParam(name: string, t: tf.Tensor): void {
    if (this.params.has(name)) this.params.remove(name);
    this.params.add(name, this.linears.has(name) && !this.asStored ? tf.tidy(() => tf.transpose(t)) : t.clone());
    t.dispose();
  }

  get nLayers(): number {
    return this.spec.layers;
  }
  get vocabSize(): number {
    return this.spec.vocab;
  }
  get maxSeq(): number {
    return this.spec.maxSeq;
  }

  private w(template: string, i: number, part: 'weight' | 'bias'): tf.Variable {
    return this.params.get(`${template.replace('{i}', String(i))}.${part}`);
  }

  private maybe(template: string, i: number, part: 'weight' | 'bias'): tf.Variable | undefined {
    const name = `${template.replace('{i}', String(i))}.${part}`;
    return this.params.has(name) ? this.params.get(name) : undefined;
  }

  /**
   * Linear layer `template` of block i on x: x W + b with W held (in, out), or x Wᵀ + b where the
   * weight is held as the checkpoint stores it (out, in) (a streamed model skips the transpose).
   */
  private linear(template: string, i: number, x: tf.Tensor): tf.Tensor {
    const name = `${template.replace('{i}', String(i))}.weight`;
    const w = this.params.get(name);
    const b = this.maybe(template, i, 'bias');
    return this.asStored && this.linears.has(name) ? linearTransposed(x, w, b) : linear(x, w, b);
  }

  /** The spec's norm over the last axis: RMSNorm (x (1 + w) for Gemma) or LayerNorm. */
  private normOf(template: string, i: number, x: tf.Tensor): tf.Tensor {
    const { kind, eps } = this.spec.norm;
    const g = this.w(template, i, 'weight');
    if (kind === 'layer') return layerNorm(x, g, this.maybe(template, i, 'bias') ?? null, eps);
    if (kind === 'rms-plus-one') return rmsNorm(x, tf.add(g, 1), eps);
    return rmsNorm(x, g, eps);
  }

  /** A block norm that a `norm` hook may replace (sites ln_1, ln_2; the final norm is ln_f). */
  private hookedNorm(site: NormSite, template: string, i: number, x: tf.Tensor, hooks?: ForwardHooks): tf.Tensor {
    const real = () => this.normOf(template, i, x);
    return hooks?.norm ? hooks.norm(site, x, real) : real();
  }

  private rotary(spec: RotarySpec, T: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
    let tables = this.ropeCache.get(T);
    if (!tables) {
      const { cos, sin } = rotaryTables(spec, T);
      const dims = spec.dims;
      tables = { cos: tf.keep(tf.tensor2d(cos, [T, dims])), sin: tf.keep(tf.tensor2d(sin, [T, dims])) };
      this.ropeCache.set(T, tables);
    }
    return tables;
  }

  /** RoPE on the first `rotary.dims` features of each head of x (B, H, T, hs); the rest pass. */
  private applyRotary(x: tf.Tensor4D): tf.Tensor4D {
    const spec = this.spec.rotary;
    if (!spec) return x;
    const T = x.shape[2];
    const { cos, sin } = this.rotary(spec, T);
    const dims = spec.dims;
    const hs = this.spec.headDim;
    if (dims === hs) return rope(x, cos, sin) as tf.Tensor4D;
    const [rot, pass] = tf.split(x, [dims, hs - dims], -1);
    return tf.concat([rope(rot, cos, sin), pass], -1) as tf.Tensor4D;
  }

  /** q, k, v as (B, heads, T, hs), before rotary, from the block's input x (B, T, C). */
  private projections(i: number, x: tf.Tensor3D): [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D] {
    const [B, T] = x.shape;
    const { heads: H, kvHeads: KV, headDim: hs, names, attention: a } = this.spec;
    const heads = (t: tf.Tensor, n: number) => tf.transpose(tf.reshape(t, [B, T, n, hs]), [0, 2, 1, 3]) as tf.Tensor4D; // (B, T, n hs) -> (B, n, T, hs)
    if (names.qkv) {
      const qkv = this.linear(names.qkv, i, x);
      if (a.qkvLayout === 'blocks') {
        const [q, k, v] = tf.split(qkv, 3, -1); // GPT-2: (B, T, [q | k | v])
        return [heads(q, H), heads(k, H), heads(v, H)];
      }
      const [q, k, v] = tf.split(tf.reshape(qkv, [B, T, H, 3 * hs]), 3, -1); // GPT-NeoX: (B, T, H, [q; k; v])
      return [heads(q, H), heads(k, H), heads(v, H)];
    }
    const proj = (t: string) => this.linear(t, i, x);
    let q = proj(names.q!);
    let k = proj(names.k!);
    const v = proj(names.v!);
    const eps = this.spec.norm.eps;
    if (a.qkNorm === 'full') {
      q = rmsNorm(q, this.w(names.qNorm!, i, 'weight'), eps);
      k = rmsNorm(k, this.w(names.kNorm!, i, 'weight'), eps);
    }
    let qh = heads(q, H);
    let kh = heads(k, KV);
    if (a.qkNorm === 'head') {
      qh = rmsNorm(qh, this.w(names.qNorm!, i, 'weight'), eps) as tf.Tensor4D;
      kh = rmsNorm(kh, this.w(names.kNorm!, i, 'weight'), eps) as tf.Tensor4D;
    }
    return [qh, kh, heads(v, KV)];
  }

  /** Grouped-query attention: each of the KV heads serves H / KV consecutive query heads (HF's repeat_kv). */
  private repeatKV(t: tf.Tensor4D): tf.Tensor4D {
    const { heads: H, kvHeads: KV } = this.spec;
    if (H === KV) return t;
    const [B, , T, hs] = t.shape;
    const g = H / KV;
    return tf.reshape(tf.tile(tf.reshape(t, [B, KV, 1, T * hs]), [1, 1, g, 1]), [B, H, T, hs]) as tf.Tensor4D; // rank 4: tfjs tiles' gradient stops there
  }

  /** softmax(scale q kᵀ, soft-capped, causal and windowed) v on (B, H, T, hs). */
  private scores(i: number, q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D): tf.Tensor4D {
    const { softcap, windows, scaleByInverseLayer } = this.spec.attention;
    const scale = this.spec.attention.scale / (scaleByInverseLayer ? i + 1 : 1);
    const hs = this.spec.headDim;
    const window = windows[i];
    const T = q.shape[2];
    if (softcap === null && (window === null || window >= T)) {
      // The fused kernel scales by 1/√hs; fold the spec's scale into q.
      const qs = Math.abs(scale * Math.sqrt(hs) - 1) < 1e-12 ? q : (tf.mul(q, scale * Math.sqrt(hs)) as tf.Tensor4D);
      return attention(qs, k, v, true);
    }
    let s = tf.mul(tf.matMul(q, k, false, true), scale) as tf.Tensor4D; // (B, H, T, T)
    if (softcap !== null) s = tf.mul(tf.tanh(tf.div(s, softcap)), softcap) as tf.Tensor4D;
    s = tf.add(s, windowMask(T, window)) as tf.Tensor4D;
    return tf.matMul(tf.softmax(s), v) as tf.Tensor4D;
  }

  private attention(i: number, x: tf.Tensor3D, hooks?: ForwardHooks): tf.Tensor3D {
    const [B, T] = x.shape;
    const { heads: H, headDim: hs, names } = this.spec;
    const [q0, k0, v0] = this.projections(i, x);
    const q = this.applyRotary(q0);
    const k = this.repeatKV(this.applyRotary(k0));
    const z = this.scores(i, q, k, this.repeatKV(v0)); // (B, H, T, hs)
    hooks?.headOutputs?.(i, z);
    const y = tf.reshape(tf.transpose(z, [0, 2, 1, 3]), [B, T, H * hs]); // (B, H, T, hs) -> (B, T, H hs)
    const out = this.linear(names.o, i, y) as tf.Tensor3D;
    hooks?.attnOutput?.(i, out);
    return out;
  }

  private mlp(i: number, x: tf.Tensor): tf.Tensor {
    const { names, mlp } = this.spec;
    const proj = (t: string, input: tf.Tensor) => this.linear(t, i, input);
    const up = proj(names.up, x);
    const hidden = mlp.gated ? tf.mul(activate(mlp.act, proj(names.gate!, x)), up) : activate(mlp.act, up);
    return proj(names.down, hidden);
  }

  /** Block i on the residual stream x (B, T, C): what it hands to block i + 1. */
  block(i: number, x: tf.Tensor3D, hooks?: ForwardHooks): tf.Tensor3D {
    const { names, placement } = this.spec;
    const n1 = (t: tf.Tensor) => this.hookedNorm({ layer: i, which: 'ln_1' }, names.n1, i, t, hooks) as tf.Tensor3D;
    const n2 = (t: tf.Tensor) => this.hookedNorm({ layer: i, which: 'ln_2' }, names.n2, i, t, hooks) as tf.Tensor3D;
    switch (placement) {
      case 'pre': {
        const h = tf.add(x, this.attention(i, n1(x), hooks)) as tf.Tensor3D;
        return tf.add(h, this.mlp(i, n2(h))) as tf.Tensor3D;
      }
      case 'sandwich': {
        const h = tf.add(x, this.normOf(names.n1Post!, i, this.attention(i, n1(x), hooks))) as tf.Tensor3D;
        return tf.add(h, this.normOf(names.n2Post!, i, this.mlp(i, n2(h)))) as tf.Tensor3D;
      }
      case 'post': {
        const h = tf.add(x, n1(this.attention(i, x, hooks))) as tf.Tensor3D;
        return tf.add(h, n2(this.mlp(i, h))) as tf.Tensor3D;
      }
      case 'parallel':
        return tf.addN([x, this.attention(i, n1(x), hooks), this.mlp(i, n2(x))]) as tf.Tensor3D;
    }
  }

  forward(idx: tf.Tensor2D, hooks?: ForwardHooks): tf.Tensor3D {
    return this.logits(this.hidden(idx, hooks));
  }

  hidden(idx: tf.Tensor2D, hooks?: ForwardHooks): tf.Tensor3D {
    const [B, T] = idx.shape;
    if (T > this.spec.maxSeq) fail('shape', `sequence length ${T} exceeds the model's context ${this.spec.maxSeq}`);
    const C = this.spec.width;
    let emb = tf.reshape(tf.gather(this.params.get(this.spec.names.embed), tf.reshape(idx, [-1])), [B, T, C]);
    if (this.spec.names.positions) emb = tf.add(emb, tf.slice(this.params.get(this.spec.names.positions), [0, 0], [T, C])); // + wpe[0..T)
    let x = this.scaleEmbedding(emb as tf.Tensor3D); // (B, T, C)
    hooks?.residual?.(-1, x);
    for (let i = 0; i < this.spec.layers; i++) {
      if (!hooks?.skipLayers?.has(i)) {
        const input = x;
        x = hooks?.scopeBlocks ? tf.tidy(() => this.block(i, input, hooks)) : this.block(i, input, hooks);
      }
      hooks?.residual?.(i, x);
    }
    const finalNorm = () => this.finalNorm(x);
    return (hooks?.norm ? hooks.norm({ layer: -1, which: 'ln_f' }, x, finalNorm) : finalNorm()) as tf.Tensor3D;
  }

  /** The embedding rows times the family's scale (Gemma: √width). */
  scaleEmbedding(emb: tf.Tensor3D): tf.Tensor3D {
    const s = this.spec.embedScale;
    return s === 1 ? emb : (tf.mul(emb, tf.scalar(s)) as tf.Tensor3D);
  }

  /** The norm before the head. */
  finalNorm(x: tf.Tensor3D): tf.Tensor3D {
    return this.normOf(this.spec.names.finalNorm, -1, x) as tf.Tensor3D;
  }

  /** The unembedding (B, T, C) -> (B, T, V), soft-capped where the family caps its logits. */
  logits(x: tf.Tensor3D): tf.Tensor3D {
    const [B, T, C] = x.shape;
    const head = this.params.get(this.spec.tied ? this.spec.names.embed : this.spec.names.head!); // (V, C)
    let logits = tf.matMul(tf.reshape(x, [B * T, C]), head, false, true); // (BT, C) @ (C, V)
    const cap = this.spec.logitSoftcap;
    if (cap !== null) logits = tf.mul(tf.tanh(tf.div(logits, cap)), cap);
    return tf.reshape(logits, [B, T, this.spec.vocab]);
  }

  loss(x: tf.Tensor2D, y: tf.Tensor2D, hooks?: ForwardHooks): tf.Scalar {
    return crossEntropy(this.forward(x, hooks), y);
  }

  /** The config.json it was read from, unchanged. */
  hfConfig(): Record<string, unknown> {
    return { ...this.config };
  }

  checkpointTensors(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [name, v] of this.params.vars) out.set(name, this.linears.has(name) ? tf.transpose(v) : tf.clone(v)); // (in, out) -> HF (out, in)
    return out;
  }

  loadCheckpointTensors(tensors: CheckpointSource): void {
    const prefix = this.spec.optionalPrefix;
    for (const name of this.params.vars.keys()) {
      let { t, owned } = takeTensor(tensors, name);
      if (!t && prefix && name.startsWith(prefix)) ({ t, owned } = takeTensor(tensors, name.slice(prefix.length)));
      if (!t) fail('model', `checkpoint has no tensor ${name}, which a ${this.spec.family} of this config.json has`);
      try {
        assignCheckpointTensor(this.params, name, t, this.linears.has(name));
      } finally {
        if (owned) t.dispose();
      }
    }
  }

  dispose(): void {
    this.params.dispose();
    for (const { cos, sin } of this.ropeCache.values()) tf.dispose([cos, sin]);
    this.ropeCache.clear();
  }
}

const windowMasks = new Map<string, tf.Tensor2D>();

/**
 * (T, T) additive mask: 0 where key j may be seen by query i (j <= i, and i - j < window when
 * windowed: the last `window` positions, the query itself included, as HF's sliding window), -1e9
 * elsewhere. Cached per shape.
 */
export function windowMask(T: number, window: number | null): tf.Tensor2D {
  const key = `${T}/${window}`;
  let m = windowMasks.get(key);
  if (!m || m.isDisposed) {
    const vals = new Float32Array(T * T);
    for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) vals[i * T + j] = j > i || (window !== null && i - j >= window) ? -1e9 : 0;
    m = tf.keep(tf.tensor2d(vals, [T, T]));
    windowMasks.set(key, m);
  }
  return m;
}
