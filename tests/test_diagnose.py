"""`alpose-bench diagnose`: sampler scores against the model's real error, OOD AUROC, VL4Pose refinement, CLI."""

from __future__ import annotations

import contextlib
import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner

from alpose_bench.cli import cli
from alpose_bench.engine import build
from alpose_bench.pose.heatmaps import decode_keypoints
from alpose_bench.pose.metrics import per_image_error
from alpose_bench.samplers.base import ScoringSampler
from alpose_bench.spec.config import ConfigError, build_spec
from alpose_bench.testing import make_dataset
from alpose_bench.tools.diagnose import (
    DiagnoseReport,
    diagnose,
    ood_auroc,
    precision_at_k,
    refinement_figures,
    spearman,
)

# -- statistics by hand -----------------------------------------------------------------------------------


def test_precision_at_k_counts_picks_among_the_k_worst():
    errors = np.array([1.0, 5.0, 4.0, 2.0, 3.0])  # the 2 worst: positions 1 and 2
    assert precision_at_k(np.array([0, 1]), errors, 2) == 0.5
    assert precision_at_k(np.array([2, 1]), errors, 2) == 1.0
    assert precision_at_k(np.array([0, 3]), errors, 2) == 0.0
    # an image without annotated joints (NaN error) is never among the worst
    assert precision_at_k(np.array([0]), np.array([np.nan, 1.0, 2.0]), 1) == 0.0
    with pytest.raises(ValueError, match="k >= 1 picks"):
        precision_at_k(np.array([0, 1, 2]), errors, 2)


def test_spearman_is_rank_correlation_over_finite_pairs():
    assert spearman(np.array([1.0, 2, 3, 4]), np.array([10.0, 20, 35, 40]))[0] == pytest.approx(1.0)
    assert spearman(np.array([1.0, 2, 3, 4]), np.array([4.0, 3, 2, 1]))[0] == pytest.approx(-1.0)
    # the NaN pair is dropped; what is left is perfectly monotone
    rho, p = spearman(np.array([1.0, 2, np.nan, 3, 4]), np.array([1.0, 2, 100, 3, 4]))
    assert rho == pytest.approx(1.0) and p == pytest.approx(0.0)
    # [1, 2, 3, 4] vs [2, 1, 4, 3]: d^2 = 4, rho = 1 - 6 * 4 / (4 * 15) = 0.6
    assert spearman(np.array([1.0, 2, 3, 4]), np.array([2.0, 1, 4, 3]))[0] == pytest.approx(0.6)
    assert spearman(np.ones(5), np.arange(5.0)) == (None, None)  # constant scores: undefined, not 0


def test_ood_auroc_by_hand():
    assert ood_auroc(np.array([0.1, 0.2]), np.array([0.3, 0.4])) == 1.0
    assert ood_auroc(np.array([0.3, 0.4]), np.array([0.1, 0.2])) == 0.0
    # OOD 0.2 beats in 0.1 only, OOD 0.3 beats in 0.1 only: 2 of 4 pairs
    assert ood_auroc(np.array([0.1, 0.4]), np.array([0.2, 0.3])) == 0.5
    assert ood_auroc(np.array([np.nan]), np.array([1.0])) is None


def test_refinement_figures_by_hand():
    ds = make_dataset(n_train=2, n_test=1, resolution=32)
    split = ds.train
    plain = split.keypoints.astype(np.float64)  # perfect predictions: PCKh 100 %
    argmax = plain + np.array([0.4, 0.0])  # the argmax pixels lie 0.4 px from the decoded keypoints
    refined = argmax.copy()  # refinement kept every joint on its top peak...
    refined[0, 0] = plain[0, 0] + 30.0  # ...except joint 0 of image 0, moved to a far-away peak
    counted = split.visible[:, ds.skeleton.mean_joints()].sum()
    assert split.visible[0, 0]
    r = refinement_figures("vl4pose", 5, ds, split, plain, argmax, refined, heatmap_scale=2.0)
    assert r.plain == pytest.approx(100.0)
    assert r.refined == pytest.approx(100.0 * (counted - 1) / counted)
    assert r.refined_moved_only == pytest.approx(r.refined)
    assert r.poses_changed == 0.5  # one of two poses
    assert r.joints_changed == pytest.approx(1 / (2 * ds.skeleton.num_joints))


