"""The EGL++ section: the fast torch.func gradient norms against the reference's replica method."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from alpose_bench.bench.common import BenchError, BenchRun, _median, timed

EGL_SPEEDUP_TARGET = 5.0
EGL_REL_DIFF_TARGET = 1e-4


#: per-sample gradients (k x parameters x 4 bytes) up to which the EGL++ fast path vmaps over all images at once
_EGL_VMAP_BYTES = 256 * 2**20


def run(bench: BenchRun) -> dict[str, Any]:
    """EGL++ gradient-norm scores of a small pool: the fast torch.func path vs the reference's replica method."""
    try:
        from alpose_bench.samplers.egl import (
            EGLPP,
            egl_neighbours,
            egl_scores,
            egl_scores_replica,
            grad_param_names,
        )
    except ImportError as exc:
        return {"skipped": f"the egl sampler does not import: {exc}"}
    from alpose_bench.samplers.factory import create_sampler

    s, settings = bench.model_setting, bench.settings
    bench.say("egl: fast vs reference gradient norms")
    sampler = create_sampler(EGLPP, s.spec.sampler_params.get("egl"))
    if len(s.labelled) == 0:
        raise BenchError(
            "the egl section needs labelled images (their labels are the candidates); pass --labelled N"
        )
    ctx = s.context(pool=s.pool[: settings.egl_pool])
    n = len(ctx.pool)
    base = 2.0 if sampler.reference_perplexity else math.e
    probs, nbr = egl_neighbours(
        torch.from_numpy(ctx.collect("pool", "embedding")).to(s.device),
        torch.from_numpy(ctx.collect("labelled", "embedding")).to(s.device),
        sampler.k, sampler.perplexity, sampler.tolerance, base,
    )  # fmt: skip
    nbr = nbr.cpu()
    if s.dataset.task == "heatmap2d":
        stacks = [b.out.heatmaps for b in ctx.batches("labelled")]
        targets = [torch.cat([st[i] for st in stacks])[nbr.to(s.device)] for i in range(len(stacks[0]))]
        mask = None
    else:
        kp = torch.from_numpy(ctx.collect("labelled", "keypoints")).to(s.device)
        targets, mask = [kp[nbr.to(s.device)]], torch.ones(nbr.shape + kp.shape[1:2], device=s.device)
    weights = probs.float()
    images = ctx.images("pool", np.arange(n))
    k = weights.shape[1]
    names = set(grad_param_names(s.model))
    params = sum(p.numel() for name, p in s.model.named_parameters() if name in names)

    # one call vmapped over all images and their k neighbours, or image by image for a large model
    step = n if k * params * 4 <= _EGL_VMAP_BYTES else 1

    def fast() -> Tensor:
        parts = []
        for i in range(0, n, step):
            m = None if mask is None else mask[i : i + step]
            parts.append(egl_scores(s.model, images[i : i + step], [t[i : i + step] for t in targets],
                                    weights[i : i + step], m))  # fmt: skip
        return torch.cat(parts)

    fast()  # warm-up
    fast_times, fast_scores = timed(fast, s.device, settings.repeats, settings.max_seconds)
    slow_times, slow_scores = timed(lambda: egl_scores_replica(s.model, images, targets, weights, mask), s.device,
                                    settings.repeats, settings.max_seconds)  # fmt: skip
    fast_scores, slow_scores = fast_scores.double().cpu(), slow_scores.double().cpu()
    rel = ((fast_scores - slow_scores).abs() / slow_scores.abs().clamp(min=1e-30)).max().item()
    return {
        "pool": n, "k": k, "parameters": params, "fast_s": _median(fast_times), "slow_s": _median(slow_times),
        "speedup": _median(slow_times) / _median(fast_times), "rel_diff": rel,
        "target_speedup": EGL_SPEEDUP_TARGET, "target_rel_diff": EGL_REL_DIFF_TARGET,
    }  # fmt: skip
