"""Frozen backbone outputs computed once per dataset and read back: what makes the pretrained family train on a CPU.

A frozen backbone maps an image to the same features in every cycle, seed, sampler and experiment, yet computing
them is ~90 % of a step. `build` runs it once over every image of a dataset's splits and over each image's mirror
(what flip augmentation shows the model), and writes one memory-mapped file: a row per image, its key (a hash of
the exact model input) and its four tapped feature maps in float16. A model with the cache attached
(`PretrainedPose.attach`) looks each input up by its key: every image of the dataset and its mirror is found, so
training (flips only), pool passes and evaluation never run the backbone; an input not in the file (a sampler's
own transform of an image, say) is computed as without a cache. Files are written atomically and never changed:
a different dataset, input size, weights or compute setting is another file. The whole file is never read into
memory; rows are read as they are looked up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from torch import Tensor

from alpose_bench.core.atomic import write_atomic

KEY_BYTES = 16
#: how a row's key is made from its input (part of the file's name: files keyed otherwise are other files). SHA-256,
#: not BLAKE2: every training step and pool pass hashes its inputs, and CPUs with SHA extensions hash 2.6x faster
KEY_SCHEME = "sha256-16"


def input_keys(x: Tensor) -> list[bytes]:
    """One key per image of a model input (B, C, H, W): a hash of its exact values (any memory format)."""
    values = x.detach().to("cpu", torch.float32).contiguous().numpy()
    return [hashlib.sha256(v.tobytes()).digest()[:KEY_BYTES] for v in values]


def images_digest(arrays: Sequence[np.ndarray]) -> str:
    """A hash of image arrays (shapes and bytes): the identity of the data a cache file was built from."""
    digest = hashlib.blake2b(digest_size=16)
    for a in arrays:
        digest.update(repr(a.shape).encode())
        digest.update(np.ascontiguousarray(a).data)
    return digest.hexdigest()


class FeatureCache:
    """The rows of one cache file: key -> tapped feature maps (`shapes`, one per tap)."""

    def __init__(self, path: Path, shapes: Sequence[tuple[int, int, int]]) -> None:
        self.path, self.shapes = path, [tuple(s) for s in shapes]
        self.rows = np.load(path, mmap_mode="r")
        self.index = {bytes(k): i for i, k in enumerate(np.asarray(self.rows["key"]))}
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self.rows)

    def __deepcopy__(self, memo: dict) -> FeatureCache:
        return self  # read-only and memory-mapped: a copied model shares it (a copy would read the file into memory)

    def find(self, x: Tensor) -> np.ndarray:
        """The row of each image of `x` (-1 where it is not in the file)."""
        found = np.array([self.index.get(k, -1) for k in input_keys(x)], dtype=np.int64)
        hit = int((found >= 0).sum())
        self.hits, self.misses = self.hits + hit, self.misses + len(found) - hit
        return found

    def taps(self, rows: np.ndarray, device: torch.device) -> list[Tensor]:
        """The feature maps of `rows` (float32, on `device`), one tensor per tap."""
        flat = torch.from_numpy(np.asarray(self.rows["taps"][rows]))
        out, start = [], 0
        for c, h, w in self.shapes:
            size = c * h * w
            out.append(flat[:, start : start + size].reshape(-1, c, h, w).to(device, torch.float32))
            start += size
        return out


def row_dtype(shapes: Sequence[tuple[int, int, int]]) -> np.dtype:
    """One file row: the key, then every tap flattened, float16."""
    width = sum(c * h * w for c, h, w in shapes)
    return np.dtype([("key", f"V{KEY_BYTES}"), ("taps", "<f2", (width,))])


def build(
    path: Path,
    batches: Callable[[], Iterator[Tensor]],
    count: int,
    backbone: Callable[[Tensor], list[Tensor]],
    shapes: Sequence[tuple[int, int, int]],
    autocast: Callable[[], object],
    advance: Callable[[int], None] = lambda n: None,
) -> Path:
    """Write the cache file at `path` atomically: for every model input of `batches()` (`count` images in all), its
    row and its mirror's. `backbone(x)` returns the tapped maps (in eval mode); it runs under `autocast()` without
    gradients."""
    dtype = row_dtype(shapes)

    def write(f: BinaryIO) -> None:
        np.lib.format.write_array_header_1_0(
            f, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (2 * count,)}
        )
        written = 0
        with torch.no_grad():
            for x in batches():
                for view in (x, torch.flip(x, dims=[3])):
                    with autocast():  # type: ignore[attr-defined]
                        taps = backbone(view)
                    rows = np.zeros(len(view), dtype=dtype)
                    rows["key"] = [np.void(k) for k in input_keys(view)]
                    rows["taps"] = torch.cat([t.float().flatten(1) for t in taps], dim=1).cpu().numpy()
                    f.write(rows.tobytes())
                    written += len(view)
                advance(len(x))
        if written != 2 * count:
            raise ValueError(f"feature cache: {written} rows written, {2 * count} announced")

    return write_atomic(path, write)
