"""Local maxima of whole batches of heatmaps: one vectorised peak finder shared by MPE, VL4Pose and refinement.

`find_peaks` reproduces ``skimage.feature.peak_local_max(h, min_distance, threshold_abs, exclude_border,
num_peaks)`` on every (B, J) heatmap at once, in torch (CPU or GPU):

1. a pixel is a candidate when it equals the maximum of its (2 * min_distance + 1)^2 window (pixels outside the
   map do not count, like scipy's ``mode="nearest"``), lies above the threshold (strictly; default: the map's
   minimum) and outside the excluded border; a map whose every pixel is a window maximum (a constant map) has none;
2. candidates are ranked by value, ties by row-major position (numpy's stable sort);
3. greedy suppression: walking down that ranking, a candidate is dropped when it lies at Chebyshev distance
   < min_distance from an already kept one (only equal-valued plateau pixels can be that close);
4. the first `num_peaks` kept candidates are returned.

The fast path ranks only the top few candidates per map (one `topk`) and checks that they suffice; maps with
large plateaus fall back to an exact iterative pass (`max` + box suppression), so results never depend on the path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

#: heatmap size the reference hyper-parameters (min_distance, exclude_border) were chosen for
REFERENCE_HEATMAP_SIZE = 64
_CHUNK_ELEMENTS = 1 << 20  # pixels per chunk of maps (~4 MB of float32), so that a chunk stays in cache
# candidates ranked on the fast path: num_peaks plus a few, at least 8 (torch's CPU topk is about twice as fast for
# k <= 8 as above it; the exactness check falls back to the exact path in the rare maps where they do not suffice)
_EXTRA_CANDIDATES = 3
_MIN_CANDIDATES = 8


@dataclass
class Peaks:
    """Up to K local maxima per joint heatmap, highest first.

    coords  (B, J, K, 2) float (x, y) in heatmap pixels (column, row).
    values  (B, J, K) heatmap value at each peak.
    valid   (B, J, K) bool; False for empty slots when a map has fewer than K peaks (their coords and values are 0).
    """

    coords: Tensor
    values: Tensor
    valid: Tensor

    @property
    def num_peaks(self) -> int:
        return int(self.values.shape[-1])


def scaled_distance(distance: int, heatmap_size: int, reference_size: int = REFERENCE_HEATMAP_SIZE) -> int:
    """A pixel distance chosen for `reference_size` heatmaps rescaled to `heatmap_size`, rounded, at least 1.

    The reference hyper-parameters (MPE min_distance 5, VL4Pose 8) are for 64x64 heatmaps; on the quick preset's
    16x16 maps the same physical spacing is 5 * 16 / 64 -> 1 and 8 * 16 / 64 = 2 pixels.
    """
    if distance < 0 or heatmap_size < 1:
        raise ValueError(f"need distance >= 0 and heatmap_size >= 1, got {distance} and {heatmap_size}")
    return max(1, math.floor(distance * heatmap_size / reference_size + 0.5))


def _window_max_valid(x: Tensor, radius: int) -> Tensor:
    """Max over the (2r+1)^2 window of every pixel of (N, H, W) that has a full window: (N, H - 2r, W - 2r).

    Separable, and each 1-D pass doubles the covered span (about log2(2r+1) elementwise maxima per axis).
    """
    size = 2 * radius + 1
    for dim in (2, 1):
        span = 1
        while span < size:
            step = min(span, size - span)
            n = x.shape[dim] - step
            x = torch.maximum(x.narrow(dim, 0, n), x.narrow(dim, step, n))
            span += step
    return x


def _candidate_scores(x: Tensor, min_distance: int, border: int, threshold_abs: float | None) -> Tensor:
    """(N, h, w) heatmaps -> (N, h - 2 border, w - 2 border): the value where the pixel is a peak candidate, -inf
    elsewhere, over the pixels outside the excluded border only.

    A candidate equals its window maximum and exceeds the threshold: x >= max(window max, next float above the
    threshold). Every pixel of a map equals its window maximum only when the map is constant (windows of adjacent
    pixels overlap), which is skimage's "trivial image" with no peaks.
    """
    n, h, w = x.shape
    r = min_distance
    if 2 * border >= h or 2 * border >= w:
        return x.new_full((n, max(0, h - 2 * border), max(0, w - 2 * border)), float("-inf"))
    # the window of a pixel outside the border reaches r - border pixels beyond the map: pad only that much
    pad = max(0, r - border)
    lo = border - r + pad
    src = x[:, lo : h - lo, lo : w - lo]
    if pad:
        src = F.pad(src, (pad, pad, pad, pad), value=float("-inf"))
    wmax = _window_max_valid(src, r)
    roi = x[:, border : h - border, border : w - border]
    lowest = x.flatten(1).amin(dim=1)
    if threshold_abs is None:
        threshold = lowest
    else:
        threshold = torch.full_like(lowest, threshold_abs)
        # a constant map has no peaks (but skimage keeps a 1-pixel map that is above the threshold)
        if h * w > 1:
            constant = x.flatten(1).amax(dim=1) == lowest
            threshold = torch.where(constant, torch.full_like(lowest, float("inf")), threshold)
    above = torch.nextafter(threshold, torch.full_like(threshold, float("inf")))
    bound = torch.maximum(wmax, above.view(n, 1, 1))
    return roi.masked_fill(~(roi >= bound), float("-inf"))  # NaN is never a candidate


def _rank_top_candidates(
    vals: Tensor, idx: Tensor, num_candidates: int, width: int, num_peaks: int, min_distance: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Fast path: greedy suppression over each map's top M candidates (from `topk`), and whether M sufficed.

    vals, idx (N, M): the top M scores and their flat indices (any order among ties); `num_candidates` is the
    number of pixels each map had. Returns flat index (N, K), value (N, K), valid (N, K), exact (N,).
    """
    m = vals.shape[1]
    # rank by (value descending, flat index ascending) as numpy's stable argsort of -value does
    idx, order = idx.sort(dim=1)
    vals = vals.gather(1, order)
    vals, order = vals.sort(dim=1, descending=True, stable=True)
    idx = idx.gather(1, order)
    finite = vals > float("-inf")
    y, x = idx // width, idx % width
    close = torch.maximum((y[:, :, None] - y[:, None, :]).abs(), (x[:, :, None] - x[:, None, :]).abs())
    close = close < min_distance  # (N, M, M)
    kept = torch.zeros_like(finite)
    for i in range(m):
        suppressed = (kept[:, :i] & close[:, :i, i]).any(dim=1)
        kept[:, i] = finite[:, i] & ~suppressed
    # exact when every candidate was ranked (the M-th is -inf or M covers the map) or when K candidates strictly
    # above the M-th value were kept: nothing outside the top M can precede them
    last = vals[:, -1]
    if m == num_candidates:
        exact = torch.ones_like(last, dtype=torch.bool)
    else:
        exact = (last == float("-inf")) | ((kept & (vals > last[:, None])).sum(dim=1) >= num_peaks)
    # the first K kept candidates, in ranking order
    positions = torch.arange(m, device=vals.device).expand_as(vals)
    rank = torch.where(kept, positions, positions + m).argsort(dim=1)[:, :num_peaks]
    out_idx, out_val, out_valid = idx.gather(1, rank), vals.gather(1, rank), kept.gather(1, rank)
    if m < num_peaks:  # the map has fewer pixels than num_peaks
        pad = num_peaks - m
        out_idx = F.pad(out_idx, (0, pad))
        out_val = F.pad(out_val, (0, pad), value=float("-inf"))
        out_valid = F.pad(out_valid, (0, pad), value=False)
    return out_idx, out_val, out_valid, exact


