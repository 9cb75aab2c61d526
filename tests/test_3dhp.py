"""MPI-INF-3DHP ingest: fixture files in the real formats (MAT v5 annot.mat, MATLAB v7.3 / HDF5 annot_data.mat,
camera.calibration text) built from a known 3D body and known cameras; checks against independent references
(joint names, OpenCV projection, hand-computed transforms)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from scipy.io import savemat

from mvtools.dataset import DatasetError, joints_to_numpy, read_cameras, read_manifest, read_poses2d, read_poses3d
from mvtools.ingest.mpi3dhp import ingest_3dhp, read_calibration, read_test_annot, read_train_annot
from mvtools.skeleton import H36M17_NAMES
from mvtools.synth.mpi3dhp import (
    NAMES28,
    NAMES_TEST,
    TS1_K,
    TS5_DIST,
    TS5_K,
    cv_project,
    joints_array,
    rig14,
    write_test_sequence,
    write_train_sequence,
)

# ----------------------------------------------------------------------------- independent references
#: H36M-17 joint -> 3DHP joint, by meaning.
H36M_TO_3DHP = {
    "pelvis": "pelvis",
    "right_hip": "right_hip",
    "right_knee": "right_knee",
    "right_ankle": "right_ankle",
    "left_hip": "left_hip",
    "left_knee": "left_knee",
    "left_ankle": "left_ankle",
    "spine": "spine",
    "thorax": "neck",
    "neck": "head",
    "head": "head_top",
    "left_shoulder": "left_shoulder",
    "left_elbow": "left_elbow",
    "left_wrist": "left_wrist",
    "right_shoulder": "right_shoulder",
    "right_elbow": "right_elbow",
    "right_wrist": "right_wrist",
}
ACTIVITY_NAMES = ["Stand/Walk", "Exercise", "Sit on Chair", "Reach/Crouch", "On Floor", "Sports", "Misc."]


#: 3DHP world (Y up) -> Z up, written out by hand: new x = x, new y = -z, new z = y.
def zup(X):
    X = np.asarray(X)
    return np.stack([X[..., 0], -X[..., 2], X[..., 1]], -1)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """S1 (Seq1 20 of 23 rows, Seq2 25 rows), S2 (Seq1/Seq2 12 rows), TS1 (40 frames), TS5 (30 frames)."""
    root = tmp_path_factory.mktemp("3dhp")
    rng = np.random.default_rng(0)
    cams = rig14(rng)
    info = {
        "S1/Seq1": write_train_sequence(root / "S1" / "Seq1", 23, rng, cams),
        "S1/Seq2": write_train_sequence(root / "S1" / "Seq2", 25, rng, cams),
        "S2/Seq1": write_train_sequence(root / "S2" / "Seq1", 12, rng, cams),
        "S2/Seq2": write_train_sequence(root / "S2" / "Seq2", 12, rng, cams),
    }
    ts = root / "mpi_inf_3dhp_test_set"
    act = np.repeat(np.arange(1, 8), 6)[:40]
    info["TS1"] = write_test_sequence(ts / "TS1", 40, rng, activity=act)
    info["TS5"] = write_test_sequence(ts / "TS5", 30, rng, outdoor=True)
    counts = {"S1/Seq1": 20, "S1/Seq2": 25, "S2/Seq1": 12, "S2/Seq2": 12, "TS1": 40, "TS5": 30}
    return root, info, counts, cams


@pytest.fixture(scope="module")
def both(tree, tmp_path_factory):
    root, info, counts, cams = tree
    out = tmp_path_factory.mktemp("ds") / "both"
    summary = ingest_3dhp(root, out, split="both", frame_counts=counts)
    return out, summary


# ----------------------------------------------------------------------------- calibration
def test_calibration_round_trip_and_opencv(tree):
    root, info, counts, cams = tree
    got = read_calibration(root / "S1" / "Seq1" / "camera.calibration")
    assert sorted(got) == list(range(14))
    body = info["S1/Seq1"][0]
    X = joints_array(body, NAMES28)
    for i, c in got.items():
        assert (c.width, c.height) == (2048, 2048) and c.distortion_model == "none" and c.source == "given"
        np.testing.assert_allclose(c.K, cams[i].K, atol=1e-6)
        np.testing.assert_allclose(c.C, cams[i].C, atol=1e-4)
        # the parsed camera projects like OpenCV with the original parameters
        from mvtools.camera import project

        np.testing.assert_allclose(project(X, c), cv_project(X, cams[i]), atol=1e-4)


def test_calibration_bad_files(tmp_path):
    p = tmp_path / "camera.calibration"
    p.write_text("not a calibration\n")
    with pytest.raises(DatasetError, match="camera.calibration.*not a 3DHP"):
        read_calibration(p)
    p.write_text("Skeletool Camera Calibration File V1.0\nname 0\n  size 2048 2048\n  intrinsic 1 0 0\n")
    with pytest.raises(DatasetError, match=r"camera.calibration:4: intrinsic of camera 0 has 3 numbers"):
        read_calibration(p)
    with pytest.raises(DatasetError, match="missing"):
        read_calibration(tmp_path / "nope.calibration")


# ----------------------------------------------------------------------------- training part
def test_train_world_joints_and_mapping(tree, both):
    root, info, counts, cams = tree
    out, summary = both
    t = read_poses3d(out, ["S1"], action="Seq1").sort_by("frame")
    J = joints_to_numpy(t["joints3d"], 3)
    body = info["S1/Seq1"][0]
    expect = zup(np.stack([body[H36M_TO_3DHP[n]][:20] for n in H36M17_NAMES], 1))
    assert J.shape == (20, 17, 3)  # first F = 20 of 23 rows
    np.testing.assert_allclose(J, expect, atol=0.05)  # float32 storage of mm
    np.testing.assert_array_equal(t["frame"].to_numpy(), np.arange(20))
    # univ: scaled about the pelvis by 0.9 in every camera -> same in the world
    U = joints_to_numpy(t["joints3d_univ"], 3)
    np.testing.assert_allclose(U, expect[:, :1] + 0.9 * (expect - expect[:, :1]), atol=0.05)
    assert t["valid"].to_pylist() == [True] * 20 and set(t["scene"].to_pylist()) == {"training"}


def test_train_left_right_by_geometry(tree, both):
    """Independent of names: the person's right, from the toes' forward direction and the up axis."""
    root, info, counts, cams = tree
    out, _ = both
    body = info["S1/Seq2"][0]
    J = joints_to_numpy(read_poses3d(out, ["S1"], action="Seq2").sort_by("frame")["joints3d"], 3)
    fwd = zup(body["left_toe"] + body["right_toe"] - body["left_ankle"] - body["right_ankle"])
    up = J[:, H36M17_NAMES.index("thorax")] - J[:, H36M17_NAMES.index("pelvis")]
    right = np.cross(fwd, up)
    assert (up[:, 2] > 0).all()  # Z up
    for part in ("hip", "knee", "ankle", "shoulder", "elbow", "wrist"):
        d = J[:, H36M17_NAMES.index(f"right_{part}")] - J[:, H36M17_NAMES.index(f"left_{part}")]
        assert ((d * right).sum(-1) > 0).all(), part
    # head chain goes upwards: pelvis < spine < thorax < neck/nose < head (in Z)
    z = J[..., 2]
    chain = [H36M17_NAMES.index(n) for n in ("pelvis", "spine", "thorax", "neck", "head")]
    assert (np.diff(z[:, chain], axis=1) > 0).all()


def test_train_cameras_and_2d_match_opencv(tree, both):
    root, info, counts, cams = tree
    out, summary = both
    rig = {c.camera: c for c in read_cameras(out, subjects=["S1"])}
    assert sorted(rig, key=int) == ["0", "2", "4", "7", "8"]
    t2 = read_poses2d(out, ["S1"], source="gt", action="Seq1")
    J3 = joints_to_numpy(read_poses3d(out, ["S1"], action="Seq1").sort_by("frame")["joints3d"], 3)
    body = info["S1/Seq1"][0]
    X = np.stack([body[H36M_TO_3DHP[n]][:20] for n in H36M17_NAMES], 1)  # 3DHP world (Y up)
    for cid, c in rig.items():
        ref = cams[int(cid)]
        np.testing.assert_allclose(c.C, zup(ref.C), atol=1e-4)  # centre rotated into the Z-up world
        assert (c.width, c.height, c.source, c.distortion_model) == (2048, 2048, "given", "none")
        rows = t2.filter(t2["camera"].to_numpy(zero_copy_only=False) == cid).sort_by("frame")
        x2 = joints_to_numpy(rows["joints2d"], 2)
        np.testing.assert_allclose(x2, cv_project(X, ref), atol=1e-3)  # 2D as given
        # the stored Z-up camera reprojects the stored world joints onto the given 2D (OpenCV reference)
        np.testing.assert_allclose(cv_project(J3.astype(np.float64), c), x2, atol=0.05)
    seq = {(r["subject"], r["sequence"]): r for r in summary["train"]}
    assert seq[("S1", "Seq1")]["annot_rows"] == 23 and seq[("S1", "Seq1")]["frames"] == 20
    assert seq[("S1", "Seq1")]["max_camera_disagreement_mm"] < 1e-6
    assert seq[("S1", "Seq1")]["reprojection_rms_px"] < 1e-6
    assert seq[("S1", "Seq2")]["rig_difference"] == {"centre_mm": 0.0, "rotation_deg": 0.0, "intrinsics_px": 0.0}


def test_train_camera_disagreement_reported(tmp_path):
    """Camera 4's annot3 shifted by 5 mm: the mean over 5 cameras moves 1 mm, camera 4 is 4 mm off it."""
    rng = np.random.default_rng(1)
    for q in (1, 2):
        write_train_sequence(tmp_path / "S3" / f"Seq{q}", 6, rng, offsets={4: (3.0, 0.0, 4.0)})
    s = ingest_3dhp(tmp_path, _outside(tmp_path, "ds"), frame_counts={"S3/Seq1": 6, "S3/Seq2": 6})
    for r in s["train"]:
        assert r["max_camera_disagreement_mm"] == pytest.approx(4.0, abs=1e-3)
    assert s["max_camera_disagreement_mm"] == pytest.approx(4.0, abs=1e-3)


