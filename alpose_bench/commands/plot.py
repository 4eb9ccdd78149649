"""`alpose-bench plot RESULTS_DIR`: metric-vs-budget curves, gain over random, per-joint heatmap, timing, pose modes
and (with --show-selection) the images each sampler picked."""

from __future__ import annotations

from pathlib import Path

import click
import matplotlib

from alpose_bench.errors import UserError

matplotlib.use("Agg")  # the commands only write files: never open a window, work on headless machines

METRICS = ("pckh", "pck", "mpjpe")


def parse_samplers(value: str | None) -> list[str] | None:
    """ "vl4pose, mpe" -> ["vl4pose", "mpe"]; None, "" or "all" -> None (every sampler in the results)."""
    names = [s.strip() for s in (value or "").split(",") if s.strip()]
    return None if not names or names == ["all"] else names


def open_results(results_dir: Path, metric: str | None, samplers: str | None):
    """Load RESULTS_DIR and apply --metric / --samplers; anything wrong is a one-line error (exit 2)."""
    from alpose_bench.plot import ResultsError, load_result_set

    if metric is not None and metric.lower() not in METRICS:
        raise UserError(f"--metric {metric!r} is unknown; known metrics: {', '.join(METRICS)}")
    try:
        rs = load_result_set(results_dir)
        return rs.filtered(metric=metric and metric.lower()).filtered(samplers=parse_samplers(samplers))
    except ResultsError as exc:
        raise UserError(str(exc)) from None


# existence is checked by load_result_set, so that every bad RESULTS_DIR gives the same one-line error
results_dir_argument = click.argument("results_dir", type=click.Path(path_type=Path), metavar="RESULTS_DIR")
metric_option = click.option(
    "--metric", default=None, metavar="|".join(METRICS), help="Only the datasets scored with this metric."
)
samplers_option = click.option(
    "--samplers",
    default=None,
    metavar="A,B,...",
    help="Comma-separated samplers to show [default: all in the results].",
)


@click.command("plot")
@results_dir_argument
@metric_option
@samplers_option
@click.option("--format", "fmt", type=click.Choice(["png", "pdf", "svg"]), default="png", show_default=True)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Folder for the figures [default: RESULTS_DIR/figures].",
)  # fmt: skip
@click.option(
    "--show-selection", is_flag=True,
    help="Also draw a grid of the images each sampler picked, with the predicted skeleton (VL4Pose: and refined).",
)  # fmt: skip
@click.option("--seed", type=int, default=None, help="Seed for --show-selection [default: the lowest].")
@click.option(
    "--cycle", type=click.IntRange(min=0), default=0, show_default=True, help="Cycle for --show-selection."
)
@click.option(
    "--max-images", type=click.IntRange(1, 64), default=16, show_default=True, help="Images per grid."
)
def plot(
    results_dir: Path,
    metric: str | None,
    samplers: str | None,
    fmt: str,
    out: Path | None,
    show_selection: bool,
    seed: int | None,
    cycle: int,
    max_images: int,
) -> None:
    """Draw the figures of an experiment folder written by `alpose-bench run`."""
    from alpose_bench.plot import ResultsError, plot_results

    rs = open_results(results_dir, metric, samplers)
    out = out if out is not None else results_dir / "figures"
    try:
        result = plot_results(
            rs, out, fmt, show_selection=show_selection, seed=seed, cycle=cycle, max_images=max_images
        )
    except ResultsError as exc:
        raise UserError(str(exc)) from None
    for note in result.skipped:
        click.echo(f"skipped {note}", err=True)
    for path in result.written:
        click.echo(str(path))
    click.echo(f"wrote {len(result.written)} figure(s) to {out}", err=True)
