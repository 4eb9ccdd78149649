"""A run owns the worker processes it starts: they stop when it is gone, and a new run waits until they are.

A killed `alpose-bench run` (any signal, SIGKILL included) cannot tell its joblib workers to stop, and they are
re-parented and carry on training and committing — racing the rerun. So each worker is told who owns it
(`Owner`: pid, host and the kernel's start time of the run's process) and

- a watchdog thread in the worker ends the worker process (`os._exit`) within `WATCH_SECONDS` of the owner's death;
- right before every commit the worker checks its owner again (`check`), so no cycle is committed after the owner
  is known to be gone;
- while it runs a task it holds a shared lock on `<experiment>/.workers.lock`; a new run, once it holds the
  experiment lock, takes that lock exclusively (`wait_for_workers`), i.e. waits until the last worker of an
  earlier run is gone (the kernel releases a dead process's locks).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from alpose_bench.core.processes import process_alive, process_start

WATCH_SECONDS = 0.5
WORKERS_LOCK = ".workers.lock"
EXIT_OWNER_GONE = 75  # the worker's exit status when its run is gone (EX_TEMPFAIL: rerun to resume)


class RunGoneError(BaseException):
    """The run that started this worker is gone: stop without committing (not a task failure: the rerun resumes)."""


@dataclass(frozen=True)
class Owner:
    """The process that runs an experiment."""

    pid: int
    host: str
    started: str | None

    @classmethod
    def this_process(cls) -> Owner:
        pid = os.getpid()
        return cls(pid, platform.node(), process_start(pid))

    def gone(self) -> bool:
        """True once the owner's process has ended (never for an owner on another host)."""
        return process_alive(self.pid, self.host, self.started) is False

    def check(self) -> None:
        """RunGoneError when the owner is gone."""
        if self.gone():
            raise RunGoneError(f"the run (pid {self.pid}) that started this worker is gone")


_watched: set[Owner] = set()
_watch_lock = threading.Lock()


def watch(owner: Owner | None) -> None:
    """In a worker process: end this process soon after `owner` is gone (no-op in the owner's own process)."""
    if owner is None or owner.pid == os.getpid():
        return
    owner.check()
    with _watch_lock:
        if owner in _watched:
            return
        _watched.add(owner)

    def loop() -> None:
        while True:
            time.sleep(WATCH_SECONDS)
            if owner.gone():
                os._exit(EXIT_OWNER_GONE)

    threading.Thread(target=loop, name="alpose-owner-watch", daemon=True).start()


@contextlib.contextmanager
def worker_lock(out_dir: Path, owner: Owner | None) -> Iterator[None]:
    """Hold a shared lock on the experiment's workers lock while a worker process runs a task (no-op in the
    owner's own process, which waits on it instead)."""
    if owner is None or owner.pid == os.getpid():
        yield
        return
    path = Path(out_dir) / WORKERS_LOCK
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def wait_for_workers(out_dir: Path, timeout: float = 60.0) -> bool:
    """Wait (at most `timeout` s) until no worker of an earlier run holds the workers lock; True when none does."""
    path = Path(out_dir) / WORKERS_LOCK
    if not path.exists():
        return True
    deadline = time.monotonic() + timeout
    with open(path, "a+") as fh:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.1)
                continue
            fcntl.flock(fh, fcntl.LOCK_UN)
            return True
