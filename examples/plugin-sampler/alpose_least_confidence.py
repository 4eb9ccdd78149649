"""Least-confidence sampling for heatmap pose models: an example third-party alpose-bench sampler.

A joint's confidence is the height of its heatmap's highest peak; an image's confidence is the mean over its
joints. The images the model is least confident about are annotated first. Registered through the entry point
``least-confidence`` in the group ``alpose_bench.samplers`` (see pyproject.toml).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alpose_bench.samplers import ForwardBatch, ScoringSampler, SelectionContext, param


@dataclass
class LeastConfidence(ScoringSampler):
    """Score = 1 - mean over joints of the heatmap maximum / `amplitude`; higher = less confident."""

    name = "least-confidence"
    description = "Least confidence: 1 - mean joint heatmap peak (an example plugin)."
    needs = frozenset({"heatmaps"})
    tasks = frozenset({"heatmap2d"})

    # peak height of the training targets (the reference's hm_peak). It only rescales the score: the ranking,
    # and so the selection, is the same for any positive value (scale-free). The range is checked by alpose-bench.
    amplitude: float = param(30.0, low=0, low_open=True)

    def score_batch(self, batch: ForwardBatch, ctx: SelectionContext) -> np.ndarray:
        peaks = batch.out.final_heatmaps.flatten(2).amax(dim=2)  # (B, J) highest value of each joint's map
        return (1.0 - peaks.mean(dim=1) / self.amplitude).double().cpu().numpy()
