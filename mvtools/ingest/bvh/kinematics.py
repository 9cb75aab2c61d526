"""BVH kinematics: per-frame local transforms from the channels, forward kinematics, resampling (slerp).

Euler channels are degrees applied in the order listed (see :mod:`mvtools.rotations`); a joint sits at
``parent_pos + parent_global_R @ local translation``.

Position channels (checked against three widely used readers, docs/bvh.md):
- root: its position channels *are* its position; the root OFFSET is used only for axes without a channel.
  Blender's importer (``io_anim_bvh/import_bvh.py``: pose location = channels - rest head), LAFAN1's loader
  (``lafan1/extract.py``: positions start as OFFSETs and channels overwrite them) and PyMO
  (``pymo/preprocessing.py``: root position = channels, the OFFSET addition commented out) agree.
- other joints: ``replace`` (default): the channels are the joint's local translation, as Blender and LAFAN1
  read them (Bandai Namco's files: 6 channels per joint, positions equal to the OFFSET in every frame);
  ``add``: OFFSET + channels, as PyMO reads them. ``auto`` takes ``replace`` unless every non-root position
  channel stays near zero while the OFFSETs do not (deltas, which only ``add`` reads as a skeleton).
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
    return {
        order: (
            joints,
            np.array(
                [
                    [col for c, col in zip(bvh.channels[j], bvh.channel_index[j]) if c.endswith("rotation")]
                    for j in joints
                ]
            ),
        )
        for order, joints in groups.items()
    }


POSITION_MODES = ("auto", "replace", "add")
#: ``auto`` reads non-root position channels as deltas (``add``) when their median length is below this
#: fraction of the OFFSET's length for every such joint.
DELTA_FRACTION = 0.05


def _position_joints(bvh: Bvh) -> list[int]:
    return [j for j, ch in enumerate(bvh.channels) if bvh.parents[j] >= 0 and any(c.endswith("position") for c in ch)]


def resolve_position_mode(bvh: Bvh, mode: str = "auto") -> tuple[str, str]:
    """(``replace`` or ``add``, how it was decided) for the position channels of non-root joints."""
    if mode not in POSITION_MODES:
        raise ValueError(f"position channel convention must be one of {', '.join(POSITION_MODES)}, got {mode!r}")
    joints = _position_joints(bvh)
    if mode != "auto":
        return mode, f"given (--position-channels {mode})" if joints else "given (no non-root position channels)"
    if not joints:
        return "replace", "no non-root position channels"
    ratios = []
    for j in joints:
        cols = [
            (col, _AXES.index(c[0]))
            for c, col in zip(bvh.channels[j], bvh.channel_index[j], strict=True)
            if c.endswith("position")
        ]
        v = np.zeros((bvh.num_frames, 3))
        for col, ax in cols:
            v[:, ax] = bvh.motion[:, col]
        off = float(np.linalg.norm(bvh.offsets[j]))
        if off > 0:
            ratios.append(float(np.median(np.linalg.norm(v, axis=1))) / off)
    if ratios and max(ratios) < DELTA_FRACTION:
        return "add", (
            f"{len(joints)} non-root joints have position channels near zero (at most "
            f"{max(ratios):.1%} of their OFFSET): read as OFFSET + channels"
        )
    return "replace", (
        f"{len(joints)} non-root joints have position channels: read as their local "
        f"translation (as Blender and LAFAN1 do); --position-channels add for OFFSET + channels"
    )


def local_translations(bvh: Bvh, motion: np.ndarray | None = None) -> np.ndarray:
    """Local translations (T, J, 3), file units (``motion`` rows default all): the OFFSET, where a joint has
    position channels those channels (root always; other joints when ``bvh.position_mode`` is ``replace``)
    or OFFSET + channels (other joints, ``add``)."""
    motion = bvh.motion if motion is None else motion
    trans = np.broadcast_to(bvh.offsets, (len(motion), len(bvh.names), 3)).copy()
    add = bvh.position_mode == "add"
    for j, ch in enumerate(bvh.channels):
        for c, col in zip(ch, bvh.channel_index[j], strict=True):
            if c.endswith("position"):
                if add and bvh.parents[j] >= 0:
                    trans[:, j, _AXES.index(c[0])] += motion[:, col]
                else:
                    trans[:, j, _AXES.index(c[0])] = motion[:, col]
    return trans


def posed_height(bvh: Bvh, samples: int = 50) -> float:
    """Median over up to ``samples`` evenly spaced frames of the posed skeleton's largest x/y/z extent (file
    units): OFFSETs and position channels both count (0.0 when undefined)."""
    if bvh.num_frames == 0:
        return 0.0
    idx = np.unique(np.linspace(0, bvh.num_frames - 1, min(samples, bvh.num_frames)).round().astype(int))
    rot, trans = local_transforms(bvh, bvh.motion[idx])
    with np.errstate(all="ignore"):
        P = chain_kinematics(bvh.parents, rot, trans)
        ext = (P.max(1) - P.min(1)).max(-1)
    ext = ext[np.isfinite(ext)]
    return float(np.median(ext)) if len(ext) else 0.0


#: A frame is an outlier when a position channel is this many skeleton extents from its median over the clip.
OUTLIER_EXTENTS = 100.0
#: ... or a rotation channel exceeds this many degrees in magnitude.
OUTLIER_ANGLE_DEG = 1e5


def outlier_frames(bvh: Bvh, extent: float) -> np.ndarray:
    """(T,) bool: frames with a position channel more than :data:`OUTLIER_EXTENTS` x ``extent`` (file
    units) from its median over the clip, or a rotation channel beyond :data:`OUTLIER_ANGLE_DEG`."""
    bad = np.zeros(bvh.num_frames, bool)
    named = [
        (c, col)
        for ch, idx in zip(bvh.channels, bvh.channel_index, strict=True)
        for c, col in zip(ch, idx, strict=True)
    ]
    pos = [col for c, col in named if c.endswith("position")]
    rot = [col for c, col in named if c.endswith("rotation")]
    if pos:
        m = bvh.motion[:, pos]
        bad |= (np.abs(m - np.median(m, axis=0)) > OUTLIER_EXTENTS * max(extent, 1e-9)).any(1)
    if rot:
        bad |= (np.abs(bvh.motion[:, rot]) > OUTLIER_ANGLE_DEG).any(1)
    return bad


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
