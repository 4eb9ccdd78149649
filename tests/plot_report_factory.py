"""Fabricated experiment results for the plot and report tests: a real results store written through
`alpose_bench.results.store.Store`, so the tests read it back through `alpose_bench.results.read` exactly as the CLI does."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alpose_bench.pose.evaluation import SplitScore
from alpose_bench.pose.skeleton import HAND_JOINTS, MPII_JOINTS
from alpose_bench.results.store import CycleRecord, Store

SAMPLERS = ("random", "coreset", "learning-loss", "egl", "aleatoric", "mpe", "vl4pose")
GROUP_NAMES = ["standing", "walking", "sitting", "arms-up", "kicking"]
GROUP_PRIOR = [0.45, 0.25, 0.15, 0.10, 0.05]
# per-sampler quality offset (metric points) and selection cost (ms per pool image; random scores nothing)
OFFSET = {
    "random": 0.0,
    "coreset": -1.0,
    "learning-loss": 0.5,
    "egl": 1.0,
    "aleatoric": 0.2,
    "mpe": 2.5,
    "vl4pose": 3.0,
}
MS_PER_IMAGE = {"random": 0.0, "coreset": 4.0, "learning-loss": 0.6, "egl": 180.0, "aleatoric": 0.6, "mpe": 2.5,
                "vl4pose": 3.0}  # fmt: skip

INIT, BUDGET, POOL = 100, 100, 2000


def experiment_spec(name: str, datasets: tuple[str, ...], seeds: int) -> dict:
    return {
        "name": name, "preset": "quick", "datasets": list(datasets), "samplers": list(SAMPLERS), "seeds": seeds,
        "resolution": 64, "pool_size": POOL, "test_size": 200, "dataset_seed": 0, "data_root": None,
        "init": INIT, "budget": BUDGET,
    }  # fmt: skip


def predictions(rng: np.random.Generator, sampler: str, n: int, hand: bool) -> dict[str, np.ndarray]:
    """What the loop stores per selection: keypoints in pixels (2D) or mm around the hand centre (3D), and VL4Pose's
    refined keypoints (pixels) on 2D data."""
    if hand:
        return {"keypoints": rng.uniform(-100, 100, (n, 16, 3))}
    kp = rng.uniform(0, 63, (n, 16, 2))
    return {"keypoints": kp, "refined_keypoints": kp + 1.0} if sampler == "vl4pose" else {"keypoints": kp}


def split_scores(rng: np.random.Generator, test: float, sampler: str, progress: float) -> list[SplitScore]:
    """The test and ood scores of one cycle, whole split and per mode: the ood split reads 20 points lower, and
    the samplers that seek rare modes gain on the rare ones (the last two) as the budget grows."""
    rows = []
    for split, shift in (("test", 0.0), ("ood", -20.0)):
        rows.append(SplitScore(split, "all", test + shift, 20))
        for g, name in enumerate(GROUP_NAMES):
            seeks = OFFSET.get(sampler, 0.0) * progress * (3.0 if g >= 3 else -0.5)
            rows.append(SplitScore(split, name, test + shift - 5 * g + seeks + rng.normal(0, 1.0), 4))
    return rows


def write_results(
    directory: Path,
    *,
    datasets: tuple[str, ...] = ("synth-human",),
    samplers: tuple[str, ...] = SAMPLERS,
    seeds: int = 5,
    cycles: int = 10,
    pool: int = POOL,
) -> Path:
    """Write a store with `samplers` x `seeds` x `cycles` per dataset; synth-human scores PCKh, synth-hand MPJPE.
    The spec names a `pool`-image synthetic dataset, so `--show-selection` can regenerate its images."""
    rng = np.random.default_rng(0)
    with Store(directory) as store:
        spec = {**experiment_spec(directory.name, datasets, seeds), "pool_size": pool, "test_size": 20}
        store.claim(spec, "f" * 16, {
            "versions": {"alpose-bench": "0.1.0", "torch": "2.13.0", "numpy": "2.4.6"},
            "git": "abc1234", "device": "cpu (test)", "created": "2025-01-02T03:04:05", "host": "testhost",
            "command": "alpose-bench run --seeds 5",
        })  # fmt: skip
        for dataset in datasets:
            hand = dataset == "synth-hand"
            joints = list(HAND_JOINTS if hand else MPII_JOINTS)
            store.set_dataset_info(dataset, {
                "metric": "mpjpe" if hand else "pckh", "task": "regression3d" if hand else "heatmap2d",
                "joints": joints, "group_names": GROUP_NAMES, "group_prior": GROUP_PRIOR,
            })  # fmt: skip
            for sampler in samplers:
                for seed in range(seeds):
                    for cycle in range(cycles):
                        n = INIT + BUDGET * cycle
                        base = 45 + 35 * (1 - np.exp(-n / 500)) + OFFSET.get(sampler, 0.0) * cycle / cycles
                        value = (60 - 0.5 * base if hand else base) + rng.normal(0, 1.0)
                        per_joint = {j: float(value + rng.normal(0, 3)) for j in joints}
                        last = cycle == cycles - 1
                        unlabelled = max(pool - n, BUDGET)
                        ms = MS_PER_IMAGE.get(sampler, 1.0)
                        selected = (
                            np.zeros(0, int) if last else np.sort(rng.choice(pool, BUDGET, replace=False))
                        )
                        select_s = (
                            None
                            if last
                            else (0.001 if ms == 0 else ms * unlabelled / 1000 * rng.uniform(0.9, 1.1))
                        )
                        store.commit_cycle(CycleRecord(
                            dataset=dataset, sampler=sampler, seed=seed, cycle=cycle, n_labelled=n,
                            metric="mpjpe" if hand else "pckh", value=float(value), per_joint=per_joint,
                            train_s=float(20 + n / 50 + rng.uniform(0, 1)), eval_s=float(2 + rng.uniform(0, 0.2)),
                            select_s=select_s, select_images=0 if (last or ms == 0) else unlabelled, selected=selected,
                            scores=None if sampler == "random" else rng.random(len(selected)),
                            groups=rng.choice(5, len(selected), p=GROUP_PRIOR if sampler == "random" else None),
                            arrays={} if last else predictions(rng, sampler, len(selected), hand),
                            evals=split_scores(rng, float(value), sampler, cycle / cycles),
                        ))  # fmt: skip
                    store.set_status(dataset, sampler, seed, "done")
    return directory
