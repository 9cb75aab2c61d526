import cv2
import numpy as np
import pytest
from scipy.optimize import least_squares

from mvtools.evaluate import metrics


def _poses(n=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 300, (n, 17, 3))


def test_mpjpe_known_offset():
    gt = _poses()
    off = np.array([30.0, -40.0, 0.0])  # |off| = 50 mm
    pred = gt + off
    assert metrics.mpjpe(pred, gt) == pytest.approx(50.0)
    np.testing.assert_allclose(metrics.mpjpe_per_pose(pred, gt), 50.0)
    # translation is removed by Procrustes and by nothing else
    assert metrics.p_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-9)


def test_mpjpe_single_joint_hand_case():
    gt = np.zeros((1, 2, 3))
    pred = np.array([[[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]]])  # errors 5 and 0
    assert metrics.mpjpe(pred, gt) == pytest.approx(2.5)


def test_p_mpjpe_similarity_is_zero():
    gt = _poses()
    R, _ = cv2.Rodrigues(np.array([0.3, -1.1, 0.7]))
    pred = 0.8 * gt @ R.T + np.array([100.0, -20.0, 4000.0])
    assert metrics.mpjpe(pred, gt) > 100
    assert metrics.p_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-8)
    np.testing.assert_allclose(metrics.procrustes_align(pred, gt), gt, atol=1e-8)


def test_p_mpjpe_removes_reflection():
    gt = _poses(3, seed=1)
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    # a reflection cannot be undone by a proper rotation: the error stays clearly above zero
    assert metrics.p_mpjpe(mirrored, gt) > 10.0


def test_p_mpjpe_matches_direct_optimisation():
    rng = np.random.default_rng(3)
    gt = rng.normal(0, 200, (1, 17, 3))
    pred = gt + rng.normal(0, 40, gt.shape)

    def residual(p):
        R, _ = cv2.Rodrigues(p[:3])
        return (p[3] * pred[0] @ R.T + p[4:7] - gt[0]).ravel()

    sol = least_squares(residual, np.r_[0, 0, 0, 1.0, 0, 0, 0], xtol=1e-14, ftol=1e-14)
    R, _ = cv2.Rodrigues(sol.x[:3])
    ref = np.linalg.norm(sol.x[3] * pred[0] @ R.T + sol.x[4:7] - gt[0], axis=-1).mean()
    # least squares minimises the squared error; MPJPE of that optimum is what Protocol #2 reports
    assert metrics.p_mpjpe(pred, gt) == pytest.approx(ref, rel=1e-6)


def test_n_mpjpe_scale_only():
    gt = _poses()
    assert metrics.n_mpjpe(2.5 * gt, gt) == pytest.approx(0.0, abs=1e-9)
    assert metrics.mpjpe(2.5 * gt, gt) > 0


def test_pck_and_auc_constructed_errors():
    # 4 joints with errors 0, 50, 100, 200 mm along x
    gt = np.zeros((1, 4, 3))
    pred = np.zeros((1, 4, 3))
    pred[0, :, 0] = [0.0, 50.0, 100.0, 200.0]
    assert metrics.pck(pred, gt, 150) == pytest.approx(75.0)
    assert metrics.pck(pred, gt, 100) == pytest.approx(50.0)  # strictly below the threshold
    curve = metrics.pck_curve(pred, gt)
    # thresholds 0,5,...,150: t=0 -> 0 %, 0<t<=50 -> 25 %, 50<t<=100 -> 50 %, t>100 -> 75 %
    t = np.linspace(0, 150, 31)
    expected = np.where(t == 0, 0, np.where(t <= 50, 25, np.where(t <= 100, 50, 75)))
    np.testing.assert_allclose(curve, expected)
    assert metrics.auc(pred, gt) == pytest.approx(expected.mean())


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="must both be"):
        metrics.mpjpe(np.zeros((2, 17, 3)), np.zeros((2, 16, 3)))


def test_root_relative():
    j = _poses(2)
    r = metrics.root_relative(j)
    np.testing.assert_allclose(r[:, 0], 0)
    np.testing.assert_allclose(r[:, 5], j[:, 5] - j[:, 0])


def test_mpjve_hand_case_and_videopose3d_definition():
    rng = np.random.default_rng(0)
    gt = rng.normal(0, 300, (6, 17, 3))
    pred = gt.copy()
    pred[3] += [3.0, 4.0, 0.0]  # one frame off by 5 mm: velocities into and out of it are 5 mm/frame off
    seq = np.array(["a"] * 6)
    frame = np.arange(6)
    assert metrics.mpjve(pred, gt, seq, frame) == pytest.approx(2 * 5.0 / 5)
    # VideoPose3D's mean_velocity_error on a whole sequence: mean over frames and joints of ||diff(p) - diff(g)||
    pred = gt + rng.normal(0, 10, gt.shape)
    ref = np.mean(np.linalg.norm(np.diff(pred, axis=0) - np.diff(gt, axis=0), axis=-1))
    assert metrics.mpjve(pred, gt, seq, frame) == pytest.approx(ref)
    # shuffled rows, two sequences, a gap in the frame numbers: only consecutive frames of one sequence count
    seq2 = np.array(["a", "a", "a", "b", "b", "b"])
    frame2 = np.array([0, 1, 3, 7, 8, 9])
    perm = rng.permutation(6)
    e, row = metrics.velocity_errors(pred[perm], gt[perm], seq2[perm], frame2[perm])
    assert len(e) == 3  # a: 0-1; b: 7-8, 8-9
    d = lambda i, j: np.linalg.norm((pred[j] - pred[i]) - (gt[j] - gt[i]), axis=-1).mean()  # noqa: E731
    assert sorted(e) == pytest.approx(sorted([d(0, 1), d(3, 4), d(4, 5)]))
    assert sorted(frame2[perm][row]) == [1, 8, 9]
    assert np.isnan(metrics.mpjve(pred[:1], gt[:1], seq[:1], frame[:1]))
