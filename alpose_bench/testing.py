"""A conformance kit for samplers: tiny datasets and selection contexts, and `check_sampler`.

Like scikit-learn's ``check_estimator``: any sampler, built-in or from a third-party package, can be run
through every contract check the engine relies on in a few seconds on a CPU::

    from alpose_bench.testing import check_sampler
    check_sampler(MySampler)                 # raises AssertionError naming the failed check
    check_sampler(MySampler, k=3)            # with hyper-parameters

`make_dataset` and `make_context` are also the fixtures the project's own sampler tests use.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from alpose_bench.core.compute import Compute
from alpose_bench.pose.data import MetricName, PoseDataset, PoseSplit, Task
from alpose_bench.pose.models import ModelSpec, build_model, model_info
from alpose_bench.pose.models.outputs import ModelInfo, TrainBatch
from alpose_bench.pose.pool import SelectionContext
from alpose_bench.pose.skeleton import ICVL, MPII
from alpose_bench.samplers.base import KNOWN_NEEDS, Sampler, Selection

TASKS: tuple[Task, ...] = ("heatmap2d", "regression3d")
CUBE_MM = 150.0  # half-size of the synthetic 3D crop cube

#: the architecture of the conformance kit's model: small enough for a check to run in well under a second
TINY_SPEC = ModelSpec(stacks=1, channels=16, depth=2, regressor_width=8, regressor_fc=64)
#: the pretrained family's kit model: the real MobileNetV2 architecture on random weights (no checkpoint needed)
MOBILENET_SPEC = ModelSpec(family="mobilenet-v2", backbone_weights="random", channels=16)
#: the same on the other backbone: EfficientNet-Lite0 on random weights
LITE0_SPEC = ModelSpec(family="efficientnet-lite0", backbone_weights="random", channels=16)
#: the 2D model the checks run on (`sampler_checks(..., model=...)`); the 3D checks always use TINY_SPEC's regressor
_KIT_MODEL: contextvars.ContextVar[ModelSpec] = contextvars.ContextVar("kit_model", default=TINY_SPEC)


# -- fixtures ------------------------------------------------------------------------------------------------


def _split(task: Task, n: int, resolution: int, rng: np.random.Generator) -> PoseSplit:
    if task == "heatmap2d":
        images = rng.integers(0, 256, size=(n, resolution, resolution, 3), dtype=np.uint8)
        keypoints = rng.uniform(0.0, resolution - 1.0, size=(n, MPII.num_joints, 2)).astype(np.float32)
        visible = rng.random((n, MPII.num_joints)) > 0.15
        normalizer = rng.uniform(0.2, 0.4, size=n).astype(np.float32) * resolution  # head-box diagonal, px
    else:
        images = rng.integers(0, 256, size=(n, resolution, resolution, 1), dtype=np.uint8)
        keypoints = rng.uniform(-0.9 * CUBE_MM, 0.9 * CUBE_MM, size=(n, ICVL.num_joints, 3)).astype(
            np.float32
        )
        visible = rng.random((n, ICVL.num_joints)) > 0.05
        normalizer = np.ones(n, dtype=np.float32)
    visible[:, 0] = True  # every sample has at least one annotated joint
    groups = rng.integers(0, 2, size=n).astype(np.int64)
    return PoseSplit(
        images=images, keypoints=keypoints, visible=visible, normalizer=normalizer, groups=groups
    )


def make_dataset(
    task: Task = "heatmap2d", n_train: int = 48, n_test: int = 8, resolution: int = 32, seed: int = 0
) -> PoseDataset:
    """A tiny random-but-valid dataset: MPII and PCKh for "heatmap2d", ICVL and MPJPE (mm) for "regression3d".

    Images are noise; keypoints lie inside the image (2D, pixels) or inside the crop cube (3D, millimetres);
    about 15 % (2D) / 5 % (3D) of the joints are not annotated. Same seed -> same arrays.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    if n_train < 1 or n_test < 1 or resolution < 8:
        raise ValueError(
            f"need n_train >= 1, n_test >= 1 and resolution >= 8, got {n_train}, {n_test}, {resolution}"
        )
    rng = np.random.default_rng([seed, 0xDA7A])
    metric: MetricName = "pckh" if task == "heatmap2d" else "mpjpe"
    skeleton = MPII if task == "heatmap2d" else ICVL
    return PoseDataset(
        name=f"tiny-{task}",
        task=task,
        skeleton=skeleton,
        metric=metric,
        train=_split(task, n_train, resolution, rng),
        test=_split(task, n_test, resolution, rng),
        group_names=("a", "b"),
        group_prior=(0.5, 0.5),
        cube_mm=CUBE_MM if task == "regression3d" else 1.0,
    )


