"""Independent reference for NormLab's lct numerics, in plain PyTorch (float64).

Reads JSON from stdin: {"a": [[...]], "b": [[...]], "m": [...], "c": float, "sigmas": [...],
optionally "p_mean", "p_std"} and prints JSON: the FID between the feature sets a and b
(scipy-free: via torch.linalg.eigh), the Pseudo-Huber / Cauchy losses of m (as the LCT reference
code writes them), the EDM coefficients of the sigmas, and iCT's lognormal probabilities of the
grid pairs (sigmas[j], sigmas[j+1]) with torch.special.erf.
"""
import json
import sys

import torch


def sqrtm_psd(m):
    w, v = torch.linalg.eigh(m)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def fid(a, b):
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = torch.cov(a.T), torch.cov(b.T)
    r1 = sqrtm_psd(s1)
    inner = r1 @ s2 @ r1
    tr_sqrt = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp(min=0).sqrt().sum()
    return float(((mu1 - mu2) ** 2).sum() + torch.trace(s1) + torch.trace(s2) - 2 * tr_sqrt)


def main():
    inp = json.load(sys.stdin)
    a = torch.tensor(inp["a"], dtype=torch.float64)
    b = torch.tensor(inp["b"], dtype=torch.float64)
    m = torch.tensor(inp["m"], dtype=torch.float64)
    c = inp["c"]
    s = torch.tensor(inp["sigmas"], dtype=torch.float64)
    sd, smin = 0.5, 0.002
    out = {
        "fid": fid(a, b),
        # LCT code: (sqrt(mean_flat(d) + c^2) - c) and (log(0.5 mean_flat(d) + c^2) - 2 log c)
        "pseudo_huber": (torch.sqrt(m + c**2) - c).tolist(),
        "cauchy": (torch.log(0.5 * m + c**2) - 2 * torch.log(torch.tensor(c, dtype=torch.float64))).tolist(),
        "c_skip": (sd**2 / ((s - smin) ** 2 + sd**2)).tolist(),
        "c_out": ((s - smin) * sd / (s**2 + sd**2) ** 0.5).tolist(),
        "c_in": (1 / (s**2 + sd**2) ** 0.5).tolist(),
    }
    if "p_mean" in inp:
        e = torch.special.erf((torch.log(s) - inp["p_mean"]) / (2**0.5 * inp["p_std"]))
        p = e[:-1] - e[1:]
        out["timestep_probs"] = (p / p.sum()).tolist()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
