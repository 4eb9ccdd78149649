"""The base of the real-data plugins (`CachedDataset`): one pipeline from annotation files to cached arrays.

Every loader follows one pipeline (`CachedDataset.prepare`):

1. find the annotation files under the data root (cheap; a missing file raises `DatasetError` naming it and
   where to obtain it),
2. look the preprocessed arrays up in the cache (`datasets/cache.py`), keyed by the annotation files' size and
   mtime, the options, the resolution and the subset asked for; on a hit nothing else is read,
3. otherwise parse the annotations into `SourceSplit`s (source-image coordinates), take the subset, decode and
   crop the images once (`datasets/files.py`: threads, JPEG draft decoding), and write the cache atomically.

`check` (what `alpose-bench data check` prints) parses the annotations and surveys the images without decoding.
"""

from __future__ import annotations

import os
import time
from abc import abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from alpose_bench.core import activity
from alpose_bench.datasets.cache import cache_file, fingerprint, load_arrays, pack, save_arrays, unpack
from alpose_bench.datasets.files import (
    MAX_IMAGE_PIXELS,
    MAX_LISTED,
    data_root,
    decode_crops,
    require_files,
    survey_images,
    too_large,
)
from alpose_bench.datasets.geometry import to_crop
from alpose_bench.pose.data import (
    CheckReport,
    DatasetConfig,
    DatasetError,
    DatasetPlugin,
    PoseDataset,
    PoseSplit,
    ProgressFn,
)

# -- subsets -------------------------------------------------------------------------------------------------


def subset_index(n: int, size: int | None, seed: int, keep: np.ndarray | None = None) -> np.ndarray:
    """Sorted positions of a seeded subset of `size` out of `n` (all when size is None or >= n).

    Positions in `keep` (a fixed initial labelled set) are taken first; if they alone exceed `size`, a seeded
    subset of them is taken."""
    if size is None or size >= n:
        return np.arange(n)
    if size < 1:
        raise DatasetError(f"a dataset subset must have at least 1 sample, got {size}")
    rng = np.random.default_rng([seed, n, size])
    keep = np.unique(np.asarray(keep if keep is not None else [], dtype=np.int64))
    if len(keep) >= size:
        return np.sort(rng.choice(keep, size=size, replace=False))
    rest = np.setdiff1d(np.arange(n), keep)
    return np.sort(np.concatenate([keep, rng.choice(rest, size=size - len(keep), replace=False)]))


# -- the plugin base -----------------------------------------------------------------------------------------


@dataclass
class SourceSplit:
    """Parsed annotations of one split, in source coordinates (before cropping).

    image_paths (N,) str absolute paths of the source images ("" when there are none, e.g. rendered data).
    keypoints   (N, J, 2) source pixels (2D) or (N, J, 3) u, v px and depth mm (ICVL). visible     (N, J) bool
    annotated joints. normalizer  (N,) source-pixel normaliser (scaled with the crop), 1 for 3D. boxes
    (N, 3) crop windows (cx, cy, side) in source pixels, or None when the crop needs the pixels (ICVL)."""

    image_paths: np.ndarray
    keypoints: np.ndarray
    visible: np.ndarray
    normalizer: np.ndarray
    boxes: np.ndarray | None

    def __len__(self) -> int:
        return len(self.keypoints)

    def subset(self, index: np.ndarray) -> SourceSplit:
        return SourceSplit(
            image_paths=self.image_paths[index],
            keypoints=self.keypoints[index],
            visible=self.visible[index],
            normalizer=self.normalizer[index],
            boxes=None if self.boxes is None else self.boxes[index],
        )


@dataclass
class Sources:
    """Everything parsed from the annotation files: the splits ("train" is the pool), a fixed initial set,
    info."""

    splits: dict[str, SourceSplit]
    initial_index: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


