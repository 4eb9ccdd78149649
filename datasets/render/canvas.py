"""The z-buffered rasteriser: a batch of images under construction, drawn part by part.

Rasterisation is vectorised over a batch of images and, per part, over a pixel window just large enough for that
part in every image of the batch (a z-buffer keeps the nearest surface). Pixel centres are at integer coordinates:
pixel (i, j) covers x in [j - 0.5, j + 0.5], y in [i - 0.5, i + 0.5].
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_LIGHT = np.array([-0.45, -0.55, -0.70]) / np.linalg.norm([-0.45, -0.55, -0.70])  # towards the light


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
