"""The temporal backbone end to end on augment's real shards: both phases and all three losses, resume bit for bit,
sequence inference in evaluate and predict, clear errors."""

import json

import numpy as np
import pytest
import torch

from mvtools.dataset import DatasetError
from mvtools.train.inference import load_run
from mvtools.train.loop import train

torch.set_num_threads(1)
TINY = dict(
    backbone="temporal",
    receptive_field=9,
    channels=16,
    batch_size=64,
    dropout=0.1,
    warmup_steps=2,
    plots=False,
    heldout_fraction=0.25,
)


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    from mvtools.augment import augment
    from mvtools.synth.dataset import synth_dataset

    d = synth_dataset(
        tmp_path_factory.mktemp("ttrain") / "ds",
        subjects=["S1", "S5", "S9"],
        sequences_per_subject=2,
        frames=40,
        seed=1,
    )
    augment(d, virtual_views=2, pairs_per_frame=2)
    return d


def _records(run):
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("loss", ["trans-reproj", "reproj", "supervised"])
def test_all_losses_and_both_phases(ds, tmp_path, loss):
    run = tmp_path / loss
    s = train(ds, run, loss=loss, epochs=1, pretrain_epochs=1, **{**TINY, "plots": loss == "trans-reproj"})
    recs = _records(run)
    assert [r["phase"] for r in recs] == (["main"] if loss == "supervised" else ["pretrain", "main"])
    for r in recs:
        assert np.isfinite(r["loss"]) and r["test_mpjpe"] > 0 and np.isfinite(r["heldout_loss"])
    if loss == "trans-reproj":
        assert {"loss_reproj", "loss_t_reproj"} <= set(recs[-1])
    assert s["heldout_pairs"] > 0 and s["test_pairs"] > 0
    if loss == "trans-reproj":  # skeletons.png lifts test pairs through their windows
        assert (run / "skeletons.png").stat().st_size > 0
    loaded = load_run(run)
    assert loaded.config.backbone == "temporal" and loaded.lift.receptive_field() == 9


def test_resume_is_bit_for_bit(ds, tmp_path):
    opts = dict(epochs=2, pretrain_epochs=1, seed=4, causal=True, **TINY)
    train(ds, tmp_path / "full", **opts)
    train(ds, tmp_path / "part", stop_after=2, **opts)
    train(ds, tmp_path / "part", resume=True, **opts)
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=True)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    ra, rb = _records(tmp_path / "full"), _records(tmp_path / "part")
    assert [r["loss"] for r in ra] == [r["loss"] for r in rb]
    assert [r["test_mpjpe"] for r in ra] == [r["test_mpjpe"] for r in rb]
    with pytest.raises(ValueError, match="same options.*receptive_field"):
        train(ds, tmp_path / "part", resume=True, **{**opts, "receptive_field": 27})


def test_evaluate_and_predict_lift_whole_sequences(ds, tmp_path):
    from mvtools.evaluate.evaluation import evaluate_run, evaluation_views
    from mvtools.evaluate.predict import predict
    from mvtools.ingest.h36m.reader import write_videopose3d_2d
    from mvtools.train.inference import lift_2d
    from mvtools.train.model import normalise_2d
    from mvtools.train.windows import pad_edges

    run = tmp_path / "run"
    train(ds, run, loss="supervised", epochs=2, **TINY)
    res = evaluate_run(run, ds)
    assert res["n_poses"] == 2 * 40 * 4 and res["mpjve"] > 0 and res["n_velocities"] == 2 * 39 * 4
    assert all(d["mpjve"] > 0 for d in res["per_action"].values())
    # the evaluated predictions are the per-frame windows (edges replicated) through the training form
    lift = load_run(run).lift
    v = evaluation_views(ds)
    c = v["context"]
    sel = np.flatnonzero(c["seq"] == c["seq"][0])
    xn = normalise_2d(torch.from_numpy(c["x2d"][sel]).float(), torch.from_numpy(c["K"][sel].copy()).float())
    padded = pad_edges(xn, 9, False)
    with torch.no_grad():
        ref = lift(torch.stack([padded[t : t + 9] for t in range(len(sel))])).double().numpy()
    got = lift_2d(lift, torch.from_numpy(c["x2d"]).float(), torch.from_numpy(c["K"].copy()).float(), sequence=c["seq"])[
        sel
    ]
    np.testing.assert_allclose(got, ref, atol=1e-3)
    with pytest.raises(ValueError, match="whole sequences"):
        lift_2d(lift, torch.from_numpy(c["x2d"][:5]).float(), torch.from_numpy(c["K"][:5].copy()).float())
    # predict: every VideoPose3D array is one sequence (here in pixels of the camera, intrinsics from h36m)
    from mvtools.h36m_cameras import h36m_rig

    cam = list(h36m_rig("S9").values())[0]
    uv = c["x2d"][sel].astype(np.float32)  # already undistorted; fine as input (predict undistorts again)
    pos = {"S9": {"a": [uv, None, None, None], "b": [uv[:5], None, None, None]}}
    inp = write_videopose3d_2d(tmp_path / "in.npz", pos)
    predict(run, inp, tmp_path / "out.npz", cameras="h36m")
    out = np.load(tmp_path / "out.npz", allow_pickle=True)["positions_3d"].item()
    from mvtools.camera import undistort_pixels

    und = undistort_pixels(uv.astype(np.float64), cam)
    K = np.tile(cam.intrinsics, (len(uv), 1))
    exp = lift_2d(lift, torch.from_numpy(und).float(), torch.from_numpy(K).float(), sequence=np.zeros(len(uv)))
    np.testing.assert_allclose(out["S9"]["a"][0], exp, atol=1e-2)
    short = lift_2d(
        lift, torch.from_numpy(und[:5]).float(), torch.from_numpy(K[:5]).float(), sequence=np.zeros(5)
    )  # a 5-frame sequence: padding alone fills the window
    np.testing.assert_allclose(out["S9"]["b"][0], short, atol=1e-2)


