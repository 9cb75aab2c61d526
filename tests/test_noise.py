"""Detector noise model: exactness without noise, configured statistics, occlusion, confidence, JSON."""

import json

import cv2
import numpy as np
import pytest
from scipy.stats import spearmanr

from mvtools.camera import Camera, look_at, project, tvec_from_center, world_to_camera
from mvtools.h36m_cameras import h36m_rig
from mvtools.skeleton import H36M17_FLIP, H36M32_TO_17
from mvtools.synth.noise import NoiseParams, occlusion_mask, resolve_noise, simulate_detections


def _pinhole(C=(0.0, -5000.0, 1000.0), target=(0.0, 0.0, 1000.0), model="none", k=(0, 0, 0), p=(0, 0)):
    R = look_at(np.array(C), np.array(target))
    return Camera(
        "cam",
        1000,
        1000,
        1150.0,
        1150.0,
        500.0,
        500.0,
        R=R,
        t=tvec_from_center(R, np.array(C)),
        k=k,
        p=p,
        distortion_model=model,
    )


def _flat_points(cam, T, depth, rng):
    """T frames of 17 joints spread in the image, all exactly ``depth`` mm in front of ``cam`` (world mm)."""
    xy = rng.uniform(-0.15, 0.15, (T, 17, 2)) * depth
    Xc = np.concatenate([xy, np.full((T, 17, 1), depth)], -1)
    return (Xc - cam.t) @ cam.R  # camera -> world


def _only(**kw):
    return NoiseParams(**kw)


def _motion17(T=600, activity="discussion", seed=0):
    from mvtools.synth.motion import generate_motion, random_body

    rng = np.random.default_rng(seed)
    return generate_motion(activity, T, random_body(rng), rng)[:, H36M32_TO_17]


# ----------------------------------------------------------------------------- exactness
def test_none_gives_exact_projection_and_unit_confidence():
    X = _motion17(200)
    for cam in h36m_rig("S9").values():
        for params in (NoiseParams.none(), None):
            uv, conf = simulate_detections(X, cam, params, np.random.default_rng(0))
            assert np.array_equal(uv, project(X, cam))
            assert conf.dtype == np.float32 and np.all(conf == 1.0)


def test_none_matches_opencv_projection():
    cam = _pinhole(model="opencv", k=(-0.2, 0.1, 0.01), p=(0.001, -0.002))
    X = _motion17(50)
    uv, _ = simulate_detections(X, cam, NoiseParams.none(), np.random.default_rng(0))
    rvec = cv2.Rodrigues(cam.R)[0]
    ref = cv2.projectPoints(X.reshape(-1, 3), rvec, cam.t, cam.K, cam.opencv_distortion())[0].reshape(uv.shape)
    assert np.allclose(uv, ref, atol=1e-6)


def test_deterministic_per_rng_and_bad_shape():
    X = _motion17(100)
    cam = h36m_rig("S1")["54138969"]
    a = simulate_detections(X, cam, NoiseParams.realistic(), np.random.default_rng(7))
    b = simulate_detections(X, cam, NoiseParams.realistic(), np.random.default_rng(7))
    c = simulate_detections(X, cam, NoiseParams.realistic(), np.random.default_rng(8))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.allclose(a[0], c[0])
    with pytest.raises(ValueError, match=r"\(T, 17, 3\)"):
        simulate_detections(X[:, :16], cam, NoiseParams.realistic(), np.random.default_rng(0))


# ----------------------------------------------------------------------------- statistics
def test_std_per_joint_at_reference_depth_and_depth_scaling():
    rng = np.random.default_rng(0)
    cam = _pinhole()
    scale = np.linspace(0.5, 2.0, 17)
    params = _only(std_px=4.0, joint_scale=scale.tolist(), ref_depth_mm=5000.0)
    T = 6000
    for depth, factor in ((5000.0, 1.0), (10000.0, 0.5), (2500.0, 2.0)):
        X = _flat_points(cam, T, depth, rng)
        uv, _ = simulate_detections(X, cam, params, rng)
        err = uv - project(X, cam)
        std = err.std(axis=0)  # (17, 2) per joint and axis
        expected = 4.0 * scale * factor
        assert np.allclose(std, expected[:, None], rtol=0.05), (depth, std[:, 0], expected)
        assert np.abs(err.mean(axis=0)).max() < 0.1 * expected.min()


