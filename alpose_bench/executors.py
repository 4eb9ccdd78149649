"""Where tasks run: in this process, in joblib worker processes, or on a Dask distributed cluster.

Every executor runs the shared cycle-0 trainings first (one per dataset x seed), then the tasks. A task reads its
resume point from the results database itself, so a task that is rerun — after an interrupt, a failure, or a dead
Dask worker — continues from its last committed cycle. Locally each worker commits its own cycles (SQLite WAL);
on Dask the workers send cycle records to the driver through a distributed Queue and the driver alone writes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import torch

from alpose_bench.config import ConfigError, ExperimentSpec
from alpose_bench.loop import Task, discard_old_checkpoints, resolve_device, run_task, train_shared_cycle0
from alpose_bench.store import CycleRecord, Store


def threads_for(jobs: int) -> int:
    """Torch threads per task: one, whatever `jobs` is.

    The CPU path parallelises across tasks (one worker per core by default). Keeping each task on one thread also
    keeps results identical between --jobs 1 and --jobs N: float reductions split over a different number of
    threads round differently, which would change metrics and, through them, selections.
    """
    return 1


def committed(out_dir: Path, task: Task) -> dict:
    """Committed cycles of a task: cycle -> selected dataset indices (empty for the final cycle)."""
    if not (Path(out_dir) / Store.FILENAME).exists():
        return {}
    with Store(out_dir, readonly=True) as store:
        return store.committed(task.dataset, task.sampler, task.seed)


def execute_cycle0(
    spec: ExperimentSpec, dataset: str, seed: int, samplers: list[str], out_dir: str, threads: int
) -> tuple[str, int]:
    torch.set_num_threads(threads)
    train_shared_cycle0(spec, dataset, seed, samplers, Path(out_dir), resolve_device(spec.device))
    return dataset, seed


def _failure(exc: BaseException) -> str | None:
    """A message for failures that end one task but not the experiment (None: let it propagate)."""
    from alpose_bench.loop import SamplerContractError
    from alpose_bench.train import TrainingDivergedError

    if isinstance(exc, (TrainingDivergedError, SamplerContractError, ConfigError)):
        return f"{type(exc).__name__}: {exc}"
    return None


def execute_task(
    spec: ExperimentSpec,
    task: Task,
    out_dir: str,
    threads: int,
    sink: Callable[[CycleRecord], None] | None = None,
    on_cycle: Callable[[int], None] | None = None,
) -> tuple[Task, str | None]:
    """Run one task in this process from its last committed cycle. Without a `sink` the cycles are committed here."""
    torch.set_num_threads(threads)
    out = Path(out_dir)
    store = None
    if sink is None:
        store = Store(out)
        store.set_status(task.dataset, task.sampler, task.seed, "running")

        def sink(record: CycleRecord) -> None:
            store.commit_cycle(record)
            discard_old_checkpoints(out, task, record.cycle, record.cycle == spec.cycles)

    try:
        run_task(spec, task, out, committed(out, task), sink, resolve_device(spec.device), on_cycle)
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


class SequentialExecutor:
    """Everything in this process, one task after another."""

    def run(self, spec, out_dir, cycle0, samplers, tasks, progress) -> dict[Task, str | None]:
        threads = threads_for(1)
        for dataset, seed in cycle0:
            execute_cycle0(spec, dataset, seed, samplers, str(out_dir), threads)
            if progress is not None:
                progress.cycle0_done(dataset, seed)
        results = {}
        for task in tasks:
            if progress is not None:
                progress.task_started(task)
            on_cycle = (lambda c, t=task: progress.cycle_done(t, c)) if progress is not None else None
            _, results[task] = execute_task(spec, task, str(out_dir), threads, on_cycle=on_cycle)
            if progress is not None:
                progress.task_done(task, results[task])
        return results


class JoblibExecutor:
    """Tasks in `jobs` worker processes on this machine (joblib/loky), torch threads split between them."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs

    def run(self, spec, out_dir, cycle0, samplers, tasks, progress) -> dict[Task, str | None]:
        from joblib import Parallel, delayed

        threads = threads_for(self.jobs)
        results = {}
        with Parallel(n_jobs=self.jobs, return_as="generator_unordered") as parallel:
            for dataset, seed in parallel(
                delayed(execute_cycle0)(spec, d, s, samplers, str(out_dir), threads) for d, s in cycle0
            ):
                if progress is not None:
                    progress.cycle0_done(dataset, seed)
            for task, error in parallel(delayed(execute_task)(spec, t, str(out_dir), threads) for t in tasks):
                results[task] = error
                if progress is not None:
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


def _remote_task(spec: ExperimentSpec, task: Task, out_dir: str, threads: int, queue_name: str):
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

    return execute_task(spec, task, out_dir, threads, sink=sink)


class DaskExecutor:
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
            n_workers=self.workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        return Client(cluster), cluster

    def run(self, spec, out_dir, cycle0, samplers, tasks, progress) -> dict[Task, str | None]:
        from distributed import Queue, Variable

        client, cluster = self._client()
        threads = threads_for(self.workers)
        out = str(out_dir)
        results: dict[Task, str | None] = {}
        store = Store(Path(out_dir))
        try:
            futures = [
                client.submit(execute_cycle0, spec, d, s, samplers, out, threads, pure=False)
                for d, s in cycle0
            ]
            for dataset, seed in client.gather(futures):
                if progress is not None:
                    progress.cycle0_done(dataset, seed)
            del futures  # released: a worker that dies later must not make the scheduler recompute them
            q = Queue(f"alpose-{uuid.uuid4().hex}", client=client)
            sent = {t: Variable(_sent_name(q.name, t), client=client) for t in tasks}
            for v in sent.values():
                v.set(-1)
            by_future = {
                client.submit(_remote_task, spec, t, out, threads, q.name, pure=False, retries=2): t
                for t in tasks
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
                    discard_old_checkpoints(Path(out_dir), task, record.cycle, record.cycle == spec.cycles)
                    if progress is not None:
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
                    if progress is not None:
                        progress.task_done(task, error)
                time.sleep(0.1)
            drain()
            for v in sent.values():
                v.delete()
            q.close()
        finally:
            store.close()
            client.close()
            if cluster is not None:
                cluster.close()
        return results