def test_predict_table_sequences_by_columns(ds, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mvtools.dataset import fsl
    from mvtools.evaluate.predict import predict

    run = tmp_path / "run"
    train(ds, run, loss="supervised", epochs=1, **TINY)
    rng = np.random.default_rng(0)
    uv = rng.uniform(300, 700, (30, 17, 2))
    cam = np.r_[np.zeros(15, int), np.ones(15, int)]
    frame = np.r_[np.arange(15), np.arange(15)]
    perm = rng.permutation(30)  # rows shuffled: the frame column orders each camera's sequence
    t = pa.table(
        {
            "camera": pa.array(np.array(["c0", "c1"])[cam][perm]),
            "frame": frame[perm],
            "joints2d": fsl(uv[perm].astype(np.float32)),
            "fx": np.full(30, 1000.0),
            "fy": np.full(30, 1000.0),
            "cx": np.full(30, 500.0),
            "cy": np.full(30, 500.0),
        }
    )
    pq.write_table(t, tmp_path / "in.parquet")
    predict(run, tmp_path / "in.parquet", tmp_path / "out.parquet")
    got = pq.read_table(tmp_path / "out.parquet")
    from mvtools.dataset import joints_to_numpy
    from mvtools.train.inference import lift_2d

    y = joints_to_numpy(got.column("joints3d"), 3)
    lift = load_run(run).lift
    K = torch.tensor([[1000.0, 1000.0, 500.0, 500.0]]).repeat(15, 1)
    for c in (0, 1):
        exp = lift_2d(lift, torch.from_numpy(uv[cam == c]).float(), K, sequence=np.zeros(15))
        np.testing.assert_allclose(y[np.argsort(perm)][cam == c], exp, atol=1e-3)
    t2 = t.set_column(1, "frame", pa.array(np.zeros(30, np.int64)))
    pq.write_table(t2, tmp_path / "dup.parquet")
    with pytest.raises(DatasetError, match="same frame twice"):
        predict(run, tmp_path / "dup.parquet", tmp_path / "o2.parquet")


def test_errors(ds, tmp_path):
    from helpers import make_dataset, make_shards

    with pytest.raises(ValueError, match="--receptive-field must be a power of 3"):
        train(ds, tmp_path / "e", epochs=1, **{**TINY, "receptive_field": 10})
    old = make_dataset(tmp_path / "old", frames=12)
    make_shards(old, pairs_per_frame=2)  # shards without per-view sequences (an older augment)
    with pytest.raises(DatasetError, match="re-run `mvtools augment`"):
        train(old, tmp_path / "e2", epochs=1, **TINY)


def test_flip_augmentation_and_test_flip_with_windows(ds, tmp_path):
    from mvtools.evaluate.evaluation import evaluate_run
    from mvtools.train.data import flip_pairs, load_pairs, read_pairs_manifest
    from mvtools.train.model import normalise_2d
    from mvtools.train.windows import PairWindows, load_sequences

    pdir = ds / "pairs"
    m = read_pairs_manifest(pdir)
    p = load_pairs(pdir, "train", manifest=m)
    p.windows = PairWindows(load_sequences(pdir, "train", m), p.meta, 9, False)
    b = p.batch(torch.arange(32))
    mask = torch.arange(32) % 2 == 0
    f = flip_pairs(b, mask)
    for v in ("a", "b"):  # the flipped windows' centre frame is the flipped pair's 2D, normalised
        torch.testing.assert_close(f[f"win_{v}"][:, 4], normalise_2d(f[f"x2d_{v}"], f[f"K_{v}"]), rtol=0, atol=1e-5)
        torch.testing.assert_close(f[f"win_{v}"][~mask], b[f"win_{v}"][~mask])
    run = tmp_path / "run"
    train(ds, run, loss="supervised", epochs=1, flip=True, **TINY)  # test-time flip: on by default
    res = evaluate_run(run, ds)
    assert res["test_flip"] and res["mpjpe"] > 0 and res["mpjve"] > 0
    off = evaluate_run(run, ds, test_flip=False)  # evaluate / predict --no-test-flip
    assert not off["test_flip"] and off["mpjpe"] != res["mpjpe"]
    from mvtools.train.inference import FlipAveraged, flip_2d, flip_3d, load_run

    on, plain = load_run(run), load_run(run, test_flip=False)
    assert isinstance(on.lift, FlipAveraged) and not isinstance(plain.lift, FlipAveraged)
    x = torch.randn(5, 9, 17, 2) * 0.2
    with torch.no_grad():  # the average of the two, and mirror-equivariant whatever the weights
        y = on.lift(x)
        torch.testing.assert_close(y, 0.5 * (plain.lift(x) + flip_3d(plain.lift(flip_2d(x)))))
        torch.testing.assert_close(on.lift(flip_2d(x)), flip_3d(y), rtol=1e-4, atol=1e-3)


def _with_missing_keypoint(ds, dst, subject, frame):
    """A copy of ``ds`` whose ``subject``'s detected 2D lack joint 5 at ``frame`` in every camera (NaN, confidence
    0: how ``ingest keypoints`` stores a keypoint the detector did not find)."""
    import shutil

    import pyarrow.parquet as pq

    from mvtools.dataset import fsl, joints_to_numpy

    shutil.copytree(ds, dst)
    for f in (dst / "poses2d" / f"subject={subject}").glob("detected*.parquet"):
        t = pq.read_table(f)
        uv = joints_to_numpy(t.column("joints2d"), 2).astype(np.float32)
        cf = joints_to_numpy(t.column("confidence"), 1).astype(np.float32)
        hit = t.column("frame").to_numpy() == frame
        uv[hit, 5], cf[hit, 5] = np.nan, 0.0
        t = t.set_column(t.schema.get_field_index("joints2d"), "joints2d", fsl(uv))
        t = t.set_column(t.schema.get_field_index("confidence"), "confidence", fsl(cf))
        pq.write_table(t, f)
    return dst


def test_missing_keypoint_does_not_poison_neighbouring_frames(ds, tmp_path):
    """evaluate: a frame with a missing keypoint is not scored, and its neighbours (whose windows contain it) are
    lifted from a context filled as augment fills the training sequences, never from NaN."""
    from mvtools.evaluate.evaluation import evaluate_run

    run = tmp_path / "run"
    train(ds, run, loss="supervised", epochs=1, **TINY)
    full = evaluate_run(run, ds)
    holed = _with_missing_keypoint(ds, tmp_path / "holed", "S9", 10)
    res = evaluate_run(run, holed)
    n_seq_cams = len({(a, c) for a in full["per_action"] for c in full["per_camera"]})
    assert res["n_poses"] < full["n_poses"] and res["n_poses"] >= full["n_poses"] - n_seq_cams
    for k in ("mpjpe", "p_mpjpe", "mpjve"):
        assert np.isfinite(res[k]) and abs(res[k] - full[k]) < 0.05 * full[k], (k, res[k], full[k])


def test_predict_keypoint_file_with_a_temporal_run(ds, tmp_path):
    """predict on one view's detector keypoints (array file) with a temporal run: the whole sequence in one pass,
    the frame with a missing keypoint filled for its neighbours' windows and left out of the output."""
    from mvtools.evaluate.predict import predict
    from mvtools.train.inference import lift_2d

    run = tmp_path / "run"
    train(ds, run, loss="supervised", epochs=1, **TINY)
    rng = np.random.default_rng(3)
    uv = 500 + np.cumsum(rng.normal(0, 2, (30, 17, 2)), 0) + rng.normal(0, 40, (1, 17, 2))
    kp = np.concatenate([uv, np.full((30, 17, 1), 0.9)], -1)
    kp[12, 5] = [np.nan, np.nan, 0.0]  # the detector missed joint 5 in frame 12
    np.save(tmp_path / "c0.npy", kp)
    out = predict(
        run, tmp_path / "c0.npy", tmp_path / "pred.npz", layout="h36m17", focal_px=1000, image_size="1000x1000"
    )
    z = np.load(out, allow_pickle=False)
    assert list(z["frames"]) == [f for f in range(30) if f != 12]
    filled = uv.copy()
    filled[12] = uv[11]
    K = torch.tensor([[1000.0, 1000.0, 500.0, 500.0]]).repeat(30, 1)
    exp = lift_2d(load_run(run).lift, torch.from_numpy(filled).float(), K, sequence=np.zeros(30))
    np.testing.assert_allclose(z["joints3d"], np.delete(exp, 12, 0), atol=1e-3)
