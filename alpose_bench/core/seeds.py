"""Every random stream of an experiment, named: each is derived from the run's seed and what it is for.

Nothing draws from a global stream, so a task resumed at any cycle draws exactly what an uninterrupted run draws,
and one sampler's draws never shift another's. The derivations are pinned by tests/test_seeds.py: changing one
changes every result, so existing experiments would no longer resume bit-identically.
"""

from __future__ import annotations

import zlib

import numpy as np


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed from any parts (crc32 of their text: the same on every machine and Python run)."""
    return zlib.crc32("/".join(map(str, parts)).encode()) & 0x7FFFFFFF


def model_seed(seed: int) -> int:
    """Initial weights of the pose model (the same for every sampler with this seed)."""
    return derive_seed("model", seed)


def head_seed(sampler: str, seed: int) -> int:
    """Initial weights of a sampler's auxiliary head."""
    return derive_seed("aux", sampler, seed)


def init_seed(seed: int) -> int:
    """The initial labelled set (the same for every sampler with this seed)."""
    return derive_seed("init", seed)


def train_seed(seed: int, cycle: int, sampler: str | None = None) -> int:
    """Batch order and augmentation of one training run; cycle 0 is shared by every sampler (no sampler part)."""
    return derive_seed("train", seed, 0) if cycle == 0 else derive_seed("train", seed, cycle, sampler)


def select_seed(seed: int, sampler: str) -> int:
    """The seed of a sampler's selection contexts (combined with the cycle by `selection_rng`)."""
    return derive_seed("select", seed, sampler)


def selection_rng(seed: int, cycle: int) -> np.random.Generator:
    """The generator a sampler draws from at one cycle (`SelectionContext.rng`)."""
    return np.random.default_rng([seed, cycle, 0x5E1EC7])
