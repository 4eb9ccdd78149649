"""Tables of an experiment: the regime the references reveal, the metric at every budget on every held-out split, the
paired gain over random per budget, AUBC with paired tests, ranks over budgets (Friedman, Nemenyi), the metric per
pose mode, timing and provenance; written as Markdown, one self-contained HTML page (figures embedded), or CSV.

Every statistic is computed by `alpose_bench.results.analysis` (which `plot` uses too) and defined once in
`alpose_bench.core.stats`; the report's notes say which test each column is.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alpose_bench.core import stats as st
from alpose_bench.core.atomic import write_all_atomic, write_atomic
from alpose_bench.pose.metrics import metric_info
from alpose_bench.present import style
from alpose_bench.results.analysis import (
    TEST_NAME,
    ResultSet,
    curve_data,
    gain_data,
    load_warning,
    timing_data,
)
from alpose_bench.results.comparisons import friedman_data, mode_accuracy_data, regime, sampler_summary
from alpose_bench.spec import roles
from alpose_bench.spec.registry import get_sampler
from alpose_bench.spec.stream import stream_of

FORMATS = ("md", "html", "csv")


# -- formatting --------------------------------------------------------------------------------------------------


def _difference_note(metric: str) -> str:
    """What a difference to random means for `metric`: its sign and unit (MPJPE: below 0 is better)."""
    info = metric_info(metric)
    better = "above" if info.higher_is_better else "below"
    return f"Difference to random (sampler − random, {info.difference_unit}; {better} 0 is better)"


def mean_std(mean: float, std: float, digits: int = 2) -> str:
    """ "81.20 ± 0.35"; just the mean when std is undefined (a single seed)."""
    if not np.isfinite(mean):
        return "—"
    return f"{mean:.{digits}f}" if not np.isfinite(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _number(s: float) -> str:
    """3 significant digits below 10, one decimal below 100, whole numbers with thousands separators above."""
    if not np.isfinite(s):
        return "—"
    return f"{s:.3g}" if s < 10 else f"{s:,.0f}" if s >= 100 else f"{s:.1f}"


REFERENCE_TAG = "reference, reads labels"


def _sampler_cell(sampler: str) -> str:
    return style.sampler_label(sampler) + (f" ({REFERENCE_TAG})" if roles.is_reference(sampler) else "")


def dataset_table(rs: ResultSet, dataset: str, split: str = "test") -> pd.DataFrame:
    """The per-dataset table as strings: a row per sampler (references last, tagged and never ranked), a column per
    budget (mean ± std over seeds), then AUBC, its paired difference to random with the 95 % interval, rank and the
    Holm-corrected paired test (with the seeds needed where it is not significant)."""
    cycles = rs.split_cycles(split)
    cycles = cycles[cycles["dataset"] == dataset]
    curves = curve_data(cycles)
    summary = sampler_summary(cycles).set_index("sampler")
    budgets = sorted(pd.unique(curves["n_labelled"]))
    rows = []
    for sampler in rs.samplers:
        c = curves[curves["sampler"] == sampler].set_index("n_labelled")
        if c.empty:
            continue
        row = {"Sampler": _sampler_cell(sampler)}
        for n in budgets:
            row[f"n={n}"] = mean_std(c.at[n, "mean"], c.at[n, "std"]) if n in c.index else "—"
        s = summary.loc[sampler] if sampler in summary.index else None
        row["AUBC"] = "—" if s is None else mean_std(s["aubc_mean"], s["aubc_std"])
        gain = st.PairedDifference(s["gain"], np.nan, int(s["n_seeds"]), s["gain_ci_low"], s["gain_ci_high"],
                                   s["p_t"]) if s is not None else None  # fmt: skip
        row["AUBC − random [95 % CI]"] = (
            "—" if gain is None or sampler == roles.baseline_name() else gain.interval_text()
        )
        row["Rank"] = "—" if s is None or pd.isna(s["rank"]) else str(int(s["rank"]))
        row["vs random"] = "—" if s is None else s["test"]
        rows.append(row)
    return pd.DataFrame(rows)


def gain_table(rs: ResultSet, dataset: str, split: str = "test") -> pd.DataFrame:
    """Each sampler's paired difference to random at every budget after the first: "mean [95 % CI]", starred where
    the paired t-test (uncorrected) gives p < 0.05."""
    cycles = rs.split_cycles(split)
    gains = gain_data(cycles[cycles["dataset"] == dataset])
    first = cycles.loc[cycles["dataset"] == dataset, "n_labelled"].min()
    gains = gains[gains["n_labelled"] > first]
    budgets = sorted(pd.unique(gains["n_labelled"]))
    rows = []
    for sampler in rs.samplers:
        g = gains[gains["sampler"] == sampler].set_index("n_labelled")
        if sampler == roles.baseline_name() or g.empty:
            continue
        row = {"Sampler": _sampler_cell(sampler)}
        for n in budgets:
            if n not in g.index:
                row[f"n={n}"] = "—"
                continue
            d = st.PairedDifference(g.at[n, "mean"], g.at[n, "std"], int(g.at[n, "n_seeds"]), g.at[n, "ci_low"],
                                    g.at[n, "ci_high"], g.at[n, "p_value"])  # fmt: skip
            row[f"n={n}"] = d.interval_text() + (" *" if d.significant else "")
        rows.append(row)
    return pd.DataFrame(rows)


def regime_blocks(rs: ResultSet, dataset: str) -> list[Block]:
    """The regime line of every split of `dataset`, or how to get one (add the references)."""
    blocks: list[Block] = []
    for split in rs.splits:
        cycles = rs.split_cycles(split)
        for r in regime(cycles[cycles["dataset"] == dataset], split=split):
            blocks.append(
                ("p", f"Regime on the {split} split: {r.verdict.upper()} — {r.meaning}. {r.numbers()}.")
            )
    if not blocks:
        blocks.append(("p", "Regime: unknown — run the references too (--samplers ...,random,oracle-hard,oracle-easy) "
                            "to see whether this experiment can rank samplers at all."))  # fmt: skip
    return blocks


def friedman_blocks(rs: ResultSet, split: str = "test") -> list[Block]:
    """Friedman's test over (dataset x budget) blocks, the mean ranks and Nemenyi's critical difference."""
    cycles = rs.split_cycles(split)
    result = friedman_data(cycles[cycles["sampler"].isin(rs.samplers)])
    if result is None:
        return [("p", "Ranks: needs 3 or more samplers and 2 or more budgets after the first.")]
    pairs = [
        f"{style.sampler_label(a)} vs {style.sampler_label(b)} (p = {result.nemenyi.at[a, b]:.2g})"
        for i, a in enumerate(result.ranks.index) for b in result.ranks.index[i + 1 :]
        if result.nemenyi.at[a, b] < st.ALPHA
    ]  # fmt: skip
    ranks = pd.DataFrame(
        {"Sampler": [style.sampler_label(s) for s in result.ranks.index],
         "Mean rank (1 = best)": [f"{r:.2f}" for r in result.ranks]}
    )  # fmt: skip
    text = (
        f"Friedman test over {result.n_blocks} (dataset x budget) blocks on the {split} split: chi² = "
        f"{result.statistic:.2f}, p = {result.p_value:.2g}. Nemenyi critical difference {result.critical_difference:.2f}"
        " ranks; pairs that differ at 0.05: " + ("; ".join(pairs) if pairs else "none") + "."
    )
    return [("p", text), ("table", ranks)]


def mode_table(rs: ResultSet, dataset: str, split: str) -> pd.DataFrame | None:
    """The metric per pose mode at the final budget: a row per sampler, a column per mode, "value (gain over random)";
    None for datasets without modes."""
    data = mode_accuracy_data(rs.evals[(rs.evals["dataset"] == dataset) & (rs.evals["split"] == split)])
    if data.empty or data["group"].nunique() < 2:
        return None
    groups = list(pd.unique(data["group"]))
    rows = []
    for sampler in rs.samplers:
        d = data[data["sampler"] == sampler].set_index("group")
        if d.empty:
            continue
        row = {"Sampler": _sampler_cell(sampler)}
        for g in groups:
            if g not in d.index:
                row[g] = "—"
                continue
            value, gain = d.at[g, "mean"], d.at[g, "gain"]
            star = " *" if np.isfinite(d.at[g, "p_value"]) and d.at[g, "p_value"] < st.ALPHA else ""
            row[g] = f"{value:.1f}" + (
                "" if sampler == roles.baseline_name() or not np.isfinite(gain) else f" ({gain:+.1f}{star})"
            )
        rows.append(row)
    table = pd.DataFrame(rows)
    sizes = data.drop_duplicates("group").set_index("group")["n_images"]
    table.columns = ["Sampler", *[f"{g} (n={int(sizes[g])})" for g in groups]]
    return table


def timing_table(rs: ResultSet, dataset: str) -> pd.DataFrame:
    """Timing as strings: CPU seconds per cycle (train / evaluate / select, and the model's inference within
    selection), CPU ms per scored image, and the whole run in CPU and wall seconds with their ratio. Databases that
    did not record CPU seconds show wall seconds (the columns say which)."""
    t = timing_data(rs.cycles[rs.cycles["dataset"] == dataset]).set_index("sampler")
    cpu = t["train_cpu_s"].notna().all() if len(t) else False
    unit = "CPU s" if cpu else "wall s"
    rows = []
    for sampler in rs.samplers:
        if sampler not in t.index:
            continue
        r = t.loc[sampler]
        suffix = "_cpu_s" if cpu else "_s"
        row = {
            "Sampler": style.sampler_label(sampler),
            f"train {unit}/cycle": _number(r["train" + suffix]),
            f"eval {unit}/cycle": _number(r["eval" + suffix]),
            f"select {unit}/cycle": _number(r["select" + suffix]),
        }
        if cpu:
            row["of which inference"] = _number(r["infer_cpu_s"])
            row["select CPU ms/image"] = _number(r["select_cpu_ms_per_image"])
            row["total CPU s/run"] = _number(r["total_cpu_s"])
            row["total wall s/run"] = _number(r["total_s"])
            row["wall/CPU"] = "—" if not np.isfinite(r["load_factor"]) else f"{r['load_factor']:.2f}"
        else:
            row["select ms/image"] = _number(r["select_ms_per_image"])
            row["total wall s/run"] = _number(r["total_s"])
        rows.append(row)
    return pd.DataFrame(rows)


def stream_text(rs: ResultSet) -> str | None:
    """What the stream protocol of the experiment was (None under the pool protocol)."""
    spec = rs.experiment.get("spec") or {}
    stream = stream_of(spec)
    if stream is None:
        return None
    return (
        f"Stream protocol: frames arrive in the {stream.order} order, one chunk per cycle; the device decides on "
        f"each frame as it arrives with the {stream.manager} budget manager (window {stream.window}); buffered "
        f"samplers select among {stream.buffer} frames at a time. Budgets are label budgets: the labels every "
        "sampler was allowed (init + cycle x the chunk's allowance); the labels each asked for are in the budget "
        "adherence table."
    )


def stream_table(rs: ResultSet, dataset: str) -> pd.DataFrame:
    """Per sampler under the stream protocol: how it decides, frames seen, labels allowed and asked for (means over
    seeds) and their ratio, the budget adherence."""
    spec = rs.experiment.get("spec") or {}
    stream = stream_of(spec, int(rs.dataset_info(dataset).get("pool", 0)))
    assert stream is not None
    c = rs.cycles[(rs.cycles["dataset"] == dataset) & (rs.cycles["select_images"] > 0)]
    rows = []
    for sampler in rs.samplers:
        mine = c[c["sampler"] == sampler]
        if mine.empty:
            continue
        per_seed = mine.groupby("seed").agg(frames=("select_images", "sum"), asked=("n_selected", "sum"),
                                            chunks=("select_images", "size"))  # fmt: skip
        allowed = per_seed["chunks"] * stream.per_chunk
        try:
            buffered = not get_sampler(sampler).decides_per_frame()
        except Exception:  # a sampler no longer installed: its kind is unknown
            buffered = None
        rows.append({
            "Sampler": style.sampler_label(sampler),
            "decides": "?" if buffered is None else (f"buffered ({stream.buffer} frames)" if buffered else "per frame"),
            "frames seen": _number(per_seed["frames"].mean()),
            "labels allowed": _number(allowed.mean()),
            "labels asked": _number(per_seed["asked"].mean()),
            "adherence": f"{100 * (per_seed['asked'] / allowed).mean():.0f} %",
        })  # fmt: skip
    return pd.DataFrame(rows)


def provenance_rows(rs: ResultSet) -> list[tuple[str, str]]:
    """(field, value) lines describing where and how the experiment ran."""
    prov = rs.experiment.get("provenance") or {}
    runs = rs.experiment.get("runs") or {}
    status_counts = pd.Series([r.get("status", "?") for r in runs.values()]).value_counts()
    rows = [("Experiment", rs.name), ("Folder", str(rs.path))]
    for key, label in (("created", "Created"), ("git", "Git revision"), ("device", "Device"), ("host", "Host"),
                       ("command", "Command")):  # fmt: skip
        if prov.get(key) not in (None, ""):
            rows.append((label, str(prov[key])))
    if len(status_counts):
        rows.append(("Runs", ", ".join(f"{n} {status}" for status, n in status_counts.items())))
    return rows


def failed_runs(rs: ResultSet) -> list[tuple[str, str]]:
    """(run, error) for every run that did not finish cleanly."""
    runs = rs.experiment.get("runs") or {}
    return [
        (k, str(v.get("error") or v.get("status")))
        for k, v in sorted(runs.items())
        if v.get("status") == "failed"
    ]


# -- documents ---------------------------------------------------------------------------------------------------

Block = tuple[str, Any]  # ("h1"|"h2"|"h3"|"p"|"table"|"kv"|"code"|"figure", content); kv: a text table

NOTES = (
    "Values are mean ± std over seeds (sample std). AUBC is the area under the metric-vs-labelled-images curve divided "
    "by the budget range (metric units), per seed over the budgets every sampler reached. Every comparison with random "
    "is paired by seed (same initial set and cycle-0 model): 'AUBC − random' is the mean per-seed difference with its "
    f"95 % t-interval; 'vs random' is the {TEST_NAME}; where it is not significant, 'seeds needed' is how many seeds "
    "the observed mean difference and spread would need to reach p < 0.05 (and 80 % power). Per-budget gains are "
    "starred (*) where the paired t-test gives p < 0.05 (uncorrected). Rank 1 has the best AUBC among the samplers. "
    f"Rows tagged '{REFERENCE_TAG}' are oracles that see the pool's true error: they are never ranked, and show "
    "whether seeking the images the model gets wrong (oracle-hard) or right (oracle-easy) beats random here."
)


def missing_seeds(cycles: pd.DataFrame) -> list[str]:
    """ "<dataset>: <sampler> lacks seed(s) ..." for every sampler without every seed another sampler of its
    dataset has."""
    out = []
    for dataset, d in cycles.groupby("dataset", sort=False):
        every = set(d["seed"])
        for sampler, g in d.groupby("sampler", sort=False):
            absent = sorted(every - set(g["seed"]))
            if absent:
                which = "seed" if len(absent) == 1 else "seeds"
                out.append(f"{dataset}: {style.sampler_label(str(sampler))} lacks {which} "
                           f"{', '.join(str(int(s)) for s in absent)}")  # fmt: skip
    return out


def build_document(rs: ResultSet, figures: bool = False) -> list[Block]:
    """The report as a list of blocks, rendered by `to_markdown` / `to_html`."""
    spec = rs.experiment.get("spec") or {}
    blocks: list[Block] = [("h1", f"alpose-bench report: {rs.name}")]
    blocks.append(("p", f"Preset {rs.preset or '?'}; datasets {', '.join(rs.datasets)}; samplers "
                        f"{', '.join(style.sampler_label(s) for s in rs.samplers)}."))  # fmt: skip
    blocks.append(("p", NOTES))
    stream = stream_text(rs)
    if stream is not None:
        blocks.append(("p", stream))
    lacking = missing_seeds(rs.cycles)
    if lacking:
        blocks.append(("p", "Not every sampler has every seed (the experiment grew): " + "; ".join(lacking) + ". "
                       "Paired comparisons use the seeds both samplers have; rerun `alpose-bench run` with the "
                       "missing seeds to complete them."))  # fmt: skip
    for dataset in rs.datasets:
        conventions = rs.dataset_info(dataset).get("conventions") or []
        if conventions:
            blocks.append(("p", f"Evaluation of {dataset}: " + "; ".join(conventions) + "."))
    if figures:
        from alpose_bench.present.plot import overview_figures  # matplotlib only for the HTML report

        figs = overview_figures(rs)
        for stem, why in [(k, v) for k, v in figs.items() if isinstance(v, str)]:
            figs.pop(
                stem
            )  # a figure the data cannot draw (e.g. a CD diagram from one seed) is named, not drawn
            blocks.append(("p", f"Figure {stem} left out: {why}."))
    else:
        figs = {}
    if "curves" in figs:
        blocks.append(("figure", ("Metric vs labelled images", figs.pop("curves"))))
    for dataset in rs.datasets:
        metric = str(rs.cycles.loc[rs.cycles["dataset"] == dataset, "metric"].iloc[0])
        blocks.append(("h2", f"{dataset}: {style.metric_label(metric)}"))
        blocks.extend(regime_blocks(rs, dataset))
        if stream is not None:
            blocks.append(("h3", f"{dataset}, budget adherence (stream)"))
            blocks.append(("table", stream_table(rs, dataset)))
        for split in rs.splits:
            cycles = rs.split_cycles(split)
            if dataset not in set(cycles["dataset"]):
                continue
            what = (
                "test split"
                if split == "test"
                else f"{split} split (the deployment distribution; beside the test split, never instead)"
            )
            blocks.append(("h3", f"{dataset}, {what}"))
            blocks.append(("table", dataset_table(rs, dataset, split)))
            gains = gain_table(rs, dataset, split)
            if not gains.empty:
                blocks.append(
                    (
                        "p",
                        f"{_difference_note(metric)} per budget, paired by seed: mean [95 % CI], * p < 0.05.",
                    )
                )
                blocks.append(("table", gains))
        for split in rs.splits:
            table = mode_table(rs, dataset, split)
            if table is not None:
                blocks.append(("h3", f"{dataset}, per pose mode on the {split} split at the final budget"))
                blocks.append(
                    (
                        "p",
                        f"Metric of each mode's images ({_difference_note(metric).lower()}, paired by seed; * p < 0.05).",
                    )
                )
                blocks.append(("table", table))
    blocks.append(("h2", "Ranks over datasets and budgets"))
    for split in rs.splits:
        blocks.extend(friedman_blocks(rs, split))
    for stem, title in (("gain", "Gain over random"), ("cd", "Critical-difference diagram"),
                        ("mode-accuracy", "Per pose mode"), ("joints", "Per joint at the final budget")):  # fmt: skip
        if stem in figs:
            blocks.append(("figure", (title, figs.pop(stem))))
    blocks.append(("h2", "Timing"))
    blocks.append(("p", "Seconds per cycle are means over seeds and cycles (select: cycles that selected), in CPU seconds "
                        "of the task's process: unlike wall seconds they do not grow when other work shares the CPU, "
                        "so they compare samplers fairly. 'of which inference' is the model's forward passes within "
                        "selection; total is one run (one seed); wall/CPU near 1 means the task had a core to itself."))  # fmt: skip
    for dataset in rs.datasets:
        blocks.append(("h3", dataset))
        blocks.append(("table", timing_table(rs, dataset)))
        warning = load_warning(timing_data(rs.cycles[rs.cycles["dataset"] == dataset]))
        if warning:
            blocks.append(("p", f"Warning: {warning}"))
    if "timing" in figs:
        blocks.append(("figure", ("Timing", figs.pop("timing"))))
    if "tradeoff" in figs:
        blocks.append(("figure", ("Gain over random against cost per frame", figs.pop("tradeoff"))))
    for stem, fig in figs.items():
        blocks.append(("figure", (f"Pose modes picked: {stem.removeprefix('modes-')}", fig)))
    blocks.append(("h2", "Provenance"))
    blocks.append(("kv", pd.DataFrame(provenance_rows(rs), columns=["Field", "Value"])))
    failed = failed_runs(rs)
    if failed:
        blocks.append(("h3", "Failed runs"))
        blocks.append(("kv", pd.DataFrame(failed, columns=["Run", "Error"])))
    versions = (rs.experiment.get("provenance") or {}).get("versions") or {}
    if versions:
        blocks.append(("h3", "Package versions"))
        blocks.append(("kv", pd.DataFrame(sorted(versions.items()), columns=["Package", "Version"])))
    blocks.append(("h3", "Experiment specification"))
    blocks.append(("code", json.dumps(spec, indent=2, sort_keys=True, default=str)))
    return blocks


def _md_cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(table: pd.DataFrame, numeric: bool = True) -> str:
    """A GitHub-flavoured Markdown table: first column left-aligned, the others right-aligned when `numeric`."""
    header = [_md_cell(c) for c in table.columns]
    rows = [[_md_cell(v) for v in row] for row in table.itertuples(index=False)]
    align = [":---"] + ["---:" if numeric else ":---"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def to_markdown(blocks: Iterable[Block]) -> str:
    """Render blocks as Markdown (figures are left out: `alpose-bench plot` writes them as files)."""
    parts = []
    for kind, content in blocks:
        if kind in ("h1", "h2", "h3"):
            parts.append("#" * int(kind[1]) + " " + content)
        elif kind == "p":
            parts.append(content)
        elif kind in ("table", "kv"):
            parts.append(markdown_table(content, numeric=kind == "table"))
        elif kind == "code":
            parts.append(f"```json\n{content}\n```")
    return "\n\n".join(parts) + "\n"


def _png_base64(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
table{border-collapse:collapse;margin:0.8em 0;font-size:0.9em;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #ddd;padding:0.3em 0.6em;text-align:right;white-space:nowrap}
th:first-child,td:first-child,.kv td,.kv th{text-align:left}
.kv td{white-space:normal}
th{background:#f4f4f4}
.wide{overflow-x:auto}
figure{margin:1.2em 0}
figure img{max-width:100%;height:auto}
figcaption{color:#555;font-size:0.9em}
pre{background:#f6f6f6;padding:0.8em;overflow-x:auto;font-size:0.85em}
p.note{color:#444;font-size:0.92em}
"""


