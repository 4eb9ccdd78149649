"""Batched, seeded data augmentation on the device: random flip, rotation, scale and shift.

One affine warp per image through `affine_grid`/`grid_sample`, with the keypoints moved by the same transform, so
the data path never leaves the device and never decodes files. 2D human poses get a horizontal flip with the
left/right joints swapped; 3D hands (orthographic crops, keypoints in mm relative to the centre) get in-plane rotation
and shift only — a flip would change the hand's chirality and scaling would change the millimetres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from alpose_bench.pose.skeleton import Skeleton


@dataclass(frozen=True)
class AugmentSettings:
    flip: bool = True
    rotate_deg: float = 30.0
    scale: float = 0.25
    shift: float = 0.1  # fraction of the image size


#: what a model reading cached backbone features trains with: flips only (a rotated image is not in the cache)
FLIPS_ONLY = AugmentSettings(rotate_deg=0.0, scale=0.0, shift=0.0)


def _uniform(n: int, low: float, high: float, g: torch.Generator, device: torch.device) -> Tensor:
    return (torch.rand(n, generator=g) * (high - low) + low).to(device)


def augment_2d(
    images: Tensor,
    keypoints: Tensor,
    visible: Tensor,
    skeleton: Skeleton,
    settings: AugmentSettings,
    g: torch.Generator,
) -> tuple[Tensor, Tensor, Tensor]:
    """images (B,C,H,W) float; keypoints (B,J,2) input pixels; visible (B,J) float. Returns augmented copies."""
    b, _, h, w = images.shape
    device = images.device
    if settings.flip:
        flip = (torch.rand(b, generator=g) < 0.5).to(device)
        perm = torch.as_tensor(skeleton.flip_permutation(), device=device)
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        flipped_kp = keypoints[:, perm].clone()
        flipped_kp[..., 0] = w - 1 - flipped_kp[..., 0]
        keypoints = torch.where(flip[:, None, None], flipped_kp, keypoints)
        visible = torch.where(flip[:, None], visible[:, perm], visible)
    if not (settings.rotate_deg or settings.scale or settings.shift):
        return (
            images,
            keypoints,
            visible,
        )  # flips only: the images stay exact copies (a feature cache finds them)
    angle = _uniform(b, -settings.rotate_deg, settings.rotate_deg, g, device) * (math.pi / 180)
    scale = _uniform(b, 1 - settings.scale, 1 + settings.scale, g, device)
    shift = (
        torch.stack([_uniform(b, -settings.shift, settings.shift, g, device) for _ in range(2)], dim=1) * 2
    )
    return _warp(images, keypoints, visible, angle, scale, shift)


def augment_3d(
    images: Tensor,
    keypoints: Tensor,
    visible: Tensor,
    cube_mm: float,
    settings: AugmentSettings,
    g: torch.Generator,
) -> tuple[Tensor, Tensor, Tensor]:
    """Depth crops: rotate about the crop centre and shift; keypoints (B,J,3) mm, x right / y down in image axes."""
    b, _, h, w = images.shape
    device = images.device
    angle = _uniform(b, -settings.rotate_deg, settings.rotate_deg, g, device) * (math.pi / 180)
    scale = torch.ones(b, device=device)
    shift = (
        torch.stack([_uniform(b, -settings.shift, settings.shift, g, device) for _ in range(2)], dim=1) * 2
    )
    # orthographic crop: normalised image coordinate u = x / cube_mm (pixel-centre offsets cancel for rotations)
    xy = keypoints[..., :2] / cube_mm
    images, xy_new, _ = _warp_normalised(images, xy, angle, scale, shift, background=1.0)
    out = keypoints.clone()
    out[..., :2] = xy_new * cube_mm
    return images, out, visible


def _warp(images: Tensor, keypoints: Tensor, visible: Tensor, angle: Tensor, scale: Tensor, shift: Tensor):
    _, _, h, w = images.shape
    size = torch.tensor([w, h], device=images.device, dtype=keypoints.dtype)
    norm = (2 * keypoints + 1) / size - 1  # pixel -> [-1, 1] (align_corners=False)
    images, norm_new, inside = _warp_normalised(images, norm, angle, scale, shift, background=0.0)
    kp = ((norm_new + 1) * size - 1) / 2
    return images, kp, visible * inside.to(visible.dtype)


def _warp_normalised(
    images: Tensor, pts: Tensor, angle: Tensor, scale: Tensor, shift: Tensor, background: float
):
    """Apply p' = s R p + t to points in normalised coordinates and warp the images accordingly."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    forward = torch.stack(
        [torch.stack([cos * scale, -sin * scale], -1), torch.stack([sin * scale, cos * scale], -1)], -2
    )  # (B, 2, 2)
    pts_new = torch.einsum("bij,bkj->bki", forward, pts) + shift[:, None, :]
    inverse = torch.linalg.inv(forward)
    theta = torch.cat([inverse, -(inverse @ shift[:, :, None])], dim=2)  # output -> input sampling grid
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    if background:
        images = images - background
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if background:
        warped = warped + background
    inside = (pts_new.abs() <= 1).all(-1)
    return warped, pts_new, inside
