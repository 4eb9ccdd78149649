"""Real-data loaders (LSP, LSP+LSPET, MPII, ICVL, COCO, rendered LSP poses) on the real annotation formats.

LSP/LSPET tests read the real joints.mat files of ../shared/data (skipped cleanly when absent) and write placeholder
images whose pixels encode their coordinates, so the crop geometry is checked against the source pixels.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
from datasets_real_factory import (
    COCO_KEYPOINTS,
    DISC_CENTRE,
    DISC_DEPTH,
    gradient_image,
    mpii_people,
    real_lsp_subset,
    write_coco_folder,
    write_icvl_folder,
    write_lsp_folder,
    write_mpii_images,
    write_mpii_json,
    write_mpii_mat,
)
from PIL import Image
from scipy.ndimage import map_coordinates

from alpose_bench.datasets.base import subset_index
from alpose_bench.datasets.coco import COCODataset, flip_pairs_from_names, skeleton_from_coco
from alpose_bench.datasets.geometry import to_crop
from alpose_bench.datasets.icvl import ICVLDataset, uvd_to_xyz, xyz_to_uvd
from alpose_bench.datasets.lsp import LSPDataset, LSPLSPETDataset, read_lsp_joints
from alpose_bench.datasets.mpii import MAT_NAME, MPIIDataset
from alpose_bench.datasets.rendered import LSPETRenderedDataset, LSPRenderedDataset
from alpose_bench.pose.data import DatasetConfig, DatasetError
from alpose_bench.pose.skeleton import LSP


def config(root: Path, cache: Path, **kw) -> DatasetConfig:
    return DatasetConfig(data_root=root, cache_dir=cache, **kw)


def sample_at(images: np.ndarray, keypoints: np.ndarray, channel: int) -> np.ndarray:
    """Bilinear value of `channel` of each image at each keypoint (N, J)."""
    out = np.empty(keypoints.shape[:2])
    for i in range(len(images)):
        out[i] = map_coordinates(
            images[i, ..., channel].astype(float), [keypoints[i, :, 1], keypoints[i, :, 0]], order=1
        )
    return out


def assert_crops_show_source(split, source_xy: np.ndarray, mask: np.ndarray, tol: float = 3.0) -> None:
    """At every checked keypoint the gradient image's red/green values equal the source x/y."""
    red, green = sample_at(split.images, split.keypoints, 0), sample_at(split.images, split.keypoints, 1)
    assert mask.sum() > 0
    np.testing.assert_allclose(red[mask], source_xy[..., 0][mask], atol=tol)
    np.testing.assert_allclose(green[mask], source_xy[..., 1][mask], atol=tol)


# -- LSP / LSPET on the real files ---------------------------------------------------------------------------


def test_real_lsp_and_lspet_files_read_with_their_conventions(shared_data: Path) -> None:
    kp, annotated, occluded = read_lsp_joints(shared_data / "lsp" / "joints.mat", "lsp", "lsp")
    assert kp.shape == (2000, 14, 2) and annotated.all() and occluded.sum() == 2044
    raw = sio.loadmat(str(shared_data / "lsp" / "joints.mat"))["joints"]
    np.testing.assert_allclose(kp[0, 13], raw[:2, 13, 0] - 1)  # head top of the first person, 0-based
    kp2, annotated2, _ = read_lsp_joints(shared_data / "lspet" / "joints.mat", "lspet", "lsp-lspet")
    assert kp2.shape == (10000, 14, 2)
    assert (~annotated2).sum() == 16787  # flag 0 = unannotated (all have coordinates <= 0)
    raw2 = sio.loadmat(str(shared_data / "lspet" / "joints.mat"))["joints"]
    assert not annotated2[0, 0] and raw2[0, 2, 0] == 0 and raw2[0, 0, 0] <= 0


