"""Benchmark `mvtools calibrate --from-joints` against a literal reading of the paper on a synthetic H36M tree.

Builds (or reuses, ``--ds``) a synthetic H36M-like dataset with ``mvtools.synth.dataset.synth_dataset``
(default 7 subjects
x 30 sequences x 1,500 frames, realistic detections: several px, temporally correlated, outliers, left/right
swaps), then for every subject and each of the 6 camera pairs compares against the given calibration:

- ours: ``calibrate_from_joints(ds, source="detected")`` with its defaults (pooled frames, confidence filter,
  undistortion, MAGSAC essential matrix + third-view check, one incremental rig, bundle adjustment);
- literal: the paper's recipe per pair (Li et al. 2020, after eq. 4): F by RANSAC on the raw detected joints of the
  two views (``cv2.findFundamentalMat``, FM_RANSAC, 3 px), E = K2^T F K1, ``cv2.recoverPose`` (cheirality), t scaled
  by the given camera-centre distance; no pooling across pairs, no refinement, no undistortion, no confidence
  filter. It sees the same sampled frames as ours (``--max-frames``).

Reports wall time and rotation / translation-direction errors (degrees) of both.

    python bench/calibrate.py                     # ~2-4 min on 2 cores incl. building the dataset
    python bench/calibrate.py --frames 4300       # Human3.6M-sized (903,000 frames per camera)
    python bench/calibrate.py --ds DS             # reuse an existing dataset
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from mvtools.calibration.pipeline import calibrate_from_joints
from mvtools.calibration.views import join_views
from mvtools.camera import relative_transform
from mvtools.dataset import joints_to_numpy, read_cameras, read_poses2d
from mvtools.rotations import angle_between_deg, rotation_angle_deg
from mvtools.skeleton import NUM_JOINTS


def literal_subject(ds, subject: str, max_frames: int, seed: int) -> list[dict]:
    """The paper's per-pair recipe on one subject; returns per-pair errors vs the given calibration."""
    cams = {c.camera: c for c in read_cameras(ds, "given", [subject])}
    ids = list(cams)
    t = read_poses2d(
        ds, [subject], source="detected", columns=["action", "subaction", "frame", "camera", "joints2d", "confidence"]
    )
    cam_idx = np.array([ids.index(c) for c in t.column("camera").to_pylist()])
    uv = joints_to_numpy(t.column("joints2d"), 2).astype(np.float64)
    conf = np.ones((len(uv), NUM_JOINTS))  # the literal recipe ignores confidences
    _, U, W, _ = join_views(
        t.column("action").to_numpy(zero_copy_only=False),
        t.column("subaction").to_numpy(),
        t.column("frame").to_numpy(),
        cam_idx,
        uv,
        conf,
        len(ids),
    )
    rng = np.random.default_rng(seed)
    fr = np.sort(rng.choice(len(U), min(max_frames, len(U)), replace=False))
    U = U[fr]
    out = []
    for a, b in itertools.combinations(range(len(ids)), 2):
        ca, cb = cams[ids[a]], cams[ids[b]]
        m = np.isfinite(U[:, a]).all(-1) & np.isfinite(U[:, b]).all(-1)
        pa, pb = U[:, a][m], U[:, b][m]
        t0 = time.perf_counter()
        F, _ = cv2.findFundamentalMat(pa, pb, cv2.FM_RANSAC, 3.0, 0.99)
        E = cb.K.T @ F[:3] @ ca.K
        xa = (pa - [ca.cx, ca.cy]) / [ca.fx, ca.fy]
        xb = (pb - [cb.cx, cb.cy]) / [cb.fx, cb.fy]
        _, R, tv, _ = cv2.recoverPose(E, xa, xb, np.eye(3))
        secs = time.perf_counter() - t0
        Rg, tg = relative_transform(ca.R, ca.t, cb.R, cb.t)
        t_ab = -R.T @ tv[:, 0] * np.linalg.norm(tg)  # paper: unit t times the known camera distance
        out.append(
            {
                "cam_a": ids[a],
                "cam_b": ids[b],
                "rotation_error_deg": float(rotation_angle_deg(R, Rg)),
                "translation_direction_error_deg": float(angle_between_deg(t_ab, tg)),
                "seconds": secs,
            }
        )
    return out


