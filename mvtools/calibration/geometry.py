"""Batched multi-view geometry in normalised image coordinates (pinhole, undistorted).

A view is ``P = [R | t]`` (world->camera, any length unit); an observation is ``x = (X_c / Z_c, Y_c / Z_c)``.
"""

from __future__ import annotations

import numpy as np


def projection_matrices(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """R (V, 3, 3), t (V, 3) -> P (V, 3, 4)."""
    return np.concatenate([np.asarray(R, float), np.asarray(t, float)[..., None]], axis=-1)


def triangulate(xn: np.ndarray, P: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Weighted linear least-squares triangulation of many points at once.

    Each view contributes the rows ``x P_3 - P_1`` and ``y P_3 - P_2`` (times its weight) of the linear system
    A [X; 1] = 0, solved for X with the last homogeneous coordinate fixed to 1 (Hartley-Sturm "linear LS").
    xn (N, V, 2) normalised coordinates (NaN = not seen), P (V, 3, 4), w (N, V) weights (0 = unused) ->
    X (N, 3) in the frame and unit of P; NaN where fewer than two views are usable.
    """
    xn = np.asarray(xn, float)
    ok = np.isfinite(xn).all(-1)
    w = ok.astype(float) if w is None else np.where(ok, np.asarray(w, float), 0.0)
    x = np.where(ok[..., None], xn, 0.0)
    rows = np.concatenate(
        [x[..., 0:1] * P[None, :, 2, :] - P[None, :, 0, :], x[..., 1:2] * P[None, :, 2, :] - P[None, :, 1, :]], axis=1
    )  # (N, 2V, 4)
    M = np.swapaxes(rows * np.concatenate([w, w], 1)[..., None], 1, 2) @ rows  # (N, 4, 4)
    few = (w > 0).sum(1) < 2
    A = M[:, :3, :3]
    A[few] = np.eye(3)
    with np.errstate(all="ignore"):
        X = np.linalg.solve(A, -M[:, :3, 3:4])[..., 0]
    X[few] = np.nan
    return X


def to_camera(X: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Points (N, 3) -> camera frames of V views (N, V, 3) given R (V, 3, 3), t (V, 3)."""
    return np.einsum("vij,nj->nvi", R, X) + t[None]


def reprojection(X: np.ndarray, R: np.ndarray, t: np.ndarray):
    """Normalised projections (N, V, 2) and depths (N, V) of points X (N, 3) in V views."""
    Xc = to_camera(X, R, t)
    with np.errstate(divide="ignore", invalid="ignore"):
        return Xc[..., :2] / Xc[..., 2:3], Xc[..., 2]


def sampson_distance(E: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """First-order geometric epipolar error (normalised units) of correspondences x1, x2 (N, 2) for
    ``x2^T E x1 = 0``."""
    h1 = np.concatenate([x1, np.ones((len(x1), 1))], 1)
    h2 = np.concatenate([x2, np.ones((len(x2), 1))], 1)
    Ex1 = h1 @ E.T
    Etx2 = h2 @ E
    num = np.einsum("ni,ni->n", h2, Ex1)
    den = Ex1[:, 0] ** 2 + Ex1[:, 1] ** 2 + Etx2[:, 0] ** 2 + Etx2[:, 1] ** 2
    return np.abs(num) / np.sqrt(np.maximum(den, 1e-300))


def planarity(X: np.ndarray) -> float:
    """Thickness of a point cloud (N, 3): smallest over largest singular value of the centred points (0 = planar)."""
    X = X[np.isfinite(X).all(1)]
    if len(X) < 4:
        return 0.0
    s = np.linalg.svd(X - X.mean(0), compute_uv=False)
    return float(s[2] / max(s[0], 1e-300))
