"""Evaluating a trained model on every held-out split, overall and per pose mode.

The experiment's headline number is the dataset's metric on the `test` split. Where a dataset has more to say, each
cycle also records (`SplitScore` rows, the `evals` table of the results database):

* the same metric on the `ood` split (synthetic datasets: the deployment distribution, a reversed pose-mode prior and
  a shifted appearance), so a sampler that seeks the rare modes is measured where they are common; it is reported
  beside the test split, never instead of it;
* the metric per pose mode on each split (datasets that record modes in `PoseSplit.groups`), so a reader sees *where*
  a sampler's selections helped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alpose_bench.pose.data import HELD_OUT_SPLITS, PoseDataset, PoseSplit
from alpose_bench.pose.metrics import MetricResult, evaluate

#: the group name of a whole split
ALL = "all"


@dataclass(frozen=True)
class SplitScore:
    """The metric on one split (`test`, `ood`), of all its images (group `all`) or of one pose mode."""

    split: str
    group: str
    value: float  # NaN where the group has no annotated joint
    n_images: int


def held_out_splits(dataset: PoseDataset) -> dict[str, PoseSplit]:
    """The non-empty held-out splits of `dataset`, test first."""
    splits = {name: getattr(dataset, name) for name in HELD_OUT_SPLITS}
    return {name: split for name, split in splits.items() if split is not None and len(split) > 0}


def split_scores(dataset: PoseDataset, name: str, split: PoseSplit, pred: np.ndarray) -> list[SplitScore]:
    """The metric of predictions `pred` on `split`: the whole split, then each pose mode present in it (in the
    dataset's mode order)."""

    def score(rows: np.ndarray | slice) -> MetricResult:
        return evaluate(
            dataset.metric, pred[rows], split.keypoints[rows], split.visible[rows].astype(bool),
            split.normalizer[rows], dataset.skeleton,
        )  # fmt: skip

    out = [SplitScore(name, ALL, score(slice(None)).mean, len(split))]
    groups = split.group_ids
    for gid, group in enumerate(dataset.group_names):
        rows = np.flatnonzero(groups == gid)
        if len(rows):
            out.append(SplitScore(name, group, score(rows).mean, len(rows)))
    return out
