"""Procedural motion (anatomy, floor contact, capture area, determinism) and the synthetic dataset builder."""

import numpy as np
import pytest

from mvtools.skeleton import H36M32_NAMES, H36M32_PARENTS, bone_lengths
from mvtools.synth import motion

T = 250


@pytest.fixture(scope="module")
def sequences():
    """One sequence per activity, each with its own random body: {activity: (body, joints (T, 32, 3))}."""
    out = {}
    for i, a in enumerate(motion.ACTIVITIES):
        rng = np.random.default_rng(100 + i)
        body = motion.random_body(rng)
        out[a] = (body, motion.generate_motion(a, T, body, rng))
    return out


def _body_frame(X):
    """Per-frame (forward, left) unit vectors in the floor plane, from the feet alone (toe base - ankle)."""
    f = (X[:, 4] - X[:, 3]) + (X[:, 9] - X[:, 8])
    f[:, 2] = 0
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    left = np.cross(np.array([0.0, 0.0, 1.0]), f)
    return f, left


def test_activities_cover_h36m_actions():
    actions = [
        "Directions",
        "Discussion",
        "Eating",
        "Greeting",
        "Phoning",
        "Photo",
        "Posing",
        "Purchases",
        "Sitting",
        "SittingDown",
        "Smoking",
        "Waiting",
        "WalkDog",
        "Walking",
        "WalkTogether",
    ]
    assert sorted(motion.H36M_ACTION_TO_ACTIVITY) == sorted(actions)
    assert set(motion.H36M_ACTION_TO_ACTIVITY.values()) <= set(motion.ACTIVITIES)
    with pytest.raises(ValueError, match="unknown activity"):
        motion.generate_motion("juggling", 10, motion.random_body(np.random.default_rng(0)), np.random.default_rng(0))


def test_random_bodies_are_adult_and_varied():
    rng = np.random.default_rng(0)
    bodies = [motion.random_body(rng) for _ in range(300)]
    h = np.array([b.height_mm for b in bodies])
    femur = np.array([b.femur_mm for b in bodies])
    assert h.min() >= 1500 and h.max() <= 2000 and h.std() > 50
    assert femur.min() >= 380 - 1e-9 and femur.max() <= 500 + 1e-9
    b = bodies[0]
    # left and right limbs have the same lengths (mirror image offsets)
    for left, right in [(6, 1), (7, 2), (8, 3), (17, 25), (18, 26), (19, 27)]:
        assert np.allclose(b.offsets[left], b.offsets[right] * [1, -1, 1])


