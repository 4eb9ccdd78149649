"""VL4Pose: training losses and likelihoods by hand, the reference score, pose refinement, the sampler contract."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from skimage.feature import peak_local_max

from alpose_bench.pose.models import model_info
from alpose_bench.pose.models.outputs import PoseOutput, TrainBatch
from alpose_bench.pose.peaks import Peaks
from alpose_bench.pose.pool import ForwardBatch
from alpose_bench.pose.skeleton import MPII, Skeleton
from alpose_bench.samplers.vl4pose import (
    VL4Pose,
    bone_length_nll,
    expected_log_likelihood,
    offset_log_likelihood,
    offset_nll,
    refine_poses,
)
from alpose_bench.testing import check_sampler, make_context, train_batch

torch.set_num_threads(1)

CHAIN = Skeleton(name="chain", joints=("a", "b", "c"), links=((0, 1), (1, 2)), root=0)
LOG_2PI = math.log(2 * math.pi)


def log_normal(x: float, mu: float, s: float) -> float:
    return -0.5 * (LOG_2PI + s + (x - mu) ** 2 * math.exp(-s))


def fake_batch(
    heatmaps: torch.Tensor | None, aux: torch.Tensor, keypoints: torch.Tensor | None = None, size=64
):
    out = PoseOutput(
        heatmaps=None if heatmaps is None else [heatmaps],
        keypoints=keypoints,
        features=[],
        embedding=torch.zeros(len(aux), 1),
    )
    n = len(aux)
    return ForwardBatch(positions=np.arange(n), images=torch.zeros(n, 3, size, size), out=out, aux=aux)


def fake_ctx(skeleton: Skeleton, n: int, task: str = "heatmap2d") -> SimpleNamespace:
    return SimpleNamespace(skeleton=skeleton, task=task, annotations={}, pool=np.arange(n))


def spike_maps(points: list[list[tuple[int, int, float]]], size: int = 64) -> torch.Tensor:
    """(B, J, size, size) zeros with value v at (x, y) for every (x, y, v) of points[b][j]... one spike per entry."""
    maps = torch.zeros(len(points), len(points[0]), size, size)
    for b, joints in enumerate(points):
        for j, (x, y, v) in enumerate(joints):
            maps[b, j, y, x] = v
    return maps


# -- training losses ---------------------------------------------------------------------------------------------


def test_bone_length_nll_by_hand() -> None:
    kp = torch.tensor([[[0.0, 0.0], [3.0, 4.0], [3.2, 4.4]]])  # rounded: (3, 4) -> (3, 4): length 0
    mu = torch.tensor([[5.0, 1.0]])
    s = torch.tensor([[0.0, math.log(2.0)]])
    vis = torch.ones(1, 3)
    want = (0.0 + (0.5 * 1.0 / 2.0 + 0.5 * math.log(2.0))) / 2  # mean over batch x links
    assert bone_length_nll(mu, s, kp, vis, CHAIN).item() == pytest.approx(want, rel=1e-6)
    # the second link's child is not annotated (and holds NaN): it counts as 0 in the mean
    kp[0, 2] = float("nan")
    vis[0, 2] = 0
    assert bone_length_nll(mu, s, kp, vis, CHAIN).item() == 0.0


def test_offset_nll_by_hand() -> None:
    kp = torch.tensor([[[0.0, 0.0, 0.0], [0.1, 0.2, 0.3], [0.1, 0.2, 0.5]]])
    offset = torch.tensor([[[0.1, 0.2, 0.3], [0.0, 0.0, 0.1]]])  # residuals: 0 and (0, 0, 0.1)
    s = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, -1.0]]])
    vis = torch.ones(1, 3)
    want = (0.0 + (0.5 * 0.01 * math.e - 0.5)) / 2
    assert offset_nll(offset, s, kp, vis, CHAIN).item() == pytest.approx(want, rel=1e-5)


# -- scoring -----------------------------------------------------------------------------------------------------


def test_stretched_limb_scores_lower_likelihood() -> None:
    # image 0: bones of 10 px as predicted; image 1: the second bone stretched to 25 px
    maps = spike_maps(
        [[(20, 20, 9.0), (30, 20, 9.0), (40, 20, 9.0)], [(20, 20, 9.0), (30, 20, 9.0), (55, 20, 9.0)]]
    )
    aux = torch.tensor([[10.0, 0.0, 10.0, 0.0]] * 2)  # (mu, s) per link
    scores = VL4Pose().score_batch(fake_batch(maps, aux), fake_ctx(CHAIN, 2))
    assert scores[1] > scores[0]  # higher score = lower likelihood = annotate first
    assert scores[0] == pytest.approx(-2 * log_normal(10, 10, 0), rel=1e-6)
    assert scores[1] == pytest.approx(-(log_normal(10, 10, 0) + log_normal(25, 10, 0)), rel=1e-6)


def test_single_peak_score_equals_the_reference_formula() -> None:
    """num_peaks=1: score = -sum over links of -0.5 (log 2pi + s + (mu - |loc_p - loc_c|)^2 e^-s), locations from
    skimage's peak_local_max(h, min_distance=8, num_peaks=1) as in the reference sampler."""
    rng = np.random.default_rng(0)
    b, j, size = 3, MPII.num_joints, 64
    yy, xx = np.mgrid[0:size, 0:size]
    maps = np.zeros((b, j, size, size), dtype=np.float32)
    for _ in range(2):
        cx, cy = rng.uniform(10, 54, (b, j, 1, 1)), rng.uniform(10, 54, (b, j, 1, 1))
        maps += (rng.uniform(5, 30, (b, j, 1, 1)) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 6.0)).astype(
            np.float32
        )
    aux = torch.from_numpy(rng.normal(size=(b, 2 * MPII.num_links)).astype(np.float32)) * 3 + 6
    scores = VL4Pose().score_batch(fake_batch(torch.from_numpy(maps), aux), fake_ctx(MPII, b))
    for i in range(b):
        loc = [peak_local_max(maps[i, k], min_distance=8, num_peaks=1)[0][::-1] for k in range(j)]
        total = 0.0
        for link, (p, c) in enumerate(MPII.links):
            mu, s = float(aux[i, 2 * link]), float(aux[i, 2 * link + 1])
            d = float(np.linalg.norm(loc[p] - loc[c]))
            total += -0.5 * (LOG_2PI + s + (mu - d) ** 2 * math.exp(-s))
        assert scores[i] == pytest.approx(-total, rel=1e-5)


