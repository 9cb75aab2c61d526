"""``calibrate_from_joints``: camera extrinsics of every subject's rig from its 2D joints alone.

Steps per subject (intrinsics from the dataset's cameras are assumed known; only extrinsics are estimated):
correspondences pooled over all synchronous frames (confidence filter, NaNs dropped, undistorted) ->
essential matrix of every camera pair (RANSAC or MAGSAC) with third-view disambiguation -> one incremental
rig relative to the reference camera -> bundle adjustment -> metric scale (baseline | given | body) ->
world frame (the given reference camera's pose when there is a given calibration, else the reference
camera's frame). Results go to ``cameras.parquet`` (``source="estimated"``), ``calibration_report.json`` and
the manifest's ``calibration`` entry. See docs/calibration.md.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from mvtools.calibration.bundle import bundle_adjust
from mvtools.calibration.rig import Rig, RigOptions, build_rig, estimate_pairs, motion_spread, robust_triangulate
from mvtools.calibration.scale import body_scale, given_scale
from mvtools.calibration.toml_io import read_aniposelib_toml, write_aniposelib_toml
from mvtools.calibration.views import CalibrationError, Views, load_views
from mvtools.camera import Camera, camera_center, has_extrinsics, relative_transform
from mvtools.dataset import (
    DatasetError,
    joints_to_numpy,
    producer,
    read_cameras,
    read_manifest,
    read_poses2d,
    replace_cameras,
    write_manifest,
)
from mvtools.io import OutputError, claim_output, pause_point, staged_update, write_json_atomic
from mvtools.progress import log, progress
from mvtools.rotations import angle_between_deg, rotation_angle_deg

REPORT_NAME = "calibration_report.json"
SCALES = ("baseline", "given", "body")


# ----------------------------------------------------------------------------- helpers
def subject_cameras(all_cams: list[Camera], subject: str, ds) -> dict[str, Camera]:
    """{id: Camera} with the intrinsics of ``subject``: its ``given`` rows, else its ``estimated`` rows."""
    for src in ("given", "estimated"):
        cams = {c.camera: c for c in all_cams if c.subject == subject and c.source == src}
        if cams:
            return cams
    raise CalibrationError(f"{Path(ds) / 'cameras.parquet'}: no cameras (intrinsics) for subject {subject}")


def output_path(path, subject: str, several: bool) -> Path:
    """``FILE`` for one subject; ``FILE`` with ``_<subject>`` before the suffix when there are several."""
    p = Path(path)
    return p.with_name(f"{p.stem}_{subject}{p.suffix}") if several else p


def _r(x, nd=4):
    return None if x is None or not np.isfinite(x) else round(float(x), nd)


def _sample(n: int, k: int, rng) -> np.ndarray:
    return np.arange(n) if n <= k else np.sort(rng.choice(n, k, replace=False))


# ----------------------------------------------------------------------------- one subject
def solve_rig(
    views: Views,
    reference: int,
    opts: RigOptions,
    refine: bool = True,
    ba_frames: int = 400,
    max_frames: int = 2000,
    loss_scale_px: float = 8.0,
) -> dict:
    """Rig of ``views`` in the reference camera's frame (unit = reference-partner distance).

    Returns {"rig": Rig (R, t after refinement), "views": the frames used, "ba": dict or None}.
    """
    rng = np.random.default_rng(opts.seed)
    multi = views.valid.any(-1).sum(1) >= 2
    if multi.sum() < opts.min_frames:
        raise CalibrationError(
            f"{views.subject}: only {int(multi.sum())} frames are seen by two or more cameras "
            f"with confident joints (need {opts.min_frames})"
        )
    fr = np.flatnonzero(multi)[_sample(int(multi.sum()), max_frames, rng)]
    v = views.subset(fr) if len(fr) < len(views.uv) else views
    pairs = estimate_pairs(v, opts)
    rig = build_rig(v, reference, opts, pairs)
    ba = None
    if refine:
        t0 = time.perf_counter()
        sub = _sample(len(v.uv), ba_frames, rng)
        xn = v.normalized()[sub]
        F, V, J, _ = xn.shape
        obs = xn.transpose(0, 2, 1, 3).reshape(F * J, V, 2)
        w = v.conf[sub].transpose(0, 2, 1).reshape(F * J, V)
        f = float(np.mean(v.intrinsics[:, :2]))
        gate = 4 * opts.threshold_px / f
        X, wk = robust_triangulate(obs, w, rig.R, rig.t, gate)
        keep = np.isfinite(X).all(1)
        X, wk = X[keep], wk[keep]
        uv = v.uv[sub].transpose(0, 2, 1, 3).reshape(F * J, V, 2)[keep]
        pt, cam = np.nonzero(wk > 0)
        if len(pt) < opts.min_points:
            raise CalibrationError(f"{views.subject}: only {len(pt)} observations left for bundle adjustment")
        res = bundle_adjust(
            rig.R,
            rig.t,
            X,
            pt,
            cam,
            uv[pt, cam],
            wk[pt, cam],
            v.intrinsics,
            reference,
            rig.partner,
            f_scale_px=loss_scale_px,
            gate_px=4 * opts.threshold_px,
        )
        rig.R, rig.t = res.R, res.t
        ba = {
            "rms_px_before": _r(res.rms_before, 3),
            "rms_px_after": _r(res.rms_after, 3),
            "robust_cost_before": _r(res.cost_before, 4),
            "robust_cost_after": _r(res.cost_after, 4),
            "inlier_fraction": _r(res.inlier_fraction),
            "frames": int(F),
            "points": res.points,
            "observations": res.observations,
            "evaluations": res.nfev,
            "seconds": round(time.perf_counter() - t0, 3),
        }
    return {"rig": rig, "views": v, "ba": ba}


def _pair_rows(
    views: Views, rig: Rig, cams_est: list[Camera], given: dict[str, Camera] | None, threshold_px: float
) -> list[dict]:
    """Per camera pair: epipolar stage diagnostics and errors of the final rig against ``given``."""
    xn = views.normalized()
    rows = []
    f = float(np.mean(views.intrinsics[:, :2]))
    for (a, b), pe in rig.pairs.items():
        ca, cb = cams_est[a], cams_est[b]
        R_ab, t_ab = relative_transform(ca.R, ca.t, cb.R, cb.t)
        row = {
            "cam_a": ca.camera,
            "cam_b": cb.camera,
            "frames": pe.frames,
            "correspondences": pe.points,
            "status": "ok" if pe.usable else ("not estimated" if pe.pose is None else "warning"),
            "warning": pe.warning,
            "baseline_mm": _r(np.linalg.norm(t_ab), 2),
        }
        if pe.pose is not None:
            row.update(
                inliers=int(pe.pose.inliers.sum()),
                inlier_ratio=_r(pe.pose.inlier_ratio),
                cheirality={
                    "candidate": pe.pose.candidate,
                    "cheirality_only": pe.pose.cheirality_candidate,
                    "third_view_used": "third_view" in pe.pose.scores,
                    **pe.pose.scores,
                },
            )
        # reprojection RMS of the pair's correspondences, two-view triangulation with the final rig (px)
        m = views.valid[:, a] & views.valid[:, b]
        if m.sum():
            o = np.stack([xn[:, a][m], xn[:, b][m]], 1)
            R2 = np.stack([ca.R, cb.R])
            t2 = np.stack([ca.t, cb.t])
            X, wk = robust_triangulate(o, np.ones(o.shape[:2]), R2, t2, threshold_px / f, rounds=0)
            proj = np.einsum("vij,nj->nvi", R2, X) + t2
            with np.errstate(invalid="ignore", divide="ignore"):
                e = np.linalg.norm((proj[..., :2] / proj[..., 2:3] - o) * f, axis=-1)
            inl = pe.pose.inliers if pe.pose is not None else np.isfinite(e).all(1)
            row["rms_px"] = _r(np.sqrt(np.nanmean(e[inl] ** 2)) if inl.any() else np.nan, 3)
        if given is not None and ca.camera in given and cb.camera in given:
            ga, gb = given[ca.camera], given[cb.camera]
            Rg, tg = relative_transform(ga.R, ga.t, gb.R, gb.t)
            row["rotation_error_deg"] = _r(rotation_angle_deg(R_ab, Rg))
            row["translation_direction_error_deg"] = _r(angle_between_deg(t_ab, tg))
            row["baseline_given_mm"] = _r(np.linalg.norm(tg), 2)
            row["baseline_error_mm"] = _r(np.linalg.norm(t_ab) - np.linalg.norm(tg), 2)
            if pe.pose is not None:  # the independent pairwise estimate, before the rig and refinement
                row["pairwise_rotation_error_deg"] = _r(rotation_angle_deg(pe.pose.R, Rg))
                row["pairwise_translation_direction_error_deg"] = _r(angle_between_deg(-pe.pose.R.T @ pe.pose.t, tg))
        rows.append(row)
    return rows


def calibrate_subject(
    ds,
    subject: str,
    all_cams: list[Camera],
    source: str | None,
    reference_camera: str | None,
    scale: str,
    baseline_mm: float | None,
    baseline_camera: str | None,
    opts: RigOptions,
    refine: bool,
    min_confidence: float,
    ba_frames: int,
    max_frames: int,
    loss_scale_px: float,
) -> tuple[list[Camera], dict]:
    """Estimated cameras (world frame, mm) and the report entry of one subject."""
    t0 = time.perf_counter()
    intr = subject_cameras(all_cams, subject, ds)
    given_list = [c for c in all_cams if c.subject == subject and c.source == "given"]
    given = {c.camera: c for c in given_list} if has_extrinsics(given_list) else None
    views, n_multi = load_views(ds, subject, intr, source, min_confidence, max_frames, opts.seed)
    ids = views.ids
    if len(ids) < 2:
        raise CalibrationError(
            f"{Path(ds) / 'poses2d'}: subject {subject} has confident 2D joints in "
            f"{len(ids)} camera(s) {ids}; calibration needs two or more"
        )
    ref_id = reference_camera if reference_camera is not None else ids[0]
    if ref_id not in ids:
        raise CalibrationError(f"{ds}: reference camera {ref_id!r} has no 2D joints for {subject} (have {ids})")
    ref = ids.index(ref_id)
    sol = solve_rig(views, ref, opts, refine, ba_frames, max_frames, loss_scale_px)
    rig, v = sol["rig"], sol["views"]
    motion = min(motion_spread(views.uv[:, c]) for c in range(len(ids)))
    if motion < RELIABLE_MOTION:
        rig.warnings.append(
            f"{subject}: the person moves little (joints spread over {motion:.1%} of the body size over "
            f"{len(views.uv)} frames in the stillest camera; below {RELIABLE_MOTION:.0%} the estimate rests on few "
            f"distinct 3D points and can be degrees and tens of mm off): add clips with more movement, or give clips "
            f"of one performer in one rig one subject (ingest bvh --subject-from / --subject-map)"
        )

    # metric scale (mm per rig unit)
    C = camera_center(rig.R, rig.t)
    scale_info: dict = {"method": scale}
    if scale == "baseline":
        other = baseline_camera if baseline_camera is not None else next(i for i in ids if i != ref_id)
        if other not in ids or other == ref_id:
            raise ValueError(f"baseline camera {other!r} must be one of {ids} other than the reference {ref_id}")
        if baseline_mm is None or not baseline_mm > 0:
            raise ValueError("--scale baseline needs --baseline-mm > 0 (distance reference -> second camera, mm)")
        d = float(np.linalg.norm(C[ids.index(other)] - C[ref]))
        s = baseline_mm / d
        scale_info.update(value=s, cameras=[ref_id, other], baseline_mm=float(baseline_mm), uncertainty_rel=0.0)
    elif scale == "given":
        if given is None or any(i not in given for i in ids):
            raise CalibrationError(
                f"{Path(ds) / 'cameras.parquet'}: --scale given needs a given calibration with "
                f"distinct camera centres for all cameras of {subject}; use --scale baseline "
                "or --scale body"
            )
        s, spread = given_scale(C, np.array([given[i].C for i in ids]))
        scale_info.update(value=s, uncertainty_rel=spread)
    elif scale == "body":
        xn = v.normalized()
        F, V, J, _ = xn.shape
        f = float(np.mean(v.intrinsics[:, :2]))
        X, _ = robust_triangulate(
            xn.transpose(0, 2, 1, 3).reshape(F * J, V, 2),
            v.conf.transpose(0, 2, 1).reshape(F * J, V),
            rig.R,
            rig.t,
            opts.threshold_px / f,
        )
        try:
            info = body_scale(X.reshape(F, J, 3), seed=opts.seed)
        except ValueError as e:
            raise CalibrationError(f"{subject}: {e}") from None
        s = info.pop("value")
        scale_info.update(value=s, **info)
    else:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    scale_info["value"] = float(scale_info["value"])
    scale_info["unit"] = "mm per unit of the unscaled rig (unit = reference-partner distance)"

    # world frame: the given reference camera's pose when available
    if given is not None and ref_id in given:
        Rg, tg = given[ref_id].R, given[ref_id].t
        world = f"given calibration (reference camera {ref_id} placed at its given pose)"
    else:
        Rg, tg = np.eye(3), np.zeros(3)
        world = f"reference camera {ref_id} (R = I, t = 0)"
    R_w = rig.R @ Rg
    t_w = np.einsum("vij,j->vi", rig.R, tg) + s * rig.t
    est = [intr[i].with_extrinsics(R_w[k], t_w[k], source="estimated") for k, i in enumerate(ids)]

    pairs = _pair_rows(v, rig, est, given, opts.threshold_px)
    rot = [p["rotation_error_deg"] for p in pairs if p.get("rotation_error_deg") is not None]
    entry = {
        "source2d": views.source,
        "reference_camera": ref_id,
        "partner_camera": ids[rig.partner],
        "cameras": ids,
        "frames_total": int(n_multi),
        "frames_used": int(len(v.uv)),
        "world_frame": world,
        "scale": {k: (_r(x, 6) if isinstance(x, float) else x) for k, x in scale_info.items()},
        "bundle_adjustment": sol["ba"],
        "resection": {ids[c]: r for c, r in rig.resection.items()},
        "pairs": pairs,
        "max_rotation_error_deg": _r(max(rot)) if rot else None,
        "motion_spread": _r(motion, 4),
        "warnings": rig.warnings,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return est, entry


# ----------------------------------------------------------------------------- dataset level
def _subjects_with_2d(ds) -> list[str]:
    d = Path(ds) / "poses2d"
    if not d.is_dir():
        raise DatasetError(f"{d}: missing (is {ds} an mvtools dataset?)")
    found = sorted(p.name.split("=", 1)[1] for p in d.glob("subject=*") if p.is_dir())
    order = read_manifest(ds).get("subjects") or []
    return [s for s in order if s in found] + [s for s in found if s not in order]


def calibrate_from_joints(
    ds,
    subjects=None,
    source: str | None = None,
    reference_camera: str | None = None,
    scale: str = "given",
    baseline_mm: float | None = None,
    min_confidence: float = 0.3,
    refine: bool = True,
    method: str = "magsac",
    seed: int = 0,
    baseline_camera: str | None = None,
    threshold_px: float = 6.0,
    max_frames: int = 2000,
    ba_frames: int = 400,
    loss_scale_px: float = 8.0,
    export_toml=None,
    write: bool = True,
    overwrite: bool = False,
) -> dict:
    """Estimate every subject's camera extrinsics from its 2D joints and (``write``) store them in ``ds``.

    ``source`` gt|detected (default detected when present); ``reference_camera`` id (default the subject's
    first camera); ``scale`` baseline (with ``baseline_mm``, the distance reference -> ``baseline_camera``,
    default the next camera) | given | body; ``min_confidence`` 0..1; ``threshold_px`` the inlier threshold
    (undistorted px); ``max_frames`` frames sampled for the epipolar stage, ``ba_frames`` for bundle
    adjustment; ``export_toml`` an aniposelib TOML path (``_<subject>`` inserted before the suffix when there
    are several subjects). Returns the report dict (also written to ``ds/calibration_report.json``).
    All subjects succeed or nothing is written: cameras, report, manifest (and a TOML inside ``ds``) are one atomic
    commit; TOML files elsewhere are written (each atomically) right after it. Earlier estimated cameras of these
    subjects and existing TOML files are replaced only with ``overwrite``.
    """
    ds = Path(ds)
    read_manifest(ds)  # a clear error for a broken dataset before anything else
    claim = claim_output(ds, "dataset", in_place=True) if write else nullcontext()
    with claim:  # lock ds (and repair what a killed run left) from the checks to the commit
        return _calibrate_from_joints(
            ds,
            subjects,
            source,
            reference_camera,
            scale,
            baseline_mm,
            min_confidence,
            refine,
            method,
            seed,
            baseline_camera,
            threshold_px,
            max_frames,
            ba_frames,
            loss_scale_px,
            export_toml,
            write,
            overwrite,
        )


def _check_earlier(ds: Path, all_cams, subjects, export_toml, overwrite: bool, write: bool) -> None:
    if overwrite:
        return
    old = sorted({c.subject for c in all_cams if c.source == "estimated" and c.subject in subjects})
    if write and old:
        raise OutputError(
            f"{ds / 'cameras.parquet'}: holds earlier estimated cameras of {', '.join(old)}; pass "
            "--overwrite to replace them"
        )
    if export_toml is not None:
        for s in subjects:
            p = output_path(export_toml, s, len(subjects) > 1)
            if p.exists():
                raise OutputError(f"{p}: exists; pass --overwrite to replace it")


def _calibrate_from_joints(
    ds,
    subjects,
    source,
    reference_camera,
    scale,
    baseline_mm,
    min_confidence,
    refine,
    method,
    seed,
    baseline_camera,
    threshold_px,
    max_frames,
    ba_frames,
    loss_scale_px,
    export_toml,
    write,
    overwrite,
) -> dict:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if scale == "baseline" and (baseline_mm is None or not baseline_mm > 0):
        raise ValueError("--scale baseline needs --baseline-mm > 0 (distance reference -> second camera, mm)")
    if not 0 <= min_confidence <= 1:
        raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
    manifest = read_manifest(ds)
    all_cams = read_cameras(ds)
    avail = _subjects_with_2d(ds)
    subjects = avail if subjects is None else list(subjects)
    unknown = [s for s in subjects if s not in avail]
    if unknown:
        raise DatasetError(f"{ds / 'poses2d'}: no 2D joints for subject(s) {unknown} (have {avail})")
    if not subjects:
        raise DatasetError(f"{ds / 'poses2d'}: no subjects")
    _check_earlier(ds, all_cams, subjects, export_toml, overwrite, write)
    if source is None:  # never a silent switch to ground truth for some subjects
        from mvtools.calibration.views import default_source

        lack = [s for s in subjects if default_source(ds, s) != "detected"]
        if lack and len(lack) < len(subjects):
            raise DatasetError(
                f"{ds / 'poses2d'}: no detected 2D for subject(s) {', '.join(lack)} (the others have); "
                "pass --source gt to use ground-truth 2D, or ingest their detections"
            )
    opts = RigOptions(method=method, threshold_px=threshold_px, seed=seed)
    new_cams, entries = [], {}
    # one BLAS thread: the calibration's BLAS calls are vector-sized, so more threads mostly wait on each other
    with progress(subjects, label="calibrate") as bar, threadpool_limits(limits=1, user_api="blas"):
        for subj in bar:
            est, entry = calibrate_subject(
                ds,
                subj,
                all_cams,
                source,
                reference_camera,
                scale,
                baseline_mm,
                baseline_camera,
                opts,
                refine,
                min_confidence,
                ba_frames,
                max_frames,
                loss_scale_px,
            )
            for w in entry["warnings"]:
                log(f"warning: {w}")
            new_cams += est
            entries[subj] = entry
    when = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    settings = {
        "source2d": source or "detected when present, else gt",
        "reference_camera": reference_camera,
        "scale": scale,
        "baseline_mm": baseline_mm,
        "baseline_camera": baseline_camera,
        "min_confidence": min_confidence,
        "refine": refine,
        "method": method,
        "seed": seed,
        "threshold_px": threshold_px,
        "max_frames": max_frames,
        "ba_frames": ba_frames,
        "loss_scale_px": loss_scale_px,
    }
    report = {
        "format_version": 1,
        "created": when,
        "producer": producer(),
        "units": {"angles": "degrees", "lengths": "mm", "reprojection": "px (undistorted pinhole)"},
        "settings": settings,
        "subjects": entries,
    }
    meta = {
        s: {
            "adjusted": bool(refine),
            "error": (entries[s]["bundle_adjustment"] or {}).get("rms_px_after"),
            "created": when,
        }
        for s in subjects
    }
    if export_toml is not None:
        report["toml"] = [str(output_path(export_toml, s, len(subjects) > 1)) for s in subjects]
    if not write:
        if export_toml is not None:
            export_rig_toml(new_cams, export_toml, subjects, meta)
        return report
    old = {}
    rp = ds / REPORT_NAME
    if rp.exists():
        try:
            old = json.loads(rp.read_text()).get("subjects", {})
        except (json.JSONDecodeError, AttributeError, OSError):
            old = {}
    merged = {**{k: v for k, v in old.items() if k not in entries}, **entries}
    inside = export_toml is not None and Path(export_toml).absolute().is_relative_to(ds.absolute())
    with staged_update(ds, copy=["cameras.parquet", "manifest.json"]) as new:
        allc = replace_cameras(new, new_cams, "estimated", subjects)
        pause_point("calibrate:cameras-written")
        write_json_atomic(new / REPORT_NAME, {**report, "subjects": merged})
        manifest["calibration"] = {
            "when": when,
            "how": "from-joints",
            "subjects": subjects,
            "report": REPORT_NAME,
            "settings": settings,
        }
        manifest.setdefault("rows", {})["cameras"] = len(allc)
        write_manifest(new, manifest)
        if inside:
            export_rig_toml(new_cams, new / Path(export_toml).absolute().relative_to(ds.absolute()), subjects, meta)
        pause_point("calibrate:before-commit")
    if export_toml is not None and not inside:
        export_rig_toml(new_cams, export_toml, subjects, meta)
    return report


def export_rig_toml(cams: list[Camera], path, subjects: list[str], metadata: dict | None = None) -> list[str]:
    """Write one aniposelib TOML per subject (``_<subject>`` before the suffix when several); returns paths.
    ``metadata``: optional {subject: {key: value}} added to each file's ``[metadata]``."""
    out = []
    for s in subjects:
        cs = [c for c in cams if c.subject == s]
        p = output_path(path, s, len(subjects) > 1)
        meta = {
            "subject": s,
            "source": cs[0].source if cs else None,
            "mvtools": "calibrate --from-joints",
            **((metadata or {}).get(s) or {}),
        }
        write_aniposelib_toml(p, cs, meta)
        out.append(str(p))
    return out