def summarise(rows: list[dict]) -> dict:
    r = np.array([p["rotation_error_deg"] for p in rows])
    t = np.array([p["translation_direction_error_deg"] for p in rows])
    return {
        "pairs": len(rows),
        "rot_mean": float(r.mean()),
        "rot_median": float(np.median(r)),
        "rot_max": float(r.max()),
        "tdir_mean": float(t.mean()),
        "tdir_median": float(np.median(t)),
        "tdir_max": float(t.max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ds", type=Path, default=None, help="existing dataset to use (else one is synthesised)")
    ap.add_argument("--work", type=Path, default=None, help="where to synthesise the dataset (default: a temp dir)")
    ap.add_argument("--sequences", type=int, default=30, help="sequences per subject")
    ap.add_argument("--frames", type=int, default=1500, help="frames per sequence (50 Hz)")
    ap.add_argument("--max-frames", type=int, default=2000, help="frames sampled per subject (both methods)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ablation", action="store_true", help="also run ours without bundle adjustment")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON summary here")
    args = ap.parse_args()
    os.environ.setdefault("MVTOOLS_QUIET", "1")

    if args.ds is None:
        from mvtools.synth.dataset import synth_dataset

        work = args.work or Path(tempfile.mkdtemp(prefix="mvtools-bench-calib-"))
        ds = work / f"synth-{args.sequences}x{args.frames}"
        if not (ds / "manifest.json").exists():
            t0 = time.perf_counter()
            synth_dataset(
                ds,
                sequences_per_subject=args.sequences,
                frames=args.frames,
                seed=args.seed,
                noise="realistic",
                command="bench/calibrate.py",
            )
            print(f"synthesised {ds} in {time.perf_counter() - t0:.1f} s")
    else:
        ds = args.ds

    result = {"dataset": str(ds), "max_frames": args.max_frames}
    t0 = time.perf_counter()
    ours = calibrate_from_joints(ds, source="detected", max_frames=args.max_frames, seed=args.seed, write=False)
    result["ours_wall_s"] = time.perf_counter() - t0
    subjects = list(ours["subjects"])
    ours_rows = [p for s in subjects for p in ours["subjects"][s]["pairs"]]
    result["ours"] = summarise(ours_rows)
    result["ours_frames_total"] = {s: ours["subjects"][s]["frames_total"] for s in subjects}
    result["ours_ba_rms_px"] = {
        s: [
            ours["subjects"][s]["bundle_adjustment"]["rms_px_before"],
            ours["subjects"][s]["bundle_adjustment"]["rms_px_after"],
        ]
        for s in subjects
    }
    if args.ablation:
        t0 = time.perf_counter()
        nb = calibrate_from_joints(
            ds, source="detected", max_frames=args.max_frames, seed=args.seed, refine=False, write=False
        )
        result["ours_no_refine_wall_s"] = time.perf_counter() - t0
        result["ours_no_refine"] = summarise([p for s in subjects for p in nb["subjects"][s]["pairs"]])
        result["pairwise_before_rig"] = summarise(
            [
                {
                    "rotation_error_deg": p["pairwise_rotation_error_deg"],
                    "translation_direction_error_deg": p["pairwise_translation_direction_error_deg"],
                }
                for s in subjects
                for p in nb["subjects"][s]["pairs"]
            ]
        )
    t0 = time.perf_counter()
    lit_rows = [p for s in subjects for p in literal_subject(ds, s, args.max_frames, args.seed)]
    result["literal_wall_s"] = time.perf_counter() - t0
    result["literal"] = summarise(lit_rows)
    result["rotation_error_ratio_literal_over_ours"] = result["literal"]["rot_mean"] / result["ours"]["rot_mean"]

    print(json.dumps(result, indent=2))
    print()
    print("| method | wall s | rot err mean / median / max (deg) | t-dir err mean / median / max (deg) |")
    print("|---|---|---|---|")
    rows = [("ours", "ours_wall_s"), ("ours, no BA", "ours_no_refine_wall_s"), ("literal (paper)", "literal_wall_s")]
    for name, key in rows:
        k = {"ours": "ours", "ours, no BA": "ours_no_refine", "literal (paper)": "literal"}[name]
        if k not in result:
            continue
        s = result[k]
        print(
            f"| {name} | {result[key]:.1f} | {s['rot_mean']:.3f} / {s['rot_median']:.3f} / {s['rot_max']:.3f} | "
            f"{s['tdir_mean']:.3f} / {s['tdir_median']:.3f} / {s['tdir_max']:.3f} |"
        )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
