"""The samplers section: each sampler's selection time and its overhead over one plain inference pass."""

from __future__ import annotations

import importlib
from functools import partial
from typing import Any

from alpose_bench.spec.config import ExperimentSpec
from alpose_bench.tools.bench.common import BenchError, BenchRun, BenchSettings, _median, _once
from alpose_bench.tools.bench.inference import _inference_pass, inference_figures


def resolve_samplers(settings: BenchSettings) -> list[tuple[str, type]]:
    """(name, class) of the samplers to measure: those given (names in any spelling, groups, "module:Class" or
    classes), or every registered one; names resolve as a run's do (`build.resolve_samplers`)."""
    from alpose_bench.engine.build import protocol
    from alpose_bench.engine.build import resolve_samplers as resolve_names
    from alpose_bench.samplers.base import Sampler
    from alpose_bench.spec.config import SAMPLER_GROUPS
    from alpose_bench.spec.registry import get_dataset, get_sampler

    items: list = []
    for item in list(settings.samplers) if settings.samplers is not None else ["all"]:
        if (
            item in SAMPLER_GROUPS
        ):  # a group leaves out what the dataset's task or the model cannot run, as a run
            task = get_dataset(settings.spec.datasets[0]).task
            items.extend(resolve_names([item], task, protocol(settings.spec).model)[0])
        elif isinstance(item, str) and ":" not in item:
            items.extend(resolve_names([item])[0])  # named: measured, or reported as not applicable
        else:
            items.append(item)
    out = []
    for item in items:
        if isinstance(item, str) and ":" in item:  # "package.module:Class", e.g. a plugin not installed yet
            module, _, attr = item.partition(":")
            try:
                item = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise BenchError(
                    f"cannot load sampler {module}:{attr} ({exc}); check the module and class name"
                ) from None
        cls = (
            get_sampler(item) if isinstance(item, str) else item
        )  # unknown names raise listing the known ones
        if not (isinstance(cls, type) and issubclass(cls, Sampler)):
            raise BenchError(f"{item!r} is not a sampler; pass sampler names or Sampler subclasses")
        out.append((item if isinstance(item, str) else cls.name, cls))
    return out


def skip_reason(cls: type, s: Any, model_spec: Any) -> str | None:
    """Why the bench cannot time sampler `cls` on this setting (its task or model, or no labelled images when it
    needs them), or None."""
    reason = cls.unsupported_reason(s.dataset.task, model_spec)
    if reason is None and not getattr(cls, "works_without_labelled", True) and len(s.labelled) == 0:
        reason = "needs labelled images; pass --labelled N"
    return reason


def make_sampler(spec: ExperimentSpec, name: str, cls: type):
    """The sampler `name` (registered) or `cls` (given as module:Class), with the spec's preset and parameters."""
    from alpose_bench.samplers.factory import create_sampler

    return create_sampler(cls, spec.sampler_params.get(name), spec.preset)


def run(bench: BenchRun) -> dict[str, Any]:
    """Per sampler: selection seconds over the pool, images/s, and the overhead ratio over plain inference.

    overhead_ratio = selection seconds / seconds of one inference pass over the same pool. The inference seconds
    are those of the model's forward passes inside that very selection (`SelectionContext.inference`, scaled to
    one pass over the pool when the sampler also embeds the labelled set), so both sides of the ratio are measured
    at the same moment and a machine whose speed drifts (a shared VM) slows them alike; the median over repeats is
    reported. Samplers that run no forward pass (random) are compared with a separate plain pass timed just before.
    Samplers that differentiate the model per image (`needs` "model": EGL++), whose time is linear in the pool,
    are timed on the first `slow_pool` pool images.
    """
    from alpose_bench.core import seeds
    from alpose_bench.engine import build
    from alpose_bench.engine.loop import run_selection

    s, settings, progress = bench.model_setting, bench.settings, bench.say
    inference_s = inference_figures(bench)["seconds"]
    cpu = s.device.type != "cuda"  # the bench's clock: CPU seconds on the CPU, wall seconds on CUDA
    # default: the preset's budget, at most a fifth of the pool (a run selects a small part of a large pool)
    budget = s.spec.budget if settings.budget is None else settings.budget
    budget = min(budget, len(s.pool) if settings.budget is not None else max(1, len(s.pool) // 5))
    rows = []
    model_spec = build.protocol(s.spec).model
    for name, cls in resolve_samplers(settings):
        row: dict[str, Any] = {"sampler": name, "target": cls.overhead_target}
        reason = skip_reason(cls, s, model_spec)
        if reason is not None:
            rows.append({**row, "status": "skipped", "reason": reason})
            continue
        pool = s.pool[: settings.slow_pool] if "model" in getattr(cls, "needs", ()) else s.pool
        # the same fraction of a smaller pool, and always fewer than all of it (selecting all is free)
        take = min(max(1, round(budget * len(pool) / len(s.pool))), max(1, len(pool) - 1))
        progress(f"samplers: {name} (pool {len(pool)})")
        plain: list[float] = []
        picked: list[float] = []
        ratios: list[float] = []
        try:
            sampler = make_sampler(s.spec, name, cls)
            head = build.new_head(sampler, s.model, s.seed, s.compute)
            for _ in range(settings.repeats):
                plain.append(_once(partial(_inference_pass, s, pool), s.device))
                ctx = s.context(
                    head, pool=pool, seed=seeds.derive_seed("bench-select", s.seed, name), sampler=sampler
                )
                picked.append(_once(partial(run_selection, sampler, ctx, take), s.device))
                inside = ctx.inference.cpu_s if cpu else ctx.inference.wall_s
                if ctx.forward_passes and inside > 0:
                    ratios.append(picked[-1] / (inside * len(pool) / ctx.forward_passes))
                else:
                    ratios.append(picked[-1] / plain[-1])
                if sum(plain) + sum(picked) >= settings.max_seconds:
                    break
        except Exception as exc:  # one sampler's failure must not hide the others' figures
            rows.append({**row, "status": "failed", "reason": f"{type(exc).__name__}: {exc}".splitlines()[0]})
            continue
        seconds = _median(picked)
        rows.append({
            **row, "status": "ok", "pool": len(pool), "seconds": seconds, "images_per_s": len(pool) / seconds,
            "inference_s": _median(plain), "overhead_ratio": _median(ratios), "overhead_ratios": ratios,
            "budget": take, "repeats": len(picked), "forward_passes_per_image": ctx.forward_passes / len(pool),
        })  # fmt: skip
    return {
        "pool": len(s.pool),
        "labelled": len(s.labelled),
        "budget": budget,
        "inference_s": inference_s,
        "rows": rows,
    }
