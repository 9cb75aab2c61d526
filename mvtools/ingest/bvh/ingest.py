"""``ingest_bvh``: BVH motion capture -> multi-view dataset (3D from FK, a camera rig, GT and detected 2D).

Per file: read, detect units, drop the converter's T-pose frame, resample to ``fps`` (slerp), FK, map to
the 17 H36M joints, place on the rig's floor (z = 0) centred on the capture centre with an optional
random yaw, project into every camera, drop frames a camera cannot see, simulate detections
(:mod:`mvtools.synth.noise`). See docs/bvh.md.
"""

from __future__ import annotations

import fnmatch
import json
import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from mvtools.camera import Camera, project, world_to_camera
from mvtools.dataset import DatasetError, DatasetWriter, base_manifest, poses2d_table, poses3d_table, safe_subject_id
from mvtools.ingest.bvh.checks import detect_up_axis, measure, plausibility_error, problems
from mvtools.ingest.bvh.joint_maps import (
    apply_joint_map,
    choose_joint_map,
    derived_joints,
    joint_map_matrix,
    load_joint_map,
)
from mvtools.ingest.bvh.kinematics import outlier_frames, posed_height, resample_bvh, resolve_position_mode
from mvtools.ingest.bvh.reader import detect_units, has_tpose_frame, read_bvh, skeleton_height, to_z_up
from mvtools.progress import log, progress
from mvtools.rotations import axis_rotation
from mvtools.seeding import stable_rng
from mvtools.skeleton import chain_kinematics

#: Frames whose per-frame lowest point is at this percentile define the clip's low point (robust to glitches).
FLOOR_PERCENTILE = 2.0
#: ``floor="auto"`` keeps the file's own ground plane when the clip's low point is within this many mm of it.
FLOOR_TOLERANCE_MM = 150.0
FLOOR_MODES = ("auto", "file", "lowest")
#: A rig whose mean camera "up" is within this angle (degrees) of +Z is taken as Z-up with the floor at z = 0.
Z_UP_TOLERANCE_DEG = 20.0
#: For rigs that are not Z-up: height (mm) above the floor of the point the cameras look at.
LOOK_AT_HEIGHT_MM = 900.0