def tiny_model(dataset: PoseDataset, seed: int = 0, spec: ModelSpec = TINY_SPEC) -> nn.Module:
    """A small seeded eval-mode pose model for `dataset` (TINY_SPEC by default); global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(
            dataset.task,
            dataset.skeleton,
            input_size=dataset.resolution,
            in_channels=dataset.channels,
            spec=spec,
        )
    return model.eval()


def make_context(
    task: Task = "heatmap2d",
    n_pool: int = 40,
    n_labelled: int = 8,
    seed: int = 0,
    sampler: Sampler | None = None,
    resolution: int = 32,
) -> SelectionContext:
    """A selection context over a tiny dataset with a tiny seeded model (and `sampler`'s auxiliary head).

    The labelled images are scattered through the training split (not its first rows), so a sampler that
    returns dataset indices instead of positions into `ctx.pool` is caught. Same arguments -> same context.
    """
    return _build_context(SelectionContext, task, n_pool, n_labelled, seed, sampler, resolution)


def _build_context(
    context_cls: type[SelectionContext],
    task: Task,
    n_pool: int,
    n_labelled: int,
    seed: int,
    sampler: Sampler | None,
    resolution: int,
) -> SelectionContext:
    if n_pool < 0 or n_labelled < 0 or n_pool + n_labelled < 1:
        raise ValueError(
            f"need n_pool >= 0, n_labelled >= 0 and at least one image, got {n_pool}, {n_labelled}"
        )
    dataset = make_dataset(task, n_train=n_pool + n_labelled, resolution=resolution, seed=seed)
    order = np.random.default_rng([seed, 0x1ABE1]).permutation(n_pool + n_labelled)
    labelled, pool = np.sort(order[:n_labelled]), np.sort(order[n_labelled:])
    # samplers that run MC dropout passes get the kit's model with dropout in it (the 3D regressor always has some)
    mc = sampler is not None and "mc_dropout" in type(sampler).needs
    spec = _KIT_MODEL.get() if task == "heatmap2d" else TINY_SPEC
    model = tiny_model(dataset, seed=seed, spec=dataclasses.replace(spec, dropout=0.25) if mc else spec)
    aux = None
    if sampler is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            aux = sampler.auxiliary(model_info(model))
        if isinstance(aux, nn.Module):
            aux.eval()
    return context_cls(
        model=model, aux=aux, dataset=dataset, labelled=labelled, pool=pool, batch_size=16, seed=seed,
        sampler=sampler,
    )  # fmt: skip


def train_batch(dataset: PoseDataset, info: ModelInfo, n: int = 4) -> TrainBatch:
    """An un-augmented training batch of the first `n` training images, in the model's coordinates: the engine's
    own batch (`train.make_batch`) with the reference Gaussian width for the model's heatmap size."""
    from alpose_bench.engine.train import TrainSettings, make_batch

    size = None if info.heatmap_size is None else int(info.heatmap_size)
    settings = TrainSettings(epochs=0, augment=None)  # the reference codec for the model's heatmap size
    rows = np.arange(min(n, len(dataset.train)))
    return make_batch(dataset, rows, Compute(), size, settings, None)


# -- the checks ----------------------------------------------------------------------------------------------


class _RecordingContext(SelectionContext):
    """A context that fails when a sampler collects an output it did not declare in `needs`."""

    declared: frozenset[str] = frozenset()
    sampler_name: str = "?"

    def collect(self, which, name):  # type: ignore[override]
        if name not in self.declared:
            raise AssertionError(
                f"[check_needs_declared] sampler {self.sampler_name!r} collected {name!r} but its `needs` is "
                f"{sorted(self.declared)}; add {name!r} to `needs`"
            )
        return super().collect(which, name)

    def mc_keypoints(self, which, passes):  # type: ignore[override]
        if "mc_dropout" not in self.declared:
            raise AssertionError(
                f"[check_needs_declared] sampler {self.sampler_name!r} ran MC dropout passes but its `needs` is "
                f"{sorted(self.declared)}; add 'mc_dropout' to `needs`"
            )
        return super().mc_keypoints(which, passes)


def _context(
    cls: type[Sampler], params: dict, task: Task, seed: int = 0, n_labelled: int = 8, batch_size: int = 16
) -> tuple[Sampler, SelectionContext]:
    from alpose_bench.samplers.factory import create_sampler

    sampler = create_sampler(cls, params)  # the parameters are checked as a run checks them
    ctx = _build_context(_RecordingContext, task, 40, n_labelled, seed, sampler, 32)
    assert isinstance(ctx, _RecordingContext)
    ctx.declared, ctx.sampler_name = frozenset(cls.needs), cls.name
    ctx.batch_size = batch_size
    return sampler, ctx


def _fail(check: str, message: str) -> AssertionError:
    return AssertionError(f"[{check}] {message}")


def _validate_selection(check: str, chosen: object, ctx: SelectionContext, expected: int) -> np.ndarray:
    """The engine's own selection checks (`loop.validate_selection`), failing `check` with their message."""
    from alpose_bench.engine.loop import validate_selection
    from alpose_bench.samplers.base import SamplerContractError

    if expected > len(ctx.pool):
        raise _fail(check, f"asked for {expected} images from a pool of {len(ctx.pool)}")
    try:
        checked = validate_selection(chosen, len(ctx.pool), expected, "?", np.isin(ctx.pool, ctx.labelled))
    except SamplerContractError as exc:
        raise _fail(check, str(exc).replace("sampler '?' ", "").replace("sampler '?': ", "")) from None
    return checked.positions


def _check_class(cls: type[Sampler]) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Sampler)):
        raise _fail("check_class", f"{cls!r} is not a subclass of alpose_bench.samplers.base.Sampler")
    for attr in ("name", "description"):
        value = getattr(cls, attr, None)
        if not isinstance(value, str) or not value.strip():
            raise _fail("check_class", f"{cls.__name__}.{attr} must be a non-empty string, got {value!r}")
    if not isinstance(cls.needs, frozenset) or not cls.needs <= KNOWN_NEEDS:
        raise _fail(
            "check_class",
            f"{cls.__name__}.needs must be a frozenset within {sorted(KNOWN_NEEDS)}, got {cls.needs!r}",
        )
    if "labels" in cls.needs and not cls.reference:
        raise _fail(
            "check_class",
            f"{cls.__name__} reads the pool's labels ('labels' in needs): only a reference sampler may; set "
            "reference = True (it is then shown apart and never ranked)",
        )
    if not isinstance(cls.tasks, frozenset) or not cls.tasks or not cls.tasks <= set(TASKS):
        raise _fail("check_class", f"{cls.__name__}.tasks must be a non-empty frozenset within {TASKS}")
    if not dataclasses.is_dataclass(cls):
        raise _fail(
            "check_class", f"{cls.__name__} must be a @dataclass (its fields are the hyper-parameters)"
        )
    for f in dataclasses.fields(cls):
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise _fail(
                "check_class", f"{cls.__name__}.{f.name} needs a default (the reference code's value)"
            )


