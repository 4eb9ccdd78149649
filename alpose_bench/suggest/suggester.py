"""Rank a project's candidate frames: train the pose model on the labelled frames, measure it on a held-out part,
score every candidate with the chosen samplers, and pick a spread-out budget.

The same road as an experiment (`alpose_bench.engine`): an ExperimentSpec gives the model, training and compute;
the project's frames become a PoseDataset (train split = labelled + candidates, test split = the held-out labelled
frames); the loop's `train`, `evaluate_splits` and a SelectionContext do the rest. Everything is checked, and every
frame read, before training starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from alpose_bench.core import seeds
from alpose_bench.core.failures import UserFacingError
from alpose_bench.core.timing import Timing, timed
from alpose_bench.engine.build import compute_of, make_sampler, model_spec, new_head, new_model, protocol
from alpose_bench.engine.loop import validate_selection
from alpose_bench.engine.train import TrainingDivergedError, evaluate_splits, model_codec, predict, train
from alpose_bench.pose.data import PoseDataset, PoseSplit
from alpose_bench.pose.models import check_available
from alpose_bench.pose.pool import SelectionContext
from alpose_bench.samplers.base import Sampler, SamplerContractError, sampler_code, select_top
from alpose_bench.samplers.diverse import is_scorer
from alpose_bench.spec.advice import COMPETENT_ACCURACY, ERROR_SEEKING, LOW_BUDGET, Advice, advise
from alpose_bench.spec.config import ExperimentSpec, validate
from alpose_bench.spec.registry import get_sampler, sampler_key
from alpose_bench.suggest.frames import DecodedFrames, read_frames, to_input, to_source
from alpose_bench.suggest.model_file import SavedModel, load_model_file
from alpose_bench.suggest.project import Project, ProjectError

#: the pose model and training of each family in `suggest` (the pretrained one: the settings of the LSPET runs of
#: docs/protocol-search.md; the hourglass: the quick preset's)
_PRETRAINED = dict(resolution=192, channels=64, lr=1e-2, head_lr=1e-3, sigma=2.0, epochs_first=30, epochs=10,
                  batch_size=16)
FAMILY_SETTINGS: dict[str, dict[str, Any]] = {
    "mobilenet-v2": dict(model="mobilenet-v2", **_PRETRAINED),
    "efficientnet-lite0": dict(model="efficientnet-lite0", **_PRETRAINED),
    "hourglass": dict(model="hourglass", resolution=64, channels=32, lr=1e-3, sigma=1.0, epochs_first=40, epochs=10,
                      batch_size=16),
}  # fmt: skip
MIN_HOLDOUT_FRAMES = 5  # below this many labelled frames nothing is held out (there is too little to split)


class SuggestError(UserFacingError):
    """A suggest request that cannot be served as given (one line: what and how to fix it)."""


@dataclass(frozen=True)
class SuggestOptions:
    """What the user asked for. `samplers` empty: the advice for the model's measured regime (`spec.advice`)."""

    samplers: tuple[str, ...] = ()
    family: str = "mobilenet-v2"
    model_file: Path | None = None  # warm start from a saved model (`--model PATH`)
    budget: int = 50
    spread: bool = True  # picks of a scorer spread with SCORER+kmeans
    holdout: float = 0.2
    seed: int = 0
    epochs: int | None = None
    resolution: int | None = None
    device: str = "auto"
    min_accuracy: float = COMPETENT_ACCURACY  # held-out PCK (%) below which uncertainty is not trusted


@dataclass
class Ranking:
    """One sampler's answer: every candidate's score (NaN where the sampler gives none) and reason, the picks in
    order, and the time scoring took."""

    sampler: str
    label: str
    scores: np.ndarray  # (C,) over the readable candidates; NaN for a sampler without scores
    reasons: list[str]
    picks: np.ndarray  # positions into the readable candidates, in pick order
    picker: str  # who picked (e.g. vl4pose+kmeans)
    timing: Timing

    @property
    def has_scores(self) -> bool:
        """True when the sampler scored every candidate."""
        return bool(np.isfinite(self.scores).any())

    def order(self) -> np.ndarray:
        """Every candidate position, best first: by score where there are scores (ties: lower position), else
        its picks in pick order, then the unranked rest."""
        if self.has_scores:
            keyed = np.where(np.isnan(self.scores), -np.inf, self.scores)
            return np.lexsort((np.arange(len(keyed)), -keyed))
        rest = np.setdiff1d(np.arange(len(self.scores)), self.picks)
        return np.concatenate([self.picks, rest]).astype(np.int64)

    @property
    def ranked(self) -> int:
        """How many candidates have a rank: all of them when there are scores, else the picks."""
        return len(self.scores) if self.has_scores else len(self.picks)


