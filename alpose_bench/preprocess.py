"""Turning stored uint8 images into model input: one definition for training, evaluation and selection."""

from __future__ import annotations

import torch
from torch import Tensor


def to_model_input(images: Tensor, device: torch.device | str) -> Tensor:
    """(B, H, W, C) uint8 -> (B, C, H, W) float in [0, 1] on `device`, in channels_last memory format.

    channels_last is what the uint8 images already are (a permuted view, no copy), and convolutions run faster in it
    on CUDA and on the CPU alike (oneDNN: about 2x for inference and 1.1-1.4x for training on a 2-core CPU).
    """
    device = torch.device(device)
    x = images.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last)
