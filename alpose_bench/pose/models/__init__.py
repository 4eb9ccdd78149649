"""Pose models: the stacked hourglass and a heatmap head on an ImageNet-pretrained backbone (MobileNetV2,
EfficientNet-Lite0: `BACKBONES`) (2D heatmaps), and a DeepPrior-style 3D regressor, from a ModelSpec.

Every model's forward(x (B, C, H, W) float) returns a `PoseOutput`; `model_info(model)` gives the shapes an
auxiliary head needs. Weights are initialised from torch's global RNG: seed it (torch.manual_seed) before
`build_model` for reproducible runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from alpose_bench.core.failures import UserFacingError
from alpose_bench.pose.data import Task
from alpose_bench.pose.models.hourglass import StackedHourglass
from alpose_bench.pose.models.outputs import ModelInfo, PoseOutput, TrainBatch
from alpose_bench.pose.models.pretrained import BACKBONES, PretrainedPose
from alpose_bench.pose.models.regressor import KeypointRegressor
from alpose_bench.pose.models.weights import load_weights, locate
from alpose_bench.pose.skeleton import Skeleton

__all__ = [
    "BACKBONES",
    "KeypointRegressor",
    "ModelInfo",
    "ModelSpec",
    "PoseOutput",
    "PretrainedPose",
    "StackedHourglass",
    "TrainBatch",
    "build_model",
    "check_available",
    "count_parameters",
    "model_info",
]


class ModelSpecError(UserFacingError, ValueError):
    """A model that cannot be built as asked."""


@dataclass(frozen=True)
class ModelSpec:
    """Architecture hyper-parameters of the pose model.

    Hourglass (heatmap2d): `stacks` hourglasses of recursion `depth` at `channels` channels; the reference
    (paper) setting is 2 / 256 / 4 at 256 px input (64x64 heatmaps). The input size must be a multiple of
    4 * 2**depth.
    Regressor (regression3d): conv trunk starting at `regressor_width` channels (doubling per stage, capped
    at 8x), two FC layers of `regressor_fc` units with dropout `regressor_dropout` (DeepPrior / DeepPrior++
    values).
    """

    stacks: int = 2
    channels: int = 256
    depth: int = 4
    stem_stride: int = 4
    regressor_width: int = 32
    regressor_fc: int = 1024
    regressor_dropout: float = 0.3
    #: hourglass: dropout on each stack's features before its heatmap head (0 = none, the reference); MC dropout
    #: samplers keep it on at inference (pretrained models: before the head's last 1x1 convolution)
    dropout: float = 0.0
    dropout_kind: str = "element"  # single units or whole feature maps (`dropout.LAYERS`)
    #: 2D heatmap models: "hourglass" (from scratch) or a pretrained backbone's name (`BACKBONES`: a head
    #: `channels` wide on it); the backbone starts from "imagenet" weights or "random" ones, and its last
    #: `trainable_blocks` blocks train with the head (0: frozen)
    family: str = "hourglass"
    backbone_weights: str = "imagenet"
    trainable_blocks: int = 0
    #: a frozen ImageNet backbone's outputs are computed once per dataset and read back (`feature_cache`)
    feature_cache: bool = True

    @property
    def caches_features(self) -> bool:
        """True when the backbone is pretrained and frozen and its outputs are cached: training then flips only."""
        return (
            self.family in BACKBONES and self.backbone_weights == "imagenet" and self.trainable_blocks == 0
            and self.feature_cache
        )  # fmt: skip


def build_model(
    task: Task, skeleton: Skeleton, input_size: int, in_channels: int, spec: ModelSpec
) -> nn.Module:
    """The pose model for `task`: stacked hourglass for "heatmap2d", keypoint regressor for "regression3d"."""
    if task == "heatmap2d" and spec.family in BACKBONES:
        model = PretrainedPose(
            skeleton, input_size, in_channels=in_channels, backbone=spec.family, channels=spec.channels,
            dropout=spec.dropout, trainable_blocks=spec.trainable_blocks, dropout_kind=spec.dropout_kind,
        )  # fmt: skip
        if spec.backbone_weights == "imagenet":
            model.load_backbone(load_weights(BACKBONES[spec.family].weights))
        return model
    if task == "heatmap2d":
        return StackedHourglass(
            skeleton,
            input_size,
            in_channels=in_channels,
            stacks=spec.stacks,
            channels=spec.channels,
            depth=spec.depth,
            stem_stride=spec.stem_stride,
            dropout=spec.dropout,
            dropout_kind=spec.dropout_kind,
        )
    if task == "regression3d":
        return KeypointRegressor(
            skeleton,
            input_size,
            in_channels=in_channels,
            width=spec.regressor_width,
            fc_width=spec.regressor_fc,
            dropout=spec.regressor_dropout,
        )
    raise ValueError(f"unknown task {task!r}; expected 'heatmap2d' or 'regression3d'")


def check_available(spec: ModelSpec) -> None:
    """A one-line error now (before any data is loaded or model trained) when the pretrained weights the model
    starts from are not installed or not the file expected (WeightsError), or it asks to train more blocks than its
    backbone has (ModelSpecError)."""
    if spec.family not in BACKBONES:
        return
    backbone = BACKBONES[spec.family]
    if spec.trainable_blocks > backbone.units():
        raise ModelSpecError(
            f"trainable_blocks {spec.trainable_blocks} is more than {backbone.description} has "
            f"({backbone.units()} blocks); set trainable_blocks to 0-{backbone.units()}"
        )
    if spec.backbone_weights == "imagenet":
        locate(backbone.weights)


def _unwrap(model: nn.Module) -> nn.Module:
    """The underlying pose model of a torch.compile'd or DataParallel/DDP-wrapped one."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod  # type: ignore[assignment]
        elif isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model


def model_info(model: nn.Module) -> ModelInfo:
    """Output shapes of a model from `build_model` (also when compiled or wrapped for data parallelism)."""
    inner = _unwrap(model)
    if not isinstance(inner, (StackedHourglass, PretrainedPose, KeypointRegressor)):
        raise TypeError(f"model_info needs a model from build_model, got {type(inner).__name__}")
    return inner.model_info()


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of a model."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
