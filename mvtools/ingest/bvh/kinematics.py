"""BVH kinematics: per-frame local transforms from the channels, forward kinematics, resampling (slerp).

Euler channels are degrees applied in the order listed (see :mod:`mvtools.rotations`); a joint sits at
``parent_pos + parent_global_R @ (OFFSET + position channels)``.
"""
from __future__ import annotations

import math

import numpy as np

from mvtools.ingest.bvh.reader import _AXES, Bvh
from mvtools.rotations import euler_to_quat, euler_to_rotmat, quat_to_rotmat, slerp
from mvtools.skeleton import chain_kinematics

#: ``resample`` methods: slerp of joint rotations + linear root position, or the nearest frame.
RESAMPLE_METHODS = ("slerp", "nearest")


def _rotation_groups(bvh: Bvh) -> dict[str, tuple[list[int], np.ndarray]]:
    """{rotation order: (joints, motion columns (Jg, len(order)))} for joints with rotation channels."""
    groups: dict[str, list[int]] = {}
    for j, ch in enumerate(bvh.channels):
        order = "".join(c[0] for c in ch if c.endswith("rotation"))
        if order:
            groups.setdefault(order, []).append(j)
    return {order: (joints, np.array([[col for c, col in zip(bvh.channels[j], bvh.channel_index[j])
                                       if c.endswith("rotation")] for j in joints]))
            for order, joints in groups.items()}


def local_translations(bvh: Bvh, motion: np.ndarray | None = None) -> np.ndarray:
    """Local translations (T, J, 3): OFFSET + position channels, file units (``motion`` rows default all)."""
    motion = bvh.motion if motion is None else motion
    trans = np.broadcast_to(bvh.offsets, (len(motion), len(bvh.names), 3)).copy()
    for j, ch in enumerate(bvh.channels):
        for c, col in zip(ch, bvh.channel_index[j]):
            if c.endswith("position"):
                trans[:, j, _AXES.index(c[0])] += motion[:, col]
    return trans


def local_transforms(bvh: Bvh, motion: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame local rotations (T, J, 3, 3) and translations (T, J, 3) (OFFSET + position channels,
    file units) of ``motion`` rows (default: all frames). Joints sharing a rotation order are built in one
    vectorised step."""
    motion = bvh.motion if motion is None else motion
    rot = np.broadcast_to(np.eye(3), (len(motion), len(bvh.names), 3, 3)).copy()
    for order, (joints, cols) in _rotation_groups(bvh).items():
        rot[:, joints] = euler_to_rotmat(motion[:, cols], order)
    return rot, local_translations(bvh, motion)


def local_quaternions(bvh: Bvh, motion: np.ndarray | None = None) -> np.ndarray:
    """Per-frame local rotations as quaternions (T, J, 4) [w, x, y, z] of ``motion`` rows."""
    motion = bvh.motion if motion is None else motion
    q = np.zeros((len(motion), len(bvh.names), 4))
    q[..., 0] = 1.0
    for order, (joints, cols) in _rotation_groups(bvh).items():
        q[:, joints] = euler_to_quat(motion[:, cols], order)
    return q


def resample_bvh(bvh: Bvh, fps: float | None, method: str = "slerp") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local rotations (K, J, 3, 3), translations (K, J, 3) at ``fps`` Hz, and the source frame positions (K,).

    ``slerp``: rotations by quaternion slerp between the two neighbouring frames, translations linearly;
    ``nearest``: the nearest frame. Only the frames needed are converted.
    """
    src = resample_times(bvh.num_frames, bvh.fps, fps)
    if method not in RESAMPLE_METHODS:
        raise ValueError(f"resample method must be slerp or nearest, got {method!r}")
    if method == "nearest" or np.allclose(src, np.rint(src)):
        rot, trans = local_transforms(bvh, bvh.motion[np.clip(np.rint(src).astype(int), 0, bvh.num_frames - 1)])
        return rot, trans, src
    i0 = np.clip(np.floor(src).astype(int), 0, bvh.num_frames - 1)
    i1 = np.minimum(i0 + 1, bvh.num_frames - 1)
    w = src - i0
    m0, m1 = bvh.motion[i0], bvh.motion[i1]
    q = slerp(local_quaternions(bvh, m0), local_quaternions(bvh, m1), w[:, None])
    t0, t1 = local_translations(bvh, m0), local_translations(bvh, m1)
    return quat_to_rotmat(q), t0 + (t1 - t0) * w[:, None, None], src


def forward_kinematics(bvh: Bvh) -> np.ndarray:
    """World positions (T, J, 3) of every joint and End Site of every frame, file units, file axes."""
    rot, trans = local_transforms(bvh)
    return chain_kinematics(bvh.parents, rot, trans)


def resample_times(n_frames: int, fps_in: float, fps_out: float | None) -> np.ndarray:
    """Source frame positions (K,) (fractional) of output frames k / fps_out, k = 0.. within the clip."""
    if not fps_out or abs(fps_out - fps_in) < 1e-9:
        return np.arange(n_frames, dtype=np.float64)
    if fps_out <= 0:
        raise ValueError(f"fps must be > 0, got {fps_out}")
    duration = (n_frames - 1) / fps_in
    k = np.arange(int(math.floor(duration * fps_out + 1e-9)) + 1)
    return np.minimum(k * (fps_in / fps_out), n_frames - 1)
