"""find_peaks against scikit-image's peak_local_max, crafted heatmaps, and the peak helpers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from skimage.feature import peak_local_max

import alpose_bench.pose.peaks as peaks_module
from alpose_bench.pose.peaks import (
    Peaks,
    find_peaks,
    peak_probabilities,
    scaled_distance,
    with_argmax_fallback,
)

torch.set_num_threads(1)


def skimage_peaks(h: np.ndarray, k: int, md: int, border, threshold) -> np.ndarray:
    """peak_local_max as (x, y) rows, highest first."""
    rc = peak_local_max(h, min_distance=md, num_peaks=k, exclude_border=border, threshold_abs=threshold)
    return rc[:, ::-1].astype(np.float32).reshape(-1, 2)


def assert_matches_skimage(maps: np.ndarray, k: int, md: int, border=True, threshold=None) -> None:
    got = find_peaks(torch.from_numpy(maps), k, md, exclude_border=border, threshold_abs=threshold)
    assert got.coords.shape == (*maps.shape[:2], k, 2)
    for b, j in itertools.product(range(maps.shape[0]), range(maps.shape[1])):
        want = skimage_peaks(maps[b, j], k, md, border, threshold)
        n = len(want)
        valid = got.valid[b, j].numpy()
        assert valid.tolist() == [True] * n + [False] * (k - n), (b, j, want)
        np.testing.assert_array_equal(got.coords[b, j, :n].numpy(), want)
        rows, cols = want[:, 1].astype(int), want[:, 0].astype(int)
        np.testing.assert_array_equal(got.values[b, j, :n].numpy(), maps[b, j][rows, cols])
        assert (got.coords[b, j, n:] == 0).all() and (got.values[b, j, n:] == 0).all()


@pytest.mark.parametrize("kind", ["normal", "plateaus", "rounded"])
@pytest.mark.parametrize("k,md", [(1, 1), (1, 3), (2, 2), (5, 1), (5, 2), (5, 5)])
def test_matches_skimage_on_random_maps(kind: str, k: int, md: int) -> None:
    rng = np.random.default_rng([k, md, len(kind)])
    shape = (2, 3, 13, 17)
    if kind == "normal":
        maps = rng.normal(size=shape)
    elif kind == "plateaus":  # few distinct values: ties and plateaus everywhere
        maps = rng.integers(0, 3, size=shape)
    else:
        maps = np.round(rng.normal(size=shape), 1)
    maps = maps.astype(np.float32)
    for border, threshold in itertools.product([True, False, 0, 1, 4], [None, 0.5]):
        assert_matches_skimage(maps, k, md, border, threshold)


def test_exact_fallback_path_matches_skimage(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no spare candidates on the fast path, plateau maps take the exact iterative path."""
    monkeypatch.setattr(peaks_module, "_EXTRA_CANDIDATES", 0)
    monkeypatch.setattr(peaks_module, "_MIN_CANDIDATES", 0)
    calls = []
    original = peaks_module._greedy_exact
    monkeypatch.setattr(peaks_module, "_greedy_exact", lambda *a: calls.append(1) or original(*a))
    maps = np.random.default_rng(5).integers(0, 2, size=(3, 4, 12, 12)).astype(np.float32)
    for md in (1, 2, 3):
        assert_matches_skimage(maps, 4, md, border=False)
    assert calls, "the exact path was not exercised"


def test_a_single_peak_is_decided_without_a_window_maximum_where_it_can_be() -> None:
    """num_peaks = 1: the region's first maximum is the answer when it is above the threshold and the maximum of
    its window; elsewhere (a larger value in the border within its window) the exact path decides."""
    rng = np.random.default_rng(11)
    x = torch.from_numpy(rng.normal(size=(40, 16, 16)).astype(np.float32))
    x[0, 1, 5] = 50.0  # in the border, next to the region: the region's maximum beside it is no peak
    x[0, 3, 6] = 40.0
    x[1, 2, 5] = x[1, 9, 12] = 60.0  # a tie whose first pixel has a larger border value in its window:
    x[1, 1, 5] = 70.0  # the answer is the later pixel, found by the exact path
    x[2, 8, 8] = x[2, 9, 12] = 60.0  # a tie whose first pixel is a peak: that is the answer
    _, _, decided = peaks_module._single_peak_fast(x, 2, 2, None, 12, 12)
    assert not decided[0] and not decided[1] and decided[2] and decided[3:].float().mean() > 0.5
    assert_matches_skimage(x.numpy()[:, None], 1, 2, 2, None)


