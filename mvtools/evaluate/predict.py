"""Lift 2D detections from files with a trained run: VideoPose3D npz or a Parquet / CSV table -> 3D.

Outputs are root-relative 3D joints in each camera's frame, mm (x right, y down, z forward; joint 0 = pelvis = 0).

Inputs:

- VideoPose3D 2D ``.npz``: ``positions_2d[subject][action]`` = list of per-camera (T, 17, 2|3) px arrays (or
  None), 17-joint H36M layout. Intrinsics come from ``cameras``: ``"h36m"`` (built-in calibration, list index
  i = H36M camera i), a camera JSON in the layout of mvtools/data/h36m_cameras.json, or an aniposelib TOML
  (list index i = ``cam_i``). Pixels are undistorted with each camera's lens model before lifting.
- A table (``.parquet`` or ``.csv``), one row per frame: the 2D joints as a ``joints2d`` fixed-size list of 34
  floats (x0, y0, x1, ...; Parquet) or as columns ``x0, y0, ..., x16, y16`` (px); intrinsics ``fx, fy, cx, cy``
  (px) per row; optional OpenCV distortion ``k1, k2, p1, p2, k3`` (missing = none). Other columns are copied to
  the output.

Outputs: ``.npz`` (from npz input: ``positions_3d[subject][action]`` = list of (T, 17, 3) float32 mm per camera,
None where the input was None), ``.parquet`` (a ``joints3d`` list of 51 floats, plus ``subject, action, camera,
frame`` for npz input or the input's other columns), or ``.csv`` (columns ``X0, Y0, Z0, ..., Z16``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mvtools.augment.sequences import fill_invalid_rows
from mvtools.camera import Camera, check_cameras, undistort_pixels
from mvtools.dataset import DatasetError, fsl, joints_to_numpy
from mvtools.devices import DEFAULT_DEVICE, resolve_device
from mvtools.h36m_cameras import H36M_CAMERA_IDS, h36m_cameras
from mvtools.io import atomic_path, claim_output, save_npz_atomic, write_table_atomic
from mvtools.skeleton import NUM_JOINTS

J = NUM_JOINTS
XY_COLUMNS = [f"{c}{j}" for j in range(J) for c in ("x", "y")]
XYZ_COLUMNS = [f"{c}{j}" for j in range(J) for c in ("X", "Y", "Z")]
#: the ``metadata`` entry of every .npz that predict writes (VideoPose3D style)
NPZ_METADATA = {"units": "mm", "frame": "camera, root-relative (joint 0 = 0)", "layout_name": "h36m", "num_joints": J}
INTRINSICS = ["fx", "fy", "cx", "cy"]
DISTORTION = ["k1", "k2", "p1", "p2", "k3"]


def camera_list(cameras) -> list[Camera]:
    """Cameras by VideoPose3D list index: ``"h36m"`` (built-in), a JSON camera file or an aniposelib TOML."""
    if cameras is None:
        raise ValueError(
            "a VideoPose3D .npz input needs intrinsics: pass --calibration h36m or a camera JSON/TOML file"
        )
    if str(cameras) == "h36m":
        cams = h36m_cameras()
        return [next(c for c in cams if c.camera == cid) for cid in H36M_CAMERA_IDS]
    p = Path(cameras)
    if not p.is_file():
        raise ValueError(f"{p}: no such camera file (or pass --calibration h36m)")
    if p.suffix.lower() == ".toml":
        from mvtools.calibration.toml_io import read_aniposelib_toml

        return check_cameras(read_aniposelib_toml(p), str(p))
    if p.suffix.lower() == ".json":
        cams = h36m_cameras(p)
        order = []
        for c in cams:  # first occurrence of each camera id, in file order
            if c.camera not in [o.camera for o in order]:
                order.append(c)
        if not order:
            raise ValueError(f"{p}: no cameras")
        return check_cameras(order, str(p))
    raise ValueError(f"{p}: camera file must be .json (h36m_cameras.json layout) or .toml (aniposelib)")


def lift_pixels(
    lift, uv: np.ndarray, K: np.ndarray, device="cpu", sequence: np.ndarray | None = None, frame=None
) -> np.ndarray:
    """Undistorted pixels (N, 17, 2) and intrinsics (N, 4) [fx, fy, cx, cy] -> root-relative 3D (N, 17, 3) mm.
    Temporal runs need ``sequence`` (N,): a label per row, rows in frame order within a sequence; with ``frame``
    (N,) frame numbers, missing frames are re-inserted for the windows (``lift_2d``). Non-finite output (a
    diverged checkpoint) is an error, never written."""
    import torch

    from mvtools.train.inference import lift_2d

    pred = lift_2d(
        lift,
        torch.from_numpy(np.ascontiguousarray(uv, np.float32)),
        torch.from_numpy(np.ascontiguousarray(K, np.float32)),
        device,
        sequence=sequence,
        frame=frame,
    )
    bad = ~np.isfinite(np.asarray(pred)).all(axis=(1, 2))
    if bad.any():
        raise DatasetError(
            f"the lifting network gave NaN/inf 3D for {int(bad.sum())} of {len(bad)} poses "
            "(a diverged checkpoint, or 2D far outside the image?); nothing written"
        )
    return pred


def _predict_npz(lift, inp: Path, cameras, device) -> tuple[dict, pa.Table]:
    from mvtools.ingest.h36m.reader import load_videopose3d_2d

    data, _ = load_videopose3d_2d(inp)
    cams = camera_list(cameras)
    # one batched lifting pass over every (subject, action, camera) array
    items, uvs, Ks = [], [], []
    for subject, acts in data.items():
        for action, lst in acts.items():
            for i, a in enumerate(lst):
                if a is None:
                    continue
                if i >= len(cams):
                    raise ValueError(
                        f"{inp}: positions_2d[{subject!r}][{action!r}] has camera index {i} but the "
                        f"camera file has {len(cams)} camera(s)"
                    )
                a = np.asarray(a, np.float64)[..., :2]
                if not np.isfinite(a).all():
                    raise DatasetError(f"{inp}: positions_2d[{subject!r}][{action!r}][{i}] holds NaN/inf values")
                items.append((subject, action, i, len(a)))
                uvs.append(undistort_pixels(a, cams[i]))
                Ks.append(np.broadcast_to(cams[i].intrinsics, (len(a), 4)))
    if not items:
        raise DatasetError(f"{inp}: positions_2d holds no arrays")
    seq = np.repeat(np.arange(len(items)), [it[3] for it in items])  # every array is one sequence
    pred = lift_pixels(lift, np.concatenate(uvs), np.concatenate(Ks), device, seq).astype(np.float32)
    out: dict = {s: {a: [None] * len(lst) for a, lst in acts.items()} for s, acts in data.items()}
    cols = {"subject": [], "action": [], "camera": [], "frame": []}
    s0 = 0
    for subject, action, i, n in items:
        out[subject][action][i] = pred[s0 : s0 + n]
        s0 += n
        cols["subject"] += [subject] * n
        cols["action"] += [action] * n
        cols["camera"] += [cams[i].camera] * n
        cols["frame"].append(np.arange(n, dtype=np.int32))
    table = pa.table(
        {
            "subject": pa.array(cols["subject"], pa.string()),
            "action": pa.array(cols["action"], pa.string()),
            "camera": pa.array(cols["camera"], pa.string()),
            "frame": np.concatenate(cols["frame"]),
            "joints3d": fsl(pred),
        }
    )
    return out, table


def _read_table(inp: Path) -> pa.Table:
    try:
        if inp.suffix.lower() == ".csv":
            return pacsv.read_csv(inp)
        return pq.read_table(inp)
    except FileNotFoundError:
        raise FileNotFoundError(f"{inp}: no such file") from None
    except (pa.ArrowInvalid, OSError) as e:
        raise DatasetError(f"{inp}: cannot read table ({e})") from None


#: columns that tell table rows' sequences apart (temporal runs)
SEQUENCE_COLUMNS = ["subject", "action", "subaction", "camera", "sequence"]


def _lift_table_rows(lift, t: pa.Table, uv: np.ndarray, K: np.ndarray, device) -> np.ndarray:
    """Lift a table's rows. Temporal runs: a sequence is a group of equal ``subject, action, subaction, camera,
    sequence`` values (the columns present), ordered by ``frame`` when there is one (else in file order)."""
    if lift.receptive_field() == 1:
        return lift_pixels(lift, uv, K, device).astype(np.float32)
    import pandas as pd

    keys = [c for c in SEQUENCE_COLUMNS if c in t.column_names]
    df = pd.DataFrame({c: t.column(c).to_numpy(zero_copy_only=False) for c in keys})
    seq = df.groupby(keys, sort=False, dropna=False).ngroup().to_numpy() if keys else np.zeros(len(uv), np.int64)
    frame = (
        t.column("frame").to_numpy(zero_copy_only=False).astype(np.int64)
        if "frame" in t.column_names
        else np.arange(len(uv))
    )
    order = np.lexsort((frame, seq))
    if len(order) > 1 and ((seq[order][1:] == seq[order][:-1]) & (frame[order][1:] == frame[order][:-1])).any():
        raise DatasetError(
            f"a sequence ({', '.join(keys) or 'the whole table'}) has the same frame twice; a "
            "temporal run needs one row per frame"
        )
    pred = np.empty((len(uv), NUM_JOINTS, 3), np.float32)
    timed = frame[order] if "frame" in t.column_names else None  # missing frame numbers re-inserted for windows
    pred[order] = lift_pixels(lift, uv[order], K[order], device, seq[order], frame=timed)
    return pred


def _predict_table(lift, inp: Path, device) -> pa.Table:
    t = _read_table(inp)
    missing = [c for c in INTRINSICS if c not in t.column_names]
    if missing:
        raise DatasetError(f"{inp}: missing intrinsics column(s) {missing} (px)")
    if "joints2d" in t.column_names:
        typ = t.schema.field("joints2d").type
        if getattr(typ, "list_size", None) != 2 * J:
            raise DatasetError(f"{inp}: joints2d must be a fixed-size list of {2 * J} floats (px), got {typ}")
        uv = joints_to_numpy(t.column("joints2d"), 2).astype(np.float64)
        used = ["joints2d"]
    else:
        miss = [c for c in XY_COLUMNS if c not in t.column_names]
        if miss:
            raise DatasetError(
                f"{inp}: need a joints2d list column or columns x0, y0, ..., x16, y16 "
                f"(missing {', '.join(miss[:4])}{'...' if len(miss) > 4 else ''})"
            )
        uv = np.stack([t.column(c).to_numpy().astype(np.float64) for c in XY_COLUMNS], -1).reshape(-1, J, 2)
        used = list(XY_COLUMNS)
    K = np.stack([t.column(c).to_numpy().astype(np.float64) for c in INTRINSICS], -1)
    if not (np.isfinite(uv).all() and np.isfinite(K).all()):
        raise DatasetError(f"{inp}: 2D joints or intrinsics hold NaN/inf values")
    if (K[:, :2] <= 0).any():
        raise DatasetError(f"{inp}: focal lengths fx, fy must be > 0 px")
    dist = [c for c in DISTORTION if c in t.column_names]
    if dist:
        D = np.stack(
            [t.column(c).to_numpy().astype(np.float64) if c in dist else np.zeros(t.num_rows) for c in DISTORTION], -1
        )
        # rows sharing one camera are undistorted together (vectorised per distinct camera)
        keys, inv = np.unique(np.concatenate([K, D], 1), axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        for g, key in enumerate(keys):
            sel = inv == g
            cam = Camera(
                camera="",
                width=0,
                height=0,
                fx=key[0],
                fy=key[1],
                cx=key[2],
                cy=key[3],
                R=np.eye(3),
                t=np.zeros(3),
                k=(key[4], key[5], key[8]),
                p=(key[6], key[7]),
                distortion_model="opencv",
            )
            uv[sel] = undistort_pixels(uv[sel], cam)
    pred = _lift_table_rows(lift, t, uv, K, device)
    keep = [c for c in t.column_names if c not in used]
    out = t.select(keep)
    return out.append_column("joints3d", fsl(pred))


def is_keypoints_input(inp: Path, fmt: str = "auto") -> bool:
    """True when ``inp`` is a detector keypoint file/folder (OpenPose, COCO results, mmpose, keypoint arrays)
    rather than a VideoPose3D npz or an mvtools 2D table (which has fx, fy, cx, cy columns)."""
    if fmt != "auto":
        return True
    suf = inp.suffix.lower()
    if inp.is_dir() or suf in (".json", ".npy"):
        return True
    if suf == ".npz":
        with np.load(inp, allow_pickle=False) as z:
            return "positions_2d" not in z.files
    if suf == ".csv":
        head = inp.open().readline()
        return not all(c in [h.strip().strip('"') for h in head.split(",")] for c in INTRINSICS)
    return False


def _predict_keypoints(
    lift,
    inp: Path,
    device,
    cameras=None,
    camera: str | None = None,
    fmt: str = "auto",
    layout: str = "auto",
    focal_px=None,
    fov_deg=None,
    image_size=None,
) -> tuple[pa.Table, dict]:
    """One view's detector keypoints -> (table view, frame, confidence, joints3d; frames missing a joint
    are left out), arrays for npz output)."""
    from mvtools.ingest.keypoints.formats import read_view
    from mvtools.ingest.keypoints.intrinsics import load_intrinsics
    from mvtools.ingest.keypoints.layouts import to_h36m
    from mvtools.ingest.keypoints.people import select_person

    views = read_view(inp, fmt, layout)
    if len(views) != 1:
        raise DatasetError(f"{inp}: holds {len(views)} views ({[v.name for v in views]}); predict lifts one view")
    v = views[0]
    if camera is not None:
        v.name = camera
    if isinstance(image_size, str):
        try:
            image_size = tuple(int(x) for x in image_size.lower().split("x"))
        except ValueError:
            raise ValueError(f"--image-size must be WIDTHxHEIGHT px, got {image_size!r}") from None
    specs = [f"{v.name}={cameras}"] if cameras is not None else []
    cams, warns = load_intrinsics(specs, [v.name], {v.name: v.image_size}, focal_px, fov_deg, image_size)
    from mvtools.progress import log

    for w in warns:
        log(f"warning: {w}")
    cam = cams[v.name]
    one, _ = select_person(v.kp)
    uv, conf = to_h36m(one[..., :2], one[..., 2], v.layout)
    complete = np.isfinite(uv).all((1, 2))
    if not complete.any():
        raise DatasetError(f"{inp}: no frame has all 17 joints (missing keypoints); nothing to lift")
    if not complete.all():
        log(
            f"predict: {int((~complete).sum())} of {len(complete)} frames lack a joint (missing keypoints) and are "
            "left out of the output"
        )
    if lift.receptive_field() > 1:  # temporal: the whole sequence, a missing keypoint's frame filled as in augment
        seq = np.zeros(len(uv), np.int64)
        x = fill_invalid_rows(undistort_pixels(uv, cam), seq)
        K = np.broadcast_to(cam.intrinsics, (len(x), 4))
        pred = lift_pixels(lift, x, K, device, sequence=seq, frame=v.frames)[complete]
    else:
        x = undistort_pixels(uv[complete], cam)
        pred = lift_pixels(lift, x, np.broadcast_to(cam.intrinsics, (len(x), 4)), device)
    frames, conf = v.frames[complete], conf[complete]
    table = pa.table(
        {
            "camera": pa.array([v.name] * len(frames), pa.string()),
            "frame": pa.array(frames.astype(np.int32)),
            "confidence": fsl(np.clip(conf, 0, 1).astype(np.float32)),
            "joints3d": fsl(pred),
        }
    )
    return table, {"frames": frames, "joints3d": pred, "confidence": conf.astype(np.float32)}


def predict(
    run,
    inp,
    out,
    cameras=None,
    checkpoint: str = "best",
    device: str = DEFAULT_DEVICE,
    fmt: str = "auto",
    layout: str = "auto",
    camera: str | None = None,
    focal_px: float | None = None,
    fov_deg: float | None = None,
    image_size=None,
    overwrite: bool = False,
    test_flip: bool | None = None,
) -> Path:
    """Lift the 2D joints in ``inp`` with ``run``'s lifting branch and write ``out`` (.npz, .parquet or .csv).

    ``cameras`` ('h36m' or a camera JSON/TOML) is needed for VideoPose3D npz input. Detector keypoints of one view
    (``fmt`` auto | openpose | coco | mmpose | array, see :mod:`mvtools.ingest.keypoints.formats`) take their
    intrinsics from ``cameras`` (aniposelib TOML, OpenCV YAML/XML, JSON; ``camera`` names the camera in it) or a
    ``focal_px`` / ``fov_deg`` guess with ``image_size``. An existing ``out`` is replaced only with ``overwrite``,
    never if it is (or lies inside) the input or the run. ``test_flip``: flip averaging (None: the run's
    ``--test-flip``). Returns ``out``.
    """
    device = resolve_device(device)  # a clear error for cuda without CUDA, before anything is claimed
    cam_file = cameras if cameras is not None and str(cameras) != "h36m" else None
    with claim_output(out, "predictions", [inp, run, cam_file], overwrite, file=True):
        return _predict(
            run,
            inp,
            out,
            cameras,
            checkpoint,
            device,
            dict(fmt=fmt, layout=layout, camera=camera, focal_px=focal_px, fov_deg=fov_deg, image_size=image_size),
            test_flip,
        )


def _predict(run, inp, out, cameras, checkpoint, device, kp: dict, test_flip: bool | None = None) -> Path:
    from mvtools.train.inference import load_lifter

    inp, out = Path(inp), Path(out)
    if not inp.exists():
        raise FileNotFoundError(f"{inp}: no such input file")
    osuf = out.suffix.lower()
    if osuf not in (".npz", ".parquet", ".csv"):
        raise ValueError(f"{out}: output must end in .npz, .parquet or .csv")
    lift, _ = load_lifter(run, checkpoint, device, test_flip)
    if is_keypoints_input(inp, kp["fmt"]):
        table, arrays = _predict_keypoints(lift, inp, device, cameras, **kp)
        if osuf == ".npz":
            save_npz_atomic(
                out,
                **arrays,
                metadata=np.array(NPZ_METADATA, dtype=object),
            )
            return out
    elif inp.suffix.lower() == ".npz":
        positions, table = _predict_npz(lift, inp, cameras, device)
        if osuf == ".npz":
            save_npz_atomic(
                out,
                positions_3d=np.array(positions, dtype=object),
                metadata=np.array(NPZ_METADATA, dtype=object),
            )
            return out
    elif inp.suffix.lower() in (".parquet", ".csv"):
        if osuf == ".npz":
            raise ValueError(f"{out}: a table input writes .parquet or .csv, not .npz")
        table = _predict_table(lift, inp, device)
    else:
        raise ValueError(f"{inp}: input must be a VideoPose3D .npz, a .parquet or a .csv file")
    if osuf == ".parquet":
        write_table_atomic(table, out)
    else:
        xyz = joints_to_numpy(table.column("joints3d"), 3).reshape(-1, 3 * J)
        flat = table.drop_columns([c for c in ("joints3d", "confidence") if c in table.column_names])
        for i, c in enumerate(XYZ_COLUMNS):
            flat = flat.append_column(c, pa.array(xyz[:, i]))
        with atomic_path(out) as tmp:
            pacsv.write_csv(flat, tmp)
    return out
