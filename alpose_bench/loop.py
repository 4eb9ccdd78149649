"""One active-learning run: (dataset, sampler, seed) -> cycles of train, evaluate, score the pool, select, grow.

Cycle 0 (the initial labelled set, identical for every sampler with the same seed) is trained once per
(dataset, seed) by `train_shared_cycle0` together with the auxiliary heads of every sampler in the experiment, and
shared: heads read detached features, so the pose model is the same as if each sampler had trained it alone.
Each cycle's checkpoint is written before its record is committed, and the previous checkpoint is removed only after,
so a run killed at any point resumes from its last committed cycle and ends with the rows of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import os
import pickle
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from alpose_bench.config import ConfigError, ExperimentSpec, dataset_config
from alpose_bench.data import DatasetConfig, PoseDataset
from alpose_bench.models import ModelSpec, build_model, model_info
from alpose_bench.pool import SelectionContext
from alpose_bench.registry import get_dataset, get_sampler
from alpose_bench.samplers.base import Sampler, ScoringSampler, top_k
from alpose_bench.store import CycleRecord, StoreError
from alpose_bench.train import TrainSettings, evaluate_model, predict, train


class SamplerContractError(RuntimeError):
    """A sampler returned an invalid selection (duplicates, out of range, wrong count)."""


@dataclass(frozen=True)
class Task:
    dataset: str
    sampler: str
    seed: int

    def __str__(self) -> str:
        return f"{self.dataset}/{self.sampler}/seed{self.seed}"


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed from any parts (crc32 of their text: the same on every machine and Python run)."""
    return zlib.crc32("/".join(map(str, parts)).encode()) & 0x7FFFFFFF


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"--device {name} was asked for but no CUDA GPU is available; use --device cpu or auto"
        )
    device = torch.device(name)
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(
            f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s), numbered from 0"
        )
    return device


_LOADED: dict[tuple[str, str], PoseDataset] = {}


def load_dataset(name: str, config: DatasetConfig) -> PoseDataset:
    """Load one dataset (kept in memory for this process: the planner and the tasks share it)."""
    key = (name, repr(config))
    if key not in _LOADED:
        if len(_LOADED) >= 4:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = get_dataset(name)().load(config)
    return _LOADED[key]


def make_sampler(spec: ExperimentSpec, name: str) -> Sampler:
    from alpose_bench.config import PRESET_SAMPLER_PARAMS

    cls = get_sampler(name)
    params = {**PRESET_SAMPLER_PARAMS.get(spec.preset, {}).get(name, {}), **spec.sampler_params.get(name, {})}
    known = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    unknown = sorted(set(params) - known)
    if unknown:
        raise ConfigError(
            f"sampler {name!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters: {', '.join(sorted(known)) or 'none'}"
        )
    try:
        return cls(**params)
    except ValueError as exc:  # the sampler's own check of its parameters (__post_init__)
        raise ConfigError(f"sampler {name!r}: {exc}") from None
    except TypeError as exc:  # e.g. a string where the sampler compares a number
        given = ", ".join(f"{k}={v!r}" for k, v in params.items())
        raise ConfigError(
            f"sampler {name!r}: a parameter has the wrong type ({exc}); given: {given}"
        ) from None


def model_spec(spec: ExperimentSpec) -> ModelSpec:
    return ModelSpec(
        stacks=spec.stacks,
        channels=spec.channels,
        depth=spec.depth,
        stem_stride=spec.stem_stride,
        regressor_width=spec.regressor_width,
        regressor_fc=spec.regressor_fc,
    )


def new_model(spec: ExperimentSpec, dataset: PoseDataset, seed: int, device: torch.device) -> nn.Module:
    torch.manual_seed(derive_seed("model", seed))
    model = build_model(
        dataset.task, dataset.skeleton, dataset.resolution, dataset.channels, model_spec(spec)
    )
    return model.to(device)


