"""End to end with no 3D labels and no calibration: OpenPose JSON and COCO results JSON of a synthetic 4-camera rig
-> ingest keypoints -> calibrate --from-joints --scale body -> triangulate -> augment -> train (tiny) -> evaluate
(pseudo ground truth) -> predict on a new view's mmpose file; calibration (degrees), triangulation (mm) and the
lifted 3D (mm) checked against the synthetic truth."""

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mvtools.calibration.toml_io import write_aniposelib_toml
from mvtools.camera import relative_transform, world_to_camera
from mvtools.cli.main import cli
from mvtools.dataset import joints_to_numpy, read_cameras, read_manifest, read_poses3d
from mvtools.evaluate.metrics import mpjpe, p_mpjpe_per_pose
from mvtools.h36m_cameras import h36m_rig
from mvtools.ingest.keypoints.export import coco_images, coco_results, write_mmpose_video, write_openpose_dir
from mvtools.ingest.keypoints.layouts import from_h36m, to_h36m
from mvtools.rotations import rotation_angle_deg
from mvtools.skeleton import H36M32_TO_17
from mvtools.synth.dataset import synth_sequences
from mvtools.synth.noise import NoiseParams, simulate_detections

torch.set_num_threads(1)
IDS = ["c0", "c1", "c2", "c3"]
OFFSET_C1 = 7


def _rig():
    """The H36M S1 rig with its lens distortion as OpenCV coefficients (what an OpenCV calibration would give)."""
    out = {}
    for cid, c in zip(IDS, h36m_rig("S1").values(), strict=True):
        d = c.opencv_distortion()
        out[cid] = replace(c, camera=cid, k=(d[0], d[1], d[4]), p=(d[2], d[3]), distortion_model="opencv")
    return out


def _detect(X, cam, layout, seed):
    uv, conf = simulate_detections(X, cam, NoiseParams.realistic(), np.random.default_rng(seed), fps=50.0)
    kp, kc = from_h36m(uv, layout, conf)
    return np.concatenate([kp, kc[..., None]], -1)[:, None]  # (T, 1 person, K, 3)


def _write_recording(tmp, X, rig):
    raw = tmp / "raw"
    frames = np.arange(len(X))
    for i, cid in enumerate(("c0", "c1")):  # OpenPose BODY_25 folders
        kp = _detect(X, rig[cid], "body25", i)
        if cid == "c0":  # a smaller bystander in every 5th frame
            other = np.full_like(kp, np.nan)
            other[::5, 0, :, :2] = kp[::5, 0, :, :2] * 0.35 + 20
            other[::5, 0, :, 2] = kp[::5, 0, :, 2]
            kp = np.concatenate([other, kp], 1)
        off = OFFSET_C1 if cid == "c1" else 0
        write_openpose_dir(raw / cid, frames + off, np.where(np.isfinite(kp), kp, 0.0), name=f"take1_{cid}")
    recs, imgs = [], []
    for i, cid in enumerate(("c2", "c3")):  # one COCO-17 results file, images mapped by an annotation file
        ids = 1000 * (i + 1) + frames
        recs += coco_results(frames, _detect(X, rig[cid], "coco17", 2 + i), image_ids=ids)
        imgs += [
            (iid, f"{cid}/{f:06d}.jpg", rig[cid].width, rig[cid].height) for iid, f in zip(ids, frames, strict=True)
        ]
    (raw / "results.json").write_text(json.dumps(recs))
    (tmp / "person_keypoints_val.json").write_text(json.dumps(coco_images(imgs)))
    intr = tmp / "intrinsics"
    intr.mkdir()
    for cid, ext in (("c0", ".yml"), ("c1", ".xml")):  # OpenCV calibration sample's FileStorage layout
        c = rig[cid]
        fs = cv2.FileStorage(str(intr / f"{cid}{ext}"), cv2.FILE_STORAGE_WRITE)
        fs.write("image_width", c.width)
        fs.write("image_height", c.height)
        fs.write("camera_matrix", c.K)
        fs.write("distortion_coefficients", c.opencv_distortion().reshape(5, 1))
        fs.release()
    write_aniposelib_toml(tmp / "lab.toml", [rig["c2"], rig["c3"]])  # extrinsics in it are ignored by ingest
    return raw


