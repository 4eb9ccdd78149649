"""One look for every figure and table: sampler colours, line styles, display names and metric labels.

A sampler keeps the same colour, marker and name in every figure the benchmark draws, so a reader who learned that
VL4Pose is vermilion in the curves finds it vermilion in the timing chart too. Random, the baseline, is always grey
and dashed; reference samplers that read the pool's labels (oracles) are dash-dotted with hollow markers, so they are
never mistaken for samplers. Colours, markers, reading order and roles (the baseline, the references and what they
seek) are declared by each sampler class (`Sampler.colour`, `marker`, `order`, `baseline`, `seeks`): the built-ins
use Okabe-Ito and Tol colours (distinguishable with the common colour-vision deficiencies); a sampler that declares
none gets a colour chosen by a stable hash of its name, so it too never changes between figures or runs. Display
names come from the samplers themselves (`Sampler.label`), metric labels from `alpose_bench.pose.metrics.METRICS`.
"""

from __future__ import annotations

import zlib

from alpose_bench.pose.metrics import metric_info
from alpose_bench.spec.roles import baseline_name, installed_class, is_reference

RANDOM_GREY = "#6f6f6f"

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
    """The sampler's colour (`Sampler.colour`), identical in every figure; a stable pick from its name for one
    that declares none or is not installed here."""
    return getattr(installed_class(name), "colour", None) or _EXTRA_COLOURS[_extra_slot(name)]


def sampler_marker(name: str) -> str:
    """The sampler's marker (`Sampler.marker`), so lines stay distinguishable in greyscale print."""
    return getattr(installed_class(name), "marker", None) or _EXTRA_MARKERS[_extra_slot(name)]


def sampler_linestyle(name: str) -> str:
    """Dashed for the baseline, dash-dotted for references, solid for samplers."""
    return "--" if name == baseline_name() else "-." if is_reference(name) else "-"


def sampler_label(name: str) -> str:
    """The name readers know from the papers (`Sampler.label`, e.g. "Multi-Peak Entropy" for ``mpe``); the
    registered name for a sampler that sets none or is not installed here."""
    display = getattr(installed_class(name), "display_name", None)
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
