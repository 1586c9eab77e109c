/**
 * Vision Transformer (Dosovitskiy et al. 2021), read top-down: config → patch embedding →
 * attention → MLP → block → model → checkpoint import/export. Tensor names are timm
 * `VisionTransformer`'s (class token, learned positions, Pre-LN blocks, GELU with erf, token
 * pooling), so a timm ViT/DeiT saved as safetensors loads here and a model saved here loads into
 * timm. timm stores the patch embedding as a Conv2d weight (D, C, p, p) and linears as (out, in);
 * NormLab keeps the patch embedding as a linear over flattened patches and every linear as
 * (in, out): both are converted once, on load and on save.
 *
 * `forward(images, hooks)` lets a caller see or replace every tensor post-training quantization
 * touches: the input of every linear layer, q, k, v, the post-softmax probabilities, and every
 * linear weight (see `ViTHooks`). The forward is written once, as a generator that yields at each
 * activation site (`forwardSites`): `forward` answers each site with the `act` hook at once; PTQ
 * calibration answers after an asynchronous read of the site's values.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fail } from '../core/errors.js';
import { attentionProbs, crossEntropy, gelu, layerNorm, linear } from '../nn/ops.js';
import { normalInit, ParamSet, paramSeed } from '../nn/params.js';

export interface ViTConfig {
  img_size: number; // square input side, 28 for MNIST, 224 for ImageNet
  patch_size: number; // square patch side p; img_size must divide by it
  in_chans: number; // image channels C (1 gray, 3 RGB)
  num_classes: number; // classifier outputs
  embed_dim: number; // model width D
  depth: number; // blocks L
  num_heads: number; // heads; D must divide by it
  mlp_ratio: number; // MLP hidden width = mlp_ratio * D (4 like timm)
  qkv_bias: boolean; // true like timm
  layer_norm_eps: number; // 1e-6 like timm's ViT
  /** Optional per-channel input normalization (timm's pretrained_cfg mean/std); none for MNIST. */
  mean?: number[];
  std?: number[];
}

export const VIT_DEFAULTS: ViTConfig = {
  img_size: 224,
  patch_size: 16,
  in_chans: 3,
  num_classes: 1000,
  embed_dim: 768,
  depth: 12,
  num_heads: 12,
  mlp_ratio: 4,
  qkv_bias: true,
  layer_norm_eps: 1e-6,
};

/** Read a ViT config.json (missing keys take ViT-B/16's defaults). Errors name the bad key. */
export function vitConfigFromJson(json: Record<string, unknown>): ViTConfig {
  const cfg = { ...VIT_DEFAULTS } as Record<string, unknown>;
  for (const key of Object.keys(VIT_DEFAULTS)) if (json[key] !== undefined) cfg[key] = json[key];
  const c = cfg as unknown as ViTConfig;
  for (const key of ['img_size', 'patch_size', 'in_chans', 'num_classes', 'embed_dim', 'depth', 'num_heads'] as const) {
    if (!Number.isInteger(c[key]) || c[key] <= 0) fail('config', `ViT config: ${key} must be a positive integer, got ${String(c[key])}`);
  }
  if (c.img_size % c.patch_size !== 0) fail('config', `ViT config: img_size ${c.img_size} is not divisible by patch_size ${c.patch_size}`);
  if (c.embed_dim % c.num_heads !== 0) fail('config', `ViT config: embed_dim ${c.embed_dim} is not divisible by num_heads ${c.num_heads}`);
  if (!(c.mlp_ratio > 0) || !Number.isInteger(c.mlp_ratio * c.embed_dim)) {
    fail('config', `ViT config: mlp_ratio ${String(c.mlp_ratio)} times embed_dim ${c.embed_dim} must be a positive integer`);
  }
  if (!(c.layer_norm_eps > 0)) fail('config', `ViT config: layer_norm_eps must be positive, got ${String(c.layer_norm_eps)}`);
  for (const key of ['mean', 'std'] as const) {
    const v = json[key];
    if (v === undefined || v === null) continue;
    if (!Array.isArray(v) || v.length !== c.in_chans || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
      fail('config', `ViT config: ${key} must be a list of ${c.in_chans} numbers (one per channel)`);
    }
    c[key] = v as number[];
  }
  return c;
}