def new_head(sampler: Sampler, model: nn.Module, seed: int, device: torch.device) -> nn.Module | None:
    torch.manual_seed(derive_seed("aux", sampler.name, seed))
    head = sampler.auxiliary(model_info(model))
    return None if head is None else head.to(device)


def train_settings(spec: ExperimentSpec, epochs: int) -> TrainSettings:
    from alpose_bench.augment import AugmentSettings

    return TrainSettings(
        epochs=epochs, lr=spec.lr, batch_size=spec.batch_size, weight_decay=spec.weight_decay, sigma=spec.sigma,
        amplitude=spec.amplitude, augment=AugmentSettings() if spec.augment else None,
    )  # fmt: skip


def initial_labelled(dataset: PoseDataset, spec: ExperimentSpec, seed: int) -> np.ndarray:
    """The initial labelled set: the same for every sampler with this seed.

    Datasets with a fixed initial set (LSP's 1,000 training images) give min(init, its size) of it, drawn at random,
    and the rest from the remaining pool, as the reference code does; others draw `init` uniformly.
    """
    rng = np.random.default_rng(derive_seed("init", seed))
    n = len(dataset.train)
    if spec.init > n:
        raise ConfigError(
            f"--init {spec.init} is larger than the pool of {dataset.name} ({n} images); lower --init"
        )
    if dataset.initial_index is None:
        return np.sort(rng.choice(n, size=spec.init, replace=False))
    fixed = np.asarray(dataset.initial_index, dtype=np.int64)
    take = rng.choice(fixed, size=min(spec.init, len(fixed)), replace=False)
    rest = np.setdiff1d(np.arange(n), fixed)
    extra = rng.choice(rest, size=spec.init - len(take), replace=False)
    return np.sort(np.concatenate([take, extra]))


def check_fits(dataset: PoseDataset, spec: ExperimentSpec) -> None:
    needed = spec.init + spec.cycles * spec.budget
    if needed > len(dataset.train):
        raise ConfigError(
            f"--init {spec.init} + --cycles {spec.cycles} x --budget {spec.budget} = {needed} images, but the pool of "
            f"{dataset.name} has {len(dataset.train)}; lower --budget or --cycles"
        )


# -- checkpoints -------------------------------------------------------------------------------------------------


def _save_atomic(obj: dict, path: Path) -> None:
    """Write a checkpoint through a temporary file and a rename, so `path` is never half-written.

    The checkpoint is serialised in memory first: torch.save reports a full disk as an obscure RuntimeError, a plain
    file write as OSError(ENOSPC). A full or read-only disk becomes a one-line StoreError and leaves no partial file.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(buffer.getvalue())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StoreError.disk_full(path) from None
        raise StoreError(
            f"cannot write checkpoint {path}: {exc.strerror or exc}; choose a writable folder with --out"
        ) from None


def _load(path: Path, fix: str) -> dict:
    """Load a checkpoint as plain tensors and containers only (weights_only=True: no code in it is ever run).

    A file that is not such a checkpoint (tampered with, or damaged) is a one-line StoreError ending with `fix`."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        reason = "it holds Python objects other than weights, which are never unpickled"
    except (RuntimeError, EOFError, ValueError) as exc:
        detail = str(exc).strip().split(". ")[0].splitlines()
        reason = f"damaged: {detail[0] if detail else type(exc).__name__}"
    raise StoreError(f"checkpoint {path} cannot be loaded ({reason}); {fix}")


RETRAIN_CYCLE0 = "delete it and rerun: cycle 0 is trained again"
RESTART_TASK = "rerun under another --name (the cycles committed here stay in results.sqlite)"


def cycle0_path(out_dir: Path, dataset: str, seed: int) -> Path:
    return out_dir / "checkpoints" / dataset / f"shared-seed{seed}" / "cycle0.pt"


def task_checkpoint(out_dir: Path, task: Task, cycle: int) -> Path:
    return out_dir / "checkpoints" / task.dataset / f"{task.sampler}-seed{task.seed}" / f"cycle{cycle}.pt"


