"""ingest keypoints: readers (fixtures in the producing tools' own layouts), joint mapping, person selection,
intrinsics, robust triangulation, CLI errors."""

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from mvtools.calibration.toml_io import write_aniposelib_toml
from mvtools.calibration.triangulate import triangulate_robust
from mvtools.camera import Camera, look_at, tvec_from_center
from mvtools.cli.main import cli
from mvtools.dataset import DatasetError, joints_to_numpy, read_cameras, read_manifest, read_poses2d
from mvtools.ingest.keypoints.formats import discover, read_coco_results, read_mmpose, read_openpose, read_view
from mvtools.ingest.keypoints.ingest import ingest_keypoints
from mvtools.ingest.keypoints.intrinsics import load_intrinsics
from mvtools.ingest.keypoints.layouts import BODY25, COCO17, LAYOUTS, from_h36m, mapping_matrix, to_h36m
from mvtools.ingest.keypoints.people import select_person
from mvtools.skeleton import H36M17_NAMES


# ----------------------------------------------------------------------------- helpers
def _poses(n):
    from mvtools.skeleton import H36M32_TO_17
    from mvtools.synth.dataset import synth_sequences

    return next(iter(synth_sequences(["S1"], 1, n, seed=1)))[-1][:, H36M32_TO_17]


def _body25_person(dx=0.0, scale=1.0):
    """A BODY_25 person as OpenPose writes it: flat x, y, c; undetected keypoints 0, 0, 0."""
    rng = np.random.default_rng(int(dx))
    kp = np.zeros((25, 3))
    kp[:, 0] = 500 + dx + scale * rng.uniform(-80, 80, 25)
    kp[:, 1] = 500 + scale * np.linspace(-300, 300, 25)
    kp[:, 2] = rng.uniform(0.5, 0.9, 25)
    kp[BODY25.index("left_small_toe")] = 0.0  # not detected
    return kp


def _openpose_frame(people):
    return {
        "version": 1.3,
        "people": [
            {
                "person_id": [-1],
                "pose_keypoints_2d": p.reshape(-1).tolist(),
                "face_keypoints_2d": [],
                "hand_left_keypoints_2d": [],
                "hand_right_keypoints_2d": [],
                "pose_keypoints_3d": [],
                "face_keypoints_3d": [],
                "hand_left_keypoints_3d": [],
                "hand_right_keypoints_3d": [],
            }
            for p in people
        ],
    }


def _coco_kp(rng, n=17):
    x = rng.uniform(300, 700, n)
    y = rng.uniform(200, 800, n)
    s = rng.uniform(0.3, 1.0, n)
    return np.stack([x, y, s], 1)


# ----------------------------------------------------------------------------- layouts
@pytest.mark.parametrize("layout", ["coco17", "body25", "coco18", "halpe26"])
def test_mapping_round_trip_and_definitions(layout):
    P = _poses(20)  # (20, 17, 3) mm
    kp, c = from_h36m(P, layout)
    assert kp.shape == (20, len(LAYOUTS[layout]), 3)
    J, cj = to_h36m(kp, c, layout)
    n = {k: i for i, k in enumerate(H36M17_NAMES)}
    exact = [i for k, i in n.items() if k not in ("pelvis", "spine", "thorax")]
    np.testing.assert_allclose(J[:, exact], P[:, exact], atol=1e-9)
    hips = 0.5 * (P[:, n["left_hip"]] + P[:, n["right_hip"]])
    sh = 0.5 * (P[:, n["left_shoulder"]] + P[:, n["right_shoulder"]])
    np.testing.assert_allclose(J[:, n["pelvis"]], hips, atol=1e-9)
    np.testing.assert_allclose(J[:, n["thorax"]], sh, atol=1e-9)
    np.testing.assert_allclose(J[:, n["spine"]], 0.5 * (hips + sh), atol=1e-9)
    np.testing.assert_allclose(cj, 1.0)
    W, _ = mapping_matrix(layout)
    np.testing.assert_allclose(W.sum(1), 1.0)  # affine: the same map for 2D and 3D


def test_derived_confidence_is_minimum_and_missing_source_propagates():
    kp = np.zeros((1, 17, 2)) + 100.0
    conf = np.full((1, 17), 0.9)
    conf[0, COCO17.index("left_hip")] = 0.2
    kp[0, COCO17.index("left_ear")] = np.nan
    J, c = to_h36m(kp, conf, "coco17")
    n = H36M17_NAMES.index
    assert c[0, n("pelvis")] == pytest.approx(0.2) and c[0, n("spine")] == pytest.approx(0.2)
    assert c[0, n("left_hip")] == pytest.approx(0.2) and c[0, n("thorax")] == pytest.approx(0.9)
    assert np.isnan(J[0, n("head")]).all() and c[0, n("head")] == 0  # head needs both ears
    assert np.isfinite(J[0, n("neck")]).all()


