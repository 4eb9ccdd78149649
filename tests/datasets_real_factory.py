"""Builders of small real-format dataset folders for the loader and `data` CLI tests.

Images are placeholders whose pixels encode their own coordinates (red = x, green = y, for 256 x 256 images), so a
test can read back, at a keypoint of a crop, where in the source image that keypoint came from.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.io as sio
from PIL import Image

from alpose_bench.datasets.mpii import newell_validation_images

SIZE = 256


def gradient_image(path: Path, size: int = SIZE) -> None:
    """A size x size RGB image with red = x, green = y (pixel centres), blue = 128; JPEG or PNG by suffix."""
    y, x = np.mgrid[0:size, 0:size]
    rgb = np.stack([x, y, np.full_like(x, 128)], axis=-1).clip(0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, quality=95) if path.suffix == ".jpg" else Image.fromarray(rgb).save(path)


def real_lsp_subset(shared: Path, kind: str, n: int) -> np.ndarray:
    """The first n people of the real LSP (3 x 14 x n) or LSPET (14 x 3 x n) joints.mat, in the file's layout."""
    raw = sio.loadmat(str(shared / kind / "joints.mat"))["joints"]
    return np.ascontiguousarray(raw[..., :n])


def write_lsp_folder(root: Path, kind: str, joints: np.ndarray, images: bool = True) -> Path:
    """<root>/<kind>/joints.mat (+ gradient images im0001.jpg ... in images/)."""
    folder = root / kind
    folder.mkdir(parents=True, exist_ok=True)
    sio.savemat(str(folder / "joints.mat"), {"joints": joints})
    if images:
        width = 4 if kind == "lsp" else 5
        for i in range(joints.shape[-1]):
            gradient_image(folder / "images" / f"im{i + 1:0{width}d}.jpg")
    return folder


# -- MPII ----------------------------------------------------------------------------------------------------


def struct_array(records: list[dict]) -> np.ndarray:
    """A 1 x n MATLAB struct array for scipy.io.savemat (missing fields are empty arrays)."""
    keys: list[str] = []
    for r in records:
        keys += [k for k in r if k not in keys]
    arr = np.zeros((1, len(records)), dtype=[(k, object) for k in keys])
    for i, r in enumerate(records):
        for k in keys:
            arr[0, i][k] = r.get(k, np.zeros((0, 0)))
    return arr


def mpii_people(seed: int = 0) -> list[dict]:
    """Image-level records: name, split, img_train, people (joints (16, 2) 0-based, annotated ids, head box)."""
    rng = np.random.default_rng(seed)
    val = sorted(newell_validation_images())[:3]
    train = [f"{i:09d}.jpg" for i in range(1, 50) if f"{i:09d}.jpg" not in newell_validation_images()][:4]
    images = []
    for name, img_train, n_people in [
        (val[0], 1, 1), (val[1], 1, 2), (val[2], 1, 1),
        (train[0], 1, 1), (train[1], 1, 2), (train[2], 1, 1), (train[3], 0, 1),
    ]:  # fmt: skip
        people = []
        for p in range(n_people):
            joints = rng.uniform(60, 196, size=(16, 2))
            ids = list(range(16))
            if name == train[2]:
                ids.remove(4)  # one person with 15 joints (dropped by all_joints)
            head = joints[9]
            people.append(
                {
                    "joints": joints,
                    "ids": ids,
                    "head_box": (head[0] - 12, head[1] - 10, head[0] + 12, head[1] + 14),
                    "centre": joints.mean(axis=0),
                    "scale": 1.0 + 0.1 * p,
                }
            )
        images.append({"name": name, "img_train": img_train, "people": people})
    return images


