#!/usr/bin/python3
"""Independent plain-PyTorch reference ("twin") for NormLab's Hugging Face checkpoint loader:
tiny random checkpoints of several HF decoder families in their exact HF layout, and the numbers
NormLab's eval-lm / depth diagnostics must reproduce on them. All math runs in float64 (HF runs
the same formulas in the checkpoint's dtype, with RoPE tables and softmax in float32); weights are
the values stored in the file (bf16/f16 widened exactly). Written from transformers' modeling_*.py,
configuration_*.py and modeling_rope_utils.py (4.4x .. 5.x; where versions differ it is noted).

Families (config.json `model_type`), x = residual stream, N = the family's norm:
  llama, mistral, qwen2, qwen3:   h = x + Attn(N1(x));  y = h + MLP(N2(h))
        N1 = input_layernorm, N2 = post_attention_layernorm, RMSNorm: x / sqrt(mean(x^2) + eps) * w
        MLP(x) = down(act(gate(x)) * up(x)), act = ACT2FN[hidden_act] (silu)
        biases: llama attention_bias -> q,k,v,o; mlp_bias -> gate,up,down; qwen2 q,k,v always, o never;
        qwen3 attention_bias -> q,k,v,o; mistral none.
        qwen3: q_norm / k_norm = RMSNorm over head_dim applied to each head of q / k BEFORE RoPE.
  gemma:  RMSNorm(x) = x / sqrt(mean(x^2) + eps) * (1 + w); x_0 = embed * sqrt(hidden_size);
          act = gelu tanh approximation (hidden_activation, else hidden_act, else gelu_pytorch_tanh); tied.
  gemma2: gemma + h = x + N_post_attn(Attn(N_in(x)));  y = h + N_post_ff(MLP(N_pre_ff(h)))
          scores = q.k * query_pre_attn_scalar**-0.5, then cap*tanh(scores/cap) (attn_logit_softcapping)
          BEFORE the mask; logits = cap*tanh(logits/cap) (final_logit_softcapping);
          sliding window on layer_types[i] == "sliding_attention", default: EVEN layer indices
          (HF: "sliding_attention" if (i + 1) % 2 else "full_attention"; 4.4x: is_sliding = not i % 2).
  olmo2:  h = x + N_post_attn(Attn(x));  y = h + N_post_ff(MLP(h))   (no input norm)
          q_norm / k_norm = RMSNorm over the whole projected q (H*D) / k (KV*D) width, before RoPE.
  gpt_neox: fused attention.query_key_value viewed as (T, H, 3*hs): per head [q | k | v];
          LayerNorm with bias; partial rotary on the first rotary_ndims = int(hs * rotary_pct) dims of
          each head (rotate-half inside them), base rotary_emb_base (or rope_theta); biases everywhere
          (attention_bias, default true); act = hidden_act (gelu = erf gelu); untied embed_out.
          use_parallel_residual: y = x + Attn(LN1(x)) + MLP(LN2(x))
          else:                  h = x + Attn(LN1(x));  y = h + MLP(LN2(h))
  gpt2:   Conv1D weights stored (in, out): y = x @ W + b; x_0 = wte[t] + wpe[pos]; pre-LN blocks;
          n_inner (None -> 4 n_embd); scores / sqrt(head_dim) if scale_attn_weights; / (layer_idx + 1)
          if scale_attn_by_inverse_layer_idx; reorder_and_upcast_attn only changes HF's float16/bf16
          arithmetic (baddbmm in float32 with the same scale factor): the same math here in float64.
          activation_function: gelu_new, gelu, relu, silu/swish, gelu_fast, gelu_pytorch_tanh,
          quick_gelu, tanh, gelu_accurate, sigmoid, linear.
Attention (RoPE families): q, k, v = x W^T (+b), heads of head_dim D (config head_dim, else
hidden/heads); GQA: query head h uses kv head h // (H / KV) (HF repeat_kv); scale D**-0.5 (gemma2
above); causal: query i sees keys j <= i; sliding window W (masking_utils sliding_window_overlay:
kv_idx > q_idx - W, the same in 4.4x's tril(diagonal=-W) masks): i - W < j <= i, i.e. the last W
positions including itself. mistral: sliding_window on every layer (null = none). qwen2/qwen3: only
if use_sliding_window, on layers i >= max_window_layers (HF sets sliding_window = None otherwise);
layer_types in config.json wins when present.
RoPE (rotate-half, cos/sin = cat(f, f), f = pos * inv_freq, positions 0..T-1 in every window):
  default: inv_freq = theta^(-2i/d), d = D * partial_rotary_factor;  linear: inv_freq / factor;
  dynamic (NTK): with T = max(position) + 1 = SEQ, if T > max_position_embeddings:
      theta' = theta * (factor * T / max_pos - (factor - 1)) ** (d / (d - 2)), else unscaled
      (HF dynamic_rope_update; identical to the default rope for SEQ <= max_position_embeddings);
  yarn: factor, original_max_position_embeddings (rope_scaling's, else max_position_embeddings),
      beta_fast 32, beta_slow 1, truncate true: low = floor(dim(beta_fast)), high = ceil(dim(beta_slow)),
      dim(r) = d ln(orig / (2 pi r)) / (2 ln theta), clamped to [0, d-1]; ramp = clamp((i - low) /
      (high - low), 0, 1) over i < d/2; inv = interp * ramp + extrap * (1 - ramp); cos and sin are
      multiplied by attention_factor (default 0.1 ln(factor) + 1, or the mscale/mscale_all_dim ratio);
  llama3: wavelen = 2 pi / inv; > orig/low_freq_factor: inv/factor; < orig/high_freq_factor: inv;
      between: (1 - s) inv/factor + s inv, s = (orig/wavelen - low) / (high - low).
  rope_scaling's "type" (legacy) and "rope_type" are both read; v5 "rope_parameters" too.

Residual stream after block l (x_l, l = 1..L): the tensor block l hands to block l+1, for every
family (after both residual adds; for parallel residual x + attn + mlp; for gemma2 and olmo2 after
the post-norms' residual adds). x_0 = the embedding output fed to block 1: gemma/gemma2 AFTER the
sqrt(hidden_size) scale, gpt2 wte + wpe. Removing block l (--skip, pruning) passes x_{l-1} on
unchanged; the other blocks keep their original index (gemma2's sliding layers, gpt2's 1/(l+1)).

Evaluation as NormLab (engine/data/batches.ts evalWindows, engine/cli/eval-lm.ts): windows of SEQ
tokens tile the file from its start without overlap, window k: x = t[kSEQ .. kSEQ+SEQ-1],
y = t[kSEQ+1 .. kSEQ+SEQ]; count = floor((len - 1) / SEQ); loss = mean next-token cross-entropy
(nats) over count * SEQ targets. Diagnostics as engine/methods/lns/diagnostics.ts: variance =
population variance of every element of x_l over the first `sequences` windows; token_variance =
per-token population variance over the C features, averaged over those tokens; angular[n-1][l] =
mean over those windows of arccos(cos(x_l, x_{l+n}))/pi of the last token, l = 0..L-1, n = 1..maxN,
null where l + n > L; pruning = loss on the first `pruning-windows` windows and, per block, the loss
without it minus that (with --window-losses also each window's own CE: window_base_loss, window_loss[l][w]);
block_influence[l-1] = 1 - mean over every token of those windows of cos(x_{l-1}, x_l), with
cos = a.b / max(|a||b|, 1e-8) (ShortGPT's Block Influence, l = 1..L); grad_norms[l] = L2 norm of d(mean CE over the first `grad-windows` windows,
one batch) / d(every parameter whose name contains .layers.l. or .h.l.).

Usage:
  hf_families_torch.py make VARIANT OUT_DIR [--dtype f32|bf16|f16] [--shards N] [--seed S]
  hf_families_torch.py check TOKENS.bin SEQ MODEL_DIR [--token-dtype uint16|uint32] [--sequences S]
      [--pruning-windows P] [--grad-windows G] [--max-n N] [--skip L1,L2] [--window-losses]
  hf_families_torch.py write-tokens OUT.bin N VOCAB [--dtype uint16|uint32] [--seed S]
  hf_families_torch.py loss TOKENS.bin SEQ MODEL_DIR [--token-dtype ...] [--compute float32|float64] [--threads N]
  hf_families_torch.py suite OUT_ROOT [--variants a,b] [--dtypes f32,bf16] [--seq N] [--windows N] ...
  hf_families_torch.py variants
`check`, `loss` and `suite` print one JSON object (the last stdout line). `make llama-3.2-1b` writes
a real-shape checkpoint (2.47 GB in bf16) for benchmarks."""
import argparse
import json
import math
import os
import re
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testing"))
import safetensors_np  # noqa: E402

