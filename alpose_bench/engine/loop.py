"""One active-learning run on resolved objects: (dataset, sampler, seed) -> cycles of train, evaluate, select, grow.

Cycle 0 (the initial labelled set, identical for every sampler with the same seed) is trained once per
(dataset, seed) by `train_shared_cycle0` together with the auxiliary heads of every sampler in the experiment, and
shared: heads read detached features, so the pose model is the same as if each sampler had trained it alone.
Each cycle's checkpoint is written before its record is committed and the previous one removed only after
(`alpose_bench.engine.checkpoints`), so a run killed at any point resumes from its last committed cycle and ends with the
rows of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from torch import nn

from alpose_bench.core import seeds
from alpose_bench.core.activity import ACTIVITY, phase
from alpose_bench.core.timing import Timing, timed
from alpose_bench.engine import checkpoints
from alpose_bench.engine.build import Cycle0Setup, TaskSetup, initial_labelled, new_head, new_model
from alpose_bench.engine.stream import chunk_of, stream_order, stream_select
from alpose_bench.engine.train import CycleResult, model_codec, predict, train, train_and_evaluate
from alpose_bench.pose.evaluation import SplitScore
from alpose_bench.pose.pool import SelectionContext
from alpose_bench.results.store import CycleRecord
from alpose_bench.samplers.base import Sampler, SamplerContractError, Selection, as_selection, sampler_code
from alpose_bench.spec.config import trained_cycles
from alpose_bench.spec.registry import get_budget_manager


def validate_selection(
    selection: object, pool_size: int, budget: int, sampler: str, already_labelled: np.ndarray | None = None
) -> Selection:
    """What `select` returned, checked: a Selection (or an integer array) of `min(budget, pool_size)` distinct
    in-range positions, with float scores, one per position, when it gives scores, and none of the positions in
    `already_labelled` (a boolean mask over the pool); else SamplerContractError. The one set of selection checks
    of the loop, `diagnose` and the conformance kit."""
    if not isinstance(selection, (Selection, np.ndarray)):
        raise SamplerContractError(
            f"sampler {sampler!r}: select must return a numpy array or a Selection, got {type(selection).__name__}"
        )
    selection = as_selection(selection)
    if selection.scores is not None:
        given = np.asarray(selection.scores)
        if given.shape != np.shape(selection.positions) or not np.issubdtype(given.dtype, np.floating):
            raise SamplerContractError(
                f"sampler {sampler!r}: Selection.scores must be floats, one per position; got {given.dtype} "
                f"{given.shape}"
            )
    positions = np.asarray(selection.positions)
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
        raise SamplerContractError(
            f"sampler {sampler!r} returned positions outside the pool of {pool_size} (they index ctx.pool, not the "
            f"dataset): {positions.min()}..{positions.max()}"
        )
    if already_labelled is not None and already_labelled[positions].any():
        raise SamplerContractError(f"sampler {sampler!r} returned an image that is already labelled")
    scores = None if selection.scores is None else np.asarray(selection.scores, dtype=np.float64)
    return Selection(positions.astype(np.int64), scores)


def run_selection(sampler: Sampler, ctx: SelectionContext, budget: int) -> Selection:
    """The sampler's checked selection from `ctx.pool`, with the scores of its picks when it gives them."""
    with sampler_code(sampler.name, "select"):
        chosen = sampler.select(ctx, budget)
    return validate_selection(chosen, len(ctx.pool), budget, sampler.name, np.isin(ctx.pool, ctx.labelled))


@dataclasses.dataclass
class Cycle0:
    """A trained cycle 0: the pose model, the auxiliary heads (name -> (head, sampler)), the samplers whose head
    failed (name -> why) and the training and evaluation result."""

    model: nn.Module
    heads: dict[str, tuple[nn.Module, Sampler]]
    failed: dict[str, str]
    result: CycleResult


