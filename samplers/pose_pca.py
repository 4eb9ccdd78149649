"""Pose-PCA reconstruction error: annotate the predicted poses least like the poses already labelled.

A PCA subspace of plausible poses is fitted each cycle on the labelled set's ground-truth poses (root-relative,
each scaled to unit RMS distance from the root, so it captures shape rather than size or position; joints without
annotation take the labelled mean of that joint); a pool image scores the squared reconstruction error of its
predicted pose, prepared the same way. A pose far from the subspace, one the labelled set does not explain, ranks
first. This is Lightning Pose's "Pose PCA" loss (Biderman et al., Nature Methods 2024) used as an acquisition
score, as pose-AL code built on it does. 2D and 3D.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA

from alpose_bench.core.validation import param
from alpose_bench.pose.pool import SelectionContext
from alpose_bench.samplers.base import Sampler, Selection, select_top


def normalised_poses(keypoints: np.ndarray, visible: np.ndarray, root: int) -> np.ndarray:
    """(N, J * D) root-relative poses scaled to unit RMS distance from the root; NaN where a joint is missing.

    A pose whose root is not annotated is centred on the mean of its annotated joints instead."""
    vis = np.asarray(visible, dtype=bool)
    kp = np.where(vis[..., None], np.asarray(keypoints, dtype=np.float64), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-missing poses: NaN rows, filled by the caller
        centre = np.where(vis[:, root, None], kp[:, root], np.nanmean(kp, axis=1))
        rel = kp - centre[:, None]
        scale = np.sqrt(np.nanmean(np.sum(rel**2, axis=-1), axis=1))
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    return (rel / scale[:, None, None]).reshape(len(kp), -1)


def pca_errors(
    labelled: np.ndarray, labelled_visible: np.ndarray, predicted: np.ndarray, root: int, variance: float
) -> np.ndarray:
    """(N,) squared reconstruction error of each predicted pose (N, J, D) in the PCA subspace (keeping `variance`
    of the variance) of the labelled poses (M, J, D) with their annotation mask; both normalised as above."""
    fit = normalised_poses(labelled, labelled_visible, root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a joint never annotated: filled with 0
        fill = np.nanmean(fit, axis=0)
    fill = np.where(np.isfinite(fill), fill, 0.0)
    fit = np.where(np.isnan(fit), fill, fit)
    pca = PCA(n_components=variance, svd_solver="full").fit(fit)
    poses = normalised_poses(predicted, np.ones(np.shape(predicted)[:2], dtype=bool), root)
    return np.sum((poses - pca.inverse_transform(pca.transform(poses))) ** 2, axis=1)


@dataclass
class PosePCA(Sampler):
    """Annotate the images whose predicted pose the labelled poses' PCA subspace reconstructs worst."""

    name = "pose-pca"
    colour = "#AA4499"
    marker = ">"
    order = 11
    label = "Pose PCA"
    description = "Pose-PCA: reconstruction error of the predicted pose in a PCA of the labelled poses."
    needs = frozenset({"keypoints"})
    works_without_labelled = False
    overhead_target = 1.1

    # share of the labelled poses' variance the subspace keeps (below 1: a full-rank subspace reconstructs anything)
    variance: float = param(0.95, low=0, high=1, low_open=True, high_open=True)

    def score(self, ctx: SelectionContext, positions: np.ndarray | None = None) -> np.ndarray:
        if len(ctx.labelled) < 2:
            raise ValueError(
                "pose-pca fits its subspace on the labelled poses and needs at least 2 labelled images"
            )
        truth = ctx.labels("labelled")
        pred = ctx.collect("pool", "keypoints")
        if positions is not None:
            pred = pred[np.asarray(positions)]
        return pca_errors(truth.keypoints, truth.visible, pred, ctx.skeleton.root, self.variance)

    def select(self, ctx: SelectionContext, budget: int) -> Selection:
        return select_top(self.score(ctx), budget)
