"""Metrics against hand-computed values: at/below/above thresholds, invisible joints, MPII mean, AUBC."""

from __future__ import annotations

import numpy as np
import pytest

from alpose_bench.pose.metrics import aubc, evaluate, mpjpe, pck, pckh, per_image_error, torso_size
from alpose_bench.pose.skeleton import ICVL, LSP, MPII


def _two_by_three() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """2 images x 3 joints; head diagonals 10 and 20 -> PCKh@0.5 radii 0.5 * 0.6 * diag = 3 and 6 px."""
    gt = np.full((2, 3, 2), 10.0)
    offsets = np.array(
        [
            [[3.0, 0.0], [0.0, 2.9], [3.1, 0.0]],  # exactly at (correct), below (correct), above (wrong)
            [[0.0, -6.5], [50.0, 50.0], [0.0, 0.0]],  # above (wrong), invisible (ignored), zero (correct)
        ]
    )
    visible = np.array([[True, True, True], [True, False, True]])
    return gt + offsets, gt, visible, np.array([10.0, 20.0])


def test_pckh_hand_computed_threshold_and_visibility() -> None:
    pred, gt, visible, head = _two_by_three()
    result = pckh(pred, gt, visible, head)
    np.testing.assert_allclose(result.per_joint, [50.0, 100.0, 50.0])
    np.testing.assert_array_equal(result.counts, [2, 1, 2])
    # official weighting: total correct / total annotated = 3 / 5 (not the mean of per-joint rates, 66.7)
    assert result.mean == pytest.approx(60.0)
    assert result.higher_is_better and result.name == "pckh@0.5"
    # joints 0 and 2 only: 2 correct of 4
    assert pckh(pred, gt, visible, head, mean_joints=[0, 2]).mean == pytest.approx(50.0)
    # a larger threshold (radius 0.6 * 0.6 * diag = 3.6 / 7.2 px) accepts the 3.1 and 6.5 px errors
    assert pckh(pred, gt, visible, head, threshold=0.6).mean == pytest.approx(100.0)


def test_pckh_never_visible_joint_is_nan_and_nan_prediction_is_wrong() -> None:
    pred, gt, visible, head = _two_by_three()
    visible[:, 1] = False
    pred[0, 0] = np.nan
    result = pckh(pred, gt, visible, head)
    assert np.isnan(result.per_joint[1])
    np.testing.assert_allclose(result.per_joint[[0, 2]], [0.0, 50.0])
    assert result.mean == pytest.approx(25.0)


def test_pckh_mpii_excludes_pelvis_and_thorax_from_mean() -> None:
    gt = np.zeros((1, 16, 2))
    pred = gt.copy()
    pelvis, thorax = MPII.index("pelvis"), MPII.index("thorax")
    pred[0, [pelvis, thorax]] = 100.0  # only pelvis and thorax are wrong
    visible = np.ones((1, 16), dtype=bool)
    head = np.array([10.0])
    assert evaluate("pckh", pred, gt, visible, head, MPII).mean == pytest.approx(100.0)
    assert pckh(pred, gt, visible, head).mean == pytest.approx(100.0 * 14 / 16)
    assert pckh(pred, gt, visible, head, mean_joints=MPII.mean_joints()).per_joint[pelvis] == 0.0


def test_pck_torso_convention() -> None:
    gt = np.zeros((2, 2, 2))
    pred = np.array([[[2.0, 0.0], [0.0, 2.5]], [[0.0, 0.0], [1.0, 0.0]]])
    visible = np.ones((2, 2), dtype=bool)
    torso = np.array([10.0, 4.0])  # radii 2 px and 0.8 px at PCK@0.2
    result = pck(pred, gt, visible, torso)
    np.testing.assert_allclose(result.per_joint, [100.0, 0.0])
    assert result.mean == pytest.approx(50.0) and result.name == "pck@0.2"


