"""`ingest_h36m` on small hand-built raw trees: layout, names, quirks, detections, VideoPose3D input, errors."""

import json

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from mvtools.cli.main import cli
from mvtools.dataset import DatasetError, joints_to_numpy, read_cameras, read_manifest, read_poses2d, read_poses3d
from mvtools.h36m_cameras import H36M_CAMERA_IDS, h36m_rig
from mvtools.ingest.h36m.cdf import write_pose_cdf
from mvtools.ingest.h36m.reader import (
    ingest_h36m,
    load_videopose3d_2d,
    parse_sequence_name,
    write_videopose3d_2d,
    write_videopose3d_3d,
)
from mvtools.synth.h36m import write_raw_sequence

#: Hand-copied from h36m_facts.md section 2.2 (raw index and raw name of each of the 17 joints).
EXPECTED_17 = [
    (0, "Hips"),
    (1, "RightUpLeg"),
    (2, "RightLeg"),
    (3, "RightFoot"),
    (6, "LeftUpLeg"),
    (7, "LeftLeg"),
    (8, "LeftFoot"),
    (12, "Spine1"),
    (13, "Neck"),
    (14, "Head"),
    (15, "HeadSite"),
    (17, "LeftArm"),
    (18, "LeftForeArm"),
    (19, "LeftHand"),
    (25, "RightArm"),
    (26, "RightForeArm"),
    (27, "RightHand"),
]


def motion(T, seed=0):
    """(T, 32, 3) world mm: a jittered body-sized point cloud walking slowly near the world origin."""
    rng = np.random.default_rng(seed)
    base = np.stack([rng.uniform(-250, 250, 32), rng.uniform(-250, 250, 32), rng.uniform(50, 1750, 32)], -1)
    t = np.arange(T)[:, None, None]
    drift = np.concatenate([np.cos(t / 40.0) * 300, np.sin(t / 40.0) * 300, np.zeros_like(t, float)], -1)
    return base[None] + drift + rng.normal(0, 5, (T, 32, 3))


def make_tree(root, spec, T=30, layout="release", d2=True):
    """spec: {subject: [raw names]} -> raw tree; returns {(subject, raw): joints32}."""
    out = {}
    for si, (subject, names) in enumerate(spec.items()):
        rig = h36m_rig(subject) if d2 else {}
        for ni, name in enumerate(names):
            j = motion(T, seed=100 * si + ni)
            write_raw_sequence(root, subject, name, j, rig, layout=layout)
            out[subject, name] = j
    return out


def table_arrays(ds, subject, raw_name, source="gt"):
    t3 = read_poses3d(ds, [subject], raw_name=raw_name).sort_by("frame")
    t2 = read_poses2d(ds, [subject], raw_name=raw_name, source=source)
    return t3, t2


def test_mapping_32_to_17(tmp_path):
    from mvtools.skeleton import H36M32_NAMES

    assert [H36M32_NAMES[i] for i, _ in EXPECTED_17] == [n for _, n in EXPECTED_17]
    raw = tmp_path / "raw"
    j = np.zeros((4, 32, 3))
    j[:] = np.stack([np.arange(32) * 10.0, -np.arange(32) * 7.0, 1000 + np.arange(32) * 3.0], -1)
    write_raw_sequence(raw, "S1", "Walking 1", j, h36m_rig("S1"))
    ingest_h36m(raw, tmp_path / "ds")
    t3, t2 = table_arrays(tmp_path / "ds", "S1", "Walking 1")
    got = joints_to_numpy(t3.column("joints3d"), 3)
    for k, (i, _) in enumerate(EXPECTED_17):
        np.testing.assert_allclose(got[:, k], [[i * 10.0, -i * 7.0, 1000 + i * 3.0]] * 4)