def test_lsp_lspet_check_counts_real_files(shared_data: Path, tmp_path: Path) -> None:
    report = LSPLSPETDataset().check(config(shared_data, tmp_path))
    rows = {item: detail for item, _, detail in report.rows}
    assert rows["train people"].startswith("11,000") and rows["test people"].startswith("1,000")
    assert rows["lsp people"] == "2,000" and rows["lspet people"] == "10,000"
    assert rows["images expected"] == "12,000"
    # ../shared/data holds all 10,000 LSPET photographs but none of LSP's 2,000
    assert rows["images found"] == "10,000"
    assert not report.usable and "2000 of 12000 images missing" in report.reason
    assert "lsp/images/im0001.jpg" in report.reason and "lspet/images" not in report.reason
    assert "sam.johnson.io" in report.reason


@pytest.fixture
def lsp_root(tmp_path: Path, shared_data: Path) -> Path:
    root = tmp_path / "root"
    write_lsp_folder(root, "lsp", real_lsp_subset(shared_data, "lsp", 24))
    write_lsp_folder(root, "lspet", real_lsp_subset(shared_data, "lspet", 16))
    return root


def test_lsp_crops_keypoints_normaliser(lsp_root: Path, tmp_path: Path) -> None:
    ds = LSPDataset().load(config(lsp_root, tmp_path / "cache", resolution=64))
    assert (ds.name, ds.metric, ds.task, ds.skeleton) == ("lsp", "pck", "heatmap2d", LSP)
    assert len(ds.train) == 12 and len(ds.test) == 12 and ds.initial_index is None
    assert ds.train.images.shape == (12, 64, 64, 3) and ds.train.images.dtype == np.uint8
    assert (ds.train.keypoints.dtype, ds.train.visible.dtype, ds.train.normalizer.dtype) == (
        np.float32,
        np.bool_,
        np.float32,
    )
    kp, ann, _ = read_lsp_joints(lsp_root / "lsp" / "joints.mat", "lsp", "lsp")
    assert ds.train.visible.all()  # occluded joints are annotated and count (include_occluded=True)
    inside = ((kp >= 8) & (kp <= 247)).all(axis=-1)
    assert_crops_show_source(ds.train, kp[:12], inside[:12])
    assert_crops_show_source(ds.test, kp[12:], inside[12:])
    # tight joint box -> square of 1.75 x its longer edge, centred on the crop centre
    ext = ds.test.keypoints.max(axis=1) - ds.test.keypoints.min(axis=1)
    np.testing.assert_allclose(ext.max(axis=1), 64 / 1.75, rtol=1e-4)
    mid = (ds.test.keypoints.max(axis=1) + ds.test.keypoints.min(axis=1)) / 2
    np.testing.assert_allclose(mid, 31.5, atol=1e-3)
    # PCK normaliser = |lsho - rhip| in crop pixels (the standard LSP evaluation); torso=max: the authors' larger
    # diagonal max(|lsho - rhip|, |rsho - lhip|)
    k = ds.test.keypoints
    standard, other = np.linalg.norm(k[:, 9] - k[:, 2], axis=1), np.linalg.norm(k[:, 8] - k[:, 3], axis=1)
    np.testing.assert_allclose(ds.test.normalizer, standard, rtol=1e-4)
    authors = LSPDataset().load(config(lsp_root, tmp_path / "cache", resolution=64, options={"torso": "max"}))
    np.testing.assert_allclose(authors.test.normalizer, np.maximum(standard, other), rtol=1e-4)


def test_lsp_option_exclude_occluded(lsp_root: Path, tmp_path: Path) -> None:
    ds = LSPDataset().load(config(lsp_root, tmp_path, resolution=32, options={"include_occluded": False}))
    _, _, occluded = read_lsp_joints(lsp_root / "lsp" / "joints.mat", "lsp", "lsp")
    np.testing.assert_array_equal(ds.train.visible, ~occluded[:12])
    with pytest.raises(DatasetError, match="has no option 'bogus'; its options: crop_scale"):
        LSPDataset().load(config(lsp_root, tmp_path, options={"bogus": 1}))


