"""3D kinematic tree of a human figure and the long-tailed mixture of pose modes that drives it (synth-human).

A pose is drawn in two steps: a pose mode (standing, walking, ... upside-down) from a long-tailed prior, then the
joint angles from that mode's Gaussian table, clipped to joint-angle limits. Forward kinematics through a tree with
per-person bone-length variation gives the 16 MPII joints in 3D. Units are "body heights": a standing figure is about
1.0 tall. Axes: x to the image right, y down, z away from the camera; a figure with yaw 0 faces the camera, so its
right side is on the image left (MPII convention).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from alpose_bench.pose.skeleton import MPII

# Joint indices in MPII order.
R_ANKLE, R_KNEE, R_HIP, L_HIP, L_KNEE, L_ANKLE = (
    MPII.index(j) for j in ("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle")
)
PELVIS, THORAX, UPPER_NECK, HEAD_TOP = (MPII.index(j) for j in ("pelvis", "thorax", "upper_neck", "head_top"))
R_WRIST, R_ELBOW, R_SHOULDER = (MPII.index(j) for j in ("r_wrist", "r_elbow", "r_shoulder"))
L_SHOULDER, L_ELBOW, L_WRIST = (MPII.index(j) for j in ("l_shoulder", "l_elbow", "l_wrist"))

# Mean bone lengths and half-widths in body heights (anthropometric proportions of an adult).
BONES = {
    "torso": 0.30,  # pelvis -> thorax
    "neck": 0.065,  # thorax -> upper neck
    "head": 0.12,  # upper neck -> head top
    "shoulder": 0.125,  # thorax -> shoulder, sideways
    "hip": 0.08,  # pelvis -> hip, sideways
    "upper_arm": 0.17,
    "forearm": 0.15,
    "thigh": 0.245,
    "shin": 0.245,
    "foot": 0.07,
}

SIDE_PARAMS = ("sh_flex", "sh_abd", "el_flex", "arm_twist", "hip_flex", "hip_abd", "knee_flex")
BODY_PARAMS = ("bend", "side", "twist", "head_bend", "head_side")

# Joint-angle limits in degrees (shoulder/hip flexion moves the limb forward, abduction sideways, away from the body).
LIMITS = {
    "sh_flex": (-60.0, 185.0),
    "sh_abd": (-15.0, 180.0),
    "el_flex": (0.0, 150.0),
    "arm_twist": (-90.0, 90.0),
    "hip_flex": (-35.0, 130.0),
    "hip_abd": (-15.0, 80.0),
    "knee_flex": (0.0, 155.0),
    "bend": (-35.0, 95.0),
    "side": (-40.0, 40.0),
    "twist": (-45.0, 45.0),
    "head_bend": (-40.0, 50.0),
    "head_side": (-35.0, 35.0),
}

# Defaults shared by the modes: (mean, std) in degrees, same for both sides unless a mode says r_/l_.
_BASE = {
    "sh_flex": (5.0, 12.0),
    "sh_abd": (12.0, 8.0),
    "el_flex": (15.0, 15.0),
    "arm_twist": (0.0, 20.0),
    "hip_flex": (3.0, 5.0),
    "hip_abd": (6.0, 4.0),
    "knee_flex": (4.0, 4.0),
    "bend": (3.0, 4.0),
    "side": (0.0, 4.0),
    "twist": (0.0, 8.0),
    "head_bend": (0.0, 10.0),
    "head_side": (0.0, 8.0),
}


@dataclass(frozen=True)
class PoseMode:
    """One pose mode: its prior weight, angle table overrides, yaw and in-plane rotation distributions.

    `angles` maps a parameter ("bend", "sh_abd", or a side-specific "r_hip_flex") to (mean, std) in degrees.
    `mirror`: swap the r_/l_ parameters with probability 1/2 (asymmetric modes such as walking or kicking).
    Yaw and roll are drawn around one of their centres (chosen uniformly) with the given std.
    """

    name: str
    prior: float
    angles: dict[str, tuple[float, float]] = field(default_factory=dict)
    mirror: bool = False
    yaw_centres: tuple[float, ...] = (0.0,)
    yaw_std: float = 30.0
    roll_centres: tuple[float, ...] = (0.0,)
    roll_std: float = 8.0


_FRONT = (0.0, 0.0, 0.0, 180.0)  # mostly facing the camera, a quarter seen from the back
_SIDE = (90.0, -90.0, 50.0, -50.0, 130.0, -130.0)

HUMAN_MODES: tuple[PoseMode, ...] = (
    PoseMode("standing", 0.36, {}, yaw_centres=_FRONT, yaw_std=35.0),
    PoseMode(
        "walking",
        0.22,
        {
            "r_hip_flex": (25.0, 8.0),
            "l_hip_flex": (-15.0, 8.0),
            "r_knee_flex": (12.0, 10.0),
            "l_knee_flex": (40.0, 15.0),
            "r_sh_flex": (-22.0, 10.0),
            "l_sh_flex": (28.0, 10.0),
            "el_flex": (25.0, 15.0),
            "sh_abd": (6.0, 5.0),
            "bend": (6.0, 4.0),
        },
        mirror=True,
        yaw_centres=_SIDE,
        yaw_std=20.0,
    ),  # fmt: skip
    PoseMode(
        "arms_raised",
        0.14,
        {"sh_abd": (145.0, 22.0), "sh_flex": (20.0, 20.0), "el_flex": (25.0, 25.0), "arm_twist": (0.0, 30.0)},
        yaw_centres=_FRONT,
        yaw_std=30.0,
    ),  # fmt: skip
    PoseMode(
        "crouching",
        0.10,
        {
            "bend": (35.0, 10.0),
            "hip_flex": (100.0, 15.0),
            "knee_flex": (120.0, 15.0),
            "hip_abd": (18.0, 8.0),
            "sh_flex": (55.0, 20.0),
            "sh_abd": (15.0, 10.0),
            "el_flex": (45.0, 25.0),
            "head_bend": (-15.0, 10.0),
        },
        yaw_centres=(0.0, 90.0, -90.0, 45.0, -45.0, 180.0),
        yaw_std=25.0,
    ),  # fmt: skip
    PoseMode(
        "kicking",
        0.08,
        {
            "r_hip_flex": (80.0, 15.0),
            "r_knee_flex": (20.0, 15.0),
            "l_hip_flex": (-5.0, 5.0),
            "l_knee_flex": (10.0, 6.0),
            "bend": (-12.0, 8.0),
            "sh_abd": (70.0, 20.0),
            "el_flex": (20.0, 15.0),
            "sh_flex": (10.0, 20.0),
        },
        mirror=True,
        yaw_centres=(90.0, -90.0, 60.0, -60.0),
        yaw_std=15.0,
    ),  # fmt: skip
    PoseMode(
        "lying",
        0.06,
        {"sh_abd": (35.0, 30.0), "sh_flex": (0.0, 30.0), "knee_flex": (15.0, 15.0), "hip_abd": (10.0, 8.0)},
        yaw_centres=(0.0, 180.0),
        yaw_std=25.0,
        roll_centres=(90.0, -90.0),
        roll_std=15.0,
    ),  # fmt: skip
    PoseMode(
        "upside_down",
        0.04,
        {
            "sh_flex": (10.0, 12.0),
            "sh_abd": (165.0, 10.0),
            "el_flex": (8.0, 8.0),
            "hip_abd": (22.0, 15.0),
            "hip_flex": (0.0, 20.0),
            "knee_flex": (10.0, 15.0),
            "head_bend": (-20.0, 10.0),
        },
        yaw_centres=(0.0, 180.0),
        yaw_std=25.0,
        roll_centres=(180.0,),
        roll_std=20.0,
    ),  # fmt: skip
)

HUMAN_MODE_NAMES: tuple[str, ...] = tuple(m.name for m in HUMAN_MODES)
HUMAN_MODE_PRIOR: tuple[float, ...] = tuple(m.prior for m in HUMAN_MODES)


def reversed_prior(prior: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """A shifted prior for out-of-distribution splits: the frequencies handed out in reverse order (rare modes dominate)."""
    p = np.asarray(prior, dtype=np.float64)
    order = np.argsort(-p, kind="stable")
    out = np.empty_like(p)
    out[order] = p[order[::-1]]
    return out / out.sum()


def sample_modes(rng: np.random.Generator, n: int, prior: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """Draw `n` mode ids from `prior` (normalised here)."""
    p = np.asarray(prior, dtype=np.float64)
    if p.ndim != 1 or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f"mode prior must be a non-negative vector with a positive sum, got {prior!r}")
    return rng.choice(len(p), size=n, p=p / p.sum()).astype(np.int64)


def _normal_table(
    rng: np.random.Generator, modes: np.ndarray, mode_set: tuple[PoseMode, ...], key: str
) -> np.ndarray:
    """Draw one parameter per sample from its mode's (mean, std), falling back to the side-free and base tables."""
    side_free = key[2:] if key[:2] in ("r_", "l_") else key
    means = np.array([m.angles.get(key, m.angles.get(side_free, _BASE[side_free]))[0] for m in mode_set])
    stds = np.array([m.angles.get(key, m.angles.get(side_free, _BASE[side_free]))[1] for m in mode_set])
    lo, hi = LIMITS[side_free]
    return np.clip(means[modes] + stds[modes] * rng.standard_normal(len(modes)), lo, hi)


