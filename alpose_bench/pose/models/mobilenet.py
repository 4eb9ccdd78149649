"""MobileNetV2 (Sandler et al. 2018) as torchvision defines it, parameter for parameter, so torchvision's ImageNet
checkpoint loads into it without torchvision installed (the pose model on it: `alpose_bench.pose.models.pretrained`).

Parameter names follow `torchvision.models.mobilenet_v2`: `features.0` is the stem (conv, BN, ReLU6), `features.1`
to `features.17` the inverted residual blocks, `features.18` the last 1x1 convolution to 1280 channels. The
classifier is left out (pose models do not use it); loading a checkpoint ignores exactly its keys.
"""

from __future__ import annotations

from torch import Tensor, nn

#: (expansion t, output channels c, repeats n, first stride s) of torchvision's MobileNetV2 (width 1.0)
INVERTED_RESIDUALS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                      (6, 320, 1, 1))  # fmt: skip
#: the blocks whose outputs the pose head reads: the last block at stride 4, 8, 16 and 32
TAPS = (3, 6, 13, 18)
TAP_CHANNELS = (24, 32, 96, 1280)
#: ImageNet statistics the checkpoint was trained with (inputs in [0, 1] are normalised inside the model)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: the checkpoint's classifier, which the pose model does not have
CLASSIFIER_KEYS = ("classifier.1.weight", "classifier.1.bias")


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

    def units(self) -> list[list[nn.Module]]:
        """The network's units in order (its 19 blocks): what `trainable_blocks` counts from the end."""
        return [[block] for block in self.features]

    def forward(self, x: Tensor) -> list[Tensor]:
        """The outputs of the `TAPS` blocks (strides 4, 8, 16, 32)."""
        taps = []
        for index, block in enumerate(self.features):
            x = block(x)
            if index in TAPS:
                taps.append(x)
        return taps
