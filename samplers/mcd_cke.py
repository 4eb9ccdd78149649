"""Geometric samplers on predicted poses: MCD-CKE (Caramalau, Bhattarai & Kim, "Active learning for Bayesian 3D hand
pose estimation", WACV 2021, code `razvancaramalau/al_bhpe`) and Core-Set on poses (`coreset-pose`).

Both run k-center greedy (`alpose_bench.samplers.coreset.kcenter_greedy`, float64, the labelled images as the initial
centres) on pose vectors: every joint's predicted coordinates in the crop, centred and normalised (2D: (x − (S − 1)/2)
/ (S/2) in model-input pixels, the image centre of the pixel-centre convention, so a pose and its mirror image map to
mirrored vectors; 3D: the regressor's cube-normalised output), flattened.

* `coreset-pose`: the deterministic prediction (the reference's `kcg` method without MC).
* `mcd-cke`: the mean of T MC-dropout passes, each coordinate moved toward the crop centre by α·σ (α = 0.3, σ its
  std over the passes): the reference's `kCenterGreedyUnc4` computes its distances between these lower-bound
  vectors (`features_lb`), for the pool and the centres alike. Uncertain poses shrink toward the centre, so
  confidently unusual poses are the farthest. T = 70 as the reference (CPU presets use fewer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from alpose_bench.core.validation import param
from alpose_bench.pose.pool import SelectionContext
from alpose_bench.samplers.base import Sampler
from alpose_bench.samplers.coreset import kcenter_greedy
from alpose_bench.samplers.mc_dropout import CPU_PASSES, NeedsDropout


def pose_vectors(keypoints: np.ndarray, task: str, input_size: int) -> np.ndarray:
    """(N, J * D) centred, normalised pose vectors of keypoints in model coordinates."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if task == "heatmap2d":  # pixel centres: the image spans [-0.5, S - 0.5], its centre is (S - 1) / 2
        kp = (kp - (input_size - 1) / 2.0) / (input_size / 2.0)
    return kp.reshape(len(kp), -1)


def lower_bound(mean: np.ndarray, std: np.ndarray, alpha: float) -> np.ndarray:
    """The reference's `features_lb`: each coordinate moved toward 0 by alpha * its std."""
    return mean - np.sign(mean) * alpha * std


def _kcenter(pool: np.ndarray, labelled: np.ndarray, budget: int, ctx: SelectionContext) -> np.ndarray:
    first = int(ctx.rng.integers(len(pool))) if len(labelled) == 0 else None
    return kcenter_greedy(
        torch.from_numpy(np.ascontiguousarray(pool)), torch.from_numpy(np.ascontiguousarray(labelled)), budget,
        first=first,
    )  # fmt: skip


@dataclass
class CoreSetPose(Sampler):
    """k-center greedy on the predicted pose vectors (Core-Set in pose space)."""

    name = "coreset-pose"
    colour = "#8C564B"
    marker = "H"
    order = 14
    label = "Core-Set (poses)"
    description = (
        "Core-Set on predicted poses: k-center greedy on the pose vectors (the MCD-CKE paper's KCG)."
    )
    needs = frozenset({"keypoints"})
    overhead_target = 1.5

    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        if budget <= 0 or len(ctx.pool) == 0:
            return np.zeros(0, dtype=np.int64)
        size = ctx.dataset.resolution
        pool = pose_vectors(ctx.collect("pool", "keypoints"), ctx.task, size)
        labelled = (
            pose_vectors(ctx.collect("labelled", "keypoints"), ctx.task, size)
            if len(ctx.labelled) else np.zeros((0, pool.shape[1]))
        )  # fmt: skip
        return _kcenter(pool, labelled, budget, ctx)


@dataclass
class MCDCKE(NeedsDropout, Sampler):
    """k-center greedy on MC-dropout mean poses shrunk toward the centre by their epistemic spread."""

    name = "mcd-cke"
    colour = "#DDCC77"
    marker = "8"
    order = 13
    label = "MCD-CKE"
    description = (
        "MCD-CKE: k-center greedy on MC-dropout poses shifted by alpha x epistemic std (Caramalau 2021)."
    )
    needs = frozenset({"mc_dropout"})
    preset_params = CPU_PASSES
    overhead_target = None  # about `passes` inference passes over pool + labelled by construction

    passes: int = param(70, low=2)  # MC-dropout passes (the reference's MC_DROPOUT)
    alpha: float = param(0.3, low=0)  # shift of each coordinate, in stds (the reference's alfa)

    def _vectors(self, ctx: SelectionContext, which: str) -> np.ndarray:
        mc = ctx.mc_keypoints(which, self.passes)  # type: ignore[arg-type]
        n = mc.shape[1]
        vectors = np.stack([pose_vectors(mc[t], ctx.task, ctx.dataset.resolution) for t in range(len(mc))])
        return lower_bound(vectors.mean(axis=0), vectors.std(axis=0), self.alpha).reshape(n, -1)

    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        if budget <= 0 or len(ctx.pool) == 0:
            return np.zeros(0, dtype=np.int64)
        pool = self._vectors(ctx, "pool")
        labelled = self._vectors(ctx, "labelled") if len(ctx.labelled) else np.zeros((0, pool.shape[1]))
        return _kcenter(pool, labelled, budget, ctx)
