"""Calibration from joints: geometry, two-view pose, cheirality, rig consistency, bundle adjustment, scale,
degenerate inputs. Independent references: OpenCV (triangulatePoints, sampsonDistance, Rodrigues), the built-in
H36M calibration, finite differences, hand-built configurations."""

import cv2
import numpy as np
import pytest
from helpers import make_poses
from scipy.optimize._numdiff import approx_derivative

from mvtools.calibration.bundle import ba_problem, bundle_adjust
from mvtools.calibration.geometry import planarity, sampson_distance, triangulate
from mvtools.calibration.rig import RigOptions, build_rig, estimate_pairs, motion_spread
from mvtools.calibration.scale import BODY_SIZE_CV, body_scale, bone_prior, given_scale
from mvtools.calibration.twoview import essential_from_pose, pose_candidates, relative_pose, third_view_consistency
from mvtools.calibration.views import CalibrationError, Views, join_views
from mvtools.camera import camera_center, look_at, project, relative_transform, world_to_camera
from mvtools.h36m_cameras import h36m_rig
from mvtools.rotations import angle_between_deg, rodrigues, rotation_angle_deg
from mvtools.skeleton import H36M17_FLIP, bones


def random_poses(n, rng, spread_mm=1500.0):
    """(n, 17, 3) world mm spread over the floor of the H36M capture area."""
    return make_poses(n, rng, spread_mm)


def make_views(X, cams, rng=None, noise_px=0.0, swap=0.0, outliers=0.0):
    """Views of world joints X (F, 17, 3) in cams: undistorted (pinhole) px with optional noise, left/right
    swaps (fraction of frames per view) and gross outliers (fraction of joints)."""
    uv = np.stack([project(X, c, distort=False) for c in cams], 1)  # (F, V, J, 2)
    if noise_px:
        uv = uv + rng.normal(0, noise_px, uv.shape)
    if swap:
        s = rng.random(uv.shape[:2]) < swap
        uv[s] = uv[s][:, H36M17_FLIP]
    if outliers:
        o = rng.random(uv.shape[:3]) < outliers
        uv[o] += rng.normal(0, 80, (o.sum(), 2))
    keys = np.empty((len(X), 3), object)
    keys[:] = ["a", 1, 0]
    keys[:, 2] = np.arange(len(X))
    return Views("S1", list(cams), uv, np.ones(uv.shape[:3]), keys, "gt")


def rig_errors(R, t, cams):
    """Max rotation and translation-direction errors (deg) of all pairs of an estimated rig vs ``cams``."""
    rot, tdir = [], []
    for a in range(len(cams)):
        for b in range(a + 1, len(cams)):
            Rg, tg = relative_transform(cams[a].R, cams[a].t, cams[b].R, cams[b].t)
            Re, te = relative_transform(R[a], t[a], R[b], t[b])
            rot.append(rotation_angle_deg(Re, Rg))
            tdir.append(angle_between_deg(te, tg))
    return max(rot), max(tdir)


@pytest.fixture(scope="module")
def cams():
    return list(h36m_rig("S1").values())


# ----------------------------------------------------------------------------- geometry
def test_triangulate_is_exact_and_matches_per_point_least_squares(cams):
    rng = np.random.default_rng(0)
    X = rng.uniform([-1000, -1000, 0], [1000, 1000, 2000], (50, 3))
    R = np.stack([c.R for c in cams])
    t = np.stack([c.t for c in cams])
    Xc = np.einsum("vij,nj->nvi", R, X) + t
    xn = Xc[..., :2] / Xc[..., 2:3]
    P = np.concatenate([R, t[..., None]], -1)
    np.testing.assert_allclose(triangulate(xn, P), X, atol=1e-6)  # exact from noise-free views
    # noisy, weighted, some views missing: the same as a per-point weighted lstsq of the DLT rows
    xs = xn + rng.normal(0, 2e-3, xn.shape)
    w = rng.random((50, 4)) + 0.1
    xs[::3, 2] = np.nan
    ours = triangulate(xs, P, w)
    for i in range(50):
        rows, rhs = [], []
        for v in range(4):
            if np.isfinite(xs[i, v]).all():
                for k in range(2):
                    r = np.sqrt(w[i, v]) * (xs[i, v, k] * P[v, 2] - P[v, k])
                    rows.append(r[:3])
                    rhs.append(-r[3])
        ref = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
        np.testing.assert_allclose(ours[i], ref, rtol=1e-8, atol=1e-6)
    # and close to OpenCV's homogeneous DLT for two noisy views (within the noise, mm)
    ref = cv2.triangulatePoints(P[0], P[1], xs[:, 0].T.copy(), xs[:, 1].T.copy())
    assert np.abs(triangulate(xs[:, :2], P[:2]) - (ref[:3] / ref[3]).T).max() < 5.0
    # fewer than two usable views -> NaN
    w1 = np.zeros((50, 4))
    w1[:, 0] = 1
    assert np.isnan(triangulate(xn, P, w1)).all()


