"""The stream protocol (`--protocol stream`): on-device active learning as the VL4Pose paper frames it.

The unlabelled frames arrive as one ordered stream, the same for every sampler of a seed (`stream_order`), cut into
chunks of `chunk` frames, one chunk per acquisition cycle. Within a chunk the device sees each frame once and decides
at once whether to ask for its label, at `rate` labels per frame (`alpose_bench.engine.budget`); the chunk's labels
arrive at its end, the model is trained on them, and the next chunk starts. Frames not requested are gone.

* A sampler that decides on one frame alone (`Sampler.decides_per_frame`: the baseline and every per-image scorer)
  scores each frame with the model of the chunk, and the budget manager turns the scores, in stream order, into
  requests. The random baseline scores each frame with a uniform draw: through any manager that is a coin flip at
  the rate.
* A sampler that must compare frames with each other (Core-Set, TypiClust, the GCNs, EGL++, composites) is
  *buffered*: it holds `buffer` frames (its memory, recorded), selects among them with its own `select` the labels
  the allowance leaves at that point of the chunk (round(rate x frames seen) - labels asked), and empties the
  buffer.

Orders: `deployment` (a dataset with a deployment prior over its pose modes, synth-human: pool frames drawn without
replacement with weights deployment prior / pool prior of their mode, so the stream's mode mix is the deployment
distribution's while frames of each mode last; other datasets: `shuffled`), `shuffled` (a seeded permutation) and
`drift` (the mix moves across clusters of poses: each cluster, a pose mode where the dataset records them or a
k-means cluster of normalised poses otherwise, peaks at its own seeded time of the stream).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from alpose_bench.core import seeds
from alpose_bench.core.timing import Timing
from alpose_bench.engine.budget import BudgetManager
from alpose_bench.pose.data import PoseDataset
from alpose_bench.pose.pool import SelectionContext
from alpose_bench.samplers.base import Sampler, Selection, sampler_code
from alpose_bench.spec.stream import StreamProtocol, allowance

STREAM_ORDERS = ("deployment", "shuffled", "drift")
#: clusters of the drifting order on a dataset that records no pose modes
DRIFT_CLUSTERS = 5
#: spread of each cluster's frames around its peak, as a fraction of the stream
DRIFT_SPREAD = 0.2


def stream_order(dataset: PoseDataset, initial: np.ndarray, seed: int, order: str) -> np.ndarray:
    """The train indices outside the initial set in the order the device sees them (the same for every sampler of
    `seed`)."""
    rest = np.setdiff1d(np.arange(len(dataset.train)), initial)
    rng = np.random.default_rng(seeds.derive_seed("stream-order", seed, order))
    if order == "shuffled" or (order == "deployment" and not _deployment_weights(dataset)):
        return rng.permutation(rest)
    if order == "deployment":
        weights = np.asarray(_deployment_weights(dataset), dtype=np.float64)[dataset.train.group_ids[rest]]
        # Efraimidis-Spirakis: weighted draws without replacement are the largest u^(1/w), i.e. log(u) / w
        keys = np.log(rng.random(len(rest))) / np.maximum(weights, 1e-12)
        return rest[np.argsort(-keys, kind="stable")]
    if order == "drift":
        clusters = _pose_clusters(dataset, rest, seeds.derive_seed("stream-clusters", seed))
        n = int(clusters.max()) + 1
        peaks = rng.permutation(n) / max(1, n - 1)
        times = peaks[clusters] + rng.normal(0.0, DRIFT_SPREAD, len(rest))
        return rest[np.argsort(times, kind="stable")]
    raise ValueError(f"unknown stream order {order!r}; choose from {', '.join(STREAM_ORDERS)}")


def _deployment_weights(dataset: PoseDataset) -> list[float]:
    """Per pose mode: deployment prior / pool prior ([] when the dataset has no deployment prior)."""
    target = dataset.info.get("ood_group_prior")
    if not target or not dataset.group_prior or len(target) != len(dataset.group_prior):
        return []
    return [t / p if p > 0 else 0.0 for t, p in zip(target, dataset.group_prior)]


def _pose_clusters(dataset: PoseDataset, rows: np.ndarray, seed: int) -> np.ndarray:
    """A cluster per frame of `rows`: its pose mode where the dataset records several, else k-means of its pose
    (keypoints centred on their mean and scaled by their spread; unannotated joints at the centre)."""
    groups = dataset.train.group_ids[rows]
    if len(dataset.group_names) > 1 and (groups >= 0).all():
        return np.unique(groups, return_inverse=True)[1]
    from sklearn.cluster import KMeans

    kp = np.asarray(dataset.train.keypoints[rows], dtype=np.float64)[..., :2]
    vis = np.asarray(dataset.train.visible[rows], dtype=bool)
    centre = np.nanmean(np.where(vis[..., None], kp, np.nan), axis=1, keepdims=True)
    centred = np.where(vis[..., None], kp - np.nan_to_num(centre), 0.0)
    scale = np.sqrt((centred**2).sum(axis=(1, 2)) / np.maximum(vis.sum(axis=1), 1))[:, None, None]
    features = (centred / np.maximum(scale, 1e-9)).reshape(len(rows), -1)
    k = min(DRIFT_CLUSTERS, len(rows))
    return KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(features)


def chunk_of(order: np.ndarray, cycle: int, chunk: int) -> np.ndarray:
    """The frames of acquisition cycle `cycle` (0-based), in stream order."""
    return order[cycle * chunk : (cycle + 1) * chunk]


@dataclass
class StreamSelection:
    """What the device asked for in one chunk: positions into the chunk (stream order) with their scores, the
    forward passes' time (the model's own cost within the selection) and the contexts that scored."""

    selection: Selection
    inference: Timing
    contexts: list[SelectionContext]


def frame_scores(sampler: Sampler, ctx: SelectionContext) -> np.ndarray:
    """Each frame's score under the chunk's model, in pool order: a uniform draw for the random baseline."""
    if sampler.baseline:
        return ctx.rng.random(len(ctx.pool))
    with sampler_code(sampler.name, "score"):
        scores = sampler.score(ctx)
    if scores is None:
        raise ValueError(f"sampler {sampler.name!r} gives no per-frame scores; it runs buffered")
    return np.asarray(scores, dtype=np.float64)


def stream_select(
    sampler: Sampler,
    context: Callable[[np.ndarray, int], SelectionContext],
    chunk: np.ndarray,
    stream: StreamProtocol,
    manager: BudgetManager,
) -> StreamSelection:
    """The device's requests over one chunk. `context(pool, part)` makes the selection context of a set of frames
    (`part`: 0 for the chunk or the first buffer, 1.. for the next buffers, so each draws its own random stream)."""
    from alpose_bench.engine.loop import run_selection

    rate = stream.label_rate
    if sampler.decides_per_frame():
        ctx = context(chunk, 0)
        scores = frame_scores(sampler, ctx)
        if manager.needs_calibration:
            manager.calibrate(frame_scores(sampler, context(ctx.labelled, -1)))
        positions = manager.decide(scores)
        return StreamSelection(Selection(positions, scores[positions]), ctx.inference, [ctx])
    picked: list[np.ndarray] = []
    picked_scores: list[np.ndarray] = []
    contexts = []
    asked = 0
    has_scores = True
    for part, start in enumerate(range(0, len(chunk), stream.buffer)):
        frames = chunk[start : start + stream.buffer]
        take = min(len(frames), allowance(rate, start + len(frames)) - asked)
        if take <= 0:
            continue
        ctx = context(frames, part)
        contexts.append(ctx)
        chosen = run_selection(sampler, ctx, take)
        order = np.argsort(chosen.positions, kind="stable")  # requests go out in stream order
        picked.append(start + chosen.positions[order])
        has_scores = has_scores and chosen.scores is not None
        if chosen.scores is not None:
            picked_scores.append(chosen.scores[order])
        asked += len(chosen.positions)
    positions = np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
    scores = np.concatenate(picked_scores) if has_scores and picked_scores else None
    wall = sum(c.inference.wall_s for c in contexts)
    cpu = sum(c.inference.cpu_s for c in contexts)
    return StreamSelection(Selection(positions, scores), Timing(wall, cpu), contexts)
