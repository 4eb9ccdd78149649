"""Active-learning samplers (installed as ``alpose_bench.samplers``), and the one import surface for writing one.

A plugin needs nothing else::

    from alpose_bench.samplers import ScoringSampler, ForwardBatch, SelectionContext, param, decode_keypoints

Built-in samplers are registered through entry points like any plugin; `create_sampler` builds one by name.
"""

from alpose_bench.core.validation import param
from alpose_bench.pose.heatmaps import decode_keypoints
from alpose_bench.pose.models.outputs import ModelInfo, PoseOutput, TrainBatch
from alpose_bench.pose.pool import ForwardBatch, SelectionContext
from alpose_bench.samplers.base import (
    KNOWN_NEEDS,
    Sampler,
    ScoringSampler,
    Selection,
    as_selection,
    select_top,
    top_k,
)
from alpose_bench.samplers.factory import create_sampler, sampler_class, sampler_params

__all__ = [
    "KNOWN_NEEDS",
    "ForwardBatch",
    "ModelInfo",
    "PoseOutput",
    "Sampler",
    "ScoringSampler",
    "Selection",
    "SelectionContext",
    "TrainBatch",
    "as_selection",
    "create_sampler",
    "decode_keypoints",
    "param",
    "sampler_class",
    "sampler_params",
    "select_top",
    "top_k",
]
