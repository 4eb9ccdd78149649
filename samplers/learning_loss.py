"""Learning Loss (Yoo & Kweon, CVPR 2019) and LearningLoss++ (Shukla & Ahmed, CVPRW 2021).

An auxiliary network (`AuxNet`, one output) on the pose model's detached features learns to predict each image's
pose loss; the images with the highest predicted loss are annotated first. Training pairs the two halves of a
batch (i, i + B/2) and compares predicted with true losses:

* "margin" (Yoo & Kweon): max(0, -sign(l_i - l_j) (l̂_i - l̂_j) + margin), averaged over pairs;
* "kl" (LearningLoss++, the reference code's default): KL(p || q) with p = (l_i, l_j) / (l_i + l_j) and
  q = softmax(l̂_i, l̂_j), averaged over pairs; it has no margin to tune.

True loss per image, as the reference: the heatmap MSE (`pose_loss_per_sample`) divided by the number of
annotated joints + 0.1. For 3D regression the per-sample loss is already a mean over the annotated joints, so it is
used as it is (dividing again would rank images with fewer annotated joints higher).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from alpose_bench.core.validation import param
from alpose_bench.pose.heatmaps import pose_loss_per_sample
from alpose_bench.pose.models.aux import AuxNet, require_aux
from alpose_bench.pose.models.outputs import ModelInfo, PoseOutput, TrainBatch
from alpose_bench.pose.pool import ForwardBatch, SelectionContext
from alpose_bench.samplers.base import ScoringSampler


def true_loss(pose_out: PoseOutput, batch: TrainBatch) -> Tensor:
    """(B,) detached per-image pose loss the head learns to predict (see the module docstring)."""
    loss = pose_loss_per_sample(pose_out, batch).detach().float()
    if pose_out.heatmaps is not None:
        loss = loss / ((batch.visible > 0).float().sum(dim=1) + 0.1)
    return loss


def _halves(x: Tensor) -> tuple[Tensor, Tensor]:
    half = x.shape[0] // 2
    return x[:half], x[half : 2 * half]


def margin_ranking_loss(predicted: Tensor, true: Tensor, margin: float = 1.0) -> Tensor:
    """Yoo & Kweon's pair loss over the batch halves: mean of max(0, -sign(l_i - l_j)(l̂_i - l̂_j) + margin)."""
    (pi, pj), (ti, tj) = _halves(predicted), _halves(true)
    if len(pi) == 0:
        return predicted.sum() * 0.0  # a batch of one image has no pair
    return torch.clamp(-torch.sign(ti - tj) * (pi - pj) + margin, min=0).mean()


def kl_pair_loss(predicted: Tensor, true: Tensor) -> Tensor:
    """LearningLoss++ pair loss over the batch halves: mean over pairs of KL(p || softmax(l̂_i, l̂_j))."""
    (pi, pj), (ti, tj) = _halves(predicted), _halves(true)
    if len(pi) == 0:
        return predicted.sum() * 0.0
    total = (ti + tj).clamp(min=torch.finfo(ti.dtype).tiny)  # two zero losses: p = 0, no signal
    p = torch.stack([ti / total, tj / total], dim=1)
    log_q = F.log_softmax(torch.stack([pi, pj], dim=1), dim=1)
    return F.kl_div(log_q, p, reduction="batchmean")


@dataclass
class LearningLoss(ScoringSampler):
    """Annotate the images whose loss the auxiliary loss-prediction head expects to be highest."""

    name = "learning-loss"
    former_names = ("learning_loss",)
    colour = "#56B4E9"
    marker = "^"
    order = 2
    label = "Learning Loss"
    description = "Learning Loss (Yoo & Kweon): highest loss predicted by a margin-ranking head."
    needs = frozenset({"aux"})
    tasks = frozenset({"heatmap2d", "regression3d"})
    overhead_target = 1.1

    objective: Literal["margin", "kl"] = "margin"  # "margin" (Yoo & Kweon) or "kl" (LearningLoss++)
    margin: float = param(1.0, low=0)  # xi of the margin ranking loss (unused by "kl")

    def auxiliary(self, info: ModelInfo) -> nn.Module:
        return AuxNet(info, out_dim=1)

    def auxiliary_loss(self, aux_out: Tensor, batch: TrainBatch, pose_out: PoseOutput) -> Tensor:
        predicted = require_aux(aux_out, self.name, 1).squeeze(1)
        true = true_loss(pose_out, batch)
        if self.objective == "kl":
            return kl_pair_loss(predicted, true)
        return margin_ranking_loss(predicted, true, self.margin)

    def score_batch(self, batch: ForwardBatch, ctx: SelectionContext) -> np.ndarray:
        return require_aux(batch.aux, self.name, 1).squeeze(1).double().cpu().numpy()


@dataclass
class LearningLossPP(LearningLoss):
    """LearningLoss++: the loss-prediction head trained with the KL pair objective."""

    name = "learning-loss-pp"
    former_names = ("learning_loss_pp",)
    colour = "#000000"
    marker = "<"
    order = 7
    label = "LearningLoss++"
    description = "LearningLoss++: highest loss predicted by a head trained with the KL pair objective."

    objective: Literal["margin", "kl"] = "kl"
