"""The peaks section: the shared batched peak finder against a scikit-image loop, on the same heatmaps."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from alpose_bench.tools.bench.common import BenchRun, _median, timed


#: peak-finder settings of the samplers that use it (reference values for 64x64 heatmaps)
def peak_configs() -> dict[str, tuple[int, int]]:
    """(num_peaks, min_distance) of the samplers that find peaks, from their own defaults (reference values for
    64x64 heatmaps, which is what this section draws)."""
    from alpose_bench.samplers.mpe import MultiPeakEntropy
    from alpose_bench.samplers.vl4pose import VL4Pose

    out = {}
    for cls in (MultiPeakEntropy, VL4Pose):
        params = cls.params()
        out[cls.name] = (int(params["num_peaks"]), int(params["min_distance"]))
    return out


def synthetic_heatmaps(maps: int, joints: int, size: int, seed: int = 0) -> Tensor:
    """(maps, joints, size, size) heatmaps like a pose model's: three Gaussian blobs (sigma 1.75 px, heights up to
    30, 15 and 8) at random places on low uniform noise (0-0.5), so every map has many small local maxima."""
    g = torch.Generator().manual_seed(seed)
    n = maps * joints
    centres = torch.rand(n, 3, 2, generator=g) * (size - 1)
    heights = torch.rand(n, 3, generator=g) * torch.tensor([30.0, 15.0, 8.0])
    axis = torch.arange(size, dtype=torch.float32)
    out = torch.rand(n, size, size, generator=g) * 0.5
    for b in range(3):  # three blobs, each vectorised over all maps
        dy = (axis[None, :] - centres[:, b, 1:2]) ** 2
        dx = (axis[None, :] - centres[:, b, 0:1]) ** 2
        out += heights[:, b, None, None] * torch.exp(-(dy[:, :, None] + dx[:, None, :]) / (2 * 1.75**2))
    return out.view(maps, joints, size, size)


def skimage_peaks(maps: np.ndarray, num_peaks: int, min_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference: skimage.feature.peak_local_max on each (h, w) map of (N, h, w), one call per map.

    Returns (coords (N, num_peaks, 2) int (row, col), -1 in empty slots; valid (N, num_peaks) bool)."""
    from skimage.feature import peak_local_max

    coords = np.full((len(maps), num_peaks, 2), -1, dtype=np.int64)
    for i, m in enumerate(maps):
        found = peak_local_max(m, min_distance=min_distance, num_peaks=num_peaks)
        coords[i, : len(found)] = found
    return coords, coords[..., 0] >= 0


def mismatched_maps(
    fp_coords: np.ndarray, fp_valid: np.ndarray, sk_coords: np.ndarray, sk_valid: np.ndarray
) -> np.ndarray:
    """Indices of the maps where find_peaks ((N, K, 2) (x, y), valid (N, K)) differs from skimage ((N, K, 2)
    (row, col), valid): another number of peaks, or another peak in any rank."""
    fp_rc = np.where(fp_valid[..., None], np.asarray(fp_coords)[..., ::-1].round().astype(np.int64), -1)
    sk_rc = np.where(sk_valid[..., None], sk_coords, -1)
    bad = (fp_valid != sk_valid).any(axis=1) | (fp_rc != sk_rc).any(axis=(1, 2))
    return np.flatnonzero(bad)


def run(bench: BenchRun) -> dict[str, Any]:
    """The shared find_peaks vs a skimage.feature.peak_local_max loop on the same heatmaps, per sampler setting.

    A map whose peaks differ from skimage's is a correctness problem (`bench.problems`)."""
    from alpose_bench.pose.peaks import find_peaks

    settings, device, progress = bench.settings, bench.device, bench.say

    try:
        import skimage

        have_skimage, version = True, skimage.__version__
    except ImportError:
        have_skimage, version = False, None
    hm = synthetic_heatmaps(settings.peak_maps, settings.peak_joints, settings.peak_size, settings.seed)
    flat = hm.reshape(-1, settings.peak_size, settings.peak_size).numpy()
    on_device = hm.to(device)
    rows, problems = [], []
    for name, (num_peaks, min_distance) in peak_configs().items():
        progress(f"peaks: {name} (num_peaks={num_peaks}, min_distance={min_distance})")
        find_peaks(on_device[:1], num_peaks, min_distance)  # warm-up
        fp_times, peaks = timed(lambda np_=num_peaks, md=min_distance: find_peaks(on_device, np_, md), device,
                                settings.repeats, settings.max_seconds)  # fmt: skip
        row: dict[str, Any] = {
            "config": name, "num_peaks": num_peaks, "min_distance": min_distance, "maps": len(flat),
            "find_peaks_s": _median(fp_times),
        }  # fmt: skip
        if not have_skimage:
            rows.append({**row, "skimage_s": None, "speedup": None, "same_peaks": None,
                         "note": "scikit-image is not installed (a dev extra: pip install -e '.[dev]')"})  # fmt: skip
            continue
        sk_times, (sk_coords, sk_valid) = timed(
            lambda np_=num_peaks, md=min_distance: skimage_peaks(flat, np_, md),
            torch.device("cpu"), settings.repeats, settings.max_seconds,
        )  # fmt: skip
        fp_coords = peaks.coords.reshape(len(flat), num_peaks, 2).cpu().numpy()
        fp_valid = peaks.valid.reshape(len(flat), num_peaks).cpu().numpy()
        bad = mismatched_maps(fp_coords, fp_valid, sk_coords, sk_valid)
        if len(bad):
            problems.append(
                f"find_peaks differs from skimage.feature.peak_local_max on {len(bad)} of {len(flat)} maps "
                f"({name}: num_peaks={num_peaks}, min_distance={min_distance}; first: map {int(bad[0])})"
            )
        rows.append({**row, "skimage_s": _median(sk_times), "speedup": _median(sk_times) / _median(fp_times),
                     "same_peaks": not len(bad), "mismatched_maps": len(bad)})  # fmt: skip
    bench.problems.extend(problems)
    return {"maps": settings.peak_maps, "joints": settings.peak_joints, "size": settings.peak_size,
            "scikit_image": version, "rows": rows}  # fmt: skip
