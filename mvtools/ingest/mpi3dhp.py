"""MPI-INF-3DHP (Mehta et al., 3DV 2017) into the mvtools data model.

Training part: ``S1..S8/Seq1|Seq2/annot.mat`` (MAT v5: 14x1 cells ``annot2`` (N, 56) px, ``annot3`` and
``univ_annot3`` (N, 84) mm in each camera's frame, 28 joints) and ``camera.calibration`` (text, 14 cameras,
world->camera extrinsics in mm). Test part: ``mpi_inf_3dhp_test_set/TS1..TS6/annot_data.mat`` (MATLAB v7.3 =
HDF5: ``annot2`` (T, 1, 17, 2) px, ``annot3``/``univ_annot3`` (T, 1, 17, 3) mm camera frame, ``valid_frame``,
``activity_annotation``). See docs/3dhp.md for the choices made here:

- joints: the 17 H36M-compatible joints, reordered to mvtools' H36M-17 order;
- world: the calibration's world rotated so that Z is up (3DHP's world is +Y up); extrinsics rotated alike;
- training 3D: each camera's ``annot3`` mapped to that world and averaged over the selected cameras
  (their disagreement is reported in mm);
- test set: one camera per sequence, its camera frame is the world (R = I, t = 0); intrinsics from the test
  cameras' published calibration (``known``) or a least-squares fit to annot2/annot3 (``fit``);
- evaluation ground truth: ``joints3d_univ`` (``univ_annot3``, which the test-set README names for evaluation).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from mvtools.camera import Camera, check_cameras, project, project_camera_frame, project_pinhole
from mvtools.dataset import DatasetError, DatasetWriter, base_manifest, fsl, poses2d_table, poses3d_table, read_manifest
from mvtools.progress import log, progress
from mvtools.rotations import Y_UP_TO_Z_UP, nearest_rotation, rotation_angle_deg
from mvtools.skeleton import NUM_JOINTS

# ----------------------------------------------------------------------------- joints
#: The 28 joints of annot.mat (``mpii_get_joint_set('all')``), 0-based.
JOINTS28_NAMES = [
    "spine3",
    "spine4",
    "spine2",
    "spine",
    "pelvis",
    "neck",
    "head",
    "head_top",
    "left_clavicle",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "left_hand",
    "right_clavicle",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "right_hand",
    "left_hip",
    "left_knee",
    "left_ankle",
    "left_foot",
    "left_toe",
    "right_hip",
    "right_knee",
    "right_ankle",
    "right_foot",
    "right_toe",
]
#: 28 -> the 17 "relevant" joints, in the order the test set uses (``mpii_get_joint_set('relevant')``).
RELEVANT17_FROM_28 = np.array([7, 5, 14, 15, 16, 9, 10, 11, 23, 24, 25, 18, 19, 20, 4, 3, 6])
TEST17_NAMES = [JOINTS28_NAMES[i] for i in RELEVANT17_FROM_28]
#: mvtools H36M-17 index i takes 3DHP test-order index TEST17_TO_H36M[i] (pelvis, R leg, L leg, spine,
#: neck -> thorax, head -> neck/nose, head_top -> head, L arm, R arm).
TEST17_TO_H36M = np.array([14, 8, 9, 10, 11, 12, 13, 15, 1, 16, 0, 5, 6, 7, 2, 3, 4])
#: 28-joint annot.mat index of each H36M-17 joint.
ALL28_TO_H36M = RELEVANT17_FROM_28[TEST17_TO_H36M]
#: H36M-17 indices of the 14 joints the official PCK/AUC averages over (mpii joint groups: head top, neck,
#: shoulders, elbows, wrists, hips, knees, ankles; pelvis, spine and head are excluded).
PCK14_H36M = np.sort(np.argsort(TEST17_TO_H36M)[:14])

# ----------------------------------------------------------------------------- sequences
#: Frames per training sequence (``mpii_get_sequence_info``; MMPOSE ``train_frame_nums``).
TRAIN_FRAMES = {
    "S1": (6416, 12430),
    "S2": (6502, 6081),
    "S3": (12488, 12283),
    "S4": (6171, 6675),
    "S5": (12820, 12312),
    "S6": (6188, 6145),
    "S7": (6239, 6320),
    "S8": (6468, 6054),
}
#: Frame rate (Hz) per training sequence (``mpii_get_sequence_info``).
TRAIN_FPS = {(s, q): 25 for s in TRAIN_FRAMES for q in (1, 2)}
TRAIN_FPS.update({("S1", 2): 50, ("S3", 1): 50, ("S3", 2): 50, ("S5", 1): 50, ("S5", 2): 50})
#: Frames per test sequence (MMPOSE ``test_frame_nums``).
TEST_FRAMES = {"TS1": 6151, "TS2": 6080, "TS3": 5838, "TS4": 6007, "TS5": 320, "TS6": 492}
TEST_SCENES = {
    "TS1": "greenscreen",
    "TS2": "greenscreen",
    "TS3": "studio",
    "TS4": "studio",
    "TS5": "outdoor",
    "TS6": "outdoor",
}
#: ``activity_annotation`` codes 1..7.
ACTIVITIES = ("Stand/Walk", "Exercise", "Sit on Chair", "Reach/Crouch", "On Floor", "Sports", "Misc.")
NUM_CAMERAS = 14
#: The five chest-height cameras (Mehta et al. 3DV'17, used by Li et al. AAAI'20).
CHEST_CAMERAS = (0, 2, 4, 7, 8)
#: VNect's eight cameras (also MMPOSE's and PosePile's default).
VNECT_CAMERAS = (0, 1, 2, 4, 5, 6, 7, 8)
TEST_CAMERA_ID = "test"

#: Published test-camera calibration (as hard-coded by PosePile ``posepile/ds/tdhp/main.py``): focal length,
#: sensor size and principal-point offset in mm, pixel aspect, image size px, OpenCV distortion k1 k2 p1 p2 k3.
TEST_CAMERA_SPECS = {
    "studio": dict(
        size=(2048, 2048),
        sensor_mm=(10.0, 10.0),
        focal_mm=7.32506,
        aspect=1.00044,
        offset_mm=(-0.0322884, 0.0929296),
        distortion=None,
    ),
    "outdoor": dict(
        size=(1920, 1080),
        sensor_mm=(10.0, 5.625),
        focal_mm=8.770747185,
        aspect=0.993236423,
        offset_mm=(-0.104908645, 0.104899704),
        distortion=(-0.276859611, 0.131125256, -0.000360494, -0.001149441, -0.049318332),
    ),
}
TEST_INTRINSICS = ("auto", "known", "pinhole", "fit")
#: ``auto`` takes the published camera (``known``, with its distortion) or the same intrinsics without
#: distortion (``pinhole``), whichever reproduces the sequence's annot2 from annot3 better, and fails when neither
#: is within this RMS (px). On the real TS5/TS6, annot2 is undistorted: pinhole 0.28-0.76 px, known 9.4-11.0 px.
MAX_TEST_RMS_PX = 3.0
#: ``--cameras`` names: the paper's five chest-height cameras, VNect's eight, all fourteen.
CAMERA_SETS = {"chest": (0, 2, 4, 7, 8), "vnect": (0, 1, 2, 4, 5, 6, 7, 8), "all": tuple(range(14))}
#: ``split``: the training sequences, the test set, or both in one dataset.
SPLITS = ("train", "test", "both")

_CALIB_HEADER = "Skeletool Camera Calibration File"


# ----------------------------------------------------------------------------- camera.calibration
def read_calibration(path) -> dict[int, Camera]:
    """Cameras of a 3DHP ``camera.calibration`` file: {index: Camera} in the file's own world (Y up, mm).

    Intrinsics px from the 4x4 ``intrinsic`` (K in its top-left 3x3), extrinsics world->camera from the 4x4
    ``extrinsic`` ([R | t], t mm), image size px from ``size``. ``radial 0`` -> distortion model ``none``.
    Use :func:`to_z_up` for mvtools' Z-up world.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing (expected a 3DHP camera.calibration file)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot read ({e})") from None
    if not lines or not lines[0].strip().startswith(_CALIB_HEADER):
        raise DatasetError(f"{path}: not a 3DHP camera.calibration file (first line must start with {_CALIB_HEADER!r})")
    raw: dict[int, dict] = {}
    cur = None
    for n, line in enumerate(lines[1:], start=2):
        tok = line.split()
        if not tok:
            continue
        key, vals = tok[0], tok[1:]
        try:
            if key == "name":
                cur = int(vals[0])
                if cur in raw:
                    raise DatasetError(f"{path}:{n}: camera {cur} defined twice")
                raw[cur] = {"line": n}
                continue
            if cur is None:
                raise DatasetError(f"{path}:{n}: {key!r} before the first 'name' line")
            want = {"sensor": 2, "size": 2, "animated": 1, "intrinsic": 16, "extrinsic": 16, "radial": 1}.get(key)
            if want is None:
                continue  # unknown keys are ignored
            if len(vals) != want:
                raise DatasetError(f"{path}:{n}: {key} of camera {cur} has {len(vals)} numbers, expected {want}")
            raw[cur][key] = np.array([float(v) for v in vals])
        except (ValueError, IndexError):
            raise DatasetError(f"{path}:{n}: cannot parse {line.strip()!r}") from None
    if not raw:
        raise DatasetError(f"{path}: no cameras found")
    cams = {}
    for i, d in sorted(raw.items()):
        missing = [k for k in ("size", "intrinsic", "extrinsic") if k not in d]
        if missing:
            raise DatasetError(f"{path}: camera {i} (line {d['line']}) lacks {', '.join(missing)}")
        K = d["intrinsic"].reshape(4, 4)
        E = d["extrinsic"].reshape(4, 4)
        R, t = E[:3, :3], E[:3, 3]
        if abs(np.linalg.det(R) - 1) > 1e-3 or np.abs(R @ R.T - np.eye(3)).max() > 1e-3:
            raise DatasetError(f"{path}: camera {i}: extrinsic rotation is not orthonormal")
        if abs(K[0, 1]) > 1e-3 * abs(K[0, 0]):
            raise DatasetError(f"{path}: camera {i}: intrinsic skew {K[0, 1]} is not supported")
        if "radial" in d and d["radial"][0] != 0:
            raise DatasetError(
                f"{path}: camera {i}: 'radial {d['radial'][0]:g}' is not supported (only radial 0 = no lens distortion)"
            )
        # nearest_rotation removes the rounding of the printed matrix
        cams[i] = Camera(
            camera=str(i),
            width=int(d["size"][0]),
            height=int(d["size"][1]),
            fx=float(K[0, 0]),
            fy=float(K[1, 1]),
            cx=float(K[0, 2]),
            cy=float(K[1, 2]),
            R=nearest_rotation(R),
            t=t.astype(float),
            distortion_model="none",
            source="given",
        )
    check_cameras(cams.values(), str(path))  # fx, fy, size > 0, finite, no duplicated pose
    return cams