def to_html(blocks: Iterable[Block], title: str) -> str:
    """Render blocks as one self-contained HTML page: inline CSS, figures embedded as base64 PNG, no external files."""
    body = []
    for kind, content in blocks:
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{html.escape(content)}</{kind}>")
        elif kind == "p":
            body.append(f'<p class="note">{html.escape(content)}</p>')
        elif kind in ("table", "kv"):
            klass = "wide" if kind == "table" else "wide kv"
            body.append(
                f'<div class="{klass}">' + content.to_html(index=False, border=0, escape=True) + "</div>"
            )
        elif kind == "code":
            body.append(f"<pre>{html.escape(content)}</pre>")
        elif kind == "figure":
            caption, fig = content
            body.append(
                f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{_png_base64(fig)}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def csv_frames(rs: ResultSet) -> dict[str, pd.DataFrame]:
    """The report's numbers, unformatted, by file stem: per-budget curves and paired gains, per-sampler AUBC/rank/tests
    (each split; `-ood` for the ood split), the metric per pose mode, timing."""
    frames: dict[str, pd.DataFrame] = {}
    for split in rs.splits:
        cycles = rs.split_cycles(split)
        suffix = "" if split == "test" else f"-{split}"
        shown = cycles[cycles["sampler"].isin(rs.samplers)]
        summary = sampler_summary(cycles)
        gains = gain_data(cycles)
        frames[f"report-budgets{suffix}"] = curve_data(shown)
        frames[f"report-gains{suffix}"] = gains[gains["sampler"].isin(rs.samplers)].reset_index(drop=True)
        frames[f"report-samplers{suffix}"] = summary[summary["sampler"].isin(rs.samplers)].reset_index(
            drop=True
        )
    modes = mode_accuracy_data(rs.evals)
    if not modes.empty:
        frames["report-modes"] = modes[modes["sampler"].isin(rs.samplers)].reset_index(drop=True)
    frames["report-timing"] = timing_data(rs.cycles[rs.cycles["sampler"].isin(rs.samplers)])
    return frames


def write_report(rs: ResultSet, fmt: str = "md", out: str | Path | None = None) -> list[Path]:
    """Write the report into folder `out` (default: the results folder) as report.md, report.html or three CSVs."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    folder = Path(out) if out is not None else rs.path
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        return write_all_atomic(
            {
                folder / f"{stem}.csv": frame.to_csv(index=False).encode("utf-8")
                for stem, frame in csv_frames(rs).items()
            }
        )
    if fmt == "md":
        text = to_markdown(build_document(rs))
        path = folder / "report.md"
    else:
        text = to_html(build_document(rs, figures=True), f"alpose-bench: {rs.name}")
        path = folder / "report.html"
    return [write_atomic(path, text.encode("utf-8"))]