torch.set_default_dtype(torch.float64)

# ----------------------------------------------------------------------------------------------
# activations (transformers/activations.py ACT2FN)


def activation(name):
    s2p = math.sqrt(2.0 / math.pi)
    table = {
        "gelu": lambda x: 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0))),
        "gelu_new": lambda x: 0.5 * x * (1.0 + torch.tanh(s2p * (x + 0.044715 * x**3))),
        "gelu_pytorch_tanh": lambda x: 0.5 * x * (1.0 + torch.tanh(s2p * (x + 0.044715 * x**3))),
        "gelu_accurate": lambda x: 0.5 * x * (1.0 + torch.tanh(s2p * (x + 0.044715 * x**3))),
        "gelu_fast": lambda x: 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x))),
        "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
        "relu": torch.relu,
        "silu": lambda x: x * torch.sigmoid(x),
        "swish": lambda x: x * torch.sigmoid(x),
        "tanh": torch.tanh,
        "sigmoid": torch.sigmoid,
        "linear": lambda x: x,
    }
    if name not in table:
        raise SystemExit(f"activation {name!r} is not implemented here")
    return table[name]


# ----------------------------------------------------------------------------------------------
# RoPE (transformers/modeling_rope_utils.py)


def rope_params(cfg):
    """(rope_type, theta, scaling dict)."""
    rp = cfg.get("rope_parameters")
    rs = cfg.get("rope_scaling") or {}
    if isinstance(rp, dict) and "rope_theta" in rp and not cfg.get("rope_scaling"):
        rs = rp
    theta = cfg.get("rope_theta", rs.get("rope_theta", cfg.get("rotary_emb_base", 10000.0)))
    if cfg.get("model_type") == "gpt_neox" and "rope_theta" not in cfg:
        theta = cfg.get("rotary_emb_base", rs.get("rope_theta", 10000.0))
    rtype = rs.get("rope_type", rs.get("type", "default"))
    return rtype, float(theta), rs