def test_expected_log_likelihood_weights_peak_pairs() -> None:
    two = Skeleton(name="two", joints=("p", "c"), links=((0, 1),), root=0)
    coords = torch.tensor(
        [[[[0.0, 0.0], [0.0, 0.0]], [[3.0, 4.0], [6.0, 8.0]]]]
    )  # child peaks at 5 and 10 px
    values = torch.tensor([[[1.0, 0.0], [2.0, 1.0]]])
    valid = torch.tensor([[[True, False], [True, True]]])
    peaks = Peaks(coords=coords, values=values, valid=valid)
    mu, s = torch.tensor([[5.0]]), torch.tensor([[0.0]])
    e = math.e
    want = e / (e + 1) * log_normal(5, 5, 0) + 1 / (e + 1) * log_normal(10, 5, 0)
    assert expected_log_likelihood(peaks, mu, s, two).item() == pytest.approx(want, rel=1e-6)


def test_regression_score_is_the_offset_likelihood_of_the_prediction() -> None:
    kp = torch.tensor(
        [[[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.2, 0.0, 0.0]], [[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.6, 0, 0]]]
    )
    offset = torch.tensor([[0.1, 0.0, 0.0]] * 2).expand(2, 2, 3)
    s = torch.zeros(2, 2, 3)
    aux = torch.cat([offset, s], dim=-1).reshape(2, 12)
    scores = VL4Pose().score_batch(fake_batch(None, aux, keypoints=kp), fake_ctx(CHAIN, 2, "regression3d"))
    assert scores[0] == pytest.approx(-2 * 3 * log_normal(0, 0, 0), rel=1e-6)
    assert scores[1] == pytest.approx(-(5 * log_normal(0, 0, 0) + log_normal(0.4, 0, 0)), rel=1e-6)
    assert offset_log_likelihood(kp, offset, s, CHAIN).neg().numpy() == pytest.approx(scores, rel=1e-6)


# -- refinement --------------------------------------------------------------------------------------------------


def test_refinement_prefers_a_lower_well_placed_peak() -> None:
    two = Skeleton(name="two", joints=("p", "c"), links=((0, 1),), root=0)
    maps = torch.zeros(1, 2, 64, 64)
    maps[0, 0, 20, 20] = 10.0
    maps[0, 1, 20, 50] = 10.0  # global maximum 30 px from the parent
    maps[0, 1, 20, 25] = 9.0  # lower peak 5 px from the parent: the predicted bone length
    aux = torch.tensor([[5.0, 0.0]])
    ctx = fake_ctx(two, 1)
    VL4Pose(num_peaks=2).score_batch(fake_batch(maps, aux, size=256), ctx)
    refined = ctx.annotations["refined_keypoints"]
    # heatmap px (25, 20) -> input px (c + 0.5) * 4 - 0.5
    np.testing.assert_allclose(refined[0], [[81.5, 81.5], [101.5, 81.5]])
    # with a very uncertain bone model the heatmap confidence wins
    from alpose_bench.pose.peaks import find_peaks

    peaks = find_peaks(maps, 2, 8)
    coords, changed = refine_poses(peaks, torch.tensor([[5.0]]), torch.tensor([[12.0]]), two)
    assert coords[0, 1].tolist() == [50.0, 20.0] and not changed[0]
    coords, changed = refine_poses(peaks, torch.tensor([[5.0]]), torch.tensor([[0.0]]), two)
    assert coords[0, 1].tolist() == [25.0, 20.0] and changed[0]