def write_mpii_mat(path: Path, images: list[dict]) -> None:
    """The official `RELEASE` structure (1-based coordinates), as mpii_human_pose_v1_u12_1.mat has it."""
    annolist, single = [], np.empty((len(images), 1), dtype=object)
    for i, im in enumerate(images):
        rects = []
        for person in im["people"]:
            pts = [
                {
                    "x": person["joints"][j % 16, 0] + 1,
                    "y": person["joints"][j % 16, 1] + 1,
                    "id": j,
                    "is_visible": 1,
                }
                for j in person["ids"]
            ]
            x1, y1, x2, y2 = (v + 1 for v in person["head_box"])
            rects.append(
                {
                    "x1": x1, "y1": y1, "x2": x2, "y2": y2,
                    "annopoints": {"point": struct_array(pts)},
                    "scale": person["scale"],
                    "objpos": {"x": person["centre"][0] + 1, "y": person["centre"][1] + 1},
                }
            )  # fmt: skip
        rect_array = struct_array(rects) if rects else np.zeros((0, 0))
        annolist.append({"image": {"name": im["name"]}, "annorect": rect_array})
        single[i, 0] = (
            np.arange(1, len(rects) + 1, dtype=np.float64)[:, None] if im["img_train"] else np.zeros((0, 0))
        )
    release = {
        "annolist": struct_array(annolist),
        "img_train": np.array([[im["img_train"] for im in images]], dtype=np.float64),
        "single_person": single,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.savemat(str(path), {"RELEASE": release})


def write_mpii_json(folder: Path, images: list[dict]) -> None:
    """HRNet's annot/train.json, annot/valid.json and gt_valid.mat for the same people (train images only)."""
    val = newell_validation_images()
    entries: dict[str, list] = {"train": [], "valid": []}
    boxes = []
    for im in images:
        if not im["img_train"]:
            continue
        for person in im["people"]:
            joints = np.full((16, 2), -1.0)
            vis = np.zeros(16)
            joints[person["ids"]] = person["joints"][person["ids"]] + 1
            vis[person["ids"]] = 1
            split = "valid" if im["name"] in val else "train"
            entries[split].append(
                {
                    "image": im["name"],
                    "center": (person["centre"] + 1).tolist(),
                    "scale": person["scale"],
                    "joints": joints.tolist(),
                    "joints_vis": vis.tolist(),
                }
            )
            if split == "valid":
                x1, y1, x2, y2 = (v + 1 for v in person["head_box"])
                boxes.append([[x1, y1], [x2, y2]])
    (folder / "annot").mkdir(parents=True, exist_ok=True)
    for split, rows in entries.items():
        (folder / "annot" / f"{split}.json").write_text(json.dumps(rows))
    sio.savemat(str(folder / "annot" / "gt_valid.mat"), {"headboxes_src": np.array(boxes).transpose(1, 2, 0)})


def write_mpii_images(folder: Path, images: list[dict]) -> None:
    for im in images:
        gradient_image(folder / "images" / im["name"])


# -- ICVL ----------------------------------------------------------------------------------------------------

DISC_CENTRE = (150, 110)
DISC_DEPTH = 400.0


def icvl_joints(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 16, 3) u, v px and d mm inside the hand disc of `write_icvl_folder`."""
    ang = rng.uniform(0, 2 * np.pi, (n, 16))
    rad = rng.uniform(0, 20, (n, 16))
    u = DISC_CENTRE[0] + rad * np.cos(ang)
    v = DISC_CENTRE[1] + rad * np.sin(ang)
    d = DISC_DEPTH + rng.uniform(-10, 10, (n, 16))
    return np.stack([u, v, d], axis=-1)


def depth_disc(radius: int = 30, depth: float = DISC_DEPTH) -> np.ndarray:
    """A 240 x 320 uint16 depth map: a flat disc (the hand) at `depth` mm around DISC_CENTRE, 0 elsewhere."""
    y, x = np.mgrid[0:240, 0:320]
    inside = (x - DISC_CENTRE[0]) ** 2 + (y - DISC_CENTRE[1]) ** 2 <= radius**2
    return np.where(inside, depth, 0).astype(np.uint16)


def write_icvl_folder(root: Path, n_train: int = 6, n_test: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """<root>/icvl/{Training/labels.txt, Training/Depth/..., Testing/test_seq_{1,2}.txt, Testing/Depth/...}."""
    rng = np.random.default_rng(seed)
    base = root / "icvl"
    joints = {}
    for split, label_files, count in (
        ("train", ["Training/labels.txt"], n_train),
        ("test", ["Testing/test_seq_1.txt", "Testing/test_seq_2.txt"], n_test),
    ):
        rows = []
        for f_idx, label in enumerate(label_files):
            uvd = icvl_joints(rng, count)
            lines = []
            for i in range(count):
                rel = f"seq{f_idx}/image_{i:04d}.png"
                depth_path = base / Path(label).parent / "Depth" / rel
                depth_path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(depth_disc()).save(depth_path)
                lines.append(rel + " " + " ".join(f"{v:.4f}" for v in uvd[i].ravel()))
            (base / label).parent.mkdir(parents=True, exist_ok=True)
            (base / label).write_text("\n".join(lines) + "\n")
            rows.append(np.round(uvd, 4))
        joints[split] = np.concatenate(rows)
    return joints


# -- COCO ----------------------------------------------------------------------------------------------------

COCO_KEYPOINTS = ["nose", "left_shoulder", "right_shoulder", "left_hip", "right_hip"]


def write_coco_folder(root: Path, n_images: int = 10, seed: int = 0) -> dict:
    """<root>/annotations.json (COCO keypoints, 5 joints) + <root>/images/img<i>.png gradient images."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(n_images):
        images.append({"id": 100 + i, "file_name": f"img{i}.png", "width": SIZE, "height": SIZE})
        gradient_image(root / "images" / f"img{i}.png")
        for _ in range(2 if i == 0 else 1):
            kp = rng.uniform(70, 180, size=(5, 2))
            box = [float(kp[:, 0].min() - 10), float(kp[:, 1].min() - 10), 0.0, 0.0]
            box[2], box[3] = float(kp[:, 0].max() + 10 - box[0]), float(kp[:, 1].max() + 10 - box[1])
            flat = np.column_stack([kp, np.full(5, 2)]).ravel().tolist()
            anns.append({"id": len(anns) + 1, "image_id": 100 + i, "category_id": 1, "keypoints": flat, "bbox": box,
                         "num_keypoints": 5, "iscrowd": 0})  # fmt: skip
    anns.append(
        {
            "id": 900,
            "image_id": 100,
            "category_id": 1,
            "keypoints": [0] * 15,
            "bbox": [0, 0, 5, 5],
            "iscrowd": 0,
        }
    )
    crowd = dict(anns[1], id=901, iscrowd=1)
    anns.append(crowd)
    data = {
        "images": images,
        "annotations": anns,
        "categories": [
            {
                "id": 1,
                "name": "person",
                "keypoints": COCO_KEYPOINTS,
                "skeleton": [[1, 2], [1, 3], [2, 4], [3, 5]],
            }
        ],
    }
    (root / "annotations.json").write_text(json.dumps(data))
    return data
