"""ICVL hand posture (`icvl`): 3D hand pose from depth, the papers' regression benchmark, MPJPE in mm.

Data root layout (the release's own)::

    <root>/icvl/Training/labels.txt                 one line per frame: <path> u1 v1 d1 ... u16 v16 d16
    <root>/icvl/Training/Depth/<path>               16-bit depth PNGs (mm), 320 x 240
    <root>/icvl/Testing/test_seq_1.txt, test_seq_2.txt
    <root>/icvl/Testing/Depth/<path>

Labels are u, v in pixels and d in mm for the 16 joints in the order of `alpose_bench.pose.skeleton.ICVL`. Each
frame is cropped around the hand in 3D: the centre of mass of the depth pixels inside a cube of half-size
`cube_mm` (default 125 mm, DeepPrior's 250 mm cube) around the annotated joints' centroid (the refined centre
of mass of DeepPrior, seeded by the annotation instead of a detector); the cube's projection at the centre's
depth is cut out (zero padded), resized to the resolution with nearest-neighbour sampling, and depth stored as
uint8 rint(((d - d_centre) / cube_mm + 1) / 2 * 254) clipped to 0..254 (near 0, far 254), 255 where there is
no depth or the surface lies beyond the cube's far face: the encoding of the synthetic hand
(datasets/hand.py). Keypoints are millimetres relative to the centre, x right, y down, z away from the camera
(uvd -> xyz with fx = 240.99, fy = 240.96, cx = 160, cy = 120: the camera of the evaluation code that published
the ICVL predictions); `PoseDataset.cube_mm` is the cube half-size. Pool =
Training/labels.txt, test = the test sequences."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from alpose_bench.core.validation import param
from alpose_bench.datasets.base import CachedDataset, Sources, SourceSplit
from alpose_bench.datasets.files import crop_window, dataset_dir, map_images
from alpose_bench.pose.data import (
    HAND_PRESETS,
    DatasetConfig,
    DatasetError,
    PoseDataset,
    PoseSplit,
    ProgressFn,
)
from alpose_bench.pose.skeleton import ICVL

ICVL_HINT = (
    "the ICVL Hand Posture Dataset (Tang et al., CVPR 2014), distributed by Imperial College's ICVL lab"
)
# the camera of the evaluation code that published the ICVL predictions (xinghaochen/awesome-hand-pose-estimation,
# evaluation/src/util.py, get_param("icvl")); 241.42 (used before, and in some papers) is MSRA's, and makes every
# method's error about 0.01 mm smaller
FX, FY = 240.99, 240.96
CX, CY = 160.0, 120.0
NUM_JOINTS = 16
BACKGROUND = 255  # no depth, or beyond the cube's far face (as the synthetic hand, datasets/hand.py)
MIN_COM_PIXELS = 10  # fewer hand pixels than this in the cube: use the joints' centroid as the centre


def uvd_to_xyz(uvd: np.ndarray) -> np.ndarray:
    """Pixel (u, v) and depth d (mm) -> camera coordinates (mm): x right, y down, z away."""
    z = uvd[..., 2]
    return np.stack([(uvd[..., 0] - CX) * z / FX, (uvd[..., 1] - CY) * z / FY, z], axis=-1)


def xyz_to_uvd(xyz: np.ndarray) -> np.ndarray:
    """Inverse of `uvd_to_xyz`."""
    z = xyz[..., 2]
    return np.stack([xyz[..., 0] * FX / z + CX, xyz[..., 1] * FY / z + CY, z], axis=-1)


def read_labels(path: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """An ICVL label file -> (relative image paths (N,), uvd joints (N, 16, 3)). Malformed lines raise
    DatasetError naming the line. Well-formed files take pandas' C parser (330k lines in about a second)."""
    import pandas as pd

    try:
        table = pd.read_csv(path, sep=r"\s+", header=None, dtype={0: str}, engine="c", skip_blank_lines=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError):
        table = None
    except OSError as exc:
        raise DatasetError(
            f"dataset {name!r}: cannot read {path} ({exc}); obtain it again from {ICVL_HINT}"
        ) from None
    fast = (
        table is not None
        and table.shape[1] == 1 + 3 * NUM_JOINTS
        and all(np.issubdtype(t, np.number) for t in table.dtypes.iloc[1:])
        and not table.iloc[:, 1:].isna().to_numpy().any()
    )
    if fast:
        names = table.iloc[:, 0].to_numpy(dtype=str)
        values = table.iloc[:, 1:].to_numpy(dtype=np.float64).reshape(-1, NUM_JOINTS, 3)
    else:
        names, values = _read_labels_slowly(path, name)
    bad = ~np.isfinite(values).all(axis=(1, 2)) | (values[..., 2] <= 0).any(axis=1)
    if bad.any():
        first = ", ".join(str(int(i) + 1) for i in np.nonzero(bad)[0][:5])
        raise DatasetError(
            f"dataset {name!r}: {path} has NaN, infinite or non-positive depth labels on {int(bad.sum())} lines "
            f"(first: {first}); the file is corrupt"
        )
    return names, values


