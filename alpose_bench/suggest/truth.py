"""How good the suggestions were, from labels kept aside: does a sampler's score follow the candidates' true error?

For a project whose candidates' labels exist but were hidden (`alpose-bench data example-project` writes them to
truth.json), each candidate's true error is the mean distance of its predicted keypoints from the hidden ones, in
diagonals of the hidden keypoints' box (the normaliser of suggest's PCK). Per sampler: Spearman's ρ between its
scores and that error (p-value of no association), and the picks' mean error over all candidates' (1 = no better
than chance). Chance is drawn too: the 2.5-97.5 % band of ρ for 1,000 seeded random orders.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from alpose_bench.pose.metrics import per_image_error
from alpose_bench.suggest.project import ProjectError
from alpose_bench.suggest.suggester import Suggestions, box_diagonal

CHANCE_DRAWS = 1000


@dataclass(frozen=True)
class Agreement:
    """One sampler against the hidden labels. spearman/p: None for a sampler without scores."""

    sampler: str
    spearman: float | None
    p_value: float | None
    picks_error_ratio: float
    n: int


@dataclass(frozen=True)
class TruthReport:
    """Every sampler's agreement, the chance band of ρ and the candidates' mean true error."""

    rows: list[Agreement]
    chance: tuple[float, float]
    mean_error: float
    n: int


def read_truth(path: Path, joints: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """file name -> (keypoints (J, 2), visible (J,)) from a truth file ({"joints": [...], "keypoints": {name:
    [[x, y, v], ...]}}); ProjectError when it is unreadable or names other keypoints."""
    try:
        payload = json.loads(Path(path).read_text())
        names = tuple(payload["joints"])
        table = payload["keypoints"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ProjectError(f"--truth {path} is not a truth file ({str(exc).splitlines()[0]})") from None
    if names != joints:
        raise ProjectError(
            f"--truth {path} names keypoints {', '.join(names)}; the project has {', '.join(joints)}"
        )
    out = {}
    for name, rows in table.items():
        arr = np.asarray(rows, dtype=np.float64).reshape(len(joints), 3)
        out[os.path.basename(name)] = (arr[:, :2].astype(np.float32), arr[:, 2] > 0)
    return out


def agreement(found: Suggestions, truth_path: Path) -> TruthReport:
    """Every sampler's scores against the true errors of the candidates the truth file covers."""
    truth = read_truth(truth_path, found.project.skeleton.joints)
    names = [os.path.basename(f.image or f.key) for f in found.candidates]
    covered = np.array([n in truth for n in names])
    if not covered.any():
        raise ProjectError(f"--truth {truth_path} covers none of the {len(names)} candidates")
    idx = np.flatnonzero(covered)
    gt = np.stack([truth[names[k]][0] for k in idx])
    vis = np.stack([truth[names[k]][1] for k in idx])
    error = per_image_error(found.predicted[idx], gt, vis, box_diagonal(gt, vis))
    ok = np.isfinite(error)
    idx, error = idx[ok], error[ok]
    position = np.full(len(found.candidates), -1)
    position[idx] = np.arange(len(idx))
    rows = []
    for ranking in found.rankings:
        picked = position[ranking.picks]
        picked = picked[picked >= 0]
        ratio = float(error[picked].mean() / error.mean()) if len(picked) else float("nan")
        if ranking.has_scores:
            rho, p = spearmanr(ranking.scores[idx], error, nan_policy="omit")
            rows.append(Agreement(ranking.sampler, float(rho), float(p), ratio, len(idx)))
        else:
            rows.append(Agreement(ranking.sampler, None, None, ratio, len(idx)))
    rng = np.random.default_rng(0)
    draws = [spearmanr(rng.permutation(len(error)), error)[0] for _ in range(CHANCE_DRAWS)]
    band = (float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5)))
    return TruthReport(rows=rows, chance=band, mean_error=float(error.mean()), n=len(idx))
