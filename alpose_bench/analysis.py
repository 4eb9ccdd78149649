"""The numbers behind every figure and table: results as DataFrames, curves, gains, timing, AUBC and tests.

`plot`, `report`, `run`'s summary and `diagnose` read this module; it draws nothing and never imports matplotlib,
so a table or an error message costs no plotting start-up. Every figure is drawn from a small DataFrame computed
here (`curve_data`, `gain_data`, `joint_data`, `timing_data`, `mode_data`), so the numbers behind a picture can be
checked and exported.

Statistics, stated once so every number can be checked:
- confidence bands are Student-t intervals over seeds, computed here rather than by seaborn's bootstrap: with 3-5
  seeds a bootstrap band is too narrow and changes with the bootstrap seed, while the t-interval is the textbook,
  reproducible choice;
- "mean ± std" is over seeds, with the sample standard deviation (ddof = 1);
- AUBC is `alpose_bench.metrics.aubc` (trapezoid area under metric vs labelled images divided by the budget range,
  in the metric's units) computed per seed, over the budgets every sampler reached, then mean ± std over seeds;
- the paired test is the two-sided Wilcoxon signed-rank test (scipy) on per-seed AUBC against random's, paired by
  seed (same seed = same initial labelled set). With n non-zero differences its exact p cannot go below 2 / 2^n, so
  below 6 seeds it could never reach 0.05; the table then says "n/a" instead of printing a p-value that looks
  meaningful.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from alpose_bench import style
from alpose_bench.metrics import aubc

CONFIDENCE = 0.95
KEYS = ["dataset", "metric", "sampler", "n_labelled"]
MIN_TEST_SEEDS = 6  # smallest n whose exact two-sided Wilcoxon p can fall below 0.05 (2 / 2^6 = 0.031)
TEST_NAME = "Wilcoxon signed-rank, two-sided, paired by seed, on per-seed AUBC"


class ResultsError(ValueError):
    """The results folder is missing, empty, or does not hold what was asked for (one-line message)."""


# -- loading -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultSet:
    """An experiment's results as DataFrames, plus which samplers and datasets to show.

    `cycles` keeps every sampler (random stays available as the baseline of the gain figure and the paired tests);
    `samplers` lists those a figure or table draws.
    """

    path: Path
    cycles: pd.DataFrame
    joints: pd.DataFrame
    selections: pd.DataFrame
    experiment: dict[str, Any]
    samplers: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return str(self.experiment.get("name") or self.path.name)

    @property
    def preset(self) -> str | None:
        return (self.experiment.get("spec") or {}).get("preset")

    @property
    def datasets(self) -> list[str]:
        """Datasets with results, in the experiment's own order."""
        present = list(pd.unique(self.cycles["dataset"]))
        spec_order = [d for d in (self.experiment.get("spec") or {}).get("datasets") or [] if d in present]
        return spec_order + sorted(set(present) - set(spec_order))

    def dataset_info(self, dataset: str) -> dict[str, Any]:
        return dict((self.experiment.get("datasets") or {}).get(dataset) or {})

    def title(self, dataset: str) -> str:
        """Panel title naming the dataset and the preset, e.g. "synth-human, quick preset"."""
        return f"{dataset}, {self.preset} preset" if self.preset else dataset

    def filtered(self, metric: str | None = None, samplers: Sequence[str] | None = None) -> ResultSet:
        """Keep the datasets scored with `metric` and show only `samplers`; unknown names list the known ones."""
        cycles, joints, selections = self.cycles, self.joints, self.selections
        if metric is not None:
            known = sorted(pd.unique(cycles["metric"]))
            if metric not in known:
                raise ResultsError(
                    f"no results with metric {metric!r}; metrics in these results: {', '.join(known)}"
                )
            datasets = set(cycles.loc[cycles["metric"] == metric, "dataset"])
            cycles = cycles[cycles["dataset"].isin(datasets)]
            joints = joints[joints["dataset"].isin(datasets)]
            selections = selections[selections["dataset"].isin(datasets)]
        present = style.sampler_order(pd.unique(cycles["sampler"]))
        if samplers:
            unknown = [s for s in samplers if s not in present]
            if unknown:
                close = [m for s in unknown for m in difflib.get_close_matches(s, present, n=1)]
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ResultsError(
                    f"no results for sampler(s) {', '.join(unknown)}{hint}; samplers in these results: "
                    f"{', '.join(present)}"
                )
            shown = tuple(style.sampler_order(samplers))
        else:
            shown = tuple(present)
        return replace(self, cycles=cycles, joints=joints, selections=selections, samplers=shown)


