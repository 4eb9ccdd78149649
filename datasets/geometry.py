"""Crop geometry of the real-data loaders: crop boxes around the annotated joints, mapping into a crop, normalisers.

A crop window is a square of side ``side`` source pixels centred on the point ``(cx, cy)``; a source point ``u``
maps to ``(u - cx + side / 2) * res / side - 0.5``, so the centre lands on the crop's centre ``res / 2 - 0.5``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def joint_boxes(keypoints: np.ndarray, visible: np.ndarray, scale: float) -> np.ndarray:
    """(N, 3) square crop boxes (cx, cy, side): centre of the tight box around the annotated joints, side =
    scale x its longer edge (the reference code's crop; 1.75 for evaluation). At least 8 px."""
    pts = np.where(visible[..., None], keypoints[..., :2], np.nan)
    lo = np.nanmin(pts, axis=1)
    hi = np.nanmax(pts, axis=1)
    centre = (lo + hi) / 2
    side = np.maximum(scale * np.max(hi - lo, axis=1), 8.0)
    return np.column_stack([centre, side]).astype(np.float64)


def tight_box_size(keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """(N,) longer edge of the tight box around each sample's annotated joints."""
    pts = np.where(visible[..., None], keypoints[..., :2], np.nan)
    return np.max(np.nanmax(pts, axis=1) - np.nanmin(pts, axis=1), axis=1)


def to_crop(points: np.ndarray, boxes: np.ndarray, resolution: int) -> np.ndarray:
    """Map (N, J, 2) source pixel coordinates into the (resolution x resolution) crops of `boxes` (cx, cy,
    side)."""
    side = boxes[:, None, 2:3]
    return ((points[..., :2] - boxes[:, None, :2] + side / 2) * (resolution / side) - 0.5).astype(np.float32)


def pair_distance(keypoints: np.ndarray, visible: np.ndarray, pairs: Iterable[tuple[int, int]]) -> np.ndarray:
    """(N,) max over `pairs` of the joint distance, counting only pairs with both joints annotated (NaN if
    none).

    With LSP's torso pairs this is the PCK torso size max(|lsho - rhip|, |rsho - lhip|)."""
    out = np.full(len(keypoints), np.nan)
    for a, b in pairs:
        d = np.linalg.norm(keypoints[:, a, :2] - keypoints[:, b, :2], axis=1)
        out = np.fmax(out, np.where(visible[:, a] & visible[:, b], d, np.nan))
    return out


def fill_estimates(norm: np.ndarray, size: np.ndarray, default_ratio: float) -> tuple[np.ndarray, int]:
    """Replace missing (NaN or <= 0) normalisers by `size` x the median norm/size ratio of the rows that have
    one (`default_ratio` if none does). Returns the filled array and how many rows were estimated."""
    norm = np.asarray(norm, dtype=np.float64).copy()
    missing = ~(np.isfinite(norm) & (norm > 0))
    if missing.any():
        ok = ~missing & np.isfinite(size) & (size > 0)
        ratio = float(np.median(norm[ok] / size[ok])) if ok.any() else default_ratio
        norm[missing] = ratio * size[missing]
    return norm, int(missing.sum())
