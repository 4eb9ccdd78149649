"""What pose models return, and what an auxiliary head may know about the model it sits on."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from alpose_bench.pose.data import Task
from alpose_bench.pose.skeleton import Skeleton


@dataclass
class PoseOutput:
    """The forward pass of a pose model.

    heatmaps   per stack, each (B, J, h, w); the last one is the prediction (heatmap task), None for regression.
    keypoints  (B, J, 3) regressed coordinates normalised by the crop cube (regression task), None for heatmaps.
    features   multi-scale feature maps of the last stack, largest first, each (B, C_i, s_i, s_i) with
               s_{i+1} = s_i / 2; detached, so auxiliary heads never send gradients into the pose model.
    embedding  (B, E) pooled feature vector (Core-Set, EGL++ neighbours).
    """

    heatmaps: list[Tensor] | None
    keypoints: Tensor | None
    features: list[Tensor]
    embedding: Tensor

    @property
    def stack_heatmaps(self) -> list[Tensor]:
        """The heatmaps of every stack (ValueError for a regression model)."""
        if self.heatmaps is None:
            raise ValueError("this model regresses coordinates and has no heatmaps")
        return self.heatmaps

    @property
    def final_heatmaps(self) -> Tensor:
        """The last stack's heatmaps, the prediction (ValueError for a regression model)."""
        return self.stack_heatmaps[-1]

    @property
    def regressed(self) -> Tensor:
        """The regressed keypoints (ValueError for a heatmap model)."""
        if self.keypoints is None:
            raise ValueError("this model predicts heatmaps, not coordinates")
        return self.keypoints


@dataclass(frozen=True)
class ModelInfo:
    """Shapes an auxiliary head is built for."""

    task: Task
    skeleton: Skeleton
    feature_channels: tuple[int, ...]  # channels of PoseOutput.features, largest map first
    feature_sizes: tuple[int, ...]  # spatial size of each feature map
    embedding_dim: int
    heatmap_size: int | None  # h (= w) of the heatmaps; None for regression
    input_size: int


@dataclass
class TrainBatch:
    """One augmented training batch, in the model's coordinates.

    images     (B, C, H, W) float model input.
    keypoints  (B, J, 2) ground truth in heatmap pixels (heatmap task) or (B, J, 3) normalised by the cube (regression).
    visible    (B, J) float 1/0: the joint is annotated (and, after augmentation, inside the image).
    heatmaps   (B, J, h, w) target heatmaps (heatmap task), None for regression.
    skeleton   the joints and links of the keypoints (auxiliary losses over links read it).
    """

    images: Tensor
    keypoints: Tensor
    visible: Tensor
    heatmaps: Tensor | None
    skeleton: Skeleton | None = None


def check_input_shape(x: Tensor, in_channels: int, input_size: int, model: str) -> None:
    """Raise a clear ValueError unless x is (B, in_channels, input_size, input_size)."""
    if x.ndim != 4 or x.shape[1] != in_channels or tuple(x.shape[-2:]) != (input_size, input_size):
        raise ValueError(
            f"{model} expects input (B, {in_channels}, {input_size}, {input_size}), got {tuple(x.shape)}"
        )
