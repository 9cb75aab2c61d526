"""Camera geometry against OpenCV and identities."""

import cv2
import numpy as np
import pytest

from mvtools import camera as cg
from mvtools import rotations as rot
from mvtools.h36m_cameras import h36m_cameras, h36m_rig


def _points(rng, n=200):
    # A person-sized cloud around the H36M capture centre (world mm, Z up).
    return rng.uniform([-1500, -1500, 0], [1500, 1500, 1900], size=(n, 3))


def test_quaternion_matches_rodrigues_and_is_orthonormal():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(50, 4))
    R = rot.quat_to_rotmat(q)
    assert np.allclose(R @ np.swapaxes(R, -1, -2), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(R), 1.0)
    rv = rot.rotmat_to_rodrigues(R)
    assert np.allclose(rot.rodrigues(rv), R, atol=1e-10)
    for r, v in zip(R[:5], rv[:5]):
        assert np.allclose(cv2.Rodrigues(v)[0], r, atol=1e-10)


def test_world_camera_round_trip_and_center():
    rng = np.random.default_rng(1)
    X = _points(rng)
    for cam in h36m_cameras():
        Xc = cg.world_to_camera(X, cam.R, cam.t)
        assert np.allclose(cg.camera_to_world(Xc, cam.R, cam.t), X, atol=1e-9)
        assert np.allclose(cg.world_to_camera(cam.C, cam.R, cam.t), 0, atol=1e-9)
        assert (Xc[:, 2] > 0).all()  # the capture volume is in front of every H36M camera


def test_projection_matches_opencv_without_tangential():
    rng = np.random.default_rng(2)
    X = _points(rng)
    for cam in h36m_cameras():
        cam0 = cg.Camera(**{**cam.__dict__, "p": (0.0, 0.0)})
        ours = cg.project(X, cam0)
        rvec = cv2.Rodrigues(cam.R)[0]
        dist = np.array([cam.k[0], cam.k[1], 0.0, 0.0, cam.k[2]])
        ref = cv2.projectPoints(X, rvec, cam.t, cam.K, dist)[0][:, 0]
        assert np.abs(ours - ref).max() < 0.01


def test_opencv_model_matches_opencv_exactly():
    rng = np.random.default_rng(3)
    X = _points(rng)
    cam = h36m_rig("S1")["54138969"]
    camo = cg.Camera(**{**cam.__dict__, "distortion_model": "opencv", "p": (0.0012, -0.0008)})
    rvec = cv2.Rodrigues(cam.R)[0]
    ref = cv2.projectPoints(X, rvec, cam.t, camo.K, camo.opencv_distortion())[0][:, 0]
    assert np.abs(cg.project(X, camo) - ref).max() < 1e-6


def test_h36m_distortion_is_videopose3d_formula():
    # Hand-evaluated VideoPose3D project_to_2d on one point.
    cam = h36m_rig("S5")["55011271"]
    Xc = np.array([[300.0, -200.0, 4000.0]])
    x, y = 300 / 4000, -200 / 4000
    r2 = x * x + y * y
    k1, k2, k3 = cam.k
    t0, t1 = cam.p
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    tan = t0 * x + t1 * y
    u = cam.fx * (x * (radial + tan) + t0 * r2) + cam.cx
    v = cam.fy * (y * (radial + tan) + t1 * r2) + cam.cy
    assert np.allclose(cg.project_camera_frame(Xc, cam)[0], [u, v], atol=1e-9)


@pytest.mark.parametrize("model", ["h36m", "opencv"])
def test_undistort_inverts_distort(model):
    rng = np.random.default_rng(4)
    cam = h36m_rig("S9")["60457274"]
    cam = cg.Camera(**{**cam.__dict__, "distortion_model": model})
    X = _points(rng)
    Xc = cg.world_to_camera(X, cam.R, cam.t)
    pinhole = cg.project_pinhole(Xc, cam.intrinsics)
    assert np.abs(cg.undistort_pixels(cg.project(X, cam), cam) - pinhole).max() < 1e-6


