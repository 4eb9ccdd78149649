"""One look for every figure and table: sampler colours, line styles, display names and metric labels.

A sampler keeps the same colour, marker and name in every figure the benchmark draws, so a reader who learned that
VL4Pose is vermilion in the curves finds it vermilion in the timing chart too. Random, the baseline, is always grey
and dashed; reference samplers that read the pool's labels (oracles) are dash-dotted with hollow markers, so they are
never mistaken for samplers. Built-in samplers get fixed Okabe-Ito colours (distinguishable with the common colour-vision
deficiencies); a third-party sampler gets a colour chosen by a stable hash of its name, so it too never changes
between figures or runs. Display names come from the samplers themselves (`Sampler.label`), metric labels from
`alpose_bench.metrics.METRICS`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from functools import cache

from alpose_bench.metrics import metric_info

BASELINE = "random"
RANDOM_GREY = "#6f6f6f"

# Okabe-Ito palette; order follows the papers' tables (baseline, prior work, then the VL4Pose family).
_BUILTIN: dict[str, tuple[str, str]] = {  # name -> (colour, marker)
    "random": (RANDOM_GREY, "o"),
    "coreset": ("#E69F00", "s"),
    "learning_loss": ("#56B4E9", "^"),
    "egl": ("#009E73", "D"),
    "aleatoric": ("#CC79A7", "v"),
    "mpe": ("#0072B2", "P"),
    "vl4pose": ("#D55E00", "*"),
    "learning_loss_pp": ("#000000", "<"),
    # the field's other samplers: Paul Tol's muted palette, then a few distinct extras
    "least-confidence": ("#332288", "X"),
    "peak-margin": ("#44AA99", "h"),
    "heatmap-entropy": ("#999933", "p"),
    "pose-pca": ("#AA4499", ">"),
    "mc-dropout": ("#88CCEE", "d"),
    "mcd-cke": ("#DDCC77", "8"),
    "coreset-pose": ("#8C564B", "H"),
    "coregcn": ("#1F3A93", "1"),
    "uncertaingcn": ("#17BECF", "2"),
    "typiclust": ("#BCBD22", "*"),
    # references (oracles): Tol's wine and green, outside the samplers' palette
    "oracle-hard": ("#882255", "^"),
    "oracle-easy": ("#117733", "v"),
}
# Colours for samplers the benchmark does not ship (plugins, SCORER+SELECTOR composites); none of them is grey or a
# built-in colour.
_EXTRA_COLOURS = ("#7B1E3C", "#2CA02C", "#9467BD", "#FF7F0E", "#393B79", "#8C6D31", "#E7969C", "#637939")
_EXTRA_MARKERS = ("X", "h", "p", "<", ">", "d", "8", "H")


REALTIME_IMAGES_PER_S = 30.0  # the real-time bar the VL4Pose paper measures selection against

# Colours of the timing phases (not sampler colours: a stacked bar per sampler splits into these).
PHASE_COLOURS: dict[str, str] = {"train": "#4C72B0", "evaluate": "#DD8452", "select": "#55A868"}


def _extra_slot(name: str) -> int:
    return zlib.crc32(name.encode("utf-8")) % len(_EXTRA_COLOURS)


def sampler_color(name: str) -> str:
    """The sampler's colour, identical in every figure (random: grey)."""
    if name in _BUILTIN:
        return _BUILTIN[name][0]
    return _EXTRA_COLOURS[_extra_slot(name)]


def sampler_marker(name: str) -> str:
    """The sampler's marker, so lines stay distinguishable in greyscale print."""
    if name in _BUILTIN:
        return _BUILTIN[name][1]
    return _EXTRA_MARKERS[_extra_slot(name)]


def sampler_linestyle(name: str) -> str:
    """Dashed for the random baseline, dash-dotted for references, solid for samplers."""
    return "--" if name == BASELINE else "-." if is_reference(name) else "-"


def is_reference(name: str) -> bool:
    """True for a reference sampler that reads the pool's labels (`Sampler.reference`): shown apart, never ranked.
    A sampler not installed here counts as a sampler."""
    return bool(getattr(_sampler_class(name), "reference", False))


@cache
def _sampler_class(name: str) -> type | None:
    """The class behind a sampler name (registered or composite), or None where it is not installed here."""
    from alpose_bench.registry import get_sampler

    try:
        return get_sampler(name)
    except (LookupError, ImportError):
        return None


def sampler_label(name: str) -> str:
    """The name readers know from the papers (`Sampler.label`, e.g. "Multi-Peak Entropy" for ``mpe``); the
    registered name for a sampler that sets none or is not installed here."""
    display = getattr(_sampler_class(name), "display_name", None)
    return display() if callable(display) else name


def sampler_style(name: str) -> dict[str, object]:
    """Keyword arguments for ``Axes.plot`` that draw this sampler's line (references: hollow markers, and
    "(reference)" in the legend)."""
    kwargs: dict[str, object] = {
        "color": sampler_color(name),
        "linestyle": sampler_linestyle(name),
        "marker": sampler_marker(name),
        "label": sampler_label(name),
    }
    if is_reference(name):
        kwargs.update(markerfacecolor="white", label=f"{sampler_label(name)} (reference)")
    return kwargs


def sampler_order(names: Iterable[str]) -> list[str]:
    """Samplers in a fixed reading order: random first, then the built-ins in paper order, then plugins A-Z, and the
    references last."""
    unique = set(names)
    builtin = [n for n in _BUILTIN if n in unique]
    ordered = builtin + sorted(unique - set(builtin))
    return [n for n in ordered if not is_reference(n)] + [n for n in ordered if is_reference(n)]


def metric_label(metric: str) -> str:
    """Axis label with units, e.g. "PCKh@0.5 (%)"; MPJPE says that lower is better (`metrics.METRICS`)."""
    return metric_info(metric).axis_label


def higher_is_better(metric: str) -> bool:
    """True for PCKh/PCK (accuracy in %), False for MPJPE (error in mm)."""
    return metric_info(metric).higher_is_better


RC_PARAMS: dict[str, object] = {
    "figure.dpi": 100,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.8,
    "lines.markersize": 5,
}
