"""``ingest_keypoints``: multi-view 2D keypoint files -> a dataset with detected 2D, intrinsics and no 3D.

Every view's files are read (:mod:`.formats`), one person per frame is kept (:mod:`.people`), its keypoints are
mapped to the 17 H36M joints (:mod:`.layouts`), per-view frame offsets are applied, and the result is written as
poses2d ``source="detected"`` with ``given`` cameras that carry intrinsics only (R = I, t = 0: no extrinsics).
Next steps: ``mvtools calibrate --from-joints DS --scale body``, ``mvtools triangulate DS``. See docs/keypoints.md.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from mvtools.dataset import DatasetError, DatasetWriter, base_manifest, poses2d_table
from mvtools.ingest.keypoints.formats import RawView, discover
from mvtools.ingest.keypoints.intrinsics import load_intrinsics
from mvtools.ingest.keypoints.layouts import to_h36m
from mvtools.ingest.keypoints.people import select_person
from mvtools.progress import log


def parse_pairs(value, what: str, cast=str) -> dict:
    """'a=1,b=2' (or a dict) -> {'a': cast('1'), ...}."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return {str(k): cast(v) for k, v in value.items()}
    out = {}
    for item in str(value).split(","):
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise ValueError(f"{what}: expected NAME=VALUE items separated by commas, got {item!r}")
        try:
            out[k.strip()] = cast(v.strip())
        except ValueError:
            raise ValueError(f"{what}: {v.strip()!r} is not a valid value for {k.strip()}") from None
    return out


def name_views(views: list[RawView], names) -> list[RawView]:
    """Apply ``--views``: 'a,b,c' (new names in the order of the sorted folders/files) or 'old=new,...'."""
    if not names:
        return views
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = list(names)
    if all("=" in n for n in names):
        ren = parse_pairs(",".join(names), "--views")
        unknown = [k for k in ren if k not in [v.name for v in views]]
        if unknown:
            raise ValueError(f"--views: no view(s) {unknown} (found {[v.name for v in views]})")
        for v in views:
            v.name = ren.get(v.name, v.name)
    else:
        if len(names) != len(views):
            raise ValueError(
                f"--views names {len(names)} view(s) but {len(views)} were found "
                f"({[v.name for v in views]}, in this order)"
            )
        for v, n in zip(views, names, strict=True):
            v.name = n
    got = [v.name for v in views]
    if len(set(got)) != len(got):
        raise ValueError(f"--views: view names must be distinct, got {got}")
    return views


def _check_pixels(view: RawView, uv: np.ndarray, size) -> None:
    """Fail loudly on coordinates that are not pixels of this image (normalised output, wrong image size)."""
    ok = np.isfinite(uv).all(-1)
    if not ok.any():
        return
    pts = uv[ok]
    span = float(np.percentile(np.ptp(pts, axis=0), 50)) if len(pts) > 1 else 0.0
    if np.nanmax(np.abs(pts)) <= 2.0 and span <= 2.0:
        raise DatasetError(
            f"{view.path}: keypoints of view {view.name} lie within [-2, 2]: normalised coordinates "
            "(OpenPose --keypoint_scale)? mvtools needs pixels of the original image"
        )
    if size is not None:
        w, h = size
        out = (pts[:, 0] < -0.5 * w) | (pts[:, 0] > 1.5 * w) | (pts[:, 1] < -0.5 * h) | (pts[:, 1] > 1.5 * h)
        if out.mean() > 0.01:
            raise DatasetError(
                f"{view.path}: {out.mean():.0%} of the keypoints of view {view.name} lie far outside "
                f"its {w}x{h} px image; wrong image size or intrinsics for this view?"
            )