@dataclass
class Suggestions:
    """Everything `suggest` found: the frames ranked by each sampler, with what it knows about its model."""

    project: Project
    spec: ExperimentSpec
    candidates: list  # the readable candidate frames (project.Frame)
    boxes: np.ndarray  # (C, 3) their letterbox windows
    images: np.ndarray  # (C, res, res, 3) model input of the candidates
    predicted: np.ndarray  # (C, J, 2) predicted keypoints in frame pixels
    rankings: list[Ranking]
    n_train: int
    n_holdout: int
    accuracy: float | None  # held-out PCK@0.2 (%) of the keypoints' box diagonal
    pixel_error: float | None  # held-out mean keypoint error in frame pixels
    advice: Advice
    chosen_by_advice: bool
    skipped: dict[str, str]  # unreadable candidates: key -> why
    train_time: Timing
    model: nn.Module
    heads: dict[str, nn.Module]
    notes: list[str] = field(default_factory=list)


def suggest_spec(options: SuggestOptions, saved: SavedModel | None = None) -> ExperimentSpec:
    """The ExperimentSpec of a suggest request (the saved model's architecture when warm-starting)."""
    values = dict(FAMILY_SETTINGS[options.family])
    if saved is not None:
        values.update(saved.spec)
    if options.resolution is not None:
        if saved is not None and options.resolution != values["resolution"]:
            raise SuggestError(
                f"--resolution {options.resolution} differs from the saved model's {values['resolution']} px; drop "
                "--resolution when warm-starting"
            )
        values["resolution"] = options.resolution
    if options.epochs is not None:
        values["epochs_first" if saved is None else "epochs"] = options.epochs
    spec = ExperimentSpec(name="suggest", datasets=("project",), seeds=1, init=1, budget=1, cycles=0,
                          device=options.device, **values)  # fmt: skip
    return validate(spec)


def resolve_samplers(names: tuple[str, ...], project: Project) -> list[str]:
    """Registered names of the samplers asked for, checked for a user project (ConfigError/SuggestError)."""
    resolved = list(dict.fromkeys(sampler_key(n) for n in names))
    for name in resolved:
        cls = get_sampler(name)
        if cls.reference:
            raise SuggestError(
                f"sampler {name!r} is a reference that reads the candidates' true labels, which a project does not "
                "have; choose a sampler (alpose-bench list)"
            )
        reason = cls.unsupported_reason("heatmap2d")
        if reason:
            raise SuggestError(f"{reason}; choose another --sampler")
        if "vl4pose" in name and project.declared_edges == 0:
            raise SuggestError(
                "VL4Pose needs the skeleton's edges (a tree over the keypoints), and this project declares none; add "
                "them (COCO category 'skeleton', DeepLabCut config.yaml 'skeleton', SLEAP skeleton edges) or choose "
                "another --sampler"
            )
    return resolved


