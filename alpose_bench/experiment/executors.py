"""Where tasks run: in this process, in joblib worker processes, or on a Dask distributed cluster.

Every executor runs the shared cycle-0 trainings first (one per dataset x seed), then the tasks (`Executor.run`).
A task reads its resume point from the results database itself, so a task that is rerun — after an interrupt, a
failure, or a dead Dask worker — continues from its last committed cycle. Locally each worker commits its own cycles
(SQLite WAL); on Dask the workers send cycle records to the driver through a distributed Queue and the driver alone
writes. Workers receive the spec and build their task's objects themselves (`alpose_bench.engine.build`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from alpose_bench.core.activity import ACTIVITY, shared_cycle0_label
from alpose_bench.core.progress import Progress
from alpose_bench.engine import checkpoints
from alpose_bench.engine.build import Task, cycle0_setup, task_setup
from alpose_bench.engine.loop import run_task, train_shared_cycle0
from alpose_bench.experiment.ownership import EXIT_OWNER_GONE, Owner, RunGoneError, watch, worker_lock
from alpose_bench.results.store import CycleRecord, Store
from alpose_bench.spec.config import ConfigError, ExperimentSpec

#: torch threads per task: one, whatever --jobs is. The CPU path parallelises across tasks (one worker per core by
#: default); one thread per task also keeps results identical between --jobs 1 and --jobs N, since float reductions
#: split over a different number of threads round differently, which would change metrics and then selections.
THREADS_PER_TASK = 1


def committed(out_dir: Path, task: Task) -> dict:
    """Committed cycles of a task: cycle -> selected dataset indices (empty for the final cycle)."""
    if not (Path(out_dir) / Store.FILENAME).exists():
        return {}
    with Store(out_dir, readonly=True) as store:
        return store.committed(task.dataset, task.sampler, task.seed)


def activity_key(task: Task) -> str:
    """The name of a task's activity file (`alpose_bench.core.activity`)."""
    return f"task~{task.dataset}~{task.sampler}~{task.seed}"


def execute_cycle0(
    spec: ExperimentSpec,
    dataset: str,
    seed: int,
    samplers: list[str],
    out_dir: str,
    owner: Owner | None = None,
) -> tuple[str, int]:
    """Train the shared cycle 0 of (dataset, seed) in this process (a worker of `owner`'s run, when given)."""
    torch.set_num_threads(THREADS_PER_TASK)
    _stop_when_gone(owner)
    with (
        worker_lock(Path(out_dir), owner),
        ACTIVITY.task(shared_cycle0_label(dataset, seed), Path(out_dir), f"cycle0~{dataset}~{seed}"),
    ):
        ACTIVITY.cycle(0)
        train_shared_cycle0(cycle0_setup(spec, dataset, seed, samplers), Path(out_dir))
    return dataset, seed


def _failure(exc: BaseException) -> str | None:
    """A message for failures that end one task but not the experiment (None: let it propagate)."""
    from alpose_bench.engine.train import TrainingDivergedError
    from alpose_bench.samplers.base import SamplerContractError

    if isinstance(exc, SamplerContractError):
        return str(exc)  # it names the sampler
    if isinstance(exc, (TrainingDivergedError, ConfigError)):
        return f"{type(exc).__name__}: {exc}"
    return None


def execute_task(
    spec: ExperimentSpec,
    task: Task,
    out_dir: str,
    sink: Callable[[CycleRecord], None] | None = None,
    on_cycle: Callable[[int], None] | None = None,
    owner: Owner | None = None,
) -> tuple[Task, str | None]:
    """Run one task in this process from its last committed cycle. Without a `sink` the cycles are committed here.

    In a worker process of `owner`'s run the task stops, committing nothing more, once that run is gone."""
    torch.set_num_threads(THREADS_PER_TASK)
    _stop_when_gone(owner)
    out = Path(out_dir)
    with worker_lock(out, owner):
        return _execute_task(spec, task, out, sink, on_cycle, owner)


def _stop_when_gone(owner: Owner | None) -> None:
    try:
        watch(owner)
    except RunGoneError:
        os._exit(EXIT_OWNER_GONE)