class CachedDataset(DatasetPlugin):
    """Base of the real-data plugins: parse -> subset -> crop/decode once -> atomic cache; `check` for the
    CLI.

    Subclasses set `hint` (where to obtain the files), `expected` (the layout, one phrase), `options_class` (a
    dataclass of their options), and implement `annotation_files` and `parse`; image datasets inherit
    `materialise` (crop and decode)."""

    needs_data_root = True
    hint: ClassVar[str] = ""
    expected: ClassVar[str] = ""
    cache_version: ClassVar[int] = 1
    shared_fallback: ClassVar[bool] = False
    uses_images: ClassVar[bool] = True
    # options that do not change the arrays (kept out of the cache key)
    runtime_options: ClassVar[tuple[str, ...]] = ("workers",)

    # -- to implement ---------------------------------------------------------------------------------------

    @abstractmethod
    def annotation_files(self, root: Path, options: dict[str, Any]) -> list[Path]:
        """The annotation files the dataset is built from (existence checked; fingerprinted for the cache)."""

    @abstractmethod
    def parse(self, root: Path, options: dict[str, Any]) -> Sources:
        """Read the annotation files into source-coordinate splits. Raise DatasetError for malformed files."""

    def materialise(
        self, sources: Sources, config: DatasetConfig, options: dict[str, Any], progress: ProgressFn | None
    ) -> dict[str, PoseSplit]:
        """Crop every sample out of its image at `config.resolution` (2D RGB datasets)."""
        res = config.resolution
        paths = np.concatenate([s.image_paths for s in sources.splits.values()])
        boxes = np.concatenate([s.boxes for s in sources.splits.values()])  # type: ignore[misc]
        images = decode_crops(
            self.name, paths, boxes, res, self.hint, progress, int(options.get("workers", 0)),
            int(options.get("max_image_pixels") or MAX_IMAGE_PIXELS),
        )  # fmt: skip
        out, start = {}, 0
        for split_name, s in sources.splits.items():
            stop = start + len(s)
            out[split_name] = crop_split(s, images[start:stop], res)
            start = stop
        return out

    def extra_key(self) -> dict[str, Any]:
        """What besides the annotation files invalidates the cache when it changes (e.g. renderer code)."""
        return {}

    def data_version(self) -> str | None:
        """A version of the code that turns the files into arrays, when a change to it changes the arrays (the
        renderer of the rendered datasets); recorded with an experiment so a resume on other data is refused."""
        return None

    # -- the pipeline ---------------------------------------------------------------------------------------

    def root(self, config: DatasetConfig) -> Path:
        """The data root of `config` (see `data_root`)."""
        return data_root(config, self.name, self.expected, self.hint, self.shared_fallback)

    def cache_path(self, config: DatasetConfig) -> Path:
        """Where `prepare` keeps this configuration's arrays (raises DatasetError when files are missing)."""
        from alpose_bench.pose.data import default_cache_dir

        if config.resolution < 8:
            raise DatasetError(
                f"dataset {self.name!r}: resolution must be at least 8 px, got {config.resolution}"
            )
        options = self.options(config)
        root = self.root(config)
        files = self.annotation_files(root, options)
        require_files(files, self.name, self.hint)
        key = {
            "dataset": self.name,
            "version": self.cache_version,
            "resolution": config.resolution,
            "pool_size": config.pool_size,
            "test_size": config.test_size,
            "seed": config.seed,
            "options": {k: v for k, v in options.items() if k not in self.runtime_options},
            "files": fingerprint(files),
            "root": str(root.resolve()),
            **self.extra_key(),
        }
        return cache_file(Path(config.cache_dir or default_cache_dir()), self.name, key)

    def load(self, config: DatasetConfig) -> PoseDataset:
        """The dataset at `config.resolution`, from the cache when it was prepared before."""
        return self.prepare(config)

    def prepare(
        self, config: DatasetConfig, progress: ProgressFn | None = None, force: bool = False
    ) -> PoseDataset:
        """Load from the cache, or build and cache it (`progress(done, total)` while decoding; `force`
        rebuilds)."""
        path = self.cache_path(config)
        arrays = None if force else load_arrays(path)
        if arrays is None:
            started = time.perf_counter()
            options = self.options(config)
            sources = self.parse(self.root(config), options)
            sources = self._subset(sources, config)
            with activity.phase(f"decoding {self.name} images", unit="images"):
                splits = self.materialise(sources, config, options, progress or activity.ACTIVITY.progress)
            info = {
                **sources.info,
                "options": options,
                "resolution": config.resolution,
                "sizes": {k: len(v) for k, v in splits.items()},
                "build_seconds": round(time.perf_counter() - started, 3),
            }
            try:
                save_arrays(path, pack(splits, sources.initial_index, info))
            except OSError as exc:
                raise DatasetError(
                    f"dataset {self.name!r}: cannot write the cache {path} ({exc.strerror or exc}); set --cache-dir "
                    "or ALPOSE_CACHE to a writable folder with enough space"
                ) from None
        else:
            splits, initial, info = unpack(arrays)
            sources = Sources(splits={}, initial_index=initial, info=info)
        info = {**info, "cache_file": str(path), "version": self.data_version()}
        return self.assemble(splits, sources.initial_index, info)

    def assemble(self, splits: dict[str, PoseSplit], initial: np.ndarray | None, info: dict) -> PoseDataset:
        """The PoseDataset of the built splits (subclasses add cube_mm or a per-file skeleton)."""
        return self.make_dataset(splits["train"], splits["test"], initial_index=initial, info=info)

    def _subset(self, sources: Sources, config: DatasetConfig) -> Sources:
        splits = dict(sources.splits)
        initial = sources.initial_index
        info = dict(sources.info)
        if config.pool_size is not None:
            keep = subset_index(len(splits["train"]), config.pool_size, config.seed, initial)
            splits["train"] = splits["train"].subset(keep)
            if initial is not None:
                initial = np.nonzero(np.isin(keep, initial))[0].astype(np.int64)
            info["pool_subset"] = f"{len(keep)} of {len(sources.splits['train'])} (seed {config.seed})"
        if config.test_size is not None:
            keep = subset_index(len(splits["test"]), config.test_size, config.seed + 1)
            splits["test"] = splits["test"].subset(keep)
            info["test_subset"] = f"{len(keep)} of {len(sources.splits['test'])} (seed {config.seed + 1})"
        return replace(sources, splits=splits, initial_index=initial, info=info)

    # -- checks ---------------------------------------------------------------------------------------------

    def check(self, config: DatasetConfig) -> CheckReport:
        """What is present, missing or malformed under the data root (no decoding, nothing written)."""
        report = CheckReport(self.name)
        try:
            options = self.options(config)
            root = self.root(config)
        except DatasetError as exc:
            report.bad("data root", "missing", str(exc))
            return report
        report.ok("data root", str(root))

        def rel(path: str | Path) -> str:
            return os.path.relpath(path, root) if str(path).startswith(str(root)) else str(path)

        try:
            files = self.annotation_files(root, options)
        except DatasetError as exc:
            report.bad("annotations", "missing", str(exc))
            return report
        for f in files:
            if f.exists():
                report.ok(rel(f), "present")
            else:
                report.bad(rel(f), "missing", f"missing {f}; obtain it from {self.hint}")
        if not report.usable:
            return report
        try:
            sources = self.parse(root, options)
        except DatasetError as exc:
            report.bad("annotations", "malformed", str(exc))
            return report
        for split_name, split in sources.splits.items():
            joints = int(split.visible.sum())
            report.info(f"{split_name} people", f"{len(split):,} ({joints:,} annotated joints)")
        if sources.initial_index is not None:
            report.info("fixed initial set", f"{len(sources.initial_index):,} samples")
        for key, value in sources.info.get("counts", {}).items():
            report.info(key, f"{value:,}" if isinstance(value, int) else str(value))
        if self.uses_images:
            paths = np.concatenate([s.image_paths for s in sources.splits.values()])
            bound = int(options.get("max_image_pixels") or MAX_IMAGE_PIXELS)
            found, missing, unreadable, oversized = survey_images(paths.tolist(), bound)
            total = found + len(missing)
            report.info("images expected", f"{total:,}")
            report.info("images found", f"{found:,}")
            if missing:
                listed = ", ".join(rel(p) for p in missing[:MAX_LISTED])
                report.bad("images", "missing", f"{len(missing)} of {total} images missing under {root} "
                           f"(first: {listed}); obtain them from {self.hint}")  # fmt: skip
            if unreadable:
                listed = ", ".join(rel(p) for p in unreadable[:MAX_LISTED])
                report.bad("images", "unreadable", f"{len(unreadable)} files are not readable images or are truncated "
                           f"(first: {listed}); replace them with the originals from {self.hint}")  # fmt: skip
            if oversized:
                report.bad("images", "too large", str(too_large(oversized[0], _size(oversized[0]), bound))
                           + (f" ({len(oversized)} such images)" if len(oversized) > 1 else ""))  # fmt: skip
        return report


def crop_split(source: SourceSplit, images: np.ndarray, resolution: int) -> PoseSplit:
    """The PoseSplit of cropped images: keypoints and normaliser mapped into the crops, unannotated joints at
    0."""
    boxes = source.boxes
    assert boxes is not None
    keypoints = to_crop(source.keypoints, boxes, resolution)
    keypoints[~source.visible] = 0.0
    return PoseSplit(
        images=images,
        keypoints=keypoints,
        visible=source.visible.astype(bool),
        normalizer=(source.normalizer * resolution / boxes[:, 2]).astype(np.float32),
    )


def _size(path: str) -> tuple[int, int]:
    """An image's (width, height) from its header."""
    from PIL import Image

    with Image.open(path) as image:
        return image.size
