"""Training the pose model (and any auxiliary heads samplers ask for) on the labelled set, and evaluating it.

One Adam optimiser with a parameter group for the pose model and one per auxiliary head, as the reference code does;
auxiliary heads read detached features, so they never change the pose model, and the pose model's trajectory is the
same with or without them (which lets cycle 0 be trained once and shared by every sampler). All randomness of a
training run (batch order, augmentation) comes from one generator seeded by the caller.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from alpose_bench.core import activity
from alpose_bench.core.compute import Compute, as_compute
from alpose_bench.core.timing import Timing, timed
from alpose_bench.pose.augment import AugmentSettings, augment_2d, augment_3d
from alpose_bench.pose.data import PoseDataset, PoseSplit
from alpose_bench.pose.evaluation import SplitScore, held_out_splits, split_scores
from alpose_bench.pose.heatmaps import (
    REFERENCE_AMPLITUDE,
    HeatmapCodec,
    decode_keypoints,
    pose_loss,
)
from alpose_bench.pose.metrics import MetricResult, evaluate
from alpose_bench.pose.models import model_info
from alpose_bench.pose.models.outputs import TrainBatch
from alpose_bench.samplers.base import SamplerContractError, sampler_code


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the cycle is not recorded."""


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    lr: float = 3e-4
    lr_schedule: str = "constant"  # or "one-cycle" (`lr_scheduler`)
    batch_size: int = 16
    head_lr: float | None = None  # the auxiliary heads' (None: lr)
    weight_decay: float = 0.0
    # the targets' Gaussian width (None: the reference's for the heatmap size) and peak height (`HeatmapCodec`)
    sigma: float | None = None
    amplitude: float = REFERENCE_AMPLITUDE
    augment: AugmentSettings | None = AugmentSettings()


@dataclass
class TrainStats:
    seconds: float
    steps: int
    images: int
    final_loss: float


def codec_of(dataset: PoseDataset, heatmap_size: int, settings: TrainSettings) -> HeatmapCodec:
    """The heatmap codec of a model with `heatmap_size` maps trained on `dataset` with `settings`."""
    reference = HeatmapCodec.reference(dataset.resolution, heatmap_size)
    sigma = reference.sigma if settings.sigma is None else settings.sigma
    return HeatmapCodec(dataset.resolution, heatmap_size, sigma, settings.amplitude)


def model_codec(model: nn.Module, dataset: PoseDataset, settings: TrainSettings) -> HeatmapCodec | None:
    """The codec `model` is trained with on `dataset` under `settings` (None for a model without heatmaps): what
    every selection context of a run, a diagnosis or a benchmark carries."""
    size = model_info(model).heatmap_size
    return None if size is None else codec_of(dataset, size, settings)


def make_batch(
    dataset: PoseDataset,
    rows: np.ndarray,
    compute: Compute | torch.device,
    heatmap_size: int | None,
    settings: TrainSettings,
    g: torch.Generator | None,
) -> TrainBatch:
    """Model-ready, optionally augmented batch of training-pool rows (targets in the model's coordinates)."""
    compute = as_compute(compute)
    device = compute.device
    split = dataset.train
    x = compute.model_input(torch.from_numpy(split.images[rows]))
    kp = torch.from_numpy(split.keypoints[rows]).to(device=device, dtype=torch.float32)
    vis = torch.from_numpy(split.visible[rows]).to(device=device, dtype=torch.float32)
    if dataset.task == "heatmap2d":
        if settings.augment is not None and g is not None:
            x, kp, vis = augment_2d(x, kp, vis, dataset.skeleton, settings.augment, g)
            x = compute.layout(x)  # the warp returns contiguous tensors
        hm_kp, target = codec_of(dataset, heatmap_size, settings).encode(kp, vis)
        return TrainBatch(images=x, keypoints=hm_kp, visible=vis, heatmaps=target, skeleton=dataset.skeleton)
    if settings.augment is not None and g is not None:
        x, kp, vis = augment_3d(x, kp, vis, dataset.cube_mm, settings.augment, g)
        x = compute.layout(x)
    return TrainBatch(
        images=x, keypoints=kp / dataset.cube_mm, visible=vis, heatmaps=None, skeleton=dataset.skeleton
    )


