"""The field's other samplers: each scorer's direction on a crafted case, MC dropout's passes, the geometric and
graph samplers, TypiClust and the diversity selectors over any scorer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alpose_bench.pose.models import ModelSpec
from alpose_bench.samplers import create_sampler
from alpose_bench.samplers.diverse import nearest_distinct
from alpose_bench.samplers.gcn import affinity_adjacency, gcn_loss
from alpose_bench.samplers.heatmap_scores import heatmap_entropy, least_confidence, peak_margin
from alpose_bench.samplers.mc_dropout import keypoint_spread
from alpose_bench.samplers.mcd_cke import lower_bound, pose_vectors
from alpose_bench.samplers.pose_pca import pca_errors
from alpose_bench.samplers.typiclust import typicality, typiclust_select
from alpose_bench.spec.config import ConfigError
from alpose_bench.spec.registry import UnknownNameError, get_sampler
from alpose_bench.testing import check_sampler, make_context

torch.set_num_threads(1)


def crafted_heatmaps() -> torch.Tensor:
    """Image 0: a sharp single peak per joint; 1: two equal peaks; 2: flat. 2 joints, 32 x 32, peak height 30."""
    maps = torch.zeros(3, 2, 32, 32)
    maps[0, :, 10, 10] = 30.0
    maps[1, :, 8, 8] = 20.0
    maps[1, :, 24, 24] = 20.0
    maps[2] = 1.0
    return maps


def test_every_heatmap_scorer_ranks_flat_and_two_peaked_maps_above_a_sharp_peak() -> None:
    maps = crafted_heatmaps()
    lc = least_confidence(maps, 30.0).numpy()
    margin = (-peak_margin(maps, 30.0, 2)).numpy()  # the sampler's score: small margin = uncertain
    ent = heatmap_entropy(maps).numpy()
    np.testing.assert_allclose(lc, [0.0, 1 - 20 / 30, 1 - 1 / 30])
    np.testing.assert_allclose(margin, [-1.0, 0.0, 0.0])  # sharp: 30 - 0; equal peaks and flat: no margin
    np.testing.assert_allclose(ent, [0.0, np.log(2), np.log(32 * 32)], rtol=1e-12)
    for scores in (lc, margin, ent):
        assert scores[0] < scores[1] and scores[0] < scores[2]


def test_a_pose_far_from_the_labelled_subspace_ranks_first() -> None:
    rng = np.random.default_rng(0)
    # labelled 2D poses of 4 joints: the root at 0 and the others along the x axis, scaled: a 1-D family
    base = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    labelled = base[None] * rng.uniform(0.5, 2.0, (30, 1, 1)) + rng.normal(0, 0.01, (30, 4, 2))
    odd = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])  # a square: nothing like the labelled
    predicted = np.stack([base * 1.5, odd, base * 0.7])
    errors = pca_errors(labelled, np.ones((30, 4), bool), predicted, root=0, variance=0.9)
    assert np.argmax(errors) == 1 and errors[1] > 100 * max(errors[0], errors[2])


def test_mc_dropout_passes_differ_are_seeded_and_do_not_depend_on_the_batch() -> None:
    sampler = create_sampler("mc-dropout", {"passes": 5})
    ctx = make_context("heatmap2d", n_pool=12, sampler=sampler)
    mc = ctx.mc_keypoints("pool", 5)
    assert mc.shape == (5, 12, 16, 2) and np.ptp(mc, axis=0).max() > 0  # the passes differ
    again = make_context("heatmap2d", n_pool=12, sampler=sampler)
    again.batch_size = 3
    np.testing.assert_allclose(again.mc_keypoints("pool", 5), mc, atol=1e-4)  # same masks, other batches
    np.testing.assert_allclose(sampler.score(ctx), keypoint_spread(mc))
    assert ctx.forward_passes == 5 * 12


def test_mc_dropout_needs_dropout_in_the_model() -> None:
    cls = get_sampler("mc-dropout")
    assert "set --dropout" in cls.unsupported_reason("heatmap2d", ModelSpec(dropout=0.0))
    assert cls.unsupported_reason("heatmap2d", ModelSpec(dropout=0.25)) is None
    assert cls.unsupported_reason("regression3d", ModelSpec()) is None  # the regressor has dropout 0.3
    ctx = make_context("heatmap2d", n_pool=4)  # the kit's hourglass without dropout
    with pytest.raises(ValueError, match="needs dropout in the pose model"):
        ctx.mc_keypoints("pool", 3)
    keypoints = np.array([[[[1.0, 2.0]]], [[[3.0, 6.0]]]])  # (2 passes, 1 image, 1 joint, 2): stds 1 and 2
    assert keypoint_spread(keypoints)[0] == pytest.approx(1.0 + 2.0)


def test_mcd_cke_shrinks_uncertain_coordinates_toward_the_centre() -> None:
    mean, std = np.array([[0.5, -0.5, 0.0]]), np.array([[1.0, 1.0, 1.0]])
    np.testing.assert_allclose(lower_bound(mean, std, 0.3), [[0.2, -0.2, 0.0]])
    # pixel centres: the image centre is (S - 1) / 2 and its edges -0.5 and S - 0.5 map to -1 and +1
    np.testing.assert_allclose(pose_vectors(np.array([[[31.5, -0.5]]]), "heatmap2d", 64), [[0.0, -1.0]])
    pose = np.array([[[10.0, 20.0], [40.0, 63.5]]])
    mirrored = pose.copy()
    mirrored[..., 0] = 63 - pose[..., 0]  # the horizontal flip of a 64 px crop maps pixel x to 63 - x
    a, b = pose_vectors(pose, "heatmap2d", 64), pose_vectors(mirrored, "heatmap2d", 64)
    np.testing.assert_allclose(a[0, 0::2], -b[0, 0::2])  # mirrored poses: mirrored vectors, shrunk alike
    np.testing.assert_allclose(a[0, 1::2], b[0, 1::2])


@pytest.mark.parametrize("name", ["coreset-pose", "mcd-cke"])
@pytest.mark.parametrize("task", ["heatmap2d", "regression3d"])
def test_pose_space_samplers_select_distinct_unlabelled_images(name: str, task: str) -> None:
    sampler = create_sampler(name, {"passes": 4} if name == "mcd-cke" else {})
    ctx = make_context(task, n_pool=20, sampler=sampler)
    picked = np.asarray(sampler.select(ctx, 6))
    assert len(set(picked.tolist())) == 6 and picked.max() < 20


def test_gcn_graph_and_loss_follow_the_reference() -> None:
    x = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]), dim=1)
    adj = affinity_adjacency(x)
    a = x @ x.T - torch.eye(3)
    torch.testing.assert_close(adj, a / a.sum(dim=0, keepdim=True) + torch.eye(3))
    scores = torch.tensor([0.9, 0.2, 0.4])
    labelled = torch.tensor([True, False, False])
    expected = -np.log(0.9) - 1.2 * np.mean([np.log(0.8), np.log(0.6)])
    assert gcn_loss(scores, labelled, 1.2).item() == pytest.approx(expected, rel=1e-6)


def test_uncertaingcn_picks_the_scores_closest_to_the_margin() -> None:
    sampler = create_sampler("uncertaingcn", {"steps": 30})
    ctx = make_context("heatmap2d", n_pool=30, sampler=sampler)
    sel = sampler.select(ctx, 5)
    closeness = sel.scores  # −|s − margin| of the picks
    assert len(set(sel.positions.tolist())) == 5 and np.all(np.diff(closeness) <= 1e-12)


def test_coregcn_runs_on_both_tasks_and_the_reference_variant_reads_the_input_features() -> None:
    for task in ("heatmap2d", "regression3d"):
        for features in ("gcn", "input"):
            sampler = create_sampler("coregcn", {"steps": 10, "features": features})
            picked = np.asarray(sampler.select(make_context(task, n_pool=25, sampler=sampler), 5))
            assert len(set(picked.tolist())) == 5


def test_typicality_is_the_inverse_mean_squared_distance_to_the_neighbours() -> None:
    pts = np.array([[0.0], [1.0], [3.0]])
    # k = 1: nearest squared distances 1, 1, 4
    np.testing.assert_allclose(typicality(pts, 1), 1 / (np.array([1.0, 1.0, 4.0]) + 1e-5))


def test_typiclust_takes_the_dense_centre_of_the_uncovered_clusters() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.3, (60, 2))  # a big cluster, covered by the labelled images below
    b = rng.normal(0, 0.3, (40, 2)) + [10, 0]
    c = rng.normal(0, 0.3, (30, 2)) + [0, 10]
    labelled = a[:1]  # |labelled| + budget = 3 clusters: the three blobs
    features = np.concatenate([labelled, a[1:], b, c])
    picked, _ = typiclust_select(features, n_labelled=1, budget=2, seed=0, min_cluster_size=5)
    centres = features[picked]
    # one pick in each uncovered cluster, each near that cluster's centre
    assert sorted(np.round(centres / 10).astype(int).tolist()) == [[0, 1], [1, 0]]
    assert np.linalg.norm(centres - np.round(centres / 10) * 10, axis=1).max() < 0.3
    assert 0 not in picked


@pytest.mark.slow
def test_diversity_selectors_are_samplers_built_by_name() -> None:
    for name in ("mpe+kmeans", "vl4pose+coreset", "least-confidence+kmeans"):
        cls = get_sampler(name)
        check_sampler(cls)
        assert cls.name == name and "embedding" in cls.needs and "m" in cls.params()
    sampler = create_sampler("mpe+kmeans", {"m": 3, "num_peaks": 3})
    assert (sampler.m, sampler.num_peaks) == (3, 3)
    with pytest.raises(UnknownNameError, match="gives no per-image scores"):
        get_sampler("random+kmeans")
    with pytest.raises(UnknownNameError, match="unknown selector 'tsne'"):
        get_sampler("mpe+tsne")
    with pytest.raises(ConfigError, match="m must be"):
        create_sampler("mpe+kmeans", {"m": 0})


def test_nearest_distinct_never_takes_a_point_twice() -> None:
    pts = np.array([[0.0], [0.1], [5.0]])
    assert nearest_distinct(pts, np.array([[0.0], [0.0], [4.0]])).tolist() == [0, 1, 2]


def test_the_kmeans_selector_spreads_what_the_scorer_bunches() -> None:
    """Half the pool scores highest and sits in one tight spot; + kmeans takes one from each spot of the shortlist."""
    sampler = create_sampler("least-confidence+kmeans", {"m": 4})
    ctx = make_context("heatmap2d", n_pool=40, sampler=sampler)
    scores = sampler.score(ctx)
    emb = np.zeros((40, 4))
    emb[:, 0] = np.arange(40) % 4  # four spots
    ctx._cache[("pool", "embedding")] = emb  # the embedding the selector reads
    picked = sampler.select(ctx, 4).positions
    assert sorted(emb[picked, 0].tolist()) == [0, 1, 2, 3]
    assert set(picked) <= set(np.argsort(-scores, kind="stable")[:16].tolist())


def test_the_gcn_embedding_holds_the_last_layer_before_the_sigmoid_as_the_reference() -> None:
    """The reference's third output (what CoreGCN's k-center greedy reads) is gc3's value before the sigmoid."""
    from alpose_bench.samplers.gcn import GCN

    torch.manual_seed(0)
    gcn = GCN(4, 8, dropout=0.0).eval()
    x = torch.randn(5, 4)
    adj = affinity_adjacency(torch.nn.functional.normalize(x, dim=1))
    score, embedding = gcn(x, adj)
    hidden = torch.relu(gcn.gc1(x, adj))
    torch.testing.assert_close(embedding, torch.cat([hidden, gcn.gc3(hidden, adj)], dim=1))
    torch.testing.assert_close(score, torch.sigmoid(embedding[:, -1]))


def test_typiclust_clusters_with_the_reference_number_of_k_means_starts() -> None:
    """scikit-learn 1.0.2 (the reference's) ran KMeans with 10 starts: the partition is the best of 10, not of one."""
    from sklearn.cluster import KMeans

    from alpose_bench.samplers.typiclust import cluster

    rng = np.random.default_rng(3)
    centres = rng.uniform(-10, 10, (25, 8))
    features = np.concatenate([c + rng.normal(0, 1.5, (40, 8)) for c in centres])

    def inertia(labels: np.ndarray) -> float:
        return float(
            sum(((features[labels == k] - features[labels == k].mean(0)) ** 2).sum() for k in set(labels))
        )

    for seed in range(3):
        best_of_ten = KMeans(n_clusters=25, random_state=seed, n_init=10).fit(features).inertia_
        assert inertia(cluster(features, 25, seed)) == pytest.approx(best_of_ten, rel=1e-9)
