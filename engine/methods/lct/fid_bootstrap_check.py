"""Independent FID and bootstrap SE for engine/methods/lct/fid.test.ts: reads {gen, ref, indices}
(JSON on stdin: feature rows and, per replicate, the generated rows drawn) and prints
{fid, replicates, se}, FID as pytorch-fid computes it (numpy covariances, scipy.linalg.sqrtm)."""
import json
import sys

import numpy as np
from scipy import linalg


def fid(a, b):
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


d = json.load(sys.stdin)
gen, ref = np.array(d["gen"], dtype=np.float64), np.array(d["ref"], dtype=np.float64)
reps = [fid(gen[np.array(ix)], ref) for ix in d["indices"]]
print(json.dumps({"fid": fid(gen, ref), "replicates": reps, "se": float(np.std(reps, ddof=1))}))