def to_z_up(cam: Camera) -> Camera:
    """A camera of 3DHP's Y-up world expressed in mvtools' Z-up world (``X' = Y_UP_TO_Z_UP @ X``)."""
    return cam.with_extrinsics(np.asarray(cam.R) @ Y_UP_TO_Z_UP.T, cam.t)


def write_calibration(path, cams: dict[int, Camera]) -> None:
    """Write cameras (in 3DHP's own world) as a 3DHP ``camera.calibration`` text file (for fixtures/export)."""
    out = [f"{_CALIB_HEADER} V1.0"]
    for i, c in sorted(cams.items()):
        K = np.eye(4)
        K[:3, :3] = c.K
        E = np.eye(4)
        E[:3, :3], E[:3, 3] = c.R, c.t
        sensor = (10.0, 10.0 * c.height / c.width)
        out += [
            f"name          {i}",
            f"  sensor      {sensor[0]:g} {sensor[1]:g}",
            f"  size        {c.width} {c.height}",
            "  animated    0",
            "  intrinsic   " + " ".join(f"{v:.10g}" for v in K.ravel()),
            "  extrinsic   " + " ".join(f"{v:.10g}" for v in E.ravel()),
            "  radial      0",
        ]
    Path(path).write_text("\n".join(out) + "\n")