def rope_inv_freq(cfg, dim, T):
    """(inv_freq (dim/2,), attention factor) for windows of T positions."""
    rtype, base, rs = rope_params(cfg)
    max_pos = cfg["max_position_embeddings"]
    ar = torch.arange(0, dim, 2, dtype=torch.float64) / dim
    af = 1.0
    if rtype == "default":
        inv = 1.0 / base**ar
    elif rtype == "linear":
        inv = 1.0 / base**ar / rs["factor"]
    elif rtype == "dynamic":
        factor = rs["factor"]
        seq_len = max(T, max_pos)  # HF: max(position_ids) + 1, never below max_position_embeddings
        b = base * ((factor * seq_len / max_pos) - (factor - 1)) ** (dim / (dim - 2))
        inv = 1.0 / b**ar
    elif rtype == "yarn":
        factor = rs.get("factor")
        orig = rs.get("original_max_position_embeddings") or max_pos
        if factor is None:
            factor = max_pos / orig
        mscale, mscale_all = rs.get("mscale"), rs.get("mscale_all_dim")

        def get_mscale(scale, m=1.0):
            return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

        af = rs.get("attention_factor")
        if af is None:
            af = get_mscale(factor, mscale) / get_mscale(factor, mscale_all) if (mscale and mscale_all) else get_mscale(factor)
        beta_fast = rs.get("beta_fast") or 32
        beta_slow = rs.get("beta_slow") or 1

        def corr_dim(rot):
            return (dim * math.log(orig / (rot * 2 * math.pi))) / (2 * math.log(base))

        low, high = corr_dim(beta_fast), corr_dim(beta_slow)
        if rs.get("truncate", True):
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, dim - 1)
        if low == high:
            high += 0.001
        ramp = ((torch.arange(dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
        pos_freqs = base**ar
        extrap_w = 1 - ramp
        inv = (1.0 / (factor * pos_freqs)) * (1 - extrap_w) + (1.0 / pos_freqs) * extrap_w
    elif rtype == "llama3":
        inv = 1.0 / base**ar
        factor, lf, hf, old = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        inv_l = torch.where(wavelen > old / lf, inv / factor, inv)
        smooth = (old / wavelen - lf) / (hf - lf)
        smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
        medium = ~(wavelen < old / hf) & ~(wavelen > old / lf)
        inv = torch.where(medium, smoothed, inv_l)
    else:
        raise SystemExit(f"rope type {rtype!r} is not implemented here")
    return inv, af


def rope_tables(cfg, dim, T):
    """cos, sin of shape (T, dim) (attention factor included)."""
    inv, af = rope_inv_freq(cfg, dim, T)
    f = torch.outer(torch.arange(T, dtype=torch.float64), inv)
    emb = torch.cat((f, f), -1)
    dt = torch.get_default_dtype()  # float32 under `check --compute float32`
    return (emb.cos() * af).to(dt), (emb.sin() * af).to(dt)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), -1)


def apply_rope(x, cos, sin):
    """x: (B, H, T, d) with d = cos.shape[-1] rotated dims first (partial rotary)."""
    d = cos.shape[-1]
    xr, xp = x[..., :d], x[..., d:]
    return torch.cat((xr * cos + rotate_half(xr) * sin, xp), -1)


def attention(q, k, v, scale, window=None, softcap=None):
    """q: (B, H, T, D), k, v: (B, KV, T, D); causal, optional sliding window and softcap."""
    H, KV, T = q.shape[1], k.shape[1], q.shape[2]
    if KV != H:
        k = k.repeat_interleave(H // KV, dim=1)  # HF repeat_kv: query head h <- kv head h // (H/KV)
        v = v.repeat_interleave(H // KV, dim=1)
    s = (q @ k.transpose(-1, -2)) * scale
    if softcap is not None:
        s = torch.tanh(s / softcap) * softcap
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    allowed = j <= i
    if window is not None:
        allowed = allowed & (j > i - window)
    s = s.masked_fill(~allowed, float("-inf"))
    return s.softmax(-1) @ v


# ----------------------------------------------------------------------------------------------
# models


class Model:
    """Common: weights dict w (float64 tensors), blocks, forward with hooks."""

    def __init__(self, cfg, w):
        self.cfg, self.w, self.used = cfg, w, set()

    def p(self, name, optional=False):
        if name not in self.w:
            if optional:
                return None
            raise SystemExit(f"missing tensor {name}")
        self.used.add(name)
        return self.w[name]

    def lin(self, x, prefix, bias):
        y = x @ self.p(prefix + ".weight").T
        return y + self.p(prefix + ".bias") if bias else y

    # non-parameter buffers old checkpoints carry (GPT-2 / GPT-NeoX causal masks, rotary inv_freq)
    BUFFERS = re.compile(r"\.(attn\.bias|attn\.masked_bias|attention\.bias|attention\.masked_bias|rotary_emb\.inv_freq)$")

    def check_unused(self):
        extra = sorted(k for k in set(self.w) - self.used if not self.BUFFERS.search(k))
        if extra:
            raise SystemExit(f"tensors the model does not use: {extra[:8]}")

    def forward(self, idx, skip=frozenset(), residuals=None):
        x = self.embed(idx)
        if residuals is not None:
            residuals.append(x)
        T = idx.shape[1]
        ctx = self.context(T)
        for l in range(self.L):
            if l not in skip:
                x = self.block(l, x, ctx)
            if residuals is not None:
                residuals.append(x)
        return self.head(x)


class RopeDecoder(Model):
    """llama, mistral, qwen2, qwen3, gemma, gemma2, olmo2."""

    EPS = {"olmo2": 1e-5}
    TIED = {"gemma": True, "gemma2": True}

    def __init__(self, cfg, w):
        super().__init__(cfg, w)
        mt = self.mt = cfg["model_type"]
        self.C, self.L, self.H = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]
        self.KV = cfg.get("num_key_value_heads") or self.H
        self.D = cfg.get("head_dim") or self.C // self.H
        if mt == "olmo2":
            self.D = self.C // self.H  # Olmo2Config has no head_dim
        self.eps = cfg.get("rms_norm_eps", self.EPS.get(mt, 1e-6))
        self.gemma = mt in ("gemma", "gemma2")
        if self.gemma:
            act = cfg.get("hidden_activation") or cfg.get("hidden_act") or "gelu_pytorch_tanh"
        else:
            act = cfg.get("hidden_act", "silu")
        self.act = activation(act)
        ab = bool(cfg.get("attention_bias", False))
        self.qkv_bias = True if mt == "qwen2" else ab
        self.o_bias = False if mt in ("qwen2", "mistral") else ab
        if mt == "mistral":
            self.qkv_bias = False
        self.mlp_bias = bool(cfg.get("mlp_bias", False)) if mt == "llama" else False
        self.tied = cfg.get("tie_word_embeddings", self.TIED.get(mt, False))
        self.scale = (cfg.get("query_pre_attn_scalar", 256) ** -0.5) if mt == "gemma2" else self.D**-0.5
        self.attn_cap = cfg.get("attn_logit_softcapping") if mt == "gemma2" else None
        self.final_cap = cfg.get("final_logit_softcapping") if mt == "gemma2" else None
        self.windows = [self.layer_window(i) for i in range(self.L)]

    def layer_window(self, i):
        cfg, mt = self.cfg, self.mt
        lt = cfg.get("layer_types")
        if mt == "mistral":
            return cfg.get("sliding_window")
        if mt in ("qwen2", "qwen3"):
            sw = cfg.get("sliding_window") if cfg.get("use_sliding_window", False) else None
            if lt is not None:
                return sw if lt[i] == "sliding_attention" else None
            return sw if (sw is not None and i >= cfg.get("max_window_layers", 28)) else None
        if mt == "gemma2":
            sliding = (lt[i] == "sliding_attention") if lt is not None else (i % 2 == 0)
            return cfg.get("sliding_window", 4096) if sliding else None
        return None

    def norm(self, x, name):
        w = self.p(name + ".weight")
        y = x / torch.sqrt((x * x).mean(-1, keepdim=True) + self.eps)
        return y * (1.0 + w) if self.gemma else y * w

    def embed(self, idx):
        x = self.p("model.embed_tokens.weight")[idx]
        return x * math.sqrt(self.C) if self.gemma else x

    def context(self, T):
        return rope_tables(self.cfg, self.D, T)

    def attn(self, l, x, ctx):
        pre = f"model.layers.{l}.self_attn"
        B, T, _ = x.shape
        q = self.lin(x, pre + ".q_proj", self.qkv_bias)
        k = self.lin(x, pre + ".k_proj", self.qkv_bias)
        v = self.lin(x, pre + ".v_proj", self.qkv_bias)
        if self.mt == "olmo2":
            q, k = self.norm(q, pre + ".q_norm"), self.norm(k, pre + ".k_norm")
        q, k, v = (t.view(B, T, -1, self.D) for t in (q, k, v))
        if self.mt == "qwen3":
            q, k = self.norm(q, pre + ".q_norm"), self.norm(k, pre + ".k_norm")
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        cos, sin = ctx
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = attention(q, k, v, self.scale, self.windows[l], self.attn_cap)
        return self.lin(y.transpose(1, 2).reshape(B, T, -1), pre + ".o_proj", self.o_bias)

    def mlp(self, l, x):
        pre = f"model.layers.{l}.mlp"
        g = self.act(self.lin(x, pre + ".gate_proj", self.mlp_bias))
        return self.lin(g * self.lin(x, pre + ".up_proj", self.mlp_bias), pre + ".down_proj", self.mlp_bias)

    def block(self, l, x, ctx):
        pre = f"model.layers.{l}"
        if self.mt == "olmo2":
            h = x + self.norm(self.attn(l, x, ctx), pre + ".post_attention_layernorm")
            return h + self.norm(self.mlp(l, h), pre + ".post_feedforward_layernorm")
        if self.mt == "gemma2":
            h = x + self.norm(self.attn(l, self.norm(x, pre + ".input_layernorm"), ctx), pre + ".post_attention_layernorm")
            return h + self.norm(self.mlp(l, self.norm(h, pre + ".pre_feedforward_layernorm")), pre + ".post_feedforward_layernorm")
        h = x + self.attn(l, self.norm(x, pre + ".input_layernorm"), ctx)
        return h + self.mlp(l, self.norm(h, pre + ".post_attention_layernorm"))

    def head(self, x):
        x = self.norm(x, "model.norm")
        W = self.p("model.embed_tokens.weight") if self.tied else self.p("lm_head.weight")
        if self.tied:
            self.used.add("lm_head.weight")  # HF ties it even when present
        logits = x @ W.T
        if self.final_cap is not None:
            logits = torch.tanh(logits / self.final_cap) * self.final_cap
        return logits


class GPTNeoX(Model):
    def __init__(self, cfg, w):
        super().__init__(cfg, w)
        self.C, self.L, self.H = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]
        self.hs = self.C // self.H
        pct = cfg.get("partial_rotary_factor", cfg.get("rotary_pct", 0.25))
        self.rot = int(self.hs * pct)
        self.eps = cfg.get("layer_norm_eps", 1e-5)
        self.bias = cfg.get("attention_bias", True)
        self.parallel = cfg.get("use_parallel_residual", True)
        self.act = activation(cfg.get("hidden_act", "gelu"))
        self.tied = cfg.get("tie_word_embeddings", False)

    def ln(self, x, name):
        return F.layer_norm(x, (self.C,), self.p(name + ".weight"), self.p(name + ".bias"), self.eps)

    def embed(self, idx):
        return self.p("gpt_neox.embed_in.weight")[idx]

    def context(self, T):
        return rope_tables(self.cfg, self.rot, T)

    def attn(self, l, x, ctx):
        pre = f"gpt_neox.layers.{l}.attention"
        B, T, _ = x.shape
        qkv = self.lin(x, pre + ".query_key_value", self.bias).view(B, T, self.H, 3 * self.hs).transpose(1, 2)
        q, k, v = qkv.split(self.hs, -1)  # per head [q | k | v]
        cos, sin = ctx
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = attention(q, k, v, self.hs**-0.5)
        return self.lin(y.transpose(1, 2).reshape(B, T, self.C), pre + ".dense", self.bias)

    def mlp(self, l, x):
        pre = f"gpt_neox.layers.{l}.mlp"
        return self.lin(self.act(self.lin(x, pre + ".dense_h_to_4h", True)), pre + ".dense_4h_to_h", True)

    def block(self, l, x, ctx):
        pre = f"gpt_neox.layers.{l}"
        a = self.attn(l, self.ln(x, pre + ".input_layernorm"), ctx)
        if self.parallel:
            return x + a + self.mlp(l, self.ln(x, pre + ".post_attention_layernorm"))
        h = x + a
        return h + self.mlp(l, self.ln(h, pre + ".post_attention_layernorm"))

    def head(self, x):
        x = self.ln(x, "gpt_neox.final_layer_norm")
        if self.tied:
            self.used.add("embed_out.weight")
            return x @ self.p("gpt_neox.embed_in.weight").T
        return x @ self.p("embed_out.weight").T


class GPT2(Model):
    def __init__(self, cfg, w):
        super().__init__(cfg, w)
        self.C, self.L, self.H = cfg["n_embd"], cfg["n_layer"], cfg["n_head"]
        self.hd = self.C // self.H
        self.eps = cfg.get("layer_norm_epsilon", 1e-5)
        self.act = activation(cfg.get("activation_function", "gelu_new"))
        self.scale_w = cfg.get("scale_attn_weights", True)
        self.inv_layer = cfg.get("scale_attn_by_inverse_layer_idx", False)
        self.tied = cfg.get("tie_word_embeddings", True)
        self.P = cfg.get("n_positions", 1024)

    def conv(self, x, name):
        return x @ self.p(name + ".weight") + self.p(name + ".bias")

    def ln(self, x, name):
        return F.layer_norm(x, (self.C,), self.p(name + ".weight"), self.p(name + ".bias"), self.eps)

    def embed(self, idx):
        T = idx.shape[1]
        if T > self.P:
            raise SystemExit(f"SEQ {T} exceeds n_positions {self.P}")
        return self.p("transformer.wte.weight")[idx] + self.p("transformer.wpe.weight")[:T]

    def context(self, T):
        return None

    def block(self, l, x, ctx):
        pre = f"transformer.h.{l}"
        B, T, C = x.shape
        q, k, v = self.conv(self.ln(x, pre + ".ln_1"), pre + ".attn.c_attn").split(C, -1)
        q, k, v = (t.view(B, T, self.H, self.hd).transpose(1, 2) for t in (q, k, v))
        scale = (self.hd**-0.5 if self.scale_w else 1.0) / ((l + 1) if self.inv_layer else 1)
        y = attention(q, k, v, scale).transpose(1, 2).reshape(B, T, C)
        h = x + self.conv(y, pre + ".attn.c_proj")
        m = self.conv(self.act(self.conv(self.ln(h, pre + ".ln_2"), pre + ".mlp.c_fc")), pre + ".mlp.c_proj")
        return h + m

    def head(self, x):
        x = self.ln(x, "transformer.ln_f")
        if self.tied:
            self.used.add("lm_head.weight")
            return x @ self.p("transformer.wte.weight").T
        return x @ self.p("lm_head.weight").T


def load_model(d):
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    idx = os.path.join(d, "model.safetensors.index.json")
    w = {}
    if os.path.exists(idx):
        with open(idx) as f:
            wm = json.load(f)["weight_map"]
        for shard in sorted(set(wm.values())):
            for k, v in safetensors_np.load(os.path.join(d, shard)).items():
                if wm.get(k) != shard:
                    raise SystemExit(f"{k} in {shard} but the index maps it to {wm.get(k)}")
                w[k] = v
        if set(w) != set(wm):
            raise SystemExit(f"index lists tensors missing from the shards: {sorted(set(wm) - set(w))[:5]}")
    else:
        w = safetensors_np.load(os.path.join(d, "model.safetensors"))
    dt = np.float64 if torch.get_default_dtype() == torch.float64 else np.float32
    w = {k: torch.from_numpy(v.astype(dt, copy=False)) for k, v in w.items()}
    mt = cfg["model_type"]
    if mt in ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "olmo2"):
        return cfg, RopeDecoder(cfg, w)
    if mt == "gpt_neox":
        return cfg, GPTNeoX(cfg, w)
    if mt == "gpt2":
        return cfg, GPT2(cfg, w)
    raise SystemExit(f"model_type {mt!r} is not implemented here")


