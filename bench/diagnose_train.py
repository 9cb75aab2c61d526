"""Where does a trained run's error come from? Error decomposition on the held-out (test) subjects of a dataset.

    python bench/diagnose_train.py RUN DS [RUN2 ...] [--checkpoint best]

For the real cameras of the test subjects (detected 2D, as `mvtools evaluate`), per run:

- MPJPE, N-MPJPE (after the best per-pose scale), P-MPJPE (mm) and the median scale factor pred -> GT: a
  self-supervised lifter's scale comes from its root branch's depth, so MPJPE - N-MPJPE is the scale share;
- the error along the camera's depth axis vs across it (mm, mean |dz| vs mean |(dx, dy)| per joint);
- the root branch (self-supervised runs): median |z_pred / z_gt - 1| of the root depth (percent);
- the pelvis' place within the body: the per-pose offset of joints 1-16 from the ground truth (median |offset|,
  mean offset along the depth axis, mm) and MPJPE of joints 1-16 after removing it - the root branch and the
  lifting branch can trade this offset without changing any joint but the pelvis in the global pose;
- mirror ambiguity: the share of poses whose depth-mirrored prediction (z -> -z about the root) is closer to the
  ground truth than the prediction itself;
- detector outliers: MPJPE of the poses whose detected 2D is within 10 px (max joint) of the ground-truth
  projection vs those with a joint beyond 30 px (outliers, left/right swaps), and their share.

Prints one Markdown row per run. CPU only, seconds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def diagnose(run, ds, checkpoint: str = "best") -> dict:
    from mvtools.evaluate.evaluation import evaluation_views
    from mvtools.evaluate.metrics import mpjpe_per_pose, n_mpjpe_per_pose, p_mpjpe_per_pose
    from mvtools.train.checkpoint import load_checkpoint
    from mvtools.train.inference import checkpoint_path, lift_2d, load_run
    from mvtools.train.model import build_model, normalise_2d

    loaded = load_run(run, checkpoint)
    det = evaluation_views(ds, source="detected")
    gt2 = evaluation_views(ds, source="gt")
    if len(det["x2d"]) != len(gt2["x2d"]) or not np.allclose(det["gt"], gt2["gt"]):
        raise SystemExit(f"{ds}: detected and gt 2D rows do not pair up")
    x = torch.from_numpy(det["x2d"]).float()
    K = torch.from_numpy(det["K"].copy()).float()
    pred = lift_2d(loaded.lift, x, K)
    gt = det["gt"] - det["gt"][:, :1]
    e = mpjpe_per_pose(pred, gt)
    scale = np.median((pred * gt).sum((1, 2)) / np.maximum((pred * pred).sum((1, 2)), 1e-9))
    d = np.abs(pred - gt)
    mirror = pred.copy()
    mirror[..., 2] = -mirror[..., 2]
    off = (pred[:, 1:] - gt[:, 1:]).mean(1, keepdims=True)
    det_err = np.linalg.norm(det["x2d"] - gt2["x2d"], axis=-1).max(-1)
    clean, bad = det_err < 10, det_err > 30
    out = {
        "run": str(run),
        "loss": loaded.config.loss,
        "checkpoint": loaded.checkpoint["which"],
        "mpjpe": float(e.mean()),
        "n_mpjpe": float(n_mpjpe_per_pose(pred, gt).mean()),
        "p_mpjpe": float(p_mpjpe_per_pose(pred, gt).mean()),
        "scale_to_gt": float(scale),
        "depth_err_mm": float(d[..., 2].mean()),
        "lateral_err_mm": float(np.linalg.norm(pred[..., :2] - gt[..., :2], axis=-1).mean()),
        "pelvis_offset_mm": float(np.median(np.linalg.norm(off[:, 0], axis=-1))),
        "pelvis_offset_z_mm": float(off[:, 0, 2].mean()),
        "mpjpe_1_16_offset_removed": float(np.linalg.norm(pred[:, 1:] - off - gt[:, 1:], axis=-1).mean()),
        "mirror_closer_pct": float((mpjpe_per_pose(mirror, gt) < e).mean() * 100),
        "mpjpe_clean_2d": float(e[clean].mean()) if clean.any() else None,
        "mpjpe_outlier_2d": float(e[bad].mean()) if bad.any() else None,
        "outlier_share_pct": float(bad.mean() * 100),
        "n": int(len(e)),
    }
    if loaded.config.loss != "supervised":
        ck = load_checkpoint(checkpoint_path(run, checkpoint)[0])
        model = build_model(loaded.config)
        model.load_state_dict(ck["model"])
        with torch.no_grad():
            root = model.root.eval()(normalise_2d(x, K)).double().numpy()
        out["root_depth_err_pct"] = float(np.median(np.abs(root[:, 2] / det["gt"][:, 0, 2] - 1)) * 100)
        out["root_depth_bias_pct"] = float(np.median(root[:, 2] / det["gt"][:, 0, 2] - 1) * 100)
    return out


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ds", type=Path)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--checkpoint", default="best")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON lines")
    a = ap.parse_args()
    torch.set_num_threads(1)
    cols = [
        "mpjpe",
        "n_mpjpe",
        "p_mpjpe",
        "scale_to_gt",
        "depth_err_mm",
        "lateral_err_mm",
        "root_depth_err_pct",
        "root_depth_bias_pct",
        "pelvis_offset_mm",
        "pelvis_offset_z_mm",
        "mpjpe_1_16_offset_removed",
        "mirror_closer_pct",
        "mpjpe_clean_2d",
        "mpjpe_outlier_2d",
        "outlier_share_pct",
    ]
    print("| run | loss | " + " | ".join(cols) + " |")
    print("|---|---|" + "---:|" * len(cols))
    rows = []
    for run in a.runs:
        r = diagnose(run, a.ds, a.checkpoint)
        rows.append(r)
        print(f"| {Path(run).name} | {r['loss']} | " + " | ".join(_fmt(r.get(c)) for c in cols) + " |", flush=True)
    if a.json:
        a.json.write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
