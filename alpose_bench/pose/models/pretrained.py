"""The pretrained model family: a heatmap head on an ImageNet-pretrained backbone (the practitioners' regime), and
the backbones it can sit on, each defined in this project parameter for parameter so its checkpoint loads without
the code it came with.

`BACKBONES` holds one `Backbone` per model family name: its network, the channels of the four outputs the head reads
(strides 4, 8, 16 and 32), the input normalisation its weights were trained with, and the checkpoint
(`alpose_bench.pose.models.weights`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from alpose_bench.pose.models import efficientnet_lite, mobilenet
from alpose_bench.pose.models.dropout import dropout_layer
from alpose_bench.pose.models.feature_cache import FeatureCache
from alpose_bench.pose.models.outputs import ModelInfo, PoseOutput, check_input_shape
from alpose_bench.pose.models.weights import EFFICIENTNET_LITE0, MOBILENET_V2, WeightsFile
from alpose_bench.pose.skeleton import Skeleton

TAP_STRIDES = (4, 8, 16, 32)


@dataclass(frozen=True)
class Backbone:
    """One pretrained backbone: `network(in_channels)` returns a module whose forward gives the stride-4, 8, 16 and
    32 outputs (`tap_channels` channels) and whose `units()` lists its blocks in order; `mean`/`std` normalise
    inputs in [0, 1] as its weights expect; `classifier_keys` are the checkpoint's keys the pose model does not
    have."""

    name: str
    description: str
    network: Callable[[int], nn.Module]
    tap_channels: tuple[int, int, int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights: WeightsFile
    classifier_keys: tuple[str, ...]
    embedding_dim: int = 1280

    def units(self) -> int:
        """How many blocks the network has (the most `trainable_blocks` can be)."""
        return _unit_count(self.name)


#: model family name -> its backbone
BACKBONES: dict[str, Backbone] = {b.name: b for b in (
    Backbone("mobilenet-v2", "torchvision's MobileNetV2 (ImageNet IMAGENET1K_V1)", mobilenet.MobileNetV2Features,
             mobilenet.TAP_CHANNELS, mobilenet.IMAGENET_MEAN, mobilenet.IMAGENET_STD, MOBILENET_V2,
             mobilenet.CLASSIFIER_KEYS),
    Backbone("efficientnet-lite0", "Google's EfficientNet-Lite0 (ImageNet)", efficientnet_lite.EfficientNetLite0Features,
             efficientnet_lite.TAP_CHANNELS, efficientnet_lite.MEAN, efficientnet_lite.STD, EFFICIENTNET_LITE0,
             efficientnet_lite.CLASSIFIER_KEYS),
)}  # fmt: skip


@cache
def _unit_count(name: str) -> int:
    return len(BACKBONES[name].network(3).units())


def _transformed(x: Tensor) -> bool:
    """True inside torch.func transforms (vmap, grad: EGL++'s per-image gradients), whose inputs have no values
    to look up in a feature cache."""
    wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    return bool(wrapped is not None and wrapped(x))


class PretrainedPose(nn.Module):
    """A pose model on an (ImageNet-pretrained) `backbone` of `BACKBONES`: heatmaps at stride 4 for a `skeleton`.

    forward(x (B, C, S, S) float in [0, 1]; S a multiple of 32) -> PoseOutput with
      heatmaps   one (B, J, S/4, S/4) tensor: the backbone's stride-4, 8, 16 and 32 outputs, each projected to
                 `channels` (1x1), merged top-down by bilinear upsampling and adding (FPN; bilinear, not nearest, so the maps hold no plateaus of
                 equal values whose argmax would flip with the last bits of the arithmetic), then a 3x3 conv, dropout (`dropout_kind`) and a
                 1x1 conv to J maps;
      features   the merged maps [S/4, S/8, S/16, S/32] at `channels` each, detached (auxiliary heads);
      embedding  global average pool of the backbone's last (1280-channel) output, detached.

    `trainable_blocks` of the backbone's last blocks train with the head (0: the backbone is frozen, and stays in
    eval mode so its BatchNorm statistics stay ImageNet's).
    """

    def __init__(
        self,
        skeleton: Skeleton,
        input_size: int,
        in_channels: int = 3,
        backbone: str = "mobilenet-v2",
        channels: int = 64,
        dropout: float = 0.0,
        trainable_blocks: int = 0,
        dropout_kind: str = "element",
    ) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; known: {', '.join(BACKBONES)}")
        spec = BACKBONES[backbone]
        if input_size % 32:
            raise ValueError(
                f"{spec.description} needs an input size that is a multiple of 32, got {input_size}"
            )
        self.spec = spec
        self.backbone = spec.network(in_channels)
        self.units = self.backbone.units()
        if not 0 <= trainable_blocks <= len(self.units):
            raise ValueError(f"trainable_blocks must be in [0, {len(self.units)}], got {trainable_blocks}")
        self.skeleton, self.input_size, self.in_channels = skeleton, input_size, in_channels
        self.channels, self.trainable_blocks = channels, trainable_blocks
        self.register_buffer(
            "mean", torch.tensor(spec.mean[:in_channels]).view(1, -1, 1, 1), persistent=False
        )
        self.register_buffer("std", torch.tensor(spec.std[:in_channels]).view(1, -1, 1, 1), persistent=False)
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in spec.tap_channels)
        self.smooth = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels),
                                    nn.ReLU(inplace=True))  # fmt: skip
        self.dropout = dropout_layer(dropout, dropout_kind)
        self.out = nn.Conv2d(channels, skeleton.num_joints, 1)
        self.feature_cache: FeatureCache | None = None
        self._freeze()

    def _frozen_units(self) -> list[list[nn.Module]]:
        return self.units[: len(self.units) - self.trainable_blocks]

    def _freeze(self) -> None:
        for unit in self._frozen_units():
            for module in unit:
                for p in module.parameters():
                    p.requires_grad_(False)

    def train(self, mode: bool = True) -> PretrainedPose:
        """Train the head (and the trainable blocks); frozen blocks keep eval-mode BatchNorm."""
        super().train(mode)
        for unit in self._frozen_units():
            for module in unit:
                module.eval()
        return self

    def load_backbone(self, state: dict[str, Tensor]) -> None:
        """Load the backbone's checkpoint (its classifier ignored); other keys are an error."""
        features = {k: v for k, v in state.items() if k not in self.spec.classifier_keys}
        self.backbone.load_state_dict(features, strict=True)

    def attach(self, cache: FeatureCache | None) -> None:
        """Read the frozen backbone's outputs from `cache` (`feature_cache`) instead of computing them (None:
        compute them). A backbone that trains changes its outputs, so only a frozen one may."""
        if cache is not None and self.trainable_blocks:
            raise ValueError(
                "a feature cache holds a frozen backbone's outputs; this backbone trains its last blocks"
            )
        self.feature_cache = cache

    def backbone_taps(self, x: Tensor) -> list[Tensor]:
        """The backbone's stride-4, 8, 16 and 32 outputs for inputs in [0, 1] (normalised here)."""
        return self.backbone((x - self.mean.to(x.dtype)) / self.std.to(x.dtype))

    def _taps(self, x: Tensor) -> list[Tensor]:
        cache = self.feature_cache
        if cache is None or _transformed(x):
            return self.backbone_taps(x)
        rows = cache.find(x)
        hit = rows >= 0
        if hit.all():
            return cache.taps(rows, x.device)
        taps = self.backbone_taps(x)  # an input the cache does not hold (e.g. a sampler's own transform)
        if hit.any():
            index = torch.from_numpy(np.flatnonzero(hit)).to(x.device)
            for live, cached in zip(taps, cache.taps(rows[hit], x.device)):
                live[index] = cached.to(live.dtype)
        return taps

    def forward(self, x: Tensor) -> PoseOutput:
        check_input_shape(x, self.in_channels, self.input_size, f"{self.spec.name} pose model")
        taps = self._taps(x)
        merged = self.lateral[-1](taps[-1])
        pyramid = [merged]
        for lateral, tap in zip(list(self.lateral)[-2::-1], taps[-2::-1]):
            merged = lateral(tap) + F.interpolate(
                merged, size=tap.shape[-2:], mode="bilinear", align_corners=False
            )
            pyramid.insert(0, merged)
        heatmaps = self.out(self.dropout(self.smooth(merged)))
        return PoseOutput(
            heatmaps=[heatmaps],
            keypoints=None,
            features=[p.detach() for p in pyramid],
            embedding=taps[-1].mean(dim=(2, 3)).detach(),
        )

    def tap_shapes(self) -> list[tuple[int, int, int]]:
        """(channels, height, width) of each tapped backbone output at this input size."""
        return [
            (c, self.input_size // s, self.input_size // s)
            for c, s in zip(self.spec.tap_channels, TAP_STRIDES)
        ]

    def model_info(self) -> ModelInfo:
        sizes = tuple(self.input_size // s for s in TAP_STRIDES)
        return ModelInfo(
            task="heatmap2d",
            skeleton=self.skeleton,
            feature_channels=(self.channels,) * 4,
            feature_sizes=sizes,
            embedding_dim=self.spec.embedding_dim,
            heatmap_size=sizes[0],
            input_size=self.input_size,
        )