def train_cycle0(setup: Cycle0Setup) -> Cycle0:
    """Train cycle 0 of (dataset, seed) on its initial labelled set with every sampler's auxiliary head: the one
    cycle-0 training of runs (`train_shared_cycle0`) and `diagnose`. A sampler whose head fails is dropped and
    cycle 0 trained again without it (heads read detached features: the pose model is the same)."""
    dataset, compute = setup.dataset, setup.compute
    failed: dict[str, str] = {}
    while True:
        model = new_model(setup.protocol.model, dataset, setup.seed, compute)
        heads: dict[str, tuple[nn.Module, Sampler]] = {}
        try:
            for sampler in [s for s in setup.samplers if s.name not in failed]:
                head = new_head(sampler, model, setup.seed, compute)
                if head is not None:
                    heads[sampler.name] = (head, sampler)
            rows = initial_labelled(dataset, setup.protocol.init, setup.seed)
            cycle = train_and_evaluate(
                model, dataset, rows, setup.protocol.first, compute=compute, seed=seeds.train_seed(setup.seed, 0),
                heads=heads, eval_batch_size=setup.protocol.eval_batch_size,
            )  # fmt: skip
            return Cycle0(model, heads, failed, cycle)
        except SamplerContractError as exc:
            if exc.sampler is None or exc.sampler in failed:
                raise
            failed[exc.sampler] = str(exc)


def train_shared_cycle0(setup: Cycle0Setup, out_dir: Path) -> Path:
    """Train cycle 0 once for (dataset, seed) with every sampler's auxiliary head; save model, heads and metric."""
    path = checkpoints.cycle0_path(out_dir, setup.dataset_name, setup.seed)
    names = [s.name for s in setup.samplers]
    if path.exists():
        try:
            saved = checkpoints.load(path, checkpoints.RETRAIN_CYCLE0, CYCLE0_KEYS)
        except (
            checkpoints.CheckpointError
        ) as exc:  # damaged, cut short or foreign: trained again, replaced below
            if exc.tampered:
                raise
            warn(f"{exc}; training cycle 0 of {setup.dataset_name} seed {setup.seed} again")
            saved = {"heads": {}, "has_head": names, "samplers": []}
        if (
            set(saved["heads"]) >= {s for s in names if s in saved["has_head"]}
            and set(saved["samplers"]) >= set(names)
            and not set(saved.get("failed", {})) & set(names)  # a sampler that failed there gets another try
        ):
            return path
    trained = train_cycle0(setup)
    model, heads, failed, cycle = trained.model, trained.heads, trained.failed, trained.result
    checkpoints.save(
        {
            "model": model.state_dict(),
            "heads": {n: h.state_dict() for n, (h, _) in heads.items()},
            "has_head": list(heads),
            "failed": failed,
            "samplers": names,
            "value": cycle.result.mean,
            "per_joint": cycle.result.per_joint.tolist(),
            "train_s": cycle.train.wall_s,
            "eval_s": cycle.evaluate.wall_s,
            "train_cpu_s": cycle.train.cpu_s,
            "eval_cpu_s": cycle.evaluate.cpu_s,
            "evals": [dataclasses.asdict(e) for e in cycle.scores],
        },
        path,
    )
    return path


def warn(message: str) -> None:
    """A line on stderr about something repaired on the way (the run goes on)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


CYCLE0_KEYS = ("model", "heads", "has_head", "samplers", "value", "per_joint", "train_s", "eval_s")


def replay(
    setup: TaskSetup, upto: int, done: dict[int, np.ndarray], model: nn.Module, head: nn.Module | None
) -> None:
    """Bring `model` and `head` to their state after cycle `upto` by training cycles 0..upto again on the committed
    selections in `done`, with the same seeds: what resuming needs when a checkpoint is missing or damaged.

    Training alone decides the weights (evaluation and selection run in eval mode and change nothing), so the pose
    model is the one the lost checkpoint held; so is the head, unless it draws from torch's global random stream."""
    task, proto = setup.task, setup.protocol
    fresh = setup.new_model()
    fresh_head = setup.new_head(fresh)
    heads = {task.sampler: (fresh_head, setup.sampler)} if fresh_head is not None else {}
    labelled = setup.initial_labelled()
    with phase(f"retraining cycles 0-{upto} (checkpoint lost)"):
        for cycle in range(upto + 1):
            if cycle > 0:
                labelled = np.concatenate([labelled, done[cycle - 1]])
            train(
                fresh, setup.dataset, labelled, proto.first if cycle == 0 else proto.later, compute=setup.compute,
                seed=seeds.train_seed(task.seed, 0) if cycle == 0 else seeds.train_seed(task.seed, cycle, setup.sampler.stream_name()),
                heads=heads,
            )  # fmt: skip
    model.load_state_dict(fresh.state_dict())
    if head is not None and fresh_head is not None:
        head.load_state_dict(fresh_head.state_dict())


