"""Figures of an experiment: metric-vs-budget curves and gain over random (a panel per dataset and held-out split),
the critical-difference diagram, the metric per pose mode, per-joint heatmaps, timing, pose modes picked, and the
images a sampler selected.

Every figure is drawn from a small DataFrame of `alpose_bench.results.analysis` (`curve_data`, `gain_data`, `friedman_data`,
`mode_accuracy_data`, `joint_data`, `timing_data`, `mode_data`), so the numbers behind a picture can be checked and
exported; this module only draws. Files are written atomically (`alpose_bench.core.atomic`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from alpose_bench.core.atomic import write_all_atomic, write_atomic
from alpose_bench.pose.metrics import metric_info
from alpose_bench.present import style
from alpose_bench.results.analysis import (
    CONFIDENCE,
    ResultsError,
    ResultSet,
    curve_data,
    gain_data,
    joint_data,
    mode_data,
    timing_data,
)
from alpose_bench.results.comparisons import friedman_data, mode_accuracy_data, tradeoff_data
from alpose_bench.spec import roles
from alpose_bench.spec.stream import stream_of

FORMATS = ("png", "pdf", "svg")
DPI = 150


# -- drawing -----------------------------------------------------------------------------------------------------


def _subplots(
    nrows: int, ncols: int, *, figsize: tuple[float, float], **kwargs: Any
) -> tuple[Figure, np.ndarray]:
    """A pyplot-free figure (nothing global, nothing to close; saving renders with Agg) and its (nrows, ncols) axes."""
    kwargs.pop("layout", None)
    kwargs.pop("squeeze", None)
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kwargs)


def _grid(
    n: int, ncols: int, panel: tuple[float, float], min_width: float = 0.0, **kwargs: Any
) -> tuple[Figure, list[Axes]]:
    """`n` panels in rows of `ncols`, each `panel` inches (the figure at least `min_width` wide); spare cells hidden."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    panel = (max(panel[0], min_width / ncols), panel[1])
    with matplotlib.rc_context(style.RC_PARAMS):
        fig, axes = _subplots(
            nrows,
            ncols,
            figsize=(panel[0] * ncols, panel[1] * nrows),
            layout="constrained",
            squeeze=False,
            **kwargs,
        )
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


#: height of one legend entry at the figures' font size
LEGEND_ROW_INCHES = 0.25
#: width of one legend column (the longest sampler label, "Oracle (hardest) (reference)", and its marker)
LEGEND_COLUMN_INCHES = 2.6


def _suptitle(fig: Figure, text: str, **kwargs: Any) -> None:
    """The figure's title, each line wrapped to the figure's width (a long experiment name would be cut off at the
    edges of a one-panel figure otherwise)."""
    import textwrap

    from matplotlib.font_manager import FontProperties

    size = kwargs.get("fontsize") or matplotlib.rcParams["figure.titlesize"]
    points = size if isinstance(size, (int, float)) else FontProperties(size=size).get_size()
    width = max(20, int(fig.get_figwidth() * 72 / (0.55 * points)))
    fig.suptitle("\n".join(textwrap.fill(line, width) for line in text.split("\n")), **kwargs)


def _sampler_legend(fig: Figure, samplers: Sequence[str]) -> None:
    """One legend for the whole figure, outside every panel (colours are the same in all panels)."""
    handles = [Line2D([], [], **style.sampler_style(s)) for s in samplers]
    # as many columns as it takes to fit the figure's height (20 samplers do not fit one column of one panel row)
    rows = max(4, int((fig.get_figheight() - 0.7) / LEGEND_ROW_INCHES))
    # each legend column takes width from the panels: widen the figure by it, so one panel is not squeezed to nothing
    fig.set_figwidth(fig.get_figwidth() + LEGEND_COLUMN_INCHES * math.ceil(len(handles) / rows))
    fig.legend(
        handles=handles,
        loc="outside right center",
        title="Sampler",
        frameon=False,
        ncols=math.ceil(len(handles) / rows),
    )


def _draw_lines(ax: Axes, data: pd.DataFrame, samplers: Sequence[str]) -> None:
    for sampler in samplers:
        s = data[data["sampler"] == sampler].sort_values("n_labelled")
        if s.empty:
            continue
        x = s["n_labelled"].to_numpy(dtype=float)
        ax.plot(x, s["mean"].to_numpy(), **style.sampler_style(sampler), gid=f"line:{sampler}", zorder=3)
        band = ax.fill_between(
            x, s["ci_low"].to_numpy(), s["ci_high"].to_numpy(), color=style.sampler_color(sampler), alpha=0.15,
            linewidth=0, zorder=2,
        )  # fmt: skip
        band.set_gid(f"band:{sampler}")


