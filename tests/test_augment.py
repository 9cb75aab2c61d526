"""mvtools augment: virtual cameras, their 2D, and the pair shards (issue 4)."""

import json
import shutil

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from scipy.optimize import minimize

from mvtools import dataset as d
from mvtools.augment import augment
from mvtools.augment import pairs as pairs_mod
from mvtools.augment.virtual import azimuth_range, place_virtual_cameras, rig_geometry, similarity_to, world_up
from mvtools.camera import apply_relative, project, project_pinhole, tvec_from_center, world_to_camera
from mvtools.cli.main import cli
from mvtools.h36m_cameras import h36m_cameras, h36m_rig

# A standing person (17 joints, world mm, Z up, facing +X); sequences walk it on a circle round the capture area.
TEMPLATE = np.array(
    [
        [0, 0, 950],
        [0, -130, 950],
        [0, -130, 520],
        [0, -130, 90],
        [0, 130, 950],
        [0, 130, 520],
        [0, 130, 90],
        [0, 0, 1180],
        [0, 0, 1430],
        [0, 0, 1520],
        [0, 0, 1650],
        [0, 180, 1420],
        [0, 200, 1150],
        [0, 210, 900],
        [0, -180, 1420],
        [0, -200, 1150],
        [0, -210, 900],
    ],
    float,
)
ACTIONS = ["Walking", "Eating", "Posing", "Sitting"]


def _motion(rng, T, radius=800.0):
    t = np.arange(T) / 50.0
    ph, w = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.5)
    centre = np.stack([radius * np.cos(w * t + ph), radius * np.sin(w * t + ph) + 300, np.zeros(T)], 1)
    yaw = w * t + ph
    c, s = np.cos(yaw), np.sin(yaw)
    Rz = np.zeros((T, 3, 3))
    Rz[:, 0, 0], Rz[:, 0, 1], Rz[:, 1, 0], Rz[:, 1, 1], Rz[:, 2, 2] = c, -s, s, c, 1
    J = TEMPLATE[None] + rng.normal(0, 20, (T, 17, 3))
    return np.einsum("tij,tkj->tki", Rz, J) + centre[:, None]