@pytest.mark.parametrize("activity", motion.ACTIVITIES)
def test_anatomy_per_activity(sequences, activity):
    body, X = sequences[activity]
    assert X.shape == (T, 32, 3) and np.isfinite(X).all()
    # constant bone lengths, equal to the body's offsets
    bl = bone_lengths(X, H36M32_PARENTS)
    ref = np.linalg.norm(body.offsets[1:], axis=1)
    nz = ref > 0
    assert np.abs(bl[:, nz] / ref[nz] - 1).max() < 1e-6
    # duplicated joints coincide, as in the real files
    for j, k in motion.DUPLICATE_JOINTS.items():
        assert np.abs(X[:, j] - X[:, k]).max() < 1e-6, (H36M32_NAMES[j], H36M32_NAMES[k])
    # feet on the floor: the lowest foot point touches z = 0 in every frame, nothing below the floor
    feet = X[:, [3, 4, 5, 8, 9, 10], 2]
    assert feet.min() > -1e-6
    assert np.all(feet.min(axis=1) < 100)
    assert X[..., 2].min() > -1e-6
    # upright: head top above the pelvis, torso mostly vertical
    assert np.all(X[:, 15, 2] > X[:, 0, 2] + 300)
    torso = X[:, 13] - X[:, 0]
    tilt = np.degrees(np.arccos(torso[:, 2] / np.linalg.norm(torso, axis=1)))
    assert np.mean(tilt < 45) > 0.5 and tilt.max() < 80
    # inside the capture area
    assert np.linalg.norm(X[:, 0, :2], axis=1).max() < 2000
    # left on the left: body frame from the feet, hips/shoulders/hands on the correct sides
    fwd, left = _body_frame(X)
    side = lambda j: ((X[:, j] - X[:, 0]) * left).sum(-1)  # noqa: E731
    assert np.all(side(6) > 0) and np.all(side(1) < 0)  # hips
    assert np.mean(side(17) > side(25)) > 0.98  # shoulders
    # feet, except while turning fast (a planted foot can cross behind in a tight turn)
    hips = X[:, 6, :2] - X[:, 1, :2]
    turn = np.abs(np.gradient(np.unwrap(np.arctan2(hips[:, 1], hips[:, 0])))) * 50.0  # rad/s
    calm = turn < np.radians(45)
    assert calm.mean() > 0.3 and np.mean(side(8)[calm] > side(3)[calm]) > 0.9
    # the upper body faces the way the feet point, and the nose is in front of the thorax
    chest = np.cross(X[:, 17] - X[:, 25], np.array([0.0, 0.0, 1.0]))
    chest /= np.linalg.norm(chest, axis=1, keepdims=True)
    assert np.mean((chest * fwd).sum(-1) > 0.5) > 0.95
    assert np.mean(((X[:, 14] - X[:, 13]) * chest).sum(-1) > 0) > 0.95


@pytest.mark.parametrize("activity", motion.ACTIVITIES)
def test_motion_is_not_a_statue(sequences, activity):
    _, X = sequences[activity]
    rel = X - X[:, :1]
    assert rel.std(axis=0).mean() > 20  # mm of pose change around the root
    speed = np.linalg.norm(np.diff(X, axis=0), axis=-1) * 50.0  # mm/s
    assert np.percentile(speed, 99.9) < 9000  # but no teleporting joints (a fast wave is ~5 m/s)


def test_walking_covers_ground_and_turns(sequences):
    _, X = sequences["walking"]
    step = np.linalg.norm(np.diff(X[:, 0, :2], axis=0), axis=1) * 50.0
    assert 800 < np.median(step) < 1700  # mm/s
    heading = np.unwrap(np.arctan2(*np.diff(X[::10, 0, :2], axis=0).T[::-1]))
    assert np.ptp(heading) > np.radians(60)
    # feet alternate: each foot is the lower one for a good part of the time
    lower_left = X[:, 8, 2] < X[:, 3, 2]
    assert 0.2 < lower_left.mean() < 0.8


def test_deterministic_per_rng():
    body = motion.random_body(np.random.default_rng(5))
    a = motion.generate_motion("posing", 120, body, np.random.default_rng(1))
    b = motion.generate_motion("posing", 120, body, np.random.default_rng(1))
    c = motion.generate_motion("posing", 120, body, np.random.default_rng(2))
    assert np.array_equal(a, b) and not np.allclose(a, c)


def test_fps_and_length_validation():
    body = motion.random_body(np.random.default_rng(0))
    assert motion.generate_motion("walking", 1, body, np.random.default_rng(0)).shape == (1, 32, 3)
    for bad in ({"n_frames": 0}, {"n_frames": 5, "fps": 0}):
        with pytest.raises(ValueError):
            motion.generate_motion("walking", bad["n_frames"], body, np.random.default_rng(0), fps=bad.get("fps", 50.0))


