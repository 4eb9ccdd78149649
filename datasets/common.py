"""Shared machinery of the real-data loaders: data roots, options, crops, decoding, the cache and checks.

Every loader follows one pipeline (`CachedDataset.prepare`):

1. find the annotation files under the data root (cheap; a missing file raises `DatasetError` naming it and
   where to obtain it),
2. look the preprocessed arrays up in the cache, keyed by the annotation files' size and mtime, the options,
   the resolution and the subset asked for; on a hit nothing else is read,
3. otherwise parse the annotations into `SourceSplit`s (source-image coordinates), take the subset, decode and
   crop the images once (threads, JPEG draft decoding), and write the cache atomically.

Geometry convention: keypoints are pixel centres at integer coordinates (0-based; pixel i covers [i - 0.5,
i + 0.5]). A crop window is a square of side ``side`` source pixels centred on the point ``(cx, cy)``; a source
point ``u`` maps to ``(u - cx + side / 2) * res / side - 0.5``, so the centre lands on the crop's centre
``res / 2 - 0.5``. Windows reaching outside the image are zero padded (letterboxing).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
import zipfile
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from alpose_bench.data import DatasetConfig, DatasetError, DatasetPlugin, PoseDataset, PoseSplit

ENV_DATA_ROOT = "ALPOSE_DATA_ROOT"
ProgressFn = Callable[[int, int], None]  # (done, total)
CACHE_FORMAT = 1
MAX_LISTED = 5  # how many bad entries a message or a check names


# -- data roots and options ----------------------------------------------------------------------------------


def shared_data_dir() -> Path | None:
    """The `shared/data` folder next to the repository checkout, if there is one (annotation files for CI)."""
    here = Path(__file__).resolve()
    for parent in here.parents[:4]:
        candidate = parent.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def data_root(
    config: DatasetConfig, name: str, expected: str, hint: str, shared_fallback: bool = False
) -> Path:
    """The data root: `config.data_root`, else $ALPOSE_DATA_ROOT, else (if allowed) the repo-adjacent
    shared/data."""
    if config.data_root is not None:
        root = Path(config.data_root).expanduser()
    elif os.environ.get(ENV_DATA_ROOT):
        root = Path(os.environ[ENV_DATA_ROOT]).expanduser()
    elif shared_fallback and shared_data_dir() is not None:
        root = shared_data_dir()  # type: ignore[assignment]
    else:
        raise DatasetError(
            f"dataset {name!r} needs a data root holding {expected}: pass --data-root DIR or set "
            f"{ENV_DATA_ROOT}; obtain the files from {hint}"
        )
    if not root.is_dir():
        raise DatasetError(
            f"data root {root} for dataset {name!r} is not a folder; it should hold {expected}"
        )
    return root


def dataset_dir(root: Path, sub: str, marker: str) -> Path:
    """`root/sub` if it exists, else `root` itself when it directly holds `marker` (e.g. joints.mat)."""
    if (root / sub).is_dir() or not (root / marker).exists():
        return root / sub
    return root


def require_files(paths: Iterable[Path], name: str, hint: str) -> None:
    """Raise DatasetError naming every missing file and where to obtain it."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise DatasetError(f"dataset {name!r}: missing {', '.join(missing)}; obtain it from {hint}")