def test_names_and_subactions():
    # hand-checked rows of the metadata.xml mapping (h36m_facts.md section 3)
    assert parse_sequence_name("S1", "TakingPhoto 1") == ("Photo", 1, None)
    assert parse_sequence_name("S1", "WalkingDog") == ("WalkDog", 2, None)
    assert parse_sequence_name("S5", "Discussion 2") == ("Discussion", 1, None)
    assert parse_sequence_name("S5", "Discussion 3") == ("Discussion", 2, None)
    assert parse_sequence_name("S1", "Eating 2") == ("Eating", 1, None)
    assert parse_sequence_name("S5", "SittingDown") == ("SittingDown", 1, None)
    assert parse_sequence_name("S11", "Phoning 3") == ("Phoning", 1, None)
    assert parse_sequence_name("S11", "Phoning 2") == ("Phoning", 2, None)
    assert parse_sequence_name("S6", "Waiting 3") == ("Waiting", 1, None)
    assert parse_sequence_name("S8", "WalkTogether 2") == ("WalkTogether", 2, None)
    assert parse_sequence_name("S1", "Photo 1") == ("Photo", 1, None)  # VideoPose3D key of S1's TakingPhoto 1
    a, s, note = parse_sequence_name("S2", "Greeting 4")
    assert (a, s) == ("Greeting", 4) and "not in the H36M sub-action table" in note


def test_ingest_release_tree(tmp_path):
    raw, ds = tmp_path / "raw", tmp_path / "ds"
    names = {
        "S1": ["TakingPhoto 1", "TakingPhoto", "WalkingDog 1", "_ALL 1"],
        "S5": ["Discussion 2", "Photo"],
        "S9": ["Greeting"],
    }
    motions = make_tree(raw, names, T=25)
    s = ingest_h36m(raw, ds)
    assert s["sequences"] == 6 and s["frames"] == 6 * 25
    m = read_manifest(ds)
    assert m["splits"] == {"train": ["S1", "S5"], "test": ["S9"]} and m["fps"] == 50
    assert any(n["issue"] == "skipped" and "_ALL" in n["message"] for n in m["notes"])
    assert any(n["issue"] == "known" and n["subject"] == "S9" for n in m["notes"])
    assert m["gt2d"]["from_d2_files"] == 24 and m["gt2d"]["projected"] == 0
    assert m["gt2d"]["d2_max_deviation_px"] < 1e-3
    df = pd.read_parquet(ds / "poses3d")
    got = set(map(tuple, df[["subject", "action", "subaction", "raw_name"]].drop_duplicates().astype(str).values))
    assert got == {
        ("S1", "Photo", "1", "TakingPhoto 1"),
        ("S1", "Photo", "2", "TakingPhoto"),
        ("S1", "WalkDog", "1", "WalkingDog 1"),
        ("S5", "Discussion", "1", "Discussion 2"),
        ("S5", "Photo", "1", "Photo"),
        ("S9", "Greeting", "2", "Greeting"),
    }
    # 3D equals the file's 17 joints; 2D gt equals each D2 file (float32 storage)
    t3, t2 = table_arrays(ds, "S5", "Photo")
    idx = [i for i, _ in EXPECTED_17]
    np.testing.assert_allclose(joints_to_numpy(t3.column("joints3d"), 3), motions["S5", "Photo"][:, idx], atol=1e-3)
    rig = h36m_rig("S5")
    from mvtools.camera import project

    for cam in H36M_CAMERA_IDS:
        sub = t2.filter(pc.equal(t2.column("camera"), cam)).sort_by("frame")
        uv = joints_to_numpy(sub.column("joints2d"), 2)
        np.testing.assert_allclose(uv, project(motions["S5", "Photo"][:, idx], rig[cam]), atol=1e-3)
        assert np.all(joints_to_numpy(sub.column("confidence"), 1) == 1.0)
    cams = read_cameras(ds)
    assert {(c.subject, c.camera) for c in cams} == {(s, c) for s in ("S1", "S5", "S9") for c in H36M_CAMERA_IDS}


def test_h36m_fetch_layout_and_projection_fallback(tmp_path):
    raw, ds = tmp_path / "raw", tmp_path / "ds"
    make_tree(raw / "extracted", {"S7": ["Walking 2"]}, T=12, layout="h36m-fetch", d2=False)
    s = ingest_h36m(raw, ds)
    assert s["sequences"] == 1 and s["gt2d"]["projected"] == 4 and s["gt2d"]["from_d2_files"] == 0
    t3, t2 = table_arrays(ds, "S7", "Walking 2")
    assert t3.column("action")[0].as_py() == "Walking" and t3.column("subaction")[0].as_py() == 2
    assert t2.num_rows == 4 * 12


