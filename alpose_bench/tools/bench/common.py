"""Shared machinery of the bench sections: settings, the report, the machine, timing, and the model + pool setting."""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from alpose_bench.core.compute import Compute, cpu_name, native_bf16
from alpose_bench.core.jsonio import report_dict, write_report_json
from alpose_bench.pose.data import PoseDataset
from alpose_bench.spec.config import ConfigError, ExperimentSpec

SECTIONS = ("training", "inference", "samplers", "footprint", "coreset", "peaks", "egl")

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
    egl_pool: int = 8
    slow_pool: int = 32  # pool of the samplers that differentiate the model per image (EGL++)
    footprint_frames: int = 32  # frames each sampler scores one at a time (batch 1) in the footprint section
    egl_train_steps: int = (
        100  # optimiser steps on the labelled images before the EGL++ comparison (a trained model)
    )
    levers: bool = False  # also time each speed lever alone (channels_last, fused Adam, bf16, torch.compile)
    seed: int = 0

    def validate(self) -> BenchSettings:
        unknown = [s for s in self.sections if s not in SECTIONS]
        if unknown or not self.sections:
            raise BenchError(
                f"unknown bench section(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
                f"choose from {', '.join(SECTIONS)}"
            )
        positive = dict(pool=self.pool, repeats=self.repeats, train_steps=self.train_steps, egl_pool=self.egl_pool,
                        slow_pool=self.slow_pool, footprint_frames=self.footprint_frames,
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
        """Plain JSON-ready values (NaN and infinities become None)."""
        return report_dict(self)

    def write_json(self, path: str | Path) -> Path:
        """Write `to_dict()` as JSON to `path` (parent folders are created)."""
        return write_report_json(self, path)


def machine_info(device: torch.device) -> dict[str, Any]:
    """The machine the figures were measured on."""
    try:
        import skimage

        skimage_version: str | None = skimage.__version__
    except ImportError:
        skimage_version = None
    return {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scikit_image": skimage_version,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "native_bf16": native_bf16(device),
        "clock": clock_name(device),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_clock(device: torch.device) -> Callable[[], float]:
    """The clock figures are read with: on the CPU the CPU time of this process (a shared machine's other work, or
    a stolen vCPU, does not inflate it; with several torch threads it sums them), on CUDA the wall clock."""
    return time.perf_counter if device.type == "cuda" else time.process_time


def clock_name(device: torch.device) -> str:
    """What `bench_clock` reads, in words (recorded with the figures)."""
    return "wall seconds (CUDA synchronised)" if device.type == "cuda" else "CPU seconds of the bench process"


def timed(
    fn: Callable[[], Any], device: torch.device, repeats: int, max_seconds: float
) -> tuple[list[float], Any]:
    """Seconds of up to `repeats` calls of `fn` (stopping once they add up to `max_seconds`), and the last call's
    result, read with `bench_clock` (CUDA work is synchronised before each reading)."""
    clock = bench_clock(device)
    times: list[float] = []
    result = None
    for _ in range(repeats):
        _sync(device)
        start = clock()
        result = fn()
        _sync(device)
        times.append(clock() - start)
        if sum(times) >= max_seconds:
            break
    return times, result


def _once(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds of one call of `fn`."""
    return timed(fn, device, 1, math.inf)[0][0]


def _median(times: Sequence[float]) -> float:
    return float(statistics.median(times))


@dataclass
class _Setting:
    """The data, the spec's model (built with the spec's `compute`) and the seeded labelled set, pool and rows."""

    spec: ExperimentSpec
    dataset: PoseDataset
    model: nn.Module
    compute: Compute
    labelled: np.ndarray
    pool: np.ndarray
    train_rows: np.ndarray
    seed: int

    @property
    def device(self) -> torch.device:
        """The device everything runs on."""
        return self.compute.device

    def model_for(self, compute: Compute) -> nn.Module:
        """A fresh model of the spec, seeded like `model`, for `compute` (to time other settings side by side),
        computing its backbone every pass: a feature cache is one of the project's speed settings."""
        import dataclasses

        from alpose_bench.engine import build

        spec = dataclasses.replace(build.protocol(self.spec).model, feature_cache=False)
        return build.new_model(spec, self.dataset, self.seed, compute)

    def context(
        self,
        aux: nn.Module | None = None,
        pool: np.ndarray | None = None,
        seed: int = 0,
        model: nn.Module | None = None,
        compute: Compute | None = None,
        sampler: object | None = None,
    ):
        """A selection context over the pool (or `pool`) with the setting's model (or `model` on `compute`), for
        `sampler` (which decides whether it may read labels)."""
        from alpose_bench.engine.build import protocol
        from alpose_bench.engine.train import model_codec
        from alpose_bench.pose.pool import SelectionContext

        model = self.model if model is None else model
        return SelectionContext(
            model=model, aux=aux, dataset=self.dataset, labelled=self.labelled,
            pool=self.pool if pool is None else pool, compute=self.compute if compute is None else compute,
            batch_size=self.spec.eval_batch_size, seed=seed, sampler=sampler,
            codec=model_codec(model, self.dataset, protocol(self.spec).first),
        )  # fmt: skip


def _setting(settings: BenchSettings, needs_pool: bool) -> _Setting:
    """The dataset (only the images needed), the spec's model and the seeded labelled set, pool and training rows."""
    from alpose_bench.core import seeds
    from alpose_bench.engine import build

    spec = settings.spec
    if len(spec.datasets) != 1:
        raise BenchError(
            f"bench measures one dataset at a time, got {', '.join(spec.datasets)}; pass one --dataset"
        )
    labelled_n = spec.init if settings.labelled is None else settings.labelled
    train_n = settings.train_steps * spec.batch_size
    wanted = max(labelled_n + settings.pool, train_n) if needs_pool else train_n
    # only the training pool is used: generate (synthetic) or keep (real datasets) just the images needed
    dataset = build.dataset_of(spec.replace(pool_size=wanted, test_size=16), spec.datasets[0])
    n = len(dataset.train)
    if needs_pool and labelled_n + settings.pool > n:
        raise BenchError(
            f"--pool {settings.pool} + {labelled_n} labelled images need {labelled_n + settings.pool} images, but "
            f"{dataset.name} has {n}; lower --pool or --labelled"
        )
    compute = build.compute_of(spec)
    order = np.random.default_rng(seeds.derive_seed("bench", settings.seed)).permutation(n)
    labelled = np.sort(order[:labelled_n]) if needs_pool else order[:0]
    pool = np.sort(order[labelled_n : labelled_n + settings.pool]) if needs_pool else order[:0]
    model = build.new_model(build.protocol(spec).model, dataset, settings.seed, compute)
    return _Setting(
        spec, dataset, model, compute, labelled, pool, np.sort(order[: min(train_n, n)]), settings.seed
    )


@dataclass
class BenchRun:
    """What every section reads: the settings, the device, the model + pool setting (None when no section needs
    one), the figures of the sections done so far, and a list for correctness problems."""

    settings: BenchSettings
    device: torch.device
    say: Progress
    setting: _Setting | None
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def model_setting(self) -> _Setting:
        """The model + pool setting (sections that need one are only run with one)."""
        assert self.setting is not None
        return self.setting
