"""The sampler conformance kit: fixtures are valid and deterministic, good samplers pass, each kind of broken
sampler fails with the check that names its fault."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from alpose_bench.pose.heatmaps import pose_loss_per_sample
from alpose_bench.pose.models.outputs import ModelInfo, PoseOutput, TrainBatch
from alpose_bench.pose.skeleton import ICVL, MPII
from alpose_bench.samplers.base import Sampler, ScoringSampler
from alpose_bench.samplers.random import RandomSampler
from alpose_bench.spec import registry
from alpose_bench.testing import (
    check_sampler,
    make_context,
    make_dataset,
    parametrize_with_checks,
    sampler_checks,
    tiny_model,
    train_batch,
)

torch.set_num_threads(1)


# -- fixtures ------------------------------------------------------------------------------------------------


def test_make_dataset_2d_is_valid_and_seeded() -> None:
    ds = make_dataset("heatmap2d", n_train=20, n_test=5, resolution=32, seed=4)
    assert ds.task == "heatmap2d" and ds.skeleton is MPII and ds.metric == "pckh"
    assert ds.train.images.shape == (20, 32, 32, 3) and ds.train.images.dtype == np.uint8
    assert ds.test.keypoints.shape == (5, 16, 2)
    assert (ds.train.keypoints >= 0).all() and (ds.train.keypoints <= 31).all()
    assert not ds.train.visible.all() and ds.train.visible.any()
    again = make_dataset("heatmap2d", n_train=20, n_test=5, resolution=32, seed=4)
    assert np.array_equal(ds.train.images, again.train.images)
    other = make_dataset("heatmap2d", n_train=20, n_test=5, resolution=32, seed=5)
    assert not np.array_equal(ds.train.keypoints, other.train.keypoints)


def test_make_dataset_3d_is_in_millimetres_inside_the_cube() -> None:
    ds = make_dataset("regression3d", n_train=10, n_test=3)
    assert ds.skeleton is ICVL and ds.metric == "mpjpe" and ds.channels == 1
    assert ds.train.keypoints.shape == (10, 16, 3)
    assert np.abs(ds.train.keypoints).max() <= ds.cube_mm
    assert np.abs(ds.train.keypoints).max() > 0.5 * ds.cube_mm  # millimetres, not normalised units
    assert (ds.train.normalizer == 1).all()


def test_make_dataset_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        make_dataset("segmentation")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_train"):
        make_dataset(n_train=0)


def test_make_context_splits_pool_and_labelled() -> None:
    ctx = make_context(n_pool=30, n_labelled=6, seed=2)
    assert len(ctx.pool) == 30 and len(ctx.labelled) == 6
    assert sorted(np.concatenate([ctx.pool, ctx.labelled]).tolist()) == list(range(36))
    assert ctx.labelled.max() > 6  # scattered, not the first rows
    assert not ctx.model.training
    emb = ctx.collect("pool", "embedding")
    assert emb.shape[0] == 30
    again = make_context(n_pool=30, n_labelled=6, seed=2)
    assert np.array_equal(again.labelled, ctx.labelled)
    assert np.array_equal(again.collect("pool", "embedding"), emb)


def test_tiny_model_does_not_touch_global_rng() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny_model(make_dataset())
    assert torch.equal(torch.rand(3), expected)


# -- samplers used to exercise the checks --------------------------------------------------------------------


class _Head(nn.Module):
    def __init__(self, info: ModelInfo) -> None:
        super().__init__()
        self.fc = nn.Linear(info.feature_channels[-1], 1)

    def forward(self, features: list[Tensor]) -> Tensor:
        return self.fc(features[-1].mean(dim=(2, 3)))[:, 0]


@dataclass
class LossPredictor(ScoringSampler):
    """A correct sampler with an auxiliary head: predicts each image's loss and picks the highest."""

    name = "test-loss-predictor"
    description = "test sampler with an auxiliary head"
    needs = frozenset({"aux"})

    def auxiliary(self, info: ModelInfo) -> nn.Module:
        return _Head(info)

    def auxiliary_loss(self, aux_out: Tensor, batch: TrainBatch, pose_out: PoseOutput) -> Tensor:
        target = pose_loss_per_sample(pose_out, batch).detach()
        return (aux_out - target).pow(2).mean()

    def score_batch(self, batch, ctx) -> np.ndarray:
        return batch.aux.numpy()


