"""predict: VideoPose3D npz and tables in, 3D out; checked against the lifter applied to OpenCV pinhole projections."""

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner
from helpers import make_poses

from mvtools.camera import project, world_to_camera
from mvtools.cli.main import cli
from mvtools.dataset import fsl, joints_to_numpy
from mvtools.evaluate.predict import predict
from mvtools.h36m_cameras import h36m_rig
from mvtools.ingest.h36m.reader import write_videopose3d_2d
from mvtools.train.inference import load_lifter, predict_relative
from mvtools.train.model import TwoBranch

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run whose lifter is a fixed random network (a non-trivial function of its input)."""
    path = tmp_path_factory.mktemp("pred") / "run"
    path.mkdir()
    torch.manual_seed(0)
    m = TwoBranch(16, 1, 0.0)
    for p in m.lift.net.out.parameters():
        torch.nn.init.normal_(p, std=0.3)
    torch.save({"model": m.state_dict(), "config": dict(channels=16, blocks=1, dropout=0.0)}, path / "best.pt")
    return path


def _reference(run, Yc, K):
    """Lifter on the exact pinhole projection (cv2.projectPoints, no distortion) of camera-frame poses."""
    lift, _ = load_lifter(run)
    fx, fy, cx, cy = K
    uv, _ = cv2.projectPoints(
        Yc.reshape(-1, 3), np.zeros(3), np.zeros(3), np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]]), None
    )
    uv = torch.tensor(uv.reshape(-1, 17, 2), dtype=torch.float32)
    return predict_relative(lift, uv, torch.tensor(np.tile(K, (len(uv), 1)), dtype=torch.float32), "cpu")


def test_npz_round_trip_with_h36m_cameras(run, tmp_path):
    rig = list(h36m_rig("S9").values())
    P = make_poses(10, np.random.default_rng(0))
    pos = {"S9": {"Walking 1": [project(P, c).astype(np.float32) for c in rig[:3]] + [None]}}
    inp = write_videopose3d_2d(tmp_path / "in.npz", pos)
    res = CliRunner().invoke(
        cli, ["predict", str(run), str(inp), "--out", str(tmp_path / "o.npz"), "--cameras", "h36m"]
    )
    assert res.exit_code == 0, res.output
    out = np.load(tmp_path / "o.npz", allow_pickle=True)["positions_3d"].item()
    lst = out["S9"]["Walking 1"]
    assert lst[3] is None and lst[0].shape == (10, 17, 3) and lst[0].dtype == np.float32
    for i in range(3):
        ref = _reference(run, world_to_camera(P, rig[i].R, rig[i].t), rig[i].intrinsics)
        np.testing.assert_allclose(lst[i], ref, atol=0.05)  # mm; the lens undistortion is iterative
        assert np.all(lst[i][:, 0] == 0)
    assert np.abs(lst[0] - lst[1]).max() > 1.0  # the views differ, so a camera mix-up would show
    # the same input as a long Parquet table
    predict(run, inp, tmp_path / "o.parquet", cameras="h36m")
    t = pq.read_table(tmp_path / "o.parquet")
    assert t.num_rows == 30 and set(t.column("camera").to_pylist()) == {c.camera for c in rig[:3]}
    np.testing.assert_allclose(joints_to_numpy(t.column("joints3d"), 3)[:10], lst[0])


def test_table_inputs(run, tmp_path):
    P = make_poses(6, np.random.default_rng(1))
    Yc = P - [0, 0, 950] + [100, -50, 4500]  # in front of a camera at the origin
    K = np.array([1000.0, 990.0, 500.0, 480.0])
    dist = np.array([-0.1, 0.05, 0.001, -0.002, 0.0])  # OpenCV k1, k2, p1, p2, k3
    Kmat = np.array([[K[0], 0, K[2]], [0, K[1], K[3]], [0, 0, 1.0]])
    uv, _ = cv2.projectPoints(Yc.reshape(-1, 3), np.zeros(3), np.zeros(3), Kmat, dist)
    uv = uv.reshape(6, 17, 2)
    cols = {"video": pa.array(["clip"] * 6), "frame": pa.array(np.arange(6)), "joints2d": fsl(uv)}
    cols.update({k: pa.array(np.full(6, v)) for k, v in zip(["fx", "fy", "cx", "cy"], K)})
    cols.update({k: pa.array(np.full(6, v)) for k, v in zip(["k1", "k2", "p1", "p2", "k3"], dist)})
    pq.write_table(pa.table(cols), tmp_path / "in.parquet")
    predict(run, tmp_path / "in.parquet", tmp_path / "out.parquet")
    t = pq.read_table(tmp_path / "out.parquet")
    assert t.column("video").to_pylist() == ["clip"] * 6 and "joints2d" not in t.column_names
    ref = _reference(run, Yc, K)
    np.testing.assert_allclose(joints_to_numpy(t.column("joints3d"), 3), ref, atol=0.05)

    # CSV with flat x/y columns, no distortion
    uv0 = (Yc[..., :2] / Yc[..., 2:]) * K[:2] + K[2:]
    flat = {f"{c}{j}": uv0[:, j, i] for j in range(17) for i, c in enumerate("xy")}
    flat.update({k: np.full(6, v) for k, v in zip(["fx", "fy", "cx", "cy"], K)})
    flat["frame"] = np.arange(6)
    pacsv.write_csv(pa.table(flat), tmp_path / "in.csv")
    predict(run, tmp_path / "in.csv", tmp_path / "out.csv")
    c = pacsv.read_csv(tmp_path / "out.csv")
    xyz = np.stack([c.column(f"{a}{j}").to_numpy() for j in range(17) for a in "XYZ"], -1).reshape(6, 17, 3)
    np.testing.assert_allclose(xyz, ref, atol=0.05)
    assert c.column("frame").to_pylist() == list(range(6))


def test_predict_errors(run, tmp_path):
    inp = write_videopose3d_2d(tmp_path / "in.npz", {"S1": {"A": [np.zeros((2, 17, 2), np.float32)] * 4}})
    with pytest.raises(ValueError, match="needs intrinsics"):
        predict(run, inp, tmp_path / "o.npz")
    pq.write_table(pa.table({"joints2d": fsl(np.zeros((2, 17, 2))), "fx": [1.0, 1.0]}), tmp_path / "bad.parquet")
    r = CliRunner().invoke(
        cli, ["predict", str(run), str(tmp_path / "bad.parquet"), "--out", str(tmp_path / "o.parquet")]
    )
    assert r.exit_code != 0 and "bad.parquet" in r.output and "fy" in r.output
    with pytest.raises(ValueError, match="not .npz"):
        predict(run, tmp_path / "bad.parquet", tmp_path / "o.npz")
