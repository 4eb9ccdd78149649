"""How far an experiment is, read from outside the run: tasks, cycles, workers, time left.

`alpose-bench run` records who runs the experiment (`RunRecord`: pid, host, process start, jobs and the task list)
in the database; each task's process keeps an activity file (`alpose_bench.core.activity`). `experiment_status` reads
both through a read-only connection — safe while a run writes — and says for every dataset x sampler x seed how
many cycles are committed, what state the task is in, whether its worker is alive, seconds per cycle so far and the
time left. `estimate_left` is the one estimate of time left, used by the run's log lines and by `status`.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from alpose_bench.core.activity import SHARED_CYCLE0, Snapshot, read_all, task_label
from alpose_bench.core.processes import process_alive, process_start
from alpose_bench.results.store import Store, StoreError, check_database
from alpose_bench.spec.config import trained_cycles

#: task states, in the order `status` lists what needs attention
FAILED, KILLED, ORPHANED, INTERRUPTED, RUNNING, QUEUED, NOT_STARTED, DONE = (
    "failed", "killed", "orphaned", "interrupted", "running", "queued", "not started", "done",
)  # fmt: skip


@dataclass(frozen=True)
class RunRecord:
    """Who runs (or last ran) an experiment: written by `alpose-bench run` when it holds the experiment's lock."""

    pid: int
    host: str
    started: str | None  # `processes.process_start` of pid
    since: float  # seconds since the epoch
    jobs: int
    executor: str
    cycles: int  # cycles per task after cycle 0
    init: int
    budget: int
    tasks: list[tuple[str, str, int]] = field(default_factory=list)
    ended: float | None = None  # set when the run ends in any way its process sees (not a SIGKILL)

    @classmethod
    def of_this_process(
        cls, jobs: int, executor: str, cycles: int, init: int, budget: int, tasks: list[tuple[str, str, int]]
    ) -> RunRecord:
        """The record of the run in this process."""
        pid = os.getpid()
        return cls(
            pid=pid, host=platform.node(), started=process_start(pid), since=time.time(), jobs=jobs,
            executor=executor, cycles=cycles, init=init, budget=budget, tasks=[tuple(t) for t in tasks],  # type: ignore[misc]
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> RunRecord | None:
        """The record read back, or None when it is absent or not one (a database of an older version)."""
        if not isinstance(data, dict):
            return None
        try:
            fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
            fields["tasks"] = [(str(d), str(s), int(k)) for d, s, k in fields.get("tasks", [])]
            return cls(**fields)
        except (TypeError, ValueError):
            return None

    def alive(self) -> bool | None:
        """True while the run's process lives and the run has not ended; None when it runs on another host."""
        if self.ended is not None:
            return False
        return process_alive(self.pid, self.host, self.started)


@dataclass(frozen=True)
class CycleTime:
    """What one committed cycle cost (wall seconds), for estimates."""

    dataset: str
    sampler: str
    seed: int
    cycle: int
    n_labelled: int
    seconds: float  # train + evaluate + select
    train_eval_s: float
    metric: str = ""
    value: float = float("nan")
    row: int = 0  # its place in commit order


def cycle_times(conn: sqlite3.Connection, after: int = 0) -> list[CycleTime]:
    """The committed cycles (those committed after row `after`), in commit order, with their cost and metric."""
    rows = conn.execute(
        "SELECT dataset, sampler, seed, cycle, n_labelled, train_s, eval_s, COALESCE(select_s, 0), metric, value, "
        "rowid FROM cycles WHERE rowid > ? ORDER BY rowid",
        (after,),
    )
    return [
        CycleTime(
            d,
            s,
            int(k),
            int(c),
            int(n),
            float(t) + float(e) + float(sel),
            float(t) + float(e),
            m,
            float(v),
            r,
        )
        for d, s, k, c, n, t, e, sel, m, v, r in rows
    ]


def estimate_left(
    times: list[CycleTime], tasks: list[tuple[str, str, int]], cycles: int, init: int, budget: int, jobs: int
) -> float | None:
    """Wall seconds until every task has `cycles` + 1 cycles: the work left divided over `jobs` workers.

    A later cycle's cost is proportional to its labelled-set size (training dominates; the rate is fitted per
    dataset on the committed cycles after cycle 0); cycle 0 costs its selection, plus the shared training once per
    (dataset, seed) not trained yet. None until a dataset has a committed cycle to fit."""
    done: dict[tuple[str, str, int], set[int]] = {}
    rate: dict[str, list[float]] = {}
    first_train: dict[str, list[float]] = {}
    first_select: dict[str, list[float]] = {}
    trained0: set[tuple[str, int]] = set()
    for t in times:
        done.setdefault((t.dataset, t.sampler, t.seed), set()).add(t.cycle)
        if t.cycle == 0:
            trained0.add((t.dataset, t.seed))
            first_train.setdefault(t.dataset, []).append(t.train_eval_s)
            first_select.setdefault(t.dataset, []).append(t.seconds - t.train_eval_s)
        else:
            acc = rate.setdefault(t.dataset, [0.0, 0.0])
            acc[0] += t.seconds
            acc[1] += t.n_labelled

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    left, unfinished = 0.0, 0
    for dataset, sampler, seed in tasks:
        missing = [
            c for c in range(trained_cycles(cycles)) if c not in done.get((dataset, sampler, seed), set())
        ]
        if not missing:
            continue
        unfinished += 1
        for c in missing:
            if c == 0:
                if dataset not in first_train:
                    return None
                left += mean(first_select[dataset])
                if (dataset, seed) not in trained0:
                    left += mean(first_train[dataset])
                    trained0.add((dataset, seed))
            else:
                if dataset not in rate or rate[dataset][1] <= 0:
                    return None
                left += rate[dataset][0] / rate[dataset][1] * (init + c * budget)
    return left / max(1, min(jobs, unfinished)) if unfinished else 0.0


@dataclass
class TaskStatus:
    """One task as `status` sees it."""

    dataset: str
    sampler: str
    seed: int
    committed: int
    total: int
    state: str
    error: str | None = None
    worker: Snapshot | None = None
    worker_alive: bool | None = None
    seconds_per_cycle: float | None = None
    left_s: float | None = None  # this task's remaining cycles, on one worker

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.dataset, self.sampler, self.seed)


