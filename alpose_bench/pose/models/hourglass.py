"""Newell's stacked hourglass (as in the VL4Pose reference code), returning heatmaps of every stack and the
multi-scale feature maps of the last stack that auxiliary heads (Learning Loss, Aleatoric, VL4Pose) read.

Layout for input size S and `channels` C (reference: S = 256, C = 256, 2 stacks, depth 4):

    stem   7x7/2 conv(C/4) + BN + ReLU -> Residual(C/4 -> C/2) -> MaxPool 2 -> Residual(C/2 -> C/2)
           -> Residual(C/2 -> C), giving (C, S/4, S/4)
    stack  Hourglass(depth, C) -> Residual(C, C) -> 1x1 Conv + BN + ReLU -> 1x1 conv to J heatmaps;
           between stacks x <- x + merge_preds(heatmaps) + merge_features(features)

Only ops that autocast (bf16) and channels_last handle natively are used; there are no in-place additions,
so a bf16 branch never has to be added into a float32 tensor in place.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from alpose_bench.pose.models.dropout import dropout_layer
from alpose_bench.pose.models.outputs import ModelInfo, PoseOutput, check_input_shape
from alpose_bench.pose.skeleton import Skeleton


class ConvBlock(nn.Sequential):
    """Conv2d (same padding, with bias as the reference) followed by optional BatchNorm and ReLU."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, bn: bool = False, relu: bool = False
    ) -> None:
        layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=(kernel - 1) // 2)]
        if bn:
            layers.append(nn.BatchNorm2d(out_ch))
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Residual(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-1x1(out/2), BN-ReLU-3x3(out/2), BN-ReLU-1x1(out), plus a skip.

    The skip is the identity when in_ch == out_ch and a 1x1 conv otherwise (the reference builds that conv in
    every block even when unused; we do not, so the parameter count is that of the layers actually used).
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        mid = out_ch // 2
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_ch, mid, 1),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_ch, 1),
        )
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.skip(x)


class Hourglass(nn.Module):
    """One recursive hourglass of `depth` levels at `channels` channels.

    forward returns (output at the input resolution, decoder maps): the decoder maps are the `low3` outputs of
    every level, outermost first, i.e. at 1/2, 1/4, ..., 1/2**depth of the input resolution.
    """

    def __init__(self, depth: int, channels: int) -> None:
        super().__init__()
        self.depth = depth
        self.up1 = Residual(channels, channels)
        self.low1 = Residual(channels, channels)
        self.low2: nn.Module = Hourglass(depth - 1, channels) if depth > 1 else Residual(channels, channels)
        self.low3 = Residual(channels, channels)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        upper = self.up1(x)
        low = self.low1(F.max_pool2d(x, 2))
        if isinstance(self.low2, Hourglass):
            low, inner = self.low2(low)
        else:
            low, inner = self.low2(low), []
        low3 = self.low3(low)
        return upper + F.interpolate(low3, scale_factor=2.0, mode="nearest"), [low3, *inner]


class StackedHourglass(nn.Module):
    """Stacked hourglass pose network for a `skeleton`, on square inputs of `input_size` pixels.

    forward(x (B, in_channels, S, S) float) -> PoseOutput with
      heatmaps   one (B, J, S/r, S/r) tensor per stack (all supervised), last = prediction; r = stem_stride,
                 4 as the reference, or 2 to keep finer heatmaps on small CPU-sized inputs;
      features   [last stack's hourglass output (C, S/4), its decoder maps at S/8, S/16, ..., S/4/2**depth],
                 detached;
      embedding  global average pool of the last stack's pre-output block (Residual + 1x1 conv), (B, C),
                 detached.
    """

    def __init__(
        self,
        skeleton: Skeleton,
        input_size: int,
        in_channels: int = 3,
        stacks: int = 2,
        channels: int = 256,
        depth: int = 4,
        stem_stride: int = 4,
        dropout: float = 0.0,
        dropout_kind: str = "element",
    ) -> None:
        super().__init__()
        if stem_stride not in (2, 4):
            raise ValueError(f"stem_stride must be 4 (the reference) or 2, got {stem_stride}")
        if stacks < 1:
            raise ValueError(f"hourglass needs at least 1 stack, got stacks={stacks}")
        if depth < 1:
            raise ValueError(f"hourglass depth must be >= 1, got depth={depth}")
        if channels < 8 or channels % 4:
            raise ValueError(f"hourglass channels must be a multiple of 4 and >= 8, got channels={channels}")
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        step = stem_stride * 2**depth
        if input_size < step or input_size % step:
            raise ValueError(
                f"hourglass input size must be a multiple of {stem_stride} * 2**depth = {step} (depth {depth}),"
                f" got {input_size}; change the input size or the depth"
            )
        self.skeleton = skeleton
        self.input_size = input_size
        self.in_channels = in_channels
        self.stacks = stacks
        self.channels = channels
        self.depth = depth
        self.stem_stride = stem_stride
        joints = skeleton.num_joints
        c1, c2 = channels // 4, channels // 2  # 64 / 128 for the reference's 256 channels
        self.stem = nn.Sequential(
            ConvBlock(in_channels, c1, 7, stride=2, bn=True, relu=True),
            Residual(c1, c2),
            nn.MaxPool2d(2, 2) if stem_stride == 4 else nn.Identity(),
            Residual(c2, c2),
            Residual(c2, channels),
        )
        self.hourglasses = nn.ModuleList(Hourglass(depth, channels) for _ in range(stacks))
        self.features = nn.ModuleList(
            nn.Sequential(Residual(channels, channels), ConvBlock(channels, channels, 1, bn=True, relu=True))
            for _ in range(stacks)
        )
        self.outs = nn.ModuleList(nn.Conv2d(channels, joints, 1) for _ in range(stacks))
        # dropout on the features each heatmap head reads (none by default; MC dropout keeps it on at inference)
        self.drop = dropout_layer(dropout, dropout_kind)  # checks the rate and the kind
        self.merge_features = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(stacks - 1))
        self.merge_preds = nn.ModuleList(nn.Conv2d(joints, channels, 1) for _ in range(stacks - 1))

    @property
    def heatmap_size(self) -> int:
        return self.input_size // self.stem_stride

    def model_info(self) -> ModelInfo:
        """Shapes of this model's outputs, for building auxiliary heads."""
        sizes = tuple(self.heatmap_size // 2**i for i in range(self.depth + 1))
        return ModelInfo(
            task="heatmap2d",
            skeleton=self.skeleton,
            feature_channels=(self.channels,) * len(sizes),
            feature_sizes=sizes,
            embedding_dim=self.channels,
            heatmap_size=self.heatmap_size,
            input_size=self.input_size,
        )

    def forward(self, x: Tensor) -> PoseOutput:
        check_input_shape(x, self.in_channels, self.input_size, "hourglass")
        x = self.stem(x)
        heatmaps: list[Tensor] = []
        for i in range(self.stacks):
            hg, decoder = self.hourglasses[i](x)
            feature = self.features[i](hg)
            pred = self.outs[i](self.drop(feature))
            heatmaps.append(pred)
            if i < self.stacks - 1:
                x = x + self.merge_preds[i](pred) + self.merge_features[i](feature)
        return PoseOutput(
            heatmaps=heatmaps,
            keypoints=None,
            features=[hg.detach(), *(d.detach() for d in decoder)],
            embedding=feature.mean(dim=(2, 3)).detach(),
        )
