"""Heatmap targets, decoding, coordinate conventions and pose losses."""

from __future__ import annotations

import math

import pytest
import torch

from alpose_bench.pose.heatmaps import (
    decode_heatmaps,
    decode_keypoints,
    default_sigma,
    heatmap_coords_to_input,
    heatmap_to_input_scale,
    keypoints_to_heatmap_coords,
    pose_loss,
    pose_loss_per_sample,
    render_heatmaps,
)
from alpose_bench.pose.models.outputs import PoseOutput, TrainBatch


def _output(heatmaps: list[torch.Tensor] | None = None, keypoints: torch.Tensor | None = None) -> PoseOutput:
    b = (heatmaps[0] if heatmaps else keypoints).shape[0]
    return PoseOutput(heatmaps=heatmaps, keypoints=keypoints, features=[], embedding=torch.zeros(b, 1))


def test_render_values_window_and_visibility() -> None:
    kp = torch.tensor([[[4.0, 5.0], [4.0, 5.0], [20.0, 3.0], [float("nan"), 1.0]]])
    visible = torch.tensor([[1, 0, 1, 0]])
    hm = render_heatmaps(kp, visible, size=16, sigma=1.0, amplitude=30.0)
    assert hm.shape == (1, 4, 16, 16)
    assert hm[0, 0, 5, 4] == pytest.approx(30.0)  # row = y, column = x
    assert hm[0, 0, 5, 5] == pytest.approx(30.0 * math.exp(-0.5))
    assert hm[0, 0, 6, 5] == pytest.approx(30.0 * math.exp(-1.0))
    # σ = 1: window ⌈6σ⌉ = 6 -> made odd = 7 px, so ±3 px around the keypoint and nothing beyond
    assert hm[0, 0, 5, 7] > 0 and hm[0, 0, 5, 8] == 0 and hm[0, 0, 9, 4] == 0
    assert hm[0, 0].sum() == pytest.approx(hm[0, 0, 2:9, 1:8].sum())
    assert torch.all(hm[0, 1] == 0)  # not visible
    assert torch.all(hm[0, 2] == 0)  # outside the 16x16 map
    assert torch.all(hm[0, 3] == 0) and not torch.isnan(hm).any()  # unannotated joint holding NaN


def test_render_reference_window_at_sigma_1_75() -> None:
    hm = render_heatmaps(
        torch.tensor([[[30.0, 30.0]]]), torch.ones(1, 1), size=64
    )  # defaults: σ 1.75, peak 30
    row = hm[0, 0, 30]
    assert row.max() == pytest.approx(30.0)
    # ⌈6 x 1.75⌉ = 11 (odd): ±5 px
    assert row[25] == pytest.approx(30.0 * math.exp(-25 / (2 * 1.75**2))) and row[24] == 0 and row[36] == 0


def test_render_subpixel_centre_and_border_clipping() -> None:
    hm = render_heatmaps(torch.tensor([[[0.4, 7.0]]]), torch.ones(1, 1), size=8, sigma=1.0)
    row = hm[0, 0, 7]  # y = 7 is the last row: the Gaussian is cut by the border
    assert row[0] == pytest.approx(30.0 * math.exp(-0.08))
    assert row[1] == pytest.approx(30.0 * math.exp(-0.18))
    assert hm[0, 0, :4].sum() == 0


def test_decode_round_trip_within_a_tenth_of_a_pixel_at_sigma_1() -> None:
    g = torch.Generator().manual_seed(0)
    kp = torch.rand(4, 16, 2, generator=g) * 12 + 1.5  # 16x16 map; the ±2 px window stays on the map
    hm = render_heatmaps(kp, torch.ones(4, 16), size=16, sigma=1.0)
    coords, peak = decode_heatmaps(hm)
    assert (coords - kp).abs().max() < 0.1
    assert torch.allclose(peak, hm.flatten(2).max(-1).values)