def test_train_cameras_all_and_subset(tree, tmp_path):
    root, info, counts, cams = tree
    s = ingest_3dhp(root, tmp_path / "all", cameras=range(14), subjects=["S2"], frame_counts=counts)
    assert {c.camera for c in read_cameras(tmp_path / "all")} == {str(i) for i in range(14)}
    assert read_manifest(tmp_path / "all")["splits"] == {"train": ["S2"], "test": []}
    assert s["rows"]["poses2d"]["gt"] == 14 * 24 and s["rows"]["poses3d"] == 24


# ----------------------------------------------------------------------------- test part
def test_test_set_columns_valid_scene_activity(tree, both):
    root, info, counts, cams = tree
    out, summary = both
    for ts, scene in (("TS1", "greenscreen"), ("TS5", "outdoor")):
        t = read_poses3d(out, [ts]).sort_by("frame")
        ref = info[ts]
        n = len(ref["valid"])
        np.testing.assert_array_equal(t["frame"].to_numpy(), np.arange(n))
        np.testing.assert_array_equal(t["valid"].to_numpy(zero_copy_only=False), ref["valid"])
        assert set(t["scene"].to_pylist()) == {scene}
        assert t["action"].to_pylist() == [ACTIVITY_NAMES[a - 1] for a in ref["activity"]]
        assert set(t["subaction"].to_pylist()) == {1}
        order = [NAMES_TEST.index(H36M_TO_3DHP[n]) for n in H36M17_NAMES]
        np.testing.assert_allclose(joints_to_numpy(t["joints3d"], 3), ref["annot3"][:, order], atol=0.05)
        U = joints_to_numpy(t["joints3d_univ"], 3)
        v = ref["valid"]
        np.testing.assert_allclose(U[v], ref["univ"][v][:, order], atol=0.05)
        x2 = joints_to_numpy(read_poses2d(out, [ts], source="gt").sort_by("frame")["joints2d"], 2)
        np.testing.assert_allclose(x2, ref["annot2"][:, order], atol=1e-3)
    rep = {r["subject"]: r for r in summary["test"]}
    assert rep["TS1"]["valid_frames"] == int(info["TS1"]["valid"].sum())


