"""Built-in active-learning samplers (installed as ``alpose_bench.samplers``); registered through entry points."""

from alpose_bench.samplers.base import Sampler, ScoringSampler

__all__ = ["Sampler", "ScoringSampler"]
