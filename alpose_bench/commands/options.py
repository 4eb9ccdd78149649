"""Command-line options shared by the commands that build an experiment spec (`run`, `diagnose`).

Each option is declared once here, and `spec_from_options` turns their values into a validated `ExperimentSpec`
(preset, then `--config`, then options), so both commands read and check them the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from alpose_bench.config import ExperimentSpec, build_spec, parse_dataset_options, parse_sampler_params

F = TypeVar("F", bound=Callable[..., Any])


def spec_options(*, several_datasets: bool) -> Callable[[F], F]:
    """Add --samplers, --dataset, --preset, --resolution, --pool-size, --device, --data-root, --sampler-param,
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
            "--samplers", default=None, help="Comma-separated sampler names, or 'all' (default: all)."
        ),
        dataset,
        click.option("--preset", default=None, help="smoke | quick | paper (default: quick)."),
        click.option("--resolution", type=int, default=None, help="Input size in pixels."),
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
            help="SAMPLER.PARAM=VALUE, e.g. vl4pose.num_peaks=3.",
        ),
        click.option(
            "--dataset-option",
            "dataset_options",
            multiple=True,
            metavar="[DATASET.]KEY=VALUE",
            help="A dataset option (repeatable), e.g. ood_size=100; DATASET. sets it for one of several datasets.",
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