def _check_budget(cls: type[Sampler], params: dict, task: Task) -> None:
    sampler, ctx = _context(cls, params, task)
    pool, labelled = ctx.pool.copy(), ctx.labelled.copy()
    state = {k: v.clone() for k, v in ctx.model.state_dict().items()}
    _validate_selection("check_budget", sampler.select(ctx, 5), ctx, 5)
    if not (np.array_equal(ctx.pool, pool) and np.array_equal(ctx.labelled, labelled)):
        raise _fail("check_no_side_effects", "select must not modify ctx.pool or ctx.labelled")
    if ctx.model.training:
        raise _fail("check_no_side_effects", "select left the model in training mode")
    for k, v in ctx.model.state_dict().items():
        if not torch.equal(v, state[k]):
            raise _fail("check_no_side_effects", f"select changed the model's {k!r}")
    if any(p.grad is not None and p.grad.abs().sum() > 0 for p in ctx.model.parameters()):
        raise _fail("check_no_side_effects", "select left gradients in the model's parameters")


def _check_whole_pool(cls: type[Sampler], params: dict, task: Task) -> None:
    sampler, ctx = _context(cls, params, task)
    chosen = _validate_selection(
        "check_whole_pool", sampler.select(ctx, len(ctx.pool) + 3), ctx, len(ctx.pool)
    )
    if not np.array_equal(np.sort(chosen), np.arange(len(ctx.pool))):
        raise _fail("check_whole_pool", "a budget >= the pool must return every pool position once")


