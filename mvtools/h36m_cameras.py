"""The published Human3.6M calibration, built in (mvtools/data/h36m_cameras.json).

Intrinsics in px, H36M distortion model; extrinsics converted from VideoPose3D's camera->world quaternion
and camera centre (mm) to mvtools' world->camera ``R``, ``t``.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from mvtools.camera import Camera, check_cameras, tvec_from_center
from mvtools.io import read_json
from mvtools.rotations import quat_to_rotmat

#: Camera ids in the H36M index order 0..3 (VideoPose3D npz lists follow it).
H36M_CAMERA_IDS = ["54138969", "55011271", "58860488", "60457274"]
H36M_SUBJECTS = ["S1", "S5", "S6", "S7", "S8", "S9", "S11"]
H36M_TRAIN = ["S1", "S5", "S6", "S7", "S8"]
H36M_TEST = ["S9", "S11"]


@cache
def _builtin() -> dict:
    return json.loads(resources.files("mvtools").joinpath("data/h36m_cameras.json").read_text())


def cameras_from_json(data: dict, source_name: str = "built-in") -> list[Camera]:
    """Cameras from a dict in the layout of mvtools/data/h36m_cameras.json (or VideoPose3D's JSON dump:
    ``intrinsics`` or ``cameras`` per camera id, ``extrinsics`` per subject and camera id)."""
    if not isinstance(data, dict):
        raise ValueError(f"{source_name}: a camera file must be a JSON object, got a JSON {type(data).__name__}")
    intr = data.get("intrinsics") or data.get("cameras")
    ext = data.get("extrinsics")
    if not isinstance(intr, dict) or not isinstance(ext, dict):
        raise ValueError(f"{source_name}: expected 'intrinsics' (or 'cameras') and 'extrinsics' objects")
    out = []
    for subject, per_cam in ext.items():
        for cam_id, e in per_cam.items():
            if not e:
                continue
            if cam_id not in intr:
                raise ValueError(f"{source_name}: extrinsics of {subject} name unknown camera {cam_id!r}")
            i = intr[cam_id]
            try:
                R = quat_to_rotmat(np.array(e["orientation"], float)).T  # camera->world quaternion -> world->camera
                C = np.array(e["translation"], float)
                out.append(
                    Camera(
                        camera=str(cam_id),
                        width=int(i["res_w"]),
                        height=int(i["res_h"]),
                        fx=float(i["focal_length"][0]),
                        fy=float(i["focal_length"][1]),
                        cx=float(i["center"][0]),
                        cy=float(i["center"][1]),
                        R=R,
                        t=tvec_from_center(R, C),
                        k=tuple(float(v) for v in i["radial_distortion"]),
                        p=tuple(float(v) for v in i["tangential_distortion"]),
                        distortion_model="h36m",
                        subject=subject,
                        source="given",
                    )
                )
            except (KeyError, IndexError, TypeError) as ex:
                raise ValueError(f"{source_name}: camera {cam_id} of {subject} lacks field {ex}") from None
            except ValueError as ex:
                raise ValueError(f"{source_name}: camera {cam_id} of {subject}: {ex}") from None
    return check_cameras(out, source_name)


def h36m_cameras(path: str | Path | None = None) -> list[Camera]:
    """All (subject, camera) Cameras of the H36M rig: built-in, or read from ``path`` (same JSON layout)."""
    if path is None:
        return cameras_from_json(_builtin())
    return cameras_from_json(read_json(path, "camera file"), str(path))


def h36m_rig(subject: str, path: str | Path | None = None) -> dict[str, Camera]:
    """{camera id: Camera} of one subject, in H36M camera order."""
    cams = {c.camera: c for c in h36m_cameras(path) if c.subject == subject}
    if not cams:
        raise ValueError(f"no H36M calibration for subject {subject!r} (have {', '.join(H36M_SUBJECTS)})")
    return {cid: cams[cid] for cid in H36M_CAMERA_IDS if cid in cams}
