"""The dropout layer a pose model puts before its heatmap head: the one place that maps a kind to a layer."""

from __future__ import annotations

from torch import nn

#: dropout kind (`spec.config.DropoutKind`) -> layer. "element": units dropped one by one (the reference's);
#: "channel": whole feature maps dropped (spatial dropout, Tompson et al. 2015, made for heatmap networks:
#: neighbouring units of a map are so correlated that dropping them one by one barely regularises; and a mask of
#: one value per map is ~25x cheaper to draw on a CPU than one per unit)
LAYERS: dict[str, type[nn.Module]] = {"element": nn.Dropout, "channel": nn.Dropout2d}


def dropout_layer(p: float, kind: str = "element") -> nn.Module:
    """Dropout with probability `p` of `kind` (`LAYERS`); nn.Identity when p is 0."""
    if kind not in LAYERS:
        raise ValueError(f"unknown dropout kind {kind!r}; known: {', '.join(LAYERS)}")
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {p}")
    return LAYERS[kind](p) if p > 0 else nn.Identity()