# -- test-only samplers ------------------------------------------------------------------------------------


def _true_error(batch, ctx) -> np.ndarray:
    kp = decode_keypoints(batch.out, batch.images.shape[-1]).cpu().numpy()
    rows = ctx.pool[batch.positions]
    s = ctx.dataset.train
    return per_image_error(kp, s.keypoints[rows], s.visible[rows], s.normalizer[rows])


@dataclasses.dataclass
class Oracle(ScoringSampler):
    """Cheats: its score IS the model's error on the image (read from the ground truth)."""

    name = "oracle"
    description = "test-only: the true error"
    needs = frozenset({"keypoints"})

    def score_batch(self, batch, ctx):
        return _true_error(batch, ctx)


@dataclasses.dataclass
class AntiOracle(ScoringSampler):
    name = "anti-oracle"
    description = "test-only: minus the true error"
    needs = frozenset({"keypoints"})

    def score_batch(self, batch, ctx):
        return -_true_error(batch, ctx)


@dataclasses.dataclass
class Noise(ScoringSampler):
    name = "noise"
    description = "test-only: seeded uniform scores"

    def score_batch(self, batch, ctx):
        return ctx.rng.random(len(batch.positions))


@dataclasses.dataclass
class Brightness(ScoringSampler):
    name = "brightness"
    description = "test-only: mean pixel value"

    def score_batch(self, batch, ctx):
        return batch.images.mean(dim=(1, 2, 3)).cpu().numpy()


@pytest.fixture(scope="module")
def tiny_ds():
    """A 300-image noise dataset whose OOD split is 20 bright images."""
    ds = make_dataset(n_train=300, n_test=20, resolution=32)
    bright = np.random.default_rng(7).integers(200, 256, size=ds.test.images.shape, dtype=np.uint8)
    return dataclasses.replace(ds, ood=dataclasses.replace(ds.test, images=bright))


