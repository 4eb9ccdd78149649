"""What is behind the figure: procedural backgrounds (smooth colour fields, texture, stripes) and limb-like
distractors."""

from __future__ import annotations

import numpy as np

from alpose_bench.datasets.render.appearance import DEFAULT_STYLE, RenderStyle, pick_colours


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
        "c1": pick_colours(rng, style.backgrounds, n, 0.08).astype(np.float32),
        "c2": pick_colours(rng, style.backgrounds, n, 0.08).astype(np.float32),
        "mix": rng.random((n, 3, 3, 1), dtype=np.float32),
        "gain": rng.random((n, 8, 8, 1), dtype=np.float32),
        "texture": rng.random((n, _texture_grid(resolution), _texture_grid(resolution), 1), dtype=np.float32),
    }
    if style.background == "stripes":
        params["c3"] = pick_colours(rng, style.backgrounds, n, 0.08).astype(np.float32)
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


def distractors(
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
    colour = pick_colours(rng, palette, n * slots, style.colour_jitter).reshape(n, slots, 3)
    colour[:, 1::2] = np.where(joined[..., None], colour[:, 0::2], colour[:, 1::2])
    return {"a": a, "b": b, "r": radius, "colour": colour, "active": active}
