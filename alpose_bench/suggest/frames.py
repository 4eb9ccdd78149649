"""A project's frames as model input: each whole frame letterboxed (zero padding) into a square of `resolution` px.

Candidates have no box to crop to (finding one would need a detector), so labelled frames are letterboxed the same
way: the model trains on what it ranks. `to_source` maps predicted keypoints back to the frame's pixels.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from alpose_bench.core import activity
from alpose_bench.datasets.files import MAX_IMAGE_PIXELS, crop_window, open_rgb
from alpose_bench.datasets.geometry import to_crop
from alpose_bench.suggest.project import Frame


@dataclass(frozen=True)
class DecodedFrames:
    """images (N, res, res, 3) uint8 of the frames that could be read; boxes (N, 3) their letterbox windows
    (cx, cy, side) in frame pixels; kept (M,) the positions of those frames in the list given; failed: why
    each other frame could not be read (position -> reason)."""

    images: np.ndarray
    boxes: np.ndarray
    kept: np.ndarray
    failed: dict[int, str]


def letterbox(width: int, height: int) -> tuple[float, float, float]:
    """The square window (cx, cy, side) in pixel-centre coordinates that holds the whole frame, centred."""
    return ((width - 1) / 2, (height - 1) / 2, float(max(width, height)))


def _read_one(frame: Frame, labels: Any, resolution: int) -> tuple[np.ndarray, tuple[float, float, float]]:
    from PIL import Image

    bilinear = Image.Resampling.BILINEAR
    if frame.image is not None:
        with Image.open(frame.image) as probe:
            width, height = probe.size
        box = letterbox(width, height)
        image, scale = open_rgb(frame.image, box[2], resolution, MAX_IMAGE_PIXELS)
    else:
        pixels = np.asarray(labels.videos[frame.video][frame.index])
        if pixels.ndim == 3 and pixels.shape[-1] == 1:
            pixels = pixels[..., 0]
        image = Image.fromarray(pixels.astype(np.uint8)).convert("RGB")
        box, scale = letterbox(*image.size), 1.0
    return np.asarray(crop_window(image, box, scale, resolution, bilinear)), box


def read_frames(
    frames: list[Frame], labels: Any, resolution: int, what: str, workers: int = 0
) -> DecodedFrames:
    """Decode and letterbox `frames` (in threads: PIL releases the GIL). A frame that is missing or cannot be
    decoded is reported in `failed`, not raised: the caller decides (labelled: an error; candidates: skipped)."""
    out = np.zeros((len(frames), resolution, resolution, 3), dtype=np.uint8)
    boxes = np.zeros((len(frames), 3), dtype=np.float64)
    failed: dict[int, str] = {}

    def work(k: int) -> tuple[int, Any]:
        try:
            return k, _read_one(frames[k], labels, resolution)
        except FileNotFoundError:
            return k, "missing"
        except Exception as exc:  # noqa: BLE001 - any decoder error means: this frame cannot be read
            return k, f"unreadable ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"

    with activity.phase(f"reading {what}", total=len(frames), unit="frames"):
        with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
            for k, result in pool.map(work, range(len(frames))):
                if isinstance(result, str):
                    failed[k] = result
                else:
                    out[k], boxes[k] = result
                activity.advance(1)
    kept = np.array([k for k in range(len(frames)) if k not in failed], dtype=np.int64)
    return DecodedFrames(images=out[kept], boxes=boxes[kept], kept=kept, failed=failed)


def to_input(keypoints: np.ndarray, boxes: np.ndarray, resolution: int) -> np.ndarray:
    """(N, J, 2) frame pixels -> model-input pixels of the letterboxed frames."""
    return to_crop(keypoints, boxes, resolution)


def to_source(keypoints: np.ndarray, boxes: np.ndarray, resolution: int) -> np.ndarray:
    """(N, J, 2) model-input pixels -> frame pixels (the inverse of `to_input`)."""
    side = boxes[:, None, 2:3]
    return ((keypoints[..., :2] + 0.5) * (side / resolution) + boxes[:, None, :2] - side / 2).astype(
        np.float32
    )
