"""The EGL++ section: the fast torch.func gradient norms against the reference's replica method."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from alpose_bench.tools.bench.common import BenchError, BenchRun, _median, _Setting, timed

EGL_SPEEDUP_TARGET = 5.0
EGL_REL_DIFF_TARGET = 1e-4


#: per-sample gradients (k x parameters x 4 bytes) up to which the EGL++ fast path vmaps over all images at once
_EGL_VMAP_BYTES = 256 * 2**20


def _trained_copy(bench: BenchRun, s: _Setting) -> nn.Module:
    """The bench model trained for `egl_train_steps` steps on the labelled images (the drift a float32 comparison
    shows appears on trained models, whose gradients are small and cancel)."""
    from alpose_bench.engine.build import train_settings
    from alpose_bench.engine.train import train

    model = s.model_for(s.compute)
    model.load_state_dict(s.model.state_dict())
    steps = bench.settings.egl_train_steps
    if steps > 0:
        rows = s.labelled
        settings = train_settings(
            s.spec, epochs=max(1, math.ceil(steps * s.spec.batch_size / max(1, len(rows))))
        )
        train(model, s.dataset, rows, settings, compute=s.compute, seed=s.seed)
    return model.eval()


def run(bench: BenchRun) -> dict[str, Any]:
    """EGL++ gradient-norm scores of a small pool on a trained model: the fast torch.func path (the experiment's
    compute settings) and the reference's replica method in float32, both against the replica method in float64."""
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
    if len(s.labelled) == 0:
        raise BenchError(
            "the egl section needs labelled images (their labels are the candidates); pass --labelled N"
        )
    bench.say(f"egl: training the model for {settings.egl_train_steps} steps")
    model = _trained_copy(bench, s)
    bench.say("egl: fast vs reference gradient norms")
    sampler = create_sampler(EGLPP, s.spec.sampler_params.get("egl"))
    ctx = s.context(pool=s.pool[: settings.egl_pool], model=model)
    n = len(ctx.pool)
    base = 2.0 if sampler.reference_perplexity else math.e
    probs, nbr = egl_neighbours(
        torch.from_numpy(ctx.collect("pool", "embedding")).to(s.device),
        torch.from_numpy(ctx.collect("labelled", "embedding")).to(s.device),
        sampler.k, sampler.perplexity, sampler.tolerance, base,
    )  # fmt: skip
    nbr = nbr.cpu()
    if s.dataset.task == "heatmap2d":
        stacks = [b.out.stack_heatmaps for b in ctx.batches("labelled")]
        targets = [torch.cat([st[i] for st in stacks])[nbr.to(s.device)] for i in range(len(stacks[0]))]
        mask = None
    else:
        kp = torch.from_numpy(ctx.collect("labelled", "keypoints")).to(s.device)
        targets, mask = [kp[nbr.to(s.device)]], torch.ones(nbr.shape + kp.shape[1:2], device=s.device)
    weights = probs.float()
    images = ctx.images("pool", np.arange(n))
    k = weights.shape[1]
    names = set(grad_param_names(model))
    params = sum(p.numel() for name, p in model.named_parameters() if name in names)

    # one call vmapped over all images and their k neighbours, or image by image for a large model
    step = n if k * params * 4 <= _EGL_VMAP_BYTES else 1

    def fast() -> Tensor:
        parts = []
        for i in range(0, n, step):
            m = None if mask is None else mask[i : i + step]
            parts.append(egl_scores(model, images[i : i + step], [t[i : i + step] for t in targets],
                                    weights[i : i + step], m))  # fmt: skip
        return torch.cat(parts)

    fast()  # warm-up
    fast_times, fast_scores = timed(fast, s.device, settings.repeats, settings.max_seconds)
    slow_times, slow_scores = timed(lambda: egl_scores_replica(model, images, targets, weights, mask), s.device,
                                    settings.repeats, settings.max_seconds)  # fmt: skip
    bench.say("egl: the float64 reference")
    exact = _float64_copy(s, model)
    reference = egl_scores_replica(
        exact, images.double().contiguous(), [t.double() for t in targets], weights.double(),
        None if mask is None else mask.double(),
    ).cpu()  # fmt: skip
    fast_scores, slow_scores = fast_scores.double().cpu(), slow_scores.double().cpu()
    same_ranking = bool(torch.equal(torch.argsort(fast_scores), torch.argsort(reference)))
    return {
        "pool": n, "k": k, "parameters": params, "train_steps": settings.egl_train_steps,
        "compute": s.compute.describe(), "fast_s": _median(fast_times), "slow_s": _median(slow_times),
        "speedup": _median(slow_times) / _median(fast_times),
        "rel_diff": _relative(fast_scores, reference), "scale_rel_diff": _scale_relative(fast_scores, reference),
        "replica_rel_diff": _relative(slow_scores, reference),
        "replica_scale_rel_diff": _scale_relative(slow_scores, reference),
        "fast_vs_replica_rel_diff": _relative(fast_scores, slow_scores), "same_ranking": same_ranking,
        "target_speedup": EGL_SPEEDUP_TARGET, "target_rel_diff": EGL_REL_DIFF_TARGET,
    }  # fmt: skip


def _float64_copy(s: _Setting, model: nn.Module) -> nn.Module:
    """`model` in float64, contiguous, on the CPU: the numerically trustworthy reference."""
    from alpose_bench.core.compute import Compute

    exact = s.model_for(Compute(device=s.device)).double()
    exact.load_state_dict(
        {k: v.double() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    )
    return exact.eval()


def _relative(a: Tensor, ref: Tensor) -> float:
    """Max over images of |a - ref| / |ref|."""
    return float(((a - ref).abs() / ref.abs().clamp(min=1e-300)).max())


def _scale_relative(a: Tensor, ref: Tensor) -> float:
    """Max over images of |a - ref| / max |ref|: the error relative to the scale of the scores."""
    return float((a - ref).abs().max() / ref.abs().max().clamp(min=1e-300))
