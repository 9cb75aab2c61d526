"""A synthetic MPI-INF-3DHP release in the real file formats, for tests and benchmarks without the licensed data.

Training sequences: ``S*/Seq*/annot.mat`` (MAT v5 cell arrays annot2 px, annot3 / univ_annot3 mm per camera) and
``camera.calibration`` (the release's text format). Test sequences: ``mpi_inf_3dhp_test_set/TS*/annot_data.mat``
(MATLAB v7.3 = HDF5, as h5py sees it: (T, 1, 17, k)). The joint orders below are typed from the dataset's own
documentation, independently of the reader in :mod:`mvtools.ingest.mpi3dhp`, so the reader can be tested against
them. A walking, turning body (:func:`body28`) seen by 14 cameras (:func:`rig14`); 2D by OpenCV's projection.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np
from scipy.io import savemat

from mvtools.camera import Camera, look_at, tvec_from_center
from mvtools.ingest.mpi3dhp import write_calibration

#: annot.mat joint order, typed from the dataset's mpii_get_joint_set('all') (h36m_facts.md section 6.2).
NAMES28 = (
    "spine3 spine4 spine2 spine pelvis neck head head_top left_clavicle left_shoulder left_elbow "
    "left_wrist left_hand right_clavicle right_shoulder right_elbow right_wrist right_hand left_hip "
    "left_knee left_ankle left_foot left_toe right_hip right_knee right_ankle right_foot right_toe"
).split()
#: test-set joint order (mmhuman3d MPI_INF_3DHP_TEST_KEYPOINTS).
NAMES_TEST = (
    "head_top neck right_shoulder right_elbow right_wrist left_shoulder left_elbow left_wrist "
    "right_hip right_knee right_ankle left_hip left_knee left_ankle pelvis spine head"
).split()
# Body in its own frame: (right, up, forward) mm; left = -right.
_BODY = {
    "pelvis": (0, 950, 0),
    "spine": (0, 1040, 5),
    "spine2": (0, 1150, 5),
    "spine3": (0, 1250, 0),
    "spine4": (0, 1350, 0),
    "neck": (0, 1460, 10),
    "head": (0, 1570, 40),
    "head_top": (0, 1720, 10),
    "clavicle": (70, 1420, 10),
    "shoulder": (180, 1410, 0),
    "elbow": (205, 1130, 20),
    "wrist": (215, 890, 70),
    "hand": (218, 810, 85),
    "hip": (100, 910, 0),
    "knee": (110, 500, 35),
    "ankle": (112, 85, 0),
    "foot": (112, 35, 70),
    "toe": (112, 25, 160),
}


def body28(F: int, rng) -> dict[str, np.ndarray]:
    """{3DHP joint name: (F, 3)} in 3DHP's world (Y up, mm): the body turning, walking and swinging its arms."""
    yaw = np.linspace(0, 1.3, F) + rng.uniform(-0.05, 0.05, F)
    fwd = np.stack([np.sin(yaw), np.zeros(F), np.cos(yaw)], -1)
    up = np.array([0.0, 1.0, 0.0])
    right = np.cross(fwd, up)
    centre = np.stack([np.linspace(-300, 300, F), np.zeros(F), np.linspace(200, -100, F)], -1)
    out = {}
    for name in NAMES28:
        side, base = 0.0, name
        for pre, s in (("left_", -1.0), ("right_", 1.0)):
            if name.startswith(pre):
                side, base = s, name[len(pre) :]
        r, u, f = _BODY[base]
        r = side * r if side else r
        off = np.zeros((F, 3))
        if base in ("wrist", "hand", "elbow"):
            off[:, 2] = 60 * side * np.sin(np.linspace(0, 6, F))  # arm swing, mm
        out[name] = centre + (r + off[:, 0:1]) * right + (u + off[:, 1:2]) * up + (f + off[:, 2:3]) * fwd
    return out


def joints_array(d: dict, names) -> np.ndarray:
    """{joint name: (F, 3)} -> (F, len(names), 3) in the order ``names``."""
    return np.stack([d[n] for n in names], 1)


def rig14(rng) -> dict[int, Camera]:
    """14 cameras around the capture volume in 3DHP's world (Y up); 11-13 high up, looking down."""
    cams = {}
    for i in range(14):
        a = 2 * np.pi * i / 11
        if i < 11:
            C = np.array([4200 * np.sin(a), 900 + 150 * (i % 3), 4200 * np.cos(a)])
        else:
            C = np.array([1500 * np.sin(a), 3600, 1500 * np.cos(a)])
        R = look_at(C, np.array([0.0, 900.0, 0.0]), up=(0.0, 1.0, 0.0))
        cams[i] = Camera(
            camera=str(i),
            width=2048,
            height=2048,
            fx=1490 + 3 * i,
            fy=1492 + 3 * i,
            cx=1024 + i,
            cy=1020 - i,
            R=R,
            t=tvec_from_center(R, C),
        )
    return cams


def cv_project(Xw: np.ndarray, cam: Camera, dist=None) -> np.ndarray:
    """OpenCV reference projection of world points (..., 3) -> (..., 2) px."""
    pts = np.ascontiguousarray(Xw.reshape(-1, 3), np.float64)
    rvec = cv2.Rodrigues(np.ascontiguousarray(cam.R, np.float64))[0]
    uv = cv2.projectPoints(pts, rvec, np.asarray(cam.t, np.float64), cam.K, dist)[0]
    return uv.reshape(Xw.shape[:-1] + (2,))


