#!/usr/bin/python3
"""PyTorch reference for NormLab's optimizers (engine/nn/optim.ts).

Reads JSON from stdin: {"optimizer": "radam", "lr": [...per step], "betas": [b1, b2], "eps": e,
"weight_decay": wd, "params": {name: [[...]]}, "grads": [{name: [[...]]}, ...]} and applies
torch.optim.RAdam step by step (float64) with the given gradients; prints the parameters after
every step as JSON {"steps": [{name: [...flat]}, ...]}.
"""
import json
import sys

import torch

torch.set_default_dtype(torch.float64)


def main():
    inp = json.load(sys.stdin)
    if inp["optimizer"] != "radam":
        raise ValueError(f"unknown optimizer {inp['optimizer']}")
    params = {k: torch.tensor(v, requires_grad=True) for k, v in inp["params"].items()}
    names = sorted(params)
    opt = torch.optim.RAdam([params[n] for n in names], lr=inp["lr"][0], betas=tuple(inp["betas"]), eps=inp["eps"], weight_decay=inp["weight_decay"])
    out = []
    for lr, grads in zip(inp["lr"], inp["grads"]):
        for g in opt.param_groups:
            g["lr"] = lr
        for n in names:
            params[n].grad = torch.tensor(grads[n])
        opt.step()
        out.append({n: params[n].detach().flatten().tolist() for n in names})
    print(json.dumps({"steps": out}))


if __name__ == "__main__":
    main()