def _with_rc(fn):
    """Draw with the benchmark's rc parameters (fonts, grid, spines) without touching the caller's settings."""

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Figure:
        with matplotlib.rc_context(style.RC_PARAMS):
            return fn(*args, **kwargs)

    return wrapped


def _metric_of(data: pd.DataFrame, dataset: str) -> str:
    return str(data.loc[data["dataset"] == dataset, "metric"].iloc[0])


def _band_note(data: pd.DataFrame) -> str:
    """How the band was computed, e.g. "mean over seeds, 95 % t-interval (5 seeds)"; no interval from one seed."""
    lo, hi = int(data["n_seeds"].min()), int(data["n_seeds"].max())
    if hi < 2:
        return "one seed, so no confidence band (run >= 2 seeds)"
    seeds = f"{lo} seeds" if lo == hi else f"{lo}-{hi} seeds"
    return f"mean over seeds, {CONFIDENCE:.0%} t-interval ({seeds})".replace("%", " %")


def _panels(rs: ResultSet, frame) -> list[tuple[str, str, pd.DataFrame]]:
    """(dataset, split, data) for every dataset and held-out split with rows in `frame(split cycles)`."""
    panels = []
    for split in rs.splits:
        data = frame(rs.split_cycles(split))
        for dataset in rs.datasets:
            d = data[data["dataset"] == dataset]
            if not d.empty:
                panels.append((dataset, split, d))
    order = {d: i for i, d in enumerate(rs.datasets)}
    return sorted(panels, key=lambda p: (order[p[0]], rs.splits.index(p[1])))


def _panel_title(rs: ResultSet, dataset: str, split: str) -> str:
    return rs.title(dataset) + ("" if split == "test" else f"\n{split} split (deployment distribution)")


@_with_rc
def _budget_label(rs: ResultSet) -> str:
    """The x axis of curves: labelled images, or under the stream protocol the label budget (frames seen grow with
    it, one chunk per cycle)."""
    spec = rs.experiment.get("spec") or {}
    if stream_of(spec) is None:
        return "Labelled images"
    return "Label budget (stream: one chunk per step)"


def plot_curves(rs: ResultSet) -> Figure:
    """Metric vs labelled images, a line per sampler (mean over seeds) with its 95 % t-band; a panel per dataset and
    held-out split (test, then ood where the dataset has one); references dash-dotted."""
    panels = _panels(rs, lambda c: curve_data(c[c["sampler"].isin(rs.samplers)]))
    fig, axes = _grid(len(panels), 2, (5.4, 3.8))
    for ax, (dataset, split, d) in zip(axes, panels):
        _draw_lines(ax, d, rs.samplers)
        ax.set_title(_panel_title(rs, dataset, split))
        ax.set_xlabel(_budget_label(rs))
        ax.set_ylabel(style.metric_label(_metric_of(d, dataset)))
    _sampler_legend(fig, rs.samplers)  # first: it widens the figure the title then wraps to
    _suptitle(fig, f"{rs.name}: {_band_note(pd.concat([p[2] for p in panels]))}")
    return fig


@_with_rc
def plot_gain(rs: ResultSet) -> Figure:
    """Metric minus random's at the same budget (paired by seed), with the 95 % t-band; random is the zero line; a
    panel per dataset and held-out split."""
    panels = _panels(rs, lambda c: gain_data(c).pipe(lambda g: g[g["sampler"].isin(rs.samplers)]))
    if not panels:
        raise ResultsError("no random runs to compare with; add random to the experiment's samplers")
    fig, axes = _grid(len(panels), 2, (5.4, 3.8))
    for ax, (dataset, split, d) in zip(axes, panels):
        metric = _metric_of(d, dataset)
        others = [s for s in rs.samplers if s != roles.baseline_name()]
        ax.axhline(0.0, **{**style.sampler_style(roles.baseline_name()), "marker": None}, zorder=1)
        _draw_lines(ax, d, others)
        info = metric_info(metric)
        better = "above" if info.higher_is_better else "below"
        ax.set_ylabel(f"{info.label} − random ({info.difference_unit})\n{better} 0: better than random")
        ax.set_xlabel(_budget_label(rs))
        ax.set_title(_panel_title(rs, dataset, split))
    _sampler_legend(  # first: it widens the figure the title then wraps to
        fig, rs.samplers if roles.baseline_name() in rs.samplers else [roles.baseline_name(), *rs.samplers]
    )
    _suptitle(
        fig,
        f"{rs.name}: difference to random (sampler − random), paired by seed\n{_band_note(pd.concat([p[2] for p in panels]))}",
    )
    return fig