def _centred(
    rng: np.random.Generator, modes: np.ndarray, centres: list[tuple[float, ...]], stds: np.ndarray
) -> np.ndarray:
    """Angle around one of the mode's centres (chosen uniformly per sample), in degrees."""
    count = np.array([len(c) for c in centres])
    table = np.array([list(c) + [0.0] * (count.max() - len(c)) for c in centres], dtype=np.float64)
    pick = np.minimum((rng.random(len(modes)) * count[modes]).astype(np.int64), count[modes] - 1)
    return table[modes, pick] + stds[modes] * rng.standard_normal(len(modes))


def sample_angles(
    rng: np.random.Generator, modes: np.ndarray, mode_set: tuple[PoseMode, ...] = HUMAN_MODES
) -> dict[str, np.ndarray]:
    """Joint angles (radians) for each sample's mode: body params, r_/l_ side params, yaw and roll."""
    out: dict[str, np.ndarray] = {}
    for key in BODY_PARAMS:
        out[key] = _normal_table(rng, modes, mode_set, key)
    for key in SIDE_PARAMS:
        out["r_" + key] = _normal_table(rng, modes, mode_set, "r_" + key)
        out["l_" + key] = _normal_table(rng, modes, mode_set, "l_" + key)
    mirror = np.array([m.mirror for m in mode_set])[modes] & (rng.random(len(modes)) < 0.5)
    for key in SIDE_PARAMS:
        r, l_ = out["r_" + key], out["l_" + key]
        out["r_" + key], out["l_" + key] = np.where(mirror, l_, r), np.where(mirror, r, l_)
    out["yaw"] = _centred(
        rng, modes, [m.yaw_centres for m in mode_set], np.array([m.yaw_std for m in mode_set])
    )
    out["roll"] = _centred(
        rng, modes, [m.roll_centres for m in mode_set], np.array([m.roll_std for m in mode_set])
    )
    return {k: np.deg2rad(v) for k, v in out.items()}


