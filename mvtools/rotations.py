"""Rotations on batched numpy arrays: the one home of every rotation convention in mvtools.

- Quaternions are ``[w, x, y, z]`` (Hamilton product; ``R(a * b) = R(a) @ R(b)``).
- Rotation vectors (Rodrigues) are radians, as ``cv2.Rodrigues``.
- Euler angles are degrees, applied in the order given: ``"ZYX"`` is ``Rz @ Ry @ Rx`` (the BVH convention
  of channels listed left to right).
All functions take and return float64 arrays with any leading batch shape.
"""

from __future__ import annotations

import numpy as np

_AXES = "XYZ"
#: A Y-up world (BVH, MPI-INF-3DHP) turned into mvtools' Z-up world: +90 degrees about X, (x, y, z) -> (x, -z, y).
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def quat_to_rotmat(q: np.ndarray) -> np.ndarray:
    """Unit quaternions (..., 4) as [w, x, y, z] -> rotation matrices (..., 3, 3)."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def rodrigues(rvec: np.ndarray) -> np.ndarray:
    """Rotation vectors (..., 3) in radians -> rotation matrices (..., 3, 3) (same as cv2.Rodrigues)."""
    rvec = np.asarray(rvec, dtype=np.float64)
    theta = np.linalg.norm(rvec, axis=-1, keepdims=True)
    k = np.where(theta > 1e-12, rvec / np.maximum(theta, 1e-300), 0.0)
    kx, ky, kz = np.moveaxis(k, -1, 0)
    zero = np.zeros_like(kx)
    K = np.stack([np.stack([zero, -kz, ky], -1), np.stack([kz, zero, -kx], -1), np.stack([-ky, kx, zero], -1)], -2)
    th = theta[..., None]
    eye = np.broadcast_to(np.eye(3), K.shape)
    return eye + np.sin(th) * K + (1 - np.cos(th)) * (K @ K)


def rotmat_to_rodrigues(R: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> rotation vectors (..., 3) in radians."""
    R = np.asarray(R, dtype=np.float64)
    flat = R.reshape(-1, 3, 3)
    out = np.empty((flat.shape[0], 3))
    import cv2  # local: OpenCV handles the angle-near-pi cases robustly

    for i, r in enumerate(flat):
        out[i] = cv2.Rodrigues(np.ascontiguousarray(r))[0][:, 0]
    return out.reshape(R.shape[:-2] + (3,))


def rotation_angle_deg(R_a: np.ndarray, R_b: np.ndarray) -> np.ndarray:
    """Geodesic angle (degrees) between rotations (..., 3, 3)."""
    M = np.swapaxes(R_a, -1, -2) @ R_b
    c = (np.trace(M, axis1=-2, axis2=-1) - 1) / 2
    return np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))


def angle_between_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (degrees) between vectors (..., 3)."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.degrees(np.arccos(np.clip((a * b).sum(-1), -1.0, 1.0)))


def nearest_rotation(M: np.ndarray) -> np.ndarray:
    """The proper rotation (..., 3, 3) closest to M (..., 3, 3) in the Frobenius norm: ``U diag(1, 1, det) V^T``
    from the SVD ``M = U S V^T`` (orthonormalises a rounded matrix; chordal mean of a sum of rotations)."""
    U, _, Vt = np.linalg.svd(np.asarray(M, dtype=np.float64))
    D = np.ones(U.shape[:-1])
    D[..., -1] = np.sign(np.linalg.det(U @ Vt))
    return (U * D[..., None, :]) @ Vt


def rotate_xy(v: np.ndarray, rad: np.ndarray) -> np.ndarray:
    """2D vectors (..., 2) turned counter-clockwise (x towards y) by angles (...) in radians: the in-plane part
    of a rotation about Z (the ground plane of a Z-up world)."""
    v = np.asarray(v, dtype=np.float64)
    c, s = np.cos(rad), np.sin(rad)
    return np.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]], -1)


def axis_rotation(axis: str, deg: np.ndarray) -> np.ndarray:
    """Right-handed rotations about X, Y or Z by angles (...) in degrees -> (..., 3, 3)."""
    a = np.radians(np.asarray(deg, dtype=np.float64))
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    if axis == "X":
        rows = [[o, z, z], [z, c, -s], [z, s, c]]
    elif axis == "Y":
        rows = [[c, z, s], [z, o, z], [-s, z, c]]
    elif axis == "Z":
        rows = [[c, -s, z], [s, c, z], [z, z, o]]
    else:
        raise ValueError(f"unknown rotation axis {axis!r}")
    return np.stack([np.stack(r, -1) for r in rows], -2)


def euler_to_rotmat(angles_deg: np.ndarray, order: str) -> np.ndarray:
    """Euler angles (..., len(order)) in degrees, applied in ``order`` (e.g. "ZYX" -> Rz @ Ry @ Rx)."""
    angles_deg = np.asarray(angles_deg, dtype=np.float64)
    R = np.broadcast_to(np.eye(3), angles_deg.shape[:-1] + (3, 3)).copy()
    for i, ax in enumerate(order):
        R = R @ axis_rotation(ax, angles_deg[..., i])
    return R


def euler_to_quat(angles_deg: np.ndarray, order: str) -> np.ndarray:
    """Euler angles (..., len(order)) in degrees, applied in ``order`` -> quaternions (..., 4) [w, x, y, z]
    (the same rotation as :func:`euler_to_rotmat`)."""
    angles_deg = np.asarray(angles_deg, dtype=np.float64)
    q = np.zeros(angles_deg.shape[:-1] + (4,))
    q[..., 0] = 1.0
    for i, ax in enumerate(order):
        h = np.radians(angles_deg[..., i]) / 2
        b = np.zeros_like(q)
        b[..., 0] = np.cos(h)
        b[..., 1 + _AXES.index(ax)] = np.sin(h)
        q = quat_multiply(q, b)
    return q


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b of quaternions (..., 4) [w, x, y, z]: the rotation R(a) @ R(b)."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        -1,
    )


def rotmat_to_quat(R: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> unit quaternions (..., 4) [w, x, y, z] with w >= 0."""
    from scipy.spatial.transform import Rotation

    R = np.asarray(R, dtype=np.float64)
    q = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_quat()  # x, y, z, w
    q = np.concatenate([q[:, 3:], q[:, :3]], 1)
    q *= np.where(q[:, :1] < 0, -1.0, 1.0)
    return q.reshape(R.shape[:-2] + (4,))


def slerp(q0: np.ndarray, q1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Spherical interpolation of unit quaternions (..., 4) with weights ``w`` broadcast to (...)."""
    d = (q0 * q1).sum(-1)
    q1 = np.where(d[..., None] < 0, -q1, q1)
    d = np.abs(d)
    w = np.broadcast_to(np.asarray(w, dtype=np.float64), d.shape)
    theta = np.arccos(np.clip(d, -1.0, 1.0))
    s = np.sin(theta)
    small = s < 1e-8
    s_safe = np.where(small, 1.0, s)
    a = np.where(small, 1 - w, np.sin((1 - w) * theta) / s_safe)
    b = np.where(small, w, np.sin(w * theta) / s_safe)
    q = a[..., None] * q0 + b[..., None] * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)
