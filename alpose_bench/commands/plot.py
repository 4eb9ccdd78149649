"""`alpose-bench plot RESULTS_DIR`: metric-vs-budget curves, gain over random, per-joint heatmap, timing, pose modes
and (with --show-selection) the images each sampler picked."""

from __future__ import annotations

from pathlib import Path

import click

from alpose_bench.commands.options import metric_option, open_results, results_dir_argument, samplers_option
from alpose_bench.errors import UserError


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
    import matplotlib

    matplotlib.use("Agg")  # the command only writes files: never open a window, work on headless machines
    from alpose_bench.present.plot import plot_results
    from alpose_bench.results.analysis import ResultsError

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
