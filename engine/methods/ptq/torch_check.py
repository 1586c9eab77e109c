"""Plain-PyTorch twin of NormLab's ViT, with timm's VisionTransformer tensor names and layouts.

Builds a small random ViT (conv patch embedding, class token, learned positions, Pre-LN blocks,
exact-erf GELU, LayerNorm eps 1e-6, token pooling), writes it as a timm-style model folder
(config.json + model.safetensors, written by hand: the safetensors package is not needed), and
writes `io.safetensors` holding a batch of NHWC input images and PyTorch's logits for them.

`repq IN.json OUT.json` instead runs NormLab's own port of RepQ-ViT's quantizer semantics
(zkkli/RepQ-ViT, classification/quant/quantizer.py and the scale reparameterization of
test_quant.py, re-written here from their definitions) on the inputs in IN.json:
- log-√2 on `probs`: Δ among the 0.999 / 0.9999 / 0.99999 quantiles by mean squared error,
  x_int = round(−2 log2(x/Δ)), codes ≥ 2^b → 0, clamp to [0, 2^b − 1],
  x̂ = 2^(−⌈q/2⌉) (√2 if q odd) Δ;
- uniform per output channel on `weight` (out, in) and per channel on `act` (B, N, C): each
  channel's [min, max] among the same quantile pairs by mean squared error,
  Δ = (max − min)/(2^b − 1), z = round(−min/Δ), q = clamp(round(x/Δ) + z, 0, 2^b − 1);
- the post-LN reparameterization with `act`'s channel quantizers into `ln_weight`, `ln_bias`
  and the next linear (`next_weight` (out, C), `next_bias`): target Δ~ and z~ the means,
  r = Δ/Δ~, b = min/r − min~, γ' = γ/r, β' = β/r − b, W' = W r, bias' = bias + W' b.

usage: python3 torch_check.py OUT_DIR | python3 torch_check.py repq IN.json OUT.json
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "testing"))
import safetensors_np  # noqa: E402

CFG = dict(img_size=12, patch_size=4, in_chans=3, num_classes=7, embed_dim=24, depth=2, num_heads=3, mlp_ratio=2, qkv_bias=True, layer_norm_eps=1e-6)


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, T, D = x.shape
        hs = D // self.heads
        qkv = self.qkv(x).reshape(B, T, 3, self.heads, hs).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = (q @ k.transpose(-2, -1)) * hs ** -0.5
        att = att.softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, D)
        return self.proj(y)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))  # exact erf GELU, like timm


class Block(nn.Module):
    def __init__(self, dim, heads, hidden, eps):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, p, c, d):
        super().__init__()
        self.proj = nn.Conv2d(c, d, kernel_size=p, stride=p)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, D, gh, gw) -> (B, N, D)


class ViT(nn.Module):
    def __init__(self, c):
        super().__init__()
        D = c["embed_dim"]
        n = (c["img_size"] // c["patch_size"]) ** 2
        self.patch_embed = PatchEmbed(c["patch_size"], c["in_chans"], D)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, D))
        self.blocks = nn.ModuleList([Block(D, c["num_heads"], int(D * c["mlp_ratio"]), c["layer_norm_eps"]) for _ in range(c["depth"])])
        self.norm = nn.LayerNorm(D, eps=c["layer_norm_eps"])
        self.head = nn.Linear(D, c["num_classes"])

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x)[:, 0])


def write_safetensors(path, tensors, metadata=None):
    safetensors_np.save(path, {k: t.detach().contiguous().float().numpy() for k, t in tensors.items()}, metadata)


REPQ_PCTS = (0.999, 0.9999, 0.99999)  # RepQ-ViT's clipping search, in its order


def mse(a, b):
    return (a - b).abs().pow(2).mean()


def uniform_fake_quant(x, lo, hi, bits):
    delta = (hi - lo) / (2**bits - 1)
    zero = torch.round(-lo / delta)
    q = torch.clamp(torch.round(x / delta) + zero, 0, 2**bits - 1)
    return (q - zero) * delta, delta, zero


def repq_uniform(x, bits):
    """One tensor's (delta, zero point): the quantile pair with the least mean squared error (first on ties)."""
    flat = x.reshape(-1)
    best, out = 1e10, None
    for pct in REPQ_PCTS:
        xq, delta, zero = uniform_fake_quant(x, torch.quantile(flat, 1 - pct), torch.quantile(flat, pct), bits)
        score = mse(x, xq)
        if score < best:
            best, out = score, (delta, zero)
    return out


