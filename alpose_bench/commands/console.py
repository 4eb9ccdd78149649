"""The console every command prints to: rich in a terminal; in a log file or a pipe, as wide as its tables need."""

from __future__ import annotations

import sys

from rich.console import Console

#: columns of a console that is not a terminal: tables are printed at their full width, never cut at 80
WIDE = 1000


def output_console() -> Console:
    """A rich console on stdout; when stdout is not a terminal, tables and lines are never wrapped or cut."""
    return Console() if sys.stdout.isatty() else Console(width=WIDE, soft_wrap=True)
