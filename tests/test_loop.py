"""The active-learning loop end to end on the built-in synthetic data (smoke preset: seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fault_factory import run_until_first_commit

from alpose_bench.engine.build import initial_labelled, load_dataset
from alpose_bench.experiment.runner import plan, run_plan
from alpose_bench.results import read as results
from alpose_bench.spec.config import ConfigError, build_spec, dataset_config

DETERMINISTIC = ["dataset", "sampler", "seed", "cycle", "n_labelled", "metric", "value", "n_selected"]


def run(tmp: Path, **overrides) -> pd.DataFrame:
    spec = build_spec("smoke", None, {"samplers": "random", **overrides})
    the_plan = plan(spec, tmp)
    errors = run_plan(the_plan)
    assert not any(errors.values()), errors
    return results.load(the_plan.out_dir)


def selections(path: Path) -> pd.DataFrame:
    return results.load_selections(path)[["dataset", "sampler", "seed", "cycle", "rank", "index"]]


@pytest.mark.parametrize("dataset, metric", [("synth-human", "pckh"), ("synth-hand", "mpjpe")])
def test_cycles_grow_the_labelled_set_without_reselecting(tmp_path, dataset, metric):
    df = run(tmp_path, datasets=dataset, seeds=2)
    spec = build_spec("smoke", None, {"datasets": dataset})
    assert len(df) == 2 * (spec.cycles + 1)
    assert set(df["metric"]) == {metric}
    for _, g in df.groupby("seed"):
        assert list(g["n_labelled"]) == [spec.init + c * spec.budget for c in range(spec.cycles + 1)]
    assert np.isfinite(df["value"]).all() and (df["train_s"] > 0).all()
    assert df["select_s"].isna().tolist() == [False] * spec.cycles + [True] + [False] * spec.cycles + [True]
    sel = results.load_selections(tmp_path / spec.name)
    ds = load_dataset(dataset, dataset_config(spec))
    for seed, g in sel.groupby("seed"):
        init = initial_labelled(ds, spec.init, seed)
        picked = g["index"].to_numpy()
        assert len(np.unique(picked)) == len(picked) == spec.cycles * spec.budget
        assert not np.isin(picked, init).any()
    # every cycle (the shared cycle 0 too) is scored on the test and ood splits, whole and per pose mode
    evals = results.load_evals(tmp_path / spec.name)
    whole = evals[(evals["split"] == "test") & (evals["group"] == "all")].set_index(["seed", "cycle"])[
        "value"
    ]
    np.testing.assert_allclose(whole.sort_index(), df.set_index(["seed", "cycle"])["value"].sort_index())
    ood = evals[evals["split"] == "ood"]
    assert ood.groupby(["seed", "cycle"]).size().size == len(df)
    per_mode = ood[ood["group"] != "all"].groupby(["seed", "cycle"])["n_images"].sum()
    assert (per_mode == ds.ood.images.shape[0]).all() and set(ood["group"]) - {"all"} <= set(ds.group_names)


def test_same_seed_same_rows_and_resume_after_interruption(tmp_path):
    full = run(tmp_path / "a")
    # interrupt a second run after its first committed cycle, then rerun the same spec
    spec = build_spec("smoke", None, {"samplers": "random"})
    the_plan = plan(spec, tmp_path / "b")
    run_until_first_commit(the_plan)
    partial = results.load(the_plan.out_dir)
    assert len(partial) == 1
    resumed = run(tmp_path / "b")
    pd.testing.assert_frame_equal(full[DETERMINISTIC], resumed[DETERMINISTIC])
    pd.testing.assert_frame_equal(
        selections(tmp_path / "a" / spec.name), selections(tmp_path / "b" / spec.name)
    )
    # a third run of a complete experiment has nothing to do and changes nothing
    assert plan(spec, tmp_path / "b").pending == []


def test_budget_larger_than_the_pool_is_refused_before_training(tmp_path):
    spec = build_spec("smoke", None, {"samplers": "random", "budget": 10_000})
    with pytest.raises(ConfigError, match="lower --budget or --cycles"):
        plan(spec, tmp_path)
    assert not (tmp_path / spec.name).exists()


def test_from_scratch_trains_a_fresh_model_each_cycle(tmp_path):
    warm = run(tmp_path / "warm")
    scratch = run(tmp_path / "scratch", warm_start=False)
    assert warm["value"].iloc[0] == scratch["value"].iloc[0]  # cycle 0 is the same training
    assert not np.allclose(warm["value"].iloc[1:], scratch["value"].iloc[1:])


@pytest.mark.slow
def test_a_completed_run_leaves_no_checkpoint_behind(tmp_path):
    """Task checkpoints go when their task completes, the shared cycle-0 checkpoint once every task of its
    (dataset, seed) has committed cycle 0, and the folders with them."""
    spec = build_spec("smoke", None, {"samplers": "random,mpe", "seeds": 2})
    the_plan = plan(spec, tmp_path)
    assert not any(run_plan(the_plan).values())
    assert not (the_plan.out_dir / "checkpoints").exists()
    assert sorted(p.name for p in the_plan.out_dir.iterdir()) == ["results.sqlite"]  # no -wal or -shm left


@pytest.mark.slow
def test_every_scoring_sampler_records_the_scores_of_its_picks(tmp_path):
    """EGL++ selects by itself (a seeded candidate subset): its picks' scores are stored like any scorer's."""
    df = run(tmp_path, samplers="egl,mpe,random")
    picks = results.load_selections(tmp_path / df.attrs.get("name", "synth-human-smoke"))
    scored = picks[picks["sampler"].isin(["egl", "mpe"])]
    assert len(scored) and scored["score"].notna().all()
    assert picks.loc[picks["sampler"] == "random", "score"].isna().all()
    for _, g in scored.groupby(["sampler", "seed", "cycle"]):
        assert (np.diff(g.sort_values("rank")["score"].to_numpy()) <= 0).all()  # in pick order: highest first


def test_resuming_on_changed_data_is_refused(tmp_path):
    """An experiment started on synth-human generated by an older version of the generator (recorded in its dataset
    information) is not resumed on today's images."""
    import json
    import sqlite3

    spec = build_spec("smoke", None, {"samplers": "random", "cycles": 1})
    the_plan = plan(spec, tmp_path)
    assert not any(run_plan(the_plan).values())
    db = the_plan.out_dir / "results.sqlite"
    conn = sqlite3.connect(db)
    info = json.loads(conn.execute("SELECT info FROM datasets WHERE name = 'synth-human'").fetchone()[0])
    assert info["version"] == 2
    del info["version"]  # what experiments stored before versions were recorded (generator version 1)
    conn.execute("UPDATE datasets SET info = ? WHERE name = 'synth-human'", (json.dumps(info),))
    conn.commit()
    conn.close()
    with pytest.raises(
        ConfigError, match=r"is not the data this experiment started on \(version: 1 then, 2 now\)"
    ):
        plan(spec, tmp_path)