# ----------------------------------------------------------------------------- .mat files
def mat_version(path) -> str:
    """'5' (MAT v5, scipy.io.loadmat) or '7.3' (HDF5, h5py) for an existing .mat file; DatasetError otherwise."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: missing")
    if h5py.is_hdf5(str(path)):
        return "7.3"
    with open(path, "rb") as f:
        head = f.read(128)
    if len(head) == 128 and head[:19] == b"MATLAB 5.0 MAT-file" and head[126:128] in (b"IM", b"MI"):
        return "5"
    raise DatasetError(f"{path}: not a MATLAB v5 or v7.3 (HDF5) .mat file")


def read_train_annot(path, cameras=None, num_frames: int | None = None) -> dict:
    """Read a training ``annot.mat`` (MAT v5).

    Returns ``annot2`` (C, F, 28, 2) px, ``annot3`` and ``univ_annot3`` (C, F, 28, 3) mm in each camera's
    frame, ``frames`` (F,) and ``cameras`` (C,) for the requested camera indices (default: all cells), F =
    ``num_frames`` (the first rows; default all rows).
    """
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: missing annotation file (expected a MAT v5 annot.mat)")
    if mat_version(path) != "5":
        raise DatasetError(
            f"{path}: is a MATLAB v7.3 (HDF5) file; a 3DHP training annot.mat is MAT v5 "
            "(the v7.3 annot_data.mat belongs to the test set)"
        )
    names = ("annot2", "annot3", "univ_annot3", "cameras", "frames")
    try:
        m = loadmat(str(path), variable_names=names)
    except Exception as e:  # scipy raises several types for corrupt files
        raise DatasetError(f"{path}: cannot read MAT v5 file ({e})") from None
    missing = [k for k in names[:3] if k not in m]
    if missing:
        raise DatasetError(f"{path}: lacks variable(s) {', '.join(missing)}")
    cells = {k: np.asarray(m[k], dtype=object).reshape(-1) for k in names[:3]}
    ncell = len(cells["annot2"])
    if any(len(v) != ncell for v in cells.values()):
        raise DatasetError(
            f"{path}: annot2/annot3/univ_annot3 have different numbers of cells "
            f"({', '.join(str(len(v)) for v in cells.values())})"
        )
    file_cams = np.asarray(m["cameras"]).reshape(-1).astype(int) if "cameras" in m else np.arange(ncell)
    if len(file_cams) != ncell:
        raise DatasetError(f"{path}: 'cameras' lists {len(file_cams)} cameras but annot2 has {ncell} cells")
    cameras = list(file_cams) if cameras is None else [int(c) for c in cameras]
    where = {int(c): i for i, c in enumerate(file_cams)}
    out = {"annot2": [], "annot3": [], "univ_annot3": []}
    rows = None
    for c in cameras:
        if c not in where:
            raise DatasetError(
                f"{path}: no annotations for camera {c} (file has cameras {', '.join(str(x) for x in file_cams)})"
            )
        for key, k in (("annot2", 2), ("annot3", 3), ("univ_annot3", 3)):
            a = np.asarray(cells[key][where[c]], dtype=np.float64)
            if a.ndim != 2 or a.shape[1] != 28 * k:
                raise DatasetError(f"{path}: {key} of camera {c} has shape {a.shape}, expected (N, {28 * k})")
            if rows is None:
                rows = a.shape[0]
            elif a.shape[0] != rows:
                raise DatasetError(
                    f"{path}: {key} of camera {c} has {a.shape[0]} rows but annot2 of camera "
                    f"{cameras[0]} has {rows}; the sequence lengths disagree"
                )
            out[key].append(a)
    F = rows if num_frames is None else int(num_frames)
    if rows is not None and rows < F:
        raise DatasetError(
            f"{path}: {rows} annotated frames, fewer than the {F} frames this sequence has "
            "(frame-count table of mpii_get_sequence_info)"
        )
    res = {key: np.stack([a[:F] for a in v]).reshape(len(cameras), F, 28, -1) for key, v in out.items()}
    for key, a in res.items():  # refused like H36M's NaN/inf (mvtools.dataset.check_values is the last guard)
        if not np.isfinite(a).all():
            raise DatasetError(f"{path}: {key} holds NaN/inf values")
    frames = np.arange(F)
    if "frames" in m and np.size(m["frames"]) >= F:
        frames = np.asarray(m["frames"]).reshape(-1)[:F].astype(np.int64)
    res["frames"] = frames
    res["cameras"] = np.array(cameras, int)
    res["rows"] = rows
    return res


def read_test_annot(path) -> dict:
    """Read a test-set ``annot_data.mat`` (MATLAB v7.3 / HDF5).

    Returns ``annot2`` (T, 17, 2) px, ``annot3`` and ``univ_annot3`` (T, 17, 3) mm camera frame, all in the
    test set's own 17-joint order (:data:`TEST17_NAMES`), ``valid`` (T,) bool and ``activity`` (T,) int codes.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: missing annotation file (expected a MATLAB v7.3 annot_data.mat)")
    if mat_version(path) != "7.3":
        raise DatasetError(f"{path}: is a MAT v5 file; the 3DHP test-set annot_data.mat is MATLAB v7.3 (HDF5)")
    out = {}
    try:
        with h5py.File(path, "r") as f:
            for key in ("annot2", "annot3", "univ_annot3", "valid_frame", "activity_annotation"):
                if key not in f:
                    raise DatasetError(f"{path}: lacks variable {key}")
                out[key] = np.asarray(f[key])
    except OSError as e:
        raise DatasetError(f"{path}: cannot read HDF5 file ({e})") from None
    T = out["annot2"].shape[0] if out["annot2"].ndim else 0
    res = {}
    for key, k in (("annot2", 2), ("annot3", 3), ("univ_annot3", 3)):
        a = out[key]
        if a.ndim < 3 or a.shape[-2:] != (17, k) or a.size != a.shape[0] * 17 * k:
            raise DatasetError(f"{path}: {key} has shape {a.shape} (as h5py reads it), expected (T, 1, 17, {k})")
        if a.shape[0] != T:
            raise DatasetError(f"{path}: {key} has {a.shape[0]} frames but annot2 has {T}; the lengths disagree")
        res[key] = a.reshape(T, 17, k).astype(np.float64)
        if not np.isfinite(res[key]).all():
            raise DatasetError(f"{path}: {key} holds NaN/inf values")
    for key in ("valid_frame", "activity_annotation"):
        a = out[key]
        if a.size != T:
            raise DatasetError(f"{path}: {key} has {a.size} entries but annot2 has {T} frames; the lengths disagree")
    res["valid"] = out["valid_frame"].reshape(T) != 0
    res["activity"] = np.rint(out["activity_annotation"].reshape(T)).astype(np.int64)
    return res