def test_smooth_heatmaps_of_several_gaussians_match_skimage() -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32]
    maps = np.zeros((4, 5, 32, 32), dtype=np.float32)
    for _ in range(4):
        cx, cy, a = (
            rng.uniform(0, 32, (4, 5, 1, 1)),
            rng.uniform(0, 32, (4, 5, 1, 1)),
            rng.uniform(1, 30, (4, 5, 1, 1)),
        )
        maps += (a * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 1.75**2))).astype(np.float32)
    maps += rng.normal(0, 0.05, maps.shape).astype(np.float32)
    for md in (2, 5, 8):
        assert_matches_skimage(maps, 5, md)


def test_two_separated_peaks_are_ordered_by_value() -> None:
    h = torch.zeros(1, 1, 9, 9)
    h[0, 0, 2, 6] = 1.0  # (x=6, y=2)
    h[0, 0, 6, 2] = 2.0  # (x=2, y=6)
    p = find_peaks(h, num_peaks=3, min_distance=1)
    assert p.coords[0, 0, :2].tolist() == [[2.0, 6.0], [6.0, 2.0]]
    assert p.values[0, 0].tolist() == [2.0, 1.0, 0.0]
    assert p.valid[0, 0].tolist() == [True, True, False]


def test_equal_peaks_tie_in_row_major_order() -> None:
    h = torch.zeros(1, 1, 9, 9)
    h[0, 0, 6, 2] = 1.0
    h[0, 0, 2, 6] = 1.0
    p = find_peaks(h, num_peaks=2, min_distance=1)
    assert p.coords[0, 0].tolist() == [[6.0, 2.0], [2.0, 6.0]]  # row 2 comes before row 6


def test_plateau_gives_one_peak_at_its_first_pixel() -> None:
    h = torch.zeros(1, 1, 10, 10)
    h[0, 0, 4:6, 4:6] = (
        3.0  # a 2x2 plateau: every pixel is a window maximum, within min_distance of each other
    )
    p = find_peaks(h, num_peaks=4, min_distance=2)
    assert p.valid[0, 0].tolist() == [True, False, False, False]
    assert p.coords[0, 0, 0].tolist() == [4.0, 4.0]


def test_border_maximum_is_excluded_unless_asked() -> None:
    h = torch.zeros(1, 1, 12, 12)
    h[0, 0, 0, 5] = 5.0  # on the top edge
    h[0, 0, 6, 6] = 1.0
    inside = find_peaks(h, num_peaks=2, min_distance=2)  # exclude_border=True -> 2 px
    assert inside.coords[0, 0, 0].tolist() == [6.0, 6.0] and inside.valid[0, 0].tolist() == [True, False]
    everywhere = find_peaks(h, num_peaks=2, min_distance=2, exclude_border=False)
    assert everywhere.coords[0, 0].tolist() == [[5.0, 0.0], [6.0, 6.0]]


def test_constant_and_empty_maps_have_no_peaks() -> None:
    h = torch.full((2, 3, 8, 8), 0.7)
    for threshold in (None, 0.0):
        p = find_peaks(h, num_peaks=3, min_distance=1, exclude_border=False, threshold_abs=threshold)
        assert not p.valid.any()
    assert not find_peaks(torch.zeros(0, 3, 8, 8), 2, 1).valid.any()
    # a border wider than half the map leaves nothing
    assert not find_peaks(torch.randn(1, 2, 6, 6), 2, 3).valid.any()


