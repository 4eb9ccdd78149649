"""Command-line options shared by several commands, each declared once.

- `run` and `diagnose` build an experiment spec: `spec_options` declares their options and `spec_from_options`
  turns the values into a validated `ExperimentSpec` (preset, then `--config`, then options).
- `plot` and `report` read a results folder: `results_dir_argument`, `metric_option`, `samplers_option` and
  `open_results` (which imports no plotting library, so `report` never starts matplotlib).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from alpose_bench.errors import UserError
from alpose_bench.pose.metrics import METRICS
from alpose_bench.spec.config import (
    DROPOUT_KINDS,
    MODEL_FAMILIES,
    ExperimentSpec,
    build_spec,
    parse_dataset_options,
    parse_sampler_params,
    preset_help,
)

F = TypeVar("F", bound=Callable[..., Any])


def spec_options(*, several_datasets: bool) -> Callable[[F], F]:
    """Add --samplers, --dataset, --preset, --resolution, --model, --backbone-weights, --dropout, --dropout-kind, --pool-size, --device, --data-root, --sampler-param,
    --dataset-option and --config. `several_datasets`: --dataset takes a comma-separated list (parameter
    `datasets`) rather than one name (parameter `dataset`)."""
    if several_datasets:
        dataset = click.option(
            "--dataset",
            "datasets",
            default=None,
            help="Dataset name(s), comma-separated (default: synth-human).",
        )
    else:
        dataset = click.option("--dataset", default=None, help="One dataset name (default: synth-human).")
    options = [
        click.option(
            "--samplers",
            default=None,
            help="Comma-separated sampler names (or SCORER+kmeans, SCORER+coreset), 'default' (random, vl4pose, "
            "mpe, typiclust and the two references; used when omitted) or 'all'.",
        ),
        dataset,
        click.option("--preset", default=None, help=preset_help()),
        click.option("--resolution", type=int, default=None, help="Input size in pixels."),
        click.option(
            "--model",
            type=click.Choice(MODEL_FAMILIES),
            default=None,
            help="2D pose model: the from-scratch stacked hourglass (the published protocol; default) or a heatmap "
            "head on an ImageNet-pretrained backbone (mobilenet-v2, efficientnet-lite0).",
        ),
        click.option(
            "--backbone-weights",
            type=click.Choice(["imagenet", "random"]),
            default=None,
            help="Pretrained models: start the backbone from ImageNet weights (default; installed by the README's "
            "set-up) or random ones.",
        ),
        click.option(
            "--dropout",
            type=float,
            default=None,
            help="Dropout before the heatmap head (default 0; mc-dropout and mcd-cke need > 0).",
        ),
        click.option(
            "--dropout-kind",
            type=click.Choice(DROPOUT_KINDS),
            default=None,
            help="What dropout drops: single units (element; default) or whole feature maps (channel; the "
            "pretrained preset's).",
        ),
        click.option(
            "--pool-size", type=int, default=None, help="Synthetic datasets: images in the training pool."
        ),
        click.option("--device", default=None, help="auto | cpu | cuda | cuda:N."),
        click.option(
            "--data-root", default=None, help="Folder holding the real datasets (or set ALPOSE_DATA_ROOT)."
        ),
        click.option(
            "--sampler-param",
            "sampler_params",
            multiple=True,
            help='SAMPLER.PARAM=VALUE, e.g. vl4pose.num_peaks=3 (values as in TOML: 1_000, 2.5, true, "text"; '
            "other text is a string).",
        ),
        click.option(
            "--dataset-option",
            "dataset_options",
            multiple=True,
            metavar="[DATASET.]KEY=VALUE",
            help="A dataset option (repeatable), e.g. ood_size=100; DATASET. sets it for one of several datasets. "
            "Values as --sampler-param's.",
        ),
        click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False),
            default=None,
            help="TOML experiment file.",
        ),
    ]

    def decorate(f: F) -> F:
        for option in reversed(options):  # click lists options in decoration order, top first
            f = option(f)
        return f

    return decorate


def spec_from_options(
    preset: str | None,
    config_file: str | Path | None,
    sampler_params: tuple[str, ...],
    dataset_options: tuple[str, ...],
    **overrides: Any,
) -> ExperimentSpec:
    """The spec the options ask for: preset, then the --config file, then the options given (None: not given)."""
    overrides.update(
        preset=preset,
        sampler_params=parse_sampler_params(sampler_params) or None,
        dataset_options=parse_dataset_options(dataset_options) or None,
    )
    return build_spec(preset or "quick", config_file, overrides)


# -- commands that read a results folder ---------------------------------------------------------------


def parse_samplers(value: str | None) -> list[str] | None:
    """ "vl4pose, mpe" -> ["vl4pose", "mpe"]; None, "" or "all" -> None (every sampler in the results)."""
    names = [s.strip() for s in (value or "").split(",") if s.strip()]
    return None if not names or names == ["all"] else names


def open_results(results_dir: Path, metric: str | None, samplers: str | None):
    """Load RESULTS_DIR and apply --metric / --samplers; anything wrong is a one-line error (exit 2)."""
    from alpose_bench.results.analysis import ResultsError, load_result_set

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
