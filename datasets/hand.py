"""A 3D hand (16 ICVL joints) articulated by a long-tailed mixture of gestures, and its orthographic depth image.

Hand frame (mm, before the random rotation): origin at the palm joint, fingers pointing up (-y), the thumb to the
image right (+x), the palm facing the camera (-z); z grows away from the camera. Each finger is a chain of three
phalanges (ICVL annotates its root, its middle joint and its tip); the palm, the thenar and the forearm are
capsules too. The depth image is the orthographic projection of the cube [-cube_mm, cube_mm]^3 around the hand
centre: pixel = (x / cube_mm + 1) * resolution / 2 - 0.5, depth (z / cube_mm + 1) / 2 * 254 rounded, nearest
surface first; pixels with no surface inside the cube (background, or beyond its far face) are 255.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alpose_bench.datasets.poses import rot_x, rot_y, rot_z, sample_modes
from alpose_bench.datasets.render import Canvas

BACKGROUND = 255  # uint8 depth of pixels without a surface inside the cube (far)

# Per finger (thumb, index, middle, ring, pinky): root position (mm), phalanx lengths, radii.
ROOTS = np.array(
    [[24.0, -22.0, -8.0], [21.0, -64.0, 0.0], [4.0, -68.0, 0.0], [-13.0, -64.0, 0.0], [-29.0, -56.0, 0.0]]
)
PHALANX = np.array(
    [[40.0, 30.0, 24.0], [40.0, 23.0, 20.0], [44.0, 27.0, 21.0], [41.0, 26.0, 20.0], [32.0, 19.0, 18.0]]
)
RADII = np.array([[11.0, 9.5, 8.5], [8.5, 8.0, 7.2], [8.7, 8.2, 7.4], [8.2, 7.8, 7.0], [7.2, 6.8, 6.2]])
BASE_SPREAD = np.deg2rad([0.0, 9.0, 0.0, -9.0, -18.0])  # in-palm direction of each finger at rest
_THUMB_DIR = np.array([0.75, -0.66, 0.0]) / np.linalg.norm([0.75, -0.66, 0.0])
_THUMB_BEND = np.array([-1.0, -0.2, -0.5])
# palm capsules: wrist-side bases of the metacarpals (index .. pinky), wrist bar, thenar base
_METACARPAL_BASES = np.array([[14.0, 2.0, 0.0], [5.0, 2.0, 0.0], [-5.0, 2.0, 0.0], [-14.0, 0.0, 0.0]])
_METACARPAL_RADII = np.array([11.0, 11.0, 10.5, 10.0])
_WRIST_BAR = (np.array([16.0, 4.0, 0.0]), np.array([-16.0, 2.0, 0.0]), 13.0)
_THENAR_BASE = (np.array([14.0, 0.0, -2.0]), 12.0)
_FOREARM = (np.array([-1.0, 14.0, 2.0]), 260.0, 26.0)  # start, length, radius


@dataclass(frozen=True)
class Gesture:
    """A hand gesture: mean flexion (deg) of each finger's three joints (thumb first), spread factor, opposition."""

    name: str
    prior: float
    flex: tuple[tuple[float, float, float], ...]  # (5, 3): MCP, PIP, DIP (thumb: CMC, MCP, IP)
    spread: float  # multiplies BASE_SPREAD and the thumb's abduction
    opposition: float  # thumb rotation out of the palm plane towards the camera, deg


_FIST = (85.0, 100.0, 65.0)
_STRAIGHT = (0.0, 5.0, 3.0)
_THUMB_TUCKED = (35.0, 45.0, 30.0)
_THUMB_OUT = (-10.0, 0.0, 0.0)

