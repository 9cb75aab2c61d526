"""``ingest bvh``: placement, visibility and dropped frames, subject maps, splits, the CLI
(mvtools/ingest/bvh/ingest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from shared_data import CMU, needs_cmu

from mvtools.camera import Camera, look_at, tvec_from_center
from mvtools.cli.main import cli
from mvtools.dataset import DatasetError, joints_to_numpy, read_cameras, read_manifest, read_poses2d, read_poses3d
from mvtools.ingest.bvh.ingest import (
    capture_centre,
    default_subject,
    ingest_bvh,
    load_subject_map,
    make_splits,
    place_on_stage,
    stage_frame,
    subject_of,
    visible,
)
from mvtools.skeleton import H36M17_NAMES, bone_lengths


def cam_at(name, C, target, w=1400, h=1000, f=1000.0, dist=(0, 0, 0, 0, 0)) -> Camera:
    R = look_at(np.asarray(C, float), np.asarray(target, float))
    return Camera(
        camera=name,
        width=w,
        height=h,
        fx=f,
        fy=f,
        cx=w / 2,
        cy=h / 2,
        R=R,
        t=tvec_from_center(R, np.asarray(C, float)),
        k=(dist[0], dist[1], dist[4]),
        p=(dist[2], dist[3]),
        distortion_model="opencv",
    )


# ----------------------------------------------------------------------------- a synthetic walker
# Joint name, parent, offset (cm, Y up, facing +Z so the left side is +X), one per line.
SKELETON = [
    ("Root", None, (0, 0, 0)),
    ("LHip", "Root", (10, -5, 0)),
    ("LKnee", "LHip", (0, -42, 0)),
    ("LAnkle", "LKnee", (0, -43, 0)),
    ("RHip", "Root", (-10, -5, 0)),
    ("RKnee", "RHip", (0, -42, 0)),
    ("RAnkle", "RKnee", (0, -43, 0)),
    ("Chest", "Root", (0, 25, 0)),
    ("Throat", "Chest", (0, 25, 0)),
    ("Nose", "Throat", (0, 12, 2)),
    ("LShoulder", "Throat", (18, 0, 0)),
    ("LElbow", "LShoulder", (0, -28, 0)),
    ("LWrist", "LElbow", (0, -25, 0)),
    ("RShoulder", "Throat", (-18, 0, 0)),
    ("RElbow", "RShoulder", (0, -28, 0)),
    ("RWrist", "RElbow", (0, -25, 0)),
]
END_SITES = {
    "LAnkle": (0, -5, 12),
    "RAnkle": (0, -5, 12),
    "Nose": (0, 12, -2),
    "LWrist": (0, -8, 0),
    "RWrist": (0, -8, 0),
}
WALKER_MAP = {
    "name": "walker",
    "up_axis": "y",
    "joints": {
        "pelvis": "Root",
        "right_hip": "RHip",
        "right_knee": "RKnee",
        "right_ankle": "RAnkle",
        "left_hip": "LHip",
        "left_knee": "LKnee",
        "left_ankle": "LAnkle",
        "spine": "Chest",
        "thorax": "Throat",
        "neck": "Nose",
        "head": "Nose_End",
        "left_shoulder": "LShoulder",
        "left_elbow": "LElbow",
        "left_wrist": "LWrist",
        "right_shoulder": "RShoulder",
        "right_elbow": "RElbow",
        "right_wrist": "RWrist",
    },
}


def walker_bvh(T: int = 101, x_from: float = -200.0, x_to: float = 200.0, frame_time: float = 0.02) -> str:
    """A rigid standing person (1.55 m plus head) translating along +X, cm, zero rotations."""
    out = ["HIERARCHY"]
    children = {n: [c for c, p, _ in SKELETON if p == n] for n, _, _ in SKELETON}
    offs = {n: o for n, _, o in SKELETON}

    def emit(name, depth):
        ind = "  " * depth
        out.append(f"{ind}{'ROOT' if depth == 0 else 'JOINT'} {name}")
        out.append(f"{ind}{{")
        out.append(f"{ind}  OFFSET {offs[name][0]} {offs[name][1]} {offs[name][2]}")
        out.append(
            f"{ind}  CHANNELS "
            + ("6 Xposition Yposition Zposition " if depth == 0 else "3 ")
            + "Zrotation Xrotation Yrotation"
        )
        for c in children[name]:
            emit(c, depth + 1)
        if name in END_SITES:
            e = END_SITES[name]
            out.extend([f"{ind}  End Site", f"{ind}  {{", f"{ind}    OFFSET {e[0]} {e[1]} {e[2]}", f"{ind}  }}"])
        out.append(f"{ind}}}")

    emit("Root", 0)
    n_ch = 6 + 3 * (len(SKELETON) - 1)
    out += ["MOTION", f"Frames: {T}", f"Frame Time: {frame_time}"]
    for x in np.linspace(x_from, x_to, T):
        out.append(" ".join([f"{x:.4f}", "95", "0"] + ["0"] * (n_ch - 3)))
    return "\n".join(out) + "\n"


def walker_world(T=101, x_from=-200.0, x_to=200.0) -> np.ndarray:
    """Independent expectation of the placed H36M-17 joints (T, 17, 3) mm for :func:`walker_bvh` (no yaw,
    rig centred at the origin): rest pose + root path, Y-up -> Z-up, floor at the lowest point (toe/ankle
    end site), path centred."""
    pos = {}
    for n, p, o in SKELETON:
        pos[n] = np.array(o, float) + (pos[p] if p else 0)
    ends = {f"{n}_End": pos[n] + np.array(e, float) for n, e in END_SITES.items()}
    allp = {**pos, **ends}
    floor_y = min(v[1] for v in allp.values())  # cm, relative to the root
    rest = np.array([allp[WALKER_MAP["joints"][h]] for h in H36M17_NAMES])  # (17, 3) cm, Y up
    x = np.linspace(x_from, x_to, T)
    centre = (x.min() + x.max()) / 2
    P = rest[None] + np.stack([x - centre, np.full(T, 95.0 - 95.0), np.zeros(T)], -1)[:, None]
    P[..., 1] -= floor_y  # floor at y = 0
    P *= 10.0  # cm -> mm
    return np.stack([P[..., 0], -P[..., 2], P[..., 1]], -1)  # Y up -> Z up: (x, y, z) -> (x, -z, y)


def walker_rig() -> list[Camera]:
    target = (0, 0, 900)
    return [
        cam_at("A", (0, -4000, 1200), target),  # sees the whole walk
        cam_at("B", (300, 4200, 1300), target, dist=(-0.05, 0.01, 0.001, -0.001, 0)),
        cam_at("C", (0, -2500, 1000), target, w=800, h=1000),  # narrow: loses the ends of the walk
        cam_at("D", (1500, 0, 1000), target),  # the walker walks into it: too close, then behind
    ]


def expected_visibility(X: np.ndarray, cams: list[Camera], near=100.0) -> np.ndarray:
    """(C, T) bool from OpenCV's projectPoints and explicit depths (independent of mvtools.camera)."""
    out = []
    for c in cams:
        depth = X.reshape(-1, 3) @ c.R.T[:, 2] + c.t[2]
        rvec = cv2.Rodrigues(c.R)[0]
        uv = cv2.projectPoints(X.reshape(-1, 1, 3), rvec, c.t, c.K, c.opencv_distortion())[0]
        uv = uv.reshape(X.shape[:2] + (2,))
        inside = (uv[..., 0] >= 0) & (uv[..., 0] < c.width) & (uv[..., 1] >= 0) & (uv[..., 1] < c.height)
        out.append((depth.reshape(X.shape[:2]) >= near).all(1) & inside.all(1))
    return np.array(out)