def test_threshold_is_strict_and_in_the_map_dtype() -> None:
    h = torch.zeros(1, 1, 7, 7)
    h[0, 0, 3, 3] = 0.1
    assert not find_peaks(h, 1, 1, threshold_abs=0.1).valid.any()  # float32(0.1) > float32(0.1) is False
    assert find_peaks(h, 1, 1, threshold_abs=0.09).valid.all()


def test_default_threshold_is_the_map_minimum() -> None:
    h = torch.full((1, 1, 7, 7), -2.0)
    h[0, 0, 1, 1] = -1.0
    h[0, 0, 5, 5] = -1.5
    p = find_peaks(h, 3, 1, exclude_border=False)
    assert p.coords[0, 0, :2].tolist() == [[1.0, 1.0], [5.0, 5.0]] and p.valid[0, 0].tolist() == [
        True,
        True,
        False,
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_peaks": 0, "min_distance": 1},
        {"num_peaks": 1, "min_distance": 0},
        {"num_peaks": 1, "min_distance": 1, "exclude_border": -1},
        {"num_peaks": 1.5, "min_distance": 1},
    ],
)
def test_bad_arguments_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        find_peaks(torch.zeros(1, 1, 4, 4), **kwargs)


def test_wrong_shape_raises() -> None:
    with pytest.raises(ValueError, match=r"\(B, J, h, w\)"):
        find_peaks(torch.zeros(4, 4), 1, 1)


def test_scaled_distance() -> None:
    assert scaled_distance(5, 64) == 5
    assert scaled_distance(8, 16) == 2
    assert scaled_distance(5, 16) == 1  # 1.25 -> 1
    assert scaled_distance(5, 32) == 3  # 2.5 rounds half up
    assert scaled_distance(1, 8) == 1  # never below 1


def test_peak_probabilities_softmax_over_valid_peaks() -> None:
    values = torch.tensor([[[2.0, 1.0, 0.0], [5.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    valid = torch.tensor([[[True, True, False], [True, False, False], [False, False, False]]])
    p = peak_probabilities(Peaks(coords=torch.zeros(1, 3, 3, 2), values=values, valid=valid))
    e = np.exp(1.0)
    np.testing.assert_allclose(p[0, 0].numpy(), [e / (e + 1), 1 / (e + 1), 0.0], rtol=1e-6)
    assert p[0, 1].tolist() == [1.0, 0.0, 0.0]
    assert p[0, 2].tolist() == [0.0, 0.0, 0.0]


def test_argmax_fallback_fills_only_empty_joints() -> None:
    h = torch.zeros(1, 2, 10, 10)
    h[0, 0, 0, 7] = 4.0  # only a border maximum: no peak with the default border
    h[0, 1, 5, 4] = 2.0
    p = find_peaks(h, num_peaks=2, min_distance=2)
    assert p.valid[0].tolist() == [[False, False], [True, False]]
    filled = with_argmax_fallback(p, h)
    assert filled.valid[0].tolist() == [[True, False], [True, False]]
    assert filled.coords[0, :, 0].tolist() == [[7.0, 0.0], [4.0, 5.0]]
    assert filled.values[0, :, 0].tolist() == [4.0, 2.0]
    assert not p.valid[0, 0].any()  # the input is not modified


def test_sparse_maps_with_flat_minimum_regions_match_skimage() -> None:
    """Small maps of zeros with a few bumps: blocks at the map's minimum are never peaks, even when few blocks
    are left to rank (the case where the block fast path has no bound on the minimum and must defer)."""
    few_blocks = np.zeros((5, 7), np.float32)
    few_blocks[0, 4], few_blocks[3, 2], few_blocks[4, 1] = 2, 1, 1
    assert_matches_skimage(few_blocks[None, None], 5, 3, border=False)
    rng = np.random.default_rng(0)
    for trial in range(600):
        h, w = rng.integers(5, 13, 2)
        m = np.zeros((1, 1, h, w), np.float32)
        for _ in range(rng.integers(1, 4)):
            m[0, 0, rng.integers(0, h), rng.integers(0, w)] = rng.integers(1, 4)
        assert_matches_skimage(
            m, int(rng.integers(1, 7)), int(rng.integers(1, 5)), [True, False, 1][trial % 3]
        )