def _split(n: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit, held-out) positions of the labelled frames: a seeded share `holdout`, none below MIN_HOLDOUT_FRAMES."""
    if n < MIN_HOLDOUT_FRAMES or holdout <= 0:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seeds.derive_seed("suggest-holdout", seed, n))
    held = np.sort(rng.choice(n, size=max(1, round(holdout * n)), replace=False))
    return np.setdiff1d(np.arange(n), held), held


def box_diagonal(keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """(N,) diagonal of the box around each frame's labelled keypoints (the PCK normaliser of a project; 1 where
    fewer than two keypoints are labelled)."""
    pts = np.where(visible[..., None], keypoints, np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: frames with no labelled keypoint
        size = np.nanmax(pts, axis=1) - np.nanmin(pts, axis=1)
    diag = np.hypot(size[:, 0], size[:, 1])
    return np.where(np.isfinite(diag) & (diag > 0), diag, 1.0).astype(np.float32)


def _split_of(
    images: np.ndarray, keypoints: np.ndarray, visible: np.ndarray, boxes: np.ndarray, res: int
) -> PoseSplit:
    kp = to_input(keypoints, boxes, res) if len(keypoints) else keypoints.astype(np.float32)
    kp[~visible] = 0.0
    norm = box_diagonal(keypoints, visible) * (res / boxes[:, 2]).astype(np.float32)
    return PoseSplit(images=images, keypoints=kp, visible=visible, normalizer=norm.astype(np.float32))


def read_all(project: Project, resolution: int) -> tuple[DecodedFrames, DecodedFrames]:
    """The labelled frames (every one must be readable: ProjectError naming the first that is not) and the
    candidates (unreadable ones are left out and counted)."""
    labelled = read_frames(project.labelled, project.labels, resolution, "labelled frames")
    if labelled.failed:
        k, why = next(iter(labelled.failed.items()))
        raise ProjectError(
            f"{len(labelled.failed)} of {len(project.labelled)} labelled frames cannot be read (first: "
            f"{project.labelled[k].key}: {why}); restore or remove them"
        )
    candidates = read_frames(project.candidates, project.labels, resolution, "candidate frames")
    if not len(candidates.kept):
        k, why = next(iter(candidates.failed.items()))
        raise ProjectError(
            f"none of the {len(project.candidates)} candidate frames can be read (first: {project.candidates[k].key}: "
            f"{why}); check the image files"
        )
    return labelled, candidates


@dataclass(frozen=True)
class Request:
    """A suggest request checked against its project: the spec, the samplers asked for (empty: the advice's), and
    the saved model to warm-start from."""

    spec: ExperimentSpec
    samplers: list[str]
    saved: SavedModel | None


def check_request(project: Project, options: SuggestOptions) -> Request:
    """Every check that needs no image decoded and no model trained (one-line errors): the saved model against
    the project, the spec, the weights, the samplers, the budget and the held-out share."""
    saved = load_model_file(options.model_file, project) if options.model_file is not None else None
    spec = suggest_spec(options, saved)
    check_available(model_spec(spec))
    asked = resolve_samplers(options.samplers, project) if options.samplers else []
    if options.budget < 1:
        raise SuggestError(f"--budget must be at least 1, got {options.budget}")
    if not 0 <= options.holdout < 1:
        raise SuggestError(f"--holdout must be in [0, 1), got {options.holdout}")
    return Request(spec=spec, samplers=asked, saved=saved)


def suggest(
    project: Project, options: SuggestOptions, say: Any = print, request: Request | None = None
) -> Suggestions:
    """Train, evaluate, score and pick (see the module docstring). `say(line)` reports progress to the user;
    `request`: the result of `check_request` when the caller checked first."""
    request = request if request is not None else check_request(project, options)
    spec, asked, saved = request.spec, request.samplers, request.saved
    res = spec.resolution
    labelled, cand = read_all(project, res)  # the last check that can refuse the project
    say(project.describe())
    for note in project.notes:
        say(f"note: {note}")
    candidates = [project.candidates[k] for k in cand.kept]
    skipped = {project.candidates[k].key: why for k, why in cand.failed.items()}

    fit, held = _split(len(project.labelled), options.holdout, options.seed)
    lab_split = _split_of(labelled.images, project.keypoints, project.visible, labelled.boxes, res)
    cand_split = PoseSplit(
        images=cand.images,
        keypoints=np.zeros((len(candidates), project.skeleton.num_joints, 2), dtype=np.float32),
        visible=np.zeros((len(candidates), project.skeleton.num_joints), dtype=bool),
        normalizer=np.ones(len(candidates), dtype=np.float32),
    )
    train_split = _concat(lab_split.subset(fit), cand_split)
    dataset = PoseDataset(
        name="project", task="heatmap2d", skeleton=project.skeleton, metric="pck", train=train_split,
        test=lab_split.subset(held), info={},
    )  # fmt: skip
    rows = np.arange(len(fit))
    pool = np.arange(len(fit), len(train_split))
    compute = compute_of(spec)
    proto = protocol(spec)
    advice_samplers = [] if asked else [LOW_BUDGET.sampler, ERROR_SEEKING.sampler]
    names = asked or advice_samplers
    samplers = {n: make_sampler(spec, n) for n in names}

    model = new_model(proto.model, dataset, options.seed, compute)
    heads = {}
    for name, sampler in samplers.items():
        head = new_head(sampler, model, options.seed, compute)
        if head is not None:
            heads[name] = (head, sampler)
    settings = proto.first
    if saved is not None:
        _restore(model, heads, saved)
        settings = proto.later
    say(
        f"training the {spec.model} model on {len(fit)} labelled frames ({settings.epochs} epochs"
        + (", warm-started from the saved model" if saved is not None else "")
        + ")"
    )
    with timed() as train_time, _as_user_error():
        train(
            model,
            dataset,
            rows,
            settings,
            compute=compute,
            seed=seeds.train_seed(options.seed, 0),
            heads=heads,
        )
    accuracy = pixel_error = None
    if len(held):
        result, _ = evaluate_splits(model, dataset, compute=compute, batch_size=spec.eval_batch_size)
        accuracy = float(result.mean)
        pred = predict(model, dataset.test, compute=compute, batch_size=spec.eval_batch_size)
        src = to_source(pred, labelled.boxes[held], res)
        dist = np.linalg.norm(src - project.keypoints[held], axis=-1)
        pixel_error = float(dist[project.visible[held]].mean()) if project.visible[held].any() else None
    advice = advise(accuracy, options.min_accuracy)
    if not asked:
        names = [advice.sampler]
    predicted = to_source(
        predict(model, cand_split, compute=compute, batch_size=spec.eval_batch_size), cand.boxes, res
    )
    codec = model_codec(model, dataset, proto.first)
    with _as_user_error():
        rankings = [
            _rank(samplers[n], heads.get(n, (None, None))[0], model, dataset, rows, pool, compute, spec, options, codec)
            for n in names
        ]  # fmt: skip
    return Suggestions(
        project=project, spec=spec, candidates=candidates, boxes=cand.boxes, images=cand.images, predicted=predicted,
        rankings=rankings, n_train=len(fit), n_holdout=len(held), accuracy=accuracy, pixel_error=pixel_error,
        advice=advice, chosen_by_advice=not asked, skipped=skipped, train_time=train_time, model=model,
        heads={n: h for n, (h, _) in heads.items()},
    )  # fmt: skip


@contextlib.contextmanager
def _as_user_error() -> Iterator[None]:
    """A sampler that breaks (its head diverges, its code raises) or a diverging model ends the command with one
    line naming it, not a traceback: the user can choose another sampler or model."""
    try:
        yield
    except SamplerContractError as exc:
        raise SuggestError(f"{exc}; choose another --sampler") from None
    except TrainingDivergedError as exc:
        raise SuggestError(f"training diverged ({exc}); try --model hourglass or fewer --epochs") from None


def _concat(a: PoseSplit, b: PoseSplit) -> PoseSplit:
    return PoseSplit(
        images=np.concatenate([a.images, b.images]),
        keypoints=np.concatenate([a.keypoints, b.keypoints]),
        visible=np.concatenate([a.visible, b.visible]),
        normalizer=np.concatenate([a.normalizer, b.normalizer]),
    )


def _restore(model: nn.Module, heads: dict[str, tuple[nn.Module, Sampler]], saved: SavedModel) -> None:
    model.load_state_dict(saved.model)
    for name, (head, _) in heads.items():
        if name in saved.heads:
            head.load_state_dict(saved.heads[name])


def _rank(
    sampler: Sampler,
    head: nn.Module | None,
    model: nn.Module,
    dataset: PoseDataset,
    rows: np.ndarray,
    pool: np.ndarray,
    compute: Any,
    spec: ExperimentSpec,
    options: SuggestOptions,
    codec: Any,
) -> Ranking:
    """One sampler's scores, reasons and picks over the candidates."""
    ctx = SelectionContext(
        model=model, aux=head, dataset=dataset, labelled=rows, pool=pool, compute=compute,
        batch_size=spec.eval_batch_size, seed=seeds.select_seed(options.seed, sampler.stream_name()), cycle=0,
        sampler=sampler, codec=codec,
    )  # fmt: skip
    ctx.explain = True
    budget = min(options.budget, len(pool))
    picker = sampler
    with timed() as t, sampler_code(sampler.name, "score"):
        if is_scorer(type(sampler)):
            scores = np.asarray(sampler.score(ctx), dtype=np.float64)
            if options.spread and budget < len(pool):
                picker = sampler if hasattr(sampler, "spread") else _spreading(sampler, spec)
                selection = picker.spread(ctx, scores, budget)  # type: ignore[attr-defined]
            else:
                selection = select_top(scores, budget)
        else:
            scores = np.full(len(pool), np.nan)  # ranks its picks only (random, TypiClust, Core-Set)
            selection = sampler.select(ctx, budget)
    selection = validate_selection(selection, len(pool), budget, picker.name)
    reasons = sampler.reasons(ctx, np.arange(len(pool))) or [""] * len(pool)
    return Ranking(
        sampler=sampler.name, label=type(sampler).display_name(), scores=scores, reasons=list(reasons),
        picks=selection.positions, picker=picker.name, timing=t,
    )  # fmt: skip


def _spreading(sampler: Sampler, spec: ExperimentSpec) -> Sampler:
    """`SCORER+kmeans` with the scorer's own parameters."""
    params = {f.name: getattr(sampler, f.name) for f in dataclasses.fields(sampler)}  # type: ignore[arg-type]
    return dataclasses.replace(make_sampler(spec, f"{sampler.name}+kmeans"), **params)  # type: ignore[type-var]
