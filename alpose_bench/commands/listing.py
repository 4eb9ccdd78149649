"""`alpose-bench list`: every sampler, dataset and preset, one line each."""

from __future__ import annotations

import click
from rich.table import Table

from alpose_bench import registry
from alpose_bench.commands.console import output_console
from alpose_bench.config import PRESET_DESCRIPTIONS


@click.command("list")
def list_command() -> None:
    """List the registered samplers, datasets and presets."""
    console = output_console()
    for title, plugins in (("Samplers", registry.samplers()), ("Datasets", registry.datasets())):
        table = Table(title=title, title_justify="left")
        table.add_column("name", style="bold")
        table.add_column("description")
        table.add_column("from", style="dim")
        for name, plugin in plugins.items():
            desc = plugin.description
            extra = ""
            if plugin.obj is not None and title == "Samplers":
                tasks = getattr(plugin.obj, "tasks", frozenset())
                if tasks == frozenset({"heatmap2d"}):
                    extra = " [dim](2D heatmaps only)[/dim]"
                if getattr(plugin.obj, "reference", False):
                    extra += " [yellow](reference: reads labels, never ranked)[/yellow]"
            style = "red" if plugin.obj is None else None
            table.add_row(name, desc + extra, plugin.distribution, style=style)
        console.print(table)
        if title == "Samplers":
            console.print(
                "Any scorer + a diversity step, by name: SCORER+kmeans (k-means on the embedding of the top m x budget) "
                "or SCORER+coreset (k-center greedy inside them), e.g. mpe+kmeans; parameters as the scorer's, plus m."
            )
    table = Table(title="Presets", title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("description")
    for name, desc in PRESET_DESCRIPTIONS.items():
        table.add_row(name, desc)
    console.print(table)
