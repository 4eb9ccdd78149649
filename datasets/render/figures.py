"""Figure geometry: how a skeleton is drawn (capsules per link, head, torso, hands and feet), head boxes, and
what a renderer must estimate when real poses do not say it (body size, facing)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from alpose_bench.datasets.render.appearance import SLOTS
from alpose_bench.datasets.render.canvas import Canvas
from alpose_bench.pose.skeleton import Skeleton


@dataclass(frozen=True)
class _Link:
    a: int
    b: int
    radius: float  # in body heights
    slot: int  # index into SLOTS
    side: int  # 0 right/centre, 1 left
    arm: bool  # drawn in front of the torso when no depth is given


@dataclass(frozen=True)
class _FigureSpec:
    links: tuple[_Link, ...]
    head_top: int
    neck: int
    torso: tuple[int, int, int, int] | None  # r_shoulder, l_shoulder, l_hip, r_hip
    hands: tuple[tuple[int, int, int], ...]  # (elbow, wrist, side)
    feet: tuple[tuple[int, int, int], ...]  # (knee, ankle, side)
    typical: tuple[float, ...]  # typical length of each skeleton link in body heights (0: unknown)


def _kind(name: str) -> tuple[str, int]:
    side = 1 if name.startswith("l_") else 0
    return (name[2:] if name[:2] in ("l_", "r_") else name), side


# (joint kind, joint kind) -> (radius, colour slot, drawn as an arm, typical length); lengths in body heights
_LINK_TABLE: dict[frozenset[str], tuple[float, str, bool, float]] = {
    frozenset(("ankle", "knee")): (0.048, "bottom_lower", False, 0.245),
    frozenset(("knee", "hip")): (0.062, "bottom", False, 0.245),
    frozenset(("wrist", "elbow")): (0.036, "top_lower", True, 0.15),
    frozenset(("elbow", "shoulder")): (0.043, "top", True, 0.17),
    frozenset(("upper_neck", "thorax")): (0.036, "skin", False, 0.065),
    frozenset(("thorax", "pelvis")): (0.09, "top", False, 0.30),
    frozenset(("thorax", "shoulder")): (0.05, "top", False, 0.125),
    frozenset(("neck", "shoulder")): (0.045, "top", False, 0.15),
    frozenset(("pelvis", "hip")): (0.065, "bottom", False, 0.08),
    frozenset(("shoulder", "hip")): (0.055, "top", False, 0.32),
    frozenset(("head_top", "upper_neck")): (0.0, "hair", False, 0.12),
    frozenset(("head_top", "neck")): (0.0, "hair", False, 0.15),
}
_DEFAULT_LINK = (0.035, "top", False, 0.0)  # unknown links: drawn, not used to estimate the body size


@cache
def figure_spec(skeleton: Skeleton) -> _FigureSpec:
    """How to draw a skeleton: capsules per link (head link excluded), head, torso quad, hands and feet."""
    names = skeleton.joints
    if "head_top" not in names or not ({"upper_neck", "neck"} & set(names)):
        raise ValueError(
            f"skeleton {skeleton.name!r} needs joints 'head_top' and 'upper_neck' or 'neck' to be drawn"
        )
    head_top = names.index("head_top")
    neck = names.index("upper_neck") if "upper_neck" in names else names.index("neck")
    links, typical = [], []
    for a, b in skeleton.links:
        (ka, sa), (kb, sb) = _kind(names[a]), _kind(names[b])
        radius, slot, arm, length = _LINK_TABLE.get(frozenset((ka, kb)), _DEFAULT_LINK)
        typical.append(length)
        if {a, b} != {head_top, neck}:  # the head is drawn on its own
            links.append(_Link(a, b, radius, SLOTS.index(slot), max(sa, sb), arm))
    torso = None
    if {"r_shoulder", "l_shoulder", "l_hip", "r_hip"} <= set(names):
        torso = tuple(names.index(j) for j in ("r_shoulder", "l_shoulder", "l_hip", "r_hip"))
    hands = tuple(
        (names.index(f"{s}_elbow"), names.index(f"{s}_wrist"), int(s == "l"))
        for s in "rl"
        if {f"{s}_elbow", f"{s}_wrist"} <= set(names)
    )
    feet = tuple(
        (names.index(f"{s}_knee"), names.index(f"{s}_ankle"), int(s == "l"))
        for s in "rl"
        if {f"{s}_knee", f"{s}_ankle"} <= set(names)
    )
    return _FigureSpec(tuple(links), head_top, neck, torso, hands, feet, tuple(typical))  # type: ignore[arg-type]


def head_boxes(keypoints: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """Axis-aligned head boxes (N, 4) = x1, y1, x2, y2 in pixels, from head_top and upper_neck (or neck).

    The box bounds the drawn head (a capsule of width 0.76 L over the head length L) with a margin of 0.15 L, so
    that 0.6 x its diagonal, the head size of the official MPII PCKh, is about L for an upright head.
    """
    spec = figure_spec(skeleton)
    kp = np.asarray(keypoints, dtype=np.float64)
    top, neck = kp[:, spec.head_top, :2], kp[:, spec.neck, :2]
    length = np.linalg.norm(neck - top, axis=1, keepdims=True)
    u = (neck - top) / np.maximum(length, 1e-9)
    r = 0.38 * length
    p1, p2 = top + u * r, neck - u * r
    lo, hi = np.minimum(p1, p2) - r - 0.15 * length, np.maximum(p1, p2) + r + 0.15 * length
    return np.concatenate([lo, hi], axis=1)


def head_box_diagonal(keypoints: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """Diagonal (N,) of `head_boxes`, in pixels: the PCKh normaliser of a figure."""
    box = head_boxes(keypoints, skeleton)
    return np.hypot(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])


@dataclass(frozen=True)
class FigureExtras:
    """What a renderer cannot guess from 2D keypoints; synthetic figures know it, real poses leave it None.

    depth   (N, J) joint depth in pixels (larger = farther); decides which part hides which.
    facing  (N, 3) unit vector the face points to (z < 0: towards the camera).
    toes    (N, 2, 3) right and left toe tips (x, y px, depth px); None draws round feet at the ankles.
    unit    (N,) pixels per body height (limb thickness scales with it).
    """

    depth: np.ndarray | None = None
    facing: np.ndarray | None = None
    toes: np.ndarray | None = None
    unit: np.ndarray | None = None


def estimate_unit(
    kp: np.ndarray, visible: np.ndarray, skeleton: Skeleton, spec: _FigureSpec, resolution: int
) -> np.ndarray:
    """Pixels per body height of real poses: the 80th percentile over annotated links of length / typical length.

    Foreshortening only shortens links, so a high percentile is robust to it. Without any link: 60 % of the image.
    """
    links = np.array(skeleton.links)
    typical = np.array(spec.typical)
    lengths = np.linalg.norm(kp[:, links[:, 0]] - kp[:, links[:, 1]], axis=2)
    usable = visible[:, links[:, 0]] & visible[:, links[:, 1]] & (typical > 0)
    ratio = np.where(usable, lengths / np.where(typical > 0, typical, 1.0), np.nan)
    unit = np.full(len(kp), 0.6 * resolution)
    rows = usable.any(axis=1)
    if rows.any():
        unit[rows] = np.nanpercentile(ratio[rows], 80, axis=1)
    return np.where(np.isfinite(unit) & (unit > 0), unit, 0.6 * resolution)


def estimate_facing(kp: np.ndarray, visible: np.ndarray, skeleton: Skeleton, spec: _FigureSpec) -> np.ndarray:
    """Facing towards the camera unless the right shoulder (or hip) is on the figure's left, seen from its head."""
    names = skeleton.joints
    facing = np.tile(np.array([0.0, 0.0, -1.0]), (len(kp), 1))
    up = kp[:, spec.head_top] - kp[:, spec.neck]
    for r, l_ in (("r_shoulder", "l_shoulder"), ("r_hip", "l_hip")):
        if r in names and l_ in names:
            ri, li = names.index(r), names.index(l_)
            across = kp[:, li] - kp[:, ri]
            cross = up[:, 0] * across[:, 1] - up[:, 1] * across[:, 0]  # > 0: left joint on the image right
            back = (cross < 0) & visible[:, ri] & visible[:, li]
            facing[back, 2] = 1.0
            break
    return facing