def test_lsp_lspet_protocol_and_missing_joints(lsp_root: Path, tmp_path: Path) -> None:
    ds = LSPLSPETDataset().load(config(lsp_root, tmp_path, resolution=32))
    assert len(ds.train) == 12 + 16 and len(ds.test) == 12
    np.testing.assert_array_equal(ds.initial_index, np.arange(12))
    raw = sio.loadmat(str(lsp_root / "lspet" / "joints.mat"))["joints"]
    flag = raw[:, 2, :].T > 0
    np.testing.assert_array_equal(ds.train.visible[12:], flag)
    assert (ds.train.keypoints[12:][~flag] == 0).all()  # unannotated joints are zeroed, not garbage
    assert np.isfinite(ds.train.normalizer).all() and (ds.train.normalizer > 0).all()


def test_cache_second_load_reads_no_image_and_is_identical(lsp_root: Path, tmp_path: Path) -> None:
    cfg = config(lsp_root, tmp_path / "cache", resolution=32)
    first = LSPLSPETDataset().load(cfg)
    for f in (lsp_root / "lsp" / "images").iterdir():
        f.unlink()  # a cache hit must not need the images
    second = LSPLSPETDataset().load(cfg)
    np.testing.assert_array_equal(first.train.images, second.train.images)
    np.testing.assert_array_equal(first.test.keypoints, second.test.keypoints)
    np.testing.assert_array_equal(first.initial_index, second.initial_index)
    cache_files = list((tmp_path / "cache" / "lsp-lspet").iterdir())
    assert [f.suffix for f in cache_files] == [".npz"]  # atomic write leaves no temporary file
    with pytest.raises(DatasetError, match=r"24 of 40 images are missing \(first: .*im0001.jpg"):
        LSPLSPETDataset().prepare(cfg, force=True)


def test_corrupt_cache_file_is_rebuilt(lsp_root: Path, tmp_path: Path) -> None:
    cfg = config(lsp_root, tmp_path, resolution=16)
    first = LSPDataset().load(cfg)
    cache = Path(first.info["cache_file"])
    cache.write_bytes(cache.read_bytes()[:1000])  # e.g. a disk that filled up under another tool
    again = LSPDataset().load(cfg)
    np.testing.assert_array_equal(first.test.images, again.test.images)


def test_unwritable_cache_is_a_clear_error(lsp_root: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DatasetError, match="cannot write the cache .*set --cache-dir or ALPOSE_CACHE"):
        LSPDataset().load(config(lsp_root, blocker, resolution=16))


def test_same_inputs_same_arrays_in_fresh_caches(lsp_root: Path, tmp_path: Path) -> None:
    a = LSPDataset().load(config(lsp_root, tmp_path / "a", resolution=32))
    b = LSPDataset().load(config(lsp_root, tmp_path / "b", resolution=32))
    np.testing.assert_array_equal(a.train.images, b.train.images)
    assert a.info["cache_file"] != b.info["cache_file"]


def test_pool_subset_keeps_fixed_initial_set(lsp_root: Path, tmp_path: Path) -> None:
    ds = LSPLSPETDataset().load(config(lsp_root, tmp_path, resolution=16, pool_size=20, test_size=5))
    assert len(ds.train) == 20 and len(ds.test) == 5
    np.testing.assert_array_equal(ds.initial_index, np.arange(12))
    np.testing.assert_array_equal(
        subset_index(10, 4, 0, keep=np.arange(6)), subset_index(10, 4, 0, np.arange(6))
    )
    assert set(subset_index(10, 4, 0, keep=np.arange(6))) <= set(range(6))


# -- LSP errors ----------------------------------------------------------------------------------------------


def test_missing_annotation_file_names_it_and_the_source(tmp_path: Path) -> None:
    (tmp_path / "lsp").mkdir()
    with pytest.raises(DatasetError, match=r"missing .*lsp/joints.mat; obtain it from http://sam.johnson.io"):
        LSPDataset().load(config(tmp_path, tmp_path / "c"))


