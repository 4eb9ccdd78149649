"""The same experiment gives the same rows whichever executor runs it: in-process, joblib workers, Dask cluster."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from plugin_factory import write_sampler_plugin

from alpose_bench.experiment.runner import plan, run_plan
from alpose_bench.results import read as results
from alpose_bench.results.store import Store
from alpose_bench.spec import registry
from alpose_bench.spec.config import build_spec

COLUMNS = ["dataset", "sampler", "seed", "cycle", "n_labelled", "metric", "value", "n_selected"]
SELECTION = ["dataset", "sampler", "seed", "cycle", "rank", "index"]


def run(tmp, **kwargs):
    spec = build_spec("smoke", None, {"samplers": "random,mpe", "seeds": 2})
    the_plan = plan(spec, tmp)
    errors = run_plan(the_plan, **kwargs)
    assert errors and not any(errors.values()), errors
    return results.load(the_plan.out_dir)[COLUMNS], results.load_selections(the_plan.out_dir)[SELECTION]


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    return run(tmp_path_factory.mktemp("sequential"))


@pytest.mark.slow
def test_joblib_workers_give_the_sequential_rows(tmp_path, sequential):
    rows, picks = run(tmp_path, jobs=2)
    pd.testing.assert_frame_equal(rows, sequential[0])
    pd.testing.assert_frame_equal(picks, sequential[1])


class CycleCounter:
    """A progress display that counts what it is told (the run command's RichProgress has the same methods)."""

    def __init__(self) -> None:
        self.cycles: list[tuple[str, int]] = []
        self.tasks_done = 0

    def start(self, the_plan, need_cycle0) -> None:
        pass

    def cycle0_done(self, dataset, seed) -> None:
        pass

    def task_started(self, task) -> None:
        pass

    def cycle_done(self, task, cycle) -> None:
        self.cycles.append((str(task), cycle))

    def task_done(self, task, error) -> None:
        self.tasks_done += 1

    def finish(self, seconds) -> None:
        pass


@pytest.mark.slow
def test_a_dask_local_cluster_gives_the_sequential_rows(tmp_path, sequential):
    pytest.importorskip("distributed")
    progress = CycleCounter()
    rows, picks = run(tmp_path, jobs=2, executor="dask", progress=progress)
    pd.testing.assert_frame_equal(rows, sequential[0])
    pd.testing.assert_frame_equal(picks, sequential[1])
    # the driver reports every cycle it commits, as the in-process executor does
    committed = rows.drop_duplicates(["sampler", "seed", "cycle"])
    assert len(progress.cycles) == len(committed) and len(set(progress.cycles)) == len(committed)
    assert progress.tasks_done == 4


KILL_ONCE_SAMPLER = '''
"""The random sampler, except that in a Dask worker it logs every call and kills its own process once."""

import os
import signal
from dataclasses import dataclass

from alpose_bench.samplers.random import RandomSampler


@dataclass
class KillOnce(RandomSampler):
    name = "kill-once"
    description = "Random; with KILL_ONCE_LOG set, SIGKILLs its own process the first time it selects in cycle >= 1."

    def select(self, ctx, budget):
        log = os.environ.get("KILL_ONCE_LOG")
        if log:
            with open(log, "a") as fh:
                fh.write(f"{ctx.cycle} {os.getpid()}\\n")
            if ctx.cycle >= 1:
                try:
                    os.close(os.open(log + ".killed", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    pass
                else:
                    os.kill(os.getpid(), signal.SIGKILL)
        return super().select(ctx, budget)
'''


@pytest.fixture
def kill_once_plugin(tmp_path, monkeypatch):
    """The `kill-once` sampler, importable here and (through PYTHONPATH) in Dask worker processes started later."""
    site = write_sampler_plugin(
        tmp_path / "site",
        "kill-once",
        "kill-once = kill_once_sampler:KillOnce",
        "kill_once_sampler",
        KILL_ONCE_SAMPLER,
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("KILL_ONCE_LOG", raising=False)
    registry.refresh()
    yield
    sys.modules.pop("kill_once_sampler", None)
    registry.refresh()


def _calls(log: Path) -> list[tuple[int, int]]:
    """(cycle, pid) of every `kill-once` selection logged so far."""
    return [tuple(map(int, line.split())) for line in log.read_text().splitlines()] if log.exists() else []


def _poll(condition, timeout: float) -> bool:
    """Whether `condition()` became true within `timeout` seconds (checked every 50 ms)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.slow
def test_a_dask_worker_that_dies_has_its_task_resumed_from_its_last_committed_cycle(
    tmp_path, kill_once_plugin, monkeypatch
):
    pytest.importorskip("distributed")
    # one task on two workers: when its worker dies the other one is idle and takes the rerun at once
    spec = build_spec("smoke", None, {"samplers": "kill-once", "seeds": 1})

    def run_spec(root, **kwargs):
        the_plan = plan(spec, root)
        errors = run_plan(the_plan, **kwargs)
        assert errors and not any(errors.values()), errors
        with Store(the_plan.out_dir, readonly=True) as store:
            statuses = store.statuses()
        return (
            results.load(the_plan.out_dir)[COLUMNS],
            results.load_selections(the_plan.out_dir)[SELECTION],
            statuses,
        )

    rows, picks, _ = run_spec(tmp_path / "sequential")  # no KILL_ONCE_LOG: kills nothing

    log = tmp_path / "select.log"
    killed = tmp_path / "select.log.killed"
    monkeypatch.setenv("KILL_ONCE_LOG", str(log))  # before the LocalCluster starts: its workers inherit it
    commit_cycle = Store.commit_cycle

    def slow_commit(store, record):
        """The driver commits the dying task's cycle 0 only after the kill, and late: a rerun that read its resume
        point without waiting for the records the dead worker had queued would start from scratch (selecting in
        cycle 0 again, which ends this wait early)."""
        if record.cycle == 0:
            assert _poll(killed.exists, 60), "the kill-once worker was never killed"
            _poll(lambda: [c for c, _ in _calls(log)].count(0) > 1, 6)
        commit_cycle(store, record)

    # patched in this process only: on Dask the driver alone commits, and the workers are other processes
    monkeypatch.setattr(Store, "commit_cycle", slow_commit)
    dask_rows, dask_picks, statuses = run_spec(tmp_path / "dask", jobs=2, executor="dask")

    pd.testing.assert_frame_equal(dask_rows, rows)
    pd.testing.assert_frame_equal(dask_picks, picks)
    assert {status for status, _ in statuses.values()} == {"done"}
    calls = _calls(log)
    # cycle 0 selected once: the rerun resumed from the committed cycle 0, not from scratch; cycle 1 twice: once in
    # the worker process that was killed, once (to the end) in another one
    assert sorted(cycle for cycle, _ in calls) == [0, 1, 1], calls
    first, rerun = [pid for cycle, pid in calls if cycle == 1]
    assert first != rerun and killed.exists()
