"""The preprocessed-array cache of the real-data loaders: its key, its file, packing splits into it, reading it back.

A cache file is an uncompressed .npz written atomically (`alpose_bench.core.atomic`), keyed by the annotation files'
size and mtime, the options, the resolution and the subset asked for; an unreadable or outdated file is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from alpose_bench.core.atomic import write_atomic
from alpose_bench.pose.data import PoseSplit

CACHE_FORMAT = 1


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
    """Write an uncompressed .npz atomically (`alpose_bench.core.atomic.write_atomic`)."""
    write_atomic(path, lambda fh: np.savez(fh, **arrays))


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
