"""PyTorch reference for the LN-removal tests (plain PyTorch, no transformers).

  torch_check.py random-gpt2 OUT --layers L --embd C --heads H --vocab V --ctx P [--seed S] [--no-prefix]
      Write a randomly initialized GPT-2 folder the way Hugging Face lays it out (config.json +
      model.safetensors, Conv1D weights (in, out), tied head, the attn.bias causal-mask buffers
      older checkpoints carry). --no-prefix names tensors like the public gpt2 checkpoint
      (h.0.attn.c_attn.weight, wte.weight: saved from GPT2Model).
  torch_check.py ce MODEL_DIR WINDOWS_JSON
      Mean next-token CE (nats) of a GPT-2 folder, computed the way HF GPT2LMHeadModel computes
      it (LayerNorm with the config's layer_norm_epsilon, gelu_new, causal attention), on windows
      {"x": [[ids]], "y": [[ids]]}. Prints {"loss": ...}.
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "testing"))
import safetensors_np  # noqa: E402


def read_safetensors(path):
    return {k: torch.from_numpy(v) if v.dtype.kind == "i" else torch.from_numpy(v).float() for k, v in safetensors_np.load(path).items()}


def write_safetensors(path, tensors):
    safetensors_np.save(path, {k: t.detach().contiguous().float().numpy() for k, t in tensors.items()}, {"format": "pt"})


def random_gpt2(out, L, C, H, V, P, seed, prefix):
    g = torch.Generator().manual_seed(seed)
    n = lambda *shape: torch.randn(*shape, generator=g) * 0.02
    p = "transformer." if prefix else ""
    t = {f"{p}wte.weight": n(V, C), f"{p}wpe.weight": n(P, C) * 0.5}
    for i in range(L):
        h = f"{p}h.{i}"
        t[f"{h}.ln_1.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
        t[f"{h}.ln_1.bias"] = 0.1 * torch.randn(C, generator=g)
        t[f"{h}.attn.bias"] = torch.tril(torch.ones(P, P)).view(1, 1, P, P)
        t[f"{h}.attn.c_attn.weight"] = n(C, 3 * C) * 5
        t[f"{h}.attn.c_attn.bias"] = n(3 * C)
        t[f"{h}.attn.c_proj.weight"] = n(C, C) * 5
        t[f"{h}.attn.c_proj.bias"] = n(C)
        t[f"{h}.ln_2.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
        t[f"{h}.ln_2.bias"] = 0.1 * torch.randn(C, generator=g)
        t[f"{h}.mlp.c_fc.weight"] = n(C, 4 * C) * 5
        t[f"{h}.mlp.c_fc.bias"] = n(4 * C)
        t[f"{h}.mlp.c_proj.weight"] = n(4 * C, C) * 5
        t[f"{h}.mlp.c_proj.bias"] = n(C)
    t[f"{p}ln_f.weight"] = 1 + 0.1 * torch.randn(C, generator=g)
    t[f"{p}ln_f.bias"] = 0.1 * torch.randn(C, generator=g)
    os.makedirs(out, exist_ok=True)
    write_safetensors(f"{out}/model.safetensors", t)
    cfg = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": V,
        "n_positions": P,
        "n_ctx": P,
        "n_embd": C,
        "n_layer": L,
        "n_head": H,
        "layer_norm_epsilon": 1e-5,
        "activation_function": "gelu_new",
        "tie_word_embeddings": True,
    }
    with open(f"{out}/config.json", "w") as f:
        json.dump(cfg, f)


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gpt2_logits(cfg, w, idx):
    def W(name):
        return w[name] if name in w else w[name.replace("transformer.", "", 1)]

    def b(name):
        return W(name) if (name in w or name.replace("transformer.", "", 1) in w) else None

    L, C, H = cfg["n_layer"], cfg["n_embd"], cfg["n_head"]
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    B, T = idx.shape
    x = W("transformer.wte.weight")[idx] + W("transformer.wpe.weight")[:T]
    ln = lambda v, p: F.layer_norm(v, (C,), W(f"{p}.weight"), b(f"{p}.bias"), eps)
    lin = lambda v, p: v @ W(f"{p}.weight") + (b(f"{p}.bias") if b(f"{p}.bias") is not None else 0)
    for i in range(L):
        h = f"transformer.h.{i}"
        a = lin(ln(x, f"{h}.ln_1"), f"{h}.attn.c_attn")
        q, k, v = a.split(C, dim=-1)
        heads = lambda t: t.view(B, T, H, C // H).transpose(1, 2)
        att = (heads(q) @ heads(k).transpose(-1, -2)) / math.sqrt(C // H)
        att = att.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf")).softmax(-1)
        y = (att @ heads(v)).transpose(1, 2).reshape(B, T, C)
        x = x + lin(y, f"{h}.attn.c_proj")
        x = x + lin(gelu_new(lin(ln(x, f"{h}.ln_2"), f"{h}.mlp.c_fc")), f"{h}.mlp.c_proj")
    x = ln(x, "transformer.ln_f")
    head = w["lm_head.weight"] if not cfg.get("tie_word_embeddings", True) else W("transformer.wte.weight")
    return x @ head.T


def main():
    cmd = sys.argv[1]
    if cmd == "random-gpt2":
        args = sys.argv[2:]
        out = args[0]
        opt = {args[i]: args[i + 1] for i in range(1, len(args) - 1) if args[i].startswith("--") and args[i] != "--no-prefix"}
        random_gpt2(out, int(opt["--layers"]), int(opt["--embd"]), int(opt["--heads"]), int(opt["--vocab"]), int(opt["--ctx"]), int(opt.get("--seed", 0)), "--no-prefix" not in args)
        print(json.dumps({"ok": True}))
    elif cmd == "ce":
        d, windows = sys.argv[2], json.load(open(sys.argv[3]))
        cfg = json.load(open(f"{d}/config.json"))
        w = read_safetensors(f"{d}/model.safetensors")
        x = torch.tensor(windows["x"], dtype=torch.long)
        y = torch.tensor(windows["y"], dtype=torch.long)
        with torch.no_grad():
            logits = gpt2_logits(cfg, w, x).double()
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).item()
        print(json.dumps({"loss": loss}))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
