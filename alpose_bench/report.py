"""Tables of an experiment: the metric at every budget, area under the budget curve, rank, a paired test against
random, timing and provenance; written as Markdown, one self-contained HTML page (figures embedded), or CSV.

Statistics, stated once so every number can be checked:
- "mean ± std" is over seeds, with the sample standard deviation (ddof = 1).
- AUBC is `alpose_bench.metrics.aubc` (trapezoid area under metric vs labelled images divided by the budget range, in
  the metric's units) computed per seed, over the budgets every sampler reached, then mean ± std over seeds.
- The paired test is the two-sided Wilcoxon signed-rank test (scipy) on per-seed AUBC against random's, paired by seed
  (same seed = same initial labelled set). With n non-zero differences its exact p cannot go below 2 / 2^n, so below
  6 seeds it could never reach 0.05; the table then says "n/a" instead of printing a p-value that looks meaningful.
  p-values are not corrected for the several samplers compared.
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

from alpose_bench import style
from alpose_bench.analysis import (
    MIN_TEST_SEEDS,
    TEST_NAME,
    ResultSet,
    curve_data,
    load_warning,
    sampler_summary,
    timing_data,
)

FORMATS = ("md", "html", "csv")


# -- formatting --------------------------------------------------------------------------------------------------


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


def dataset_table(rs: ResultSet, dataset: str) -> pd.DataFrame:
    """The per-dataset table as strings: a row per sampler, a column per budget, then AUBC, rank and the test."""
    cycles = rs.cycles[rs.cycles["dataset"] == dataset]
    curves = curve_data(cycles)
    summary = sampler_summary(cycles).set_index("sampler")
    budgets = sorted(pd.unique(curves["n_labelled"]))
    rows = []
    for sampler in rs.samplers:
        c = curves[curves["sampler"] == sampler].set_index("n_labelled")
        row = {"Sampler": style.sampler_label(sampler)}
        for n in budgets:
            row[f"n={n}"] = mean_std(c.at[n, "mean"], c.at[n, "std"]) if n in c.index else "—"
        s = summary.loc[sampler] if sampler in summary.index else None
        row["AUBC"] = "—" if s is None else mean_std(s["aubc_mean"], s["aubc_std"])
        row["Rank"] = "—" if s is None else str(int(s["rank"]))
        row["p vs random"] = "—" if s is None else s["test"]
        rows.append(row)
    return pd.DataFrame(rows)


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
    "by the budget range (metric units), per seed over the budgets every sampler reached. Rank 1 has the best AUBC. "
    f"p vs random: {TEST_NAME} (scipy); with n seeds its smallest possible p is 2/2^n, so it is shown only from "
    f"{MIN_TEST_SEEDS} seeds on; p-values are not corrected for comparing several samplers."
)


def build_document(rs: ResultSet, figures: bool = False) -> list[Block]:
    """The report as a list of blocks, rendered by `to_markdown` / `to_html`."""
    spec = rs.experiment.get("spec") or {}
    blocks: list[Block] = [("h1", f"alpose-bench report: {rs.name}")]
    blocks.append(("p", f"Preset {rs.preset or '?'}; datasets {', '.join(rs.datasets)}; samplers "
                        f"{', '.join(style.sampler_label(s) for s in rs.samplers)}."))  # fmt: skip
    blocks.append(("p", NOTES))
    for dataset in rs.datasets:
        conventions = rs.dataset_info(dataset).get("conventions") or []
        if conventions:
            blocks.append(("p", f"Evaluation of {dataset}: " + "; ".join(conventions) + "."))
    if figures:
        from alpose_bench.plot import overview_figures  # matplotlib only for the HTML report

        figs = overview_figures(rs)
    else:
        figs = {}
    if "curves" in figs:
        blocks.append(("figure", ("Metric vs labelled images", figs.pop("curves"))))
    for dataset in rs.datasets:
        metric = str(rs.cycles.loc[rs.cycles["dataset"] == dataset, "metric"].iloc[0])
        blocks.append(("h2", f"{dataset}: {style.metric_label(metric)}"))
        blocks.append(("table", dataset_table(rs, dataset)))
    for stem, title in (("gain", "Gain over random"), ("joints", "Per joint at the final budget")):
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
    """The report's numbers, unformatted, by file stem: per-budget curves, per-sampler AUBC/rank/test, timing."""
    shown = rs.cycles[rs.cycles["sampler"].isin(rs.samplers)]
    summary = sampler_summary(rs.cycles)
    return {
        "report-budgets": curve_data(shown),
        "report-samplers": summary[summary["sampler"].isin(rs.samplers)].reset_index(drop=True),
        "report-timing": timing_data(shown),
    }


def write_report(rs: ResultSet, fmt: str = "md", out: str | Path | None = None) -> list[Path]:
    """Write the report into folder `out` (default: the results folder) as report.md, report.html or three CSVs."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    folder = Path(out) if out is not None else rs.path
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        written = []
        for stem, frame in csv_frames(rs).items():
            frame.to_csv(folder / f"{stem}.csv", index=False)
            written.append(folder / f"{stem}.csv")
        return written
    if fmt == "md":
        path = folder / "report.md"
        path.write_text(to_markdown(build_document(rs)), encoding="utf-8")
    else:
        path = folder / "report.html"
        path.write_text(
            to_html(build_document(rs, figures=True), f"alpose-bench: {rs.name}"), encoding="utf-8"
        )
    return [path]
