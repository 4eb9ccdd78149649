"""MC dropout (Gal & Ghahramani, ICML 2016; Gal, Islam & Ghahramani, ICML 2017) for pose: epistemic uncertainty
from the spread of the keypoints predicted by stochastic forward passes with dropout kept on.

T passes of the pool (`SelectionContext.mc_keypoints`: the input repeated T times, one forward per chunk), score =
the standard deviation over passes of every predicted keypoint coordinate, summed over joints and coordinates
(model coordinates: heatmap-decoded input pixels in 2D, cube-normalised in 3D). T = 70 is the MC-dropout count
of the pose reference (Caramalau et al., WACV 2021, `razvancaramalau/al_bhpe`, config MC_DROPOUT); CPU presets use
fewer (`preset_params`). The selection costs about T inference passes. Needs dropout in the pose model: the 3D
regressor has it (0.3, DeepPrior); the hourglass has none unless `--dropout` is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from alpose_bench.core.validation import param
from alpose_bench.pose.data import Task
from alpose_bench.pose.models import ModelSpec
from alpose_bench.pose.pool import SelectionContext
from alpose_bench.samplers.base import Sampler, Selection, select_top

#: passes the CPU presets use (the reference's 70 would make selection cost 70 inference passes)
CPU_PASSES = {"smoke": {"passes": 4}, "quick": {"passes": 10}, "cpu": {"passes": 10}, "pretrained": {"passes": 10}}


class NeedsDropout:
    """Mixin of the samplers that run MC dropout passes: unsupported when the pose model has no dropout."""

    name: ClassVar[str]
    tasks: ClassVar[frozenset[Task]]

    @classmethod
    def unsupported_reason(cls, task: Task, model: ModelSpec | None = None) -> str | None:
        reason = Sampler.unsupported_reason.__func__(cls, task, model)  # type: ignore[attr-defined]
        if reason or model is None:
            return reason
        if task == "heatmap2d" and model.dropout <= 0:
            return (
                f"sampler {cls.name!r} runs MC dropout passes and the hourglass has no dropout; set --dropout "
                "(e.g. 0.25)"
            )
        if task == "regression3d" and model.regressor_dropout <= 0:
            return f"sampler {cls.name!r} runs MC dropout passes and the 3D regressor has no dropout"
        return None


def keypoint_spread(mc: np.ndarray) -> np.ndarray:
    """(N,) sum over joints and coordinates of the std over passes of MC keypoints (T, N, J, D)."""
    return np.asarray(mc, dtype=np.float64).std(axis=0).sum(axis=(1, 2))


@dataclass
class MCDropout(NeedsDropout, Sampler):
    """Annotate the images whose predicted keypoints vary most across MC dropout passes."""

    name = "mc-dropout"
    colour = "#88CCEE"
    marker = "d"
    order = 12
    label = "MC dropout"
    description = "MC dropout: summed std of the keypoints over T stochastic passes (Gal & Ghahramani 2016)."
    needs = frozenset({"mc_dropout"})
    preset_params = CPU_PASSES
    overhead_target = None  # about `passes` inference passes by construction

    passes: int = param(70, low=2)  # stochastic forward passes (the pose reference's MC_DROPOUT)

    def score(self, ctx: SelectionContext, positions: np.ndarray | None = None) -> np.ndarray:
        scores = keypoint_spread(ctx.mc_keypoints("pool", self.passes))
        return scores if positions is None else scores[np.asarray(positions)]

    def select(self, ctx: SelectionContext, budget: int) -> Selection:
        return select_top(self.score(ctx), budget)
