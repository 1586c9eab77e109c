"""Independent reference values for engine/stats/stats.test.ts, from SciPy (python3-scipy).

Run: python3 engine/stats/scipy_check.py — prints the numbers the test hard-codes.
"""
import numpy as np
from scipy import stats

print("t_0.975", {df: stats.t.ppf(0.975, df) for df in (1, 2, 5, 10, 30, 1000)})
print("z_0.975", stats.norm.ppf(0.975))
a = np.array([3.1, 2.9, 3.4, 3.0, 3.3, 2.8, 3.2, 3.05])
b = np.array([3.0, 2.95, 3.2, 3.1, 3.1, 2.7, 3.0, 3.0])
r = stats.ttest_rel(a, b)
ci = r.confidence_interval(0.95)
print("paired", (a - b).mean(), ci.low, ci.high, r.pvalue)
for k, n in ((0, 10), (7, 10), (950, 1000), (1000, 1000)):
    print("wilson", k, n, stats.binomtest(k, n).proportion_ci(0.95, method="wilson"))
    print("cp", k, n, stats.binomtest(k, n).proportion_ci(0.95, method="exact"))
for b_, c_ in ((10, 2), (25, 15), (3, 3)):
    ex = stats.binomtest(min(b_, c_), b_ + c_, 0.5).pvalue
    chi2 = max(0, abs(b_ - c_) - 1) ** 2 / (b_ + c_)  # correction never overshoots |b - c|
    print("mcnemar", b_, c_, ex, chi2, stats.chi2.sf(chi2, 1))
print("percentile", np.percentile([3.0, 1.0, 4.0, 1.5, 5.0, 9.0, 2.0, 6.0, 5.5, 3.5, 5.8], [2.5, 97.5]), np.percentile(np.arange(1, 41), [2.5, 97.5]))
