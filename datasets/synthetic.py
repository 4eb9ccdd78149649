"""Built-in synthetic datasets: ``synth-human`` (2D, MPII joints, PCKh) and ``synth-hand`` (3D depth hands, MPJPE).

Both are generated from a seed on first use and cached as one .npz file under the cache directory, keyed by every
generation parameter and `GENERATOR_VERSION`. Samples are generated in chunks of `CHUNK` with one random stream
per (seed, split, chunk); poses and appearance are drawn before any pixel, so they do not depend on the resolution. Each sample records its pose mode / gesture in PoseSplit.groups; the ``ood`` split draws the modes
from the reversed prior (rare modes dominate) with shifted appearance (synth-human) or viewpoints (synth-hand).
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np

from alpose_bench.core import activity
from alpose_bench.core.atomic import write_atomic
from alpose_bench.core.validation import param
from alpose_bench.datasets.hand import (
    BACKGROUND,
    GESTURE_NAMES,
    GESTURE_PRIOR,
    OOD_VIEW,
    TRAIN_VIEW,
    HandView,
    render_depth,
    sample_hands,
)
from alpose_bench.datasets.poses import (
    HUMAN_MODE_NAMES,
    HUMAN_MODE_PRIOR,
    HumanPoses,
    reversed_prior,
    sample_human_poses,
)
from alpose_bench.datasets.render import (
    DEFAULT_STYLE,
    OOD_STYLE,
    FigureExtras,
    RenderStyle,
    head_box_diagonal,
    render_people,
)
from alpose_bench.pose.data import (
    HAND_PRESETS,
    HELD_OUT_SPLITS,
    DatasetConfig,
    DatasetError,
    DatasetPlugin,
    PoseDataset,
    PoseSplit,
    default_cache_dir,
)
from alpose_bench.pose.skeleton import ICVL, MPII

# 2: render_people draws every background and noise value before it splits a batch (version 1 drew them per
# memory-sized sub-batch, so the pixels depended on that size)
GENERATOR_VERSION = 2
CHUNK = 256  # samples per random stream
DEFAULT_POOL, DEFAULT_TEST = 5000, 1000
MAX_SPLIT = 1_000_000  # images per split (12 GB at 64 px RGB)
SPLITS = ("train", *HELD_OUT_SPLITS)
_FIELDS = ("images", "keypoints", "visible", "normalizer", "groups")


# --------------------------------------------------------------------------------------------------------------------
# synth-human


def frame_figures(
    poses: HumanPoses, resolution: int, rng: np.random.Generator
) -> tuple[np.ndarray, FigureExtras]:
    """Place 3D figures in the image like a person-centred crop: in-plane roll, scale, translation.

    The figure's bounding box (joints and toes, plus a margin for limb thickness) fills 60-82 % of the image side,
    centred with a small jitter; 8 % of the crops are shifted further, so some extremities fall outside.
    Returns keypoints (N, 16, 2) px and the depth/facing/toes/body-unit the renderer needs.
    """
    n = len(poses.modes)
    c, s = np.cos(poses.roll), np.sin(poses.roll)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # (N, 2, 2)
    pts = np.concatenate([poses.joints, poses.toes], axis=1)
    xy = np.einsum("nij,nkj->nki", rot, pts[..., :2])
    lo, hi = xy.min(axis=1), xy.max(axis=1)
    extent = (hi - lo).max(axis=1) + 0.1
    unit = rng.uniform(0.6, 0.82, n) * resolution / extent
    offset = 0.035 * resolution * rng.standard_normal((n, 2))
    shifted = rng.random(n) < 0.08
    angle = rng.uniform(0, 2 * np.pi, n)
    push = rng.uniform(0.12, 0.25, n) * resolution * shifted
    offset += push[:, None] * np.stack([np.cos(angle), np.sin(angle)], -1)
    px = (xy - (lo + hi)[:, None] / 2) * unit[:, None, None] + (resolution - 1) / 2 + offset[:, None]
    z = pts[..., 2] * unit[:, None]
    facing = np.concatenate([np.einsum("nij,nj->ni", rot, poses.facing[:, :2]), poses.facing[:, 2:]], axis=1)
    toes = np.concatenate([px[:, 16:], z[:, 16:, None]], axis=2)
    return px[:, :16], FigureExtras(depth=z[:, :16], facing=facing, toes=toes, unit=unit)


def human_chunk(
    rng: np.random.Generator, n: int, resolution: int, prior: np.ndarray, style: RenderStyle
) -> dict[str, np.ndarray]:
    """Generate `n` synth-human samples from one random stream."""
    poses = sample_human_poses(rng, n, prior)
    keypoints, extras = frame_figures(poses, resolution, rng)
    images = render_people(keypoints, np.ones((n, 16), bool), MPII, resolution, rng, style, extras)
    inside = (keypoints >= 0).all(axis=2) & (keypoints <= resolution - 1).all(axis=2)
    return {
        "images": images,
        "keypoints": keypoints.astype(np.float32),
        "visible": inside,
        "normalizer": head_box_diagonal(keypoints, MPII).astype(np.float32),
        "groups": poses.modes.astype(np.int64),
    }


# --------------------------------------------------------------------------------------------------------------------
# synth-hand


def hand_chunk(
    rng: np.random.Generator, n: int, resolution: int, prior: np.ndarray, view: HandView, cube_mm: float
) -> dict[str, np.ndarray]:
    """Generate `n` synth-hand samples from one random stream."""
    hands = sample_hands(rng, n, prior, view)
    images = render_depth(hands, cube_mm, resolution, rng)
    return {
        "images": images,
        "keypoints": hands.joints.astype(np.float32),
        "visible": (np.abs(hands.joints) < cube_mm).all(axis=2),
        "normalizer": np.ones(n, dtype=np.float32),
        "groups": hands.gestures.astype(np.int64),
    }


# --------------------------------------------------------------------------------------------------------------------
# generation and cache


def generate_split(
    make_chunk: Callable[[np.random.Generator, int], dict[str, np.ndarray]], n: int, seed: int, split: int
) -> dict[str, np.ndarray]:
    """Concatenate chunks of CHUNK samples, chunk c drawn from the random stream (seed, split, c)."""
    parts = []
    for c, start in enumerate(range(0, n, CHUNK)):
        parts.append(make_chunk(np.random.default_rng([seed, split, c]), min(CHUNK, n - start)))
        activity.advance(min(CHUNK, n - start))
    return {k: np.concatenate([p[k] for p in parts]) for k in _FIELDS}


def cache_path(cache_dir: Path, name: str, params: dict) -> Path:
    """Cache file of a dataset: name, resolution and a hash of all generation parameters and the version."""
    blob = json.dumps({"name": name, "version": GENERATOR_VERSION, **params}, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return cache_dir / f"{name}-{params['resolution']}px-{digest}.npz"


def _read_cache(
    path: Path, sizes: dict[str, int], image_shape: tuple[int, ...]
) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when the file is missing, unreadable or not what the parameters ask for."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        for split, size in sizes.items():
            if size == 0:
                continue
            for field in _FIELDS:
                if len(arrays[f"{split}_{field}"]) != size:
                    raise ValueError(
                        f"{split}_{field} has {len(arrays[f'{split}_{field}'])} rows, expected {size}"
                    )
            if arrays[f"{split}_images"].shape[1:] != image_shape:
                raise ValueError(
                    f"{split} images are {arrays[f'{split}_images'].shape[1:]}, expected {image_shape}"
                )
        return arrays
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        warnings.warn(
            f"dataset cache {path} is unusable ({err}); regenerating it", RuntimeWarning, stacklevel=3
        )
        return None


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the cache atomically (`alpose_bench.core.atomic`); warn instead of failing (the data is in memory)."""
    try:
        write_atomic(path, lambda fh: np.savez(fh, **arrays))
    except OSError as err:
        warnings.warn(
            f"could not write dataset cache {path} ({err}); continuing without it",
            RuntimeWarning,
            stacklevel=3,
        )


