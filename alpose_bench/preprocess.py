"""Turning stored uint8 images into model input: one definition for training, evaluation and selection."""

from __future__ import annotations

import torch
from torch import Tensor


def to_model_input(images: Tensor, device: torch.device | str) -> Tensor:
    """(B, H, W, C) uint8 -> (B, C, H, W) float in [0, 1] on `device` (channels_last on CUDA)."""
    device = torch.device(device)
    x = images.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    return x.contiguous() if device.type != "cuda" else x
