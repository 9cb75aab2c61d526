"""Camera geometry on batched numpy arrays.

Conventions (used everywhere in mvtools):
- World frame: millimetres. Camera frame: x right, y down, z forward (OpenCV); points in front have z > 0.
- Extrinsics are world->camera: ``X_cam = R @ X_world + t`` with ``t`` in mm (an OpenCV tvec).
  The camera centre in world mm is ``C = -R.T @ t``.
- Intrinsics in pixels: fx, fy, cx, cy. Distortion model is either ``"h36m"`` (the Human3.6M /
  VideoPose3D formula, coefficients k1, k2, k3 radial and p1, p2 = VideoPose3D's tangential_distortion
  [t0, t1]), ``"opencv"`` (Brown-Conrady as in cv2.projectPoints, k1, k2, p1, p2, k3) or ``"none"``.
- Relative transform between two cameras in the paper's form (Li et al., eq. 3-4):
  ``Y_2 = R_1to2 @ (Y_1 - t_1to2)`` with ``R_1to2 = R_2 R_1^T`` and ``t_1to2 = R_1 (C_2 - C_1)`` (mm).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


# ----------------------------------------------------------------------------- orientation
def look_at(C: np.ndarray, target: np.ndarray, up: np.ndarray = (0.0, 0.0, 1.0)) -> np.ndarray:
    """World->camera rotation (..., 3, 3) of cameras at C (..., 3) looking at target, with no roll.

    The camera z axis points at the target; the image y axis (down) lies in the vertical plane, pointing
    towards world -up.
    """
    C = np.asarray(C, dtype=np.float64)
    z = np.asarray(target, dtype=np.float64) - C
    z = z / np.linalg.norm(z, axis=-1, keepdims=True)
    up = np.broadcast_to(np.asarray(up, dtype=np.float64), z.shape)
    x = np.cross(z, up)
    x = x / np.linalg.norm(x, axis=-1, keepdims=True)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=-2)


# ----------------------------------------------------------------------------- rigid transforms
def world_to_camera(X: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """World points (..., 3) mm -> camera frame (..., 3) mm with world->camera R (3,3), t (3,)."""
    return X @ np.asarray(R).T + np.asarray(t)


def camera_to_world(Xc: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Camera-frame points (..., 3) mm -> world (..., 3) mm."""
    return (Xc - np.asarray(t)) @ np.asarray(R)


