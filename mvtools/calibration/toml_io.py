"""aniposelib camera TOML (``CameraGroup.dump`` / ``CameraGroup.load`` layout) <-> mvtools Cameras.

One table per camera, keyed ``cam_0``, ``cam_1``, ... in camera order::

    [cam_0]
    name = "54138969"
    size = [1000, 1002]                      # width, height px
    matrix = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
    distortions = [k1, k2, p1, p2, k3]        # OpenCV order
    rotation = [rx, ry, rz]                   # Rodrigues vector (rad), world->camera
    translation = [tx, ty, tz]                # OpenCV tvec, mm

    [metadata]
    units = "mm"
    ...

Written with tomli-w (arrays one number per line; the same tables, keys and values as aniposelib's
``toml.dump``), read with tomllib. Rotation and translation are what ``cv2.projectPoints`` takes. Cameras with
the ``h36m`` lens model are written with ``Camera.opencv_distortion()`` (the closest OpenCV vector; the
tangential terms of the two models differ by up to ~0.5 px at the image corners, see docs/data-model.md). On
reading, ``cam_N`` tables are ordered by N (aniposelib sorts them as strings, so ``cam_10`` would come before
``cam_2``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import tomli_w

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from mvtools.camera import Camera, check_cameras
from mvtools.io import atomic_path
from mvtools.rotations import rodrigues, rotmat_to_rodrigues

UNITS_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0}


def _finite(vals, what: str) -> list[float]:
    out = [float(v) for v in np.ravel(vals)]
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"cannot write non-finite {what} {out} to TOML")
    return out


def _plain(v):
    """numpy scalars / tuples -> the Python values TOML writes (bool, int, float, str, list)."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return _finite([v], "metadata value")[0]
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_plain(x) for x in v]
    return str(v)


def camera_table(c: Camera) -> dict:
    """One ``[cam_N]`` table, keys in the order of aniposelib's ``Camera.get_dict``."""
    return {
        "name": str(c.camera),
        "size": [int(c.width), int(c.height)],
        "matrix": [_finite(r, "matrix") for r in c.K],
        "distortions": _finite(c.opencv_distortion(), "distortions"),
        "rotation": _finite(rotmat_to_rodrigues(np.asarray(c.R, float)), "rotation"),
        "translation": _finite(np.asarray(c.t, float), "translation"),
    }


def toml_text(cams: list[Camera], metadata: dict | None = None) -> str:
    """The aniposelib TOML text for ``cams`` (translations in mm): ``cam_0``, ``cam_1``, ... then ``metadata``,
    as ``CameraGroup.dump`` writes them (written by tomli-w; numbers round-trip exactly)."""
    doc = {f"cam_{i}": camera_table(c) for i, c in enumerate(cams)}
    meta = {"units": "mm", "adjusted": False, "error": 0.0}
    meta.update(metadata or {})
    doc["metadata"] = {k: _plain(v) for k, v in meta.items() if v is not None}
    return tomli_w.dumps(doc)


def write_aniposelib_toml(path, cams: list[Camera], metadata: dict | None = None) -> Path:
    """Write ``cams`` as an aniposelib calibration TOML at ``path`` (atomically); returns the path."""
    path = Path(path)
    if not cams:
        raise ValueError(f"{path}: no cameras to write")
    text = toml_text(list(cams), metadata)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def _matrix(v, shape, what, path, table):
    try:
        a = np.asarray(v, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: [{table}] {what} is not numeric") from None
    if a.size != int(np.prod(shape)):
        raise ValueError(f"{path}: [{table}] {what} must have {int(np.prod(shape))} numbers, got {a.size}")
    if not np.isfinite(a).all():
        raise ValueError(f"{path}: [{table}] {what} has non-finite values")
    return a.reshape(shape)


def read_aniposelib_toml(path, subject: str = "", source: str = "estimated", units: str | None = None) -> list[Camera]:
    """Cameras of an aniposelib calibration TOML, in ``cam_N`` order (by N).

    Distortion model ``opencv`` (``none`` when all coefficients are zero). Translations are converted to mm
    from ``units`` (mm, cm or m), default ``[metadata] units`` when present, else mm. Fisheye cameras are
    refused.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid TOML ({e})") from None
    meta = data.get("metadata", {}) or {}
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: metadata must be a [metadata] table, got a {type(meta).__name__}")
    unit = units or meta.get("units", "mm")
    if unit not in UNITS_MM:
        raise ValueError(f"{path}: unknown translation unit {unit!r} (expected one of {sorted(UNITS_MM)})")
    to_mm = UNITS_MM[unit]
    tables = sorted((int(m.group(1)), k) for k in data if (m := re.fullmatch(r"cam_(\d+)", k)))
    if not tables:
        raise ValueError(f"{path}: no [cam_N] tables (is this an aniposelib calibration file?)")
    cams = []
    for _, key in tables:
        d = data[key]
        if not isinstance(d, dict):
            raise ValueError(f"{path}: {key} must be a [{key}] table, got a {type(d).__name__}")
        missing = [f for f in ("size", "matrix", "distortions", "rotation", "translation") if f not in d]
        if missing:
            raise ValueError(f"{path}: [{key}] lacks {', '.join(missing)}")
        if d.get("fisheye"):
            raise ValueError(f"{path}: [{key}] is a fisheye camera, which mvtools does not model")
        size = _matrix(d["size"], (2,), "size", path, key)
        K = _matrix(d["matrix"], (3, 3), "matrix", path, key)
        dist = np.asarray(d["distortions"], float).ravel()
        if dist.size not in (4, 5, 8, 12, 14) or not np.isfinite(dist).all():
            raise ValueError(
                f"{path}: [{key}] distortions must be OpenCV [k1, k2, p1, p2(, k3)], got {dist.size} values"
            )
        if dist.size > 5 and np.any(dist[5:]):
            raise ValueError(f"{path}: [{key}] has rational/thin-prism distortion terms mvtools does not model")
        dist = np.concatenate([dist, np.zeros(max(0, 5 - dist.size))])[:5]
        rot = np.asarray(d["rotation"], float)
        if rot.size == 9:
            R = rot.reshape(3, 3)
        else:
            R = rodrigues(_matrix(rot, (3,), "rotation", path, key))
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
            raise ValueError(f"{path}: [{key}] rotation is not a proper rotation")
        t = _matrix(d["translation"], (3,), "translation", path, key) * to_mm
        if abs(K[0, 1]) > 1e-9 * abs(K[0, 0]) or not np.allclose(K[2], [0, 0, 1]):
            raise ValueError(f"{path}: [{key}] matrix must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]")
        k1, k2, p1, p2, k3 = (float(v) for v in dist)
        model = "opencv" if np.any(dist) else "none"
        cams.append(
            Camera(
                camera=str(d.get("name", key)),
                width=int(size[0]),
                height=int(size[1]),
                fx=float(K[0, 0]),
                fy=float(K[1, 1]),
                cx=float(K[0, 2]),
                cy=float(K[1, 2]),
                R=R,
                t=t,
                k=(k1, k2, k3),
                p=(p1, p2),
                distortion_model=model,
                subject=subject,
                source=source,
            )
        )
    names = [c.camera for c in cams]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: camera names repeat: {names}")
    return check_cameras(cams, str(path))