def load_result_set(path: str | Path) -> ResultSet:
    """Read an experiment folder written by `alpose-bench run`; ResultsError when it is missing or holds no cycles."""
    from alpose_bench import results
    from alpose_bench.store import StoreError

    path = Path(path)
    if not path.exists():
        raise ResultsError(f"{path} does not exist; pass the folder `alpose-bench run` wrote (results/NAME)")
    if not path.is_dir():
        raise ResultsError(f"{path} is not a folder; pass the folder `alpose-bench run` wrote (results/NAME)")
    try:
        cycles = results.load(path)
        joints = results.load_joints(path)
        selections = results.load_selections(path)
        experiment = results.load_experiment(path)
    except StoreError as exc:
        raise ResultsError(str(exc)) from None
    if cycles.empty:
        raise ResultsError(
            f"{path} holds no finished cycles yet; run `alpose-bench run` (or wait for it) first"
        )
    return ResultSet(
        path, cycles, joints, selections, experiment, tuple(style.sampler_order(cycles["sampler"]))
    )


# -- the data behind the figures ---------------------------------------------------------------------------------


def t_interval(mean: np.ndarray, std: np.ndarray, n: np.ndarray, level: float = CONFIDENCE):
    """Two-sided Student-t confidence interval of a mean from `n` samples with sample std `std` (ddof=1).

    half-width = t_{(1+level)/2, n-1} * std / sqrt(n); NaN where n < 2 (one seed says nothing about spread).
    """
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = stats.t.ppf(0.5 + level / 2, np.where(n >= 2, n - 1, np.nan)) * np.asarray(std) / np.sqrt(n)
    return np.asarray(mean) - half, np.asarray(mean) + half


def _summarise(df: pd.DataFrame, keys: list[str], column: str = "value") -> pd.DataFrame:
    grouped = df.groupby(keys, sort=True)[column]
    out = grouped.agg(mean="mean", std="std", n_seeds="count").reset_index()
    out["ci_low"], out["ci_high"] = t_interval(
        out["mean"].to_numpy(), out["std"].to_numpy(), out["n_seeds"].to_numpy()
    )
    return out


def curve_data(df: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, metric, sampler, n_labelled): mean over seeds, sample std, number of seeds and the 95 % t-interval.

    This is exactly what `plot_curves` draws: the line is `mean`, the band spans `ci_low`..`ci_high`.
    """
    _require(df, ["dataset", "metric", "sampler", "seed", "n_labelled", "value"], "curve_data")
    return _summarise(df, KEYS)


def gain_data(df: pd.DataFrame, baseline: str = style.BASELINE) -> pd.DataFrame:
    """Metric minus the baseline's at the same budget, paired by seed (same seed = same initial labelled set).

    Same columns as `curve_data`; the t-interval is over the per-seed differences, so it is the interval of the paired
    gain, narrower than comparing two unpaired bands. Datasets without baseline runs have no rows.
    """
    _require(df, ["dataset", "metric", "sampler", "seed", "n_labelled", "value"], "gain_data")
    base = df.loc[df["sampler"] == baseline, ["dataset", "seed", "n_labelled", "value"]]
    merged = df.merge(base, on=["dataset", "seed", "n_labelled"], suffixes=("", "_base"), how="inner")
    merged["gain"] = merged["value"] - merged["value_base"]
    return _summarise(merged, KEYS, "gain")


def final_budget(df: pd.DataFrame) -> pd.Series:
    """Per dataset, the largest budget every sampler reached (an unfinished run does not skew the comparison)."""
    return df.groupby(["dataset", "sampler"])["n_labelled"].max().groupby("dataset").min()


def joint_data(joints: pd.DataFrame, joint_order: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Per-joint metric at each dataset's final budget: dataset, sampler, joint, n_labelled, value (mean over seeds).

    Joints keep the dataset's own order (`joint_order[dataset]`, else order of appearance).
    """
    _require(joints, ["dataset", "sampler", "seed", "n_labelled", "joint", "value"], "joint_data")
    last = final_budget(joints).rename("final")
    at = joints.merge(last, left_on="dataset", right_index=True)
    at = at[at["n_labelled"] == at["final"]]
    out = at.groupby(["dataset", "sampler", "joint", "n_labelled"], sort=False)["value"].mean().reset_index()
    order = {
        d: list((joint_order or {}).get(d) or pd.unique(at.loc[at["dataset"] == d, "joint"]))
        for d in out["dataset"]
    }
    out["_j"] = [
        order[d].index(j) if j in order[d] else len(order[d]) for d, j in zip(out["dataset"], out["joint"])
    ]
    return out.sort_values(["dataset", "sampler", "_j"]).drop(columns="_j").reset_index(drop=True)


