"""AuxNet: the reference's coarse-to-fine fusion, FC stack, parameter count and input checks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from alpose_bench.pose.models.aux import AuxNet, require_aux
from alpose_bench.pose.models.outputs import ModelInfo, PoseOutput
from alpose_bench.pose.skeleton import ICVL, MPII

torch.set_num_threads(1)


def info(channels: tuple[int, ...], sizes: tuple[int, ...], embedding: int = 8) -> ModelInfo:
    return ModelInfo(
        task="heatmap2d",
        skeleton=MPII,
        feature_channels=channels,
        feature_sizes=sizes,
        embedding_dim=embedding,
        heatmap_size=sizes[0],
        input_size=4 * sizes[0],
    )


def features(channels, sizes, batch=3, seed=0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, s, s, generator=g) for c, s in zip(channels, sizes)]


def test_conv_mode_is_the_reference_fusion() -> None:
    torch.manual_seed(0)
    channels, sizes = (4, 4, 4), (8, 4, 2)
    net = AuxNet(info(channels, sizes), out_dim=3, fc=(5, 2))
    f = features(channels, sizes)
    # by hand: conv k2 s2 + ReLU then add the next map, twice; a 2x2 conv over the last map; ReLU; FC 4-5-2-3
    x = F.relu(F.conv2d(f[0], net.down[0].weight, net.down[0].bias, stride=2)) + f[1]
    x = F.relu(F.conv2d(x, net.down[1].weight, net.down[1].bias, stride=2)) + f[2]
    v = F.relu(F.conv2d(x, net.reduce.weight, net.reduce.bias).flatten(1))
    lin = [m for m in net.fc if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in lin] == [(4, 5), (5, 2), (2, 3)]
    want = lin[2](F.relu(lin[1](F.relu(lin[0](v)))))
    torch.testing.assert_close(net(f), want)


def test_reference_size_has_about_2_1_million_parameters() -> None:
    """The paper: the auxiliary network adds ~2.1M parameters to the two-stack hourglass (256 ch, 64..4 px)."""
    net = AuxNet(info((256,) * 5, (64, 32, 16, 8, 4), embedding=256), out_dim=30)
    n = sum(p.numel() for p in net.parameters())
    assert 2.0e6 < n < 2.2e6
    out = net(features((256,) * 5, (64, 32, 16, 8, 4), batch=1))
    assert out.shape == (1, 30)


def test_differing_channels_are_projected() -> None:
    channels, sizes = (2, 4, 8), (16, 8, 4)
    regressor_info = ModelInfo(
        task="regression3d",
        skeleton=ICVL,
        feature_channels=channels,
        feature_sizes=sizes,
        embedding_dim=32,
        heatmap_size=None,
        input_size=32,
    )
    net = AuxNet(regressor_info, out_dim=ICVL.num_links * 6)
    assert [type(m).__name__ for m in net.project] == ["Conv2d", "Conv2d"]
    assert net.project[0].kernel_size == (1, 1) and net.project[0].out_channels == 4
    assert net(features(channels, sizes)).shape == (3, 90)


def test_avg_mode_reads_the_embedding() -> None:
    torch.manual_seed(0)
    net = AuxNet(info((4, 4), (4, 2), embedding=6), out_dim=2, mode="avg")
    emb = torch.randn(5, 6)
    out = PoseOutput(heatmaps=None, keypoints=None, features=features((4, 4), (4, 2), batch=5), embedding=emb)
    torch.testing.assert_close(net(out), net.fc(emb))
    with pytest.raises(ValueError, match="PoseOutput"):
        net(out.features)


def test_conv_mode_accepts_a_pose_output() -> None:
    net = AuxNet(info((4, 4), (4, 2)), out_dim=2)
    f = features((4, 4), (4, 2))
    out = PoseOutput(heatmaps=None, keypoints=None, features=f, embedding=torch.zeros(3, 8))
    torch.testing.assert_close(net(out), net(f))


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match="half the size"):
        AuxNet(info((4, 4), (8, 3)), out_dim=1)
    with pytest.raises(ValueError, match="mode"):
        AuxNet(info((4, 4), (8, 4)), out_dim=1, mode="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="out_dim"):
        AuxNet(info((4, 4), (8, 4)), out_dim=0)
    net = AuxNet(info((4, 4), (8, 4)), out_dim=1)
    with pytest.raises(ValueError, match="feature map 1"):
        net(features((4, 5), (8, 4)))
    with pytest.raises(ValueError, match="2 feature maps"):
        net(features((4,), (8,)))


def test_require_aux() -> None:
    with pytest.raises(ValueError, match="auxiliary head"):
        require_aux(None, "x", 2)
    with pytest.raises(ValueError, match="expects 3"):
        require_aux(torch.zeros(4, 2), "x", 3)
    assert require_aux(torch.zeros(4, 2, 3, dtype=torch.bfloat16), "x", 6).dtype == torch.float32
