"""TypiClust (Hacohen, Dekel & Weinshall, "Active learning on a budget: opposite strategies suit high and low
budgets", ICML 2022, code `avihu111/TypiClust`): typical examples of uncovered clusters, the low-budget winner.

As the reference's `TypiClust.select_samples`: k-means over the pool + labelled embeddings into min(|labelled| +
budget, 500) clusters (scikit-learn KMeans up to 50 clusters, MiniBatchKMeans with batches of 5,000 above); clusters of
at most 5 images dropped; clusters ordered by fewest labelled images, then largest; then, cycling through that order,
each cluster gives its most typical unlabelled member: typicality = 1 / (mean squared Euclidean distance to its k
nearest neighbours within the cluster + 1e-5), k = min(20, cluster size // 2). The reference clusters
self-supervised features; here the pose model's pooled embedding is the representation (the only one the benchmark
has), so its clusters improve as the model does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.neighbors import NearestNeighbors

from alpose_bench.core.validation import param
from alpose_bench.pose.pool import SelectionContext
from alpose_bench.samplers.base import Sampler, Selection


def typicality(features: np.ndarray, k: int) -> np.ndarray:
    """1 / (mean squared distance to the k nearest other points + 1e-5) of every row (k >= 1; a lone point: 1e5)."""
    if len(features) < 2:
        return np.full(len(features), 1e5)
    k = max(1, min(k, len(features) - 1))
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features)
    return 1.0 / ((distances[:, 1:] ** 2).mean(axis=1) + 1e-5)


#: k-means starts of the reference code's scikit-learn (1.0.2 defaults)
REFERENCE_STARTS = {"kmeans": 10, "minibatch": 3}


def cluster(features: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """k-means labels: KMeans up to 50 clusters, MiniBatchKMeans (batches of 5,000) above, as the reference; with
    the starts of the scikit-learn 1.0.2 the reference ran (KMeans 10, MiniBatchKMeans 3), not today's "auto" (1),
    whose partitions have higher inertia."""
    if n_clusters <= 50:
        model = KMeans(n_clusters=n_clusters, random_state=seed, n_init=REFERENCE_STARTS["kmeans"])
    else:
        model = MiniBatchKMeans(
            n_clusters=n_clusters, batch_size=5000, random_state=seed, n_init=REFERENCE_STARTS["minibatch"]
        )
    return model.fit_predict(features)


@dataclass
class TypiClust(Sampler):
    """Pick the most typical unlabelled image of each of the largest clusters that labelled images cover least."""

    name = "typiclust"
    colour = "#BCBD22"
    marker = "*"
    order = 17
    groups = frozenset({"default"})
    label = "TypiClust"
    description = (
        "TypiClust: most typical image of uncovered k-means clusters (Hacohen et al. 2022, low budgets)."
    )
    needs = frozenset({"embedding"})
    overhead_target = None  # k-means over pool + labelled: not a one-pass scorer

    neighbours: int = param(20, low=1)  # K_NN
    max_clusters: int = param(500, low=1)  # MAX_NUM_CLUSTERS
    min_cluster_size: int = param(
        5, low=0
    )  # clusters of at most this many images are dropped (MIN_CLUSTER_SIZE)

    def select(self, ctx: SelectionContext, budget: int) -> Selection:
        if min(budget, len(ctx.pool)) <= 0:
            return Selection(np.zeros(0, dtype=np.int64))
        parts = [ctx.collect("labelled", "embedding")] if len(ctx.labelled) else []
        features = np.concatenate([*parts, ctx.collect("pool", "embedding")]).astype(np.float64)
        picked, scores = typiclust_select(
            features, len(ctx.labelled), budget, int(ctx.rng.integers(2**31 - 1)), neighbours=self.neighbours,
            max_clusters=self.max_clusters, min_cluster_size=self.min_cluster_size,
        )  # fmt: skip
        return Selection(picked - len(ctx.labelled), scores)


def typiclust_select(
    features: np.ndarray, n_labelled: int, budget: int, seed: int, *, neighbours: int = 20,
    max_clusters: int = 500, min_cluster_size: int = 5,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Rows of `features` (the first `n_labelled` are labelled, never picked) chosen by TypiClust, with the
    typicality of each pick."""
    budget = min(budget, len(features) - n_labelled)
    n_clusters = max(1, min(n_labelled + budget, max_clusters, len(features)))
    labels = cluster(features, n_clusters, seed)
    ids, sizes = np.unique(labels, return_counts=True)
    covered = np.bincount(labels[:n_labelled], minlength=n_clusters)[ids]
    table = pd.DataFrame({"cluster": ids, "size": sizes, "covered": covered})
    kept = table[table["size"] > min_cluster_size]
    table = (kept if len(kept) else table).sort_values(
        ["covered", "size"], ascending=[True, False], kind="stable"
    )
    order = table["cluster"].to_numpy()
    free = labels.copy()
    free[:n_labelled] = -1  # labelled images are never picked
    picked: list[int] = []
    scores: list[float] = []
    while len(picked) < budget:  # round robin over the ordered clusters, skipping exhausted ones
        progressed = False
        for c in order:
            members = np.flatnonzero(free == c)
            if len(picked) >= budget or len(members) == 0:
                continue
            typical = typicality(features[members], min(neighbours, len(members) // 2))
            best = members[int(np.argmax(typical))]
            picked.append(int(best))
            scores.append(float(typical.max()))
            free[best] = -1
            progressed = True
        if not progressed:  # the kept clusters ran out: the dropped small ones supply the rest
            order = np.unique(free[free >= 0])
    return np.asarray(picked, dtype=np.int64), np.asarray(scores)