@dataclass
class LeakyHead(LossPredictor):
    """Broken: trains the pose model through its auxiliary loss."""

    name = "test-leaky"

    def auxiliary_loss(self, aux_out: Tensor, batch: TrainBatch, pose_out: PoseOutput) -> Tensor:
        pred = pose_out.heatmaps[-1] if pose_out.heatmaps is not None else pose_out.keypoints
        return aux_out.pow(2).mean() + pred.pow(2).mean()


@dataclass
class DatasetIndices(Sampler):
    """Broken: returns dataset indices instead of positions into ctx.pool."""

    name = "test-dataset-indices"
    description = "broken"

    def select(self, ctx, budget):
        return ctx.pool[: min(budget, len(ctx.pool))]


@dataclass
class Unseeded(Sampler):
    """Broken: ignores ctx.rng."""

    name = "test-unseeded"
    description = "broken"

    def select(self, ctx, budget):
        n = len(ctx.pool)
        return np.random.default_rng().choice(n, size=min(budget, n), replace=False)


@dataclass
class Duplicates(Sampler):
    name = "test-duplicates"
    description = "broken"

    def select(self, ctx, budget):
        return np.zeros(min(budget, len(ctx.pool)), dtype=np.int64)


@dataclass
class IgnoresBudgetCap(Sampler):
    name = "test-budget-cap"
    description = "broken"

    def select(self, ctx, budget):
        return np.arange(budget, dtype=np.int64)  # out of range when budget > pool


@dataclass
class NoDefault(RandomSampler):
    name = "test-no-default"
    k: int  # type: ignore[misc]


class NotADataclass(Sampler):
    name = "test-not-dataclass"
    description = "broken"

    def select(self, ctx, budget):
        return np.arange(min(budget, len(ctx.pool)), dtype=np.int64)


@dataclass
class UndeclaredNeed(ScoringSampler):
    name = "test-undeclared"
    description = "broken"

    def score_batch(self, batch, ctx):
        return np.zeros(len(batch.positions))

    def score(self, ctx):
        return ctx.collect("pool", "embedding")[:, 0]


@dataclass
class NeedsLabelledSilently(Sampler):
    """Broken: declares it cannot work without labels but does not raise a ValueError."""

    name = "test-needs-labelled"
    description = "broken"
    works_without_labelled = False

    def select(self, ctx, budget):
        return np.arange(min(budget, len(ctx.pool)), dtype=np.int64)


@dataclass
class HeatmapOnlyNoReason(RandomSampler):
    name = "test-no-reason"
    tasks = frozenset({"heatmap2d"})

    @classmethod
    def unsupported_reason(cls, task):
        return None


@dataclass
class MutatesModel(RandomSampler):
    name = "test-mutates"

    def select(self, ctx, budget):
        with torch.no_grad():
            next(ctx.model.parameters()).add_(1.0)
        return super().select(ctx, budget)


@dataclass
class HeatmapOnly(RandomSampler):
    name = "test-heatmap-only"
    tasks = frozenset({"heatmap2d"})


@dataclass
class BatchDependent(ScoringSampler):
    """Broken: an image's score depends on the other images of its inference batch."""

    name = "test-batch-dependent"
    description = "broken"

    def score_batch(self, batch, ctx):
        e = batch.out.embedding.double()
        return (e - e.mean(dim=0)).sum(dim=1).numpy()