@pytest.fixture
def walker_files(tmp_path):
    d = tmp_path / "bvh"
    d.mkdir()
    (d / "walk_a.bvh").write_text(walker_bvh())
    (d / "walk_b.bvh").write_text(walker_bvh(61, 150, -150))
    jm = tmp_path / "walker_map.json"
    jm.write_text(json.dumps(WALKER_MAP))
    return d, jm


# ----------------------------------------------------------------------------- placement helpers
def test_capture_centre_of_cameras_aimed_at_one_point():
    target = np.array([300.0, -200.0, 800.0])
    cams = [cam_at(str(i), C, target) for i, C in enumerate([(4000, 0, 1500), (0, 4000, 1800), (-3000, -3000, 1000)])]
    np.testing.assert_allclose(capture_centre(cams), target, atol=1e-9)
    R, o, how = stage_frame(cams)
    np.testing.assert_allclose(R, np.eye(3))
    np.testing.assert_allclose(o, [300, -200, 0], atol=1e-9)
    # the same rig in a Y-down world (e.g. an anipose calibration): world' = Q world
    Q = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]).T
    cams_q = [c.with_extrinsics(c.R @ Q.T, c.t) for c in cams]
    Rq, oq, how_q = stage_frame(cams_q)
    assert "not Z-up" in how_q
    np.testing.assert_allclose(Rq[:, 2], Q @ [0, 0, 1], atol=1e-9)  # stage up = the rig's up
    np.testing.assert_allclose(oq, Q @ (target - [0, 0, 900]), atol=1e-6)
    assert np.isclose(np.linalg.det(Rq), 1.0)


