"""The results database: atomic cycles, refusal of a different experiment, tidy frames."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from alpose_bench import results
from alpose_bench.store import CycleRecord, Store, StoreError


def record(cycle: int, selected=(3, 1), value=50.0) -> CycleRecord:
    return CycleRecord(
        dataset="synth-human", sampler="random", seed=0, cycle=cycle, n_labelled=10 + 2 * cycle, metric="pckh",
        value=value, per_joint={"head_top": 60.0, "pelvis": None}, train_s=1.5, eval_s=0.5, select_s=0.2,
        select_images=100, selected=np.array(selected), scores=np.array([0.9, 0.8]), groups=np.array([2, -1]),
        arrays={"keypoints": np.ones((len(selected), 16, 2), dtype=np.float32)},
    )  # fmt: skip


def test_cycles_round_trip_into_tidy_frames(tmp_path):
    with Store(tmp_path) as store:
        store.claim({"name": "x", "budget": 2}, "fp1", {"git": "abc"})
        store.commit_cycle(record(0))
        store.commit_cycle(record(1, selected=(5, 7), value=55.0))
        assert store.completed_cycles("synth-human", "random", 0) == [0, 1]
        assert {c: list(v) for c, v in store.selected("synth-human", "random", 0).items()} == {
            0: [3, 1],
            1: [5, 7],
        }
    df = results.load(tmp_path)
    assert list(df["value"]) == [50.0, 55.0]
    assert df["select_ms_per_image"].iloc[0] == pytest.approx(2.0)  # 0.2 s over 100 images
    joints = results.load_joints(tmp_path)
    assert set(joints["joint"]) == {"head_top", "pelvis"} and joints["value"].isna().sum() == 2
    sel = results.load_selections(tmp_path)
    assert list(sel[sel["cycle"] == 0]["index"]) == [3, 1] and list(sel["group"])[:2] == [2, -1]
    kp = results.load_selection_keypoints(tmp_path, "synth-human", "random", 0, 1)
    assert list(kp["index"]) == [5, 7] and kp["keypoints"].shape == (2, 16, 2)
    assert results.load_experiment(tmp_path)["provenance"] == {"git": "abc"}


def test_a_cycle_is_all_or_nothing(tmp_path):
    with Store(tmp_path) as store:
        store.commit_cycle(record(0))
        with pytest.raises(sqlite3.IntegrityError):
            store.commit_cycle(record(0))  # the same cycle twice: rejected, and nothing half-written
        assert store.completed_cycles("synth-human", "random", 0) == [0]
        n = store.conn.execute("SELECT COUNT(*) FROM selections").fetchone()[0]
        assert n == 2


def test_a_different_experiment_under_the_same_name_is_refused(tmp_path):
    with Store(tmp_path) as store:
        store.claim({"budget": 2}, "fp1", {})
        store.claim({"budget": 2}, "fp1", {})  # same spec: fine (resume)
        with pytest.raises(StoreError, match="settings differ: budget"):
            store.claim({"budget": 3}, "fp2", {})


def test_reading_a_missing_folder_says_what_to_do(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        results.load(tmp_path / "nope")
    with pytest.raises(StoreError, match="run `alpose-bench run` first"):
        results.load(tmp_path)


def test_committed_counts_the_final_cycle_that_selects_nothing(tmp_path):
    with Store(tmp_path) as store:
        store.commit_cycle(record(0))
        final = record(1, selected=())
        final.scores = final.groups = None
        final.arrays = {}
        store.commit_cycle(final)
        committed = store.committed("synth-human", "random", 0)
    assert list(committed) == [0, 1]
    assert list(committed[0]) == [3, 1] and len(committed[1]) == 0
