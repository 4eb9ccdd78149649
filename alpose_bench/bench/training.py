"""The training section: images/s of the real training path against a bare loop on random tensors."""

from __future__ import annotations

import math
from typing import Any

import torch

from alpose_bench.bench.common import BenchRun, _median, _Setting, timed

TRAIN_RATIO_TARGET = 0.85


def _random_batch(s: _Setting, bs: int, g: torch.Generator):
    """A TrainBatch of random tensors with the shapes of a real one (uint8 images through the same preprocessing)."""
    from alpose_bench.models import model_info
    from alpose_bench.models.outputs import TrainBatch
    from alpose_bench.preprocess import to_model_input

    ds, res = s.dataset, s.dataset.resolution
    images = torch.randint(0, 256, (bs, res, res, ds.channels), generator=g, dtype=torch.uint8)
    x = to_model_input(images, s.device)
    j = ds.skeleton.num_joints
    vis = torch.ones(bs, j, device=s.device)
    size = model_info(s.model).heatmap_size
    if ds.task == "heatmap2d":
        kp = (torch.rand(bs, j, 2, generator=g) * (size - 1)).to(s.device)
        target = (torch.rand(bs, j, size, size, generator=g) * s.spec.amplitude).to(s.device)
        return TrainBatch(images=x, keypoints=kp, visible=vis, heatmaps=target)
    kp = (torch.rand(bs, j, 3, generator=g) * 2 - 1).to(s.device)
    return TrainBatch(images=x, keypoints=kp, visible=vis, heatmaps=None)


def _bare_steps(s: _Setting, batch, steps: int) -> None:
    """`steps` forward + backward + Adam steps on one fixed batch: the loop without any data work."""
    from alpose_bench.heatmaps import pose_loss
    from alpose_bench.pool import autocast_for

    opt = torch.optim.Adam(s.model.parameters(), lr=s.spec.lr, weight_decay=s.spec.weight_decay)
    s.model.train()
    for _ in range(steps):
        with autocast_for(s.device):
            loss = pose_loss(s.model(batch.images), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def run(bench: BenchRun) -> dict[str, Any]:
    """Images/s of the real training path vs a bare loop on random tensors of the same shapes, and their ratio."""
    from alpose_bench.build import train_settings
    from alpose_bench.train import train

    s, settings = bench.model_setting, bench.settings
    bench.say("training throughput")
    t_settings = train_settings(s.spec, epochs=1)
    bs = min(t_settings.batch_size, len(s.train_rows))
    steps = len(s.train_rows) // bs
    rows = s.train_rows[: steps * bs]
    batch = _random_batch(s, bs, torch.Generator().manual_seed(s.seed))
    # warm-up (allocator, cuDNN autotuning), not timed
    train(s.model, s.dataset, rows[: min(len(rows), 2 * bs)], t_settings, device=s.device, seed=s.seed)
    _bare_steps(s, batch, min(steps, 2))

    def real() -> int:
        return train(s.model, s.dataset, rows, t_settings, device=s.device, seed=s.seed).images

    # real and bare alternate, and the ratio is the median of each pair's: a machine whose speed drifts (a shared
    # or throttled VM) slows both sides of a pair alike instead of biasing one whole series
    real_times, bare_times, ratios = [], [], []
    for _ in range(settings.repeats):
        (real_s,), images = timed(real, s.device, 1, math.inf)
        (bare_s,), _ = timed(lambda: _bare_steps(s, batch, steps), s.device, 1, math.inf)
        real_times.append(real_s)
        bare_times.append(bare_s)
        ratios.append((images / real_s) / (steps * bs / bare_s))
        if sum(real_times) + sum(bare_times) >= 2 * settings.max_seconds:
            break
    real_ips = images / _median(real_times)
    bare_ips = steps * bs / _median(bare_times)
    return {
        "batch_size": bs, "steps": steps, "augment": t_settings.augment is not None,
        "train_images_per_s": real_ips, "bare_images_per_s": bare_ips, "ratio": _median(ratios),
        "target_ratio": TRAIN_RATIO_TARGET, "train_s": real_times, "bare_s": bare_times,
    }  # fmt: skip
