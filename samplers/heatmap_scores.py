"""One-pass uncertainty scores of heatmap pose models: least confidence, peak margin and heatmap entropy.

The classic uncertainty measures of active learning (Settles, "Active Learning Literature Survey", 2009: least
confidence, margin, entropy) applied to each joint's heatmap, as the practical pose tools do (DeepLabCut's
"uncertain" outlier frames and SLEAP's low-score suggestions rank by the heatmap peak, the keypoint's confidence).
Each is read from the single shared forward pass over the pool; higher score = annotate first.

* `least-confidence`: 1 − mean over joints of the heatmap maximum / `amplitude` (the training targets' peak height;
  it only rescales the score, so the ranking is the same for any positive value).
* `peak-margin`: the negated mean over joints of (highest peak − second peak) / `amplitude`, the second peak being
  the next local maximum at least `min_distance` away (the map's minimum when there is none): two evenly matched
  peaks, or a flat map, give margin 0 and rank first.
* `heatmap-entropy`: mean over joints of the Shannon entropy (nats) of the map made a distribution (negative values
  clipped to 0, divided by the sum; an all-zero map is uniform): flat or spread maps rank first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from alpose_bench.core.validation import param
from alpose_bench.pose.heatmaps import REFERENCE_AMPLITUDE
from alpose_bench.pose.peaks import find_peaks, scaled_distance, with_argmax_fallback
from alpose_bench.pose.pool import ForwardBatch, SelectionContext
from alpose_bench.samplers.base import ScoringSampler


def target_peak(amplitude: float | None, ctx: SelectionContext) -> float:
    """The peak height scores are divided by: the sampler's parameter, else the run's codec's, else 30."""
    if amplitude is not None:
        return amplitude
    return ctx.codec.amplitude if ctx.codec is not None else REFERENCE_AMPLITUDE


def least_confidence(heatmaps: Tensor, amplitude: float) -> Tensor:
    """(B,) 1 − mean over joints of each map's maximum / amplitude."""
    return 1.0 - heatmaps.flatten(2).amax(dim=2).mean(dim=1) / amplitude


def peak_margin(heatmaps: Tensor, amplitude: float, min_distance: int) -> Tensor:
    """(B,) mean over joints of (first − second local maximum) / amplitude; the second is the map's minimum when
    the map has a single peak, and a map without a local maximum (flat) has margin 0."""
    peaks = with_argmax_fallback(
        find_peaks(heatmaps, num_peaks=2, min_distance=min_distance, exclude_border=False), heatmaps
    )
    floor = heatmaps.flatten(2).amin(dim=2)
    second = torch.where(peaks.valid[..., 1], peaks.values[..., 1], floor)
    return ((peaks.values[..., 0] - second) / amplitude).mean(dim=1)


def heatmap_entropy(heatmaps: Tensor) -> Tensor:
    """(B,) mean over joints of the entropy (nats) of each map clipped at 0 and normalised (zero map: uniform)."""
    p = heatmaps.flatten(2).clamp(min=0.0).double()
    total = p.sum(dim=2, keepdim=True)
    p = torch.where(
        total > 0, p / total.clamp(min=torch.finfo(p.dtype).tiny), torch.full_like(p, 1.0 / p.shape[2])
    )
    return (-torch.special.xlogy(p, p).sum(dim=2)).mean(dim=1)


@dataclass
class LeastConfidence(ScoringSampler):
    """Annotate the images whose joint heatmaps peak lowest (least confident keypoints)."""

    name = "least-confidence"
    colour = "#332288"
    marker = "X"
    order = 8
    label = "Least confidence"
    description = "Least confidence: 1 - mean joint heatmap maximum (Settles 2009, on heatmaps)."
    needs = frozenset({"heatmaps"})
    tasks = frozenset({"heatmap2d"})
    overhead_target = 1.1

    # the training targets' peak height; None: the run's (`ctx.codec`), the reference 30 without one
    amplitude: float | None = param(None, low=0, low_open=True)

    def score_batch(self, batch: ForwardBatch, ctx: SelectionContext) -> np.ndarray:
        amplitude = target_peak(self.amplitude, ctx)
        return least_confidence(batch.out.final_heatmaps, amplitude).double().cpu().numpy()


@dataclass
class PeakMargin(ScoringSampler):
    """Annotate the images whose joints have the smallest margin between their two highest heatmap peaks."""

    name = "peak-margin"
    colour = "#44AA99"
    marker = "h"
    order = 9
    label = "Peak margin"
    description = (
        "Margin: smallest gap between each joint's two highest heatmap peaks (Settles 2009, on heatmaps)."
    )
    needs = frozenset({"heatmaps"})
    tasks = frozenset({"heatmap2d"})
    overhead_target = 1.1

    amplitude: float | None = param(None, low=0, low_open=True)  # as least-confidence's
    min_distance: int = param(5, low=1)  # heatmap px at 64x64 (as MPE); rescaled to the model's heatmap size

    def score_batch(self, batch: ForwardBatch, ctx: SelectionContext) -> np.ndarray:
        heatmaps = batch.out.final_heatmaps
        distance = scaled_distance(self.min_distance, int(heatmaps.shape[-1]))
        amplitude = target_peak(self.amplitude, ctx)
        return (-peak_margin(heatmaps, amplitude, distance)).double().cpu().numpy()


@dataclass
class HeatmapEntropy(ScoringSampler):
    """Annotate the images whose joint heatmaps are most spread out (highest entropy)."""

    name = "heatmap-entropy"
    colour = "#999933"
    marker = "p"
    order = 10
    label = "Heatmap entropy"
    description = (
        "Entropy of each joint's normalised heatmap, averaged over joints (Settles 2009, on heatmaps)."
    )
    needs = frozenset({"heatmaps"})
    tasks = frozenset({"heatmap2d"})
    overhead_target = 1.1

    def score_batch(self, batch: ForwardBatch, ctx: SelectionContext) -> np.ndarray:
        return heatmap_entropy(batch.out.final_heatmaps).cpu().numpy()