def make_ds(out, subjects=("S1", "S9"), seqs=2, T=40, detected=True, seed=0, far_frames=0):
    """Small H36M-rig dataset: gt 2D (H36M distortion) and noisy detections. ``far_frames`` frames of the first
    sequence of the first subject put the person 7 m off-centre (outside some virtual views)."""
    rng = np.random.default_rng(seed)
    cams = [c for c in h36m_cameras() if c.subject in subjects]
    truth = {}
    with d.DatasetWriter(out) as w:
        for si, s in enumerate(subjects):
            for q in range(seqs):
                a = ACTIONS[q % 4]
                X = _motion(rng, T)
                if si == 0 and q == 0 and far_frames:
                    X[:far_frames, :, 0] += 7000.0
                X = X.astype(np.float32)
                truth[(s, a)] = X
                fr = np.arange(T) + 10
                w.add_poses3d(s, d.poses3d_table(a, 1, f"{a} 1", fr, X))
                for c in cams:
                    if c.subject != s:
                        continue
                    uv = project(X.astype(float), c)
                    w.add_poses2d(s, d.poses2d_table(a, 1, f"{a} 1", fr, c.camera, uv, None, "gt"))
                    if detected:
                        cf = rng.uniform(0.3, 1.0, (T, 17))
                        det = uv + rng.normal(0, 3, uv.shape)
                        w.add_poses2d(s, d.poses2d_table(a, 1, f"{a} 1", fr, c.camera, det, cf, "detected"))
        w.set_cameras(cams)
        w.commit(
            d.base_manifest(
                "unit",
                {
                    "train": [s for s in subjects if s not in ("S9", "S11")],
                    "test": [s for s in subjects if s in ("S9", "S11")],
                },
                50.0,
                command="test",
            )
        )
    return truth


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One dataset augmented with gt 2D, 8 ring views, K=5, small shards (shared by read-only tests)."""
    out = tmp_path_factory.mktemp("aug") / "ds"
    truth = make_ds(out, T=40)
    summary = augment(out, virtual_views=8, pairs_per_frame=5, shard_rows=150, source="gt", seed=3)
    return out, truth, summary


def _pairs(ds, split=None):
    m = json.loads((ds / "pairs" / "manifest.json").read_text())
    files = [ds / "pairs" / s["path"] for s in m["shards"] if split in (None, s["split"])]
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True), m


def _arr(col, shape):
    return np.stack(col.to_numpy()).astype(np.float64).reshape((-1,) + shape)


def _axis_distance(cam, P):
    d = cam.R[2]
    v = P - cam.C
    return np.linalg.norm(v - (v @ d) * d)


# ----------------------------------------------------------------------------- virtual camera placement
@pytest.mark.parametrize("layout", ["ring", "random"])
def test_virtual_cameras_look_at_centre_keep_rig_ranges_no_roll(layout):
    for subject in ("S1", "S5", "S9", "S11"):
        real = list(h36m_rig(subject).values())
        virt, info = place_virtual_cameras(real, 8, layout, np.random.default_rng(7), None, subject)
        centre = np.array(info["capture_centre_mm"])
        # independent reference: the point minimising the summed squared distances to the real optical axes
        ref = minimize(lambda p, real=real: sum(_axis_distance(c, p) ** 2 for c in real), np.zeros(3), tol=1e-12).x
        assert info["capture_centre_from"] == "optical-axes" and np.linalg.norm(centre - ref) < 1.0
        assert np.allclose(world_up(real), [0, 0, 1])  # H36M world is Z up
        hr = [c.C[2] for c in real]
        rr = [np.hypot(*(c.C - centre)[:2]) for c in real]
        el = [np.degrees(np.arctan2(c.C[2] - centre[2], np.hypot(*(c.C - centre)[:2]))) for c in real]
        assert [c.camera for c in virt] == [f"virtual-{i:02d}" for i in range(8)]
        for i, c in enumerate(virt):
            assert _axis_distance(c, centre) < 1.0  # optical axis through the capture centre (mm)
            assert (centre - c.C) @ c.R[2] > 0  # ... in front of the camera
            assert abs(c.R[0] @ [0, 0, 1]) < 1e-9 and c.R[1] @ [0, 0, 1] < 0  # no roll, image y points down
            assert np.allclose(c.R @ c.R.T, np.eye(3)) and np.isclose(np.linalg.det(c.R), 1)
            assert min(hr) - 1e-6 <= c.C[2] <= max(hr) + 1e-6
            assert min(rr) - 1e-6 <= np.hypot(*(c.C - centre)[:2]) <= max(rr) + 1e-6
            e = np.degrees(np.arctan2(c.C[2] - centre[2], np.hypot(*(c.C - centre)[:2])))
            assert min(el) - 1e-6 <= e <= max(el) + 1e-6
            src = real[i % len(real)]
            assert (c.fx, c.fy, c.cx, c.cy, c.width, c.height) == (
                src.fx,
                src.fy,
                src.cx,
                src.cy,
                src.width,
                src.height,
            )
            assert c.distortion_model == "none" and c.source == "virtual" and c.subject == subject


def test_ring_layout_closes_the_gaps_between_real_cameras():
    real = list(h36m_rig("S1").values())
    virt, info = place_virtual_cameras(real, 8, "ring")
    az = np.sort(
        np.concatenate(
            [rig_geometry(real + virt, np.array(info["capture_centre_mm"]), np.array([0, 0, 1.0]))["azimuth"]]
        )
        % 360
    )
    gaps = np.diff(np.r_[az, az[0] + 360])
    raz = np.sort(np.array(info["real_azimuth_deg"]) % 360)
    real_gaps = np.diff(np.r_[raz, raz[0] + 360])
    assert gaps.max() < 36.0 and real_gaps.max() > 130.0  # 12 cameras: no gap wider than ~360/10
    assert np.isclose(gaps.sum(), 360.0) and len(gaps) == 12
    # ring is deterministic: no dependence on the seed
    again, _ = place_virtual_cameras(real, 8, "ring", np.random.default_rng(99))
    assert all(np.array_equal(a.R, b.R) and np.array_equal(a.t, b.t) for a, b in zip(virt, again))


def test_random_layout_seeded_and_within_azimuth_arc():
    real = list(h36m_rig("S9").values())
    a, _ = place_virtual_cameras(real, 6, "random", np.random.default_rng(1))
    b, _ = place_virtual_cameras(real, 6, "random", np.random.default_rng(1))
    c, _ = place_virtual_cameras(real, 6, "random", np.random.default_rng(2))
    assert all(np.array_equal(x.t, y.t) for x, y in zip(a, b))
    assert not all(np.allclose(x.t, y.t) for x, y in zip(a, c))
    # cameras all on one side: the arc is the one they span
    assert np.allclose(azimuth_range(np.array([10.0, 50.0, 100.0])), (10.0, 90.0))
    assert azimuth_range(np.array([0.0, 90.0, 180.0, 270.0])) == (0.0, 360.0)


def test_placement_is_equivariant_to_the_world_frame_y_up():
    """An MPI-INF-3DHP-style Y-up world: the same rig rotated gives the same virtual cameras rotated."""
    Q = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0.0]])  # X->Z, Y->X, Z->Y: world Z-up becomes Y-up
    real = list(h36m_rig("S5").values())
    rot = [c.with_extrinsics(c.R @ Q.T, tvec_from_center(c.R @ Q.T, Q @ c.C)) for c in real]
    assert np.allclose(world_up(rot), [0, 1, 0])
    for layout in ("ring", "random"):
        v0, _ = place_virtual_cameras(real, 8, layout, np.random.default_rng(4))
        v1, _ = place_virtual_cameras(rot, 8, layout, np.random.default_rng(4))
        for a, b in zip(v0, v1):
            assert np.allclose(Q @ a.C, b.C, atol=1e-6) and np.allclose(a.R @ Q.T, b.R, atol=1e-9)


# ----------------------------------------------------------------------------- virtual 2D in the dataset
def test_virtual_2d_reproject_to_world_joints(built):
    ds, truth, _ = built
    virt = d.read_cameras(ds, source="virtual")
    assert sorted({c.subject for c in virt}) == ["S1", "S9"] and len(virt) == 16
    assert len(d.read_cameras(ds, source="given")) == 8  # the given calibration is untouched
    t2 = d.read_poses2d(ds, source="virtual").to_pandas()
    for c in virt:
        rows = t2[(t2.subject == c.subject) & (t2.camera == c.camera)]
        assert len(rows) == 2 * 40  # nothing dropped: the person stays in every view
        for action, g in rows.groupby("action"):
            X = truth[(c.subject, action)][g.frame.to_numpy() - 10].astype(np.float64)
            uv = _arr(g.joints2d, (17, 2))
            assert np.allclose(_arr(g.confidence, (17,)), 1.0)
            # independent projection: OpenCV, no distortion
            ref, _ = cv2.projectPoints(X.reshape(-1, 3), cv2.Rodrigues(c.R)[0], c.t, c.K, np.zeros(5))
            assert np.abs(ref.reshape(uv.shape) - uv).max() < 1e-3
            # back-projection with the known depth and the stored R, t reproduces the world joints
            z = world_to_camera(X, c.R, c.t)[..., 2:3]
            ray = np.concatenate([(uv - [c.cx, c.cy]) / [c.fx, c.fy], np.ones_like(uv[..., :1])], -1)
            back = (z * ray - c.t) @ c.R
            assert np.abs(back - X).max() < 0.01


def test_pair_transform_maps_view_a_gt_onto_view_b(built):
    ds, truth, _ = built
    df, _ = _pairs(ds)
    ya, yb = _arr(df.y3d_a, (17, 3)), _arr(df.y3d_b, (17, 3))
    Rab, Rba = _arr(df.R_ab, (3, 3)), _arr(df.R_ba, (3, 3))
    tab, tba = _arr(df.t_ab, (3,)), _arr(df.t_ba, (3,))
    assert np.abs(apply_relative(ya, Rab, tab) - yb).max() < 0.01  # paper eq. 3-4, mm
    assert np.abs(apply_relative(yb, Rba, tba) - ya).max() < 0.01
    # y3d are absolute camera coordinates of the ground truth (real views: the given calibration)
    given = {(c.subject, c.camera): c for c in d.read_cameras(ds, source="given")}
    virt = {(c.subject, c.camera): c for c in d.read_cameras(ds, source="virtual")}
    for i in range(0, len(df), 37):
        r = df.iloc[i]
        cam = (given if r.kind_a == "real" else virt)[(r.subject, r.cam_a)]
        X = truth[(r.subject, r.action)][r.frame - 10].astype(np.float64)
        assert np.abs(world_to_camera(X, cam.R, cam.t) - ya[i]).max() < 0.01
        assert np.allclose(df.K_a.iloc[i], cam.intrinsics) and np.allclose(df.size_a.iloc[i], [cam.width, cam.height])
        assert r.cam_a.startswith("virtual-") == (r.kind_a == "virtual")


def test_undistorted_gt_2d_is_the_pinhole_projection_of_y3d(built):
    ds, _, _ = built
    df, _ = _pairs(ds)
    for side in "ab":
        x2d = _arr(df[f"x2d_{side}"], (17, 2))
        pin = project_pinhole(_arr(df[f"y3d_{side}"], (17, 3)), _arr(df[f"K_{side}"], (4,))[:, None, :])
        assert np.abs(x2d - pin).max() < 0.01
    # and the stored 2D ground truth of real views is distorted (undistortion did something)
    gt = d.read_poses2d(ds, ["S1"], source="gt", camera="54138969", action="Walking").to_pandas()
    real = df[(df.kind_a == "real") & (df.cam_a == "54138969") & (df.subject == "S1") & (df.action == "Walking")]
    raw = _arr(gt.set_index("frame").loc[real.frame.to_numpy(), "joints2d"], (17, 2))
    assert np.abs(raw - _arr(real.x2d_a, (17, 2))).max() > 0.5


# ----------------------------------------------------------------------------- shards
def test_shards_respect_split_and_shard_rows(built):
    ds, _, summary = built
    m = json.loads((ds / "pairs" / "manifest.json").read_text())
    assert m["format_version"] == 1 and m["extrinsics"] == "given" and m["views"] == "all"
    assert m["virtual_views"] == 8 and m["pairs_per_frame"] == 5 and m["source2d"] == "gt" and m["seed"] == 3
    assert m["splits"] == {"train": ["S1"], "test": ["S9"]}
    for sp in ("train", "test"):
        df, _ = _pairs(ds, sp)
        assert set(df.subject) == set(m["splits"][sp]) and len(df) == m["rows"][sp] == summary["rows"][sp]
        assert len(df) == 2 * 40 * 5  # every frame has >= 5 usable pairs among 12 views
    for s in m["shards"]:
        n = pq.read_metadata(ds / "pairs" / s["path"]).num_rows
        assert n == s["rows"] <= 150 and s["path"].startswith(s["split"] + "/")
    assert len(m["shards"]) == 2 * int(np.ceil(400 / 150))
    assert d.read_manifest(ds)["augment"]["rows"] == m["rows"]


def test_no_duplicate_pair_within_a_frame_and_all_kinds(built):
    ds, _, _ = built
    df, _ = _pairs(ds)
    key = df.apply(lambda r: (r.subject, r.action, r.subaction, r.frame, *sorted((r.cam_a, r.cam_b))), axis=1)
    assert not key.duplicated().any() and (df.cam_a != df.cam_b).all()
    kinds = set(zip(df.kind_a, df.kind_b))
    assert {("real", "real"), ("virtual", "virtual")} <= kinds
    assert ("real", "virtual") in kinds and ("virtual", "real") in kinds


def test_same_seed_identical_other_seed_different(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    make_ds(a, subjects=("S1",), seqs=1, T=20)
    shutil.copytree(a, b)
    for ds in (a, b):
        augment(ds, virtual_views=4, layout="random", seed=5, shard_rows=1000)
    ta, tb = (pq.read_table(x / "pairs" / "train" / "part-00000.parquet") for x in (a, b))
    assert ta.equals(tb) and ta.num_rows == 80
    va, vb = (x / "poses2d/subject=S1/virtual-0.parquet" for x in (a, b))
    assert va.read_bytes() == vb.read_bytes()
    augment(b, virtual_views=4, layout="random", seed=6, shard_rows=1000, overwrite=True)
    tc = pq.read_table(b / "pairs" / "train" / "part-00000.parquet")
    assert not ta.equals(tc)
    assert not np.allclose(d.read_cameras(a, source="virtual")[0].t, d.read_cameras(b, source="virtual")[0].t)


def test_views_real_pairs_only_real_cameras_and_k_caps(tmp_path):
    ds = tmp_path / "ds"
    make_ds(ds, subjects=("S1",), seqs=1, T=15)
    s = augment(ds, virtual_views=8, views="real", pairs_per_frame=10, shard_rows=1000)
    df, m = _pairs(ds)
    assert set(df.kind_a) == set(df.kind_b) == {"real"} and m["views"] == "real"
    assert len(df) == s["rows"]["train"] == 15 * 6  # K capped by the 6 pairs of 4 real cameras
    assert len(d.read_cameras(ds, source="virtual")) == 8  # virtual cameras are still added
    assert s["source2d"] == "detected"  # the default when detections exist


def test_dropped_virtual_frames_are_reported_and_never_paired(tmp_path):
    ds = tmp_path / "ds"
    truth = make_ds(ds, subjects=("S1",), seqs=1, T=30, far_frames=8)
    s = augment(ds, virtual_views=8, pairs_per_frame=66, shard_rows=10_000, source="gt")
    virt = d.read_cameras(ds, source="virtual")
    X = truth[("S1", "Walking")].astype(np.float64)
    expected = {}
    for c in virt:  # independent check with OpenCV: a joint behind the camera or outside the image
        uv, _ = cv2.projectPoints(X.reshape(-1, 3), cv2.Rodrigues(c.R)[0], c.t, c.K, np.zeros(5))
        uv = uv.reshape(30, 17, 2)
        z = world_to_camera(X, c.R, c.t)[..., 2]
        bad = (z <= 0).any(1) | (uv < 0).any((1, 2)) | (uv[..., 0] >= c.width).any(1) | (uv[..., 1] >= c.height).any(1)
        expected[c.camera] = bad
    assert s["dropped"]["S1"] == {k: int(v.sum()) for k, v in expected.items()}
    assert sum(s["dropped"]["S1"].values()) > 0
    t2 = d.read_poses2d(ds, ["S1"], source="virtual").to_pandas()
    assert len(t2) == 8 * 30 - sum(s["dropped"]["S1"].values())
    df, _ = _pairs(ds)
    for side in "ab":
        v = df[df[f"kind_{side}"] == "virtual"]
        assert not any(expected[c][f - 10] for c, f in zip(v[f"cam_{side}"], v.frame))
    # frames where all 12 views are usable give all 66 pairs
    full = ~np.any(list(expected.values()), axis=0)
    counts = df.groupby("frame").size()
    assert (counts[np.flatnonzero(full) + 10] == 66).all()
    assert d.read_manifest(ds)["augment"]["dropped"]["S1"] == s["dropped"]["S1"]


# ----------------------------------------------------------------------------- estimated extrinsics
def _write_estimated(ds, scale=1.0):
    """An 'estimated' rig = the given one in the frame of its first camera, scaled by ``scale``."""
    cams = d.read_cameras(ds, source="given")
    est = []
    for s in sorted({c.subject for c in cams}):
        rig = [c for c in cams if c.subject == s]
        ref = rig[0]
        for c in rig:  # X_E = scale * (R_ref X + t_ref)
            R_e = c.R @ ref.R.T
            C_e = scale * (ref.R @ c.C + ref.t)
            est.append(c.with_extrinsics(R_e, tvec_from_center(R_e, C_e), source="estimated"))
    d.replace_cameras(ds, est, "estimated")


@pytest.mark.parametrize("scale", [1.0, 1.1])
def test_estimated_extrinsics_express_virtual_cameras_in_the_estimated_frame(tmp_path, scale):
    ds = tmp_path / "ds"
    make_ds(ds, subjects=("S1",), seqs=1, T=12)
    _write_estimated(ds, scale)
    s = augment(ds, virtual_views=8, extrinsics="estimated", pairs_per_frame=20, source="gt", shard_rows=1000)
    assert np.isclose(s["subjects"]["S1"]["estimated_alignment"]["scale"], scale)
    df, m = _pairs(ds)
    assert m["extrinsics"] == "estimated" and len(set(zip(df.kind_a, df.kind_b))) == 4
    ya, yb = _arr(df.y3d_a, (17, 3)), _arr(df.y3d_b, (17, 3))
    # the estimated frame is the world scaled by `scale`: camera coordinates scale with it (mm)
    mapped = apply_relative(scale * ya, _arr(df.R_ab, (3, 3)), _arr(df.t_ab, (3,)))
    assert np.abs(mapped - scale * yb).max() < 0.02
    est = {c.camera: c for c in d.read_cameras(ds, source="estimated")}
    rr = df[(df.kind_a == "real") & (df.kind_b == "real")].iloc[0]
    assert np.allclose(np.reshape(rr.R_ab, (3, 3)), est[rr.cam_b].R @ est[rr.cam_a].R.T, atol=1e-6)


def test_estimated_without_estimated_cameras_is_a_clear_error(tmp_path):
    ds = tmp_path / "ds"
    make_ds(ds, subjects=("S1",), seqs=1, T=5)
    with pytest.raises(d.DatasetError, match="no estimated cameras for subject S1.*calibrate"):
        augment(ds, extrinsics="estimated")
    r = CliRunner().invoke(cli, ["augment", str(ds), "--extrinsics", "estimated"])
    assert r.exit_code != 0 and "Error:" in r.output and "cameras.parquet" in r.output
    assert not (ds / "pairs").exists()


def test_similarity_recovers_a_known_transform():
    real = list(h36m_rig("S11").values())
    ang = np.radians(33.0)
    R = np.array([[np.cos(ang), 0, np.sin(ang)], [0, 1, 0], [-np.sin(ang), 0, np.cos(ang)]])
    T, s = np.array([100.0, -2000.0, 35.0]), 0.8
    moved = []
    for c in real:  # X_E = s R X + T
        R_e = c.R @ R.T
        moved.append(c.with_extrinsics(R_e, tvec_from_center(R_e, s * R @ c.C + T), source="estimated"))
    s2, R2, T2, res = similarity_to(real, moved)
    assert np.isclose(s2, s) and np.allclose(R2, R) and np.allclose(T2, T) and res["centre_rms_mm"] < 1e-6


# ----------------------------------------------------------------------------- misc behaviour
def test_zero_virtual_views_replaces_older_virtual_rows(tmp_path):
    ds = tmp_path / "ds"
    make_ds(ds, subjects=("S1",), seqs=1, T=10, detected=False)
    augment(ds, virtual_views=3)
    assert len(d.read_cameras(ds, source="virtual")) == 3
    assert d.read_manifest(ds)["rows"]["poses2d"]["virtual"] == 30
    s = augment(ds, virtual_views=0, pairs_per_frame=4, overwrite=True)
    assert d.read_cameras(ds, source="virtual") == [] and not list(ds.glob("poses2d/*/virtual-*"))
    assert s["source2d"] == "gt" and s["rows"]["train"] == 40
    df, _ = _pairs(ds)
    assert set(df.kind_a) == {"real"}
    assert d.read_manifest(ds)["rows"]["poses2d"]["virtual"] == 0


def test_failure_midway_leaves_previous_pairs_and_cameras(tmp_path, monkeypatch):
    ds = tmp_path / "ds"
    make_ds(ds, subjects=("S1", "S9"), seqs=1, T=10)
    augment(ds, virtual_views=2)
    before = {
        p: p.read_bytes()
        for p in [ds / "cameras.parquet", ds / "pairs/manifest.json", ds / "poses2d/subject=S1/virtual-0.parquet"]
    }
    calls = []

    def boom(*a, **k):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("simulated crash")
        return real_table(*a, **k)

    real_table = pairs_mod.pair_table
    monkeypatch.setattr("mvtools.augment.pipeline.pair_table", boom)
    with pytest.raises(RuntimeError):
        augment(ds, virtual_views=5, seed=9, overwrite=True)
    assert all(p.read_bytes() == b for p, b in before.items())
    assert sorted(p.name for p in ds.iterdir()) == ["cameras.parquet", "manifest.json", "pairs", "poses2d", "poses3d"]


def test_bad_arguments_and_unknown_subject(tmp_path):
    ds = tmp_path / "ds"
    make_ds(ds, subjects=("S1",), seqs=1, T=5, detected=False)
    with pytest.raises(d.DatasetError, match="no subject"):
        augment(ds, subjects=["S7"])
    with pytest.raises(d.DatasetError, match="no detected 2D"):
        augment(ds, source="detected")
    with pytest.raises(ValueError, match="layout"):
        augment(ds, layout="spiral")
    with pytest.raises(ValueError, match="pairs_per_frame"):
        augment(ds, pairs_per_frame=0)


def test_cli_prints_summary_and_pandas_duckdb_read_shards(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    ds = tmp_path / "ds"
    make_ds(ds, subjects=("S1", "S9"), seqs=1, T=10)
    r = CliRunner().invoke(
        cli,
        [
            "augment",
            str(ds),
            "--virtual-views",
            "4",
            "--pairs-per-frame",
            "3",
            "--shard-rows",
            "25",
            "--layout",
            "random",
            "--seed",
            "2",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "train" in r.output and "30 rows" in r.output and "dropped" in r.output
    df = pd.read_parquet(ds / "pairs" / "train")
    assert len(df) == 30 and len(df.x2d_a.iloc[0]) == 34 and len(df.y3d_b.iloc[0]) == 51
    n, subj, w = duckdb.sql(
        f"select count(*), min(subject), min(len(R_ab)) from read_parquet('{ds}/pairs/test/*.parquet')"
    ).fetchall()[0]
    assert n == 30 and subj == "S9" and w == 9
    help_text = CliRunner().invoke(cli, ["augment", "--help"]).output
    for opt in (
        "--virtual-views",
        "--layout",
        "--seed",
        "--extrinsics",
        "--pairs-per-frame",
        "--views",
        "--subjects",
        "--shard-rows",
        "--source",
        "mm",
        "px",
        "degrees",
    ):
        assert opt in help_text


def test_on_synthetic_detections_end_to_end(synth_ds, tmp_path):
    """Realistic synthetic dataset (procedural motion, detector noise): defaults, detected 2D undistorted."""
    ds = tmp_path / "ds"
    shutil.copytree(synth_ds, ds)  # the session fixture is shared: work on a copy
    s = augment(ds, virtual_views=8, pairs_per_frame=4)
    assert s["source2d"] == "detected" and s["splits"] == {"train": ["S1", "S5"], "test": ["S9"]}
    n3d = d.read_poses3d(ds, columns=["frame"]).num_rows
    assert s["rows"]["train"] + s["rows"]["test"] == 4 * n3d  # >= 4 usable pairs in every frame
    df, _ = _pairs(ds, "train")
    ya, yb = _arr(df.y3d_a, (17, 3)), _arr(df.y3d_b, (17, 3))
    assert np.abs(apply_relative(ya, _arr(df.R_ab, (3, 3)), _arr(df.t_ab, (3,))) - yb).max() < 0.01
    # real views: re-distorting the stored x2d gives back the raw detections (px)
    det = (
        d.read_poses2d(ds, ["S1"], source="detected").to_pandas().set_index(["action", "subaction", "frame", "camera"])
    )
    cams = {c.camera: c for c in d.read_cameras(ds, source="given", subjects=["S1"])}
    real = df[(df.kind_a == "real") & (df.subject == "S1")]
    raw = _arr(det.loc[list(zip(real.action, real.subaction, real.frame, real.cam_a)), "joints2d"], (17, 2))
    x2d = _arr(real.x2d_a, (17, 2))
    for cam_id, cam in cams.items():
        m = (real.cam_a == cam_id).to_numpy()
        xy = (x2d[m] - [cam.cx, cam.cy]) / [cam.fx, cam.fy]
        back = project(np.concatenate([xy, np.ones_like(xy[..., :1])], -1), cam.with_extrinsics(np.eye(3), np.zeros(3)))
        assert np.abs(back - raw[m]).max() < 0.01
    conf = _arr(real.conf_a, (17,))
    assert conf.min() >= 0 and conf.max() <= 1 and conf.std() > 0  # detector confidences are carried over


def test_after_calibrate_from_joints(synth_ds_clean, tmp_path):
    """The real chain: `calibrate --from-joints` (noise-free 2D) then augment with its estimated rig."""
    from mvtools.calibration import calibrate_from_joints

    ds = tmp_path / "ds"
    shutil.copytree(synth_ds_clean, ds)
    calibrate_from_joints(ds, subjects=["S1"], source="gt", refine=False)
    s = augment(ds, subjects=["S1"], extrinsics="estimated", pairs_per_frame=6)
    assert s["source2d"] == "gt" and abs(s["subjects"]["S1"]["estimated_alignment"]["scale"] - 1) < 1e-3
    df, _ = _pairs(ds, "train")
    err = np.linalg.norm(
        apply_relative(_arr(df.y3d_a, (17, 3)), _arr(df.R_ab, (3, 3)), _arr(df.t_ab, (3,))) - _arr(df.y3d_b, (17, 3)),
        axis=-1,
    )
    assert len(set(zip(df.kind_a, df.kind_b))) == 4 and err.max() < 2.0  # mm: estimated from exact 2D


def test_default_extrinsics_follow_the_calibration(tmp_path):
    """No --extrinsics: given when the dataset has a calibration, estimated (after `calibrate --from-joints`) when
    its given cameras carry none; the command always says which it used, and why."""
    ds = tmp_path / "ds"
    make_ds(ds, T=12)
    run = ["augment", str(ds), "--virtual-views", "0", "--pairs-per-frame", "2"]
    r = CliRunner().invoke(cli, run)
    assert r.exit_code == 0, r.output
    assert "extrinsics: given (the dataset's calibration)" in r.output
    run += ["--overwrite"]  # the runs below replace this augment output
    cams = d.read_cameras(ds, source="given")
    d.replace_cameras(ds, [c.with_extrinsics(np.eye(3), np.zeros(3)) for c in cams], "given")  # intrinsics only
    r = CliRunner().invoke(cli, run)
    assert r.exit_code != 0 and "calibrate --from-joints" in r.output and "cameras.parquet" in r.output
    d.replace_cameras(ds, [c.with_extrinsics(c.R, c.t, source="estimated") for c in cams], "estimated")
    r = CliRunner().invoke(cli, run)
    assert r.exit_code == 0, r.output
    assert "extrinsics: estimated (the dataset has no given calibration" in r.output
    assert json.loads((ds / "pairs" / "manifest.json").read_text())["extrinsics"] == "estimated"
    r = CliRunner().invoke(cli, run + ["--extrinsics", "given"])
    assert r.exit_code == 0 and "extrinsics: given (as asked)" in r.output


def test_virtual_noise_simulates_detections_of_the_virtual_views(tmp_path):
    """--virtual-noise realistic: the virtual views' 2D are the noise model's detections of their projections
    (a few px, correlated over frames, confidences below 1), the same in poses2d, the pair shards and the 2D
    sequences; the same seed gives the same noise, and 'none' stays the exact projection."""
    from mvtools.synth.noise import NoiseParams

    a, b = tmp_path / "a", tmp_path / "b"
    make_ds(a, subjects=("S1",), seqs=1, T=200)
    shutil.copytree(a, b)
    augment(a, virtual_views=2, source="gt", seed=1)
    s = augment(b, virtual_views=2, source="gt", seed=1, virtual_noise="realistic")
    assert s["virtual_noise"] == NoiseParams.realistic().to_dict()
    assert json.loads((b / "pairs" / "manifest.json").read_text())["virtual_noise"]["std_px"] == 3.5
    key = ["camera", "frame"]
    ta = d.read_poses2d(a, source="virtual").to_pandas().sort_values(key)
    tb = d.read_poses2d(b, source="virtual").to_pandas().sort_values(key)
    assert len(ta) == len(tb) == 400
    err = _arr(tb.joints2d, (17, 2)) - _arr(ta.joints2d, (17, 2))
    med = np.median(np.linalg.norm(err, axis=-1))
    assert 1.5 < med < 10, med  # a few px at 4-6 m, like the real views' detections
    lag1 = np.corrcoef(err[:199, 3, 0][:-1], err[:199, 3, 0][1:])[0, 1]
    assert lag1 > 0.5, lag1  # AR(1) with a correlation time of 4 frames: exp(-1/4) = 0.78
    assert 0.5 < _arr(tb.confidence, (17,)).mean() < 0.99
    # the shards and the sequences carry the same noisy 2D
    p, _ = _pairs(b)
    v = p[p.kind_a == "virtual"].iloc[0]
    row = tb[(tb.camera == v.cam_a) & (tb.frame == v.frame)]
    np.testing.assert_allclose(np.asarray(v.x2d_a, float), _arr(row.joints2d, (34,))[0], atol=1e-3)
    seq = pd.read_parquet(b / "pairs" / "sequences" / "train.parquet")
    srow = seq[(seq.camera == v.cam_a) & (seq.frame == v.frame)]
    np.testing.assert_allclose(np.asarray(srow.x2d.iloc[0], float), _arr(row.joints2d, (34,))[0], atol=1e-3)
    shutil.rmtree(a)
    shutil.copytree(b, a)
    augment(a, virtual_views=2, source="gt", seed=1, virtual_noise="realistic", overwrite=True)
    again = d.read_poses2d(a, source="virtual").to_pandas().sort_values(key)
    np.testing.assert_array_equal(_arr(again.joints2d, (34,)), _arr(tb.joints2d, (34,)))
    with pytest.raises(Exception, match="nope.json"):
        augment(a, virtual_views=2, virtual_noise=str(tmp_path / "nope.json"), overwrite=True)