def sample_bones(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Per-person bone lengths: 5 % length variation per bone, 8 % variation of the shoulder and hip widths."""
    out = {k: v * np.clip(1.0 + 0.05 * rng.standard_normal(n), 0.85, 1.15) for k, v in BONES.items()}
    width = np.clip(1.0 + 0.08 * rng.standard_normal(n), 0.8, 1.2)
    out["shoulder"] = out["shoulder"] * width
    out["hip"] = out["hip"] * width
    return out


def rot_x(a: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations about x; positive angles turn -y (up) towards -z (the camera)."""
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def rot_y(a: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations about the vertical axis y (yaw)."""
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rot_z(a: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations about z (in the image plane)."""
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _apply(r: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors v (N, 3) or a constant (3,) by rotations r (N, 3, 3)."""
    return np.einsum("nij,nj->ni", r, np.broadcast_to(v, r.shape[:-1]))


def _limb(
    base: np.ndarray, side: float, flex: np.ndarray, abd: np.ndarray, bend_dir: float, twist: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Direction of the proximal bone and the unit bend direction of the distal joint, in the parent frame `base`.

    Flexion turns the limb from hanging down towards the front (-z); abduction turns it out to its side
    (`side` = -1 right, +1 left). The distal joint bends towards `bend_dir` * z (elbow: front, knee: back), turned
    about the proximal bone by `twist`.
    """
    frame = base @ rot_z(-side * abd) @ rot_x(-flex)
    d = _apply(frame, np.array([0.0, 1.0, 0.0]))
    b0 = _apply(frame, np.array([0.0, 0.0, bend_dir]))
    b = np.cos(twist)[:, None] * b0 + np.sin(twist)[:, None] * np.cross(d, b0)
    return d, b


@dataclass(frozen=True)
class HumanPoses:
    """A batch of 3D figures: joints in MPII order, face direction, toe tips, mode id and in-plane roll."""

    joints: np.ndarray  # (N, 16, 3) body heights, pelvis at the origin, before roll
    facing: np.ndarray  # (N, 3) unit vector the face points to (z < 0: towards the camera)
    toes: np.ndarray  # (N, 2, 3) right and left toe tips
    modes: np.ndarray  # (N,) int64
    roll: np.ndarray  # (N,) radians, in-plane rotation still to apply


def forward_kinematics(angles: dict[str, np.ndarray], bones: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Joints (N, 16, 3), facing (N, 3) and toes (N, 2, 3) of the posed tree, yaw applied, roll not."""
    n = len(angles["bend"])
    joints = np.zeros((n, 16, 3))
    col = {k: v[:, None] for k, v in bones.items()}
    upper = rot_y(angles["twist"]) @ rot_z(angles["side"]) @ rot_x(angles["bend"])
    joints[:, THORAX] = _apply(upper, np.array([0.0, -1.0, 0.0])) * col["torso"]
    head = upper @ rot_x(angles["head_bend"]) @ rot_z(angles["head_side"])
    up_head = _apply(head, np.array([0.0, -1.0, 0.0]))
    joints[:, UPPER_NECK] = joints[:, THORAX] + up_head * col["neck"]
    joints[:, HEAD_TOP] = joints[:, UPPER_NECK] + up_head * col["head"]
    facing = _apply(head, np.array([0.0, 0.0, -1.0]))
    identity = np.broadcast_to(np.eye(3), (n, 3, 3))
    toes = np.zeros((n, 2, 3))
    for side, pre, (sho, elb, wri), (hip, kne, ank) in (
        (-1.0, "r_", (R_SHOULDER, R_ELBOW, R_WRIST), (R_HIP, R_KNEE, R_ANKLE)),
        (1.0, "l_", (L_SHOULDER, L_ELBOW, L_WRIST), (L_HIP, L_KNEE, L_ANKLE)),
    ):
        joints[:, sho] = joints[:, THORAX] + _apply(upper, np.array([side, 0.0, 0.0])) * col["shoulder"]
        joints[:, sho] += _apply(upper, np.array([0.0, 0.025, 0.0]))
        d, b = _limb(
            upper, side, angles[pre + "sh_flex"], angles[pre + "sh_abd"], -1.0, angles[pre + "arm_twist"]
        )
        e = angles[pre + "el_flex"][:, None]
        joints[:, elb] = joints[:, sho] + d * col["upper_arm"]
        joints[:, wri] = joints[:, elb] + (np.cos(e) * d + np.sin(e) * b) * col["forearm"]
        joints[:, hip] = np.array([side, 0.0, 0.0]) * col["hip"] + np.array([0.0, 0.03, 0.0])
        d, b = _limb(identity, side, angles[pre + "hip_flex"], angles[pre + "hip_abd"], 1.0, np.zeros(n))
        k = angles[pre + "knee_flex"][:, None]
        shin = np.cos(k) * d + np.sin(k) * b
        joints[:, kne] = joints[:, hip] + d * col["thigh"]
        joints[:, ank] = joints[:, kne] + shin * col["shin"]
        foot_dir = -(np.cos(k) * b - np.sin(k) * d)  # perpendicular to the shin, towards the front
        toes[:, 0 if side < 0 else 1] = joints[:, ank] + (foot_dir + 0.35 * shin) * col["foot"]
    yaw = rot_y(angles["yaw"])
    joints = np.einsum("nij,nkj->nki", yaw, joints)
    toes = np.einsum("nij,nkj->nki", yaw, toes)
    facing = _apply(yaw, facing)
    return joints, facing, toes


def sample_human_poses(
    rng: np.random.Generator, n: int, prior: tuple[float, ...] | np.ndarray = HUMAN_MODE_PRIOR
) -> HumanPoses:
    """Draw `n` figures: modes from `prior`, then angles, bone lengths and forward kinematics."""
    modes = sample_modes(rng, n, prior)
    angles = sample_angles(rng, modes)
    bones = sample_bones(rng, n)
    joints, facing, toes = forward_kinematics(angles, bones)
    return HumanPoses(joints=joints, facing=facing, toes=toes, modes=modes, roll=angles["roll"])
