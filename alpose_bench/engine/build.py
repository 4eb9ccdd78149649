"""From an experiment spec to the objects a task runs on: device, dataset, sampler, protocol, model and heads.

Like baal's experiment loop, `loop.run_task` receives resolved objects (`TaskSetup`) and reads nothing else; the
planner, the executors' workers, `diagnose` and `bench` all build through these functions, so each object is made
one way. Every random draw comes from `alpose_bench.core.seeds`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from alpose_bench.core import activity, seeds
from alpose_bench.core.activity import task_label
from alpose_bench.core.compute import Compute, as_compute, resolve_precision
from alpose_bench.engine.train import TrainSettings
from alpose_bench.pose.augment import FLIPS_ONLY, AugmentSettings
from alpose_bench.pose.data import DatasetConfig, PoseDataset, default_cache_dir
from alpose_bench.pose.models import ModelSpec, build_model, model_info
from alpose_bench.pose.models.feature_cache import KEY_SCHEME, FeatureCache, images_digest
from alpose_bench.pose.models.feature_cache import build as build_feature_cache
from alpose_bench.samplers.base import Sampler, sampler_code
from alpose_bench.samplers.factory import create_sampler
from alpose_bench.spec.config import ConfigError, ExperimentSpec, dataset_config, trained_cycles
from alpose_bench.spec.stream import StreamProtocol, stream_of


@dataclass(frozen=True)
class Task:
    """One run of the protocol: a sampler on a dataset with a seed."""

    dataset: str
    sampler: str
    seed: int

    def __str__(self) -> str:
        return task_label(self.dataset, self.sampler, self.seed)


def resolve_device(name: str) -> torch.device:
    """`auto` (CUDA when there is a GPU), `cpu`, `cuda` or `cuda:N`; a one-line ConfigError for a missing GPU."""
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
    from alpose_bench.spec.registry import get_dataset

    key = (name, repr(config))
    if key not in _LOADED:
        if len(_LOADED) >= 4:
            _LOADED.pop(next(iter(_LOADED)))
        with activity.phase(f"preparing dataset {name}"):
            _LOADED[key] = get_dataset(name)().load(config)
    return _LOADED[key]


def dataset_of(spec: ExperimentSpec, name: str) -> PoseDataset:
    """The dataset `name` as `spec` asks for it (resolution, sizes, data root, options)."""
    return load_dataset(name, dataset_config(spec, name))


def compute_of(spec: ExperimentSpec, device: torch.device | None = None) -> Compute:
    """How the spec's models compute on `device` (default: the spec's): precision ("auto" resolved), memory format
    and optimiser kernel (`alpose_bench.core.compute`)."""
    device = resolve_device(spec.device) if device is None else device
    return Compute(
        device=device,
        precision=resolve_precision(spec.precision, device),
        channels_last=spec.fast_kernels,
        fused_optimizer=spec.fast_kernels,
    )


def resolve_samplers(
    names: Sequence[str], task: str | None = None, model: ModelSpec | None = None
) -> tuple[list[str], dict[str, str]]:
    """The one road from sampler names to registered ones: (names, skipped) where `names` is a group ("default",
    "all": its installed members, those that cannot run on `task` with `model` left out and returned in `skipped`
    with the reason) or a list of names in any spelling (`VL4Pose`, `learning-loss`; one that cannot run on `task`
    is a ConfigError). Run planning, `diagnose` and `bench` all resolve through it."""
    from alpose_bench.spec.config import SAMPLER_GROUPS
    from alpose_bench.spec.registry import get_sampler, group_members, sampler_key

    names = list(names)
    if any(n in SAMPLER_GROUPS for n in names) and len(names) > 1:
        raise ConfigError(
            f"use either {' or '.join(map(repr, SAMPLER_GROUPS))} or a list of sampler names, not both"
        )
    skipped: dict[str, str] = {}
    if len(names) == 1 and names[0] in SAMPLER_GROUPS:
        resolved = []
        for name in group_members(names[0]):
            reason = None if task is None else get_sampler(name).unsupported_reason(task, model)  # type: ignore[arg-type]
            if reason:
                skipped[name] = reason
            else:
                resolved.append(name)
        return resolved, skipped
    resolved = list(dict.fromkeys(sampler_key(n) for n in names))  # unknown names: the known ones listed
    for name in resolved:
        reason = None if task is None else get_sampler(name).unsupported_reason(task, model)  # type: ignore[arg-type]
        if reason:
            raise ConfigError(f"{reason}; drop {name!r} from --samplers")
    return resolved, skipped


def make_sampler(spec: ExperimentSpec, name: str) -> Sampler:
    """The sampler `name` with the spec's preset and parameters (`create_sampler`)."""
    return create_sampler(name, spec.sampler_params.get(name), spec.preset)


