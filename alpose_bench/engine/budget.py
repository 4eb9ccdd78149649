"""Stream budget managers: given each frame's score as it arrives, decide at once whether to ask for its label.

A device watching a stream cannot rank the stream (it has not seen the rest of it); it turns a score into a yes or
no with a threshold, and the budget manager sets that threshold so that the labels asked for stay at the label rate
(labels per frame). The managers are those of the stream active-learning literature, as scikit-activeml defines
them (`skactiveml.stream.budgetmanager`, the anchor read for this module):

* `fixed`: one threshold per chunk, calibrated on the labelled set: the (1 - rate) quantile of the labelled frames'
  scores under the model just trained (the device holds those frames). Cheap and blind to drift.
* `quantile`: a running threshold, the (1 - rate) quantile of the last `window` scores seen (the incremental
  quantile filter without balancing).
* `balanced`: scikit-activeml's `BalancedIncrementalQuantileFilter` (Kottke et al., IDA 2015), the running quantile
  moved down when the device has asked for fewer labels than the rate allows and up when more, over a tolerance
  window of `window / 2` frames: the default, because it keeps to the rate without knowing the score's scale.

Every manager runs under one hard cap: within a chunk the device never asks for more than round(rate x frames)
labels (the labelling service's allowance); a request past the cap is refused and the manager is told so. A chunk
is a budget period: its labels arrive at its end, and each manager starts the chunk afresh (its window of scores
belongs to the model that scored them, which the chunk's labels replace). NaN scores are never requested.

Budget managers are plugins (entry-point group `alpose_bench.budget_managers`), like samplers: subclass
`BudgetManager`, implement `wants` and, if it learns, `observe`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from typing import ClassVar

import numpy as np

from alpose_bench.spec.stream import allowance


class BudgetManager(ABC):
    """Decides, one frame at a time, whether a score is worth a label at `rate` labels per frame."""

    name: ClassVar[str]
    description: ClassVar[str]
    #: True when `calibrate` needs the labelled set's scores (a pass over the labelled frames, paid per chunk)
    needs_calibration: ClassVar[bool] = False

    def __init__(self, rate: float, window: int) -> None:
        if not 0 < rate <= 1:
            raise ValueError(f"label rate must be in (0, 1], got {rate}")
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.rate = rate
        self.window = window

    def calibrate(self, labelled_scores: np.ndarray) -> None:
        """Called once per chunk before its first frame, with the labelled frames' scores (when
        `needs_calibration`); a manager without calibration ignores them."""
        return None

    @abstractmethod
    def wants(self, score: float) -> bool:
        """Whether the manager would ask for this frame's label (the cap is applied after)."""

    def observe(self, score: float, requested: bool) -> None:
        """What happened to the frame just decided (requested: its label was asked for); a manager that does not
        learn from it ignores it."""
        return None

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """Positions (into `scores`, in stream order) of the frames whose label is requested, decided one frame at a
        time under the chunk's cap of round(rate x frames)."""
        cap = allowance(self.rate, len(scores))
        chosen: list[int] = []
        for position, score in enumerate(np.asarray(scores, dtype=np.float64)):
            if math.isnan(score):  # no score: nothing to decide on, nothing for the manager to learn
                continue
            take = self.wants(float(score)) and len(chosen) < cap
            if take:
                chosen.append(position)
            self.observe(float(score), take)
        return np.asarray(chosen, dtype=np.int64)


class FixedThreshold(BudgetManager):
    """Ask when the score reaches the (1 - rate) quantile of the labelled frames' scores (calibrated per chunk)."""

    name = "fixed"
    description = "A threshold per chunk: the (1 - rate) quantile of the labelled frames' scores."
    needs_calibration = True

    def __init__(self, rate: float, window: int) -> None:
        super().__init__(rate, window)
        self.threshold = -math.inf

    def calibrate(self, labelled_scores: np.ndarray) -> None:
        finite = np.asarray(labelled_scores, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        self.threshold = float(np.quantile(finite, 1 - self.rate)) if len(finite) else -math.inf

    def wants(self, score: float) -> bool:
        return score >= self.threshold


class RunningQuantile(BudgetManager):
    """Ask when the score reaches the (1 - rate) quantile of the last `window` scores (this one included)."""

    name = "quantile"
    description = "A running threshold: the (1 - rate) quantile of the last `window` scores."

    def __init__(self, rate: float, window: int) -> None:
        super().__init__(rate, window)
        self.recent: deque[float] = deque(maxlen=window)

    def wants(self, score: float) -> bool:
        self.recent.append(score)
        return score >= float(np.quantile(np.fromiter(self.recent, float), 1 - self.rate))


class BalancedQuantile(BudgetManager):
    """scikit-activeml's Balanced Incremental Quantile Filter: the running quantile, balanced toward the rate."""

    name = "balanced"
    description = (
        "scikit-activeml's balanced incremental quantile filter (running quantile kept to the rate)."
    )

    def __init__(self, rate: float, window: int) -> None:
        super().__init__(rate, window)
        from skactiveml.stream.budgetmanager import BalancedIncrementalQuantileFilter

        self.filter = BalancedIncrementalQuantileFilter(w=window, w_tol=max(1, window // 2), budget=rate)

    def wants(self, score: float) -> bool:
        return len(self.filter.query_by_utility(np.array([score]))) == 1

    def observe(self, score: float, requested: bool) -> None:
        self.filter.update(np.zeros((1, 1)), [0] if requested else [], np.array([score]))