LOAD_WARNING = 1.25  # wall / CPU seconds above which other processes visibly stretched a run's wall times


def timing_data(df: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, sampler): mean seconds per cycle to train, evaluate and select, selection latency and throughput,
    in wall seconds and in CPU seconds of the task's process (`*_cpu_*`, NaN where a database did not record them).

    select_s averages only cycles that selected (the final cycle selects nothing); select_ms_per_image averages, and
    select_ms_min/max bound, the cycles that scored images; select_images_per_s = all images scored / all selection
    seconds; infer_cpu_s = the model's forward passes within selection; total_s / total_cpu_s = mean over seeds of the
    whole run's train + evaluate + select seconds; load_factor = total_s / total_cpu_s (about 1 when the task had a
    core to itself; more when other work shared it, and then only CPU seconds compare samplers fairly).
    """
    _require(
        df, ["dataset", "sampler", "seed", "train_s", "eval_s", "select_s", "select_images"], "timing_data"
    )
    d = df.copy()
    for column in ("train_cpu_s", "eval_cpu_s", "select_cpu_s", "infer_cpu_s"):
        if column not in d:
            d[column] = np.nan
    ms = d["select_ms_per_image"] if "select_ms_per_image" in d else 1000 * d["select_s"] / d["select_images"]
    d["_ms"] = ms.where(np.isfinite(ms) & (ms > 0))
    cpu_ms = 1000 * d["select_cpu_s"] / d["select_images"].where(d["select_images"] > 0)
    d["_cpu_ms"] = cpu_ms.where(np.isfinite(cpu_ms) & (cpu_ms > 0))
    d["_img"] = d["select_images"].where(d["select_s"].notna(), 0)
    d["_total"] = d["train_s"] + d["eval_s"] + d["select_s"].fillna(0)
    d["_total_cpu"] = d["train_cpu_s"] + d["eval_cpu_s"] + d["select_cpu_s"].where(d["select_s"].notna(), 0)
    g = d.groupby(["dataset", "sampler"], sort=True)
    out = g.agg(
        train_s=("train_s", "mean"),
        eval_s=("eval_s", "mean"),
        select_s=("select_s", "mean"),
        train_cpu_s=("train_cpu_s", "mean"),
        eval_cpu_s=("eval_cpu_s", "mean"),
        select_cpu_s=("select_cpu_s", "mean"),
        infer_cpu_s=("infer_cpu_s", "mean"),
        select_ms_per_image=("_ms", "mean"),
        select_ms_min=("_ms", "min"),
        select_ms_max=("_ms", "max"),
        select_cpu_ms_per_image=("_cpu_ms", "mean"),
        select_cpu_ms_min=("_cpu_ms", "min"),
        select_cpu_ms_max=("_cpu_ms", "max"),
        _images=("_img", "sum"),
        _seconds=("select_s", "sum"),
        n_seeds=("seed", "nunique"),
    )
    out["select_images_per_s"] = (out["_images"] / out["_seconds"].where(out["_seconds"] > 0)).where(
        out["_images"] > 0
    )
    per_seed = d.groupby(["dataset", "sampler", "seed"])
    out["total_s"] = per_seed["_total"].sum().groupby(["dataset", "sampler"]).mean()
    cpu_total = per_seed["_total_cpu"].sum(min_count=1).groupby(["dataset", "sampler"]).mean()
    out["total_cpu_s"] = cpu_total
    out["load_factor"] = out["total_s"] / out["total_cpu_s"].where(out["total_cpu_s"] > 0)
    return out.drop(columns=["_images", "_seconds"]).reset_index()


def load_warning(timing: pd.DataFrame) -> str | None:
    """A sentence when the machine's load made wall times unreliable (some load_factor above `LOAD_WARNING`)."""
    factors = timing["load_factor"].dropna() if "load_factor" in timing else pd.Series(dtype=float)
    if factors.empty or factors.max() <= LOAD_WARNING:
        return None
    return (
        f"Wall times were stretched by other work on the machine (wall / CPU seconds up to {factors.max():.2f}, "
        f"from {factors.min():.2f}): compare samplers on CPU seconds."
    )