@_with_rc
def plot_cd(rs: ResultSet) -> Figure:
    """Critical-difference diagram of the samplers' mean ranks over (dataset x budget) blocks, a panel per split:
    samplers joined by a bar do not differ by Nemenyi's test at 0.05 (scikit-posthocs draws it; references are
    never ranked)."""
    import scikit_posthocs as sp

    results = []
    for split in rs.splits:
        cycles = rs.split_cycles(split)
        result = friedman_data(cycles[cycles["sampler"].isin(rs.samplers)])
        if result is not None:
            results.append((split, result))
    if not results:
        raise ResultsError(
            "a critical-difference diagram needs 3 or more samplers and 2 or more budgets after the first"
        )
    height = 0.28 * max(len(r.ranks) for _, r in results) + 1.5
    fig, axes = _subplots(len(results), 1, figsize=(8.5, height * len(results)))
    for ax, (split, result) in zip(axes[:, 0], results):
        labels = {s: style.sampler_label(s) for s in result.ranks.index}
        ranks = result.ranks.rename(index=labels)
        sig = result.nemenyi.rename(index=labels, columns=labels)
        sp.critical_difference_diagram(
            ranks, sig, ax=ax, color_palette={labels[s]: style.sampler_color(s) for s in labels},
            label_props={"fontsize": 9},
        )  # fmt: skip
        ax.set_title(
            f"{rs.name}, {split} split: mean rank over {result.n_blocks} (dataset x budget) blocks (1 = best)\n"
            f"Friedman p = {result.p_value:.2g}; a bar joins samplers Nemenyi's test cannot tell apart "
            f"(CD = {result.critical_difference:.2f} ranks)",
            fontsize=9,
        )
    return fig


@_with_rc
def plot_mode_accuracy(rs: ResultSet) -> Figure:
    """Heatmaps of each sampler's gain over random per pose mode at the final budget (paired by seed, mean over
    seeds), a panel per dataset and split; the column "all" is the whole split. Shows *where* selections helped."""
    import seaborn as sns

    data = mode_accuracy_data(rs.evals)
    if roles.baseline_name() not in set(data["sampler"]):
        data = data.iloc[:0]
    data = data[data["sampler"].isin(rs.samplers) & (data["sampler"] != roles.baseline_name())]
    panels = [
        (dataset, split, g) for (dataset, split), g in data.groupby(["dataset", "split"], sort=False)
        if g["group"].nunique() > 1
    ]  # fmt: skip
    if not panels:
        raise ResultsError(
            "no per-mode results (only datasets with pose modes, evaluated with random, have them)"
        )
    samplers = [s for s in rs.samplers if s in set(data["sampler"])]
    n_groups = max(g["group"].nunique() for _, _, g in panels)
    heights = [0.42 * len(samplers) + 1.9 for _ in panels]
    fig, axes = _subplots(
        len(panels), 1, figsize=(max(6.5, 0.9 * n_groups + 3.2), sum(heights)),
        gridspec_kw={"height_ratios": heights},
    )  # fmt: skip
    for ax, (dataset, split, g) in zip(axes[:, 0], panels):
        groups = list(pd.unique(g["group"]))
        table = g.pivot(index="sampler", columns="group", values="gain").reindex(
            index=samplers, columns=groups
        )
        sizes = g.drop_duplicates("group").set_index("group")["n_images"]
        table.columns = [f"{c}\n(n={int(sizes[c])})" for c in groups]
        table.index = [style.sampler_label(s) for s in table.index]
        metric = str(g["metric"].iloc[0])
        limit = float(np.nanmax(np.abs(table.to_numpy()))) if np.isfinite(table.to_numpy()).any() else 1.0
        sns.heatmap(
            table, ax=ax, annot=True, fmt="+.1f", annot_kws={"fontsize": 8}, linewidths=0.5, center=0.0,
            vmin=-limit, vmax=limit, cmap="RdBu" if style.higher_is_better(metric) else "RdBu_r",
            cbar_kws={"label": f"{metric_info(metric).label} − random ({metric_info(metric).difference_unit})"},
        )  # fmt: skip
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.grid(False)
        n = int(g["n_labelled"].iloc[0])
        ax.set_title(
            f"{_panel_title(rs, dataset, split).replace(chr(10), ', ')}: gain over random per pose mode at {n} labelled"
        )
    return fig