def parse_options(name: str, given: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Fill defaults and coerce `given` to the defaults' types; unknown keys raise DatasetError listing valid
    ones."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        valid = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
        raise DatasetError(f"dataset {name!r} has no option {', '.join(unknown)}; its options are: {valid}")
    out = dict(defaults)
    for key, value in given.items():
        default = defaults[key]
        try:
            if isinstance(default, bool):
                if isinstance(value, str):
                    if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                        raise ValueError(value)
                    value = value.lower() in ("1", "true", "yes")
                out[key] = bool(value)
            elif isinstance(default, int) and not isinstance(default, bool):
                out[key] = int(value)
            elif isinstance(default, float):
                out[key] = float(value)
            else:
                out[key] = value if value is None else str(value)
        except (TypeError, ValueError):
            kind = type(default).__name__
            raise DatasetError(f"dataset {name!r}: option {key}={value!r} is not a valid {kind}") from None
    return out


def choice_option(name: str, key: str, value: str, allowed: tuple[str, ...]) -> str:
    """Check that a string option is one of `allowed`."""
    if value not in allowed:
        raise DatasetError(f"dataset {name!r}: option {key}={value!r} must be one of {', '.join(allowed)}")
    return value


def load_mat(path: Path, name: str, hint: str, **kwargs: Any) -> dict[str, Any]:
    """scipy.io.loadmat with a one-line DatasetError for unreadable, truncated or HDF5 (v7.3) files."""
    from scipy.io import loadmat

    try:
        return loadmat(str(path), **kwargs)
    except NotImplementedError:
        raise DatasetError(
            f"dataset {name!r}: {path} is a MATLAB v7.3 (HDF5) file, which is not supported; "
            f"save it as v7 or use the original release from {hint}"
        ) from None
    except Exception as exc:  # scipy raises ValueError, TypeError, OSError ... for broken files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatasetError(
            f"dataset {name!r}: cannot read {path} ({reason}); the file is corrupt or truncated, "
            f"obtain it again from {hint}"
        ) from None


def reject_nonfinite(values: np.ndarray, what: str, name: str, path: Path, axis: tuple[int, ...]) -> None:
    """Raise DatasetError naming the first entries (indices along the other axes) that hold NaN or inf."""
    bad = ~np.isfinite(values).all(axis=axis)
    if bad.any():
        idx = np.argwhere(bad)[:MAX_LISTED]
        listed = ", ".join("/".join(str(int(i)) for i in row) for row in idx)
        raise DatasetError(
            f"dataset {name!r}: {path} has NaN or infinite {what} at {int(bad.sum())} entries "
            f"(first: {listed}); the file is corrupt, replace it with the original release"
        )


# -- geometry ------------------------------------------------------------------------------------------------


def joint_boxes(keypoints: np.ndarray, visible: np.ndarray, scale: float) -> np.ndarray:
    """(N, 3) square crop boxes (cx, cy, side): centre of the tight box around the annotated joints, side =
    scale x its longer edge (the reference code's crop; 1.75 for evaluation). At least 8 px."""
    pts = np.where(visible[..., None], keypoints[..., :2], np.nan)
    lo = np.nanmin(pts, axis=1)
    hi = np.nanmax(pts, axis=1)
    centre = (lo + hi) / 2
    side = np.maximum(scale * np.max(hi - lo, axis=1), 8.0)
    return np.column_stack([centre, side]).astype(np.float64)


