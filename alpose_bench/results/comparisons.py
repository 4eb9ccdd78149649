"""Paired comparisons of samplers over seeds: AUBC summaries with their tests, the regime the references reveal,
ranks over blocks (Friedman / Nemenyi) and the comparison per pose mode (`alpose_bench.core.stats` states each test).

Every comparison with the baseline is paired by seed (same seed = same initial labelled set and cycle-0 model);
reference samplers are never ranked or tested as samplers: they say which regime an experiment is in (`regime`).
The frames behind the figures are `alpose_bench.results.analysis`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from alpose_bench.core import stats as st
from alpose_bench.spec import roles
from alpose_bench.results.analysis import final_budget, require_columns
from alpose_bench.pose.metrics import aubc, metric_info

# -- area under the budget curve and paired tests ------------------------------------------------------


def aubc_per_seed(df: pd.DataFrame) -> pd.DataFrame:
    """AUBC of every (dataset, metric, sampler, seed) curve over the dataset's common budgets (those up to the final
    budget every sampler reached). A seed missing one of those budgets has no AUBC rather than a shorter one."""
    last = final_budget(df).rename("final")
    d = df.merge(last, left_on="dataset", right_index=True)
    d = d[d["n_labelled"] <= d["final"]]
    budgets = d.groupby("dataset")["n_labelled"].nunique().rename("n_budgets")
    keys = ["dataset", "metric", "sampler", "seed"]
    counts = d.groupby(keys)["n_labelled"].nunique().rename("n").reset_index().merge(budgets, on="dataset")
    complete = counts.loc[counts["n"] == counts["n_budgets"], keys]
    d = d.merge(complete, on=keys)
    rows = [
        (*key, aubc(g["n_labelled"].to_numpy(), g["value"].to_numpy()))
        for key, g in d.groupby(keys, sort=True)
    ]
    return pd.DataFrame(rows, columns=[*keys, "aubc"])


def _better_sign(metric: str) -> float:
    """+1 where higher is better (PCK, PCKh), −1 for errors (MPJPE): multiplies a difference into 'advantage'."""
    return 1.0 if metric_info(metric).higher_is_better else -1.0


def _paired_aubc(per_seed: pd.DataFrame, dataset: str, sampler: str, baseline: str) -> np.ndarray | None:
    """Per-seed AUBC differences sampler − baseline on `dataset` (seeds both have), or None without the baseline."""
    here = per_seed[per_seed["dataset"] == dataset]
    base = here[here["sampler"] == baseline]
    if base.empty:
        return None
    paired = here[here["sampler"] == sampler].merge(base, on="seed", suffixes=("", "_base"))
    return (paired["aubc"] - paired["aubc_base"]).to_numpy()


def sampler_summary(df: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """One row per (dataset, sampler): AUBC over seeds, its rank and its paired comparison with `baseline`.

    Columns: dataset, metric, sampler, reference, n_seeds, aubc_mean, aubc_std; rank (1 = best AUBC among the
    samplers; NA for references, which are never ranked); gain, gain_ci_low, gain_ci_high (mean AUBC difference to
    the baseline, paired by seed, with its t-interval; in the metric's units, positive = higher); p_t (paired t-test),
    p_holm (Holm over the non-reference samplers of the dataset), p_wilcoxon (from 6 seeds, else NaN),
    significant (p_holm < 0.05; references: p_t < 0.05), seeds_needed and seeds_power (`stats.seeds_needed`, where
    not significant) and test (the text a table prints)."""
    baseline = baseline or roles.baseline_name()
    per_seed = aubc_per_seed(df)
    out = (
        per_seed.groupby(["dataset", "metric", "sampler"])["aubc"]
        .agg(aubc_mean="mean", aubc_std="std", n_seeds="count")
        .reset_index()
    )
    out.insert(3, "reference", out["sampler"].map(roles.is_reference).astype(bool))
    signed = out["aubc_mean"] * out["metric"].map(_better_sign)
    ranked = signed.where(~out["reference"])
    out["rank"] = ranked.groupby(out["dataset"]).rank(ascending=False, method="min").astype("Int64")
    comparisons = []
    for dataset, sampler in zip(out["dataset"], out["sampler"]):
        diff = None if sampler == baseline else _paired_aubc(per_seed, dataset, sampler, baseline)
        d = st.paired_difference(diff) if diff is not None else None
        comparisons.append((d, np.nan if diff is None else st.wilcoxon_p(diff)))
    out["gain"] = [np.nan if d is None else d.mean for d, _ in comparisons]
    out["gain_ci_low"] = [np.nan if d is None else d.ci_low for d, _ in comparisons]
    out["gain_ci_high"] = [np.nan if d is None else d.ci_high for d, _ in comparisons]
    out["p_t"] = [np.nan if d is None else d.p_value for d, _ in comparisons]
    out["p_wilcoxon"] = [w for _, w in comparisons]
    out["p_holm"] = np.nan
    for _, rows in out[~out["reference"]].groupby("dataset"):
        out.loc[rows.index, "p_holm"] = st.holm(rows["p_t"].to_numpy())
    decisive = out["p_holm"].where(~out["reference"], out["p_t"])
    out["significant"] = decisive < st.ALPHA
    needed = [
        st.seeds_needed(d.mean, d.std) if d is not None and not sig else st.SeedsNeeded(None, None)
        for (d, _), sig in zip(comparisons, out["significant"])
    ]
    out["seeds_needed"] = pd.array([n.significant for n in needed], dtype="Int64")
    out["seeds_power"] = pd.array([n.power for n in needed], dtype="Int64")
    out["test"] = [
        _test_text(sampler == baseline, d, p, sig, n)
        for sampler, (d, _), p, sig, n in zip(
            out["sampler"], comparisons, decisive, out["significant"], needed
        )
    ]
    return out


def _test_text(
    is_baseline: bool, d: st.PairedDifference | None, p: float, significant: bool, needed: st.SeedsNeeded
) -> str:
    if is_baseline:
        return "baseline"
    if d is None:
        return "n/a (no random runs)"
    if d.n < 2:
        return "n/a (1 seed)"
    if not np.isfinite(p):
        return "n/a"
    text = f"p = {p:.2g}"
    if significant:
        return text
    return text + (f", seeds needed {needed.text()}" if needed.significant is not None else "")


# -- the regime the references reveal ----------------------------------------------------------------------------

ERROR_SEEKING = "error-seeking pays"
TYPICAL = "easy and typical pays"
NO_HEADROOM = "no headroom"
UNDETERMINED = "undetermined"

_VERDICT_MEANING = {
    ERROR_SEEKING: "the images the model gets most wrong are worth more than random ones here, so an uncertainty "
    "sampler can beat random (oracle-hard bounds how far)",
    TYPICAL: "the low-budget regime: the images the model gets most wrong are worth less than random ones (or the "
    "easiest worth more), so samplers that seek uncertain images cannot beat random here, by construction",
    NO_HEADROOM: "neither reference separates from random, so this experiment cannot rank samplers",
    UNDETERMINED: "one seed: no interval, no verdict (run >= 2 seeds, 3 or more to see a difference)",
}


@dataclass(frozen=True)
class Regime:
    """Which regime an experiment is in, from oracle-hard and oracle-easy against random, paired by seed.

    Differences are advantages in the metric's units (positive = better than random, whichever way the metric
    points), on per-seed AUBC and at each budget after the first (cycle 0 is shared, so it cannot differ)."""

    dataset: str
    split: str
    metric: str
    verdict: str
    hard: st.PairedDifference
    easy: st.PairedDifference | None
    budgets: int
    hard_wins: int  # budgets where oracle-hard is significantly better than random (paired t, uncorrected)
    hard_losses: int
    easy_wins: int

    @property
    def meaning(self) -> str:
        return _VERDICT_MEANING[self.verdict]

    def numbers(self) -> str:
        """The paired differences behind the verdict, e.g. "oracle-hard − random AUBC −2.10 [−3.02, −1.18] points;
        ..."."""
        unit = st_unit(self.metric)
        parts = [f"oracle-hard − random AUBC {self.hard.interval_text()} {unit}"]
        if self.easy is not None:
            parts.append(f"oracle-easy − random {self.easy.interval_text()}")
        parts.append(
            f"oracle-hard better at {self.hard_wins}, worse at {self.hard_losses} of {self.budgets} budgets"
        )
        seeds = f"{self.hard.n} seed{'s' if self.hard.n != 1 else ''}"
        return f"{'; '.join(parts)} ({seeds}, 95 % t-intervals)"

    def line(self) -> str:
        """One line for `run`'s summary: dataset, split, verdict and the numbers."""
        return f"{self.dataset} ({self.split} split): {self.verdict.upper()}: {self.numbers()}."


