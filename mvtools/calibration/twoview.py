"""Relative pose of two calibrated views from joint correspondences (paper, "Loss Function" after eq. 4).

Essential matrix by a robust estimator on normalised coordinates, its four (R, t) decompositions, and the
choice among them: cheirality (points in front of both cameras, as ``cv2.recoverPose``) and, where a third
view sees the same joints, third-view consistency (triangulate with the candidate, resect the third camera
with ``cv2.solvePnPRansac``, count points in front of all three cameras that reproject within the threshold).
Convention: ``x2 ~ R x1 + t`` (camera-1 frame -> camera-2 frame), ``|t| = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import least_squares

from mvtools.calibration.geometry import reprojection, sampson_distance, triangulate
from mvtools.rotations import rodrigues


def skew(v: np.ndarray) -> np.ndarray:
    """Cross-product matrix (3, 3) of v (3,)."""
    return np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0.0]])


def essential_from_pose(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """E = [t]_x R for ``x2 ~ R x1 + t``."""
    return skew(t) @ R


def refine_pose(
    R: np.ndarray, t: np.ndarray, x1: np.ndarray, x2: np.ndarray, threshold: float, max_nfev: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Polish (R, unit t) by robust least squares (soft-L1, scale ``threshold``) on the Sampson distances of
    x1, x2 (N, 2); 5 parameters (rotation vector increment, 2 tangent directions of t)."""
    t = t / np.linalg.norm(t)
    u = np.linalg.svd(t[None])[2][1:]  # (2, 3) orthonormal complement of t

    def unpack(p):
        Rp = rodrigues(p[:3]) @ R
        tp = t + p[3:] @ u
        return Rp, tp / np.linalg.norm(tp)

    def fun(p):
        return sampson_distance(essential_from_pose(*unpack(p)), x1, x2) / threshold

    res = least_squares(fun, np.zeros(5), loss="soft_l1", f_scale=1.0, max_nfev=max_nfev, x_scale=1e-2)
    return unpack(res.x)


METHODS = {"ransac": cv2.RANSAC, "magsac": cv2.USAC_MAGSAC}


@dataclass
class TwoViewPose:
    """A relative pose estimate. ``inliers`` is a mask over the input correspondences."""

    R: np.ndarray  # (3, 3)
    t: np.ndarray  # (3,) unit
    E: np.ndarray  # (3, 3)
    inliers: np.ndarray  # (N,) bool
    candidate: int  # index into pose_candidates(E)
    cheirality_candidate: int  # what cheirality alone would pick
    scores: dict = field(default_factory=dict)  # per-candidate diagnostics

    @property
    def inlier_ratio(self) -> float:
        return float(self.inliers.mean()) if len(self.inliers) else 0.0


def estimate_essential(
    x1: np.ndarray,
    x2: np.ndarray,
    threshold: float,
    method: str = "magsac",
    prob: float = 0.9999,
    max_iters: int = 2000,
    seed: int = 0,
    max_points: int = 20000,
):
    """Robust essential matrix of normalised correspondences x1, x2 (N, 2); ``threshold`` in normalised units
    (px / focal). A random subset of at most ``max_points`` feeds the estimator; the returned inlier mask
    (Sampson distance < threshold) covers all N. Returns (E (3, 3), inliers (N,) bool)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    n = len(x1)
    if n < 5:
        raise ValueError(f"need at least 5 correspondences, got {n}")
    rng = np.random.default_rng(seed)
    idx = rng.choice(n, max_points, replace=False) if n > max_points else np.arange(n)
    cv2.setRNGSeed(int(seed))
    E, _ = cv2.findEssentialMat(
        np.ascontiguousarray(x1[idx]),
        np.ascontiguousarray(x2[idx]),
        np.eye(3),
        method=METHODS[method],
        prob=prob,
        threshold=threshold,
        maxIters=max_iters,
    )
    if E is None or E.shape[0] < 3:
        return None, np.zeros(n, bool)
    # several stacked solutions are possible: keep the one with most inliers
    best, best_in = None, None
    for k in range(E.shape[0] // 3):
        Ek = E[3 * k : 3 * k + 3]
        inl = sampson_distance(Ek, x1, x2) < threshold
        if best_in is None or inl.sum() > best_in.sum():
            best, best_in = Ek, inl
    return best, best_in


def pose_candidates(E: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The four (R, t) decompositions of E (``cv2.decomposeEssentialMat``): (R1, t), (R1, -t), (R2, t), (R2, -t)."""
    R1, R2, t = cv2.decomposeEssentialMat(E)
    t = t[:, 0]
    return [(R1, t), (R1, -t), (R2, t), (R2, -t)]


