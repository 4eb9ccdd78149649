"""Dataset files: where the data root is, annotation files (MATLAB), and images (decoding, cropping, checking).

Geometry convention: keypoints are pixel centres at integer coordinates (0-based; pixel i covers [i - 0.5,
i + 0.5]). A crop window is a square of side ``side`` source pixels centred on the point ``(cx, cy)``; windows
reaching outside the image are zero padded (letterboxing).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from alpose_bench.pose.data import DatasetConfig, DatasetError, ProgressFn

ENV_DATA_ROOT = "ALPOSE_DATA_ROOT"
MAX_LISTED = 5  # how many bad entries a message or a check names


# -- data roots ----------------------------------------------------------------------------------------------


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


# -- annotation files ----------------------------------------------------------------------------------


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


#: the most pixels an image may have before it is decoded (a guard against decompression bombs and broken
#: headers); a dataset option (`max_image_pixels`) raises it for trusted data
MAX_IMAGE_PIXELS = 200_000_000


def too_large(path: str, size: tuple[int, int], bound: int) -> str | None:
    """Why an image of `size` is not decoded (None when it is within `bound` pixels)."""
    width, height = size
    if width * height <= bound:
        return None
    return (
        f"image {path} is {width:,} x {height:,} px ({width * height / 1e6:,.0f} M pixels), over the bound of "
        f"{bound / 1e6:,.0f} M pixels that guards against decompression bombs; if the file is yours, raise it "
        f"with --option max_image_pixels={width * height} (coco) or shrink the image"
    )


def open_rgb(
    path: str, min_side: float, resolution: int, max_pixels: int = MAX_IMAGE_PIXELS
) -> tuple[Any, float]:
    """Decode an image as RGB, JPEGs at the coarsest DCT scale (1/2, 1/4, 1/8) that keeps every crop >=
    resolution. An image over `max_pixels` is a DatasetError before anything is decoded."""
    from PIL import Image

    from alpose_bench.pose.data import DatasetError

    Image.MAX_IMAGE_PIXELS = None  # the bound is checked here, with a message that says what to do
    reduce = 1
    while reduce < 8 and min_side / (reduce * 2) >= resolution:
        reduce *= 2
    with Image.open(path) as source:
        width, height = source.size
        why = too_large(path, (width, height), max_pixels)
        if why:
            raise DatasetError(why)
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
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> np.ndarray:
    """(N, res, res, 3) uint8 crops of `boxes` from the images `paths` (each image decoded once, in threads)."""
    from PIL import Image

    unique, groups = _group_by(paths)

    def work(k: int) -> np.ndarray:
        rows = groups[k]
        image, scale = open_rgb(unique[k], float(boxes[rows, 2].min()), resolution, max_pixels)
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


def survey_images(
    paths: Iterable[str], max_pixels: int = MAX_IMAGE_PIXELS
) -> tuple[int, list[str], list[str], list[str]]:
    """(found, missing, unreadable, too large) over unique image paths; readability = a valid image header and,
    for JPEG and PNG, the format's closing marker or else a full decode (a truncated file is unreadable); too large
    = over `max_pixels` (`too_large`)."""
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = None  # the bound is checked here (`too_large`)
    unique = sorted(set(paths))
    missing = missing_files(unique)
    absent = set(missing)
    unreadable, oversized = [], []
    for path in unique:
        if path in absent:
            continue
        try:
            with Image.open(path) as image:
                if too_large(path, image.size, max_pixels):
                    oversized.append(path)
                    continue
                if cut_short(path, image.format):
                    image.load()  # no closing marker: decode to be sure (data may follow the marker)
        except (OSError, UnidentifiedImageError, SyntaxError):
            unreadable.append(path)
    return len(unique) - len(missing), missing, unreadable, oversized