@dataclass
class ExperimentStatus:
    """The whole experiment as `status` sees it."""

    out_dir: Path
    run: RunRecord | None
    run_alive: bool | None
    tasks: list[TaskStatus]
    left_s: float | None
    shared: list[Snapshot]  # shared cycle-0 trainings in progress

    @property
    def failed(self) -> list[TaskStatus]:
        return [t for t in self.tasks if t.state == FAILED]

    @property
    def stalled(self) -> list[TaskStatus]:
        """Unfinished tasks that nothing is running: the run is gone (killed, or stopped)."""
        return [t for t in self.tasks if t.state in (KILLED, ORPHANED, INTERRUPTED, NOT_STARTED)]

    @property
    def finished(self) -> bool:
        return all(t.state == DONE for t in self.tasks)

    @property
    def exit_code(self) -> int:
        """0: all done, or running with nothing failed; 1: a task failed; 3: the run is gone and tasks are
        unfinished (rerun the same command to resume)."""
        if self.failed:
            return 1
        if self.stalled and self.run_alive is False:
            return 3
        return 0


def _reader(path: Path) -> sqlite3.Connection:
    """A read-only connection (it never creates, changes or checkpoints the database)."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)


def experiment_status(out_dir: Path) -> ExperimentStatus:
    """Read an experiment's state without changing anything (StoreError when there is none, or it is damaged)."""
    out_dir = Path(out_dir)
    path = out_dir / Store.FILENAME
    if not path.exists():
        raise StoreError(f"no results in {out_dir} (expected {path}); check the experiment folder")
    if check_database(path) == 0:
        raise StoreError(
            f"no results in {out_dir} yet (its database has no tables); run `alpose-bench run` first"
        )
    conn = _reader(path)
    try:
        meta = {k: v for k, v in conn.execute("SELECT key, value FROM experiment")}
        spec = _json(meta.get("spec")) or {}
        run = RunRecord.from_dict(_json(meta.get("run")))
        statuses = {
            (d, s, int(k)): (st, e, _epoch(u))
            for d, s, k, st, e, u in conn.execute(
                "SELECT dataset, sampler, seed, status, error, updated FROM runs"
            )
        }
        times = cycle_times(conn)
    finally:
        conn.close()
    cycles = run.cycles if run else int(spec.get("cycles", 0))
    keys = list(run.tasks) if run else []
    for key in sorted(set(statuses) | {(t.dataset, t.sampler, t.seed) for t in times}):
        if key not in keys:
            keys.append(key)
    run_alive = None if run is None else run.alive()
    workers: dict[str, Snapshot] = {}
    shared = []
    for snap in read_all(out_dir):
        if snap.task and snap.task.endswith(SHARED_CYCLE0):
            if process_alive(snap.pid, snap.host, snap.started) is not False:
                shared.append(snap)
        elif snap.task:
            workers[snap.task] = snap
    if run is None:  # a database of an older version, or tasks run from Python: only its workers can tell
        run_alive = (
            None
            if any(process_alive(w.pid, w.host, w.started) is not False for w in workers.values())
            else False
        )
    committed: dict[tuple[str, str, int], list[CycleTime]] = {}
    for t in times:
        committed.setdefault((t.dataset, t.sampler, t.seed), []).append(t)
    tasks = []
    for key in keys:
        dataset, sampler, seed = key
        mine = committed.get(key, [])
        status, error, updated = statuses.get(key, (None, None, None))
        if run is not None and run_alive and updated is not None and updated < run.since - 1:
            status, error = None, None  # what an earlier run recorded; this run will run the task again
        worker = workers.get(task_label(dataset, sampler, seed))
        alive = None if worker is None else process_alive(worker.pid, worker.host, worker.started)
        later = [t.seconds for t in mine if t.cycle > 0]
        task = TaskStatus(
            dataset, sampler, seed, committed=len(mine), total=trained_cycles(cycles), state="", error=error,
            worker=worker, worker_alive=alive, seconds_per_cycle=sum(later) / len(later) if later else None,
        )  # fmt: skip
        task.state = _state(task, status, run_alive)
        tasks.append(task)
    left = None
    if run is not None:
        for t in tasks:
            if t.state != DONE:
                t.left_s = estimate_left(times, [t.key], cycles, run.init, run.budget, 1)
        left = estimate_left(
            times, [t.key for t in tasks], cycles, run.init, run.budget, run.jobs if run_alive else 1
        )
    return ExperimentStatus(out_dir, run, run_alive, tasks, left, shared)


def _state(task: TaskStatus, status: str | None, run_alive: bool | None) -> str:
    if task.committed >= task.total:
        return DONE
    if status == FAILED:
        return FAILED
    worker_runs = task.worker is not None and task.worker_alive is not False
    if run_alive is False:
        if worker_runs:
            return ORPHANED  # its run was killed, but the worker process goes on
        if status == "interrupted":
            return INTERRUPTED
        return KILLED if status == "running" else NOT_STARTED
    if worker_runs:
        return RUNNING
    if status == "interrupted" and run_alive is None:
        return INTERRUPTED
    return QUEUED


def _epoch(sqlite_utc: str | None) -> float | None:
    """Seconds since the epoch of an SQLite `datetime('now')` (UTC) string."""
    from datetime import datetime, timezone

    try:
        return (
            datetime.strptime(str(sqlite_utc), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
        )
    except ValueError:
        return None


def _json(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None
