"""The inference section: images/s of one eval-mode forward pass over the pool."""

from __future__ import annotations

from typing import Any

import numpy as np

from alpose_bench.bench.common import BenchRun, _median, _Setting, timed


def _inference_pass(s: _Setting, pool: np.ndarray | None = None) -> int:
    ctx = s.context(pool=pool)
    for _ in ctx.batches("pool"):
        pass
    return ctx.forward_passes


def inference_figures(bench: BenchRun) -> dict[str, Any]:
    """The inference figures, measured once per bench run (the samplers section reads them too)."""
    if "inference" not in bench.figures:
        bench.figures["inference"] = run(bench)
    return bench.figures["inference"]


def run(bench: BenchRun) -> dict[str, Any]:
    """Images/s of one eval-mode forward pass over the pool (SelectionContext.batches)."""
    if "inference" in bench.figures:
        return bench.figures["inference"]
    s, settings = bench.model_setting, bench.settings
    bench.say("inference throughput")
    _inference_pass(s)  # warm-up
    times, images = timed(lambda: _inference_pass(s), s.device, settings.repeats, settings.max_seconds)
    seconds = _median(times)
    return {
        "pool": len(s.pool), "batch_size": s.spec.eval_batch_size, "seconds": seconds,
        "images_per_s": images / seconds, "repeat_s": times,
    }  # fmt: skip