def test_no_data_root_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALPOSE_DATA_ROOT", raising=False)
    with pytest.raises(DatasetError, match="pass --data-root DIR or set ALPOSE_DATA_ROOT"):
        LSPDataset().load(DatasetConfig())


def test_env_data_root_is_used(lsp_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPOSE_DATA_ROOT", str(lsp_root))
    assert len(LSPDataset().load(DatasetConfig(resolution=16, cache_dir=tmp_path)).test) == 12


def test_truncated_mat_is_reported(lsp_root: Path, tmp_path: Path) -> None:
    path = lsp_root / "lsp" / "joints.mat"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DatasetError, match="corrupt or truncated"):
        LSPDataset().load(config(lsp_root, tmp_path))
    report = LSPDataset().check(config(lsp_root, tmp_path))
    assert not report.usable and ("annotations", "malformed") == report.rows[-1][:2]


def test_wrong_joint_count_is_reported(lsp_root: Path, tmp_path: Path, shared_data: Path) -> None:
    sio.savemat(
        str(lsp_root / "lsp" / "joints.mat"), {"joints": real_lsp_subset(shared_data, "lsp", 24)[:, :13]}
    )
    with pytest.raises(DatasetError, match=r"shape \(3, 13, 24\), expected 3 x 14 x N"):
        LSPDataset().load(config(lsp_root, tmp_path))


def test_nan_coordinates_are_reported(lsp_root: Path, tmp_path: Path, shared_data: Path) -> None:
    joints = real_lsp_subset(shared_data, "lsp", 24)
    joints[0, 3, 5] = np.nan
    sio.savemat(str(lsp_root / "lsp" / "joints.mat"), {"joints": joints})
    with pytest.raises(DatasetError, match=r"NaN or infinite joint coordinates at 1 entries \(first: 5/3\)"):
        LSPDataset().load(config(lsp_root, tmp_path))


def test_missing_and_unreadable_images(lsp_root: Path, tmp_path: Path) -> None:
    (lsp_root / "lsp" / "images" / "im0007.jpg").unlink()
    with pytest.raises(DatasetError, match=r"1 of 24 images are missing \(first: .*im0007.jpg\)"):
        LSPDataset().load(config(lsp_root, tmp_path))
    gradient_image(lsp_root / "lsp" / "images" / "im0007.jpg")
    (lsp_root / "lsp" / "images" / "im0008.jpg").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=r"cannot decode image .*im0008.jpg"):
        LSPDataset().load(config(lsp_root, tmp_path))
    report = LSPDataset().check(config(lsp_root, tmp_path))
    assert not report.usable and "im0008.jpg" in report.reason


# -- MPII ----------------------------------------------------------------------------------------------------


@pytest.fixture
def mpii_root(tmp_path: Path) -> tuple[Path, list[dict]]:
    images = mpii_people()
    root = tmp_path / "root"
    write_mpii_mat(root / "mpii" / "mpii_human_pose_v1_u12_1.mat", images)
    write_mpii_images(root / "mpii", images)
    return root, images


def test_mpii_official_mat_split_filters_crop_and_head_box(mpii_root, tmp_path: Path) -> None:
    root, images = mpii_root
    ds = MPIIDataset().load(config(root, tmp_path, resolution=64, options={"all_joints": True}))
    assert ds.metric == "pckh" and ds.skeleton.name == "mpii"
    # test: the 3 Newell validation images (1 + 2 + 1 people); pool: train images, minus the 15-joint person
    # (the all_joints filter) and the img_train == 0 image
    assert len(ds.test) == 4 and len(ds.train) == 3
    people = [p for im in images[:3] for p in im["people"]]
    src = np.stack([p["joints"] for p in people])
    assert_crops_show_source(ds.test, src, np.ones(src.shape[:2], bool))
    # person crop: side 250 x scale around (objpos.x, objpos.y + 15 x scale); head normaliser = diagonal x 64/side
    side = np.array([250 * p["scale"] for p in people])
    diag = np.array(
        [np.hypot(p["head_box"][2] - p["head_box"][0], p["head_box"][3] - p["head_box"][1]) for p in people]
    )
    np.testing.assert_allclose(ds.test.normalizer, diag * 64 / side, rtol=1e-5)
    centre = np.array([[p["centre"][0], p["centre"][1] + 15 * p["scale"]] for p in people])
    np.testing.assert_allclose(
        ds.test.keypoints, to_crop(src, np.column_stack([centre, side]), 64), atol=1e-4
    )
    assert ds.info["counts"]["dropped (not all 16 joints annotated)"] == 1


