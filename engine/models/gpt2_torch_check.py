#!/usr/bin/python3
"""Independent reference for NormLab's GPT-2: writes a random GPT-2 in Hugging Face
GPT2LMHeadModel layout (Conv1D weights are (in, out)) as config.json + model.safetensors, a
uint16 token file, and prints the mean next-token cross-entropy that plain PyTorch computes on
non-overlapping windows of `seq` tokens. Usage: gpt2_torch_check.py OUT_DIR"""
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "testing"))
import safetensors_np  # noqa: E402

out = sys.argv[1]
torch.manual_seed(0)
V, P, C, L, H, seq = 300, 32, 48, 2, 4, 16
cfg = dict(model_type="gpt2", architectures=["GPT2LMHeadModel"], vocab_size=V, n_positions=P, n_embd=C, n_layer=L, n_head=H,
           layer_norm_epsilon=1e-5, activation_function="gelu_new", tie_word_embeddings=True)
w = {"transformer.wte.weight": torch.randn(V, C) * 0.2, "transformer.wpe.weight": torch.randn(P, C) * 0.1,
     "transformer.ln_f.weight": 1 + 0.1 * torch.randn(C), "transformer.ln_f.bias": 0.1 * torch.randn(C)}
for i in range(L):
    h = f"transformer.h.{i}"
    for n in ("ln_1", "ln_2"):
        w[f"{h}.{n}.weight"], w[f"{h}.{n}.bias"] = 1 + 0.1 * torch.randn(C), 0.1 * torch.randn(C)
    for n, (a, b) in {"attn.c_attn": (C, 3 * C), "attn.c_proj": (C, C), "mlp.c_fc": (C, 4 * C), "mlp.c_proj": (4 * C, C)}.items():
        w[f"{h}.{n}.weight"], w[f"{h}.{n}.bias"] = torch.randn(a, b) * 0.15, 0.05 * torch.randn(b)
    w[f"{h}.attn.bias"] = torch.tril(torch.ones(P, P)).view(1, 1, P, P)  # HF's causal-mask buffer, ignored by loaders

def ln(x, p):
    return torch.nn.functional.layer_norm(x, (C,), w[p + ".weight"], w[p + ".bias"], 1e-5)

def gelu_new(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))

def forward(idx):
    B, T = idx.shape
    x = w["transformer.wte.weight"][idx] + w["transformer.wpe.weight"][:T]
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    for i in range(L):
        h = f"transformer.h.{i}"
        q, k, v = (ln(x, h + ".ln_1") @ w[h + ".attn.c_attn.weight"] + w[h + ".attn.c_attn.bias"]).split(C, -1)
        q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
        att = ((q @ k.transpose(-1, -2)) / math.sqrt(C // H)).masked_fill(mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ w[h + ".attn.c_proj.weight"] + w[h + ".attn.c_proj.bias"]
        m = gelu_new(ln(x, h + ".ln_2") @ w[h + ".mlp.c_fc.weight"] + w[h + ".mlp.c_fc.bias"])
        x = x + m @ w[h + ".mlp.c_proj.weight"] + w[h + ".mlp.c_proj.bias"]
    return ln(x, "transformer.ln_f") @ w["transformer.wte.weight"].T

tokens = torch.randint(0, V, (5 * seq + 7,))
n = (len(tokens) - 1) // seq
x = torch.stack([tokens[k * seq : (k + 1) * seq] for k in range(n)])
y = torch.stack([tokens[k * seq + 1 : (k + 1) * seq + 1] for k in range(n)])
loss = torch.nn.functional.cross_entropy(forward(x).reshape(-1, V).double(), y.reshape(-1)).item()
os.makedirs(out, exist_ok=True)
safetensors_np.save(os.path.join(out, "model.safetensors"), {k: v.numpy().astype(np.float32) for k, v in w.items()}, {"format": "pt"})
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(cfg, f)
tokens.numpy().astype("<u2").tofile(os.path.join(out, "tokens.bin"))
print(json.dumps({"loss": loss, "tokens": n * seq, "seq": seq}))
