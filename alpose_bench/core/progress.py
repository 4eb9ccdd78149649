"""What an experiment reports while it runs; `Progress` itself reports nothing (the library default).

The executors call these hooks unconditionally; `alpose-bench run` passes a rich display that overrides them.
"""

from __future__ import annotations

from typing import Any


class Progress:
    """No-op progress hooks of a run; subclass and override what you want to show."""

    def start(self, plan: Any, need_cycle0: list[tuple[str, int]]) -> None:
        """The run begins: `plan` (its pending tasks) and the shared cycle-0 trainings it needs."""

    def cycle0_done(self, dataset: str, seed: int) -> None:
        """The shared cycle 0 of (dataset, seed) is trained."""

    def task_started(self, task: Any) -> None:
        """A task starts in this process (executors with workers do not report this)."""

    def cycle_done(self, task: Any, cycle: int) -> None:
        """A cycle of `task` is committed."""

    def task_done(self, task: Any, error: str | None) -> None:
        """A task ended; `error` says why it failed (None: it finished)."""

    def finish(self, seconds: float) -> None:
        """The run ended after `seconds`."""
