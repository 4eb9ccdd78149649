"""The sampler contract.

A sampler is a dataclass whose fields are its hyper-parameters (reference values as defaults, ranges declared with
`alpose_bench.core.validation.param`). Its class variables are everything the benchmark knows about it, in one place:
which pool outputs it reads (`needs`), which tasks it supports, its display `label`, its selection-overhead target
(`overhead_target`, checked by `alpose-bench bench`), the parameters a preset sets (`preset_params`) and whether it
is a `reference` that reads the pool's labels (an oracle, never ranked among the samplers).

`select` returns `min(budget, len(ctx.pool))` distinct positions into `ctx.pool`, either as an integer array or as
a `Selection` that also carries the score of each pick; the loop records whatever comes back. `score(ctx,
positions)` gives per-image scores where a sampler has them (higher = annotate first) and None where it selects
without one (random, Core-Set). Most samplers are score-and-rank: subclass `ScoringSampler` and implement
`score_batch`, which sees one batch of the single forward pass over the pool; ties go to the lower pool position.
"""

from __future__ import annotations

import contextlib
import dataclasses
import traceback
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from torch import Tensor, nn

from alpose_bench.core.validation import check_instance
from alpose_bench.pose.data import Task
from alpose_bench.pose.models import ModelSpec
from alpose_bench.pose.models.outputs import ModelInfo, PoseOutput, TrainBatch

if TYPE_CHECKING:
    from alpose_bench.pose.pool import ForwardBatch, SelectionContext

#: the pool outputs a sampler may declare in `needs` ("labels": the pool's ground truth, references only;
#: "mc_dropout": keypoints of stochastic passes with dropout on, `SelectionContext.mc_keypoints`)
KNOWN_NEEDS = frozenset({"heatmaps", "keypoints", "embedding", "aux", "model", "labels", "mc_dropout"})


@dataclass(frozen=True)
class Selection:
    """What `select` may return: positions into `ctx.pool` in pick order and, optionally, the score of each pick."""

    positions: np.ndarray
    scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.scores is not None and np.shape(self.scores) != np.shape(self.positions):
            raise ValueError(
                f"Selection.scores has shape {np.shape(self.scores)}, positions {np.shape(self.positions)}; "
                "give one score per selected position"
            )


class SamplerContractError(RuntimeError):
    """A sampler broke its contract (a selection of the wrong size, duplicates, scores of the wrong shape or all
    NaN), or raised: the task fails, naming the sampler; the other tasks go on. `sampler` names it where known."""

    def __init__(self, message: str, sampler: str | None = None) -> None:
        super().__init__(message)
        self.sampler = sampler


@contextlib.contextmanager
def sampler_code(sampler: str, what: str) -> Iterator[None]:
    """Within the block, an exception (or SystemExit) raised by a sampler's own code becomes a one-line
    SamplerContractError naming the sampler, the call and where it was raised."""
    try:
        yield
    except SamplerContractError:
        raise
    except (Exception, SystemExit) as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
        detail = str(exc).strip().splitlines()
        raise SamplerContractError(
            f"sampler {sampler!r} raised {type(exc).__name__} in {what}{where}"
            + (f": {detail[0]}" if detail else ""),
            sampler,
        ) from exc


def as_selection(result: np.ndarray | Selection) -> Selection:
    """A `select` result as a Selection (an array becomes a Selection without scores)."""
    return result if isinstance(result, Selection) else Selection(np.asarray(result))