@dataclass
class Stateful(RandomSampler):
    """Broken: remembers what it picked, so the next cycle depends on this one."""

    name = "test-stateful"

    def select(self, ctx, budget):
        picks = super().select(ctx, budget)
        self.seen = list(picks)
        return picks


@dataclass
class IntegerScores(ScoringSampler):
    """Broken: `score` gives integer ranks, not float scores (select still works)."""

    name = "test-integer-scores"
    description = "broken"

    def score_batch(self, batch, ctx):
        return np.zeros(len(batch.positions))

    def score(self, ctx, positions=None):
        return np.arange(len(ctx.pool))


# -- the checks ----------------------------------------------------------------------------------------------


def test_random_sampler_passes() -> None:
    check_sampler(RandomSampler)


def test_sampler_with_auxiliary_head_passes() -> None:
    check_sampler(LossPredictor)


def test_heatmap_only_sampler_passes_and_is_run_on_heatmaps_only() -> None:
    check_sampler(HeatmapOnly)
    names = [name for name, _ in sampler_checks(HeatmapOnly)]
    assert "check_budget[heatmap2d]" in names
    assert not any("regression3d" in n for n in names)


@pytest.mark.parametrize(
    ("cls", "check"),
    [
        (LeakyHead, "check_auxiliary"),
        (DatasetIndices, "check_whole_pool"),
        (Unseeded, "check_deterministic"),
        (Duplicates, "check_budget"),
        (IgnoresBudgetCap, "check_whole_pool"),
        (NoDefault, "check_class"),
        (NotADataclass, "check_class"),
        (UndeclaredNeed, "check_needs_declared"),
        (NeedsLabelledSilently, "check_empty_labelled"),
        (HeatmapOnlyNoReason, "check_unsupported"),
        (MutatesModel, "check_no_side_effects"),
        (BatchDependent, "check_batch_size"),
        (Stateful, "check_state"),
        (IntegerScores, "check_scores"),
    ],
)
def test_broken_sampler_fails_the_right_check(cls: type[Sampler], check: str) -> None:
    with pytest.raises(AssertionError, match=rf"\[{check}"):
        check_sampler(cls)


def test_params_reach_the_constructor() -> None:
    with pytest.raises(AssertionError, match="has no parameter .nonsense."):
        check_sampler(RandomSampler, nonsense=1)


def test_train_batch_matches_the_model() -> None:
    from alpose_bench.pose.models import model_info

    ds = make_dataset()
    model = tiny_model(ds)
    batch = train_batch(ds, model_info(model), n=3)
    out = model(batch.images)
    assert batch.heatmaps is not None and batch.heatmaps.shape == out.heatmaps[-1].shape
    assert float(batch.heatmaps.max()) > 1.0  # reference amplitude (30), not unit peaks
    ds3 = make_dataset("regression3d")
    b3 = train_batch(ds3, model_info(tiny_model(ds3)), n=2)
    assert b3.heatmaps is None and b3.keypoints.abs().max() <= 1.0


def test_check_all_reports_each_registered_sampler(monkeypatch: pytest.MonkeyPatch) -> None:
    from alpose_bench.testing import check_all

    plugins = {
        "random": registry.Plugin("random", "m:RandomSampler", "d", RandomSampler, None),
        "dup": registry.Plugin("dup", "m:Duplicates", "d", Duplicates, None),
        "broken": registry.Plugin("broken", "m:X", "d", None, "ImportError: no module x"),
    }
    monkeypatch.setattr(registry, "samplers", lambda: plugins)
    results = check_all()
    assert results["random"] is None
    assert results["dup"].startswith("[check_budget")
    assert results["broken"] == "failed to import: ImportError: no module x"


@pytest.mark.slow
@parametrize_with_checks(registry.working_samplers())
def test_every_registered_sampler_passes_the_conformance_kit(check) -> None:
    """A new built-in (or installed plugin) is checked the moment its entry point registers, one test per check
    (ids `SAMPLER-CHECK`), so a failure names both."""
    check()