def selection_context(
    setup: TaskSetup,
    model: nn.Module,
    head: nn.Module | None,
    codec: object,
    labelled: np.ndarray,
    cycle: int,
    frames: np.ndarray,
    part: int = 0,
) -> SelectionContext:
    """The selection context of `frames` at `cycle` (`part`: 0 for the pool or a stream's chunk or first buffer,
    another number for each further buffer or calibration pass, so each draws its own random stream)."""
    seed = seeds.select_seed(setup.task.seed, setup.sampler.stream_name())
    return SelectionContext(
        model=model, aux=head, dataset=setup.dataset, labelled=labelled, pool=frames, compute=setup.compute,
        batch_size=setup.protocol.eval_batch_size, seed=seed if part == 0 else seeds.derive_seed(seed, part),
        cycle=cycle, sampler=setup.sampler, codec=codec,
    )  # fmt: skip


def run_task(
    setup: TaskSetup,
    out_dir: Path,
    done: dict[int, np.ndarray],
    sink: Callable[[CycleRecord], None],
    on_cycle: Callable[[int], None] | None = None,
) -> None:
    """Run (or resume after the committed cycles in `done`: cycle -> selected indices) one task to the end.

    Each cycle's record goes to `sink`, which must commit it and then call `checkpoints.discard_after_commit`."""
    task, dataset, sampler, compute, proto = (
        setup.task,
        setup.dataset,
        setup.sampler,
        setup.compute,
        setup.protocol,
    )
    labelled = setup.initial_labelled()
    for cycle in sorted(done):
        labelled = np.concatenate([labelled, done[cycle]])
    model = setup.new_model()
    head = setup.new_head(model)
    codec = model_codec(model, dataset, proto.first)
    stream = (
        None if proto.stream is None
        else proto.stream.resolved(len(dataset.train), proto.init, proto.cycles, proto.budget)
    )  # fmt: skip
    stream_frames = (
        stream_order(dataset, setup.initial_labelled(), task.seed, stream.order)
        if stream is not None
        else None
    )
    for cycle in range(len(done), trained_cycles(proto.cycles)):
        ACTIVITY.cycle(cycle)
        if cycle == 0:
            path = checkpoints.cycle0_path(out_dir, task.dataset, task.seed)
            saved = checkpoints.load(path, checkpoints.RETRAIN_CYCLE0, CYCLE0_KEYS)
            if task.sampler in saved.get("failed", {}):
                raise SamplerContractError(saved["failed"][task.sampler], task.sampler)
            checkpoints.restore(model, saved["model"], path, checkpoints.RETRAIN_CYCLE0)
            if head is not None:
                checkpoints.restore(head, saved["heads"].get(task.sampler), path, checkpoints.RETRAIN_CYCLE0)
            value, per_joint = saved["value"], np.asarray(saved["per_joint"], dtype=float)
            train_t = Timing(saved["train_s"], saved.get("train_cpu_s", float("nan")))
            eval_t = Timing(saved["eval_s"], saved.get("eval_cpu_s", float("nan")))
            evals = [SplitScore(**e) for e in saved.get("evals", [])]  # absent in checkpoints of old versions
        else:
            if proto.warm_start:
                path = checkpoints.task_checkpoint(out_dir, task.dataset, task.sampler, task.seed, cycle - 1)
                try:
                    saved = checkpoints.load(path, checkpoints.RESTART_TASK, ("model", "head"))
                    checkpoints.restore(model, saved["model"], path, checkpoints.RESTART_TASK)
                    if head is not None:
                        checkpoints.restore(head, saved["head"], path, checkpoints.RESTART_TASK)
                except (
                    checkpoints.CheckpointError
                ) as exc:  # missing, damaged or foreign: retrain what it held
                    if exc.tampered:
                        raise
                    warn(f"{exc}; retraining {task} up to cycle {cycle - 1} from its committed selections")
                    replay(setup, cycle - 1, done, model, head)
            else:
                model = setup.new_model()
                head = setup.new_head(model)
            result = train_and_evaluate(
                model, dataset, labelled, proto.later, compute=compute,
                seed=seeds.train_seed(task.seed, cycle, sampler.stream_name()),
                heads={task.sampler: (head, sampler)} if head is not None else {},
                eval_batch_size=proto.eval_batch_size,
            )  # fmt: skip
            value, per_joint = result.result.mean, result.result.per_joint
            train_t, eval_t, evals = result.train, result.evaluate, result.scores

        selection = Selection(np.zeros(0, dtype=np.int64))
        select_t: Timing | None = None
        infer_t: Timing | None = None  # the forward passes over the pool and labelled set, within select_t
        arrays: dict[str, np.ndarray] = {}
        pool = (
            np.setdiff1d(np.arange(len(dataset.train)), labelled) if stream is None else np.zeros(0, np.int64)
        )
        if proto.selects(cycle):
            context = functools.partial(selection_context, setup, model, head, codec, labelled, cycle)
            if stream is None:
                ctx = context(pool)
                with timed() as select_t, phase("selecting", total=len(pool), unit="pool images"):
                    selection = run_selection(sampler, ctx, proto.budget)
                infer_t, contexts = ctx.inference, [ctx]
            else:
                pool = chunk_of(stream_frames, cycle, stream.chunk_size)
                manager = get_budget_manager(stream.manager)(stream.label_rate, stream.window)
                with timed() as select_t, phase("watching the stream", total=len(pool), unit="frames"):
                    streamed = stream_select(sampler, context, pool, stream, manager)
                selection, infer_t, contexts = streamed.selection, streamed.inference, streamed.contexts
            arrays["keypoints"] = predict(
                model, dataset.train.subset(pool[selection.positions]), compute=compute,
                batch_size=proto.eval_batch_size, cube_mm=dataset.cube_mm,
            )  # fmt: skip
            if (
                len(contexts) == 1
            ):  # what the scoring pass recorded, per selected image (a buffered stream: none)
                for name, values in contexts[0].annotations.items():
                    arrays[name] = np.asarray(values)[selection.positions]
        selected = pool[selection.positions]
        checkpoints.save(
            {
                "model": model.state_dict(),
                "head": None if head is None else head.state_dict(),
                "cycle": cycle,
            },
            checkpoints.task_checkpoint(out_dir, task.dataset, task.sampler, task.seed, cycle),
        )
        sink(
            CycleRecord(
                dataset=task.dataset, sampler=task.sampler, seed=task.seed, cycle=cycle, n_labelled=len(labelled),
                metric=dataset.metric, value=float(value),
                per_joint={j: (None if np.isnan(v) else float(v)) for j, v in zip(dataset.skeleton.joints, per_joint)},
                train_s=float(train_t.wall_s), eval_s=float(eval_t.wall_s),
                select_s=None if select_t is None else select_t.wall_s,
                train_cpu_s=float(train_t.cpu_s), eval_cpu_s=float(eval_t.cpu_s),
                select_cpu_s=None if select_t is None else select_t.cpu_s,
                infer_s=None if infer_t is None else infer_t.wall_s,
                infer_cpu_s=None if infer_t is None else infer_t.cpu_s,
                select_images=len(pool) if proto.selects(cycle) else 0, selected=selected, scores=selection.scores,
                groups=dataset.train.group_ids[selected], arrays=arrays, evals=evals,
            )
        )  # fmt: skip
        labelled = np.concatenate([labelled, selected])
        if on_cycle is not None:
            on_cycle(cycle)
