"""The `alpose-bench` command line: a thin Click group; each sub-command lives in alpose_bench/commands/."""

from __future__ import annotations

import importlib

import click

from alpose_bench import __version__
from alpose_bench.errors import UserError, user_error_types

# sub-command name -> "module:attribute" (imported lazily so `alpose-bench --help` stays fast)
COMMANDS = {
    "run": "alpose_bench.commands.run:run",
    "list": "alpose_bench.commands.listing:list_command",
    "data": "alpose_bench.commands.data:data",
    "plot": "alpose_bench.commands.plot:plot",
    "report": "alpose_bench.commands.report:report",
    "diagnose": "alpose_bench.commands.diagnose:diagnose",
    "bench": "alpose_bench.commands.bench:bench",
    "status": "alpose_bench.commands.status:status",
    "suggest": "alpose_bench.commands.suggest:suggest",
    "compare": "alpose_bench.commands.compare:compare",
}


class LazyGroup(click.Group):
    """Loads sub-commands on first use and turns library errors about bad input into one-line messages."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in COMMANDS if self._load(n) is not None)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._load(name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:
            if exc.name == module:  # the command is not part of this installation
                return None
            raise

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except user_error_types() as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            raise UserError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="alpose-bench")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Benchmark active-learning samplers for pose estimation."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main() -> None:
    cli(obj={})


if __name__ == "__main__":
    main()
