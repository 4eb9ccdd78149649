"""How the pose model computes: device, numeric precision, memory format and optimiser kernel, in one object.

Training, evaluation and every selection pass read a `Compute`, so the speed settings of an experiment are decided
once (`build.compute_of`) and apply everywhere. What each lever does (figures: docs/performance.md):

- `channels_last` memory format for the model's weights and inputs: oneDNN's convolutions (CPU) and cuDNN's (CUDA)
  run faster on NHWC tensors;
- `fused_optimizer`: one fused Adam kernel per parameter group instead of a loop of element-wise ops;
- `precision` "bf16": autocast in bfloat16 where the hardware computes it natively (CUDA; CPUs with AVX-512 BF16 or
  AMX, as oneDNN reports them). Elsewhere bf16 is emulated and several times slower than fp32, so "auto" picks it
  only where it is native.

Each changes the numbers in the last digits (a run is still bit-for-bit reproducible with the same settings on the
same machine), so each is part of the experiment's fingerprint. `Compute()` with no arguments is the reference path:
float32, contiguous tensors, the default Adam (what experiments before these settings existed ran with).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

Precision = Literal["fp32", "bf16"]


def cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what platform says."""
    import platform
    from pathlib import Path

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def native_bf16(device: torch.device) -> bool:
    """True when `device` computes bfloat16 natively (not by emulation)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> Precision:
    """ "auto" -> "bf16" where the device computes it natively, else "fp32"; other values as they are."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    return precision  # type: ignore[return-value]


@dataclass(frozen=True)
class Compute:
    """Where and how the model computes (see the module docstring)."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: Precision = "fp32"
    channels_last: bool = False
    fused_optimizer: bool = False

    @property
    def memory_format(self) -> torch.memory_format:
        """The memory format of 4-D tensors (weights and inputs)."""
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self) -> contextlib.AbstractContextManager:
        """bfloat16 autocast for "bf16", nothing for "fp32"."""
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def model_input(self, images: Tensor) -> Tensor:
        """(B, H, W, C) uint8 -> (B, C, H, W) float in [0, 1] on the device, in the memory format."""
        x = images.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        return x.contiguous(memory_format=self.memory_format)

    def layout(self, x: Tensor) -> Tensor:
        """A 4-D tensor in the memory format (augmentation returns contiguous tensors)."""
        return x.contiguous(memory_format=self.memory_format)

    def prepare(self, module: nn.Module) -> nn.Module:
        """`module` on the device, its 4-D weights in the memory format."""
        module = module.to(self.device)
        return module.to(memory_format=self.memory_format) if self.channels_last else module

    def optimizer(self, groups: list[dict], lr: float, weight_decay: float) -> torch.optim.Optimizer:
        """Adam over parameter `groups`, the fused kernel when `fused_optimizer`."""
        if self.fused_optimizer:
            return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay, fused=True)
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)

    def describe(self) -> dict[str, object]:
        """The settings as plain values (provenance, bench)."""
        return {
            "device": str(self.device),
            "precision": self.precision,
            "channels_last": self.channels_last,
            "fused_optimizer": self.fused_optimizer,
        }


def as_compute(device_or_compute: Compute | torch.device | str) -> Compute:
    """A Compute from a device (the reference path on it) or a Compute."""
    if isinstance(device_or_compute, Compute):
        return device_or_compute
    return Compute(device=torch.device(device_or_compute))
