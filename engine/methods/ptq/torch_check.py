"""Plain-PyTorch twin of NormLab's ViT, with timm's VisionTransformer tensor names and layouts.

Builds a small random ViT (conv patch embedding, class token, learned positions, Pre-LN blocks,
exact-erf GELU, LayerNorm eps 1e-6, token pooling), writes it as a timm-style model folder
(config.json + model.safetensors, written by hand: the safetensors package is not needed), and
writes `io.safetensors` holding a batch of NHWC input images and PyTorch's logits for them.

usage: python3 torch_check.py OUT_DIR
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


def main():
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