def test_an_experiment_stored_before_the_speed_settings_resumes_as_it_was_started(tmp_path):
    """A folder whose stored spec has no `precision` / `fast_kernels` (written before they existed) resumes with
    the values it ran with (fp32, contiguous, default Adam) when the user does not ask otherwise, and ends with the
    rows of an uninterrupted run at those settings."""
    import json
    import sqlite3

    legacy = {"samplers": "random", "precision": "fp32", "fast_kernels": False}
    reference = run(tmp_path / "ref", **legacy)
    spec = build_spec("smoke", None, legacy)
    the_plan = plan(spec, tmp_path / "old")
    run_until_first_commit(the_plan)
    db = the_plan.out_dir / "results.sqlite"
    conn = sqlite3.connect(db)  # make it look like a folder of an older version
    stored = json.loads(conn.execute("SELECT value FROM experiment WHERE key = 'spec'").fetchone()[0])
    for key in ("precision", "fast_kernels"):
        del stored[key]
    conn.execute("UPDATE experiment SET value = ? WHERE key = 'spec'", (json.dumps(stored),))
    conn.commit()
    conn.close()
    default = build_spec("smoke", None, {"samplers": "random"})  # the command line of today: fast settings
    resumed_plan = plan(default, tmp_path / "old")
    (note,) = resumed_plan.notes  # precision is named too where "auto" would have chosen bf16 on this machine
    assert note.startswith("resuming with the settings this experiment was started with:")
    assert note.endswith("fast_kernels=False") and resumed_plan.spec.precision == "fp32"
    assert not any(run_plan(resumed_plan).values())
    resumed = results.load(resumed_plan.out_dir)
    pd.testing.assert_frame_equal(reference[DETERMINISTIC], resumed[DETERMINISTIC])
    # a value the user chose that is neither the default nor what the experiment ran with is another experiment;
    # where the CPU computes bf16 natively (AVX-512 BF16, AMX) "auto" is bf16 and no such third value exists
    import torch

    from alpose_bench.core.compute import resolve_precision

    if resolve_precision("auto", torch.device("cpu")) == "fp32":
        with pytest.raises(Exception, match="settings differ: .*precision"):
            plan(default.replace(precision="bf16"), tmp_path / "old")


def test_one_cycle_schedule_warms_up_to_the_lr_and_anneals_every_group_while_constant_keeps_it() -> None:
    import torch

    from alpose_bench.engine.train import lr_scheduler

    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    opt = torch.optim.Adam([{"params": [params[0]]}, {"params": [params[1]], "lr": 1e-3}], lr=1e-2)
    assert lr_scheduler(opt, "constant", 100) is None
    schedule = lr_scheduler(opt, "one-cycle", 100)
    seen = []
    for _ in range(100):
        opt.step()
        schedule.step()
        seen.append([g["lr"] for g in opt.param_groups])
    seen = np.array(seen)
    assert seen[:, 0].max() == pytest.approx(1e-2, rel=0.02) and seen[:, 1].max() == pytest.approx(1e-3, rel=0.02)
    assert 20 <= seen[:, 0].argmax() <= 40  # the warm-up is 30 % of the steps
    assert seen[-1, 0] < 1e-5 and seen[0, 0] < 1e-3  # starts low, ends near zero
    with pytest.raises(ValueError, match="unknown lr_schedule 'cosine'"):
        lr_scheduler(opt, "cosine", 100)


def test_an_unknown_lr_schedule_is_a_one_line_error_before_training(tmp_path):
    with pytest.raises(ConfigError, match="lr_schedule"):
        build_spec("smoke", None, {"lr_schedule": "cosine"})