def test_sampson_distance_matches_opencv():
    rng = np.random.default_rng(1)
    R = rodrigues(np.array([0.1, -0.4, 0.2]))
    t = np.array([1.0, 0.2, 0.1])
    E = essential_from_pose(R, t)
    x1, x2 = rng.normal(0, 0.3, (20, 2)), rng.normal(0, 0.3, (20, 2))
    ours = sampson_distance(E, x1, x2)
    ref = [np.sqrt(cv2.sampsonDistance(np.array([*a, 1.0]), np.array([*b, 1.0]), E)) for a, b in zip(x1, x2)]
    np.testing.assert_allclose(ours, ref, rtol=1e-9)


def test_planarity():
    rng = np.random.default_rng(2)
    flat = np.c_[rng.normal(size=(100, 2)), np.zeros(100)] @ rodrigues(np.array([0.3, 0.2, 0.1])).T
    assert planarity(flat) < 1e-12
    assert planarity(rng.normal(size=(100, 3))) > 0.5


# ----------------------------------------------------------------------------- two views
def _normalised(X, c):
    Xc = world_to_camera(X, c.R, c.t)
    return Xc[:, :2] / Xc[:, 2:3]


def test_noise_free_relative_pose_of_every_h36m_pair(cams):
    rng = np.random.default_rng(3)
    X = random_poses(200, rng).reshape(-1, 3)
    for a in range(4):
        for b in range(a + 1, 4):
            p = relative_pose(_normalised(X, cams[a]), _normalised(X, cams[b]), 1e-3, "magsac", seed=0)
            Rg, tg = relative_transform(cams[a].R, cams[a].t, cams[b].R, cams[b].t)
            assert rotation_angle_deg(p.R, Rg) < 0.05
            # x_b = R x_a + t: the centre of b in a's frame is -R^T t, the paper's t_1to2 direction
            assert angle_between_deg(-p.R.T @ p.t, tg) < 0.05
            assert p.inlier_ratio > 0.99


def test_cheirality_picks_the_one_candidate_with_points_in_front():
    # camera 2 to the right of and turned towards camera 1; truth is not decomposeEssentialMat's first candidate
    C1, C2, target = np.array([0.0, 0, 0]), np.array([3000.0, 0, 500]), np.array([1000.0, 4000, 300])
    R1 = look_at(C1, target)
    R2 = look_at(C2, target)
    rng = np.random.default_rng(4)
    X = target + rng.normal(0, 400, (300, 3))
    x1 = (X - C1) @ R1.T
    x2 = (X - C2) @ R2.T
    x1, x2 = x1[:, :2] / x1[:, 2:3], x2[:, :2] / x2[:, 2:3]
    R_true = R2 @ R1.T
    t_true = R2 @ (C1 - C2)
    t_true /= np.linalg.norm(t_true)
    cands = pose_candidates(essential_from_pose(R_true, t_true))
    truth = [k for k, (R, t) in enumerate(cands) if rotation_angle_deg(R, R_true) < 1e-6 and t @ t_true > 0.999]
    assert len(truth) == 1 and truth[0] != 0  # a naive "first decomposition" pick would be wrong
    p = relative_pose(x1, x2, 1e-3, "ransac", seed=0, refine=False)
    front = np.array(p.scores["cheirality"])
    assert (front < 0.01).sum() == 3 and front.max() > 0.99  # three candidates put the points behind a camera
    assert rotation_angle_deg(p.R, R_true) < 0.05 and p.t @ t_true > 0.9999
    assert not p.scores["ambiguous"]


def test_third_view_consistency_supports_only_the_true_candidate(cams):
    rng = np.random.default_rng(5)
    X = random_poses(100, rng).reshape(-1, 3)
    x = [_normalised(X, c) + rng.normal(0, 2 / 1145, (len(X), 2)) for c in cams[:3]]
    p = relative_pose(x[0], x[1], 6 / 1145, "magsac", third=[(x[0], x[1], x[2])], seed=0, refine=False)
    scores = np.array(p.scores["third_view"])
    k = int(np.argmax(scores))
    assert scores[k] > 0.8 and np.delete(scores, k).max() < 0.05
    Rg, _ = relative_transform(cams[0].R, cams[0].t, cams[1].R, cams[1].t)
    assert k == p.candidate == p.cheirality_candidate
    R, t = pose_candidates(p.E)[k]
    assert rotation_angle_deg(R, Rg) < 0.5
    # the mirrored candidate (same R, -t) explains the same 2D but behind the cameras: no support
    assert third_view_consistency(R, -t, x[0], x[1], x[2], 6 / 1145) == 0.0


