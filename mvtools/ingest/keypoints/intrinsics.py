"""Camera intrinsics for keypoint datasets, from the files people have (see docs/keypoints.md).

``--intrinsics`` values (repeatable), each ``FILE``, ``VIEW=FILE`` or a folder:

- aniposelib ``.toml`` (``cam_N`` tables with ``name``, ``size``, ``matrix``, ``distortions``): cameras by name;
- OpenCV ``FileStorage`` ``.yml``/``.yaml``/``.xml`` (the OpenCV calibration sample's ``camera_matrix``,
  ``distortion_coefficients``, ``image_width``, ``image_height``; aliases ``K``/``cameraMatrix``,
  ``D``/``dist_coeffs``/``distCoeffs``): one camera;
- ``.json``: one camera object or ``{"VIEW": camera, ...}``; a camera has ``width``, ``height`` (px) and either
  ``fx, fy, cx, cy`` or ``camera_matrix``/``K`` (3x3), optionally ``distortion_coefficients``/``dist``
  (OpenCV k1, k2, p1, p2[, k3]);
- a folder: ``VIEW.toml|yml|yaml|xml|json`` for each view.

A file that names no view (YAML/XML, a single-camera JSON) applies to ``VIEW=`` or, given alone, to every view
(identical cameras). Without a file: ``--focal-px F`` or ``--fov-deg A`` (horizontal field of view) with the image
size, principal point at the image centre, no distortion; this is a guess and says so (errors in focal length
become errors in the extrinsics and the 3D).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from mvtools.camera import Camera
from mvtools.dataset import DatasetError

_YAML = (".yml", ".yaml", ".xml")


def _camera(view: str, w, h, K, dist, source: str) -> Camera:
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise DatasetError(f"{source}: camera matrix of {view!r} must be a finite 3x3 matrix with fx, fy > 0")
    d = np.zeros(5) if dist is None else np.asarray(dist, np.float64).reshape(-1)
    if len(d) > 5 and np.any(d[5:]):
        raise DatasetError(
            f"{source}: {view!r} has {len(d)} distortion coefficients; only the OpenCV k1, k2, p1, "
            "p2, k3 model is supported (rational/thin-prism terms are not)"
        )
    d = np.concatenate([d[:5], np.zeros(max(0, 5 - len(d)))])
    if w is None or h is None or not (int(w) > 0 and int(h) > 0):
        raise DatasetError(f"{source}: image size of {view!r} is missing (width/height, image_width/image_height)")
    model = "opencv" if np.any(d) else "none"
    return Camera(
        camera=view,
        width=int(w),
        height=int(h),
        fx=K[0, 0],
        fy=K[1, 1],
        cx=K[0, 2],
        cy=K[1, 2],
        R=np.eye(3),
        t=np.zeros(3),
        k=(d[0], d[1], d[4]),
        p=(d[2], d[3]),
        distortion_model=model,
        source="given",
    )


def read_opencv_yaml(path, view: str) -> Camera:
    """One camera from an OpenCV FileStorage YAML/XML file (read with ``cv2.FileStorage``)."""
    import cv2

    path = Path(path)
    try:
        fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    except cv2.error as e:
        raise DatasetError(f"{path}: not an OpenCV FileStorage file ({e.err})") from None
    if not fs.isOpened():
        raise DatasetError(f"{path}: cannot open as an OpenCV FileStorage file")

    def node(*names):
        for n in names:
            nd = fs.getNode(n)
            if not nd.empty():
                return nd
        return None

    k = node("camera_matrix", "cameraMatrix", "K", "intrinsic_matrix")
    if k is None or k.mat() is None:
        raise DatasetError(f"{path}: no camera_matrix (3x3 opencv-matrix) found")
    d = node("distortion_coefficients", "dist_coeffs", "distCoeffs", "D")
    w, h = node("image_width", "width"), node("image_height", "height")
    size = node("image_size", "imageSize")
    W = w.real() if w is not None else None
    H = h.real() if h is not None else None
    if (W is None or H is None) and size is not None:
        s = size.mat().reshape(-1) if size.isMap() or size.mat() is not None else [size.at(i).real() for i in (0, 1)]
        W, H = s[0], s[1]
    cam = _camera(view, W, H, k.mat(), None if d is None else d.mat(), str(path))
    fs.release()
    return cam


def _json_camera(view: str, d: dict, source: str) -> Camera:
    if "fx" in d:
        K = [[d["fx"], 0, d["cx"]], [0, d["fy"], d["cy"]], [0, 0, 1]]
    else:
        K = d.get("camera_matrix", d.get("K"))
        if K is None:
            raise DatasetError(f"{source}: camera {view!r} needs fx, fy, cx, cy or camera_matrix")
    size = d.get("size") or d.get("image_size")
    w = d.get("width", d.get("image_width", size[0] if size else None))
    h = d.get("height", d.get("image_height", size[1] if size else None))
    return _camera(view, w, h, K, d.get("distortion_coefficients", d.get("dist")), source)


def read_json_intrinsics(path) -> dict[str | None, dict]:
    """JSON intrinsics -> {view: camera dict}; key None for a single camera object."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(d, dict):
        raise DatasetError(f"{path}: intrinsics JSON must be an object")
    if "fx" in d or "camera_matrix" in d or "K" in d:
        return {None: d}
    return d


