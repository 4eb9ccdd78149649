"""Reference samplers that read the pool's labels: the headroom of an experiment, never samplers to rank.

`oracle-hard` annotates the images the current model gets most wrong, `oracle-easy` those it gets most right, by
the true per-image error: the mean over annotated joints of ‖prediction − label‖ / normaliser (head-box diagonals
for PCKh, torso sizes for PCK, millimetres for MPJPE), the quantity `alpose_bench.pose.metrics.per_image_error` computes
and the test metric thresholds. No annotator can do either; they bracket what error-seeking and typical-seeking
sampling can achieve in this experiment, so `report` can say which regime it is in (`alpose_bench.results.analysis.regime`)
and whether an uncertainty sampler could beat random here at all. One forward pass over the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from alpose_bench.pose.heatmaps import decode_keypoints
from alpose_bench.pose.metrics import per_image_error
from alpose_bench.pose.pool import ForwardBatch, SelectionContext
from alpose_bench.samplers.base import ScoringSampler


def true_error(batch: ForwardBatch, ctx: SelectionContext) -> np.ndarray:
    """(B,) the model's true per-image error on the batch's pool images, in the test metric's normalised units
    (NaN for an image without annotated joints)."""
    pred = decode_keypoints(batch.out, input_size=batch.images.shape[-1]).double().cpu().numpy()
    if ctx.task == "regression3d":
        pred = pred * ctx.dataset.cube_mm  # normalised coordinates -> millimetres, as the evaluation does
    truth = ctx.labels("pool", batch.positions)
    return per_image_error(pred, truth.keypoints, truth.visible.astype(bool), truth.normalizer)


@dataclass
class _TrueErrorReference(ScoringSampler):
    needs = frozenset({"labels"})
    reference = True
    overhead_target = 1.1
    #: +1: largest error first; -1: smallest first
    direction: ClassVar[float]

    def score_batch(self, batch: ForwardBatch, ctx: SelectionContext) -> np.ndarray:
        return self.direction * true_error(batch, ctx)  # NaN (no annotated joint) ranks last either way


@dataclass
class OracleHard(_TrueErrorReference):
    """Annotate the pool images with the largest true error of the current model (reads labels: a reference)."""

    name = "oracle-hard"
    colour = "#882255"
    marker = "^"
    order = 18
    groups = frozenset({"default"})
    seeks = "hard"
    label = "Oracle (hardest)"
    description = (
        "Reference, reads labels: the images the current model gets most wrong (true per-image error)."
    )
    direction = 1.0


@dataclass
class OracleEasy(_TrueErrorReference):
    """Annotate the pool images with the smallest true error of the current model (reads labels: a reference)."""

    name = "oracle-easy"
    colour = "#117733"
    marker = "v"
    order = 19
    groups = frozenset({"default"})
    seeks = "easy"
    label = "Oracle (easiest)"
    description = (
        "Reference, reads labels: the images the current model gets most right (true per-image error)."
    )
    direction = -1.0