def _execute_task(
    spec: ExperimentSpec,
    task: Task,
    out: Path,
    sink: Callable[[CycleRecord], None] | None,
    on_cycle: Callable[[int], None] | None,
    owner: Owner | None,
) -> tuple[Task, str | None]:
    store = None
    if sink is None:
        store = Store(out)
        store.set_status(task.dataset, task.sampler, task.seed, "running")

        def sink(record: CycleRecord) -> None:
            if owner is not None:
                owner.check()  # never commit for a run that is gone
            store.commit_cycle(record)
            checkpoints.discard_after_commit(
                out,
                task.dataset,
                task.sampler,
                task.seed,
                record.cycle,
                record.cycle == spec.trained_cycles - 1,
            )

    try:
        with ACTIVITY.task(str(task), out, activity_key(task)):
            done = (
                committed(out, task)
                if store is None
                else store.committed(task.dataset, task.sampler, task.seed)
            )
            run_task(task_setup(spec, task), out, done, sink, on_cycle)
    except RunGoneError:
        os._exit(EXIT_OWNER_GONE)  # its run was killed: leave the task as it is, for the rerun to resume
    except BaseException as exc:
        message = _failure(exc)
        if store is not None:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            store.set_status(
                task.dataset, task.sampler, task.seed, status, message or f"{type(exc).__name__}: {exc}"
            )
            store.close()
        if message is None:
            raise
        return task, message
    if store is not None:
        store.set_status(task.dataset, task.sampler, task.seed, "done")
        store.close()
    return task, None