def test_test_cameras_known_intrinsics(tree, both):
    root, info, counts, cams = tree
    out, summary = both
    rig = {c.subject: c for c in read_cameras(out, subjects=["TS1", "TS5"])}
    c1, c5 = rig["TS1"], rig["TS5"]
    np.testing.assert_allclose(c1.R, np.eye(3))
    np.testing.assert_allclose(c1.t, 0)
    assert (c1.width, c1.height, c5.width, c5.height) == (2048, 2048, 1920, 1080)
    np.testing.assert_allclose([c1.fx, c1.fy, c1.cx, c1.cy], [TS1_K[k] for k in ("fx", "fy", "cx", "cy")])
    np.testing.assert_allclose([c5.fx, c5.fy, c5.cx, c5.cy], [TS5_K[k] for k in ("fx", "fy", "cx", "cy")])
    np.testing.assert_allclose(c5.opencv_distortion(), TS5_DIST)
    assert c1.distortion_model == "none" and c5.distortion_model == "opencv"
    rep = {r["subject"]: r for r in summary["test"]}
    assert rep["TS1"]["reprojection_rms_px_known"] < 1e-6 and rep["TS5"]["reprojection_rms_px_known"] < 1e-6
    assert rep["TS1"]["reprojection_rms_px_fit"] < 1e-6  # no distortion: the pinhole fit is exact
    assert rep["TS5"]["reprojection_rms_px_fit"] > 0.1  # distortion is not a pinhole
    np.testing.assert_allclose(
        rep["TS1"]["fitted_intrinsics_px"], [TS1_K[k] for k in ("fx", "fy", "cx", "cy")], atol=1e-3
    )


