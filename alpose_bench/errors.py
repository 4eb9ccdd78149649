"""User-facing errors: every one of these is printed as one line (exit status 2), never as a traceback."""

from __future__ import annotations

import click


class UserError(click.ClickException):
    """A mistake in what the user asked for; click prints `Error: <message>` and exits with status 2."""

    exit_code = 2


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exception types raised for bad input or an unusable environment (turned into UserError by the CLI): every
    `UserFacingError` (`alpose_bench.core.failures`)."""
    from alpose_bench.core.failures import UserFacingError

    return (UserFacingError,)
