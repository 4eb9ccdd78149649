"""EGL++: t-SNE neighbour probabilities, per-sample gradient norms (fast path == reference replica path ==
hand-computed), and the sampler's contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from alpose_bench.core.compute import Compute
from alpose_bench.pose.models import ModelSpec
from alpose_bench.pose.models.outputs import PoseOutput
from alpose_bench.samplers.base import top_k
from alpose_bench.samplers.egl import (
    EGLPP,
    conditional_probabilities,
    egl_neighbours,
    egl_scores,
    egl_scores_replica,
    grad_param_names,
    plan_steps,
)
from alpose_bench.testing import check_sampler, make_context, make_dataset, tiny_model

torch.set_num_threads(1)


# -- probabilities ---------------------------------------------------------------------------------------------


def _row_bisection(d2: np.ndarray, perplexity: float, tol: float, base: float, upper: float) -> np.ndarray:
    """The reference's bisection for one row, written as a scalar loop."""
    lo, hi = 0.0, upper

    def probs(lo: float, hi: float) -> tuple[float, np.ndarray]:
        sigma = (lo + hi) / 2
        p = np.clip(np.exp(-d2 / (2 * sigma**2)), 1e-20, 1)
        p = np.clip(p / p.sum(), 1e-30, 1)
        return base ** (-(p * np.log(p)).sum()), p

    perp, p = probs(lo, hi)
    for _ in range(100):
        if abs(perp - perplexity) < tol:
            break
        if perp - perplexity > tol:
            hi = hi - (hi - lo) / 2
        elif perp - perplexity < -tol:
            lo = lo + (hi - lo) / 2
        perp, p = probs(lo, hi)
    return p


@pytest.mark.parametrize("base", [2.0, math.e])
def test_bisection_matches_a_scalar_loop_per_row_and_hits_the_perplexity(base: float) -> None:
    rng = np.random.default_rng(0)
    d2 = rng.uniform(0.5, 30.0, size=(6, 80)) ** 2
    upper = 5 * max(d2.max(), math.sqrt(d2.max()))
    got = conditional_probabilities(torch.from_numpy(d2), perplexity=20.0, tolerance=1e-3, base=base).numpy()
    want = np.stack([_row_bisection(row, 20.0, 1e-3, base, upper) for row in d2])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(got.sum(axis=1), 1.0)
    perp = base ** (-(got * np.log(got)).sum(axis=1))
    assert np.abs(perp - 20.0).max() < 1e-3


def test_equidistant_neighbours_share_the_probability() -> None:
    p = conditional_probabilities(torch.full((1, 4), 9.0, dtype=torch.float64), perplexity=2.0)
    np.testing.assert_allclose(p.numpy(), 0.25)


def test_reference_perplexity_is_flatter_than_the_textbook_one() -> None:
    # 2^H = 20 needs H = ln 20 / ln 2 = 4.32 nats, i.e. a flatter distribution than e^H = 20 (H = 3.0 nats)
    rng = np.random.default_rng(1)
    d2 = torch.from_numpy(rng.uniform(1, 10, size=(3, 200)) ** 2)
    ref = conditional_probabilities(d2, perplexity=20.0, base=2.0)
    textbook = conditional_probabilities(d2, perplexity=20.0, base=math.e)
    entropy = lambda p: -(p * p.log()).sum(dim=1)  # noqa: E731
    np.testing.assert_allclose(entropy(ref).numpy(), math.log(20) / math.log(2), atol=1e-3)
    np.testing.assert_allclose(entropy(textbook).numpy(), math.log(20), atol=1e-3)


def test_neighbours_are_the_top_k_unrenormalised_and_chunking_does_not_matter() -> None:
    rng = np.random.default_rng(2)
    pool, lab = torch.from_numpy(rng.normal(size=(25, 8))), torch.from_numpy(rng.normal(size=(40, 8)))
    probs, idx = egl_neighbours(pool, lab, k=5, perplexity=10.0)
    assert probs.shape == idx.shape == (25, 5)
    assert (probs[:, :-1] >= probs[:, 1:]).all() and (probs.sum(dim=1) < 1).all()
    d2 = torch.cdist(pool, lab) ** 2
    full = conditional_probabilities(d2, perplexity=10.0)
    np.testing.assert_allclose(probs.numpy(), full.topk(5, dim=1).values.numpy(), rtol=1e-9)
    p2, i2 = egl_neighbours(pool, lab, k=5, perplexity=10.0, max_elements=50)  # one pool row per block
    assert torch.equal(i2, idx) and torch.allclose(p2, probs)
    p3, _ = egl_neighbours(pool, lab[:3], k=30)
    assert p3.shape == (25, 3)  # k is capped by the labelled set
    with pytest.raises(ValueError, match="labelled"):
        egl_neighbours(pool, lab[:0])