def tight_box_size(keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """(N,) longer edge of the tight box around each sample's annotated joints."""
    pts = np.where(visible[..., None], keypoints[..., :2], np.nan)
    return np.max(np.nanmax(pts, axis=1) - np.nanmin(pts, axis=1), axis=1)


def to_crop(points: np.ndarray, boxes: np.ndarray, resolution: int) -> np.ndarray:
    """Map (N, J, 2) source pixel coordinates into the (resolution x resolution) crops of `boxes` (cx, cy,
    side)."""
    side = boxes[:, None, 2:3]
    return ((points[..., :2] - boxes[:, None, :2] + side / 2) * (resolution / side) - 0.5).astype(np.float32)


def pair_distance(keypoints: np.ndarray, visible: np.ndarray, pairs: Iterable[tuple[int, int]]) -> np.ndarray:
    """(N,) max over `pairs` of the joint distance, counting only pairs with both joints annotated (NaN if
    none).

    With LSP's torso pairs this is the PCK torso size max(|lsho - rhip|, |rsho - lhip|)."""
    out = np.full(len(keypoints), np.nan)
    for a, b in pairs:
        d = np.linalg.norm(keypoints[:, a, :2] - keypoints[:, b, :2], axis=1)
        out = np.fmax(out, np.where(visible[:, a] & visible[:, b], d, np.nan))
    return out


def fill_estimates(norm: np.ndarray, size: np.ndarray, default_ratio: float) -> tuple[np.ndarray, int]:
    """Replace missing (NaN or <= 0) normalisers by `size` x the median norm/size ratio of the rows that have
    one (`default_ratio` if none does). Returns the filled array and how many rows were estimated."""
    norm = np.asarray(norm, dtype=np.float64).copy()
    missing = ~(np.isfinite(norm) & (norm > 0))
    if missing.any():
        ok = ~missing & np.isfinite(size) & (size > 0)
        ratio = float(np.median(norm[ok] / size[ok])) if ok.any() else default_ratio
        norm[missing] = ratio * size[missing]
    return norm, int(missing.sum())


# -- images --------------------------------------------------------------------------------------------------


def crop_window(
    image: Any, box: tuple[float, float, float], scale: float, resolution: int, resample: int
) -> Any:
    """Crop the square window `box` (cx, cy, side in source px) out of a PIL image decoded at `scale` pixels
    per source pixel (1 unless draft-decoded), zero padding outside, resized to `resolution` x `resolution`."""
    # (cx, cy) are pixel-centre coordinates; PIL boxes are in edge coordinates (pixel i spans i .. i + 1)
    cx, cy, side = box
    x0, y0 = (cx + 0.5 - side / 2) * scale, (cy + 0.5 - side / 2) * scale
    x1, y1 = x0 + side * scale, y0 + side * scale
    ex0, ey0 = math.floor(x0), math.floor(y0)
    patch = image.crop((ex0, ey0, max(math.ceil(x1), ex0 + 1), max(math.ceil(y1), ey0 + 1)))
    return patch.resize((resolution, resolution), resample, box=(x0 - ex0, y0 - ey0, x1 - ex0, y1 - ey0))


def _open_rgb(path: str, min_side: float, resolution: int) -> tuple[Any, float]:
    """Decode an image as RGB, JPEGs at the coarsest DCT scale (1/2, 1/4, 1/8) that keeps every crop >=
    resolution."""
    from PIL import Image

    reduce = 1
    while reduce < 8 and min_side / (reduce * 2) >= resolution:
        reduce *= 2
    with Image.open(path) as source:
        width, height = source.size
        if reduce > 1 and source.format == "JPEG":
            source.draft("RGB", (math.ceil(width / reduce), math.ceil(height / reduce)))
        image = source.convert("RGB")
    return image, 1.0 / max(1, round(width / image.size[0]))


def _group_by(values: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    unique, inverse = np.unique(values, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse, minlength=len(unique))
    return unique, np.split(order, np.cumsum(counts)[:-1])


def missing_files(paths: Iterable[str]) -> list[str]:
    """The paths that are not regular files."""
    return [p for p in paths if not os.path.isfile(p)]


def map_images(
    name: str,
    paths: np.ndarray,
    work: Callable[[int], Any],
    hint: str,
    progress: ProgressFn | None = None,
    workers: int = 0,
) -> Iterator[tuple[int, Any]]:
    """Yield (k, work(k)) for every k in range(len(paths)), in order, computed in threads (PIL releases the GIL).

    All missing files are reported first, in one DatasetError, before anything is decoded; a file that cannot be
    decoded raises a DatasetError naming it. `progress(done, total)` is called as results arrive."""
    missing = missing_files(paths)
    if missing:
        listed = ", ".join(missing[:MAX_LISTED])
        raise DatasetError(
            f"dataset {name!r}: {len(missing)} of {len(paths)} images are missing (first: {listed}); "
            f"obtain the images from {hint}"
        )

    def guarded(k: int) -> tuple[int, Any]:
        try:
            return k, work(k)
        except (OSError, ValueError, SyntaxError) as exc:
            raise DatasetError(
                f"dataset {name!r}: cannot decode image {paths[k]} ({str(exc).splitlines()[0]}); "
                f"replace it with the original from {hint}"
            ) from None

    pool = ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1))
    try:
        for done, item in enumerate(pool.map(guarded, range(len(paths))), start=1):
            if progress is not None:
                progress(done, len(paths))
            yield item
    finally:  # on an error, do not decode the rest
        pool.shutdown(wait=True, cancel_futures=True)


