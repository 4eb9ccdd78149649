"""Heatmap targets, decoding, coordinate conventions and pose losses (batched torch, no per-sample loops).

Coordinate convention (pixel centres): pixel i of an image covers [i - 0.5, i + 0.5) and has its centre at
i. A keypoint at input pixel p (model input of size H) therefore sits at heatmap coordinate (p + 0.5) * h /
H - 0.5 on a heatmap of size h, and back: p = (c + 0.5) * H / h - 0.5. `keypoints_to_heatmap_coords` and
`heatmap_coords_to_input` are exact inverses. (The reference code scales by (H - 1) / (h - 1) instead,
aligning the corner pixels; at 256 -> 64 the two differ by at most 1.5 input px at the borders.)

Targets follow the reference (§2.1 of the VL4Pose reference notes): an unnormalised Gaussian exp(-d² / 2σ²)
centred at the sub-pixel keypoint, truncated to a ⌈6σ⌉ (odd) square window around the keypoint's nearest
pixel, times the peak amplitude 30 (`hm_peak`). σ = 1.75 heatmap px at 64x64; `default_sigma` scales it with
the heatmap size but never below 1 px, because a narrower Gaussian is almost a single pixel and the ±2 px
weighted-mean refinement then has no sub-pixel information to work with (16x16 heatmaps -> σ = 1.0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor

from alpose_bench.pose.models.outputs import PoseOutput, TrainBatch

REFERENCE_SIGMA = 1.75  # heatmap px at 64x64 (reference code)
REFERENCE_AMPLITUDE = 30.0  # hm_peak of the reference configuration
REFINE_RADIUS = 2  # ±2 px window of the weighted-mean refinement (reference: ceil(jnt_size = 1.75))

ArrayT = TypeVar("ArrayT")


def default_sigma(heatmap_size: int) -> float:
    """Gaussian σ for a heatmap of `heatmap_size` px: 1.75 at 64, scaled linearly, at least 1.0."""
    if heatmap_size < 1:
        raise ValueError(f"heatmap_size must be positive, got {heatmap_size}")
    return max(1.0, REFERENCE_SIGMA * heatmap_size / 64.0)


def heatmap_to_input_scale(input_size: int, heatmap_size: int) -> float:
    """How many model-input pixels one heatmap pixel spans (4.0 for 256 -> 64)."""
    if input_size < 1 or heatmap_size < 1:
        raise ValueError(f"sizes must be positive, got input_size={input_size}, heatmap_size={heatmap_size}")
    return input_size / heatmap_size


def keypoints_to_heatmap_coords(kp_input_px: ArrayT, input_size: int, heatmap_size: int) -> ArrayT:
    """Model-input pixel coordinates -> heatmap coordinates (pixel-centre convention); tensors or arrays."""
    scale = heatmap_to_input_scale(input_size, heatmap_size)
    return (kp_input_px + 0.5) / scale - 0.5  # type: ignore[operator]


def heatmap_coords_to_input(kp_heatmap_px: ArrayT, input_size: int, heatmap_size: int) -> ArrayT:
    """Heatmap coordinates -> model-input pixel coordinates; the inverse of `keypoints_to_heatmap_coords`."""
    scale = heatmap_to_input_scale(input_size, heatmap_size)
    return (kp_heatmap_px + 0.5) * scale - 0.5  # type: ignore[operator]


def render_heatmaps(
    keypoints: Tensor,
    visible: Tensor,
    size: int,
    sigma: float = REFERENCE_SIGMA,
    amplitude: float = REFERENCE_AMPLITUDE,
) -> Tensor:
    """Gaussian target heatmaps (B, J, size, size) for keypoints (B, J, 2) given as (x, y) in heatmap pixels.

    Joints that are not visible, or whose nearest pixel lies outside the heatmap, get an all-zero map (as the
    reference). The Gaussian is cut to the ⌈6σ⌉ (odd) window centred on the keypoint's nearest pixel.
    """
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2:
        raise ValueError(f"keypoints must be (B, J, 2) heatmap (x, y), got shape {tuple(keypoints.shape)}")
    if visible.shape != keypoints.shape[:2]:
        raise ValueError(f"visible must be (B, J) = {tuple(keypoints.shape[:2])}, got {tuple(visible.shape)}")
    if size < 1 or not sigma > 0:
        raise ValueError(f"need size >= 1 and sigma > 0, got size={size}, sigma={sigma}")
    window = math.ceil(6 * sigma)
    half = (window + 1 - window % 2) // 2  # the window is made odd (reference): 2 * half + 1 pixels
    kp = keypoints.float()
    centre = torch.round(kp)  # nearest pixel (half to even, as np.rint in the reference)
    keep = visible.to(torch.bool) & ((centre >= 0) & (centre <= size - 1)).all(dim=-1)
    kp = torch.where(keep[..., None], kp, torch.zeros_like(kp))  # unannotated joints may hold NaN
    centre = torch.round(kp)
    grid = torch.arange(size, dtype=kp.dtype, device=kp.device)

    def axis(i: int) -> Tensor:  # (B, J, size) 1-D Gaussian along one axis, zero outside the window
        d = grid - kp[..., i : i + 1]
        inside = (grid - centre[..., i : i + 1]).abs() <= half
        return torch.exp(-(d * d) / (2.0 * sigma * sigma)) * inside

    gx, gy = axis(0), axis(1)
    return (amplitude * keep[..., None, None]) * gy[..., :, None] * gx[..., None, :]


@dataclass(frozen=True)
class HeatmapCodec:
    """How keypoints become training targets and heatmaps become keypoints, for one model (as mmpose's codecs): the
    input and heatmap sizes, the targets' Gaussian width and peak height. Training renders its targets with it,
    and the heatmap scorers read its amplitude from the selection context."""

    input_size: int
    heatmap_size: int
    sigma: float = REFERENCE_SIGMA
    amplitude: float = REFERENCE_AMPLITUDE

    @classmethod
    def reference(cls, input_size: int, heatmap_size: int) -> HeatmapCodec:
        """The reference targets for these sizes: σ scaled with the heatmap size (`default_sigma`), peak 30."""
        return cls(input_size, heatmap_size, default_sigma(heatmap_size), REFERENCE_AMPLITUDE)

    def to_heatmap(self, keypoints: ArrayT) -> ArrayT:
        """Model-input pixels -> heatmap pixels."""
        return keypoints_to_heatmap_coords(keypoints, self.input_size, self.heatmap_size)

    def to_input(self, keypoints: ArrayT) -> ArrayT:
        """Heatmap pixels -> model-input pixels."""
        return heatmap_coords_to_input(keypoints, self.input_size, self.heatmap_size)

    def encode(self, keypoints: Tensor, visible: Tensor) -> tuple[Tensor, Tensor]:
        """(keypoints in heatmap pixels, target heatmaps) of keypoints (B, J, 2) in model-input pixels."""
        heatmap_kp = self.to_heatmap(keypoints)
        return heatmap_kp, render_heatmaps(heatmap_kp, visible, self.heatmap_size, self.sigma, self.amplitude)

    def decode(self, heatmaps: Tensor) -> Tensor:
        """(B, J, 2) keypoints in model-input pixels of heatmaps (B, J, h, w) (`decode_heatmaps`)."""
        coords, _ = decode_heatmaps(heatmaps)
        return self.to_input(coords)


def decode_heatmaps(heatmaps: Tensor, radius: int = REFINE_RADIUS) -> tuple[Tensor, Tensor]:
    """Keypoints from heatmaps (B, J, h, w): ((B, J, 2) (x, y) in heatmap px, (B, J) heatmap maximum).

    As the reference: the argmax (first one on ties), refined by the mean of pixel coordinates weighted by
    the heatmap values (negatives clamped to 0) in a ±`radius` px window, clipped at the borders; a window
    with no positive mass keeps the argmax. On rendered targets this window mean is biased towards the
    argmax pixel by up to 0.25 heatmap px at σ = 1.75 and 0.045 px at σ = 1.0 (worst case: keypoints
    half-way between two pixels).
    """
    if heatmaps.ndim != 4:
        raise ValueError(f"heatmaps must be (B, J, h, w), got shape {tuple(heatmaps.shape)}")
    b, j, h, w = heatmaps.shape
    flat = heatmaps.float().reshape(b, j, h * w)
    if h * w == 0:
        raise ValueError(f"heatmaps must not be empty, got shape {tuple(heatmaps.shape)}")
    peak, index = flat.max(dim=-1)
    ay, ax = torch.div(index, w, rounding_mode="floor"), index % w
    offsets = torch.arange(-radius, radius + 1, device=heatmaps.device)
    ys, xs = ay[..., None] + offsets, ax[..., None] + offsets  # (B, J, K)
    valid = ((ys >= 0) & (ys < h))[..., :, None] & ((xs >= 0) & (xs < w))[..., None, :]  # (B, J, K, K)
    gather = ys.clamp(0, h - 1)[..., :, None] * w + xs.clamp(0, w - 1)[..., None, :]
    k = offsets.numel()
    window = flat.gather(-1, gather.reshape(b, j, k * k)).reshape(b, j, k, k).clamp(min=0) * valid
    mass = window.sum(dim=(-2, -1))
    safe = mass.clamp(min=torch.finfo(mass.dtype).tiny)
    x = (window.sum(dim=-2) * xs).sum(dim=-1) / safe
    y = (window.sum(dim=-1) * ys).sum(dim=-1) / safe
    has_mass = mass > 0
    coords = torch.stack(
        (torch.where(has_mass, x, ax.to(x.dtype)), torch.where(has_mass, y, ay.to(y.dtype))), dim=-1
    )
    return coords, peak


def decode_keypoints(out: PoseOutput, input_size: int) -> Tensor:
    """Prediction: (B, J, 2) model-input pixels (heatmap models) or (B, J, 3) normalised (regression)."""
    if out.heatmaps is None:
        if out.keypoints is None:
            raise ValueError("PoseOutput has neither heatmaps nor keypoints")
        return out.keypoints
    hm = out.final_heatmaps
    return HeatmapCodec(input_size, hm.shape[-1]).decode(hm)  # decoding reads neither sigma nor amplitude


def pose_loss_per_sample(out: PoseOutput, batch: TrainBatch) -> Tensor:
    """Per-sample pose loss (B,).

    Heatmap models (reference): MSE over joints x pixels against the target heatmaps, for every stack,
    averaged over stacks; joints without annotation have all-zero targets and count, as in the reference.
    Regression: squared Euclidean error of the normalised 3D coordinates, averaged over the visible joints
    (0 for a sample with none). Squared error, not smooth-L1: DeepPrior trains with L2, and the
    Learning-Loss and aleatoric samplers model the loss as a Gaussian (squared-error) residual.
    """
    if out.heatmaps is not None:
        if batch.heatmaps is None:
            raise ValueError(
                "heatmap model but the batch has no target heatmaps; render them with render_heatmaps"
            )
        target = batch.heatmaps.float()
        per_stack = []
        for pred in out.heatmaps:
            if pred.shape != target.shape:
                raise ValueError(
                    f"heatmaps {tuple(pred.shape)} and targets {tuple(target.shape)} differ in shape;"
                    " render targets at the model's heatmap size"
                )
            per_stack.append((pred.float() - target).pow(2).mean(dim=(1, 2, 3)))
        return torch.stack(per_stack, dim=1).mean(dim=1)
    if out.keypoints is None:
        raise ValueError("PoseOutput has neither heatmaps nor keypoints")
    pred, gt = out.keypoints.float(), batch.keypoints.float()
    if pred.shape != gt.shape:
        raise ValueError(
            f"predicted keypoints {tuple(pred.shape)} and targets {tuple(gt.shape)} differ in shape"
        )
    vis = batch.visible.float()
    if vis.shape != pred.shape[:2]:
        raise ValueError(f"visible must be (B, J) = {tuple(pred.shape[:2])}, got {tuple(vis.shape)}")
    squared = torch.where(vis > 0, (pred - gt).pow(2).sum(dim=-1), torch.zeros_like(vis))  # NaN-safe
    return squared.sum(dim=1) / vis.sum(dim=1).clamp(min=1.0)


def pose_loss(out: PoseOutput, batch: TrainBatch) -> Tensor:
    """Batch pose loss: the mean of `pose_loss_per_sample`."""
    return pose_loss_per_sample(out, batch).mean()