def front_mask(R: np.ndarray, t: np.ndarray, x1: np.ndarray, x2: np.ndarray):
    """Triangulate x1, x2 (N, 2) with [I|0], [R|t]: (X (N, 3), in front of both cameras (N,) bool)."""
    Rs = np.stack([np.eye(3), R])
    ts = np.stack([np.zeros(3), t])
    X = triangulate(np.stack([x1, x2], 1), np.concatenate([Rs, ts[..., None]], -1))
    _, depth = reprojection(X, Rs, ts)
    return X, (depth > 0).all(1) & np.isfinite(X).all(1)


def third_view_consistency(
    R: np.ndarray, t: np.ndarray, x1: np.ndarray, x2: np.ndarray, x3: np.ndarray, threshold: float, seed: int = 0
) -> float:
    """Fraction of 3-view points (x1, x2, x3 (N, 2) normalised) that, triangulated from views 1-2 with the
    candidate (R, t), lie in front of all three cameras and reproject into view 3 within ``threshold``
    after resecting view 3 (``cv2.solvePnPRansac``)."""
    X, front = front_mask(R, t, x1, x2)
    if front.sum() < 6:
        return 0.0
    cv2.setRNGSeed(int(seed))
    ok, rvec, tvec, _ = cv2.solvePnPRansac(
        X[front].astype(np.float64),
        x3[front].astype(np.float64),
        np.eye(3),
        None,
        iterationsCount=100,
        reprojectionError=threshold,
        confidence=0.999,
        flags=cv2.SOLVEPNP_EPNP,
    )
    if not ok:
        return 0.0
    R3 = rodrigues(rvec.ravel())
    proj, depth = reprojection(X[front], R3[None], tvec.reshape(1, 3))
    err = np.linalg.norm(proj[:, 0] - x3[front], axis=-1)
    good = (depth[:, 0] > 0) & (err < threshold)
    return float(good.sum() / len(x1))


def relative_pose(
    x1: np.ndarray,
    x2: np.ndarray,
    threshold: float,
    method: str = "magsac",
    third: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
    seed: int = 0,
    max_points: int = 20000,
    max_check: int = 1000,
    refine: bool = True,
    min_front: float = 0.05,
    ambiguous_front: float = 0.2,
) -> TwoViewPose | None:
    """Relative pose of view 2 w.r.t. view 1 from normalised correspondences x1, x2 (N, 2).

    ``third``: optional list of (x1, x2, x3) normalised 3-view correspondences (one per other camera) used to
    confirm the cheirality choice among the four decompositions (a candidate the third views support more
    than twice as well overrules it); ``scores["ambiguous"]`` flags a runner-up candidate with more than
    ``ambiguous_front`` of the points in front of both cameras (near-degenerate pair); ``threshold`` in
    normalised units (px / focal); ``refine`` polishes the chosen pose on the Sampson distances
    (:func:`refine_pose`). Returns None when no essential matrix is found.
    """
    E, inl = estimate_essential(x1, x2, threshold, method, seed=seed, max_points=max_points)
    if E is None or inl.sum() < 5:
        return None
    rng = np.random.default_rng(seed)
    ii = np.flatnonzero(inl)
    if len(ii) > max_check:
        ii = rng.choice(ii, max_check, replace=False)
    cands = pose_candidates(E)
    front = np.array([front_mask(R, t, x1[ii], x2[ii])[1].mean() for R, t in cands])
    cheir = int(np.argmax(front))
    scores = {"cheirality": front.round(4).tolist()}
    pick = cheir
    if third:
        cons = np.zeros(4)
        for a, b, c in third:
            if len(a) > max_check:
                sel = rng.choice(len(a), max_check, replace=False)
                a, b, c = a[sel], b[sel], c[sel]
            # keep 3-view points consistent with E (the third-view observation may still be an outlier)
            m = sampson_distance(E, a, b) < threshold
            if m.sum() < 6:
                continue
            # candidates that put (nearly) all points behind a camera cannot be right: skip them
            cons += [
                third_view_consistency(R, t, a[m], b[m], c[m], threshold, seed) if front[k] >= min_front else 0.0
                for k, (R, t) in enumerate(cands)
            ]
        if cons.max() > 0:
            cons = cons / len(third)
            scores["third_view"] = cons.round(4).tolist()
            best = int(np.argmax(cons))
            # overrule cheirality only when the third views clearly prefer another candidate
            if best != cheir and cons[best] > 2 * cons[cheir]:
                pick = best
    order = np.sort(front)
    scores["ambiguous"] = bool(order[-2] > ambiguous_front)
    R, t = cands[pick]
    if refine:
        sel = np.flatnonzero(sampson_distance(E, x1, x2) < 3 * threshold)
        if len(sel) > max_points:
            sel = rng.choice(sel, max_points, replace=False)
        R, t = refine_pose(R, t, x1[sel], x2[sel], threshold)
        E = essential_from_pose(R, t)
        inl = sampson_distance(E, x1, x2) < threshold
    return TwoViewPose(
        R=R, t=t / np.linalg.norm(t), E=E, inliers=inl, candidate=pick, cheirality_candidate=cheir, scores=scores
    )
