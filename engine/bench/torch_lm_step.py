#!/usr/bin/env python3
"""PyTorch twin of NormLab's bench LM, for `normlab bench --vs-torch` and the GPU script.

The same model and step as engine/bench/bench.ts's LM row: token embedding + learned positions,
L Pre-LN blocks (causal self-attention, GELU MLP 4x, no biases in linears), final LayerNorm,
untied head; AdamW lr 1e-3; one fixed random batch. Needs PyTorch (Debian: python3-torch).
`--gpt2 1` makes it GPT-2 small as NormLab's bench trains it (vocab 50257, 12 layers, d 768,
12 heads, biases, tanh GELU, tied head); set --seq and --batch with it. `--device cuda` runs on
the GPU in strict fp32 (TF32 off); `--sdpa 1` uses torch's fused attention instead of the
explicit softmax(q k^T) v. Prints one JSON line: peer, blas, device, tokens_per_s, step_ms,
params, threads, max_memory_mib.
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn.functional as F

p = argparse.ArgumentParser()
for name, default in dict(vocab=256, layers=4, d=128, heads=4, seq=128, batch=16, threads=2, steps=10, warmup=2, gpt2=0, sdpa=0).items():
    p.add_argument("--" + name, type=int, default=default)
p.add_argument("--device", default="cpu")
args = p.parse_args()
if args.gpt2:
    args.vocab, args.layers, args.d, args.heads = 50257, 12, 768, 12
bias, tied, gelu = (True, True, "tanh") if args.gpt2 else (False, False, "none")
if args.sdpa and not hasattr(F, "scaled_dot_product_attention"):
    raise SystemExit(f"--sdpa needs PyTorch 2.0 or later (this is {torch.__version__})")
dev = torch.device(args.device)
if dev.type == "cuda":
    torch.backends.cuda.matmul.allow_tf32 = False  # strict fp32, as NormLab computes
    torch.backends.cudnn.allow_tf32 = False
torch.set_num_threads(args.threads)
torch.manual_seed(0)
V, D, L, H, T, B = args.vocab, args.d, args.layers, args.heads, args.seq, args.batch
hs = D // H
causal = torch.ones(T, T, dtype=torch.bool, device=dev).triu(1)  # True above the diagonal = masked


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.ln_2 = torch.nn.LayerNorm(D), torch.nn.LayerNorm(D)
        self.c_attn = torch.nn.Linear(D, 3 * D, bias=bias)
        self.c_proj = torch.nn.Linear(D, D, bias=bias)
        self.c_fc = torch.nn.Linear(D, 4 * D, bias=bias)
        self.mlp_proj = torch.nn.Linear(4 * D, D, bias=bias)

    def forward(self, x):
        qkv = self.c_attn(self.ln_1(x))  # (B, T, 3D)
        q, k, v = qkv.view(B, T, 3, H, hs).permute(2, 0, 3, 1, 4)  # each (B, H, T, hs)
        if args.sdpa:
            z = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(hs)  # (B, H, T, T)
            z = scores.masked_fill(causal, float("-inf")).softmax(-1) @ v
        z = z.transpose(1, 2).reshape(B, T, D)  # (B, H, T, hs) -> (B, T, D)
        x = x + self.c_proj(z)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate=gelu))


class LM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = torch.nn.Embedding(V, D)
        self.wpe = torch.nn.Parameter(torch.randn(T, D) * 0.01)
        self.h = torch.nn.ModuleList(Block() for _ in range(L))
        self.ln_f = torch.nn.LayerNorm(D)
        self.lm_head = torch.nn.Linear(D, V, bias=False)
        if tied:
            self.lm_head.weight = self.wte.weight

    def forward(self, idx):
        x = self.wte(idx) + self.wpe
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


model = LM().to(dev)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
x = torch.randint(0, V, (B, T), device=dev)
y = torch.randint(0, V, (B, T), device=dev)


def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()


def step():
    loss = F.cross_entropy(model(x).view(-1, V), y.view(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


for _ in range(args.warmup):
    step()
sync()
t0 = time.perf_counter()
for _ in range(args.steps):
    step()
sync()
dt = (time.perf_counter() - t0) / args.steps
# Which BLAS torch's matmuls run on: Debian's python3-torch uses the system libblas.so.3, which is
# the slow reference BLAS unless OpenBLAS is installed (then ~15x faster matmuls).
blas = next((part.split("=", 1)[1] for part in torch.__config__.show().replace(",", "\n").split("\n") if "BLAS_INFO=" in part), "?")
try:
    with open("/proc/self/maps") as maps:
        libs = {line.split()[-1] for line in maps if "blas" in line.lower() and line.split()[-1].startswith("/")}
    blas_lib = ", ".join(sorted(os.path.basename(lib) for lib in libs)) or "?"
except OSError:
    blas_lib = "?"
print(json.dumps({
    "peer": f"pytorch {torch.__version__}",
    "blas": f"{blas.strip()} ({blas_lib})",
    "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
    "model": "gpt2-small" if args.gpt2 else "bench",
    "attention": "sdpa" if args.sdpa else "explicit",
    "batch": B,
    "seq": T,
    "tokens_per_s": round(B * T / dt, 1),
    "step_ms": round(dt * 1000, 1),
    "params": sum(t.numel() for t in model.parameters()),
    "threads": args.threads,
    "max_memory_mib": round(torch.cuda.max_memory_allocated(dev) / 2**20) if dev.type == "cuda" else None,
}))
