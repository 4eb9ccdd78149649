"""Pose metrics (numpy in, numpy out): PCKh (MPII), PCK (LSP), MPJPE (3D hands), per-image error, and the
normalised area under the metric-vs-budget curve.

PCKh follows the official MPII evaluation (evalMPII / the widely used Python port): a joint is correct when
distance / (0.6 x head-box diagonal) <= threshold; only annotated joints count; per-joint rates are over the
images where that joint is annotated, and the reported mean is total correct / total annotated over the
joints that count (pelvis and thorax excluded for MPII) -- i.e. the per-joint rates weighted by their
counts, as the official code's `jnt_ratio` weighting does. PCK and MPJPE use the same weighting. Note the
reference code of VL4Pose reports a different, non-standard PCKh (no 0.6 factor, all 16 joints, strict <);
see the reference notes §2.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.integrate import trapezoid

from alpose_bench.pose.skeleton import Skeleton

HEAD_SIZE_FACTOR = 0.6  # official MPII: head size = 0.6 x head-box diagonal (SC_BIAS)


@dataclass(frozen=True)
class MetricInfo:
    """Everything the benchmark knows about one metric: what every table, figure and command reads.

    name        the key datasets declare ("pckh", "pck", "mpjpe")
    label       its name in tables and figures, with its threshold ("PCKh@0.5")
    unit        unit of its values ("%" or "mm")
    higher_is_better
    threshold   default threshold of a PCK-style metric (None for errors)
    error_unit  unit of `per_image_error` with the dataset's normaliser (what `diagnose` ranks images by)
    """

    name: str
    label: str
    unit: str
    higher_is_better: bool
    threshold: float | None
    error_unit: str

    @property
    def axis_label(self) -> str:
        """e.g. "PCKh@0.5 (%)", "MPJPE (mm, lower is better)"."""
        return (
            f"{self.label} ({self.unit})"
            if self.higher_is_better
            else f"{self.label} ({self.unit}, lower is better)"
        )

    @property
    def difference_unit(self) -> str:
        """Unit of a difference between two values ("points" for percentages)."""
        return "points" if self.unit == "%" else self.unit


METRICS: dict[str, MetricInfo] = {
    "pckh": MetricInfo("pckh", "PCKh@0.5", "%", True, 0.5, "head-box diagonals"),
    "pck": MetricInfo("pck", "PCK@0.2", "%", True, 0.2, "torso sizes"),
    "mpjpe": MetricInfo("mpjpe", "MPJPE", "mm", False, None, "mm"),
}


def metric_info(name: str) -> MetricInfo:
    """The MetricInfo of a metric name; ValueError listing the known ones."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known metrics: {', '.join(METRICS)}")
    return METRICS[name]


@dataclass(frozen=True, eq=False)
class MetricResult:
    """A metric over a set of images.

    mean        the reported value: % for pckh/pck, mm (the keypoints' unit) for mpjpe; NaN if none counted.
    per_joint   (J,) per-joint value; NaN where a joint is never annotated.
    counts      (J,) how many annotated instances of each joint were evaluated.
    """

    mean: float
    per_joint: np.ndarray
    name: str
    higher_is_better: bool
    counts: np.ndarray | None = None


