"""Uniform random sampling: the baseline every other sampler is compared with."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alpose_bench.pose.pool import SelectionContext
from alpose_bench.samplers.base import Sampler


@dataclass
class RandomSampler(Sampler):
    """Draw `budget` unlabelled images uniformly without replacement (seeded by the run's seed and cycle)."""

    name = "random"
    colour = "#6f6f6f"
    marker = "o"
    order = 0
    groups = frozenset({"default"})
    baseline = True
    label = "Random"
    description = "Uniform random draw from the unlabelled pool (the baseline)."

    def select(self, ctx: SelectionContext, budget: int) -> np.ndarray:
        n = len(ctx.pool)
        return np.sort(ctx.rng.choice(n, size=min(budget, n), replace=False)).astype(np.int64)