def test_test_activity_codes(tmp_path):
    """Invalid frames may carry no activity (code 0 -> 'Unknown'); a valid frame with a bad code is an error."""
    rng = np.random.default_rng(7)
    ts = tmp_path / "mpi_inf_3dhp_test_set" / "TS4"
    write_test_sequence(ts, 6, rng, valid=[1, 0, 1, 1, 0, 1], activity=[1, 0, 7, 3, 9, 2])
    ingest_3dhp(tmp_path, _outside(tmp_path, "ds"), split="test", frame_counts={"TS4": 6})
    t = read_poses3d(_outside(tmp_path, "ds"), ["TS4"]).sort_by("frame")
    assert t["action"].to_pylist() == ["Stand/Walk", "Unknown", "Misc.", "Sit on Chair", "Unknown", "Exercise"]
    assert set(t["scene"].to_pylist()) == {"studio"}
    write_test_sequence(ts, 6, rng, valid=[1, 0, 1, 1, 1, 1], activity=[1, 0, 7, 3, 9, 2])
    _expect_error(
        r"TS4/annot_data\.mat: activity_annotation 9 at frame 4",
        tmp_path,
        tmp_path / "ds2",
        split="test",
        frame_counts={"TS4": 6},
    )


def test_test_intrinsics_fit(tree, tmp_path):
    root, info, counts, cams = tree
    ingest_3dhp(root, tmp_path / "fit", split="test", subjects=["TS1"], test_intrinsics="fit", frame_counts=counts)
    (c,) = read_cameras(tmp_path / "fit")
    np.testing.assert_allclose([c.fx, c.fy, c.cx, c.cy], [TS1_K[k] for k in ("fx", "fy", "cx", "cy")], atol=1e-3)
    assert c.distortion_model == "none"


