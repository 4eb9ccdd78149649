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

from alpose_bench.core.atomic import is_disk_full
from alpose_bench.core.compute import Compute, cpu_name, native_bf16, resolve_precision
from alpose_bench.core.failures import UserFacingError
from alpose_bench.core.progress import Progress
from alpose_bench.engine import build, checkpoints
from alpose_bench.engine.build import Task, check_fits, compute_of, dataset_of, make_sampler, resolve_device
from alpose_bench.experiment.ownership import wait_for_workers
from alpose_bench.pose.models import check_available
from alpose_bench.results.store import Store, StoreError
from alpose_bench.spec.config import (
    GROWS,
    LEGACY,
    SAMPLER_GROUPS,
    SPEC_FIELDS,
    ConfigError,
    ExperimentSpec,
)  # fmt: skip
from alpose_bench.spec.registry import get_dataset, sampler_key


class ExperimentLockedError(UserFacingError, RuntimeError):
    """Another process is running this experiment."""


@dataclass
class Plan:
    spec: ExperimentSpec
    out_dir: Path
    tasks: list[Task]
    done: dict[Task, dict]  # task -> committed cycles {cycle: selected indices}
    notes: list[str] = field(default_factory=list)  # what the planner decided that the user should know

    @property
    def pending(self) -> list[Task]:
        return [t for t in self.tasks if len(self.done.get(t, {})) < self.spec.trained_cycles]


def registered_names(spec: ExperimentSpec) -> ExperimentSpec:
    """The spec with every sampler spelled as registered, in its list and in `sampler_params` (so tasks, results,
    heads and parameters are all keyed by one name)."""
    samplers = spec.samplers
    if not (len(samplers) == 1 and samplers[0] in SAMPLER_GROUPS):
        samplers = tuple(build.resolve_samplers(spec.samplers)[0])
    params: dict[str, dict] = {}
    for name, values in spec.sampler_params.items():
        params.setdefault(sampler_key(name), {}).update(values)
    return spec.replace(samplers=samplers, sampler_params=params)


def provenance(device: torch.device, compute: Compute | None = None) -> dict:
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
        "compute": None if compute is None else compute.describe(), "cpu": cpu_name(),
        "native_bf16": native_bf16(device),
    }  # fmt: skip


def plan(spec: ExperimentSpec, out_root: Path) -> Plan:
    """Check everything that can be checked before training, and bind the output folder."""
    spec = registered_names(spec)
    samplers, _ = build.resolve_samplers(spec.samplers)
    if not samplers:
        raise ConfigError("no working sampler is installed; see `alpose-bench list`")
    device = resolve_device(spec.device)
    for s in spec.sampler_params:
        if s not in samplers:
            raise ConfigError(
                f"--sampler-param names sampler {s!r}, which is not in this run ({', '.join(samplers)})"
            )
    for s in samplers:
        make_sampler(spec, s)  # checks every parameter of every sampler before any data is loaded
    datasets = {}
    model = build.protocol(spec).model
    check_available(model)
    notes: list[str] = []
    skipped: dict[str, list[str]] = {}  # dataset -> samplers a group ("default", "all") leaves out there
    for name in spec.datasets:
        ds = dataset_of(spec, name)
        check_fits(ds, spec)
        if (
            model.caches_features and ds.task == "heatmap2d"
        ):  # built here once, with progress, not in every task
            build.new_model(model, ds, 0, compute_of(spec, device))
        try:
            _, left_out = build.resolve_samplers(spec.samplers, ds.task, model)
        except ConfigError as exc:
            raise ConfigError(f"{exc} for {name!r}") from None
        if left_out:
            skipped[name] = list(left_out)
        datasets[name] = ds
        for key, value in (ds.info.get("counts") or {}).items():
            if key.startswith("people skipped") and value:  # data the user gave that is not trained on
                notes.append(f"{name}: {value:,} {key}")
    out_dir = out_root / spec.name
    spec = spec.replace(precision=resolve_precision(spec.precision, device))
    store = Store(out_dir)
    try:
        notes += _adopt_current_names(store, out_dir)
        spec, resumed = _as_stored(spec, store, device)
        notes += resumed
        stored = store.get_meta("spec")
        if stored is None:
            held = spec.replace(samplers=tuple(samplers))  # the group, resolved: what the folder holds
            store.claim(held.to_dict(), held.fingerprint(), provenance(device, compute_of(spec, device)))
        else:
            grown, added = _grow(ExperimentSpec.from_stored(stored), spec, samplers, store)
            if added:
                notes.append(f"adding to the stored experiment: {added}")
            store.rebind(grown.to_dict(), grown.fingerprint())
        for name, ds in datasets.items():
            info = {
                "metric": ds.metric, "task": ds.task, "joints": list(ds.skeleton.joints),
                "links": [list(link) for link in ds.skeleton.links], "group_names": list(ds.group_names),
                "group_prior": list(ds.group_prior), "pool": len(ds.train), "test": len(ds.test),
                "version": ds.info.get("version"),
                "conventions": get_dataset(name)().conventions(ds),
            }  # fmt: skip
            _check_same_data(store, name, info)
            store.set_dataset_info(name, info)
        tasks = [
            Task(d, s, k) for d in spec.datasets for s in samplers if s not in skipped.get(d, [])
            for k in spec.seed_values()
        ]  # fmt: skip
        done = {t: store.committed(t.dataset, t.sampler, t.seed) for t in tasks}
    finally:
        store.close()
    for name, left_out in skipped.items():
        notes.append(
            f"{name}: {spec.samplers[0]!r} leaves out {', '.join(left_out)} (not applicable to this dataset or model)"
        )
    return Plan(spec=spec, out_dir=out_dir, tasks=tasks, done=done, notes=notes)