def test_h36m_rig_capture_centre_is_inside_the_cameras():
    from mvtools.h36m_cameras import h36m_rig

    cams = list(h36m_rig("S1").values())
    c = capture_centre(cams)
    Cs = np.array([k.C for k in cams])
    assert Cs[:, 0].min() < c[0] < Cs[:, 0].max() and Cs[:, 1].min() < c[1] < Cs[:, 1].max()
    assert 0 < c[2] < Cs[:, 2].min()
    for k in cams:  # each camera sees the centre near its image middle
        uv = cv2.projectPoints(c.reshape(1, 1, 3), cv2.Rodrigues(k.R)[0], k.t, k.K, None)[0].ravel()
        assert abs(uv[0] - k.cx) < 0.15 * k.width and abs(uv[1] - k.cy) < 0.15 * k.height


def test_place_on_stage_floor_centre_yaw():
    rng = np.random.default_rng(1)
    pts = rng.normal(0, 300, (50, 5, 3)) + np.array([1000.0, -2000.0, 1500.0])
    out, floor, shift = place_on_stage(pts, 0.0)  # low point far above z = 0: moved there
    lowest = out[..., 2].min(1)
    assert np.isclose(np.percentile(lowest, 2.0), 0.0) and floor < -150
    out_f, floor_f, _ = place_on_stage(pts, 0.0, floor="file")
    assert floor_f == 0.0
    np.testing.assert_allclose(out_f[..., 2], pts[..., 2])
    near = pts - [0, 0, np.percentile(pts[..., 2].min(1), 2.0) - 60.0]  # low point 60 mm above the file's floor
    out_a, floor_a, _ = place_on_stage(near, 0.0, floor="auto")
    assert floor_a == 0.0 and np.isclose(np.percentile(out_a[..., 2].min(1), 2.0), 60.0)
    with pytest.raises(ValueError, match="floor must be"):
        place_on_stage(pts, floor="ceiling")
    xy = out[:, 0, :2]
    np.testing.assert_allclose(xy.min(0) + xy.max(0), 0.0, atol=1e-9)
    out90, _, _ = place_on_stage(pts, 90.0)
    np.testing.assert_allclose(out90[..., 0], -out[..., 1], atol=1e-9)  # +90 deg about +Z: (x, y) -> (-y, x)
    np.testing.assert_allclose(out90[..., 1], out[..., 0], atol=1e-9)
    np.testing.assert_allclose(out90[..., 2], out[..., 2], atol=1e-9)


def test_visible_matches_opencv():
    cams = walker_rig()
    X = walker_world()
    got = np.array([visible(X, c) for c in cams])
    np.testing.assert_array_equal(got, expected_visibility(X, cams))
    assert got[0].all() and not got[2].all() and not got[3].all()  # the rig drops frames


# ----------------------------------------------------------------------------- subjects and splits
def test_subject_map_and_splits(tmp_path):
    assert default_subject("x/02_01.bvh") == "CMU02" and default_subject("12_3.bvh") == "CMU12"
    assert default_subject("dance.bvh") == "dance"
    rules = load_subject_map("02_*=A, 03_01=B")
    assert subject_of("d/02_05.bvh", rules) == "A" and subject_of("03_01.bvh", rules) == "B"
    assert subject_of("03_02.bvh", rules) == "CMU03"
    j = tmp_path / "map.json"
    j.write_text('{"walk_*.bvh": "W1"}')
    assert subject_of("walk_a.bvh", load_subject_map(j)) == "W1"
    t = tmp_path / "map.txt"
    t.write_text("# comment\nwalk_a = W2\nnonsense\n")
    with pytest.raises(ValueError, match=r"map.txt: line 3"):
        load_subject_map(t)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_subject_map(tmp_path / "nope.json")
    subs = [f"CMU0{i}" for i in (1, 2, 3, 5, 6, 7, 8, 9)]
    assert make_splits(subs) == {"train": subs[:6], "test": ["CMU08", "CMU09"]}
    assert make_splits(["A"]) == {"train": ["A"], "test": []}
    assert make_splits(["A", "B"], "none") == {"train": ["A", "B"], "test": []}
    assert make_splits(["A", "B", "C"], "A") == {"train": ["B", "C"], "test": ["A"]}
    with pytest.raises(ValueError, match="unknown subject"):
        make_splits(["A", "B"], "Z")