/**
 * Where quantization hooks attach. Activation sites are named after the tensor they touch:
 * `patch_embed.proj.in`, `blocks.{i}.attn.qkv.in` (post-LayerNorm), `blocks.{i}.attn.q`,
 * `.k`, `.v`, `blocks.{i}.attn.probs` (post-softmax), `blocks.{i}.attn.proj.in`,
 * `blocks.{i}.mlp.fc1.in` (post-LayerNorm), `blocks.{i}.mlp.fc2.in` (post-GELU), `head.in`.
 */
export interface ViTHooks {
  /** See (and possibly replace) an activation before its consumer uses it. */
  act?(site: string, x: tf.Tensor): tf.Tensor;
  /** The weight a linear layer uses, by its timm name (e.g. `blocks.0.attn.qkv.weight`); (in, out). */
  weight?(name: string, w: tf.Tensor): tf.Tensor;
}

/** An activation site the forward has reached: the caller answers with the tensor to use on. */
export interface ActSite {
  site: string;
  x: tf.Tensor;
}

/** The forward as a generator: yields each activation site, resumes with the tensor to use. */
export type ForwardSites = Generator<ActSite, tf.Tensor2D, tf.Tensor>;

/** The activation sites of block i, in forward order. */
export function blockSites(i: number): string[] {
  const b = `blocks.${i}`;
  return [`${b}.attn.qkv.in`, `${b}.attn.q`, `${b}.attn.k`, `${b}.attn.probs`, `${b}.attn.v`, `${b}.attn.proj.in`, `${b}.mlp.fc1.in`, `${b}.mlp.fc2.in`];
}

/** Every linear layer, by timm module name, in forward order. */
export function linearNames(config: ViTConfig): string[] {
  const out = ['patch_embed.proj'];
  for (let i = 0; i < config.depth; i++) out.push(`blocks.${i}.attn.qkv`, `blocks.${i}.attn.proj`, `blocks.${i}.mlp.fc1`, `blocks.${i}.mlp.fc2`);
  out.push('head');
  return out;
}

export class ViT {
  readonly arch = 'vit' as const;
  readonly params = new ParamSet();

  constructor(
    readonly config: ViTConfig,
    seed = 0,
  ) {
    const { embed_dim: D, depth: L, in_chans: C, patch_size: p, num_classes: K } = config;
    const Hd = Math.round(config.mlp_ratio * D);
    const N = this.numPatches;
    const tn = (name: string, shape: number[], std: number) => this.params.add(name, normalInit(shape, std, paramSeed(seed, name)));
    const ones = (name: string, n: number) => this.params.add(name, tf.ones([n]));
    const zeros = (name: string, n: number) => this.params.add(name, tf.zeros([n]));
    tn('patch_embed.proj.weight', [C * p * p, D], Math.sqrt(1 / (C * p * p))); // flattened conv, (C·p·p, D)
    zeros('patch_embed.proj.bias', D);
    tn('cls_token', [1, 1, D], 1e-6); // timm: normal(std 1e-6)
    tn('pos_embed', [1, N + 1, D], 0.02); // timm: trunc_normal(std .02)
    for (let i = 0; i < L; i++) {
      const b = `blocks.${i}`;
      ones(`${b}.norm1.weight`, D);
      zeros(`${b}.norm1.bias`, D);
      tn(`${b}.attn.qkv.weight`, [D, 3 * D], 0.02);
      if (config.qkv_bias) zeros(`${b}.attn.qkv.bias`, 3 * D);
      tn(`${b}.attn.proj.weight`, [D, D], 0.02);
      zeros(`${b}.attn.proj.bias`, D);
      ones(`${b}.norm2.weight`, D);
      zeros(`${b}.norm2.bias`, D);
      tn(`${b}.mlp.fc1.weight`, [D, Hd], 0.02);
      zeros(`${b}.mlp.fc1.bias`, Hd);
      tn(`${b}.mlp.fc2.weight`, [Hd, D], 0.02);
      zeros(`${b}.mlp.fc2.bias`, D);
    }
    ones('norm.weight', D);
    zeros('norm.bias', D);
    tn('head.weight', [D, K], 0.02);
    zeros('head.bias', K);
  }

  get numPatches(): number {
    const g = this.config.img_size / this.config.patch_size;
    return g * g;
  }

  private w(name: string): tf.Variable {
    return this.params.get(name);
  }