def _read_labels_slowly(path: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Line-by-line parse that names the first malformed line."""
    try:
        lines = [ln.split() for ln in path.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(
            f"dataset {name!r}: cannot read {path} ({exc}); obtain it again from {ICVL_HINT}"
        ) from None
    lines = [ln for ln in lines if ln]
    if not lines:
        raise DatasetError(f"dataset {name!r}: {path} is empty; obtain it again from {ICVL_HINT}")
    for number, tokens in enumerate(lines, start=1):
        if len(tokens) != 1 + 3 * NUM_JOINTS:
            raise DatasetError(
                f"dataset {name!r}: {path} line {number} has {len(tokens) - 1} numbers, expected 48 "
                "(16 joints x u, v, d); the file is corrupt or truncated"
            )
    try:
        values = np.array([tokens[1:] for tokens in lines], dtype=np.float64).reshape(-1, NUM_JOINTS, 3)
    except ValueError as exc:
        raise DatasetError(
            f"dataset {name!r}: {path} has a non-numeric label ({exc}); the file is corrupt"
        ) from None
    return np.array([tokens[0] for tokens in lines]), values


def hand_centre(depth: np.ndarray, joints_uvd: np.ndarray, cube: float) -> tuple[np.ndarray, bool]:
    """Centre of mass (xyz, mm) of the depth pixels inside the cube around the joints' centroid; the centroid
    itself when fewer than MIN_COM_PIXELS pixels fall in the cube. Returns (centre, used_com)."""
    c0 = uvd_to_xyz(joints_uvd).mean(axis=0)
    cu, cv, _ = xyz_to_uvd(c0)
    half = FX * cube / c0[2]
    h, w = depth.shape
    u0, u1 = int(np.clip(np.floor(cu - half), 0, w)), int(np.clip(np.ceil(cu + half) + 1, 0, w))
    v0, v1 = int(np.clip(np.floor(cv - half), 0, h)), int(np.clip(np.ceil(cv + half) + 1, 0, h))
    z = depth[v0:v1, u0:u1]
    vs, us = np.mgrid[v0:v1, u0:u1]
    xyz = uvd_to_xyz(np.stack([us, vs, z], axis=-1).astype(np.float64))
    inside = (z > 0) & (np.abs(xyz - c0) <= cube).all(axis=-1)
    if inside.sum() < MIN_COM_PIXELS:
        return c0, False
    return xyz[inside].mean(axis=0), True


def crop_hand(depth: np.ndarray, centre: np.ndarray, cube: float, resolution: int) -> np.ndarray:
    """(res, res) uint8 normalised depth crop of the cube around `centre` (see the module docstring)."""
    from PIL import Image

    cu, cv, cz = xyz_to_uvd(centre)
    box = (float(cu), float(cv), float(2 * FX * cube / cz))
    patch = crop_window(Image.fromarray(depth), box, 1.0, resolution, Image.Resampling.NEAREST)
    depth = np.asarray(patch, dtype=np.float64)
    z = depth - cz
    value = np.clip(np.rint((z / cube + 1.0) / 2.0 * 254.0), 0, 254)
    return np.where((depth > 0) & (z <= cube), value, BACKGROUND).astype(np.uint8)


def read_depth(path: str) -> np.ndarray:
    """A 16-bit depth PNG as float32 millimetres (H, W)."""
    from PIL import Image

    with Image.open(path) as image:
        depth = np.asarray(image)
    if depth.ndim != 2 or depth.dtype == np.uint8:
        raise ValueError(f"expected a single-channel 16-bit depth image, got {depth.dtype} {depth.shape}")
    return depth.astype(np.float32)


@dataclass(frozen=True)
class ICVLOptions:
    """Options of the `icvl` dataset."""

    cube_mm: float = param(125.0, low=0, low_open=True)  # half-size of the crop cube around the hand
    center: Literal["com", "joints"] = "com"  # crop centre: refined centre of mass, or the joints' centroid
    test_sequences: str = "1,2"  # the test sequences to read, comma-separated
    workers: int = param(0, low=0)  # decoding threads (0: up to 8); changes speed only


class ICVLDataset(CachedDataset):
    """ICVL hands: depth crops around the hand, 16 joints in mm relative to the crop centre, MPJPE."""

    name = "icvl"
    preset_overrides = HAND_PRESETS
    description = "ICVL hand posture (real depth images): 3D hand pose in mm, MPJPE."
    task = "regression3d"
    skeleton = ICVL
    metric = "mpjpe"
    hint = ICVL_HINT
    expected = "icvl/Training/{labels.txt, Depth/} and icvl/Testing/{test_seq_1.txt, test_seq_2.txt, Depth/}"
    options_class = ICVLOptions
    cache_version = 2  # 2: the published camera (fx 240.99, fy 240.96) places the crops

    def _dir(self, root: Path) -> Path:
        return dataset_dir(root, "icvl", "Training")

    def _test_files(self, root: Path, options: dict[str, Any]) -> list[Path]:
        seqs = [s.strip() for s in str(options["test_sequences"]).split(",") if s.strip()]
        if not seqs:
            raise DatasetError(f"dataset {self.name!r}: option test_sequences is empty; use e.g. 1,2")
        return [self._dir(root) / "Testing" / f"test_seq_{s}.txt" for s in seqs]

    def annotation_files(self, root: Path, options: dict[str, Any]) -> list[Path]:
        return [self._dir(root) / "Training" / "labels.txt", *self._test_files(root, options)]

    def parse(self, root: Path, options: dict[str, Any]) -> Sources:
        base = self._dir(root)
        splits, counts = {}, {}
        groups = {"train": [base / "Training" / "labels.txt"], "test": self._test_files(root, options)}
        for split_name, files in groups.items():
            parts = [read_labels(f, self.name) for f in files]
            rel = np.concatenate([p[0] for p in parts])
            uvd = np.concatenate([p[1] for p in parts])
            folder = str(files[0].parent / "Depth") + "/"
            for f, p in zip(files, parts):
                counts[f"{f.parent.name}/{f.name} frames"] = len(p[0])
            splits[split_name] = SourceSplit(
                image_paths=np.char.add(folder, rel),
                keypoints=uvd,
                visible=np.ones(uvd.shape[:2], dtype=bool),
                normalizer=np.ones(len(uvd)),
                boxes=None,
            )
        info = {
            "protocol": "ICVL Training as pool, test sequences as test",
            "counts": counts,
            "root": str(root),
        }
        return Sources(splits=splits, info=info)

    def materialise(
        self, sources: Sources, config: DatasetConfig, options: dict[str, Any], progress: ProgressFn | None
    ) -> dict[str, PoseSplit]:
        cube, res, use_com = float(options["cube_mm"]), config.resolution, options["center"] == "com"
        paths = np.concatenate([s.image_paths for s in sources.splits.values()])
        joints = np.concatenate([s.keypoints for s in sources.splits.values()])

        def work(k: int) -> tuple[np.ndarray, np.ndarray, bool]:
            depth = read_depth(paths[k])
            if use_com:
                centre, found = hand_centre(depth, joints[k], cube)
            else:
                centre, found = uvd_to_xyz(joints[k]).mean(axis=0), False
            return crop_hand(depth, centre, cube, res), centre, found

        images = np.zeros((len(paths), res, res, 1), dtype=np.uint8)
        centres = np.zeros((len(paths), 3))
        com_used = 0
        for k, (image, centre, found) in map_images(
            self.name, paths, work, self.hint, progress, int(options["workers"])
        ):
            images[k, ..., 0], centres[k] = image, centre
            com_used += found
        sources.info.setdefault("counts", {})["crops centred on the depth centre of mass"] = int(com_used)
        keypoints = (uvd_to_xyz(joints) - centres[:, None, :]).astype(np.float32)
        out, start = {}, 0
        for split_name, s in sources.splits.items():
            stop = start + len(s)
            out[split_name] = PoseSplit(
                images=images[start:stop],
                keypoints=keypoints[start:stop],
                visible=s.visible.astype(bool),
                normalizer=np.ones(len(s), dtype=np.float32),
            )
            start = stop
        return out

    def assemble(self, splits: dict[str, PoseSplit], initial: np.ndarray | None, info: dict) -> PoseDataset:
        base = super().assemble(splits, initial, info)
        return replace(base, cube_mm=float(info["options"]["cube_mm"]))
