"""``mvtools triangulate``: 3D joints from the 2D detections of a calibrated rig (no 3D labels needed).

Per joint and frame (all vectorised over frames x joints; loops run over view pairs only):

1. **RANSAC over views** (exhaustive: every pair of views that see the joint is a hypothesis, at most 45 for 10
   cameras): the pair's confidence-weighted linear (DLT) triangulation (``geometry.triangulate``) is reprojected
   into every view; views within ``threshold_px`` and in front of the camera are its inliers. The hypothesis with
   the largest summed confidence of inliers wins (ties: smaller summed error). A view with a wrong or left/right
   swapped detection of that joint, or a different person, disagrees with the others and drops out.
2. **DLT on all inliers**, weighted by confidence.
3. **Refinement by reprojection**: Gauss-Newton on the confidence-weighted squared reprojection error in pixels
   over the inlier views (5 iterations), then the inliers are re-evaluated once with the refined point.

A joint seen (confidence >= ``min_confidence``) by fewer than ``min_views`` views, or whose best hypothesis has
fewer than ``min_views`` inliers, is NaN. Output per joint: position (world frame of the rig, mm), reprojection
error (px, mean over inlier views, undistorted pixels) and number of inlier views.

Written to ``poses3d/subject=S/triangulated-0.parquet`` with the poses3d columns plus ``source`` ("triangulated"),
``reprojection_error`` (float32[17], px) and ``views`` (int8[17]); see docs/data-model.md.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mvtools.calibration.geometry import projection_matrices, triangulate
from mvtools.calibration.views import CalibrationError, load_views
from mvtools.camera import has_extrinsics
from mvtools.dataset import (
    POSES3D_SCHEMA,
    DatasetError,
    fsl,
    read_cameras,
    read_manifest,
    read_poses2d,
    rig,
    write_manifest,
)
from mvtools.io import OutputError, claim_output, pause_point, staged_update, write_table_atomic
from mvtools.progress import log, progress
from mvtools.skeleton import H36M17_NAMES, NUM_JOINTS, bone_lengths

SOURCE = "triangulated"
EXTRINSICS = ("auto", "estimated", "given")
SOURCES2D = ("detected", "gt")
#: poses3d schema of triangulated rows: the standard columns, then source, reprojection error (px), inlier views
TRIANGULATED_SCHEMA = pa.schema(
    list(POSES3D_SCHEMA)
    + [
        ("source", pa.string()),
        ("reprojection_error", pa.list_(pa.float32(), NUM_JOINTS)),
        ("views", pa.list_(pa.int8(), NUM_JOINTS)),
    ]
)
#: plausible adult thigh (hip - knee) length, mm; a median outside it means a wrong scale or rig
THIGH_RANGE_MM = (250.0, 700.0)


def _reproject(X, R, t):
    """X (N, 3) -> normalised projections (N, V, 2), depths (N, V), camera-frame points (N, V, 3)."""
    Xc = np.einsum("vij,nj->nvi", R, X) + t[None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return Xc[..., :2] / Xc[..., 2:3], Xc[..., 2], Xc


def _errors_px(X, xn, R, t, f):
    proj, depth, _ = _reproject(X, R, t)
    err = np.linalg.norm(proj - xn, axis=-1) * f[None]
    return np.where(np.isfinite(err), err, np.inf), depth


def refine(X, xn, w, R, t, f, iters: int = 5):
    """Gauss-Newton on sum_v w_v f_v^2 |pi(R_v X + t_v) - x_v|^2 for many points at once.
    X (N, 3), xn (N, V, 2) normalised, w (N, V) weights (0 = unused), R (V, 3, 3), t (V, 3), f (V,) px."""
    X = X.copy()
    ok = np.isfinite(X).all(1)
    wf = (w * f[None] ** 2)[..., None, None]  # (N, V, 1, 1)
    x = np.where(np.isfinite(xn), xn, 0.0)
    for _ in range(iters):
        proj, depth, Xc = _reproject(np.where(ok[:, None], X, 0.0), R, t)
        z = np.where(np.abs(depth) > 1e-9, depth, 1e-9)
        dpi = np.zeros(Xc.shape[:2] + (2, 3))
        dpi[..., 0, 0] = 1 / z
        dpi[..., 1, 1] = 1 / z
        dpi[..., 0, 2] = -Xc[..., 0] / z**2
        dpi[..., 1, 2] = -Xc[..., 1] / z**2
        Jm = dpi @ R[None]  # (N, V, 2, 3)
        r = np.where(np.isfinite(proj), proj - x, 0.0)[..., None]  # (N, V, 2, 1)
        wv = np.where(w[..., None, None] > 0, wf, 0.0)
        A = (np.swapaxes(Jm, -1, -2) @ (wv * Jm)).sum(1)  # (N, 3, 3)
        b = (np.swapaxes(Jm, -1, -2) @ (wv * r)).sum(1)[..., 0]  # (N, 3)
        good = ok & (np.linalg.det(A) > 1e-12 * np.abs(A).max(axis=(1, 2)).clip(1e-300) ** 3)
        if not good.any():
            break
        step = np.zeros_like(X)
        step[good] = np.linalg.solve(A[good], b[good][..., None])[..., 0]
        X = X - step
    return X


def triangulate_robust(xn, conf, R, t, f, threshold_px: float = 15.0, min_views: int = 2, iters: int = 5):
    """Robust multi-view triangulation of N points (see the module docstring).

    xn (N, V, 2) undistorted normalised coordinates (NaN = not seen), conf (N, V) weights (0 = not seen),
    R (V, 3, 3), t (V, 3) world->camera, f (V,) focal lengths px (to measure errors in px) ->
    X (N, 3) world, err (N,) mean reprojection error over inlier views px, inliers (N, V) bool.
    """
    xn = np.asarray(xn, np.float64)
    w = np.where(np.isfinite(xn).all(-1), np.asarray(conf, np.float64), 0.0)
    N, V = w.shape
    P = projection_matrices(R, t)
    seen = w > 0
    best_score = np.full(N, -np.inf)
    best_err = np.full(N, np.inf)
    best_inl = np.zeros((N, V), bool)
    for a, b in itertools.combinations(range(V), 2):
        m = seen[:, a] & seen[:, b]
        if not m.any():
            continue
        idx = np.flatnonzero(m)
        wp = np.zeros((len(idx), V))
        wp[:, a], wp[:, b] = w[idx, a], w[idx, b]
        Xp = triangulate(xn[idx], P, wp)
        err, depth = _errors_px(Xp, xn[idx], R, t, f)
        inl = seen[idx] & (err < threshold_px) & (depth > 0)
        score = (w[idx] * inl).sum(1)
        serr = np.where(inl, err, 0.0).sum(1)
        better = (inl.sum(1) >= 2) & (
            (score > best_score[idx] + 1e-9) | ((np.abs(score - best_score[idx]) <= 1e-9) & (serr < best_err[idx]))
        )
        j = idx[better]
        best_score[j], best_err[j], best_inl[j] = score[better], serr[better], inl[better]
    X = np.full((N, 3), np.nan)
    ok = best_inl.sum(1) >= min_views
    if ok.any():
        wi = np.where(best_inl[ok], w[ok], 0.0)
        X0 = triangulate(xn[ok], P, wi)
        X1 = refine(X0, xn[ok], wi, R, t, f, iters)
        err, depth = _errors_px(X1, xn[ok], R, t, f)
        inl = seen[ok] & (err < threshold_px) & (depth > 0)
        redo = (inl != best_inl[ok]).any(1) & (inl.sum(1) >= min_views)
        if redo.any():  # the refined point changed the inlier set: one more solve on the new set
            wr = np.where(inl[redo], w[ok][redo], 0.0)
            X1[redo] = refine(triangulate(xn[ok][redo], P, wr), xn[ok][redo], wr, R, t, f, iters)
            err[redo], depth[redo] = _errors_px(X1[redo], xn[ok][redo], R, t, f)
            inl[redo] = seen[ok][redo] & (err[redo] < threshold_px) & (depth[redo] > 0)
        fine = inl.sum(1) >= min_views
        X[np.flatnonzero(ok)[fine]] = X1[fine]
        best_inl[ok] = inl & fine[:, None]
        e = np.full(N, np.nan)
        e[np.flatnonzero(ok)[fine]] = (np.where(inl, err, 0.0).sum(1) / np.maximum(inl.sum(1), 1))[fine]
    else:
        e = np.full(N, np.nan)
    best_inl[~np.isfinite(X).all(1)] = False
    return X, e, best_inl


# ----------------------------------------------------------------------------- dataset level
def _rig_for(ds, cams, subject: str, extrinsics: str):
    est, given = rig(cams, subject, "estimated"), rig(cams, subject, "given")
    if extrinsics == "auto":
        extrinsics = "estimated" if est else "given"
    use = est if extrinsics == "estimated" else given
    cam_file = Path(ds) / "cameras.parquet"
    if extrinsics == "estimated" and not use:
        raise CalibrationError(
            f"{cam_file}: no estimated cameras for subject {subject}; run "
            f"`mvtools calibrate --from-joints {ds} --scale body` first"
        )
    if extrinsics == "given" and not has_extrinsics(list(use.values())):
        raise CalibrationError(
            f"{cam_file}: the given cameras of {subject} carry no extrinsics (intrinsics only); "
            f"run `mvtools calibrate --from-joints {ds} --scale body` first"
        )
    return extrinsics, use


def _raw_names(ds, subject: str, source: str) -> dict:
    t = read_poses2d(ds, [subject], columns=["action", "subaction", "raw_name"], source=source)
    g = t.group_by(["action", "subaction"]).aggregate([("raw_name", "min")]).to_pydict()
    return {(a, int(s)): r for a, s, r in zip(g["action"], g["subaction"], g["raw_name_min"], strict=True)}


def _measured_3d(ds, subject: str) -> list[Path]:
    d = Path(ds) / "poses3d" / f"subject={subject}"
    return [f for f in d.glob("*.parquet") if not f.name.startswith(f"{SOURCE}-")] if d.is_dir() else []


def triangulate_subject(
    ds,
    subject: str,
    cams,
    source: str | None,
    min_confidence: float,
    threshold_px: float,
    min_views: int,
    chunk: int = 200_000,
):
    """(table of triangulated rows, report entry) of one subject."""
    views, _ = load_views(ds, subject, cams, source, min_confidence, max_frames=None)
    ids = views.ids
    if len(ids) < 2:
        raise CalibrationError(
            f"{Path(ds) / 'poses2d'}: subject {subject} has confident 2D in {len(ids)} camera(s) "
            f"{ids}; triangulation needs two or more"
        )
    R = np.stack([np.asarray(c.R, float) for c in views.cameras])
    t = np.stack([np.asarray(c.t, float) for c in views.cameras])
    f = views.intrinsics[:, :2].mean(1)
    xn = views.normalized()
    F, V, J, _ = xn.shape
    obs = xn.transpose(0, 2, 1, 3).reshape(F * J, V, 2)
    w = views.conf.transpose(0, 2, 1).reshape(F * J, V)
    X = np.full((F * J, 3), np.nan)
    err = np.full(F * J, np.nan)
    nv = np.zeros(F * J, np.int8)
    for s in range(0, F * J, chunk):
        Xs, es, inl = triangulate_robust(obs[s : s + chunk], w[s : s + chunk], R, t, f, threshold_px, min_views)
        X[s : s + chunk], err[s : s + chunk], nv[s : s + chunk] = Xs, es, inl.sum(1)
    X, err, nv = X.reshape(F, J, 3), err.reshape(F, J), nv.reshape(F, J)
    seen = (views.conf > 0).sum(1)  # (F, J) views with the joint
    done = np.isfinite(X).all(-1)
    thigh = bone_lengths(X)[:, [1, 4]]
    med_thigh = float(np.nanmedian(thigh)) if np.isfinite(thigh).any() else float("nan")
    if np.isfinite(med_thigh) and not THIGH_RANGE_MM[0] <= med_thigh <= THIGH_RANGE_MM[1]:
        raise CalibrationError(
            f"{subject}: implausible triangulated 3D: median thigh length {med_thigh:.0f} mm (adult "
            f"{THIGH_RANGE_MM[0]:.0f}-{THIGH_RANGE_MM[1]:.0f} mm); the rig's scale or units are wrong "
            "(calibrate with --scale body, or check the TOML units)"
        )
    keys = views.frame_keys
    order = np.lexsort((keys[:, 2].astype(np.int64), keys[:, 1].astype(np.int64), keys[:, 0].astype(str)))
    raw = _raw_names(ds, subject, views.source)
    table = pa.Table.from_arrays(
        [
            pa.array(keys[order, 0].astype(str), pa.string()),
            pa.array(keys[order, 1].astype(np.int16)),
            pa.array([raw.get((a, int(s)), a) for a, s in keys[order, :2]], pa.string()),
            pa.array(keys[order, 2].astype(np.int32)),
            fsl(X[order].astype(np.float32)),
            pa.array(np.full(F, SOURCE, dtype=object), pa.string()),
            fsl(err[order].astype(np.float32)),
            fsl(nv[order], pa.int8()),
        ],
        schema=TRIANGULATED_SCHEMA,
    )
    e = err[done]
    entry = {
        "cameras": ids,
        "source2d": views.source,
        "frames": int(F),
        "joints_triangulated": round(float(done.mean()), 4) if F else 0.0,
        "frames_complete": int(done.all(1).sum()),
        "reprojection_error_px": {
            "median": _r(np.median(e)) if len(e) else None,
            "mean": _r(e.mean()) if len(e) else None,
            "p95": _r(np.percentile(e, 95)) if len(e) else None,
        },
        "views_rejected": round(float(1 - nv[done].sum() / max(seen[done].sum(), 1)), 4),
        "per_joint_reprojection_error_px": {
            n: _r(np.nanmedian(err[:, j])) if np.isfinite(err[:, j]).any() else None for j, n in enumerate(H36M17_NAMES)
        },
        "median_thigh_mm": _r(med_thigh),
    }
    return table, entry


def _r(x, nd=3):
    return None if x is None or not np.isfinite(x) else round(float(x), nd)


def triangulate_dataset(
    ds,
    subjects=None,
    extrinsics: str = "auto",
    source: str | None = None,
    min_confidence: float = 0.1,
    threshold_px: float = 15.0,
    min_views: int = 2,
    write: bool = True,
    overwrite: bool = False,
) -> dict:
    """Triangulate every subject's detected (or ``source``) 2D with its rig and store the 3D in ``ds``.

    ``extrinsics``: auto (estimated when the subject has them, else given) | estimated | given. Refuses a subject
    that already has measured 3D (non-triangulated poses3d files); replaces older triangulated rows only with
    ``overwrite``. The 3D files and the manifest are one atomic commit (:func:`mvtools.io.staged_update`).
    Returns a report (also stored as the manifest's ``triangulation`` entry).
    """
    ds = Path(ds)
    if extrinsics not in EXTRINSICS:
        raise ValueError(f"extrinsics must be one of {EXTRINSICS}, got {extrinsics!r}")
    if source is not None and source not in SOURCES2D:
        raise ValueError(f"source must be one of {SOURCES2D}, got {source!r}")
    if not 0 <= min_confidence <= 1 or threshold_px <= 0 or min_views < 2:
        raise ValueError("need 0 <= min_confidence <= 1, threshold_px > 0 and min_views >= 2")
    manifest = read_manifest(ds)
    cams = read_cameras(ds)
    d2 = ds / "poses2d"
    have = sorted(p.name.split("=", 1)[1] for p in d2.glob("subject=*") if p.is_dir())
    subjects = [s for s in (manifest.get("subjects") or have) if s in have] if subjects is None else list(subjects)
    missing = [s for s in subjects if s not in have]
    if missing or not subjects:
        raise DatasetError(f"{d2}: no 2D poses for subject(s) {missing or subjects} (have {have})")
    for s in subjects:
        m = _measured_3d(ds, s)
        if m:
            raise DatasetError(
                f"{m[0]}: subject {s} already has measured 3D; `mvtools triangulate` writes 3D only "
                "into datasets without it (e.g. from `mvtools ingest keypoints`)"
            )
    t0 = time.perf_counter()
    tables, entries = {}, {}
    with progress(subjects, label="triangulate") as bar:
        for s in bar:
            used, rigc = _rig_for(ds, cams, s, extrinsics)
            tables[s], entries[s] = triangulate_subject(ds, s, rigc, source, min_confidence, threshold_px, min_views)
            entries[s]["extrinsics"] = used
            e = entries[s]
            log(
                f"triangulate {s}: {e['frames']} frames, {100 * e['joints_triangulated']:.1f}% of joints, median "
                f"reprojection error {e['reprojection_error_px']['median']} px, "
                f"{100 * e['views_rejected']:.1f}% of observations rejected as outliers"
            )
    settings = {
        "extrinsics": extrinsics,
        "source2d": source or "detected when present, else gt",
        "min_confidence": min_confidence,
        "threshold_px": threshold_px,
        "min_views": min_views,
    }
    report = {
        "when": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": settings,
        "units": {"joints3d": "mm, world frame of the rig used", "reprojection_error": "px (undistorted)"},
        "subjects": entries,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if write:
        with claim_output(ds, "dataset", in_place=True):
            _commit(ds, tables, entries, report, overwrite)
    return report


def _commit(ds: Path, tables: dict, entries: dict, report: dict, overwrite: bool) -> None:
    """Write the triangulated 3D of ``tables`` ({subject: table}) and the manifest entry as one atomic commit."""
    old_files = [f for s in tables for f in (ds / "poses3d" / f"subject={s}").glob(f"{SOURCE}-*.parquet")]
    if old_files and not overwrite:
        raise OutputError(f"{old_files[0]}: triangulated 3D exists already; pass --overwrite to replace it")
    with staged_update(ds, drop=[f.relative_to(ds) for f in old_files], copy=["manifest.json"]) as new:
        for s, tbl in tables.items():
            d = new / "poses3d" / f"subject={s}"
            d.mkdir(parents=True, exist_ok=True)
            write_table_atomic(tbl, d / f"{SOURCE}-0.parquet")
        pause_point("triangulate:3d-written")
        manifest = read_manifest(new)
        n3 = 0
        for f in (new / "poses3d").glob("subject=*/*.parquet"):
            n3 += pq.read_metadata(f).num_rows
        manifest.setdefault("rows", {})["poses3d"] = n3
        manifest["subjects"] = list(dict.fromkeys((manifest.get("subjects") or []) + list(tables)))
        old = (manifest.get("triangulation") or {}).get("subjects", {})
        manifest["triangulation"] = {
            **report,
            "subjects": {**{k: v for k, v in old.items() if k not in entries}, **entries},
        }
        write_manifest(new, manifest)


def is_triangulated(table: pa.Table) -> bool:
    """True when a poses3d table holds triangulated rows (its ``source`` column says so)."""
    return "source" in table.column_names and bool(pc.any(pc.equal(table["source"], SOURCE)).as_py())
