"""MobileNetV2 (Sandler et al. 2018) as torchvision defines it, parameter for parameter, so torchvision's ImageNet
checkpoint loads into it without torchvision installed; and the pose model built on it: the backbone's multi-scale
features merged top-down (FPN-style) into stride-4 heatmaps.

Parameter names follow `torchvision.models.mobilenet_v2`: `features.0` is the stem (conv, BN, ReLU6), `features.1`
to `features.17` the inverted residual blocks, `features.18` the last 1x1 convolution to 1280 channels. The
classifier is left out (pose models do not use it); loading a checkpoint ignores exactly its keys.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from alpose_bench.pose.models.feature_cache import FeatureCache
from alpose_bench.pose.models.outputs import ModelInfo, PoseOutput, check_input_shape
from alpose_bench.pose.skeleton import Skeleton

#: (expansion t, output channels c, repeats n, first stride s) of torchvision's MobileNetV2 (width 1.0)
INVERTED_RESIDUALS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                      (6, 320, 1, 1))  # fmt: skip
#: the blocks whose outputs the pose head reads: the last block at stride 4, 8, 16 and 32
TAPS = (3, 6, 13, 18)
TAP_CHANNELS = (24, 32, 96, 1280)
TAP_STRIDES = (4, 8, 16, 32)
#: ImageNet statistics the checkpoint was trained with (inputs in [0, 1] are normalised inside the model)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: the checkpoint's classifier, which the pose model does not have
CLASSIFIER_KEYS = ("classifier.1.weight", "classifier.1.bias")


def _transformed(x: Tensor) -> bool:
    """True inside torch.func transforms (vmap, grad: EGL++'s per-image gradients), whose inputs have no values
    to look up in a feature cache."""
    wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    return bool(wrapped is not None and wrapped(x))


def conv_bn_relu(inp: int, out: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """torchvision's Conv2dNormActivation: conv (no bias), BatchNorm, ReLU6."""
    return nn.Sequential(
        nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """Expand (1x1), depthwise (3x3, `stride`), project (1x1, linear); a residual where shapes allow."""

    def __init__(self, inp: int, out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = inp * expand
        self.use_res_connect = stride == 1 and inp == out
        layers: list[nn.Module] = [] if expand == 1 else [conv_bn_relu(inp, hidden, kernel=1)]
        layers += [
            conv_bn_relu(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out, 1, bias=False),
            nn.BatchNorm2d(out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2Features(nn.Module):
    """torchvision's `mobilenet_v2().features` (19 blocks, stride 32, 1280 channels out)."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = [conv_bn_relu(in_channels, 32, stride=2)]
        inp = 32
        for t, c, n, s in INVERTED_RESIDUALS:
            for i in range(n):
                blocks.append(InvertedResidual(inp, c, s if i == 0 else 1, t))
                inp = c
        blocks.append(conv_bn_relu(inp, 1280, kernel=1))
        self.features = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> list[Tensor]:
        """The outputs of the `TAPS` blocks (strides 4, 8, 16, 32)."""
        taps = []
        for index, block in enumerate(self.features):
            x = block(x)
            if index in TAPS:
                taps.append(x)
        return taps


class MobileNetPose(nn.Module):
    """A pose model on an (ImageNet-pretrained) MobileNetV2: heatmaps at stride 4 for a `skeleton`.

    forward(x (B, C, S, S) float in [0, 1]; S a multiple of 32) -> PoseOutput with
      heatmaps   one (B, J, S/4, S/4) tensor: the backbone's stride-4, 8, 16 and 32 outputs, each projected to
                 `channels` (1x1), merged top-down by bilinear upsampling and adding (FPN; bilinear, not nearest, so the maps hold no plateaus of
                 equal values whose argmax would flip with the last bits of the arithmetic), then a 3x3 conv, dropout and a
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
        channels: int = 64,
        dropout: float = 0.0,
        trainable_blocks: int = 0,
    ) -> None:
        super().__init__()
        if input_size % 32:
            raise ValueError(
                f"MobileNetV2 pose model needs an input size that is a multiple of 32, got {input_size}"
            )
        if not 0 <= trainable_blocks <= 19:
            raise ValueError(f"trainable_blocks must be in [0, 19], got {trainable_blocks}")
        self.skeleton, self.input_size, self.in_channels = skeleton, input_size, in_channels
        self.channels, self.trainable_blocks = channels, trainable_blocks
        self.backbone = MobileNetV2Features(in_channels)
        self.register_buffer(
            "mean", torch.tensor(IMAGENET_MEAN[:in_channels]).view(1, -1, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(IMAGENET_STD[:in_channels]).view(1, -1, 1, 1), persistent=False
        )
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in TAP_CHANNELS)
        self.smooth = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels),
                                    nn.ReLU(inplace=True))  # fmt: skip
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.out = nn.Conv2d(channels, skeleton.num_joints, 1)
        self.feature_cache: FeatureCache | None = None
        self._freeze()

    def _freeze(self) -> None:
        frozen = len(self.backbone.features) - self.trainable_blocks
        for index, block in enumerate(self.backbone.features):
            for p in block.parameters():
                p.requires_grad_(index >= frozen)

    def train(self, mode: bool = True) -> MobileNetPose:
        """Train the head (and the trainable blocks); frozen blocks keep eval-mode BatchNorm."""
        super().train(mode)
        frozen = len(self.backbone.features) - self.trainable_blocks
        for block in list(self.backbone.features)[:frozen]:
            block.eval()
        return self

    def load_backbone(self, state: dict[str, Tensor]) -> None:
        """Load torchvision's `mobilenet_v2` weights (its classifier ignored); other keys are an error."""
        features = {k: v for k, v in state.items() if k not in CLASSIFIER_KEYS}
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
        check_input_shape(x, self.in_channels, self.input_size, "MobileNetPose")
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
        return [(c, self.input_size // s, self.input_size // s) for c, s in zip(TAP_CHANNELS, TAP_STRIDES)]

    def model_info(self) -> ModelInfo:
        sizes = tuple(self.input_size // s for s in (4, 8, 16, 32))
        return ModelInfo(
            task="heatmap2d",
            skeleton=self.skeleton,
            feature_channels=(self.channels,) * 4,
            feature_sizes=sizes,
            embedding_dim=1280,
            heatmap_size=sizes[0],
            input_size=self.input_size,
        )
