"""The auxiliary network of the reference code (Learning Loss, Aleatoric, VL4Pose heads).

Conv mode (reference default): the pose model's multi-scale feature maps (largest first, each half the size of the
previous) are fused coarse-to-fine: starting at the largest map, repeatedly Conv2d(k=2, s=2) + ReLU, then ADD the
next smaller map; at the smallest map a Conv2d whose kernel is the whole map, then ReLU, gives one vector. The
reference's maps all have 256 channels; where channel counts differ (the 3D regressor's widening trunk) the fused
map is projected to the next map's channels with a 1x1 conv before the addition.

Avg mode: the pooled embedding of the pose model (`PoseOutput.embedding`, the reference's `penultimate` GAP
vector) goes straight into the FC stack; call it with the PoseOutput, since a feature list does not carry it.

Both end in FC in -> 128 -> 64 -> 32 -> 16 -> out_dim with ReLU between layers and none after the output. Inputs
are the detached features, so the head never sends gradients into the pose model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from alpose_bench.pose.models.outputs import ModelInfo, PoseOutput

AuxMode = Literal["conv", "avg"]


class AuxNet(nn.Module):
    """Auxiliary head: multi-scale features (or the pooled embedding) -> (B, out_dim)."""

    def __init__(
        self, info: ModelInfo, out_dim: int, fc: Sequence[int] = (128, 64, 32, 16), mode: AuxMode = "conv"
    ) -> None:
        super().__init__()
        if out_dim < 1:
            raise ValueError(f"AuxNet out_dim must be >= 1, got {out_dim}")
        if any(int(u) < 1 for u in fc):
            raise ValueError(f"AuxNet fc widths must be >= 1, got {tuple(fc)}")
        if mode not in ("conv", "avg"):
            raise ValueError(f"AuxNet mode must be 'conv' or 'avg', got {mode!r}")
        self.mode = mode
        self.out_dim = out_dim
        channels, sizes = tuple(info.feature_channels), tuple(info.feature_sizes)
        self.channels, self.sizes = channels, sizes
        if mode == "conv":
            if not channels or len(channels) != len(sizes):
                raise ValueError(
                    f"AuxNet needs one channel count per feature map, got channels {channels} and sizes {sizes}"
                )
            for big, small in zip(sizes, sizes[1:]):
                if small != big // 2:
                    raise ValueError(
                        f"AuxNet conv mode needs each feature map half the size of the previous, got sizes {sizes}"
                    )
            self.down = nn.ModuleList(nn.Conv2d(c, c, kernel_size=2, stride=2) for c in channels[:-1])
            self.project = nn.ModuleList(
                nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, kernel_size=1)
                for c_in, c_out in zip(channels[:-1], channels[1:])
            )
            self.reduce = nn.Conv2d(channels[-1], channels[-1], kernel_size=sizes[-1])
            in_dim = channels[-1]
        else:
            in_dim = info.embedding_dim
        widths = [in_dim, *(int(u) for u in fc)]
        layers: list[nn.Module] = []
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], out_dim))
        self.fc = nn.Sequential(*layers)

    def forward(self, features: list[Tensor] | PoseOutput) -> Tensor:
        """(B, out_dim) from the feature list (conv mode) or a PoseOutput (either mode)."""
        if isinstance(features, PoseOutput):
            if self.mode == "avg":
                return self.fc(features.embedding)
            features = features.features
        elif self.mode == "avg":
            raise ValueError("AuxNet in 'avg' mode reads PoseOutput.embedding: call it with the PoseOutput")
        if len(features) != len(self.channels):
            raise ValueError(f"AuxNet was built for {len(self.channels)} feature maps, got {len(features)}")
        for i, f in enumerate(features):
            if f.ndim != 4 or f.shape[1] != self.channels[i] or f.shape[-1] != self.sizes[i]:
                raise ValueError(
                    f"AuxNet feature map {i} should be (B, {self.channels[i]}, {self.sizes[i]}, {self.sizes[i]}),"
                    f" got {tuple(f.shape)}"
                )
        x = features[0]
        for down, project, nxt in zip(self.down, self.project, features[1:]):
            x = project(torch.relu(down(x))) + nxt
        x = torch.relu(self.reduce(x).flatten(1))
        return self.fc(x)


def require_aux(aux: Tensor | None, sampler: str, width: int) -> Tensor:
    """The auxiliary output of a forward batch as float (B, width); a clear error when the head is missing."""
    if aux is None:
        raise ValueError(
            f"sampler {sampler!r} scores with its auxiliary head but the context has none; build the context "
            "with aux=sampler.auxiliary(model_info(model)) trained alongside the pose model"
        )
    aux = aux.float().reshape(aux.shape[0], -1)
    if aux.shape[1] != width:
        raise ValueError(
            f"sampler {sampler!r} expects {width} auxiliary outputs per image, got {aux.shape[1]}; "
            "was the head built by this sampler's auxiliary()?"
        )
    return aux
