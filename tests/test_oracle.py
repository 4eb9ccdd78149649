"""The reference samplers: they rank by the model's true error, read labels only where allowed, and nothing else may."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from alpose_bench.engine.train import predict
from alpose_bench.pose.metrics import per_image_error
from alpose_bench.samplers import ScoringSampler, create_sampler
from alpose_bench.testing import check_sampler, make_context


def _true_errors(ctx) -> np.ndarray:
    split = ctx.dataset.train.subset(ctx.pool)
    pred = predict(ctx.model, split, compute=ctx.compute, cube_mm=ctx.dataset.cube_mm)
    return per_image_error(pred, split.keypoints, split.visible.astype(bool), split.normalizer)


@pytest.mark.parametrize("task", ["heatmap2d", "regression3d"])
def test_oracles_pick_the_largest_and_the_smallest_true_errors(task: str) -> None:
    hard, easy = create_sampler("oracle-hard"), create_sampler("oracle-easy")
    ctx = make_context(task, n_pool=40, sampler=hard)
    errors = _true_errors(ctx)
    picked_hard = hard.select(ctx, 10).positions
    picked_easy = easy.select(ctx, 10).positions
    order = np.argsort(-errors, kind="stable")
    assert set(picked_hard) == set(order[:10])
    assert set(picked_easy) == set(order[-10:])
    # the scores are the errors the evaluation computes (the model's own predictions, the metric's normaliser)
    np.testing.assert_allclose(hard.score(ctx), errors, rtol=1e-5)
    np.testing.assert_allclose(easy.score(ctx), -errors, rtol=1e-5)


def test_oracles_pass_the_conformance_kit_and_are_marked_as_references() -> None:
    for name in ("oracle-hard", "oracle-easy"):
        cls = type(create_sampler(name))
        check_sampler(cls)
        assert cls.reference and "labels" in cls.needs


def test_a_context_gives_labels_only_to_samplers_that_declare_them() -> None:
    ctx = make_context("heatmap2d", sampler=create_sampler("random"))
    with pytest.raises(PermissionError, match="only reference samplers"):
        ctx.labels("pool")
    # the labelled set's labels are the annotator's: anyone may read them
    np.testing.assert_array_equal(ctx.labels("labelled").keypoints, ctx.dataset.train.keypoints[ctx.labelled])
    ctx = make_context("heatmap2d", sampler=create_sampler("oracle-hard"))
    truth = ctx.labels("pool", np.array([3, 0]))
    np.testing.assert_array_equal(truth.keypoints, ctx.dataset.train.keypoints[ctx.pool[[3, 0]]])


@dataclass
class _PeekingSampler(ScoringSampler):
    name = "peeking"
    description = "reads labels without being a reference"
    needs = frozenset({"labels"})

    def score_batch(self, batch, ctx):
        return ctx.labels("pool", batch.positions).normalizer.astype(float)


def test_the_kit_refuses_a_sampler_that_reads_labels_without_being_a_reference() -> None:
    with pytest.raises(AssertionError, match=r"\[check_class\].*only a reference sampler may"):
        check_sampler(_PeekingSampler)
