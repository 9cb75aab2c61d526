"""calibrate --from-joints end to end on synthetic datasets, the CLI, aniposelib TOML I/O, bad input."""

import json
import shutil
from dataclasses import replace

import cv2
import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

from mvtools.calibration.pipeline import calibrate_from_joints, import_toml
from mvtools.calibration.toml_io import read_aniposelib_toml, write_aniposelib_toml
from mvtools.calibration.views import CalibrationError
from mvtools.camera import Camera, camera_center, project
from mvtools.cli.main import cli
from mvtools.dataset import (
    DatasetWriter,
    base_manifest,
    joints_to_numpy,
    poses2d_table,
    poses3d_table,
    read_cameras,
    read_manifest,
    read_poses2d,
    read_poses3d,
)
from mvtools.h36m_cameras import h36m_rig
from mvtools.rotations import rodrigues, rotmat_to_rodrigues


@pytest.fixture
def clean_ds(synth_ds_clean, tmp_path):
    """A private copy of the noise-free synthetic dataset (calibration writes into it)."""
    return shutil.copytree(synth_ds_clean, tmp_path / "clean")


@pytest.fixture(scope="module")
def noisy_ds(tmp_path_factory):
    """One subject, 3000 frames, realistic detector noise (several px, outliers, left/right swaps)."""
    from mvtools.synth.dataset import synth_dataset

    return synth_dataset(
        tmp_path_factory.mktemp("calib") / "noisy",
        subjects=["S1"],
        sequences_per_subject=6,
        frames=500,
        seed=3,
        noise="realistic",
        command="pytest noisy",
    )


def _pairs(report):
    return [p for e in report["subjects"].values() for p in e["pairs"]]


def test_noise_free_recovers_every_pair_and_the_world_frame(clean_ds):
    before = read_cameras(clean_ds)
    report = calibrate_from_joints(clean_ds, source="gt", overwrite=True)
    pairs = _pairs(report)
    assert len(pairs) == 3 * 6
    for p in pairs:
        assert p["rotation_error_deg"] < 0.05
        assert p["translation_direction_error_deg"] < 0.05
        assert abs(p["baseline_error_mm"]) < 1.0
        assert p["inlier_ratio"] > 0.99 and p["rms_px"] < 0.5
    cams = read_cameras(clean_ds)
    given = [c for c in cams if c.source == "given"]
    est = [c for c in cams if c.source == "estimated"]
    assert len(given) == len(before) and len(est) == 12
    # world frame: the estimated rig reprojects the world joints onto the ground-truth 2D
    X = joints_to_numpy(read_poses3d(clean_ds, ["S5"], columns=["joints3d"]).column("joints3d"), 3)
    t2d = read_poses2d(clean_ds, ["S5"], source="gt", columns=["camera", "joints2d"])
    cam_col = np.asarray(t2d.column("camera").to_pylist())
    uv = joints_to_numpy(t2d.column("joints2d"), 2)
    for c in (c for c in est if c.subject == "S5"):
        assert np.abs(project(X, c) - uv[cam_col == c.camera]).max() < 1.0
    rep = json.loads((clean_ds / "calibration_report.json").read_text())
    s1 = rep["subjects"]["S1"]
    for key in ("scale", "bundle_adjustment", "pairs", "world_frame", "frames_used", "reference_camera"):
        assert key in s1
    assert s1["bundle_adjustment"]["rms_px_after"] < 0.5
    m = read_manifest(clean_ds)
    assert m["calibration"]["how"] == "from-joints" and m["rows"]["cameras"] == len(cams)
    # running again replaces the estimated rows instead of adding more
    calibrate_from_joints(clean_ds, subjects=["S1"], source="gt", refine=False, overwrite=True)
    assert len([c for c in read_cameras(clean_ds) if c.source == "estimated"]) == 12


def test_detector_noise_few_thousand_frames(noisy_ds):
    report = calibrate_from_joints(noisy_ds, write=False)
    e = report["subjects"]["S1"]
    assert e["source2d"] == "detected" and e["frames_total"] == 3000
    print(
        {(p["cam_a"], p["cam_b"]): (p["rotation_error_deg"], p["translation_direction_error_deg"]) for p in e["pairs"]}
    )
    for p in e["pairs"]:
        assert p["rotation_error_deg"] < 0.5, p
        assert p["translation_direction_error_deg"] < 1.0, p
        assert 0.5 < p["inlier_ratio"] < 1.0


