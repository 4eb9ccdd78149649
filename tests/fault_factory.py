"""Faults the tests inject into a run in this process: a NaN loss in one task's cycle, a stop right after a commit."""

from __future__ import annotations

import pytest

import alpose_bench.results.store as store_mod
from alpose_bench.core.seeds import derive_seed
from alpose_bench.engine import train as train_module


def nan_loss_in(monkeypatch: pytest.MonkeyPatch, sampler: str, seed: int = 0, cycle: int = 1) -> None:
    """The pose loss of task (sampler, seed) turns NaN in the training of `cycle`; other trainings are untouched."""
    real_train, real_loss = train_module.train, train_module.pose_loss
    diverging = derive_seed("train", seed, cycle, sampler)  # that training's seed

    def train_with_fault(*args, seed, **kwargs):
        if seed != diverging:
            return real_train(*args, seed=seed, **kwargs)
        with pytest.MonkeyPatch.context() as m:
            m.setattr(train_module, "pose_loss", lambda out, batch: real_loss(out, batch) * float("nan"))
            return real_train(*args, seed=seed, **kwargs)

    monkeypatch.setattr(train_module, "train", train_with_fault)


def run_until_first_commit(the_plan) -> None:
    """Run a plan in this process and stop it (KeyboardInterrupt) right after its first committed cycle."""
    from alpose_bench.experiment.runner import run_plan

    original, calls = store_mod.Store.commit_cycle, {"n": 0}

    def commit_then_die(self, record):
        original(self, record)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    store_mod.Store.commit_cycle = commit_then_die
    try:
        with pytest.raises(KeyboardInterrupt):
            run_plan(the_plan)
    finally:
        store_mod.Store.commit_cycle = original