def test_relative_transform_composes_and_maps_camera_frames():
    rng = np.random.default_rng(5)
    X = _points(rng, 17)
    rig = list(h36m_rig("S1").values())
    c1, c2, c3 = rig[:3]
    R12, t12 = cg.relative_transform(c1.R, c1.t, c2.R, c2.t)
    R23, t23 = cg.relative_transform(c2.R, c2.t, c3.R, c3.t)
    R13, t13 = cg.relative_transform(c1.R, c1.t, c3.R, c3.t)
    Y1 = cg.world_to_camera(X, c1.R, c1.t)
    Y2 = cg.world_to_camera(X, c2.R, c2.t)
    assert np.abs(cg.apply_relative(Y1, R12, t12) - Y2).max() < 1e-9
    assert np.allclose(R13, R23 @ R12, atol=1e-12)
    # eq. 4 inverse: R_2to1 = R_1to2^T and tau_21(tau_12(Y)) = Y
    R21, t21 = cg.relative_transform(c2.R, c2.t, c1.R, c1.t)
    assert np.allclose(R21, R12.T, atol=1e-12)
    assert np.abs(cg.apply_relative(cg.apply_relative(Y1, R12, t12), R21, t21) - Y1).max() < 1e-9


def test_look_at_has_no_roll_and_points_at_target():
    C = np.array([[4000.0, 2000.0, 1500.0], [-3000, 4000, 1600]])
    target = np.array([0.0, 0.0, 900.0])
    R = cg.look_at(C, target)
    t = cg.tvec_from_center(R, C)
    for Ri, ti in zip(R, t):
        Xc = cg.world_to_camera(target, Ri, ti)
        assert np.allclose(Xc[:2], 0, atol=1e-9) and Xc[2] > 0
        assert abs(Ri[0, 2]) < 1e-12  # camera x axis horizontal: no roll
        assert np.allclose(Ri @ Ri.T, np.eye(3))


def test_rotation_angle():
    R = rot.rodrigues(np.array([0, 0, np.radians(30)]))
    assert np.isclose(rot.rotation_angle_deg(np.eye(3), R), 30)
    assert np.isclose(rot.angle_between_deg(np.array([1.0, 0, 0]), np.array([0, 1.0, 0])), 90)


def test_planar_rotation_is_the_xy_part_of_a_rotation_about_z():
    from mvtools.rotations import axis_rotation, rodrigues, rotate_xy

    rng = np.random.default_rng(0)
    v, deg = rng.normal(size=(50, 2)), rng.uniform(-360, 360, 50)
    v3 = np.concatenate([v, np.zeros((50, 1))], -1)
    turned = np.einsum("nij,nj->ni", axis_rotation("Z", deg), v3)
    np.testing.assert_allclose(rotate_xy(v, np.radians(deg)), turned[:, :2], atol=1e-12)
    np.testing.assert_allclose(rotate_xy([1.0, 0.0], np.pi / 2), [0.0, 1.0], atol=1e-15)  # x turns towards y
    R = rodrigues(np.stack([np.zeros(50), np.zeros(50), np.radians(deg)], -1))
    np.testing.assert_allclose(axis_rotation("Z", deg), R, atol=1e-12)


def test_nearest_rotation_projects_onto_so3():
    from mvtools.rotations import nearest_rotation, rodrigues, rotation_angle_deg

    rng = np.random.default_rng(1)
    R = rodrigues(rng.normal(size=(20, 3)))
    np.testing.assert_allclose(nearest_rotation(np.round(R, 6)), R, atol=2e-6)  # a printed matrix, rounded
    M = nearest_rotation(R.sum(0))  # chordal mean of rotations close to each other
    assert abs(np.linalg.det(M) - 1) < 1e-12 and np.allclose(M @ M.T, np.eye(3), atol=1e-12)
    Q = nearest_rotation(-np.eye(3))  # det -1 in, a proper rotation out
    assert abs(np.linalg.det(Q) - 1) < 1e-12
    assert rotation_angle_deg(np.eye(3), nearest_rotation(np.eye(3) * 2)) < 1e-9