# ----------------------------------------------------------------------------- rig
def test_join_views_matches_a_dict_reference():
    rng = np.random.default_rng(6)
    rows = [(a, s, f, c) for a in ("Walk", "Eat") for s in (1, 2) for f in range(5) for c in range(3)]
    rows = [r for r in rows if rng.random() < 0.7]
    perm = rng.permutation(len(rows))
    rows = [rows[i] for i in perm]
    uv = rng.normal(size=(len(rows), 17, 2))
    conf = rng.random((len(rows), 17))
    keys, U, W, dup = join_views(
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows], uv, conf, 3
    )
    assert dup == 0
    ref = {(r[0], r[1], r[2]): {} for r in rows}
    for i, r in enumerate(rows):
        ref[(r[0], r[1], r[2])][r[3]] = (uv[i], conf[i])
    assert len(keys) == len(ref)
    for k, key in enumerate(map(tuple, keys)):
        for c in range(3):
            if c in ref[key]:
                np.testing.assert_array_equal(U[k, c], ref[key][c][0])
                np.testing.assert_array_equal(W[k, c], ref[key][c][1])
            else:
                assert np.isnan(U[k, c]).all() and (W[k, c] == 0).all()
    *_, dup = join_views(["a", "a"], [1, 1], [0, 0], [0, 0], uv[:2], conf[:2], 3)
    assert dup == 1


def test_rig_composes_exactly_and_recovers_h36m_with_noise(cams):
    rng = np.random.default_rng(7)
    v = make_views(random_poses(600, rng), cams, rng, noise_px=3.0, swap=0.01, outliers=0.01)
    rig = build_rig(v, 0, RigOptions(seed=0))
    assert np.allclose(rig.R[0], np.eye(3)) and np.allclose(rig.t[0], 0)
    rot, tdir = rig_errors(rig.R, rig.t, cams)
    assert rot < 1.0 and tdir < 1.0  # before bundle adjustment
    # composition: R_1to3 == R_2to3 R_1to2 and t_1to3 == t_1to2 + R_1to2^T t_2to3 for every triple
    for a, b, c in [(0, 1, 2), (1, 2, 3), (0, 3, 1), (3, 1, 0)]:
        R12, t12 = relative_transform(rig.R[a], rig.t[a], rig.R[b], rig.t[b])
        R23, t23 = relative_transform(rig.R[b], rig.t[b], rig.R[c], rig.t[c])
        R13, t13 = relative_transform(rig.R[a], rig.t[a], rig.R[c], rig.t[c])
        np.testing.assert_allclose(R13, R23 @ R12, atol=1e-12)
        np.testing.assert_allclose(t13, t12 + R12.T @ t23, atol=1e-12)


def test_bundle_adjustment_jacobian_matches_finite_differences(cams):
    rng = np.random.default_rng(8)
    R = np.stack([np.eye(3)] + [c.R @ cams[0].R.T for c in cams[1:]])
    C = np.stack([camera_center(c.R, c.t) for c in cams])
    C = (C - C[0]) @ cams[0].R.T / 1000.0  # reference camera frame, metres-ish units
    t = -np.einsum("vij,vj->vi", R, C)
    X = (random_poses(4, rng).reshape(-1, 3) - camera_center(cams[0].R, cams[0].t)) @ cams[0].R.T / 1000.0
    pt, cam = np.nonzero(np.ones((len(X), 4)))
    uv = np.stack([c.intrinsics for c in cams])[cam, 2:] + rng.normal(0, 50, (len(pt), 2))
    fun, jac, p0, _ = ba_problem(
        R, t, X, pt, cam, uv, rng.random(len(pt)) + 0.5, np.stack([c.intrinsics for c in cams]), 0, 2
    )
    p = p0 + rng.normal(0, 0.05, p0.shape)
    J = jac(p).toarray()
    Jn = approx_derivative(fun, p, method="3-point")
    np.testing.assert_allclose(J, Jn, rtol=1e-5, atol=1e-4 * np.abs(Jn).max())