def st_unit(metric: str) -> str:
    """ "points" / "mm": the unit of a difference of `metric` (better = positive in `Regime`)."""
    from alpose_bench.pose.metrics import metric_info

    return metric_info(metric).difference_unit + (
        " (lower error = positive)" if not metric_info(metric).higher_is_better else ""
    )


def _budget_comparison(
    df: pd.DataFrame, dataset: str, sampler: str, baseline: str
) -> list[st.PairedDifference]:
    """The paired advantage of `sampler` over `baseline` at every budget after the first (common seeds)."""
    d = df[df["dataset"] == dataset]
    first = d["n_labelled"].min()
    sign = _better_sign(str(d["metric"].iloc[0]))
    base = d[d["sampler"] == baseline][["seed", "n_labelled", "value"]]
    mine = d[d["sampler"] == sampler][["seed", "n_labelled", "value"]]
    paired = mine.merge(base, on=["seed", "n_labelled"], suffixes=("", "_base"))
    paired = paired[paired["n_labelled"] > first]
    return [
        st.paired_difference(sign * (g["value"] - g["value_base"]).to_numpy())
        for _, g in paired.groupby("n_labelled", sort=True)
    ]


def regime(df: pd.DataFrame, split: str = "test", baseline: str | None = None) -> list[Regime]:
    """The regime of every dataset of `df` with oracle-hard and random runs (oracle-easy optional).

    error-seeking pays: oracle-hard's AUBC significantly above random's (paired t, 95 %); easy and typical pays:
    oracle-hard significantly below random, or oracle-easy significantly above; no headroom: neither; undetermined
    with one seed."""
    baseline = baseline or roles.baseline_name()
    hard_ref, easy_ref = (
        roles.reference_name("hard") or "oracle-hard",
        roles.reference_name("easy") or "oracle-easy",
    )
    out = []
    per_seed = aubc_per_seed(df)
    for dataset in pd.unique(df["dataset"]):
        here = set(df.loc[df["dataset"] == dataset, "sampler"])
        if not {hard_ref, baseline} <= here:
            continue
        metric = str(df.loc[df["dataset"] == dataset, "metric"].iloc[0])
        sign = _better_sign(metric)
        hard_diff = _paired_aubc(per_seed, dataset, hard_ref, baseline)
        easy_diff = _paired_aubc(per_seed, dataset, easy_ref, baseline) if easy_ref in here else None
        assert hard_diff is not None
        hard = st.paired_difference(sign * hard_diff)
        easy = None if easy_diff is None else st.paired_difference(sign * easy_diff)
        per_budget = _budget_comparison(df, dataset, hard_ref, baseline)
        easy_budget = _budget_comparison(df, dataset, easy_ref, baseline) if easy is not None else []
        if hard.n < 2:
            verdict = UNDETERMINED
        elif hard.direction > 0:
            verdict = ERROR_SEEKING
        elif hard.direction < 0 or (easy is not None and easy.direction > 0):
            verdict = TYPICAL
        else:
            verdict = NO_HEADROOM
        out.append(Regime(
            dataset=str(dataset), split=split, metric=metric, verdict=verdict, hard=hard, easy=easy,
            budgets=len(per_budget), hard_wins=sum(d.direction > 0 for d in per_budget),
            hard_losses=sum(d.direction < 0 for d in per_budget),
            easy_wins=sum(d.direction > 0 for d in easy_budget),
        ))  # fmt: skip
    return out


