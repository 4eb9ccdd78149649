"""An experiment: plan the tasks (dataset x sampler x seed), check them before any training, run them, summarise.

The planner resolves names through the registry, refuses impossible sampler/dataset pairs and budgets larger than the
pool, binds the output folder to the experiment (a different spec under the same name is refused), and skips what is
already committed. Tasks then run in this process (`jobs=1`) or in joblib worker processes; either way every cycle is
committed to the store as soon as it is done.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from alpose_bench.config import ConfigError, ExperimentSpec
from alpose_bench.loop import (
    Task,
    check_fits,
    dataset_config,
    load_dataset,
    make_sampler,
    resolve_device,
    run_task,
    train_shared_cycle0,
)
from alpose_bench.registry import get_sampler, working_samplers
from alpose_bench.store import Store, StoreError


class ExperimentLockedError(RuntimeError):
    """Another process is running this experiment."""


@dataclass
class Plan:
    spec: ExperimentSpec
    out_dir: Path
    tasks: list[Task]
    done: dict[Task, dict]  # task -> committed cycles {cycle: selected indices}
    failed_before: set[Task] = field(default_factory=set)

    @property
    def pending(self) -> list[Task]:
        return [t for t in self.tasks if len(self.done.get(t, {})) < self.spec.cycles + 1]


def resolve_samplers(spec: ExperimentSpec) -> list[str]:
    if spec.samplers == ("all",):
        return working_samplers()
    for name in spec.samplers:
        get_sampler(name)  # raises with the list of known samplers
    return list(dict.fromkeys(spec.samplers))


def provenance(device: torch.device) -> dict:
    versions = {}
    for pkg in ("alpose-bench", "torch", "numpy", "pandas", "scikit-learn", "scipy", "seaborn", "joblib"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    try:
        git = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True,
            timeout=5,
        ).stdout.strip() or None  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        git = None
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)"
    return {
        "versions": versions, "git": git, "device": dev, "python": platform.python_version(),
        "host": platform.node(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["alpose-bench"] + sys.argv[1:]),
    }  # fmt: skip


def plan(spec: ExperimentSpec, out_root: Path) -> Plan:
    """Check everything that can be checked before training, and bind the output folder."""
    samplers = resolve_samplers(spec)
    if not samplers:
        raise ConfigError("no working sampler is installed; see `alpose-bench list`")
    device = resolve_device(spec.device)
    datasets = {}
    for name in spec.datasets:
        ds = load_dataset(name, dataset_config(spec))
        check_fits(ds, spec)
        for s in samplers:
            reason = get_sampler(s).unsupported_reason(ds.task)
            if reason:
                raise ConfigError(f"{reason}; drop {s!r} from --samplers for {name!r}")
            make_sampler(spec, s)  # validates sampler parameters
        datasets[name] = ds
    for s in spec.sampler_params:
        if s not in samplers:
            raise ConfigError(f"--sampler-param names sampler {s!r}, which is not in this run ({', '.join(samplers)})")
    out_dir = out_root / spec.name
    store = Store(out_dir)
    try:
        store.claim(spec.to_dict(), spec.fingerprint(), provenance(device))
        for name, ds in datasets.items():
            store.set_dataset_info(
                name,
                {
                    "metric": ds.metric, "task": ds.task, "joints": list(ds.skeleton.joints),
                    "links": [list(link) for link in ds.skeleton.links], "group_names": list(ds.group_names),
                    "group_prior": list(ds.group_prior), "pool": len(ds.train), "test": len(ds.test),
                },
            )  # fmt: skip
        tasks = [Task(d, s, k) for d in spec.datasets for s in samplers for k in spec.seed_values()]
        done = {t: store.selected(t.dataset, t.sampler, t.seed) for t in tasks}
        # a committed final cycle has no selections: count committed cycles from the cycles table
        for t in tasks:
            cycles = store.completed_cycles(t.dataset, t.sampler, t.seed)
            done[t] = {c: done[t].get(c, _empty()) for c in cycles}
        failed = {t for t in tasks if store.statuses().get((t.dataset, t.sampler, t.seed), ("",))[0] == "failed"}
    finally:
        store.close()
    return Plan(spec=spec, out_dir=out_dir, tasks=tasks, done=done, failed_before=failed)


def _empty():
    import numpy as np

    return np.zeros(0, dtype=np.int64)


@contextlib.contextmanager
def experiment_lock(out_dir: Path) -> Iterator[None]:
    """One process per experiment folder: a second `alpose-bench run` on it stops with a clear message."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lock_path = out_dir / ".lock"
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise ExperimentLockedError(
                f"{out_dir} is being run by {holder}; wait for it to finish or use another --name"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {platform.node()}")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# -- execution ---------------------------------------------------------------------------------------------------


def _threads_for(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def execute_cycle0(spec: ExperimentSpec, dataset: str, seed: int, samplers: list[str], out_dir: str,
                   threads: int) -> None:
    torch.set_num_threads(threads)
    train_shared_cycle0(spec, dataset, seed, samplers, Path(out_dir), resolve_device(spec.device))


def execute_task(spec: ExperimentSpec, task: Task, out_dir: str, done: dict, threads: int,
                 on_cycle=None) -> tuple[Task, str | None]:
    """Run one task in this process, committing each cycle; returns (task, error message or None)."""
    from alpose_bench.train import TrainingDivergedError

    torch.set_num_threads(threads)
    store = Store(Path(out_dir))
    store.set_status(task.dataset, task.sampler, task.seed, "running")
    try:
        run_task(spec, task, Path(out_dir), done, store.commit_cycle, resolve_device(spec.device), on_cycle)
    except (TrainingDivergedError, ConfigError, StoreError) as exc:
        msg = f"{type(exc).__name__}: {exc}"
        store.set_status(task.dataset, task.sampler, task.seed, "failed", msg)
        store.close()
        return task, msg
    except KeyboardInterrupt:
        store.set_status(task.dataset, task.sampler, task.seed, "interrupted")
        store.close()
        raise
    except Exception as exc:
        msg = f"{type(exc).__name__}: {exc}"
        store.set_status(task.dataset, task.sampler, task.seed, "failed", msg)
        store.close()
        raise
    store.set_status(task.dataset, task.sampler, task.seed, "done")
    store.close()
    return task, None


def run_plan(the_plan: Plan, jobs: int = 1, progress=None) -> dict[Task, str | None]:
    """Run every pending task; returns task -> error (None when it finished)."""
    spec = the_plan.spec
    out = str(the_plan.out_dir)
    pending = the_plan.pending
    samplers = list(dict.fromkeys(t.sampler for t in the_plan.tasks))
    need_cycle0 = sorted({(t.dataset, t.seed) for t in pending if len(the_plan.done.get(t, {})) == 0})
    threads = _threads_for(jobs)
    results: dict[Task, str | None] = {}
    started = time.perf_counter()
    if progress is not None:
        progress.start(the_plan, need_cycle0)
    if jobs <= 1:
        for dataset, seed in need_cycle0:
            execute_cycle0(spec, dataset, seed, samplers, out, threads)
            if progress is not None:
                progress.cycle0_done(dataset, seed)
        for task in pending:
            cb = (lambda c, t=task: progress.cycle_done(t, c)) if progress is not None else None
            if progress is not None:
                progress.task_started(task)
            _, err = execute_task(spec, task, out, the_plan.done.get(task, {}), threads, cb)
            results[task] = err
            if progress is not None:
                progress.task_done(task, err)
    else:
        from joblib import Parallel, delayed

        with Parallel(n_jobs=jobs, return_as="generator_unordered") as parallel:
            for _ in parallel(delayed(execute_cycle0)(spec, d, s, samplers, out, threads) for d, s in need_cycle0):
                pass
            if progress is not None:
                for d, s in need_cycle0:
                    progress.cycle0_done(d, s)
            calls = (delayed(execute_task)(spec, t, out, the_plan.done.get(t, {}), threads) for t in pending)
            for task, err in parallel(calls):
                results[task] = err
                if progress is not None:
                    progress.task_done(task, err)
    if progress is not None:
        progress.finish(time.perf_counter() - started)
    return results
