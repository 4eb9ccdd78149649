"""`alpose-bench data check|prepare NAME`: is a dataset where it should be and usable; build its cache once.

`check` parses the annotations and looks for every image without decoding anything and prints a table of what is
present, missing or malformed (exit 0 when usable, 2 with the one-line reason otherwise). `prepare` builds the
preprocessed cache with a progress bar, so that experiments never decode images. Both accept `--option KEY=VALUE`
for the dataset's options (DatasetConfig.options), e.g. `--option all_joints=false`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from alpose_bench.commands.console import output_console
from alpose_bench.errors import UserError
from alpose_bench.pose.data import DatasetConfig, DatasetError, DatasetPlugin, parse_option_pairs
from alpose_bench.spec import registry

_STATUS_STYLE = {"ok": "green", "info": "cyan"}


def _plugin(name: str) -> DatasetPlugin:
    try:
        return registry.get_dataset(name)()
    except (registry.UnknownNameError, registry.PluginLoadError) as exc:
        raise UserError(str(exc).splitlines()[0]) from None


def _config(
    data_root: Path | None, cache_dir: Path | None, options: tuple[str, ...], **kwargs: Any
) -> DatasetConfig:
    return DatasetConfig(
        data_root=data_root, cache_dir=cache_dir, options=parse_option_pairs(options), **kwargs
    )


_root_option = click.option(
    "--data-root",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder holding the dataset (default: $ALPOSE_DATA_ROOT; see docs/datasets.md for each layout).",
)
_option_option = click.option(
    "--option", "options", multiple=True, metavar="KEY=VALUE", help="A dataset option (repeatable)."
)


@click.group("data")
def data() -> None:
    """Check and prepare the real datasets (MPII, LSP, LSPET, ICVL, COCO-format, rendered LSP poses)."""


@data.command("check")
@click.argument("name")
@_root_option
@_option_option
def check(name: str, data_root: Path | None, options: tuple[str, ...]) -> None:
    """Report what is present, missing or malformed for dataset NAME (exit 2 when it is not usable)."""
    plugin = _plugin(name)
    config = _config(data_root, None, options)
    started = time.perf_counter()
    try:
        report = plugin.check(config)
    except DatasetError as exc:
        raise UserError(str(exc).splitlines()[0]) from None
    table = Table(title=f"data check: {name}", title_justify="left")
    table.add_column("item", style="bold")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    for item, status, detail in report.rows:
        style = _STATUS_STYLE.get(status, "red")
        table.add_row(item, f"[{style}]{status}[/{style}]", detail)
    console = output_console()
    console.print(table)
    if not report.usable:
        raise UserError(report.reason.splitlines()[0])
    console.print(f"[green]{name} is usable[/green] (checked in {time.perf_counter() - started:.1f} s)")


class LogLines:
    """`progress(done, total)` for a log file: a timestamped line at most every `LOG_SECONDS`, and at the end."""

    LOG_SECONDS = 10.0

    def __init__(self, what: str) -> None:
        self.what, self.last, self.started = what, float("-inf"), time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if now - self.last < self.LOG_SECONDS and done < total:
            return
        self.last = now
        rate = done / max(now - self.started, 1e-9)
        left = f", ~{(total - done) / rate:.0f} s left" if rate > 0 and done < total else ""
        click.echo(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {self.what}: {done:,}/{total:,} images{left}")


@data.command("prepare")
@click.argument("name")
@_root_option
@_option_option
@click.option(
    "--resolution", type=click.IntRange(min=8), default=64, show_default=True, help="Crop size in px."
)
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Cache folder (default: $ALPOSE_CACHE or ~/.cache/alpose-bench).",
)
@click.option("--force", is_flag=True, help="Rebuild the cache even if it exists.")
def prepare(
    name: str,
    data_root: Path | None,
    options: tuple[str, ...],
    resolution: int,
    cache_dir: Path | None,
    force: bool,
) -> None:
    """Preprocess dataset NAME once into the cache (crops at --resolution), with a progress bar."""
    plugin = _plugin(name)
    config = _config(data_root, cache_dir, options, resolution=resolution)
    console = output_console()
    started = time.perf_counter()
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    try:
        if console.is_terminal:
            with Progress(*columns, console=console) as progress:
                task = progress.add_task(f"preparing {name}", total=None)

                def report(done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total)

                dataset = plugin.prepare(config, progress=report, force=force)
        else:  # a log: a line at most every LOG_SECONDS (and the last one), never a bar drawn at the end only
            dataset = plugin.prepare(config, progress=LogLines(f"preparing {name}"), force=force)
    except DatasetError as exc:
        raise UserError(str(exc).splitlines()[0]) from None
    table = Table(title=f"prepared: {name}", title_justify="left")
    table.add_column("item", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("task / metric", f"{dataset.task} / {dataset.metric}")
    table.add_row("pool", f"{len(dataset.train):,}")
    table.add_row("test", f"{len(dataset.test):,}")
    if dataset.initial_index is not None:
        table.add_row("fixed initial set", f"{len(dataset.initial_index):,}")
    table.add_row("images", f"{dataset.resolution} x {dataset.resolution} x {dataset.channels} uint8")
    if "cache_file" in dataset.info:
        table.add_row("cache", str(dataset.info["cache_file"]))
    table.add_row("seconds", f"{time.perf_counter() - started:.2f}")
    console.print(table)


@data.command("example-project")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--labelled", type=click.IntRange(1), default=300, show_default=True, help="Labelled frames.")
@click.option(
    "--candidates", type=click.IntRange(1), default=2000, show_default=True, help="Candidate frames."
)
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="Which LSPET images.")
@click.option(
    "--data-root",
    type=click.Path(path_type=Path),
    default=None,
    help="The folder holding lspet/ (default: ALPOSE_DATA_ROOT or the shared data folder).",
)
def example_project(out: Path, labelled: int, candidates: int, seed: int, data_root: Path | None) -> None:
    """Write a labelling project made of LSPET photographs to OUT, as COCO, DeepLabCut and SLEAP, with the
    candidates' labels kept aside in OUT/truth.json (try `alpose-bench suggest OUT/coco/project.json --truth
    OUT/truth.json`)."""
    from alpose_bench.suggest.example_project import write_example_project

    paths = write_example_project(
        out, labelled=labelled, candidates=candidates, seed=seed, data_root=data_root
    )
    console = output_console()
    for fmt, path in paths.items():
        console.print(f"{fmt}: {path}")
    console.print(f"hidden labels: {out / 'truth.json'}")