def ingest_keypoints(
    root,
    out,
    views=None,
    fmt: str = "auto",
    layout: str = "auto",
    images_file=None,
    image_regex: str | None = None,
    intrinsics=(),
    focal_px: float | None = None,
    fov_deg: float | None = None,
    image_size=None,
    offsets=None,
    subject: str = "S1",
    sequence: str = "keypoints",
    fps: float | None = None,
    max_jump: float = 0.5,
    command: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Read the keypoint files of every view under ``root`` and write dataset ``out`` (replaced atomically).

    ``views``: names for the views ('a,b,c' in sorted order, or 'old=new,...'); ``fmt`` auto | openpose | coco |
    mmpose | array; ``layout`` auto (by keypoint count) | coco17 | body25 | coco18 | halpe26 | h36m17;
    ``images_file`` / ``image_regex``: image -> (view, frame) for COCO results; ``intrinsics``: list of
    FILE / VIEW=FILE / folder specs, else ``focal_px`` / ``fov_deg`` guess with ``image_size`` (w, h) px;
    ``offsets``: {view: frames} added to that view's frame numbers; ``subject``, ``sequence`` (stored as the
    action), ``fps`` (Hz, stored in the manifest). Returns a summary dict.
    """
    t0 = time.perf_counter()
    if not subject or "/" in subject or "=" in subject:
        raise ValueError(f"subject must be a plain name, got {subject!r}")
    raw = name_views(discover(root, fmt, layout, images_file, image_regex), views)
    names = [v.name for v in raw]
    if len(raw) < 2:
        log(f"warning: only one view ({names}); calibration and triangulation need two or more")
    offs = parse_pairs(offsets, "--offsets", int)
    unknown = [k for k in offs if k not in names]
    if unknown:
        raise ValueError(f"--offsets: no view(s) {unknown} (views: {names})")
    if isinstance(image_size, str):
        try:
            w, h = (int(x) for x in image_size.lower().split("x"))
        except ValueError:
            raise ValueError(f"--image-size must be WIDTHxHEIGHT in px, got {image_size!r}") from None
        image_size = (w, h)
    cams, warns = load_intrinsics(intrinsics, names, {v.name: v.image_size for v in raw}, focal_px, fov_deg, image_size)
    for w in warns:
        log(f"warning: {w}")
    report = {
        "root": str(Path(root).absolute()),
        "views": {},
        "warnings": list(warns),
        "subject": subject,
        "sequence": sequence,
        "intrinsics": [str(s) for s in (intrinsics or [])] or "guessed",
    }
    inputs = [root, images_file, *(str(s).split("=", 1)[-1] for s in intrinsics or ())]
    with DatasetWriter(out, inputs=inputs, overwrite=overwrite) as w:
        for v in raw:
            one, info = select_person(v.kp, max_jump=max_jump)
            uv, conf = to_h36m(one[..., :2], one[..., 2], v.layout)
            conf = np.clip(conf, 0.0, 1.0)
            _check_pixels(v, uv, (cams[v.name].width, cams[v.name].height))
            keep = np.isfinite(uv).all(-1).any(1)
            frames = v.frames[keep] + offs.get(v.name, 0)
            if len(frames) and frames.min() < 0:
                raise ValueError(
                    f"--offsets: view {v.name} gets negative frame numbers ({frames.min()}); "
                    "offsets must keep frames >= 0"
                )
            if keep.any():
                w.add_poses2d(
                    subject, poses2d_table(sequence, 1, sequence, frames, v.name, uv[keep], conf[keep], "detected")
                )
            report["views"][v.name] = {
                "path": str(v.path),
                "format": v.fmt,
                "layout": v.layout,
                "frames_read": int(len(v.frames)),
                "frames_written": int(keep.sum()),
                "offset": int(offs.get(v.name, 0)),
                "mean_confidence": float(conf[keep].mean()) if keep.any() else None,
                **info,
            }
            if info["switches"]:
                log(
                    f"warning: view {v.name}: the kept person changed {info['switches']} time(s) (nobody near the "
                    "previous pick); check that one person is the most prominent in every view"
                )
        if not any(r["frames_written"] for r in report["views"].values()):
            raise DatasetError(f"{root}: no frame of any view has a usable person")
        w.set_cameras([replace(c, subject=subject) for c in cams.values()])
        manifest = base_manifest(
            "keypoints",
            splits={"train": [subject], "test": []},
            fps=fps,
            command=command,
            keypoints=report,
            notes=[
                "2D keypoints only: no 3D, no extrinsics (given cameras hold intrinsics with "
                "R = I, t = 0). Next: mvtools calibrate --from-joints DS --scale body; "
                "mvtools triangulate DS"
            ],
        )
        w.commit(manifest)
    report["rows"] = w.rows["poses2d"]["detected"]
    report["out"] = str(Path(out))
    report["seconds"] = round(time.perf_counter() - t0, 3)
    return report
