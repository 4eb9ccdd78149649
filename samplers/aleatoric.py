"""Aleatoric uncertainty (Kendall & Gal style), as the VL4Pose reference code implements it.

An auxiliary network (`AuxNet`, one output per joint) predicts a log-variance s_j of each joint's localisation
error; it is trained with the Gaussian negative log-likelihood of the pose model's own error,
0.5 r_j e^(-s_j) + 0.5 s_j masked by annotated joints and averaged over batch x joints, where r_j is the squared
Euclidean distance between the predicted and the ground-truth keypoint:

* heatmap models: integer argmax of the predicted last-stack heatmap vs the rounded ground truth (heatmap px,
  the argmax of the target heatmap in the reference);
* 3D regression: predicted vs ground-truth cube-normalised coordinates.

Selection: the images with the highest mean predicted log-variance over joints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from alpose_bench.pose.models.aux import AuxNet, require_aux
from alpose_bench.pose.models.outputs import ModelInfo, PoseOutput, TrainBatch
from alpose_bench.pose.pool import ForwardBatch, SelectionContext
from alpose_bench.samplers.base import ScoringSampler


def heatmap_argmax(heatmaps: Tensor) -> Tensor:
    """(B, J, 2) integer (x, y) of each heatmap's maximum (first one on ties), as float."""
    b, j, h, w = heatmaps.shape
    index = heatmaps.reshape(b, j, h * w).argmax(dim=-1)
    return torch.stack([index % w, index // w], dim=-1).float()


def squared_residuals(pose_out: PoseOutput, batch: TrainBatch) -> Tensor:
    """(B, J) squared distance between the (detached) prediction and the ground truth; 0 for unannotated joints."""
    vis = batch.visible > 0
    if pose_out.heatmaps is not None:
        pred = heatmap_argmax(pose_out.final_heatmaps.detach().float())
        gt = torch.round(batch.keypoints.float())
    else:
        if pose_out.keypoints is None:
            raise ValueError("PoseOutput has neither heatmaps nor keypoints")
        pred, gt = pose_out.keypoints.detach().float(), batch.keypoints.float()
    r = (pred - gt).pow(2).sum(dim=-1)
    return torch.where(vis, r, torch.zeros_like(r))  # unannotated joints may hold NaN


def heteroscedastic_nll(log_var: Tensor, residual: Tensor, visible: Tensor) -> Tensor:
    """mean over batch x joints of 0.5 r e^-s + 0.5 s, unannotated joints counting 0."""
    nll = 0.5 * residual * torch.exp(-log_var) + 0.5 * log_var
    return torch.where(visible > 0, nll, torch.zeros_like(nll)).sum() / max(1, nll.numel())


@dataclass
class Aleatoric(ScoringSampler):
    """Annotate the images whose joints the auxiliary head expects to be localised least reliably."""

    name = "aleatoric"
    colour = "#CC79A7"
    marker = "v"
    order = 4
    label = "Aleatoric"
    description = "Aleatoric uncertainty: highest mean per-joint log-variance predicted by an auxiliary head."
    needs = frozenset({"aux"})
    tasks = frozenset({"heatmap2d", "regression3d"})
    overhead_target = 1.1

    def auxiliary(self, info: ModelInfo) -> nn.Module:
        return AuxNet(info, out_dim=info.skeleton.num_joints)

    def auxiliary_loss(self, aux_out: Tensor, batch: TrainBatch, pose_out: PoseOutput) -> Tensor:
        log_var = require_aux(aux_out, self.name, batch.visible.shape[1])
        return heteroscedastic_nll(log_var, squared_residuals(pose_out, batch), batch.visible)

    def score_batch(self, batch: ForwardBatch, ctx: SelectionContext) -> np.ndarray:
        log_var = require_aux(batch.aux, self.name, ctx.skeleton.num_joints)
        return log_var.mean(dim=1).double().cpu().numpy()