def _check_budget_zero(cls: type[Sampler], params: dict, task: Task) -> None:
    sampler, ctx = _context(cls, params, task)
    _validate_selection("check_budget_zero", sampler.select(ctx, 0), ctx, 0)


def _check_deterministic(cls: type[Sampler], params: dict, task: Task) -> None:
    runs = []
    for _ in range(2):
        sampler, ctx = _context(cls, params, task, seed=3)
        runs.append(_validate_selection("check_deterministic", sampler.select(ctx, 7), ctx, 7))
    if not np.array_equal(runs[0], runs[1]):
        raise _fail(
            "check_deterministic", f"same seed, different picks: {runs[0].tolist()} vs {runs[1].tolist()}"
        )


def _check_empty_labelled(cls: type[Sampler], params: dict, task: Task) -> None:
    sampler, ctx = _context(cls, params, task, n_labelled=0)
    if cls.works_without_labelled:
        _validate_selection("check_empty_labelled", sampler.select(ctx, 5), ctx, 5)
        return
    try:
        sampler.select(ctx, 5)
    except ValueError as exc:
        if not str(exc).strip():
            raise _fail(
                "check_empty_labelled", "the ValueError for an empty labelled set needs a message"
            ) from exc
        return
    raise _fail(
        "check_empty_labelled",
        "works_without_labelled is False but select on an empty labelled set did not raise ValueError",
    )


def _check_unsupported(cls: type[Sampler], params: dict) -> None:
    for task in TASKS:
        reason = cls.unsupported_reason(task)
        if task in cls.tasks and reason is not None:
            raise _fail("check_unsupported", f"{task!r} is in tasks but unsupported_reason says: {reason}")
        if task not in cls.tasks and not (isinstance(reason, str) and reason.strip()):
            raise _fail("check_unsupported", f"{task!r} is not in tasks; unsupported_reason must say why")


def _check_scores(cls: type[Sampler], params: dict, task: Task) -> None:
    """`score` gives None or one float per pool position; the scores a Selection carries are those of its picks."""
    sampler, ctx = _context(cls, params, task)
    scores = sampler.score(ctx)
    if scores is None:
        return
    if not isinstance(scores, np.ndarray) or scores.shape != (len(ctx.pool),):
        raise _fail(
            "check_scores", f"score must return a ({len(ctx.pool)},) array or None, got {_describe(scores)}"
        )
    if not np.issubdtype(scores.dtype, np.floating):
        raise _fail("check_scores", f"scores must be floating point, got {scores.dtype}")
    chosen = sampler.select(ctx, 5)
    if isinstance(chosen, Selection) and chosen.scores is not None:
        picked = np.asarray(chosen.scores, dtype=np.float64)
        expected = scores[np.asarray(chosen.positions)]
        finite = np.isfinite(picked)
        if not np.allclose(picked[finite], expected[finite], rtol=1e-4, atol=1e-6 * _scale(scores)):
            raise _fail("check_scores", "the scores of a Selection must be the sampler's scores of its picks")


