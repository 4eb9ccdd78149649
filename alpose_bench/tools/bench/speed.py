"""What the training and inference sections share: the plain PyTorch baseline, FLOP counts, the levers.

The baseline is what a plain PyTorch loop does with the same model: float32, contiguous tensors, the default Adam
(`Compute()` on the device). The project's path is the experiment's own `Compute` (`build.compute_of`): on a CPU
with the default settings, channels_last weights and inputs and the fused Adam kernel (and bf16 autocast where the
CPU computes it natively). Each lever alone is timed with `--levers`, torch.compile among them (its compile
seconds reported beside its speed).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from alpose_bench.core.compute import Compute, native_bf16


def flops_per_image(model: nn.Module, x: torch.Tensor, backward: bool) -> float:
    """FLOPs of one image through `model` (forward, plus backward when `backward`), by torch's flop counter."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.train(backward)
    counter = FlopCounterMode(display=False)
    try:
        with counter:
            out = model(x)
            if backward:
                heat = out.heatmaps if out.heatmaps is not None else [out.keypoints]
                sum(h.float().pow(2).mean() for h in heat).backward()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return counter.get_total_flops() / len(x)


def lever_computes(project: Compute) -> dict[str, Compute]:
    """The settings timed with --levers: each lever on its own over the plain baseline, and the project's."""
    plain = Compute(device=project.device)
    levers = {
        "channels_last": dataclasses.replace(plain, channels_last=True),
        "fused Adam": dataclasses.replace(plain, fused_optimizer=True),
        "bf16 autocast": dataclasses.replace(plain, precision="bf16"),
        "bf16 + channels_last": dataclasses.replace(plain, precision="bf16", channels_last=True),
    }
    return {name: c for name, c in levers.items() if c != project and c != plain}


def lever_note(compute: Compute) -> str:
    """What to know about a lever's figure on this machine."""
    if compute.precision == "bf16" and not native_bf16(compute.device):
        return "bf16 is emulated on this CPU (no AVX-512 BF16 / AMX): not used by 'auto'"
    return ""


def describe(compute: Compute) -> dict[str, Any]:
    """A compute's settings as plain values for the report."""
    return compute.describe()