def _grow(
    then: ExperimentSpec, now: ExperimentSpec, samplers: list[str], store: Store
) -> tuple[ExperimentSpec, str]:
    """The stored experiment grown by `now`'s samplers and seeds, and what was added (in words), or a StoreError when
    `now` is another experiment: another protocol, or a sampler already stored with other parameters."""
    if then.protocol_fingerprint() != now.protocol_fingerprint():
        before, after = then.to_dict(), now.to_dict()
        diff = sorted(k for k in SPEC_FIELDS if k not in ("name", "device", *GROWS) and before[k] != after[k])
        raise StoreError(
            f"{store.directory} holds a different experiment (settings differ: {', '.join(diff) or 'unknown'}); "
            "use another --name, or delete that folder to start over"
        )
    stored_samplers = [s for s in then.samplers if s not in SAMPLER_GROUPS] + store.samplers()
    stored_samplers = list(dict.fromkeys(stored_samplers))
    for s in samplers:
        if s in stored_samplers and then.sampler_params.get(s, {}) != now.sampler_params.get(s, {}):
            raise StoreError(
                f"{store.directory}: sampler {s!r} ran here with parameters {then.sampler_params.get(s, {})}, not "
                f"{now.sampler_params.get(s, {})}; use another --name for other parameters"
            )
    new_samplers = [s for s in samplers if s not in stored_samplers]
    added = ", ".join(
        [f"sampler(s) {', '.join(new_samplers)}"] * bool(new_samplers)
        + [f"seeds {then.seeds}..{now.seeds - 1}"] * (now.seeds > then.seeds)
    )
    grown = then.replace(
        samplers=tuple(dict.fromkeys([*stored_samplers, *samplers])),
        seeds=max(then.seeds, now.seeds),
        sampler_params={**then.sampler_params, **now.sampler_params},
        name=now.name, device=now.device,
    )  # fmt: skip
    return grown, added


def _adopt_current_names(store: Store, out_dir: Path) -> list[str]:
    """Samplers renamed since this experiment was stored (`Sampler.former_names`) take their current names in its
    results, spec and checkpoints, so it resumes and grows under them; their random streams keep their first name
    (`Sampler.stream_name`), so the cycles still to run compute as they would have. Returns notes for the user."""
    notes = []
    stored = (store.get_meta("spec") or {}).get("samplers", [])
    for old in dict.fromkeys([*stored, *store.samplers()]):
        if old in SAMPLER_GROUPS:
            continue
        try:
            new = sampler_key(old)
        except LookupError:  # not installed here: kept as it is (its tasks run only where it is installed)
            continue
        if new != old:
            # checkpoints first: repeating their rename is harmless if the database's fails
            checkpoints.rename_sampler(out_dir, old, new)
            store.rename_sampler(old, new)
            notes.append(
                f"sampler {old!r} is now called {new!r}: this experiment's results were renamed to match"
            )
    return notes


def _as_stored(spec: ExperimentSpec, store: Store, device: torch.device) -> tuple[ExperimentSpec, list[str]]:
    """Resume an experiment stored before a setting existed with the value it ran with (`config.LEGACY`), unless
    the user chose another value: its remaining cycles then compute exactly as its first ones did."""
    stored = store.get_meta("spec")
    if stored is None:
        return spec, []
    defaults = ExperimentSpec()
    defaults = defaults.replace(precision=resolve_precision(defaults.precision, device))
    changes = {}
    for key, legacy in LEGACY.items():
        current = getattr(spec, key)
        if key not in stored and current == getattr(defaults, key) and current != legacy:
            changes[key] = legacy
    if not changes:
        return spec, []
    settings = ", ".join(f"{k}={v!r}" for k, v in changes.items())
    return spec.replace(**changes), [
        f"resuming with the settings this experiment was started with: {settings}"
    ]