# ----------------------------------------------------------------------------- readers
def test_openpose_folder_body25_two_people_and_missing(tmp_path):
    d = tmp_path / "cam0"
    d.mkdir()
    for f in range(3):
        big, small = _body25_person(0), _body25_person(600, 0.3)
        people = [small, big] if f == 1 else [big, small]
        (d / f"take1_{f + 10:012d}_keypoints.json").write_text(json.dumps(_openpose_frame(people)))
    v = read_openpose(d)
    assert v.layout == "body25" and v.frames.tolist() == [10, 11, 12] and v.kp.shape == (3, 2, 25, 3)
    assert np.isnan(v.kp[0, 0, BODY25.index("left_small_toe")]).all()  # 0, 0, 0 = not detected
    one, info = select_person(v.kp)
    np.testing.assert_allclose(one[:, BODY25.index("nose"), 0], _body25_person(0)[0, 0])  # the big one, tracked
    assert info["frames_with_several"] == 3 and info["switches"] == 0


def test_openpose_coco18_and_old_key(tmp_path):
    d = tmp_path / "v"
    d.mkdir()
    kp = np.random.default_rng(0).uniform(100, 400, (18, 3))
    (d / "img_a_keypoints.json").write_text(
        json.dumps({"version": 1.0, "people": [{"pose_keypoints": kp.reshape(-1).tolist()}]})
    )
    v = read_openpose(d)
    assert v.layout == "coco18" and v.frames.tolist() == [0]


def test_coco_results_with_annotation_images_and_regex(tmp_path):
    rng = np.random.default_rng(0)
    images, res = [], []
    for i, (cam, fr) in enumerate([(c, f) for c in ("camA", "camB") for f in range(4)]):
        images.append({"id": 100 + i, "file_name": f"{cam}/frame_{fr:06d}.jpg", "width": 1280, "height": 720})
        # Detectron2 instances_to_coco_json / mmpose CocoMetric results layout
        res.append(
            {"image_id": 100 + i, "category_id": 1, "keypoints": _coco_kp(rng).reshape(-1).tolist(), "score": 0.9}
        )
    (tmp_path / "ann.json").write_text(json.dumps({"images": images, "annotations": [], "categories": []}))
    (tmp_path / "res.json").write_text(json.dumps(res))
    views = read_coco_results(tmp_path / "res.json", tmp_path / "ann.json")
    assert [v.name for v in views] == ["camA", "camB"] and views[0].image_size == (1280, 720)
    assert views[1].frames.tolist() == [0, 1, 2, 3] and views[1].layout == "coco17"
    np.testing.assert_allclose(views[0].kp[2, 0].reshape(-1), res[2]["keypoints"])
    for im in images:  # flat names need a regex
        im["file_name"] = im["file_name"].replace("/", "_f")
    (tmp_path / "ann2.json").write_text(json.dumps({"images": images}))
    with pytest.raises(DatasetError, match="image-regex"):
        read_coco_results(tmp_path / "res.json", tmp_path / "ann2.json")
    v2 = read_coco_results(tmp_path / "res.json", tmp_path / "ann2.json", r"(?P<view>cam\w)_fframe_(?P<frame>\d+)")
    assert [v.name for v in v2] == ["camA", "camB"]


def test_coco_results_without_images_is_one_view(tmp_path):
    rng = np.random.default_rng(1)
    res = [
        {"image_id": f, "category_id": 1, "keypoints": _coco_kp(rng, 26).reshape(-1).tolist(), "score": 0.8}
        for f in (5, 3, 4)
    ]
    (tmp_path / "left.json").write_text(json.dumps(res))
    (v,) = read_view(tmp_path / "left.json")
    assert v.name == "left" and v.layout == "halpe26" and v.frames.tolist() == [3, 4, 5]