def mode_data(selections: pd.DataFrame) -> pd.DataFrame:
    """Which pose modes each sampler picked per cycle: dataset, sampler, cycle, group, count (summed over seeds) and
    fraction (of that cycle's picks, so each cycle's fractions sum to 1)."""
    _require(selections, ["dataset", "sampler", "seed", "cycle", "group"], "mode_data")
    counts = selections.groupby(["dataset", "sampler", "cycle", "group"]).size().rename("count").reset_index()
    counts["fraction"] = counts["count"] / counts.groupby(["dataset", "sampler", "cycle"])["count"].transform(
        "sum"
    )
    return counts


def _require(df: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"{what}: the frame lacks column(s) {', '.join(missing)}; pass alpose_bench.results.load()'s"
        )


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


@dataclass(frozen=True)
class PairedTest:
    """Outcome of one paired test: p (NaN when it cannot be computed meaningfully) and what to print."""

    p_value: float
    n_pairs: int
    text: str


def paired_test(values: np.ndarray, baseline: np.ndarray, min_pairs: int = MIN_TEST_SEEDS) -> PairedTest:
    """Two-sided Wilcoxon signed-rank test of `values` against `baseline` (paired arrays, one entry per seed).

    Pairs with zero difference carry no sign and are dropped (Wilcoxon's convention); fewer than `min_pairs` left -> no
    p-value, since the exact test could not reach 0.05 whatever the data.
    """
    diff = np.asarray(values, dtype=float) - np.asarray(baseline, dtype=float)
    nonzero = int(np.count_nonzero(diff))
    if len(diff) == 0:
        return PairedTest(np.nan, 0, "n/a (no seeds in common with random)")
    if nonzero == 0:
        return PairedTest(1.0, 0, "1 (identical to random on every seed)")
    if nonzero < min_pairs:
        return PairedTest(np.nan, nonzero, f"n/a (needs >= {min_pairs} seeds, has {nonzero})")
    p = float(stats.wilcoxon(diff[diff != 0], alternative="two-sided").pvalue)
    return PairedTest(p, nonzero, f"{p:.3g}")


def sampler_summary(df: pd.DataFrame, baseline: str = style.BASELINE) -> pd.DataFrame:
    """One row per (dataset, sampler): metric, n_seeds, aubc_mean, aubc_std, rank (1 = best AUBC; lower is better for
    MPJPE), p_value and test (the text to print) from the paired test against `baseline`."""
    per_seed = aubc_per_seed(df)
    out = (
        per_seed.groupby(["dataset", "metric", "sampler"])["aubc"]
        .agg(aubc_mean="mean", aubc_std="std", n_seeds="count")
        .reset_index()
    )
    higher = out["metric"].map(style.higher_is_better)
    signed = out["aubc_mean"].where(higher, -out["aubc_mean"])
    out["rank"] = signed.groupby(out["dataset"]).rank(ascending=False, method="min").astype(int)
    tests: list[PairedTest | None] = []
    for dataset, sampler in zip(out["dataset"], out["sampler"]):
        if sampler == baseline:
            tests.append(None)
            continue
        here = per_seed[per_seed["dataset"] == dataset]
        paired = here[here["sampler"] == sampler].merge(
            here[here["sampler"] == baseline], on="seed", suffixes=("", "_base")
        )
        tests.append(
            paired_test(paired["aubc"].to_numpy(), paired["aubc_base"].to_numpy())
            if (here["sampler"] == baseline).any()
            else PairedTest(np.nan, 0, f"n/a (no {baseline} runs)")
        )
    out["p_value"] = [np.nan if t is None else t.p_value for t in tests]
    out["test"] = ["baseline" if t is None else t.text for t in tests]
    return out
