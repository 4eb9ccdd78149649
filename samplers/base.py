"""The sampler contract.

A sampler is a dataclass whose fields are its hyper-parameters (reference values as defaults). It declares which
pool outputs it reads (`needs`) and which tasks it supports, may ask for an auxiliary head trained alongside the pose
model on detached features, and picks `budget` indices from the unlabelled pool.

Most samplers are score-and-rank: subclass `ScoringSampler` and implement `score_batch`, which sees one batch of the
single forward pass over the pool; higher scores are more informative and ties are broken by the lower pool index.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from torch import Tensor, nn

from alpose_bench.data import Task
from alpose_bench.models.outputs import ModelInfo, PoseOutput, TrainBatch

if TYPE_CHECKING:
    from alpose_bench.pool import ForwardBatch, SelectionContext

#: the pool outputs a sampler may declare in `needs`
KNOWN_NEEDS = frozenset({"heatmaps", "keypoints", "embedding", "aux", "model"})


class Sampler(ABC):
    """Base class of every sampler. Subclasses are dataclasses; their fields are the hyper-parameters."""

    name: ClassVar[str]
    description: ClassVar[str]
    needs: ClassVar[frozenset[str]] = frozenset()
    tasks: ClassVar[frozenset[Task]] = frozenset({"heatmap2d", "regression3d"})
    # True when the sampler can pick from an empty labelled set (Core-Set and EGL++ need labelled images)
    works_without_labelled: ClassVar[bool] = True

    def auxiliary(self, info: ModelInfo) -> nn.Module | None:
        """The head to train alongside the pose model on `PoseOutput.features` (detached), or None."""
        return None

    def auxiliary_loss(self, aux_out: Tensor, batch: TrainBatch, pose_out: PoseOutput) -> Tensor:
        """Loss of the auxiliary head on one training batch (only called when `auxiliary` returned a module)."""
        raise NotImplementedError(f"{type(self).__name__} has no auxiliary head")

    @abstractmethod
    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        """Return `min(budget, len(ctx.pool))` distinct positions into `ctx.pool` (not dataset indices)."""

    # -- helpers -------------------------------------------------------------------------------------------------

    @classmethod
    def unsupported_reason(cls, task: Task) -> str | None:
        """Why this sampler cannot run on a dataset of `task`, or None when it can."""
        if task not in cls.tasks:
            kinds = {"heatmap2d": "heatmap (2D)", "regression3d": "3D regression"}
            return (
                f"sampler {cls.name!r} needs a {' or '.join(kinds[t] for t in sorted(cls.tasks))} model, "
                f"and this dataset is a {kinds[task]} task"
            )
        return None

    @classmethod
    def params(cls) -> dict[str, object]:
        """Hyper-parameters and their defaults."""
        if not dataclasses.is_dataclass(cls):
            return {}
        return {
            f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            for f in dataclasses.fields(cls)
        }


def top_k(scores: np.ndarray, budget: int) -> np.ndarray:
    """Positions of the `budget` highest scores; ties go to the lower position. NaN scores rank last."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"scores must be one-dimensional, got shape {scores.shape}")
    keyed = np.where(np.isnan(scores), -np.inf, scores)
    order = np.lexsort(
        (np.arange(len(keyed)), -keyed)
    )  # primary: score descending; secondary: position ascending
    return order[: min(budget, len(keyed))].astype(np.int64)


class ScoringSampler(Sampler):
    """A sampler that scores every pool image in one forward pass and keeps the top `budget`."""

    @abstractmethod
    def score_batch(self, batch: ForwardBatch, ctx: SelectionContext) -> np.ndarray:
        """Informativeness of each image of the batch (higher = annotate first), shape (B,)."""

    def score(self, ctx: SelectionContext) -> np.ndarray:
        """Scores of the whole pool, in `ctx.pool` order."""
        parts = [np.asarray(self.score_batch(b, ctx), dtype=np.float64) for b in ctx.batches("pool")]
        return np.concatenate(parts) if parts else np.zeros(0)

    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        return top_k(self.score(ctx), budget)