def test_mmpose_image_folder_and_video_file(tmp_path):
    rng = np.random.default_rng(2)

    def inst():  # mmpose split_instances(): keypoints [[x, y]], keypoint_scores, bbox as a 1-tuple, bbox_score
        k = _coco_kp(rng)
        return {
            "keypoints": k[:, :2].tolist(),
            "keypoint_scores": k[:, 2].tolist(),
            "bbox": [[300.0, 200.0, 700.0, 800.0]],
            "bbox_score": 0.95,
        }

    d = tmp_path / "cam1"
    d.mkdir()
    for f in range(3):
        (d / f"{f:06d}.json").write_text(json.dumps([inst(), inst()]))
    v = read_mmpose(d)
    assert v.kp.shape == (3, 2, 17, 3) and v.score[0, 0] == pytest.approx(0.95)
    (tmp_path / "cam2.json").write_text(json.dumps([{"frame_id": i, "instances": [inst()]} for i in range(4)]))
    (w,) = read_view(tmp_path / "cam2.json")
    assert w.fmt == "mmpose" and w.frames.tolist() == [0, 1, 2, 3] and w.name == "cam2"


def test_arrays_csv_npz(tmp_path):
    a = np.random.default_rng(3).uniform(10, 500, (6, 17, 3))
    np.savez(tmp_path / "v1.npz", keypoints=a, frames=np.arange(6) + 2)
    header = "frame," + ",".join(f"{c}{j}" for j in range(17) for c in "xyc")
    rows = [f"{i}," + ",".join(f"{x:.4f}" for x in a[i].reshape(-1)) for i in range(6)]
    (tmp_path / "v2.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    (tmp_path / "v3.csv").write_text("\n".join(r.split(",", 1)[1] for r in rows) + "\n")  # no header
    vs = discover(tmp_path)
    assert [v.name for v in vs] == ["v1", "v2", "v3"]
    assert vs[0].frames.tolist() == [2, 3, 4, 5, 6, 7]
    np.testing.assert_allclose(vs[1].kp[:, 0], a, atol=1e-4)
    np.testing.assert_allclose(vs[2].kp[:, 0], a, atol=1e-4)
    (tmp_path / "bad.csv").write_text("1,2,3,4\n")
    with pytest.raises(DatasetError, match="bad.csv"):
        read_view(tmp_path / "bad.csv")


def test_person_selection_switches_when_track_is_lost():
    T = 6
    kp = np.full((T, 2, 17, 3), np.nan)
    big = _coco_kp(np.random.default_rng(0))
    big[:, :2] = np.random.default_rng(0).uniform(0, 300, (17, 2))
    small = big.copy()
    small[:, :2] = small[:, :2] * 0.3 + 1000
    kp[:, 0], kp[:, 1] = big, small
    kp[3:, 0] = np.nan  # the big person leaves after frame 2
    one, info = select_person(kp)
    assert np.allclose(one[:3], big) and np.allclose(one[3:], small) and info["switches"] == 1


# ----------------------------------------------------------------------------- intrinsics
def _write_yaml(path, K, dist, size):
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    fs.write("image_width", size[0])
    fs.write("image_height", size[1])
    fs.write("camera_matrix", K)
    fs.write("distortion_coefficients", np.asarray(dist, float).reshape(-1, 1))
    fs.release()


def test_intrinsics_from_opencv_yaml_xml_toml_json_and_guess(tmp_path):
    K = np.array([[1000.0, 0, 640], [0, 1001.0, 360], [0, 0, 1]])
    _write_yaml(tmp_path / "a.yml", K, [-0.1, 0.01, 0.001, -0.002, 0.0], (1280, 720))
    _write_yaml(tmp_path / "b.xml", K * [[1.1], [1.1], [1]], [0, 0, 0, 0, 0], (1280, 720))
    cam = Camera(
        "c",
        1920,
        1080,
        1500.0,
        1500.0,
        960.0,
        540.0,
        np.eye(3),
        np.zeros(3),
        k=(0.05, 0, 0),
        p=(0, 0),
        distortion_model="opencv",
    )
    write_aniposelib_toml(tmp_path / "rig.toml", [cam])
    (tmp_path / "d.json").write_text(
        json.dumps(
            {"d": {"fx": 900, "fy": 900, "cx": 320, "cy": 240, "width": 640, "height": 480, "dist": [0.1, 0, 0, 0]}}
        )
    )
    cams, warns = load_intrinsics(
        [f"a={tmp_path / 'a.yml'}", f"b={tmp_path / 'b.xml'}", str(tmp_path / "rig.toml"), str(tmp_path / "d.json")],
        ["a", "b", "c", "d", "e"],
        focal_px=800,
        image_size=(640, 480),
    )
    a = cams["a"]
    assert (a.fx, a.fy, a.cx, a.cy, a.width, a.height) == (1000, 1001, 640, 360, 1280, 720)
    assert a.distortion_model == "opencv" and np.allclose(a.opencv_distortion(), [-0.1, 0.01, 0.001, -0.002, 0])
    assert cams["b"].fx == pytest.approx(1100) and cams["b"].distortion_model == "none"
    assert cams["c"].width == 1920 and cams["c"].k[0] == pytest.approx(0.05)
    assert cams["d"].fx == 900 and cams["d"].k[0] == pytest.approx(0.1)
    assert cams["e"].fx == 800 and cams["e"].cx == 320 and len(warns) == 1 and "GUESSED" in warns[0]
    assert all(np.allclose(c.R, np.eye(3)) and np.allclose(c.t, 0) for c in cams.values())
    with pytest.raises(DatasetError, match="no intrinsics for view"):
        load_intrinsics([], ["a"])
    fov, _ = load_intrinsics([], ["a"], fov_deg=90, image_size=(1000, 500))
    assert fov["a"].fx == pytest.approx(500)


# ----------------------------------------------------------------------------- triangulation
def _ring(n=4, radius=4000.0):
    cams = []
    for i in range(n):
        a = 2 * np.pi * i / n
        C = np.array([radius * np.cos(a), radius * np.sin(a), 1500.0])
        R = look_at(C, np.array([0, 0, 900.0]))
        cams.append((R, tvec_from_center(R, C)))
    return np.stack([c[0] for c in cams]), np.stack([c[1] for c in cams])


def test_triangulate_robust_rejects_wrong_views_and_matches_opencv():
    rng = np.random.default_rng(0)
    R, t = _ring()
    X = rng.uniform([-500, -500, 0], [500, 500, 1800], (500, 3))
    Xc = np.einsum("vij,nj->nvi", R, X) + t
    f = np.full(4, 1000.0)
    xn = Xc[..., :2] / Xc[..., 2:3] + rng.normal(0, 1.0 / 1000, (500, 4, 2))  # 1 px noise
    bad = rng.random(500) < 0.3
    xn[bad, 2] += 0.08  # 80 px wrong detections in one view
    Xt, err, inl = triangulate_robust(xn, np.ones((500, 4)), R, t, f, threshold_px=10)
    e = np.linalg.norm(Xt - X, axis=1)
    assert np.median(e) < 5 and e.max() < 25  # mm
    assert not inl[bad, 2].any() and inl[~bad].all() and np.median(err) < 1.5
    # two views, no noise: same point as OpenCV's DLT
    xn2 = Xc[:, :2, :2] / Xc[:, :2, 2:3]
    X2, _, _ = triangulate_robust(xn2, np.ones((500, 2)), R[:2], t[:2], f[:2])
    P = [np.concatenate([R[i], t[i][:, None]], 1) for i in range(2)]
    Xh = cv2.triangulatePoints(P[0], P[1], xn2[:, 0].T, xn2[:, 1].T)
    np.testing.assert_allclose(X2, (Xh[:3] / Xh[3]).T, atol=1e-3)
    # a joint seen once is not triangulated
    w1 = np.zeros((500, 4))
    w1[:, 0] = 1
    assert np.isnan(triangulate_robust(xn, w1, R, t, f)[0]).all()


# ----------------------------------------------------------------------------- ingest + CLI errors
def _two_views(tmp_path, n=5):
    rng = np.random.default_rng(4)
    for cam in ("c0", "c1"):
        d = tmp_path / "raw" / cam
        d.mkdir(parents=True)
        for f in range(n):
            p = _body25_person(0)
            p[:, :2] += rng.normal(0, 2, (25, 2))
            p[BODY25.index("left_small_toe")] = 0
            (d / f"x_{f:012d}_keypoints.json").write_text(json.dumps(_openpose_frame([p])))
    return tmp_path / "raw"


def test_ingest_writes_2d_only_dataset_with_offsets(tmp_path):
    raw = _two_views(tmp_path)
    s = ingest_keypoints(
        raw, tmp_path / "ds", views="left,right", offsets="right=3", focal_px=1000, image_size="1000x1000", fps=30
    )
    assert s["rows"] == 10 and "GUESSED" in s["warnings"][0]
    t = read_poses2d(tmp_path / "ds", ["S1"])
    assert set(t["camera"].to_pylist()) == {"left", "right"} and set(t["source"].to_pylist()) == {"detected"}
    fr = {
        c: sorted(f for f, cc in zip(t["frame"].to_pylist(), t["camera"].to_pylist(), strict=True) if cc == c)
        for c in ("left", "right")
    }
    assert fr["left"] == [0, 1, 2, 3, 4] and fr["right"] == [3, 4, 5, 6, 7]
    assert joints_to_numpy(t["joints2d"], 2).shape == (10, 17, 2)
    m = read_manifest(tmp_path / "ds")
    assert m["dataset"] == "keypoints" and m["rows"]["poses3d"] == 0 and m["fps"] == 30
    cams = read_cameras(tmp_path / "ds")
    assert all(c.source == "given" and np.allclose(c.t, 0) for c in cams)


def test_cli_errors_name_the_problem(tmp_path):
    raw = _two_views(tmp_path)
    r = CliRunner()
    res = r.invoke(cli, ["ingest", "keypoints", str(raw), "--out", str(tmp_path / "ds")])
    assert res.exit_code == 1 and "no intrinsics for view" in res.output
    bad = raw / "c0" / "x_000000000002_keypoints.json"
    bad.write_text("{not json")
    res = r.invoke(
        cli,
        [
            "ingest",
            "keypoints",
            str(raw),
            "--out",
            str(tmp_path / "ds"),
            "--focal-px",
            "900",
            "--image-size",
            "1000x1000",
        ],
    )
    assert res.exit_code == 1 and "x_000000000002_keypoints.json" in res.output and "not valid JSON" in res.output
    bad.unlink()
    res = r.invoke(
        cli,
        [
            "ingest",
            "keypoints",
            str(raw),
            "--out",
            str(tmp_path / "ds"),
            "--focal-px",
            "900",
            "--image-size",
            "100x100",
        ],
    )
    assert res.exit_code == 1 and "far outside" in res.output
    res = r.invoke(
        cli,
        [
            "ingest",
            "keypoints",
            str(raw),
            "--out",
            str(tmp_path / "ds"),
            "--focal-px",
            "900",
            "--image-size",
            "1000x1000",
        ],
    )
    assert res.exit_code == 0, res.output
    res = r.invoke(cli, ["triangulate", str(tmp_path / "ds")])
    assert res.exit_code == 1 and "calibrate --from-joints" in res.output
    res = r.invoke(cli, ["augment", str(tmp_path / "ds")])
    assert res.exit_code == 1 and "mvtools triangulate" in res.output


def test_predict_lifts_one_view_keypoint_folder(tmp_path):
    import torch

    from mvtools.camera import undistort_pixels
    from mvtools.train.inference import lift_2d as predict_relative
    from mvtools.train.inference import load_lifter
    from mvtools.train.model import TwoBranch

    run = tmp_path / "run"
    run.mkdir()
    torch.manual_seed(0)
    m = TwoBranch(16, 1, 0.0)
    torch.save({"model": m.state_dict(), "config": dict(channels=16, blocks=1, dropout=0.0)}, run / "best.pt")
    raw = _two_views(tmp_path)
    cam = Camera(
        "c0",
        1000,
        1000,
        900.0,
        905.0,
        500.0,
        490.0,
        np.eye(3),
        np.zeros(3),
        k=(-0.1, 0.01, 0),
        p=(0.001, 0),
        distortion_model="opencv",
    )
    write_aniposelib_toml(tmp_path / "lab.toml", [cam, replace_camera(cam, "other")])
    res = CliRunner().invoke(
        cli,
        [
            "predict",
            str(run),
            str(raw / "c0"),
            "--out",
            str(tmp_path / "p.csv"),
            "--cameras",
            str(tmp_path / "lab.toml"),
        ],
    )
    assert res.exit_code == 0, res.output
    import pandas as pd

    df = pd.read_csv(tmp_path / "p.csv")
    assert list(df.columns[:2]) == ["camera", "frame"] and len(df) == 5
    v = read_openpose(raw / "c0")
    uv, _ = to_h36m(v.kp[:, 0, :, :2], v.kp[:, 0, :, 2], "body25")
    lift, _ = load_lifter(run)
    ref = predict_relative(
        lift,
        torch.tensor(undistort_pixels(uv, cam), dtype=torch.float32),
        torch.tensor(np.tile(cam.intrinsics, (5, 1)), dtype=torch.float32),
        "cpu",
    )
    got = df[[f"{c}{j}" for j in range(17) for c in "XYZ"]].to_numpy().reshape(-1, 17, 3)
    np.testing.assert_allclose(got, ref, atol=1e-3)
    res = CliRunner().invoke(cli, ["predict", str(run), str(raw / "c1"), "--out", str(tmp_path / "q.npz")])
    assert res.exit_code == 1 and "no intrinsics" in res.output


def replace_camera(cam, name):
    from dataclasses import replace

    return replace(cam, camera=name)


def test_triangulate_refuses_measured_3d(synth_ds):
    from mvtools.calibration.triangulate import triangulate_dataset

    with pytest.raises(DatasetError, match="already has measured 3D"):
        triangulate_dataset(synth_ds, write=False)