def _check_stream(cls: type[Sampler], params: dict, task: Task) -> None:
    """The sampler runs in the stream protocol (`alpose_bench.engine.stream`): one that decides per frame gives a
    score to every frame, a buffered one selects within each buffer; the requests are distinct frames of the chunk,
    in stream order, within the chunk's allowance."""
    from alpose_bench.core import seeds
    from alpose_bench.engine.budget import RunningQuantile
    from alpose_bench.engine.stream import stream_select
    from alpose_bench.spec.stream import StreamProtocol, allowance

    sampler, ctx = _context(cls, params, task)
    chunk = ctx.pool
    stream = StreamProtocol("shuffled", len(chunk), 0.25, "quantile", window=10, buffer=16)

    def context(frames: np.ndarray, part: int) -> SelectionContext:
        return SelectionContext(
            model=ctx.model, aux=ctx.aux, dataset=ctx.dataset, labelled=ctx.labelled, pool=frames,
            batch_size=ctx.batch_size, seed=seeds.derive_seed(ctx.seed, part), sampler=sampler,
        )  # fmt: skip

    try:
        streamed = stream_select(sampler, context, chunk, stream, RunningQuantile(0.25, 10))
    except ValueError as exc:
        if "per-frame scores" not in str(exc):
            raise
        raise _fail(
            "check_stream",
            f"{exc}: a sampler whose score is None must set per_frame = False (it is buffered in a stream)",
        ) from None
    positions = np.asarray(streamed.selection.positions)
    cap = allowance(0.25, len(chunk))
    if len(positions) > cap or len(np.unique(positions)) != len(positions):
        raise _fail("check_stream", f"asked for {len(positions)} frames (distinct: {len(np.unique(positions))}); "
                                    f"the chunk allows {cap}")  # fmt: skip
    if len(positions) and (positions.min() < 0 or positions.max() >= len(chunk) or np.any(np.diff(positions) < 0)):
        raise _fail("check_stream", "requests must be positions into the chunk, in stream order")
    if not cls.decides_per_frame() and len(positions) != cap:
        raise _fail("check_stream", f"a buffered sampler takes its allowance ({cap}), took {len(positions)}")


def _describe(value: object) -> str:
    return f"{type(value).__name__} {getattr(value, 'shape', '')}".strip()


def _scale(scores: np.ndarray) -> float:
    finite = np.abs(scores[np.isfinite(scores)])
    return float(finite.max()) if finite.size else 1.0


def _check_batch_size(cls: type[Sampler], params: dict, task: Task) -> None:
    """The inference batch size changes scores only by rounding (relative 1e-4 at most) and picks not at all for
    samplers without scores: results must not depend on how the pool is batched."""
    runs = []
    for batch_size in (16, 1, 7):
        sampler, ctx = _context(cls, params, task, seed=5, batch_size=batch_size)
        scores = sampler.score(ctx)
        runs.append((scores, _validate_selection("check_batch_size", sampler.select(ctx, 6), ctx, 6)))
    (first, picks), others = runs[0], runs[1:]
    for (scores, other_picks), batch_size in zip(others, (1, 7)):
        if first is None:
            if not np.array_equal(picks, other_picks):
                raise _fail(
                    "check_batch_size",
                    f"inference batch 16 and {batch_size} pick differently: {picks.tolist()} vs {other_picks.tolist()}",
                )
            continue
        assert scores is not None
        ok = np.isfinite(first) & np.isfinite(scores)
        if not (np.isfinite(first) == np.isfinite(scores)).all() or not np.allclose(
            first[ok], scores[ok], rtol=1e-4, atol=1e-6 * _scale(first)
        ):
            worst = float(np.max(np.abs(first[ok] - scores[ok]) / np.maximum(np.abs(first[ok]), 1e-30)))
            raise _fail(
                "check_batch_size",
                f"scores change with the inference batch size (16 vs {batch_size}: max relative difference "
                f"{worst:.2g}); score each image independently of the others in its batch",
            )


