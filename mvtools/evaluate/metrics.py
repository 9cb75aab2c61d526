"""3D pose error metrics on batched numpy arrays (VideoPose3D / MPI-INF-3DHP definitions).

All functions take ``pred`` and ``gt`` of shape (N, J, 3) in mm (same frame, usually root-relative camera
coordinates) and return mm (errors), mm per frame (MPJVE) or percent (PCK, AUC). Per-pose variants return (N,)
arrays so callers can pool them by action, subject or camera.
"""

from __future__ import annotations

import numpy as np

#: PCK thresholds of the MPI-INF-3DHP AUC, mm (0, 5, ..., 150).
AUC_THRESHOLDS = np.linspace(0.0, 150.0, 31)


def _check(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"pred and gt must both be (N, J, 3), got {pred.shape} and {gt.shape}")
    return pred, gt


def joint_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Euclidean error per joint (N, J), mm."""
    pred, gt = _check(pred, gt)
    return np.linalg.norm(pred - gt, axis=-1)


def mpjpe_per_pose(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Mean per-joint position error of each pose (N,), mm (Protocol #1)."""
    return joint_errors(pred, gt).mean(-1)


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean per-joint position error over all poses and joints, mm."""
    return float(mpjpe_per_pose(pred, gt).mean()) if len(pred) else float("nan")


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``pred`` (N, J, 3) aligned to ``gt`` by the best similarity transform (rotation without reflection,
    isotropic scale, translation) per pose, least squares over joints; returns (N, J, 3) mm."""
    pred, gt = _check(pred, gt)
    mu_p = pred.mean(1, keepdims=True)
    mu_g = gt.mean(1, keepdims=True)
    P = pred - mu_p
    G = gt - mu_g
    norm_p = np.sqrt((P**2).sum((1, 2)))[:, None, None]
    norm_g = np.sqrt((G**2).sum((1, 2)))[:, None, None]
    norm_p = np.where(norm_p > 0, norm_p, 1.0)
    norm_g = np.where(norm_g > 0, norm_g, 1.0)
    P = P / norm_p
    G = G / norm_g
    H = np.einsum("nji,njk->nik", P, G)  # (N, 3, 3) = P^T G
    U, s, Vt = np.linalg.svd(H)
    # Rotation R maps P onto G as P @ R; remove reflections by flipping the weakest axis.
    d = np.sign(np.linalg.det(U @ Vt))
    d = np.where(d == 0, 1.0, d)
    U[:, :, -1] *= d[:, None]
    s[:, -1] *= d
    R = U @ Vt
    scale = s.sum(-1)[:, None, None] * norm_g / norm_p
    return scale * (pred - mu_p) @ R + mu_g


def p_mpjpe_per_pose(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """MPJPE after per-pose similarity Procrustes alignment (N,), mm (Protocol #2)."""
    return mpjpe_per_pose(procrustes_align(pred, gt), gt)


def p_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """Procrustes-aligned MPJPE over all poses, mm."""
    return float(p_mpjpe_per_pose(pred, gt).mean()) if len(pred) else float("nan")


def n_mpjpe_per_pose(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """MPJPE after the least-squares scale of each pose, ``s = <pred, gt> / <pred, pred>`` (N,), mm."""
    pred, gt = _check(pred, gt)
    num = (pred * gt).sum((1, 2))
    den = (pred * pred).sum((1, 2))
    s = np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)
    return mpjpe_per_pose(s[:, None, None] * pred, gt)


def n_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """Scale-normalised MPJPE over all poses, mm."""
    return float(n_mpjpe_per_pose(pred, gt).mean()) if len(pred) else float("nan")


def velocity_errors(pred: np.ndarray, gt: np.ndarray, sequence: np.ndarray, frame: np.ndarray):
    """Per-frame velocity errors ``mean_j ||(pred_t - pred_t-1) - (gt_t - gt_t-1)||`` (M,), mm per frame, over every
    pair of poses of the same ``sequence`` (N,) label at consecutive ``frame`` numbers (N,) (VideoPose3D's
    ``mean_velocity_error`` on first differences; a gap in the frame numbers starts a new run). Returns
    ``(errors (M,), row (M,))`` with ``row`` the index of frame t, so callers can pool by label."""
    pred, gt = _check(pred, gt)
    seq = np.unique(np.asarray(sequence), return_inverse=True)[1].reshape(-1)
    frame = np.asarray(frame, np.int64)
    order = np.lexsort((frame, seq))
    prev, cur = order[:-1], order[1:]
    ok = (seq[prev] == seq[cur]) & (frame[cur] - frame[prev] == 1)
    prev, cur = prev[ok], cur[ok]
    dv = (pred[cur] - pred[prev]) - (gt[cur] - gt[prev])
    return np.linalg.norm(dv, axis=-1).mean(-1), cur


def mpjve(pred: np.ndarray, gt: np.ndarray, sequence: np.ndarray, frame: np.ndarray) -> float:
    """Mean per-joint velocity error (MPJVE), mm per frame (nan without two consecutive frames)."""
    e, _ = velocity_errors(pred, gt, sequence, frame)
    return float(e.mean()) if len(e) else float("nan")


def pck(pred: np.ndarray, gt: np.ndarray, threshold: float = 150.0) -> float:
    """Percentage (0-100) of joints whose error is below ``threshold`` mm (3D PCK of MPI-INF-3DHP).

    Counts every joint passed in: on root-relative poses the root's error is 0, so with all 17 joints PCK is at
    least 1/17 = 5.9 %. :func:`mvtools.evaluate.evaluation.evaluate_run` scores the manifest's ``pck_joints``
    (MPI-INF-3DHP: the official 14, root excluded) when given, else all 17 joints including the root.
    """
    e = joint_errors(pred, gt)
    return float((e < threshold).mean() * 100.0) if e.size else float("nan")


def pck_curve(pred: np.ndarray, gt: np.ndarray, thresholds=AUC_THRESHOLDS) -> np.ndarray:
    """PCK (percent) at each threshold (T,), mm thresholds."""
    e = joint_errors(pred, gt).reshape(-1)
    t = np.asarray(thresholds, np.float64)
    if e.size == 0:
        return np.full(t.shape, np.nan)
    return (e[None, :] < t[:, None]).mean(1) * 100.0


def auc(pred: np.ndarray, gt: np.ndarray, thresholds=AUC_THRESHOLDS) -> float:
    """Area under the PCK curve: mean PCK (percent) over ``thresholds`` (default 0..150 mm, 31 steps)."""
    return float(pck_curve(pred, gt, thresholds).mean())


def root_relative(joints: np.ndarray, root: int = 0) -> np.ndarray:
    """Joints (..., J, 3) minus their root joint (..., 1, 3); same unit."""
    joints = np.asarray(joints)
    return joints - joints[..., root : root + 1, :]
