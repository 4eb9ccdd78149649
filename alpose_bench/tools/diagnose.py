"""Do the samplers do what they claim? Their scores against the model's real error, OOD detection, refinement.

`diagnose` trains the pose model once on the initial labelled set of a seed (the cycle-0 model that
`alpose-bench run` trains for that seed), together with the auxiliary head of every requested sampler (heads
read detached features, so one training serves them all). Then, for each sampler:

* score-and-rank samplers (`ScoringSampler`): Spearman's rho (and p-value) between the scores of the unlabelled
  pool and the model's per-image error there (mean over annotated joints of distance / the dataset's normaliser:
  head-box diagonals for PCKh, torso sizes for PCK, millimetres for 3D), and precision@k: the fraction of the
  sampler's top k that are among the k pool images with the largest error (chance level: k / pool);
* other samplers (Core-Set, random, ...): precision@k of their own selection of k images only; rho and AUROC do
  not apply and are reported as missing, never invented;
* with an `ood` split: the AUROC of telling OOD images (positive) from the test images by the score;
* VL4Pose: whether its max-product pose refinement improves the dataset metric on the pool (run with
  `num_peaks` = 5 when the user's setting has a single peak, which leaves nothing to refine).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score
from torch import nn

from alpose_bench.core import seeds
from alpose_bench.core.compute import Compute
from alpose_bench.core.jsonio import report_dict, write_report_json
from alpose_bench.engine import build
from alpose_bench.engine.loop import SamplerContractError, run_selection, train_cycle0
from alpose_bench.engine.train import model_codec, predict
from alpose_bench.pose.data import DatasetError, PoseDataset, PoseSplit
from alpose_bench.pose.heatmaps import heatmap_coords_to_input
from alpose_bench.pose.metrics import evaluate, metric_info, per_image_error
from alpose_bench.pose.models import check_available, model_info
from alpose_bench.pose.pool import SelectionContext
from alpose_bench.samplers.base import Sampler, ScoringSampler, top_k
from alpose_bench.spec.config import ConfigError, ExperimentSpec

#: peaks per joint used to measure VL4Pose's refinement when the user's setting is a single peak

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SamplerDiagnosis:
    """One sampler's figures; None where a figure does not apply to the sampler or is undefined."""

    sampler: str
    kind: str  # "score" (score-and-rank) or "select" (only its selection is observable)
    spearman: float | None  # Spearman rho between score and per-image error over the pool
    p_value: float | None  # two-sided p-value of rho
    precision_at_k: float | None  # fraction of the sampler's k picks among the k worst pool images
    ood_auroc: float | None  # AUROC of OOD (positive) vs test images by the score
    seconds: float  # time to score (or select from) the pool
    note: str = ""


@dataclass(frozen=True)
class RefinementDiagnosis:
    """VL4Pose pose refinement on the pool: the dataset metric of the plain and of the refined poses."""

    sampler: str
    num_peaks: int
    metric: str
    plain: float  # metric of the model's own decoded keypoints
    refined: float  # metric of the refined keypoints as the sampler gives them
    refined_moved_only: float  # plain keypoints, with the refined location only where a joint moved
    poses_changed: float  # fraction of pool poses where at least one joint moved to another peak
    joints_changed: float  # fraction of all pool joints that moved