def _from_file(path: Path, views: list[str], only: str | None) -> dict[str, Camera]:
    suf = path.suffix.lower()
    if suf == ".toml":
        from mvtools.calibration.toml_io import read_aniposelib_toml

        cams = {c.camera: c for c in read_aniposelib_toml(path, source="given")}
        if only is not None:
            if only in cams:
                cams = {only: cams[only]}
            elif len(cams) == 1:
                cams = {only: next(iter(cams.values()))}
            else:
                raise DatasetError(f"{path}: no camera named {only!r} (has {sorted(cams)})")
        return {
            v: Camera(
                camera=v,
                width=c.width,
                height=c.height,
                fx=c.fx,
                fy=c.fy,
                cx=c.cx,
                cy=c.cy,
                R=np.eye(3),
                t=np.zeros(3),
                k=c.k,
                p=c.p,
                distortion_model=c.distortion_model,
                source="given",
            )
            for v, c in cams.items()
        }
    if suf in _YAML:
        targets = [only] if only is not None else views
        return {v: read_opencv_yaml(path, v) for v in targets}
    if suf == ".json":
        d = read_json_intrinsics(path)
        if None in d:
            targets = [only] if only is not None else views
            return {v: _json_camera(v, d[None], str(path)) for v in targets}
        if only is not None:
            if only not in d:
                raise DatasetError(f"{path}: no camera named {only!r} (has {sorted(d)})")
            d = {only: d[only]}
        return {v: _json_camera(v, c, str(path)) for v, c in d.items()}
    raise DatasetError(f"{path}: intrinsics must be .toml (aniposelib), .yml/.yaml/.xml (OpenCV) or .json")


def guess_camera(view: str, size, focal_px: float | None, fov_deg: float | None) -> Camera:
    """Pinhole guess: fx = fy = focal_px or (width / 2) / tan(fov / 2), principal point at the image centre."""
    if size is None:
        raise DatasetError(f"view {view!r}: a focal-length guess needs the image size (--image-size WxH)")
    w, h = size
    if focal_px is None:
        if not 1 < fov_deg < 179:
            raise ValueError(f"--fov-deg must be between 1 and 179 degrees, got {fov_deg}")
        focal_px = (w / 2) / math.tan(math.radians(fov_deg) / 2)
    if not focal_px > 0:
        raise ValueError(f"--focal-px must be > 0, got {focal_px}")
    return Camera(
        camera=view,
        width=int(w),
        height=int(h),
        fx=focal_px,
        fy=focal_px,
        cx=w / 2,
        cy=h / 2,
        R=np.eye(3),
        t=np.zeros(3),
        distortion_model="none",
        source="given",
    )


def load_intrinsics(
    specs,
    views: list[str],
    sizes: dict | None = None,
    focal_px: float | None = None,
    fov_deg: float | None = None,
    image_size=None,
) -> tuple[dict[str, Camera], list[str]]:
    """{view: Camera (intrinsics; R = I, t = 0)} for every view, and warnings. See the module docstring."""
    sizes = dict(sizes or {})
    cams: dict[str, Camera] = {}
    for spec in specs or ():
        spec = str(spec)
        only, _, fname = spec.partition("=") if "=" in spec else (None, "", spec)
        p = Path(fname)
        if not p.exists():
            raise FileNotFoundError(f"{p}: intrinsics file not found")
        if p.is_dir():
            for v in views:
                hits = [p / f"{v}{s}" for s in (".toml", ".yml", ".yaml", ".xml", ".json") if (p / f"{v}{s}").exists()]
                if hits:
                    cams.update(_from_file(hits[0], views, v))
            continue
        got = _from_file(p, views, only)
        cams.update({v: c for v, c in got.items() if v in views or only is not None})
    warnings = []
    missing = [v for v in views if v not in cams]
    if missing:
        if focal_px is None and fov_deg is None:
            raise DatasetError(
                f"no intrinsics for view(s) {missing}: pass --intrinsics FILE (aniposelib TOML, "
                "OpenCV YAML/XML, JSON) or, as a guess, --focal-px / --fov-deg with --image-size"
            )
        for v in missing:
            size = image_size or sizes.get(v)
            cams[v] = guess_camera(v, size, focal_px, fov_deg)
            warnings.append(
                f"view {v}: intrinsics GUESSED (f = {cams[v].fx:.1f} px, principal point at the image "
                f"centre, no distortion); calibration and 3D are only as good as this guess"
            )
    unknown = [v for v in cams if v not in views]
    if unknown:
        raise DatasetError(f"intrinsics given for {unknown}, which are not views of the keypoints ({views})")
    return {v: cams[v] for v in views}, warnings