def _truth(X):
    """Ground truth in the H36M joints the mapping defines (pelvis = mid-hip, ...): the mapping applied in 3D."""
    return to_h36m(*from_h36m(X, "body25"), "body25")[0]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_keypoints_to_rig_3d_and_lifter(tmp_path):
    seqs = [x[:, H36M32_TO_17] for *_, x in synth_sequences(["S1"], 3, 300, seed=0)]
    X, X_new = np.concatenate(seqs[:2]), seqs[2]
    rig = _rig()
    raw = _write_recording(tmp_path, X, rig)
    ds, run = tmp_path / "ds", tmp_path / "run"
    r = CliRunner()

    def ok(*args):
        res = r.invoke(cli, ["--quiet", *map(str, args)])
        assert res.exit_code == 0, res.output
        return res.output

    out = ok(
        "ingest",
        "keypoints",
        raw,
        "--out",
        ds,
        "--coco-images",
        tmp_path / "person_keypoints_val.json",
        "--intrinsics",
        tmp_path / "intrinsics",
        "--intrinsics",
        tmp_path / "lab.toml",
        "--offsets",
        f"c1={-OFFSET_C1}",
        "--fps",
        50,
    )
    assert "frames with several people" in out
    ok("calibrate", "--from-joints", ds, "--scale", "body")
    ok("triangulate", ds)
    ok("augment", ds, "--virtual-views", 8, "--pairs-per-frame", 16)
    ok(
        "train",
        ds,
        "--out",
        run,
        "--epochs",
        5,
        "--pretrain-epochs",
        5,
        "--channels",
        128,
        "--blocks",
        1,
        "--batch-size",
        128,
        "--dropout",
        0,
        "--warmup-steps",
        0,
        "--device",
        "cpu",
        "--no-plots",
    )
    ev = ok("evaluate", run, ds, "--subjects", "S1")
    assert "pseudo ground truth" in ev

    # calibration: every relative rotation against the true rig (degrees), scale from the body prior
    est = {c.camera: c for c in read_cameras(ds, "estimated")}
    rot = []
    for i, a in enumerate(IDS):
        for b in IDS[i + 1 :]:
            Re, te = relative_transform(est[a].R, est[a].t, est[b].R, est[b].t)
            Rg, tg = relative_transform(rig[a].R, rig[a].t, rig[b].R, rig[b].t)
            rot.append(rotation_angle_deg(Re, Rg))
    assert max(rot) < 0.8, rot
    # triangulation (mm) against the truth moved into the estimated frame (= reference camera c0's)
    t3 = read_poses3d(ds, ["S1"])
    fr = t3["frame"].to_numpy()
    tri = joints_to_numpy(t3["joints3d"], 3).astype(float)
    gt = world_to_camera(_truth(X)[fr], rig["c0"].R, rig["c0"].t)
    scale = float(np.nansum(tri * gt) / np.nansum(gt * gt))
    assert abs(scale - 1) < 0.08  # body-prior scale: the subject's stature is a ~5 % unknown
    err = np.linalg.norm(tri / scale - gt, axis=-1)
    assert np.isfinite(tri).all(-1).mean() > 0.99 and np.nanmean(err) < 40, np.nanmean(err)
    rep = joints_to_numpy(t3["reprojection_error"], 1)
    assert np.nanmedian(rep) < 6  # px
    assert read_manifest(ds)["triangulation"]["subjects"]["S1"]["extrinsics"] == "estimated"

    # a new recording (unseen motion) of one camera, as mmpose video predictions, lifted by the trained run
    write_mmpose_video(tmp_path / "new_c0.json", np.arange(len(X_new)), _detect(X_new, rig["c0"], "coco17", 9))
    ok(
        "predict",
        run,
        tmp_path / "new_c0.json",
        "--out",
        tmp_path / "pred.npz",
        "--cameras",
        tmp_path / "intrinsics" / "c0.yml",
    )
    z = np.load(tmp_path / "pred.npz", allow_pickle=True)
    pred, frames = z["joints3d"].astype(float), z["frames"]
    gt_new = world_to_camera(_truth(X_new)[frames], rig["c0"].R, rig["c0"].t)
    gt_new = gt_new - gt_new[:, :1]
    good = np.isfinite(pred).all((1, 2))
    assert good.mean() > 0.9
    m1 = mpjpe(pred[good], gt_new[good])
    m2 = float(p_mpjpe_per_pose(pred[good], gt_new[good]).mean())
    # the lifter must beat the best constant answer: the mean training pose (triangulated, c0's frame)
    tri_rel = tri - tri[:, :1]
    mean_pose = np.nanmean(tri_rel[np.isfinite(tri_rel).all((1, 2))], 0) / scale
    m0 = mpjpe(np.broadcast_to(mean_pose, gt_new[good].shape), gt_new[good])
    print(
        f"mean-pose baseline {m0:.1f} mm; rotation errors {np.round(rot, 3)} deg; scale {scale:.3f}; "
        f"triangulation {np.nanmean(err):.1f} mm; "
        f"lifted MPJPE {m1:.1f} mm, P-MPJPE {m2:.1f} mm"
    )
    assert m1 < 135 and m2 < 95 and m1 < 0.75 * m0, (m1, m2, m0)
