"""Joint sets and skeleton trees of the benchmark's datasets.

One `Skeleton` names the joints (in the dataset's own order), the left/right pairs swapped by a horizontal flip,
the parent -> child links of the tree used by VL4Pose (rooted tree, parents listed before their children), and the
joints the metrics need (PCKh excludes pelvis/thorax from its mean; PCK normalises by a torso diagonal).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Skeleton:
    """A named joint set with its kinematic tree.

    `links` are (parent, child) index pairs in topological order starting at `root`; every joint but the root is a
    child exactly once, so the links form a spanning tree.
    """

    name: str
    joints: tuple[str, ...]
    links: tuple[tuple[int, int], ...]
    root: int
    flip_pairs: tuple[tuple[int, int], ...] = ()
    # joints left out of the reported mean of a metric (MPII's official PCKh leaves out pelvis and thorax)
    excluded_from_mean: tuple[int, ...] = ()
    # (a, b), (c, d): torso size = max(|a - b|, |c - d|) for PCK (LSP convention)
    torso_pairs: tuple[tuple[int, int], ...] = ()
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {n: i for i, n in enumerate(self.joints)})
        children = [c for _, c in self.links]
        if sorted(children + [self.root]) != list(range(len(self.joints))):
            raise ValueError(
                f"skeleton {self.name!r}: links must form a spanning tree rooted at joint {self.root}"
            )
        seen = {self.root}
        for parent, child in self.links:
            if parent not in seen:
                raise ValueError(f"skeleton {self.name!r}: link {parent}->{child} listed before its parent")
            seen.add(child)

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def num_links(self) -> int:
        return len(self.links)

    def index(self, name: str) -> int:
        return self._index[name]

    def flip_permutation(self) -> np.ndarray:
        """Index permutation that maps joints to their mirror joints (identity for centre joints)."""
        perm = np.arange(self.num_joints)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def parents(self) -> np.ndarray:
        """parent[j] for every joint; -1 for the root."""
        parent = np.full(self.num_joints, -1, dtype=np.int64)
        for p, c in self.links:
            parent[c] = p
        return parent

    def mean_joints(self) -> np.ndarray:
        """Joints that count in the reported mean of the metric."""
        return np.array(
            [j for j in range(self.num_joints) if j not in self.excluded_from_mean], dtype=np.int64
        )


def _links(joints: tuple[str, ...], pairs: list[tuple[str, str]]) -> tuple[tuple[int, int], ...]:
    index = {n: i for i, n in enumerate(joints)}
    return tuple((index[p], index[c]) for p, c in pairs)


MPII_JOINTS = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
    "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)  # fmt: skip

# The reference code (activelearning.py::vl4pose) hangs the shoulders off the thorax; the VL4Pose slides draw them
# under the neck. We follow the code, which produced the published numbers.
MPII = Skeleton(
    name="mpii",
    joints=MPII_JOINTS,
    links=_links(
        MPII_JOINTS,
        [
            ("head_top", "upper_neck"),
            ("upper_neck", "thorax"),
            ("thorax", "pelvis"),
            ("thorax", "l_shoulder"),
            ("l_shoulder", "l_elbow"),
            ("l_elbow", "l_wrist"),
            ("thorax", "r_shoulder"),
            ("r_shoulder", "r_elbow"),
            ("r_elbow", "r_wrist"),
            ("pelvis", "l_hip"),
            ("l_hip", "l_knee"),
            ("l_knee", "l_ankle"),
            ("pelvis", "r_hip"),
            ("r_hip", "r_knee"),
            ("r_knee", "r_ankle"),
        ],
    ),  # fmt: skip
    root=MPII_JOINTS.index("head_top"),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    excluded_from_mean=(6, 7),
    torso_pairs=((13, 2), (12, 3)),
)

LSP_JOINTS = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "r_wrist", "r_elbow",
    "r_shoulder", "l_shoulder", "l_elbow", "l_wrist", "neck", "head_top",
)  # fmt: skip

# Reference code: no pelvis/thorax in LSP, so the hips hang off the shoulders.
LSP = Skeleton(
    name="lsp",
    joints=LSP_JOINTS,
    links=_links(
        LSP_JOINTS,
        [
            ("head_top", "neck"),
            ("neck", "l_shoulder"),
            ("l_shoulder", "l_elbow"),
            ("l_elbow", "l_wrist"),
            ("neck", "r_shoulder"),
            ("r_shoulder", "r_elbow"),
            ("r_elbow", "r_wrist"),
            ("l_shoulder", "l_hip"),
            ("l_hip", "l_knee"),
            ("l_knee", "l_ankle"),
            ("r_shoulder", "r_hip"),
            ("r_hip", "r_knee"),
            ("r_knee", "r_ankle"),
        ],
    ),  # fmt: skip
    root=LSP_JOINTS.index("head_top"),
    flip_pairs=((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9)),
    torso_pairs=((9, 2), (8, 3)),  # l_shoulder - r_hip, r_shoulder - l_hip
)

HAND_JOINTS = (
    "palm",
    "thumb_root", "thumb_mid", "thumb_tip",
    "index_root", "index_mid", "index_tip",
    "middle_root", "middle_mid", "middle_tip",
    "ring_root", "ring_mid", "ring_tip",
    "pinky_root", "pinky_mid", "pinky_tip",
)  # fmt: skip

# ICVL's 16 joints in the order of its label files. The exact ICVL tree is not in any public code; we use the one the
# VL4Pose slides draw (root at the palm, a link to each finger's first joint, then a chain along each finger).
ICVL = Skeleton(
    name="icvl",
    joints=HAND_JOINTS,
    links=tuple(
        link for f in range(5) for link in ((0, 1 + 3 * f), (1 + 3 * f, 2 + 3 * f), (2 + 3 * f, 3 + 3 * f))
    ),
    root=0,
)

SKELETONS: dict[str, Skeleton] = {s.name: s for s in (MPII, LSP, ICVL)}