#: ``calibrate --from-joints`` warns when the stillest camera's joint spread over time (``rig.motion_spread``, a
#: fraction of the body size) is below this; the pair estimate refuses below ``RigOptions.min_motion`` (2%).
RELIABLE_MOTION = 0.05
#: Person height (head top to ankles, mm) assumed when judging camera distances from the 2D joints.
PERSON_HEIGHT_MM = 1600.0
#: Imported cameras whose distance to the rig centre is off the distance implied by the person's image height by
#: more than this factor (either way) are refused: usually a TOML in metres or cm read as mm (or the reverse).
MAX_DISTANCE_FACTOR = 5.0
#: Imported rigs whose cameras are all closer together than this (mm) are refused (metres read as mm).
MIN_BASELINE_MM = 50.0


def check_toml_scale(ds, cams: list[Camera], subject: str, path) -> dict:
    """Sanity check of imported camera distances against the subject (aniposelib TOMLs carry no unit): the
    largest distance between camera centres must exceed :data:`MIN_BASELINE_MM`, and, where ``ds`` has 2D
    joints of ``subject`` in these cameras, the median camera distance to the rig centre must be within a factor
    :data:`MAX_DISTANCE_FACTOR` of the distance a 1.6 m person of that image height stands at. Returns the
    measured numbers; raises ValueError naming them and the fix (``--toml-units``)."""
    C = np.array([camera_center(c.R, c.t) for c in cams])
    base = float(max((np.linalg.norm(a - b) for a in C for b in C), default=0.0))
    if len(cams) > 1 and base < MIN_BASELINE_MM:
        raise ValueError(
            f"{path}: the cameras are at most {base:.3g} mm apart: a calibration in metres or cm read "
            f"as mm? pass --toml-units m (or cm)"
        )
    out = {"max_baseline_mm": base}
    if not (Path(ds) / "poses2d" / f"subject={subject}").is_dir():  # no 2D: only the baseline check applies
        return out
    t = read_poses2d(ds, [subject], columns=["camera", "joints2d"])
    by = {c.camera: c for c in cams}
    centre = C.mean(0)
    ratios = []
    cams_col = np.asarray(t.column("camera").to_pylist(), dtype=object)
    uv = joints_to_numpy(t.column("joints2d"), 2) if t.num_rows else np.zeros((0, 17, 2))
    for cid, c in by.items():
        sel = np.flatnonzero(cams_col == cid)[:2000]
        if not len(sel):
            continue
        with np.errstate(invalid="ignore"):
            h = np.nanmedian(np.nanmax(uv[sel, :, 1], 1) - np.nanmin(uv[sel, :, 1], 1))
        if not h > 1:
            continue
        implied = c.fy * PERSON_HEIGHT_MM / h
        ratios.append(float(np.linalg.norm(camera_center(c.R, c.t) - centre)) / implied)
    if ratios:
        r = float(np.median(ratios))
        out["distance_ratio"] = r
        if not 1 / MAX_DISTANCE_FACTOR <= r <= MAX_DISTANCE_FACTOR:
            raise ValueError(
                f"{path}: camera distances do not fit {subject}'s 2D joints: the cameras are {r:.3g} x as far from the "
                f"rig centre as a 1.6 m person of that image height would be; the TOML is probably in another unit "
                f"(aniposelib writes none): pass --toml-units m, cm or mm"
            )
    return out