def train_shared_cycle0(
    spec: ExperimentSpec,
    dataset_name: str,
    seed: int,
    samplers: list[str],
    out_dir: Path,
    device: torch.device,
) -> Path:
    """Train cycle 0 once for (dataset, seed) with every sampler's auxiliary head; save model, heads and metric."""
    path = cycle0_path(out_dir, dataset_name, seed)
    if path.exists():
        saved = _load(path, RETRAIN_CYCLE0)
        if set(saved["heads"]) >= {s for s in samplers if s in saved["has_head"]} and set(
            saved["samplers"]
        ) >= set(samplers):
            return path
    dataset = load_dataset(dataset_name, dataset_config(spec, dataset_name))
    model = new_model(spec, dataset, seed, device)
    heads: dict[str, tuple[nn.Module, Sampler]] = {}
    has_head = []
    for name in samplers:
        sampler = make_sampler(spec, name)
        head = new_head(sampler, model, seed, device)
        if head is not None:
            heads[name] = (head, sampler)
            has_head.append(name)
    rows = initial_labelled(dataset, spec, seed)
    stats = train(
        model,
        dataset,
        rows,
        train_settings(spec, spec.epochs_first),
        device=device,
        seed=derive_seed("train", seed, 0),
        heads=heads,
    )
    t0 = time.perf_counter()
    result = evaluate_model(model, dataset, device=device, batch_size=spec.eval_batch_size)
    eval_s = time.perf_counter() - t0
    _save_atomic(
        {
            "model": model.state_dict(),
            "heads": {n: h.state_dict() for n, (h, _) in heads.items()},
            "has_head": has_head,
            "samplers": list(samplers),
            "value": result.mean,
            "per_joint": result.per_joint.tolist(),
            "train_s": stats.seconds,
            "eval_s": eval_s,
        },
        path,
    )
    return path


# -- one task ----------------------------------------------------------------------------------------------------


def _validate_selection(positions: np.ndarray, pool_size: int, budget: int, sampler: str) -> np.ndarray:
    positions = np.asarray(positions)
    expected = min(budget, pool_size)
    if positions.ndim != 1 or not np.issubdtype(positions.dtype, np.integer):
        raise SamplerContractError(
            f"sampler {sampler!r} must return a 1-D integer array, got {positions.dtype}"
        )
    if len(positions) != expected:
        raise SamplerContractError(
            f"sampler {sampler!r} returned {len(positions)} images, expected {expected}"
        )
    if len(np.unique(positions)) != len(positions):
        raise SamplerContractError(f"sampler {sampler!r} returned duplicate images")
    if len(positions) and (positions.min() < 0 or positions.max() >= pool_size):
        raise SamplerContractError(f"sampler {sampler!r} returned positions outside the pool of {pool_size}")
    return positions.astype(np.int64)


