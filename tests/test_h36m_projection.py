"""The H36M camera model used by ingest and synth, against OpenCV and an independent VideoPose3D-formula port."""

import json
from importlib import resources

import cv2
import numpy as np
import pytest

from mvtools.camera import project
from mvtools.h36m_cameras import H36M_CAMERA_IDS, H36M_SUBJECTS, h36m_rig
from mvtools.ingest.h36m.cdf import read_pose_cdf
from mvtools.ingest.h36m.reader import ingest_h36m
from mvtools.synth.h36m import write_raw_sequence

JSON = json.loads(resources.files("mvtools").joinpath("data/h36m_cameras.json").read_text())


def points(n=200, seed=0):
    """World points (n, 3) mm inside the H36M capture volume (near the origin, floor to head height)."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(-1500, 1500, n), rng.uniform(-1500, 1500, n), rng.uniform(0, 1900, n)], -1)


def qrot(q, v):
    """Rotate vectors v (n, 3) by the unit quaternion q = [w, x, y, z] (VideoPose3D's qrot formula)."""
    w, u = q[0], np.asarray(q[1:])
    uv = np.cross(u, v)
    return v + 2 * (w * uv + np.cross(u, uv))


def vp3d_project(X, subject, cam_id):
    """VideoPose3D world_to_camera + project_to_2d, written from h36m_cameras.json's notes (not from mvtools)."""
    e = JSON["extrinsics"][subject][cam_id]
    i = JSON["intrinsics"][cam_id]
    q = np.array(e["orientation"])
    q_inv = q * np.array([1, -1, -1, -1])
    Xc = qrot(q_inv, X - np.array(e["translation"]))
    xx = np.clip(Xc[:, :2] / Xc[:, 2:], -1, 1)
    r2 = (xx**2).sum(1, keepdims=True)
    k, p = i["radial_distortion"], np.array(i["tangential_distortion"])
    radial = 1 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3
    tan = (xx * p).sum(1, keepdims=True)
    xxx = xx * (radial + tan) + p * r2
    return xxx * np.array(i["focal_length"]) + np.array(i["center"])


@pytest.mark.parametrize("subject", H36M_SUBJECTS)
def test_against_opencv_without_tangential(subject):
    X = points()
    for cam in h36m_rig(subject).values():
        cam0 = type(cam)(**{**cam.__dict__, "p": (0.0, 0.0)})
        ours = project(X, cam0)
        rvec = cv2.Rodrigues(np.ascontiguousarray(cam.R))[0]
        dist = np.array([cam.k[0], cam.k[1], 0.0, 0.0, cam.k[2]])
        ref = cv2.projectPoints(X.reshape(-1, 1, 3), rvec, cam.t.reshape(3, 1), cam.K, dist)[0].reshape(-1, 2)
        assert np.abs(ours - ref).max() < 0.01


@pytest.mark.parametrize("subject", ["S1", "S9"])
def test_against_videopose3d_formula(subject):
    X = points(seed=1)
    for cam_id, cam in h36m_rig(subject).items():
        # VideoPose3D does not renormalise its float32 quaternions (|q| - 1 ~ 3e-8): ~5e-5 px apart
        np.testing.assert_allclose(project(X, cam), vp3d_project(X, subject, cam_id), atol=1e-3)


def test_tangential_terms_matter():
    # the H36M tangential form is not OpenCV's: with the nearest OpenCV vector they differ, but by < 1 px
    X = points(seed=2)
    cam = h36m_rig("S5")["55011271"]
    rvec = cv2.Rodrigues(np.ascontiguousarray(cam.R))[0]
    ref = cv2.projectPoints(X.reshape(-1, 1, 3), rvec, cam.t.reshape(3, 1), cam.K, cam.opencv_distortion())[0].reshape(
        -1, 2
    )
    d = np.abs(project(X, cam) - ref).max()
    assert 1e-4 < d < 1.0


def test_d2_files_agree_with_reprojection(tmp_path):
    """D2 files written in the raw layout match the independent H36M projection of the D3 file, and ingest
    reports the deviation it measured."""
    rng = np.random.default_rng(3)
    j = points(32 * 20, seed=3).reshape(20, 32, 3) * np.array([0.3, 0.3, 1.0]) + rng.normal(0, 1, (1, 1, 3))
    write_raw_sequence(tmp_path / "raw", "S11", "Smoking 2", j, h36m_rig("S11"))
    d3 = read_pose_cdf(tmp_path / "raw/S11/MyPoseFeatures/D3_Positions/Smoking 2.cdf", 96).reshape(-1, 3)
    for cam_id in H36M_CAMERA_IDS:
        d2 = read_pose_cdf(tmp_path / f"raw/S11/MyPoseFeatures/D2_Positions/Smoking 2.{cam_id}.cdf", 64)
        np.testing.assert_allclose(d2.reshape(-1, 2), vp3d_project(d3, "S11", cam_id), atol=1e-3)
    s = ingest_h36m(tmp_path / "raw", tmp_path / "ds")
    assert s["gt2d"]["from_d2_files"] == 4 and s["gt2d"]["d2_max_deviation_px"] < 1e-6


def test_d2_disagreement_reported(tmp_path):
    j = points(32 * 10, seed=4).reshape(10, 32, 3) * np.array([0.3, 0.3, 1.0])
    rig = h36m_rig("S7")
    write_raw_sequence(tmp_path / "raw", "S7", "Walking 2", j, rig)
    # a D2 file from a different calibration (S1's rig) disagrees by many px and is reported, not silently used
    write_raw_sequence(tmp_path / "other", "S7", "Walking 2", j, {"58860488": h36m_rig("S1")["58860488"]})
    src = tmp_path / "other/S7/MyPoseFeatures/D2_Positions/Walking 2.58860488.cdf"
    src.replace(tmp_path / "raw/S7/MyPoseFeatures/D2_Positions/Walking 2.58860488.cdf")
    s = ingest_h36m(tmp_path / "raw", tmp_path / "ds")
    bad = [n for n in s["notes"] if n["issue"] == "d2_projection"]
    assert len(bad) == 1 and bad[0]["file"].endswith("Walking 2.58860488.cdf")
    assert s["gt2d"]["d2_max_deviation_px"] > 5 and s["gt2d"]["d2_worst_file"].endswith("58860488.cdf")
