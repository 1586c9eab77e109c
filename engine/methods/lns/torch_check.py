#!/usr/bin/python3
"""Independent PyTorch reference for NormLab's LLaMA norm variants ("The Curse of Depth in Large
Language Models", 2025). Loads model folders (config.json + model.safetensors, HF
LlamaForCausalLM tensor names, linear weights (out, in)) into a plain LLaMA written here, applies
the variant named by config.json's `normlab_*` keys, and prints the mean next-token cross-entropy
on non-overlapping windows of `seq` tokens of a uint16 token file (as `normlab eval-lm` windows).

  pre:  h = x + Attn(N1(x));            y = h + FFN(N2(h))
  post: h = N1(x + Attn(x));            y = N2(h + FFN(h))        (N1 = input_layernorm,
  mix:  blocks i < normlab_mix_k post, the rest pre                N2 = post_attention_layernorm)
  deepnorm: h = N1(a x + Attn(x));      y = N2(a h + FFN(h)),     a = normlab_deepnorm_alpha
  pre-scaled-init: pre (the variant changes only the initialization)
  lns:  h = x + Attn(N1(x) / sqrt(l));  y = h + FFN(N2(h) / sqrt(l)),  l = i + 1
  lns-scaled-init: lns (the variant changes only the initialization)
  final norm `model.norm` before the head in every variant, never scaled.
Norms: RMSNorm (weight) or LayerNorm (weight, bias), eps = rms_norm_eps.

Usage: torch_check.py TOKENS.bin SEQ MODEL_DIR [MODEL_DIR ...]
Prints one JSON object {MODEL_DIR: {"loss": ..., "tokens": ...}, ...}."""
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "testing"))
import safetensors_np  # noqa: E402

torch.set_default_dtype(torch.float64)  # the reference runs in float64; NormLab in float32


class Llama(torch.nn.Module):
    def __init__(self, cfg, tensors):
        super().__init__()
        self.cfg = cfg
        self.w = {k: torch.from_numpy(v.astype(np.float64)) for k, v in tensors.items()}
        self.C = cfg["hidden_size"]
        self.H = cfg["num_attention_heads"]
        self.L = cfg["num_hidden_layers"]
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.variant = cfg.get("normlab_norm_variant", "pre")
        self.norm_type = cfg.get("normlab_norm_type", "rmsnorm")
        self.mix_k = cfg.get("normlab_mix_k", 0)
        if self.variant not in ("pre", "post", "mix", "deepnorm", "pre-scaled-init", "lns", "lns-scaled-init"):
            raise ValueError(f"unknown normlab_norm_variant {self.variant}")
        self.alpha = cfg["normlab_deepnorm_alpha"] if self.variant == "deepnorm" else 1.0
        hs = self.C // self.H
        theta = cfg.get("rope_theta", 10000.0)
        inv_freq = 1.0 / (theta ** (torch.arange(0, hs, 2, dtype=torch.float64) / hs))
        t = torch.arange(cfg["max_position_embeddings"], dtype=torch.float64)
        freqs = torch.outer(t, inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos, self.sin = emb.cos(), emb.sin()

    def norm(self, x, prefix):
        g = self.w[prefix + ".weight"]
        if self.norm_type == "layernorm":
            return torch.nn.functional.layer_norm(x, (self.C,), g, self.w[prefix + ".bias"], self.eps)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * g

    def is_post(self, i):
        return self.variant in ("post", "deepnorm") or (self.variant == "mix" and i < self.mix_k)

    def rope(self, x, T):
        half = x.shape[-1] // 2
        rot = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * self.cos[:T] + rot * self.sin[:T]

    def attn(self, i, x):
        B, T, C = x.shape
        p = f"model.layers.{i}.self_attn."
        heads = lambda t: t.view(B, T, self.H, C // self.H).transpose(1, 2)  # (B, T, C) -> (B, H, T, hs)
        q = self.rope(heads(x @ self.w[p + "q_proj.weight"].T), T)
        k = self.rope(heads(x @ self.w[p + "k_proj.weight"].T), T)
        v = heads(x @ self.w[p + "v_proj.weight"].T)
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
        att = ((q @ k.transpose(-1, -2)) / math.sqrt(C // self.H)).masked_fill(mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        return y @ self.w[p + "o_proj.weight"].T

    def mlp(self, i, x):
        p = f"model.layers.{i}.mlp."
        a = torch.nn.functional.silu(x @ self.w[p + "gate_proj.weight"].T) * (x @ self.w[p + "up_proj.weight"].T)
        return a @ self.w[p + "down_proj.weight"].T

    def forward(self, idx):
        x = self.w["model.embed_tokens.weight"][idx]
        for i in range(self.L):
            n1, n2 = f"model.layers.{i}.input_layernorm", f"model.layers.{i}.post_attention_layernorm"
            if self.is_post(i):
                h = self.norm(self.alpha * x + self.attn(i, x), n1)
                x = self.norm(self.alpha * h + self.mlp(i, h), n2)
            else:
                s = 1 / math.sqrt(i + 1) if self.variant in ("lns", "lns-scaled-init") else 1.0
                h = x + self.attn(i, self.norm(x, n1) * s)
                x = h + self.mlp(i, self.norm(h, n2) * s)
        x = self.norm(x, "model.norm")
        head = self.w["model.embed_tokens.weight"] if self.cfg.get("tie_word_embeddings") else self.w["lm_head.weight"]
        return x @ head.T


def main():
    tokens_file, seq, dirs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    tokens = torch.from_numpy(np.fromfile(tokens_file, dtype="<u2").astype(np.int64))
    n = (len(tokens) - 1) // seq
    x = torch.stack([tokens[k * seq : (k + 1) * seq] for k in range(n)])
    y = torch.stack([tokens[k * seq + 1 : (k + 1) * seq + 1] for k in range(n)])
    out = {}
    for d in dirs:
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        model = Llama(cfg, safetensors_np.load(os.path.join(d, "model.safetensors")))
        with torch.no_grad():
            logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).item()
        out[d] = {"loss": loss, "tokens": n * seq, "variant": model.variant, "norm_type": model.norm_type}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
