"""Tests of the built-in synthetic datasets (synth-human, synth-hand) and of the figure renderer."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from alpose_bench.datasets import hand as hand_mod
from alpose_bench.datasets.poses import (
    BONES,
    HUMAN_MODE_NAMES,
    HUMAN_MODE_PRIOR,
    forward_kinematics,
    reversed_prior,
    sample_bones,
    sample_human_poses,
    sample_modes,
)
from alpose_bench.datasets.render import (
    CLEAN_STYLE,
    SLOTS,
    FigureExtras,
    RenderStyle,
    figure_palette,
    head_box_diagonal,
    render_people,
)
from alpose_bench.datasets.synthetic import CHUNK, SynthHand, SynthHuman
from alpose_bench.pose.data import DatasetConfig, DatasetError, PoseDataset
from alpose_bench.pose.skeleton import LSP, MPII

SMALL = {"pool_size": 48, "test_size": 16, "options": {"ood_size": 16}}


def _load(plugin, tmp_path: Path, **kw) -> PoseDataset:
    args = {"resolution": 32, **SMALL, **kw}
    return plugin().load(DatasetConfig(cache_dir=tmp_path, **args))


def _splits(ds: PoseDataset):
    return {"train": ds.train, "test": ds.test, "ood": ds.ood}


def _assert_same(a: PoseDataset, b: PoseDataset) -> None:
    for name, split in _splits(a).items():
        other = _splits(b)[name]
        for field in ("images", "keypoints", "visible", "normalizer", "groups"):
            np.testing.assert_array_equal(
                getattr(split, field), getattr(other, field), err_msg=f"{name}.{field}"
            )


# ---------------------------------------------------------------------------------------------------------------------
# determinism, shapes, cache


@pytest.mark.parametrize("plugin", [SynthHuman, SynthHand])
def test_same_seed_same_arrays_other_seed_differs(plugin, tmp_path):
    a = _load(plugin, tmp_path / "a", seed=3)
    b = _load(plugin, tmp_path / "b", seed=3)  # separate cache: generated twice
    assert not a.info["from_cache"] and not b.info["from_cache"]
    _assert_same(a, b)
    c = _load(plugin, tmp_path / "c", seed=4)
    assert not np.array_equal(a.train.images, c.train.images)


def test_human_shapes_dtypes_and_metadata(tmp_path):
    ds = _load(SynthHuman, tmp_path, resolution=64)
    assert (ds.name, ds.task, ds.metric, ds.skeleton) == ("synth-human", "heatmap2d", "pckh", MPII)
    assert ds.group_names == HUMAN_MODE_NAMES and ds.group_prior == HUMAN_MODE_PRIOR
    assert ds.resolution == 64 and ds.channels == 3
    for split, n in ((ds.train, 48), (ds.test, 16), (ds.ood, 16)):
        assert split.images.shape == (n, 64, 64, 3) and split.images.dtype == np.uint8
        assert split.keypoints.shape == (n, 16, 2) and split.keypoints.dtype == np.float32
        assert split.visible.shape == (n, 16) and split.visible.dtype == bool
        assert split.normalizer.dtype == np.float32 and (split.normalizer > 0).all()
        assert split.groups.dtype == np.int64 and set(split.groups) <= set(range(7))
        assert split.images.std() > 10  # not blank


def test_visible_keypoints_lie_inside_the_image(tmp_path):
    ds = _load(SynthHuman, tmp_path, resolution=48, pool_size=300)
    kp, vis = ds.train.keypoints, ds.train.visible
    assert vis.mean() > 0.97  # figures are kept mostly inside the frame
    inside = (kp >= 0).all(-1) & (kp <= 47).all(-1)
    np.testing.assert_array_equal(vis, inside)
    # the head box diagonal is about 1.7 head lengths (0.6 x diagonal ~ head segment, as in MPII)
    head = np.linalg.norm(kp[:, 9] - kp[:, 8], axis=1)
    ratio = ds.train.normalizer / head
    assert 1.6 < ratio.min() and ratio.max() < 2.3


def test_hand_shapes_convention_and_projection(tmp_path):
    ds = _load(SynthHand, tmp_path, resolution=32, pool_size=200)
    assert (ds.task, ds.metric, ds.cube_mm, ds.channels) == ("regression3d", "mpjpe", 120.0, 1)
    split = ds.train
    assert split.images.shape == (200, 32, 32, 1) and split.keypoints.shape == (200, 16, 3)
    assert split.keypoints.dtype == np.float32 and split.visible.all()
    np.testing.assert_array_equal(split.normalizer, np.ones(200, np.float32))
    assert np.abs(split.keypoints).max() < ds.cube_mm
    # keypoints projected with pixel = (x / cube + 1) * res / 2 - 0.5 land on the hand (depth < background)
    px = np.rint(hand_mod.mm_to_pixels(split.keypoints[..., :2], ds.cube_mm, 32)).astype(int).clip(0, 31)
    on_hand = split.images[np.arange(200)[:, None], px[..., 1], px[..., 0], 0] < hand_mod.BACKGROUND
    assert on_hand.mean() > 0.85
    assert on_hand[:, 0].mean() > 0.95  # the palm
    # palm in front of / behind: depth values of the hand pixels follow z (near dark, far bright)
    z = split.keypoints[:, 0, 2]
    value = split.images[np.arange(200), px[:, 0, 1], px[:, 0, 0], 0].astype(float)
    assert np.corrcoef(z[on_hand[:, 0]], value[on_hand[:, 0]])[0, 1] > 0.8


def test_hand_depth_encoding_hand_computed():
    # one ball of radius 15 mm at (31.875, -31.875, 10) mm: its centre falls on pixel (40, 23) of a 64 px image
    # (pixel = (x / 120 + 1) * 32 - 0.5); its front surface z = 10 - 15 = -5 mm -> round((-5/120 + 1) / 2 * 254) = 122
    centre = np.array([[[31.875, -31.875, 10.0]]])
    far = np.array([[[-60.0, 60.0, 130.0]]])  # beyond the far face of the cube
    poses = hand_mod.HandPoses(
        joints=np.zeros((1, 16, 3)),
        seg_a=np.concatenate([centre, far], 1),
        seg_b=np.concatenate([centre, far], 1),
        radius=np.array([[15.0, 5.0]]),
        gestures=np.zeros(1, np.int64),
    )
    img = hand_mod.render_depth(
        poses, 120.0, 64, np.random.default_rng(0), noise_mm=0.0, dropout=0.0, edge_dropout=0.0
    )
    assert img.shape == (1, 64, 64, 1) and img.dtype == np.uint8
    assert img[0, 23, 40, 0] == 122
    assert img[0, 0, 0, 0] == 255
    far_px = np.rint(hand_mod.mm_to_pixels(far[0, 0, :2], 120.0, 64)).astype(int)
    assert img[0, far_px[1], far_px[0], 0] == 255
    # ball radius: 15 mm = 4 px; 5 px from the centre is background, 3 px is the ball
    assert img[0, 23, 45, 0] == 255 and img[0, 23, 43, 0] < 255


def test_cache_hit_returns_equal_arrays(tmp_path):
    first = _load(SynthHuman, tmp_path)
    second = _load(SynthHuman, tmp_path)
    assert not first.info["from_cache"] and second.info["from_cache"]
    assert Path(first.info["cache_path"]).parent == tmp_path
    _assert_same(first, second)
    # another parameter, another file
    third = _load(SynthHuman, tmp_path, seed=1)
    assert third.info["cache_path"] != first.info["cache_path"] and not third.info["from_cache"]
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporary file


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_cache_is_regenerated(tmp_path, damage):
    first = _load(SynthHand, tmp_path)
    path = Path(first.info["cache_path"])
    data = path.read_bytes()
    path.write_bytes(b"not a zip file" if damage == "garbage" else data[: len(data) // 2])
    with pytest.warns(RuntimeWarning, match="regenerating"):
        again = _load(SynthHand, tmp_path)
    assert not again.info["from_cache"]
    _assert_same(first, again)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _load(SynthHand, tmp_path).info["from_cache"]  # rewritten, readable


def test_poses_do_not_depend_on_the_resolution(tmp_path):
    lo = _load(SynthHuman, tmp_path, resolution=32, pool_size=CHUNK + 10)
    hi = _load(SynthHuman, tmp_path, resolution=128, pool_size=CHUNK + 10)
    # same figures at 4x the resolution: pixel centres map as (x + 0.5) * 4 - 0.5
    np.testing.assert_allclose(hi.train.keypoints, (lo.train.keypoints + 0.5) * 4 - 0.5, rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(hi.train.groups, lo.train.groups)


def test_256_px_works(tmp_path):
    ds = _load(SynthHuman, tmp_path, resolution=256, pool_size=3, test_size=2, options={"ood_size": 2})
    assert ds.train.images.shape == (3, 256, 256, 3)
    vis = ds.train.visible
    assert ((ds.train.keypoints[vis] >= 0) & (ds.train.keypoints[vis] <= 255)).all()
    hand = _load(SynthHand, tmp_path, resolution=256, pool_size=3, test_size=2, options={"ood_size": 0})
    assert hand.train.images.shape == (3, 256, 256, 1) and hand.ood is None


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"resolution": 16}, "resolution must be an integer >= 32"),
        ({"pool_size": 0}, "pool_size must be an integer >= 1"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"options": {"oodsize": 3}}, "has no option .oodsize.; its options: ood_appearance, ood_size"),
        ({"options": {"ood_size": -1}}, r"ood_size must be in \[0, 1,000,000\], got -1"),
    ],
)
def test_bad_config_raises_clear_error(tmp_path, kw, message):
    with pytest.raises(DatasetError, match=message):
        _load(SynthHuman, tmp_path, **kw)


def test_hand_cube_option(tmp_path):
    with pytest.raises(DatasetError, match="cube_mm"):
        _load(SynthHand, tmp_path, options={"cube_mm": 10})
    ds = _load(SynthHand, tmp_path, options={"cube_mm": 150, "ood_size": 0})
    assert ds.cube_mm == 150.0


# ---------------------------------------------------------------------------------------------------------------------
# pose modes


def test_group_frequencies_are_long_tailed_and_follow_the_prior(tmp_path):
    prior = np.array(HUMAN_MODE_PRIOR)
    assert prior.max() / prior.min() >= 5 and prior.min() < 0.05  # frequent modes dominate, rare ones a few %
    modes = sample_modes(np.random.default_rng(0), 20000, prior)
    np.testing.assert_allclose(np.bincount(modes, minlength=7) / 20000, prior, atol=0.012)
    ds = _load(SynthHuman, tmp_path, pool_size=600, options={"ood_size": 0})
    freq = np.bincount(ds.train.groups, minlength=7) / 600
    np.testing.assert_allclose(freq, prior, atol=0.05)
    hand = np.bincount(_load(SynthHand, tmp_path, pool_size=600).train.groups, minlength=9) / 600
    np.testing.assert_allclose(hand, hand_mod.GESTURE_PRIOR, atol=0.05)


def test_reversed_prior_hand_computed():
    np.testing.assert_allclose(reversed_prior((0.5, 0.3, 0.2)), (0.2, 0.3, 0.5))
    np.testing.assert_allclose(reversed_prior((0.2, 0.5, 0.3)), (0.5, 0.2, 0.3))


def test_ood_split_differs_in_distribution(tmp_path):
    ds = _load(SynthHuman, tmp_path, pool_size=200, test_size=200, options={"ood_size": 200})
    rare = [HUMAN_MODE_NAMES.index("lying"), HUMAN_MODE_NAMES.index("upside_down")]
    assert np.isin(ds.ood.groups, rare).mean() > 3 * np.isin(ds.test.groups, rare).mean()
    assert ds.info["ood_group_prior"][rare[1]] == pytest.approx(max(HUMAN_MODE_PRIOR))

    def saturation(images: np.ndarray) -> float:
        x = images.astype(float)
        return float(((x.max(-1) - x.min(-1)) / (x.max(-1) + 1)).mean())

    # neon clothes and saturated striped backgrounds; test matches train
    assert saturation(ds.ood.images) > saturation(ds.test.images) + 0.15
    assert abs(saturation(ds.train.images) - saturation(ds.test.images)) < 0.05


def test_forward_kinematics_rest_pose_hand_computed():
    zero = {k: np.zeros(1) for k in ("bend", "side", "twist", "head_bend", "head_side", "yaw", "roll")}
    for pre in ("r_", "l_"):
        for k in ("sh_flex", "sh_abd", "el_flex", "arm_twist", "hip_flex", "hip_abd", "knee_flex"):
            zero[pre + k] = np.zeros(1)
    bones = {k: np.array([v]) for k, v in BONES.items()}
    joints, facing, toes = forward_kinematics(zero, bones)
    j = joints[0]
    np.testing.assert_allclose(j[MPII.index("thorax")], [0, -0.30, 0], atol=1e-12)
    np.testing.assert_allclose(j[MPII.index("head_top")], [0, -0.30 - 0.065 - 0.12, 0], atol=1e-12)
    # facing the camera: the right side is on the image left; arms hang straight down
    np.testing.assert_allclose(j[MPII.index("r_shoulder")], [-0.125, -0.275, 0], atol=1e-12)
    np.testing.assert_allclose(j[MPII.index("r_wrist")], [-0.125, -0.275 + 0.17 + 0.15, 0], atol=1e-12)
    np.testing.assert_allclose(j[MPII.index("l_ankle")], [0.08, 0.03 + 0.245 + 0.245, 0], atol=1e-12)
    np.testing.assert_allclose(facing[0], [0, 0, -1], atol=1e-12)
    assert toes[0, 0, 2] < j[MPII.index("r_ankle"), 2]  # the feet point towards the camera
    # turned around (yaw 180 deg): the right side moves to the image right, the face away from the camera
    zero["yaw"] = np.array([np.pi])
    joints, facing, _ = forward_kinematics(zero, bones)
    assert joints[0, MPII.index("r_wrist"), 0] > 0 and facing[0, 2] > 0.99


def test_rare_modes_look_different():
    poses = sample_human_poses(np.random.default_rng(1), 4000)
    up = poses.joints[:, MPII.index("head_top"), 1] - poses.joints[:, MPII.index("pelvis"), 1]
    roll = np.cos(poses.roll)
    head_above = up * roll < 0  # head above the pelvis in the image, after the in-plane rotation
    for name, expected in (("standing", 0.99), ("walking", 0.99)):
        assert head_above[poses.modes == HUMAN_MODE_NAMES.index(name)].mean() > expected
    assert head_above[poses.modes == HUMAN_MODE_NAMES.index("upside_down")].mean() < 0.05
    lying = poses.modes == HUMAN_MODE_NAMES.index("lying")
    assert np.abs(np.sin(poses.roll[lying])).mean() > 0.9
    bones = sample_bones(np.random.default_rng(0), 1000)
    assert 0.03 < np.std(bones["thigh"] / BONES["thigh"]) < 0.07


# ---------------------------------------------------------------------------------------------------------------------
# renderer


def test_left_right_colours_differ_but_are_close():
    pal = figure_palette(np.random.default_rng(0), 500)
    assert pal.shape == (500, len(SLOTS), 2, 3)
    right, left = pal[:, :, 0], pal[:, :, 1]
    diff = np.abs(left - right).max(-1)
    unclipped = right.max(-1) < 0.75
    assert (diff[unclipped] > 0.01).all() and (diff < 0.3).all()
    assert (left >= right - 1e-12).all()  # the left side is the brighter one

    # on a rendered figure: the middle of each shin carries its side's colour
    skel_kp = np.zeros((1, 16, 2))
    xy = {
        "r_ankle": (24, 58), "r_knee": (24, 46), "r_hip": (26, 34), "l_hip": (38, 34), "l_knee": (40, 46),
        "l_ankle": (40, 58), "pelvis": (32, 34), "thorax": (32, 18), "upper_neck": (32, 14), "head_top": (32, 6),
        "r_wrist": (14, 34), "r_elbow": (18, 26), "r_shoulder": (24, 19), "l_shoulder": (40, 19), "l_elbow": (46, 26),
        "l_wrist": (50, 34),
    }  # fmt: skip
    for name, p in xy.items():
        skel_kp[0, MPII.index(name)] = p
    style = RenderStyle(
        clutter=0, occluder_prob=0.0, noise=0.0, blur=0.0, colour_jitter=0.0, trousers_prob=1.0
    )
    img = render_people(skel_kp, np.ones((1, 16), bool), MPII, 64, np.random.default_rng(5), style).astype(
        float
    )
    r_shin, l_shin = img[0, 52, 24], img[0, 52, 40]
    assert 1.0 < np.abs(l_shin - r_shin).max() < 60.0
    assert l_shin.sum() > r_shin.sum()


def _lsp_pose() -> np.ndarray:
    xy = {
        "r_ankle": (22, 58), "r_knee": (24, 46), "r_hip": (26, 34), "l_hip": (38, 34), "l_knee": (40, 46),
        "l_ankle": (42, 58), "r_wrist": (12, 30), "r_elbow": (17, 24), "r_shoulder": (24, 17), "l_shoulder": (40, 17),
        "l_elbow": (47, 24), "l_wrist": (52, 30), "neck": (32, 15), "head_top": (32, 4),
    }  # fmt: skip
    kp = np.zeros((1, 14, 2))
    for name, p in xy.items():
        kp[0, LSP.index(name)] = p
    return kp


def test_render_people_draws_a_14_joint_lsp_pose():
    kp = _lsp_pose()
    vis = np.ones((1, 14), bool)
    img = render_people(kp, vis, LSP, 64, np.random.default_rng(0), CLEAN_STYLE)
    assert img.shape == (1, 64, 64, 3) and img.dtype == np.uint8
    bare = render_people(kp, np.zeros((1, 14), bool), LSP, 64, np.random.default_rng(0), CLEAN_STYLE)
    changed = np.abs(img.astype(int) - bare.astype(int)).max(-1) > 0
    # limbs, torso and head are drawn where the pose says; far corners stay background
    for point in [(40, 25), (49, 27), (32, 30), (32, 9), (44, 20), (23, 40)]:
        x, y = point
        assert changed[0, y, x], point
    assert not changed[0, 2, 2] and not changed[0, 62, 62] and not changed[0, 60, 10]
    assert 0.15 < changed.mean() < 0.5
    # an unannotated wrist: its forearm is not drawn
    vis2 = vis.copy()
    vis2[0, LSP.index("l_wrist")] = False
    img2 = render_people(kp, vis2, LSP, 64, np.random.default_rng(0), CLEAN_STYLE)
    assert (img2[0, 29, 51] == bare[0, 29, 51]).all() and (img2[0, 25, 40] == img[0, 25, 40]).all()
    # deterministic under a seed; the default style adds clutter and noise
    np.testing.assert_array_equal(img, render_people(kp, vis, LSP, 64, np.random.default_rng(0), CLEAN_STYLE))
    noisy = render_people(kp, vis, LSP, 64, np.random.default_rng(0))
    assert noisy.shape == img.shape and not np.array_equal(noisy, img)


def test_render_people_depth_decides_which_limb_is_in_front():
    kp = _lsp_pose()
    # the right forearm crosses the torso; give it depth behind / in front of the torso
    kp[0, LSP.index("r_wrist")] = (38, 28)
    depth = np.zeros((1, 14))
    hidden = depth.copy()
    hidden[0, [LSP.index("r_elbow"), LSP.index("r_wrist")]] = 50.0
    front = depth.copy()
    front[0, [LSP.index("r_elbow"), LSP.index("r_wrist")]] = -50.0
    vis = np.ones((1, 14), bool)
    unit = np.array([45.0])
    behind = render_people(
        kp, vis, LSP, 64, np.random.default_rng(0), CLEAN_STYLE, FigureExtras(depth=hidden, unit=unit)
    )
    ahead = render_people(
        kp, vis, LSP, 64, np.random.default_rng(0), CLEAN_STYLE, FigureExtras(depth=front, unit=unit)
    )
    assert not (behind[0, 27, 34] == ahead[0, 27, 34]).all()


def test_head_box_diagonal_hand_computed():
    kp = np.zeros((1, 16, 2))
    kp[0, MPII.index("head_top")] = (10, 10)
    kp[0, MPII.index("upper_neck")] = (10, 20)
    # L = 10: capsule of radius 3.8 between y = 13.8 and 16.2, margin 1.5 -> box 10.6 x 13.0
    assert head_box_diagonal(kp, MPII)[0] == pytest.approx(np.hypot(10.6, 13.0))


def test_render_people_rejects_bad_input():
    with pytest.raises(ValueError, match="keypoints must be"):
        render_people(np.zeros((2, 13, 2)), np.ones((2, 13), bool), LSP, 64, np.random.default_rng(0))
    from alpose_bench.pose.skeleton import ICVL

    with pytest.raises(ValueError, match="head_top"):
        render_people(np.zeros((1, 16, 2)), np.ones((1, 16), bool), ICVL, 64, np.random.default_rng(0))


def test_render_people_pixels_do_not_depend_on_its_memory_sub_batches(monkeypatch):
    """Every background and noise value is drawn before the batch is split to bound memory: raising the budget
    (fewer, larger sub-batches) changes no pixel."""
    from alpose_bench.datasets.render import people as render

    kp = np.repeat(_lsp_pose(), 5, axis=0) + np.arange(5)[:, None, None]
    vis = np.ones((5, 14), bool)
    monkeypatch.setattr(render, "_PIXEL_BUDGET", 64 * 64 * 2)  # sub-batches of 2 images
    small = render_people(kp, vis, LSP, 64, np.random.default_rng(3))
    monkeypatch.setattr(render, "_PIXEL_BUDGET", 1 << 24)  # one batch
    whole = render_people(kp, vis, LSP, 64, np.random.default_rng(3))
    np.testing.assert_array_equal(small, whole)


def test_the_cache_file_is_readable_by_everyone(tmp_path):
    ds = _load(SynthHuman, tmp_path, pool_size=8, test_size=4)
    mode = Path(ds.info["cache_path"]).stat().st_mode & 0o777
    assert mode == 0o644, oct(mode)