def test_decode_exact_at_integers_and_reference_bias_at_sigma_1_75() -> None:
    kp = torch.tensor([[[10.0, 20.0], [33.0, 41.0], [0.0, 63.0]]])
    coords, peak = decode_heatmaps(render_heatmaps(kp, torch.ones(1, 3), size=64))
    assert torch.allclose(coords[:, :2], kp[:, :2], atol=1e-5)  # symmetric window around an integer keypoint
    assert torch.allclose(peak, torch.full((1, 3), 30.0))
    # at the border the window is clipped (as the reference): pulled inwards, but on the map
    assert 0.0 < coords[0, 2, 0] < 1.0 and 62.0 < coords[0, 2, 1] < 63.0
    # sub-pixel: the reference's ±2 px weighted mean is biased towards the argmax (≤ 0.25 px at σ = 1.75)
    sub = torch.stack([10 + torch.linspace(0, 1, 41), torch.full((41,), 7.0)], dim=-1)[None]
    err = (decode_heatmaps(render_heatmaps(sub, torch.ones(1, 41), size=64))[0] - sub).abs().max()
    assert 0.1 < err < 0.26


def test_decode_ties_zero_maps_and_negatives() -> None:
    hm = torch.zeros(1, 3, 5, 5)
    hm[0, 0, 1, 3] = hm[0, 0, 4, 0] = 2.0  # tie: the first in row-major order wins
    hm[0, 2] = -1.0  # all negative: no positive mass -> argmax (first pixel)
    hm[0, 2, 2, 2] = -0.5
    coords, peak = decode_heatmaps(hm)
    assert coords[0, 0].tolist() == [3.0, 1.0]
    assert coords[0, 1].tolist() == [0.0, 0.0] and peak[0, 1] == 0
    assert coords[0, 2].tolist() == [2.0, 2.0] and peak[0, 2] == -0.5
    assert not torch.isnan(coords).any()


def test_coordinate_convention_round_trip() -> None:
    assert heatmap_to_input_scale(256, 64) == 4.0
    p = torch.tensor([0.0, 1.5, 61.5, 63.0])
    h = keypoints_to_heatmap_coords(p, 64, 16)
    assert h.tolist() == [
        -0.375,
        0.0,
        15.0,
        15.375,
    ]  # heatmap pixel centre 0 covers input pixels 0..3: centre 1.5
    assert torch.allclose(heatmap_coords_to_input(h, 64, 16), p)
    with pytest.raises(ValueError, match="sizes must be positive"):
        heatmap_to_input_scale(64, 0)


def test_decode_keypoints_in_input_pixels_and_regression_passthrough() -> None:
    kp_input = torch.tensor([[[10.0, 50.0], [33.3, 7.7]]])
    hm = render_heatmaps(keypoints_to_heatmap_coords(kp_input, 64, 16), torch.ones(1, 2), 16, sigma=1.0)
    decoded = decode_keypoints(
        _output([torch.zeros_like(hm), hm]), input_size=64
    )  # last stack is the prediction
    assert (decoded - kp_input).abs().max() < 0.4  # 0.1 heatmap px = 0.4 input px
    kp3 = torch.randn(2, 16, 3)
    assert decode_keypoints(_output(keypoints=kp3), input_size=128) is kp3


def test_default_sigma() -> None:
    assert default_sigma(64) == 1.75
    assert default_sigma(128) == 3.5
    assert default_sigma(16) == 1.0  # never below one pixel


