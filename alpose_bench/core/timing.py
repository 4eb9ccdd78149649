"""Wall and CPU time of a phase (train, evaluate, select), measured together.

Wall seconds depend on what else the machine runs: two tasks sharing two cores, or another user's process, make the
same work take twice as long. CPU seconds of the process doing the work (`time.process_time`, every thread of the
process: each task runs in a process of its own, or alone in this one) do not, so samplers are compared on CPU
seconds, with wall seconds beside them; `load_factor` = wall / CPU says how much the machine's load stretched a
phase (about 1 when the task had its core to itself, on the CPU).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Timing:
    """Seconds one phase took: wall clock and CPU time of this process."""

    wall_s: float = 0.0
    cpu_s: float = 0.0

    @property
    def load_factor(self) -> float:
        """wall / CPU seconds (NaN when no CPU time was used)."""
        return self.wall_s / self.cpu_s if self.cpu_s > 0 else float("nan")


@contextmanager
def timed() -> Iterator[Timing]:
    """`with timed() as t: ...` fills t.wall_s and t.cpu_s when the block ends (also when it raises)."""
    t = Timing()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield t
    finally:
        t.wall_s = time.perf_counter() - wall
        t.cpu_s = time.process_time() - cpu