def log_sqrt2_fake_quant(x, delta, bits):
    n = 2**bits
    x_int = torch.round(-2 * torch.log2(x / delta))
    underflow = x_int >= n
    q = torch.clamp(x_int, 0, n - 1)
    odd = (q % 2) * (math.sqrt(2) - 1) + 1
    xq = 2 ** (-torch.ceil(q / 2)) * odd * delta
    xq[underflow] = 0
    return xq


def repq_log_sqrt2(x, bits):
    best, delta = 1e10, x.max()
    for pct in REPQ_PCTS:
        d = torch.quantile(x.reshape(-1), pct)
        score = mse(x, log_sqrt2_fake_quant(x, d, bits))
        if score < best:
            best, delta = score, d
    return delta, log_sqrt2_fake_quant(x, delta, bits)


def repq_check(inp, out):
    with open(inp) as f:
        d = json.load(f)
    bits = d["bits"]
    t = lambda k: torch.tensor(d[k], dtype=torch.float32)  # noqa: E731
    probs, weight, act = t("probs"), t("weight"), t("act")
    delta, probs_q = repq_log_sqrt2(probs, bits)
    # weights: one quantizer per output channel (row of the (out, in) weight)
    w = [repq_uniform(weight[c], bits) for c in range(weight.shape[0])]
    w_delta = torch.stack([a for a, _ in w])
    w_zero = torch.stack([b for _, b in w])
    w_q = torch.clamp(torch.round(weight / w_delta[:, None]) + w_zero[:, None], 0, 2**bits - 1)
    w_deq = (w_q - w_zero[:, None]) * w_delta[:, None]
    # post-LN activations (B, N, C): one quantizer per channel
    a = [repq_uniform(act[:, :, c], bits) for c in range(act.shape[2])]
    a_delta = torch.stack([x for x, _ in a])
    a_zero = torch.stack([z for _, z in a])
    # scale reparameterization into the LayerNorm and the next linear
    a_min = -a_zero * a_delta
    t_delta, t_zero = a_delta.mean(), a_zero.mean()
    t_min = -t_zero * t_delta
    r = a_delta / t_delta
    b = a_min / r - t_min
    ln_w, ln_b = t("ln_weight") / r, t("ln_bias") / r - b
    nw = t("next_weight") * r  # (out, C): scales input channel c
    nb = t("next_bias") + nw @ b
    res = {
        "log_delta": float(delta),
        "log_dequant": probs_q.tolist(),
        "w_delta": w_delta.tolist(),
        "w_zero": w_zero.tolist(),
        "w_dequant": w_deq.tolist(),
        "a_delta": a_delta.tolist(),
        "a_zero": a_zero.tolist(),
        "target_delta": float(t_delta),
        "target_zero": float(t_zero),
        "ln_weight": ln_w.tolist(),
        "ln_bias": ln_b.tolist(),
        "next_weight": nw.tolist(),
        "next_bias": nb.tolist(),
    }
    with open(out, "w") as f:
        json.dump(res, f)
    print(json.dumps({"ok": True}))


def main():
    if sys.argv[1] == "repq":
        return repq_check(sys.argv[2], sys.argv[3])
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    model = ViT(CFG).double()
    with torch.no_grad():
        for name, p in model.named_parameters():  # non-trivial values everywhere (LN affine included)
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
                p.copy_(1 + 0.3 * torch.randn_like(p))
            else:
                p.copy_((0.3 if p.dim() > 1 else 0.1) * torch.randn_like(p))
    model.eval()
    x = torch.rand(5, CFG["in_chans"], CFG["img_size"], CFG["img_size"], dtype=torch.float64)
    with torch.no_grad():
        logits = model(x)
    write_safetensors(os.path.join(out, "model.safetensors"), {k: v.float() for k, v in model.state_dict().items()}, {"format": "pt"})
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump({"architecture": "vit", "model_type": "vit", **CFG}, f)
    write_safetensors(os.path.join(out, "io.safetensors"), {"images_nhwc": x.permute(0, 2, 3, 1).float(), "logits": logits.float()})
    print(json.dumps({"ok": True, "logits_abs_max": float(logits.abs().max())}))


if __name__ == "__main__":
    main()
