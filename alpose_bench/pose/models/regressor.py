"""DeepPrior-style 3D keypoint regressor for depth crops of hands (ICVL, synth-hand).

DeepPrior (Oberweger et al.) regresses joint coordinates from a depth crop with a small convolutional trunk
and fully-connected layers; the crop cube normalises the targets. Here the trunk is log2(S/4) blocks of
[3x3 conv-BN-ReLU, max-pool 2] (widths doubling from `width`, capped at 8 x width), so the last map is
always 4x4; then two FC layers (ReLU, dropout as DeepPrior++) and a linear layer to J x 3 coordinates
in units of the crop cube's half-size (the targets are keypoints_mm / cube_mm).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from alpose_bench.pose.models.outputs import ModelInfo, PoseOutput, check_input_shape
from alpose_bench.pose.skeleton import Skeleton


def _stage(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2, 2),
    )


class KeypointRegressor(nn.Module):
    """Conv trunk + FC head regressing (B, J, 3) normalised coordinates from (B, in_channels, S, S) input.

    forward -> PoseOutput with
      keypoints  (B, J, 3) prediction (normalised by the crop cube);
      features   the output of every conv stage, largest first (S/2, S/4, ..., 4), detached;
      embedding  the penultimate FC activation (B, fc_width), detached;
      heatmaps   None.
    """

    def __init__(
        self,
        skeleton: Skeleton,
        input_size: int,
        in_channels: int = 1,
        width: int = 32,
        fc_width: int = 1024,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        stages = math.log2(input_size / 4) if input_size >= 8 else 0.0
        if stages < 1 or not stages.is_integer():
            raise ValueError(
                f"regressor input size must be 4 x a power of two (e.g. 64, 128), got {input_size}"
            )
        if width < 1 or fc_width < 1:
            raise ValueError(f"regressor widths must be positive, got width={width}, fc_width={fc_width}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"regressor dropout must be in [0, 1), got {dropout}")
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        self.skeleton = skeleton
        self.input_size = input_size
        self.in_channels = in_channels
        self.fc_width = fc_width
        self.stage_channels = tuple(min(width * 2**i, width * 8) for i in range(int(stages)))
        chans = (in_channels, *self.stage_channels)
        self.stages = nn.ModuleList(_stage(chans[i], chans[i + 1]) for i in range(len(self.stage_channels)))
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Linear(self.stage_channels[-1] * 4 * 4, fc_width),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(fc_width, fc_width),
            nn.ReLU(inplace=True),
        )
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(fc_width, skeleton.num_joints * 3)

    def model_info(self) -> ModelInfo:
        """Shapes of this model's outputs, for building auxiliary heads."""
        return ModelInfo(
            task="regression3d",
            skeleton=self.skeleton,
            feature_channels=self.stage_channels,
            feature_sizes=tuple(self.input_size // 2 ** (i + 1) for i in range(len(self.stage_channels))),
            embedding_dim=self.fc_width,
            heatmap_size=None,
            input_size=self.input_size,
        )

    def forward(self, x: Tensor) -> PoseOutput:
        check_input_shape(x, self.in_channels, self.input_size, "regressor")
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        hidden = self.fc(x)
        coords = self.out(self.drop(hidden)).reshape(x.shape[0], self.skeleton.num_joints, 3)
        return PoseOutput(
            heatmaps=None,
            keypoints=coords,
            features=[f.detach() for f in features],
            embedding=hidden.detach(),
        )