# -- ranks over blocks -------------------------------------------------------------------------------------------


def rank_blocks(df: pd.DataFrame) -> pd.DataFrame:
    """Blocks x samplers: each (dataset, budget) block's mean over seeds of every non-reference sampler, signed so
    that higher is better (MPJPE negated). Only budgets after the first (cycle 0 is shared) that every sampler
    reached on every seed it ran."""
    d = df[~df["sampler"].map(roles.is_reference)]
    rows = []
    for dataset, g in d.groupby("dataset", sort=False):
        first, last = g["n_labelled"].min(), final_budget(g).iloc[0]
        g = g[(g["n_labelled"] > first) & (g["n_labelled"] <= last)]
        sign = _better_sign(str(g["metric"].iloc[0])) if len(g) else 1.0
        means = g.groupby(["n_labelled", "sampler"])["value"].mean().unstack("sampler") * sign
        means.index = pd.MultiIndex.from_product([[dataset], means.index], names=["dataset", "n_labelled"])
        rows.append(means)
    if not rows:
        return pd.DataFrame()
    table = pd.concat(rows)
    return table[roles.sampler_order(table.columns)]


def friedman_data(df: pd.DataFrame) -> st.FriedmanResult | None:
    """Friedman test, mean ranks and Nemenyi p-values of the samplers over `rank_blocks(df)`; None with fewer than
    3 samplers or 2 blocks."""
    blocks = rank_blocks(df)
    return st.friedman(blocks, higher_is_better=True) if not blocks.empty else None


# -- per pose mode -----------------------------------------------------------------------------------------------