def test_manifest_and_one_schema(tree, both):
    out, _ = both
    m = read_manifest(out)
    assert m["dataset"] == "mpi-inf-3dhp"
    assert m["splits"] == {"train": ["S1", "S2"], "test": ["TS1", "TS5"]}
    ev = m["evaluation"]
    assert ev["reference_column"] == "joints3d_univ" and ev["metrics"] == ["pck150", "auc"]
    # the 14 joints of the official PCK: everything but pelvis, spine and neck/nose (= 3DHP's head)
    assert [H36M17_NAMES[i] for i in ev["pck_joints"]] == [
        n for n in H36M17_NAMES if n not in ("pelvis", "spine", "neck")
    ]
    assert m["sequence_fps"]["S1/Seq2"] == 50 and m["sequence_fps"]["S2/Seq1"] == 25
    schemas = {str(pq.read_schema(p)) for p in (out / "poses3d").rglob("*.parquet")}
    assert len(schemas) == 1
    names = pq.read_schema(next((out / "poses3d").rglob("*.parquet"))).names
    assert names[-3:] == ["valid", "scene", "joints3d_univ"]
    # pandas reads the whole dataset as one table
    import pandas as pd

    df = pd.read_parquet(out / "poses3d")
    assert set(df["subject"]) == {"S1", "S2", "TS1", "TS5"} and df["valid"].dtype == bool


# ----------------------------------------------------------------------------- readers and bad input
def test_readers_shapes(tree):
    root, info, counts, cams = tree
    a = read_train_annot(root / "S1" / "Seq1" / "annot.mat", [0, 13], 20)
    assert a["annot2"].shape == (2, 20, 28, 2) and a["annot3"].shape == (2, 20, 28, 3) and a["rows"] == 23
    b = read_test_annot(root / "mpi_inf_3dhp_test_set" / "TS1" / "annot_data.mat")
    assert b["annot2"].shape == (40, 17, 2) and b["valid"].dtype == bool


def _outside(tmp_path, name):
    """An output path beside tmp_path (an output inside the raw root is refused)."""
    return tmp_path.parent / f"{tmp_path.name}-{name}"


def _expect_error(match, root, out, **kw):
    if Path(out).parent == Path(root):
        out = _outside(Path(root), Path(out).name)
    with pytest.raises((DatasetError, ValueError), match=match):
        ingest_3dhp(root, out, **kw)
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]  # no partial dataset


def test_bad_missing_annot(tmp_path):
    rng = np.random.default_rng(2)
    write_train_sequence(tmp_path / "S4" / "Seq1", 5, rng)
    (tmp_path / "S4" / "Seq2").mkdir(parents=True)
    _expect_error(r"S4/Seq2/annot\.mat: missing", tmp_path, tmp_path / "out", frame_counts={"S4/Seq1": 5, "S4/Seq2": 5})
    _expect_error(r"S7: missing", tmp_path, tmp_path / "out", subjects=["S7"])
    _expect_error(r"nothing to ingest: no train subjects among TS1", tmp_path, tmp_path / "out", subjects=["TS1"])
    _expect_error(r"unknown 3DHP subject\(s\) S9", tmp_path, tmp_path / "out", subjects=["S9"])
    _expect_error(r"mpi_inf_3dhp_test_set.*no test sequence", tmp_path, tmp_path / "out", split="test")


def test_bad_mat_versions(tmp_path):
    rng = np.random.default_rng(3)
    for q in (1, 2):
        write_train_sequence(tmp_path / "S5" / f"Seq{q}", 5, rng, mat="v7.3" if q == 2 else "v5")
    _expect_error(
        r"S5/Seq2/annot\.mat: is a MATLAB v7\.3 \(HDF5\) file",
        tmp_path,
        tmp_path / "out",
        frame_counts={"S5/Seq1": 5, "S5/Seq2": 5},
    )
    write_test_sequence(tmp_path / "mpi_inf_3dhp_test_set" / "TS2", 8, rng, mat="v5")
    _expect_error(
        r"TS2/annot_data\.mat: is a MAT v5 file", tmp_path, tmp_path / "out", split="test", frame_counts={"TS2": 8}
    )


def test_bad_camera_index(tree, tmp_path):
    root, info, counts, cams = tree
    _expect_error(
        r"S1/Seq1/camera\.calibration: no camera 14", root, tmp_path / "out", cameras=(0, 14), frame_counts=counts
    )


