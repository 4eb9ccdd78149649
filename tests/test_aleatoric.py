"""Aleatoric uncertainty: the NLL and residuals by hand, selection by mean log-variance, the sampler contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from alpose_bench.pose.models import model_info
from alpose_bench.pose.models.outputs import PoseOutput, TrainBatch
from alpose_bench.samplers.aleatoric import Aleatoric, heteroscedastic_nll, squared_residuals
from alpose_bench.testing import check_sampler, make_context, train_batch

torch.set_num_threads(1)


def test_heatmap_residual_and_nll_by_hand() -> None:
    heatmaps = torch.zeros(1, 2, 8, 8)
    heatmaps[0, 0, 2, 3] = 1.0  # argmax (x=3, y=2)
    heatmaps[0, 1, 5, 5] = 1.0  # argmax (5, 5)
    out = PoseOutput(heatmaps=[heatmaps], keypoints=None, features=[], embedding=torch.zeros(1, 1))
    batch = TrainBatch(
        images=torch.zeros(1, 3, 32, 32),
        keypoints=torch.tensor([[[3.4, 2.2], [1.0, 2.0]]]),  # rounded (3, 2): residual 0; (1, 2): 16 + 9 = 25
        visible=torch.ones(1, 2),
        heatmaps=torch.zeros(1, 2, 8, 8),
    )
    r = squared_residuals(out, batch)
    assert r.tolist() == [[0.0, 25.0]]
    s = torch.tensor([[0.0, math.log(5.0)]])
    want = (0.0 + (0.5 * 25 / 5 + 0.5 * math.log(5.0))) / 2
    assert heteroscedastic_nll(s, r, batch.visible).item() == pytest.approx(want, rel=1e-6)
    # an unannotated joint (NaN keypoint) counts as 0
    batch.keypoints[0, 1] = float("nan")
    batch.visible[0, 1] = 0
    r = squared_residuals(out, batch)
    assert r.tolist() == [[0.0, 0.0]]
    assert heteroscedastic_nll(s, r, batch.visible).item() == 0.0


def test_regression_residual_by_hand() -> None:
    pred = torch.tensor([[[0.1, 0.2, 0.3], [0.0, 0.0, 0.0]]])
    out = PoseOutput(heatmaps=None, keypoints=pred, features=[], embedding=torch.zeros(1, 1))
    gt = torch.tensor([[[0.1, 0.2, 0.3], [0.3, 0.0, 0.4]]])
    batch = TrainBatch(
        images=torch.zeros(1, 1, 32, 32), keypoints=gt, visible=torch.ones(1, 2), heatmaps=None
    )
    np.testing.assert_allclose(squared_residuals(out, batch).numpy(), [[0.0, 0.25]], atol=1e-7)


def test_nll_minimum_is_at_the_residual() -> None:
    """d/ds (0.5 r e^-s + 0.5 s) = 0 at s = log r: the head learns the log of the expected squared error."""
    r = torch.tensor([[4.0]])
    s = torch.linspace(-2, 4, 601)[:, None]
    nll = torch.stack([heteroscedastic_nll(v[None], r, torch.ones(1, 1)) for v in s])
    assert float(s[nll.argmin()]) == pytest.approx(math.log(4.0), abs=0.01)


def test_selects_the_highest_mean_log_variance() -> None:
    sampler = Aleatoric()
    ctx = make_context("heatmap2d", n_pool=20, n_labelled=4, seed=1, sampler=sampler)
    mean_s = ctx.collect("pool", "aux").mean(axis=1)
    np.testing.assert_allclose(sampler.score(ctx), mean_s, rtol=1e-6)
    assert set(sampler.select(ctx, 6).positions.tolist()) == set(
        np.argsort(-mean_s, kind="stable")[:6].tolist()
    )


@pytest.mark.slow
@pytest.mark.parametrize("task", ["heatmap2d", "regression3d"])
def test_auxiliary_loss_decreases_on_a_fixed_batch(task: str) -> None:
    """A few Adam steps lower the NLL at least to that of the best single log-variance for the whole batch."""
    torch.manual_seed(0)
    ctx = make_context(task, n_pool=8, n_labelled=0, seed=0)
    info = model_info(ctx.model)
    sampler = Aleatoric()
    head = sampler.auxiliary(info)
    batch = train_batch(ctx.dataset, info, n=8)
    with torch.no_grad():
        pose_out = ctx.model(batch.images)
    r = squared_residuals(pose_out, batch)
    best_constant = heteroscedastic_nll(
        torch.log(r.sum() / batch.visible.sum()).expand_as(r), r, batch.visible
    )
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = sampler.auxiliary_loss(head(pose_out.features), batch, pose_out)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert losses[-1] <= best_constant.item() + 0.01


def test_contract() -> None:
    check_sampler(Aleatoric)
