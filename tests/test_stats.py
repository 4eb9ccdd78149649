"""The statistics every comparison uses (`alpose_bench.core.stats`) and the regime the references reveal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from alpose_bench.core import stats
from alpose_bench.results.comparisons import (
    ERROR_SEEKING,
    NO_HEADROOM,
    TYPICAL,
    UNDETERMINED,
    rank_blocks,
    regime,
)


def test_paired_difference_is_the_one_sample_t_interval_and_test():
    d = np.array([1.2, 0.8, 1.5, 0.4])
    r = stats.paired_difference(d)
    half = sps.t.ppf(0.975, 3) * d.std(ddof=1) / 2
    assert (r.mean, r.ci_low, r.ci_high) == pytest.approx((d.mean(), d.mean() - half, d.mean() + half))
    assert r.p_value == pytest.approx(sps.ttest_1samp(d, 0).pvalue)
    assert r.significant and r.direction == 1 and r.interval_text() == "+0.97 [+0.21, +1.74]"
    one = stats.paired_difference([2.0])
    assert one.n == 1 and np.isnan(one.p_value) and not one.significant and one.interval_text() == "+2.00"
    assert stats.paired_difference([np.nan, 1.0, 3.0]).n == 2  # NaN differences are dropped
    flat = stats.paired_difference([0.0, 0.0, 0.0])
    assert flat.p_value == 1.0 and flat.direction == 0


def test_wilcoxon_only_from_six_nonzero_pairs():
    assert stats.wilcoxon_p(np.arange(1.0, 7.0)) == pytest.approx(2 / 2**6)  # all positive: the exact minimum
    assert np.isnan(stats.wilcoxon_p(np.arange(1.0, 6.0)))
    assert np.isnan(stats.wilcoxon_p([0.0, 1, 2, 3, 4, 5]))  # a zero carries no sign: five pairs left


def test_holm_matches_the_step_down_by_hand_and_keeps_nan():
    # sorted 0.01, 0.03, 0.04 -> 3 * 0.01, max(0.03, 2 * 0.03), max(0.06, 0.04) = 0.03, 0.06, 0.06
    np.testing.assert_allclose(stats.holm([0.04, 0.01, np.nan, 0.03]), [0.06, 0.03, np.nan, 0.06])


def test_seeds_needed_reaches_significance_at_the_observed_mean_and_spread():
    n = stats.seeds_needed(1.0, 2.0)  # effect 0.5: t_{0.975, n-1} <= 0.5 sqrt(n) first at n = 18
    assert n.significant == 18
    assert sps.t.ppf(0.975, 16) > 0.5 * np.sqrt(17)
    assert n.power == 34  # the textbook n for d = 0.5, 80 % power, two-sided one-sample t
    assert stats.seeds_needed(0.0, 1.0).significant is None and stats.seeds_needed(1.0, 0.0).text() == "—"


def test_friedman_ranks_and_nemenyi_on_a_clear_order():
    rng = np.random.default_rng(0)
    blocks = pd.DataFrame(rng.normal(0, 0.1, (10, 4)) + [3.0, 2.0, 1.0, 0.0], columns=["a", "b", "c", "d"])
    r = stats.friedman(blocks)
    assert list(r.ranks.index) == ["a", "b", "c", "d"] and r.ranks["a"] == 1.0 and r.p_value < 1e-4
    assert r.nemenyi.loc["a", "d"] < 0.05 and r.nemenyi.loc["a", "b"] > 0.05
    # CD = q_0.05(4, inf) / sqrt 2 * sqrt(4 * 5 / (6 * 10)) = 2.569 * 0.577 = 1.48 (Demšar 2006)
    assert r.critical_difference == pytest.approx(1.483, abs=2e-3)
    lower = stats.friedman(-blocks, higher_is_better=False)
    assert list(lower.ranks.index) == ["a", "b", "c", "d"]
    assert stats.friedman(blocks[["a", "b"]]) is None


def _curves(hard_shift: float, easy_shift: float, seeds: int = 3, noise: float = 0.2) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for seed in range(seeds):
        for cycle, n in enumerate((100, 200, 300, 400)):
            base = 30 + 5 * cycle + rng.normal(0, 1)
            for sampler, shift in (("random", 0.0), ("oracle-hard", hard_shift), ("oracle-easy", easy_shift)):
                value = base + (0 if cycle == 0 else shift + rng.normal(0, noise))
                rows.append(dict(dataset="d", metric="pckh", sampler=sampler, seed=seed, cycle=cycle,
                                 n_labelled=n, value=value))  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("hard", "easy", "verdict"),
    [(3.0, -1.0, ERROR_SEEKING), (-3.0, 1.0, TYPICAL), (0.0, 2.0, TYPICAL), (0.0, 0.0, NO_HEADROOM)],
)
def test_regime_verdicts(hard: float, easy: float, verdict: str):
    (r,) = regime(_curves(hard, easy))
    assert r.verdict == verdict and r.budgets == 3
    if verdict == ERROR_SEEKING:
        assert r.hard_wins == 3 and r.hard.ci_low > 0
    assert r.dataset in r.line() and verdict.upper() in r.line()


def test_regime_is_undetermined_with_one_seed_and_absent_without_oracle_hard():
    (r,) = regime(_curves(3.0, 0.0, seeds=1))
    assert r.verdict == UNDETERMINED
    df = _curves(3.0, 0.0)
    assert regime(df[df["sampler"] != "oracle-hard"]) == []


def test_regime_orients_errors_so_that_positive_is_better():
    df = _curves(-3.0, 0.0).assign(metric="mpjpe")  # oracle-hard 3 mm lower error: better
    (r,) = regime(df)
    assert r.verdict == ERROR_SEEKING and r.hard.mean == pytest.approx(
        2.25, abs=0.3
    )  # AUBC: 3 mm on 3 of 4 halves


def test_rank_blocks_leave_out_references_and_the_shared_first_budget():
    df = pd.concat([_curves(1.0, 0.0), _curves(1.0, 0.0).query("sampler == 'random'").assign(sampler="mpe")])
    blocks = rank_blocks(df)
    assert list(blocks.columns) == ["random", "mpe"]
    assert list(blocks.index.get_level_values("n_labelled")) == [200, 300, 400]
