"""`alpose-bench bench`: every section gives finite figures under its documented keys, the JSON record parses,
peaks equal scikit-image's, bad input is a one-line error. No timing assertions (speed targets are read off the
benchmark's own printed figures)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from alpose_bench.cli import cli
from alpose_bench.pose.peaks import find_peaks
from alpose_bench.samplers.base import ScoringSampler
from alpose_bench.samplers.random import RandomSampler
from alpose_bench.spec.config import build_spec
from alpose_bench.tools.bench import (
    SECTIONS,
    BenchError,
    BenchSettings,
    parse_sections,
    parse_sizes,
    run_bench,
)
from alpose_bench.tools.bench import peaks as peaks_bench
from alpose_bench.tools.bench.common import BenchRun
from alpose_bench.tools.bench.coreset import coreset_child
from alpose_bench.tools.bench.peaks import mismatched_maps, skimage_peaks, synthetic_heatmaps

TINY = dict(pool=8, labelled=8, budget=2, repeats=1, train_steps=1, coreset_pools=(300,), coreset_labelled=(40,),
            coreset_dim=8, coreset_budget=5, peak_maps=2, egl_pool=2, max_seconds=1.0)  # fmt: skip


def tiny_settings(dataset: str = "synth-human", **changes) -> BenchSettings:
    spec = build_spec("smoke", None, {"datasets": dataset, "device": "cpu"})
    return BenchSettings(spec=spec, **{**TINY, **changes})


def positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@dataclass
class HeatmapOnly(ScoringSampler):
    """A 2D-only sampler: must be reported as skipped on a 3D regression dataset."""

    name = "heatmap-only"
    description = "test sampler"
    tasks = frozenset({"heatmap2d"})

    def score_batch(self, batch, ctx):
        return np.zeros(len(batch.positions))


@dataclass
class Broken(ScoringSampler):
    """A sampler that raises: its row must say so while the other samplers are still measured."""

    name = "broken"
    description = "test sampler"

    def score_batch(self, batch, ctx):
        raise RuntimeError("scores unavailable")


@dataclass
class PerImageGradients(ScoringSampler):
    """Stands for EGL++: declares it differentiates the model, so it is timed on the smaller slow pool."""

    name = "per-image-gradients"
    description = "test sampler"
    needs = frozenset({"model"})

    def score_batch(self, batch, ctx):
        return batch.out.embedding.sum(dim=1).numpy()


@pytest.fixture(scope="module")
def report():
    return run_bench(tiny_settings(samplers=(RandomSampler, Broken, PerImageGradients), slow_pool=3))


@pytest.mark.slow
def test_every_section_gives_finite_positive_figures(report):
    assert list(report.sections) == list(SECTIONS)
    tr = report.sections["training"]
    for key in ("train_images_per_s", "bare_images_per_s", "ratio"):
        assert positive(tr[key]), (key, tr)
    assert tr["ratio"] == pytest.approx(tr["train_images_per_s"] / tr["bare_images_per_s"])
    # the plain PyTorch step of the same model is the comparison row; GFLOP/s from the flop counter
    assert positive(tr["plain_images_per_s"]) and tr["speedup"] == pytest.approx(
        tr["bare_images_per_s"] / tr["plain_images_per_s"]
    )
    assert tr["gflop_per_image"] > 0 and tr["bare_gflops"] == pytest.approx(
        tr["gflop_per_image"] * tr["bare_images_per_s"]
    )
    assert tr["compute"] == {
        "device": "cpu",
        "precision": "fp32",
        "channels_last": True,
        "fused_optimizer": True,
    } or (tr["compute"]["precision"] == "bf16")
    assert (
        tr["target_ratio"] == 0.85 and tr["batch_size"] == 16 and tr["steps"] == 1
    )  # train_steps x batch rows
    inf = report.sections["inference"]
    assert inf["pool"] == 8 and positive(inf["seconds"]) and positive(inf["plain_images_per_s"])
    assert inf["speedup"] == pytest.approx(inf["images_per_s"] / inf["plain_images_per_s"])
    assert inf["images_per_s"] == pytest.approx(8 / inf["seconds"])
    sm = report.sections["samplers"]
    assert (sm["pool"], sm["labelled"], sm["budget"]) == (8, 8, 2)
    rows = {r["sampler"]: r for r in sm["rows"]}
    ok = rows["random"]
    assert ok["status"] == "ok" and positive(ok["seconds"]) and positive(ok["images_per_s"])
    assert ok["pool"] == 8 and ok["repeats"] == 1
    assert ok["overhead_ratio"] == pytest.approx(ok["seconds"] / ok["inference_s"])  # the paired plain pass
    assert ok["forward_passes_per_image"] == 0  # random never runs the model
    slow = rows["per-image-gradients"]  # needs "model": timed on the first slow_pool images
    assert slow["status"] == "ok" and slow["pool"] == 3 and slow["forward_passes_per_image"] == 1
    assert rows["broken"]["status"] == "failed" and "scores unavailable" in rows["broken"]["reason"]
    fp = {r["sampler"]: r for r in report.sections["footprint"]["rows"]}
    assert fp["random"]["status"] == "ok" and fp["per-image-gradients"]["pool"] == 3  # the slow pool here too
    assert fp["broken"]["status"] == "failed" and "scores unavailable" in fp["broken"]["reason"]
    (cs,) = report.sections["coreset"]["rows"]
    assert cs["status"] == "ok" and (cs["pool"], cs["labelled"]) == (300, 40) and positive(cs["seconds"])
    assert cs["pairwise_matrix_mb"] == pytest.approx(300 * 40 * 8 / 2**20)
    assert cs["peak_mb"] >= 0 and cs["extra_mb"] >= 0
    for row in report.sections["peaks"]["rows"]:
        assert row["same_peaks"] is True and row["maps"] == 32
        assert positive(row["find_peaks_s"]) and positive(row["skimage_s"]) and positive(row["speedup"])
    egl = report.sections["egl"]
    assert egl["pool"] == 2 and egl["k"] == 8  # k = min(30, labelled)
    for key in ("fast_s", "slow_s", "speedup"):
        assert positive(egl[key]), key
    assert 0 <= egl["rel_diff"] < 1e-4 and 0 <= egl["scale_rel_diff"] <= egl["rel_diff"]
    assert egl["same_ranking"] is True and egl["train_steps"] == 100
    assert egl["compute"]["channels_last"] is True  # the check runs with the experiment's speed settings
    assert report.problems == []


def test_report_is_json_with_the_machine(report, tmp_path):
    data = json.loads(report.write_json(tmp_path / "b.json").read_text())
    for key in ("cpu_count", "torch", "torch_threads", "device", "device_name", "load_average_end"):
        assert key in data["machine"], key
    assert data["machine"]["device"] == "cpu"
    assert data["settings"]["samplers"] == ["random", "broken", "per-image-gradients"]
    assert data["sections"]["samplers"]["rows"][0]["sampler"] == "random"


def test_samplers_that_cannot_run_on_the_task_are_skipped_with_the_reason():
    settings = tiny_settings("synth-hand", sections=("samplers",), samplers=(HeatmapOnly, RandomSampler))
    rows = {r["sampler"]: r for r in run_bench(settings).sections["samplers"]["rows"]}
    assert rows["heatmap-only"]["status"] == "skipped"
    assert "3D regression" in rows["heatmap-only"]["reason"]
    assert rows["random"]["status"] == "ok"


def test_training_alone_on_a_3d_dataset():
    tr = run_bench(tiny_settings("synth-hand", sections=("training",))).sections["training"]
    assert positive(tr["train_images_per_s"]) and positive(tr["bare_images_per_s"])


def test_find_peaks_equals_skimage_on_synthetic_heatmaps():
    pytest.importorskip("skimage")
    bench = BenchRun(tiny_settings(peak_maps=3), torch.device("cpu"), lambda _m: None, None)
    section, problems = peaks_bench.run(bench), bench.problems
    assert problems == []
    assert [(r["config"], r["same_peaks"], r["mismatched_maps"]) for r in section["rows"]] == [
        ("mpe", True, 0), ("vl4pose", True, 0)
    ]  # fmt: skip
    # and the comparison itself: the same peaks in (x, y) vs (row, col) match, a moved or missing one does not
    hm = synthetic_heatmaps(2, 4, 32, seed=3)
    peaks = find_peaks(hm, 3, 2)
    sk_coords, sk_valid = skimage_peaks(hm.reshape(-1, 32, 32).numpy(), 3, 2)
    fp_coords, fp_valid = peaks.coords.reshape(8, 3, 2).numpy(), peaks.valid.reshape(8, 3).numpy()
    assert mismatched_maps(fp_coords, fp_valid, sk_coords, sk_valid).tolist() == []
    moved = fp_coords.copy()
    moved[5, 0, 0] += 1
    assert mismatched_maps(moved, fp_valid, sk_coords, sk_valid).tolist() == [5]
    missing = fp_valid.copy()
    missing[2, 0] = False
    assert mismatched_maps(fp_coords, missing, sk_coords, sk_valid).tolist() == [2]


def test_mismatched_maps_by_hand():
    fp = np.array([[[3.0, 5.0], [0.0, 0.0]]])  # one map: a peak at x=3, y=5 and an empty slot
    sk = np.array([[[5, 3], [-1, -1]]])  # skimage: row 5, col 3
    assert mismatched_maps(fp, np.array([[True, False]]), sk, np.array([[True, False]])).tolist() == []
    assert mismatched_maps(
        fp, np.array([[True, False]]), sk[..., ::-1], np.array([[True, False]])
    ).tolist() == [0]


def test_synthetic_heatmaps_are_seeded():
    a, b = synthetic_heatmaps(2, 3, 16, seed=1), synthetic_heatmaps(2, 3, 16, seed=1)
    assert a.shape == (2, 3, 16, 16) and torch.equal(a, b)
    assert not torch.equal(a, synthetic_heatmaps(2, 3, 16, seed=2))
    assert float(a.max()) > 1.0 and float(a.min()) >= 0.0  # blobs above the 0-0.5 noise


def test_coreset_memory_grows_with_pool_plus_labelled_not_their_product():
    row = coreset_child(
        pool=20_000, labelled=5_000, dim=16, budget=10, repeats=1, device="cpu", seed=0, threads=1
    )
    assert row["pairwise_matrix_mb"] == pytest.approx(20_000 * 5_000 * 8 / 2**20)  # 763 MiB (float64)
    assert row["extra_mb"] < row["pairwise_matrix_mb"] / 4
    assert row["inputs_mb"] >= 0 and positive(row["seconds"])


def test_parse_sections_and_sizes():
    assert parse_sections(None) == SECTIONS
    assert parse_sections("all") == SECTIONS
    assert parse_sections("peaks, training") == ("training", "peaks")  # canonical order
    with pytest.raises(BenchError, match="unknown --only section.*'trainig'"):
        parse_sections("trainig")
    assert parse_sizes("10000,50000", "--coreset-pool") == (10_000, 50_000)
    with pytest.raises(BenchError, match="--coreset-pool"):
        parse_sizes("10k", "--coreset-pool")
    with pytest.raises(BenchError, match="--pool must be at least 1"):
        tiny_settings(pool=0).validate()


def invoke(*args: str):
    return CliRunner().invoke(cli, ["bench", *args], obj={})


@pytest.mark.slow
def test_cli_writes_json_that_parses(tmp_path):
    out = tmp_path / "bench.json"
    result = invoke("--only", "peaks,coreset", "--peak-maps", "1", "--coreset-pool", "200", "--coreset-labelled",
                    "30", "--coreset-dim", "8", "--coreset-budget", "3", "--repeats", "1", "--json", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "peaks: 1 x 16 maps" in result.output and "Core-Set k-center greedy" in result.output
    data = json.loads(out.read_text())
    assert list(data["sections"]) == ["coreset", "peaks"]
    assert data["machine"]["cpu_count"] >= 1 and data["settings"]["coreset_pools"] == [200]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--only", "training,speed"], "unknown --only section(s) 'speed'"),
        (["--pool", "0"], "--pool must be at least 1"),
        (["--samplers", "vl4poze", "--only", "samplers"], "unknown sampler 'vl4poze'"),
        (["--coreset-pool", "ten"], "--coreset-pool must be comma-separated"),
    ],
)
def test_bad_input_is_a_one_line_error(args, fragment):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert "Traceback" not in result.output and lines[-1].startswith("Error:"), result.output
    assert fragment in lines[-1], result.output


def test_footprint_gives_each_sampler_its_extra_cost_beside_the_forward_pass():
    settings = tiny_settings(sections=("footprint",), samplers=("random", "vl4pose", "coreset", "mpe"),
                             footprint_frames=3)  # fmt: skip
    fig = run_bench(settings).sections["footprint"]
    assert (fig["pool"], fig["labelled"], fig["batch_size"]) == (8, 8, settings.spec.eval_batch_size)
    assert fig["paper_model_params"] == 8.4e6 and fig["paper_aux_params"] == 2.1e6
    assert positive(fig["model_params"]) and positive(fig["forward_ms_b1"]) and positive(fig["forward_ms_batch"])
    rows = {r["sampler"]: r for r in fig["rows"]}
    assert all(r["status"] == "ok" for r in rows.values()), rows
    for r in rows.values():
        assert r["frames_b1"] == 3 and r["pool"] == 8
        for key in ("extra_ms_b1", "extra_ms_batch", "ratio_b1", "ratio_batch", "growth_pool", "growth_labelled"):
            assert math.isfinite(r[key]) and r[key] >= 0, (key, r)
        assert r["per_frame"] == ("O(1)" if max(r["growth_pool"], r["growth_labelled"]) <= 1.3 else "grows")
    # random runs no model: nothing beyond the device's own forward pass, no auxiliary head
    assert rows["random"]["ratio_b1"] < 0.5 and rows["random"]["extra_params"] == 0
    assert rows["vl4pose"]["extra_params"] > 0 and rows["mpe"]["extra_params"] == 0  # VL4Pose's auxiliary network
    assert rows["vl4pose"]["ratio_b1"] >= 1  # at least the forward pass it scores from
    assert [rows[n]["buffered"] for n in ("random", "vl4pose", "coreset", "mpe")] == [False, False, True, False]


def test_which_samplers_decide_on_each_frame_alone():
    from alpose_bench.spec.registry import get_sampler

    per_frame = {n: get_sampler(n).decides_per_frame() for n in
                 ("random", "vl4pose", "mpe", "learning-loss", "aleatoric", "coreset", "typiclust", "egl",
                  "mpe+kmeans")}  # fmt: skip
    assert per_frame == {"random": True, "vl4pose": True, "mpe": True, "learning-loss": True, "aleatoric": True,
                         "coreset": False, "typiclust": False, "egl": False, "mpe+kmeans": False}  # fmt: skip