def draw_figures(
    canvas: Canvas,
    kp: np.ndarray,
    visible: np.ndarray,
    skeleton: Skeleton,
    palette: np.ndarray,
    extras: FigureExtras,
) -> None:
    """Draw the figures of a sub-batch onto `canvas` (keypoints already in pixels, extras complete)."""
    spec = figure_spec(skeleton)
    n = len(kp)
    unit = extras.unit
    depth = extras.depth if extras.depth is not None else np.zeros((n, kp.shape[1]))
    no_depth = extras.depth is None
    rows = np.arange(n)

    def col(slot: str | int, side: int) -> np.ndarray:
        return palette[rows, SLOTS.index(slot) if isinstance(slot, str) else slot, side]

    # torso quad, a little behind the torso's central capsule
    if spec.torso is not None:
        rs, ls, lh, rh = spec.torso
        ok = visible[:, [rs, ls, lh, rh]].all(axis=1)
        z = depth[:, [rs, ls, lh, rh]].mean(axis=1) + 0.04 * unit
        colour = col("top", 0)
        canvas.triangles(kp[:, [rs, ls, lh]], z, colour, ok)
        canvas.triangles(kp[:, [rs, lh, rh]], z, colour, ok)
    for link in spec.links:
        ok = visible[:, link.a] & visible[:, link.b]
        offset = -0.12 * unit if (no_depth and link.arm) else 0.0
        canvas.capsules(
            kp[:, link.a], kp[:, link.b], depth[:, link.a] + offset, depth[:, link.b] + offset,
            link.radius * unit, col(link.slot, link.side), ok,
        )  # fmt: skip
    for elbow, wrist, side in spec.hands:
        ok = visible[:, elbow] & visible[:, wrist]
        fore = kp[:, wrist] - kp[:, elbow]
        fore_len = np.linalg.norm(fore, axis=1, keepdims=True)
        tip = kp[:, wrist] + fore / np.maximum(fore_len, 1e-6) * (0.05 * unit)[:, None]
        dz = (depth[:, wrist] - depth[:, elbow]) * 0.3
        offset = -0.12 * unit if no_depth else 0.0
        canvas.capsules(
            kp[:, wrist],
            tip,
            depth[:, wrist] + offset,
            depth[:, wrist] + dz + offset,
            0.034 * unit,
            col("skin", side),
            ok,
        )
    for knee, ankle, side in spec.feet:
        ok = visible[:, knee] & visible[:, ankle]
        if extras.toes is not None:
            tip, ztip = extras.toes[:, side, :2], extras.toes[:, side, 2]
        else:
            shin = kp[:, ankle] - kp[:, knee]
            tip = (
                kp[:, ankle]
                + shin / np.maximum(np.linalg.norm(shin, axis=1, keepdims=True), 1e-6) * 0.02 * unit[:, None]
            )
            ztip = depth[:, ankle]
        canvas.capsules(kp[:, ankle], tip, depth[:, ankle], ztip, 0.032 * unit, col("shoe", side), ok)
    # head: hair-coloured capsule along head_top -> neck, face sphere on its front
    top, neck = kp[:, spec.head_top], kp[:, spec.neck]
    ok = visible[:, spec.head_top] & visible[:, spec.neck]
    # a lower "neck" joint (LSP) sits below the chin: the head covers 85 % of head_top -> neck
    dist = np.linalg.norm(neck - top, axis=1)
    u = (neck - top) / np.maximum(dist, 1e-6)[:, None]
    length = dist * (0.85 if skeleton.joints[spec.neck] == "neck" else 1.0)
    r = 0.38 * length
    zt, zn = depth[:, spec.head_top], depth[:, spec.neck]
    zc = 0.5 * (zt + zn)
    canvas.capsules(top + u * r[:, None], top + u * (length - r)[:, None], zc, zc, r, col("hair", 0), ok)
    facing = extras.facing
    centre = top + u * (0.56 * length)[:, None] + facing[:, :2] * (0.22 * length)[:, None]
    zf = zc + facing[:, 2] * 0.22 * length
    canvas.capsules(centre, centre, zf, zf, 0.3 * length, col("skin", 0), ok)
