"""The numbers behind every figure and table: results as DataFrames, curves, gains per budget, joints, timing.

The paired comparisons on the area under the curve — summaries with tests, the regime, ranks, per pose mode — live
in `alpose_bench.results.comparisons`. `plot`, `report`, `run`'s summary and `diagnose` read both; neither draws anything
or imports matplotlib, so a table or an error message costs no plotting start-up. Every figure is drawn from a small DataFrame computed
here (`curve_data`, `gain_data`, `joint_data`, `timing_data`, `mode_data`), so the numbers behind a picture can be
checked and exported.

Statistics (`alpose_bench.core.stats` states each one):
- confidence bands are Student-t intervals over seeds, computed here rather than by seaborn's bootstrap: with 3-5
  seeds a bootstrap band is too narrow and changes with the bootstrap seed, while the t-interval is the textbook,
  reproducible choice;
- "mean ± std" is over seeds, with the sample standard deviation (ddof = 1);
- every comparison with random is paired by seed (same seed = same initial labelled set and cycle-0 model): per budget
  (`gain_data`) and on AUBC (`sampler_summary`), with the t-interval of the mean difference and the paired t-test,
  Holm-corrected over the samplers of a dataset, Wilcoxon's signed-rank test from 6 seeds, and the seeds a
  non-significant difference would need;
- AUBC is `alpose_bench.pose.metrics.aubc` (trapezoid area under metric vs labelled images divided by the budget range,
  in the metric's units) computed per seed, over the budgets every sampler reached;
- ranks over (dataset x budget) blocks: Friedman's test, Nemenyi's post-hoc test and its critical difference
  (`friedman_data`);
- reference samplers (oracles that read labels, `roles.is_reference`) are never ranked or tested as samplers: they
  say which regime an experiment is in (`regime`).
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

from alpose_bench.core import stats as st
from alpose_bench.spec import roles
from alpose_bench.pose.data import HELD_OUT_SPLITS
from alpose_bench.pose.evaluation import ALL
from alpose_bench.core.failures import UserFacingError
from alpose_bench.results.read import EVAL_COLUMNS

CONFIDENCE = st.CONFIDENCE
KEYS = ["dataset", "metric", "sampler", "n_labelled"]
TEST_NAME = (
    "paired t-test on per-seed AUBC against random (two-sided), Holm-corrected over the samplers of a dataset"
)


class ResultsError(UserFacingError, ValueError):
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
    #: the metric on every held-out split, overall and per pose mode (`alpose_bench.results.read.load_evals`)
    evals: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=EVAL_COLUMNS))

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

    @property
    def splits(self) -> list[str]:
        """The held-out splits with results (`data.HELD_OUT_SPLITS`): "test", then "ood" where the datasets have
        one."""
        first, *others = HELD_OUT_SPLITS
        extra = set(self.evals.loc[self.evals["group"] == ALL, "split"]) if len(self.evals) else set()
        return [first] + [s for s in others if s in extra]

    def split_cycles(self, split: str = "test") -> pd.DataFrame:
        """The cycles frame with `value` on `split` (whole split): `cycles` itself for "test", else built from
        `evals` (only the datasets that have that split)."""
        if split == "test":
            return self.cycles
        e = self.evals[(self.evals["split"] == split) & (self.evals["group"] == ALL)]
        if e.empty:
            raise ResultsError(f"no results on the {split!r} split; splits here: {', '.join(self.splits)}")
        return e[["dataset", "sampler", "seed", "cycle", "n_labelled", "metric", "value"]].reset_index(
            drop=True
        )

    def dataset_info(self, dataset: str) -> dict[str, Any]:
        return dict((self.experiment.get("datasets") or {}).get(dataset) or {})

    def title(self, dataset: str) -> str:
        """Panel title naming the dataset and the preset, e.g. "synth-human, quick preset"."""
        return f"{dataset}, {self.preset} preset" if self.preset else dataset

    def filtered(self, metric: str | None = None, samplers: Sequence[str] | None = None) -> ResultSet:
        """Keep the datasets scored with `metric` and show only `samplers`; unknown names list the known ones."""
        cycles, joints, selections, evals = self.cycles, self.joints, self.selections, self.evals
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
            evals = evals[evals["dataset"].isin(datasets)]
        present = roles.sampler_order(pd.unique(cycles["sampler"]))
        if samplers:
            unknown = [s for s in samplers if s not in present]
            if unknown:
                close = [m for s in unknown for m in difflib.get_close_matches(s, present, n=1)]
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ResultsError(
                    f"no results for sampler(s) {', '.join(unknown)}{hint}; samplers in these results: "
                    f"{', '.join(present)}"
                )
            shown = tuple(roles.sampler_order(samplers))
        else:
            shown = tuple(present)
        return replace(self, cycles=cycles, joints=joints, selections=selections, evals=evals, samplers=shown)


def load_result_set(path: str | Path) -> ResultSet:
    """Read an experiment folder written by `alpose-bench run`; ResultsError when it is missing or holds no cycles."""
    from alpose_bench.results import read as results
    from alpose_bench.results.store import StoreError

    path = Path(path)
    if not path.exists():
        raise ResultsError(f"{path} does not exist; pass the folder `alpose-bench run` wrote (results/NAME)")
    if not path.is_dir():
        raise ResultsError(f"{path} is not a folder; pass the folder `alpose-bench run` wrote (results/NAME)")
    try:
        with results.reading(path) as store:  # one connection for the five tables
            cycles = results.load(store)
            joints = results.load_joints(store)
            selections = results.load_selections(store)
            evals = results.load_evals(store)
            experiment = results.load_experiment(store)
    except StoreError as exc:
        raise ResultsError(str(exc)) from None
    if cycles.empty:
        raise ResultsError(
            f"{path} holds no finished cycles yet; run `alpose-bench run` (or wait for it) first"
        )
    return ResultSet(
        path, cycles, joints, selections, experiment, tuple(roles.sampler_order(cycles["sampler"])), evals
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
    require_columns(df, ["dataset", "metric", "sampler", "seed", "n_labelled", "value"], "curve_data")
    return _summarise(df, KEYS)


def gain_data(df: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """Metric minus the baseline's at the same budget, paired by seed (same seed = same initial labelled set).

    Same columns as `curve_data` plus `p_value` (paired t-test of a zero gain, uncorrected); the t-interval is over the
    per-seed differences, so it is the interval of the paired gain, narrower than comparing two unpaired bands.
    Datasets without baseline runs have no rows.
    """
    baseline = baseline or roles.baseline_name()
    require_columns(df, ["dataset", "metric", "sampler", "seed", "n_labelled", "value"], "gain_data")
    base = df.loc[df["sampler"] == baseline, ["dataset", "seed", "n_labelled", "value"]]
    merged = df.merge(base, on=["dataset", "seed", "n_labelled"], suffixes=("", "_base"), how="inner")
    merged["gain"] = merged["value"] - merged["value_base"]
    out = _summarise(merged, KEYS, "gain")
    p = merged.groupby(KEYS, sort=True)["gain"].agg(lambda g: st.paired_difference(g.to_numpy()).p_value)
    out["p_value"] = p.to_numpy()
    return out


def final_budget(df: pd.DataFrame) -> pd.Series:
    """Per dataset, the largest budget every sampler reached (an unfinished run does not skew the comparison)."""
    return df.groupby(["dataset", "sampler"])["n_labelled"].max().groupby("dataset").min()


def joint_data(joints: pd.DataFrame, joint_order: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Per-joint metric at each dataset's final budget: dataset, sampler, joint, n_labelled, value (mean over seeds).

    Joints keep the dataset's own order (`joint_order[dataset]`, else order of appearance).
    """
    require_columns(joints, ["dataset", "sampler", "seed", "n_labelled", "joint", "value"], "joint_data")
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
    require_columns(
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
    require_columns(selections, ["dataset", "sampler", "seed", "cycle", "group"], "mode_data")
    counts = selections.groupby(["dataset", "sampler", "cycle", "group"]).size().rename("count").reset_index()
    counts["fraction"] = counts["count"] / counts.groupby(["dataset", "sampler", "cycle"])["count"].transform(
        "sum"
    )
    return counts


def require_columns(df: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"{what}: the frame lacks column(s) {', '.join(missing)}; pass alpose_bench.results.read.load()'s"
        )