def import_toml(
    ds, path, subject: str, source: str = "estimated", units: str | None = None, overwrite: bool = False
) -> list[Camera]:
    """Read an aniposelib TOML into ``ds``'s cameras table as ``subject``'s ``source`` rows (estimated by
    default, replacing older rows of that subject and source only with ``overwrite``; one atomic commit). TOML
    camera names must be the dataset's
    camera ids of that subject when it has any."""
    ds = Path(ds)
    if source not in ("estimated", "given"):
        raise ValueError(f"import source must be 'estimated' or 'given', got {source!r}")
    manifest = read_manifest(ds)
    cams = read_aniposelib_toml(path, subject=subject, source=source, units=units)
    known = {c.camera for c in read_cameras(ds) if c.subject == subject}
    if known:
        bad = [c.camera for c in cams if c.camera not in known]
        if bad:
            raise ValueError(f"{path}: camera name(s) {bad} are not cameras of {subject} in {ds} ({sorted(known)})")
    check_toml_scale(ds, cams, subject, path)
    with claim_output(ds, "dataset", in_place=True):
        if not overwrite and any(c.subject == subject and c.source == source for c in read_cameras(ds)):
            raise OutputError(
                f"{ds / 'cameras.parquet'}: holds {source} cameras of {subject} already; pass "
                "--overwrite to replace them"
            )
        with staged_update(ds, copy=["cameras.parquet", "manifest.json"]) as new:
            allc = replace_cameras(new, cams, source, [subject])
            manifest["calibration"] = {
                "when": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "how": "import-toml",
                "file": str(Path(path).absolute()),
                "subjects": [subject],
                "source": source,
            }
            manifest.setdefault("rows", {})["cameras"] = len(allc)
            write_manifest(new, manifest)
    return cams


