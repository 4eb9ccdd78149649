"""Multi-Peak Entropy (Liu & Ferrari, ICCV 2017), as the VL4Pose reference code implements it.

For every joint of the last stack's heatmaps: up to `num_peaks` local maxima at least `min_distance` apart
(skimage's peak_local_max semantics, default border exclusion and threshold), a softmax over the peak values,
and the Shannon entropy of that distribution in nats; the image's score is the sum over joints, and the most
uncertain images are annotated first. A joint with one peak, or none, contributes 0.

The reference values (num_peaks 5, min_distance 5; the 2022 code) are for 64x64 heatmaps: min_distance (and the
border it excludes) is rescaled by heatmap_size / 64, rounded, at least 1 (5 -> 1 px on 16x16 heatmaps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from alpose_bench.core.validation import param
from alpose_bench.pose.peaks import find_peaks, peak_probabilities, scaled_distance
from alpose_bench.pose.pool import ForwardBatch, SelectionContext
from alpose_bench.samplers.base import ScoringSampler


def multi_peak_entropy(
    heatmaps: Tensor, num_peaks: int, min_distance: int, exclude_border: bool = True
) -> Tensor:
    """(B,) sum over joints of the entropy (nats) of the softmax over each joint's heatmap peaks.

    `min_distance` is in pixels of these heatmaps (already rescaled).
    """
    return joint_peak_entropies(heatmaps, num_peaks, min_distance, exclude_border).sum(dim=-1)


def joint_peak_entropies(
    heatmaps: Tensor, num_peaks: int, min_distance: int, exclude_border: bool = True
) -> Tensor:
    """(B, J) the terms of `multi_peak_entropy`, one per joint: which joint the model is torn about."""
    peaks = find_peaks(
        heatmaps, num_peaks=num_peaks, min_distance=min_distance, exclude_border=exclude_border
    )
    p = peak_probabilities(peaks)
    return -torch.special.xlogy(p, p).sum(dim=-1)  # 0 log 0 = 0 on empty slots


@dataclass
class MultiPeakEntropy(ScoringSampler):
    """Annotate the images whose joint heatmaps have the most evenly matched peaks (highest entropy)."""

    name = "mpe"
    colour = "#0072B2"
    marker = "P"
    order = 5
    groups = frozenset({"default"})
    label = "Multi-Peak Entropy"
    description = "Multi-Peak Entropy: entropy of the softmax over each joint's heatmap peaks, summed."
    needs = frozenset({"heatmaps"})
    tasks = frozenset({"heatmap2d"})
    overhead_target = 1.1

    num_peaks: int = param(5, low=1)
    min_distance: int = param(5, low=0)  # heatmap px at 64x64; rescaled to the model's heatmap size
    exclude_border: bool = True  # skimage's default: no peaks within min_distance of the border

    def score_batch(self, batch: ForwardBatch, ctx: SelectionContext) -> np.ndarray:
        heatmaps = batch.out.final_heatmaps
        distance = scaled_distance(self.min_distance, int(heatmaps.shape[-1]))
        per_joint = joint_peak_entropies(heatmaps, self.num_peaks, distance, self.exclude_border)
        if getattr(ctx, "explain", False):  # `suggest` asks why; experiments do not
            ctx.record_explanation("joint_entropy", batch.positions, per_joint.double().cpu().numpy())
        return per_joint.sum(dim=-1).double().cpu().numpy()

    def reasons(self, ctx: SelectionContext, positions: np.ndarray) -> list[str] | None:
        """The joint whose heatmap peaks are most evenly matched in each image."""
        per_joint = ctx.explanations.get("joint_entropy")
        if per_joint is None:
            return None
        names = ctx.skeleton.joints
        return [
            f"most ambiguous joint {names[int(np.nanargmax(row))]} ({np.nanmax(row):.2f} nats over its peaks)"
            if np.isfinite(row).any()
            else ""
            for row in per_joint[np.asarray(positions)]
        ]
