"""VL4Pose (Shukla et al., BMVC 2022): visual likelihood of the predicted pose under a learned skeleton model.

The pose is a tree-structured Bayesian network over the skeleton's (parent, child) links whose parameters an
auxiliary network (`AuxNet` on the pose model's detached multi-scale features) predicts per image:

* 2D heatmap models: per link the bone length mu (heatmap px) and s = log sigma^2,
  q(y_c | y_p) = N(|y_c - y_p|; mu, e^s). Trained by maximum likelihood on the ground-truth bone lengths
  (rounded keypoints = argmax of the target heatmaps, as the reference).
* 3D regression models: per link an offset o (3) and per-axis log-variances s (3),
  q(y_c | y_p) = N(y_c - (y_p + o); diag(e^s)) on cube-normalised coordinates; scored on the point prediction.

Scoring (2D): up to `num_peaks` local maxima per joint heatmap, p̂ = softmax of their values, and the EXPECTED
log-likelihood of the pose, sum over links of sum over peak pairs p̂_p(a) p̂_c(b) log q(b | a) (the paper's
Eq. 3, without the root term, which the model does not have). The least likely images are annotated first
(score = -log-likelihood). With the reference default num_peaks = 1, p̂ = 1 and this is exactly the reference
code's score, the sum of the link log-likelihoods at the heatmap maxima. (For num_peaks > 1 the reference code
instead sums log p̂ + log q over candidate locations, which is not a p̂-weighted expectation; we follow the paper.)

Pose refinement (num_peaks > 1): a max-product (Viterbi) pass over the tree picks the peak per joint maximising
sum_j log p̂_j(y_j) + sum_links log q(y_c | y_p) (the paper's Eq. 6; reference visualiser with np.max); the refined
keypoints of every pool image are left in ctx.annotations["refined_keypoints"] (model-input px).

The reference values (num_peaks 1, min_distance 8) are for 64x64 heatmaps: min_distance and the border it excludes
are rescaled by heatmap_size / 64 (rounded, at least 1). A joint without any local maximum (the reference would
crash there) falls back to its heatmap's argmax.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from alpose_bench.core.validation import param
from alpose_bench.pose.heatmaps import heatmap_coords_to_input
from alpose_bench.pose.models.aux import AuxNet, require_aux
from alpose_bench.pose.models.outputs import ModelInfo, PoseOutput, TrainBatch
from alpose_bench.pose.peaks import (
    Peaks,
    find_peaks,
    peak_probabilities,
    scaled_distance,
    with_argmax_fallback,
)
from alpose_bench.pose.pool import ForwardBatch, SelectionContext
from alpose_bench.pose.skeleton import Skeleton
from alpose_bench.samplers.base import ScoringSampler

LOG_2PI = math.log(2.0 * math.pi)


def _links(skeleton: Skeleton, device: torch.device) -> tuple[Tensor, Tensor]:
    links = torch.tensor(skeleton.links, dtype=torch.long, device=device)
    return links[:, 0], links[:, 1]


def gaussian_log_density(x: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
    """log N(x; mean, e^log_var), elementwise."""
    return -0.5 * (LOG_2PI + log_var + (x - mean).pow(2) * torch.exp(-log_var))


def _nan_safe(keypoints: Tensor, mask: Tensor) -> Tensor:
    """Keypoints with unannotated joints (which may hold NaN) set to 0."""
    return torch.where(mask[..., None], keypoints, torch.zeros_like(keypoints))


def bone_length_nll(
    mu: Tensor, log_var: Tensor, keypoints: Tensor, visible: Tensor, skeleton: Skeleton
) -> Tensor:
    """VL4Pose 2D training loss: mean over batch x links of 0.5 (mu - d)^2 e^-s + 0.5 s, masked links count 0.

    mu, log_var (B, L); keypoints (B, J, 2) heatmap px, rounded to the pixel grid here; visible (B, J).
    """
    parent, child = _links(skeleton, mu.device)
    vis = visible > 0
    kp = torch.round(_nan_safe(keypoints.float(), vis))
    d = (kp[:, child] - kp[:, parent]).norm(dim=-1)  # (B, L)
    mask = vis[:, parent] & vis[:, child]
    nll = 0.5 * (mu - d).pow(2) * torch.exp(-log_var) + 0.5 * log_var
    return torch.where(mask, nll, torch.zeros_like(nll)).sum() / max(1, nll.numel())


def offset_nll(
    offset: Tensor, log_var: Tensor, keypoints: Tensor, visible: Tensor, skeleton: Skeleton
) -> Tensor:
    """VL4Pose 3D training loss: per link sum over axes of 0.5 r^2 e^-s + 0.5 s with r = y_c - (y_p + o), masked,
    averaged over batch x links. offset, log_var (B, L, 3); keypoints (B, J, 3) normalised; visible (B, J)."""
    parent, child = _links(skeleton, offset.device)
    vis = visible > 0
    kp = _nan_safe(keypoints.float(), vis)
    r = kp[:, child] - (kp[:, parent] + offset)
    nll = (0.5 * r.pow(2) * torch.exp(-log_var) + 0.5 * log_var).sum(dim=-1)  # (B, L)
    mask = vis[:, parent] & vis[:, child]
    return torch.where(mask, nll, torch.zeros_like(nll)).sum() / max(1, nll.numel())


def expected_log_likelihood(peaks: Peaks, mu: Tensor, log_var: Tensor, skeleton: Skeleton) -> Tensor:
    """(B,) sum over links of sum over peak pairs p̂_p(a) p̂_c(b) log N(|a - b|; mu, e^s).

    peaks: every joint needs at least one valid peak (see `with_argmax_fallback`); mu, log_var (B, L).
    """
    return link_log_likelihoods(peaks, mu, log_var, skeleton).sum(dim=1)


def link_log_likelihoods(peaks: Peaks, mu: Tensor, log_var: Tensor, skeleton: Skeleton) -> Tensor:
    """(B, L) the terms of `expected_log_likelihood`, one per link: which limb makes a pose unlikely."""
    parent, child = _links(skeleton, mu.device)
    p = peak_probabilities(peaks)  # (B, J, K)
    a, b = peaks.coords[:, parent], peaks.coords[:, child]  # (B, L, K, 2)
    dist = (a[:, :, :, None, :] - b[:, :, None, :, :]).norm(dim=-1)  # (B, L, K, K)
    logq = gaussian_log_density(dist, mu[..., None, None], log_var[..., None, None])
    weight = p[:, parent][..., :, None] * p[:, child][..., None, :]
    return (weight * logq).sum(dim=(2, 3))


def offset_log_likelihood(keypoints: Tensor, offset: Tensor, log_var: Tensor, skeleton: Skeleton) -> Tensor:
    """(B,) sum over links of log N(y_c - (y_p + o); 0, diag(e^s)) for a point estimate keypoints (B, J, 3)."""
    parent, child = _links(skeleton, keypoints.device)
    r = keypoints[:, child] - (keypoints[:, parent] + offset)
    return gaussian_log_density(r, torch.zeros_like(r), log_var).sum(dim=(1, 2))


def refine_poses(peaks: Peaks, mu: Tensor, log_var: Tensor, skeleton: Skeleton) -> tuple[Tensor, Tensor]:
    """Most likely pose among the peaks: argmax of sum_j log p̂_j(y_j) + sum_links log q(y_c | y_p).

    Max-product (Viterbi) over the tree, vectorised over the batch: messages go from the leaves up (links in
    reverse order), choices come down from the root. Returns coords (B, J, 2) in heatmap px and changed (B,),
    True where some joint picked a peak other than its highest one. Ties keep the higher-ranked peak.
    """
    if not bool(peaks.valid.any(dim=-1).all()):
        raise ValueError(
            "refine_poses needs at least one peak per joint; apply peaks.with_argmax_fallback first"
        )
    b, j, k = peaks.values.shape
    if mu.shape != (b, skeleton.num_links) or log_var.shape != mu.shape:
        raise ValueError(
            f"mu and log_var must be (B, links) = ({b}, {skeleton.num_links}), got {tuple(mu.shape)}, "
            f"{tuple(log_var.shape)}"
        )
    p = peak_probabilities(peaks)
    log_p = torch.where(peaks.valid, torch.log(p), torch.full_like(p, float("-inf")))
    belief = list(log_p.unbind(dim=1))  # per joint (B, K): log p̂ + messages from its children
    back: dict[int, Tensor] = {}
    for link in reversed(range(skeleton.num_links)):
        par, chi = skeleton.links[link]
        # (B, Ka, Kb): parent peak a, child peak b
        dist = (peaks.coords[:, par, :, None, :] - peaks.coords[:, chi, None, :, :]).norm(dim=-1)
        logq = gaussian_log_density(dist, mu[:, link, None, None], log_var[:, link, None, None])
        message, back[link] = (belief[chi][:, None, :] + logq).max(dim=-1)  # best child peak per parent peak
        belief[par] = belief[par] + message
    choice = torch.empty(b, j, dtype=torch.long, device=log_p.device)
    choice[:, skeleton.root] = belief[skeleton.root].argmax(dim=-1)
    for link, (par, chi) in enumerate(skeleton.links):
        choice[:, chi] = back[link].gather(1, choice[:, par, None]).squeeze(1)
    coords = peaks.coords.gather(2, choice[:, :, None, None].expand(b, j, 1, 2)).squeeze(2)
    return coords, (choice != 0).any(dim=1)


#: peaks per joint of the refinement variant (`VL4Pose.refinement_variant`)
REFINEMENT_PEAKS = 5


@dataclass
class VL4Pose(ScoringSampler):
    """Annotate the images whose predicted pose is least likely under the learned skeleton model."""

    name = "vl4pose"
    colour = "#D55E00"
    marker = "*"
    order = 6
    groups = frozenset({"default"})
    label = "VL4Pose"
    description = (
        "VL4Pose: lowest likelihood of the predicted pose under a learned tree-structured skeleton model."
    )
    needs = frozenset({"heatmaps", "keypoints", "aux"})
    tasks = frozenset({"heatmap2d", "regression3d"})
    overhead_target = 1.1

    num_peaks: int = param(
        1, low=1
    )  # reference "FAST vl4pose" default; > 1 adds joint ambiguity and refinement
    min_distance: int = param(8, low=0)  # heatmap px at 64x64; rescaled to the model's heatmap size
    exclude_border: bool = True  # the reference sampler's peak_local_max default

    def refinement_variant(self) -> VL4Pose | None:
        """With one peak per joint there is nothing to refine: the same sampler with `REFINEMENT_PEAKS` peaks."""
        return dataclasses.replace(self, num_peaks=REFINEMENT_PEAKS) if self.num_peaks == 1 else None

    @staticmethod
    def _per_link(task: str) -> int:
        return 2 if task == "heatmap2d" else 6

    def auxiliary(self, info: ModelInfo) -> nn.Module:
        return AuxNet(info, out_dim=self._per_link(info.task) * info.skeleton.num_links)

    def auxiliary_loss(self, aux_out: Tensor, batch: TrainBatch, pose_out: PoseOutput) -> Tensor:
        skeleton = batch.skeleton
        if skeleton is None:
            raise ValueError("vl4pose: the training batch must carry its skeleton (TrainBatch.skeleton)")
        task = "heatmap2d" if batch.heatmaps is not None else "regression3d"
        width = self._per_link(task)
        out = require_aux(aux_out, self.name, width * skeleton.num_links).reshape(
            -1, skeleton.num_links, width
        )
        if task == "heatmap2d":
            return bone_length_nll(out[..., 0], out[..., 1], batch.keypoints, batch.visible, skeleton)
        return offset_nll(out[..., :3], out[..., 3:], batch.keypoints, batch.visible, skeleton)

    def score_batch(self, batch: ForwardBatch, ctx: SelectionContext) -> np.ndarray:
        skeleton = ctx.skeleton
        links = skeleton.num_links
        aux = require_aux(batch.aux, self.name, self._per_link(ctx.task) * links)
        if ctx.task == "regression3d":
            out = aux.reshape(-1, links, 6)
            loglik = offset_log_likelihood(batch.out.regressed.float(), out[..., :3], out[..., 3:], skeleton)
            return (-loglik).double().cpu().numpy()
        out = aux.reshape(-1, links, 2)
        mu, log_var = out[..., 0], out[..., 1]
        heatmaps = batch.out.final_heatmaps.float()
        size = int(heatmaps.shape[-1])
        distance = scaled_distance(self.min_distance, size)
        peaks = find_peaks(heatmaps, self.num_peaks, distance, exclude_border=self.exclude_border)
        peaks = with_argmax_fallback(peaks, heatmaps)
        if self.num_peaks > 1:
            refined, _ = refine_poses(peaks, mu, log_var, skeleton)
            refined = heatmap_coords_to_input(refined, int(batch.images.shape[-1]), size)
            store = ctx.annotations.get("refined_keypoints")
            shape = (len(ctx.pool), skeleton.num_joints, 2)
            if store is None or store.shape != shape:
                store = ctx.annotations["refined_keypoints"] = np.full(shape, np.nan, dtype=np.float32)
            store[batch.positions] = refined.cpu().numpy()
        per_link = link_log_likelihoods(peaks, mu, log_var, skeleton)
        if getattr(ctx, "explain", False):  # `suggest` asks why; experiments do not
            ctx.record_explanation("link_log_likelihood", batch.positions, per_link.double().cpu().numpy())
        return (-per_link.sum(dim=1)).double().cpu().numpy()

    def reasons(self, ctx: SelectionContext, positions: np.ndarray) -> list[str] | None:
        """The least likely limb of each image's predicted pose (2D; the 3D scores have no per-limb record)."""
        per_link = ctx.explanations.get("link_log_likelihood")
        if per_link is None:
            return None
        names = ctx.skeleton.joints
        out = []
        for row in per_link[np.asarray(positions)]:
            link = int(np.nanargmin(row)) if np.isfinite(row).any() else None
            if link is None:
                out.append("")
                continue
            parent, child = ctx.skeleton.links[link]
            out.append(f"least likely limb {names[parent]}-{names[child]} (log-likelihood {row[link]:.1f})")
        return out