@_with_rc
def plot_joints(rs: ResultSet) -> Figure:
    """Heatmap per dataset: samplers x joints, metric at the final budget (mean over seeds), values written in."""
    import seaborn as sns

    order = {d: rs.dataset_info(d).get("joints") for d in rs.datasets}
    data = joint_data(rs.joints[rs.joints["sampler"].isin(rs.samplers)], order)
    datasets = [d for d in rs.datasets if d in set(data["dataset"])]
    if not datasets:
        raise ResultsError("no per-joint results to draw")
    n_joints = max(data.loc[data["dataset"] == d, "joint"].nunique() for d in datasets)
    width = max(6.0, 0.62 * n_joints + 2.8)
    heights = [0.42 * len(rs.samplers) + 1.9 for _ in datasets]
    fig, axes = _subplots(
        len(datasets), 1, figsize=(width, sum(heights)), layout="constrained", squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )  # fmt: skip
    for ax, dataset in zip(axes[:, 0], datasets):
        d = data[data["dataset"] == dataset]
        metric = str(rs.cycles.loc[rs.cycles["dataset"] == dataset, "metric"].iloc[0])
        table = d.pivot(index="sampler", columns="joint", values="value")
        table = table.loc[[s for s in rs.samplers if s in table.index], list(pd.unique(d["joint"]))]
        table.index = [style.sampler_label(s) for s in table.index]
        sns.heatmap(
            table, ax=ax, annot=True, fmt=".1f", annot_kws={"fontsize": 7.5}, linewidths=0.5,
            cmap="viridis" if style.higher_is_better(metric) else "viridis_r",
            cbar_kws={"label": style.metric_label(metric), "shrink": 0.9},
        )  # fmt: skip
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.grid(False)
        ax.tick_params(axis="x", rotation=45)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
            label.set_rotation_mode("anchor")
        ax.set_title(f"{rs.title(dataset)}: per joint at {int(d['n_labelled'].iloc[0])} labelled images")
    return fig


@_with_rc
@_with_rc
def plot_tradeoff(rs: ResultSet) -> Figure:
    """Each sampler's AUBC gain over random (paired by seed, 95 % interval) against its selection cost per frame
    (CPU ms, log scale, the model's forward pass included), a panel per dataset on the deployment split where the
    dataset has one (the test split otherwise): the trade-off a user picks a sampler on. References hollow."""
    split = "ood" if "ood" in rs.splits else "test"
    baseline = roles.baseline_name()
    if baseline not in set(rs.cycles["sampler"]):
        raise ResultsError("no random runs to compare with; add random to the experiment's samplers")
    shown = [*rs.samplers, *([] if baseline in rs.samplers else [baseline])]
    data = tradeoff_data(rs.cycles[rs.cycles["sampler"].isin(shown)], rs.split_cycles(split))
    datasets = [d for d in rs.datasets if d in set(data["dataset"])]
    fig, axes = _grid(len(datasets), 2, (6.2, 4.4))
    for ax, dataset in zip(axes, datasets):
        d = data[(data["dataset"] == dataset) & data["ms_per_frame"].notna()]
        metric = str(d["metric"].iloc[0]) if len(d) else ""
        ax.axhline(0.0, color=style.sampler_style(baseline).get("color", "grey"), lw=1, zorder=1)
        d = d.sort_values("ms_per_frame")
        for row in d.itertuples():
            st_ = style.sampler_style(row.sampler)
            colour = st_.get("color")
            low, high = row.gain - row.gain_ci_low, row.gain_ci_high - row.gain
            ax.errorbar(row.ms_per_frame, row.gain,
                        yerr=[[max(low, 0)], [max(high, 0)]] if np.isfinite(low) and np.isfinite(high) else None,
                        fmt=str(st_.get("marker", "o")), color=colour, mfc="none" if row.reference else colour,
                        ms=8, capsize=3, zorder=3)  # fmt: skip
        _label_points(ax, d, baseline)
        ax.set_xscale("log")
        realtime = 1000.0 / style.REALTIME_IMAGES_PER_S
        ax.axvline(realtime, color="0.6", ls=":", lw=1)
        ax.text(realtime, ax.get_ylim()[0], f" {style.REALTIME_IMAGES_PER_S:.0f} frames/s", fontsize=7,
                color="0.4", va="bottom")  # fmt: skip
        info = metric_info(metric) if metric else None
        unit = info.difference_unit if info else ""
        ax.set_ylabel(f"AUBC − random ({unit}), {split} split")
        ax.set_xlabel("Selection cost per frame (CPU ms, forward pass included)")
        ax.set_title(_panel_title(rs, dataset, split))
    _suptitle(
        fig,
        f"{rs.name}: gain over random against cost per frame\n(95 % intervals paired by seed; * Holm p < 0.05)",
    )
    return fig


