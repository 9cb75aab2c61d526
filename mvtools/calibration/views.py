"""Synchronous multi-view 2D joints of one subject, joined across cameras and undistorted.

The join is vectorised: each poses2d row gets an integer key from (action, subaction, frame) and a camera
index, and is scattered into dense arrays ``uv`` (F, V, J, 2) and ``conf`` (F, V, J) with no loop over frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mvtools.camera import Camera, undistort_pixels
from mvtools.dataset import INPUT_SOURCES, DatasetError, joints_to_numpy, read_poses2d
from mvtools.skeleton import NUM_JOINTS


class CalibrationError(DatasetError, ValueError):
    """Calibration cannot proceed (too little or degenerate data); the message says what is missing."""


@dataclass
class Views:
    """2D observations of one subject: F synchronous frames seen by V cameras, J joints.

    ``uv`` holds undistorted (pinhole-exact) pixels, NaN where a joint is missing, non-finite or below the
    confidence threshold; ``conf`` holds the matching confidences (0 where missing).
    """

    subject: str
    cameras: list[Camera]  # intrinsics (the extrinsics are ignored)
    uv: np.ndarray  # (F, V, J, 2) px, undistorted
    conf: np.ndarray  # (F, V, J) 0..1
    frame_keys: np.ndarray  # (F, 3) object array: action, subaction, frame
    source: str

    @property
    def ids(self) -> list[str]:
        return [c.camera for c in self.cameras]

    @property
    def valid(self) -> np.ndarray:
        """(F, V, J) bool: the joint is usable in that view."""
        return self.conf > 0

    @property
    def intrinsics(self) -> np.ndarray:
        """(V, 4) [fx, fy, cx, cy] px."""
        return np.stack([c.intrinsics for c in self.cameras])

    def normalized(self) -> np.ndarray:
        """(F, V, J, 2) normalised image coordinates ((u - cx) / fx, (v - cy) / fy)."""
        k = self.intrinsics
        return (self.uv - k[None, :, None, 2:4]) / k[None, :, None, 0:2]

    def subset(self, frames: np.ndarray) -> Views:
        return Views(
            self.subject, self.cameras, self.uv[frames], self.conf[frames], self.frame_keys[frames], self.source
        )


def join_views(action, subaction, frame, cam_index, uv, conf, n_cams: int):
    """Scatter per-row 2D joints into synchronous frames.

    action (N,) str, subaction (N,) int, frame (N,) int, cam_index (N,) int in [0, n_cams), uv (N, J, 2),
    conf (N, J) -> (keys (F, 3) object, uv (F, V, J, 2) NaN-filled, conf (F, V, J) 0-filled, duplicates (int)).
    """
    action = np.asarray(action, dtype=object)
    acts, a_code = np.unique(action.astype(str), return_inverse=True)
    sub = np.asarray(subaction, np.int64)
    fr = np.asarray(frame, np.int64)
    s_u, s_code = np.unique(sub, return_inverse=True)
    f0 = fr.min() if len(fr) else 0
    key = (a_code.astype(np.int64) * len(s_u) + s_code) * (fr.max() - f0 + 1 if len(fr) else 1) + (fr - f0)
    ukey, first, inv = np.unique(key, return_index=True, return_inverse=True)
    nF, J = len(ukey), uv.shape[1]
    cell = inv.astype(np.int64) * n_cams + np.asarray(cam_index, np.int64)
    duplicates = len(cell) - len(np.unique(cell))
    U = np.full((nF * n_cams, J, 2), np.nan)
    W = np.zeros((nF * n_cams, J))
    U[cell] = uv
    W[cell] = conf
    keys = np.empty((nF, 3), dtype=object)
    keys[:, 0] = action[first]
    keys[:, 1] = sub[first]
    keys[:, 2] = fr[first]
    return keys, U.reshape(nF, n_cams, J, 2), W.reshape(nF, n_cams, J), duplicates


def default_source(ds, subject: str) -> str:
    """``detected`` when the subject has detected 2D in ``ds``, else ``gt``."""
    t = read_poses2d(ds, [subject], columns=["source"], source="detected")
    return "detected" if t.num_rows else "gt"


def load_views(
    ds,
    subject: str,
    cameras: dict[str, Camera],
    source: str | None = None,
    min_confidence: float = 0.3,
    max_frames: int | None = None,
    seed: int = 0,
) -> tuple[Views, int]:
    """Read ``ds``'s poses2d of ``subject`` (``source`` gt|detected, default detected when present),
    keep the cameras in ``cameras`` (id -> Camera with the intrinsics), drop NaNs and joints with confidence
    below ``min_confidence``, join frames across cameras, keep the frames seen by two or more cameras
    (at most ``max_frames`` of them, sampled at random over all sequences) and undistort them with each
    camera's lens model. Returns (views, number of frames seen by two or more cameras)."""
    path = Path(ds) / "poses2d" / f"subject={subject}"
    if source is None:
        source = default_source(ds, subject)
    if source not in INPUT_SOURCES:
        raise ValueError(f"source must be 'gt' or 'detected', got {source!r}")
    table = read_poses2d(
        ds, [subject], source=source, columns=["action", "subaction", "frame", "camera", "joints2d", "confidence"]
    )
    if table.num_rows == 0:
        raise CalibrationError(f"{path}: no {source!r} 2D joints for subject {subject}")
    ids = list(cameras)
    cam_col = table.column("camera")
    keep = pc.is_in(cam_col, value_set=pa.array(ids, pa.string()))
    if not pc.any(keep).as_py():
        have = sorted(set(cam_col.to_pylist()))
        raise CalibrationError(
            f"{path}: 2D joints are for cameras {have}, none of which has intrinsics "
            f"for {subject} in cameras.parquet ({ids})"
        )
    table = table.filter(keep)
    cam_idx = (
        pc.index_in(table.column("camera"), value_set=pa.array(ids, pa.string()))
        .to_numpy(zero_copy_only=False)
        .astype(np.int64)
    )
    uv = joints_to_numpy(table.column("joints2d"), 2).astype(np.float64)
    conf = joints_to_numpy(table.column("confidence"), 1).reshape(-1, NUM_JOINTS).astype(np.float64)
    ok = np.isfinite(uv).all(-1) & np.isfinite(conf) & (conf >= min_confidence) & (conf > 0)
    if not ok.any():
        raise CalibrationError(
            f"{path}: no usable {source!r} joints for {subject}: all are NaN or have confidence < {min_confidence} "
            f"(max confidence {np.nanmax(conf) if np.isfinite(conf).any() else float('nan'):.3f}); "
            "lower --min-confidence"
        )
    uv[~ok] = np.nan
    conf = np.where(ok, conf, 0.0)
    keys, U, W, dup = join_views(
        table.column("action").to_numpy(zero_copy_only=False),
        table.column("subaction").to_numpy(),
        table.column("frame").to_numpy(),
        cam_idx,
        uv,
        conf,
        len(ids),
    )
    if dup:
        raise CalibrationError(f"{path}: {dup} duplicate (action, subaction, frame, camera) rows in {source!r} 2D")
    multi = np.flatnonzero((W.max(axis=2) > 0).sum(1) >= 2)
    n_multi = len(multi)
    if n_multi == 0:
        raise CalibrationError(
            f"{path}: no frame of {subject} has confident {source!r} joints in two or more "
            f"cameras; the views do not overlap"
        )
    if max_frames is not None and n_multi > max_frames:
        multi = np.sort(np.random.default_rng(seed).choice(multi, max_frames, replace=False))
    keys, U, W = keys[multi], U[multi], W[multi]
    for i, cid in enumerate(ids):  # one vectorised call per camera, on the kept frames only
        U[:, i] = undistort_pixels(U[:, i], cameras[cid])
    present = W.max(axis=(0, 2)) > 0 if len(W) else np.zeros(len(ids), bool)
    cams = [cameras[c] for c, p in zip(ids, present) if p]
    return Views(subject, cams, U[:, present], W[:, present], keys, source), n_multi