def test_scale_baseline_and_body(clean_ds):
    rig = h36m_rig("S9")
    ids = list(rig)
    d_given = float(np.linalg.norm(rig[ids[0]].C - rig[ids[2]].C))
    report = calibrate_from_joints(
        clean_ds,
        subjects=["S9"],
        source="gt",
        scale="baseline",
        baseline_mm=1234.5,
        baseline_camera=ids[2],
        write=False,
    )
    assert report["subjects"]["S9"]["scale"]["cameras"] == [ids[0], ids[2]]
    calibrate_from_joints(
        clean_ds,
        subjects=["S9"],
        source="gt",
        scale="baseline",
        baseline_mm=1234.5,
        baseline_camera=ids[2],
        overwrite=True,
    )
    est = {c.camera: c for c in read_cameras(clean_ds, "estimated", ["S9"])}
    assert np.linalg.norm(est[ids[0]].C - est[ids[2]].C) == pytest.approx(1234.5, rel=1e-9)
    # relative geometry is unaffected by the scale choice
    for p in _pairs(report):
        assert p["rotation_error_deg"] < 0.05
        if {p["cam_a"], p["cam_b"]} == {ids[0], ids[2]}:
            assert p["baseline_error_mm"] == pytest.approx(1234.5 - d_given, abs=0.5)
    body = calibrate_from_joints(clean_ds, subjects=["S9"], source="gt", scale="body", write=False)
    given = calibrate_from_joints(clean_ds, subjects=["S9"], source="gt", scale="given", write=False)
    sb, sg = body["subjects"]["S9"]["scale"], given["subjects"]["S9"]["scale"]
    assert sb["uncertainty_rel"] >= 0.05 and sb["frames"] > 100
    # the synthetic body is an adult within the prior's spread: body scale within 3 sigma of the truth
    assert abs(sb["value"] / sg["value"] - 1) < 3 * sb["uncertainty_rel"]