def camera_center(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Camera centre C = -R^T t (..., 3) in world mm."""
    return -np.einsum("...ji,...j->...i", R, t)


def tvec_from_center(R: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Translation t = -R C (..., 3) of a camera with world->camera R and centre C."""
    return -np.einsum("...ij,...j->...i", R, C)


def relative_transform(R1, t1, R2, t2):
    """Paper eq. 4: (R_1to2 (..., 3, 3), t_1to2 (..., 3) mm) with ``Y_2 = R_1to2 (Y_1 - t_1to2)``."""
    C1, C2 = camera_center(R1, t1), camera_center(R2, t2)
    R12 = R2 @ np.swapaxes(R1, -1, -2)
    t12 = np.einsum("...ij,...j->...i", R1, C2 - C1)
    return R12, t12


def apply_relative(Y: np.ndarray, R12: np.ndarray, t12: np.ndarray) -> np.ndarray:
    """Paper eq. 3: tau(Y) = R_1to2 (Y - t_1to2) for points (..., J, 3), R (..., 3, 3), t (..., 3)."""
    return np.einsum("...ij,...kj->...ki", R12, Y - np.asarray(t12)[..., None, :])


# ----------------------------------------------------------------------------- projection
def project_pinhole(Xc: np.ndarray, intr: np.ndarray) -> np.ndarray:
    """Paper eq. 1. Camera-frame points (..., 3) mm, intrinsics (..., 4) [fx, fy, cx, cy] px -> (..., 2) px.

    ``intr`` broadcasts against the point batch without its last axis, e.g. (N, 1, 4) for (N, J, 3).
    """
    intr = np.asarray(intr)
    xy = Xc[..., :2] / Xc[..., 2:3]
    return xy * intr[..., 0:2] + intr[..., 2:4]


def distort_normalized(xy: np.ndarray, k: np.ndarray, p: np.ndarray, model: str) -> np.ndarray:
    """Apply lens distortion to normalised image coordinates (..., 2).

    k = (k1, k2, k3) radial, p = (p1, p2) tangential in the convention of ``model``.
    """
    if model == "none":
        return xy
    k1, k2, k3 = k
    p1, p2 = p
    if model == "h36m":
        # Human3.6M / VideoPose3D project_to_2d: clamp, radial, and its own tangential form.
        xy = np.clip(xy, -1.0, 1.0)
        r2 = xy[..., :1] * xy[..., :1] + xy[..., 1:2] * xy[..., 1:2]
        radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
        tan = p1 * xy[..., :1] + p2 * xy[..., 1:2]
        return xy * (radial + tan) + np.array([p1, p2]) * r2
    if model == "opencv":
        x, y = xy[..., 0], xy[..., 1]
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return np.stack([xd, yd], -1)
    raise ValueError(f"unknown distortion model {model!r} (expected h36m, opencv or none)")


def undistort_normalized(xyd: np.ndarray, k, p, model: str, iters: int = 50, tol: float = 1e-14) -> np.ndarray:
    """Invert ``distort_normalized`` by fixed-point iteration (vectorised), (..., 2) -> (..., 2).

    Stops when the largest residual is below ``tol`` (normalised units; 1e-14 is ~1e-11 px) or after ``iters``.
    """
    if model == "none" or (not np.any(k) and not np.any(p)):
        return np.array(xyd, dtype=np.float64)
    xyd = np.asarray(xyd, dtype=np.float64)
    xy = xyd.copy()
    for _ in range(iters):
        err = distort_normalized(xy, k, p, model) - xyd
        xy -= err
        if xy.size == 0 or np.abs(err).max() < tol:
            break
    return xy


@dataclass(frozen=True)
class Camera:
    """One row of ``cameras.parquet``: a calibrated camera of one subject's rig (units mm, px)."""

    camera: str
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    R: np.ndarray = field(repr=False)  # (3, 3) world->camera
    t: np.ndarray = field(repr=False)  # (3,) mm
    k: tuple = (0.0, 0.0, 0.0)
    p: tuple = (0.0, 0.0)
    distortion_model: str = "none"
    subject: str = ""
    source: str = "given"

    @property
    def C(self) -> np.ndarray:
        return camera_center(self.R, self.t)

    @property
    def intrinsics(self) -> np.ndarray:
        """[fx, fy, cx, cy] px."""
        return np.array([self.fx, self.fy, self.cx, self.cy])

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1.0]])

    def with_extrinsics(self, R, t, source: str | None = None) -> Camera:
        return replace(self, R=np.asarray(R, float), t=np.asarray(t, float), source=source or self.source)

    def opencv_distortion(self) -> np.ndarray:
        """Closest OpenCV [k1, k2, p1, p2, k3] (exact for ``opencv``/``none``; for ``h36m`` the
        tangential terms differ slightly, see docs/data-model.md)."""
        k1, k2, k3 = self.k
        p1, p2 = self.p
        if self.distortion_model == "h36m":
            return np.array([k1, k2, p2, p1, k3])
        if self.distortion_model == "none":
            return np.zeros(5)
        return np.array([k1, k2, p1, p2, k3])


def project(X_world: np.ndarray, cam: Camera, distort: bool = True) -> np.ndarray:
    """World points (..., 3) mm -> pixels (..., 2) through ``cam`` (with its lens distortion)."""
    Xc = world_to_camera(X_world, cam.R, cam.t)
    return project_camera_frame(Xc, cam, distort)