# ----------------------------------------------------------------------------- ingest on synthetic files
def test_ingest_walker_drops_and_reports_frames(walker_files, tmp_path):
    d, jm = walker_files
    cams = walker_rig()
    out = tmp_path / "ds"
    s = ingest_bvh(
        [d / "walk_a.bvh"], out, rig=cams, fps=50, joint_map=jm, random_yaw=False, detector_noise="none", min_views=3
    )
    X = walker_world()
    vis = expected_visibility(X, cams)
    keep = vis.sum(0) >= 3
    m = read_manifest(out)
    rep = m["files"][0]
    assert rep["units"] == "cm" and rep["frames_read"] == 101 and rep["frames_resampled"] == 101
    assert not rep["tpose_frame_dropped"]
    assert rep["not_visible_per_camera"] == {c.camera: int((~v).sum()) for c, v in zip(cams, vis)}
    assert rep["frames_kept"] == keep.sum() and rep["frames_dropped"] == (~keep).sum() > 0
    assert s["frames_kept"] == keep.sum()
    p3 = read_poses3d(out).to_pandas().sort_values("frame")
    np.testing.assert_array_equal(p3["frame"], np.flatnonzero(keep))
    got3 = np.stack(p3["joints3d"].to_numpy()).reshape(-1, 17, 3)
    np.testing.assert_allclose(got3, X[keep], atol=0.01)
    t2 = read_poses2d(out, source="gt")
    cam_col = np.array(t2.column("camera").to_pylist())
    frames = np.asarray(t2.column("frame"))
    uv = joints_to_numpy(t2.column("joints2d"), 2)
    for c, v in zip(cams, vis):
        sel = cam_col == c.camera
        np.testing.assert_array_equal(np.sort(frames[sel]), np.flatnonzero(v & keep))
        ref = cv2.projectPoints(
            X[frames[sel]].reshape(-1, 1, 3), cv2.Rodrigues(c.R)[0], c.t, c.K, c.opencv_distortion()
        )[0].reshape(-1, 17, 2)
        np.testing.assert_allclose(uv[sel], ref, atol=0.02)
    det = read_poses2d(out, source="detected")
    assert det.num_rows == t2.num_rows
    np.testing.assert_array_equal(joints_to_numpy(det.column("confidence"), 1, 17).ravel(), 1.0)
    cams_t = read_cameras(out)
    assert {(c.subject, c.camera, c.source) for c in cams_t} == {("walk_a", k.camera, "given") for k in cams}
    assert m["splits"] == {"train": ["walk_a"], "test": []}
    # all cameras required (the default): only frames every camera sees
    s2 = ingest_bvh(
        [d / "walk_a.bvh"], tmp_path / "ds2", rig=cams[:3], joint_map=jm, random_yaw=False, detector_noise="none"
    )
    assert s2["frames_kept"] == vis[:3].all(0).sum() > 0
    away = cam_at("E", (0, -4000, 1200), (0, -8000, 1200))  # faces away from the walker
    with pytest.raises(DatasetError, match="walk_a.bvh: no frame is seen by 3 of the 3 cameras"):
        ingest_bvh([d / "walk_a.bvh"], tmp_path / "ds3", rig=cams[:2] + [away], joint_map=jm, random_yaw=False)
    assert not (tmp_path / "ds3").exists()


