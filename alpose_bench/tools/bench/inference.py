"""The inference section: one eval-mode forward pass over the pool, the project's path against the plain one.

Both passes go through `SelectionContext.batches` (what every sampler reads from): the plain one with a float32,
contiguous model, the project's with the experiment's `Compute`. They alternate in each repeat; `speedup` is the
median of the per-repeat ratios (target >= 2). With `--levers`, torch.compile of the project's model too.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from alpose_bench.core.compute import Compute
from alpose_bench.tools.bench.common import BenchRun, _median, _Setting, timed
from alpose_bench.tools.bench.memory import highest_peak, peak_above
from alpose_bench.tools.bench.speed import flops_per_image, lever_computes, lever_note

SPEEDUP_TARGET = 2.0


def _inference_pass(
    s: _Setting,
    pool: np.ndarray | None = None,
    model: nn.Module | None = None,
    compute: Compute | None = None,
) -> int:
    ctx = s.context(pool=pool, model=model, compute=compute)
    for _ in ctx.batches("pool"):
        pass
    return ctx.forward_passes


def inference_figures(bench: BenchRun) -> dict[str, Any]:
    """The inference figures, measured once per bench run (the samplers section reads them too)."""
    if "inference" not in bench.figures:
        bench.figures["inference"] = run(bench)
    return bench.figures["inference"]


def _timed_pass(bench: BenchRun, s: _Setting, model: nn.Module, compute: Compute) -> float:
    """Images/s of the pool pass with `model` on `compute` (median over repeats, after a warm-up)."""
    _inference_pass(s, model=model, compute=compute)
    times, images = timed(
        lambda: _inference_pass(s, model=model, compute=compute), s.device, bench.settings.repeats,
        bench.settings.max_seconds,
    )  # fmt: skip
    return images / _median(times)


def _levers(bench: BenchRun, s: _Setting, flops: float) -> list[dict[str, Any]]:
    rows = []
    for name, compute in lever_computes(s.compute).items():
        if compute.fused_optimizer and not compute.channels_last and compute.precision == "fp32":
            continue  # the optimiser does not run in inference
        bench.say(f"inference lever: {name}")
        ips = _timed_pass(bench, s, s.model_for(compute), compute)  # batches() runs it in eval mode
        rows.append(
            {"lever": name, "images_per_s": ips, "gflops": flops * ips / 1e9, "note": lever_note(compute)}
        )
    bench.say("inference lever: torch.compile (compiling)")
    model = s.model_for(s.compute)
    model.eval()
    compiled = torch.compile(model)
    start = time.perf_counter()
    _inference_pass(s, model=compiled, compute=s.compute)
    compile_s = time.perf_counter() - start
    ips = _timed_pass(bench, s, compiled, s.compute)
    rows.append({"lever": "torch.compile", "images_per_s": ips,
                 "gflops": flops * ips / 1e9, "compile_s": compile_s,
                 "note": "compile time counts once per process and batch shape"})  # fmt: skip
    return rows


def run(bench: BenchRun) -> dict[str, Any]:
    """Images/s and GFLOP/s of one pool pass: the plain path, the project's, and their ratio."""
    if "inference" in bench.figures:
        return bench.figures["inference"]
    s, settings = bench.model_setting, bench.settings
    bench.say("inference throughput")
    plain_compute = Compute(device=s.device)
    plain_model = s.model_for(plain_compute)
    x = s.context().images("pool", np.arange(1))
    flops = flops_per_image(
        plain_model, x, backward=False
    )  # the whole model's, whether or not a cache serves it
    _inference_pass(s)  # warm-up of both
    _inference_pass(s, model=plain_model, compute=plain_compute)
    plain_times, times, speedups = [], [], []
    pass_peaks: list[float | None] = []  # memory each pass needs above the model and data
    images = 0
    for _ in range(settings.repeats):
        (plain_s,), _ = timed(
            lambda: _inference_pass(s, model=plain_model, compute=plain_compute), s.device, 1, float("inf")
        )
        ((project_s,), images), peak = peak_above(lambda: timed(lambda: _inference_pass(s), s.device, 1, float("inf")))
        pass_peaks.append(peak)
        plain_times.append(plain_s)
        times.append(project_s)
        speedups.append(plain_s / project_s)
        if sum(plain_times) + sum(times) >= 2 * settings.max_seconds:
            break
    seconds = _median(times)
    figures = {
        "pool": len(s.pool), "batch_size": s.spec.eval_batch_size, "compute": s.compute.describe(),
        "gflop_per_image": flops / 1e9, "seconds": seconds, "images_per_s": images / seconds,
        "plain_images_per_s": images / _median(plain_times), "gflops": flops * images / seconds / 1e9,
        "plain_gflops": flops * images / _median(plain_times) / 1e9, "speedup": _median(speedups),
        "target_speedup": SPEEDUP_TARGET, "repeat_s": times, "plain_s": plain_times,
        "peak_mb": highest_peak(pass_peaks),
    }  # fmt: skip
    if getattr(s.model, "feature_cache", None) is not None:
        figures["feature_cache"] = _cache_build(bench, s)
    if settings.levers:
        figures["levers"] = _levers(bench, s, flops)
    return figures


def _cache_build(bench: BenchRun, s: _Setting) -> dict[str, Any]:
    """Building the frozen backbone's feature cache of the bench's images afresh (in a temporary folder): images/s
    (each with its mirror) and megabytes per image; the project's pass above read such a cache."""
    import tempfile
    from pathlib import Path

    from alpose_bench.engine import build

    bench.say("feature cache build")
    dataset = s.dataset
    images = len(dataset.train) + len(dataset.test) + (len(dataset.ood) if dataset.ood is not None else 0)
    with tempfile.TemporaryDirectory() as folder:
        ((seconds,), cache), peak = peak_above(lambda: timed(
            lambda: build.feature_cache(s.model, dataset, s.compute, Path(folder)), s.device, 1, float("inf")
        ))
        size = cache.path.stat().st_size
    return {
        "images": images,
        "seconds": seconds,
        "images_per_s": images / seconds,
        "mb_per_image": size / images / 2**20,
        "peak_mb": peak,  # the build streams rows to the file: bounded by a batch, not by the dataset
    }