# ----------------------------------------------------------------------------- synth
def test_synth_sequences_deterministic_and_order_independent():
    from mvtools.synth.dataset import synth_sequences

    a = {(s, act, sub): X for s, act, sub, _, X in synth_sequences(["S1", "S5"], 3, 60, seed=0)}
    b = {(s, act, sub): X for s, act, sub, _, X in synth_sequences(["S5"], 2, 60, seed=0)}
    c = {(s, act, sub): X for s, act, sub, _, X in synth_sequences(["S5"], 2, 60, seed=1)}
    assert len(a) == 6 and len(b) == 2
    for k, X in b.items():
        assert np.array_equal(a[k], X)
    assert set(c) != set(b) or any(not np.allclose(c[k], b[k]) for k in b)
    names = [(act, sub, raw) for _, act, sub, raw, _ in synth_sequences(["S9"], 30, 2, seed=0)]
    assert len({(a_, s_) for a_, s_, _ in names}) == 30  # all 15 actions x 2 subactions, no repeats
    assert all(raw == f"{a_} {s_}" for a_, s_, raw in names)
    # one body per subject: the same bone lengths in every sequence of a subject
    seqs = [X for s, *_, X in synth_sequences(["S1"], 3, 20, seed=0)]
    lens = [bone_lengths(X[0], H36M32_PARENTS) for X in seqs]
    assert np.allclose(lens[0], lens[1]) and np.allclose(lens[0], lens[2])


def test_synth_dataset_contents(synth_ds, synth_ds_clean):
    from mvtools.camera import project
    from mvtools.dataset import joints_to_numpy, read_cameras, read_manifest, read_poses2d, read_poses3d, rig

    m = read_manifest(synth_ds)
    assert m["dataset"] == "synthetic-h36m"
    assert m["splits"] == {"train": ["S1", "S5"], "test": ["S9"]}
    assert m["synth"]["frames_outside_image"] == 0 and m["synth"]["frames_behind_camera"] == 0
    assert m["rows"]["poses3d"] == 3 * 2 * 200
    assert m["rows"]["poses2d"]["gt"] == m["rows"]["poses2d"]["detected"] == 3 * 2 * 200 * 4
    assert read_manifest(synth_ds_clean)["rows"]["poses2d"]["detected"] == 0
    cams = read_cameras(synth_ds)
    assert {c.subject for c in cams} == {"S1", "S5", "S9"} and len(cams) == 12
    # ground-truth 2D is the projection of the stored 3D through the stored cameras (float32 storage)
    p3 = read_poses3d(synth_ds, ["S5"]).sort_by([("action", "ascending"), ("frame", "ascending")])
    X = joints_to_numpy(p3["joints3d"], 3).astype(np.float64)
    assert np.all(np.diff(p3["frame"].to_numpy()[:200]) == 1)
    for cam_id, cam in rig(cams, "S5").items():
        p2 = read_poses2d(synth_ds, ["S5"], source="gt", camera=cam_id).sort_by(
            [("action", "ascending"), ("frame", "ascending")]
        )
        uv = joints_to_numpy(p2["joints2d"], 2)
        assert np.abs(uv - project(X, cam)).max() < 0.05
        assert np.all((uv >= 0) & (uv < [cam.width, cam.height]))
    # the clean dataset has the same ground truth as the noisy one (noise never touches the motion)
    q3 = read_poses3d(synth_ds_clean, ["S5"]).sort_by([("action", "ascending"), ("frame", "ascending")])
    assert np.array_equal(joints_to_numpy(q3["joints3d"], 3), X.astype(np.float32))
    det = read_poses2d(synth_ds, ["S9"], source="detected")
    conf = joints_to_numpy(det["confidence"], 1, 17)
    assert 0 <= conf.min() and conf.max() <= 1 and 0.5 < conf.mean() < 0.99


def test_synth_dataset_errors_leave_nothing(tmp_path):
    from mvtools.synth.dataset import synth_dataset

    with pytest.raises(ValueError, match="S42"):
        synth_dataset(tmp_path / "ds", subjects=["S42"])
    with pytest.raises(ValueError, match="sequences_per_subject"):
        synth_dataset(tmp_path / "ds", subjects=["S1"], sequences_per_subject=31)
    assert not (tmp_path / "ds").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds")]
