"""What this process is doing now — a phase with a counter — for logs and `alpose-bench status`.

Long phases (preparing a dataset, training epochs, a pass over the pool) report `phase(...)` and `advance()`; they
cost a few attribute writes. While a task runs, its process also keeps `<experiment>/.activity/<task>.json` up to
date (at most every `WRITE_INTERVAL` seconds, and at each phase change), so another process — the run's own log
heartbeat, or `alpose-bench status` from another shell — can say which worker runs which task, in which phase, how
far along, and whether that worker is still alive (`processes.process_alive`: pid plus the kernel's start time, so a
recycled pid is not mistaken for the worker). The file is removed when the task ends; one left behind by a dead process is
what a killed worker looks like.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from alpose_bench.core.atomic import write_atomic
from alpose_bench.core.processes import process_start

FOLDER = ".activity"
SHARED_CYCLE0 = "(shared cycle 0)"  # how the label of a shared cycle-0 training ends


def task_label(dataset: str, sampler: str, seed: int) -> str:
    """How a task is named in activity files, logs and `status` (`build.Task` prints itself so)."""
    return f"{dataset}/{sampler}/seed{seed}"


def shared_cycle0_label(dataset: str, seed: int) -> str:
    """How the shared cycle-0 training of (dataset, seed) is named."""
    return f"{dataset}/seed{seed} {SHARED_CYCLE0}"


WRITE_INTERVAL = 2.0  # seconds between two writes of the activity file within one phase


@dataclass
class Snapshot:
    """One process's activity: who, which task, which phase, how far, since when (seconds since the epoch)."""

    pid: int
    host: str
    started: str | None  # `process_start` of pid
    task: str | None = None  # `task_label`, or `shared_cycle0_label`
    cycle: int | None = None
    phase: str | None = None  # "training", "evaluating", "selecting", "preparing dataset NAME", ...
    done: int = 0
    total: int | None = None
    unit: str = ""
    task_since: float | None = None
    phase_since: float | None = None
    updated: float = field(default_factory=time.time)

    def describe(self, now: float | None = None) -> str:
        """One line: task, cycle, phase with its counter and how long it has run."""
        return f"{self.task or 'run'}{' ' if self.cycle is not None else ': ' if self.phase else ''}{self.doing(now)}"

    def doing(self, now: float | None = None) -> str:
        """The cycle and phase, with the phase's counter and how long it has run."""
        now = time.time() if now is None else now
        where = "" if self.cycle is None else f"cycle {self.cycle}"
        if self.phase is None:
            return where
        if where:
            where += ": "
        counter = ""
        if self.total:
            counter = f" {self.done:,}/{self.total:,}{' ' + self.unit if self.unit else ''}"
        since = "" if self.phase_since is None else f" ({now - self.phase_since:.0f} s)"
        return f"{where}{self.phase}{counter}{since}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Snapshot:
        """A snapshot read back from its file (unknown keys, from a newer version, are ignored)."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


class Activity:
    """The activity of this process (one instance, `ACTIVITY`); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._file: Path | None = None
        self._last_write = 0.0
        self._state = Snapshot(pid=os.getpid(), host=platform.node(), started=process_start(os.getpid()))

    def snapshot(self) -> Snapshot:
        """A copy of the current state."""
        with self._lock:
            return Snapshot(**asdict(self._state))

    @contextlib.contextmanager
    def task(self, label: str, directory: Path | None = None, file_key: str | None = None) -> Iterator[None]:
        """Within the block this process works on task `label`; with `directory`, its activity file is
        `directory/.activity/<file_key>.json`, removed at the end of the block."""
        with self._lock:
            previous, previous_file = self._state, self._file
            pid = os.getpid()  # a forked worker is not the process that imported this module
            self._state = Snapshot(
                pid=pid, host=platform.node(), started=process_start(pid), task=label, task_since=time.time()
            )
            self._file = None if directory is None else Path(directory) / FOLDER / f"{file_key or label}.json"
        self._write(force=True)
        try:
            yield
        finally:
            with self._lock:
                path, self._file, self._state = self._file, previous_file, previous
            if path is not None:
                with contextlib.suppress(OSError):
                    path.unlink()
                with contextlib.suppress(OSError):  # the last task of the experiment leaves no empty folder
                    path.parent.rmdir()

    def cycle(self, cycle: int) -> None:
        """The task moved on to `cycle`."""
        with self._lock:
            self._state.cycle = cycle
        self._write(force=True)

    @contextlib.contextmanager
    def phase(self, name: str, total: int | None = None, unit: str = "") -> Iterator[None]:
        """Within the block this process is in phase `name` (counting `advance` up to `total` `unit`s); the outer
        phase is restored afterwards."""
        with self._lock:
            saved = (
                self._state.phase,
                self._state.done,
                self._state.total,
                self._state.unit,
                self._state.phase_since,
            )
            s = self._state
            s.phase, s.done, s.total, s.unit, s.phase_since = name, 0, total, unit, time.time()
        self._write(force=True)
        try:
            yield
        finally:
            with self._lock:
                s = self._state
                s.phase, s.done, s.total, s.unit, s.phase_since = saved
            self._write(force=True)

    def advance(self, n: int = 1, total: int | None = None) -> None:
        """`n` more units of the current phase are done (and, optionally, the total became known)."""
        with self._lock:
            self._state.done += n
            if total is not None:
                self._state.total = total
        self._write()

    def progress(self, done: int, total: int) -> None:
        """`done` of `total` units of the current phase are done (the `ProgressFn` of dataset builders)."""
        with self._lock:
            self._state.done, self._state.total = done, total
        self._write()

    def _write(self, force: bool = False) -> None:
        path = self._file
        if path is None:
            return
        now = time.time()
        if not force and now - self._last_write < WRITE_INTERVAL:
            return
        with self._lock:
            self._state.updated = now
            blob = json.dumps(asdict(self._state)).encode()
        self._last_write = now
        with contextlib.suppress(OSError):  # the activity file is a courtesy: a full disk must not end a task
            write_atomic(path, blob)


ACTIVITY = Activity()


def phase(name: str, total: int | None = None, unit: str = "") -> contextlib.AbstractContextManager[None]:
    """`ACTIVITY.phase`: report a long phase of this process."""
    return ACTIVITY.phase(name, total, unit)


def advance(n: int = 1, total: int | None = None) -> None:
    """`ACTIVITY.advance`: `n` more units of the current phase are done."""
    ACTIVITY.advance(n, total)


def read_all(out_dir: Path) -> list[Snapshot]:
    """The activity files of an experiment (unreadable or half-understood files are skipped)."""
    folder = Path(out_dir) / FOLDER
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            found.append(Snapshot.from_dict(json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue
    return found
