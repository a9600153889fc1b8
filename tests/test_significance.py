"""The paired tests behind the report markers, against SciPy and hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from imrl.report.significance import ALPHA, compare_with_best, holm, paired_test


def as_seeds(values):
    return dict(enumerate(values))


def test_paired_t_test_matches_scipy_and_the_formula():
    best = [0.31, 0.29, 0.35, 0.30, 0.33]
    other = [0.28, 0.28, 0.31, 0.30, 0.29]
    result = paired_test("best", as_seeds(best), "other", as_seeds(other))

    d = np.subtract(best, other)
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))       # t = mean(d) / (sd(d) / sqrt(n))
    assert result.p_ttest == pytest.approx(2 * stats.t.sf(abs(t), df=len(d) - 1), rel=1e-12)
    assert result.p_ttest == pytest.approx(stats.ttest_rel(best, other).pvalue, rel=1e-12)
    assert result.n == 5 and result.mean_difference == pytest.approx(d.mean())
    assert math.isnan(result.p_wilcoxon)          # 5 seeds: the signed-rank test cannot reach 0.05


def test_wilcoxon_from_six_seeds_matches_scipy_exact():
    best = [0.50, 0.53, 0.49, 0.55, 0.51, 0.53, 0.56]
    other = [0.48, 0.47, 0.50, 0.50, 0.47, 0.50, 0.49]
    result = paired_test("best", as_seeds(best), "other", as_seeds(other))
    assert result.p_wilcoxon == pytest.approx(stats.wilcoxon(best, other, method="exact").pvalue, rel=1e-12)
    # By hand: differences 2, 6, -1, 5, 4, 3, 7 (x 0.01), no ties; the only negative one has rank 1,
    # and 2 of the 2**7 equally likely sign patterns have a negative rank sum <= 1: p = 2 x 2 / 2**7.
    assert result.p_wilcoxon == pytest.approx(2 * 2 / 2**7, rel=1e-9)


def test_only_matched_seeds_are_paired():
    best = {0: 0.5, 1: 0.6, 2: 0.55, 3: 0.9}
    other = {0: 0.4, 1: 0.45, 2: 0.5, 4: 0.1}     # seed 3 only in best, 4 only in other
    result = paired_test("best", best, "other", other)
    assert result.n == 3
    assert result.p_ttest == pytest.approx(stats.ttest_rel([0.5, 0.6, 0.55], [0.4, 0.45, 0.5]).pvalue)


@pytest.mark.parametrize("best, other, reason", [
    ({0: 0.5}, {1: 0.4}, "no matched seeds"),
    ({0: 0.5, 1: 0.6}, {0: 0.4}, "one matched seed"),
    ({0: 0.5, 1: 0.6}, {0: 0.5, 1: 0.6}, "identical"),
    ({0: 0.5, 1: 0.6, 2: 0.7}, {0: 0.4, 1: 0.5, 2: 0.6}, "same difference"),   # deterministic methods
])
def test_degenerate_comparisons_have_no_p_and_say_why(best, other, reason):
    result = paired_test("best", best, "other", other)
    assert math.isnan(result.p_ttest) and reason in result.reason
    assert not compare_with_best({"best": best, "other": other}, "best")["other"].significant


def test_holm_by_hand():
    # Sorted 0.01, 0.03, 0.04 with m = 3: 3 x 0.01, max(0.03, 2 x 0.03), max(0.06, 1 x 0.04); NaN ignored.
    assert holm([0.04, 0.01, float("nan"), 0.03]) == pytest.approx([0.06, 0.03, float("nan"), 0.06], nan_ok=True)
    assert holm([0.5, 0.9]) == [1.0, 1.0]


def test_compare_with_best_adjusts_over_the_column():
    seeds = range(4)
    values = {"best": {s: 0.50 + 0.01 * s for s in seeds},
              "close": {s: 0.50 + 0.01 * s - (0.001 if s % 2 else 0.002) for s in seeds},
              "far": {s: 0.30 + 0.012 * s for s in seeds}}
    result = compare_with_best(values, "best")
    assert set(result) == {"close", "far"}
    raw = {name: stats.ttest_rel(list(values["best"].values()), list(values[name].values())).pvalue
           for name in ("close", "far")}
    assert result["far"].p_ttest == pytest.approx(raw["far"])
    assert raw["far"] < raw["close"]
    assert result["far"].p_ttest_holm == pytest.approx(2 * raw["far"])       # the smaller p of m = 2
    assert result["close"].p_ttest_holm == pytest.approx(max(2 * raw["far"], raw["close"]))
    assert result["far"].significant and result["far"].p_ttest_holm < ALPHA