@dataclass(frozen=True)
class Protocol:
    """The active-learning protocol of a spec: budgets, schedule, training, model architecture, evaluation."""

    init: int
    budget: int
    cycles: int
    warm_start: bool
    first: TrainSettings  # cycle 0, from scratch
    later: TrainSettings  # every later cycle
    model: ModelSpec
    eval_batch_size: int
    stream: StreamProtocol | None = None  # None: the pool protocol (rank the whole pool each cycle)

    def selects(self, cycle: int) -> bool:
        """True for every cycle but the last, which trains and evaluates only (`config.trained_cycles`)."""
        return cycle < trained_cycles(self.cycles) - 1


def train_settings(spec: ExperimentSpec, epochs: int) -> TrainSettings:
    """Training settings of the spec for a run of `epochs` epochs (a model reading cached backbone features
    trains on flips only: a rotated or rescaled image is not in the cache)."""
    augment = (
        (FLIPS_ONLY if model_spec(spec).caches_features else AugmentSettings()) if spec.augment else None
    )
    return TrainSettings(
        epochs=epochs, lr=spec.lr, lr_schedule=spec.lr_schedule, head_lr=spec.head_lr, batch_size=spec.batch_size, weight_decay=spec.weight_decay, sigma=spec.sigma,
        amplitude=spec.amplitude, augment=augment,
    )  # fmt: skip


def model_spec(spec: ExperimentSpec) -> ModelSpec:
    """The spec's pose model."""
    return ModelSpec(
        stacks=spec.stacks, channels=spec.channels, depth=spec.depth, stem_stride=spec.stem_stride,
        regressor_width=spec.regressor_width, regressor_fc=spec.regressor_fc, dropout=spec.dropout,
        dropout_kind=spec.dropout_kind,
        family=spec.model, backbone_weights=spec.backbone_weights, trainable_blocks=spec.trainable_blocks,
        feature_cache=spec.feature_cache,
    )  # fmt: skip


def protocol(spec: ExperimentSpec) -> Protocol:
    """The spec's protocol."""
    return Protocol(
        init=spec.init, budget=spec.budget, cycles=spec.cycles, warm_start=spec.warm_start,
        first=train_settings(spec, spec.epochs_first), later=train_settings(spec, spec.epochs),
        model=model_spec(spec),
        eval_batch_size=spec.eval_batch_size, stream=stream_protocol(spec),
    )  # fmt: skip


def stream_protocol(spec: ExperimentSpec) -> StreamProtocol | None:
    """The spec's stream settings (None under the pool protocol); chunk and rate resolve against the pool."""
    return stream_of(spec.to_dict())


def new_model(spec: ModelSpec, dataset: PoseDataset, seed: int, compute: Compute | torch.device) -> nn.Module:
    """The pose model of `dataset`, initialised from the seed's model stream, on `compute`'s device and layout."""
    torch.manual_seed(seeds.model_seed(seed))
    model = build_model(dataset.task, dataset.skeleton, dataset.resolution, dataset.channels, spec)
    model = as_compute(compute).prepare(model)
    if spec.caches_features and dataset.task == "heatmap2d":
        model.attach(feature_cache(model, dataset, as_compute(compute)))
    return model


