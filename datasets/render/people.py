"""`render_people`: a batch of figures in given poses, over backgrounds, behind occluders, blurred and noisy."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from alpose_bench.datasets.render.appearance import DEFAULT_STYLE, RenderStyle, figure_palette, pick_colours
from alpose_bench.datasets.render.backgrounds import background_params, distractors, paint_backgrounds
from alpose_bench.datasets.render.canvas import Canvas
from alpose_bench.datasets.render.figures import (
    FigureExtras,
    draw_figures,
    estimate_facing,
    estimate_unit,
    figure_spec,
)
from alpose_bench.pose.skeleton import Skeleton

_PIXEL_BUDGET = 1 << 21  # pixels per rasterised sub-batch (bounds memory at any resolution)
_PROPS = 3  # furniture-like rectangles per background


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
    spec = figure_spec(skeleton)
    extras = extras or FigureExtras()
    unit = extras.unit if extras.unit is not None else estimate_unit(kp, vis, skeleton, spec, resolution)
    facing = extras.facing if extras.facing is not None else estimate_facing(kp, vis, skeleton, spec)
    extras = FigureExtras(
        depth=extras.depth, facing=np.asarray(facing, float), toes=extras.toes, unit=np.asarray(unit)
    )

    # per-image appearance, drawn up front so that it does not depend on how the batch is split
    palette = figure_palette(rng, n, style)
    dis = distractors(rng, n, resolution, extras.unit, style.clutter, style)
    far = 1e4 * (1.0 + np.arange(dis["a"].shape[1]))  # behind the figure, nearer slots first
    # furniture-like rectangles behind everything (edges and flat regions, as in indoor scenes)
    props = rng.random((n, _PROPS)) < 0.6
    prop_centre = rng.uniform(-0.1, 1.1, (n, _PROPS, 2)) * resolution
    prop_half = rng.uniform(0.05, 0.3, (n, _PROPS, 2)) * resolution
    prop_angle = rng.normal(0.0, 0.15, (n, _PROPS)) + rng.choice([0.0, np.pi / 2], (n, _PROPS))
    prop_colour = pick_colours(rng, style.backgrounds, n * _PROPS, 0.1).reshape(n, _PROPS, 3)
    occluded = rng.random(n) < style.occluder_prob
    anchor = kp[np.arange(n), rng.integers(0, skeleton.num_joints, n)]
    occ_centre = anchor + rng.normal(0, 0.05, (n, 2)) * extras.unit[:, None]
    occ_half = rng.uniform(0.05, 0.14, (n, 2)) * extras.unit[:, None]
    occ_angle = rng.uniform(0, np.pi, n)
    occ_colour = pick_colours(rng, style.backgrounds + style.garments, n, 0.08)
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
        draw_figures(canvas, kp[sl], vis[sl], skeleton, palette[sl], sub)
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
