"""Bundle adjustment of all cameras of a rig and a subsample of triangulated joints.

Minimises the confidence-weighted reprojection error in undistorted pixels (pinhole, known intrinsics) with
``scipy.optimize.least_squares`` (robust loss, trust-region reflective with LSMR on a sparse analytic
Jacobian). Parameters: per non-reference camera a rotation increment ``d`` (``R = exp([d]_x) R0``) and the
translation ``t``; per point its 3D position. Gauge: the reference camera stays at [I | 0] and the length of
the partner camera's translation (its distance from the reference) is held at its initial value by one stiff
residual.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import coo_matrix

from mvtools.camera import project_pinhole
from mvtools.rotations import rodrigues


@dataclass
class BundleResult:
    R: np.ndarray  # (V, 3, 3)
    t: np.ndarray  # (V, 3)
    X: np.ndarray  # (P, 3)
    rms_before: float  # px, over the observations kept as inliers after the adjustment
    rms_after: float  # px
    cost_before: float  # robust objective (least_squares cost) per observation, px^2
    cost_after: float
    inlier_fraction: float  # observations within the outlier gate after the adjustment
    observations: int
    points: int
    nfev: int


def _skew(v: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 3, 3) cross-product matrices."""
    z = np.zeros(v.shape[:-1])
    x, y, w = v[..., 0], v[..., 1], v[..., 2]
    return np.stack([np.stack([z, -w, y], -1), np.stack([w, z, -x], -1), np.stack([-y, x, z], -1)], -2)


def _left_jacobian(d: np.ndarray) -> np.ndarray:
    """SO(3) left Jacobian (..., 3, 3) of rotation vectors d (..., 3): d exp([d]x) y / dd = -[exp([d]x) y]x J."""
    th = np.linalg.norm(d, axis=-1)[..., None, None]
    K = _skew(d)
    small = th < 1e-8
    ths = np.where(small, 1.0, th)
    a = np.where(small, 0.5, (1 - np.cos(ths)) / ths**2)
    b = np.where(small, 1.0 / 6, (ths - np.sin(ths)) / ths**3)
    return np.eye(3) + a * K + b * (K @ K)


def reprojection_errors(X, R, t, intr, pt, cam, uv) -> np.ndarray:
    """Pixel distances (M,) of observations uv (M, 2) of points X[pt] in cameras cam; inf behind a camera."""
    Xc = np.einsum("mij,mj->mi", R[cam], X[pt]) + t[cam]
    with np.errstate(divide="ignore", invalid="ignore"):
        p = project_pinhole(Xc, intr[cam])
    return np.where(Xc[:, 2] > 0, np.linalg.norm(p - uv, axis=-1), np.inf)


def ba_problem(
    R: np.ndarray,
    t: np.ndarray,
    X: np.ndarray,
    pt: np.ndarray,
    cam: np.ndarray,
    uv: np.ndarray,
    w: np.ndarray,
    intr: np.ndarray,
    reference: int,
    partner: int,
):
    """The least-squares problem of :func:`bundle_adjust`: (fun, jac, p0, unpack) with residuals (2M + 1,)
    (px times sqrt(confidence), then the gauge residual) and a sparse CSR Jacobian."""
    R = np.asarray(R, float)
    t = np.asarray(t, float)
    if not (np.allclose(R[reference], np.eye(3)) and np.allclose(t[reference], 0)):
        raise ValueError("bundle_adjust: the reference camera must be at R = I, t = 0")
    V, P, M = len(R), len(X), len(pt)
    free = np.array([v for v in range(V) if v != reference], int)
    slot = np.full(V, -1)
    slot[free] = np.arange(len(free))
    nc = 6 * len(free)
    d0 = float(np.linalg.norm(t[partner]))
    sw = np.sqrt(np.asarray(w, float))
    fxy, cxy = intr[cam, :2], intr[cam, 2:4]
    gauge_w = 1e3 * float(np.mean(intr[:, :2]))
    has = slot[cam] >= 0
    hs = slot[cam[has]]

    def unpack(p):
        cp = p[:nc].reshape(-1, 6)
        Rs, ts = R.copy(), t.copy()
        Rs[free] = rodrigues(cp[:, :3]) @ R[free]
        ts[free] = cp[:, 3:]
        return Rs, ts, p[nc:].reshape(P, 3), cp[:, :3]

    def camera_points(p):
        Rs, ts, Xs, d = unpack(p)
        return Rs, ts, Xs, d, np.einsum("mij,mj->mi", Rs[cam], Xs[pt]) + ts[cam]

    def fun(p):
        Rs, ts, Xs, _, Xc = camera_points(p)
        z = np.maximum(Xc[:, 2:3], 1e-9)
        r = ((Xc[:, :2] / z * fxy + cxy - uv) * sw[:, None]).ravel()
        return np.append(r, gauge_w * (np.linalg.norm(ts[partner]) - d0) / d0)

    # sparsity layout: per observation 2 rows x (3 point columns [+ 6 camera columns])
    prow = np.repeat(np.arange(2 * M), 3)
    pcol = (nc + 3 * np.repeat(pt, 2)[:, None] + np.arange(3)).ravel()
    crow = np.repeat(np.stack([2 * np.flatnonzero(has), 2 * np.flatnonzero(has) + 1], 1).ravel(), 6)
    ccol = (6 * np.repeat(hs, 2)[:, None] + np.arange(6)).ravel()
    grow = np.full(3, 2 * M)
    gcol = 6 * slot[partner] + 3 + np.arange(3) if slot[partner] >= 0 else np.zeros(0, int)
    grow = grow[: len(gcol)]
    rows = np.concatenate([prow, crow, grow])
    cols = np.concatenate([pcol, ccol, gcol])
    shape = (2 * M + 1, nc + 3 * P)

    def jac(p):
        Rs, ts, Xs, d, Xc = camera_points(p)
        z = np.maximum(Xc[:, 2], 1e-9)
        # d(u, v)/dXc (M, 2, 3), scaled by sqrt(confidence)
        D = np.zeros((M, 2, 3))
        D[:, 0, 0] = fxy[:, 0] / z
        D[:, 1, 1] = fxy[:, 1] / z
        D[:, 0, 2] = -fxy[:, 0] * Xc[:, 0] / z**2
        D[:, 1, 2] = -fxy[:, 1] * Xc[:, 1] / z**2
        D *= sw[:, None, None]
        Jp = D @ Rs[cam]  # (M, 2, 3)
        Jl = _left_jacobian(d)  # (F, 3, 3)
        dXd = -_skew(Xc[has] - ts[cam[has]]) @ Jl[hs]  # (H, 3, 3)
        Jc = np.concatenate([D[has] @ dXd, D[has]], axis=2)  # (H, 2, 6)
        tp = ts[partner]
        g = gauge_w / d0 * tp / max(np.linalg.norm(tp), 1e-12) if len(gcol) else np.zeros(0)
        vals = np.concatenate([Jp.ravel(), Jc.ravel(), g])
        return coo_matrix((vals, (rows, cols)), shape=shape).tocsr()

    p0 = np.concatenate([np.concatenate([np.zeros((len(free), 3)), t[free]], 1).ravel(), np.ravel(X)])
    return fun, jac, p0, unpack