def feature_cache(
    model: nn.Module, dataset: PoseDataset, compute: Compute, folder: Path | None = None
) -> FeatureCache:
    """The frozen backbone's outputs for every image of `dataset` (and its mirror), built on first use (with a
    progress phase) in the dataset cache folder and shared by every experiment, seed and sampler after. The file
    is named by what its rows depend on: the images, the weights, the input size and how the backbone computes.
    `folder`: where the file goes (default: `features/` in the dataset cache folder)."""
    splits = [dataset.train, dataset.test, *([dataset.ood] if dataset.ood is not None else [])]
    digest = dataset.info.get("images_digest")
    if digest is None:
        digest = dataset.info["images_digest"] = images_digest([s.images for s in splits])
    key = (
        f"{digest}-{model.spec.weights.sha256[:16]}-{dataset.resolution}-{compute.precision}-{compute.channels_last}"
        f"-{KEY_SCHEME}"
    )
    name = f"{dataset.name}-{hashlib.blake2b(key.encode(), digest_size=8).hexdigest()}.npy"
    path = (default_cache_dir() / "features" if folder is None else folder) / name
    shapes = model.tap_shapes()
    if not path.exists():
        count = sum(len(s) for s in splits)
        batch = 32

        def batches():
            for split in splits:
                for start in range(0, len(split), batch):
                    yield compute.model_input(torch.from_numpy(split.images[start : start + batch]))

        was_training = model.training
        model.eval()  # ImageNet's batch statistics, no dropout
        try:
            with activity.phase(f"caching backbone features of {dataset.name}", total=count, unit="images"):
                path.parent.mkdir(parents=True, exist_ok=True)
                build_feature_cache(
                    path, batches, count, model.backbone_taps, shapes, compute.autocast, activity.advance
                )
        finally:
            model.train(was_training)  # a cold cache returns the model as a warm one does
    return FeatureCache(path, shapes)


def new_head(
    sampler: Sampler, model: nn.Module, seed: int, compute: Compute | torch.device
) -> nn.Module | None:
    """The sampler's auxiliary head on `model` (None if it has none), initialised from its own stream."""
    torch.manual_seed(seeds.head_seed(sampler.stream_name(), seed))
    with sampler_code(sampler.name, "auxiliary"):
        head = sampler.auxiliary(model_info(model))
    return None if head is None else as_compute(compute).prepare(head)


def initial_labelled(dataset: PoseDataset, init: int, seed: int) -> np.ndarray:
    """The initial labelled set: the same for every sampler with this seed.

    Datasets with a fixed initial set (LSP's 1,000 training images) give min(init, its size) of it, drawn at random,
    and the rest from the remaining pool, as the reference code does; others draw `init` uniformly.
    """
    rng = np.random.default_rng(seeds.init_seed(seed))
    n = len(dataset.train)
    if init > n:
        raise ConfigError(
            f"--init {init} is larger than the pool of {dataset.name} ({n} images); lower --init"
        )
    if dataset.initial_index is None:
        return np.sort(rng.choice(n, size=init, replace=False))
    fixed = np.asarray(dataset.initial_index, dtype=np.int64)
    take = rng.choice(fixed, size=min(init, len(fixed)), replace=False)
    rest = np.setdiff1d(np.arange(n), fixed)
    extra = rng.choice(rest, size=init - len(take), replace=False)
    return np.sort(np.concatenate([take, extra]))


def check_model_fits(dataset: PoseDataset, spec: ExperimentSpec) -> None:
    """A one-line ConfigError when the spec's model cannot predict the dataset's task (a 2D model on a 3D one)."""
    if spec.model != "hourglass" and dataset.task != "heatmap2d":
        raise ConfigError(
            f"the {spec.model} model predicts 2D heatmaps and {dataset.name} is a {dataset.task} dataset; drop "
            "--model for it (its 3D regressor is used)"
        )


def check_fits(dataset: PoseDataset, spec: ExperimentSpec) -> None:
    """A one-line ConfigError when the protocol asks for more images than the pool holds, or for a model the
    dataset's task has none of (`check_model_fits`)."""
    check_model_fits(dataset, spec)
    if spec.protocol == "stream":
        check_stream_fits(dataset, spec)
        return
    needed = spec.init + spec.cycles * spec.budget
    if needed > len(dataset.train):
        raise ConfigError(
            f"--init {spec.init} + --cycles {spec.cycles} x --budget {spec.budget} = {needed} images, but the pool of "
            f"{dataset.name} has {len(dataset.train)}; lower --budget or --cycles"
        )


