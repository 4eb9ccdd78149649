"""Statistics over seeds, stated once: paired differences with intervals, tests, multiplicity, ranks, seeds needed.

Every comparison in the benchmark is paired by seed (the same seed gives every sampler the same initial labelled set
and the same cycle-0 model), so it is made on per-seed differences:

* `paired_difference`: mean of the per-seed differences, its Student-t 95 % interval and the two-sided one-sample
  t-test of mean 0 (scipy `ttest_1samp`); it works from 2 seeds (the interval is wide with few);
* `wilcoxon_p`: the two-sided Wilcoxon signed-rank test, reported only from `MIN_WILCOXON_PAIRS` non-zero differences,
  since with n of them its exact p cannot go below 2 / 2^n (below 6 it could never reach 0.05);
* `holm`: Holm's step-down correction of a family of p-values (statsmodels), for the several samplers compared with
  random on one dataset;
* `seeds_needed`: how many seeds the observed mean difference and spread would need to reach p < 0.05 (and 80 %
  power, statsmodels), printed where a comparison is not significant;
* `friedman`: the Friedman test over blocks (dataset x budget) with samplers' mean ranks, the Nemenyi post-hoc
  p-values and the critical difference of the Nemenyi test (scikit-posthocs draws the diagram).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

ALPHA = 0.05
CONFIDENCE = 0.95
POWER = 0.8
MIN_WILCOXON_PAIRS = 6  # smallest n whose exact two-sided Wilcoxon p can fall below 0.05 (2 / 2^6 = 0.031)
MAX_SEEDS = 10_000  # "seeds needed" beyond this is reported as more than it


@dataclass(frozen=True)
class PairedDifference:
    """Mean per-seed difference (a − b), its sample std, the number of pairs, the t-interval and the t-test's p."""

    mean: float
    std: float
    n: int
    ci_low: float
    ci_high: float
    p_value: float

    @property
    def significant(self) -> bool:
        """The interval excludes 0 (equivalently p < 0.05)."""
        return bool(np.isfinite(self.p_value) and self.p_value < ALPHA)

    @property
    def direction(self) -> int:
        """+1 / −1 when significantly above / below 0, else 0."""
        return int(np.sign(self.mean)) if self.significant else 0

    def interval_text(self, digits: int = 2) -> str:
        """ "+1.23 [+0.40, +2.06]"; just the mean with one pair."""
        if not np.isfinite(self.mean):
            return "—"
        if not np.isfinite(self.ci_low):
            return f"{self.mean:+.{digits}f}"
        return f"{self.mean:+.{digits}f} [{self.ci_low:+.{digits}f}, {self.ci_high:+.{digits}f}]"


def paired_difference(
    differences: Sequence[float] | np.ndarray, level: float = CONFIDENCE
) -> PairedDifference:
    """The paired comparison of per-seed differences: mean, sample std, t-interval at `level` and two-sided t-test.

    NaN differences are dropped. With one pair there is no interval and no p; with zero spread the interval is the
    point and p is 0 (a nonzero mean) or 1 (all differences zero)."""
    d = np.asarray(differences, dtype=np.float64).reshape(-1)
    d = d[np.isfinite(d)]
    n = len(d)
    if n == 0:
        return PairedDifference(np.nan, np.nan, 0, np.nan, np.nan, np.nan)
    mean = float(d.mean())
    if n == 1:
        return PairedDifference(mean, np.nan, 1, np.nan, np.nan, np.nan)
    std = float(d.std(ddof=1))
    if std == 0.0 or not np.isfinite(std):
        return PairedDifference(mean, 0.0, n, mean, mean, 1.0 if mean == 0.0 else 0.0)
    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # scipy's precision note on nearly identical differences; p stays right
        p = float(sps.ttest_1samp(d, 0.0).pvalue)
    return PairedDifference(mean, std, n, mean - half, mean + half, p)