def decode_crops(
    name: str,
    paths: np.ndarray,
    boxes: np.ndarray,
    resolution: int,
    hint: str,
    progress: ProgressFn | None = None,
    workers: int = 0,
) -> np.ndarray:
    """(N, res, res, 3) uint8 crops of `boxes` from the images `paths` (each image decoded once, in threads)."""
    from PIL import Image

    unique, groups = _group_by(paths)

    def work(k: int) -> np.ndarray:
        rows = groups[k]
        image, scale = _open_rgb(unique[k], float(boxes[rows, 2].min()), resolution)
        bilinear = Image.Resampling.BILINEAR
        return np.stack(
            [np.asarray(crop_window(image, tuple(boxes[r]), scale, resolution, bilinear)) for r in rows]
        )

    out = np.zeros((len(paths), resolution, resolution, 3), dtype=np.uint8)
    for k, crops in map_images(name, unique, work, hint, progress, workers):
        out[groups[k]] = crops
    return out


#: the bytes that close a complete file of each format (JPEG end-of-image marker, PNG IEND chunk)
END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}


def cut_short(path: str, image_format: str | None) -> bool:
    """True when a JPEG or PNG lacks its closing marker in its last KiB: the file was truncated (a cheap check that
    decodes nothing; a JPEG's compressed data never holds the end-of-image marker)."""
    marker = END_MARKERS.get(image_format or "")
    if marker is None:
        return False
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - 1024))
        return marker not in fh.read()


def survey_images(paths: Iterable[str]) -> tuple[int, list[str], list[str]]:
    """(found, missing, unreadable) over unique image paths; readability = a valid image header and, for JPEG and
    PNG, the format's closing marker or else a full decode (a truncated file is unreadable)."""
    from PIL import Image, UnidentifiedImageError

    unique = sorted(set(paths))
    missing = missing_files(unique)
    absent = set(missing)
    unreadable = []
    for path in unique:
        if path in absent:
            continue
        try:
            with Image.open(path) as image:
                if cut_short(path, image.format):
                    image.load()  # no closing marker: decode to be sure (data may follow the marker)
        except (OSError, UnidentifiedImageError, SyntaxError):
            unreadable.append(path)
    return len(unique) - len(missing), missing, unreadable


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


# -- the cache -----------------------------------------------------------------------------------------------


def fingerprint(paths: Iterable[Path]) -> list[list[Any]]:
    """(path, size, mtime_ns) of each file: a changed annotation file gives a new cache key."""
    out = []
    for p in paths:
        st = p.stat()
        out.append([str(p.resolve()), st.st_size, st.st_mtime_ns])
    return out