def test_ingest_resamples_yaw_noise_and_seed(walker_files, tmp_path):
    d, jm = walker_files
    cams = walker_rig()[:2]
    kw = dict(rig=cams, fps=20, joint_map=jm, subject_map="walk_*=W", split="none")
    ingest_bvh(d, tmp_path / "a", seed=3, **kw)
    ingest_bvh(d, tmp_path / "b", seed=3, **kw)
    ingest_bvh(d, tmp_path / "c", seed=4, **kw)
    m = read_manifest(tmp_path / "a")
    # walk_a: 101 frames at 50 Hz = 2 s -> 41 frames at 20 Hz; walk_b: 61 frames = 1.2 s -> 25
    assert [(r["action"], r["frames_resampled"]) for r in m["files"]] == [("walk_a", 41), ("walk_b", 25)]
    assert m["fps"] == 20 and m["subjects"] == ["W"]
    a3 = read_poses3d(tmp_path / "a").to_pandas().sort_values(["action", "frame"])
    X = np.stack(a3["joints3d"].to_numpy()).reshape(-1, 17, 3)
    ref = walker_world(41)  # a linear path resampled linearly: 41 evenly spaced positions
    np.testing.assert_allclose(bone_lengths(X), np.broadcast_to(bone_lengths(ref[:1]), (len(X), 16)), atol=0.01)
    sel = a3["action"].to_numpy() == "walk_a"
    a = np.radians(m["files"][0]["yaw_deg"])
    Rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    np.testing.assert_allclose(X[sel], ref[a3.frame.to_numpy()[sel]] @ Rz.T, atol=0.01)
    da = read_poses2d(tmp_path / "a", source="detected").to_pandas()
    db = read_poses2d(tmp_path / "b", source="detected").to_pandas()
    dc = read_poses2d(tmp_path / "c", source="detected").to_pandas()
    np.testing.assert_array_equal(np.stack(da.joints2d), np.stack(db.joints2d))  # same seed: same output
    assert m["files"][0]["yaw_deg"] != read_manifest(tmp_path / "c")["files"][0]["yaw_deg"]
    g = read_poses2d(tmp_path / "a", source="gt").to_pandas()
    err = np.linalg.norm((np.stack(da.joints2d) - np.stack(g.joints2d)).reshape(-1, 17, 2), axis=-1)
    assert 0.3 < np.median(err) < 30  # realistic detections: a few px off, not exact, not wild
    conf = np.stack(da.confidence)
    assert conf.min() >= 0 and conf.max() <= 1 and conf.mean() < 1
    assert len(dc) > 0


def test_ingest_errors_leave_nothing_behind(walker_files, tmp_path):
    d, jm = walker_files
    bad = d / "zz_broken.bvh"
    bad.write_text("\n".join(walker_bvh().splitlines()[:-10]) + "\n")  # truncated motion block
    out = tmp_path / "ds"
    with pytest.raises(DatasetError, match=r"zz_broken.bvh: line \d+: motion block truncated"):
        ingest_bvh(d, out, rig=walker_rig(), joint_map=jm, detector_noise="none")
    assert not out.exists() and not list(tmp_path.glob(".ds*"))
    with pytest.raises(DatasetError, match="walk_a.bvh: joint"):
        ingest_bvh(d / "walk_a.bvh", out, rig=walker_rig(), joint_map="cmu", detector_noise="none")  # other names
    with pytest.raises(DatasetError, match="walk_a.bvh: no built-in joint map fits .*the file has joints Root"):
        ingest_bvh(d / "walk_a.bvh", out, rig=walker_rig(), detector_noise="none")  # auto
    (d / "zz_broken.bvh").write_text(walker_bvh(frame_time=0.01))  # 100 Hz next to 50 Hz files
    with pytest.raises(ValueError, match="zz_broken.bvh: 100 Hz, but .*walk_a.bvh is 50 Hz"):
        ingest_bvh(d, out, rig=walker_rig(), joint_map=jm, fps=0, min_views=1)
    assert ingest_bvh(d, out, rig=walker_rig(), joint_map=jm, fps=25, min_views=1)["files"] == 3
    with pytest.raises(ValueError, match="min_views"):
        ingest_bvh(d / "walk_a.bvh", out, rig=walker_rig(), joint_map=jm, min_views=9)


def test_cli_errors(walker_files, tmp_path):
    d, jm = walker_files
    r = CliRunner().invoke(
        cli, ["ingest", "bvh", str(d / "walk_a.bvh"), "--out", str(tmp_path / "o"), "--rig", str(tmp_path / "rig.toml")]
    )
    assert r.exit_code == 1 and "Error:" in r.output and "rig.toml: rig file not found" in r.output
    r = CliRunner().invoke(
        cli,
        [
            "ingest",
            "bvh",
            str(d / "walk_a.bvh"),
            "--out",
            str(tmp_path / "o"),
            "--joint-map",
            str(tmp_path / "none.json"),
        ],
    )
    assert r.exit_code == 1 and "none.json: joint map not found" in r.output
    r = CliRunner().invoke(cli, ["ingest", "bvh", "--help"])
    assert r.exit_code == 0 and "mm" in r.output and "Hz" in r.output and "degrees" in r.output