HAND_GESTURES: tuple[Gesture, ...] = (
    Gesture(
        "relaxed",
        0.30,
        ((10.0, 15.0, 15.0), (20, 25, 18), (25, 30, 20), (30, 35, 24), (35, 40, 28)),
        0.5,
        35.0,
    ),
    Gesture("open", 0.22, ((0.0, 0.0, 5.0),) + (_STRAIGHT,) * 4, 1.6, 5.0),
    Gesture("fist", 0.15, (_THUMB_TUCKED,) + (_FIST,) * 4, 0.0, 60.0),
    Gesture("point", 0.10, (_THUMB_TUCKED, _STRAIGHT, _FIST, _FIST, _FIST), 0.3, 55.0),
    Gesture(
        "pinch", 0.08, ((20.0, 25.0, 20.0), (40, 45, 30), (20, 25, 18), (20, 25, 18), (20, 25, 18)), 0.5, 65.0
    ),
    Gesture("peace", 0.06, (_THUMB_TUCKED, _STRAIGHT, _STRAIGHT, _FIST, _FIST), 2.2, 60.0),
    Gesture("thumbs_up", 0.04, (_THUMB_OUT,) + (_FIST,) * 4, 0.0, 0.0),
    Gesture("ok", 0.03, ((20.0, 25.0, 20.0), (45, 60, 40), (5, 10, 6), (5, 10, 6), (5, 10, 6)), 1.2, 65.0),
    Gesture("call", 0.02, (_THUMB_OUT, _FIST, _FIST, _FIST, _STRAIGHT), 1.0, 0.0),
)
GESTURE_NAMES: tuple[str, ...] = tuple(g.name for g in HAND_GESTURES)
GESTURE_PRIOR: tuple[float, ...] = tuple(g.prior for g in HAND_GESTURES)


@dataclass(frozen=True)
class HandView:
    """Distribution of the hand's global rotation (degrees) and of its size."""

    roll_std: float = 35.0  # in-plane
    roll_uniform: bool = False  # roll uniform over the circle instead
    pitch_std: float = 20.0
    yaw_std: float = 30.0
    back_prob: float = 0.2  # chance to see the back of the hand (yaw + 180)
    scale: tuple[float, float] = (0.88, 1.12)


TRAIN_VIEW = HandView()
OOD_VIEW = HandView(roll_uniform=True, pitch_std=35.0, yaw_std=50.0, back_prob=0.5, scale=(0.8, 1.2))


@dataclass(frozen=True)
class HandPoses:
    """A batch of posed hands in camera axes, mm, relative to the hand centre (the centre of the depth crop)."""

    joints: np.ndarray  # (N, 16, 3) ICVL order
    seg_a: np.ndarray  # (N, K, 3) capsule ends
    seg_b: np.ndarray  # (N, K, 3)
    radius: np.ndarray  # (N, K) mm
    gestures: np.ndarray  # (N,) int64


def _chains(flex: np.ndarray, spread: np.ndarray, opposition: np.ndarray) -> np.ndarray:
    """Finger chains (N, 5, 4, 3): root and the ends of the three phalanges, in the hand frame, unit scale."""
    n = len(flex)
    palmar = np.array([0.0, 0.0, -1.0])
    ang = BASE_SPREAD[None, :] * spread[:, None]  # (N, 5)
    fwd = np.stack([np.sin(ang), -np.cos(ang), np.zeros_like(ang)], -1)  # (N, 5, 3)
    bend = np.broadcast_to(palmar, (n, 5, 3)).copy()
    # thumb: abducted in the palm plane by the spread, turned towards the camera by the opposition
    t_in = _apply_z(_THUMB_DIR, 0.35 * (spread - 1.0))
    fwd[:, 0] = np.cos(opposition)[:, None] * t_in + np.sin(opposition)[:, None] * palmar
    tb = np.broadcast_to(_THUMB_BEND, (n, 3))
    tb = tb - (tb * fwd[:, 0]).sum(-1, keepdims=True) * fwd[:, 0]
    bend[:, 0] = tb / np.linalg.norm(tb, axis=-1, keepdims=True)
    phi = np.cumsum(flex, axis=2)  # (N, 5, 3)
    dirs = np.cos(phi)[..., None] * fwd[:, :, None] + np.sin(phi)[..., None] * bend[:, :, None]
    steps = dirs * PHALANX[None, :, :, None]
    return np.concatenate(
        [np.broadcast_to(ROOTS, (n, 5, 3))[:, :, None], ROOTS[None, :, None] + np.cumsum(steps, 2)], 2
    )


