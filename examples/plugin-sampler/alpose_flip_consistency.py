"""Flip consistency for heatmap pose models: an example third-party alpose-bench sampler.

A pose model that has learned a pose should predict the mirror image of it on the mirrored photograph. The score of
an image is how far apart the two predictions are: the mean (or, with reduction="max", the largest) over joints of
the distance between the pose predicted on the image and the pose predicted on its horizontal flip, flipped back
(x -> W - 1 - x, left and right joints swapped), divided by the input width. Inconsistent images are annotated first. This is the test-time flip
agreement that pose tools report as a confidence check (and that pose self-training uses to filter pseudo-labels).

Registered through the entry point ``flip-consistency`` in the group ``alpose_bench.samplers`` (see pyproject.toml).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from alpose_bench.samplers import ForwardBatch, ScoringSampler, SelectionContext, decode_keypoints


@dataclass
class FlipConsistency(ScoringSampler):
    """Score = mean joint distance between the prediction and the flipped-back prediction on the flipped image."""

    name = "flip-consistency"
    label = "Flip consistency"
    description = "Flip consistency: disagreement between the pose and the pose of the mirrored image (an example plugin)."
    needs = frozenset({"heatmaps", "model"})  # it runs the model once more, on the flipped images
    tasks = frozenset({"heatmap2d"})

    # over joints: "mean" (the whole pose disagrees) or "max" (one joint disagrees badly is enough)
    reduction: Literal["mean", "max"] = "mean"

    @torch.no_grad()
    def score_batch(self, batch: ForwardBatch, ctx: SelectionContext) -> np.ndarray:
        size = batch.images.shape[-1]
        pose = decode_keypoints(batch.out, input_size=size).float()
        with ctx.compute.autocast():
            mirrored_out = ctx.model(torch.flip(batch.images, dims=[-1]))
        mirrored = decode_keypoints(mirrored_out, input_size=size).float()
        back = mirrored[:, torch.as_tensor(ctx.skeleton.flip_permutation())].clone()
        back[..., 0] = size - 1 - back[..., 0]  # pixel centres at integer coordinates
        distance = torch.linalg.norm(pose - back, dim=-1)  # (B, J) input pixels
        per_image = distance.mean(dim=1) if self.reduction == "mean" else distance.amax(dim=1)
        return (per_image / size).double().cpu().numpy()