def lr_scheduler(
    opt: torch.optim.Optimizer, schedule: str, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The per-step learning-rate schedule of one training run: None for "constant"; "one-cycle": torch's
    OneCycleLR peaking at each parameter group's lr (30 % warm-up, cosine annealing, Adam's beta1 cycled)."""
    if schedule == "constant" or total_steps < 2:
        return None
    if schedule == "one-cycle":
        peaks = [group["lr"] for group in opt.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=peaks, total_steps=total_steps)
    raise ValueError(f"unknown lr_schedule {schedule!r}; expected 'constant' or 'one-cycle'")


def train(
    model: nn.Module,
    dataset: PoseDataset,
    rows: np.ndarray,
    settings: TrainSettings,
    *,
    compute: Compute | torch.device,
    seed: int,
    heads: dict[str, tuple[nn.Module, object]] | None = None,
) -> TrainStats:
    """Train `model` (and `heads`: name -> (aux module, sampler)) for `settings.epochs` epochs on train rows `rows`.

    The model and heads are expected on `compute`'s device and in its memory format (`Compute.prepare`)."""
    compute = as_compute(compute)
    heads = heads or {}
    g = torch.Generator().manual_seed(seed)
    heatmap_size = model_info(model).heatmap_size
    groups = [{"params": list(model.parameters())}]
    head_lr = {} if settings.head_lr is None else {"lr": settings.head_lr}
    groups += [{"params": list(head.parameters()), **head_lr} for head, _ in heads.values()]
    opt = compute.optimizer(groups, settings.lr, settings.weight_decay)
    model.train()
    for head, _ in heads.values():
        head.train()
    rows = np.asarray(rows, dtype=np.int64)
    bs = min(settings.batch_size, len(rows))
    steps_per_epoch = max(1, len(rows) // bs)  # drop_last, as the reference
    schedule = lr_scheduler(opt, settings.lr_schedule, settings.epochs * steps_per_epoch)
    start, steps, last = time.perf_counter(), 0, float("nan")
    with activity.phase("training", total=settings.epochs * steps_per_epoch, unit="steps"):
        for _ in range(settings.epochs):
            order = rows[torch.randperm(len(rows), generator=g).numpy()]
            for step in range(steps_per_epoch):
                batch = make_batch(
                    dataset, order[step * bs : (step + 1) * bs], compute, heatmap_size, settings, g
                )
                with compute.autocast():
                    out = model(batch.images)
                    loss = pose_loss(out, batch)
                    total = loss
                    for name, (head, sampler) in heads.items():
                        with sampler_code(name, "its auxiliary head or loss"):
                            aux_loss = sampler.auxiliary_loss(head(out.features), batch, out)
                        if not torch.isfinite(aux_loss):
                            raise SamplerContractError(
                                f"sampler {name!r}: its auxiliary loss became {aux_loss.item()}", name
                            )
                        total = total + aux_loss
                if not torch.isfinite(loss):
                    raise TrainingDivergedError(f"pose loss became {loss.item()} at step {steps}; lower --lr")
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
                if schedule is not None:
                    schedule.step()
                steps += 1
                activity.advance()
            last = float(loss.detach())
    return TrainStats(seconds=time.perf_counter() - start, steps=steps, images=steps * bs, final_loss=last)


@torch.no_grad()
def predict(
    model: nn.Module,
    split: PoseSplit,
    *,
    compute: Compute | torch.device,
    batch_size: int = 64,
    cube_mm: float = 1.0,
) -> np.ndarray:
    """Keypoints of every image of `split` in the split's units: image pixels (2D) or millimetres (3D)."""
    compute = as_compute(compute)
    model.eval()
    parts: list[Tensor] = []
    for start in range(0, len(split), batch_size):
        x = compute.model_input(torch.from_numpy(split.images[start : start + batch_size]))
        with compute.autocast():
            out = model(x)
        kp = decode_keypoints(out, input_size=x.shape[-1]).float()
        parts.append(kp if out.heatmaps is not None else kp * cube_mm)
    if not parts:
        return np.zeros((0,) + split.keypoints.shape[1:], dtype=np.float32)
    return torch.cat(parts).cpu().numpy()


def _checked(result: MetricResult, dataset: PoseDataset) -> MetricResult:
    if not math.isfinite(result.mean):
        raise TrainingDivergedError(f"the {dataset.metric} of the trained model is {result.mean}")
    return result


def evaluate_splits(
    model: nn.Module, dataset: PoseDataset, *, compute: Compute | torch.device, batch_size: int = 64
) -> tuple[MetricResult, list[SplitScore]]:
    """The test metric (per joint) and the scores of every held-out split, overall and per pose mode
    (`alpose_bench.pose.evaluation`); one prediction pass per split."""
    scores: list[SplitScore] = []
    result: MetricResult | None = None
    for name, split in held_out_splits(dataset).items():
        pred = predict(model, split, compute=compute, batch_size=batch_size, cube_mm=dataset.cube_mm)
        if name == "test":
            result = _checked(evaluate(
                dataset.metric, pred, split.keypoints, split.visible.astype(bool), split.normalizer,
                dataset.skeleton,
            ), dataset)  # fmt: skip
        scores.extend(split_scores(dataset, name, split, pred))
    if result is None:
        raise ValueError(f"dataset {dataset.name!r} has an empty test split; nothing to evaluate on")
    return result, scores


@dataclass
class CycleResult:
    """One cycle's training and evaluation: the test metric, per joint, and the time each phase took."""

    result: MetricResult
    train: Timing
    evaluate: Timing
    scores: list[SplitScore]  # every held-out split, overall and per pose mode


def train_and_evaluate(
    model: nn.Module,
    dataset: PoseDataset,
    rows: np.ndarray,
    settings: TrainSettings,
    *,
    compute: Compute | torch.device,
    seed: int,
    heads: dict[str, tuple[nn.Module, object]] | None = None,
    eval_batch_size: int = 64,
) -> CycleResult:
    """Train on train rows `rows` (with `heads`), then evaluate on the test split: the recipe of every cycle."""
    with timed() as train_time:
        train(model, dataset, rows, settings, compute=compute, seed=seed, heads=heads)
    with timed() as eval_time, activity.phase("evaluating"):
        result, scores = evaluate_splits(model, dataset, compute=compute, batch_size=eval_batch_size)
    return CycleResult(result=result, train=train_time, evaluate=eval_time, scores=scores)