def select_with_scores(
    sampler: Sampler, ctx: SelectionContext, budget: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Run the sampler; keep the scores of score-and-rank samplers for the record."""
    if isinstance(sampler, ScoringSampler) and type(sampler).select is ScoringSampler.select:
        scores = sampler.score(ctx)
        positions = top_k(scores, budget)
        return positions, scores[positions]
    return sampler.select(ctx, budget), None


def discard_old_checkpoints(out_dir: Path, task: Task, cycle: int, final: bool) -> None:
    """After cycle `cycle` is committed: its predecessor's checkpoint is no longer needed to resume (nor, once the
    task is complete, its own). Called by whoever commits the record, so a checkpoint outlives every uncommitted cycle."""
    task_checkpoint(out_dir, task, cycle - 1).unlink(missing_ok=True)
    if final:
        task_checkpoint(out_dir, task, cycle).unlink(missing_ok=True)


def run_task(
    spec: ExperimentSpec,
    task: Task,
    out_dir: Path,
    done: dict[int, np.ndarray],
    sink: Callable[[CycleRecord], None],
    device: torch.device,
    on_cycle: Callable[[int], None] | None = None,
) -> None:
    """Run (or resume after the committed cycles in `done`: cycle -> selected indices) one task to the end.

    Each cycle's record goes to `sink`, which must commit it and then call `discard_old_checkpoints`."""
    dataset = load_dataset(task.dataset, dataset_config(spec, task.dataset))
    sampler = make_sampler(spec, task.sampler)
    labelled = initial_labelled(dataset, spec, task.seed)
    for cycle in sorted(done):
        labelled = np.concatenate([labelled, done[cycle]])
    start_cycle = len(done)
    model = new_model(spec, dataset, task.seed, device)
    head = new_head(sampler, model, task.seed, device)
    for cycle in range(start_cycle, spec.cycles + 1):
        if cycle == 0:
            saved = _load(cycle0_path(out_dir, task.dataset, task.seed), RETRAIN_CYCLE0)
            model.load_state_dict(saved["model"])
            if head is not None:
                head.load_state_dict(saved["heads"][task.sampler])
            value, per_joint = saved["value"], np.asarray(saved["per_joint"], dtype=float)
            train_s, eval_s = saved["train_s"], saved["eval_s"]
        else:
            if spec.warm_start:
                saved = _load(task_checkpoint(out_dir, task, cycle - 1), RESTART_TASK)
                model.load_state_dict(saved["model"])
                if head is not None:
                    head.load_state_dict(saved["head"])
            else:
                model = new_model(spec, dataset, task.seed, device)
                head = new_head(sampler, model, task.seed, device)
            heads = {task.sampler: (head, sampler)} if head is not None else {}
            stats = train(
                model,
                dataset,
                labelled,
                train_settings(spec, spec.epochs),
                device=device,
                seed=derive_seed("train", task.seed, cycle, task.sampler),
                heads=heads,
            )
            train_s = stats.seconds
            t0 = time.perf_counter()
            result = evaluate_model(model, dataset, device=device, batch_size=spec.eval_batch_size)
            eval_s = time.perf_counter() - t0
            value, per_joint = result.mean, result.per_joint

        selected = np.zeros(0, dtype=np.int64)
        scores = None
        select_s = None
        arrays: dict[str, np.ndarray] = {}
        pool = np.setdiff1d(np.arange(len(dataset.train)), labelled)
        if cycle < spec.cycles:
            ctx = SelectionContext(
                model=model,
                aux=head,
                dataset=dataset,
                labelled=labelled,
                pool=pool,
                device=device,
                batch_size=spec.eval_batch_size,
                seed=derive_seed("select", task.seed, task.sampler),
                cycle=cycle,
            )
            t0 = time.perf_counter()
            positions, scores = select_with_scores(sampler, ctx, spec.budget)
            select_s = time.perf_counter() - t0
            positions = _validate_selection(positions, len(pool), spec.budget, task.sampler)
            selected = pool[positions]
            arrays["keypoints"] = predict(
                model,
                dataset.train.subset(selected),
                device=device,
                batch_size=spec.eval_batch_size,
                cube_mm=dataset.cube_mm,
            )
            for name, values in ctx.annotations.items():
                arrays[name] = np.asarray(values)[positions]

        ckpt = {
            "model": model.state_dict(),
            "head": None if head is None else head.state_dict(),
            "cycle": cycle,
        }
        _save_atomic(ckpt, task_checkpoint(out_dir, task, cycle))
        sink(
            CycleRecord(
                dataset=task.dataset, sampler=task.sampler, seed=task.seed, cycle=cycle, n_labelled=len(labelled),
                metric=dataset.metric, value=float(value),
                per_joint={j: (None if np.isnan(v) else float(v)) for j, v in zip(dataset.skeleton.joints, per_joint)},
                train_s=float(train_s), eval_s=float(eval_s), select_s=select_s,
                select_images=len(pool) if cycle < spec.cycles else 0, selected=selected, scores=scores,
                groups=dataset.train.group_ids[selected], arrays=arrays,
            )
        )  # fmt: skip
        labelled = np.concatenate([labelled, selected])
        if on_cycle is not None:
            on_cycle(cycle)