# ----------------------------------------------------------------------------- test cameras
def test_camera(scene_kind: str, subject: str = "", distortion: bool = True) -> Camera:
    """The published camera of a test sequence (``studio``: TS1-4, ``outdoor``: TS5-6), camera frame = world.

    fx = f / sensor_w * W, fy = f / sensor_h * H * aspect, cx = (sensor_w / 2 + offset_x) / sensor_w * W,
    cy = (sensor_h / 2 + offset_y) / sensor_h * H (px): the pixel aspect scales the focal length only, not the
    principal point (TS5/TS6: cy 560.14 px, the value the annotations imply; scaling it too gave 556.35).
    Outdoor adds OpenCV distortion unless ``distortion`` is False.
    """
    s = TEST_CAMERA_SPECS[scene_kind]
    (W, H), (sw, sh), f, a = s["size"], s["sensor_mm"], s["focal_mm"], s["aspect"]
    ox, oy = s["offset_mm"]
    kx, ky = W / sw, H / sh
    d = s["distortion"] if distortion else None
    kw = {} if d is None else dict(k=(d[0], d[1], d[4]), p=(d[2], d[3]), distortion_model="opencv")
    return Camera(
        camera=TEST_CAMERA_ID,
        width=W,
        height=H,
        fx=f * kx,
        fy=f * ky * a,
        cx=(sw / 2 + ox) * kx,
        cy=(sh / 2 + oy) * ky,
        R=np.eye(3),
        t=np.zeros(3),
        subject=subject,
        source="given",
        **kw,
    )


