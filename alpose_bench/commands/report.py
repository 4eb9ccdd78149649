"""`alpose-bench report RESULTS_DIR`: per-dataset tables (metric at every budget, AUBC, rank, paired test against
random), timing and provenance, as Markdown, one self-contained HTML page, or CSV."""

from __future__ import annotations

from pathlib import Path

import click

from alpose_bench.commands.options import metric_option, open_results, results_dir_argument, samplers_option


@click.command("report")
@results_dir_argument
@click.option("--format", "fmt", type=click.Choice(["md", "html", "csv"]), default="md", show_default=True)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Folder for report.md / report.html / report-*.csv [default: RESULTS_DIR].",
)  # fmt: skip
@metric_option
@samplers_option
def report(results_dir: Path, fmt: str, out: Path | None, metric: str | None, samplers: str | None) -> None:
    """Write the tables of an experiment folder written by `alpose-bench run`."""
    from alpose_bench.present.report import write_report

    rs = open_results(results_dir, metric, samplers)
    for path in write_report(rs, fmt, out):
        click.echo(str(path))
