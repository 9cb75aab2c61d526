"""One consistent rig per subject from pairwise epipolar geometry and resection.

Incremental: the reference camera and its best-connected partner from the essential matrix (third views
choose among the four decompositions), joints triangulated from the registered cameras, every further camera
resected against them (``cv2.solvePnPRansac``), points re-triangulated. All poses live in one frame (the
reference camera's, unit = distance reference -> partner), so any pair's relative transform is a composition
of two camera poses and R_1to3 == R_2to3 R_1to2 holds exactly.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import cv2
import numpy as np

from mvtools.calibration.geometry import planarity, reprojection, triangulate
from mvtools.calibration.twoview import TwoViewPose, relative_pose
from mvtools.calibration.views import CalibrationError, Views
from mvtools.rotations import rodrigues


@dataclass
class RigOptions:
    """Thresholds of the rig construction (px are undistorted pixels)."""

    method: str = "magsac"  # essential-matrix estimator: ransac | magsac
    threshold_px: float = 6.0  # inlier threshold for epipolar distance and reprojection, px
    min_frames: int = 10  # synchronous frames a camera pair needs
    min_points: int = 100  # joint correspondences a camera pair needs
    min_motion: float = 0.02  # joint motion (robust spread over time) / body size below which a person is static
    min_thickness: float = 0.02  # point-cloud thickness (smallest/largest singular value) below which it is coplanar
    min_inlier_ratio: float = 0.25  # pairs below it are not trusted
    seed: int = 0


@dataclass
class PairEstimate:
    """What the epipolar stage found for one camera pair (indices into Views.cameras)."""

    a: int
    b: int
    frames: int
    points: int
    pose: TwoViewPose | None = None
    warning: str | None = None

    @property
    def usable(self) -> bool:
        return self.pose is not None and self.warning is None


@dataclass
class Rig:
    """Camera poses (world->camera, world = reference camera frame, unit = reference-partner distance)."""

    R: np.ndarray  # (V, 3, 3)
    t: np.ndarray  # (V, 3)
    reference: int
    partner: int
    pairs: dict = field(default_factory=dict)  # (a, b) -> PairEstimate
    resection: dict = field(default_factory=dict)  # camera index -> {"points", "inliers"}
    warnings: list = field(default_factory=list)


def motion_spread(uv: np.ndarray) -> float:
    """How much a person moves in one view: the 90th percentile over joints of the robust temporal spread of
    each joint (px) divided by the median body size (bounding-box diagonal, px). uv (F, J, 2), NaN = missing."""
    if np.isfinite(uv).all(-1).sum() == 0:
        return 0.0
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(uv, axis=0)
            mad = np.nanmedian(np.abs(uv - med), axis=0) * 1.4826  # (J, 2)
            spread = np.sqrt((mad**2).sum(-1))
            size = np.nanmedian(np.linalg.norm(np.nanmax(uv, 1) - np.nanmin(uv, 1), axis=-1))
    spread = spread[np.isfinite(spread)]
    if not len(spread) or not np.isfinite(size) or size <= 0:
        return 0.0
    return float(np.percentile(spread, 90) / size)


def _pair_name(views: Views, a: int, b: int) -> str:
    return f"{views.subject} cameras {views.ids[a]}-{views.ids[b]}"


def estimate_pairs(views: Views, opts: RigOptions, xn: np.ndarray | None = None) -> dict:
    """Essential matrix and pose of every camera pair with enough overlap -> {(a, b): PairEstimate}."""
    xn = views.normalized() if xn is None else xn
    valid = views.valid
    V = len(views.cameras)
    thr = opts.threshold_px / float(np.mean(views.intrinsics[:, :2]))
    out = {}
    for a, b in itertools.combinations(range(V), 2):
        m = valid[:, a] & valid[:, b]  # (F, J)
        frames, points = int(m.any(1).sum()), int(m.sum())
        pe = PairEstimate(a, b, frames, points)
        out[(a, b)] = pe
        name = _pair_name(views, a, b)
        if frames < opts.min_frames or points < opts.min_points:
            pe.warning = (
                f"{name}: too little overlap: {frames} synchronous frames and {points} joint "
                f"correspondences with confidence >= threshold (need {opts.min_frames} frames and "
                f"{opts.min_points} joints)"
            )
            continue
        fm = m.any(1)
        spread = min(
            motion_spread(np.where(m[fm, :, None], views.uv[fm, a], np.nan)),
            motion_spread(np.where(m[fm, :, None], views.uv[fm, b], np.nan)),
        )
        if spread < opts.min_motion:
            pe.warning = (
                f"{name}: static person: joints move by {spread:.1%} of the body size over {frames} "
                f"frames (need {opts.min_motion:.0%}); the correspondences are degenerate"
            )
            continue
        x1, x2 = xn[:, a][m], xn[:, b][m]
        third = []
        for c in range(V):
            if c in (a, b):
                continue
            m3 = m & valid[:, c]
            if m3.sum() >= opts.min_points:
                third.append((xn[:, a][m3], xn[:, b][m3], xn[:, c][m3]))
        pose = relative_pose(x1, x2, thr, opts.method, third=third, seed=opts.seed)
        pe.pose = pose
        if pose is None:
            pe.warning = f"{name}: no essential matrix found from {points} correspondences"
        elif pose.scores.get("ambiguous"):
            pe.warning = (
                f"{name}: ambiguous cheirality (fractions of points in front of both cameras per "
                f"candidate: {pose.scores['cheirality']}): near-degenerate pair (short baseline or "
                "distant joints); not used to start the rig"
            )
        elif pose.inlier_ratio < opts.min_inlier_ratio:
            pe.warning = (
                f"{name}: only {pose.inlier_ratio:.0%} of {points} correspondences fit one epipolar "
                f"geometry (need {opts.min_inlier_ratio:.0%}); views may not overlap or joints are wrong"
            )
    return out


def robust_triangulate(xn: np.ndarray, w: np.ndarray, R: np.ndarray, t: np.ndarray, threshold: float, rounds: int = 2):
    """Triangulate points (N, V, 2) normalised with weights (N, V) in views R (V, 3, 3), t (V, 3); drop
    observations that reproject further than ``threshold`` (normalised) or lie behind a camera and
    re-triangulate. Returns (X (N, 3), inlier weights (N, V))."""
    P = np.concatenate([R, t[..., None]], -1)
    w = np.where(np.isfinite(xn).all(-1), w, 0.0)
    X = triangulate(xn, P, w)
    for _ in range(rounds):
        proj, depth = reprojection(X, R, t)
        err = np.linalg.norm(proj - xn, axis=-1)
        w_new = np.where(~(err < threshold) | ~(depth > 0), 0.0, w)
        if np.array_equal(w_new > 0, w > 0):
            break
        w = w_new
        X = triangulate(xn, P, w)
    return X, w


def build_rig(views: Views, reference: int, opts: RigOptions, pairs: dict | None = None) -> Rig:
    """Incremental rig of all cameras of ``views`` relative to camera index ``reference``.

    Raises CalibrationError when the reference has no usable partner, the correspondences are degenerate
    (nearly coplanar) or a camera cannot be connected.
    """
    xn = views.normalized()
    pairs = estimate_pairs(views, opts, xn) if pairs is None else pairs
    V = len(views.cameras)
    thr = opts.threshold_px / float(np.mean(views.intrinsics[:, :2]))
    ref_pairs = [pe for (a, b), pe in pairs.items() if reference in (a, b) and pe.usable]
    if not ref_pairs:
        why = "; ".join(pe.warning for (a, b), pe in pairs.items() if reference in (a, b) and pe.warning)
        raise CalibrationError(
            f"{views.subject}: reference camera {views.ids[reference]} has no usable partner"
            + (f" ({why})" if why else "")
        )
    # partner: most inliers among pairs with an unambiguous cheirality decision
    clear = [pe for pe in ref_pairs if not pe.pose.scores.get("ambiguous")] or ref_pairs
    best = max(clear, key=lambda pe: int(pe.pose.inliers.sum()))
    partner = best.b if best.a == reference else best.a
    R = np.tile(np.eye(3), (V, 1, 1))
    t = np.zeros((V, 3))
    if best.a == reference:
        R[partner], t[partner] = best.pose.R, best.pose.t
    else:  # pose maps partner -> reference; invert
        R[partner] = best.pose.R.T
        t[partner] = -best.pose.R.T @ best.pose.t
    rig = Rig(R, t, reference, partner, pairs)
    rig.warnings = [pe.warning for pe in pairs.values() if pe.warning]

    F, _, J, _ = xn.shape
    obs = xn.transpose(0, 2, 1, 3).reshape(F * J, V, 2)
    w = views.conf.transpose(0, 2, 1).reshape(F * J, V)
    reg = [reference, partner]
    X, _ = robust_triangulate(obs[:, reg], w[:, reg], R[reg], t[reg], thr)
    thick = planarity(X)
    if thick < opts.min_thickness:
        raise CalibrationError(
            f"{views.subject}: correspondences of cameras {views.ids[reference]}-{views.ids[partner]} are nearly "
            f"coplanar (thickness {thick:.3f} < {opts.min_thickness}); a moving person is needed"
        )
    while len(reg) < V:
        have = np.isfinite(X).all(1)
        cand = [c for c in range(V) if c not in reg]
        counts = [int((have & (w[:, c] > 0)).sum()) for c in cand]
        c = cand[int(np.argmax(counts))]
        sel = have & (w[:, c] > 0)
        n = int(sel.sum())
        name = f"{views.subject}: camera {views.ids[c]}"
        if n < opts.min_points:
            why = "; ".join(pe.warning for (a, b), pe in pairs.items() if c in (a, b) and pe.warning)
            raise CalibrationError(
                f"{name} cannot be connected: it shares {n} triangulated joints with cameras "
                f"{[views.ids[r] for r in reg]} (need {opts.min_points})" + (f" ({why})" if why else "")
            )
        Xs, xs = X[sel], obs[sel, c]
        rng = np.random.default_rng(opts.seed)
        sub = rng.choice(n, 3000, replace=False) if n > 3000 else np.arange(n)
        cv2.setRNGSeed(opts.seed)
        ok, rvec, tvec, _ = cv2.solvePnPRansac(
            Xs[sub],
            xs[sub],
            np.eye(3),
            None,
            iterationsCount=500,
            reprojectionError=2 * thr,
            confidence=0.9999,
            flags=cv2.SOLVEPNP_EPNP,
        )
        idx = np.zeros(0, int)
        if ok:
            proj, depth = reprojection(Xs, rodrigues(rvec.ravel())[None], tvec.reshape(1, 3))
            # triangulated joints are noisy in depth: a looser gate than the 2D threshold
            idx = np.flatnonzero((np.linalg.norm(proj[:, 0] - xs, axis=-1) < 2 * thr) & (depth[:, 0] > 0))
        ninl = len(idx)
        if not ok or ninl < max(opts.min_points // 2, 6) or ninl < opts.min_inlier_ratio * n:
            raise CalibrationError(
                f"{name} cannot be connected: resection against {n} triangulated joints found only {ninl} "
                f"consistent ones (need {opts.min_inlier_ratio:.0%})"
            )
        rvec, tvec = cv2.solvePnPRefineLM(Xs[idx], xs[idx], np.eye(3), None, rvec, tvec)
        R[c], t[c] = rodrigues(rvec.ravel()), tvec[:, 0]
        _, depth = reprojection(Xs[idx], R[c][None], t[c][None])
        if (depth > 0).mean() < 0.9:
            raise CalibrationError(f"{name} cannot be connected: the resected camera sees the joints behind it")
        rig.resection[c] = {"points": n, "inliers": ninl}
        reg.append(c)
        X, _ = robust_triangulate(obs[:, reg], w[:, reg], R[reg], t[reg], thr)
    return rig
