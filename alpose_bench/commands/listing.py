"""`alpose-bench list`: every sampler, dataset and preset, one line each."""

from __future__ import annotations

import click
from rich.table import Table

from alpose_bench.commands.console import output_console
from alpose_bench.spec import registry
from alpose_bench.spec.config import PRESETS

COMPOSITES = (
    "Any scorer + a diversity step, by name: SCORER+kmeans (k-means on the embedding of the top m x budget) "
    "or SCORER+coreset (k-center greedy inside them), e.g. mpe+kmeans; parameters as the scorer's, plus m."
)
TASK_NAMES = {"heatmap2d": "2D", "regression3d": "3D"}


def samplers_markdown() -> str:
    """The samplers table of the README, from the sampler classes themselves (name, description, what they read,
    which tasks), in reading order: `alpose-bench list --markdown` prints it and a test holds the README to it."""
    rows = ["| name | method | reads | tasks |", "|---|---|---|---|"]
    plugins = registry.samplers()
    for name in registry.group_members("all"):
        if plugins[name].distribution != "alpose-bench":
            continue  # the README lists what ships; `list` shows installed plugins too
        cls = plugins[name].obj
        method = " ".join(str(cls.description).split())
        reads = ", ".join(sorted(n for n in cls.needs if n != "labels")) or "—"
        if "labels" in cls.needs:
            reads = "labels" if reads == "—" else f"{reads}, labels"
        tasks = ", ".join(TASK_NAMES.get(t, t) for t in sorted(cls.tasks))
        rows.append(f"| `{name}` | {method} | {reads} | {tasks} |")
    rows.append(
        f"| `SCORER+kmeans`, `SCORER+coreset` | {COMPOSITES} | the scorer's + embedding | the scorer's |"
    )
    return "\n".join(rows)


@click.command("list")
@click.option("--markdown", is_flag=True, help="Print the samplers as the README's Markdown table.")
def list_command(markdown: bool) -> None:
    """List the registered samplers, datasets, stream budget managers and presets."""
    if markdown:
        click.echo(samplers_markdown())
        return
    console = output_console()
    for title, plugins in (("Samplers", registry.samplers()), ("Datasets", registry.datasets()),
                           ("Stream budget managers (--budget-manager)", registry.budget_managers())):  # fmt: skip
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
                if not plugin.obj.decides_per_frame():
                    extra += " [dim](stream: buffered)[/dim]"
            style = "red" if plugin.obj is None else None
            table.add_row(name, desc + extra, plugin.distribution, style=style)
        console.print(table)
        if title == "Samplers":
            console.print(COMPOSITES)
    table = Table(title="Presets", title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("description")
    for preset in PRESETS.values():
        table.add_row(preset.name, preset.description)
    console.print(table)