def test_mpii_options_all_joints_and_head_lambda(mpii_root, tmp_path: Path) -> None:
    root, _ = mpii_root
    every = MPIIDataset().load(config(root, tmp_path, resolution=32))  # the default: every person
    assert len(every.train) == 4 and not every.train.visible.all()
    filtered = MPIIDataset().load(config(root, tmp_path, resolution=32, options={"all_joints": True}))
    assert len(filtered.train) == 3 and filtered.train.visible.all()
    base = MPIIDataset().load(config(root, tmp_path, resolution=32))
    moved = MPIIDataset().load(config(root, tmp_path, resolution=32, options={"head_lambda": 0.8}))
    k = base.test.keypoints
    np.testing.assert_allclose(moved.test.keypoints[:, 9], 0.8 * k[:, 9] + 0.2 * k[:, 8], atol=1e-4)
    joints = MPIIDataset().load(config(root, tmp_path, resolution=32, options={"crop": "joints"}))
    ext = joints.test.keypoints.max(axis=1) - joints.test.keypoints.min(axis=1)
    np.testing.assert_allclose(ext.max(axis=1), 32 / 1.75, rtol=1e-4)


def test_mpii_json_annotations_match_the_mat(mpii_root, tmp_path: Path) -> None:
    root, images = mpii_root
    mat = MPIIDataset().load(config(root, tmp_path / "a", resolution=32))
    (root / "mpii" / "mpii_human_pose_v1_u12_1.mat").unlink()
    write_mpii_json(root / "mpii", images)
    js = MPIIDataset().load(config(root, tmp_path / "b", resolution=32))
    np.testing.assert_allclose(js.test.keypoints, mat.test.keypoints, atol=1e-4)
    np.testing.assert_allclose(js.test.normalizer, mat.test.normalizer, rtol=1e-5)  # gt_valid.mat head boxes
    np.testing.assert_array_equal(js.test.images, mat.test.images)
    assert len(js.train) == len(mat.train) and (js.train.normalizer > 0).all()
    assert js.info["counts"]["head boxes estimated"] == 4  # every training person of the JSON files


def test_mpii_corrupt_annotations(mpii_root, tmp_path: Path) -> None:
    root, images = mpii_root
    path = root / "mpii" / "mpii_human_pose_v1_u12_1.mat"
    images[1]["people"][0]["ids"][3] = 16
    write_mpii_mat(path, images)
    with pytest.raises(DatasetError, match="joint id 16.0 outside 0..15"):
        MPIIDataset().load(config(root, tmp_path))
    images[1]["people"][0]["ids"][3] = 3
    images[1]["people"][0]["joints"][5, 0] = np.nan
    write_mpii_mat(path, images)
    with pytest.raises(DatasetError, match="joint 5 has NaN"):
        MPIIDataset().load(config(root, tmp_path))
    sio.savemat(str(path), {"something": np.zeros(3)})
    with pytest.raises(DatasetError, match="no RELEASE struct"):
        MPIIDataset().load(config(root, tmp_path))
    path.unlink()
    with pytest.raises(
        DatasetError, match=r"missing .*mpii_human_pose_v1_u12_1.mat; obtain it from http://human-pose"
    ):
        MPIIDataset().load(config(root, tmp_path))


# -- ICVL ----------------------------------------------------------------------------------------------------