def bundle_adjust(
    R: np.ndarray,
    t: np.ndarray,
    X: np.ndarray,
    pt: np.ndarray,
    cam: np.ndarray,
    uv: np.ndarray,
    w: np.ndarray,
    intr: np.ndarray,
    reference: int,
    partner: int,
    loss: str = "soft_l1",
    f_scale_px: float = 4.0,
    gate_px: float = 30.0,
    max_nfev: int = 50,
) -> BundleResult:
    """Refine cameras R (V, 3, 3), t (V, 3) and points X (P, 3) from observations: point index ``pt`` (M,),
    camera index ``cam`` (M,), undistorted pixels ``uv`` (M, 2), confidences ``w`` (M,); intrinsics ``intr``
    (V, 4) [fx, fy, cx, cy] px. The reference camera must be at [I | 0]. ``f_scale_px`` is the robust loss's
    inlier scale (px), ``gate_px`` the error above which an observation counts as an outlier in the reported
    RMS (px)."""
    fun, jac, p0, unpack = ba_problem(R, t, X, pt, cam, uv, w, intr, reference, partner)
    M, P = len(pt), len(X)
    e0 = reprojection_errors(X, R, t, intr, pt, cam, uv)
    cost0 = _robust_cost(fun(p0), loss, f_scale_px)
    res = least_squares(
        fun,
        p0,
        jac=jac,
        loss=loss,
        f_scale=f_scale_px,
        x_scale="jac",
        method="trf",
        tr_solver="lsmr",
        max_nfev=max_nfev,
        xtol=1e-10,
        ftol=1e-6,
    )
    Rs, ts, Xs, _ = unpack(res.x)
    e1 = reprojection_errors(Xs, Rs, ts, intr, pt, cam, uv)
    keep = e1 < gate_px
    rms = lambda e: float(np.sqrt(np.mean(e[keep] ** 2))) if keep.any() else float("nan")  # noqa: E731
    n = max(M, 1)
    return BundleResult(
        Rs,
        ts,
        Xs,
        rms(e0),
        rms(e1),
        cost0 / n,
        float(res.cost) / n,
        float(keep.mean()) if M else 0.0,
        M,
        P,
        int(res.nfev),
    )


def _robust_cost(r: np.ndarray, loss: str, f_scale: float) -> float:
    """0.5 * sum rho(r^2) as ``least_squares`` reports it (soft_l1, huber, linear)."""
    z = (r / f_scale) ** 2
    if loss == "soft_l1":
        rho = 2 * (np.sqrt(1 + z) - 1)
    elif loss == "huber":
        rho = np.where(z <= 1, z, 2 * np.sqrt(z) - 1)
    elif loss == "linear":
        rho = z
    else:
        raise ValueError(f"unsupported loss {loss!r}")
    return float(0.5 * f_scale**2 * rho.sum())