def test_heatmap_loss_zero_at_target_and_stack_average() -> None:
    target = render_heatmaps(torch.tensor([[[3.0, 4.0]], [[8.0, 8.0]]]), torch.ones(2, 1), 16, 1.0)
    batch = TrainBatch(torch.zeros(2, 3, 64, 64), torch.zeros(2, 1, 2), torch.ones(2, 1), heatmaps=target)
    assert torch.all(pose_loss_per_sample(_output([target, target.clone()]), batch) == 0)
    off = target.clone()
    off[1] += 2.0  # second sample off by 2 everywhere in stack 1: MSE 4 for that stack, 0 for the other -> 2
    per = pose_loss_per_sample(_output([off, target]), batch)
    assert per.tolist() == pytest.approx([0.0, 2.0])
    assert pose_loss(_output([off, target]), batch).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ in shape"):
        pose_loss(_output([target[:, :, :8]]), batch)
    with pytest.raises(ValueError, match="no target heatmaps"):
        pose_loss(_output([target]), TrainBatch(batch.images, batch.keypoints, batch.visible, None))


def test_regression_loss_over_visible_joints() -> None:
    gt = torch.zeros(2, 3, 3)
    gt[0, 2] = float("nan")  # unannotated joints may carry NaN
    pred = torch.zeros(2, 3, 3)
    pred[0, 0] = torch.tensor([0.3, 0.4, 0.0])  # squared error 0.25
    pred[0, 2] = 5.0
    visible = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    batch = TrainBatch(images=torch.zeros(2, 1, 64, 64), keypoints=gt, visible=visible, heatmaps=None)
    per = pose_loss_per_sample(_output(keypoints=pred), batch)
    assert per.tolist() == pytest.approx([0.125, 0.0])
    assert pose_loss_per_sample(_output(keypoints=gt.nan_to_num()), batch).tolist() == [0.0, 0.0]


def test_render_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="keypoints must be"):
        render_heatmaps(torch.zeros(2, 3), torch.ones(2), 16)
    with pytest.raises(ValueError, match="visible must be"):
        render_heatmaps(torch.zeros(2, 3, 2), torch.ones(2, 4), 16)
    with pytest.raises(ValueError, match="sigma > 0"):
        render_heatmaps(torch.zeros(2, 3, 2), torch.ones(2, 3), 16, sigma=0.0)


def test_the_codec_is_what_training_renders_and_decoding_inverts():
    """One object for the targets and the decoding: training's batch targets are `codec.encode`'s, and decoding a
    rendered target gives the keypoint back (to the refinement's bias)."""
    import numpy as np

    from alpose_bench.pose.heatmaps import HeatmapCodec
    from alpose_bench.pose.models import model_info
    from alpose_bench.testing import make_dataset, tiny_model, train_batch

    dataset = make_dataset("heatmap2d", n_train=6, n_test=2)
    info = model_info(tiny_model(dataset))
    codec = HeatmapCodec.reference(dataset.resolution, info.heatmap_size)
    batch = train_batch(dataset, info, n=3)
    kp = torch.from_numpy(dataset.train.keypoints[:3]).float()
    vis = torch.from_numpy(dataset.train.visible[:3].astype(np.float32))
    heatmap_kp, targets = codec.encode(kp, vis)
    torch.testing.assert_close(batch.heatmaps, targets)
    torch.testing.assert_close(batch.keypoints, heatmap_kp)
    inside = vis.bool() & (heatmap_kp >= 2).all(-1) & (heatmap_kp <= info.heatmap_size - 3).all(-1)
    decoded = codec.decode(targets)
    assert (decoded - kp).abs()[inside].max() < 0.6 * dataset.resolution / info.heatmap_size


def test_heatmap_scorers_divide_by_the_runs_target_peak():
    from alpose_bench.pose.heatmaps import HeatmapCodec
    from alpose_bench.samplers import create_sampler
    from alpose_bench.testing import make_context

    sampler = create_sampler("least-confidence")
    ctx = make_context("heatmap2d", n_pool=8, sampler=sampler)
    plain = sampler.score(ctx)
    ctx.codec = HeatmapCodec(64, 16, 1.0, 60.0)  # targets twice as high: 1 - max / 60
    doubled = sampler.score(ctx)
    torch.testing.assert_close(torch.from_numpy(1 - doubled), torch.from_numpy((1 - plain) / 2))