def test_length_mismatch_trimmed_and_reported(tmp_path):
    raw, ds = tmp_path / "raw", tmp_path / "ds"
    j = motion(40)
    rig = h36m_rig("S6")
    write_raw_sequence(raw, "S6", "Posing 2", j, rig, d3_frames=30, d2_frames={"55011271": 34, "58860488": 27})
    s = ingest_h36m(raw, ds)
    assert s["frames"] == 27
    lengths = [n for n in s["notes"] if n["issue"] == "length"]
    files = {n["file"].rsplit("/", 1)[-1]: n for n in lengths}
    assert files["Posing 2.55011271.cdf"]["d2_frames"] == 34 and files["Posing 2.58860488.cdf"]["d2_frames"] == 27
    assert files["Posing 2.cdf"]["kept"] == 27 and "trimmed from 30 to 27" in files["Posing 2.cdf"]["message"]
    assert read_manifest(ds)["notes"] == json.loads(json.dumps(s["notes"]))
    # frames stay aligned: frame k of 3D and of every camera is capture frame k
    t3, t2 = table_arrays(ds, "S6", "Posing 2")
    idx = [i for i, _ in EXPECTED_17]
    assert t3.column("frame").to_pylist() == list(range(27))
    np.testing.assert_allclose(joints_to_numpy(t3.column("joints3d"), 3), j[:27, idx], atol=1e-3)
    df = t2.to_pandas()
    assert df.groupby("camera").frame.max().tolist() == [26] * 4
    from mvtools.camera import project

    long = df[df.camera == "55011271"].sort_values("frame")
    uv = np.stack(long.joints2d.to_numpy()).reshape(-1, 17, 2)
    np.testing.assert_allclose(uv, project(j[:27, idx], rig["55011271"]), atol=1e-3)


def test_filters(tmp_path):
    raw = tmp_path / "raw"
    make_tree(raw, {"S1": ["Sitting 1", "SittingDown 2"], "S5": ["Sitting 1"]}, T=8)
    s = ingest_h36m(raw, tmp_path / "a", subjects=["S1"], actions=["Sitting"])
    assert s["subjects"] == ["S1"] and s["sequences"] == 1  # exact match: Sitting does not select SittingDown
    assert read_manifest(tmp_path / "a")["splits"] == {"train": ["S1"], "test": []}
    with pytest.raises(DatasetError, match="no sequence matches action"):
        ingest_h36m(raw, tmp_path / "b", actions=["Sittin"])
    with pytest.raises(DatasetError, match="subject"):
        ingest_h36m(raw, tmp_path / "b", subjects=["S9"])
    assert not (tmp_path / "b").exists()


def _detections(motions, cams_of, extra=3, conf=True, seed=0):
    rng = np.random.default_rng(seed)
    from mvtools.camera import project

    out = {}
    idx = [i for i, _ in EXPECTED_17]
    for (subject, raw), j in motions.items():
        rig = h36m_rig(subject)
        lst = []
        for cam in H36M_CAMERA_IDS:
            if cam not in cams_of(subject, raw):
                lst.append(None)
                continue
            jj = np.concatenate([j, np.repeat(j[-1:], extra, 0)])  # the "video" runs a few frames longer
            uv = project(jj[:, idx], rig[cam]) + rng.normal(0, 2, (len(jj), 17, 2))
            a = np.concatenate([uv, rng.uniform(0.2, 1, (len(jj), 17, 1))], -1) if conf else uv
            lst.append(a.astype(np.float32))
        from mvtools.ingest.h36m.reader import videopose3d_key

        out.setdefault(subject, {})[videopose3d_key(raw)] = lst
    return out