def _greedy_exact(
    scores: Tensor, height: int, width: int, num_peaks: int, min_distance: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Exact path: K rounds of (first maximum, blank its Chebyshev box of radius min_distance - 1)."""
    n = scores.shape[0]
    r = min_distance - 1
    padded = F.pad(scores.view(n, height, width), (r, r, r, r), value=float("-inf")).flatten(1)
    wp = width + 2 * r
    offsets = torch.arange(-r, r + 1, device=scores.device)
    box = (offsets[:, None] * wp + offsets[None, :]).flatten()
    centre = r * wp + r  # an inside position for maps that have run out of candidates
    rows = torch.arange(n, device=scores.device)[:, None]
    idx, val, valid = [], [], []
    for _ in range(num_peaks):
        v, i = padded.max(dim=1)  # first occurrence among ties = row-major order
        ok = v > float("-inf")
        i = torch.where(ok, i, torch.full_like(i, centre))
        padded[rows, i[:, None] + box[None, :]] = float("-inf")
        yy, xx = i // wp - r, i % wp - r
        idx.append(yy * width + xx)
        val.append(v)
        valid.append(ok)
    return torch.stack(idx, 1), torch.stack(val, 1), torch.stack(valid, 1)


def _single_peak_fast(
    x: Tensor, min_distance: int, border: int, threshold_abs: float | None, hr: int, wr: int
) -> tuple[Tensor, Tensor, Tensor]:
    """The one peak of each (N, h, w) map without a window maximum over every pixel: the first maximum of the
    region outside the border (row-major, as torch's max returns it) is the answer when it is above the threshold
    and the maximum of its own window (which may reach into the border or out of the map): it is then the first
    candidate of the highest value. Returns flat index into the region, value, and decided (N,) bool: the maps
    where a condition fails (a tie at a later pixel may then be the answer) are left to the exact path."""
    n, h, w = x.shape
    r = min_distance
    region = x[:, border : border + hr, border : border + wr].reshape(n, hr * wr)
    v, i = region.max(dim=1)
    yy, xx = i // wr + border, i % wr + border  # the maximum in map coordinates
    offsets = torch.arange(-r, r + 1, device=x.device)
    wy = (yy[:, None] + offsets).clamp(
        0, h - 1
    )  # pixels outside the map do not count (clamped repeats are inside)
    wx = (xx[:, None] + offsets).clamp(0, w - 1)
    window = x.gather(1, wy[:, :, None].expand(n, 2 * r + 1, w)).gather(
        2, wx[:, None, :].expand(n, 2 * r + 1, 2 * r + 1)
    )
    is_window_max = window.flatten(1).amax(dim=1) <= v
    lowest = x.flatten(1).amin(dim=1)
    threshold = lowest if threshold_abs is None else torch.full_like(lowest, threshold_abs)
    above = v > threshold
    if threshold_abs is not None and h * w > 1:
        above &= x.flatten(1).amax(dim=1) > lowest  # a constant map has no peaks
    return i, v, is_window_max & above


def _find_in_region(
    x: Tensor, num_peaks: int, min_distance: int, border: int, threshold_abs: float | None, hr: int, wr: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Peaks of (N, h, w) maps as flat indices into the (hr, wr) region outside the border, values, valid."""
    n = x.shape[0]
    chunk = max(1, _CHUNK_ELEMENTS // max(1, x.shape[1] * x.shape[2]))
    m = min(hr * wr, max(_MIN_CANDIDATES, num_peaks + _EXTRA_CANDIDATES))

    def scores_of(rows: slice | Tensor) -> Tensor:
        return _candidate_scores(x[rows], min_distance, border, threshold_abs).flatten(1)

    if num_peaks == 1:  # the first maximum (row-major among ties) is the answer: no suppression to do
        i, v, ok = _single_peak_fast(x, min_distance, border, threshold_abs, hr, wr)
        redo = (~ok).nonzero().squeeze(1)
        for s in range(0, len(redo), chunk):
            part = redo[s : s + chunk]
            best = scores_of(part).max(dim=1)
            i[part], v[part] = best.indices, best.values
        return i[:, None], v[:, None], (v > float("-inf"))[:, None]
    tops = [scores_of(slice(s, s + chunk)).topk(m, dim=1) for s in range(0, n, chunk)]
    vals = torch.cat([t.values for t in tops])
    idx = torch.cat([t.indices for t in tops])
    i, v, ok, exact = _rank_top_candidates(vals, idx, hr * wr, wr, num_peaks, min_distance)
    if not bool(exact.all()):  # plateaus wider than the ranked candidates: redo those maps exactly
        redo = (~exact).nonzero().squeeze(1)
        for s in range(0, len(redo), chunk):
            part = redo[s : s + chunk]
            i[part], v[part], ok[part] = _greedy_exact(scores_of(part), hr, wr, num_peaks, min_distance)
    return i, v, ok


def find_peaks(
    heatmaps: Tensor,
    num_peaks: int,
    min_distance: int,
    exclude_border: bool | int = True,
    threshold_abs: float | None = None,
) -> Peaks:
    """Up to `num_peaks` local maxima of every heatmap of a (B, J, h, w) batch, as skimage's peak_local_max.

    exclude_border: True -> a border of `min_distance` pixels, False/0 -> none, an int -> that many pixels.
    threshold_abs: peaks must be strictly above it; None -> above the map's minimum.
    Runs on the heatmaps' device, chunked so that memory stays bounded for any pool size.
    """
    if not isinstance(heatmaps, Tensor) or heatmaps.ndim != 4:
        shape = tuple(heatmaps.shape) if isinstance(heatmaps, Tensor) else type(heatmaps).__name__
        raise ValueError(f"find_peaks needs heatmaps of shape (B, J, h, w), got {shape}")
    if isinstance(num_peaks, bool) or not isinstance(num_peaks, int) or num_peaks < 1:
        raise ValueError(f"num_peaks must be an integer >= 1, got {num_peaks!r}")
    if isinstance(min_distance, bool) or not isinstance(min_distance, int) or min_distance < 1:
        raise ValueError(f"min_distance must be an integer >= 1, got {min_distance!r}")
    if isinstance(exclude_border, bool):
        border = min_distance if exclude_border else 0
    elif isinstance(exclude_border, int) and exclude_border >= 0:
        border = exclude_border
    else:
        raise ValueError(f"exclude_border must be a bool or an integer >= 0, got {exclude_border!r}")
    b, j, h, w = heatmaps.shape
    x = heatmaps.detach()
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()  # exact for integers up to 2^24 and for half / bfloat16
    x = x.contiguous().reshape(b * j, h, w)  # channels_last heatmaps: one copy into map-major order
    n = b * j
    rows = cols = torch.zeros(n, num_peaks, dtype=torch.long, device=x.device)
    values = torch.zeros(n, num_peaks, dtype=x.dtype, device=x.device)
    valid = torch.zeros(n, num_peaks, dtype=torch.bool, device=x.device)
    hr, wr = h - 2 * border, w - 2 * border  # the region outside the excluded border
    if hr > 0 and wr > 0 and n > 0:
        i, v, ok = _find_in_region(x, num_peaks, min_distance, border, threshold_abs, hr, wr)
        zero = torch.zeros_like(i)
        rows = torch.where(ok, i // wr + border, zero)
        cols = torch.where(ok, i % wr + border, zero)
        values = torch.where(ok, v, torch.zeros_like(v))
        valid = ok
    coords = torch.stack([cols, rows], dim=-1).to(x.dtype)
    return Peaks(
        coords=coords.view(b, j, num_peaks, 2),
        values=values.view(b, j, num_peaks),
        valid=valid.view(b, j, num_peaks),
    )


def peak_probabilities(peaks: Peaks) -> Tensor:
    """Softmax of each joint's peak values over its valid peaks, (B, J, K); 0 on empty slots and empty joints."""
    logits = torch.where(peaks.valid, peaks.values, torch.full_like(peaks.values, float("-inf")))
    probs = torch.softmax(logits, dim=-1)
    return torch.where(peaks.valid, probs, torch.zeros_like(probs))


def with_argmax_fallback(peaks: Peaks, heatmaps: Tensor) -> Peaks:
    """Peaks where every joint without a local maximum gets its heatmap's argmax as its single peak.

    The reference code indexes the first peak unconditionally and would crash on an empty list (e.g. a maximum
    inside the excluded border, or a constant map); the argmax is the keypoint the pose model predicts there.
    """
    empty = ~peaks.valid.any(dim=-1)  # (B, J)
    if not bool(empty.any()):
        return peaks
    b, j, h, w = heatmaps.shape
    which = empty.reshape(-1).nonzero().squeeze(1)  # only the empty joints' maps are searched
    v, i = heatmaps.detach().reshape(b * j, h * w)[which].max(dim=-1)
    xy = torch.stack([i % w, i // w], dim=-1).to(peaks.coords.dtype)
    coords, values, valid = peaks.coords.clone(), peaks.values.clone(), peaks.valid.clone()
    coords.view(b * j, -1, 2)[which, 0] = xy
    values.view(b * j, -1)[which, 0] = v.to(values.dtype)
    valid.view(b * j, -1)[which, 0] = True
    return Peaks(coords=coords, values=values, valid=valid)