def test_bad_lengths(tmp_path, tree):
    root, info, counts, cams = tree
    rng = np.random.default_rng(4)
    _expect_error(
        r"S1/Seq1/annot\.mat: 23 annotated frames, fewer than the 6416", root, tmp_path / "out", subjects=["S1"]
    )
    d = tmp_path / "r1"
    body, c = write_train_sequence(d / "S6" / "Seq1", 6, rng)
    write_train_sequence(d / "S6" / "Seq2", 6, rng)
    from scipy.io import loadmat

    m = loadmat(d / "S6" / "Seq1" / "annot.mat")
    m["annot3"][2, 0] = m["annot3"][2, 0][:4]  # camera 2: fewer 3D rows than 2D rows
    savemat(d / "S6" / "Seq1" / "annot.mat", {k: v for k, v in m.items() if not k.startswith("__")})
    _expect_error(
        r"S6/Seq1/annot\.mat: annot3 of camera 2 has 4 rows but annot2 of camera 0 has 6",
        d,
        tmp_path / "out",
        frame_counts={"S6/Seq1": 6, "S6/Seq2": 6},
    )
    d = tmp_path / "r2"
    write_test_sequence(d / "mpi_inf_3dhp_test_set" / "TS3", 10, rng, lengths={"valid_frame": 9})
    _expect_error(
        r"TS3/annot_data\.mat: valid_frame has 9 entries but annot2 has 10 frames",
        d,
        tmp_path / "out",
        split="test",
        frame_counts={"TS3": 10},
    )
    write_test_sequence(d / "mpi_inf_3dhp_test_set" / "TS3", 10, rng, lengths={"univ_annot3": 8})
    _expect_error(
        r"TS3/annot_data\.mat: univ_annot3 has 8 frames but annot2 has 10",
        d,
        tmp_path / "out",
        split="test",
        frame_counts={"TS3": 10},
    )
    write_test_sequence(d / "mpi_inf_3dhp_test_set" / "TS3", 10, rng)
    _expect_error(r"TS3/annot_data\.mat: 10 annotated frames, fewer than the 5838", d, tmp_path / "out", split="test")


def test_failure_keeps_previous_dataset(tree, both, tmp_path):
    root, info, counts, cams = tree
    out = tmp_path / "keep"
    ingest_3dhp(root, out, split="test", subjects=["TS5"], frame_counts=counts)
    before = (out / "manifest.json").read_text()
    with pytest.raises(DatasetError):
        ingest_3dhp(root, out, split="both", cameras=(0, 14), frame_counts=counts, overwrite=True)
    assert (out / "manifest.json").read_text() == before


# ----------------------------------------------------------------------------- CLI
def test_cli_test_split_real_frame_counts(tmp_path):
    """TS5 and TS6 at their real lengths (320 and 492 frames) through the CLI."""
    from mvtools.cli.main import cli

    rng = np.random.default_rng(5)
    root = tmp_path / "root"
    write_test_sequence(root / "mpi_inf_3dhp_test_set" / "TS5", 320, rng, outdoor=True)
    write_test_sequence(root / "mpi_inf_3dhp_test_set" / "TS6", 492, rng, outdoor=True)
    r = CliRunner().invoke(cli, ["ingest", "3dhp", str(root), "--out", str(tmp_path / "ds"), "--split", "test"])
    assert r.exit_code == 0, r.output
    assert "TS5 (outdoor): 320 frames" in r.output and "TS6 (outdoor): 492 frames" in r.output
    m = read_manifest(tmp_path / "ds")
    assert m["rows"]["poses3d"] == 812 and m["splits"]["test"] == ["TS5", "TS6"]