@pytest.mark.parametrize("conf", [True, False])
def test_detections(tmp_path, conf):
    raw, ds = tmp_path / "raw", tmp_path / "ds"
    motions = make_tree(raw, {"S1": ["TakingPhoto 1", "Walking 1"]}, T=20)
    dets = _detections(motions, lambda s, r: H36M_CAMERA_IDS[1:] if r == "Walking 1" else H36M_CAMERA_IDS, conf=conf)
    dets["S2"] = {"Walking": [None] * 4}  # present in VideoPose3D files, absent from the raw tree
    write_videopose3d_2d(tmp_path / "det.npz", dets)
    s = ingest_h36m(raw, ds, detections=tmp_path / "det.npz")
    assert s["rows"]["poses2d"]["detected"] == 20 * 4 + 20 * 3
    assert s["detections"]["trimmed_frames"] == 7 * 3 and s["detections"]["unused_subjects"] == ["S2"]
    assert any("no detections for camera 54138969" in n["message"] for n in s["notes"])
    t2 = read_poses2d(ds, ["S1"], source="detected", raw_name="TakingPhoto 1").to_pandas()
    sub = t2[t2.camera == "58860488"].sort_values("frame")
    a = dets["S1"]["Photo 1"][2][:20]
    np.testing.assert_array_equal(np.stack(sub.joints2d.to_numpy()).reshape(-1, 17, 2), a[..., :2])
    c = np.stack(sub.confidence.to_numpy())
    np.testing.assert_array_equal(c, a[..., 2] if conf else np.ones((20, 17), np.float32))
    # gt rows are untouched by detections
    assert s["rows"]["poses2d"]["gt"] == 2 * 20 * 4


def test_detections_too_short_or_bad(tmp_path):
    raw = tmp_path / "raw"
    motions = make_tree(raw, {"S1": ["Walking 1"]}, T=20)
    dets = _detections(motions, lambda s, r: H36M_CAMERA_IDS, extra=0)
    dets["S1"]["Walking 1"][3] = dets["S1"]["Walking 1"][3][:18]
    write_videopose3d_2d(tmp_path / "short.npz", dets)
    with pytest.raises(
        DatasetError,
        match=r"short\.npz: detections of S1 'Walking 1' camera 60457274 have 18 "
        r"frames, fewer than the 20",
    ):
        ingest_h36m(raw, tmp_path / "ds", detections=tmp_path / "short.npz")
    dets["S1"]["Walking 1"][3] = np.zeros((20, 16, 2), np.float32)
    write_videopose3d_2d(tmp_path / "j16.npz", dets)
    with pytest.raises(DatasetError, match=r"j16\.npz: .*camera 60457274: expected a float \(T, 17, 2\)"):
        load_videopose3d_2d(tmp_path / "j16.npz")
    write_videopose3d_2d(tmp_path / "coco.npz", {}, {"layout_name": "coco", "num_joints": 17})
    with pytest.raises(DatasetError, match=r"coco\.npz: keypoint layout 'coco' is not supported"):
        load_videopose3d_2d(tmp_path / "coco.npz")
    assert not (tmp_path / "ds").exists()


def test_from_videopose3d(tmp_path):
    ds = tmp_path / "ds"
    j1, j2 = motion(15, 1), motion(11, 2)
    write_videopose3d_3d(tmp_path / "data_3d_h36m.npz", {"S1": {"Photo 1": j1}, "S11": {"Phoning 3": j2}})
    s = ingest_h36m(None, ds, from_videopose3d=tmp_path / "data_3d_h36m.npz")
    assert s["sequences"] == 2 and s["gt2d"]["projected"] == 8
    m = read_manifest(ds)
    assert m["source"]["kind"] == "videopose3d" and m["splits"] == {"train": ["S1"], "test": ["S11"]}
    t3, t2 = table_arrays(ds, "S1", "TakingPhoto 1")  # raw name recovered from the VideoPose3D key
    assert t3.column("action")[0].as_py() == "Photo" and t3.column("subaction")[0].as_py() == 1
    idx = [i for i, _ in EXPECTED_17]
    np.testing.assert_allclose(joints_to_numpy(t3.column("joints3d"), 3), j1[:, idx], atol=0.1)  # metres in float32
    t3b, _ = table_arrays(ds, "S11", "Phoning 3")
    assert t3b.column("subaction")[0].as_py() == 1 and t3b.num_rows == 11