def cache_file(cache_dir: Path, name: str, key: Mapping[str, Any]) -> Path:
    """`<cache_dir>/<name>/<name>-r<res>-<hash>.npz` for the JSON-serialisable `key`."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(cache_dir) / name / f"{name}-r{key.get('resolution', 'x')}-{digest}.npz"


def save_arrays(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write an uncompressed .npz atomically (temporary file in the same folder, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a shared cache folder must stay readable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_arrays(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file, or None when it is absent or unreadable (it is then rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None
    return arrays if int(arrays.get("format", -1)) == CACHE_FORMAT else None


SPLIT_FIELDS = ("images", "keypoints", "visible", "normalizer")


def pack(splits: Mapping[str, PoseSplit], initial: np.ndarray | None, info: Mapping[str, Any]) -> dict:
    """The cache arrays of a dataset: `<split>__<field>`, the initial index and the info as JSON."""
    arrays: dict[str, np.ndarray] = {"format": np.array(CACHE_FORMAT), "info": np.array(json.dumps(info))}
    for split_name, split in splits.items():
        for f in SPLIT_FIELDS:
            arrays[f"{split_name}__{f}"] = getattr(split, f)
    if initial is not None:
        arrays["initial_index"] = np.asarray(initial, dtype=np.int64)
    return arrays


def unpack(arrays: Mapping[str, np.ndarray]) -> tuple[dict[str, PoseSplit], np.ndarray | None, dict]:
    """Inverse of `pack`."""
    names = sorted({k.split("__")[0] for k in arrays if "__" in k})
    splits = {n: PoseSplit(**{f: arrays[f"{n}__{f}"] for f in SPLIT_FIELDS}) for n in names}
    return splits, arrays.get("initial_index"), json.loads(str(arrays["info"]))


# -- checks --------------------------------------------------------------------------------------------------


@dataclass
class CheckReport:
    """What `alpose-bench data check` prints: rows (item, status, detail); usable when nothing is wrong."""

    dataset: str
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return not self.problems

    @property
    def reason(self) -> str:
        return self.problems[0] if self.problems else ""

    def ok(self, item: str, detail: str = "") -> None:
        self.rows.append((item, "ok", detail))

    def info(self, item: str, detail: str) -> None:
        self.rows.append((item, "info", detail))

    def bad(self, item: str, status: str, detail: str) -> None:
        self.rows.append((item, status, detail))
        self.problems.append(detail if detail else f"{item}: {status}")


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

    Subclasses set `hint` (where to obtain the files), `expected` (the layout, one phrase), `option_defaults`,
    and implement `annotation_files` and `parse`; image datasets inherit `materialise` (crop and decode)."""

    needs_data_root = True
    hint: ClassVar[str] = ""
    expected: ClassVar[str] = ""
    option_defaults: ClassVar[dict[str, Any]] = {}
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
            self.name, paths, boxes, res, self.hint, progress, int(options.get("workers", 0))
        )
        out, start = {}, 0
        for split_name, s in sources.splits.items():
            stop = start + len(s)
            out[split_name] = crop_split(s, images[start:stop], res)
            start = stop
        return out

    def extra_key(self) -> dict[str, Any]:
        """What besides the annotation files invalidates the cache when it changes (e.g. renderer code)."""
        return {}

    # -- the pipeline ---------------------------------------------------------------------------------------

    def options(self, config: DatasetConfig) -> dict[str, Any]:
        """`config.options` checked against and completed with `option_defaults`."""
        return parse_options(self.name, config.options or {}, self.option_defaults)

    def root(self, config: DatasetConfig) -> Path:
        """The data root of `config` (see `data_root`)."""
        return data_root(config, self.name, self.expected, self.hint, self.shared_fallback)

    def cache_path(self, config: DatasetConfig) -> Path:
        """Where `prepare` keeps this configuration's arrays (raises DatasetError when files are missing)."""
        from alpose_bench.data import default_cache_dir

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
            splits = self.materialise(sources, config, options, progress)
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
        info = {**info, "cache_file": str(path)}
        return self.assemble(splits, sources.initial_index, info)

    def assemble(self, splits: dict[str, PoseSplit], initial: np.ndarray | None, info: dict) -> PoseDataset:
        """The PoseDataset of the built splits (subclasses add cube_mm or a per-file skeleton)."""
        return PoseDataset(
            name=self.name,
            task=self.task,
            skeleton=self.skeleton,
            metric=self.metric,
            train=splits["train"],
            test=splits["test"],
            initial_index=initial,
            info=info,
        )

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
            found, missing, unreadable = survey_images(paths.tolist())
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
