"""The training section: the project's training step against the plain PyTorch step of the same model.

Three timings alternate in each repeat, so a machine whose speed drifts (a shared or throttled VM) slows all three
alike: the plain step (float32, contiguous, default Adam, on random tensors), the project's bare step (the
experiment's `Compute`, same random tensors) and the project's real `train()` (batches built from the dataset:
augmentation and heatmap targets included). `speedup` = project bare / plain (target >= 2), `ratio` = real / bare
(how much the data path costs; target >= 0.85); GFLOP/s from torch's flop counter.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import nn

from alpose_bench.core.compute import Compute
from alpose_bench.tools.bench.common import BenchRun, _median, _Setting, timed
from alpose_bench.tools.bench.memory import highest_peak, peak_above
from alpose_bench.tools.bench.speed import flops_per_image, lever_computes, lever_note

TRAIN_RATIO_TARGET = 0.85
SPEEDUP_TARGET = 2.0


def _random_batch(s: _Setting, bs: int, g: torch.Generator, compute: Compute):
    """A TrainBatch of random tensors with the shapes of a real one (uint8 images through the same preprocessing)."""
    from alpose_bench.pose.models import model_info
    from alpose_bench.pose.models.outputs import TrainBatch

    ds, res, device = s.dataset, s.dataset.resolution, compute.device
    images = torch.randint(0, 256, (bs, res, res, ds.channels), generator=g, dtype=torch.uint8)
    x = compute.model_input(images)
    j = ds.skeleton.num_joints
    vis = torch.ones(bs, j, device=device)
    size = model_info(s.model).heatmap_size
    if ds.task == "heatmap2d":
        assert size is not None
        kp = (torch.rand(bs, j, 2, generator=g) * (size - 1)).to(device)
        target = (torch.rand(bs, j, size, size, generator=g) * s.spec.amplitude).to(device)
        return TrainBatch(images=x, keypoints=kp, visible=vis, heatmaps=target, skeleton=ds.skeleton)
    kp = (torch.rand(bs, j, 3, generator=g) * 2 - 1).to(device)
    return TrainBatch(images=x, keypoints=kp, visible=vis, heatmaps=None, skeleton=ds.skeleton)


class _BareLoop:
    """Forward + backward + Adam steps on one fixed batch: the training loop without any data work."""

    def __init__(
        self, s: _Setting, model: nn.Module, compute: Compute, bs: int, forward: nn.Module | None = None
    ):
        self.model, self.compute = model, compute
        self.forward = forward if forward is not None else model
        self.batch = _random_batch(s, bs, torch.Generator().manual_seed(s.seed), compute)
        self.opt = compute.optimizer([{"params": list(model.parameters())}], s.spec.lr, s.spec.weight_decay)

    def __call__(self, steps: int) -> None:
        from alpose_bench.pose.heatmaps import pose_loss

        self.model.train()
        for _ in range(steps):
            with self.compute.autocast():
                loss = pose_loss(self.forward(self.batch.images), self.batch)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()


def _images_per_s(
    loop: _BareLoop, s: _Setting, steps: int, bs: int, repeats: int, max_seconds: float
) -> float:
    loop(min(steps, 2))  # warm-up
    times, _ = timed(lambda: loop(steps), s.device, repeats, max_seconds)
    return steps * bs / _median(times)


def _levers(bench: BenchRun, s: _Setting, steps: int, bs: int, flops: float) -> list[dict[str, Any]]:
    """Each lever on its own, and torch.compile of the project's model (its compile time reported)."""
    settings = bench.settings
    rows = []
    for name, compute in lever_computes(s.compute).items():
        bench.say(f"training lever: {name}")
        ips = _images_per_s(_BareLoop(s, s.model_for(compute), compute, bs), s, steps, bs, settings.repeats,
                            settings.max_seconds)  # fmt: skip
        rows.append(
            {"lever": name, "images_per_s": ips, "gflops": flops * ips / 1e9, "note": lever_note(compute)}
        )
    bench.say("training lever: torch.compile (compiling)")
    model = s.model_for(s.compute)
    loop = _BareLoop(s, model, s.compute, bs, forward=torch.compile(model))
    start = time.perf_counter()
    loop(2)
    compile_s = time.perf_counter() - start
    times, _ = timed(lambda: loop(steps), s.device, settings.repeats, settings.max_seconds)
    ips = steps * bs / _median(times)
    rows.append({"lever": "torch.compile", "images_per_s": ips,
                 "gflops": flops * ips / 1e9, "compile_s": compile_s,
                 "note": "compile time counts once per process and model shape"})  # fmt: skip
    return rows


