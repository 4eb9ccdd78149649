"""Diversity over any scorer: `SCORER+kmeans` and `SCORER+coreset`, built from a registered scorer by name.

A scorer ranks images one by one, so its top `budget` often repeats one kind of image (the same failure mode, the
same pose). Most practical pose-AL tools therefore shortlist by score and then spread the picks (the "top-k then
cluster" recipe of e.g. Zhdanov, "Diverse mini-batch active learning", 2019):

* `SCORER+kmeans`: the top `m · budget` images by the scorer's score, k-means (scikit-learn, seeded) into `budget`
  clusters on the pose model's pooled embedding, then the shortlisted image nearest each centre;
* `SCORER+coreset`: k-center greedy (`alpose_bench.samplers.coreset.kcenter_greedy`, from the labelled images)
  inside the top `m · budget`.

`m = 10` by default. The composite is a real sampler class (`diverse_class`): the scorer's hyper-parameters and
auxiliary head are its own, plus `m`, so `--samplers mpe+kmeans --sampler-param mpe+kmeans.m=5` and
`create_sampler("vl4pose+coreset", {"num_peaks": 3})` work like any sampler.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import ClassVar

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import pairwise_distances

from alpose_bench.core.validation import param
from alpose_bench.pose.pool import SelectionContext
from alpose_bench.samplers.base import Sampler, Selection, top_k
from alpose_bench.samplers.coreset import kcenter_greedy

#: selector name -> how readers know it
SELECTORS = {"kmeans": "k-means", "coreset": "Core-Set"}


def is_scorer(cls: type[Sampler]) -> bool:
    """True when the sampler gives per-image scores (`Sampler.score` overridden)."""
    return cls.score is not Sampler.score


def nearest_distinct(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """For each centre in turn, the nearest point not already taken by an earlier centre (ties: lower index)."""
    d = pairwise_distances(centres, points)
    taken = np.zeros(len(points), dtype=bool)
    out = np.empty(len(centres), dtype=np.int64)
    for c in range(len(centres)):
        row = np.where(taken, np.inf, d[c])
        out[c] = int(np.argmin(row))
        taken[out[c]] = True
    return out


class _Diverse:
    """The selection step of every composite: shortlist by the scorer, then spread (see the module docstring)."""

    selector: ClassVar[str]
    m: int

    def select(self, ctx: SelectionContext, budget: int) -> Selection:
        return self.spread(ctx, self.score(ctx), budget)  # type: ignore[attr-defined]

    def spread(self, ctx: SelectionContext, scores: np.ndarray, budget: int) -> Selection:
        """The selection from the scorer's `scores` of the pool (computed once by a caller that also ranks by
        them, e.g. `suggest`)."""
        n = len(ctx.pool)
        budget = min(budget, n)
        if budget <= 0:
            return Selection(np.zeros(0, dtype=np.int64), np.zeros(0))
        scores = np.asarray(scores, dtype=np.float64)
        shortlist = top_k(scores, min(n, self.m * budget))
        emb = np.asarray(ctx.collect("pool", "embedding"), dtype=np.float64)[shortlist]
        if self.selector == "kmeans":
            seed = int(ctx.rng.integers(2**31 - 1))
            centres = KMeans(n_clusters=budget, random_state=seed, n_init="auto").fit(emb).cluster_centers_
            picked = nearest_distinct(emb, centres)
        else:
            labelled = (
                np.asarray(ctx.collect("labelled", "embedding"), dtype=np.float64)
                if len(ctx.labelled) else np.zeros((0, emb.shape[1]))
            )  # fmt: skip
            picked = kcenter_greedy(torch.from_numpy(emb), torch.from_numpy(labelled), budget)
        positions = shortlist[picked]
        return Selection(positions.astype(np.int64), scores[positions])


@cache
def diverse_class(base: type[Sampler], selector: str) -> type[Sampler]:
    """The sampler class `BASE+SELECTOR`: `base`'s scores and fields, plus the shortlist factor `m`."""
    if selector not in SELECTORS:
        raise ValueError(
            f"unknown selector {selector!r}; use one of {', '.join(SELECTORS)} (e.g. mpe+kmeans)"
        )
    if not is_scorer(base):
        raise ValueError(
            f"sampler {base.name!r} gives no per-image scores, so it cannot be shortlisted by score; "
            f"+{selector} needs a scorer (e.g. mpe+{selector})"
        )
    name = f"{base.name}+{selector}"
    namespace = {
        "name": name,
        "former_names": tuple(f"{f}+{selector}" for f in base.former_names),
        "label": f"{base.display_name()} + {SELECTORS[selector]}",
        "description": f"{base.display_name()} shortlist (top m x budget), then {SELECTORS[selector]} on the "
        "embedding for diversity.",
        "needs": frozenset(base.needs | {"embedding"}),
        "overhead_target": None,
        "per_frame": False,  # spreading picks compares them with each other
        "selector": selector,
        "__module__": __name__,
        "__doc__": f"{base.display_name()} scores, spread by {SELECTORS[selector]} over the top m x budget.",
    }
    fields = [("m", int, param(10, low=1))]  # shortlist = the top m x budget images by score
    cls = dataclasses.make_dataclass(
        f"{base.__name__}Plus{selector.title()}", fields, bases=(_Diverse, base), namespace=namespace
    )
    return cls  # type: ignore[return-value]
