"""Core-Set (Sener & Savarese, ICLR 2018): k-center greedy on the pose model's pooled embedding.

Follows google/active-learning's ``kcenter_greedy`` as the reference code uses it: Euclidean distance,
each pool image's distance to its nearest labelled image as the starting point, then `budget` greedy steps
that pick the image farthest from all centres so far and update the distances. Unlike the reference (which
builds the whole pool x labelled matrix with scikit-learn), distances are computed in fixed-size blocks with
a running minimum, so peak memory grows with pool + labelled, not with their product. Distances are computed in
float64, as scikit-learn's `pairwise_distances` upcasts: in float32 the expansion ||a||^2 + ||b||^2 - 2 a.b
loses the small distances to cancellation, and the pick order leaves the float64 one within ten picks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from alpose_bench.core.validation import param
from alpose_bench.pose.pool import SelectionContext
from alpose_bench.samplers.base import Sampler


def _sq_norms(x: Tensor) -> Tensor:
    return torch.einsum("ij,ij->i", x, x)  # no (N, E) temporary, unlike (x * x).sum(1)


def min_sq_distances(points: Tensor, centres: Tensor, chunk: int = 1024) -> Tensor:
    """Squared Euclidean distance of each row of `points` to its nearest row of `centres` (inf if none).

    Computed in blocks of at most `chunk` x `chunk` (||p||^2 + ||c||^2 - 2 p.c, clamped at 0), so the full
    points x centres matrix never exists: extra memory is one block plus O(len(points)).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    out = torch.full((len(points),), float("inf"), dtype=points.dtype, device=points.device)
    if len(centres) == 0 or len(points) == 0:
        return out
    p_sq = _sq_norms(points)
    for j in range(0, len(centres), chunk):
        c = centres[j : j + chunk]
        c_sq = _sq_norms(c)[None, :]
        for i in range(0, len(points), chunk):
            # min_j ||p - c_j||^2 = ||p||^2 + min_j (||c_j||^2 - 2 p.c_j): one chunk x chunk block, no more
            block = torch.addmm(c_sq, points[i : i + chunk], c.T, alpha=-2)
            out[i : i + chunk] = torch.minimum(
                out[i : i + chunk], block.min(dim=1).values + p_sq[i : i + chunk]
            )
    return out.clamp_(min=0)


def kcenter_greedy(
    pool_emb: Tensor, labelled_emb: Tensor, budget: int, first: int | None = None, chunk: int = 1024
) -> np.ndarray:
    """k-center greedy: `min(budget, len(pool))` positions into `pool_emb`, in the order they were picked.

    Each step picks the pool point farthest (Euclidean) from the labelled points and the points picked so far;
    ties go to the lowest position. `first`, if given, is picked first; otherwise the first pick is the point
    farthest from the labelled set, or position 0 when the labelled set is empty. Memory: O(pool + labelled)
    beyond the inputs (blocks of `chunk` x `chunk`). Distances are computed in the inputs' dtype with the
    ||a||^2 + ||b||^2 - 2 a.b expansion; pass float64 embeddings for exact ties between near-equal distances.
    """
    if pool_emb.ndim != 2 or labelled_emb.ndim != 2:
        raise ValueError(
            f"embeddings must be 2-D (N, E), got {tuple(pool_emb.shape)} and {tuple(labelled_emb.shape)}"
        )
    if len(labelled_emb) and labelled_emb.shape[1] != pool_emb.shape[1]:
        raise ValueError(
            f"pool and labelled embeddings differ in size: {pool_emb.shape[1]} vs {labelled_emb.shape[1]}"
        )
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    n = len(pool_emb)
    steps = min(budget, n)
    if first is not None and not 0 <= first < n:
        raise ValueError(f"first must be a position in [0, {n}), got {first}")
    labelled_emb = labelled_emb.to(pool_emb.device, pool_emb.dtype)
    min_dist = min_sq_distances(pool_emb, labelled_emb, chunk)
    p_sq = _sq_norms(pool_emb)
    picked = np.empty(steps, dtype=np.int64)
    for step in range(steps):
        idx = int(first) if (step == 0 and first is not None) else int(torch.argmax(min_dist))
        picked[step] = idx
        c = pool_emb[idx]
        d = torch.addmv(p_sq + (c * c).sum(), pool_emb, c, alpha=-2).clamp_(min=0)
        torch.minimum(min_dist, d, out=min_dist)
        min_dist[idx] = -1.0  # never picked again, even with rounding error or duplicate embeddings
    return picked


@dataclass
class CoreSet(Sampler):
    """k-center greedy on the pooled embedding; without labelled images the first centre is drawn (seeded)."""

    name = "coreset"
    colour = "#E69F00"
    marker = "s"
    order = 1
    label = "Core-Set"
    description = "Core-Set: k-center greedy on the pose model's pooled embedding (Sener & Savarese 2018)."
    needs = frozenset({"embedding"})
    overhead_target = 1.5

    chunk: int = param(1024, low=1)  # block size of the chunked distance computation (memory, not results)

    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        if budget <= 0 or len(ctx.pool) == 0:
            return np.zeros(0, dtype=np.int64)
        pool = (
            torch.from_numpy(np.ascontiguousarray(ctx.collect("pool", "embedding"))).to(ctx.device).double()
        )
        if len(ctx.labelled):
            labelled = torch.from_numpy(np.ascontiguousarray(ctx.collect("labelled", "embedding"))).double()
        else:
            labelled = pool.new_zeros((0, pool.shape[1]))
        first = int(ctx.rng.integers(len(ctx.pool))) if len(ctx.labelled) == 0 else None
        return kcenter_greedy(pool, labelled.to(ctx.device), budget, first=first, chunk=self.chunk)