def fit_intrinsics(x2d: np.ndarray, X3d: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares pinhole [fx, fy, cx, cy] px from 2D (..., 2) px and camera-frame 3D (..., 3) mm
    (u = fx X/Z + cx, v = fy Y/Z + cy), and the RMS reprojection error px."""
    x = np.asarray(x2d, np.float64).reshape(-1, 2)
    X = np.asarray(X3d, np.float64).reshape(-1, 3)
    ok = np.isfinite(x).all(1) & np.isfinite(X).all(1) & (X[:, 2] > 1e-6)
    x, X = x[ok], X[ok]
    if len(x) < 2:
        raise ValueError("need at least two points in front of the camera to fit intrinsics")
    par = []
    for ax in (0, 1):
        A = np.stack([X[:, ax] / X[:, 2], np.ones(len(X))], 1)
        par.append(np.linalg.lstsq(A, x[:, ax], rcond=None)[0])
    intr = np.array([par[0][0], par[1][0], par[0][1], par[1][1]])
    res = project_pinhole(X, intr) - x
    return intr, float(np.sqrt((res**2).sum(1).mean()))


def _rms_px(cam: Camera, x2d: np.ndarray, Xc: np.ndarray) -> float:
    ok = np.isfinite(x2d).all(-1) & np.isfinite(Xc).all(-1) & (Xc[..., 2] > 1e-6)
    if not ok.any():
        return float("nan")
    d = project_camera_frame(Xc[ok], cam) - x2d[ok]
    return float(np.sqrt((d**2).sum(-1).mean()))


# ----------------------------------------------------------------------------- layout
def _train_root(root: Path) -> Path:
    for cand in (root, root / "train"):
        if any((cand / s).is_dir() for s in TRAIN_FRAMES):
            return cand
    return root


def _test_root(root: Path) -> Path:
    for cand in (
        root / "mpi_inf_3dhp_test_set",
        root / "mpi_inf_3dhp_test_set" / "mpi_inf_3dhp_test_set",
        root / "test",
        root,
    ):
        if any((cand / s).is_dir() for s in TEST_FRAMES):
            return cand
    return root / "mpi_inf_3dhp_test_set"


def _pick(subjects, known, present, kind, where: Path) -> list[str]:
    if subjects is None:
        chosen = [s for s in known if s in present]
        if not chosen:
            raise DatasetError(f"{where}: no {kind} sequence directories ({', '.join(known)}) found")
        return chosen
    chosen = [s for s in known if s in subjects]
    for s in chosen:
        if s not in present:
            raise DatasetError(f"{where / s}: missing (requested subject {s})")
    return chosen


# ----------------------------------------------------------------------------- ingest
def _sequence_table(action, subaction, raw_name, frames, joints, univ, valid, scene) -> pa.Table:
    t = poses3d_table(action if isinstance(action, str) else "", subaction, raw_name, frames, joints)
    if not isinstance(action, str):
        t = t.set_column(0, "action", pa.array(np.asarray(action, dtype=object), pa.string()))
    n = len(frames)
    t = t.append_column("valid", pa.array(np.asarray(valid, bool)))
    t = t.append_column("scene", pa.array(np.full(n, scene, dtype=object), pa.string()))
    return t.append_column(
        pa.field("joints3d_univ", pa.list_(pa.float32(), NUM_JOINTS * 3)), fsl(np.asarray(univ, np.float32))
    )


def _ingest_train_sequence(w: DatasetWriter, seq_dir: Path, subject: str, q: int, cameras, F: int) -> tuple:
    calib_path = seq_dir / "camera.calibration"
    calib = read_calibration(calib_path)
    bad = [c for c in cameras if c not in calib]
    if bad:
        raise DatasetError(
            f"{calib_path}: no camera {', '.join(map(str, bad))} (the file has cameras "
            f"{', '.join(map(str, sorted(calib)))})"
        )
    a = read_train_annot(seq_dir / "annot.mat", cameras, F)
    R = np.stack([calib[c].R for c in cameras])
    t = np.stack([calib[c].t for c in cameras])
    Q = Y_UP_TO_Z_UP

    def world(Xc):  # (C, F, 17, 3) camera frames -> per-camera Z-up world
        return np.einsum("cfjk,ckl,ml->cfjm", Xc - t[:, None, None, :], R, Q)

    Xw = world(a["annot3"][:, :, ALL28_TO_H36M])
    Uw = world(a["univ_annot3"][:, :, ALL28_TO_H36M])
    X, U = Xw.mean(0), Uw.mean(0)
    disagree = float(np.nanmax(np.linalg.norm(Xw - X, axis=-1))) if F else 0.0
    cams = [replace(to_z_up(calib[c]), subject=subject) for c in cameras]
    x2d = a["annot2"][:, :, ALL28_TO_H36M]
    proj = np.stack([project(X, cam) for cam in cams])
    rms = float(np.sqrt(np.nanmean(((proj - x2d) ** 2).sum(-1)))) if F else 0.0
    up = np.nanmean(X[:, 8] - X[:, 0], axis=0) if F else np.array([0, 0, 1.0])
    up_angle = float(np.degrees(np.arccos(np.clip(up[2] / max(np.linalg.norm(up), 1e-12), -1, 1))))
    frames = a["frames"]
    action, raw = f"Seq{q}", f"{subject}/Seq{q}"
    w.add_poses3d(subject, _sequence_table(action, 1, raw, frames, X, U, np.ones(F, bool), "training"))
    C = len(cameras)
    w.add_poses2d(
        subject,
        poses2d_table(
            action,
            1,
            raw,
            np.tile(frames, C),
            np.repeat([str(c) for c in cameras], F),
            x2d.reshape(C * F, NUM_JOINTS, 2),
            None,
            "gt",
        ),
    )
    report = {
        "subject": subject,
        "sequence": f"Seq{q}",
        "frames": F,
        "annot_rows": a["rows"],
        "fps": TRAIN_FPS.get((subject, q)),
        "cameras": [int(c) for c in cameras],
        "max_camera_disagreement_mm": round(disagree, 4),
        "reprojection_rms_px": round(rms, 4),
        "thorax_up_angle_deg": round(up_angle, 2),
    }
    return cams, report


def _rig_difference(a: list[Camera], b: list[Camera]) -> tuple[float, float, float]:
    """(max centre distance mm, max rotation angle deg, max intrinsic difference px) between two rigs."""
    dc = max(float(np.linalg.norm(x.C - y.C)) for x, y in zip(a, b))
    dr = max(float(rotation_angle_deg(x.R, y.R)) for x, y in zip(a, b))
    dk = max(float(np.abs(x.intrinsics - y.intrinsics).max()) for x, y in zip(a, b))
    return dc, dr, dk


def _ingest_test_sequence(w: DatasetWriter, ts_dir: Path, subject: str, F: int, intrinsics: str) -> tuple:
    path = ts_dir / "annot_data.mat"
    a = read_test_annot(path)
    T = len(a["valid"])
    if T < F:
        raise DatasetError(f"{path}: {T} annotated frames, fewer than the {F} frames of {subject} (frame-count table)")
    a = {k: v[:F] for k, v in a.items()}
    valid = a["valid"]
    scene = TEST_SCENES[subject]
    kind = "outdoor" if scene == "outdoor" else "studio"
    known = test_camera(kind, subject)
    pinhole = test_camera(kind, subject, distortion=False)
    sel = valid if valid.any() else np.ones(F, bool)
    x2d = a["annot2"][:, TEST17_TO_H36M]
    X = a["annot3"][:, TEST17_TO_H36M]
    U = a["univ_annot3"][:, TEST17_TO_H36M]
    fitted, rms_fit = fit_intrinsics(x2d[sel], X[sel]) if F else (known.intrinsics, float("nan"))
    rms_known = _rms_px(known, x2d[sel], X[sel])
    rms_pinhole = _rms_px(pinhole, x2d[sel], X[sel])
    chosen = intrinsics
    if intrinsics == "auto":
        chosen = "known" if rms_known <= rms_pinhole else "pinhole"
        best = min(rms_known, rms_pinhole)
        if not best <= MAX_TEST_RMS_PX:
            raise DatasetError(
                f"{path}: neither the published camera ({rms_known:.2f} px RMS with its lens distortion) nor its "
                f"pinhole ({rms_pinhole:.2f} px) reproduces annot2 from annot3 within {MAX_TEST_RMS_PX:g} px (a "
                f"least-squares pinhole fit gives {rms_fit:.2f} px); check the file, or pass --test-intrinsics fit"
            )
    if chosen == "known":
        cam = known
    elif chosen == "pinhole":
        cam = pinhole
    else:
        fx, fy, cx, cy = fitted
        cam = Camera(
            camera=TEST_CAMERA_ID,
            width=known.width,
            height=known.height,
            fx=fx,
            fy=fy,
            cx=cx,
            cy=cy,
            R=np.eye(3),
            t=np.zeros(3),
            subject=subject,
            source="given",
        )
    rms_chosen = {"known": rms_known, "pinhole": rms_pinhole, "fit": rms_fit}[chosen]
    if intrinsics != "auto" and not rms_chosen <= MAX_TEST_RMS_PX:
        log(
            f"warning: {path}: the {chosen} test camera reproduces annot2 to {rms_chosen:.2f} px RMS only "
            f"(known {rms_known:.2f}, pinhole {rms_pinhole:.2f}, fit {rms_fit:.2f} px); --test-intrinsics auto picks"
        )
    codes = a["activity"]
    names = np.array(ACTIVITIES + ("Unknown",), dtype=object)
    inrange = (codes >= 1) & (codes <= len(ACTIVITIES))
    bad = valid & ~inrange
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"{path}: activity_annotation {codes[i]} at frame {i} (a valid frame) is not 1..7")
    action = names[np.where(inrange, codes - 1, len(ACTIVITIES))]
    frames = np.arange(F)
    w.add_poses3d(subject, _sequence_table(action, 1, subject, frames, X, U, valid, scene))
    t2 = poses2d_table("", 1, subject, frames, TEST_CAMERA_ID, x2d, None, "gt")
    t2 = t2.set_column(0, "action", pa.array(action, pa.string()))
    w.add_poses2d(subject, t2)
    report = {
        "subject": subject,
        "frames": F,
        "annot_rows": T,
        "valid_frames": int(valid.sum()),
        "scene": scene,
        "intrinsics": intrinsics,
        "camera_chosen": chosen,
        "camera": {
            "width": cam.width,
            "height": cam.height,
            "fx": cam.fx,
            "fy": cam.fy,
            "cx": cam.cx,
            "cy": cam.cy,
            "distortion_model": cam.distortion_model,
        },
        "reprojection_rms_px_known": round(rms_known, 4),
        "reprojection_rms_px_pinhole": round(rms_pinhole, 4),
        "reprojection_rms_px_fit": round(rms_fit, 4),
        "fitted_intrinsics_px": [round(float(v), 4) for v in fitted],
    }
    return cam, report


def ingest_3dhp(
    root,
    out,
    split: str = "train",
    cameras=CHEST_CAMERAS,
    subjects=None,
    *,
    test_intrinsics: str = "auto",
    frame_counts: dict | None = None,
    command: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Read an MPI-INF-3DHP tree into a dataset directory ``out`` (written atomically).

    root: the dataset root holding ``S1..S8/Seq{1,2}/`` and/or ``mpi_inf_3dhp_test_set/TS1..TS6/`` (MMPOSE's
    ``train/`` and ``test/`` layout is accepted too). split: ``train``, ``test`` or ``both``. cameras: training
    camera indices 0..13 (default the five chest-height cameras). subjects: e.g. ``["S1", "TS1"]`` (default all
    present). test_intrinsics: ``auto`` (per sequence the published camera or its pinhole, whichever reproduces
    annot2; an error when neither is within :data:`MAX_TEST_RMS_PX`), ``known`` (published calibration with its
    distortion), ``pinhole`` (the same without distortion) or ``fit`` (least squares from annot2/annot3).
    frame_counts: overrides of the frame-count tables, keyed ``"S1/Seq1"`` or ``"TS1"``.
    Returns a summary dict (also stored under ``manifest["mpi3dhp"]``): per-sequence frame counts, camera
    disagreement (mm), reprojection RMS (px).
    """
    root, out = Path(root), Path(out)
    if split not in SPLITS:
        raise ValueError(f"split must be train, test or both, got {split!r}")
    if test_intrinsics not in TEST_INTRINSICS:
        raise ValueError(f"test_intrinsics must be one of {TEST_INTRINSICS}, got {test_intrinsics!r}")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory (expected the MPI-INF-3DHP root)")
    if isinstance(cameras, str):
        if cameras.lower() not in CAMERA_SETS:
            raise ValueError(f"cameras {cameras!r}: expected one of {', '.join(CAMERA_SETS)} or a list of indices")
        cameras = CAMERA_SETS[cameras.lower()]
    cameras = [int(c) for c in cameras]
    if not cameras:
        raise ValueError("no cameras selected")
    if len(set(cameras)) != len(cameras):
        raise ValueError(f"camera indices repeat: {cameras}")
    counts = dict(frame_counts or {})
    if subjects is not None:
        subjects = list(subjects)
        unknown = [s for s in subjects if s not in TRAIN_FRAMES and s not in TEST_FRAMES]
        if unknown:
            raise ValueError(f"unknown 3DHP subject(s) {', '.join(unknown)} (training S1..S8, test TS1..TS6)")
    jobs = []
    if split in ("train", "both"):
        tr = _train_root(root)
        present = {s for s in TRAIN_FRAMES if (tr / s).is_dir()}
        want = None if subjects is None else [s for s in subjects if s in TRAIN_FRAMES]
        if want is None or want or split == "train":
            for s in _pick(want, list(TRAIN_FRAMES), present, "training", tr):
                for q in (1, 2):
                    jobs.append(
                        ("train", s, q, tr / s / f"Seq{q}", int(counts.get(f"{s}/Seq{q}", TRAIN_FRAMES[s][q - 1])))
                    )
    if split in ("test", "both"):
        te = _test_root(root)
        present = {s for s in TEST_FRAMES if (te / s).is_dir()}
        want = None if subjects is None else [s for s in subjects if s in TEST_FRAMES]
        if want is None or want or split == "test":
            for s in _pick(want, list(TEST_FRAMES), present, "test", te):
                jobs.append(("test", s, 0, te / s, int(counts.get(s, TEST_FRAMES[s]))))
    if not jobs:
        raise ValueError(f"nothing to ingest: no {split} subjects among {', '.join(subjects or [])}")
    for kind, s, q, d, _ in jobs:  # fail early on missing files, before any work
        for f in (d / "annot.mat", d / "camera.calibration") if kind == "train" else (d / "annot_data.mat",):
            if not f.is_file():
                raise DatasetError(f"{f}: missing (needed for {s}{f' Seq{q}' if q else ''})")
    train_reports, test_reports, all_cams = [], [], []
    rigs: dict[str, tuple[Path, list[Camera]]] = {}
    with DatasetWriter(out, [root], overwrite) as w, progress(length=len(jobs), label="3dhp") as bar:
        for kind, s, q, d, F in jobs:
            if kind == "train":
                cams, rep = _ingest_train_sequence(w, d, s, q, cameras, F)
                if s in rigs:
                    first, rig0 = rigs[s]
                    dc, dr, dk = _rig_difference(rig0, cams)
                    rep["rig_difference"] = {
                        "centre_mm": round(dc, 4),
                        "rotation_deg": round(dr, 5),
                        "intrinsics_px": round(dk, 4),
                    }
                    if dc > 5.0 or dr > 0.1 or dk > 1.0:
                        raise DatasetError(
                            f"{d / 'camera.calibration'}: cameras differ from {first} (centre {dc:.1f} mm, "
                            f"rotation {dr:.3f} deg, intrinsics {dk:.2f} px); mvtools stores one rig per subject"
                        )
                else:
                    rigs[s] = (d / "camera.calibration", cams)
                    all_cams += cams
                if rep["max_camera_disagreement_mm"] > 10:
                    log(
                        f"warning: {d}: cameras disagree on the world joints by up to "
                        f"{rep['max_camera_disagreement_mm']:.1f} mm"
                    )
                train_reports.append(rep)
            else:
                cam, rep = _ingest_test_sequence(w, d, s, F, test_intrinsics)
                all_cams.append(cam)
                test_reports.append(rep)
            bar.update(1)
        train_subj = list(dict.fromkeys(r["subject"] for r in train_reports))
        test_subj = [r["subject"] for r in test_reports]
        summary = {
            "split": split,
            "cameras": cameras if train_reports else [],
            "test_intrinsics": test_intrinsics,
            "train": train_reports,
            "test": test_reports,
            "max_camera_disagreement_mm": max((r["max_camera_disagreement_mm"] for r in train_reports), default=None),
            "world": "training: 3DHP calibration world rotated to Z up (x, y, z) -> (x, -z, y), mm; "
            "test: each sequence's camera frame (R = I, t = 0), mm",
        }
        seq_fps = {f"{r['subject']}/{r['sequence']}": r["fps"] for r in train_reports}
        seq_fps.update({s: None for s in test_subj})
        manifest = base_manifest(
            "mpi-inf-3dhp",
            splits={"train": train_subj, "test": test_subj},
            fps=None,
            command=command,
            sequence_fps=seq_fps,
            evaluation={
                "reference_column": "joints3d_univ",
                "metrics": ["pck150", "auc"],
                "root_joint": 0,
                "valid_column": "valid",
                "scene_column": "scene",
                "pck_joints": PCK14_H36M.tolist(),
                "note": "univ_annot3, valid frames only, root-relative (pelvis), PCK@150 mm and AUC over "
                "linspace(0, 150, 31) mm; pck150/auc average over the 14 pck_joints (pelvis, "
                "spine, neck/nose excluded: the widely copied mpii_get_pck_auc_joint_groups.m); "
                "evaluate also reports pck150_all_joints/auc_all_joints over all 17 (the "
                "unmodified joint groups, mmpose); see docs/3dhp.md",
            },
            notes={
                "fps": "per sequence in sequence_fps (training 25 or 50 Hz; test not recorded here)",
                "frames": "training: row index of annot.mat (first F rows, F from mpii_get_sequence_info); "
                "test: 0-based frame index (image img_<frame+1>.jpg)",
                "action": "training: Seq1/Seq2; test: activity label per frame",
            },
            mpi3dhp=summary,
        )
        w.set_cameras(all_cams)
        w.commit(manifest)
    return dict(summary, out=str(out), rows=read_manifest(out)["rows"])