def _apply_z(v: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate the constant vector v (3,) about z by per-sample angles (N,) -> (N, 3)."""
    return np.einsum("nij,j->ni", rot_z(angle), v)


def sample_hands(
    rng: np.random.Generator,
    n: int,
    prior: tuple[float, ...] | np.ndarray = GESTURE_PRIOR,
    view: HandView = TRAIN_VIEW,
    centre_jitter_mm: float = 4.0,
) -> HandPoses:
    """Draw `n` hands: gesture, joint angles (7 deg noise), size, wrist angle, 3D rotation.

    The hand centre (the centre of the depth crop) is the centre of the joints' bounding box plus a small jitter,
    as a hand detector would give.
    """
    gestures = sample_modes(rng, n, prior)
    table = np.deg2rad(np.array([g.flex for g in HAND_GESTURES]))  # (G, 5, 3)
    flex = table[gestures] + np.deg2rad(7.0) * rng.standard_normal((n, 5, 3))
    flex[:, 0] = np.clip(flex[:, 0], np.deg2rad(-30), np.deg2rad(90))
    flex[:, 1:, 0] = np.clip(flex[:, 1:, 0], np.deg2rad(-25), np.deg2rad(100))
    flex[:, 1:, 1:] = np.clip(flex[:, 1:, 1:], 0.0, np.deg2rad(115))
    spread = np.maximum(
        np.array([g.spread for g in HAND_GESTURES])[gestures] + 0.25 * rng.standard_normal(n), 0.0
    )
    opposition = np.deg2rad(
        np.array([g.opposition for g in HAND_GESTURES])[gestures] + 8.0 * rng.standard_normal(n)
    )
    chains = _chains(flex, spread, opposition)  # (N, 5, 4, 3)

    joints = np.concatenate([np.zeros((n, 1, 3)), chains[:, :, [0, 1, 3]].reshape(n, 15, 3)], axis=1)
    seg_a = [chains[:, :, :3].reshape(n, 15, 3)]
    seg_b = [chains[:, :, 1:].reshape(n, 15, 3)]
    radius = [np.broadcast_to(RADII.reshape(15), (n, 15))]
    mcp = chains[:, 1:, 0]  # index .. pinky roots
    seg_a += [
        np.broadcast_to(_METACARPAL_BASES, (n, 4, 3)),
        mcp[:, :1],
        np.broadcast_to(_WRIST_BAR[0], (n, 1, 3)),
    ]
    seg_b += [mcp, mcp[:, 3:], np.broadcast_to(_WRIST_BAR[1], (n, 1, 3))]
    radius += [
        np.broadcast_to(_METACARPAL_RADII, (n, 4)),
        np.full((n, 1), 10.0),
        np.full((n, 1), _WRIST_BAR[2]),
    ]
    seg_a.append(np.broadcast_to(_THENAR_BASE[0], (n, 1, 3)))
    seg_b.append(chains[:, :1, 1])
    radius.append(np.full((n, 1), _THENAR_BASE[1]))
    wrist = rot_x(np.deg2rad(15.0) * rng.standard_normal(n)) @ rot_z(
        np.deg2rad(10.0) * rng.standard_normal(n)
    )
    forearm_dir = np.einsum("nij,j->ni", wrist, np.array([0.0, 1.0, 0.0]))
    seg_a.append(np.broadcast_to(_FOREARM[0], (n, 1, 3)))
    seg_b.append(_FOREARM[0] + _FOREARM[1] * forearm_dir[:, None])
    radius.append(np.full((n, 1), _FOREARM[2]))
    seg_a, seg_b, radius = np.concatenate(seg_a, 1), np.concatenate(seg_b, 1), np.concatenate(radius, 1)

    size = rng.uniform(*view.scale, n)
    roll = (
        rng.uniform(-np.pi, np.pi, n)
        if view.roll_uniform
        else np.deg2rad(view.roll_std) * rng.standard_normal(n)
    )
    yaw = np.deg2rad(view.yaw_std) * rng.standard_normal(n) + np.pi * (rng.random(n) < view.back_prob)
    rot = rot_z(roll) @ rot_x(np.deg2rad(view.pitch_std) * rng.standard_normal(n)) @ rot_y(yaw)
    rot = rot * size[:, None, None]
    joints, seg_a, seg_b = (np.einsum("nij,nkj->nki", rot, p) for p in (joints, seg_a, seg_b))
    centre = (joints.min(axis=1, keepdims=True) + joints.max(axis=1, keepdims=True)) / 2
    centre += centre_jitter_mm * rng.standard_normal((n, 1, 3))
    return HandPoses(
        joints=joints - centre,
        seg_a=seg_a - centre,
        seg_b=seg_b - centre,
        radius=radius * size[:, None],
        gestures=gestures,
    )


def mm_to_pixels(xy: np.ndarray, cube_mm: float, resolution: int) -> np.ndarray:
    """Orthographic projection of the crop cube: pixel = (x / cube_mm + 1) * resolution / 2 - 0.5."""
    return (np.asarray(xy) / cube_mm + 1.0) * resolution / 2.0 - 0.5


def render_depth(
    hands: HandPoses,
    cube_mm: float,
    resolution: int,
    rng: np.random.Generator,
    noise_mm: float = 1.0,
    dropout: float = 0.01,
    edge_dropout: float = 0.25,
) -> np.ndarray:
    """Depth images (N, res, res, 1) uint8 of the hands: near 0, far 254, background (nothing in the cube) 255.

    Sensor effects: Gaussian depth noise, random missing pixels and missing pixels along the silhouette.
    """
    n = len(hands.gestures)
    px_per_mm = resolution / (2.0 * cube_mm)
    a = mm_to_pixels(hands.seg_a[..., :2], cube_mm, resolution)
    b = mm_to_pixels(hands.seg_b[..., :2], cube_mm, resolution)
    out = np.empty((n, resolution, resolution, 1), dtype=np.uint8)
    step = max(1, (1 << 21) // (resolution * resolution))
    for s in range(0, n, step):
        sl = slice(s, min(n, s + step))
        canvas = Canvas(sl.stop - sl.start, resolution, background=None, z_per_px=1.0 / px_per_mm)
        for k in range(a.shape[1]):
            canvas.capsules(
                a[sl, k],
                b[sl, k],
                hands.seg_a[sl, k, 2],
                hands.seg_b[sl, k, 2],
                hands.radius[sl, k] * px_per_mm,
            )
        z = canvas.depth
        hit = np.isfinite(z)
        z = np.where(hit, z + noise_mm * rng.standard_normal(z.shape, dtype=np.float32), np.inf)
        padded = np.pad(hit, ((0, 0), (1, 1), (1, 1)), constant_values=False)
        edge = hit & ~(
            padded[:, :-2, 1:-1] & padded[:, 2:, 1:-1] & padded[:, 1:-1, :-2] & padded[:, 1:-1, 2:]
        )
        drop = (rng.random(z.shape) < dropout) | (edge & (rng.random(z.shape) < edge_dropout))
        z = np.where(drop, np.inf, z)
        value = np.rint((z / cube_mm + 1.0) / 2.0 * 254.0)
        value = np.where(np.isfinite(z) & (z <= cube_mm), np.clip(value, 0, 254), BACKGROUND)
        out[sl, ..., 0] = value.astype(np.uint8)
    return out
