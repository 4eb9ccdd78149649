"""Rendering of articulated figures over cluttered backgrounds, for synthetic poses and for real annotated poses.

`render_people` draws any skeleton whose joints include ``head_top`` and ``upper_neck`` (or ``neck``): every link
becomes a shaded capsule (limb), the head a hair-coloured capsule with a skin-coloured face on its front, the torso
a quadrilateral between shoulders and hips, plus hands and feet. Left and right parts get alike but not identical
colours (the left side is slightly brighter), so left/right confusions happen as on real photographs. Behind the
figure: a procedural background with limb-like distractors; in front: random occluders; then blur and noise.

Rasterisation is vectorised over a batch of images and, per part, over a pixel window just large enough for that
part in every image of the batch (a z-buffer keeps the nearest surface). Pixel centres are at integer coordinates:
pixel (i, j) covers x in [j - 0.5, j + 0.5], y in [i - 0.5, i + 0.5].

The package is split at its seams: `canvas` (the rasteriser), `appearance` (styles and colours), `backgrounds`
(what is behind the figure), `figures` (skeleton geometry), `people` (`render_people`, which composes them).
"""

from alpose_bench.datasets.render.appearance import (
    CLEAN_STYLE,
    DEFAULT_STYLE,
    OOD_STYLE,
    SLOTS,
    RenderStyle,
    figure_palette,
)
from alpose_bench.datasets.render.canvas import Canvas
from alpose_bench.datasets.render.figures import FigureExtras, head_box_diagonal, head_boxes
from alpose_bench.datasets.render.people import render_people

#: The version of what the renderer draws. Datasets drawn by it (`lsp-rendered`, `lspet-rendered`) key their
#: caches and their recorded data version by it, so bump it whenever a change moves a pixel (tests/test_render.py
#: pins a drawn batch and says so). Until the renderer was split into modules the version was the hash of its one
#: source file; this is that file's last hash, so caches and stored experiments stay valid.
RENDER_VERSION = "e39b99be4f5a9218"

__all__ = [
    "CLEAN_STYLE", "DEFAULT_STYLE", "OOD_STYLE", "RENDER_VERSION", "SLOTS", "Canvas", "FigureExtras", "RenderStyle",
    "figure_palette", "head_box_diagonal", "head_boxes", "render_people",
]  # fmt: skip