class Sampler(ABC):
    """Base class of every sampler. Subclasses are dataclasses; their fields are the hyper-parameters."""

    name: ClassVar[str]
    description: ClassVar[str]
    #: the name readers know from the papers (figures and tables); defaults to `name`
    label: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset()
    tasks: ClassVar[frozenset[Task]] = frozenset({"heatmap2d", "regression3d"})
    # True when the sampler can pick from an empty labelled set (Core-Set and EGL++ need labelled images)
    works_without_labelled: ClassVar[bool] = True
    #: selection time / one plain inference pass over the same pool that `alpose-bench bench` holds it to (None: none)
    overhead_target: ClassVar[float | None] = None
    #: preset name -> parameters that preset sets unless the user sets them (e.g. EGL++'s candidate cap on the CPU)
    preset_params: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    #: True for reference samplers that read the pool's labels (oracles): shown apart, never ranked
    reference: ClassVar[bool] = False
    #: what a reference seeks ("hard": the images the model gets most wrong; "easy": most right); the pair tells
    #: which regime an experiment is in (`analysis.regime`)
    seeks: ClassVar[Literal["hard", "easy"] | None] = None
    #: True for the baseline every other sampler is compared with (random)
    baseline: ClassVar[bool] = False
    #: the sampler's colour and marker in every figure (None: a stable pick from its name, never a built-in's)
    colour: ClassVar[str | None] = None
    marker: ClassVar[str | None] = None
    #: reading order in tables, legends and groups (the papers' order for built-ins; plugins after them, A-Z)
    order: ClassVar[int] = 1000
    #: the named sampler groups it belongs to (`--samplers default`; "all" holds every sampler)
    groups: ClassVar[frozenset[str]] = frozenset()
    #: whether a device watching a stream can decide on each frame alone, as it arrives (True), or must buffer
    #: frames and select among them (False: Core-Set, TypiClust, the GCNs, EGL++, composites); None: True exactly
    #: for the baseline and for samplers with per-image scores (`decides_per_frame`)
    per_frame: ClassVar[bool | None] = None
    #: names it was registered under before, oldest first: accepted wherever a name is, adopted by a stored
    #: experiment when it next runs, and the first one keeps naming its random streams (`stream_name`)
    former_names: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        """Check every hyper-parameter against its annotation and range (also on direct construction)."""
        check_instance(self, type(self).name)

    @classmethod
    def display_name(cls) -> str:
        """`label`, or `name` when the sampler sets none."""
        return cls.label or cls.name

    @classmethod
    def decides_per_frame(cls) -> bool:
        """True when the sampler can decide on one frame at a time (see `per_frame`)."""
        if cls.per_frame is not None:
            return cls.per_frame
        return cls.baseline or cls.score is not Sampler.score

    @classmethod
    def stream_name(cls) -> str:
        """The name its random streams derive from (head initialisation, training order, tie-breaks): its first
        name, so that renaming a sampler changes none of its selections or results."""
        return cls.former_names[0] if cls.former_names else cls.name

    def auxiliary(self, info: ModelInfo) -> nn.Module | None:
        """The head to train alongside the pose model on `PoseOutput.features` (detached), or None."""
        return None

    def auxiliary_loss(self, aux_out: Tensor, batch: TrainBatch, pose_out: PoseOutput) -> Tensor:
        """Loss of the auxiliary head on one training batch (only called when `auxiliary` returned a module)."""
        raise NotImplementedError(f"{type(self).__name__} has no auxiliary head")

    @abstractmethod
    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray | Selection:
        """`min(budget, len(ctx.pool))` distinct positions into `ctx.pool` (not dataset indices), or a Selection."""

    def score(self, ctx: SelectionContext, positions: np.ndarray | None = None) -> np.ndarray | None:
        """Per-image scores (float64, one per position of `ctx.pool`, all of them when `positions` is None; higher =
        annotate first), or None for a sampler that selects without per-image scores."""
        return None

    def reasons(self, ctx: SelectionContext, positions: np.ndarray) -> list[str] | None:
        """Why each pool image at `positions` scores as it does, one short phrase each (VL4Pose: its least likely
        limb), read from what the scoring pass recorded when `ctx.explain` was set; None when the score is all
        there is to say. `alpose-bench suggest` prints these beside its ranking."""
        return None

    def refinement_variant(self) -> Sampler | None:
        """A variant of this sampler whose scoring pass also records refined poses (`ctx.annotations
        ["refined_keypoints"]`) where this one does not (`alpose-bench diagnose` measures the refinement with it);
        None when there is none, or when this sampler records them already."""
        return None

    # -- helpers -------------------------------------------------------------------------------------------------

    @classmethod
    def unsupported_reason(cls, task: Task, model: ModelSpec | None = None) -> str | None:
        """Why this sampler cannot run on a dataset of `task` (with pose model `model`, when given), or None when it
        can. Override to add a requirement on the model (MC dropout needs dropout in it)."""
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


def select_top(scores: np.ndarray, budget: int) -> Selection:
    """The `budget` highest-scoring positions with their scores (ties to the lower position)."""
    scores = np.asarray(scores, dtype=np.float64)
    positions = top_k(scores, budget)
    return Selection(positions, scores[positions])


class ScoringSampler(Sampler):
    """A sampler that scores every pool image in one forward pass and keeps the top `budget`."""

    @abstractmethod
    def score_batch(self, batch: ForwardBatch, ctx: SelectionContext) -> np.ndarray:
        """Informativeness of each image of the batch (higher = annotate first), shape (B,)."""

    def score(self, ctx: SelectionContext, positions: np.ndarray | None = None) -> np.ndarray:
        """Scores of the pool (or of `positions` into it), in that order."""
        parts = []
        for b in ctx.batches("pool", positions):
            scores = np.asarray(self.score_batch(b, ctx), dtype=np.float64)
            if scores.shape != (len(b.positions),):
                raise SamplerContractError(
                    f"sampler {self.name!r}: score_batch returned scores of shape {scores.shape} for a batch of "
                    f"{len(b.positions)} images; return one score per image"
                )
            parts.append(scores)
        scores = np.concatenate(parts) if parts else np.zeros(0)
        if len(scores) and np.isnan(scores).all():
            raise SamplerContractError(
                f"sampler {self.name!r}: every score is NaN ({len(scores)} pool images); nothing can be ranked"
            )
        return scores

    def select(self, ctx: SelectionContext, budget: int) -> Selection:
        """The `budget` highest scores of the pool, with their scores."""
        return select_top(self.score(ctx), budget)