def test_torso_size_standard_is_one_diagonal_and_max_is_the_authors() -> None:
    """The standard LSP evaluation measures |l_shoulder - r_hip|; the VL4Pose authors' code the larger diagonal."""
    kp = np.zeros((1, 14, 2))
    kp[0, LSP.index("l_shoulder")] = [0.0, 0.0]
    kp[0, LSP.index("r_hip")] = [3.0, 4.0]  # 5
    kp[0, LSP.index("r_shoulder")] = [10.0, 0.0]
    kp[0, LSP.index("l_hip")] = [10.0, 6.0]  # 6
    np.testing.assert_allclose(torso_size(kp, LSP), [5.0])
    np.testing.assert_allclose(torso_size(kp, LSP, "max"), [6.0])
    kp[0, LSP.index("l_hip")] = np.nan  # an unannotated hip: the other diagonal is used
    np.testing.assert_allclose(torso_size(kp, LSP, "max"), [5.0])
    with pytest.raises(ValueError, match="torso convention"):
        torso_size(kp, LSP, "mean")
    with pytest.raises(ValueError, match="torso_pairs"):
        torso_size(np.zeros((1, 16, 3)), ICVL)


def test_mpjpe_mean_euclidean_over_visible() -> None:
    gt = np.zeros((2, 2, 3))
    pred = np.array([[[3.0, 4.0, 0.0], [0.0, 0.0, 2.0]], [[0.0, 0.0, 1.0], [99.0, 99.0, 99.0]]])
    visible = np.array([[True, True], [True, False]])
    result = mpjpe(pred, gt, visible)
    np.testing.assert_allclose(result.per_joint, [3.0, 2.0])
    assert result.mean == pytest.approx(8.0 / 3.0)
    assert not result.higher_is_better
    via_evaluate = evaluate("mpjpe", np.zeros((1, 16, 3)) + [0.0, 0.0, 1.0], np.zeros((1, 16, 3)),
                            np.ones((1, 16), bool), np.ones(1), ICVL)  # fmt: skip
    assert via_evaluate.mean == pytest.approx(1.0)


def test_per_image_error() -> None:
    gt = np.zeros((2, 2, 2))
    pred = np.array([[[2.0, 0.0], [0.0, 4.0]], [[1.0, 1.0], [1.0, 1.0]]])
    visible = np.array([[True, True], [False, False]])
    err = per_image_error(pred, gt, visible, np.array([2.0, 0.0]))
    assert err[0] == pytest.approx(1.5)
    assert np.isnan(err[1])


def test_aubc() -> None:
    budgets = np.array([1000, 2000, 3000, 4000, 5000])
    assert aubc(budgets, 50 + 0.01 * budgets) == pytest.approx(80.0)  # a straight line: its midpoint value
    assert aubc([0, 1, 3], [0.0, 2.0, 2.0]) == pytest.approx(5.0 / 3.0)  # uneven spacing: (1 + 4) / 3
    assert aubc([3, 0, 1], [2.0, 0.0, 2.0]) == pytest.approx(5.0 / 3.0)  # order does not matter
    assert aubc([1000], [72.5]) == 72.5
    with pytest.raises(ValueError, match="repeated budgets"):
        aubc([1, 1], [0.0, 1.0])
    with pytest.raises(ValueError, match="as many budgets"):
        aubc([1, 2], [0.0])


def test_bad_inputs_raise_clear_errors() -> None:
    pred, gt, visible, head = _two_by_three()
    with pytest.raises(ValueError, match="pred has shape"):
        pckh(pred[:, :2], gt, visible, head)
    with pytest.raises(ValueError, match="visible must be"):
        pckh(pred, gt, visible[:, :2], head)
    with pytest.raises(ValueError, match="head_diag must be positive"):
        pckh(pred, gt, visible, np.array([10.0, 0.0]))
    with pytest.raises(ValueError, match="mean_joints"):
        pckh(pred, gt, visible, head, mean_joints=[3])
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate("auc", pred, gt, visible, head, LSP.__class__("x", ("a", "b", "c"), ((0, 1), (1, 2)), 0))
    with pytest.raises(ValueError, match="skeleton 'mpii'"):
        evaluate("pckh", pred, gt, visible, head, MPII)