class Executor(ABC):
    """Runs an experiment's shared cycle-0 trainings, then its tasks, reporting to a `Progress`."""

    def run(
        self,
        spec: ExperimentSpec,
        out_dir: Path,
        cycle0: list[tuple[str, int]],
        samplers: list[str],
        tasks: list[Task],
        progress: Progress | None = None,
    ) -> dict[Task, str | None]:
        """Train every (dataset, seed) of `cycle0`, then run `tasks`; task -> error message (None: finished)."""
        progress = progress or Progress()
        with self.session():
            for dataset, seed in self.run_cycle0(spec, str(out_dir), cycle0, samplers):
                progress.cycle0_done(dataset, seed)
            return self.run_tasks(spec, str(out_dir), tasks, progress)

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Resources held for the whole run (worker pool, cluster client)."""
        yield

    @abstractmethod
    def run_cycle0(
        self, spec: ExperimentSpec, out_dir: str, cycle0: list[tuple[str, int]], samplers: list[str]
    ) -> Iterator[tuple[str, int]]:
        """Train the shared cycle-0 models, yielding each (dataset, seed) when it is done."""

    @abstractmethod
    def run_tasks(
        self, spec: ExperimentSpec, out_dir: str, tasks: list[Task], progress: Progress
    ) -> dict[Task, str | None]:
        """Run the tasks to the end."""


class SequentialExecutor(Executor):
    """Everything in this process, one task after another."""

    def run_cycle0(self, spec, out_dir, cycle0, samplers):
        for dataset, seed in cycle0:
            yield execute_cycle0(spec, dataset, seed, samplers, out_dir)

    def run_tasks(self, spec, out_dir, tasks, progress):
        results = {}
        for task in tasks:
            progress.task_started(task)
            _, results[task] = execute_task(
                spec, task, out_dir, on_cycle=lambda c, t=task: progress.cycle_done(t, c)
            )
            progress.task_done(task, results[task])
        return results


class JoblibExecutor(Executor):
    """Tasks in `jobs` worker processes on this machine (joblib's loky executor), one torch thread each.

    Every worker is started with its owner, this process (`ownership.watch` as the pool's initializer): a worker,
    busy or idle, ends soon after this process is gone, whatever killed it."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs

    @contextlib.contextmanager
    def session(self):
        from joblib.externals.loky import get_reusable_executor

        self._owner = Owner.this_process()
        self._pool = get_reusable_executor(
            max_workers=self.jobs, timeout=60, initializer=watch, initargs=(self._owner,)
        )
        yield

    def _unordered(self, calls: list[tuple[Callable, tuple, dict]]) -> Iterator:
        """Run the calls in the workers; yield their results as they finish."""
        from concurrent.futures import as_completed

        futures = [self._pool.submit(fn, *args, **kwargs) for fn, args, kwargs in calls]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()

    def run_cycle0(self, spec, out_dir, cycle0, samplers):
        yield from self._unordered(
            [(execute_cycle0, (spec, d, s, samplers, out_dir, self._owner), {}) for d, s in cycle0]
        )

    def run_tasks(self, spec, out_dir, tasks, progress):
        results = {}
        calls = [(execute_task, (spec, t, out_dir), {"owner": self._owner}) for t in tasks]
        for task, error in self._unordered(calls):
            results[task] = error
            progress.task_done(task, error)
        return results


def _sent_name(queue_name: str, task: Task) -> str:
    """The Dask Variable holding the last cycle of `task` that a worker has put on the driver's queue."""
    return f"{queue_name}-sent-{task.dataset}-{task.sampler}-{task.seed}"


def _wait_committed(out_dir: str, task: Task, cycle: int, timeout: float = 120.0) -> None:
    """Wait (at most `timeout` s) until the driver has committed `cycle` of `task` to the database (-1: nothing)."""
    deadline = time.monotonic() + timeout
    while cycle >= 0 and cycle not in committed(Path(out_dir), task) and time.monotonic() < deadline:
        time.sleep(0.1)


def _remote_task(spec: ExperimentSpec, task: Task, out_dir: str, queue_name: str):
    """One task on a Dask worker; its cycle records go to the driver through the queue `queue_name`.

    When a worker dies the scheduler runs the task again (up to `distributed.scheduler.allowed-failures` times).
    The rerun first waits until the driver has committed every record the dead attempt put on the queue, so it
    resumes after the last cycle that attempt finished rather than after whatever the driver had drained so far.
    """
    from distributed import Queue, Variable, get_client

    client = get_client()
    q = Queue(queue_name, client=client)
    sent = Variable(_sent_name(queue_name, task), client=client)
    try:
        last_sent = sent.get(timeout=30)  # set to -1 by the driver before it submits the task
    except asyncio.TimeoutError:
        last_sent = -1
    _wait_committed(out_dir, task, last_sent)

    def sink(record: CycleRecord) -> None:
        q.put(record)
        sent.set(record.cycle)  # after the put: a cycle counted here is on the driver's queue

    return execute_task(spec, task, out_dir, sink=sink)


class DaskExecutor(Executor):
    """Tasks on a Dask distributed cluster (`scheduler` address), or on a LocalCluster of `workers` processes.

    The results folder must be on a file system the workers share with the driver (checkpoints and the read-only
    resume look-up); only the driver writes the database.
    """

    def __init__(self, scheduler: str | None = None, workers: int = 2) -> None:
        self.scheduler = scheduler
        self.workers = max(1, workers)

    def _client(self):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError(
                "--executor dask needs dask.distributed: pip install 'alpose-bench[dask]'"
            ) from None
        if self.scheduler:
            try:
                return Client(self.scheduler, timeout="20s"), None
            except OSError as exc:
                raise ConfigError(f"cannot reach the Dask scheduler at {self.scheduler}: {exc}") from None
        cluster = LocalCluster(
            n_workers=self.workers,
            threads_per_worker=THREADS_PER_TASK,
            processes=True,
            dashboard_address=None,
        )
        return Client(cluster), cluster

    @contextlib.contextmanager
    def session(self):
        self._client_, cluster = self._client()
        try:
            yield
        finally:
            self._client_.close()
            if cluster is not None:
                cluster.close()

    def run_cycle0(self, spec, out_dir, cycle0, samplers):
        client = self._client_
        futures = [
            client.submit(execute_cycle0, spec, d, s, samplers, out_dir, pure=False) for d, s in cycle0
        ]
        results = client.gather(futures)
        del futures  # released: a worker that dies later must not make the scheduler recompute them
        yield from results

    def run_tasks(self, spec, out_dir, tasks, progress):
        from distributed import Queue, Variable

        client = self._client_
        results: dict[Task, str | None] = {}
        with Store(Path(out_dir)) as store:
            q = Queue(f"alpose-{uuid.uuid4().hex}", client=client)
            sent = {t: Variable(_sent_name(q.name, t), client=client) for t in tasks}
            for v in sent.values():
                v.set(-1)
            by_future = {
                client.submit(_remote_task, spec, t, out_dir, q.name, pure=False, retries=2): t for t in tasks
            }
            for t in tasks:
                store.set_status(t.dataset, t.sampler, t.seed, "running")
            remaining = set(by_future)

            def drain() -> None:
                """Commit every record the workers have queued so far (the driver alone writes)."""
                while q.qsize() > 0:
                    record = q.get()
                    task = Task(record.dataset, record.sampler, record.seed)
                    if record.cycle in store.completed_cycles(task.dataset, task.sampler, task.seed):
                        continue  # a rerun of a task whose worker died re-sends an identical cycle
                    store.commit_cycle(record)
                    checkpoints.discard_after_commit(
                        Path(out_dir), task.dataset, task.sampler, task.seed, record.cycle,
                        record.cycle == spec.trained_cycles - 1,
                    )  # fmt: skip
                    progress.cycle_done(task, record.cycle)

            while remaining:
                drain()
                for f in [f for f in remaining if f.done()]:
                    remaining.discard(f)
                    task = by_future.pop(f)  # released once read, as the cycle-0 futures
                    try:
                        _, error = f.result()
                    except Exception as exc:
                        error = f"{type(exc).__name__}: {exc}"
                    drain()  # its records were queued before it returned
                    results[task] = error
                    store.set_status(
                        task.dataset, task.sampler, task.seed, "failed" if error else "done", error
                    )
                    progress.task_done(task, error)
                time.sleep(0.1)
            drain()
            for v in sent.values():
                v.delete()
            q.close()
        return results