def write_train_sequence(
    d: Path, F: int, rng, cams=None, univ_scale=0.9, cells=range(14), offsets=None, mat="v5", float32=False
):
    """Write annot.mat (MAT v5 cells) + camera.calibration for one sequence; returns (body dict, cameras)."""
    d.mkdir(parents=True, exist_ok=True)
    cams = cams or rig14(rng)
    body = body28(F, rng)
    X = joints_array(body, NAMES28)  # (F, 28, 3)
    pel = X[:, NAMES28.index("pelvis")][:, None]
    a2, a3, u3 = (np.empty((14, 1), object) for _ in range(3))
    for i in range(14):
        if i not in cells:
            a2[i, 0], a3[i, 0], u3[i, 0] = np.zeros((0, 56)), np.zeros((0, 84)), np.zeros((0, 84))
            continue
        c = cams[i]
        Xc = X @ c.R.T + c.t
        Pc = pel @ c.R.T + c.t
        if offsets and i in offsets:
            Xc = Xc + np.asarray(offsets[i])
        dt = np.float32 if float32 else np.float64
        a3[i, 0] = Xc.reshape(F, 84).astype(dt)
        u3[i, 0] = (Pc + univ_scale * (Xc - Pc)).reshape(F, 84).astype(dt)
        a2[i, 0] = cv_project(X, c).reshape(F, 56).astype(dt)
    data = {
        "annot2": a2,
        "annot3": a3,
        "univ_annot3": u3,
        "cameras": np.arange(14, dtype=np.uint8)[None],
        "frames": np.arange(F, dtype=np.uint16)[:, None],
    }
    if mat == "v5":
        savemat(d / "annot.mat", data)
    else:  # a v7.3 (HDF5) file where a v5 one is expected
        with h5py.File(d / "annot.mat", "w", userblock_size=512) as f:
            f["frames"] = np.arange(F, dtype=np.float64)[None]
        _matlab73_header(d / "annot.mat")
    write_calibration(d / "camera.calibration", cams)
    return body, cams


def _matlab73_header(path: Path) -> None:
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2018 HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(text.ljust(116, b" ") + b"\0" * 8 + b"\x00\x02IM")


TS1_K = dict(
    fx=7.32506 / 10 * 2048,
    fy=7.32506 / 10 * 2048 * 1.00044,
    cx=(5 - 0.0322884) / 10 * 2048,
    cy=(5 + 0.0929296) / 10 * 2048,
)  # the pixel aspect scales fy, not the principal point
TS5_K = dict(
    fx=8.770747185 / 10 * 1920,
    fy=8.770747185 / 5.625 * 1080 * 0.993236423,
    cx=(5 - 0.104908645) / 10 * 1920,
    cy=(2.8125 + 0.104899704) / 5.625 * 1080,
)  # 560.14 px
TS5_DIST = np.array([-0.276859611, 0.131125256, -0.000360494, -0.001149441, -0.049318332])


def write_test_sequence(
    d: Path,
    T: int,
    rng,
    outdoor=False,
    valid=None,
    activity=None,
    univ_scale=0.92,
    mat="v7.3",
    lengths=None,
    pinhole=False,
    shift_px=0.0,
):
    """Write annot_data.mat (MATLAB v7.3 layout as h5py sees it: (T, 1, 17, k)); returns arrays (test order)."""
    d.mkdir(parents=True, exist_ok=True)
    body = body28(T, rng)
    # put the body 4 m in front of a camera at the origin: camera frame x right, y down, z forward
    Xw = joints_array(body, NAMES_TEST)
    X = np.stack([Xw[..., 0], 1000 - Xw[..., 1], 4000 - Xw[..., 2]], -1)  # (T, 17, 3) mm camera frame
    pel = X[:, NAMES_TEST.index("pelvis")][:, None]
    U = pel + univ_scale * (X - pel)
    k = TS5_K if outdoor else TS1_K
    K = np.array([[k["fx"], 0, k["cx"]], [0, k["fy"], k["cy"]], [0, 0, 1]])
    x2 = (
        cv2.projectPoints(X.reshape(-1, 3), np.zeros(3), np.zeros(3), K, TS5_DIST if outdoor and not pinhole else None)[
            0
        ].reshape(T, 17, 2)
        + shift_px
    )
    valid = (rng.uniform(size=T) < 0.6) if valid is None else np.asarray(valid)
    activity = rng.integers(1, 8, T) if activity is None else np.asarray(activity)
    U_file = U.copy()
    U_file[~valid] *= 1.5  # invalid frames carry unusable annotations (wrong even root-relative)
    arrays = {
        "annot2": x2[:, None],
        "annot3": X[:, None],
        "univ_annot3": U_file[:, None],
        "valid_frame": valid.astype(np.float64)[:, None],
        "activity_annotation": activity.astype(np.float64)[:, None],
    }
    for key, n in (lengths or {}).items():
        arrays[key] = arrays[key][:n]
    if mat == "v7.3":
        with h5py.File(d / "annot_data.mat", "w", userblock_size=512) as f:
            for key, a in arrays.items():
                f.create_dataset(key, data=a).attrs["MATLAB_class"] = np.bytes_("double")
        _matlab73_header(d / "annot_data.mat")
    else:
        savemat(d / "annot_data.mat", {k: np.moveaxis(a, 0, -1) for k, a in arrays.items()})
    return {"annot2": x2, "annot3": X, "univ": U, "valid": valid, "activity": activity}