def test_uvd_xyz_round_trip_and_intrinsics() -> None:
    np.testing.assert_allclose(uvd_to_xyz(np.array([160 + 240.99, 120 - 240.96, 100.0])), [100, -100, 100])
    uvd = np.array([[12.5, 230.0, 512.0], [300.0, 3.0, 250.0]])
    np.testing.assert_allclose(xyz_to_uvd(uvd_to_xyz(uvd)), uvd)


def test_icvl_depth_crop_centre_and_keypoints(tmp_path: Path) -> None:
    joints = write_icvl_folder(tmp_path / "root")
    ds = ICVLDataset().load(config(tmp_path / "root", tmp_path / "cache", resolution=32))
    assert (ds.task, ds.metric, ds.cube_mm, ds.channels) == ("regression3d", "mpjpe", 125.0, 1)
    assert len(ds.train) == 6 and len(ds.test) == 6 and ds.train.keypoints.shape == (6, 16, 3)
    # the flat disc is symmetric about its centre pixel, so the centre of mass is that pixel at the disc depth
    centre = uvd_to_xyz(np.array([*DISC_CENTRE, DISC_DEPTH]))
    np.testing.assert_allclose(ds.test.keypoints, uvd_to_xyz(joints["test"]) - centre, atol=1e-3)
    # the disc (at the centre depth) encodes as 127, background as 255; the crop centre lies on the disc
    image = ds.train.images[0, ..., 0]
    assert image[15:17, 15:17].tolist() == [[127, 127], [127, 127]]
    assert image[0, 0] == 255 and set(np.unique(image)) == {127, 255}
    assert ds.info["counts"]["crops centred on the depth centre of mass"] == 12


def test_icvl_joint_centroid_option(tmp_path: Path) -> None:
    write_icvl_folder(tmp_path / "root", n_train=2, n_test=1)
    ds = ICVLDataset().load(config(tmp_path / "root", tmp_path, resolution=16, options={"center": "joints"}))
    np.testing.assert_allclose(ds.train.keypoints.mean(axis=1), 0.0, atol=1e-3)