def _label_points(ax: Axes, d: pd.DataFrame, baseline: str) -> None:
    """Name each sampler's point; labels of points at about the same cost are stacked apart (highest gain on top)
    with a thin line to their point, so a cluster of samplers stays readable."""
    low, high = ax.get_ylim()
    gap = 0.07 * (high - low)
    placed: list[tuple[float, float]] = []  # (log cost, label y) of the labels already drawn
    for row in d.sort_values("gain", ascending=False).itertuples():
        y = float(row.gain)
        near = [ly for lx, ly in placed if abs(lx - math.log10(row.ms_per_frame)) < 0.35]
        while any(abs(y - ly) < gap for ly in near):
            y -= gap / 2
        placed.append((math.log10(row.ms_per_frame), y))
        text = style.sampler_label(row.sampler) + (
            " *" if row.significant and row.sampler != baseline else ""
        )
        moved = abs(y - row.gain) > 1e-9
        ax.annotate(text, (row.ms_per_frame, row.gain), xytext=(row.ms_per_frame * 1.25, y), fontsize=8,
                    va="center", arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.6} if moved else None)  # fmt: skip


def plot_timing(rs: ResultSet) -> Figure:
    """Per dataset: seconds per cycle split into train/evaluate/select, and per-image selection latency (log scale)
    against the real-time line of 30 images/s."""
    data = timing_data(rs.cycles[rs.cycles["sampler"].isin(rs.samplers)])
    datasets = [d for d in rs.datasets if d in set(data["dataset"])]
    n = len(rs.samplers)
    cpu = bool(
        data["train_cpu_s"].notna().all()
    )  # CPU seconds compare fairly; older databases have wall only
    suffix, clock = ("_cpu", "CPU seconds") if cpu else ("", "Seconds")
    with matplotlib.rc_context({"axes.grid": False}):
        fig, axes = _subplots(
            len(datasets),
            2,
            figsize=(11.5, (0.38 * n + 1.6) * len(datasets)),
            layout="constrained",
            squeeze=False,
        )
    realtime_ms = 1000.0 / style.REALTIME_IMAGES_PER_S
    for (ax_t, ax_l), dataset in zip(axes, datasets):
        d = data[data["dataset"] == dataset].set_index("sampler").reindex(rs.samplers)
        y = np.arange(n)[::-1]
        left = np.zeros(n)
        for phase, column in (("train", "train"), ("evaluate", "eval"), ("select", "select")):
            width = d[f"{column}{suffix}_s"].fillna(0).to_numpy()
            ax_t.barh(y, width, left=left, color=style.PHASE_COLOURS[phase], label=phase, height=0.7)
            left += width
        ax_t.set_yticks(y, [style.sampler_label(s) for s in rs.samplers])
        ax_t.set_xlabel(f"{clock} per cycle (mean over seeds and cycles)")
        ax_t.set_title(f"{rs.title(dataset)}: time per cycle")
        ax_t.grid(axis="x", alpha=0.3)

        ms_col = "select_cpu_ms" if cpu else "select_ms"
        ms = d[f"{ms_col}_per_image"].to_numpy(dtype=float)
        has = np.isfinite(ms)
        lo = (ms - d[f"{ms_col}_min"].to_numpy(dtype=float))[has]
        hi = (d[f"{ms_col}_max"].to_numpy(dtype=float) - ms)[has]
        ax_l.errorbar(ms[has], y[has], xerr=[lo, hi], fmt="none", ecolor="0.45", capsize=3, lw=1, zorder=2)
        for yi, sampler, value in zip(y[has], np.asarray(rs.samplers)[has], ms[has]):
            ax_l.plot(
                value,
                yi,
                marker=style.sampler_marker(sampler),
                color=style.sampler_color(sampler),
                ms=8,
                zorder=3,
            )
        for yi in y[~has]:
            ax_l.text(
                0.02,
                yi,
                "no per-image scoring",
                transform=ax_l.get_yaxis_transform(),
                va="center",
                color="0.4",
            )
        ax_l.axvline(realtime_ms, color="0.2", linestyle=":", lw=1.2)
        ax_l.text(
            realtime_ms, 1.01, " real time (30 img/s)", transform=ax_l.get_xaxis_transform(), fontsize=8
        )
        ax_l.set_xscale("log")
        if has.any():
            values = np.concatenate(
                [d[f"{ms_col}_min"].to_numpy(float)[has], d[f"{ms_col}_max"].to_numpy(float)[has]]
            )
            ax_l.set_xlim(min(values.min(), realtime_ms) / 3, max(values.max(), realtime_ms) * 3)
        else:
            ax_l.set_xlim(realtime_ms / 100, realtime_ms * 100)
        ax_l.set_ylim(-0.6, n - 0.4)
        ax_l.set_yticks(y, [style.sampler_label(s) for s in rs.samplers])
        ax_l.set_xlabel(f"{'CPU ' if cpu else ''}ms per pool image (log scale; bars: min-max over cycles)")
        ax_l.set_title("selection latency per image", pad=14)
        ax_l.grid(axis="x", which="both", alpha=0.3)
    phases = [Rectangle((0, 0), 1, 1, color=c) for c in style.PHASE_COLOURS.values()]
    fig.legend(
        phases,
        list(style.PHASE_COLOURS),
        loc="outside lower left",
        ncols=3,
        frameon=False,
        title="time per cycle",
    )
    return fig