# ----------------------------------------------------------------------------- real CMU files
@needs_cmu
def test_cli_end_to_end_on_cmu(tmp_path):
    out = tmp_path / "cmu_ds"
    r = CliRunner().invoke(
        cli,
        [
            "ingest",
            "bvh",
            str(CMU / "02_01.bvh"),
            str(CMU / "09_01.bvh"),
            "--out",
            str(out),
            "--rig",
            "h36m:S9",
            "--seed",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    m = json.loads((out / "manifest.json").read_text())
    assert m["dataset"] == "bvh" and m["splits"] == {"train": ["CMU02"], "test": ["CMU09"]} and m["fps"] == 50
    files = {Path(f["file"]).name: f for f in m["files"]}
    for name, n in [("02_01.bvh", 344), ("09_01.bvh", 149)]:
        f = files[name]
        assert f["frames_read"] == n and f["tpose_frame_dropped"] and f["units"] == "cmu"
        # captured frames 1..n-1 at 120 Hz resampled to 50 Hz
        assert f["frames_resampled"] == int(np.floor((n - 2) / 120 * 50 + 1e-9)) + 1
        assert set(f["not_visible_per_camera"]) == {"54138969", "55011271", "58860488", "60457274"}
    p3 = pd.read_parquet(out / "poses3d")
    p2 = pd.read_parquet(out / "poses2d")
    assert set(p3.subject.astype(str)) == {"CMU02", "CMU09"}
    assert len(p3) == sum(f["frames_kept"] for f in m["files"]) == m["rows"]["poses3d"]
    assert (p2.source == "gt").sum() == (p2.source == "detected").sum() == 4 * len(p3)
    X = np.stack(p3.joints3d.to_numpy()).reshape(-1, 17, 3)
    z = X[..., 2]
    assert np.percentile(z.min(1), 2) > -5 and np.median(z.min(1)) < 150  # on the floor
    assert (z[:, 10] > z[:, 0]).all()  # head above pelvis
    femur = bone_lengths(X)[:, [1, 4]]  # (right_knee, right_hip) and (left_knee, left_hip)
    assert (femur > 350).all() and (femur < 550).all()
    cams = read_cameras(out, subjects=["CMU02"])
    assert len(cams) == 4 and {c.source for c in cams} == {"given"}


def test_toml_rig_in_a_y_down_world_gives_the_same_views(walker_files, tmp_path):
    """An anipose-style rig (world = the Z-up world turned by Q) read from TOML: the walker is placed on the
    rig's own floor, so every camera sees exactly the same images and the 3D is Q times the Z-up 3D."""
    from mvtools.calibration.toml_io import write_aniposelib_toml

    d, jm = walker_files
    cams = walker_rig()[:3]
    Q = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]).T  # Z-up world -> Y-down world
    cams_q = [c.with_extrinsics(c.R @ Q.T, c.t) for c in cams]
    toml = write_aniposelib_toml(tmp_path / "rig.toml", cams_q)
    kw = ["--joint-map", str(jm), "--no-random-yaw", "--detector-noise", "none", "--min-views", "2"]
    ingest_bvh(
        d / "walk_a.bvh", tmp_path / "z", rig=cams, joint_map=jm, random_yaw=False, detector_noise="none", min_views=2
    )
    r = CliRunner().invoke(
        cli, ["ingest", "bvh", str(d / "walk_a.bvh"), "--out", str(tmp_path / "q"), "--rig", str(toml)] + kw
    )
    assert r.exit_code == 0, r.output
    assert "not Z-up" in read_manifest(tmp_path / "q")["source"]["placement"]
    z3 = read_poses3d(tmp_path / "z").to_pandas().sort_values("frame")
    q3 = read_poses3d(tmp_path / "q").to_pandas().sort_values("frame")
    np.testing.assert_array_equal(z3.frame, q3.frame)
    Xz = np.stack(z3.joints3d).reshape(-1, 17, 3)
    Xq = np.stack(q3.joints3d).reshape(-1, 17, 3)
    np.testing.assert_allclose(Xq, Xz @ Q.T, atol=0.05)
    z2 = read_poses2d(tmp_path / "z", source="gt").to_pandas().sort_values(["camera", "frame"])
    q2 = read_poses2d(tmp_path / "q", source="gt").to_pandas().sort_values(["camera", "frame"])
    np.testing.assert_array_equal(z2.frame, q2.frame)
    np.testing.assert_allclose(np.stack(q2.joints2d), np.stack(z2.joints2d), atol=0.02)
    assert {c.camera for c in read_cameras(tmp_path / "q")} == {"A", "B", "C"}
