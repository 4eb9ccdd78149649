"""Rendering of articulated figures over cluttered backgrounds, for synthetic poses and for real annotated poses.

`render_people` draws any skeleton whose joints include ``head_top`` and ``upper_neck`` (or ``neck``): every link
becomes a shaded capsule (limb), the head a hair-coloured capsule with a skin-coloured face on its front, the torso
a quadrilateral between shoulders and hips, plus hands and feet. Left and right parts get alike but not identical
colours (the left side is slightly brighter), so left/right confusions happen as on real photographs. Behind the
figure: a procedural background with limb-like distractors; in front: random occluders; then blur and noise.

Rasterisation is vectorised over a batch of images and, per part, over a pixel window just large enough for that
part in every image of the batch (a z-buffer keeps the nearest surface). Pixel centres are at integer coordinates:
pixel (i, j) covers x in [j - 0.5, j + 0.5], y in [i - 0.5, i + 0.5].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.ndimage import gaussian_filter

from alpose_bench.pose.skeleton import Skeleton

_LIGHT = np.array([-0.45, -0.55, -0.70]) / np.linalg.norm([-0.45, -0.55, -0.70])  # towards the light
_PIXEL_BUDGET = 1 << 21  # pixels per rasterised sub-batch (bounds memory at any resolution)
_PROPS = 3  # furniture-like rectangles per background


# --------------------------------------------------------------------------------------------------------------------
# z-buffered rasteriser


class Canvas:
    """A batch of images under construction: a z-buffer (smaller = nearer) and, optionally, a colour buffer.

    Parts are drawn one column at a time (one part per image, arrays with a leading batch axis); each draw only
    touches the pixel window that holds that part in every image of the batch.
    """

    def __init__(self, n: int, resolution: int, background: np.ndarray | None = None, z_per_px: float = 1.0):
        self.n, self.res, self.z_per_px = n, resolution, z_per_px
        self.depth = np.full((n, resolution, resolution), np.inf, dtype=np.float32)
        self.colour = None if background is None else np.array(background, dtype=np.float32, order="C")

    def _window(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel index windows (B, Sy), (B, Sx) covering the boxes lo..hi (B, 2) as (x, y), clipped to the image."""
        lo_i = np.clip(np.floor(lo).astype(np.int64), 0, self.res - 1)
        hi_i = np.clip(np.ceil(hi).astype(np.int64), 0, self.res - 1)
        size = np.clip((hi_i - lo_i).max(axis=0) + 1, 1, self.res)  # (2,) = Sx, Sy
        start = np.minimum(lo_i, self.res - size)
        xs = start[:, 0, None] + np.arange(size[0])
        ys = start[:, 1, None] + np.arange(size[1])
        return ys, xs

    def _commit(
        self,
        idx: np.ndarray,
        ys: np.ndarray,
        xs: np.ndarray,
        z: np.ndarray,
        colour: np.ndarray | None,
        shade: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        """Keep window depths z (B, Sy, Sx) where nearer than the buffer; paint those pixels colour (B, 3) x shade.

        `shade(mask)` returns the shading factor of the selected window pixels (None: flat).
        """
        flat = (idx[:, None, None] * self.res + ys[:, :, None]) * self.res + xs[:, None, :]
        depth = self.depth.reshape(-1)
        nearer = z < depth[flat]
        if not nearer.any():
            return
        sel = flat[nearer]
        depth[sel] = z[nearer]
        if self.colour is not None and colour is not None:
            rows = np.broadcast_to(np.arange(len(idx))[:, None, None], z.shape)[nearer]
            rgb = np.asarray(colour, dtype=np.float32)[idx][rows]
            if shade is not None:
                rgb = rgb * shade(nearer)[:, None]
            self.colour.reshape(-1, 3)[sel] = rgb

    def capsules(
        self,
        a: np.ndarray,
        b: np.ndarray,
        za: np.ndarray,
        zb: np.ndarray,
        radius: np.ndarray,
        colour: np.ndarray | None = None,
        valid: np.ndarray | None = None,
        shading: float = 0.65,
    ) -> None:
        """Draw one capsule (segment a-b (B, 2) px swept by a ball of `radius` (B,)) per image, shaded as a tube.

        Depth is the ball's front surface: z along the axis minus the sphere height above the pixel.
        """
        keep = radius > 0 if valid is None else np.asarray(valid, bool) & (radius > 0)
        idx = np.flatnonzero(keep)
        if len(idx) == 0:
            return
        a, b, za, zb, r = (np.asarray(v, dtype=np.float32)[idx] for v in (a, b, za, zb, radius))
        ys, xs = self._window(np.minimum(a, b) - r[:, None], np.maximum(a, b) + r[:, None])
        d = b - a
        l2 = (d**2).sum(-1) + np.float32(1e-6)
        rx = xs[:, None, :].astype(np.float32) - a[:, 0, None, None]  # (B, 1, Sx)
        ry = ys[:, :, None].astype(np.float32) - a[:, 1, None, None]  # (B, Sy, 1)
        dx, dy = d[:, 0, None, None], d[:, 1, None, None]
        t = np.clip((rx * dx + ry * dy) / l2[:, None, None], 0.0, 1.0)
        ox, oy = rx - t * dx, ry - t * dy  # from the axis to the pixel
        h2 = (r**2)[:, None, None] - ox * ox - oy * oy
        nz = np.sqrt(np.maximum(h2, 0.0))
        z = za[:, None, None] + t * (zb - za)[:, None, None] - nz * np.float32(self.z_per_px)
        z[h2 <= 0] = np.inf
        rb = np.broadcast_to(r[:, None, None], z.shape)

        def shade(m: np.ndarray) -> np.ndarray:
            lam = (ox[m] * _LIGHT[0] + oy[m] * _LIGHT[1] - nz[m] * _LIGHT[2]) / rb[m]
            return (1.0 - shading) + shading * np.clip(lam, 0.0, 1.0)

        self._commit(idx, ys, xs, z, colour, shade)

    def triangles(
        self,
        v: np.ndarray,
        z: np.ndarray,
        colour: np.ndarray,
        valid: np.ndarray | None = None,
        shade: float = 0.72,
    ) -> None:
        """Draw one flat triangle (vertices v (B, 3, 2) px, constant depth z (B,)) per image."""
        idx = np.flatnonzero(np.ones(len(v), bool) if valid is None else valid)
        if len(idx) == 0:
            return
        v, z = np.asarray(v, dtype=np.float32)[idx], np.asarray(z, dtype=np.float32)[idx]
        ys, xs = self._window(v.min(axis=1), v.max(axis=1))
        px, py = xs[:, None, :].astype(np.float32), ys[:, :, None].astype(np.float32)
        pos = neg = None
        for i in range(3):
            (x0, y0), (x1, y1) = v[:, i].T, v[:, (i + 1) % 3].T
            e = (x1 - x0)[:, None, None] * (py - y0[:, None, None]) - (y1 - y0)[:, None, None] * (
                px - x0[:, None, None]
            )
            pos = (e >= 0) if pos is None else pos & (e >= 0)
            neg = (e <= 0) if neg is None else neg & (e <= 0)
        zw = np.where(pos | neg, z[:, None, None], np.float32(np.inf))
        self._commit(idx, ys, xs, zw, shade * np.asarray(colour, np.float32))

    def rects(
        self,
        centre: np.ndarray,
        half: np.ndarray,
        angle: np.ndarray,
        z: np.ndarray,
        colour: np.ndarray,
        valid: np.ndarray | None = None,
    ) -> None:
        """Draw one rotated rectangle (centre (B, 2), half sizes (B, 2), angle (B,) rad) per image, with a gradient."""
        idx = np.flatnonzero(np.ones(len(centre), bool) if valid is None else valid)
        if len(idx) == 0:
            return
        c, h = np.asarray(centre, np.float32)[idx], np.asarray(half, np.float32)[idx]
        ang, z = np.asarray(angle, np.float32)[idx], np.asarray(z, np.float32)[idx]
        ext = np.linalg.norm(h, axis=1)[:, None]
        ys, xs = self._window(c - ext, c + ext)
        px = xs[:, None, :].astype(np.float32) - c[:, 0, None, None]
        py = ys[:, :, None].astype(np.float32) - c[:, 1, None, None]
        cos, sin = np.cos(ang)[:, None, None], np.sin(ang)[:, None, None]
        u, w = px * cos + py * sin, -px * sin + py * cos
        inside = (np.abs(u) <= h[:, 0, None, None]) & (np.abs(w) <= h[:, 1, None, None])
        zw = np.where(inside, z[:, None, None], np.float32(np.inf))
        ub = u / h[:, 0, None, None]
        self._commit(idx, ys, xs, zw, colour, lambda m: 0.82 + 0.18 * np.clip(ub[m], -1, 1))


# --------------------------------------------------------------------------------------------------------------------
# appearance


def _rgb(colours: tuple[tuple[int, int, int], ...]) -> tuple[tuple[float, float, float], ...]:
    return tuple(tuple(c / 255.0 for c in col) for col in colours)


@dataclass(frozen=True)
class RenderStyle:
    """Appearance knobs of the renderer. Colours are RGB in [0, 1]; each image draws from these palettes.

    lr_delta: (low, high) relative brightening of the left side of the body against the right (drawn per image).
    clutter: at most this many limb-like distractors behind the figure (drawn uniformly 0..clutter).
    background: "blobs" (smooth colour fields) or "stripes" (oriented stripes over a colour field).
    """

    garments: tuple[tuple[float, float, float], ...] = _rgb(
        (
            (30, 40, 90), (170, 30, 35), (220, 220, 215), (25, 25, 28), (120, 120, 125), (40, 110, 60),
            (50, 90, 170), (210, 180, 40), (110, 70, 40), (60, 80, 120), (220, 120, 30), (110, 30, 50),
        )
    )  # fmt: skip
    skins: tuple[tuple[float, float, float], ...] = _rgb(
        ((250, 215, 180), (235, 190, 150), (200, 150, 110), (160, 110, 75), (115, 78, 52), (85, 58, 42))
    )
    hairs: tuple[tuple[float, float, float], ...] = _rgb(
        ((30, 25, 20), (70, 45, 25), (150, 110, 60), (200, 170, 110), (110, 110, 110), (15, 15, 15))
    )
    shoes: tuple[tuple[float, float, float], ...] = _rgb(
        ((30, 30, 30), (235, 235, 235), (90, 60, 40), (60, 60, 90))
    )
    backgrounds: tuple[tuple[float, float, float], ...] = _rgb(
        ((200, 195, 180), (120, 140, 110), (90, 110, 140), (160, 130, 100), (60, 70, 60), (180, 180, 190),
         (140, 120, 120), (100, 90, 80))
    )  # fmt: skip
    background: str = "blobs"
    clutter: int = 5
    occluder_prob: float = 0.3
    noise: float = 4.0
    blur: float = 0.6
    lr_delta: tuple[float, float] = (0.06, 0.22)
    colour_jitter: float = 0.06
    long_sleeve_prob: float = 0.5
    trousers_prob: float = 0.7

    def __post_init__(self) -> None:
        if self.background not in ("blobs", "stripes"):
            raise ValueError(f"RenderStyle.background must be 'blobs' or 'stripes', got {self.background!r}")
        if self.clutter < 0 or not 0.0 <= self.occluder_prob <= 1.0 or self.noise < 0 or self.blur < 0:
            raise ValueError("RenderStyle: clutter, noise and blur must be >= 0 and occluder_prob in [0, 1]")


DEFAULT_STYLE = RenderStyle()

OOD_STYLE = RenderStyle(
    garments=_rgb(((255, 0, 200), (0, 235, 120), (0, 210, 255), (255, 240, 0), (150, 0, 255), (255, 90, 0))),
    backgrounds=_rgb(
        ((0, 60, 120), (120, 0, 60), (20, 120, 120), (200, 60, 0), (235, 235, 235), (40, 40, 40))
    ),
    background="stripes",
    clutter=8,
    occluder_prob=0.45,
    noise=7.0,
)
"""Shifted appearance for out-of-distribution splits: neon clothes, striped saturated backgrounds, more clutter."""

CLEAN_STYLE = RenderStyle(clutter=0, occluder_prob=0.0, noise=0.0, blur=0.0, colour_jitter=0.0)
"""No distractors, occluders, blur or noise: for inspecting the figure itself."""


def _pick(
    rng: np.random.Generator, palette: tuple[tuple[float, float, float], ...], n: int, jitter: float
) -> np.ndarray:
    """n colours (n, 3) drawn from a palette with per-channel Gaussian jitter."""
    base = np.asarray(palette, dtype=np.float64)[rng.integers(0, len(palette), n)]
    return np.clip(base + jitter * rng.standard_normal((n, 3)), 0.0, 1.0)


SLOTS = ("top", "top_lower", "bottom", "bottom_lower", "skin", "hair", "shoe")


def figure_palette(rng: np.random.Generator, n: int, style: RenderStyle = DEFAULT_STYLE) -> np.ndarray:
    """Per-image colours (n, len(SLOTS), 2, 3): slot colour for the right/centre (0) and the left (1) side.

    The left side is the right side brightened by a per-image factor in `style.lr_delta`: alike, not identical.
    """
    top = _pick(rng, style.garments, n, style.colour_jitter)
    bottom = _pick(rng, style.garments, n, style.colour_jitter)
    skin = _pick(rng, style.skins, n, style.colour_jitter / 2)
    hair = _pick(rng, style.hairs, n, style.colour_jitter / 2)
    shoe = _pick(rng, style.shoes, n, style.colour_jitter / 2)
    sleeve = rng.random(n)[:, None] < style.long_sleeve_prob
    trousers = rng.random(n)[:, None] < style.trousers_prob
    base = np.stack(
        [top, np.where(sleeve, top, skin), bottom, np.where(trousers, bottom, skin), skin, hair, shoe], axis=1
    )
    delta = rng.uniform(*style.lr_delta, size=n)[:, None, None]
    left = np.clip(base * (1.0 + delta) + 0.25 * delta, 0.0, 1.0)
    return np.stack([base, left], axis=2)


# --------------------------------------------------------------------------------------------------------------------
# backgrounds


def _upsample_matrix(grid: int, resolution: int) -> np.ndarray:
    """(resolution, grid) linear interpolation weights from `grid` control points spread over the image."""
    pos = np.linspace(0, grid - 1, resolution)
    lo = np.minimum(np.floor(pos).astype(np.int64), grid - 2)
    frac = pos - lo
    m = np.zeros((resolution, grid))
    m[np.arange(resolution), lo] = 1 - frac
    m[np.arange(resolution), lo + 1] = frac
    return m


def _texture_grid(resolution: int) -> int:
    return max(4, resolution // 4)


def background_params(
    rng: np.random.Generator, n: int, resolution: int, style: RenderStyle = DEFAULT_STYLE
) -> dict[str, np.ndarray]:
    """Everything random about `n` backgrounds (colours, coarse grids of the smooth fields, stripes), drawn at once so
    that `paint_backgrounds` gives each image the same pixels however the batch is split."""
    params = {
        "c1": _pick(rng, style.backgrounds, n, 0.08).astype(np.float32),
        "c2": _pick(rng, style.backgrounds, n, 0.08).astype(np.float32),
        "mix": rng.random((n, 3, 3, 1), dtype=np.float32),
        "gain": rng.random((n, 8, 8, 1), dtype=np.float32),
        "texture": rng.random((n, _texture_grid(resolution), _texture_grid(resolution), 1), dtype=np.float32),
    }
    if style.background == "stripes":
        params["c3"] = _pick(rng, style.backgrounds, n, 0.08).astype(np.float32)
        params["theta"] = rng.uniform(0, np.pi, n)
        params["freq"] = rng.uniform(2.5, 7.0, n) * 2 * np.pi / resolution
        params["phase"] = rng.uniform(0, 2 * np.pi, n)
    return params


def _upsampled(coarse: np.ndarray, resolution: int) -> np.ndarray:
    """Bilinear upsampling of (n, g, g, c) grids to (n, res, res, c).

    Two matrix products per image (numpy's matmul runs one BLAS call per image with the same shapes), so an image's
    pixels do not depend on how many images are upsampled together, as they would through one batched einsum."""
    m = _upsample_matrix(coarse.shape[1], resolution).astype(np.float32)
    planes = np.ascontiguousarray(coarse.transpose(0, 3, 1, 2))  # (n, c, g, g)
    return np.ascontiguousarray((m @ planes @ m.T).transpose(0, 2, 3, 1))


def paint_backgrounds(params: dict[str, np.ndarray], rows: slice, resolution: int) -> np.ndarray:
    """The backgrounds `rows` of `background_params`: (m, res, res, 3) float32 in [0, 1], colour fields, texture and
    optional stripes."""
    c1, c2 = params["c1"][rows], params["c2"][rows]
    mix = _upsampled(params["mix"][rows], resolution)
    gain = _upsampled(params["gain"][rows], resolution)
    gain *= 0.3
    gain += 0.85
    texture = _upsampled(params["texture"][rows], resolution)
    texture -= 0.5
    texture *= 0.06
    img = c2[:, None, None, :] + (c1 - c2)[:, None, None, :] * mix
    img *= gain
    img += texture
    if "c3" in params:
        c3, theta = params["c3"][rows], params["theta"][rows]
        freq, phase = params["freq"][rows], params["phase"][rows]
        grid = np.arange(resolution, dtype=np.float32)
        arg = (
            (freq * np.cos(theta))[:, None, None] * grid[None, None, :]
            + (freq * np.sin(theta))[:, None, None] * grid[None, :, None]
            + phase[:, None, None]
        )
        s = (0.5 + 0.5 * np.tanh(3.0 * np.sin(arg)))[..., None].astype(np.float32)
        img = c3[:, None, None, :] + (img - c3[:, None, None, :]) * s
    return np.clip(img, 0.0, 1.0, out=img)


# --------------------------------------------------------------------------------------------------------------------
# figure geometry


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
def _figure_spec(skeleton: Skeleton) -> _FigureSpec:
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
    spec = _figure_spec(skeleton)
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


def _estimate_unit(
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


def _estimate_facing(
    kp: np.ndarray, visible: np.ndarray, skeleton: Skeleton, spec: _FigureSpec
) -> np.ndarray:
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


def _draw_figures(
    canvas: Canvas,
    kp: np.ndarray,
    visible: np.ndarray,
    skeleton: Skeleton,
    palette: np.ndarray,
    extras: FigureExtras,
) -> None:
    """Draw the figures of a sub-batch onto `canvas` (keypoints already in pixels, extras complete)."""
    spec = _figure_spec(skeleton)
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


def _distractors(
    rng: np.random.Generator, n: int, resolution: int, unit: np.ndarray, count: int, style: RenderStyle
) -> dict[str, np.ndarray]:
    """Limb-like capsules behind the figure: `count` slots, pairs of slots often joined like an arm or a leg."""
    slots = 2 * ((count + 1) // 2)
    active = np.arange(slots)[None, :] < rng.integers(0, count + 1, n)[:, None]
    a = rng.uniform(-0.1, 1.1, (n, slots, 2)) * resolution
    angle = rng.uniform(0, 2 * np.pi, (n, slots))
    length = rng.uniform(0.12, 0.28, (n, slots)) * unit[:, None]
    radius = rng.uniform(0.025, 0.055, (n, slots)) * unit[:, None]
    joined = rng.random((n, slots // 2)) < 0.6
    bend = rng.uniform(0.3, 2.0, (n, slots // 2)) * rng.choice([-1.0, 1.0], (n, slots // 2))
    angle[:, 1::2] = np.where(joined, angle[:, 0::2] + bend, angle[:, 1::2])
    b = a + length[..., None] * np.stack([np.cos(angle), np.sin(angle)], -1)
    a[:, 1::2] = np.where(joined[..., None], b[:, 0::2], a[:, 1::2])
    b = a + length[..., None] * np.stack([np.cos(angle), np.sin(angle)], -1)
    radius[:, 1::2] = np.where(joined, radius[:, 0::2] * 0.85, radius[:, 1::2])
    palette = style.garments + style.skins
    colour = _pick(rng, palette, n * slots, style.colour_jitter).reshape(n, slots, 3)
    colour[:, 1::2] = np.where(joined[..., None], colour[:, 0::2], colour[:, 1::2])
    return {"a": a, "b": b, "r": radius, "colour": colour, "active": active}


def render_people(
    keypoints: np.ndarray,
    visible: np.ndarray,
    skeleton: Skeleton,
    resolution: int,
    rng: np.random.Generator,
    style: RenderStyle | None = None,
    extras: FigureExtras | None = None,
) -> np.ndarray:
    """Draw one figure per image in the given pose: (N, res, res, 3) uint8.

    keypoints (N, J, 2) pixel coordinates in the output image; visible (N, J) bool: links with an unannotated end
    are not drawn. `extras` (depth, facing, toes, body unit) is optional; without it the arms are drawn in front of
    the torso, the figure faces the camera unless its right shoulder is on the image right (seen upright), and the
    limb thickness follows the head length (else the median link length).
    """
    style = DEFAULT_STYLE if style is None else style
    kp = np.asarray(keypoints, dtype=np.float64)
    vis = np.asarray(visible, dtype=bool)
    n, j = vis.shape if vis.ndim == 2 else (0, 0)
    if (
        kp.ndim != 3
        or kp.shape[:2] != (n, skeleton.num_joints)
        or kp.shape[2] < 2
        or vis.shape != kp.shape[:2]
    ):
        raise ValueError(
            f"render_people: keypoints must be (N, {skeleton.num_joints}, 2) and visible (N, {skeleton.num_joints}),"
            f" got {kp.shape} and {vis.shape}"
        )
    if resolution < 8:
        raise ValueError(f"render_people: resolution must be at least 8 px, got {resolution}")
    kp = kp[..., :2]
    spec = _figure_spec(skeleton)
    extras = extras or FigureExtras()
    unit = extras.unit if extras.unit is not None else _estimate_unit(kp, vis, skeleton, spec, resolution)
    facing = extras.facing if extras.facing is not None else _estimate_facing(kp, vis, skeleton, spec)
    extras = FigureExtras(
        depth=extras.depth, facing=np.asarray(facing, float), toes=extras.toes, unit=np.asarray(unit)
    )

    # per-image appearance, drawn up front so that it does not depend on how the batch is split
    palette = figure_palette(rng, n, style)
    dis = _distractors(rng, n, resolution, extras.unit, style.clutter, style)
    far = 1e4 * (1.0 + np.arange(dis["a"].shape[1]))  # behind the figure, nearer slots first
    # furniture-like rectangles behind everything (edges and flat regions, as in indoor scenes)
    props = rng.random((n, _PROPS)) < 0.6
    prop_centre = rng.uniform(-0.1, 1.1, (n, _PROPS, 2)) * resolution
    prop_half = rng.uniform(0.05, 0.3, (n, _PROPS, 2)) * resolution
    prop_angle = rng.normal(0.0, 0.15, (n, _PROPS)) + rng.choice([0.0, np.pi / 2], (n, _PROPS))
    prop_colour = _pick(rng, style.backgrounds, n * _PROPS, 0.1).reshape(n, _PROPS, 3)
    occluded = rng.random(n) < style.occluder_prob
    anchor = kp[np.arange(n), rng.integers(0, skeleton.num_joints, n)]
    occ_centre = anchor + rng.normal(0, 0.05, (n, 2)) * extras.unit[:, None]
    occ_half = rng.uniform(0.05, 0.14, (n, 2)) * extras.unit[:, None]
    occ_angle = rng.uniform(0, np.pi, n)
    occ_colour = _pick(rng, style.backgrounds + style.garments, n, 0.08)
    contrast = rng.uniform(0.8, 1.15, n).astype(np.float32)
    brightness = rng.normal(0.0, 0.04, n).astype(np.float32)
    noise_std = (style.noise * rng.uniform(0.5, 1.5, n)).astype(np.float32)  # in uint8 levels
    scene = background_params(rng, n, resolution, style)
    noise_seeds = rng.integers(0, 2**63, n)  # one noise stream per image

    # everything random is drawn above: how the images are split into sub-batches changes no pixel
    out = np.empty((n, resolution, resolution, 3), dtype=np.uint8)
    step = max(1, _PIXEL_BUDGET // (resolution * resolution))
    for s in range(0, n, step):
        sl = slice(s, min(n, s + step))
        m = sl.stop - sl.start
        canvas = Canvas(m, resolution, paint_backgrounds(scene, sl, resolution))
        for k in range(_PROPS):
            canvas.rects(
                prop_centre[sl, k], prop_half[sl, k], prop_angle[sl, k], np.full(m, 1e8 - k), prop_colour[sl, k],
                props[sl, k],
            )  # fmt: skip
        for k in range(dis["a"].shape[1]):
            zk = np.full(m, far[k])
            canvas.capsules(
                dis["a"][sl, k],
                dis["b"][sl, k],
                zk,
                zk,
                dis["r"][sl, k],
                dis["colour"][sl, k],
                dis["active"][sl, k],
            )
        sub = FigureExtras(
            depth=None if extras.depth is None else extras.depth[sl],
            facing=extras.facing[sl],
            toes=None if extras.toes is None else extras.toes[sl],
            unit=extras.unit[sl],
        )
        _draw_figures(canvas, kp[sl], vis[sl], skeleton, palette[sl], sub)
        canvas.rects(
            occ_centre[sl], occ_half[sl], occ_angle[sl], np.full(m, -1e9), occ_colour[sl], occluded[sl]
        )
        img = canvas.colour
        if style.blur > 0:
            img = gaussian_filter(img, sigma=(0, style.blur, style.blur, 0), mode="nearest")
        img -= 0.5
        img *= 255.0 * contrast[sl, None, None, None]
        img += 127.5 + 255.0 * brightness[sl, None, None, None]
        noise = np.stack(
            [
                np.random.default_rng(seed).standard_normal(img.shape[1:], dtype=np.float32)
                for seed in noise_seeds[sl]
            ]
        )
        noise *= noise_std[sl, None, None, None]
        img += noise
        out[sl] = np.clip(np.rint(img, out=img), 0, 255, out=img).astype(np.uint8)
    return out