def test_ar1_autocorrelation_matches_correlation_time():
    rng = np.random.default_rng(1)
    cam = _pinhole()
    T = 20000
    X = np.repeat(_flat_points(cam, 1, 5000.0, rng), T, axis=0)
    for tau in (1.0, 4.0, 10.0):
        uv, _ = simulate_detections(X, cam, _only(std_px=3.0, corr_frames=tau), rng)
        e = (uv - project(X, cam)).reshape(T, -1)
        e = e - e.mean(0)
        for lag in (1, 3):
            r = (e[lag:] * e[:-lag]).sum(0) / (e * e).sum(0)
            assert abs(r.mean() - np.exp(-lag / tau)) < 0.02, (tau, lag, r.mean())
        assert np.allclose(e.std(0), 3.0, rtol=0.1)  # stationary: same std as white noise
    # frame counts refer to ref_fps: at 25 fps a 4-frame (at 50 fps) correlation time is 2 frames
    uv, _ = simulate_detections(X, cam, _only(std_px=3.0, corr_frames=4.0, ref_fps=50.0), rng, fps=25.0)
    e = (uv - project(X, cam)).reshape(T, -1)
    r = (e[1:] * e[:-1]).sum(0) / (e * e).sum(0)
    assert abs(r.mean() - np.exp(-1 / 2.0)) < 0.02


def _runs(mask):
    """Lengths of True runs along axis 0 of a (T, K) bool array."""
    out = []
    for col in mask.T:
        d = np.diff(np.concatenate([[0], col.astype(int), [0]]))
        out += list(np.flatnonzero(d == -1) - np.flatnonzero(d == 1))
    return np.array(out)


def test_outlier_rate_magnitude_and_duration():
    rng = np.random.default_rng(2)
    cam = _pinhole()
    T = 20000
    X = np.repeat(_flat_points(cam, 1, 5000.0, rng), T, axis=0)
    params = _only(outlier_prob=0.01, outlier_px=60.0, outlier_frames=3.0)
    uv, _ = simulate_detections(X, cam, params, rng)
    err = np.linalg.norm(uv - project(X, cam), axis=-1)
    out = err > 1e-6
    assert abs(out.mean() - 0.01) < 0.0015, out.mean()
    assert err[out].min() >= 0.5 * 60 - 1e-6 and err[out].max() <= 1.5 * 60 + 1e-6
    assert abs(err[out].mean() - 60.0) < 3.0
    runs = _runs(out)
    assert 2.5 < runs.mean() < 3.6, runs.mean()


def test_swap_rate_whole_limb_pairs():
    rng = np.random.default_rng(3)
    cam = h36m_rig("S1")["54138969"]
    X = _motion17(20000, "walking", 5)
    uv, _ = simulate_detections(X, cam, _only(swap_prob=0.02, swap_frames=4.0), rng)
    gt = project(X, cam)
    swapped = np.all(np.isclose(uv, gt[:, H36M17_FLIP], atol=1e-9), axis=-1)  # (T, 17) joint shows its mirror
    exact = np.all(np.isclose(uv, gt, atol=1e-9), axis=-1)
    assert np.all(swapped | exact)
    legs, arms = swapped[:, [1, 2, 3, 4, 5, 6]], swapped[:, [11, 12, 13, 14, 15, 16]]
    assert np.all(legs == legs[:, :1]) and np.all(arms == arms[:, :1])  # whole pairs swap together
    for pair in (legs[:, 0], arms[:, 0]):
        assert abs(pair.mean() - 0.02) < 0.006, pair.mean()
        assert 3.0 < _runs(pair[:, None]).mean() < 5.2
    assert not np.any(swapped[:, [0, 7, 8, 9, 10]] & ~exact[:, [0, 7, 8, 9, 10]])


def test_confidence_falls_with_error_and_on_occlusion():
    X = _motion17(1500, "greeting", 4)
    cam = h36m_rig("S5")["58860488"]
    uv, conf = simulate_detections(X, cam, NoiseParams.realistic(), np.random.default_rng(4))
    err = np.linalg.norm(uv - project(X, cam), axis=-1)
    assert conf.min() >= 0 and conf.max() <= 1
    rho = spearmanr(err.ravel(), conf.ravel())[0]
    assert rho < -0.4, rho
    big = err > 30
    assert conf[big].mean() < 0.3 < conf[err < 3].mean()
    occ = occlusion_mask(world_to_camera(X, cam.R, cam.t))
    assert 0.01 < occ.mean() < 0.4
    assert conf[occ].mean() < conf[~occ].mean()
    assert np.median(err[occ]) > 1.3 * np.median(err[~occ])


def test_realistic_error_is_a_few_pixels(synth_ds):
    from mvtools.dataset import joints_to_numpy, read_poses2d

    gt = read_poses2d(synth_ds, ["S1"], source="gt").sort_by(
        [("action", "ascending"), ("camera", "ascending"), ("frame", "ascending")]
    )
    det = read_poses2d(synth_ds, ["S1"], source="detected").sort_by(
        [("action", "ascending"), ("camera", "ascending"), ("frame", "ascending")]
    )
    a, b = joints_to_numpy(gt["joints2d"], 2), joints_to_numpy(det["joints2d"], 2)
    err = np.linalg.norm(a - b, axis=-1)
    assert 2.0 < np.median(err) < 8.0
    assert np.percentile(err, 99) < 100


