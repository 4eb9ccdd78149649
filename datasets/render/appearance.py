"""How figures and scenes look: the style knobs (palettes, clutter, occluders, noise, blur), the built-in styles,
and each image's colours."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


def pick_colours(
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
    top = pick_colours(rng, style.garments, n, style.colour_jitter)
    bottom = pick_colours(rng, style.garments, n, style.colour_jitter)
    skin = pick_colours(rng, style.skins, n, style.colour_jitter / 2)
    hair = pick_colours(rng, style.hairs, n, style.colour_jitter / 2)
    shoe = pick_colours(rng, style.shoes, n, style.colour_jitter / 2)
    sleeve = rng.random(n)[:, None] < style.long_sleeve_prob
    trousers = rng.random(n)[:, None] < style.trousers_prob
    base = np.stack(
        [top, np.where(sleeve, top, skin), bottom, np.where(trousers, bottom, skin), skin, hair, shoe], axis=1
    )
    delta = rng.uniform(*style.lr_delta, size=n)[:, None, None]
    left = np.clip(base * (1.0 + delta) + 0.25 * delta, 0.0, 1.0)
    return np.stack([base, left], axis=2)