def _as_inputs(
    pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, dims: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    visible = np.asarray(visible)
    if gt.ndim != 3 or gt.shape[-1] not in dims:
        raise ValueError(f"gt must be (N, J, {' or '.join(map(str, dims))}), got shape {gt.shape}")
    if pred.shape != gt.shape:
        raise ValueError(f"pred has shape {pred.shape} but gt has {gt.shape}; they must match")
    if visible.shape != gt.shape[:2]:
        raise ValueError(f"visible must be (N, J) = {gt.shape[:2]}, got shape {visible.shape}")
    return pred, gt, visible.astype(bool)


def _as_normalizer(normalizer: np.ndarray, visible: np.ndarray, what: str) -> np.ndarray:
    norm = np.asarray(normalizer, dtype=np.float64)
    if norm.shape != visible.shape[:1]:
        raise ValueError(f"{what} must be (N,) = ({visible.shape[0]},), got shape {norm.shape}")
    bad = visible.any(axis=1) & ~(np.isfinite(norm) & (norm > 0))
    if bad.any():
        raise ValueError(
            f"{what} must be positive and finite for every image with an annotated joint; "
            f"{int(bad.sum())} image(s) are not (first: index {int(np.argmax(bad))})"
        )
    return norm


def _mean_mask(num_joints: int, mean_joints: np.ndarray | Sequence[int] | None) -> np.ndarray:
    mask = np.zeros(num_joints, dtype=bool)
    if mean_joints is None:
        mask[:] = True
        return mask
    idx = np.asarray(mean_joints, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= num_joints):
        raise ValueError(f"mean_joints must be joint indices in [0, {num_joints}), got {idx.tolist()}")
    mask[idx] = True
    return mask


def _distances(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    return np.linalg.norm(pred - gt, axis=-1)


def _rate(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    normalizer: np.ndarray,
    threshold: float,
    mean_joints: np.ndarray | Sequence[int] | None,
    name: str,
) -> MetricResult:
    """% of annotated joints with distance / normalizer <= threshold (NaN predictions count as wrong)."""
    if not np.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be a non-negative number, got {threshold}")
    mask = _mean_mask(gt.shape[1], mean_joints)
    safe = np.where(normalizer > 0, normalizer, 1.0)[:, None]
    with np.errstate(invalid="ignore"):
        correct = (_distances(pred, gt) / safe <= threshold) & visible
    counts = visible.sum(axis=0)
    hits = correct.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(counts > 0, 100.0 * hits / np.maximum(counts, 1), np.nan)
    total = counts[mask].sum()
    mean = float(100.0 * hits[mask].sum() / total) if total > 0 else float("nan")
    return MetricResult(mean=mean, per_joint=per_joint, name=name, higher_is_better=True, counts=counts)


def pckh(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    head_diag: np.ndarray,
    threshold: float = 0.5,
    mean_joints: np.ndarray | Sequence[int] | None = None,
) -> MetricResult:
    """Official MPII PCKh@threshold (%): distance <= threshold x 0.6 x head-box diagonal; annotated joints.

    pred, gt (N, J, 2); visible (N, J) bool; head_diag (N,) head-box diagonal (without the 0.6 factor);
    mean_joints: joints in the mean (pass skeleton.mean_joints() to leave out MPII's pelvis and thorax).
    """
    pred, gt, visible = _as_inputs(pred, gt, visible, (2,))
    norm = _as_normalizer(head_diag, visible, "head_diag") * HEAD_SIZE_FACTOR
    return _rate(pred, gt, visible, norm, threshold, mean_joints, f"pckh@{threshold:g}")


def pck(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    torso: np.ndarray,
    threshold: float = 0.2,
    mean_joints: np.ndarray | Sequence[int] | None = None,
) -> MetricResult:
    """PCK@threshold (%): distance <= threshold x torso size, annotated joints only.

    torso (N,): computed by the dataset (`torso_size`): by default the standard LSP evaluation's one diagonal
    |l_shoulder - r_hip| (Sapp & Taskar's protocol, Pishchulin et al.'s evaluation code), or with the "max"
    convention the authors' max(|l_shoulder - r_hip|, |r_shoulder - l_hip|).
    """
    pred, gt, visible = _as_inputs(pred, gt, visible, (2,))
    norm = _as_normalizer(torso, visible, "torso")
    return _rate(pred, gt, visible, norm, threshold, mean_joints, f"pck@{threshold:g}")


def mpjpe(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    mean_joints: np.ndarray | Sequence[int] | None = None,
) -> MetricResult:
    """Mean per-joint position error: mean Euclidean distance over annotated joints, in keypoint units."""
    pred, gt, visible = _as_inputs(pred, gt, visible, (2, 3))
    mask = _mean_mask(gt.shape[1], mean_joints)
    dist = np.where(visible, _distances(pred, gt), 0.0)
    counts = visible.sum(axis=0)
    sums = dist.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    total = counts[mask].sum()
    mean = float(sums[mask].sum() / total) if total > 0 else float("nan")
    return MetricResult(mean=mean, per_joint=per_joint, name="mpjpe", higher_is_better=False, counts=counts)


def per_image_error(
    pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, normalizer: np.ndarray
) -> np.ndarray:
    """(N,) mean of distance / normalizer over each image's annotated joints (NaN for an image with none).

    With the dataset's normalizer: in head-box diagonals (MPII), torso sizes (LSP) or mm (normalizer 1).
    """
    pred, gt, visible = _as_inputs(pred, gt, visible, (2, 3))
    norm = _as_normalizer(normalizer, visible, "normalizer")
    dist = np.where(visible, _distances(pred, gt), 0.0) / np.where(norm > 0, norm, 1.0)[:, None]
    n = visible.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, dist.sum(axis=1) / np.maximum(n, 1), np.nan)


#: how PCK's torso size is measured: "standard" (the LSP evaluation: |l_shoulder - r_hip|, the first of the
#: skeleton's torso pairs) or "max" (the VL4Pose authors' code: the larger of both diagonals)
TORSO_CONVENTIONS = ("standard", "max")


def torso_pairs(skeleton: Skeleton, convention: str = "standard") -> tuple[tuple[int, int], ...]:
    """The joint pairs whose distance is the torso size under `convention`."""
    if not skeleton.torso_pairs:
        raise ValueError(f"skeleton {skeleton.name!r} defines no torso_pairs; PCK needs a torso size")
    if convention not in TORSO_CONVENTIONS:
        raise ValueError(
            f"torso convention must be one of {', '.join(TORSO_CONVENTIONS)}, got {convention!r}"
        )
    return skeleton.torso_pairs[:1] if convention == "standard" else skeleton.torso_pairs


def torso_size(keypoints: np.ndarray, skeleton: Skeleton, convention: str = "standard") -> np.ndarray:
    """(N,) torso size for PCK: |l_shoulder - r_hip| ("standard"), or the larger of both diagonals ("max")."""
    pairs = torso_pairs(skeleton, convention)
    kp = np.asarray(keypoints, dtype=np.float64)
    sizes = np.stack([np.linalg.norm(kp[:, a] - kp[:, b], axis=-1) for a, b in pairs], axis=1)
    with np.errstate(invalid="ignore"):
        return np.fmax.reduce(sizes, axis=1)


def aubc(n_labelled: Sequence[float] | np.ndarray, values: Sequence[float] | np.ndarray) -> float:
    """Normalised area under the metric-vs-budget curve, in the metric's units.

    Trapezoid area over the budgets divided by the budget range (the curve's mean height); a single point
    gives its own value. Points are sorted by budget; repeated budgets are an error.
    """
    x = np.asarray(n_labelled, dtype=np.float64).reshape(-1)
    y = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0 or x.size != y.size:
        raise ValueError(f"aubc needs as many budgets as values (at least one), got {x.size} and {y.size}")
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if np.any(np.diff(x) == 0):
        raise ValueError(f"aubc got repeated budgets {x.tolist()}; average the values per budget first")
    if x.size == 1:
        return float(y[0])
    return float(trapezoid(y, x) / (x[-1] - x[0]))


def evaluate(
    name: str,
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    normalizer: np.ndarray,
    skeleton: Skeleton,
    threshold: float | None = None,
) -> MetricResult:
    """The metric by name: "pckh" (@0.5), "pck" (@0.2) or "mpjpe"; mean over skeleton.mean_joints().

    pred and gt are in the dataset's keypoint units (image pixels for 2D, mm for 3D); `threshold` overrides
    the default PCK(h) threshold.
    """
    info = metric_info(name)
    joints = skeleton.mean_joints()
    if np.ndim(gt) != 3 or np.shape(gt)[1] != skeleton.num_joints:
        raise ValueError(
            f"gt must be (N, {skeleton.num_joints}, D) for skeleton {skeleton.name!r},"
            f" got shape {np.shape(gt)}"
        )
    threshold = info.threshold if threshold is None else threshold
    if name == "pckh":
        return pckh(pred, gt, visible, normalizer, threshold, joints)
    if name == "pck":
        return pck(pred, gt, visible, normalizer, threshold, joints)
    return mpjpe(pred, gt, visible, joints)
