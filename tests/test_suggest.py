"""`alpose-bench suggest`: a user's project in, ranked frames out — on projects made of real LSPET photographs.

The projects are written by `data example-project` (COCO by hand as COCO is written, SLEAP by sleap-io, DeepLabCut
as DeepLabCut writes it), so every format is read by the library that reads it in the field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from alpose_bench.cli import cli
from alpose_bench.spec.advice import ERROR_SEEKING, LOW_BUDGET, advise
from alpose_bench.suggest.example_project import write_example_project
from alpose_bench.suggest.frames import letterbox, to_input, to_source
from alpose_bench.suggest.project import Frame, ProjectError, read_project
from alpose_bench.suggest.suggester import SuggestOptions, box_diagonal, suggest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
#: small and fast: 96 px input, two epochs; the numbers are not the point here, the plumbing is
FAST = dict(resolution=96, epochs=2, budget=6)


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), obj={})


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not (SHARED_DATA / "lspet" / "joints.mat").is_file():
        pytest.skip(f"LSPET not found under {SHARED_DATA}")
    out = tmp_path_factory.mktemp("lspet-project")
    paths = write_example_project(out, labelled=24, candidates=30, seed=1, data_root=SHARED_DATA)
    return {**paths, "root": out, "truth": out / "truth.json"}


def _options(**changes) -> SuggestOptions:
    return SuggestOptions(**{**FAST, "samplers": ("vl4pose", "mpe", "random"), **changes})


def test_the_three_formats_read_the_same_project(project) -> None:
    coco, dlc, sleap = (read_project(project[f]) for f in ("coco", "dlc", "sleap"))
    for other in (dlc, sleap):
        assert other.skeleton.joints == coco.skeleton.joints
        assert other.skeleton.links == coco.skeleton.links
        assert [Path(f.image).name for f in other.labelled] == [Path(f.image).name for f in coco.labelled]
        assert [Path(f.image).name for f in other.candidates] == [Path(f.image).name for f in coco.candidates]
        np.testing.assert_array_equal(other.keypoints, coco.keypoints)
        np.testing.assert_array_equal(other.visible, coco.visible)
    assert (len(coco.labelled), len(coco.candidates)) == (24, 30)
    assert coco.format == "coco" and dlc.format == "dlc" and sleap.format == "sleap"


def test_suggestions_are_identical_across_formats(project) -> None:
    found = {
        f: suggest(read_project(project[f]), _options(), say=lambda _: None) for f in ("coco", "dlc", "sleap")
    }
    base = found["coco"]
    for other in (found["dlc"], found["sleap"]):
        assert [r.sampler for r in other.rankings] == [r.sampler for r in base.rankings]
        for mine, theirs in zip(other.rankings, base.rankings):
            np.testing.assert_array_equal(mine.scores, theirs.scores)
            np.testing.assert_array_equal(mine.picks, theirs.picks)
            assert mine.reasons == theirs.reasons
        np.testing.assert_array_equal(other.predicted, base.predicted)
        assert other.accuracy == base.accuracy


def test_cli_writes_ranking_contact_sheet_and_picks(project, tmp_path) -> None:
    out = tmp_path / "out"
    result = invoke("suggest", str(project["coco"]), "--sampler", "vl4pose,mpe,random", "--budget", "6",
                    "--epochs", "2", "--resolution", "96", "--out", str(out), "--truth", str(project["truth"]))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "held-out accuracy: PCK@0.2" in result.output and "on 5 of 24 labelled frames" in result.output
    assert "Spearman" in result.output  # the truth table
    table = pd.read_csv(out / "vl4pose.csv")
    assert len(table) == 30 and table["rank"].tolist() == list(range(1, 31))
    assert table["score"].is_monotonic_decreasing
    assert int(table["picked"].sum()) == 6 and sorted(table["pick"].dropna().astype(int)) == list(range(1, 7))
    assert table["why"].str.startswith("least likely limb").all()
    assert {"head_top_x", "head_top_y", "r_ankle_x"} <= set(table.columns)
    assert pd.read_csv(out / "mpe.csv")["why"].str.startswith("most ambiguous joint").all()
    random = pd.read_csv(out / "random.csv")
    assert random["score"].isna().all() and random["rank"].notna().sum() == 6  # ranks its picks only
    picks = json.loads((out / "vl4pose-picks.json").read_text())
    assert len(picks["images"]) == 6 and picks["annotations"] == []
    assert picks["categories"][0]["keypoints"][-1] == "head_top"
    chosen = set(table.loc[table["picked"], "frame"])
    assert {im["file_name"] for im in picks["images"]} == chosen
    from PIL import Image

    with Image.open(out / "vl4pose-picks.png") as sheet:
        assert sheet.size[0] > 0 and sheet.size[1] > 0


def test_picks_are_written_in_each_tool_s_own_format(project, tmp_path) -> None:
    import sleap_io as sio

    args = ("--sampler", "mpe", "--budget", "6", "--epochs", "2", "--resolution", "96")
    assert invoke("suggest", str(project["dlc"]), *args, "--out", str(tmp_path / "dlc")).exit_code == 0
    lines = (tmp_path / "dlc" / "mpe-picks.txt").read_text().split()
    assert len(lines) == 6 and all(line.startswith("labeled-data/lspet/") for line in lines)
    assert all((project["dlc"] / line).exists() for line in lines)
    assert invoke("suggest", str(project["sleap"]), *args, "--out", str(tmp_path / "sleap")).exit_code == 0
    labels = sio.load_slp(str(tmp_path / "sleap" / "mpe-suggestions.slp"))
    assert len(labels.suggestions) == 6
    assert len(labels.user_labeled_frames) == 24  # the project itself is kept


def test_spread_picks_differ_from_the_plain_top_scores(project) -> None:
    read = read_project(project["coco"])
    spread = suggest(read, _options(samplers=("mpe",), budget=3), say=lambda _: None).rankings[0]
    plain = suggest(read, _options(samplers=("mpe",), budget=3, spread=False), say=lambda _: None).rankings[0]
    np.testing.assert_array_equal(plain.picks, plain.order()[:3])
    assert spread.picker == "mpe+kmeans" and plain.picker == "mpe"
    np.testing.assert_array_equal(spread.scores, plain.scores)


def test_default_sampler_follows_the_measured_regime(project) -> None:
    found = suggest(read_project(project["coco"]), _options(samplers=()), say=lambda _: None)
    assert found.chosen_by_advice
    assert found.advice == advise(found.accuracy)
    assert [r.sampler for r in found.rankings] == [found.advice.sampler]
    assert advise(10.0) is LOW_BUDGET and advise(80.0) is ERROR_SEEKING and advise(None) is LOW_BUDGET
    assert advise(40.0, competent=30.0) is ERROR_SEEKING


def test_saved_model_warm_starts_and_is_checked_against_the_skeleton(project, tmp_path) -> None:
    model = tmp_path / "model.pt"
    args = ("--sampler", "mpe", "--budget", "3", "--epochs", "1", "--resolution", "96")
    first = invoke(
        "suggest", str(project["coco"]), *args, "--out", str(tmp_path / "a"), "--save-model", str(model)
    )
    assert first.exit_code == 0, first.output
    again = invoke("suggest", str(project["coco"]), "--sampler", "mpe", "--budget", "3", "--epochs", "1",
                   "--out", str(tmp_path / "b"), "--model", str(model))  # fmt: skip
    assert again.exit_code == 0, again.output
    assert "warm-started from the saved model" in again.output
    # the same model on a project with other keypoints: one line, nothing written
    other = _edited_coco(
        project, tmp_path, lambda d: d["categories"][0]["keypoints"].__setitem__(0, "left_foot")
    )
    bad = invoke("suggest", str(other), "--model", str(model), "--out", str(tmp_path / "c"))
    assert bad.exit_code == 2 and "was trained on 14 keypoints" in bad.output
    assert len(bad.output.strip().splitlines()) == 1 and not (tmp_path / "c").exists()


def _edited_coco(project, tmp_path: Path, edit) -> Path:
    data = json.loads(project["coco"].read_text())
    edit(data)
    path = tmp_path / f"edited-{len(list(tmp_path.glob('edited-*')))}.json"
    path.write_text(json.dumps(data))
    (tmp_path / "images").exists() or (tmp_path / "images").symlink_to(project["coco"].parent / "images")
    return path


def _one_line_error(result, expected: str, out: Path) -> None:
    assert result.exit_code == 2, result.output
    assert expected in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not out.exists()


def test_bad_projects_fail_with_one_line_and_write_nothing(project, tmp_path) -> None:
    out = tmp_path / "out"
    no_labels = _edited_coco(project, tmp_path, lambda d: d.__setitem__("annotations", []))
    _one_line_error(invoke("suggest", str(no_labels), "--out", str(out)), "has no labelled frames", out)

    def only_labelled(d):
        d["images"] = [im for im in d["images"] if im["id"] in {a["image_id"] for a in d["annotations"]}]

    none_left = _edited_coco(project, tmp_path, only_labelled)
    _one_line_error(invoke("suggest", str(none_left), "--out", str(out)), "has no candidate frames", out)

    def missing(d):
        d["images"][0]["file_name"] = "nowhere.jpg"
        d["annotations"][0]["image_id"] = d["images"][0]["id"]

    gone = _edited_coco(project, tmp_path, missing)
    _one_line_error(invoke("suggest", str(gone), "--out", str(out)), "labelled images are missing", out)
    _one_line_error(
        invoke("suggest", str(tmp_path / "nothing.json"), "--out", str(out)), "does not exist", out
    )
    (tmp_path / "notes.txt").write_text("hello")
    _one_line_error(
        invoke("suggest", str(tmp_path / "notes.txt"), "--out", str(out)), "cannot tell the format", out
    )
    _one_line_error(invoke("suggest", str(project["coco"]), "--sampler", "oracle-hard", "--out", str(out)),
                    "reads the candidates' true labels", out)  # fmt: skip
    _one_line_error(
        invoke("suggest", str(project["coco"]), "--sampler", "nosuch", "--out", str(out)), "nosuch", out
    )
    _one_line_error(invoke("suggest", str(project["coco"]), "--model", "resnet", "--out", str(out)),
                    "neither a model family", out)  # fmt: skip
    edgeless = _edited_coco(project, tmp_path, lambda d: d["categories"][0].__setitem__("skeleton", []))
    _one_line_error(invoke("suggest", str(edgeless), "--sampler", "vl4pose", "--out", str(out)),
                    "VL4Pose needs the skeleton's edges", out)  # fmt: skip


def test_keypoints_that_differ_between_dlc_files_are_refused(project, tmp_path) -> None:
    folder = tmp_path / "dlc"
    shutil.copytree(project["dlc"], folder, symlinks=True)
    csv = folder / "labeled-data" / "lspet" / "CollectedData_bench.csv"
    second = folder / "labeled-data" / "other"
    second.mkdir()
    table = pd.read_csv(csv, header=[0, 1, 2], index_col=0)
    table = table.drop(columns="neck", level=1)
    table.index = [i.replace("/lspet/", "/other/") for i in table.index]
    for name in table.index:
        (folder / name).symlink_to((folder / name.replace("/other/", "/lspet/")).resolve())
    table.to_csv(second / "CollectedData_bench.csv")
    out = tmp_path / "out"
    _one_line_error(invoke("suggest", str(folder), "--out", str(out)), "labels 13 keypoints", out)


def test_unreadable_candidates_are_skipped_with_a_count(project, tmp_path) -> None:
    folder = tmp_path / "more"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    shutil.copy(project["coco"].parent / "images" / "im00001.jpg", folder / "extra.jpg")
    out = tmp_path / "out"
    result = invoke("suggest", str(project["coco"]), "--unlabelled", str(folder), "--sampler", "mpe",
                    "--budget", "3", "--epochs", "1", "--resolution", "96", "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "skipped 1 candidate frame(s) that cannot be read" in result.output
    frames = pd.read_csv(out / "mpe.csv")["frame"].tolist()
    assert len(frames) == 31 and any(f.endswith("extra.jpg") for f in frames)


def test_letterbox_maps_points_there_and_back() -> None:
    box = np.array([letterbox(300, 200)])
    points = np.array([[[0.0, 0.0], [299.0, 199.0], [150.0, 20.0]]], dtype=np.float32)
    there = to_input(points, box, 96)
    assert (there >= -0.5).all() and (there <= 95.5).all()
    np.testing.assert_allclose(to_source(there, box, 96), points, atol=1e-3)
    assert box_diagonal(points[:, :2], np.array([[True, True]]))[0] == pytest.approx(np.hypot(299, 199))


def test_frames_sort_by_file_name_first() -> None:
    frames = [Frame("b", "/z/a.jpg", 0, 0), Frame("a", "/a/b.jpg", 0, 0), Frame("c", None, 1, 3)]
    assert [f.key for f in sorted(frames, key=lambda f: f.order)] == ["b", "a", "c"]


def test_project_errors_are_user_errors() -> None:
    from alpose_bench.core.failures import UserFacingError

    assert issubclass(ProjectError, UserFacingError)


@pytest.mark.slow
def test_suggestions_find_the_frames_the_model_gets_wrong(shared_data, tmp_path) -> None:
    """On real photographs with the labels of the candidates hidden: the uncertainty scores follow the true error
    better than chance (ρ > 0 at p < 0.01), and their top-scored frames are worse-predicted than the average
    candidate (unspread: with 300 candidates, k-means over the top 10 x 30 would be pure coverage)."""
    from alpose_bench.suggest.truth import agreement

    paths = write_example_project(tmp_path, labelled=150, candidates=300, seed=2, data_root=shared_data)
    found = suggest(
        read_project(paths["coco"]), SuggestOptions(samplers=("vl4pose", "mpe"), budget=30, epochs=20, spread=False),
        say=lambda _: None,
    )  # fmt: skip
    report = agreement(found, tmp_path / "truth.json")
    for row in report.rows:
        assert row.spearman is not None and row.spearman > report.chance[1] and row.p_value < 0.01, row
        assert row.picks_error_ratio > 1.0, row


def test_the_from_scratch_hourglass_is_an_option(project, tmp_path) -> None:
    out = tmp_path / "out"
    result = invoke("suggest", str(project["coco"]), "--model", "hourglass", "--sampler", "vl4pose", "--budget", "4",
                    "--epochs", "1", "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "training the hourglass model" in result.output
    assert len(pd.read_csv(out / "vl4pose.csv")) == 30


def test_an_unreadable_labelled_image_is_refused(project, tmp_path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    # the LSPET folder is shared: a private folder of links, with one labelled image broken
    data = json.loads(project["coco"].read_text())
    for im in data["images"]:
        (images / im["file_name"]).symlink_to((project["coco"].parent / "images" / im["file_name"]).resolve())
    labelled = next(im for im in data["images"] if im["id"] == data["annotations"][0]["image_id"])
    (images / labelled["file_name"]).unlink()
    (images / labelled["file_name"]).write_bytes(b"\xff\xd8 cut short")
    path = tmp_path / "project.json"
    path.write_text(json.dumps(data))
    out = tmp_path / "out"
    _one_line_error(invoke("suggest", str(path), "--out", str(out), "--resolution", "96"),
                    "labelled frames cannot be read", out)  # fmt: skip