def project_camera_frame(Xc: np.ndarray, cam: Camera, distort: bool = True) -> np.ndarray:
    """Camera-frame points (..., 3) mm -> pixels (..., 2)."""
    xy = Xc[..., :2] / Xc[..., 2:3]
    if distort:
        xy = distort_normalized(xy, cam.k, cam.p, cam.distortion_model)
    return xy * np.array([cam.fx, cam.fy]) + np.array([cam.cx, cam.cy])


def undistort_pixels(uv: np.ndarray, cam: Camera) -> np.ndarray:
    """Distorted pixels (..., 2) -> the pixels an ideal pinhole camera with the same K would see."""
    f = np.array([cam.fx, cam.fy])
    c = np.array([cam.cx, cam.cy])
    xy = undistort_normalized((np.asarray(uv, np.float64) - c) / f, cam.k, cam.p, cam.distortion_model)
    return xy * f + c


def is_placeholder_pose(cam: Camera) -> bool:
    """True for R = I, t = 0 exactly: the pose of a camera whose extrinsics are unknown (intrinsics only)."""
    return np.array_equal(np.asarray(cam.R, float), np.eye(3)) and not np.any(cam.t)


def intrinsics_only(cams: list[Camera]) -> bool:
    """True for a non-empty rig whose cameras all carry the placeholder pose (``ingest keypoints``)."""
    return bool(cams) and all(is_placeholder_pose(c) for c in cams)


def check_cameras(cams, where: str) -> list:
    """Refuse cameras that would poison a dataset; returns ``cams`` as a list. ``where`` (the file) starts every
    message. Each camera needs finite intrinsics and extrinsics, fx > 0, fy > 0 px, width > 0, height > 0 px and a
    proper rotation R; two cameras of one subject and source may not share a pose (centres within 1 mm and
    rotations within ~0.01 degrees: a duplicated entry), except at R = I, t = 0, the placeholder of unknown
    extrinsics (an intrinsics-only rig)."""
    cams = list(cams)
    for c in cams:
        name = f"{where}: camera {c.camera!r}" + (f" of {c.subject}" if c.subject else "")
        vals = np.r_[c.fx, c.fy, c.cx, c.cy, np.ravel(c.R), np.ravel(c.t), np.ravel(c.k), np.ravel(c.p)]
        if vals.size != 21 or not np.isfinite(vals.astype(float)).all():
            raise ValueError(f"{name}: intrinsics, distortion, R (3x3) and t (3) must be finite numbers")
        if not (c.fx > 0 and c.fy > 0):
            raise ValueError(f"{name}: focal lengths must be > 0 px, got fx={c.fx}, fy={c.fy}")
        if not (int(c.width) > 0 and int(c.height) > 0):
            raise ValueError(f"{name}: image size must be > 0 px, got {c.width} x {c.height}")
        R = np.asarray(c.R, float).reshape(3, 3)
        if np.abs(R @ R.T - np.eye(3)).max() > 1e-4 or np.linalg.det(R) < 0:
            raise ValueError(f"{name}: R is not a proper rotation matrix")

    posed = [c for c in cams if not is_placeholder_pose(c)]
    for i, a in enumerate(posed):
        for b in posed[i + 1 :]:
            if (
                (a.subject, a.source) == (b.subject, b.source)
                and np.linalg.norm(a.C - b.C) < 1.0
                and np.abs(np.asarray(a.R, float) - np.asarray(b.R, float)).max() < 2e-4
            ):
                raise ValueError(
                    f"{where}: cameras {a.camera!r} and {b.camera!r}"
                    + (f" of {a.subject}" if a.subject else "")
                    + " have the same pose (a duplicate?)"
                )
    return cams


def has_extrinsics(cams: list[Camera], min_mm: float = 1.0) -> bool:
    """True when the cameras' centres are pairwise distinct (> ``min_mm``), i.e. carry a real calibration (not
    intrinsics-only rows with every camera at R = I, t = 0)."""
    if len(cams) < 2:
        return False
    C = np.array([c.C for c in cams])
    i, j = np.triu_indices(len(C), 1)
    return bool((np.linalg.norm(C[i] - C[j], axis=1) > min_mm).all())
