"""The renderer's output is pinned: datasets drawn by it (`lsp-rendered`, `lspet-rendered`, and the synthetic
worlds) key their caches by a version, so a change that moves pixels must say so by bumping that version."""

from __future__ import annotations

import numpy as np

from alpose_bench.datasets.render import OOD_STYLE, RENDER_VERSION, render_people
from alpose_bench.pose.skeleton import LSP, MPII

#: a standing person in a 64 px crop (x, y), MPII order
STANDING = {
    "r_ankle": (26, 58), "r_knee": (27, 46), "r_hip": (28, 34), "l_hip": (36, 34), "l_knee": (37, 46),
    "l_ankle": (38, 58), "pelvis": (32, 34), "thorax": (32, 18), "upper_neck": (32, 15), "head_top": (32, 5),
    "r_wrist": (20, 36), "r_elbow": (22, 26), "r_shoulder": (25, 17), "l_shoulder": (39, 17), "l_elbow": (43, 26),
    "l_wrist": (45, 36),
}  # fmt: skip


def people(skeleton, n: int = 6) -> np.ndarray:
    """`n` jittered copies of the standing person in `skeleton`'s joint order (LSP's neck is MPII's upper neck)."""
    base = np.array([STANDING["upper_neck" if j == "neck" else j] for j in skeleton.joints], dtype=float)
    return base + np.random.default_rng(11).normal(0.0, 1.5, (n, *base.shape))


def drawn() -> dict[str, np.ndarray]:
    """Mean and standard deviation of each drawn image, in uint8 levels."""
    batches = {
        "mpii": render_people(people(MPII), np.ones((6, 16), bool), MPII, 64, np.random.default_rng(1)),
        "mpii-ood": render_people(
            people(MPII), np.ones((6, 16), bool), MPII, 64, np.random.default_rng(2), OOD_STYLE
        ),
        "lsp": render_people(people(LSP), np.ones((6, 14), bool), LSP, 64, np.random.default_rng(3)),
    }
    return {k: np.stack([v.reshape(6, -1).mean(1), v.reshape(6, -1).std(1)]) for k, v in batches.items()}


PINNED = {
    "mpii": [[88.4, 86.03, 105.28, 86.65, 144.01, 129.27], [38.56, 39.63, 36.91, 30.74, 52.17, 47.0]],
    "mpii-ood": [[84.78, 70.99, 63.55, 75.18, 80.62, 81.97], [58.66, 50.48, 56.96, 42.77, 68.69, 42.89]],
    "lsp": [[48.61, 153.88, 66.51, 134.94, 123.32, 126.18], [24.19, 65.1, 42.89, 41.27, 36.89, 40.27]],
}  # at RENDER_VERSION e39b99be4f5a9218


def test_the_drawings_are_what_render_version_says() -> None:
    got = drawn()
    for name, expected in PINNED.items():
        assert np.allclose(got[name], expected, atol=0.05), (
            f"the renderer draws {name} differently than at RENDER_VERSION {RENDER_VERSION}: if that is intended, "
            f"bump RENDER_VERSION in datasets/render/__init__.py (and GENERATOR_VERSION of the synthetic worlds) "
            f"and pin the new values: {np.round(got[name], 2).tolist()}"
        )
    assert set(PINNED) == set(got)