# -- gradient norms --------------------------------------------------------------------------------------------


class _LinearRegressor(nn.Module):
    """x -> Linear -> BatchNorm1d (eval) -> (B, J, 3): small enough to differentiate by hand."""

    def __init__(self, in_features: int, joints: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, joints * 3)
        self.bn = nn.BatchNorm1d(joints * 3)
        self.joints = joints

    def forward(self, x: torch.Tensor) -> PoseOutput:
        flat = x.flatten(1)
        kp = self.bn(self.fc(flat)).reshape(len(x), self.joints, 3)
        return PoseOutput(heatmaps=None, keypoints=kp, features=[x.detach()], embedding=flat.detach())


def test_gradient_norm_matches_the_hand_computed_value_and_skips_batchnorm() -> None:
    torch.manual_seed(0)
    j, k = 4, 3
    model = _LinearRegressor(6, j).double().eval()
    with torch.no_grad():
        model.bn.weight.uniform_(0.5, 2.0)  # BN parameters would change the norm if they were included
    assert grad_param_names(model) == ["fc.weight", "fc.bias"]
    x = torch.randn(2, 1, 2, 3, dtype=torch.float64)
    y = torch.randn(2, k, j, 3, dtype=torch.float64)
    w = torch.rand(2, k, dtype=torch.float64)
    mask = torch.ones(2, k, j, dtype=torch.float64)
    got = egl_scores(model, x, [y], w, mask)
    # loss_k = mean_j ||out_j - y_kj||^2, out = g * (W x + b) + beta with g = gamma / sqrt(1 + eps):
    # dL/dW = (2 / J) g (out - y_k) x^T, dL/db = (2 / J) g (out - y_k) -> norm^2 = 4/J^2 |g (out - y_k)|^2 (|x|^2 + 1)
    g = model.bn.weight / math.sqrt(1 + model.bn.eps)
    with torch.no_grad():
        out = model(x).keypoints  # (2, J, 3)
        r = (g.reshape(j, 3) * (out[:, None] - y)).pow(2).sum(dim=(2, 3))  # (2, k)
        xx = x.flatten(1).pow(2).sum(dim=1, keepdim=True)
        want = (w * 4 / j**2 * r * (xx + 1)).sum(dim=1)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


def _model_and_targets(task: str, k: int = 4, n: int = 3):
    ds = make_dataset(task)
    spec = ModelSpec(stacks=2, channels=16, depth=2, regressor_width=8, regressor_fc=32)
    model = tiny_model(ds, spec=spec).double()
    x = Compute().model_input(torch.from_numpy(ds.train.images[:n])).double()
    with torch.no_grad():
        out = model(x)
    g = torch.Generator().manual_seed(0)
    if task == "heatmap2d":
        targets = [torch.randn(n, k, *h.shape[1:], generator=g, dtype=torch.float64) for h in out.heatmaps]
        mask = None
    else:
        targets = [torch.randn(n, k, *out.keypoints.shape[1:], generator=g, dtype=torch.float64)]
        mask = (torch.rand(n, k, ds.skeleton.num_joints, generator=g) > 0.3).double()
    return model, x, targets, torch.rand(n, k, generator=g, dtype=torch.float64), mask


@pytest.mark.parametrize("task", ["heatmap2d", "regression3d"])
def test_fast_path_equals_the_reference_replica_path(task: str) -> None:
    model, x, targets, w, mask = _model_and_targets(task)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    fast = egl_scores(model, x, targets, w, mask)
    chunked = egl_scores(model, x, targets, w, mask, neighbour_chunk=3)
    slow = egl_scores_replica(model, x, targets, w, mask)
    assert fast.shape == (3,) and (fast > 0).all()
    assert ((fast - slow).abs() / slow.abs()).max() < 1e-4
    torch.testing.assert_close(chunked, fast, rtol=1e-10, atol=0)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # BN stats untouched
    assert all(p.grad is None for p in model.parameters())


def test_fast_path_rejects_mismatched_targets() -> None:
    model, x, targets, w, mask = _model_and_targets("heatmap2d")
    with pytest.raises(ValueError, match="targets must be"):
        egl_scores(model, x, [t[:, :2] for t in targets], w)