@_with_rc
def plot_modes(rs: ResultSet, dataset: str) -> Figure:
    """Stacked bars per sampler: the share of each pose mode among the images picked at each cycle (all seeds),
    beside the modes' prior frequency in the pool; rare modes a sampler seeks out grow against the prior."""
    info = rs.dataset_info(dataset)
    names = list(info.get("group_names") or [])
    prior = np.asarray(info.get("group_prior") or [], dtype=float)
    sel = rs.selections[(rs.selections["dataset"] == dataset) & rs.selections["sampler"].isin(rs.samplers)]
    data = mode_data(sel)
    if data.empty or not names:
        raise ResultsError(
            f"{dataset}: no pose-mode information to draw (only the synthetic datasets have modes)"
        )
    groups = sorted(set(range(len(names))) | set(int(g) for g in data["group"]))
    labels = {g: (names[g] if 0 <= g < len(names) else "unknown") for g in groups}
    palette = dict(zip(groups, matplotlib.colormaps["tab10" if len(groups) <= 10 else "tab20"].colors))
    if -1 in palette:
        palette[-1] = (0.8, 0.8, 0.8)
    samplers = [s for s in rs.samplers if s in set(data["sampler"])]
    cycles = sorted(pd.unique(data["cycle"]))
    # wide enough for the legend and the title even with one sampler and few cycles
    fig, axes = _grid(len(samplers), 4, (0.24 * (len(cycles) + 1) + 1.1, 2.7), min_width=9.0, sharey=True)
    for ax, sampler in zip(axes, samplers):
        table = (
            data[data["sampler"] == sampler].pivot(index="cycle", columns="group", values="fraction")
            .reindex(index=cycles, columns=groups).fillna(0.0)
        )  # fmt: skip
        x = np.arange(len(cycles) + 1)
        bottom = np.zeros(len(x))
        for g in groups:
            p = prior[g] if 0 <= g < len(prior) else 0.0
            heights = np.concatenate([[p], table[g].to_numpy()])
            ax.bar(x, heights, bottom=bottom, color=palette[g], width=0.8, label=labels[g])
            bottom += heights
        ax.axvline(0.5, color="0.3", lw=0.8)
        ax.set_xticks(x, ["prior", *[str(c) for c in cycles]], fontsize=8)
        ax.set_title(style.sampler_label(sampler), color=style.sampler_color(sampler), fontweight="bold")
        ax.set_xlabel("cycle")
        ax.set_ylim(0, 1)
        ax.grid(False)
    for ax in axes[:: min(4, len(axes))]:
        ax.set_ylabel("share of picked images")
    top_first = groups[::-1]  # the legend reads top to bottom like the stacks
    handles = [Rectangle((0, 0), 1, 1, color=palette[g]) for g in top_first]
    fig.legend(
        handles, [labels[g] for g in top_first], loc="outside right center", title="Pose mode", frameon=False
    )
    _suptitle(fig, f"{rs.title(dataset)}: pose modes picked per cycle (all seeds) vs the pool's prior")
    return fig


