"""Benchmark the no-3D, no-calibration road: CMU motion -> 4-camera rig -> OpenPose JSON -> calibrated rig, 3D, lifter.

    python bench/keypoints.py                      # ../shared/data/cmu, 25 Hz, demo-size training
    python bench/keypoints.py --fps 50 --epochs 10 --keep /tmp/kp_bench

1. `mvtools ingest bvh CMU --rig h36m:S1 --detector-noise none` gives real human motion (3D, world mm) placed in the
   Human3.6M S1 rig (its lens distortion as OpenCV coefficients). Train subjects (CMU01-07) form one recording, test
   subjects (CMU08-09) a second one.
2. Realistic detections (mvtools' detector noise model: temporally correlated noise, self-occlusion, outliers,
   left/right swaps, confidences) of every camera are exported as OpenPose BODY_25 per-frame JSON folders.
3. Pipeline "estimated": `ingest keypoints` (intrinsics from OpenCV YAML files) -> `calibrate --from-joints --scale
   body` -> `triangulate` -> `augment --virtual-views 8` -> `train` (trans-reproj) -> `predict` on each view of the test
   recording. Pipeline "true rig": the same, but the true rig is imported (`calibrate --import-toml`) instead of
   estimated.
4. Figures: calibration error (relative rotation and translation direction per camera pair, degrees; scale error %),
   triangulation MPJPE against the truth (mm; the truth's joints are defined by the same mapping: pelvis = mid-hip,
   ...), and the lifter's MPJPE / P-MPJPE (mm, root-relative, camera frame) on the test recording.

Prints markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mvtools.calibration.toml_io import write_aniposelib_toml  # noqa: E402
from mvtools.camera import relative_transform, world_to_camera  # noqa: E402
from mvtools.dataset import joints_to_numpy, read_cameras, read_poses3d  # noqa: E402
from mvtools.evaluate.metrics import mpjpe, p_mpjpe_per_pose  # noqa: E402
from mvtools.ingest.keypoints.export import write_openpose_dir  # noqa: E402
from mvtools.ingest.keypoints.layouts import from_h36m, to_h36m  # noqa: E402
from mvtools.rotations import angle_between_deg, rotation_angle_deg  # noqa: E402
from mvtools.synth.noise import NoiseParams, simulate_detections  # noqa: E402


def cmu_dir() -> Path:
    env = os.environ.get("MVTOOLS_SHARED")
    base = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"
    return base / "data" / "cmu"


def run(cmd: list[str], log: Path) -> float:
    print("$ " + " ".join(cmd), flush=True)
    t = time.perf_counter()
    with open(log, "w") as f:
        p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "MVTOOLS_QUIET": "1"})
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{Path(log).read_text()[-2000:]}")
    return time.perf_counter() - t


def truth(X):
    """Truth in the joints the keypoint mapping defines (the mapping applied to the 3D keypoints)."""
    return to_h36m(*from_h36m(X, "body25"), "body25")[0]


def opencv_rig(ds) -> dict:
    out = {}
    cams = read_cameras(ds, "given")
    for c in cams:
        if c.subject != cams[0].subject:  # every subject stands in the same rig
            continue
        d = c.opencv_distortion()
        out[c.camera] = replace(c, k=(d[0], d[1], d[4]), p=(d[2], d[3]), distortion_model="opencv", subject="S1")
    return out


def export(root: Path, X: np.ndarray, rig: dict, seed: int) -> None:
    for i, (cid, cam) in enumerate(rig.items()):
        uv, conf = simulate_detections(X, cam, NoiseParams.realistic(), np.random.default_rng([seed, i]), fps=50.0)
        kp, kc = from_h36m(uv, "body25", conf)
        arr = np.concatenate([kp, kc[..., None]], -1)[:, None]
        write_openpose_dir(root / cid, np.arange(len(X)), np.where(np.isfinite(arr), arr, 0.0), name=cid)


def write_intrinsics(folder: Path, rig: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for cid, c in rig.items():
        fs = cv2.FileStorage(str(folder / f"{cid}.yml"), cv2.FILE_STORAGE_WRITE)
        fs.write("image_width", c.width)
        fs.write("image_height", c.height)
        fs.write("camera_matrix", c.K)
        fs.write("distortion_coefficients", c.opencv_distortion().reshape(5, 1))
        fs.release()


def calibration_errors(ds, rig: dict) -> dict:
    est = {c.camera: c for c in read_cameras(ds, "estimated")}
    ids = list(rig)
    rot, tdir = [], []
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            Re, te = relative_transform(est[a].R, est[a].t, est[b].R, est[b].t)
            Rg, tg = relative_transform(rig[a].R, rig[a].t, rig[b].R, rig[b].t)
            rot.append(rotation_angle_deg(Re, Rg))
            tdir.append(angle_between_deg(te, tg))
    C_e = np.array([est[c].C for c in ids])
    C_g = np.array([rig[c].C for c in ids])
    i, j = np.triu_indices(len(ids), 1)
    scale = float(np.median(np.linalg.norm(C_e[i] - C_e[j], axis=1) / np.linalg.norm(C_g[i] - C_g[j], axis=1)))
    return {
        "rot_mean": float(np.mean(rot)),
        "rot_max": float(np.max(rot)),
        "tdir_mean": float(np.mean(tdir)),
        "tdir_max": float(np.max(tdir)),
        "scale_err_pct": 100 * (scale - 1),
    }


def triangulation_error(ds, X_truth: np.ndarray, rig: dict, ref: str, estimated: bool) -> dict:
    t3 = read_poses3d(ds, ["S1"])
    fr = t3["frame"].to_numpy()
    tri = joints_to_numpy(t3["joints3d"], 3).astype(float)
    gt = X_truth[fr]
    if estimated:  # the estimated world frame is the reference camera's
        gt = world_to_camera(gt, rig[ref].R, rig[ref].t)
    ok = np.isfinite(tri).all(-1)
    e = np.linalg.norm(tri - gt, axis=-1)[ok]
    s = float(np.sum(tri[ok] * gt[ok]) / np.sum(gt[ok] * gt[ok]))
    es = np.linalg.norm(tri / s - gt, axis=-1)[ok]
    full = ok.all(1)
    rel = lambda A: A[full] - A[full, :1]  # noqa: E731
    er = np.linalg.norm(rel(tri) - rel(gt), axis=-1)
    return {
        "mpjpe": float(e.mean()),
        "mpjpe_rel": float(er.mean()),
        "mpjpe_scaled": float(es.mean()),
        "median_scaled": float(np.median(es)),
        "scale": s,
        "joints": float(ok.mean()),
        "frames": int(len(fr)),
    }


def lift_errors(mv, work: Path, run_dir: Path, test_root: Path, X_test: np.ndarray, rig: dict) -> dict:
    preds, gts = [], []
    for cid, cam in rig.items():
        out = work / f"pred-{run_dir.name}-{cid}.npz"
        run(
            mv
            + [
                "predict",
                str(run_dir),
                str(test_root / cid),
                "--out",
                str(out),
                "--cameras",
                str(work / "intrinsics" / f"{cid}.yml"),
            ],
            work / f"predict-{run_dir.name}-{cid}.log",
        )
        z = np.load(out, allow_pickle=True)
        g = world_to_camera(truth(X_test)[z["frames"]], cam.R, cam.t)
        preds.append(z["joints3d"].astype(float))
        gts.append(g - g[:, :1])
    p, g = np.concatenate(preds), np.concatenate(gts)
    ok = np.isfinite(p).all((1, 2))
    return {
        "mpjpe": mpjpe(p[ok], g[ok]),
        "p_mpjpe": float(p_mpjpe_per_pose(p[ok], g[ok]).mean()),
        "poses": int(ok.sum()),
        "of": int(len(ok)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cmu", type=Path, default=cmu_dir())
    ap.add_argument("--fps", type=float, default=25.0, help="frame rate of the simulated videos, Hz")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--pretrain-epochs", type=int, default=3)
    ap.add_argument("--pairs-per-frame", type=int, default=8)
    ap.add_argument(
        "--train-args",
        default="--channels 256 --blocks 2 --batch-size 256 --dropout 0.0 --lr 1e-3 "
        "--lambda 2.0 --warmup-steps 0 --device cpu --no-plots",
    )
    ap.add_argument("--keep", type=Path, default=None, help="work directory to keep (default: a temporary one)")
    a = ap.parse_args()
    files = sorted(a.cmu.glob("*.bvh"))
    if not files:
        sys.exit(f"{a.cmu}: no BVH files (set MVTOOLS_SHARED or --cmu)")
    work = a.keep or Path(tempfile.mkdtemp(prefix="mvtools-bench-kp-"))
    work.mkdir(parents=True, exist_ok=True)
    mv = [sys.executable, "-m", "mvtools"]
    t0 = time.perf_counter()
    bvh = work / "bvh"
    run(
        mv
        + [
            "ingest",
            "bvh",
            str(a.cmu),
            "--out",
            str(bvh),
            "--rig",
            "h36m:S1",
            "--fps",
            str(a.fps),
            "--detector-noise",
            "none",
            "--seed",
            str(a.seed),
        ],
        work / "ingest-bvh.log",
    )
    m = json.loads((bvh / "manifest.json").read_text())
    t3 = read_poses3d(bvh).to_pandas().sort_values(["subject", "action", "subaction", "frame"])
    X_all = np.stack(t3["joints3d"].to_numpy()).reshape(-1, 17, 3).astype(float)
    test = t3["subject"].isin(m["splits"]["test"]).to_numpy()
    X_train, X_test = X_all[~test], X_all[test]
    rig = opencv_rig(bvh)
    ref = next(iter(rig))
    export(work / "raw-train", X_train, rig, a.seed)
    export(work / "raw-test", X_test, rig, a.seed + 1)
    write_intrinsics(work / "intrinsics", rig)
    write_aniposelib_toml(work / "true-rig.toml", list(rig.values()))
    t_prep = time.perf_counter() - t0
    results = {}
    for mode in ("estimated", "true rig"):
        tag = "est" if mode == "estimated" else "true"
        ds, run_dir = work / f"ds-{tag}", work / f"run-{tag}"
        times = {}
        times["ingest"] = run(
            mv
            + [
                "ingest",
                "keypoints",
                str(work / "raw-train"),
                "--out",
                str(ds),
                "--intrinsics",
                str(work / "intrinsics"),
                "--fps",
                str(a.fps),
            ],
            work / f"ingest-{tag}.log",
        )
        if mode == "estimated":
            times["calibrate"] = run(
                mv + ["calibrate", "--from-joints", str(ds), "--scale", "body", "--seed", str(a.seed)],
                work / f"calibrate-{tag}.log",
            )
        else:
            times["calibrate"] = run(
                mv + ["calibrate", "--import-toml", str(work / "true-rig.toml"), "--subject", "S1", str(ds)],
                work / f"calibrate-{tag}.log",
            )
        times["triangulate"] = run(mv + ["triangulate", str(ds)], work / f"triangulate-{tag}.log")
        times["augment"] = run(
            mv
            + [
                "augment",
                str(ds),
                "--virtual-views",
                "8",
                "--pairs-per-frame",
                str(a.pairs_per_frame),
                "--seed",
                str(a.seed),
            ],
            work / f"augment-{tag}.log",
        )
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        times["train"] = run(
            mv
            + [
                "train",
                str(ds),
                "--out",
                str(run_dir),
                "--epochs",
                str(a.epochs),
                "--pretrain-epochs",
                str(a.pretrain_epochs),
                "--seed",
                str(a.seed),
            ]
            + a.train_args.split(),
            work / f"train-{tag}.log",
        )
        res = {
            "times": times,
            "tri": triangulation_error(ds, truth(X_train), rig, ref, mode == "estimated"),
            "lift": lift_errors(mv, work, run_dir, work / "raw-test", X_test, rig),
        }
        if mode == "estimated":
            res["cal"] = calibration_errors(ds, rig)
        res["pairs"] = json.loads((ds / "pairs" / "manifest.json").read_text())["rows"]["train"]
        results[mode] = res
        print(json.dumps(res, indent=1), flush=True)
    total = time.perf_counter() - t0
    c = results["estimated"]["cal"]
    print(
        f"\n## keypoints pipeline on CMU (bench/keypoints.py; {len(X_train):,} train frames / {len(X_test):,} test "
        f"frames at {a.fps:g} Hz x 4 cameras; preparation {t_prep:.0f} s, total {total:.0f} s)\n"
    )
    print(
        f"Calibration from the OpenPose JSON (`--scale body`): relative rotation error mean {c['rot_mean']:.3f} / "
        f"max {c['rot_max']:.3f} deg, translation direction mean {c['tdir_mean']:.3f} / max {c['tdir_max']:.3f} deg, "
        f"scale error {c['scale_err_pct']:+.1f} %.\n"
    )
    print(
        "| rig | triangulation MPJPE mm: absolute / root-relative / after one global scale | joints triangulated "
        "| train pairs | lifter MPJPE mm | lifter P-MPJPE mm | calibrate s | triangulate s | train s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mode, r in results.items():
        t, lf, tm = r["tri"], r["lift"], r["times"]
        print(
            f"| {mode} | {t['mpjpe']:.1f} / {t['mpjpe_rel']:.1f} / {t['mpjpe_scaled']:.1f} | "
            f"{100 * t['joints']:.2f} % | {r['pairs']:,} | {lf['mpjpe']:.1f} | {lf['p_mpjpe']:.1f} | "
            f"{tm['calibrate']:.1f} | {tm['triangulate']:.1f} | {tm['train']:.0f} |"
        )
    print(
        f"\nlifter evaluated on {results['estimated']['lift']['poses']:,} of {results['estimated']['lift']['of']:,} "
        "test views (the others lack a keypoint)"
    )
    print(f"\nwork directory: {work}")


if __name__ == "__main__":
    main()
