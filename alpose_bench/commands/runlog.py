"""Progress of `alpose-bench run` as lines a log file can hold: one plain (or JSON) line per event that matters.

Used when the output is not a terminal (a batch job, `> run.log`), or when asked with `--log-format plain|json`.
Events: the run starts (tasks, cycles, workers), a shared cycle 0 is trained, a cycle is committed (metric, timings,
cycles done of all, time left), a task is done or failed, the run ends. Committed cycles are read from the results
database (read-only), so cycles that worker processes commit are logged as they land whatever the executor. A
heartbeat line — what every worker is doing, from its activity file, and what this process does (preparing a
dataset) — follows whenever `heartbeat` seconds pass without a line, so silence in the log means a hang.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from alpose_bench.core.activity import ACTIVITY, read_all, task_label
from alpose_bench.core.progress import Progress
from alpose_bench.experiment.monitor import cycle_times, estimate_left
from alpose_bench.pose.metrics import metric_info
from alpose_bench.results.store import Store

POLL_SECONDS = 1.0


def duration(seconds: float | None) -> str:
    """`3 h 02 min`, `12 min 05 s`, `41 s`; "unknown" for None."""
    if seconds is None:
        return "unknown"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


class LogProgress(Progress):
    """Event lines on `stream` ("plain" or "json"), with a heartbeat thread; use as a context manager around the
    whole run (from before planning, so dataset preparation is covered)."""

    def __init__(self, stream: IO[str], fmt: str = "plain", heartbeat: float = 30.0, jobs: int = 1) -> None:
        self.stream, self.fmt, self.heartbeat, self.jobs = stream, fmt, heartbeat, jobs
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._last_line = time.monotonic()
        self._conn: sqlite3.Connection | None = None
        self._last_row = 0  # the last committed cycle (rowid) already logged
        self._thread = threading.Thread(target=self._watch, name="alpose-log", daemon=True)
        self.out_dir: Path | None = None
        self.plan: Any = None
        self.tasks_done = 0
        self._closed = False

    def __enter__(self) -> LogProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- output ----------------------------------------------------------------------------------------------

    def emit(self, event: str, text: str, **fields: Any) -> None:
        """One line: `time  text` (plain) or {"time", "event", **fields, "text"} (json); flushed at once."""
        now = datetime.now().astimezone()
        if self.fmt == "json":
            line = json.dumps(
                {"time": now.isoformat(timespec="seconds"), "event": event, **fields, "text": text}
            )
        else:
            line = f"{now:%Y-%m-%d %H:%M:%S}  {text}"
        with self._lock:
            self._last_line = time.monotonic()
            if self._closed:
                return
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # the reader went away (`| head`): the run goes on without its log
                self._closed = True

    # -- Progress hooks ----------------------------------------------------------------------------------------

    def start(self, the_plan: Any, need_cycle0: list[tuple[str, int]]) -> None:
        self.plan, self.out_dir = the_plan, Path(the_plan.out_dir)
        spec = the_plan.spec
        with self._lock:
            self._conn = sqlite3.connect(
                f"file:{self.out_dir / Store.FILENAME}?mode=ro", uri=True, timeout=30, check_same_thread=False
            )
            self._last_row = max((t.row for t in cycle_times(self._conn)), default=0)
            info = {n: json.loads(i) for n, i in self._conn.execute("SELECT name, info FROM datasets")}
        for name in spec.datasets:
            d = info.get(name, {})
            self.emit(
                "dataset", f"dataset {name} ready: pool {d.get('pool', '?'):,}, test {d.get('test', '?'):,} "
                f"({d.get('metric', '?')})", dataset=name, pool=d.get("pool"), test=d.get("test"),
            )  # fmt: skip
        pending = the_plan.pending
        total = len(pending) * spec.trained_cycles - sum(len(the_plan.done.get(t, {})) for t in pending)
        self.emit(
            "start", f"run {spec.name}: {len(pending)} of {len(the_plan.tasks)} tasks to run, {total} cycles to "
            f"commit, {len(need_cycle0)} shared cycle-0 trainings, {self.jobs} worker(s)",
            experiment=spec.name, tasks=len(pending), tasks_total=len(the_plan.tasks), cycles=total,
            cycle0=len(need_cycle0), jobs=self.jobs,
        )  # fmt: skip

    def cycle0_done(self, dataset: str, seed: int) -> None:
        self.emit("cycle0", f"shared cycle 0 trained: {dataset} seed {seed}", dataset=dataset, seed=seed)

    def task_started(self, task: Any) -> None:
        self.emit(
            "task_started",
            f"task started: {task}",
            dataset=task.dataset,
            sampler=task.sampler,
            seed=task.seed,
        )

    def cycle_done(self, task: Any, cycle: int) -> None:
        self._poll()

    def task_done(self, task: Any, error: str | None) -> None:
        self._poll()  # its last cycles first
        self.tasks_done += 1
        n = len(self.plan.pending) if self.plan else 0
        fields = {
            "dataset": task.dataset,
            "sampler": task.sampler,
            "seed": task.seed,
            "tasks_done": self.tasks_done,
        }
        if error:
            self.emit(
                "task_failed",
                f"task FAILED: {task}: {error} [{self.tasks_done}/{n} tasks]",
                error=error,
                **fields,
            )
        else:
            self.emit("task_done", f"task done: {task} [{self.tasks_done}/{n} tasks]", **fields)

    def finish(self, seconds: float) -> None:
        self._poll()
        self.emit("finish", f"run finished in {duration(seconds)}", seconds=round(seconds, 1))

    # -- database and heartbeat --------------------------------------------------------------------------------

    def _poll(self) -> None:
        """Log every cycle committed since the last look, in commit order."""
        with self._lock:
            if self._conn is None or self.plan is None:
                return
            try:
                new = cycle_times(self._conn, after=self._last_row)  # a look at the new rows only
                if not new:
                    return
                times = cycle_times(self._conn)  # all of them, for the counts and the time left
            except sqlite3.Error:
                return  # busy or being created; the next look catches up
            spec, tasks = self.plan.spec, [(t.dataset, t.sampler, t.seed) for t in self.plan.tasks]
            left = estimate_left(times, tasks, spec.cycles, spec.init, spec.budget, self.jobs)
            ours = set(tasks)
            done_all = sum(1 for t in times if (t.dataset, t.sampler, t.seed) in ours) - len(new)
            total = len(tasks) * spec.trained_cycles
            for t in new:
                self._last_row = t.row
                done_all += 1
                metric, value = t.metric, t.value
                info = metric_info(metric)
                self.emit(
                    "cycle", f"cycle {t.cycle}/{spec.cycles} committed: {task_label(t.dataset, t.sampler, t.seed)}, "
                    f"{t.n_labelled:,} labelled, {info.label} {value:.2f} {info.unit}, {t.seconds:.1f} s "
                    f"[{done_all}/{total} cycles, time left ~{duration(left)}]",
                    dataset=t.dataset, sampler=t.sampler, seed=t.seed, cycle=t.cycle, n_labelled=t.n_labelled,
                    metric=metric, value=value, seconds=round(t.seconds, 2), cycles_done=done_all,
                    cycles_total=total, left_s=None if left is None else round(left),
                )  # fmt: skip

    def _watch(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            with contextlib.suppress(Exception):  # a log line must never end the run
                self._poll()
                if time.monotonic() - self._last_line >= self.heartbeat:
                    self._beat()

    def _beat(self) -> None:
        now = time.time()
        doing = []
        mine = ACTIVITY.snapshot()
        if mine.phase is not None and mine.task is None:
            doing.append(mine)
        if self.out_dir is not None:
            doing += [s for s in read_all(self.out_dir) if s.phase is not None or s.task is not None]
        if not doing:
            self.emit("heartbeat", "still running", workers=[])
            return
        self.emit(
            "heartbeat", "still running: " + "; ".join(s.describe(now) for s in doing),
            workers=[
                {"pid": s.pid, "task": s.task, "cycle": s.cycle, "phase": s.phase, "done": s.done, "total": s.total,
                 "phase_s": None if s.phase_since is None else round(now - s.phase_since, 1),
                 "quiet_s": round(now - s.updated, 1)}
                for s in doing
            ],
        )  # fmt: skip