def test_pandas_and_duckdb_read(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    raw, ds = tmp_path / "raw", tmp_path / "ds"
    make_tree(raw, {"S1": ["Walking 1"], "S9": ["Walking"]}, T=10)
    ingest_h36m(raw, ds)
    df = pd.read_parquet(ds / "poses2d")
    assert len(df) == 2 * 10 * 4 and set(df.subject) == {"S1", "S9"}
    con = duckdb.connect()
    rows = con.execute(
        f"select subject, count(*), min(len(joints3d)) from read_parquet('{ds}/poses3d/*/*.parquet', "
        "hive_partitioning=true) group by subject order by subject"
    ).fetchall()
    assert rows == [("S1", 10, 51), ("S9", 10, 51)]
    n = con.execute(f"select count(*) from read_parquet('{ds}/cameras.parquet')").fetchone()[0]
    assert n == 8


def test_atomic_failure_keeps_old_dataset(tmp_path, monkeypatch):
    import mvtools.ingest.h36m.reader as h

    raw, ds = tmp_path / "raw", tmp_path / "ds"
    make_tree(raw, {"S1": ["Walking 1", "Walking", "Eating 2", "Eating"]}, T=6)
    ingest_h36m(raw, ds, actions=["Walking"])
    before = sorted(p.relative_to(ds) for p in ds.rglob("*"))
    calls = {"n": 0}
    real = h.read_d3

    def flaky(path):
        calls["n"] += 1
        if calls["n"] == 3:
            raise DatasetError(f"{path}: simulated read failure")
        return real(path)

    monkeypatch.setattr(h, "read_d3", flaky)
    with pytest.raises(DatasetError, match="simulated"):
        ingest_h36m(raw, ds, overwrite=True)
    assert sorted(p.relative_to(ds) for p in ds.rglob("*")) == before
    assert read_manifest(ds)["sequences"] == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# ----------------------------------------------------------------------------- bad input through the CLI
def _bad_tree(tmp_path, kind):
    raw = tmp_path / "raw"
    make_tree(raw, {"S1": ["Walking 1", "Walking"]}, T=10)
    d3 = raw / "S1" / "MyPoseFeatures" / "D3_Positions" / "Walking.cdf"
    d2 = raw / "S1" / "MyPoseFeatures" / "D2_Positions" / "Walking.55011271.cdf"
    args = [str(raw)]
    if kind == "missing_variable":
        from cdflib.cdfwrite import CDF

        d3.unlink()
        w = CDF(str(d3))
        w.write_var(
            {
                "Variable": "Positions",
                "Data_Type": CDF.CDF_DOUBLE,
                "Num_Elements": 1,
                "Rec_Vary": True,
                "Dim_Sizes": [10, 96],
            },
            var_data=np.zeros((1, 10, 96)),
        )
        w.close()
        return args, r"Walking\.cdf: no variable 'Pose'"
    if kind == "wrong_shape":
        write_pose_cdf(d2, np.zeros((10, 96)))
        return args, r"Walking\.55011271\.cdf: 'Pose' has 96 values per frame, expected 64"
    if kind == "truncated":
        d3.write_bytes(d3.read_bytes()[:1000])
        return args, r"Walking\.cdf: .*truncated or corrupt"
    if kind == "nan":
        a = np.ones((10, 64))
        a[3, 5] = np.nan
        write_pose_cdf(d2, a)
        return args, r"Walking\.55011271\.cdf: 'Pose' holds NaN/inf"
    if kind == "unknown_camera_file":
        from importlib import resources

        data = json.loads(resources.files("mvtools").joinpath("data/h36m_cameras.json").read_text())
        data["intrinsics"]["12345678"] = data["intrinsics"]["54138969"]
        moved = dict(data["extrinsics"]["S1"]["54138969"])  # another pose (a copy is refused as a duplicate)
        moved["translation"] = [v + 500.0 for v in moved["translation"]]
        data["extrinsics"]["S1"]["12345678"] = moved
        (tmp_path / "cams.json").write_text(json.dumps(data))
        return args + ["--cameras", str(tmp_path / "cams.json")], r"cams\.json: unknown camera '12345678'"
    if kind == "unknown_camera_d2":
        write_pose_cdf(raw / "S1" / "MyPoseFeatures" / "D2_Positions" / "Walking.99999999.cdf", np.zeros((10, 64)))
        return args, r"Walking\.99999999\.cdf: camera '99999999' has no calibration for S1"
    if kind == "no_poses":
        return [str(tmp_path)], r"no Human3\.6M poses found"
    if kind == "bad_npz":
        (tmp_path / "det.npz").write_bytes(b"PK\x03\x04 broken")
        return args + ["--detections", str(tmp_path / "det.npz")], r"det\.npz: not a readable \.npz"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "missing_variable",
        "wrong_shape",
        "truncated",
        "nan",
        "unknown_camera_file",
        "unknown_camera_d2",
        "no_poses",
        "bad_npz",
    ],
)
def test_bad_input_cli(tmp_path, kind):
    import re

    args, pattern = _bad_tree(tmp_path, kind)
    res = CliRunner().invoke(cli, ["ingest", "h36m", *args, "--out", str(tmp_path / "ds")])
    assert res.exit_code != 0
    assert "Error:" in res.output and re.search(pattern, res.output), res.output
    assert not (tmp_path / "ds").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds")]