def format_report(report: dict) -> str:
    """A plain-text table: one line per subject and camera pair."""
    head = (
        f"{'subject':<8} {'cam_a':<10} {'cam_b':<10} {'rot err':>8} {'t dir err':>9} {'base err':>9} "
        f"{'inliers':>8} {'rms px':>7}"
    )
    lines = [head, f"{'':<8} {'':<10} {'':<10} {'deg':>8} {'deg':>9} {'mm':>9} {'ratio':>8} {'':>7}"]
    fmt = lambda x, nd: "-" if x is None else f"{x:.{nd}f}"  # noqa: E731
    for s, e in report["subjects"].items():
        for p in e["pairs"]:
            lines.append(
                f"{s:<8} {p['cam_a']:<10} {p['cam_b']:<10} {fmt(p.get('rotation_error_deg'), 3):>8} "
                f"{fmt(p.get('translation_direction_error_deg'), 3):>9} "
                f"{fmt(p.get('baseline_error_mm'), 1):>9} {fmt(p.get('inlier_ratio'), 2):>8} "
                f"{fmt(p.get('rms_px'), 2):>7}"
            )
        ba = e.get("bundle_adjustment") or {}
        sc = e["scale"]
        unc = sc.get("uncertainty_rel")
        lines.append(
            f"{s:<8} BA rms px {fmt(ba.get('rms_px_before'), 2)} -> {fmt(ba.get('rms_px_after'), 2)}; "
            f"scale {sc['method']} {sc['value']:.2f} mm/unit"
            + (f" +- {100 * unc:.1f}%" if unc else "")
            + f"; world frame: {e['world_frame']}"
        )
    return "\n".join(lines)