def check_stream_fits(dataset: PoseDataset, spec: ExperimentSpec) -> None:
    """One-line ConfigErrors for a stream the pool cannot feed, a label rate above one label per frame, or a budget
    manager no plugin provides."""
    from alpose_bench.engine.budget import BudgetManager
    from alpose_bench.spec.registry import UnknownNameError, get_budget_manager

    try:
        manager = get_budget_manager(spec.budget_manager)
    except UnknownNameError as exc:
        raise ConfigError(f"--budget-manager: {exc}") from None
    if not (isinstance(manager, type) and issubclass(manager, BudgetManager)):
        raise ConfigError(
            f"budget manager {spec.budget_manager!r} is not a BudgetManager subclass "
            "(alpose_bench.engine.budget.BudgetManager); fix the plugin's entry point"
        )
    resolved = stream_of(spec.to_dict(), len(dataset.train))
    assert resolved is not None
    frames = spec.init + spec.cycles * resolved.chunk_size
    if frames > len(dataset.train):
        raise ConfigError(
            f"--init {spec.init} + --cycles {spec.cycles} x --stream-chunk {resolved.chunk_size} = {frames} frames, "
            f"but the pool of {dataset.name} has {len(dataset.train)}; lower --stream-chunk or --cycles"
        )
    if resolved.label_rate > 1:
        raise ConfigError(
            f"--budget {spec.budget} labels per chunk of {resolved.chunk_size} frames is more than one label per "
            "frame; lower --budget, or raise --stream-chunk (or --pool-size)"
        )
    if resolved.label_rate * resolved.chunk_size < 1:
        raise ConfigError(
            f"--label-rate {resolved.label_rate:g} over chunks of {resolved.chunk_size} frames allows no label per "
            "chunk; raise --label-rate or --stream-chunk"
        )


@dataclass(frozen=True)
class TaskSetup:
    """Everything one task runs on, resolved: `loop.run_task` reads nothing else."""

    task: Task
    dataset: PoseDataset
    sampler: Sampler
    compute: Compute
    protocol: Protocol

    def new_model(self) -> nn.Module:
        """A freshly initialised pose model for this task's seed."""
        return new_model(self.protocol.model, self.dataset, self.task.seed, self.compute)

    def new_head(self, model: nn.Module) -> nn.Module | None:
        """A freshly initialised auxiliary head of the sampler (None if it has none)."""
        return new_head(self.sampler, model, self.task.seed, self.compute)

    def initial_labelled(self) -> np.ndarray:
        """The initial labelled set of this task's seed."""
        return initial_labelled(self.dataset, self.protocol.init, self.task.seed)


def task_setup(spec: ExperimentSpec, task: Task) -> TaskSetup:
    """Resolve one task of `spec`."""
    return TaskSetup(
        task=task,
        dataset=dataset_of(spec, task.dataset),
        sampler=make_sampler(spec, task.sampler),
        compute=compute_of(spec),
        protocol=protocol(spec),
    )


@dataclass(frozen=True)
class Cycle0Setup:
    """The shared cycle-0 training of one (dataset, seed): the pose model with every sampler's auxiliary head."""

    dataset_name: str
    seed: int
    dataset: PoseDataset
    samplers: tuple[Sampler, ...]
    compute: Compute
    protocol: Protocol


def cycle0_setup(spec: ExperimentSpec, dataset: str, seed: int, samplers: list[str]) -> Cycle0Setup:
    """Resolve the shared cycle 0 of (dataset, seed) for the samplers of `spec`."""
    return Cycle0Setup(
        dataset_name=dataset,
        seed=seed,
        dataset=dataset_of(spec, dataset),
        samplers=tuple(make_sampler(spec, s) for s in samplers),
        compute=compute_of(spec),
        protocol=protocol(spec),
    )