# ----------------------------------------------------------------------------------------------
# evaluation (NormLab evalWindows / lmEvalLoss / diagnostics.ts)


def read_tokens(path, dtype):
    return np.fromfile(path, dtype="<u2" if dtype == "uint16" else "<u4").astype(np.int64)


def ce_sum(model, x, y, skip=frozenset(), chunk_elems=1 << 24):
    V = None
    total = 0.0
    n = x.shape[0]
    per = max(1, chunk_elems // (x.shape[1] * model_vocab(model)))
    for i in range(0, n, per):
        logits = model.forward(x[i : i + per], skip)
        V = logits.shape[-1]
        total += F.cross_entropy(logits.reshape(-1, V), y[i : i + per].reshape(-1), reduction="sum").item()
    return total


def model_vocab(model):
    return model.cfg.get("vocab_size")


def check(args):
    print(json.dumps(check_result(args)))


def check_result(args):
    tokens = read_tokens(args.tokens, args.token_dtype)
    seq = args.seq
    count = (len(tokens) - 1) // seq
    if count < 1:
        raise SystemExit(f"{len(tokens)} tokens are too few for one window of {seq}")
    cfg, model = load_model(args.model_dir)
    V = cfg["vocab_size"]
    if tokens.max() >= V:
        raise SystemExit(f"token id {tokens.max()} >= vocab_size {V}")
    X = torch.from_numpy(np.stack([tokens[k * seq : (k + 1) * seq] for k in range(count)]))
    Y = torch.from_numpy(np.stack([tokens[k * seq + 1 : (k + 1) * seq + 1] for k in range(count)]))
    L = model.L
    skip = frozenset(int(s) for s in args.skip.split(",") if s != "") if args.skip else frozenset()
    if any(not 0 <= s < L for s in skip):
        raise SystemExit(f"--skip blocks must be in 0..{L - 1}")
    with torch.no_grad():
        loss = ce_sum(model, X, Y, skip) / (count * seq)
        # residual statistics over the first `sequences` windows
        S = min(args.sequences, count)
        res = []
        model.forward(X[:S], frozenset(), res)
        model.check_unused()  # every tensor in the checkpoint took part in the full model
        variance = [r.var(unbiased=False).item() for r in res]
        token_variance = [r.var(-1, unbiased=False).mean().item() for r in res]
        last = [r[:, -1, :] for r in res]
        maxN = args.max_n if args.max_n is not None else L
        if not 1 <= maxN <= L:
            raise SystemExit(f"--max-n must be in 1..{L}")
        angular = []
        for n in range(1, maxN + 1):
            row = []
            for l in range(L):
                if l + n > L:
                    row.append(None)
                    continue
                a, b = last[l], last[l + n]
                na, nb = (a * a).sum(-1), (b * b).sum(-1)
                ok = (na > 0) & (nb > 0)
                cos = ((a * b).sum(-1) / torch.sqrt(na * nb)).clamp(-1, 1)
                d = torch.arccos(cos[ok]) / math.pi
                row.append(d.mean().item() if d.numel() else None)
            angular.append(row)
        # Block Influence (ShortGPT): 1 - mean over every token of cos(x_{l-1}, x_l), l = 1..L
        block_influence = []
        for l in range(1, L + 1):
            a, b = res[l - 1], res[l]
            cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-8)
            block_influence.append(1.0 - cos.mean().item())
        P = min(args.pruning_windows, count)
        base = ce_sum(model, X[:P], Y[:P]) / (P * seq)
        drop = [ce_sum(model, X[:P], Y[:P], frozenset([l])) / (P * seq) - base for l in range(L)]
        pruning = {"windows": P, "base_loss": base, "drop_loss": drop}
        if getattr(args, "window_losses", False):  # each pruning window's CE on its own (full, and without each block)
            pruning["window_base_loss"] = [ce_sum(model, X[w : w + 1], Y[w : w + 1]) / seq for w in range(P)]
            pruning["window_loss"] = [[ce_sum(model, X[w : w + 1], Y[w : w + 1], frozenset([l])) / seq for w in range(P)] for l in range(L)]
    # gradient norms per block
    G = min(args.grad_windows, count)
    pat = re.compile(r"\.(?:layers|h)\.(\d+)\.")
    block_params = {}
    for name, t in sorted(model.w.items()):
        m = pat.search(name)
        if m and name in model.used:
            t.requires_grad_(True)
            block_params.setdefault(int(m.group(1)), []).append(t)
    logits = model.forward(X[:G])
    F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y[:G].reshape(-1)).backward()
    grad_norms = []
    for l in range(L):
        sq = sum(float((t.grad * t.grad).sum()) for t in block_params.get(l, []) if t.grad is not None)
        grad_norms.append(math.sqrt(sq))
    out = {
        "model_type": cfg["model_type"],
        "loss": loss,
        "tokens": count * seq,
        "seq": seq,
        "windows": count,
        "skip": sorted(skip),
        "layers": L,
        "sequences": S,
        "variance": variance,
        "token_variance": token_variance,
        "angular": angular,
        "block_influence": block_influence,
        "pruning": pruning,
        "grad_windows": G,
        "grad_norms": grad_norms,
    }
    return out


