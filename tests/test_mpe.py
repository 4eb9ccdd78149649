"""Multi-Peak Entropy: known entropies on hand-made heatmaps, scaling to small heatmaps, the sampler contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import softmax
from scipy.stats import entropy

from alpose_bench.pose.models.outputs import PoseOutput
from alpose_bench.pose.pool import ForwardBatch
from alpose_bench.samplers.mpe import MultiPeakEntropy, multi_peak_entropy
from alpose_bench.testing import check_sampler, make_context

torch.set_num_threads(1)


def blob(h: torch.Tensor, x: int, y: int, value: float) -> None:
    h[..., y, x] = value


def test_one_peak_has_zero_entropy_two_equal_peaks_log_2() -> None:
    maps = torch.zeros(2, 3, 64, 64)
    blob(maps[0, 0], 20, 20, 10.0)  # image 0, joint 0: one peak
    blob(maps[0, 1], 20, 20, 10.0)  # joint 1: two equal peaks far apart
    blob(maps[0, 1], 40, 40, 10.0)
    blob(maps[1, 2], 15, 30, 3.0)  # image 1, joint 2: two unequal peaks
    blob(maps[1, 2], 45, 30, 1.0)
    scores = multi_peak_entropy(maps, num_peaks=5, min_distance=5)
    p = softmax([3.0, 1.0])
    np.testing.assert_allclose(scores.numpy(), [math.log(2), entropy(p)], rtol=1e-6)


def test_entropy_sums_over_joints_and_caps_peaks() -> None:
    maps = torch.zeros(1, 2, 32, 32)
    for j in range(2):
        for k in range(4):  # four equal peaks per joint
            blob(maps[0, j], 6 + 6 * k, 10 + 6 * j, 1.0)
    assert multi_peak_entropy(maps, 5, 2).item() == pytest.approx(2 * math.log(4), rel=1e-6)
    assert multi_peak_entropy(maps, 3, 2).item() == pytest.approx(2 * math.log(3), rel=1e-6)


def test_close_peaks_merge_at_the_reference_distance() -> None:
    maps = torch.zeros(1, 1, 64, 64)
    blob(maps[0, 0], 30, 30, 2.0)
    blob(maps[0, 0], 33, 30, 1.0)  # 3 px away: inside the 5 px window of the higher one
    assert multi_peak_entropy(maps, 5, 5).item() == 0.0
    assert multi_peak_entropy(maps, 5, 1).item() == pytest.approx(entropy(softmax([2.0, 1.0])), rel=1e-6)


def test_sampler_scales_min_distance_to_the_heatmap_size() -> None:
    """On 16x16 heatmaps min_distance 5 becomes 1 px: peaks 3 px apart are then two peaks."""
    maps = torch.zeros(1, 1, 16, 16)
    blob(maps[0, 0], 6, 8, 1.0)
    blob(maps[0, 0], 9, 8, 1.0)
    out = PoseOutput(heatmaps=[maps], keypoints=None, features=[], embedding=torch.zeros(1, 1))
    batch = ForwardBatch(positions=np.arange(1), images=torch.zeros(1, 3, 64, 64), out=out, aux=None)
    score = MultiPeakEntropy().score_batch(batch, ctx=None)  # type: ignore[arg-type]
    np.testing.assert_allclose(score, [math.log(2)], rtol=1e-6)


def test_selects_the_most_ambiguous_images() -> None:
    ctx = make_context("heatmap2d", n_pool=20, n_labelled=4, seed=1)
    sampler = MultiPeakEntropy()
    scores = sampler.score(ctx)
    chosen = sampler.select(ctx, 5).positions
    assert len(scores) == 20
    assert set(chosen.tolist()) == set(np.argsort(-scores, kind="stable")[:5].tolist())


def test_bad_parameters_raise() -> None:
    with pytest.raises(ValueError, match="num_peaks"):
        MultiPeakEntropy(num_peaks=0)


def test_contract() -> None:
    check_sampler(MultiPeakEntropy)
    check_sampler(MultiPeakEntropy, num_peaks=2, min_distance=8, exclude_border=False)