@_with_rc
def plot_selection(
    images: np.ndarray,
    keypoints: np.ndarray,
    links: Sequence[tuple[int, int]],
    *,
    refined: np.ndarray | None = None,
    captions: Sequence[str] | None = None,
    title: str = "",
    ncols: int = 4,
) -> Figure:
    """A grid of selected images with the predicted skeleton drawn; with `refined`, the refined pose beside each.

    images (n, H, W, C) uint8 (C = 1 drawn in grey); keypoints and refined (n, J, 2) (x, y) in image pixels.
    """
    images = np.asarray(images)
    keypoints = np.asarray(keypoints, dtype=float)
    if images.ndim != 4 or keypoints.ndim != 3 or keypoints.shape[-1] != 2 or len(images) != len(keypoints):
        raise ValueError(
            f"plot_selection needs images (n, H, W, C) and keypoints (n, J, 2); got {images.shape} and {keypoints.shape}"
        )
    if refined is not None and np.shape(refined) != keypoints.shape:
        raise ValueError(
            f"refined keypoints {np.shape(refined)} must match the predicted ones {keypoints.shape}"
        )
    n = len(images)
    if n == 0:
        raise ValueError("plot_selection got no images; that cycle selected nothing")
    panels = [(i, "predicted", keypoints[i]) for i in range(n)]
    if refined is not None:
        panels = [p for i in range(n) for p in ((i, "predicted", keypoints[i]), (i, "refined", refined[i]))]
        ncols = 2 * max(1, ncols // 2)
    cols = min(ncols, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = _subplots(
        rows, cols, figsize=(max(2.1 * cols, 5.2), 2.35 * rows + 0.7), layout="constrained", squeeze=False
    )
    link_idx = np.asarray(links, dtype=int).reshape(-1, 2)
    colours = {"predicted": "#39FF14", "refined": "#FF3FD2"}
    for ax in axes.ravel()[len(panels) :]:
        ax.set_axis_off()
    for ax, (i, kind, kp) in zip(axes.ravel(), panels):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        for spine in ax.spines.values():  # a thin frame: depth images have a white background
            spine.set_visible(True)
            spine.set_color("0.6")
        img = images[i]
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None)
        segments = np.stack([kp[link_idx[:, 0]], kp[link_idx[:, 1]]], axis=1)
        ax.add_collection(
            LineCollection(segments, colors=colours[kind], linewidths=1.6, gid=f"skeleton:{i}:{kind}")
        )
        ax.scatter(kp[:, 0], kp[:, 1], s=7, color="white", edgecolors=colours[kind], linewidths=0.6, zorder=3)
        ax.set_xlim(-0.5, img.shape[1] - 0.5)
        ax.set_ylim(img.shape[0] - 0.5, -0.5)
        caption = captions[i] if captions is not None else f"#{i}"
        ax.set_title(
            caption if kind == "predicted" else "refined",
            fontsize=8,
            color="black" if kind == "predicted" else colours[kind],
        )
    if title:
        _suptitle(fig, title, fontsize=10)
    return fig


# -- writing files -----------------------------------------------------------------------------------------------


@dataclass
class PlotOutput:
    """What `plot_results` wrote, and which figures it skipped and why."""

    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def figure_writer(fig: Figure, fmt: str) -> Callable[[BinaryIO], None]:
    """A function that writes `fig` as png/pdf/svg into a binary file, without a timestamp, so the same results
    give the same file."""
    metadata = {"png": {}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}[fmt]

    def draw(fh: BinaryIO) -> None:
        with matplotlib.rc_context(
            {"svg.hashsalt": "alpose-bench"}
        ):  # fixed SVG element ids, not random ones
            fig.savefig(fh, format=fmt, metadata=metadata, dpi=DPI)

    return draw


def save_figure(fig: Figure, path: Path, fmt: str) -> Path:
    """Write one figure atomically (`figure_writer`)."""
    return write_atomic(path, figure_writer(fig, fmt))


def overview_figures(rs: ResultSet) -> dict[str, Figure | str]:
    """The standard figures by file stem; a str instead of a Figure says why that figure was left out."""
    figures: dict[str, Figure | str] = {}
    makers = {
        "curves": plot_curves, "gain": plot_gain, "cd": plot_cd, "mode-accuracy": plot_mode_accuracy,
        "joints": plot_joints, "timing": plot_timing, "tradeoff": plot_tradeoff,
    }  # fmt: skip
    for stem, make in makers.items():
        try:
            figures[stem] = make(rs)
        except ResultsError as exc:
            figures[stem] = str(exc)
    for dataset in rs.datasets:
        if rs.dataset_info(dataset).get("group_names"):
            try:
                figures[f"modes-{dataset}"] = plot_modes(rs, dataset)
            except ResultsError as exc:
                figures[f"modes-{dataset}"] = str(exc)
    return figures


def keypoints_to_pixels(keypoints: np.ndarray, task: str, cube_mm: float, resolution: int) -> np.ndarray:
    """(n, J, 2) image pixels of predicted keypoints: 2D tasks store pixels already; 3D tasks store millimetres
    around the hand centre, drawn by the crop cube's orthographic projection, pixel = (x / cube_mm + 1) * res / 2 - 0.5
    (exact for the synthetic hands; for ICVL's perspective crops exact at the centre's depth, close elsewhere)."""
    kp = np.asarray(keypoints, dtype=float)[..., :2]
    return (kp / cube_mm + 1.0) * resolution / 2.0 - 0.5 if task == "regression3d" else kp


def selection_figures(rs: ResultSet, *, seed: int | None = None, cycle: int = 0, max_images: int = 16):
    """Yield (file stem, Figure) of the images each shown sampler picked at `cycle` of `seed` (default: lowest seed)."""
    from alpose_bench.engine.build import dataset_of
    from alpose_bench.results import read as results
    from alpose_bench.spec.config import ExperimentSpec

    spec = rs.experiment.get("spec") or {}
    for dataset in rs.datasets:
        sel = rs.selections[rs.selections["dataset"] == dataset]
        seeds = sorted(pd.unique(sel["seed"]))
        if not seeds:
            continue
        chosen_seed = seeds[0] if seed is None else seed
        if chosen_seed not in seeds:
            raise ResultsError(
                f"no selections for seed {seed} in {dataset}; seeds there: {', '.join(map(str, seeds))}"
            )
        ds = dataset_of(ExperimentSpec.from_stored(spec), dataset)
        for sampler in rs.samplers:
            picked = sel[(sel["sampler"] == sampler) & (sel["seed"] == chosen_seed) & (sel["cycle"] == cycle)]
            if picked.empty:
                continue
            picked = picked.sort_values("rank").head(max_images)
            arrays = results.load_selection_keypoints(rs.path, dataset, sampler, int(chosen_seed), cycle)
            if arrays.get("keypoints") is None:
                continue
            row = {int(i): r for r, i in enumerate(arrays["index"])}
            rows = np.asarray([row[int(i)] for i in picked["index"]])
            refined = arrays.get("refined_keypoints")  # VL4Pose, heatmap tasks only: model-input pixels
            captions = [
                f"#{int(r)}  idx {int(i)}" + ("" if not np.isfinite(s) else f"  score {s:.3g}")
                for r, i, s in zip(picked["rank"], picked["index"], picked["score"].astype(float))
            ]
            n = len(picked)
            shown = "predicted pose (green)" + (
                "; refined pose beside it (magenta)" if refined is not None else ""
            )
            fig = plot_selection(
                ds.train.images[picked["index"].to_numpy()],
                keypoints_to_pixels(
                    np.asarray(arrays["keypoints"])[rows], ds.task, ds.cube_mm, ds.resolution
                ),
                ds.skeleton.links,
                refined=None if refined is None else np.asarray(refined, dtype=float)[rows, :, :2],
                captions=captions,
                title=f"{rs.title(dataset)}\n{style.sampler_label(sampler)}, seed {chosen_seed}, cycle {cycle}: "
                f"first {n} pick{'s' if n > 1 else ''}\n{shown}",
            )
            yield f"selection-{dataset}-{sampler}-seed{chosen_seed}-cycle{cycle}", fig


def plot_results(
    rs: ResultSet,
    out: str | Path,
    fmt: str = "png",
    *,
    show_selection: bool = False,
    seed: int | None = None,
    cycle: int = 0,
    max_images: int = 16,
) -> PlotOutput:
    """Write every figure of `rs` into the folder `out` as `fmt`; returns the files written and the figures skipped."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown figure format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = PlotOutput()
    files: dict[Path, Callable[[BinaryIO], None]] = {}
    for stem, fig in overview_figures(rs).items():
        if isinstance(fig, str):
            result.skipped.append(f"{stem}: {fig}")
        else:
            files[out / f"{stem}.{fmt}"] = figure_writer(fig, fmt)
    if show_selection:
        for stem, fig in selection_figures(rs, seed=seed, cycle=cycle, max_images=max_images):
            files[out / f"{stem}.{fmt}"] = figure_writer(fig, fmt)
    result.written = write_all_atomic(files)  # the whole set, or (on any failure) none of it
    return result