# ----------------------------------------------------------------------------------------------
# tiny random checkpoints


def _llama_like(mt, arch, **over):
    cfg = dict(
        model_type=mt, architectures=[arch], vocab_size=256, hidden_size=48, intermediate_size=112, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=4, hidden_act="silu", max_position_embeddings=64, rms_norm_eps=1e-6,
        rope_theta=10000.0, rope_scaling=None, attention_dropout=0.0, tie_word_embeddings=False, initializer_range=0.02,
        bos_token_id=1, eos_token_id=2, use_cache=True,
    )
    cfg.update(over)
    return cfg


def _llama(**over):
    base = dict(head_dim=12, attention_bias=False, mlp_bias=False, pretraining_tp=1)
    base.update(over)
    return _llama_like("llama", "LlamaForCausalLM", **base)


VARIANTS = {
    "llama": _llama(),
    "llama-gqa": _llama(
        num_key_value_heads=2, head_dim=16, tie_word_embeddings=True,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
    ),
    "llama-linear": _llama(rope_scaling={"type": "linear", "factor": 4.0}),
    "llama-dynamic": _llama(max_position_embeddings=16, rope_scaling={"rope_type": "dynamic", "factor": 4.0}),
    "llama-yarn": _llama(rope_scaling={"rope_type": "yarn", "factor": 4.0}),
    "llama-bias": _llama(attention_bias=True, mlp_bias=True),
    "mistral": _llama_like("mistral", "MistralForCausalLM", num_key_value_heads=2, sliding_window=5),
    "qwen2": _llama_like(
        "qwen2", "Qwen2ForCausalLM", num_key_value_heads=2, tie_word_embeddings=True, rope_theta=1000000.0,
        use_sliding_window=False, sliding_window=4, max_window_layers=1, bos_token_id=None, eos_token_id=2,
    ),
    "qwen3": _llama_like(
        "qwen3", "Qwen3ForCausalLM", num_key_value_heads=2, head_dim=16, attention_bias=False, rope_theta=1000000.0,
        use_sliding_window=False, sliding_window=None, max_window_layers=3,
    ),
    "gemma": _llama_like(
        "gemma", "GemmaForCausalLM", hidden_size=64, intermediate_size=128, num_key_value_heads=1, head_dim=24,
        hidden_act="gelu_pytorch_tanh", hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True, attention_bias=False,
        pad_token_id=0, eos_token_id=1, bos_token_id=2,
    ),
    "gemma2": _llama_like(
        "gemma2", "Gemma2ForCausalLM", hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_key_value_heads=2,
        head_dim=24, hidden_act="gelu_pytorch_tanh", hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
        attention_bias=False, query_pre_attn_scalar=32, sliding_window=4, attn_logit_softcapping=5.0,
        final_logit_softcapping=8.0, cache_implementation="hybrid", pad_token_id=0, eos_token_id=1, bos_token_id=2,
    ),
    "olmo2": _llama_like("olmo2", "Olmo2ForCausalLM", num_key_value_heads=2, attention_bias=False, rope_theta=500000.0, pad_token_id=1),
    "gpt-neox": dict(
        model_type="gpt_neox", architectures=["GPTNeoXForCausalLM"], vocab_size=256, hidden_size=64, intermediate_size=192,
        num_hidden_layers=3, num_attention_heads=4, hidden_act="gelu", rotary_pct=0.25, rotary_emb_base=10000,
        attention_dropout=0.0, hidden_dropout=0.0, max_position_embeddings=64, initializer_range=0.02, layer_norm_eps=1e-5,
        use_cache=True, bos_token_id=0, eos_token_id=0, tie_word_embeddings=False, use_parallel_residual=True,
        rope_scaling=None, attention_bias=True,
    ),
    "gpt2-fields": dict(
        model_type="gpt2", architectures=["GPT2LMHeadModel"], vocab_size=256, n_positions=64, n_ctx=64, n_embd=48, n_layer=3,
        n_head=4, n_inner=72, activation_function="relu", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        layer_norm_epsilon=1e-5, initializer_range=0.02, scale_attn_weights=True, scale_attn_by_inverse_layer_idx=True,
        reorder_and_upcast_attn=False, use_cache=True, bos_token_id=255, eos_token_id=255, tie_word_embeddings=True,
    ),
    "deepseek": dict(
        model_type="llama", architectures=["LlamaForCausalLM"], attention_bias=False, bos_token_id=100000,
        eos_token_id=100001, hidden_act="silu", hidden_size=32, initializer_range=0.02, intermediate_size=88,
        max_position_embeddings=64, num_attention_heads=4, num_hidden_layers=3, num_key_value_heads=4, pretraining_tp=1,
        rms_norm_eps=1e-6, rope_scaling=None, rope_theta=10000, tie_word_embeddings=False, use_cache=True, vocab_size=102400,
    ),
}
# Real shapes, for size and speed checks (benchmarks, not tests): weights drawn at N(0, 0.02) as
# initializer_range says. Llama-3.2-1B's config.json (GQA 32/8, head_dim 64, tied, llama3 scaling).
REAL_SHAPES = {
    "llama-3.2-1b": _llama_like(
        "llama", "LlamaForCausalLM", vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, head_dim=64, max_position_embeddings=131072, rms_norm_eps=1e-5,
        rope_theta=500000.0, tie_word_embeddings=True, attention_bias=False, mlp_bias=False, pretraining_tp=1,
        rope_scaling={"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        bos_token_id=128000, eos_token_id=128001,
    ),
}
VARIANTS.update(REAL_SHAPES)
VARIANTS["gpt-neox-serial"] = dict(VARIANTS["gpt-neox"], use_parallel_residual=False)
VARIANTS["gpt2-upcast"] = dict(VARIANTS["gpt2-fields"], n_inner=None, activation_function="gelu_fast", reorder_and_upcast_attn=True)
VARIANTS["gpt2-quick"] = dict(VARIANTS["gpt2-fields"], n_inner=None, activation_function="quick_gelu", scale_attn_by_inverse_layer_idx=False)


def state_dict_spec(cfg):
    """[(name, shape, kind)] in HF state_dict order; kind: emb, head, lin, bias, norm, norm1p, lnb."""
    mt = cfg["model_type"]
    out = []
    if mt == "gpt2":
        C, L, V = cfg["n_embd"], cfg["n_layer"], cfg["vocab_size"]
        I = cfg.get("n_inner") or 4 * C
        out += [("transformer.wte.weight", (V, C), "emb"), ("transformer.wpe.weight", (cfg["n_positions"], C), "pos")]
        for i in range(L):
            h = f"transformer.h.{i}"
            out += [(f"{h}.ln_1.weight", (C,), "norm"), (f"{h}.ln_1.bias", (C,), "bias")]
            for n, a, b in (("attn.c_attn", C, 3 * C), ("attn.c_proj", C, C)):
                out += [(f"{h}.{n}.weight", (a, b), "lin"), (f"{h}.{n}.bias", (b,), "bias")]
            out += [(f"{h}.ln_2.weight", (C,), "norm"), (f"{h}.ln_2.bias", (C,), "bias")]
            for n, a, b in (("mlp.c_fc", C, I), ("mlp.c_proj", I, C)):
                out += [(f"{h}.{n}.weight", (a, b), "lin"), (f"{h}.{n}.bias", (b,), "bias")]
        out += [("transformer.ln_f.weight", (C,), "norm"), ("transformer.ln_f.bias", (C,), "bias")]
        if not cfg.get("tie_word_embeddings", True):
            out.append(("lm_head.weight", (V, C), "head"))
        return out
    if mt == "gpt_neox":
        C, L, V, I = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"], cfg["intermediate_size"]
        out.append(("gpt_neox.embed_in.weight", (V, C), "emb"))
        for i in range(L):
            h = f"gpt_neox.layers.{i}"
            for n in ("input_layernorm", "post_attention_layernorm"):
                out += [(f"{h}.{n}.weight", (C,), "norm"), (f"{h}.{n}.bias", (C,), "bias")]
            for n, a, b in (("attention.query_key_value", C, 3 * C), ("attention.dense", C, C), ("mlp.dense_h_to_4h", C, I), ("mlp.dense_4h_to_h", I, C)):
                out += [(f"{h}.{n}.weight", (b, a), "lin"), (f"{h}.{n}.bias", (b,), "bias")]
        out += [("gpt_neox.final_layer_norm.weight", (C,), "norm"), ("gpt_neox.final_layer_norm.bias", (C,), "bias")]
        if not cfg.get("tie_word_embeddings", False):
            out.append(("embed_out.weight", (V, C), "head"))
        return out
    C, L, V, I = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"], cfg["intermediate_size"]
    H = cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads") or H
    D = (C // H) if mt == "olmo2" else (cfg.get("head_dim") or C // H)
    gem = mt in ("gemma", "gemma2")
    nk = "norm1p" if gem else "norm"
    ab = cfg.get("attention_bias", False)
    qkv_b = True if mt == "qwen2" else (False if mt == "mistral" else ab)
    o_b = False if mt in ("qwen2", "mistral") else ab
    mlp_b = cfg.get("mlp_bias", False) if mt == "llama" else False
    out.append(("model.embed_tokens.weight", (V, C), "emb"))
    for i in range(L):
        h = f"model.layers.{i}"
        for n, rows, b in (("q_proj", H * D, qkv_b), ("k_proj", KV * D, qkv_b), ("v_proj", KV * D, qkv_b), ("o_proj", C, o_b)):
            cols = H * D if n == "o_proj" else C
            out.append((f"{h}.self_attn.{n}.weight", (rows, cols), "lin"))
            if b:
                out.append((f"{h}.self_attn.{n}.bias", (rows,), "bias"))
        if mt == "qwen3":
            out += [(f"{h}.self_attn.q_norm.weight", (D,), nk), (f"{h}.self_attn.k_norm.weight", (D,), nk)]
        if mt == "olmo2":
            out += [(f"{h}.self_attn.q_norm.weight", (H * D,), nk), (f"{h}.self_attn.k_norm.weight", (KV * D,), nk)]
        for n, shape in (("gate_proj", (I, C)), ("up_proj", (I, C)), ("down_proj", (C, I))):
            out.append((f"{h}.mlp.{n}.weight", shape, "lin"))
            if mlp_b:
                out.append((f"{h}.mlp.{n}.bias", (shape[0],), "bias"))
        norms = {
            "olmo2": ("post_attention_layernorm", "post_feedforward_layernorm"),
            "gemma2": ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"),
        }.get(mt, ("input_layernorm", "post_attention_layernorm"))
        out += [(f"{h}.{n}.weight", (C,), nk) for n in norms]
    out.append(("model.norm.weight", (C,), nk))
    tied_default = gem
    if not cfg.get("tie_word_embeddings", tied_default):
        out.append(("lm_head.weight", (V, C), "head"))
    return out


def make(args):
    if args.variant not in VARIANTS:
        raise SystemExit(f"unknown variant {args.variant!r}; one of {', '.join(sorted(VARIANTS))}")
    cfg = json.loads(json.dumps(VARIANTS[args.variant]))
    spec = state_dict_spec(cfg)
    g = torch.Generator().manual_seed(args.seed)
    mt = cfg["model_type"]
    C = cfg.get("hidden_size") or cfg["n_embd"]
    tied = not any(k == "head" for _, _, k in spec)
    std = {
        "lin": 0.25, "bias": 0.1, "pos": 0.3, "head": 0.2,
        # embedding: tied heads keep logits ~O(2); gemma's x sqrt(C) keeps x_0 ~O(2)
        "emb": (2.0 / math.sqrt(C)) if tied else 0.5,
    }
    if args.variant in REAL_SHAPES:
        std = {k: cfg.get("initializer_range", 0.02) for k in std}
    tensors = {}
    for name, shape, kind in spec:
        r = torch.randn(shape, generator=g, dtype=torch.float32)
        if kind == "norm":
            v = 1.0 + 0.2 * r
        elif kind == "norm1p":
            v = 0.2 * r
        else:
            v = std[kind] * r
        tensors[name] = v.numpy()
    dt = args.dtype
    torch_dtype = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}[dt]

    def enc(a):
        if dt == "bf16":
            return safetensors_np.BF16(a)
        return a.astype(np.float16) if dt == "f16" else a.astype(np.float32)

    def nbytes(a):
        return a.size * (4 if dt == "f32" else 2)

    os.makedirs(args.out_dir, exist_ok=True)
    cfg["torch_dtype"] = torch_dtype
    cfg["transformers_version"] = "4.51.3"
    with open(os.path.join(args.out_dir, "config.json"), "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    names = [n for n, _, _ in spec]
    if args.shards <= 1:
        safetensors_np.save(os.path.join(args.out_dir, "model.safetensors"), {n: enc(tensors[n]) for n in names}, {"format": "pt"})
    else:
        N = args.shards
        total = sum(nbytes(tensors[n]) for n in names)
        # contiguous groups in state_dict order, about total/N bytes each (save_pretrained fills shards in order)
        groups, cur, acc = [], [], 0
        for n in names:
            cur.append(n)
            acc += nbytes(tensors[n])
            if acc >= total * (len(groups) + 1) / N and len(groups) < N - 1:
                groups.append(cur)
                cur = []
        groups.append(cur)
        while len(groups) < N:  # more shards than natural splits: split the largest group
            k = max(range(len(groups)), key=lambda i: len(groups[i]))
            if len(groups[k]) < 2:
                raise SystemExit(f"{len(names)} tensors cannot fill {N} shards")
            groups[k : k + 1] = [groups[k][: len(groups[k]) // 2], groups[k][len(groups[k]) // 2 :]]
        weight_map = {}
        for i, grp in enumerate(groups):
            fn = f"model-{i + 1:05d}-of-{N:05d}.safetensors"
            safetensors_np.save(os.path.join(args.out_dir, fn), {n: enc(tensors[n]) for n in grp}, {"format": "pt"})
            weight_map.update({n: fn for n in grp})
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        with open(os.path.join(args.out_dir, "model.safetensors.index.json"), "w") as f:
            f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return {"variant": args.variant, "out": args.out_dir, "dtype": dt, "shards": max(1, args.shards), "tensors": len(names)}


def loss_only(args):
    """Mean CE of MODEL_DIR on the token windows, timed: what `normlab bench` compares NormLab's
    eval-lm with (--compute float32: PyTorch's usual float32 math instead of the float64 reference)."""
    import resource
    import time

    if args.compute == "float32":
        torch.set_default_dtype(torch.float32)
    torch.set_num_threads(args.threads)
    tokens = read_tokens(args.tokens, args.token_dtype)
    seq = args.seq
    count = (len(tokens) - 1) // seq
    if count < 1:
        raise SystemExit(f"{len(tokens)} tokens are too few for one window of {seq}")
    t0 = time.perf_counter()
    cfg, model = load_model(args.model_dir)
    t1 = time.perf_counter()
    X = torch.from_numpy(np.stack([tokens[k * seq : (k + 1) * seq] for k in range(count)]))
    Y = torch.from_numpy(np.stack([tokens[k * seq + 1 : (k + 1) * seq + 1] for k in range(count)]))
    with torch.no_grad():
        loss = ce_sum(model, X, Y) / (count * seq)
    t2 = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    print(json.dumps({
        "loss": loss, "tokens": count * seq, "load_seconds": t1 - t0, "eval_seconds": t2 - t1,
        "tokens_per_s": count * seq / (t2 - t1), "peak_rss_mib": rss, "compute": args.compute,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
    }))


def suite(args):
    """Every tiny variant (or --variants) in every --dtypes: make it under OUT_ROOT/VARIANT-DTYPE (the
    bf16 ones in 2 shards), score a random uint32 token file of its vocabulary, and print one JSON
    object {"VARIANT-DTYPE": {"dir", "tokens", "result"}} (one process for the whole parity suite)."""
    names = args.variants.split(",") if args.variants else sorted(set(VARIANTS) - set(REAL_SHAPES))
    out = {}
    for variant in names:
        for dt in args.dtypes.split(","):
            key = f"{variant}-{dt}"
            d = os.path.join(args.out_root, key)
            make(argparse.Namespace(variant=variant, out_dir=d, dtype=dt, shards=2 if dt == "bf16" else 1, seed=args.seed))
            V = VARIANTS[variant].get("vocab_size")
            tok = os.path.join(args.out_root, f"{key}.tokens.bin")
            rng = np.random.default_rng(args.seed + 1)
            rng.integers(0, V, size=args.seq * args.windows + 1).astype("<u4").tofile(tok)
            check_args = argparse.Namespace(
                tokens=tok, seq=args.seq, model_dir=d, token_dtype="uint32", sequences=args.sequences,
                pruning_windows=args.pruning_windows, grad_windows=args.grad_windows, max_n=None, skip="",
            )
            out[key] = {"dir": d, "tokens": tok, "result": check_result(check_args)}
    print(json.dumps(out))


def write_tokens(args):
    rng = np.random.default_rng(args.seed)
    if args.dtype == "uint16" and args.vocab > 65536:
        raise SystemExit("uint16 tokens hold ids < 65536: use --dtype uint32")
    t = rng.integers(0, args.vocab, size=args.n)
    t.astype("<u2" if args.dtype == "uint16" else "<u4").tofile(args.out)
    print(json.dumps({"out": args.out, "tokens": args.n, "vocab": args.vocab, "dtype": args.dtype}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("variant")
    m.add_argument("out_dir")
    m.add_argument("--dtype", choices=["f32", "bf16", "f16"], default="f32")
    m.add_argument("--shards", type=int, default=1)
    m.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("check")
    c.add_argument("tokens")
    c.add_argument("seq", type=int)
    c.add_argument("model_dir")
    c.add_argument("--token-dtype", choices=["uint16", "uint32"], default="uint16")
    c.add_argument("--sequences", type=int, default=32)
    c.add_argument("--pruning-windows", type=int, default=32)
    c.add_argument("--grad-windows", type=int, default=8)
    c.add_argument("--max-n", type=int, default=None)
    c.add_argument("--skip", default="")
    c.add_argument("--window-losses", action="store_true", help="add each pruning window's CE (full and without each block)")
    t = sub.add_parser("write-tokens")
    t.add_argument("out")
    t.add_argument("n", type=int)
    t.add_argument("vocab", type=int)
    t.add_argument("--dtype", choices=["uint16", "uint32"], default="uint16")
    t.add_argument("--seed", type=int, default=0)
    sub.add_parser("variants")
    lo = sub.add_parser("loss")
    lo.add_argument("tokens")
    lo.add_argument("seq", type=int)
    lo.add_argument("model_dir")
    lo.add_argument("--token-dtype", choices=["uint16", "uint32"], default="uint16")
    lo.add_argument("--compute", choices=["float32", "float64"], default="float64")
    lo.add_argument("--threads", type=int, default=torch.get_num_threads())
    su = sub.add_parser("suite")
    su.add_argument("out_root")
    su.add_argument("--variants", default="")
    su.add_argument("--dtypes", default="f32,bf16")
    su.add_argument("--seq", type=int, default=16)
    su.add_argument("--windows", type=int, default=6)
    su.add_argument("--sequences", type=int, default=4)
    su.add_argument("--pruning-windows", type=int, default=4)
    su.add_argument("--grad-windows", type=int, default=2)
    su.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.cmd == "make":
        print(json.dumps(make(a)))
    elif a.cmd == "suite":
        suite(a)
    elif a.cmd == "loss":
        loss_only(a)
    elif a.cmd == "check":
        if a.seq < 1:
            raise SystemExit("SEQ must be >= 1")
        check(a)
    elif a.cmd == "write-tokens":
        write_tokens(a)
    else:
        print(json.dumps(sorted(VARIANTS)))


if __name__ == "__main__":
    main()
