"""Learning Loss / LearningLoss++: pair losses by hand, the true-loss target, selection, the sampler contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import softmax

from alpose_bench.pose.models import model_info
from alpose_bench.pose.models.outputs import PoseOutput, TrainBatch
from alpose_bench.samplers.learning_loss import (
    LearningLoss,
    LearningLossPP,
    kl_pair_loss,
    margin_ranking_loss,
    true_loss,
)
from alpose_bench.testing import check_sampler, make_context, train_batch

torch.set_num_threads(1)

PRED = torch.tensor([1.5, 0.0, 1.0, 3.0])  # pairs (0, 2) and (1, 3)
TRUE = torch.tensor([0.5, 0.1, 0.2, 0.3])


def test_margin_ranking_loss_by_hand() -> None:
    # pair (0, 2): l0 > l2, so l̂0 - l̂2 = 0.5 should exceed the margin 1: loss 0.5
    # pair (1, 3): l1 < l3 and l̂1 - l̂3 = -3 is below -1: loss 0
    assert margin_ranking_loss(PRED, TRUE, margin=1.0).item() == pytest.approx(0.25)
    assert margin_ranking_loss(PRED, TRUE, margin=2.0).item() == pytest.approx(0.75)


def test_kl_pair_loss_by_hand() -> None:
    def kl(p, q):
        return float(np.sum(p * np.log(p / q)))

    want = (
        kl(np.array([0.5, 0.2]) / 0.7, softmax([1.5, 1.0]))
        + kl(np.array([0.1, 0.3]) / 0.4, softmax([0.0, 3.0]))
    ) / 2
    assert kl_pair_loss(PRED, TRUE).item() == pytest.approx(want, rel=1e-5)


def test_odd_and_single_batches() -> None:
    odd_pred, odd_true = torch.cat([PRED, torch.tensor([9.0])]), torch.cat([TRUE, torch.tensor([9.0])])
    # 5 images: pairs (0, 2), (1, 3); the fifth has no partner
    assert margin_ranking_loss(odd_pred, odd_true).item() == pytest.approx(0.25)
    one = torch.tensor([1.0], requires_grad=True)
    for loss in (margin_ranking_loss(one, torch.tensor([2.0])), kl_pair_loss(one, torch.tensor([2.0]))):
        assert loss.item() == 0.0
        loss.backward()  # still part of the graph
    assert kl_pair_loss(torch.zeros(2), torch.zeros(2)).item() == 0.0  # two perfect images: no NaN


def test_true_loss_divides_the_heatmap_mse_by_annotated_joints() -> None:
    pred = torch.stack([torch.ones(2, 2, 2), torch.full((2, 2, 2), 2.0)])  # MSE 1 and 4 against zero targets
    out = PoseOutput(heatmaps=[pred], keypoints=None, features=[], embedding=torch.zeros(2, 1))
    batch = TrainBatch(
        images=torch.zeros(2, 3, 8, 8),
        keypoints=torch.zeros(2, 2, 2),
        visible=torch.tensor([[1.0, 1.0], [1.0, 0.0]]),
        heatmaps=torch.zeros(2, 2, 2, 2),
    )
    np.testing.assert_allclose(true_loss(out, batch).numpy(), [1 / 2.1, 4 / 1.1], rtol=1e-6)
    # regression: the per-sample loss is already a mean over annotated joints
    kp = torch.zeros(2, 2, 3)
    out3 = PoseOutput(
        heatmaps=None, keypoints=kp + torch.tensor([0.0, 0.0, 1.0]), features=[], embedding=kp[:, 0]
    )
    batch3 = TrainBatch(images=batch.images, keypoints=kp, visible=batch.visible, heatmaps=None)
    np.testing.assert_allclose(true_loss(out3, batch3).numpy(), [1.0, 1.0])


def test_objectives_and_defaults() -> None:
    assert LearningLoss().objective == "margin" and LearningLoss().margin == 1.0
    assert LearningLossPP().objective == "kl" and LearningLossPP.name == "learning-loss-pp"
    assert isinstance(LearningLossPP(), LearningLoss)
    with pytest.raises(ValueError, match="objective"):
        LearningLoss(objective="hinge")


@pytest.mark.parametrize("cls", [LearningLoss, LearningLossPP])
def test_selects_the_highest_predicted_loss(cls) -> None:
    sampler = cls()
    ctx = make_context("heatmap2d", n_pool=20, n_labelled=4, seed=1, sampler=sampler)
    predicted = ctx.collect("pool", "aux")[:, 0]
    assert sampler.score(ctx).tolist() == pytest.approx(predicted.tolist())
    assert set(sampler.select(ctx, 4).positions.tolist()) == set(
        np.argsort(-predicted, kind="stable")[:4].tolist()
    )


@pytest.mark.parametrize("cls", [LearningLoss, LearningLossPP])
@pytest.mark.parametrize("task", ["heatmap2d", "regression3d"])
def test_auxiliary_loss_decreases_on_a_fixed_batch(cls, task: str) -> None:
    torch.manual_seed(0)
    ctx = make_context(task, n_pool=8, n_labelled=0, seed=0)
    info = model_info(ctx.model)
    sampler = cls()
    head = sampler.auxiliary(info)
    batch = train_batch(ctx.dataset, info, n=8)
    with torch.no_grad():
        pose_out = ctx.model(batch.images)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        loss = sampler.auxiliary_loss(head(pose_out.features), batch, pose_out)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("cls", [LearningLoss, LearningLossPP])
def test_contract(cls) -> None:
    check_sampler(cls)