def wilcoxon_p(differences: Sequence[float] | np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p of per-seed differences; NaN below `MIN_WILCOXON_PAIRS` non-zero ones (zero
    differences carry no sign and are dropped, Wilcoxon's convention)."""
    d = np.asarray(differences, dtype=np.float64).reshape(-1)
    d = d[np.isfinite(d) & (d != 0)]
    if len(d) < MIN_WILCOXON_PAIRS:
        return float("nan")
    return float(sps.wilcoxon(d, alternative="two-sided").pvalue)


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values of one family (statsmodels `multipletests`); NaN entries stay NaN and do not count."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], alpha=ALPHA, method="holm")[1]
    return out


@dataclass(frozen=True)
class SeedsNeeded:
    """Seeds a paired t-test would need at the observed mean difference and spread: to reach p < 0.05 with these
    very values (`significant`), and to detect the difference with 80 % power (`power`). None: no spread to
    extrapolate from, or no difference at all."""

    significant: int | None
    power: int | None

    def text(self) -> str:
        if self.significant is None:
            return "—"
        more = lambda n: f">{MAX_SEEDS:,}" if n is None or n > MAX_SEEDS else f"{n}"  # noqa: E731
        return f"{more(self.significant)} ({more(self.power)} for 80 % power)"


def seeds_needed(mean: float, std: float) -> SeedsNeeded:
    """How many seeds would make a paired mean difference `mean` with per-seed spread `std` significant at 0.05.

    significant: the smallest n >= 2 with |mean| / (std / sqrt(n)) >= t_{0.975, n-1} (the same mean and spread,
    more seeds); power: the n for 80 % power at effect size |mean| / std (statsmodels `TTestPower`)."""
    if not (np.isfinite(mean) and np.isfinite(std)) or std <= 0 or mean == 0:
        return SeedsNeeded(None, None)
    effect = abs(mean) / std
    ns = np.arange(2, MAX_SEEDS + 1)
    reached = np.flatnonzero(effect * np.sqrt(ns) >= sps.t.ppf(1 - ALPHA / 2, ns - 1))
    significant = int(ns[reached[0]]) if len(reached) else None
    from statsmodels.stats.power import TTestPower

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        powers = TTestPower().power(effect_size=effect, nobs=ns, alpha=ALPHA, alternative="two-sided")
    enough = np.flatnonzero(np.asarray(powers) >= POWER)
    return SeedsNeeded(significant, int(ns[enough[0]]) if len(enough) else None)


@dataclass(frozen=True)
class FriedmanResult:
    """The Friedman test over blocks, the samplers' mean ranks (1 = best) and the Nemenyi post-hoc comparison."""

    statistic: float
    p_value: float
    n_blocks: int
    ranks: pd.Series  # sampler -> mean rank over blocks, best first
    nemenyi: pd.DataFrame  # sampler x sampler p-values of the Nemenyi test
    critical_difference: float  # mean-rank difference the Nemenyi test needs at alpha = 0.05


def friedman(scores: pd.DataFrame, higher_is_better: bool = True) -> FriedmanResult | None:
    """Friedman test of `scores` (rows: blocks, e.g. dataset x budget; columns: samplers; mean over seeds), ranks
    and Nemenyi p-values (scikit-posthocs). None with fewer than 3 samplers or 2 complete blocks."""
    import scikit_posthocs as sp

    scores = scores.dropna(axis=0, how="any")
    k, n = scores.shape[1], scores.shape[0]
    if k < 3 or n < 2:
        return None
    signed = scores if higher_is_better else -scores
    ranks = signed.rank(axis=1, ascending=False, method="average").mean(axis=0).sort_values()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns when every block ranks alike; the p-value stays right
        result = sps.friedmanchisquare(*[signed[c].to_numpy() for c in signed.columns])
    nemenyi = sp.posthoc_nemenyi_friedman(signed.to_numpy())
    nemenyi.index = nemenyi.columns = list(signed.columns)
    q = float(sps.studentized_range.ppf(1 - ALPHA, k, np.inf)) / math.sqrt(2)
    cd = q * math.sqrt(k * (k + 1) / (6.0 * n))
    stat, p = float(result.statistic), float(result.pvalue)
    return FriedmanResult(stat, p if np.isfinite(p) else 1.0, n, ranks, nemenyi, cd)
