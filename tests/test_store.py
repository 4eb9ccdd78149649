"""The results database: atomic cycles, refusal of a different experiment, tidy frames."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from alpose_bench.results import read as results
from alpose_bench.results.store import CycleRecord, Store, StoreError


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


def _database_with(tmp_path, content: bytes | None = None, sql: str | None = None):
    folder = tmp_path / "exp"
    folder.mkdir()
    path = folder / Store.FILENAME
    if content is not None:
        path.write_bytes(content)
    if sql is not None:
        conn = sqlite3.connect(path)
        conn.executescript(sql)
        conn.commit()
        conn.close()
    return folder, path


@pytest.mark.parametrize(
    "content, sql, message",
    [
        (b"these are not the results you are looking for" * 100, None, "is not an SQLite database"),
        (
            None,
            "CREATE TABLE people (name TEXT);",
            r"is not an alpose-bench results database \(no table experiment",
        ),
        (
            None,
            "CREATE TABLE experiment (key TEXT PRIMARY KEY, value TEXT NOT NULL); CREATE TABLE runs (x); "
            "CREATE TABLE cycles (x); CREATE TABLE selections (x); INSERT INTO experiment VALUES ('schema', '99');",
            "has schema version 99, newer than this alpose-bench reads",
        ),
    ],
)
def test_a_damaged_or_foreign_database_is_one_line_and_left_untouched(tmp_path, content, sql, message):
    folder, path = _database_with(tmp_path, content, sql)
    before = path.read_bytes()
    for open_it in (
        lambda: Store(folder, readonly=True),
        lambda: Store(folder),
        lambda: results.load(folder),
    ):
        with pytest.raises(StoreError, match=message) as info:
            open_it()
        assert "\n" not in str(info.value)
        assert "left as it is" in str(info.value) or "upgrade alpose-bench" in str(info.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == [Store.FILENAME]


def test_a_truncated_database_is_damaged(tmp_path):
    with Store(tmp_path) as store:
        store.claim({"budget": 2}, "fp1", {})
        for c in range(30):
            store.commit_cycle(record(c, selected=(3, 1)))
    path = tmp_path / Store.FILENAME
    data = path.read_bytes()
    assert len(data) > 8192
    for f in tmp_path.glob("results.sqlite-*"):
        f.unlink()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match="is damaged|is not an SQLite database"):
        results.load(tmp_path)


def test_a_version_1_database_gains_the_cpu_columns_and_keeps_its_rows(tmp_path):
    """Databases written before CPU seconds were recorded: read as NaN, then migrated when a run writes."""
    with Store(tmp_path) as store:
        store.commit_cycle(record(0))
        store.conn.execute("ALTER TABLE cycles DROP COLUMN train_cpu_s")
        store.conn.execute("DELETE FROM experiment WHERE key = 'schema'")
        store.conn.commit()
    old = results.load(tmp_path)
    assert old["train_cpu_s"].isna().all() and list(old["value"]) == [50.0]
    with Store(tmp_path) as store:
        assert "train_cpu_s" in store.columns("cycles") and store.get_meta("schema") == 3
        r = record(1)
        r.train_cpu_s = 1.25
        store.commit_cycle(r)
    new = results.load(tmp_path)
    assert np.isnan(new["train_cpu_s"].iloc[0]) and new["train_cpu_s"].iloc[1] == 1.25


def test_scores_of_every_split_and_mode_round_trip_and_old_databases_have_none(tmp_path):
    from alpose_bench.pose.evaluation import SplitScore

    r = record(0)
    r.evals = [SplitScore("test", "all", 50.0, 40), SplitScore("test", "lying", float("nan"), 0),
               SplitScore("ood", "all", 20.0, 40), SplitScore("ood", "lying", 12.5, 9)]  # fmt: skip
    with Store(tmp_path) as store:
        store.commit_cycle(r)
    evals = results.load_evals(tmp_path)
    assert list(zip(evals["split"], evals["group"])) == [("test", "all"), ("test", "lying"), ("ood", "all"),
                                                         ("ood", "lying")]  # fmt: skip
    assert evals["value"].isna().tolist() == [False, True, False, False]
    assert list(evals["n_labelled"]) == [10] * 4 and list(evals["n_images"]) == [40, 0, 40, 9]
    with Store(tmp_path) as store:  # a version-2 database: no evals table
        store.conn.execute("DROP TABLE evals")
        store.conn.commit()
    assert results.load_evals(tmp_path).empty