def test_cli_train_and_errors(tmp_path):
    """S2 at its real lengths (6502 / 6081 frames), camera 0 only (other cells left empty to keep files small)."""
    from mvtools.cli.main import cli

    rng = np.random.default_rng(6)
    root = tmp_path / "root"
    cams = rig14(rng)
    for q, n in ((1, 6502), (2, 6081)):
        write_train_sequence(root / "S2" / f"Seq{q}", n, rng, cams, cells=(0,), float32=True)
    r = CliRunner().invoke(cli, ["ingest", "3dhp", str(root), "-o", str(tmp_path / "ds"), "--cameras", "0"])
    assert r.exit_code == 0, r.output
    assert read_manifest(tmp_path / "ds")["rows"]["poses3d"] == 6502 + 6081
    r = CliRunner().invoke(cli, ["ingest", "3dhp", str(root), "-o", str(tmp_path / "bad"), "--cameras", "0,15"])
    assert r.exit_code != 0 and "Error:" in r.output and "camera.calibration: no camera 15" in r.output
    r = CliRunner().invoke(cli, ["ingest", "3dhp", str(root), "-o", str(tmp_path / "bad"), "--cameras", "0,2"])
    assert r.exit_code != 0 and "annot.mat: annot2 of camera 2 has 0 rows but annot2 of camera 0 has 6502" in r.output
    r = CliRunner().invoke(cli, ["ingest", "3dhp", str(root), "-o", str(tmp_path / "bad"), "--cameras", "x"])
    assert r.exit_code != 0 and "camera indices" in r.output
    assert not (tmp_path / "bad").exists()
    r = CliRunner().invoke(cli, ["ingest", "3dhp", "--help"])
    assert "mm" in r.output and "px" in r.output


def test_test_camera_auto_follows_the_annotations(tmp_path):
    """Real TS5/TS6: annot2 is undistorted although the published camera has lens distortion. auto picks the
    camera that reproduces each sequence's own annot2 (both residuals reported) and fails loudly when neither does."""
    rng = np.random.default_rng(11)
    ts = tmp_path / "mpi_inf_3dhp_test_set"
    write_test_sequence(ts / "TS5", 20, rng, outdoor=True)  # distorted annot2
    write_test_sequence(ts / "TS6", 20, rng, outdoor=True, pinhole=True)  # undistorted, like the real file
    s = ingest_3dhp(tmp_path, _outside(tmp_path, "ds"), split="test", frame_counts={"TS5": 20, "TS6": 20})
    rep = {r["subject"]: r for r in s["test"]}
    assert rep["TS5"]["camera_chosen"] == "known" and rep["TS6"]["camera_chosen"] == "pinhole"
    assert rep["TS6"]["reprojection_rms_px_pinhole"] < 1e-3 and rep["TS6"]["reprojection_rms_px_known"] > 1
    assert rep["TS5"]["reprojection_rms_px_known"] < 1e-3 and rep["TS5"]["reprojection_rms_px_pinhole"] > 1
    cams = {c.subject: c for c in read_cameras(_outside(tmp_path, "ds"))}
    assert cams["TS5"].distortion_model == "opencv" and cams["TS6"].distortion_model == "none"
    assert cams["TS6"].cy == pytest.approx(560.14, abs=0.01) and cams["TS6"].fy == pytest.approx(1672.59, abs=0.01)
    write_test_sequence(ts / "TS6", 20, rng, outdoor=True, pinhole=True, shift_px=12.0)  # matches neither
    _expect_error(
        r"TS6/annot_data\.mat: neither the published camera .* nor its pinhole .* within 3 px",
        tmp_path,
        tmp_path / "ds2",
        split="test",
        frame_counts={"TS5": 20, "TS6": 20},
    )
    s = ingest_3dhp(
        tmp_path,
        _outside(tmp_path, "ds3"),
        split="test",
        subjects=["TS6"],
        test_intrinsics="fit",
        frame_counts={"TS6": 20},
    )
    assert s["test"][0]["reprojection_rms_px_fit"] < 1e-3


def test_train_camera_sets(tree, tmp_path):
    root, info, counts, cams = tree
    s = ingest_3dhp(root, tmp_path / "v", split="train", subjects=["S2"], cameras="vnect", frame_counts=counts)
    assert s["cameras"] == [0, 1, 2, 4, 5, 6, 7, 8]
    from mvtools.cli.ingest_3dhp import _camera_list

    assert _camera_list("all") == list(range(14)) and _camera_list("chest") == [0, 2, 4, 7, 8]
    assert _camera_list("vnect") == [0, 1, 2, 4, 5, 6, 7, 8] and _camera_list("3,5") == [3, 5]
