"""A raw Human3.6M-layout tree from procedural motion (``mvtools synth h36m``).

Writes ``<out>/S1/MyPoseFeatures/D3_Positions/<raw name>.cdf`` (variable ``Pose``, one record [T, 96], world
mm, 32 joints) and ``D2_Positions/<raw name>.<camera>.cdf`` ([T, 64] px, projected with the built-in H36M
calibration and its distortion model), with the real file names (irregular sub-action suffixes,
S1's ``TakingPhoto``/``WalkingDog``), plus ``detections.npz`` in the VideoPose3D layout with a confidence
channel. Motion from :mod:`mvtools.synth` / :mod:`mvtools.motion`, detector noise from :mod:`mvtools.noise`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mvtools.camera import Camera, project
from mvtools.cdf import write_pose_cdf
from mvtools.h36m import TREE_LAYOUTS

#: Full scale: 7 subjects x 30 sequences x ~4300 frames, about 900,000 frames per camera like H36M.
FULL_SCALE = {"sequences": 30, "frames": 4300}


def write_raw_sequence(root, subject: str, raw_name: str, joints32: np.ndarray, rig: dict[str, Camera],
                       d3_frames: int | None = None, d2_frames: dict[str, int] | None = None,
                       layout: str = "release", dtype=np.float64) -> list[Path]:
    """Write one sequence in the raw layout: its D3 file and one D2 file per camera of ``rig``.

    joints32: (T, 32, 3) world mm covering the whole capture; the D3 file gets the first ``d3_frames``
    (default T) frames and each camera's D2 file its first ``d2_frames[cam]`` (default: d3_frames) frames,
    so D2/D3 length mismatches like the real release's can be reproduced. layout: ``release``
    (``S1/MyPoseFeatures/D3_Positions``) or ``h36m-fetch`` (``S1/Poses_D3_Positions``). Returns the paths.
    """
    joints32 = np.asarray(joints32, np.float64)
    T = len(joints32)
    if joints32.shape != (T, 32, 3):
        raise ValueError(f"joints32 must be (T, 32, 3) world mm, got {joints32.shape}")
    n3 = T if d3_frames is None else int(d3_frames)
    d3rel, d2rel = TREE_LAYOUTS[layout]
    sdir = Path(root) / subject
    paths = [write_pose_cdf(sdir / d3rel / f"{raw_name}.cdf", joints32[:n3].reshape(n3, 96), dtype)]
    for cam_id, cam in rig.items():
        n2 = (d2_frames or {}).get(cam_id, n3)
        if n2 > T:
            raise ValueError(f"D2 of camera {cam_id} asks for {n2} frames, the motion has {T}")
        uv = project(joints32[:n2], cam)
        paths.append(write_pose_cdf(sdir / d2rel / f"{raw_name}.{cam_id}.cdf", uv.reshape(n2, 64), dtype))
    return paths
