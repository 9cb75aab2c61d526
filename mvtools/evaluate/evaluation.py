"""Evaluate a run's lifting branch on single views of a dataset (not the pair shards).

For every poses2d row of the chosen subjects, cameras and 2D source: undistort the 2D joints with the camera's
given calibration, lift them, and compare the root-relative prediction (mm) with the ground truth moved into that
camera's frame (``world_to_camera`` with the given extrinsics), root-relative too. Errors are pooled per action
(VideoPose3D style) and over all poses.

Dataset hooks (used by the MPI-INF-3DHP ingest): a boolean poses3d column ``valid`` restricts evaluation to valid
rows; a string column ``scene`` adds ``per_scene``; manifest ``"evaluation": {"reference_column": ...}`` names the
ground-truth column (same frame and layout as ``joints3d``: world mm, 17 joints), ``"root_joint"`` the root
(default joint 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mvtools.augment.sequences import fill_invalid_rows
from mvtools.camera import undistort_pixels, world_to_camera
from mvtools.dataset import (
    INPUT_SOURCES,
    VIEWS,
    DatasetError,
    joints_to_numpy,
    read_cameras,
    read_manifest,
    read_poses2d,
    read_poses3d,
)
from mvtools.devices import DEFAULT_DEVICE, resolve_device
from mvtools.evaluate.metrics import (
    AUC_THRESHOLDS,
    auc,
    joint_errors,
    mpjpe_per_pose,
    n_mpjpe_per_pose,
    p_mpjpe_per_pose,
    pck,
    velocity_errors,
)
from mvtools.progress import log

KEYS = ["subject", "action", "subaction", "frame"]


def _default_source(ds, manifest: dict, run_source: str | None) -> str:
    rows = (manifest.get("rows") or {}).get("poses2d") or {}
    have = {s for s, n in rows.items() if n} if rows else None
    if run_source in ("gt", "detected") and (have is None or run_source in have):
        return run_source
    if run_source == "detected":
        raise DatasetError(
            f"{Path(ds) / 'manifest.json'}: the run was trained on detected 2D but the dataset has "
            "none; pass --source gt to evaluate on ground-truth 2D explicitly"
        )
    if have is None or "detected" in have:
        return "detected"
    return "gt"


def _sequences(c: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """One camera's 2D rows in sequence then frame order, and a sequence id (0..) per row. A sequence is a
    source sequence (``raw_name``, ``subaction``; MPI-INF-3DHP's test videos change ``action`` per frame), or
    (``raw_name``, ``action``, ``subaction``) where frame numbers repeat inside one."""
    for key in (["raw_name", "subaction"], ["raw_name", "action", "subaction"]):
        c = c.sort_values(key + ["frame"], kind="stable")
        seq = c.groupby(key, sort=False).ngroup().to_numpy()
        f = c["frame"].to_numpy()
        if not ((seq[1:] == seq[:-1]) & (f[1:] == f[:-1])).any():
            break
    return c, seq


def evaluation_views(
    ds, subjects=None, source: str | None = None, cameras: str = "real", run_source: str | None = None
) -> dict:
    """Single views to evaluate: undistorted 2D (N, 17, 2) px, K (N, 4) px, ground truth (N, 17, 3) camera-frame
    mm, and per-row labels (subject, action, camera, scene, frame, ``seq`` a sequence id). ``cameras``: 'real'
    (given calibration) or 'all' (also the virtual cameras of ``mvtools augment``). Rows are grouped by camera
    and sequence, in frame order. ``context`` holds every 2D row of the evaluated (subject, camera) pairs -
    ``x2d``, ``K``, ``seq``, ``frame`` (M,), sequence by sequence in frame order, also frames without a scored 3D
    pose - the input of temporal models; ``ctx_row`` (N,) is each scored row's index in it."""
    if cameras not in VIEWS:
        raise ValueError(f"cameras must be 'real' or 'all', got {cameras!r}")
    ds = Path(ds)
    manifest = read_manifest(ds)
    ev = manifest.get("evaluation") or {}
    ref_col = ev.get("reference_column", "joints3d")
    root = int(ev.get("root_joint", 0))
    if subjects is None:
        subjects = (manifest.get("splits") or {}).get("test")
        if not subjects:
            raise DatasetError(f"{ds / 'manifest.json'}: no 'test' split; pass --subjects")
    subjects = list(subjects)
    source = source or _default_source(ds, manifest, run_source)
    if source not in INPUT_SOURCES:
        raise ValueError(f"source must be 'gt' or 'detected', got {source!r}")

    t3 = read_poses3d(ds, subjects)
    if t3.num_rows == 0:
        raise DatasetError(f"{ds / 'poses3d'}: no rows for subject(s) {', '.join(subjects)}")
    if ref_col not in t3.column_names:
        raise DatasetError(f"{ds / 'poses3d'}: reference column {ref_col!r} (manifest 'evaluation') is missing")
    real_src, pseudo = _reference_rig(ds, manifest, t3, subjects)
    gt_world = joints_to_numpy(t3.column(ref_col), 3).astype(np.float64)
    k3 = pd.DataFrame({k: t3.column(k).to_numpy(zero_copy_only=False) for k in KEYS})
    k3["row3"] = np.arange(len(k3))
    invalid = k3.iloc[:0]
    if "valid" in t3.column_names:
        valid = t3.column("valid").to_numpy(zero_copy_only=False).astype(bool)
        invalid, k3 = k3[~valid], k3[valid]
    scene = t3.column("scene").to_numpy(zero_copy_only=False) if "scene" in t3.column_names else None

    srcs = [source] + (["virtual"] if cameras == "all" else [])
    t2 = read_poses2d(ds, subjects, columns=KEYS + ["camera", "joints2d", "source", "raw_name"], source=srcs)
    if t2.num_rows == 0:
        raise DatasetError(f"{ds / 'poses2d'}: no {source!r} 2D rows for subject(s) {', '.join(subjects)}")
    k2 = pd.DataFrame({k: t2.column(k).to_numpy(zero_copy_only=False) for k in KEYS + ["camera", "source", "raw_name"]})
    k2["row2"] = np.arange(len(k2))
    m = k2.merge(k3, on=KEYS, how="inner")
    n_invalid = len(k2.merge(invalid[KEYS], on=KEYS, how="inner")) if len(invalid) else 0
    n_unmatched = len(k2) - len(m) - n_invalid
    x2d_all = joints_to_numpy(t2.column("joints2d"), 2).astype(np.float64)

    cams = read_cameras(ds, source=[real_src] + (["virtual"] if cameras == "all" else []), subjects=subjects)
    by_key = {(c.subject, c.camera, "virtual" if c.source == "virtual" else "real"): c for c in cams}
    parts, ctx = [], []
    groups = ["subject", "camera", "source"]
    all2d = dict(iter(k2.groupby(groups, sort=True)))
    n_ctx = n_seq = 0
    for (subj, cam_id, src), g in m.groupby(groups, sort=True):
        kind = "virtual" if src == "virtual" else "real"
        cam = by_key.get((subj, cam_id, kind))
        if cam is None:
            raise DatasetError(
                f"{ds / 'cameras.parquet'}: no {'virtual' if kind == 'virtual' else real_src} "
                f"calibration for camera {cam_id!r} of {subj}"
            )
        # context: every 2D row of this camera (also frames without a scored 3D pose), sequence by sequence in
        # frame order, for temporal models; ``ctx_row`` places each scored row in it
        c, seq = _sequences(all2d[(subj, cam_id, src)])
        seq = seq + n_seq
        n_seq = int(seq.max()) + 1
        pos = pd.Series(np.arange(len(c)) + n_ctx, index=c["row2"].to_numpy())
        ctx.append(
            dict(
                x2d=fill_invalid_rows(undistort_pixels(x2d_all[c["row2"].to_numpy()], cam), seq),
                K=np.broadcast_to(cam.intrinsics, (len(c), 4)),
                seq=seq,
                frame=c["frame"].to_numpy(),
            )
        )
        g = g.assign(_pos=pos.loc[g["row2"].to_numpy()].to_numpy()).sort_values("_pos")
        r2, r3, row = g["row2"].to_numpy(), g["row3"].to_numpy(), g["_pos"].to_numpy()
        x = undistort_pixels(x2d_all[r2], cam)
        y = world_to_camera(gt_world[r3], cam.R, cam.t)
        parts.append(
            dict(
                x2d=x,
                K=np.broadcast_to(cam.intrinsics, (len(g), 4)),
                gt=y,
                subject=g["subject"].to_numpy(),
                action=g["action"].to_numpy(),
                camera=np.full(len(g), cam_id, object),
                frame=g["frame"].to_numpy().astype(np.int64),
                ctx_row=row,
                seq=np.asarray(ctx[-1]["seq"])[row - n_ctx],
                scene=scene[r3] if scene is not None else None,
            )
        )
        n_ctx += len(c)
    if not parts:
        raise DatasetError(f"{ds}: no 2D rows of subject(s) {', '.join(subjects)} match a 3D pose")
    out = {
        k: np.concatenate([p[k] for p in parts])
        for k in ("x2d", "K", "gt", "subject", "action", "camera", "frame", "seq", "ctx_row")
    }
    out["scene"] = np.concatenate([p["scene"] for p in parts]) if scene is not None else None
    out["context"] = {k: np.concatenate([c[k] for c in ctx]) for k in ("x2d", "K", "seq", "frame")}
    # poses with a missing 2D joint (keypoint datasets) or a joint the triangulation could not reconstruct (NaN)
    # cannot be scored: they are left out and counted as invalid (the temporal context keeps every 2D row, a
    # missing keypoint's frame filled as augment fills the training sequences: fill_invalid_rows)
    fin = np.isfinite(out["gt"]).all((1, 2)) & np.isfinite(out["x2d"]).all((1, 2))
    if not fin.all():
        n_invalid += int((~fin).sum())
        out = {k: (v[fin] if isinstance(v, np.ndarray) else v) for k, v in out.items()}
    out.update(
        root=root,
        source=source,
        subjects=subjects,
        n_unmatched=int(n_unmatched),
        n_invalid=n_invalid,
        reference_column=ref_col,
        pck_joints=ev.get("pck_joints"),
        pseudo_ground_truth=pseudo,
    )
    return out


def _reference_rig(ds, manifest: dict, t3, subjects) -> tuple[str, bool]:
    """(camera source of the real views, whether the reference 3D is triangulated pseudo ground truth).

    Triangulated 3D (poses3d ``source`` = "triangulated", ``mvtools triangulate``) lives in the frame of the rig it
    was triangulated with (the manifest's ``triangulation`` entry; usually ``estimated``), so the real views are
    moved into camera frames with that rig."""
    if "source" not in t3.column_names or "triangulated" not in set(t3.column("source").unique().to_pylist()):
        return "given", False
    tri = (manifest.get("triangulation") or {}).get("subjects") or {}
    srcs = {tri.get(s, {}).get("extrinsics", "estimated") for s in subjects}
    if len(srcs) > 1:
        raise DatasetError(
            f"{Path(ds) / 'manifest.json'}: subjects {subjects} were triangulated with different "
            "rigs; evaluate them separately"
        )
    log(
        "evaluate: the reference 3D is TRIANGULATED from the dataset's own 2D detections (pseudo ground truth, "
        "not a measurement): errors include the triangulation's and are optimistic on the training subjects"
    )
    return srcs.pop(), True


def _pooled(labels: np.ndarray, e1: np.ndarray, e2: np.ndarray, jerr: np.ndarray, vel=None) -> dict:
    """Per label: MPJPE and P-MPJPE (mm, pooled over poses), PCK@150 and AUC (percent) from the joint errors
    ``jerr`` (N, J') of the joints the protocol scores, the pose count, and MPJVE (mm/frame) from ``vel`` =
    (velocity errors (M,), their rows (M,)) of :func:`~mvtools.evaluate.metrics.velocity_errors`."""
    out = {}
    for lab in sorted(set(labels.tolist())):
        sel = labels == lab
        je = jerr[sel].reshape(-1)
        curve = (je[None, :] < AUC_THRESHOLDS[:, None]).mean(1) * 100.0
        out[str(lab)] = {
            "mpjpe": float(e1[sel].mean()),
            "p_mpjpe": float(e2[sel].mean()),
            "pck150": float((je < 150.0).mean() * 100.0),
            "auc": float(curve.mean()),
            "n": int(sel.sum()),
        }
        if vel is not None:
            ve = vel[0][sel[vel[1]]]
            out[str(lab)]["mpjve"] = float(ve.mean()) if len(ve) else None
    return out


def evaluate_run(
    run,
    ds,
    subjects=None,
    source: str | None = None,
    cameras: str = "real",
    checkpoint: str = "best",
    device: str = DEFAULT_DEVICE,
    test_flip: bool | None = None,
) -> dict:
    """Protocol #1/#2 errors (mm), PCK@150 mm and AUC (percent) of ``run``'s lifting branch on ``ds``.

    ``subjects`` default to the manifest's test split, ``source`` ('detected' | 'gt') to the 2D source the run was
    trained on (else detected when present), ``cameras`` 'real' | 'all', ``test_flip`` flip averaging (None: the
    run's ``--test-flip``; the JSON's ``test_flip`` is the setting used). Keys: ``mpjpe`` / ``p_mpjpe`` (mean over
    all poses), ``mpjpe_action_mean`` / ``p_mpjpe_action_mean`` (mean of the per-action errors, VideoPose3D's
    "Avg"), ``n_mpjpe``, ``n_poses``, ``mpjve`` (mean per-joint velocity error, mm per frame, over consecutive
    scored frames of a sequence, VideoPose3D's definition) and ``n_velocities``, ``per_action`` {action: {mpjpe,
    p_mpjpe, mpjve, n}}, ``per_camera``, ``per_subject``, ``pck150``, ``auc`` (and ``per_scene`` when poses3d has
    a ``scene`` column). Temporal runs lift every camera's whole 2D sequences (also frames without a scored 3D
    pose) in one padded pass per sequence.
    """
    import torch

    from mvtools.train.inference import lift_2d, load_run

    device = resolve_device(device)
    loaded = load_run(run, checkpoint, device, test_flip)
    v = evaluation_views(ds, subjects, source, cameras, run_source=loaded.data.get("source2d"))
    if loaded.lift.receptive_field() > 1:  # temporal: one padded pass over every whole 2D sequence
        c = v["context"]
        pred = lift_2d(
            loaded.lift,
            torch.from_numpy(c["x2d"]).float(),
            torch.from_numpy(c["K"].copy()).float(),
            device,
            sequence=c["seq"],
            frame=c["frame"],
        )[v["ctx_row"]]
    else:
        pred = lift_2d(loaded.lift, torch.from_numpy(v["x2d"]).float(), torch.from_numpy(v["K"].copy()).float(), device)
    r = v["root"]
    pred = pred - pred[:, r : r + 1]
    gt = v["gt"] - v["gt"][:, r : r + 1]
    e1, e2 = mpjpe_per_pose(pred, gt), p_mpjpe_per_pose(pred, gt)
    jerr = joint_errors(pred, gt)
    pj = v["pck_joints"] if v["pck_joints"] is not None else list(range(jerr.shape[1]))
    sj = jerr[:, pj]  # the joints PCK/AUC score (MPI-INF-3DHP's official script: 14 of the 17)
    vel = velocity_errors(pred, gt, v["seq"], v["frame"])
    per_action = _pooled(v["action"], e1, e2, sj, vel)
    res = {
        "mvtools_output": "evaluation",
        "run": str(Path(run)),
        "dataset": str(Path(ds)),
        "checkpoint": loaded.checkpoint,
        "test_flip": loaded.config.test_flip,
        "subjects": v["subjects"],
        "source": v["source"],
        "cameras": cameras,
        "root_joint": r,
        "reference_column": v["reference_column"],
        "reference": "triangulated 3D (pseudo ground truth)" if v["pseudo_ground_truth"] else "dataset 3D",
        "units": {"errors": "mm", "mpjve": "mm per frame", "pck150": "percent", "auc": "percent"},
        "mpjpe": float(e1.mean()),
        "p_mpjpe": float(e2.mean()),
        "n_mpjpe": float(n_mpjpe_per_pose(pred, gt).mean()),
        "mpjpe_action_mean": float(np.mean([a["mpjpe"] for a in per_action.values()])),
        "p_mpjpe_action_mean": float(np.mean([a["p_mpjpe"] for a in per_action.values()])),
        "mpjve": float(vel[0].mean()) if len(vel[0]) else None,
        "n_velocities": int(len(vel[0])),
        "n_poses": int(len(e1)),
        "n_unmatched_2d": v["n_unmatched"],
        "pck150": pck(pred[:, pj], gt[:, pj], 150.0),
        "auc": auc(pred[:, pj], gt[:, pj]),
        "pck_joints": pj,
        "pck150_all_joints": pck(pred, gt, 150.0),
        "auc_all_joints": auc(pred, gt),
        "per_joint_mpjpe": jerr.mean(0).tolist(),
        "per_action": per_action,
        "per_camera": _pooled(v["camera"], e1, e2, sj, vel),
        "per_subject": _pooled(v["subject"], e1, e2, sj, vel),
        "n_invalid_frames": v["n_invalid"],
    }
    if v["scene"] is not None:
        res["per_scene"] = _pooled(v["scene"], e1, e2, sj)
    if v["n_invalid"]:
        log(
            f"evaluate: {v['n_invalid']} 2D rows belong to frames marked invalid (column 'valid') or lack a 2D or "
            "3D joint, and were left out"
        )
    if v["n_unmatched"]:
        log(f"evaluate: {v['n_unmatched']} 2D rows have no matching 3D pose and were skipped")
    return res


def describe_checkpoint(ck: dict) -> str:
    """One line: which checkpoint was evaluated and how it was chosen."""
    if not isinstance(ck, dict):
        return f"checkpoint: {ck}"
    sel = ck.get("selection") or {}
    how = sel.get("computed_on") or sel.get("metric", "unknown")
    if sel.get("value") is not None:
        how = f"{sel['metric']} {sel['value']:.4g} {sel.get('unit', '')}, {how}"
    return f"checkpoint: {ck.get('path')} (epoch {ck.get('epoch')}; chosen by: {how})"


def format_table(res: dict) -> str:
    """The per-action table (mm) printed by ``mvtools evaluate``."""
    w = max([len(a) for a in res["per_action"]] + [22])
    lines = [f"{'action':<{w}} {'poses':>8} {'MPJPE':>8} {'P-MPJPE':>8}"]
    for a, d in res["per_action"].items():
        lines.append(f"{a:<{w}} {d['n']:>8d} {d['mpjpe']:>8.1f} {d['p_mpjpe']:>8.1f}")
    lines.append("-" * len(lines[0]))
    lines.append(
        f"{'mean over actions':<{w}} {res['n_poses']:>8d} {res['mpjpe_action_mean']:>8.1f} "
        f"{res['p_mpjpe_action_mean']:>8.1f}"
    )
    lines.append(f"{'mean over poses':<{w}} {res['n_poses']:>8d} {res['mpjpe']:>8.1f} {res['p_mpjpe']:>8.1f}")
    nj = len(res["pck_joints"])
    other = (
        f" [all {len(res['per_joint_mpjpe'])} joints: PCK {res['pck150_all_joints']:.1f} %, AUC "
        f"{res['auc_all_joints']:.1f} %]"
        if nj != len(res["per_joint_mpjpe"]) and "pck150_all_joints" in res
        else ""
    )
    mpjve = f", MPJVE {res['mpjve']:.2f} mm/frame" if res.get("mpjve") is not None else ""
    lines.append(
        f"PCK@150mm {res['pck150']:.1f} %, AUC {res['auc']:.1f} % ({nj} joints){other}, "
        f"N-MPJPE {res['n_mpjpe']:.1f} mm{mpjve} "
        f"({res['source']} 2D, {res['cameras']} cameras, subjects {', '.join(res['subjects'])}"
        f"{', test-time flip averaging' if res.get('test_flip') else ''})"
    )
    lines.append(describe_checkpoint(res["checkpoint"]))
    if res.get("reference", "dataset 3D") != "dataset 3D":
        lines.append(f"reference: {res['reference']}, not measured 3D")
    return "\n".join(lines)


def write_evaluation(run, ds, out, overwrite: bool = False, **options) -> dict:
    """:func:`evaluate_run` (``options`` are its keywords) with the results written to the JSON file ``out``.

    ``out`` is checked and locked before the work and written atomically after it. An existing ``out`` is
    replaced only with ``overwrite``, and only if it is an earlier mvtools evaluation JSON; it may lie inside the
    run directory (``RUN/eval.json``), where nothing else can be replaced. Returns the results."""
    from mvtools.io import claim_output, write_json_atomic

    with claim_output(out, "evaluation", (), overwrite, file=True):
        res = evaluate_run(run, ds, **options)
        write_json_atomic(out, res)
    return res