  /** A linear layer by timm module name, with the weight hook applied. */
  private lin(name: string, x: tf.Tensor, hooks?: ViTHooks): tf.Tensor {
    const raw = this.w(`${name}.weight`);
    const W = hooks?.weight ? hooks.weight(`${name}.weight`, raw) : raw;
    return linear(x, W, this.params.vars.get(`${name}.bias`));
  }

  /** Yield an activation site; resumes with the tensor the rest of the forward uses. */
  private *act(site: string, x: tf.Tensor): Generator<ActSite, tf.Tensor, tf.Tensor> {
    return yield { site, x };
  }

  private ln(name: string, x: tf.Tensor): tf.Tensor {
    return layerNorm(x, this.w(`${name}.weight`), this.w(`${name}.bias`), this.config.layer_norm_eps);
  }

  /** Cut images (B, H, W, C) into flattened patches (B, N, C·p·p), each in timm's (c, i, j) order. */
  patchify(images: tf.Tensor4D): tf.Tensor3D {
    const [B, H, W, C] = images.shape;
    const { img_size: S, patch_size: p, in_chans } = this.config;
    if (H !== S || W !== S || C !== in_chans) {
      fail('shape', `images are ${H}×${W}×${C}, the ViT expects ${S}×${S}×${in_chans}`);
    }
    const g = S / p;
    const x = tf.reshape(images, [B * g, p, g, p, C]); // (B, H, W, C) -> (B·gh, p, gw, p, C)
    const t = tf.transpose(x, [0, 2, 4, 1, 3]); // -> (B·gh, gw, C, p, p)
    return tf.reshape(t, [B, g * g, C * p * p]); // -> (B, N, C·p·p)
  }