def test_cli_ok(tmp_path):
    raw = tmp_path / "raw"
    make_tree(raw, {"S8": ["WalkTogether 2"]}, T=7)
    res = CliRunner().invoke(cli, ["ingest", "h36m", str(raw), "--out", str(tmp_path / "ds")])
    assert res.exit_code == 0, res.output
    assert "1 sequences, 7 frames" in res.output
    assert read_poses3d(tmp_path / "ds").num_rows == 7
    res = CliRunner().invoke(cli, ["ingest", "h36m", "--out", str(tmp_path / "ds2")])
    assert res.exit_code != 0 and "exactly one" in res.output


def _camera_json():
    from importlib import resources

    return json.loads(resources.files("mvtools").joinpath("data/h36m_cameras.json").read_text())


def test_cameras_override(tmp_path):
    raw = tmp_path / "raw"
    make_tree(raw, {"S1": ["Walking 1"], "S5": ["Walking 1"]}, T=10)
    data = _camera_json()
    data["intrinsics"]["55011271"]["focal_length"] = [1200.0, 1200.0]
    (tmp_path / "cams.json").write_text(json.dumps(data))
    s = ingest_h36m(raw, tmp_path / "ds", cameras_file=tmp_path / "cams.json")
    cams = {(c.subject, c.camera): c for c in read_cameras(tmp_path / "ds")}
    assert cams["S5", "55011271"].fx == 1200.0 and cams["S5", "54138969"].fx == pytest.approx(1145.0494384765625)
    assert s["gt2d"]["d2_max_deviation_px"] > 5  # the D2 files were made with the built-in calibration
    bad = sorted(n["file"].rsplit("/", 1)[-1] for n in s["notes"] if n["issue"] == "d2_projection")
    assert bad == ["Walking 1.55011271.cdf"] * 2
    # a cameras file without one of the subjects: clear error naming the file and the subject
    del data["extrinsics"]["S5"]
    (tmp_path / "cams2.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"cams2\.json: no cameras for subject S5"):
        ingest_h36m(raw, tmp_path / "ds2", cameras_file=tmp_path / "cams2.json")
    assert not (tmp_path / "ds2").exists()


def test_videopose3d_bad_files(tmp_path):
    write_videopose3d_3d(tmp_path / "mm.npz", {"S1": {"Walking 1": motion(5) * 1000}})  # mm written as "metres"
    with pytest.raises(
        DatasetError, match=r"mm\.npz: positions_3d\['S1'\]\['Walking 1'\] has coordinates beyond 100 m"
    ):
        ingest_h36m(None, tmp_path / "ds", from_videopose3d=tmp_path / "mm.npz")
    np.savez(tmp_path / "other.npz", positions=np.zeros(3))
    with pytest.raises(DatasetError, match=r"other\.npz: no 'positions_3d' array \(found: positions\)"):
        ingest_h36m(None, tmp_path / "ds", from_videopose3d=tmp_path / "other.npz")
    write_videopose3d_3d(tmp_path / "shape.npz", {"S1": {"Walking 1": np.zeros((5, 32, 2))}})
    with pytest.raises(
        DatasetError, match=r"shape\.npz: positions_3d\['S1'\]\['Walking 1'\] must be a float \(T, 32, 3\)"
    ):
        ingest_h36m(None, tmp_path / "ds", from_videopose3d=tmp_path / "shape.npz")
    with pytest.raises(ValueError, match="exactly one"):
        ingest_h36m(tmp_path, tmp_path / "ds", from_videopose3d=tmp_path / "shape.npz")
    assert not (tmp_path / "ds").exists()


def test_mmpose_extracted_tree_reads_mono_files(tmp_path):
    """mmpose's preprocess_h36m.py extracts Videos, D2_Positions and D3_Positions_mono only (no world D3): the
    world joints come from the four camera-frame files through the calibration and equal the release tree's."""
    raw, mm = tmp_path / "raw", tmp_path / "extracted"
    motions = make_tree(raw, {"S9": ["Walking 1", "Greeting"]}, T=15)
    rig = h36m_rig("S9")
    for name, j in ((n, motions["S9", n]) for n in ("Walking 1", "Greeting")):
        for cam, c in rig.items():
            write_pose_cdf(
                mm / "S9" / "MyPoseFeatures" / "D3_Positions_mono" / f"{name}.{cam}.cdf",
                (j @ c.R.T + c.t).reshape(len(j), 96),
            )
        for f in (raw / "S9" / "MyPoseFeatures" / "D2_Positions").glob(f"{name}.*.cdf"):
            (mm / "S9" / "MyPoseFeatures" / "D2_Positions").mkdir(parents=True, exist_ok=True)
            (mm / "S9" / "MyPoseFeatures" / "D2_Positions" / f.name).write_bytes(f.read_bytes())
    ingest_h36m(raw, tmp_path / "a")
    b_out = tmp_path.parent / f"{tmp_path.name}-b"  # beside the raw root: an output inside an input is refused
    s = ingest_h36m(tmp_path, b_out)  # the parent of extracted/, as mmpose lays it out
    assert s["sequences"] == 2 and s["gt2d"]["from_d2_files"] == 8
    a = read_poses3d(tmp_path / "a").sort_by([("raw_name", "ascending"), ("frame", "ascending")])
    b = read_poses3d(b_out).sort_by([("raw_name", "ascending"), ("frame", "ascending")])
    np.testing.assert_allclose(joints_to_numpy(b["joints3d"], 3), joints_to_numpy(a["joints3d"], 3), atol=1e-3)
    assert read_manifest(b_out)["source"]["layout"] == ["mmpose"]
    assert not [n for n in s["notes"] if n["issue"] == "mono"]


def test_drop_s11_directions_and_no_release_notes_for_synthetic(tmp_path):
    raw = tmp_path / "raw"
    make_tree(raw, {"S11": ["Directions", "Walking 1"], "S9": ["Greeting"]}, T=8)
    s = ingest_h36m(raw, tmp_path / "a")
    assert {n["raw_name"] for n in s["notes"] if n["issue"] == "known"} == {"Directions", "Greeting"}
    s = ingest_h36m(raw, tmp_path / "b", drop_s11_directions=True)
    assert s["sequences"] == 2 and "Directions" not in set(read_poses3d(tmp_path / "b", ["S11"])["action"].to_pylist())
    assert any(n["issue"] == "dropped" and n["raw_name"] == "Directions" for n in s["notes"])
    r = CliRunner().invoke(cli, ["ingest", "h36m", str(raw), "--out", str(tmp_path / "c"), "--drop-s11-directions"])
    assert r.exit_code == 0, r.output
    assert set(read_poses3d(tmp_path / "c", ["S11"])["action"].to_pylist()) == {"Walking"}
    # a tree written by `mvtools synth h36m` is not the release: no "damaged" notes for its S9 sequences
    from mvtools.synth.h36m import raw_plan, synth_h36m

    k = [raw for _, _, raw in raw_plan("S9", 30)].index("Greeting") + 1
    synth_h36m(tmp_path / "syn", subjects=["S9"], sequences=k, frames=10, detections=False)
    s = ingest_h36m(tmp_path / "syn", tmp_path / "d")
    assert "Greeting" in set(read_poses3d(tmp_path / "d", ["S9"])["raw_name"].to_pylist())
    assert not [n for n in s["notes"] if n["issue"] == "known"]