@dataclass
class DiagnoseReport:
    """Everything `alpose-bench diagnose` prints (and writes with --json)."""

    dataset: str
    metric: str
    seed: int
    n_labelled: int
    pool_size: int
    k: int
    top_k_fraction: float
    chance: float  # expected precision@k of a uniformly random pick: k / pool
    test_metric: float  # the trained model's metric on the test split
    pool_metric: float  # ... and on the unlabelled pool
    mean_pool_error: float  # mean per-image error over the pool, in `error_unit`
    error_unit: str
    ood_size: int | None
    train_seconds: float
    rows: list[SamplerDiagnosis] = field(default_factory=list)
    refinement: RefinementDiagnosis | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # sampler -> why "all" left it out

    def row(self, sampler: str) -> SamplerDiagnosis:
        """The row of one sampler."""
        for r in self.rows:
            if r.sampler == sampler:
                return r
        known = ", ".join(r.sampler for r in self.rows)
        raise KeyError(f"no sampler {sampler!r} in this report; it has {known}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (NaN and infinities become None)."""
        return report_dict(self)

    def write_json(self, path: str | Path) -> Path:
        """Write `to_dict()` as JSON to `path` (parent folders are created)."""
        return write_report_json(self, path)


# -- the statistics ---------------------------------------------------------------------------------------


def spearman(scores: np.ndarray, errors: np.ndarray) -> tuple[float | None, float | None]:
    """Spearman rho and its two-sided p-value over the pairs where both values are finite.

    (None, None) when undefined: fewer than 3 finite pairs, or either side constant.
    """
    s, e = np.asarray(scores, dtype=np.float64), np.asarray(errors, dtype=np.float64)
    if s.ndim != 1 or s.shape != e.shape:
        raise ValueError(f"scores and errors must be 1-D of one length, got shapes {s.shape} and {e.shape}")
    ok = np.isfinite(s) & np.isfinite(e)
    s, e = s[ok], e[ok]
    if len(s) < 3 or np.ptp(s) == 0 or np.ptp(e) == 0:
        return None, None
    result = spearmanr(s, e)
    return float(result.statistic), float(result.pvalue)


def precision_at_k(picks: np.ndarray, errors: np.ndarray, k: int) -> float:
    """Fraction of the k `picks` among the k positions with the largest error (NaN errors rank last)."""
    picks = np.asarray(picks, dtype=np.int64)
    if k < 1 or len(picks) != k:
        raise ValueError(f"precision@k needs k >= 1 picks, got k={k} and {len(picks)} picks")
    worst = top_k(np.asarray(errors, dtype=np.float64), k)
    return float(len(np.intersect1d(picks, worst)) / k)


def ood_auroc(in_scores: np.ndarray, ood_scores: np.ndarray) -> float | None:
    """AUROC of telling OOD (positive) from in-distribution images by the score (higher = more OOD).

    Non-finite scores are left out; None when either side has no finite score.
    """
    a, b = np.asarray(in_scores, dtype=np.float64), np.asarray(ood_scores, dtype=np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        return None
    labels = np.concatenate([np.zeros(len(a)), np.ones(len(b))])
    return float(roc_auc_score(labels, np.concatenate([a, b])))


# -- set-up -----------------------------------------------------------------------------------------------


def concat_splits(splits: Sequence[PoseSplit]) -> PoseSplit:
    """The splits one after the other (they must have the same image and keypoint shapes)."""
    shapes = {s.images.shape[1:] for s in splits}
    kp_shapes = {s.keypoints.shape[1:] for s in splits}
    if len(shapes) > 1 or len(kp_shapes) > 1:
        raise DatasetError(
            f"splits of different shapes cannot be scored together (images {sorted(map(str, shapes))}, "
            f"keypoints {sorted(map(str, kp_shapes))}); the dataset plugin must give every split one shape"
        )
    return PoseSplit(
        images=np.concatenate([s.images for s in splits]),
        keypoints=np.concatenate([s.keypoints for s in splits]),
        visible=np.concatenate([s.visible for s in splits]),
        normalizer=np.concatenate([s.normalizer for s in splits]),
        groups=np.concatenate([s.group_ids for s in splits]),
    )


def resolve_samplers(
    spec: ExperimentSpec, samplers: Sequence[str | Sampler] | str | None, dataset: PoseDataset
) -> tuple[list[Sampler], dict[str, str]]:
    """Sampler instances to diagnose (names built with the spec's parameters), and those a group ("default",
    "all") left out."""
    wanted = spec.samplers if samplers is None else samplers
    if isinstance(wanted, str):
        wanted = [w.strip() for w in wanted.split(",") if w.strip()]
    wanted = list(wanted)
    model = build.protocol(spec).model
    skipped: dict[str, str] = {}
    if wanted and all(isinstance(w, str) for w in wanted):
        if len(set(wanted)) < len(wanted):
            raise ConfigError("a sampler is named twice in --samplers; name each sampler once")
        wanted, skipped = build.resolve_samplers(wanted, dataset.task, model)  # type: ignore[arg-type]
    else:  # Sampler instances, possibly beside names: each name resolved on its own
        wanted = [
            name for w in wanted
            for name in (build.resolve_samplers([w], dataset.task, model)[0] if isinstance(w, str) else [w])
        ]  # fmt: skip
    if not wanted:
        raise ConfigError("no sampler to diagnose; pass --samplers NAME[,NAME...] (see `alpose-bench list`)")
    out: list[Sampler] = []
    for item in wanted:
        sampler = build.make_sampler(spec, item) if isinstance(item, str) else item
        if not isinstance(sampler, Sampler):
            raise ConfigError(f"{item!r} is not a sampler; pass sampler names or Sampler instances")
        reason = type(sampler).unsupported_reason(dataset.task, model)
        if reason:
            raise ConfigError(f"{reason}; drop {sampler.name!r} from --samplers for {dataset.name!r}")
        if any(s.name == sampler.name for s in out):
            raise ConfigError(f"sampler {sampler.name!r} is named twice; name each sampler once")
        out.append(sampler)
    names = [s.name for s in out]
    for name in spec.sampler_params:
        if name not in names:
            raise ConfigError(
                f"--sampler-param names sampler {name!r}, which is not diagnosed ({', '.join(names)})"
            )
    return out, skipped


@dataclass
class _Setting:
    """What every sampler's contexts share: the spec, the trained model, the data and the seed."""

    spec: ExperimentSpec
    model: nn.Module
    dataset: PoseDataset
    labelled: np.ndarray
    pool: np.ndarray
    compute: Compute
    seed: int

    def context(
        self, sampler: Sampler, head: nn.Module | None, dataset: PoseDataset | None = None,
        labelled: np.ndarray | None = None, pool: np.ndarray | None = None,
    ) -> SelectionContext:  # fmt: skip
        return SelectionContext(
            model=self.model,
            aux=head,
            dataset=self.dataset if dataset is None else dataset,
            labelled=self.labelled if labelled is None else labelled,
            pool=self.pool if pool is None else pool,
            compute=self.compute,
            batch_size=self.spec.eval_batch_size,
            seed=seeds.derive_seed("diagnose", self.seed, sampler.stream_name()),
            cycle=0,
            sampler=sampler,
            codec=model_codec(self.model, self.dataset, build.protocol(self.spec).first),
        )


def scores_of(sampler: Sampler, ctx: SelectionContext) -> np.ndarray | None:
    """The sampler's scores of the whole pool (`Sampler.score`; higher = annotate first), or None when it selects
    without per-image scores (Core-Set, random)."""
    scores = sampler.score(ctx)
    if scores is None:
        return None
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (len(ctx.pool),):
        raise SamplerContractError(
            f"sampler {sampler.name!r} returned scores of shape {scores.shape} for a pool of {len(ctx.pool)}"
        )
    return scores


def _ood_setting(dataset: PoseDataset, labelled: np.ndarray) -> tuple[PoseDataset, np.ndarray, np.ndarray]:
    """A dataset whose "train" split is test + ood + the labelled images: pool = test + ood, labelled = the rest.

    SelectionContext reads images from dataset.train only; keeping the labelled images in the labelled set lets
    samplers that compare the pool with the labelled set (EGL++, Core-Set) score as they would in a run.
    """
    assert dataset.ood is not None
    combined = concat_splits([dataset.test, dataset.ood, dataset.train.subset(labelled)])
    n = len(dataset.test) + len(dataset.ood)
    tmp = dataclasses.replace(dataset, train=combined, ood=None, initial_index=None)
    return tmp, np.arange(n), np.arange(n, len(combined))


def _diagnose_one(
    setting: _Setting, sampler: Sampler, head: nn.Module | None, ctx: SelectionContext, errors: np.ndarray,
    k: int, ood: tuple[PoseDataset, np.ndarray, np.ndarray] | None, say: Progress,
) -> SamplerDiagnosis:  # fmt: skip
    """One sampler's row: scores vs error, precision@k of its picks, OOD AUROC (or only what applies)."""
    n = len(setting.pool)
    say(f"{sampler.name}: scoring {n} pool images")
    t0 = time.perf_counter()
    scores = scores_of(sampler, ctx)
    if scores is None:  # selects without scores: only its picks can be judged
        picks = run_selection(sampler, ctx, k).positions
        seconds = time.perf_counter() - t0
        note = "selects without scores: precision@k of its picks only"
        return SamplerDiagnosis(sampler.name, "select", None, None, precision_at_k(picks, errors, k), None,
                                seconds, note)  # fmt: skip
    seconds = time.perf_counter() - t0
    rho, p = spearman(scores, errors)
    if isinstance(sampler, ScoringSampler) and type(sampler).select is not ScoringSampler.select:
        # it picks by more than its score: judge what it picks
        picks = run_selection(sampler, setting.context(sampler, head), k).positions
    else:
        picks = top_k(scores, k)
    auroc = None
    if ood is not None:
        data, pool, labelled = ood
        n_in = len(setting.dataset.test)
        say(f"{sampler.name}: scoring {n_in} test + {len(pool) - n_in} OOD images")
        ood_scores = scores_of(sampler, setting.context(sampler, head, data, labelled=labelled, pool=pool))
        auroc = ood_auroc(ood_scores[:n_in], ood_scores[n_in:])
    note = "" if rho is not None else "constant scores: rho undefined"
    return SamplerDiagnosis(
        sampler.name, "score", rho, p, precision_at_k(picks, errors, k), auroc, seconds, note
    )


# -- VL4Pose refinement -----------------------------------------------------------------------------------


def argmax_keypoints(ctx: SelectionContext) -> np.ndarray:
    """(N, J, 2) the argmax pixel of each pool heatmap, in model-input pixels (one forward pass)."""
    parts = []
    for b in ctx.batches("pool"):
        hm = b.out.final_heatmaps
        n, j, h, w = hm.shape
        idx = hm.reshape(n, j, h * w).argmax(dim=-1)
        xy = torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor")], dim=-1).float()
        parts.append(heatmap_coords_to_input(xy, b.images.shape[-1], h).cpu())
    if not parts:
        return np.zeros((0, ctx.skeleton.num_joints, 2), dtype=np.float32)
    return torch.cat(parts).numpy()


def refinement_figures(
    sampler: str, num_peaks: int, dataset: PoseDataset, split: PoseSplit, plain: np.ndarray,
    argmax: np.ndarray, refined: np.ndarray, heatmap_scale: float,
) -> RefinementDiagnosis:  # fmt: skip
    """The dataset metric on `split` of plain vs refined keypoints (all in image = model-input pixels).

    A joint counts as moved when its refined location is neither the plain decoded keypoint nor within half a
    heatmap pixel (`heatmap_scale` / 2 input px) of its heatmap's argmax pixel: refinement chose another peak.
    """
    plain = np.asarray(plain, dtype=np.float64)
    refined = np.asarray(refined, dtype=np.float64)[..., :2]
    if refined.shape != plain.shape or np.shape(argmax) != plain.shape:
        raise ValueError(
            f"refined {refined.shape}, plain {plain.shape} and argmax {np.shape(argmax)} keypoints must match"
        )
    d_plain = np.linalg.norm(refined - plain, axis=-1)
    d_argmax = np.linalg.norm(refined - argmax, axis=-1)
    moved = (d_plain > 1e-3 * heatmap_scale) & (d_argmax > 0.5 * heatmap_scale)
    moved_only = np.where(moved[..., None], refined, plain)
    vis = split.visible.astype(bool)

    def metric(kp: np.ndarray) -> float:
        return evaluate(dataset.metric, kp, split.keypoints, vis, split.normalizer, dataset.skeleton).mean

    return RefinementDiagnosis(
        sampler=sampler,
        num_peaks=num_peaks,
        metric=dataset.metric,
        plain=metric(plain),
        refined=metric(refined),
        refined_moved_only=metric(moved_only),
        poses_changed=float(moved.any(axis=1).mean()) if len(moved) else 0.0,
        joints_changed=float(moved.mean()) if moved.size else 0.0,
    )


def _refinement(
    setting: _Setting, sampler: Sampler, ctx: SelectionContext, head: nn.Module | None, pred: np.ndarray,
    say: Progress,
) -> RefinementDiagnosis | None:  # fmt: skip
    """Refinement figures from the sampler's own scoring pass, or from a VL4Pose rerun with several peaks."""
    refined = ctx.annotations.get("refined_keypoints")
    peaks = getattr(sampler, "num_peaks", 0)
    if refined is None:
        variant = sampler.refinement_variant()
        if variant is None:
            return None
        peaks = getattr(variant, "num_peaks", 0)
        say(f"{sampler.name}: refining the pool poses" + (f" with num_peaks={peaks}" if peaks else ""))
        ctx = setting.context(variant, head)
        variant.score(ctx)
        refined = ctx.annotations.get("refined_keypoints")
        if refined is None:
            return None
    dataset = setting.dataset
    scale = dataset.resolution / model_info(setting.model).heatmap_size
    return refinement_figures(
        sampler.name, int(peaks), dataset, dataset.train.subset(setting.pool), pred, argmax_keypoints(ctx),
        np.asarray(refined), heatmap_scale=scale,
    )  # fmt: skip


# -- the diagnosis ----------------------------------------------------------------------------------------


def diagnose(
    spec: ExperimentSpec,
    samplers: Sequence[str | Sampler] | str | None = None,
    seed: int = 0,
    top_k_fraction: float = 0.1,
    progress: Progress | None = None,
) -> DiagnoseReport:
    """Train the seed's cycle-0 model once; measure how well each sampler's scores find the pool images the
    model gets wrong (Spearman rho, precision@k), flag OOD images (AUROC), and what VL4Pose's refinement does.

    spec: its one dataset and its model/training settings are used (`spec.seeds` is not; `seed` is).
    samplers: names (built with the spec's sampler parameters) or Sampler instances; None: spec.samplers.
    top_k_fraction: k = round(fraction x pool), at least 1.
    """
    say = progress or (lambda _msg: None)
    if (
        isinstance(top_k_fraction, bool)
        or not isinstance(top_k_fraction, (int, float))
        or not (0 < top_k_fraction <= 1)
    ):
        raise ConfigError(f"--top-k-fraction must be in (0, 1], got {top_k_fraction}")
    if len(spec.datasets) != 1:
        raise ConfigError(
            f"diagnose works on one dataset at a time, got {', '.join(spec.datasets)}; pass one --dataset"
        )
    named = spec.samplers if samplers is None else samplers
    named = named.split(",") if isinstance(named, str) else named
    for item in named:  # unknown names and bad parameters fail before the dataset is loaded
        if isinstance(item, str) and item.strip() not in ("all", "default"):
            build.make_sampler(spec, item.strip())
    name = spec.datasets[0]
    compute = build.compute_of(spec)
    check_available(build.protocol(spec).model)
    dataset = build.dataset_of(spec, name)
    build.check_model_fits(dataset, spec)
    chosen, skipped = resolve_samplers(spec, samplers, dataset)
    labelled = build.initial_labelled(dataset, spec.init, seed)
    pool = np.setdiff1d(np.arange(len(dataset.train)), labelled)
    if len(pool) < 3:
        raise ConfigError(
            f"the unlabelled pool has {len(pool)} images ({len(dataset.train)} - init {spec.init}); "
            "diagnose needs at least 3: lower --init or raise --pool-size"
        )
    k = max(1, int(round(top_k_fraction * len(pool))))

    # one training of the pose model with every sampler's head: the run's cycle 0 for this seed
    proto = build.protocol(spec)
    say(f"training on {len(labelled)} labelled images for {spec.epochs_first} epochs")
    trained = train_cycle0(build.Cycle0Setup(name, seed, dataset, tuple(chosen), compute, proto))
    if trained.failed:
        raise next(SamplerContractError(why, name) for name, why in trained.failed.items())
    model, cycle = trained.model, trained.result
    heads = {s.name: trained.heads[s.name][0] if s.name in trained.heads else None for s in chosen}
    batch = spec.eval_batch_size
    train_seconds = cycle.train.wall_s
    test_metric = cycle.result.mean
    split = dataset.train.subset(pool)
    vis = split.visible.astype(bool)
    pred = predict(model, split, compute=compute, batch_size=batch, cube_mm=dataset.cube_mm)
    errors = per_image_error(pred, split.keypoints, vis, split.normalizer)
    pool_metric = evaluate(
        dataset.metric, pred, split.keypoints, vis, split.normalizer, dataset.skeleton
    ).mean

    setting = _Setting(spec, model, dataset, labelled, pool, compute, seed)
    has_ood = dataset.ood is not None and len(dataset.ood) > 0 and len(dataset.test) > 0
    ood = _ood_setting(dataset, labelled) if has_ood else None
    rows: list[SamplerDiagnosis] = []
    refinement: RefinementDiagnosis | None = None
    for sampler in chosen:
        head = heads[sampler.name]
        ctx = setting.context(sampler, head)
        rows.append(_diagnose_one(setting, sampler, head, ctx, errors, k, ood, say))
        if refinement is None and dataset.task == "heatmap2d":
            refinement = _refinement(setting, sampler, ctx, head, pred, say)

    finite = np.isfinite(errors)
    return DiagnoseReport(
        dataset=name,
        metric=dataset.metric,
        seed=seed,
        n_labelled=len(labelled),
        pool_size=len(pool),
        k=k,
        top_k_fraction=float(top_k_fraction),
        chance=k / len(pool),
        test_metric=float(test_metric),
        pool_metric=float(pool_metric),
        mean_pool_error=float(errors[finite].mean()) if finite.any() else float("nan"),
        error_unit=metric_info(dataset.metric).error_unit,
        ood_size=len(dataset.ood) if has_ood else None,
        train_seconds=train_seconds,
        rows=rows,
        refinement=refinement,
        skipped=skipped,
    )