# ----------------------------------------------------------------------------- inputs
def find_bvh_files(paths) -> list[Path]:
    """BVH files from files and directories (searched recursively), sorted, without duplicates."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.suffix.lower() == ".bvh" and q.is_file())
            if not found:
                raise DatasetError(f"{p}: no .bvh files in this directory")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or directory")
    seen, uniq = set(), []
    for p in out:
        r = p.resolve()
        if r not in seen:
            seen.add(r)
            uniq.append(p)
    return uniq


def default_subject(path) -> str:
    """CMU naming ``SS_TT.bvh`` -> ``CMU<SS>`` (two digits); any other name -> its stem."""
    stem = Path(path).stem
    m = re.fullmatch(r"(\d+)_(\d+)", stem)
    return f"CMU{int(m.group(1)):02d}" if m else stem


def load_subject_map(spec) -> list[tuple[str, str]]:
    """(glob pattern, subject) rules from a JSON file ``{"pattern": "subject"}``, a text file of
    ``pattern=subject`` lines, an inline ``"02_*=A,03_01=B"`` string, or a dict. Patterns match the
    file name or its stem (``fnmatch``)."""
    if spec is None:
        return []
    if isinstance(spec, dict):
        items, where = list(spec.items()), "subject map"
    else:
        p = Path(str(spec))
        where = str(p)
        if p.is_file():
            text = p.read_text()
            if p.suffix.lower() == ".json":
                try:
                    data = json.loads(text)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{p}: not valid JSON ({e})") from None
                if not isinstance(data, dict):
                    raise ValueError(f'{p}: expected a JSON object {{"file pattern": "subject"}}')
                items = list(data.items())
            else:
                items = []
                for i, line in enumerate(text.splitlines(), 1):
                    s = line.split("#", 1)[0].strip()
                    if not s:
                        continue
                    if "=" not in s:
                        raise ValueError(f"{p}: line {i}: expected 'file=subject', got {s!r}")
                    a, b = s.split("=", 1)
                    items.append((a.strip(), b.strip()))
        elif "=" in str(spec):
            where = "--subject-map"
            items = [tuple(x.strip() for x in part.split("=", 1)) for part in str(spec).split(",") if part.strip()]
            if any(len(it) != 2 for it in items):
                raise ValueError(f"--subject-map {spec!r}: expected 'pattern=subject,...'")
        else:
            raise FileNotFoundError(f"{p}: subject map file not found (or give 'pattern=subject,...')")
    for pat, subj in items:
        if not isinstance(subj, str) or not subj or "/" in subj or "=" in subj:
            raise ValueError(f"{where}: bad subject {subj!r} for {pat!r}")
    return [(str(a), str(b)) for a, b in items]


def subject_from_rule(spec):
    """A function path -> subject or None from ``--subject-from``: ``folder`` (the file's directory name) or a
    regular expression searched in the file stem whose group ``subject`` (or first group, or whole match) is the
    subject. None for no rule."""
    if spec is None or spec == "default":
        return None
    if spec == "folder":
        return lambda p: Path(p).parent.name or None
    try:
        rx = re.compile(spec)
    except re.error as e:
        raise ValueError(f"--subject-from {spec!r}: not a regular expression ({e}); use folder or a regex") from None

    def by_regex(p):
        m = rx.search(Path(p).stem)
        if not m:
            return None
        if "subject" in rx.groupindex:
            return m.group("subject")
        return m.group(1) if rx.groups else m.group(0)

    return by_regex


def subject_of(path, rules: list[tuple[str, str]], rule=None) -> str:
    """The subject of a BVH file: the first matching ``--subject-map`` rule, else ``rule(path)`` (from
    :func:`subject_from_rule`) when it gives one, else :func:`default_subject`."""
    p = Path(path)
    for pat, subj in rules:
        if fnmatch.fnmatch(p.name, pat) or fnmatch.fnmatch(p.stem, pat):
            return subj
    if rule is not None:
        s = rule(p)
        if s:
            if "/" in s or "=" in s:
                raise ValueError(f"{p}: subject {s!r} from --subject-from contains '/' or '='")
            return s
    return default_subject(p)


def make_splits(subjects: list[str], split="auto") -> dict:
    """``{"train": [...], "test": [...]}``. ``auto``: the last 20% of subjects in sorted order (at least
    one when there are two or more) are test; ``none``: all train; else the test subjects (list or
    comma-separated string)."""
    subs = sorted(subjects)
    if split is None or split == "none":
        return {"train": subs, "test": []}
    if split == "auto":
        n_test = 0 if len(subs) < 2 else max(1, int(round(0.2 * len(subs))))
        return {"train": subs[: len(subs) - n_test], "test": subs[len(subs) - n_test :]}
    test = [s.strip() for s in split.split(",")] if isinstance(split, str) else list(split)
    unknown = [s for s in test if s not in subs]
    if unknown:
        raise ValueError(f"--test-subjects names unknown subject(s) {unknown} (subjects: {', '.join(subs)})")
    return {"train": [s for s in subs if s not in test], "test": [s for s in subs if s in test]}


def load_rig(spec: str) -> tuple[dict[str, Camera], str]:
    """({camera id: Camera}, description) from ``h36m:S9`` (built-in H36M rig), an aniposelib TOML file,
    or Cameras given directly (a dict {id: Camera} or a list)."""
    if isinstance(spec, dict) or (isinstance(spec, (list, tuple)) and spec and isinstance(spec[0], Camera)):
        cams = list(spec.values()) if isinstance(spec, dict) else list(spec)
        return {c.camera: c for c in cams}, f"{len(cams)} cameras given"
    spec = str(spec)
    if spec.lower().startswith("h36m:"):
        from mvtools.h36m_cameras import h36m_rig

        subj = spec.split(":", 1)[1]
        return h36m_rig(subj), f"built-in Human3.6M rig of {subj}"
    p = Path(spec)
    if not p.exists():
        raise FileNotFoundError(f"{p}: rig file not found (use h36m:S1 ... h36m:S11 or an aniposelib .toml)")
    if p.suffix.lower() != ".toml":
        raise ValueError(f"{p}: a rig file must be an aniposelib .toml (or use h36m:<subject>)")
    try:
        from mvtools.calibration.toml_io import read_aniposelib_toml
    except ImportError:
        raise ValueError(
            f"{p}: reading aniposelib TOML rigs needs mvtools.calibration.toml_io, which this "
            f"installation lacks; use --rig h36m:<subject>"
        ) from None
    cams = read_aniposelib_toml(p)
    if not cams:
        raise DatasetError(f"{p}: no cameras in the rig file")
    return {c.camera: c for c in cams}, str(p)


def load_noise(spec):
    """(NoiseParams, how) from ``none``, ``realistic``, a JSON file path or a NoiseParams
    (:func:`mvtools.synth.noise.resolve_noise`)."""
    from mvtools.synth.noise import NoiseParams, resolve_noise

    if isinstance(spec, NoiseParams):
        return spec, "given"
    s = str(spec)
    if s not in ("none", "realistic") and not Path(s).exists():
        raise FileNotFoundError(f"{s}: detector noise file not found (or use none / realistic)")
    return resolve_noise(s) or NoiseParams.none(), s


# ----------------------------------------------------------------------------- placement
def capture_centre(cams) -> np.ndarray:
    """World point (3,) mm closest, in least squares, to every camera's optical axis."""
    A, b = np.zeros((3, 3)), np.zeros(3)
    for c in cams:
        d = np.asarray(c.R)[2]
        P = np.eye(3) - np.outer(d, d)
        A += P
        b += P @ c.C
    if np.linalg.matrix_rank(A) < 3:  # parallel axes: take the mean of the centres
        return np.mean([c.C for c in cams], axis=0)
    return np.linalg.solve(A, b)


def rig_up(cams) -> np.ndarray:
    """The rig's vertical (3,): the direction most orthogonal to every camera's image x axis (exact for
    cameras without roll), signed like their image-up; the mean image-up if all cameras face one way."""
    xs = np.array([np.asarray(c.R)[0] for c in cams])
    mean_up = -np.mean([np.asarray(c.R)[1] for c in cams], axis=0)
    w, v = np.linalg.eigh(xs.T @ xs)
    up = v[:, 0] if w[1] > 1e-3 * w[2] else mean_up
    up = up / np.linalg.norm(up)
    return up if up @ mean_up >= 0 else -up


def stage_frame(cams) -> tuple[np.ndarray, np.ndarray, str]:
    """(R (3, 3), origin (3,) mm, how): world = R @ stage + origin, where the stage is Z-up with the floor
    at z = 0 and the origin under the capture centre.

    A rig whose cameras are upright in a Z-up world (H36M) keeps its floor z = 0. Otherwise "up" is
    :func:`rig_up` and the floor is 0.9 m below the capture centre.
    """
    cams = list(cams)
    centre = capture_centre(cams)
    up = rig_up(cams)
    ang = np.degrees(np.arccos(np.clip(up[2], -1, 1)))
    if ang <= Z_UP_TOLERANCE_DEG:
        return np.eye(3), np.array([centre[0], centre[1], 0.0]), "rig world is Z-up: floor z = 0"
    x = np.asarray(cams[0].R)[0]
    x = x - up * (x @ up)
    x /= np.linalg.norm(x)
    R = np.stack([x, np.cross(up, x), up], 1)
    origin = centre - LOOK_AT_HEIGHT_MM * up
    return (
        R,
        origin,
        (
            f"rig world is not Z-up (the cameras' vertical is {ang:.0f} deg from +Z): up = that vertical, "
            f"floor {LOOK_AT_HEIGHT_MM:.0f} mm below the capture centre"
        ),
    )


def place_on_stage(points: np.ndarray, yaw_deg: float = 0.0, ref: np.ndarray | None = None, floor: str = "auto"):
    """Z-up points (T, J, 3) mm -> floor at z = 0 and horizontal trajectory centred at the origin, rotated
    by ``yaw_deg`` about +Z. Returns (points, floor shift mm, xy shift mm).

    The clip's low point is the 2nd percentile over frames of the lowest point of ``ref`` (T, J', 3)
    (default ``points``). ``floor``: ``lowest`` puts the low point at z = 0; ``file`` keeps the file's
    ground plane (z = 0 in the file); ``auto`` keeps the file's plane when the low point is within 150 mm
    of it (a capture with its own floor), else acts as ``lowest``. The xy centre is the middle of the
    bounding box of joint 0's path.
    """
    if floor not in FLOOR_MODES:
        raise ValueError(f"floor must be one of {', '.join(FLOOR_MODES)}, got {floor!r}")
    ref = points if ref is None else ref
    ref = ref[np.isfinite(ref).all(axis=(1, 2))]  # frames made unusable by an outlier are NaN
    low = float(np.percentile(ref[..., 2].min(axis=1), FLOOR_PERCENTILE))
    floor = 0.0 if floor == "file" or (floor == "auto" and abs(low) <= FLOOR_TOLERANCE_MM) else low
    xy = points[:, 0, :2]
    centre = (np.nanmin(xy, 0) + np.nanmax(xy, 0)) / 2
    out = points - np.array([centre[0], centre[1], floor])
    Rz = axis_rotation("Z", yaw_deg)
    return out @ Rz.T, 0.0 - floor + 0.0, -centre


def visible(X_world: np.ndarray, cam: Camera, near_mm: float = 100.0) -> np.ndarray:
    """(T,) bool: every joint of (T, J, 3) mm is at least ``near_mm`` in front of ``cam`` and inside its
    image (both the pinhole and the distorted projection)."""
    Xc = world_to_camera(X_world, cam.R, cam.t)
    z = Xc[..., 2]
    front = z >= near_mm
    zs = np.where(front, z, 1.0)[..., None]
    uv_pin = Xc[..., :2] / zs * np.array([cam.fx, cam.fy]) + np.array([cam.cx, cam.cy])
    uv = project(np.where(front[..., None], X_world, np.nan), cam) if cam.distortion_model != "none" else uv_pin
    size = np.array([cam.width, cam.height])
    inside = ((uv_pin >= 0) & (uv_pin < size)).all(-1) & ((uv >= 0) & (uv < size)).all(-1)
    return (front & inside).all(-1)


# ----------------------------------------------------------------------------- per file
def _resolve_joint_map(joint_map, names, path) -> dict:
    if isinstance(joint_map, dict) and "joints" in joint_map and "derived" in joint_map:
        return joint_map
    if joint_map == "auto":
        return choose_joint_map(names, str(path))
    return load_joint_map(joint_map)


def _repair_outliers(bvh, path) -> np.ndarray:
    """Replace outlier frames' channels by the nearest good frame's (so interpolation stays finite); returns
    the (T,) outlier mask. All frames outliers is an error."""
    bad = outlier_frames(bvh, max(posed_height(bvh), skeleton_height(bvh)))
    if bad.all():
        raise DatasetError(f"{path}: every frame has a channel value far outside the clip's range; nothing to read")
    if bad.any():
        good = np.flatnonzero(~bad)
        nearest = good[np.clip(np.searchsorted(good, np.arange(len(bad))), 0, len(good) - 1)]
        prev = good[np.clip(np.searchsorted(good, np.arange(len(bad))) - 1, 0, len(good) - 1)]
        idx = np.where(np.abs(prev - np.arange(len(bad))) < np.abs(nearest - np.arange(len(bad))), prev, nearest)
        bvh.motion = bvh.motion.copy()
        bvh.motion[bad] = bvh.motion[idx[bad]]
    return bad


def bvh_to_h36m17(
    path,
    fps: float | None = 50.0,
    joint_map="auto",
    units: str = "auto",
    drop_tpose="auto",
    resample: str = "slerp",
    position_channels: str = "auto",
    up_axis: str = "auto",
    check: bool = True,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """One BVH file -> (H36M-17 joints (K, 17, 3) mm Z-up, all BVH joints (K, J, 3) mm Z-up, report).

    Positions are in the file's frame turned Z-up (not yet placed). ``fps`` None/0 keeps the file's rate.
    ``drop_tpose``: ``auto`` (detect the cgspeed T-pose frame 0), True or False. ``joint_map``: ``auto``
    (chosen from the joint names), a built-in name, a JSON file or a loaded map. ``position_channels``:
    ``auto``, ``replace`` or ``add`` (non-root joints; :func:`resolve_position_mode`). ``up_axis``: ``auto``
    (detected; a map's ``up_axis`` counts as given), ``x``, ``y`` or ``z``. ``check``: fail on an implausible
    person (:mod:`mvtools.ingest.bvh.checks`). Output frames next to an outlier source frame (a channel far
    outside the clip's range) are NaN and listed in the report (``outlier_frames``).
    """
    bvh = read_bvh(path)
    jm = _resolve_joint_map(joint_map, bvh.names, path)
    W = joint_map_matrix(bvh.names, jm, str(path))
    n_read = bvh.num_frames
    drop = has_tpose_frame(bvh) if drop_tpose == "auto" else bool(drop_tpose)
    if drop:
        bvh.motion = bvh.motion[1:]
    if bvh.num_frames < 1:
        raise DatasetError(f"{path}: no motion frames (after dropping the T-pose frame)")
    bvh.position_mode, pos_how = resolve_position_mode(bvh, position_channels)
    bad = _repair_outliers(bvh, path)
    unit, mm, how = detect_units(bvh, units, height=posed_height(bvh))
    rot, trans, src = resample_bvh(bvh, fps, resample)
    P_file = chain_kinematics(bvh.parents, rot, trans) * mm
    if up_axis == "auto" and jm.get("up_axis"):
        axis, axis_how = jm["up_axis"], f"given by joint map {jm['name']}"
    elif up_axis == "auto":
        axis, axis_how = detect_up_axis(apply_joint_map(P_file, W))
    else:
        axis, axis_how = str(up_axis).lower(), "given (--up-axis)"
    P = to_z_up(P_file, axis)
    X = apply_joint_map(P, W)
    near_bad = bad[np.floor(src).astype(int)] | bad[np.ceil(src).astype(int)]
    X[near_bad] = np.nan
    P[near_bad] = np.nan
    report = {
        "file": str(path),
        "frames_read": n_read,
        "tpose_frame_dropped": drop,
        "fps_in": bvh.fps,
        "frames_resampled": int(len(src)),
        "units": unit,
        "mm_per_unit": mm,
        "units_how": how,
        "joint_map": jm["name"],
        "derived_joints": derived_joints(bvh.names, jm),
        "position_channels": bvh.position_mode,
        "position_channels_how": pos_how,
        "up_axis": axis,
        "up_axis_how": axis_how,
        "outlier_frames": np.flatnonzero(bad).tolist()[:20],
        "outlier_frames_count": int(bad.sum()),
        "output_frames_unusable": int(near_bad.sum()),
    }
    report["plausibility"] = measure(X[~near_bad])
    found = problems(report["plausibility"])
    report["plausibility_problems"] = found
    if found and check:
        raise plausibility_error(path, found, report)
    return X, P, report


def ingest_bvh(
    paths_or_dir,
    out,
    rig="h36m:S1",
    fps: float | None = 50.0,
    subject_map=None,
    split="auto",
    detector_noise="realistic",
    seed: int = 0,
    joint_map="auto",
    units: str = "auto",
    drop_tpose="auto",
    random_yaw: bool = True,
    min_views: int | None = None,
    near_mm: float = 100.0,
    resample: str = "slerp",
    floor: str = "auto",
    position_channels: str = "auto",
    up_axis: str = "auto",
    check_plausibility: bool = True,
    subject_from=None,
    overwrite: bool = False,
) -> dict:
    """Turn BVH files into dataset ``out`` (written atomically); returns a summary dict.

    paths_or_dir: files and/or directories (searched for ``*.bvh``). rig: ``h36m:S1`` or an aniposelib
    TOML. fps: output frame rate (Hz; None/0 = the file's). subject_map: see :func:`load_subject_map`.
    split: see :func:`make_splits`. detector_noise: ``none``, ``realistic`` or a NoiseParams JSON file.
    seed: random yaw and detector noise. joint_map: built-in name or JSON file. units: ``auto`` or one of
    :data:`mvtools.ingest.bvh.reader.UNITS`. random_yaw: rotate each clip by a seeded random angle about the vertical.
    min_views: a frame is kept when at least this many cameras see every joint (default: all cameras);
    2D rows are written for those cameras only. near_mm: joints closer than this to a camera count as
    behind it. floor: ``auto``, ``file`` or ``lowest`` (see :func:`place_on_stage`). position_channels,
    up_axis, check_plausibility: see :func:`bvh_to_h36m17`. subject_from: ``folder`` or a regex on the file
    stem (:func:`subject_from_rule`), applied to files no ``subject_map`` rule matches.
    """
    if floor not in FLOOR_MODES:
        raise ValueError(f"floor must be one of {', '.join(FLOOR_MODES)}, got {floor!r}")
    t0 = time.perf_counter()
    files = find_bvh_files(paths_or_dir)
    rules = load_subject_map(subject_map)
    rig_cams, rig_how = load_rig(rig)
    cam_ids = list(rig_cams)
    n_cams = len(cam_ids)
    min_views = n_cams if min_views is None else int(min_views)
    if not 1 <= min_views <= n_cams:
        raise ValueError(f"min_views must be between 1 and {n_cams} (cameras in the rig), got {min_views}")
    noise, noise_how = load_noise(detector_noise)
    from mvtools.synth.noise import simulate_detections

    jm = joint_map if joint_map == "auto" else load_joint_map(joint_map)
    R_stage, o_stage, stage_how = stage_frame(rig_cams.values())
    rule = subject_from_rule(subject_from)
    assign = [(f, subject_of(f, rules, rule)) for f in files]
    renamed = {s: safe_subject_id(s) for _, s in assign if safe_subject_id(s) != s}
    for old_id, new_id in renamed.items():
        log(
            f"note: subject {old_id!r} stored as {new_id!r}: ids must start with a letter so that pandas, pyarrow "
            f"and DuckDB read the subject=<id> directories back as strings"
        )
    assign = [(f, safe_subject_id(s)) for f, s in assign]
    if isinstance(split, str) and split not in ("auto", "none"):
        split = ",".join(safe_subject_id(x.strip()) for x in split.split(","))
    keys = {}
    for f, s in assign:
        if (s, f.stem) in keys:
            raise DatasetError(
                f"{f}: same subject {s} and action {f.stem!r} as {keys[s, f.stem]} "
                f"(rename one or map them to different subjects with --subject-map)"
            )
        keys[s, f.stem] = f
    subjects = list(dict.fromkeys(sorted(s for _, s in assign)))
    splits = make_splits(subjects, split)

    reports = []
    totals = {"frames_read": 0, "frames_resampled": 0, "frames_kept": 0}
    inputs = [
        *(paths_or_dir if isinstance(paths_or_dir, (list, tuple)) else [paths_or_dir]),
        rig,
        subject_map,
        joint_map,
        detector_noise,
    ]
    with DatasetWriter(out, [i for i in inputs if isinstance(i, (str, Path)) and Path(i).exists()], overwrite) as w:
        with progress(assign, label="ingest bvh") as bar:
            for f, subj in bar:
                X, P, rep = bvh_to_h36m17(
                    f, fps, jm, units, drop_tpose, resample, position_channels, up_axis, check_plausibility
                )
                if not fps and reports and rep["fps_in"] != reports[0]["fps_in"]:
                    raise ValueError(
                        f"{f}: {rep['fps_in']:g} Hz, but {reports[0]['file']} is "
                        f"{reports[0]['fps_in']:g} Hz; pass fps=... (--fps) to resample them to one rate"
                    )
                for p in rep["plausibility_problems"]:
                    log(f"warning: {f}: implausible: {p} (kept because of --no-check-plausibility)")
                if "implausible" in rep["units_how"]:
                    log(f"warning: {f}: units {rep['units']}: {rep['units_how']}")
                yaw = float(stable_rng(seed, "yaw", f.stem).uniform(0, 360)) if random_yaw else 0.0
                Xs, floor_mm, shift_xy = place_on_stage(X, yaw, ref=P, floor=floor)
                Xw = Xs @ R_stage.T + o_stage
                ok = np.stack([visible(Xw, rig_cams[c], near_mm) for c in cam_ids])  # (C, K)
                usable = np.isfinite(Xw).all(axis=(1, 2))
                ok &= usable
                keep = ok.sum(0) >= min_views
                frames = np.flatnonzero(keep).astype(np.int32)
                action = f.stem
                rep.update(
                    subject=subj,
                    action=action,
                    subaction=1,
                    yaw_deg=round(yaw, 3),
                    floor_shift_mm=round(floor_mm, 2),
                    centre_shift_mm=np.round(shift_xy, 2).tolist(),
                    not_visible_per_camera={c: int((~ok[i] & usable).sum()) for i, c in enumerate(cam_ids)},
                    frames_dropped=int((~keep).sum()),
                    frames_kept=int(keep.sum()),
                )
                reports.append(rep)
                for k in totals:
                    totals[k] += rep[k]
                if not len(frames):
                    continue
                w.add_poses3d(subj, poses3d_table(action, 1, f.name, frames, Xw[frames]))
                gt, det = [], []
                for i, c in enumerate(cam_ids):
                    fr = frames[ok[i, frames]]
                    if not len(fr):
                        continue
                    cam = rig_cams[c]
                    gt.append(poses2d_table(action, 1, f.name, fr, c, project(Xw[fr], cam), None, "gt"))
                    uv, conf = simulate_detections(
                        Xw[fr], cam, noise, stable_rng(seed, "det", f.stem, c), fps or rep["fps_in"]
                    )
                    det.append(poses2d_table(action, 1, f.name, fr, c, np.asarray(uv), np.asarray(conf), "detected"))
                w.add_poses2d(subj, pa.concat_tables(gt))
                w.add_poses2d(subj, pa.concat_tables(det))
        written = [s for s in subjects if s in w.subjects]
        if not written:
            where = str(files[0]) + (f" and {len(files) - 1} more file(s)" if len(files) > 1 else "")
            raise DatasetError(
                f"{where}: no frame is seen by {min_views} of the {n_cams} cameras ({rig_how}); "
                f"nothing to write (see --min-views)"
            )
        w.set_cameras([replace(c, subject=s, source="given") for s in written for c in rig_cams.values()])
        splits = {k: [s for s in v if s in written] for k, v in splits.items()}
        noise_dict = noise.to_dict() if hasattr(noise, "to_dict") else None
        manifest = base_manifest(
            "bvh",
            splits=splits,
            fps=fps or (reports[0]["fps_in"] if reports else None),
            subjects=written,
            source={
                "kind": "bvh",
                "files": len(files),
                "rig": str(rig) if isinstance(rig, (str, Path)) else "given",
                "rig_description": rig_how,
                "joint_map": jm if isinstance(jm, str) else jm["name"],
                "units": units,
                "position_channels": position_channels,
                "up_axis": up_axis,
                "check_plausibility": check_plausibility,
                "subject_from": subject_from,
                "subjects_renamed": renamed,
                "drop_tpose": str(drop_tpose),
                "resample": resample,
                "detector_noise": noise_how,
                "seed": seed,
                "random_yaw": random_yaw,
                "min_views": min_views,
                "near_mm": near_mm,
                "floor": floor,
                "placement": stage_how,
            },
            detector_noise=noise_dict,
            totals=totals,
            files=reports,
        )
        path = w.commit(manifest)
        rows = dict(w.rows)
    for r in reports:
        if r["outlier_frames_count"]:
            log(
                f"note: {r['file']}: {r['outlier_frames_count']} source frame(s) with a channel far outside the "
                f"clip's range (first: {r['outlier_frames'][:5]}); {r['output_frames_unusable']} output frame(s) "
                f"next to them dropped"
            )
        if r["frames_dropped"]:
            per = ", ".join(f"{c}: {n}" for c, n in r["not_visible_per_camera"].items() if n)
            log(
                f"note: {r['file']}: dropped {r['frames_dropped']} of {r['frames_resampled']} frames "
                f"(not fully visible in camera {per})"
            )
    return {
        "out": str(path),
        "files": len(files),
        "subjects": written,
        "splits": splits,
        "rows": rows,
        **totals,
        "frames_dropped": totals["frames_resampled"] - totals["frames_kept"],
        "seconds": round(time.perf_counter() - t0, 3),
    }