def test_toml_round_trip_and_opencv_projection(tmp_path):
    rig = list(h36m_rig("S1").values())
    ocv = [
        Camera(
            camera=f"c{i}",
            width=1000,
            height=1000,
            fx=1100.0 + i,
            fy=1102.0,
            cx=500.0,
            cy=505.0,
            R=c.R,
            t=c.t + [100.0 * (i // 4), 0, 0],
            k=(-0.2, 0.1, 0.01),
            p=(0.001, -0.002),
            distortion_model="opencv",
        )
        for i, c in enumerate(rig * 3)
    ]  # 12 cameras (no two at one pose): cam_10 must stay after cam_2
    path = write_aniposelib_toml(tmp_path / "rig.toml", ocv, {"subject": "S1"})
    back = read_aniposelib_toml(path, subject="S1")
    assert [c.camera for c in back] == [c.camera for c in ocv]
    X = np.random.default_rng(0).uniform([-800, -800, 0], [800, 800, 1800], (40, 3))
    import tomllib

    data = tomllib.loads(path.read_text())
    for i, (a, b) in enumerate(zip(ocv, back)):
        np.testing.assert_allclose(b.R, a.R, atol=1e-12)
        np.testing.assert_allclose(b.t, a.t, atol=1e-9)
        assert (b.fx, b.fy, b.cx, b.cy, b.k, b.p) == (a.fx, a.fy, a.cx, a.cy, a.k, a.p)
        # OpenCV with the file's numbers reproduces mvtools' projection
        d = data[f"cam_{i}"]
        uv, _ = cv2.projectPoints(
            X, np.array(d["rotation"]), np.array(d["translation"]), np.array(d["matrix"]), np.array(d["distortions"])
        )
        np.testing.assert_allclose(uv[:, 0], project(X, a), atol=1e-6)
    # H36M lens model: written as the closest OpenCV vector (documented approximation, well under a pixel here)
    write_aniposelib_toml(tmp_path / "h36m.toml", rig)
    d = tomllib.loads((tmp_path / "h36m.toml").read_text())["cam_0"]
    uv, _ = cv2.projectPoints(
        X, np.array(d["rotation"]), np.array(d["translation"]), np.array(d["matrix"]), np.array(d["distortions"])
    )
    assert np.abs(uv[:, 0] - project(X, rig[0])).max() < 1.0
    np.testing.assert_allclose(np.array(d["rotation"]), rotmat_to_rodrigues(rig[0].R), atol=1e-12)
    np.testing.assert_allclose(rodrigues(np.array(d["rotation"])), rig[0].R, atol=1e-12)


def test_toml_layout_is_aniposelib_dump(tmp_path):
    """The file holds what aniposelib's CameraGroup.dump writes: cam_0..cam_N-1 then metadata; per camera the keys
    of Camera.get_dict in its order; numbers read back bit-identical with tomllib."""
    import tomllib

    rig = list(h36m_rig("S9").values())
    path = write_aniposelib_toml(tmp_path / "rig.toml", rig, {"subject": "S9", "adjusted": True, "error": 4.5})
    data = tomllib.loads(path.read_text())
    assert list(data) == [f"cam_{i}" for i in range(len(rig))] + ["metadata"]
    assert data["metadata"] == {"units": "mm", "adjusted": True, "error": 4.5, "subject": "S9"}
    for i, c in enumerate(rig):
        d = data[f"cam_{i}"]
        assert list(d) == ["name", "size", "matrix", "distortions", "rotation", "translation"]
        assert d["name"] == c.camera and d["size"] == [c.width, c.height]
        assert d["matrix"] == c.K.tolist() and d["distortions"] == list(c.opencv_distortion())
        assert d["rotation"] == rotmat_to_rodrigues(c.R).tolist() and d["translation"] == np.asarray(c.t).tolist()
    bad = [replace(rig[0], t=np.array([0.0, np.nan, 1.0]))]
    with pytest.raises(ValueError, match="non-finite translation"):
        write_aniposelib_toml(tmp_path / "nan.toml", bad)


def test_toml_bad_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[cam_0]\nname = 'a'\nsize = [10, 10]\n")
    with pytest.raises(ValueError, match="bad.toml.*lacks matrix"):
        read_aniposelib_toml(bad)
    bad.write_text("not = [toml")
    with pytest.raises(ValueError, match="bad.toml: not valid TOML"):
        read_aniposelib_toml(bad)
    bad.write_text("[metadata]\nunits = 'mm'\n")
    with pytest.raises(ValueError, match="no \\[cam_N\\] tables"):
        read_aniposelib_toml(bad)
    cam = list(h36m_rig("S1").values())[:1]
    write_aniposelib_toml(bad, cam, {"units": "m"})
    assert np.allclose(read_aniposelib_toml(bad)[0].t, cam[0].t * 1000)  # metadata units honoured
    text = bad.read_text().replace("[cam_0]", "[cam_0]\nfisheye = true")
    bad.write_text(text)
    with pytest.raises(ValueError, match="fisheye"):
        read_aniposelib_toml(bad)


def test_cli_end_to_end_export_and_import(clean_ds, tmp_path):
    runner = CliRunner()
    toml = tmp_path / "rig.toml"
    r = runner.invoke(
        cli,
        [
            "calibrate",
            "--from-joints",
            str(clean_ds),
            "--subjects",
            "S1,S9",
            "--source",
            "gt",
            "--export-toml",
            str(toml),
            "--seed",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "rot err" in r.output and "54138969" in r.output and "BA rms px" in r.output
    files = [tmp_path / "rig_S1.toml", tmp_path / "rig_S9.toml"]
    assert all(f.exists() for f in files) and not toml.exists()
    exported = read_aniposelib_toml(files[0])
    est = {c.camera: c for c in read_cameras(clean_ds, "estimated", ["S1"])}
    for c in exported:
        np.testing.assert_allclose(c.R, est[c.camera].R, atol=1e-12)
        np.testing.assert_allclose(camera_center(c.R, c.t), est[c.camera].C, atol=1e-6)
    # import S1's file as S5's estimated cameras
    r = runner.invoke(cli, ["calibrate", "--import-toml", str(files[0]), "--subject", "S5", str(clean_ds)])
    assert r.exit_code == 0, r.output
    s5 = {c.camera: c for c in read_cameras(clean_ds, "estimated", ["S5"])}
    assert set(s5) == set(est)
    np.testing.assert_allclose(s5["55011271"].t, est["55011271"].t, atol=1e-9)
    assert read_manifest(clean_ds)["calibration"]["how"] == "import-toml"
    # bad input -> non-zero exit with a clear message
    r = runner.invoke(cli, ["calibrate", "--from-joints", str(clean_ds), "--scale", "baseline"])
    assert r.exit_code == 1 and "--baseline-mm" in r.output
    r = runner.invoke(cli, ["calibrate", "--from-joints", str(clean_ds), "--subjects", "S2"])
    assert r.exit_code == 1 and "no 2D joints for subject(s) ['S2']" in r.output
    r = runner.invoke(cli, ["calibrate", "--from-joints", str(clean_ds), "--reference-camera", "nope", "--overwrite"])
    assert r.exit_code == 1 and "reference camera 'nope'" in r.output
    # --from-joints is a flag: the dataset may come before it, or without it (the default mode)
    for args in ([str(clean_ds), "--from-joints"], [str(clean_ds)]):
        r = runner.invoke(cli, ["calibrate", *args, "--reference-camera", "nope", "--overwrite"])
        assert r.exit_code == 1 and "reference camera 'nope'" in r.output, args
    r = runner.invoke(
        cli, ["calibrate", "--from-joints", "--import-toml", str(files[0]), "--subject", "S5", str(clean_ds)]
    )
    assert r.exit_code == 2 and "not both" in r.output


def _write_ds(path, X, subject="S1", confidence=None):
    rig = h36m_rig(subject)
    fr = np.arange(len(X))
    with DatasetWriter(path) as w:
        w.add_poses3d(subject, poses3d_table("Walk", 1, "Walk", fr, X.astype(np.float32)))
        w.add_poses2d(
            subject,
            pa.concat_tables(
                [
                    poses2d_table("Walk", 1, "Walk", fr, c.camera, project(X, c), confidence, "detected")
                    for c in rig.values()
                ]
            ),
        )
        w.set_cameras(rig.values())
        w.commit(base_manifest("test", {"train": [subject], "test": []}, 50.0))
    return path


def test_degenerate_input_raises_and_leaves_the_dataset_untouched(clean_ds, tmp_path):
    X = joints_to_numpy(read_poses3d(clean_ds, ["S1"], columns=["joints3d"]).column("joints3d"), 3)
    ds = _write_ds(tmp_path / "static", np.repeat(X[:1], 200, axis=0))
    cams_before = (ds / "cameras.parquet").read_bytes()
    manifest_before = (ds / "manifest.json").read_text()
    with pytest.raises(CalibrationError, match="static person"):
        calibrate_from_joints(ds)
    assert (ds / "cameras.parquet").read_bytes() == cams_before
    assert (ds / "manifest.json").read_text() == manifest_before
    assert not (ds / "calibration_report.json").exists()
    # all confidences low
    ds = _write_ds(tmp_path / "lowconf", X[:100], confidence=np.full((100, 17), 0.1))
    with pytest.raises(CalibrationError, match="confidence < 0.3"):
        calibrate_from_joints(ds)
    # too few frames
    ds = _write_ds(tmp_path / "short", X[:4])
    with pytest.raises(CalibrationError, match="only 4 frames"):
        calibrate_from_joints(ds)
    # --scale baseline without the distance
    with pytest.raises(ValueError, match="--baseline-mm"):
        calibrate_from_joints(clean_ds, scale="baseline")


def test_no_given_extrinsics_body_scale_in_the_reference_frame(clean_ds, tmp_path):
    """Intrinsics only (every given camera at R = I, t = 0): --scale given refuses, body scale works and the
    rig is expressed in the reference camera's frame."""
    X = joints_to_numpy(read_poses3d(clean_ds, ["S1"], columns=["joints3d"]).column("joints3d"), 3)
    ds = _write_ds(tmp_path / "nocal", X)
    from mvtools.dataset import write_cameras

    write_cameras(ds, [c.with_extrinsics(np.eye(3), np.zeros(3)) for c in read_cameras(ds)])
    with pytest.raises(CalibrationError, match="--scale given needs a given calibration"):
        calibrate_from_joints(ds)
    report = calibrate_from_joints(ds, scale="body", reference_camera="55011271")
    e = report["subjects"]["S1"]
    assert e["world_frame"].startswith("reference camera 55011271")
    assert all("rotation_error_deg" not in p for p in e["pairs"])
    est = {c.camera: c for c in read_cameras(ds, "estimated")}
    np.testing.assert_allclose(est["55011271"].R, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(est["55011271"].t, 0, atol=1e-9)
    # compare with the true rig after expressing it in the reference camera's frame
    rig = h36m_rig("S1")
    ref = rig["55011271"]
    for cid, c in est.items():
        R_true = rig[cid].R @ ref.R.T
        C_true = ref.R @ (rig[cid].C - ref.C)
        np.testing.assert_allclose(c.R, R_true, atol=1e-3)
        scale = e["scale"]
        assert np.linalg.norm(c.C - C_true) <= 3 * scale["uncertainty_rel"] * np.linalg.norm(C_true) + 1.0


def test_import_refuses_unknown_camera_names(clean_ds, tmp_path):
    cams = [c.with_extrinsics(c.R, c.t) for c in h36m_rig("S1").values()]
    from dataclasses import replace

    f = write_aniposelib_toml(tmp_path / "x.toml", [replace(cams[0], camera="foo")])
    with pytest.raises(ValueError, match="'foo'"):
        import_toml(clean_ds, f, "S1")


def test_import_toml_in_metres_taken_as_mm_fails_loudly(clean_ds, tmp_path):
    """aniposelib writes no units: a metres TOML read as mm puts the cameras a few mm apart; refused with the fix,
    and a cm TOML read as mm is caught by the distance implied by the person's image height."""
    cams = list(h36m_rig("S1").values())
    f_m = write_aniposelib_toml(tmp_path / "m.toml", [c.with_extrinsics(c.R, c.t / 1000.0) for c in cams])
    with pytest.raises(ValueError, match=r"at most .* mm apart.*--toml-units m"):
        import_toml(clean_ds, f_m, "S1", units="mm")
    f_cm = write_aniposelib_toml(tmp_path / "cm.toml", [c.with_extrinsics(c.R, c.t / 10.0) for c in cams])
    with pytest.raises(ValueError, match=r"camera distances do not fit S1's 2D joints: .*--toml-units"):
        import_toml(clean_ds, f_cm, "S1", units="mm")
    assert len(import_toml(clean_ds, f_cm, "S1", units="cm")) == 4
    r = CliRunner().invoke(
        cli, ["calibrate", "--import-toml", str(f_m), "--subject", "S1", "--toml-units", "mm", str(clean_ds)]
    )
    assert r.exit_code == 1 and "--toml-units m" in r.output


def test_near_static_subject_warns(tmp_path):
    """A person who barely moves gives a weak estimate: calibrate says so (report and log)."""
    from mvtools.synth.dataset import synth_dataset

    ds = synth_dataset(tmp_path / "s", subjects=["S1"], sequences_per_subject=1, frames=200, seed=0, noise="none")
    X = joints_to_numpy(read_poses3d(ds, ["S1"], columns=["joints3d"]).column("joints3d"), 3)
    t = np.linspace(0, 2 * np.pi, len(X))[:, None, None]
    sway = X[:1] + 15.0 * np.concatenate([np.sin(t), np.cos(t), 0 * t], -1)  # +-15 mm, one pose
    ds2 = _write_ds(tmp_path / "sway", sway + np.random.default_rng(0).normal(0, 35, (len(X), 17, 3)))
    report = calibrate_from_joints(ds2, scale="given")
    e = report["subjects"]["S1"]
    assert 0.02 <= e["motion_spread"] < 0.05 and any("moves little" in w for w in e["warnings"])
    report = calibrate_from_joints(ds, scale="given")
    e = report["subjects"]["S1"]
    assert e["motion_spread"] >= 0.05 and not any("moves little" in w for w in e["warnings"])
