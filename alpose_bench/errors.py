"""User-facing errors: every one of these is printed as one line (exit status 2), never as a traceback."""

from __future__ import annotations

import click


class UserError(click.ClickException):
    """A mistake in what the user asked for; click prints `Error: <message>` and exits with status 2."""

    exit_code = 2


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exception types raised by the library for bad input (turned into UserError by the CLI)."""
    from alpose_bench.analysis import ResultsError
    from alpose_bench.atomic import DiskFullError
    from alpose_bench.config import ConfigError
    from alpose_bench.data import DatasetError
    from alpose_bench.registry import PluginLoadError, UnknownNameError
    from alpose_bench.runner import ExperimentLockedError
    from alpose_bench.store import StoreError

    return (
        ConfigError,
        DatasetError,
        UnknownNameError,
        PluginLoadError,
        StoreError,
        ExperimentLockedError,
        ResultsError,
        DiskFullError,
    )