# ----------------------------------------------------------------------------- occlusion
def _person_facing_camera():
    """A T-pose-like 17-joint person in camera coordinates facing the camera, 4 m away (mm)."""
    J = np.zeros((17, 3))
    J[:, 2] = 4000.0
    # x right (image), y down; the person's left is image right when facing the camera
    pts = {
        0: (0, 0),
        1: (-130, 0),
        2: (-130, 450),
        3: (-130, 890),
        4: (130, 0),
        5: (130, 450),
        6: (130, 890),
        7: (0, -230),
        8: (0, -480),
        9: (0, -590),
        10: (0, -700),
        11: (170, -470),
        12: (450, -470),
        13: (700, -470),
        14: (-170, -470),
        15: (-450, -470),
        16: (-700, -470),
    }
    for j, (x, y) in pts.items():
        J[j, :2] = (x, y)
    return J


def test_occlusion_hand_cases():
    J = _person_facing_camera()
    assert not occlusion_mask(J[None]).any()  # nothing hidden in a T-pose facing the camera
    behind = J.copy()
    behind[13] = (40, -250, 4150)  # left wrist behind the chest
    front = J.copy()
    front[13] = (40, -250, 3850)  # left wrist in front of the chest
    m = occlusion_mask(np.stack([behind, front]))
    assert m[0, 13] and not m[1, 13]
    assert not m[:, [0, 1, 4, 7, 8, 11, 14]].any()  # torso joints are never hidden by the torso itself
    # the far knee straight behind the near thigh (side view: both legs on one image line)
    side = J.copy()
    side[[4, 5, 6], 0] = side[[1, 2, 3], 0]
    side[[4, 5, 6], 2] += 300
    m = occlusion_mask(side[None])[0]
    assert m[5] and m[6] and not m[2] and not m[3]
    # a forearm crossing in front of the face hides the nose/neck joint but not when it is behind
    face = J.copy()
    face[12], face[13] = (-200, -590, 3700), (200, -590, 3700)
    assert occlusion_mask(face[None])[0, 9]
    face[12, 2] = face[13, 2] = 4300
    assert not occlusion_mask(face[None])[0, 9]


# ----------------------------------------------------------------------------- parameters
def test_json_round_trip_and_presets(tmp_path):
    p = NoiseParams.realistic()
    assert 3.0 <= p.std_px <= 6.0 and not p.is_none and NoiseParams.none().is_none
    p.to_json(tmp_path / "n.json")
    q = NoiseParams.from_json(tmp_path / "n.json")
    assert q == p
    assert resolve_noise("realistic") == p and resolve_noise("none") is None
    assert resolve_noise(str(tmp_path / "n.json")) == p


@pytest.mark.parametrize(
    "content, match",
    [
        ('{"std_px": 3, "bogus": 1}', "unknown noise parameter"),
        ('{"std_px": -1}', "std_px"),
        ('{"outlier_prob": 2}', "outlier_prob"),
        ('{"joint_scale": [1, 2]}', "joint_scale"),
        ('{"std_px": 3', "not valid JSON"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_bad_json_names_file_and_field(tmp_path, content, match):
    f = tmp_path / "bad.json"
    f.write_text(content)
    with pytest.raises(ValueError, match=match) as e:
        NoiseParams.from_json(f)
    assert str(f) in str(e.value)
    with pytest.raises(ValueError, match="missing.json"):
        NoiseParams.from_json(tmp_path / "missing.json")


def test_realistic_json_documents_every_field():
    from dataclasses import fields
    from importlib import resources

    d = json.loads(resources.files("mvtools").joinpath("data/noise_realistic.json").read_text())
    assert {f.name for f in fields(NoiseParams)} == {k for k in d if not k.startswith("_")}


def test_joints_outside_the_image_are_clipped_with_zero_confidence():
    cam = _pinhole()
    rng = np.random.default_rng(5)
    X = _flat_points(cam, 50, 5000.0, rng)
    X[:, 3] = X[:, 3] + (0.0, 0.0, 6000.0)  # the right ankle far above the field of view
    assert (project(X, cam)[:, 3, 1] < 0).all()
    uv, conf = simulate_detections(X, cam, _only(std_px=2.0), rng)
    assert np.all(conf[:, 3] == 0) and np.all(conf[:, [0, 1, 2, 4]] > 0.99)
    assert np.all((uv >= 0) & (uv <= [cam.width - 1, cam.height - 1]))
    assert np.allclose(uv[:, 3, 1], 0.0)