def _positive_int(value: object, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DatasetError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class SynthHumanOptions:
    """Options of `synth-human`."""

    ood_size: int | None = param(None, low=0, high=MAX_SPLIT)  # images of the ood split (None: the test size)
    # how the ood split looks: "shifted" (synth-human: neon clothes, striped backgrounds, more clutter; synth-hand:
    # other viewpoints) or "pool" (the pool's own look, so the only shift is the reversed pose-mode prior)
    ood_appearance: Literal["shifted", "pool"] = "shifted"


@dataclass(frozen=True)
class SynthHandOptions(SynthHumanOptions):
    """Options of `synth-hand`."""

    cube_mm: float = param(120.0, low=80, high=500)  # half-size of the crop cube, mm


class _SyntheticDataset(DatasetPlugin):
    """Shared loading, validation and caching of the synthetic datasets."""

    min_resolution: ClassVar[int] = 32
    options_class: ClassVar[type] = SynthHumanOptions
    group_names: ClassVar[tuple[str, ...]]
    group_prior: ClassVar[tuple[float, ...]]

    def _params(self, config: DatasetConfig) -> dict:
        """Validated generation parameters (what the cache key covers)."""
        options = self.options(config)
        res = _positive_int(config.resolution, f"{self.name}: resolution", self.min_resolution)
        if res > 1024:
            raise DatasetError(f"{self.name}: resolution must be at most 1024 px, got {res}")
        pool = _positive_int(
            DEFAULT_POOL if config.pool_size is None else config.pool_size, f"{self.name}: pool_size"
        )
        test = _positive_int(
            DEFAULT_TEST if config.test_size is None else config.test_size, f"{self.name}: test_size"
        )
        ood = test if options["ood_size"] is None else options["ood_size"]
        for what, size in (("pool_size", pool), ("test_size", test), ("option ood_size", ood)):
            if size > MAX_SPLIT:  # a mistyped size would otherwise generate for hours, then run out of memory
                raise DatasetError(f"{self.name}: {what} must be at most {MAX_SPLIT:,}, got {size:,}")
        seed = _positive_int(config.seed, f"{self.name}: seed", 0)
        params = {"resolution": res, "pool_size": pool, "test_size": test, "ood_size": ood, "seed": seed}
        if (
            options["ood_appearance"] != "shifted"
        ):  # the default stays out of the cache key (caches stay valid)
            params["ood_appearance"] = options["ood_appearance"]
        return params

    def _make_chunk(
        self, params: dict, split: str
    ) -> Callable[[np.random.Generator, int], dict[str, np.ndarray]]:
        raise NotImplementedError

    def _channels(self) -> int:
        raise NotImplementedError

    def _dataset_fields(self, params: dict) -> dict:
        return {}

    def load(self, config: DatasetConfig) -> PoseDataset:
        """Generate (or read from the cache) the train pool, test and ood splits."""
        params = self._params(config)
        res = params["resolution"]
        sizes = {"train": params["pool_size"], "test": params["test_size"], "ood": params["ood_size"]}
        path = cache_path(Path(config.cache_dir or default_cache_dir()), self.name, params)
        start = time.perf_counter()
        arrays = _read_cache(path, sizes, (res, res, self._channels()))
        from_cache = arrays is not None
        if arrays is None:
            arrays = {}
            for split_id, split in enumerate(SPLITS):
                if sizes[split] == 0:
                    continue
                with activity.phase(f"rendering {self.name} {split}", total=sizes[split], unit="images"):
                    data = generate_split(
                        self._make_chunk(params, split), sizes[split], params["seed"], split_id
                    )
                arrays.update({f"{split}_{k}": v for k, v in data.items()})
            _write_cache(path, arrays)
        splits = {
            s: PoseSplit(**{k: arrays[f"{s}_{k}"] for k in _FIELDS}) if sizes[s] else None for s in SPLITS
        }
        return self.make_dataset(
            splits["train"],
            splits["test"],
            ood=splits["ood"],
            group_names=self.group_names,
            group_prior=self.group_prior,
            info={
                "version": GENERATOR_VERSION,
                "generator_version": GENERATOR_VERSION,
                "cache_path": str(path),
                "from_cache": from_cache,
                "seconds": time.perf_counter() - start,
                "ood_group_prior": tuple(float(p) for p in reversed_prior(self.group_prior)),
                **params,
            },
            **self._dataset_fields(params),
        )


class SynthHuman(_SyntheticDataset):
    """Synthetic 2D human pose: rendered articulated figures with the 16 MPII joints, scored by PCKh.

    keypoints (N, 16, 2) float32 pixels, pixel centres at integer coordinates; visible = inside the image (joints
    under an occluder stay annotated, as on MPII); normalizer = head-box diagonal (`render.head_boxes`);
    groups = pose mode (`group_names`). Options: ood_size (default: the test size), ood_appearance ("shifted":
    neon clothes and striped, cluttered backgrounds; "pool": the pool's look, only the mode prior reversed).
    """

    name = "synth-human"
    description = (
        "Synthetic 2D human figures (16 MPII joints, 7 long-tailed pose modes, clutter), PCKh; no download."
    )
    task = "heatmap2d"
    skeleton = MPII
    metric = "pckh"
    group_names = HUMAN_MODE_NAMES
    group_prior = HUMAN_MODE_PRIOR

    def _channels(self) -> int:
        return 3

    def _make_chunk(
        self, params: dict, split: str
    ) -> Callable[[np.random.Generator, int], dict[str, np.ndarray]]:
        prior = reversed_prior(HUMAN_MODE_PRIOR) if split == "ood" else np.asarray(HUMAN_MODE_PRIOR)
        shifted = split == "ood" and params.get("ood_appearance", "shifted") == "shifted"
        style = OOD_STYLE if shifted else DEFAULT_STYLE
        return lambda rng, n: human_chunk(rng, n, params["resolution"], prior, style)


class SynthHand(_SyntheticDataset):
    """Synthetic 3D hand pose: depth images of a 16-joint (ICVL) hand, joints in mm, scored by MPJPE.

    keypoints (N, 16, 3) float32 mm relative to the hand centre, x right, y down, z away from the camera; the
    image is the orthographic projection of the cube [-cube_mm, cube_mm]^3 (pixel = (x / cube_mm + 1) * res / 2
    - 0.5); uint8 depth = round((z / cube_mm + 1) / 2 * 254) (near is dark); background and anything beyond the
    cube's far face is 255. Single channel, normalizer = 1, groups = gesture. Options: ood_size, cube_mm (120),
    ood_appearance ("shifted": other viewpoints; "pool": the pool's viewpoints, only the gesture prior reversed).
    """

    name = "synth-hand"
    preset_overrides = HAND_PRESETS
    description = (
        "Synthetic 3D hand depth images (16 ICVL joints, 9 long-tailed gestures), MPJPE in mm; no download."
    )
    task = "regression3d"
    skeleton = ICVL
    metric = "mpjpe"
    min_resolution = 16
    options_class = SynthHandOptions
    group_names = GESTURE_NAMES
    group_prior = GESTURE_PRIOR
    background: ClassVar[int] = BACKGROUND

    def _params(self, config: DatasetConfig) -> dict:
        params = super()._params(config)
        params["cube_mm"] = float(self.options(config)["cube_mm"])
        return params

    def _channels(self) -> int:
        return 1

    def _dataset_fields(self, params: dict) -> dict:
        return {"cube_mm": params["cube_mm"]}

    def _make_chunk(
        self, params: dict, split: str
    ) -> Callable[[np.random.Generator, int], dict[str, np.ndarray]]:
        prior = reversed_prior(GESTURE_PRIOR) if split == "ood" else np.asarray(GESTURE_PRIOR)
        shifted = split == "ood" and params.get("ood_appearance", "shifted") == "shifted"
        view = OOD_VIEW if shifted else TRAIN_VIEW
        return lambda rng, n: hand_chunk(rng, n, params["resolution"], prior, view, params["cube_mm"])