def mode_accuracy_data(evals: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """The metric per pose mode (and of the whole split, group "all") at each dataset's final budget, per split:
    dataset, metric, split, group, sampler, n_labelled, n_images, mean (over seeds), gain over `baseline` paired by
    seed (gain, gain_ci_low, gain_ci_high, p_value). Groups keep the order of the database (all first)."""
    baseline = baseline or roles.baseline_name()
    require_columns(
        evals, ["dataset", "sampler", "seed", "n_labelled", "split", "group", "value"], "mode_accuracy_data"
    )
    if evals.empty:
        return pd.DataFrame(
            columns=["dataset", "metric", "split", "group", "sampler", "n_labelled", "n_images", "mean", "gain",
                     "gain_ci_low", "gain_ci_high", "p_value"]
        )  # fmt: skip
    last = final_budget(evals).rename("final")
    at = evals.merge(last, left_on="dataset", right_index=True)
    at = at[at["n_labelled"] == at["final"]].drop(columns="final")
    order = {key: i for i, key in enumerate(dict.fromkeys(zip(at["dataset"], at["split"], at["group"])))}
    keys = ["dataset", "metric", "split", "group", "sampler", "n_labelled"]
    means = (
        at.groupby(keys, sort=False).agg(n_images=("n_images", "first"), mean=("value", "mean")).reset_index()
    )
    base = at[at["sampler"] == baseline][["dataset", "split", "group", "seed", "value"]]
    paired = at.merge(base, on=["dataset", "split", "group", "seed"], suffixes=("", "_base"))
    diffs = {
        key: st.paired_difference((g["value"] - g["value_base"]).to_numpy())
        for key, g in paired.groupby(keys, sort=False)
    }
    for column, attr in (("gain", "mean"), ("gain_ci_low", "ci_low"), ("gain_ci_high", "ci_high"),
                         ("p_value", "p_value")):  # fmt: skip
        means[column] = [
            getattr(diffs[k], attr) if k in diffs else np.nan for k in zip(*(means[c] for c in keys))
        ]
    means["_o"] = [order[k] for k in zip(means["dataset"], means["split"], means["group"])]
    return means.sort_values(["_o", "sampler"]).drop(columns="_o").reset_index(drop=True)


def tradeoff_data(cycles: pd.DataFrame, evaluated: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """Per (dataset, sampler): its AUBC gain over `baseline` on `evaluated` (a split's cycles, paired by seed, with
    its 95 % interval: `sampler_summary`) beside its selection cost per frame, CPU ms (wall ms where CPU time was
    not recorded) averaged over the cycles that selected (`timing_data`, from `cycles`): the trade-off a user
    picks a sampler on. The baseline's own row has gain 0."""
    from alpose_bench.results.analysis import timing_data

    baseline = baseline or roles.baseline_name()
    summary = sampler_summary(evaluated, baseline)
    own = summary["sampler"] == baseline
    summary.loc[own, ["gain", "gain_ci_low", "gain_ci_high"]] = 0.0
    timing = timing_data(cycles)
    cost = timing["select_cpu_ms_per_image"].fillna(timing["select_ms_per_image"])
    costs = timing.assign(ms_per_frame=cost)[["dataset", "sampler", "ms_per_frame"]]
    out = summary[["dataset", "metric", "sampler", "reference", "gain", "gain_ci_low", "gain_ci_high",
                   "significant"]].merge(costs, on=["dataset", "sampler"])  # fmt: skip
    return out.reset_index(drop=True)


def experiment_difference(a: pd.DataFrame, b: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """Two experiments run with the same samplers and seeds (pool against stream protocol, one model against
    another), compared per (dataset, sampler): AUBC in each (means over seeds), B − A paired by seed with its
    95 % interval and p (positive = B better), and each experiment's gain over `baseline` with its Holm-corrected
    significance (does an advantage in A survive in B?). AUBCs are taken over each experiment's own budgets."""
    baseline = baseline or roles.baseline_name()
    per_a, per_b = aubc_per_seed(a), aubc_per_seed(b)
    gains_a = sampler_summary(a, baseline).set_index(["dataset", "sampler"])
    gains_b = sampler_summary(b, baseline).set_index(["dataset", "sampler"])
    paired = per_a.merge(per_b, on=["dataset", "metric", "sampler", "seed"], suffixes=("_a", "_b"))
    rows = []
    for (dataset, metric, sampler), g in paired.groupby(["dataset", "metric", "sampler"], sort=False):
        d = st.paired_difference(_better_sign(str(metric)) * (g["aubc_b"] - g["aubc_a"]).to_numpy())
        ga, gb = gains_a.loc[(dataset, sampler)], gains_b.loc[(dataset, sampler)]
        rows.append({
            "dataset": dataset, "metric": metric, "sampler": sampler, "n_seeds": d.n,
            "aubc_a": g["aubc_a"].mean(), "aubc_b": g["aubc_b"].mean(),
            "b_minus_a": d.mean, "ci_low": d.ci_low, "ci_high": d.ci_high, "p": d.p_value,
            "gain_a": ga["gain"], "significant_a": bool(ga["significant"]),
            "gain_b": gb["gain"], "significant_b": bool(gb["significant"]),
        })  # fmt: skip
    return pd.DataFrame(rows)