def test_icvl_bad_files(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_icvl_folder(root, n_train=2, n_test=1)
    labels = root / "icvl" / "Training" / "labels.txt"
    good = labels.read_text()
    labels.write_text(good.splitlines()[0] + "\n" + " ".join(good.splitlines()[1].split()[:-1]) + "\n")
    with pytest.raises(DatasetError, match="labels.txt line 2 has 47 numbers, expected 48"):
        ICVLDataset().load(config(root, tmp_path))
    labels.write_text(good.replace(good.split()[5], "nan", 1))
    with pytest.raises(DatasetError, match="NaN, infinite or non-positive depth"):
        ICVLDataset().load(config(root, tmp_path))
    labels.write_text(good)
    depth = root / "icvl" / "Training" / "Depth" / "seq0" / "image_0001.png"
    Image.fromarray(np.zeros((240, 320), np.uint8)).save(depth)
    with pytest.raises(DatasetError, match="cannot decode image .*image_0001.png .*16-bit depth"):
        ICVLDataset().load(config(root, tmp_path))
    depth.unlink()
    with pytest.raises(DatasetError, match=r"1 of 4 images are missing"):
        ICVLDataset().load(config(root, tmp_path))
    (root / "icvl" / "Testing" / "test_seq_2.txt").unlink()
    with pytest.raises(DatasetError, match="missing .*test_seq_2.txt"):
        ICVLDataset().load(config(root, tmp_path))


# -- COCO ----------------------------------------------------------------------------------------------------


def test_skeleton_from_coco_builds_a_rooted_spanning_tree() -> None:
    cat = {"name": "x", "keypoints": COCO_KEYPOINTS, "skeleton": [[1, 2], [1, 3], [2, 4], [3, 5]]}
    sk = skeleton_from_coco(cat)
    assert sk.root == 0 and sk.links == ((0, 1), (0, 2), (1, 3), (2, 4))
    assert sk.flip_pairs == ((1, 2), (3, 4)) and sk.torso_pairs == ((1, 4), (2, 3))
    # no named root: the graph centre of a chain a-b-c-d-e is c; an unlinked joint hangs off the root
    chain = {
        "keypoints": ["a", "b", "c", "d", "e", "f"],
        "skeleton": [[1, 2], [2, 3], [3, 4], [4, 5], [2, 1]],
    }
    sk = skeleton_from_coco(chain)
    assert sk.root == 2 and sorted(sk.links) == [(1, 0), (2, 1), (2, 3), (2, 5), (3, 4)]
    with pytest.raises(DatasetError, match="outside 1..2"):
        skeleton_from_coco({"keypoints": ["a", "b"], "skeleton": [[1, 3]]})
    assert flip_pairs_from_names(("hip_l", "hip_r", "LeftEye", "RightEye", "nose")) == ((0, 1), (2, 3))


def test_coco_loader_split_crops_and_normaliser(tmp_path: Path) -> None:
    root = tmp_path / "root"
    data = write_coco_folder(root)
    ds = COCODataset().load(config(root, tmp_path / "cache", resolution=32))
    assert ds.skeleton.joints == tuple(COCO_KEYPOINTS) and ds.metric == "pck"
    assert len(ds.train) + len(ds.test) == 11  # crowd and keypoint-less annotations are skipped
    assert len(ds.test) in (2, 3)  # 2 of 10 images; image 0 holds two people
    anns = [a for a in data["annotations"] if not a["iscrowd"] and max(a["keypoints"][2::3]) > 0]
    box = np.array([a["bbox"] for a in anns])
    kp = np.array([np.reshape(a["keypoints"], (5, 3))[:, :2] for a in anns])
    side = 1.25 * box[:, 2:].max(axis=1)
    crops = to_crop(kp, np.column_stack([box[:, :2] + box[:, 2:] / 2, side]), 32)
    everything = np.concatenate([ds.train.keypoints, ds.test.keypoints])
    assert sorted(map(tuple, everything[:, 0].round(3))) == sorted(map(tuple, crops[:, 0].round(3)))
    norms = np.sort(np.concatenate([ds.train.normalizer, ds.test.normalizer]))
    np.testing.assert_allclose(norms, np.sort(np.hypot(box[:, 2], box[:, 3]) * 32 / side), rtol=1e-5)
    src = np.concatenate([ds.train.keypoints, ds.test.keypoints])
    assert (src >= 0).all() and (src < 32).all()
    torso = COCODataset().load(
        config(root, tmp_path / "cache", resolution=32, options={"normalizer": "torso"})
    )
    k = torso.test.keypoints
    expected = np.maximum(
        np.linalg.norm(k[:, 1] - k[:, 4], axis=1), np.linalg.norm(k[:, 2] - k[:, 3], axis=1)
    )
    np.testing.assert_allclose(torso.test.normalizer, expected, rtol=1e-4)


def test_coco_bad_files(tmp_path: Path) -> None:
    root = tmp_path / "root"
    data = write_coco_folder(root, n_images=4)
    data["annotations"][0]["keypoints"] = data["annotations"][0]["keypoints"][:-3]
    (root / "annotations.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"has 12 keypoint values, expected 15 .*wrong joint count"):
        COCODataset().load(config(root, tmp_path))
    data["annotations"][0]["keypoints"] = [float("nan")] * 15
    (root / "annotations.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="has NaN keypoints"):
        COCODataset().load(config(root, tmp_path))
    (root / "other.json").write_text("{}")
    with pytest.raises(DatasetError, match="found 2 JSON files .*--option annotations=FILE"):
        COCODataset().load(config(root, tmp_path))
    (root / "other.json").write_text('{"images": [')
    with pytest.raises(DatasetError, match="cannot parse .*other.json"):
        COCODataset().load(config(root, tmp_path, options={"annotations": "other.json"}))


# -- rendered real poses -------------------------------------------------------------------------------------


def test_lsp_rendered_frames_real_poses(shared_data: Path, tmp_path: Path) -> None:
    ds = LSPRenderedDataset().load(config(shared_data, tmp_path, resolution=32, pool_size=40, test_size=30))
    assert len(ds.train) == 40 and len(ds.test) == 30 and ds.train.images.shape == (40, 32, 32, 3)
    assert ds.train.images.std() > 10  # drawn, not blank
    # each pose is normalised into the frame as the loaders crop: 1.75 x the tight box, centred
    k = ds.test.keypoints
    np.testing.assert_allclose((k.max(axis=1) - k.min(axis=1)).max(axis=1), 32 / 1.75, rtol=1e-4)
    np.testing.assert_allclose((k.max(axis=1) + k.min(axis=1)) / 2, 15.5, atol=1e-3)
    torso = np.linalg.norm(k[:, 9] - k[:, 2], axis=1)  # the standard LSP torso
    np.testing.assert_allclose(ds.test.normalizer, torso, rtol=1e-4)
    again = LSPRenderedDataset().load(
        config(shared_data, tmp_path / "other", resolution=32, pool_size=40, test_size=30)
    )
    np.testing.assert_array_equal(ds.train.images, again.train.images)  # seeded appearance


def test_lspet_rendered_protocol_and_shared_fallback(shared_data: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("ALPOSE_DATA_ROOT", raising=False)
    cfg = DatasetConfig(resolution=16, cache_dir=tmp_path, pool_size=1030, test_size=10)  # no data root given
    ds = LSPETRenderedDataset().load(cfg)
    assert len(ds.train) == 1030 and len(ds.test) == 10
    np.testing.assert_array_equal(ds.initial_index, np.arange(1000))  # LSP's training images, all kept
    assert ds.info["root"] == str(shared_data)


@pytest.mark.slow
def test_lspet_rendered_second_load_of_10000_at_64px_is_under_a_second(
    shared_data: Path, tmp_path: Path
) -> None:
    cfg = config(shared_data, tmp_path, resolution=64)
    LSPETRenderedDataset().prepare(cfg)
    started = time.perf_counter()
    ds = LSPETRenderedDataset().load(cfg)
    elapsed = time.perf_counter() - started
    assert len(ds.train) == 11000 and elapsed < 1.0, f"second load took {elapsed:.2f} s"


def test_cache_key_changes_with_annotation_file(lsp_root: Path, tmp_path: Path) -> None:
    cfg = config(lsp_root, tmp_path, resolution=16)
    before = LSPDataset().cache_path(cfg)
    path = lsp_root / "lsp" / "joints.mat"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert LSPDataset().cache_path(cfg) != before
    assert LSPDataset().cache_path(config(lsp_root, tmp_path, resolution=32)) != LSPDataset().cache_path(cfg)


def test_mpii_check_reports_counts(mpii_root, tmp_path: Path) -> None:
    root, _ = mpii_root
    report = MPIIDataset().check(config(root, tmp_path))
    rows = {item: detail for item, _, detail in report.rows}
    assert report.usable, report.problems
    assert (
        rows["train people"] == "4 (63 annotated joints)" and rows["test people"] == "4 (64 annotated joints)"
    )
    assert rows["images expected"] == "6" and rows["images found"] == "6"
    assert rows["annotation formats"].endswith(f"found {MAT_NAME}; reading mat")
    filtered = MPIIDataset().check(config(root, tmp_path, options={"all_joints": True}))
    assert {i: d for i, _, d in filtered.rows}["dropped (not all 16 joints annotated)"] == "1"


@pytest.mark.parametrize(
    "cls",
    [
        MPIIDataset,
        LSPDataset,
        LSPLSPETDataset,
        ICVLDataset,
        COCODataset,
        LSPRenderedDataset,
        LSPETRenderedDataset,
    ],
)
def test_plugins_declare_the_contract(cls) -> None:
    assert cls.name and cls.description and cls.task in ("heatmap2d", "regression3d")
    assert cls.metric in ("pckh", "pck", "mpjpe") and cls.skeleton.num_joints >= 2
    assert (cls.task == "regression3d") == (cls.metric == "mpjpe")
