"""`alpose-bench diagnose`: do the samplers' scores find the images the model gets wrong? OOD AUROC, refinement."""

from __future__ import annotations

import click
from rich.table import Table

from alpose_bench.commands.console import output_console
from alpose_bench.commands.options import spec_from_options, spec_options
from alpose_bench.errors import UserError
from alpose_bench.pose.metrics import metric_info
from alpose_bench.tools.diagnose import DiagnoseReport
from alpose_bench.tools.diagnose import diagnose as run_diagnosis


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "n/a" if value is None else format(value, fmt)


def _p(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1e}" if value < 1e-3 else f"{value:.3f}"


def report_table(report: DiagnoseReport) -> Table:
    """The per-sampler table of a report."""
    unit = metric_info(report.metric).unit
    table = Table(
        title=(
            f"diagnose {report.dataset} (seed {report.seed}): model trained on {report.n_labelled} images; "
            f"{report.metric} {report.test_metric:.2f} {unit} on test, {report.pool_metric:.2f} {unit} on the "
            f"pool of {report.pool_size}; top k = {report.k}"
        ),
        title_justify="left",
    )
    for col in ("sampler", "Spearman ρ", "p-value", "precision@k", "chance", "OOD AUROC", "score s"):
        table.add_column(col, justify="left" if col == "sampler" else "right", no_wrap=True)
    table.add_column("note", overflow="fold")
    for r in report.rows:
        table.add_row(
            r.sampler,
            _num(r.spearman),
            _p(r.p_value),
            _num(r.precision_at_k),
            f"{report.chance:.3f}",
            _num(r.ood_auroc) if report.ood_size else "no ood split",
            f"{r.seconds:.2f}",
            r.note,
            style="dim" if r.kind != "score" else None,
        )
    return table


def refinement_line(report: DiagnoseReport) -> str | None:
    """One line on VL4Pose's pose refinement, or None when it was not measured."""
    r = report.refinement
    if r is None:
        return None
    unit = metric_info(r.metric).unit
    return (
        f"{r.sampler} refinement (num_peaks={r.num_peaks}) on the pool: {r.metric} plain {r.plain:.2f} {unit} -> "
        f"refined {r.refined:.2f} {unit} (refined only where a joint moved: {r.refined_moved_only:.2f} {unit}); "
        f"{100 * r.poses_changed:.1f}% of poses and {100 * r.joints_changed:.1f}% of joints changed"
    )


@click.command()
@spec_options(several_datasets=False)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the initial labelled set and model."
)
@click.option(
    "--top-k-fraction",
    type=float,
    default=0.1,
    show_default=True,
    help="k of precision@k as a fraction of the pool.",
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write all numbers here."
)
@click.option("--init", type=int, default=None, help="Labelled images the model is trained on.")
@click.option(
    "--epochs-first", type=int, default=None, help="Training epochs (those of a run's first cycle)."
)
@click.option("--test-size", type=int, default=None, help="Synthetic datasets: images in the test split.")
def diagnose(samplers, dataset, preset, resolution, model, backbone_weights, dropout, dropout_kind, pool_size, device, data_root, sampler_params, dataset_options,
             config_file, seed, top_k_fraction, json_path, init, epochs_first, test_size) -> None:  # fmt: skip
    """Check that samplers do what they claim, on a model trained once on the initial labelled set.

    For each sampler: Spearman correlation of its scores with the model's real per-image error on the unlabelled
    pool, precision@k at finding the k worst images (chance = k / pool), and, when the dataset has an ood split,
    the AUROC of telling OOD from test images by the score. With vl4pose: its pose refinement's effect on the
    pool metric.
    """
    if dataset and "," in dataset:
        raise UserError(f"diagnose takes one dataset, got {dataset!r}; pass a single --dataset")
    spec = spec_from_options(
        preset, config_file, sampler_params, dataset_options,
        samplers=samplers, datasets=dataset, init=init, epochs_first=epochs_first, resolution=resolution,
        pool_size=pool_size, test_size=test_size, device=device, data_root=data_root, seeds=1, dropout=dropout,
        dropout_kind=dropout_kind, model=model, backbone_weights=backbone_weights,
    )  # fmt: skip
    console = output_console()
    with console.status("diagnosing") as status:
        report = run_diagnosis(
            spec, None, seed=seed, top_k_fraction=top_k_fraction, progress=lambda msg: status.update(msg)
        )
    console.print(report_table(report))
    console.print(
        f"chance level of precision@k = k / pool = {report.k}/{report.pool_size} = {report.chance:.3f}; "
        f"mean pool error {report.mean_pool_error:.3f} {report.error_unit}; trained in {report.train_seconds:.1f} s"
    )
    line = refinement_line(report)
    if line:
        console.print(line)
    for name, why in report.skipped.items():
        console.print(f"[dim]skipped {name}: {why}[/dim]")
    if json_path:
        console.print(f"numbers written to {report.write_json(json_path)}")