def run(bench: BenchRun) -> dict[str, Any]:
    """Images/s and GFLOP/s of the plain step, the project's step and the real training path; their ratios."""
    from alpose_bench.engine.build import train_settings
    from alpose_bench.engine.train import train

    s, settings = bench.model_setting, bench.settings
    bench.say("training throughput")
    t_settings = train_settings(s.spec, epochs=1)
    bs = min(t_settings.batch_size, len(s.train_rows))
    steps = len(s.train_rows) // bs
    rows = s.train_rows[: steps * bs]
    plain_compute = Compute(device=s.device)
    plain = _BareLoop(s, s.model_for(plain_compute), plain_compute, bs)
    project = _BareLoop(s, s.model, s.compute, bs)
    flops = flops_per_image(s.model, project.batch.images[:1], backward=True)
    # warm-up (allocator, oneDNN primitive caches, cuDNN autotuning), not timed
    train(s.model, s.dataset, rows[: min(len(rows), 2 * bs)], t_settings, compute=s.compute, seed=s.seed)
    plain(min(steps, 2))
    project(min(steps, 2))

    def real() -> int:
        return train(s.model, s.dataset, rows, t_settings, compute=s.compute, seed=s.seed).images

    real_times, bare_times, plain_times, ratios, speedups = [], [], [], [], []
    train_peaks: list[float | None] = []  # memory each run needs above the model and data
    images = 0
    for _ in range(settings.repeats):
        (plain_s,), _ = timed(lambda: plain(steps), s.device, 1, math.inf)
        (bare_s,), _ = timed(lambda: project(steps), s.device, 1, math.inf)
        ((real_s,), images), peak = peak_above(lambda: timed(real, s.device, 1, math.inf))
        train_peaks.append(peak)
        plain_times.append(plain_s)
        bare_times.append(bare_s)
        real_times.append(real_s)
        ratios.append((images / real_s) / (steps * bs / bare_s))
        speedups.append(plain_s / bare_s)
        if sum(real_times) + sum(bare_times) + sum(plain_times) >= 3 * settings.max_seconds:
            break
    real_ips = images / _median(real_times)
    bare_ips = steps * bs / _median(bare_times)
    plain_ips = steps * bs / _median(plain_times)
    figures = {
        "batch_size": bs, "steps": steps, "augment": t_settings.augment is not None,
        "compute": s.compute.describe(), "gflop_per_image": flops / 1e9,
        "plain_images_per_s": plain_ips, "bare_images_per_s": bare_ips, "train_images_per_s": real_ips,
        "plain_gflops": flops * plain_ips / 1e9, "bare_gflops": flops * bare_ips / 1e9,
        "train_gflops": flops * real_ips / 1e9,
        "speedup": _median(speedups), "target_speedup": SPEEDUP_TARGET,
        "ratio": _median(ratios), "target_ratio": TRAIN_RATIO_TARGET,
        "plain_s": plain_times, "bare_s": bare_times, "train_s": real_times, "train_peak_mb": highest_peak(train_peaks),
    }  # fmt: skip
    if settings.levers:
        figures["levers"] = _levers(bench, s, steps, bs, flops)
    return figures