def _snapshot(value: object) -> object:
    """A comparable copy of a sampler's state: tensors and arrays by their bytes, containers recursively."""
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), str(value.dtype), value.detach().cpu().numpy().tobytes())
    if isinstance(value, np.ndarray):
        return ("array", value.shape, str(value.dtype), value.tobytes())
    if isinstance(value, dict):
        return {k: _snapshot(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_snapshot(v) for v in value)
    return repr(value)


def _check_state(cls: type[Sampler], params: dict, task: Task) -> None:
    """`auxiliary` and `select` leave the sampler's own attributes as they were: one sampler object serves every
    cycle (and the shared cycle-0 training), so state kept between calls would make cycles depend on each other."""
    from alpose_bench.pose.models import model_info

    sampler, ctx = _context(cls, params, task)
    before = _snapshot(vars(sampler))
    sampler.auxiliary(model_info(ctx.model))
    if _snapshot(vars(sampler)) != before:
        raise _fail(
            "check_state", "auxiliary() changed the sampler's attributes; keep state in the head it returns"
        )
    sampler.select(ctx, 5)
    if _snapshot(vars(sampler)) != before:
        raise _fail("check_state", "select() changed the sampler's attributes; keep per-call state local")


def _check_auxiliary(cls: type[Sampler], params: dict, task: Task) -> None:

    sampler, ctx = _context(cls, params, task)
    if ctx.aux is None:
        return
    if not isinstance(ctx.aux, nn.Module):
        raise _fail(
            "check_auxiliary", f"auxiliary must return an nn.Module or None, got {type(ctx.aux).__name__}"
        )
    model, aux = ctx.model, ctx.aux
    model.train()
    aux.train()
    batch = train_batch(ctx.dataset, model_info(model))
    model.zero_grad(set_to_none=True)
    aux.zero_grad(set_to_none=True)
    pose_out = model(batch.images)
    loss = sampler.auxiliary_loss(aux(pose_out.features), batch, pose_out)
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise _fail("check_auxiliary", "auxiliary_loss must return a scalar tensor")
    if not torch.isfinite(loss):
        raise _fail("check_auxiliary", f"auxiliary_loss is not finite: {loss.item()}")
    loss.backward()
    grads = [p.grad for p in aux.parameters() if p.requires_grad]
    if not grads or all(g is None or g.abs().sum() == 0 for g in grads):
        raise _fail("check_auxiliary", "the auxiliary loss does not reach the head's parameters")
    if any(g is not None and not torch.isfinite(g).all() for g in grads):
        raise _fail("check_auxiliary", "the auxiliary loss gives non-finite gradients")
    leaked = [n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    if leaked:
        raise _fail(
            "check_auxiliary", f"the auxiliary loss sends gradients into the pose model ({leaked[0]}, ...)"
        )


def sampler_checks(
    cls: type[Sampler], model: ModelSpec = TINY_SPEC, **params
) -> list[tuple[str, Callable[[], None]]]:
    """The named checks `check_sampler` runs, for running them one by one (e.g. as parametrised tests). The 2D
    checks run on `model` (TINY_SPEC's hourglass; MOBILENET_SPEC for the pretrained family); a model other than
    the hourglass has no 3D form, so the 3D checks are left out with it."""
    checks: list[tuple[str, Callable[[], None]]] = [
        ("check_class", lambda: _check_class(cls)),
        ("check_unsupported", lambda: _check_unsupported(cls, params)),
    ]
    per_task = (
        ("check_budget", _check_budget),
        ("check_whole_pool", _check_whole_pool),
        ("check_budget_zero", _check_budget_zero),
        ("check_deterministic", _check_deterministic),
        ("check_empty_labelled", _check_empty_labelled),
        ("check_scores", _check_scores),
        ("check_batch_size", _check_batch_size),
        ("check_state", _check_state),
        ("check_auxiliary", _check_auxiliary),
        ("check_stream", _check_stream),
    )
    tasks = [t for t in TASKS if t in getattr(cls, "tasks", ()) and (t == "heatmap2d" or model == TINY_SPEC)]
    for task in tasks:
        for name, fn in per_task:
            checks.append(
                (
                    f"{name}[{task}]",
                    functools.partial(_on_model, model, functools.partial(fn, cls, params, task)),
                )
            )
    return checks


def _on_model(model: ModelSpec, check: Callable[[], None]) -> None:
    """Run `check` with the kit's contexts built on `model`."""
    token = _KIT_MODEL.set(model)
    try:
        check()
    finally:
        _KIT_MODEL.reset(token)


def check_sampler(sampler_cls: type[Sampler], model: ModelSpec = TINY_SPEC, **params) -> None:
    """Run every contract check on a sampler class; raise AssertionError naming the first check that fails.

    `params` are the hyper-parameters, checked and passed as a run passes them (`create_sampler`). Checks: class
    attributes and dataclass fields with defaults; `budget` unique in-range positions into ctx.pool; a budget >=
    the pool returns all of it; budget 0 returns nothing; the same seed gives the same picks; the labelled set is
    never reselected; select leaves the context and the model untouched; only declared `needs` are collected; an
    empty labelled set works or raises ValueError; `score` gives None or one float per pool image, and the scores
    of a Selection are those of its picks; scores (or, without scores, picks) do not depend on the inference
    batch size; `auxiliary` and `select` leave the sampler's attributes unchanged; `unsupported_reason` explains
    unsupported tasks; an auxiliary head's loss is finite and trains the head only. Runs in seconds on a CPU.
    `model`: the 2D model the checks run on (MOBILENET_SPEC checks a sampler on the pretrained family).
    """
    _check_class(sampler_cls)  # the per-task checks rely on the class attributes
    for name, check in sampler_checks(sampler_cls, model, **params):
        _named(name, check)()


def parametrize_with_checks(
    samplers: Iterable[type[Sampler] | str],
    model: ModelSpec = TINY_SPEC,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> Any:
    """A pytest decorator that runs every check of every sampler as a test of its own (id `SAMPLER-CHECK`), as
    scikit-learn's `parametrize_with_checks`: a failure names the sampler and the check. `model` is the 2D model
    the checks run on; `params` maps a sampler name to the hyper-parameters it is checked with. The test takes
    `check` and calls it::

        @parametrize_with_checks(["my-sampler"])
        def test_my_sampler(check):
            check()
    """
    import pytest

    from alpose_bench.spec.registry import get_sampler

    cases = []
    for item in samplers:
        cls = get_sampler(item) if isinstance(item, str) else item
        for name, check in sampler_checks(cls, model, **(params or {}).get(cls.name, {})):
            cases.append(pytest.param(_named(name, check), id=f"{cls.name}-{name}"))
    return pytest.mark.parametrize("check", cases)


def _named(name: str, check: Callable[[], None]) -> Callable[[], None]:
    """`check`, whose failures say which check failed (as `check_sampler` reports them)."""

    def run() -> None:
        try:
            check()
        except AssertionError as exc:
            if str(exc).startswith("[check_"):
                raise
            raise AssertionError(f"[{name}] {exc}") from exc
        except Exception as exc:
            raise AssertionError(f"[{name}] raised {type(exc).__name__}: {exc}") from exc

    return run


def check_all() -> dict[str, str | None]:
    """Run `check_sampler` on every registered sampler: name -> None (passed) or the failure message."""
    from alpose_bench.spec import registry

    results: dict[str, str | None] = {}
    for name, plugin in sorted(registry.samplers().items()):
        if plugin.obj is None:
            results[name] = f"failed to import: {plugin.error}"
            continue
        try:
            check_sampler(plugin.obj)  # type: ignore[arg-type]
            results[name] = None
        except AssertionError as exc:
            results[name] = str(exc)
    return results