def test_bundle_adjustment_restores_perturbed_cameras(cams):
    rng = np.random.default_rng(9)
    X = random_poses(40, rng).reshape(-1, 3)
    R0, t0 = cams[0].R, cams[0].t
    R = np.stack([c.R @ R0.T for c in cams])
    t = np.stack([c.t - c.R @ R0.T @ t0 for c in cams])  # reference camera at [I | 0]
    Xr = X @ R0.T + t0
    intr = np.stack([c.intrinsics for c in cams])
    pt, cam = np.nonzero(np.ones((len(X), 4)))
    Xc = np.einsum("mij,mj->mi", R[cam], Xr[pt]) + t[cam]
    uv = Xc[:, :2] / Xc[:, 2:3] * intr[cam, :2] + intr[cam, 2:]
    Rp, tp = R.copy(), t.copy()
    for v in (1, 2, 3):
        Rp[v] = rodrigues(rng.normal(0, np.radians(1), 3)) @ R[v]
        tp[v] = t[v] + rng.normal(0, 50, 3)
    tp[1] *= np.linalg.norm(t[1]) / np.linalg.norm(tp[1])  # the gauge keeps |t_partner|
    res = bundle_adjust(
        Rp, tp, Xr + rng.normal(0, 20, Xr.shape), pt, cam, uv, np.ones(len(pt)), intr, 0, 1, max_nfev=200
    )
    rot, tdir = rig_errors(res.R, res.t, [c.with_extrinsics(R[k], t[k]) for k, c in enumerate(cams)])
    assert rot < 1e-3 and tdir < 1e-3
    assert res.rms_after < 1e-3 < res.rms_before
    assert res.cost_after < res.cost_before


# ----------------------------------------------------------------------------- scale
def test_given_scale_is_exact_for_a_scaled_rig(cams):
    C = np.stack([c.C for c in cams])
    s, spread = given_scale((C - C[0]) / 3700.0, C)
    assert s == pytest.approx(3700.0, rel=1e-12) and spread < 1e-12


def test_body_scale_recovers_the_scale_of_a_prior_sized_skeleton():
    rng = np.random.default_rng(10)
    mean, cv = bone_prior()
    assert len(mean) == len(bones()) == 16 and (cv > 0).all()
    # a skeleton with exactly the prior's bone lengths, random directions, in units of 1/2500 mm
    b = bones()
    J = np.zeros((200, 17, 3))
    for (child, parent), L in zip(b, mean):  # parents come before children in the 17-joint order
        d = rng.normal(size=(200, 3))
        J[:, child] = J[:, parent] + L * d / np.linalg.norm(d, axis=1, keepdims=True)
    info = body_scale(J / 2500.0 + rng.normal(0, 1e-4, J.shape), n_boot=50)
    assert info["value"] == pytest.approx(2500.0, rel=2e-3)
    assert info["uncertainty_rel"] >= BODY_SIZE_CV
    with pytest.raises(ValueError, match="frames"):
        body_scale(np.full((10, 17, 3), np.nan))


# ----------------------------------------------------------------------------- degenerate input
def test_static_person_is_reported(cams):
    rng = np.random.default_rng(11)
    X = np.repeat(random_poses(1, rng), 300, axis=0)
    v = make_views(X, cams, rng, noise_px=1.0)
    pairs = estimate_pairs(v, RigOptions())
    assert all(pe.warning and "static person" in pe.warning for pe in pairs.values())
    with pytest.raises(CalibrationError, match="static person"):
        build_rig(v, 0, RigOptions())
    assert motion_spread(v.uv[:, 0]) < 0.02 < motion_spread(make_views(random_poses(300, rng), cams).uv[:, 0])


def test_coplanar_correspondences_are_refused(cams):
    rng = np.random.default_rng(12)
    X = random_poses(300, rng)
    X[..., 2] = 1000.0  # every joint on one horizontal plane
    with pytest.raises(CalibrationError, match="coplanar"):
        build_rig(make_views(X, cams, rng, noise_px=0.5), 0, RigOptions())


def test_too_few_frames_and_no_overlap(cams):
    rng = np.random.default_rng(13)
    v = make_views(random_poses(5, rng), cams)
    with pytest.raises(CalibrationError, match="too little overlap"):
        build_rig(v, 0, RigOptions())
    # camera 3 never sees a joint at the same time as the others: it cannot be connected
    v = make_views(random_poses(400, rng), cams)
    v.conf[:200, 3] = 0
    v.conf[200:, :3] = 0
    v.conf[200:, 0] = 1
    v.uv[v.conf == 0] = np.nan
    with pytest.raises(CalibrationError, match="camera 60457274 cannot be connected"):
        build_rig(v, 0, RigOptions())


def test_nans_are_ignored(cams):
    rng = np.random.default_rng(14)
    v = make_views(random_poses(300, rng), cams, rng, noise_px=1.0)
    drop = rng.random(v.conf.shape) < 0.3
    v.uv[drop] = np.nan
    v.conf[drop] = 0
    rig = build_rig(v, 1, RigOptions())
    assert max(rig_errors(rig.R, rig.t, cams)) < 0.5