def test_plan_steps_respects_the_memory_budget() -> None:
    assert plan_steps(pair_bytes=2**20, k=4, memory_mb=64) == (16, None)
    assert plan_steps(pair_bytes=2**20, k=4, memory_mb=2**20, max_images=8) == (8, None)
    assert plan_steps(pair_bytes=2**20, k=30, memory_mb=10) == (1, 10)


# -- the sampler -----------------------------------------------------------------------------------------------


def _reference_selection(ctx, sampler: EGLPP, budget: int) -> np.ndarray:
    """Score every pool image with the replica path and the reference's neighbours (predicted heatmaps)."""
    probs, idx = egl_neighbours(
        torch.from_numpy(ctx.collect("pool", "embedding")),
        torch.from_numpy(ctx.collect("labelled", "embedding")),
        k=sampler.k,
    )
    if ctx.task == "heatmap2d":
        with torch.no_grad():
            out = ctx.model(ctx.images("labelled", np.arange(len(ctx.labelled))))
        targets, mask = [h[idx] for h in out.heatmaps], None
    else:
        kp = torch.from_numpy(ctx.collect("labelled", "keypoints"))
        targets, mask = [kp[idx]], torch.ones(*idx.shape, kp.shape[1])
    x = ctx.images("pool", np.arange(len(ctx.pool)))
    scores = egl_scores_replica(ctx.model, x, targets, probs.float(), mask)
    return top_k(scores.numpy(), budget)


@pytest.mark.parametrize("task", ["heatmap2d", "regression3d"])
def test_sampler_picks_the_highest_expected_gradient_length(task: str) -> None:
    ctx = make_context(task, n_pool=12, n_labelled=6, seed=1)
    sampler = EGLPP(k=4)
    assert sampler.select(ctx, 4).positions.tolist() == _reference_selection(ctx, sampler, 4).tolist()


def test_ground_truth_labels_change_the_scores() -> None:
    ctx = make_context(n_pool=10, n_labelled=6, seed=2)
    predicted = EGLPP(k=3).score(ctx, np.arange(10))
    truth = EGLPP(k=3, og_heatmap=True).score(ctx, np.arange(10))
    assert np.isfinite(truth).all() and not np.allclose(predicted, truth)
    ctx3 = make_context("regression3d", n_pool=10, n_labelled=6, seed=2)
    assert np.isfinite(EGLPP(k=3, og_heatmap=True).score(ctx3, np.arange(10))).all()


def test_candidates_cap_scores_a_seeded_subset() -> None:
    ctx = make_context(n_pool=30, n_labelled=6, seed=3)
    picks = EGLPP(k=3, candidates=5).select(ctx, 8).positions
    again = EGLPP(k=3, candidates=5).select(make_context(n_pool=30, n_labelled=6, seed=3), 8).positions
    assert picks.tolist() == again.tolist()
    # the 5 scored images come first (in score order), then unscored ones by position
    subset = np.sort(make_context(n_pool=30, n_labelled=6, seed=3).rng.choice(30, size=5, replace=False))
    assert set(picks[:5].tolist()) == set(subset.tolist())
    rest = [p for p in range(30) if p not in subset][:3]
    assert picks[5:].tolist() == rest


def test_needs_labelled_images() -> None:
    with pytest.raises(ValueError, match="labelled"):
        EGLPP().select(make_context(n_labelled=0), 3)
    with pytest.raises(ValueError, match="candidates"):
        EGLPP(candidates=0)


@pytest.mark.slow
def test_conformance() -> None:
    check_sampler(EGLPP, k=4)


def test_ground_truth_labels_are_the_targets_the_run_trained_on() -> None:
    """og_heatmap compares with ground truth rendered by the run's codec (its sigma and peak height), not by fixed
    reference values: a run trained on other targets gets other scores; without a codec the reference's apply."""
    from alpose_bench.pose.heatmaps import HeatmapCodec
    from alpose_bench.pose.models import model_info

    ctx = make_context(n_pool=10, n_labelled=6, seed=2)
    info = model_info(ctx.model)
    without = EGLPP(k=3, og_heatmap=True).score(ctx, np.arange(10))
    ctx.codec = HeatmapCodec.reference(info.input_size, int(info.heatmap_size))
    np.testing.assert_array_equal(EGLPP(k=3, og_heatmap=True).score(ctx, np.arange(10)), without)
    ctx.codec = HeatmapCodec(info.input_size, int(info.heatmap_size), sigma=3.0, amplitude=5.0)
    assert not np.allclose(EGLPP(k=3, og_heatmap=True).score(ctx, np.arange(10)), without)