  /** Multi-head self-attention of block i (no mask: every token sees every token). */
  private *attention(i: number, x: tf.Tensor3D, hooks?: ViTHooks): Generator<ActSite, tf.Tensor3D, tf.Tensor> {
    const [B, T, D] = x.shape;
    const H = this.config.num_heads;
    const hs = D / H;
    const a = `blocks.${i}.attn`;
    const qkv = this.lin(`${a}.qkv`, yield* this.act(`${a}.qkv.in`, x), hooks); // (B, T, 3D)
    // timm's layout (B, T, 3, H, hs): q, k, v are the three D-wide thirds of the last axis.
    // (Split first, then 4-D transposes: wasm's 5-D transpose is ~1000x slower.)
    const heads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [B, T, H, hs]), [0, 2, 1, 3]) as tf.Tensor4D; // (B, T, D) -> (B, H, T, hs)
    const [q0, k0, v0] = tf.split(qkv, 3, -1).map(heads);
    const q = (yield* this.act(`${a}.q`, q0)) as tf.Tensor4D;
    const k = (yield* this.act(`${a}.k`, k0)) as tf.Tensor4D;
    const probs = (yield* this.act(`${a}.probs`, attentionProbs(q, k, false))) as tf.Tensor4D; // (B, H, T, T)
    const v = (yield* this.act(`${a}.v`, v0)) as tf.Tensor4D;
    const out = tf.matMul(probs, v); // (B, H, T, hs)
    const y = tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [B, T, D]); // (B, H, T, hs) -> (B, T, D)
    return this.lin(`${a}.proj`, yield* this.act(`${a}.proj.in`, y), hooks) as tf.Tensor3D;
  }

  private *mlp(i: number, x: tf.Tensor, hooks?: ViTHooks): Generator<ActSite, tf.Tensor, tf.Tensor> {
    const m = `blocks.${i}.mlp`;
    const h = gelu(this.lin(`${m}.fc1`, yield* this.act(`${m}.fc1.in`, x), hooks), 'erf'); // (B, T, Hd)
    return this.lin(`${m}.fc2`, yield* this.act(`${m}.fc2.in`, h), hooks); // (B, T, D)
  }

  /** Pre-LN block: x + attn(norm1(x)), then + mlp(norm2(x)). */
  private *block(i: number, x: tf.Tensor3D, hooks?: ViTHooks): Generator<ActSite, tf.Tensor3D, tf.Tensor> {
    const b = `blocks.${i}`;
    const h = tf.add(x, yield* this.attention(i, this.ln(`${b}.norm1`, x) as tf.Tensor3D, hooks)) as tf.Tensor3D;
    return tf.add(h, yield* this.mlp(i, this.ln(`${b}.norm2`, h), hooks)) as tf.Tensor3D;
  }

  /**
   * The forward pass, pausing at every activation site (see `ActSite`); `hooks.weight` applies
   * to the linear weights (its `act` is not used here: the caller answers each site).
   */
  *forwardSites(images: tf.Tensor4D, hooks?: Pick<ViTHooks, 'weight'>): ForwardSites {
    const B = images.shape[0];
    const D = this.config.embed_dim;
    const patches = yield* this.act('patch_embed.proj.in', this.patchify(images)); // (B, N, C·p·p)
    const tok = this.lin('patch_embed.proj', patches, hooks); // (B, N, D)
    const cls = tf.tile(this.w('cls_token'), [B, 1, 1]); // (B, 1, D)
    let x = tf.add(tf.concat([cls, tok], 1), this.w('pos_embed')) as tf.Tensor3D; // (B, N+1, D)
    for (let i = 0; i < this.config.depth; i++) x = yield* this.block(i, x, hooks);
    x = this.ln('norm', x) as tf.Tensor3D;
    const pooled = tf.reshape(tf.slice(x, [0, 0, 0], [B, 1, D]), [B, D]); // class token (global_pool 'token')
    return this.lin('head', yield* this.act('head.in', pooled), hooks) as tf.Tensor2D;
  }

  /** Class logits (B, num_classes) of images (B, H, W, C) with values as the model was trained on. */
  forward(images: tf.Tensor4D, hooks?: ViTHooks): tf.Tensor2D {
    const steps = this.forwardSites(images, hooks);
    let r = steps.next();
    while (!r.done) r = steps.next(hooks?.act ? hooks.act(r.value.site, r.value.x) : r.value.x);
    return r.value;
  }

  /** Mean cross-entropy of the logits against int32 labels (B). */
  loss(images: tf.Tensor4D, labels: tf.Tensor1D, hooks?: ViTHooks): tf.Scalar {
    return crossEntropy(this.forward(images, hooks), labels);
  }

  /** timm-style config.json (NormLab's keys plus timm's `architecture`). */
  hfConfig(): Record<string, unknown> {
    return { architecture: 'vit', model_type: 'vit', class_token: true, global_pool: 'token', ...this.config };
  }

  /** Parameters under timm names and layouts: conv patch weight (D, C, p, p), linears (out, in). */
  checkpointTensors(): Map<string, tf.Tensor> {
    const { embed_dim: D, in_chans: C, patch_size: p } = this.config;
    const out = new Map<string, tf.Tensor>();
    for (const [name, v] of this.params.vars) {
      if (name === 'patch_embed.proj.weight')
        out.set(
          name,
          tf.tidy(() => tf.reshape(tf.transpose(v), [D, C, p, p])),
        ); // (C·p·p, D) -> (D, C, p, p)
      else if (v.rank === 2)
        out.set(name, tf.transpose(v)); // (in, out) -> timm's (out, in)
      else out.set(name, tf.clone(v));
    }
    return out;
  }

  /** Load timm-layout tensors; every missing tensor or wrong shape is a one-line `model` error. */
  loadCheckpointTensors(tensors: Map<string, tf.Tensor>): void {
    const { embed_dim: D, in_chans: C, patch_size: p } = this.config;
    for (const [name, v] of this.params.vars) {
      const t = tensors.get(name);
      if (!t) fail('model', `checkpoint has no tensor ${name} (is it a timm ViT with depth ${this.config.depth}?)`);
      let expect: number[];
      if (name === 'patch_embed.proj.weight') expect = [D, C, p, p];
      else if (v.rank === 2) expect = [v.shape[1] as number, v.shape[0] as number];
      else expect = v.shape;
      if (t.shape.join(',') !== expect.join(',')) {
        fail(
          'model',
          `checkpoint tensor ${name} has shape [${t.shape}], the config (embed_dim ${D}, depth ${this.config.depth}, patch ${p}, img ${this.config.img_size}, classes ${this.config.num_classes}) needs [${expect}]`,
        );
      }
      const value = tf.tidy(() =>
        name === 'patch_embed.proj.weight' ? tf.transpose(tf.reshape(t, [D, C * p * p])) : v.rank === 2 ? tf.transpose(t) : tf.clone(t),
      );
      v.assign(value);
      value.dispose();
    }
  }

  /** A deep copy (new variables), e.g. to fold a reparameterization into. */
  clone(): ViT {
    const m = new ViT(this.config, 0);
    for (const [name, v] of this.params.vars) m.params.assign(name, v);
    return m;
  }

  dispose(): void {
    this.params.dispose();
  }
}
