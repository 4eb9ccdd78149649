"""Pose models: output shapes per config, feature pyramids, detached exports, sizes, errors, determinism."""

from __future__ import annotations

import pytest
import torch

from alpose_bench.pose.heatmaps import pose_loss, render_heatmaps
from alpose_bench.pose.models import ModelSpec, build_model, count_parameters, model_info
from alpose_bench.pose.models.outputs import TrainBatch
from alpose_bench.pose.skeleton import ICVL, LSP, MPII

torch.set_num_threads(1)

HOURGLASS_CONFIGS = [  # (input, stacks, channels, depth)
    (64, 1, 32, 3),
    (64, 2, 32, 2),
    (32, 2, 16, 1),
    (64, 1, 16, 4),
]


@pytest.mark.parametrize(("size", "stacks", "channels", "depth"), HOURGLASS_CONFIGS)
def test_hourglass_shapes_and_feature_pyramid(size: int, stacks: int, channels: int, depth: int) -> None:
    torch.manual_seed(0)
    model = build_model("heatmap2d", LSP, size, 3, ModelSpec(stacks=stacks, channels=channels, depth=depth))
    out = model(torch.rand(2, 3, size, size))
    hm = size // 4
    assert out.keypoints is None
    assert len(out.heatmaps) == stacks
    assert all(h.shape == (2, LSP.num_joints, hm, hm) for h in out.heatmaps)
    assert [f.shape[-1] for f in out.features] == [
        hm // 2**i for i in range(depth + 1)
    ]  # largest first, halving
    assert all(f.shape[:2] == (2, channels) and f.shape[-2] == f.shape[-1] for f in out.features)
    assert out.embedding.shape == (2, channels)
    info = model_info(model)
    assert info.task == "heatmap2d" and info.heatmap_size == hm and info.input_size == size
    assert info.feature_sizes == tuple(f.shape[-1] for f in out.features)
    assert info.feature_channels == tuple(f.shape[1] for f in out.features)
    assert info.embedding_dim == channels


@pytest.mark.parametrize("size", [64, 128])
def test_regressor_shapes_and_feature_pyramid(size: int) -> None:
    torch.manual_seed(0)
    spec = ModelSpec(regressor_width=4, regressor_fc=32)
    model = build_model("regression3d", ICVL, size, 1, spec)
    out = model(torch.rand(2, 1, size, size))
    assert out.heatmaps is None
    assert out.keypoints.shape == (2, ICVL.num_joints, 3)
    sizes = [f.shape[-1] for f in out.features]
    assert sizes[0] == size // 2 and sizes[-1] == 4
    assert sizes == [size // 2 ** (i + 1) for i in range(len(sizes))]
    assert [f.shape[1] for f in out.features] == [min(4 * 2**i, 32) for i in range(len(sizes))]
    assert out.embedding.shape == (2, 32)
    info = model_info(model)
    assert info.task == "regression3d" and info.heatmap_size is None and info.embedding_dim == 32
    assert info.feature_sizes == tuple(sizes)
    assert info.feature_channels == tuple(f.shape[1] for f in out.features)


def test_exports_are_detached_and_every_parameter_is_trained() -> None:
    torch.manual_seed(0)
    model = build_model("heatmap2d", MPII, 32, 3, ModelSpec(stacks=2, channels=16, depth=2))
    out = model(torch.rand(2, 3, 32, 32))
    assert not out.embedding.requires_grad
    assert all(not f.requires_grad and f.grad_fn is None for f in out.features)
    target = render_heatmaps(torch.full((2, 16, 2), 4.0), torch.ones(2, 16), 8, sigma=1.0)
    loss = pose_loss(
        out, TrainBatch(torch.zeros(2, 3, 32, 32), torch.zeros(2, 16, 2), torch.ones(2, 16), target)
    )
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())  # all stacks and merges are supervised

    reg = build_model("regression3d", ICVL, 64, 1, ModelSpec(regressor_width=4, regressor_fc=16))
    out = reg(torch.rand(2, 1, 64, 64))
    assert out.keypoints.requires_grad
    assert not out.embedding.requires_grad and all(not f.requires_grad for f in out.features)


def test_paper_config_parameter_count() -> None:
    model = build_model("heatmap2d", MPII, 256, 3, ModelSpec())
    # 6,570,400 used parameters; the reference also builds an unused 1x1 skip conv in each same-width block,
    # which brings its count to 8,429,088 (the "~8.4M" often quoted)
    assert count_parameters(model) == 6_570_400
    assert model_info(model).feature_sizes == (64, 32, 16, 8, 4)


def test_same_seed_same_model_and_output() -> None:
    x = torch.rand(2, 3, 32, 32)
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        model = build_model("heatmap2d", LSP, 32, 3, ModelSpec(stacks=1, channels=8, depth=1)).eval()
        outs.append(model(x).final_heatmaps)
    assert torch.equal(outs[0], outs[1])


def test_depth_input_and_bf16_autocast_channels_last() -> None:
    torch.manual_seed(0)
    model = build_model("heatmap2d", ICVL, 32, 1, ModelSpec(stacks=2, channels=16, depth=1))
    model = model.to(memory_format=torch.channels_last)
    x = torch.rand(2, 1, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        target = torch.zeros_like(out.heatmaps[-1], dtype=torch.float32)
        loss = pose_loss(out, TrainBatch(x, torch.zeros(2, 16, 2), torch.ones(2, 16), target))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_bad_configuration_raises() -> None:
    with pytest.raises(ValueError, match="multiple of 4 \\* 2\\*\\*depth = 32"):
        build_model("heatmap2d", MPII, 48, 3, ModelSpec(channels=16, depth=3))
    with pytest.raises(ValueError, match="channels must be a multiple of 4"):
        build_model("heatmap2d", MPII, 64, 3, ModelSpec(channels=30, depth=1))
    with pytest.raises(ValueError, match="at least 1 stack"):
        build_model("heatmap2d", MPII, 64, 3, ModelSpec(stacks=0, channels=16, depth=1))
    with pytest.raises(ValueError, match="4 x a power of two"):
        build_model("regression3d", ICVL, 96, 1, ModelSpec())
    with pytest.raises(ValueError, match="unknown task"):
        build_model("segmentation", ICVL, 64, 1, ModelSpec())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="model from build_model"):
        model_info(torch.nn.Linear(2, 2))
    model = build_model("heatmap2d", MPII, 32, 3, ModelSpec(stacks=1, channels=8, depth=1))
    with pytest.raises(ValueError, match="expects input"):
        model(torch.rand(1, 3, 64, 64))
