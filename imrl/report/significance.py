"""Is the best method's lead real? Paired tests of the best method against each other one.

Unit of pairing: the seed. Two methods run with the same seed see the same split and
the same evaluation users, so their metric values for one seed form a pair; only seeds
where both methods have an ok run are used ("matched seeds").

- Paired t-test (two-sided; ``scipy.stats.ttest_rel``): the test behind the table
  markers. t = mean(d) / (sd(d) / sqrt(n)) with d = best - other, n - 1 degrees of
  freedom; needs n >= 2 matched seeds.
- Wilcoxon signed-rank (two-sided, exact for small n; ``scipy.stats.wilcoxon``):
  reported beside it when n >= 6. Below that the smallest two-sided p it can give is
  2 / 2**n (0.0625 at n = 5), so it could never reject at 0.05 and is left out rather
  than printed as a meaningless "not significant".
- Holm's step-down adjustment over the comparisons made against one best method in one
  column (one per other method), so that the family-wise error rate of a column's
  markers is at most ALPHA.

A comparison with too few matched seeds, or whose difference is the same on every
seed (zero variance, as between two deterministic methods), has no p-value (NaN) and
says why in ``reason``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

ALPHA = 0.05
WILCOXON_MIN_N = 6
TEST_NAME = "paired t-test"
MARKER_LEGEND = (f"†: significantly below the best method of its column (two-sided {TEST_NAME} over matched "
                 f"seeds, Holm-adjusted over the column's comparisons, p < {ALPHA}).")


@dataclass(frozen=True)
class PairedComparison:
    other: str
    best: str
    n: int                      # matched seeds
    mean_difference: float      # mean of best - other over matched seeds (NaN if n = 0)
    p_ttest: float
    p_wilcoxon: float
    p_ttest_holm: float = float("nan")
    reason: str | None = None   # why p_ttest is NaN

    @property
    def significant(self) -> bool:
        return bool(self.p_ttest_holm < ALPHA)


def paired_test(best_name: str, best: Mapping[int, float], other_name: str,
                other: Mapping[int, float]) -> PairedComparison:
    """Best vs other over the seeds both have (`best`, `other`: seed -> metric value);
    the Holm-adjusted p is left NaN (``compare_with_best`` fills it)."""
    seeds = sorted(set(best) & set(other))
    difference = np.array([best[seed] - other[seed] for seed in seeds], dtype=float)

    def result(p_ttest=float("nan"), p_wilcoxon=float("nan"), reason=None) -> PairedComparison:
        mean = float(difference.mean()) if len(seeds) else float("nan")
        return PairedComparison(other_name, best_name, len(seeds), mean, p_ttest, p_wilcoxon, reason=reason)

    if len(seeds) == 0:
        return result(reason="no matched seeds")
    if len(seeds) == 1:
        return result(reason="one matched seed: no test")
    if not difference.any():
        return result(reason="identical on every matched seed")
    if np.allclose(difference, difference[0], rtol=1e-9, atol=1e-12):
        # sd(d) = 0: t is undefined (deterministic methods do this); no p rather than p = 0.
        return result(reason="the same difference on every matched seed: t-test undefined")
    x = np.array([best[seed] for seed in seeds], dtype=float)
    y = np.array([other[seed] for seed in seeds], dtype=float)
    p_wilcoxon = float(stats.wilcoxon(x, y).pvalue) if len(seeds) >= WILCOXON_MIN_N else float("nan")
    return result(float(stats.ttest_rel(x, y).pvalue), p_wilcoxon)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN and is not counted in m)."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    running = 0.0
    for position, index in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        running = max(running, min(1.0, (len(finite) - position) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def compare_with_best(values: Mapping[str, Mapping[int, float]], best: str) -> dict[str, PairedComparison]:
    """`values`: method -> {seed: metric value} (higher is better). Every method but
    `best` compared with `best`, Holm-adjusted together."""
    raw = [paired_test(best, values[best], other, values[other]) for other in values if other != best]
    adjusted = holm([comparison.p_ttest for comparison in raw])
    return {comparison.other: replace(comparison, p_ttest_holm=p) for comparison, p in zip(raw, adjusted)}
