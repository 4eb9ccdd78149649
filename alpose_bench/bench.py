"""Speed figures of the benchmark on the current machine: training and inference throughput, each sampler's
selection overhead, Core-Set time and memory, batched peak extraction vs scikit-image, EGL++ fast vs reference.

Every figure is a median over repeats (at least one; repeats stop early once a measurement has used
`max_seconds`). `run_bench` returns a `BenchReport` whose `to_dict()` is what `--json` writes: the machine
(CPU count, torch version and threads, device name, load average before and after), the settings, and one dict
of figures per section. Section keys (documented in docs/performance.md):

- training:  train_images_per_s (the real `train` path), bare_images_per_s (forward+backward+step on random
             tensors of the same shapes, same loss), ratio (real / bare; target >= 0.85)
- inference: images_per_s, seconds (one eval pass over the pool via SelectionContext.batches)
- samplers:  rows of {sampler, status ok|skipped|failed, reason, pool, budget, seconds, images_per_s, inference_s,
             overhead_ratio (median over repeats of selection time / a plain inference pass over the same pool timed
             just before it), forward_passes_per_image, target}; samplers that differentiate the model per image
             (EGL++) use the first `slow_pool` images
- coreset:   rows of {pool, labelled, seconds, peak_mb, inputs_mb, extra_mb, pairwise_matrix_mb}, each measured
             in its own subprocess (peak RSS, or CUDA peak allocation, above the process after its imports)
- peaks:     rows of {config, num_peaks, min_distance, find_peaks_s, skimage_s, speedup, same_peaks}
- egl:       fast_s, slow_s, speedup, rel_diff (max relative score difference of the fast path vs the reference)
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from alpose_bench.config import ConfigError, ExperimentSpec
from alpose_bench.data import PoseDataset

SECTIONS = ("training", "inference", "samplers", "coreset", "peaks", "egl")

#: selection overhead targets (selection time / one plain inference pass over the same pool)
OVERHEAD_TARGETS = {
    "vl4pose": 1.2, "mpe": 1.2, "learning_loss": 1.2, "learning_loss_pp": 1.2, "aleatoric": 1.2, "coreset": 1.5,
}  # fmt: skip
TRAIN_RATIO_TARGET = 0.85
PEAK_SPEEDUP_TARGET = 50.0
EGL_SPEEDUP_TARGET = 5.0
EGL_REL_DIFF_TARGET = 1e-4

#: per-sample gradients (k x parameters x 4 bytes) up to which the EGL++ fast path vmaps over all images at once
_EGL_VMAP_BYTES = 256 * 2**20

#: peak-finder settings of the samplers that use it (reference values for 64x64 heatmaps)
PEAK_CONFIGS = {"mpe": (5, 5), "vl4pose": (1, 8)}  # name -> (num_peaks, min_distance)

Progress = Callable[[str], None]


class BenchError(ConfigError):
    """Invalid benchmark settings; the message says which and how to fix it (one line)."""


@dataclass(frozen=True)
class BenchSettings:
    """What to measure. The model, dataset, resolution and device come from `spec` (a preset's spec)."""

    spec: ExperimentSpec
    sections: tuple[str, ...] = SECTIONS
    pool: int = 512  # unlabelled images of the inference and sampler sections
    labelled: int | None = None  # labelled images beside them (None: the spec's initial set size)
    budget: int | None = None  # images each sampler selects (None: the spec's budget, at most pool / 5)
    samplers: tuple[str | type, ...] | None = None  # names or Sampler classes; None: every registered one
    repeats: int = 3
    max_seconds: float = 10.0  # stop repeating a measurement once it has used this long
    train_steps: int = 10  # optimiser steps per timed training repeat
    coreset_pools: tuple[int, ...] = (10_000, 50_000)
    coreset_labelled: tuple[int, ...] = (1_000, 5_000)
    coreset_dim: int = 256
    coreset_budget: int = 1_000
    peak_maps: int = 1_000  # images of `peak_joints` heatmaps of `peak_size` x `peak_size`
    peak_joints: int = 16
    peak_size: int = 64
    egl_pool: int = 4
    slow_pool: int = 32  # pool of the samplers that differentiate the model per image (EGL++)
    seed: int = 0

    def validate(self) -> BenchSettings:
        unknown = [s for s in self.sections if s not in SECTIONS]
        if unknown or not self.sections:
            raise BenchError(
                f"unknown bench section(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
                f"choose from {', '.join(SECTIONS)}"
            )
        positive = dict(pool=self.pool, repeats=self.repeats, train_steps=self.train_steps, egl_pool=self.egl_pool,
                        slow_pool=self.slow_pool,
                        coreset_dim=self.coreset_dim, coreset_budget=self.coreset_budget, peak_maps=self.peak_maps,
                        peak_joints=self.peak_joints)  # fmt: skip
        for name, value in positive.items():
            if value < 1:
                raise BenchError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        for name in ("labelled", "budget"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise BenchError(f"--{name} must be at least 1, got {value}")
        if not self.max_seconds > 0:
            raise BenchError(f"--max-seconds must be positive, got {self.max_seconds}")
        if self.peak_size < 3:
            raise BenchError(f"--peak-size must be at least 3 pixels, got {self.peak_size}")
        if (
            not self.coreset_pools
            or not self.coreset_labelled
            or min(self.coreset_pools + self.coreset_labelled) < 1
        ):
            raise BenchError(
                "Core-Set pool and labelled sizes must be positive whole numbers, e.g. 10000,50000"
            )
        return self


def parse_sections(text: str | None) -> tuple[str, ...]:
    """'training,peaks' -> ('training', 'peaks') in the canonical order; None or 'all' -> every section."""
    if text is None or text.strip() == "all":
        return SECTIONS
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        raise BenchError(
            f"unknown --only section(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"choose from {', '.join(SECTIONS)}"
        )
    return tuple(s for s in SECTIONS if s in names)


def parse_sizes(text: str, what: str) -> tuple[int, ...]:
    """'10000,50000' -> (10000, 50000); BenchError on anything that is not a list of positive integers."""
    try:
        sizes = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise BenchError(
            f"{what} must be comma-separated positive whole numbers, e.g. 10000,50000; got {text!r}"
        )
    return sizes


@dataclass
class BenchReport:
    """Every figure of one bench run, with the machine and settings it was measured with."""

    machine: dict[str, Any]
    settings: dict[str, Any]
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(
        default_factory=list
    )  # correctness failures (e.g. peaks that differ from skimage)

    def to_dict(self) -> dict[str, Any]:
        return _clean(dataclasses.asdict(self))

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to None, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Path):
        return str(value)
    return value


# -- machine and timing ------------------------------------------------------------------------------------------


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict[str, Any]:
    """The machine the figures were measured on."""
    try:
        import skimage

        skimage_version: str | None = skimage.__version__
    except ImportError:
        skimage_version = None
    return {
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scikit_image": skimage_version,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(
    fn: Callable[[], Any], device: torch.device, repeats: int, max_seconds: float
) -> tuple[list[float], Any]:
    """Wall-clock seconds of up to `repeats` calls of `fn` (stopping once they add up to `max_seconds`), and the
    last call's result. CUDA work is synchronised before each clock reading."""
    times: list[float] = []
    result = None
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        result = fn()
        _sync(device)
        times.append(time.perf_counter() - start)
        if sum(times) >= max_seconds:
            break
    return times, result


def _once(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds of one call of `fn`."""
    return timed(fn, device, 1, math.inf)[0][0]


def _median(times: Sequence[float]) -> float:
    return float(statistics.median(times))


# -- the shared setting: dataset, model, pool ---------------------------------------------------------------------


@dataclass
class _Setting:
    spec: ExperimentSpec
    dataset: PoseDataset
    model: nn.Module
    device: torch.device
    labelled: np.ndarray
    pool: np.ndarray
    train_rows: np.ndarray
    seed: int

    def context(self, aux: nn.Module | None = None, pool: np.ndarray | None = None, seed: int = 0):
        from alpose_bench.pool import SelectionContext

        return SelectionContext(
            model=self.model, aux=aux, dataset=self.dataset, labelled=self.labelled,
            pool=self.pool if pool is None else pool, device=self.device, batch_size=self.spec.eval_batch_size,
            seed=seed,
        )  # fmt: skip


def _setting(settings: BenchSettings, needs_pool: bool) -> _Setting:
    from alpose_bench import loop
    from alpose_bench.registry import get_dataset

    spec = settings.spec
    if len(spec.datasets) != 1:
        raise BenchError(
            f"bench measures one dataset at a time, got {', '.join(spec.datasets)}; pass one --dataset"
        )
    labelled_n = spec.init if settings.labelled is None else settings.labelled
    train_n = settings.train_steps * spec.batch_size
    wanted = max(labelled_n + settings.pool, train_n) if needs_pool else train_n
    # only the training pool is used: generate (synthetic) or keep (real datasets) just the images needed
    config = loop.dataset_config(spec.replace(pool_size=wanted, test_size=16), spec.datasets[0])
    dataset = get_dataset(spec.datasets[0])().load(config)
    n = len(dataset.train)
    if needs_pool and labelled_n + settings.pool > n:
        raise BenchError(
            f"--pool {settings.pool} + {labelled_n} labelled images need {labelled_n + settings.pool} images, but "
            f"{dataset.name} has {n}; lower --pool or --labelled"
        )
    device = loop.resolve_device(spec.device)
    order = np.random.default_rng(loop.derive_seed("bench", settings.seed)).permutation(n)
    labelled = np.sort(order[:labelled_n]) if needs_pool else order[:0]
    pool = np.sort(order[labelled_n : labelled_n + settings.pool]) if needs_pool else order[:0]
    model = loop.new_model(spec, dataset, settings.seed, device)
    return _Setting(
        spec, dataset, model, device, labelled, pool, np.sort(order[: min(train_n, n)]), settings.seed
    )


# -- sections -----------------------------------------------------------------------------------------------------


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


def training_section(s: _Setting, settings: BenchSettings) -> dict[str, Any]:
    """Images/s of the real training path vs a bare loop on random tensors of the same shapes, and their ratio."""
    from alpose_bench import loop
    from alpose_bench.train import train

    t_settings = loop.train_settings(s.spec, epochs=1)
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


def _inference_pass(s: _Setting, pool: np.ndarray | None = None) -> int:
    ctx = s.context(pool=pool)
    for _ in ctx.batches("pool"):
        pass
    return ctx.forward_passes


def inference_section(s: _Setting, settings: BenchSettings) -> dict[str, Any]:
    """Images/s of one eval-mode forward pass over the pool (SelectionContext.batches)."""
    _inference_pass(s)  # warm-up
    times, images = timed(lambda: _inference_pass(s), s.device, settings.repeats, settings.max_seconds)
    seconds = _median(times)
    return {
        "pool": len(s.pool), "batch_size": s.spec.eval_batch_size, "seconds": seconds,
        "images_per_s": images / seconds, "repeat_s": times,
    }  # fmt: skip


def _resolve_samplers(settings: BenchSettings) -> list[tuple[str, type]]:
    """(name, class) of the samplers to measure: those given (names or classes), or every registered one."""
    from alpose_bench.registry import get_sampler, working_samplers
    from alpose_bench.samplers.base import Sampler

    items = list(settings.samplers) if settings.samplers is not None else working_samplers()
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


def _make_sampler(spec: ExperimentSpec, name: str, cls: type):
    from alpose_bench import loop
    from alpose_bench.registry import samplers

    if name in samplers() and samplers()[name].obj is cls:
        return loop.make_sampler(spec, name)  # checks the --sampler-param names
    return cls(**spec.sampler_params.get(name, {}))


def samplers_section(
    s: _Setting, settings: BenchSettings, inference_s: float, progress: Progress
) -> dict[str, Any]:
    """Per sampler: selection seconds over the pool, images/s, and the overhead ratio vs plain inference.

    Each repeat times one plain inference pass over the sampler's pool right before its selection, and the
    overhead ratio is the median of the per-repeat ratios, so that load from other processes, which drifts over
    minutes, mostly cancels. Samplers that differentiate the model per image (`needs` "model": EGL++), whose time
    is linear in the pool, are timed on the first `slow_pool` pool images.
    """
    from alpose_bench import loop

    # default: the preset's budget, at most a fifth of the pool (a run selects a small part of a large pool)
    budget = s.spec.budget if settings.budget is None else settings.budget
    budget = min(budget, len(s.pool) if settings.budget is not None else max(1, len(s.pool) // 5))
    rows = []
    for name, cls in _resolve_samplers(settings):
        row: dict[str, Any] = {"sampler": name, "target": OVERHEAD_TARGETS.get(name)}
        reason = cls.unsupported_reason(s.dataset.task)
        if reason is None and not getattr(cls, "works_without_labelled", True) and len(s.labelled) == 0:
            reason = "needs labelled images; pass --labelled N"
        if reason is not None:
            rows.append({**row, "status": "skipped", "reason": reason})
            continue
        pool = s.pool[: settings.slow_pool] if "model" in getattr(cls, "needs", ()) else s.pool
        # the same fraction of a smaller pool, and always fewer than all of it (selecting all is free)
        take = min(max(1, round(budget * len(pool) / len(s.pool))), max(1, len(pool) - 1))
        progress(f"samplers: {name} (pool {len(pool)})")
        plain: list[float] = []
        picked: list[float] = []
        try:
            sampler = _make_sampler(s.spec, name, cls)
            head = loop.new_head(sampler, s.model, s.seed, s.device)
            for _ in range(settings.repeats):
                plain.append(_once(partial(_inference_pass, s, pool), s.device))
                ctx = s.context(head, pool=pool, seed=loop.derive_seed("bench-select", s.seed, name))
                picked.append(_once(partial(loop.select_with_scores, sampler, ctx, take), s.device))
                if sum(plain) + sum(picked) >= settings.max_seconds:
                    break
        except Exception as exc:  # one sampler's failure must not hide the others' figures
            rows.append({**row, "status": "failed", "reason": f"{type(exc).__name__}: {exc}".splitlines()[0]})
            continue
        seconds = _median(picked)
        rows.append({
            **row, "status": "ok", "pool": len(pool), "seconds": seconds, "images_per_s": len(pool) / seconds,
            "inference_s": _median(plain), "overhead_ratio": _median([a / b for a, b in zip(picked, plain)]),
            "budget": take, "repeats": len(picked), "forward_passes_per_image": ctx.forward_passes / len(pool),
        })  # fmt: skip
    return {
        "pool": len(s.pool),
        "labelled": len(s.labelled),
        "budget": budget,
        "inference_s": inference_s,
        "rows": rows,
    }


# Core-Set: one subprocess per configuration, so that each peak-memory reading is its own


def _proc_status_mb(key: str) -> float | None:
    """A memory figure of this process from /proc/self/status (Linux), in MiB; None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0); False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _rss_now_and_peak() -> tuple[float, float, str]:
    """(current RSS, peak RSS) in MiB and how they were read.

    Linux: VmRSS and VmHWM, which belong to this process image only. ru_maxrss (the fallback) is not: Linux
    carries it over from the parent through fork and exec, so a child of a large process would report the
    parent's size as its own peak."""
    now, peak = _proc_status_mb("VmRSS"), _proc_status_mb("VmHWM")
    if now is not None and peak is not None:
        return now, peak, "VmHWM"
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    maxrss = maxrss / 2**20 if sys.platform == "darwin" else maxrss / 2**10
    return maxrss, maxrss, "ru_maxrss"


def coreset_child(
    pool: int,
    labelled: int,
    dim: int,
    budget: int,
    repeats: int,
    device: str,
    seed: int,
    threads: int,
    max_seconds: float = math.inf,
) -> dict[str, Any]:
    """Run in a fresh process: time k-center greedy on random embeddings and read this process's peak memory.

    baseline_mb: the process after its imports (torch and the sampler); inputs_mb: what the two embedding
    matrices added; extra_mb: what k-center greedy added beyond its inputs at its peak (peak RSS on CPU, peak
    CUDA allocation on CUDA); peak_mb: inputs + extra, i.e. the peak above the baseline.
    """
    from alpose_bench.samplers.coreset import kcenter_greedy

    torch.set_num_threads(threads)
    dev = torch.device(device)
    g = torch.Generator().manual_seed(seed)
    mib = 2**20
    cuda = dev.type == "cuda"
    base = torch.cuda.memory_allocated(dev) / mib if cuda else _rss_now_and_peak()[0]
    pool_emb = torch.randn(pool, dim, generator=g).to(dev)
    labelled_emb = torch.randn(labelled, dim, generator=g).to(dev)
    if cuda:
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        after_inputs, kind = torch.cuda.memory_allocated(dev) / mib, "cuda max_memory_allocated"
    else:
        after_inputs, _, kind = _rss_now_and_peak()
        if not _reset_peak_rss():
            kind += " (not reset after the inputs)"
    times, _ = timed(partial(kcenter_greedy, pool_emb, labelled_emb, budget), dev, repeats, max_seconds)
    peak = torch.cuda.max_memory_allocated(dev) / mib if cuda else _rss_now_and_peak()[1]
    extra = max(0.0, peak - after_inputs)
    return {
        "pool": pool, "labelled": labelled, "seconds": _median(times), "repeat_s": times, "baseline_mb": base,
        "inputs_mb": after_inputs - base, "extra_mb": extra, "peak_mb": after_inputs - base + extra,
        "pairwise_matrix_mb": pool * labelled * 4 / mib, "memory": kind,
    }  # fmt: skip


_CHILD_CODE = "import json, sys; from alpose_bench.bench import coreset_child; print(json.dumps(coreset_child(**json.loads(sys.argv[1]))))"


def coreset_section(settings: BenchSettings, device: torch.device, progress: Progress) -> dict[str, Any]:
    """k-center greedy time and peak memory for every (pool, labelled) configuration, one subprocess each."""
    rows = []
    for pool in settings.coreset_pools:
        for labelled in settings.coreset_labelled:
            progress(f"coreset: pool {pool} x labelled {labelled}")
            args = dict(pool=pool, labelled=labelled, dim=settings.coreset_dim, budget=settings.coreset_budget,
                        repeats=settings.repeats, device=str(device), seed=settings.seed,
                        threads=torch.get_num_threads(), max_seconds=settings.max_seconds)  # fmt: skip
            proc = subprocess.run(
                [sys.executable, "-c", _CHILD_CODE, json.dumps(args)],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                lines = (proc.stderr or proc.stdout).strip().splitlines() or [
                    f"exit status {proc.returncode}"
                ]
                rows.append({"pool": pool, "labelled": labelled, "status": "failed", "reason": lines[-1]})
                continue
            rows.append({**json.loads(proc.stdout.strip().splitlines()[-1]), "status": "ok"})
    return {"dim": settings.coreset_dim, "budget": settings.coreset_budget, "rows": rows}


# Peaks


def synthetic_heatmaps(maps: int, joints: int, size: int, seed: int = 0) -> Tensor:
    """(maps, joints, size, size) heatmaps like a pose model's: three Gaussian blobs (sigma 1.75 px, heights up to
    30, 15 and 8) at random places on low uniform noise (0-0.5), so every map has many small local maxima."""
    g = torch.Generator().manual_seed(seed)
    n = maps * joints
    centres = torch.rand(n, 3, 2, generator=g) * (size - 1)
    heights = torch.rand(n, 3, generator=g) * torch.tensor([30.0, 15.0, 8.0])
    axis = torch.arange(size, dtype=torch.float32)
    out = torch.rand(n, size, size, generator=g) * 0.5
    for b in range(3):  # three blobs, each vectorised over all maps
        dy = (axis[None, :] - centres[:, b, 1:2]) ** 2
        dx = (axis[None, :] - centres[:, b, 0:1]) ** 2
        out += heights[:, b, None, None] * torch.exp(-(dy[:, :, None] + dx[:, None, :]) / (2 * 1.75**2))
    return out.view(maps, joints, size, size)


def skimage_peaks(maps: np.ndarray, num_peaks: int, min_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference: skimage.feature.peak_local_max on each (h, w) map of (N, h, w), one call per map.

    Returns (coords (N, num_peaks, 2) int (row, col), -1 in empty slots; valid (N, num_peaks) bool)."""
    from skimage.feature import peak_local_max

    coords = np.full((len(maps), num_peaks, 2), -1, dtype=np.int64)
    for i, m in enumerate(maps):
        found = peak_local_max(m, min_distance=min_distance, num_peaks=num_peaks)
        coords[i, : len(found)] = found
    return coords, coords[..., 0] >= 0


def mismatched_maps(
    fp_coords: np.ndarray, fp_valid: np.ndarray, sk_coords: np.ndarray, sk_valid: np.ndarray
) -> np.ndarray:
    """Indices of the maps where find_peaks ((N, K, 2) (x, y), valid (N, K)) differs from skimage ((N, K, 2)
    (row, col), valid): another number of peaks, or another peak in any rank."""
    fp_rc = np.where(fp_valid[..., None], np.asarray(fp_coords)[..., ::-1].round().astype(np.int64), -1)
    sk_rc = np.where(sk_valid[..., None], sk_coords, -1)
    bad = (fp_valid != sk_valid).any(axis=1) | (fp_rc != sk_rc).any(axis=(1, 2))
    return np.flatnonzero(bad)


def peaks_section(
    settings: BenchSettings, device: torch.device, progress: Progress
) -> tuple[dict[str, Any], list[str]]:
    """The shared find_peaks vs a skimage.feature.peak_local_max loop on the same heatmaps, per sampler setting."""
    from alpose_bench.peaks import find_peaks

    try:
        import skimage

        have_skimage, version = True, skimage.__version__
    except ImportError:
        have_skimage, version = False, None
    hm = synthetic_heatmaps(settings.peak_maps, settings.peak_joints, settings.peak_size, settings.seed)
    flat = hm.reshape(-1, settings.peak_size, settings.peak_size).numpy()
    on_device = hm.to(device)
    rows, problems = [], []
    for name, (num_peaks, min_distance) in PEAK_CONFIGS.items():
        progress(f"peaks: {name} (num_peaks={num_peaks}, min_distance={min_distance})")
        find_peaks(on_device[:1], num_peaks, min_distance)  # warm-up
        fp_times, peaks = timed(lambda np_=num_peaks, md=min_distance: find_peaks(on_device, np_, md), device,
                                settings.repeats, settings.max_seconds)  # fmt: skip
        row: dict[str, Any] = {
            "config": name, "num_peaks": num_peaks, "min_distance": min_distance, "maps": len(flat),
            "find_peaks_s": _median(fp_times), "target_speedup": PEAK_SPEEDUP_TARGET,
        }  # fmt: skip
        if not have_skimage:
            rows.append({**row, "skimage_s": None, "speedup": None, "same_peaks": None,
                         "note": "scikit-image is not installed (a dev extra: pip install -e '.[dev]')"})  # fmt: skip
            continue
        sk_times, (sk_coords, sk_valid) = timed(
            lambda np_=num_peaks, md=min_distance: skimage_peaks(flat, np_, md),
            torch.device("cpu"), settings.repeats, settings.max_seconds,
        )  # fmt: skip
        fp_coords = peaks.coords.reshape(len(flat), num_peaks, 2).cpu().numpy()
        fp_valid = peaks.valid.reshape(len(flat), num_peaks).cpu().numpy()
        bad = mismatched_maps(fp_coords, fp_valid, sk_coords, sk_valid)
        if len(bad):
            problems.append(
                f"find_peaks differs from skimage.feature.peak_local_max on {len(bad)} of {len(flat)} maps "
                f"({name}: num_peaks={num_peaks}, min_distance={min_distance}; first: map {int(bad[0])})"
            )
        rows.append({**row, "skimage_s": _median(sk_times), "speedup": _median(sk_times) / _median(fp_times),
                     "same_peaks": not len(bad), "mismatched_maps": len(bad)})  # fmt: skip
    section = {"maps": settings.peak_maps, "joints": settings.peak_joints, "size": settings.peak_size,
               "scikit_image": version, "rows": rows}  # fmt: skip
    return section, problems


# EGL++


def egl_section(s: _Setting, settings: BenchSettings) -> dict[str, Any]:
    """EGL++ gradient-norm scores of a small pool: the fast torch.func path vs the reference's replica method."""
    from alpose_bench import loop
    from alpose_bench.samplers.egl import (
        EGLPP,
        egl_neighbours,
        egl_scores,
        egl_scores_replica,
        grad_param_names,
    )

    sampler = loop.make_sampler(s.spec, "egl") if "egl" in s.spec.sampler_params else EGLPP()
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


# -- the whole bench ----------------------------------------------------------------------------------------------


def run_bench(
    settings: BenchSettings,
    progress: Progress | None = None,
    on_section: Callable[[str, dict[str, Any]], None] | None = None,
) -> BenchReport:
    """Measure the selected sections, in order; `on_section(name, figures)` is called as each one finishes."""
    from alpose_bench import loop

    settings.validate()
    say = progress or (lambda _msg: None)
    sections = settings.sections
    if "samplers" in sections:
        # unknown names and bad --sampler-param values fail before anything is measured
        for name, cls in _resolve_samplers(settings):
            _make_sampler(settings.spec, name, cls)
    device = loop.resolve_device(settings.spec.device)
    model_sections = {"training", "inference", "samplers", "egl"} & set(sections)
    setting = None
    if model_sections:
        say("loading the dataset")
        setting = _setting(settings, needs_pool=bool(model_sections - {"training"}))
        device = setting.device
    report = BenchReport(
        machine=machine_info(device),
        settings={
            **{k: v for k, v in dataclasses.asdict(settings).items() if k not in ("spec", "samplers")},
            "samplers": None if settings.samplers is None else [n for n, _ in _resolve_samplers(settings)],
            "spec": settings.spec.to_dict(),
            "dataset": settings.spec.datasets[0],
            "model": {
                "stacks": settings.spec.stacks,
                "channels": settings.spec.channels,
                "depth": settings.spec.depth,
            },
        },
    )

    def done(name: str, figures: dict[str, Any]) -> None:
        report.sections[name] = figures
        if on_section is not None:
            on_section(name, figures)

    inference = None
    for name in sections:
        if name == "training":
            say("training throughput")
            done(name, training_section(setting, settings))
        elif name == "inference" or (name == "samplers" and inference is None):
            say("inference throughput")
            inference = inference_section(setting, settings)
            if name == "inference":
                done(name, inference)
        if name == "samplers":
            done(name, samplers_section(setting, settings, inference["seconds"], say))
        elif name == "coreset":
            done(name, coreset_section(settings, device, say))
        elif name == "peaks":
            figures, problems = peaks_section(settings, device, say)
            report.problems.extend(problems)
            done(name, figures)
        elif name == "egl":
            say("egl: fast vs reference gradient norms")
            try:
                done(name, egl_section(setting, settings))
            except ImportError as exc:
                done(name, {"skipped": f"the egl sampler does not import: {exc}"})
    report.machine["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return report
