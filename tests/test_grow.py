"""An experiment grows (issue 19): more samplers or seeds on a stored experiment add their tasks; the protocol and
the parameters of stored samplers stay what they were."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from test_cli import invoke, one_line_error

from alpose_bench.results import read as results
from alpose_bench.results.store import Store

ROWS = ["dataset", "sampler", "seed", "cycle", "n_labelled", "metric", "value", "n_selected"]
PICKS = ["dataset", "sampler", "seed", "cycle", "rank", "index"]


def smoke(out: Path, name: str, *args: str):
    return invoke("run", "--preset", "smoke", "--jobs", "1", "--out", str(out), "--name", name, *args)


def frame(folder: Path, columns: list[str], loader=results.load) -> pd.DataFrame:
    return loader(folder)[columns].sort_values(columns[:4]).reset_index(drop=True)


@pytest.mark.slow
def test_adding_a_sampler_and_a_seed_keeps_the_old_rows_and_equals_a_run_that_had_them_from_the_start(
    tmp_path: Path,
) -> None:
    assert smoke(tmp_path, "grow", "--samplers", "random", "--seeds", "1").exit_code == 0
    before = frame(tmp_path / "grow", ROWS)
    grown = smoke(tmp_path, "grow", "--samplers", "random,mpe", "--seeds", "2")
    assert grown.exit_code == 0, grown.output
    assert "adding to the stored experiment: sampler(s) mpe, seeds 1..1" in " ".join(grown.output.split())
    assert smoke(tmp_path, "whole", "--samplers", "random,mpe", "--seeds", "2").exit_code == 0
    after = frame(tmp_path / "grow", ROWS)
    old = after[(after["sampler"] == "random") & (after["seed"] == 0)].reset_index(drop=True)
    pd.testing.assert_frame_equal(old, before)  # the stored rows are untouched
    pd.testing.assert_frame_equal(after, frame(tmp_path / "whole", ROWS))
    pd.testing.assert_frame_equal(
        frame(tmp_path / "grow", PICKS, results.load_selections),
        frame(tmp_path / "whole", PICKS, results.load_selections),
    )
    with Store(tmp_path / "grow", readonly=True) as store:
        spec = store.get_meta("spec")
    assert spec["samplers"] == ["random", "mpe"] and spec["seeds"] == 2
    # the report shows every stored task and says which sampler lacks which seeds
    assert smoke(tmp_path, "grow", "--samplers", "vl4pose", "--seeds", "1").exit_code == 0
    report = invoke("report", str(tmp_path / "grow"))
    assert report.exit_code == 0, report.output
    text = (tmp_path / "grow" / "report.md").read_text()
    assert "VL4Pose lacks seed 1" in text


def test_another_protocol_or_other_parameters_of_a_stored_sampler_are_refused(tmp_path: Path) -> None:
    assert smoke(tmp_path, "p", "--samplers", "random", "--seeds", "1").exit_code == 0
    one_line_error(smoke(tmp_path, "p", "--samplers", "random", "--budget", "8"), "settings differ: budget")
    assert smoke(tmp_path, "q", "--samplers", "vl4pose", "--seeds", "1").exit_code == 0
    one_line_error(
        smoke(tmp_path, "q", "--samplers", "vl4pose", "--sampler-param", "vl4pose.num_peaks=3"),
        "sampler 'vl4pose' ran here with parameters",
    )


@pytest.mark.slow
def test_an_experiment_stored_under_a_former_sampler_name_resumes_under_the_new_one_with_the_same_results(
    tmp_path: Path,
) -> None:
    """Learning Loss was `learning_loss` before the one naming rule (lower case, hyphens): an experiment stored
    then, with its last cycle still to run, resumes under `learning-loss`; what it computes equals an uninterrupted
    run's (the random streams keep the first name), and no row keeps the old name."""
    args = ("--samplers", "random,learning-loss", "--seeds", "1")
    assert smoke(tmp_path, "whole", *args).exit_code == 0
    assert smoke(tmp_path, "old", *args).exit_code == 0
    with Store(tmp_path / "old") as store:  # as a version before the rename left it: last cycle not yet run
        last = max(store.committed("synth-human", "learning-loss", 0))
        with store.conn:
            for table in ("cycles", "selections", "evals", "arrays"):
                store.conn.execute(
                    f"DELETE FROM {table} WHERE sampler = 'learning-loss' AND cycle = ?", (last,)
                )
        store.set_status("synth-human", "learning-loss", 0, "running")
        store.rename_sampler("learning-loss", "learning_loss")
    resumed = smoke(tmp_path, "old", "--samplers", "random,learning_loss", "--seeds", "1")
    assert resumed.exit_code == 0, resumed.output
    assert "sampler 'learning_loss' is now called 'learning-loss'" in " ".join(resumed.output.split())
    pd.testing.assert_frame_equal(frame(tmp_path / "old", ROWS), frame(tmp_path / "whole", ROWS))
    pd.testing.assert_frame_equal(
        frame(tmp_path / "old", PICKS, results.load_selections),
        frame(tmp_path / "whole", PICKS, results.load_selections),
    )
    with Store(tmp_path / "old", readonly=True) as store:
        assert store.get_meta("spec")["samplers"] == ["random", "learning-loss"]
        assert set(store.samplers()) == {"random", "learning-loss"}


def test_checkpoints_of_a_renamed_sampler_move_and_the_shared_cycle0_keys_its_head_by_the_new_name(
    tmp_path: Path,
) -> None:
    import torch

    from alpose_bench.engine import checkpoints

    shared = checkpoints.cycle0_path(tmp_path, "synth-human", 0)
    task = checkpoints.task_checkpoint(tmp_path, "synth-human", "learning_loss", 0, 2)
    head = {"w": torch.ones(2)}
    checkpoints.save({"model": {}, "heads": {"learning_loss": head}, "has_head": ["learning_loss"],
                      "samplers": ["random", "learning_loss"], "failed": {}}, shared)  # fmt: skip
    checkpoints.save({"model": {}, "head": head}, task)
    for _ in range(2):  # a rename interrupted and repeated changes nothing more
        checkpoints.rename_sampler(tmp_path, "learning_loss", "learning-loss")
    saved = checkpoints.load(shared, "")
    assert saved["samplers"] == ["random", "learning-loss"] and saved["has_head"] == ["learning-loss"]
    assert (
        torch.equal(saved["heads"]["learning-loss"]["w"], head["w"]) and "learning_loss" not in saved["heads"]
    )
    assert not task.parent.exists()
    assert checkpoints.task_checkpoint(tmp_path, "synth-human", "learning-loss", 0, 2).exists()