@contextlib.contextmanager
def _serving(ds):
    """build.load_dataset returns `ds` for any name while inside."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(build, "load_dataset", lambda name, config: ds)
        yield ds


@pytest.fixture
def tiny(tiny_ds):
    with _serving(tiny_ds):
        yield tiny_ds


def _spec(**overrides):
    values = dict(init=8, epochs_first=1, device="cpu")
    values.update(overrides)
    return build_spec("smoke", overrides=values)


@pytest.fixture(scope="module")
def report(tiny_ds) -> DiagnoseReport:
    with _serving(tiny_ds):
        return diagnose(_spec(), ["random", Oracle(), AntiOracle(), Noise(), Brightness()], seed=0)


def test_one_row_per_sampler_in_order(report):
    assert [r.sampler for r in report.rows] == ["random", "oracle", "anti-oracle", "noise", "brightness"]
    assert report.pool_size == 292 and report.n_labelled == 8
    assert report.k == 29 and report.chance == pytest.approx(29 / 292)
    assert report.ood_size == 20


def test_a_score_that_is_the_true_error_is_perfect(report):
    oracle = report.row("oracle")
    assert oracle.spearman == pytest.approx(1.0)
    assert oracle.precision_at_k == 1.0
    anti = report.row("anti-oracle")
    assert anti.spearman == pytest.approx(-1.0)
    assert anti.precision_at_k == 0.0


def test_random_scores_do_not_correlate_and_random_picks_are_near_chance(report):
    noise = report.row("noise")
    assert abs(noise.spearman) < 0.25  # ~4 standard errors (1 / sqrt(291)) of rho under independence
    assert noise.p_value > 1e-3
    rnd = report.row("random")
    assert rnd.kind == "select" and rnd.spearman is None and rnd.ood_auroc is None  # n/a, not faked
    assert 0.0 <= rnd.precision_at_k <= 0.35  # chance 0.099; P(>= 10 of 29 worst) is below 1e-3


def test_ood_auroc_separates_bright_ood_images(report):
    assert report.row("brightness").ood_auroc == 1.0
    for r in report.rows:
        if r.kind == "score":
            assert 0.0 <= r.ood_auroc <= 1.0


def test_same_seed_same_report(tiny, report):
    again = diagnose(_spec(), ["random", Oracle(), AntiOracle(), Noise(), Brightness()], seed=0)
    strip = [dataclasses.replace(r, seconds=0.0) for r in again.rows]
    assert strip == [dataclasses.replace(r, seconds=0.0) for r in report.rows]
    assert again.test_metric == report.test_metric


def test_bad_arguments_are_config_errors(tiny):
    with pytest.raises(ConfigError, match="top-k-fraction"):
        diagnose(_spec(), ["random"], top_k_fraction=0.0)
    with pytest.raises(ConfigError, match="named twice"):
        diagnose(_spec(), ["random", "random"])
    with pytest.raises(ConfigError, match="lower --init"):
        diagnose(_spec(init=299), ["random"])


def test_vl4pose_refinement_is_measured_with_several_peaks(tiny):
    vl4pose = pytest.importorskip("alpose_bench.samplers.vl4pose")
    r = diagnose(_spec(), [vl4pose.VL4Pose()], seed=0)
    assert r.row("vl4pose").kind == "score" and r.row("vl4pose").spearman is not None
    ref = r.refinement
    assert ref is not None and ref.sampler == "vl4pose" and ref.num_peaks == 5  # reference default is 1 peak
    assert 0.0 <= ref.poses_changed <= 1.0 and 0.0 <= ref.joints_changed <= ref.poses_changed
    assert ref.plain == pytest.approx(r.pool_metric)


# -- CLI ---------------------------------------------------------------------------------------------------


def test_cli_prints_the_table_and_writes_json(tiny, tmp_path):
    out = tmp_path / "diag.json"
    args = ["diagnose", "--samplers", "random", "--preset", "smoke", "--init", "8", "--epochs-first", "1"]
    result = CliRunner().invoke(cli, args + ["--device", "cpu", "--json", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "precision@k" in result.output and "OOD AUROC" in result.output
    assert "chance level of precision@k = k / pool = 29/292" in result.output
    data = json.loads(out.read_text())
    assert data["k"] == 29 and data["pool_size"] == 292
    assert data["rows"][0]["sampler"] == "random" and data["rows"][0]["spearman"] is None


def test_cli_unknown_sampler_is_a_one_line_error(tiny):
    result = CliRunner().invoke(cli, ["diagnose", "--samplers", "nope", "--preset", "smoke"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: unknown sampler 'nope'")


def test_cli_bad_fraction_is_a_one_line_error(tiny):
    result = CliRunner().invoke(cli, ["diagnose", "--samplers", "random", "--top-k-fraction", "1.5"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["Error: --top-k-fraction must be in (0, 1], got 1.5"]


@pytest.mark.slow
def test_cli_all_samplers_on_a_smoke_sized_synth_human(tmp_path):
    from alpose_bench.spec.registry import working_samplers

    out = tmp_path / "diag.json"
    args = [
        "diagnose",
        "--samplers",
        "all",
        "--dataset",
        "synth-human",
        "--preset",
        "smoke",
        "--device",
        "cpu",
    ]
    result = CliRunner().invoke(cli, args + ["--json", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["dataset"] == "synth-human" and data["ood_size"] > 0  # synth-human has an ood split
    assert data["pool_size"] == 120 - 16 and data["k"] == 10  # smoke: pool 120, init 16; k = round(0.1 x 104)
    assert sorted(r["sampler"] for r in data["rows"]) == sorted(
        set(working_samplers()) - set(data["skipped"])
    )
    for row in data["rows"]:
        assert row["sampler"] in result.output
        if row["kind"] == "score":
            assert 0.0 <= row["ood_auroc"] <= 1.0
        else:
            assert row["spearman"] is None and row["ood_auroc"] is None
