"""Core-Set: k-center greedy picks, equality with a naive full-matrix implementation, the sampler contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alpose_bench.samplers.coreset import CoreSet, kcenter_greedy, min_sq_distances
from alpose_bench.testing import check_sampler, make_context

torch.set_num_threads(1)


def naive_kcenter(pool: np.ndarray, labelled: np.ndarray, budget: int, first: int | None = None) -> list[int]:
    """Reference: the full pool x labelled distance matrix, as google/active-learning's kcenter_greedy."""
    from scipy.spatial.distance import cdist

    min_dist = cdist(pool, labelled).min(axis=1) if len(labelled) else np.full(len(pool), np.inf)
    picked: list[int] = []
    for step in range(min(budget, len(pool))):
        idx = first if (step == 0 and first is not None) else int(np.argmax(min_dist))
        picked.append(idx)
        min_dist = np.minimum(min_dist, np.linalg.norm(pool - pool[idx], axis=1))
        min_dist[picked] = -1
    return picked


def test_three_clusters_labelled_in_one_picks_the_other_two_first() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    pool = np.concatenate([c + rng.normal(size=(10, 2)) for c in centres])  # positions 0-9, 10-19, 20-29
    labelled = centres[0] + rng.normal(size=(5, 2))
    picks = kcenter_greedy(torch.from_numpy(pool), torch.from_numpy(labelled), budget=3)
    assert {picks[0] // 10, picks[1] // 10} == {1, 2}
    # the third pick is the point farthest from its nearest centre so far: computed by hand below
    assert picks.tolist() == naive_kcenter(pool, labelled, 3)


def test_hand_computed_line() -> None:
    # pool on a line at 0, 1, 2, 10; labelled at 0: farthest is 10 (pos 3), then 2 (pos 2: dist 2 vs 1), then 1
    pool = torch.tensor([[0.0], [1.0], [2.0], [10.0]])
    labelled = torch.tensor([[0.0]])
    assert kcenter_greedy(pool, labelled, budget=4).tolist() == [3, 2, 1, 0]


def test_ties_go_to_the_lowest_position() -> None:
    pool = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    labelled = torch.zeros(1, 2)
    assert kcenter_greedy(pool, labelled, budget=1).tolist() == [0]


@pytest.mark.parametrize("chunk", [1, 7, 64, 4096])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_naive_reference_on_random_data(chunk: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pool, labelled = rng.normal(size=(300, 16)), rng.normal(size=(40, 16))
    ours = kcenter_greedy(torch.from_numpy(pool), torch.from_numpy(labelled), budget=50, chunk=chunk)
    assert ours.tolist() == naive_kcenter(pool, labelled, 50)


def test_min_sq_distances_matches_scipy() -> None:
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(50, 8)), rng.normal(size=(33, 8))
    got = min_sq_distances(torch.from_numpy(a), torch.from_numpy(b), chunk=10).numpy()
    np.testing.assert_allclose(got, cdist(a, b, "sqeuclidean").min(axis=1), rtol=1e-10)
    assert torch.isinf(min_sq_distances(torch.from_numpy(a), torch.zeros(0, 8, dtype=torch.float64))).all()


def test_empty_labelled_starts_at_first_and_budget_covers_pool() -> None:
    rng = np.random.default_rng(5)
    pool = rng.normal(size=(20, 4))
    ours = kcenter_greedy(torch.from_numpy(pool), torch.zeros(0, 4, dtype=torch.float64), budget=25, first=7)
    assert ours[0] == 7 and sorted(ours.tolist()) == list(range(20))
    assert ours.tolist() == naive_kcenter(pool, np.zeros((0, 4)), 25, first=7)


def test_duplicate_embeddings_are_never_picked_twice() -> None:
    pool = torch.ones(6, 3)
    picks = kcenter_greedy(pool, torch.ones(1, 3), budget=6)
    assert sorted(picks.tolist()) == list(range(6))


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="differ in size"):
        kcenter_greedy(torch.zeros(4, 3), torch.zeros(2, 5), budget=1)
    with pytest.raises(ValueError, match="first"):
        kcenter_greedy(torch.zeros(4, 3), torch.zeros(0, 3), budget=1, first=4)
    with pytest.raises(ValueError, match="chunk"):
        min_sq_distances(torch.zeros(4, 3), torch.zeros(2, 3), chunk=0)
    with pytest.raises(ValueError, match="coreset: chunk must be at least 1"):
        CoreSet(chunk=0)


def test_sampler_uses_the_pool_and_labelled_embeddings() -> None:
    ctx = make_context(n_pool=30, n_labelled=6, seed=1)
    picks = CoreSet().select(ctx, 5)
    pool, labelled = ctx.collect("pool", "embedding"), ctx.collect("labelled", "embedding")
    assert picks.tolist() == naive_kcenter(pool.astype(np.float64), labelled.astype(np.float64), 5)


def test_sampler_without_labels_uses_the_seeded_rng() -> None:
    picks = [CoreSet().select(make_context(n_labelled=0, seed=s), 3)[0] for s in range(6)]
    assert len(set(picks)) > 1  # the first centre depends on the seed
    assert CoreSet().select(make_context(n_labelled=0, seed=2), 3)[0] == picks[2]


def test_conformance() -> None:
    check_sampler(CoreSet)


def test_the_whole_pick_order_is_the_float64_one_of_scikit_learn() -> None:
    """Distances in float64 as scikit-learn's pairwise_distances computes them: on the conformance kit's
    embeddings the pick order of a float32 expansion left the float64 one within ten picks."""
    from sklearn.metrics import pairwise_distances

    ctx = make_context(n_pool=40, n_labelled=8, seed=0)
    picks = CoreSet().select(ctx, 30)
    pool = ctx.collect("pool", "embedding").astype(np.float64)
    labelled = ctx.collect("labelled", "embedding").astype(np.float64)
    min_dist = pairwise_distances(pool, labelled).min(axis=1)
    expected = []
    for _ in range(30):
        idx = int(np.argmax(min_dist))
        expected.append(idx)
        min_dist = np.minimum(min_dist, pairwise_distances(pool, pool[idx : idx + 1])[:, 0])
        min_dist[expected] = -1
    assert picks.tolist() == expected