@contextlib.contextmanager
def experiment_lock(out_dir: Path) -> Iterator[None]:
    """One process per experiment folder: a second `alpose-bench run` on it stops with a clear message; the lock is
    taken only once every worker of an earlier run of it is gone (`ownership.wait_for_workers`)."""
    lock_path = out_dir / ".lock"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fh = open(lock_path, "a+")
    except OSError as exc:
        raise _unwritable(out_dir, lock_path, exc) from None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise ExperimentLockedError(
                f"{out_dir} is being run by {holder}; wait for it to finish or use another --name"
            ) from None
        try:
            try:
                fh.seek(0)
                fh.truncate()
                fh.write(f"pid {os.getpid()} on {platform.node()}")
                fh.flush()
            except OSError as exc:
                raise _unwritable(out_dir, lock_path, exc) from None
            if not wait_for_workers(out_dir):
                raise ExperimentLockedError(
                    f"worker processes of an earlier run of {out_dir} are still running; wait a minute, or stop "
                    f"them (`alpose-bench status {out_dir}` names their pids)"
                )
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _unwritable(out_dir: Path, path: Path, exc: OSError) -> StoreError:
    if is_disk_full(exc):
        return StoreError.disk_full(path)
    return StoreError(
        f"cannot write to {out_dir}: {exc.strerror or exc}; choose a writable folder with --out"
    )


# -- execution ----------------------------------------------------------------------------------------------------


def _check_same_data(store: Store, name: str, info: dict) -> None:
    """Refuse to resume an experiment on data that changed since it started (a new generator version, a different
    pool): its remaining cycles would train on other images than its first ones."""
    old = store.dataset_info().get(name)
    if old is None or not store.completed_any(name):
        return
    # datasets recorded before versions were stored came from version 1 of their generator
    then = {**old, "version": old.get("version", 1)}
    for key in ("version", "pool", "test", "joints"):
        if info.get(key) is not None and key in then and then[key] != info[key]:
            raise ConfigError(
                f"dataset {name!r} is not the data this experiment started on ({key}: {then[key]!r} then, "
                f"{info[key]!r} now); run it under another --name"
            )


def run_plan(
    the_plan: Plan,
    jobs: int = 1,
    progress: Progress | None = None,
    executor: str = "local",
    scheduler: str | None = None,
) -> dict[Task, str | None]:
    """Run every pending task with the chosen executor; returns task -> error message (None when it finished).

    Afterwards the shared cycle-0 checkpoints no pending task needs any more are removed."""
    from alpose_bench.experiment import executors

    progress = progress or Progress()
    pending = the_plan.pending
    samplers = list(dict.fromkeys(t.sampler for t in the_plan.tasks))
    need_cycle0 = sorted({(t.dataset, t.seed) for t in pending if len(the_plan.done.get(t, {})) == 0})
    started = time.perf_counter()
    progress.start(the_plan, need_cycle0)
    runner: executors.Executor
    if executor == "dask":
        runner = executors.DaskExecutor(scheduler=scheduler, workers=jobs)
    elif jobs > 1:
        runner = executors.JoblibExecutor(jobs)
    else:
        runner = executors.SequentialExecutor()
    try:
        return runner.run(the_plan.spec, the_plan.out_dir, need_cycle0, samplers, pending, progress)
    finally:
        _discard_shared_checkpoints(the_plan)
        progress.finish(time.perf_counter() - started)


def finish_complete_tasks(the_plan: Plan) -> list[Task]:
    """Close the tasks whose every cycle is committed but whose run ended before it recorded them done (a kill after
    the final commit): status `done`, their checkpoints and the shared ones nobody needs removed. Call it holding
    the experiment lock; returns the tasks it closed."""
    closed: list[Task] = []
    if not (the_plan.out_dir / Store.FILENAME).exists():
        return closed
    pending = set(the_plan.pending)
    complete = [t for t in the_plan.tasks if t not in pending]
    with Store(the_plan.out_dir) as store:
        statuses = store.statuses()
        for t in complete:
            if statuses.get((t.dataset, t.sampler, t.seed), ("",))[0] != "done":
                store.set_status(t.dataset, t.sampler, t.seed, "done")
                closed.append(t)
    for t in complete:
        checkpoints.discard_after_commit(
            the_plan.out_dir, t.dataset, t.sampler, t.seed, the_plan.spec.cycles, final=True
        )
    _discard_shared_checkpoints(the_plan)
    return closed


def _discard_shared_checkpoints(the_plan: Plan) -> None:
    """Remove the shared cycle-0 checkpoints of the (dataset, seed) pairs whose every task has committed cycle 0."""
    if not (the_plan.out_dir / Store.FILENAME).exists():
        return
    with Store(the_plan.out_dir, readonly=True) as store:
        needed = {
            (t.dataset, t.seed)
            for t in the_plan.tasks
            if 0 not in store.completed_cycles(t.dataset, t.sampler, t.seed)
        }
    checkpoints.discard_unneeded_shared(the_plan.out_dir, needed)