def test_refinement_is_a_joint_optimum_over_the_tree() -> None:
    """Brute force over every peak combination of a 3-joint chain agrees with the Viterbi pass."""
    rng = np.random.default_rng(3)
    k = 3
    coords = torch.from_numpy(rng.uniform(0, 30, (4, 3, k, 2)).astype(np.float32))
    values = torch.from_numpy(rng.uniform(0, 5, (4, 3, k)).astype(np.float32))
    valid = torch.ones(4, 3, k, dtype=torch.bool)
    valid[1, 2, 2] = False
    peaks = Peaks(coords=coords, values=values, valid=valid)
    mu = torch.from_numpy(rng.uniform(5, 15, (4, 2)).astype(np.float32))
    s = torch.from_numpy(rng.uniform(-1, 2, (4, 2)).astype(np.float32))
    got, _ = refine_poses(peaks, mu, s, CHAIN)
    from alpose_bench.pose.peaks import peak_probabilities

    logp = torch.log(peak_probabilities(peaks))
    for b in range(4):
        best, arg = -math.inf, None
        for a0 in range(k):
            for a1 in range(k):
                for a2 in range(k):
                    if not (valid[b, 0, a0] and valid[b, 1, a1] and valid[b, 2, a2]):
                        continue
                    pts = [coords[b, 0, a0], coords[b, 1, a1], coords[b, 2, a2]]
                    total = float(logp[b, 0, a0] + logp[b, 1, a1] + logp[b, 2, a2])
                    for link, (p, c) in enumerate(CHAIN.links):
                        total += log_normal(
                            float((pts[p] - pts[c]).norm()), float(mu[b, link]), float(s[b, link])
                        )
                    if total > best:
                        best, arg = total, torch.stack(pts)
        torch.testing.assert_close(got[b], arg)


def test_refinement_needs_a_peak_per_joint() -> None:
    peaks = Peaks(
        coords=torch.zeros(1, 3, 2, 2), values=torch.zeros(1, 3, 2), valid=torch.zeros(1, 3, 2).bool()
    )
    with pytest.raises(ValueError, match="with_argmax_fallback"):
        refine_poses(peaks, torch.zeros(1, 2), torch.zeros(1, 2), CHAIN)


def test_joint_without_peak_falls_back_to_argmax() -> None:
    maps = spike_maps([[(20, 20, 9.0), (30, 20, 9.0), (63, 20, 9.0)]])  # last maximum on the border
    aux = torch.tensor([[10.0, 0.0, 33.0, 0.0]])
    scores = VL4Pose().score_batch(fake_batch(maps, aux), fake_ctx(CHAIN, 1))
    assert scores[0] == pytest.approx(-(log_normal(10, 10, 0) + log_normal(33, 33, 0)), rel=1e-6)


# -- training and the engine ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["heatmap2d", "regression3d"])
def test_auxiliary_loss_decreases_on_a_fixed_batch(task: str) -> None:
    torch.manual_seed(0)
    ctx = make_context(task, n_pool=8, n_labelled=0, seed=0)
    info = model_info(ctx.model)
    sampler = VL4Pose()
    head = sampler.auxiliary(info)
    batch: TrainBatch = train_batch(ctx.dataset, info, n=8)
    with torch.no_grad():
        pose_out = ctx.model(batch.images)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = sampler.auxiliary_loss(head(pose_out.features), batch, pose_out)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_refined_keypoints_are_recorded_for_the_pool() -> None:
    sampler = VL4Pose(num_peaks=3)
    ctx = make_context("heatmap2d", n_pool=20, n_labelled=4, seed=2, sampler=sampler)
    scores = sampler.score(ctx)
    refined = ctx.annotations["refined_keypoints"]
    assert scores.shape == (20,) and np.isfinite(scores).all()
    assert refined.shape == (20, MPII.num_joints, 2) and np.isfinite(refined).all()
    assert refined.min() >= -0.5 and refined.max() <= ctx.dataset.resolution - 0.5
    assert "refined_keypoints" not in make_context("heatmap2d", n_pool=4, sampler=VL4Pose()).annotations


def test_missing_head_is_a_clear_error() -> None:
    ctx = make_context("heatmap2d", n_pool=4, n_labelled=0)
    with pytest.raises(ValueError, match="auxiliary head"):
        VL4Pose().score(ctx)


@pytest.mark.parametrize("params", [{}, {"num_peaks": 3}, {"num_peaks": 2, "exclude_border": False}])
def test_contract(params: dict) -> None:
    check_sampler(VL4Pose, **params)
