"""Readers for the 2D keypoint files that detectors write. Each returns :class:`RawView` objects: all people of
every frame of one camera, in the detector's own layout.

Formats (field layouts as written by the producing tools):

- ``openpose``: a folder of per-frame JSON files (``--write_json``), ``<name>_<frame 12 digits>_keypoints.json``,
  ``{"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": [x0, y0, c0, x1, ...], ...}]}``
  (OpenPose doc/02_output.md; OpenPose <= 1.1 wrote ``pose_keypoints``). Undetected keypoints are ``0, 0, 0``.
  BODY_25 (75 values) or COCO-18 (54 values).
- ``coco``: a COCO keypoint *results* file (mmpose/Detectron2 ``COCOEvaluator``/ViTPose test outputs): a JSON list of
  ``{"image_id": int, "category_id": 1, "keypoints": [x0, y0, s0, ...], "score": float}``. The third value of each
  keypoint is the detector's score. Images map to (view, frame) through a COCO annotation file's ``images``
  (``id`` -> ``file_name``, ``width``, ``height``): the view is the folder of ``file_name`` and the frame the last
  number in its stem, or named groups ``view`` and ``frame`` of ``--image-regex`` applied to ``file_name``; without
  an annotation file the results file is one view and ``image_id`` is the frame.
- ``mmpose``: ``MMPoseInferencer(..., pred_out_dir=...)`` output: for images, one JSON per image holding a list of
  instances ``{"keypoints": [[x, y], ...], "keypoint_scores": [...], "bbox": [[x1, y1, x2, y2]], "bbox_score": s}``
  (a folder = one view, frame = the last number of the file stem); for a video, one JSON
  ``[{"frame_id": i, "instances": [...]}, ...]`` (a file = one view).
- ``array``: ``.npz``/``.npy`` with an array (frames, K, 3) or (frames, people, K, 3) of x, y, confidence
  (``.npz``: key ``keypoints`` or the only array; optional ``frames``), or ``.csv`` with one row per frame: an
  optional ``frame`` column and K x 3 values x0, y0, c0, x1, ... (a header row is optional).

COCO-WholeBody (133 keypoints) is read as its first 17 (the COCO body).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mvtools.dataset import DatasetError
from mvtools.ingest.keypoints.layouts import BY_COUNT, LAYOUTS

FORMATS = ("openpose", "coco", "mmpose", "array")
_LAST_INT = re.compile(r"(\d+)(?!.*\d)")
_OPENPOSE_FRAME = re.compile(r"(\d+)_keypoints$")


@dataclass
class RawView:
    """All detected people of one camera: kp (T, P, K, 3) x, y px and confidence (NaN-padded people),
    score (T, P) instance scores (NaN where absent), frames (T,) int, in the detector's ``layout``."""

    name: str
    frames: np.ndarray
    kp: np.ndarray
    score: np.ndarray
    layout: str
    path: Path
    fmt: str
    image_size: tuple[int, int] | None = None


def _read(path: Path):
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror})") from None


def resolve_layout(k: int, layout: str, path) -> tuple[str, int]:
    """(layout name, keypoints to keep) for a file with ``k`` keypoints per person and the requested ``layout``."""
    if layout == "auto":
        if k == 133:
            return "coco17", 17
        if k not in BY_COUNT:
            raise DatasetError(
                f"{path}: {k} keypoints per person matches no known layout (COCO-17, BODY_25, "
                "COCO-18, Halpe-26, COCO-WholeBody-133); pass --layout"
            )
        return BY_COUNT[k], k
    if layout not in LAYOUTS:
        raise ValueError(f"unknown --layout {layout!r} (known: auto, {', '.join(LAYOUTS)})")
    n = len(LAYOUTS[layout])
    if k != n and not (layout == "coco17" and k == 133):
        raise DatasetError(f"{path}: {k} keypoints per person, but layout {layout} has {n}")
    return layout, n


def _stack(frames: list[int], people: list[list[np.ndarray]], scores: list[list[float]], k: int):
    """Per-frame lists of (K, 3) people -> (frames (T,), kp (T, P, K, 3), score (T, P)), sorted by frame."""
    T = len(frames)
    P = max([len(p) for p in people] + [1])
    kp = np.full((T, P, k, 3), np.nan)
    sc = np.full((T, P), np.nan)
    for t, (ps, ss) in enumerate(zip(people, scores, strict=True)):
        for i, (p, s) in enumerate(zip(ps, ss, strict=True)):
            kp[t, i] = p
            sc[t, i] = s
    fr = np.asarray(frames, np.int64)
    order = np.argsort(fr, kind="stable")
    return fr[order], kp[order], sc[order]


def _check_frames(frames: np.ndarray, path) -> None:
    if len(frames) != len(np.unique(frames)):
        dup = np.unique(frames[np.r_[False, np.diff(np.sort(frames)) == 0]])[:5]
        raise DatasetError(f"{path}: frame number(s) {dup.tolist()} occur more than once")


def _frame_of(stem: str, pattern=_LAST_INT) -> int | None:
    m = pattern.search(stem)
    return int(m.group(1)) if m else None


# ----------------------------------------------------------------------------- OpenPose
def _openpose_people(d, path):
    if not isinstance(d, dict) or not isinstance(d.get("people"), list):
        raise DatasetError(f"{path}: not an OpenPose keypoint file (no 'people' list)")
    out = []
    for i, p in enumerate(d["people"]):
        v = p.get("pose_keypoints_2d", p.get("pose_keypoints")) if isinstance(p, dict) else None
        if not isinstance(v, list) or len(v) % 3:
            raise DatasetError(f"{path}: people[{i}].pose_keypoints_2d must be a flat list of x, y, c triples")
        out.append(np.asarray(v, np.float64).reshape(-1, 3))
    return out


def read_openpose(folder, layout: str = "auto", name: str | None = None) -> RawView:
    """A folder of OpenPose per-frame JSON files -> RawView (frame from ``_<number>_keypoints.json``)."""
    folder = Path(folder)
    files = sorted(folder.glob("*_keypoints.json")) or sorted(folder.glob("*.json"))
    if not files:
        raise DatasetError(f"{folder}: no OpenPose *_keypoints.json files")
    frames, people = [], []
    numbered = [
        _frame_of(f.stem, _OPENPOSE_FRAME) if f.stem.endswith("_keypoints") else _frame_of(f.stem) for f in files
    ]
    if any(n is None for n in numbered):  # image folders: <image name>_keypoints.json; frames in sorted order
        numbered = list(range(len(files)))
    k = None
    for f, fr in zip(files, numbered, strict=True):
        ps = _openpose_people(_read(f), f)
        for p in ps:
            if k is None:
                k = len(p)
            elif len(p) != k:
                raise DatasetError(f"{f}: {len(p)} keypoints per person, earlier files have {k}")
        frames.append(fr)
        people.append(ps)
    if k is None:
        raise DatasetError(f"{folder}: {len(files)} OpenPose files but nobody detected in any of them")
    lay, keep = resolve_layout(k, layout, folder)
    people = [[p[:keep] for p in ps] for ps in people]
    for ps in people:  # OpenPose writes 0, 0, 0 for keypoints it did not find
        for p in ps:
            p[(p[:, 2] <= 0)] = np.nan
    scores = [[np.nan] * len(ps) for ps in people]
    fr, kp, sc = _stack(frames, people, scores, keep)
    _check_frames(fr, folder)
    return RawView(name or folder.name, fr, kp, sc, lay, folder, "openpose")


# ----------------------------------------------------------------------------- COCO results
def _coco_image_table(images_file, regex: str | None):
    """COCO annotation file -> {image_id: (view, frame, (width, height) or None)}."""
    d = _read(Path(images_file))
    imgs = d.get("images") if isinstance(d, dict) else None
    if not isinstance(imgs, list):
        raise DatasetError(f"{images_file}: not a COCO annotation file (no 'images' list)")
    rx = re.compile(regex) if regex else None
    if rx is not None and not {"view", "frame"} <= set(rx.groupindex):
        raise ValueError(f"--image-regex {regex!r} needs named groups (?P<view>...) and (?P<frame>...)")
    out = {}
    for im in imgs:
        try:
            iid, fn = im["id"], str(im["file_name"])
        except (KeyError, TypeError):
            raise DatasetError(f"{images_file}: every entry of 'images' needs 'id' and 'file_name'") from None
        if rx is not None:
            m = rx.search(fn)
            if not m:
                raise DatasetError(f"{images_file}: file_name {fn!r} does not match --image-regex {regex!r}")
            view, frame = m.group("view"), int(m.group("frame"))
        else:
            p = Path(fn.replace("\\", "/"))
            frame = _frame_of(p.stem)
            if p.parent == Path(".") or frame is None:
                raise DatasetError(
                    f"{images_file}: cannot tell view and frame from file_name {fn!r} (expected "
                    "VIEW/NAME<frame>.jpg); pass --image-regex with groups view and frame"
                )
            view = p.parent.name
        size = (int(im["width"]), int(im["height"])) if "width" in im and "height" in im else None
        out[iid] = (view, frame, size)
    return out


def read_coco_results(
    path, images_file=None, image_regex: str | None = None, layout: str = "auto", name: str | None = None
) -> list[RawView]:
    """A COCO keypoint results JSON -> one RawView per view (see the module docstring for the image mapping)."""
    path = Path(path)
    d = _read(path)
    if not isinstance(d, list) or (d and not (isinstance(d[0], dict) and "image_id" in d[0] and "keypoints" in d[0])):
        raise DatasetError(f"{path}: not a COCO keypoint results file (a list of {{image_id, keypoints, score}})")
    table = _coco_image_table(images_file, image_regex) if images_file else None
    groups: dict[str, dict[int, list]] = {}
    sizes: dict[str, tuple] = {}
    k = None
    for i, r in enumerate(d):
        if r.get("category_id", 1) != 1:
            continue
        v = r.get("keypoints")
        if not isinstance(v, list) or len(v) % 3 or not v:
            raise DatasetError(f"{path}: entry {i}: keypoints must be a flat list of x, y, score triples")
        if k is None:
            k = len(v) // 3
        elif len(v) // 3 != k:
            raise DatasetError(f"{path}: entry {i} has {len(v) // 3} keypoints, earlier entries {k}")
        if table is not None:
            if r["image_id"] not in table:
                raise DatasetError(f"{path}: image_id {r['image_id']} is not in {images_file}")
            view, frame, size = table[r["image_id"]]
            if size:
                sizes[view] = size
        else:
            view, frame = name or path.stem, int(r["image_id"])
        groups.setdefault(view, {}).setdefault(frame, []).append(
            (np.asarray(v, np.float64).reshape(-1, 3), float(r.get("score", np.nan)))
        )
    if k is None:
        raise DatasetError(f"{path}: no person (category 1) detections")
    lay, keep = resolve_layout(k, layout, path)
    out = []
    for view in sorted(groups):
        g = groups[view]
        frames = sorted(g)
        people = [[p[:keep] for p, _ in g[f]] for f in frames]
        scores = [[s for _, s in g[f]] for f in frames]
        fr, kp, sc = _stack(frames, people, scores, keep)
        out.append(RawView(view, fr, kp, sc, lay, path, "coco", sizes.get(view)))
    return out


# ----------------------------------------------------------------------------- mmpose
def _mmpose_instances(insts, where):
    if not isinstance(insts, list):
        raise DatasetError(f"{where}: expected a list of mmpose instances")
    people, scores = [], []
    for i, ins in enumerate(insts):
        try:
            xy = np.asarray(ins["keypoints"], np.float64)
            s = np.asarray(ins["keypoint_scores"], np.float64)
        except (KeyError, TypeError, ValueError):
            raise DatasetError(f"{where}: instance {i} needs 'keypoints' [[x, y], ...] and 'keypoint_scores'") from None
        if xy.ndim != 2 or xy.shape[1] < 2 or s.shape != (len(xy),):
            raise DatasetError(f"{where}: instance {i}: keypoints {xy.shape} and keypoint_scores {s.shape} disagree")
        people.append(np.concatenate([xy[:, :2], s[:, None]], 1))
        bs = ins.get("bbox_score")
        scores.append(float(np.ravel(bs)[0]) if bs is not None else np.nan)
    return people, scores


def read_mmpose(path, layout: str = "auto", name: str | None = None) -> RawView:
    """mmpose inferencer predictions: a folder of per-image JSON lists, or one video JSON of frame records."""
    path = Path(path)
    frames, people, scores = [], [], []
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise DatasetError(f"{path}: no mmpose prediction *.json files")
        nums = [_frame_of(f.stem) for f in files]
        if any(n is None for n in nums):
            nums = list(range(len(files)))
        for f, n in zip(files, nums, strict=True):
            ps, ss = _mmpose_instances(_read(f), f)
            frames.append(n)
            people.append(ps)
            scores.append(ss)
    else:
        d = _read(path)
        if not isinstance(d, list) or (d and not (isinstance(d[0], dict) and "instances" in d[0])):
            raise DatasetError(f"{path}: not an mmpose video prediction file (a list of {{frame_id, instances}})")
        for i, rec in enumerate(d):
            ps, ss = _mmpose_instances(rec.get("instances"), f"{path} (frame record {i})")
            frames.append(int(rec.get("frame_id", i)))
            people.append(ps)
            scores.append(ss)
    ks = {len(p) for ps in people for p in ps}
    if not ks:
        raise DatasetError(f"{path}: nobody detected in any frame")
    if len(ks) > 1:
        raise DatasetError(f"{path}: instances with different keypoint counts {sorted(ks)}")
    lay, keep = resolve_layout(ks.pop(), layout, path)
    people = [[p[:keep] for p in ps] for ps in people]
    fr, kp, sc = _stack(frames, people, scores, keep)
    _check_frames(fr, path)
    return RawView(name or path.stem, fr, kp, sc, lay, path, "mmpose")


# ----------------------------------------------------------------------------- arrays
def read_array(path, layout: str = "auto", name: str | None = None) -> RawView:
    """(frames, K, 3) or (frames, people, K, 3) x, y, confidence from .npz / .npy / .csv."""
    path = Path(path)
    frames = None
    suf = path.suffix.lower()
    try:
        if suf == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                key = (
                    "keypoints"
                    if "keypoints" in keys
                    else (keys[0] if len([k for k in keys if k != "frames"]) == 1 else None)
                )
                if key is None:
                    raise DatasetError(f"{path}: holds arrays {keys}; name the keypoint array 'keypoints'")
                a = np.asarray(z[key], np.float64)
                if "frames" in keys:
                    frames = np.asarray(z["frames"], np.int64)
        elif suf == ".npy":
            a = np.asarray(np.load(path, allow_pickle=False), np.float64)
        elif suf == ".csv":
            a, frames = _read_csv(path)
        else:
            raise DatasetError(f"{path}: array input must be .npz, .npy or .csv")
    except (ValueError, OSError) as e:
        if isinstance(e, DatasetError):
            raise
        raise DatasetError(f"{path}: cannot read array ({e})") from None
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4 or a.shape[-1] != 3:
        raise DatasetError(
            f"{path}: keypoints must be (frames, K, 3) or (frames, people, K, 3) x, y, confidence; got shape {a.shape}"
        )
    lay, keep = resolve_layout(a.shape[2], layout, path)
    a = a[:, :, :keep]
    if frames is None:
        frames = np.arange(len(a), dtype=np.int64)
    if len(frames) != len(a):
        raise DatasetError(f"{path}: {len(frames)} frame numbers for {len(a)} frames")
    _check_frames(frames, path)
    order = np.argsort(frames, kind="stable")
    sc = np.full(a.shape[:2], np.nan)
    return RawView(name or path.stem, frames[order], a[order], sc, lay, path, "array")


def _read_csv(path: Path):
    import pandas as pd

    first = path.open().readline()
    has_header = any(c.isalpha() for c in first.replace("e-", "").replace("e+", "").replace("nan", ""))
    df = pd.read_csv(path, header=0 if has_header else None)
    frames = None
    if has_header and "frame" in df.columns:
        frames = df.pop("frame").to_numpy(np.int64)
    vals = df.to_numpy(np.float64)
    if vals.shape[1] % 3:
        raise DatasetError(
            f"{path}: {vals.shape[1]} value columns is not a multiple of 3 (x, y, confidence per keypoint)"
        )
    return vals.reshape(len(vals), -1, 3), frames


# ----------------------------------------------------------------------------- discovery
def detect_format(path: Path) -> str:
    """Guess the format of one view's folder or file."""
    if path.is_dir():
        js = sorted(path.glob("*.json"))
        if any(f.name.endswith("_keypoints.json") for f in js):
            return "openpose"
        if js:
            d = _read(js[0])
            if isinstance(d, dict) and "people" in d:
                return "openpose"
            if isinstance(d, list):
                return "mmpose"
        raise DatasetError(f"{path}: no keypoint files recognised (OpenPose *_keypoints.json or mmpose *.json)")
    suf = path.suffix.lower()
    if suf in (".npz", ".npy", ".csv"):
        return "array"
    if suf == ".json":
        d = _read(path)
        if isinstance(d, list) and d and isinstance(d[0], dict):
            if "image_id" in d[0]:
                return "coco"
            if "instances" in d[0]:
                return "mmpose"
        if isinstance(d, dict) and "people" in d:
            raise DatasetError(f"{path}: a single OpenPose frame; put each view's OpenPose files in their own folder")
        if isinstance(d, dict) and "images" in d:
            raise DatasetError(
                f"{path}: a COCO annotation file, not keypoints; pass it as --coco-images and keep it outside ROOT"
            )
        raise DatasetError(f"{path}: JSON is neither COCO keypoint results nor mmpose predictions")
    raise DatasetError(f"{path}: unknown keypoint file type (folders, .json, .npz, .npy, .csv)")


def read_view(
    path,
    fmt: str = "auto",
    layout: str = "auto",
    name: str | None = None,
    images_file=None,
    image_regex: str | None = None,
) -> list[RawView]:
    """Read one folder or file (one or, for COCO results with an image map, several views)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "openpose":
        return [read_openpose(path, layout, name)]
    if fmt == "coco":
        return read_coco_results(path, images_file, image_regex, layout, name)
    if fmt == "mmpose":
        return [read_mmpose(path, layout, name)]
    if fmt == "array":
        return [read_array(path, layout, name)]
    raise ValueError(f"format must be auto or one of {FORMATS}, got {fmt!r}")


def discover(
    root, fmt: str = "auto", layout: str = "auto", images_file=None, image_regex: str | None = None
) -> list[RawView]:
    """All views under ``root``: one per sub-folder or keypoint file (or the views of one COCO results file)."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    if root.is_file():
        return read_view(root, fmt, layout, None, images_file, image_regex)
    kinds = (".json", ".npz", ".npy", ".csv")
    entries = sorted(
        p for p in root.iterdir() if not p.name.startswith(".") and (p.is_dir() or p.suffix.lower() in kinds)
    )
    if any(p.name.endswith("_keypoints.json") for p in entries):  # ROOT itself is one OpenPose view
        return read_view(root, fmt, layout)
    views = []
    skip = Path(images_file).resolve() if images_file else None
    for p in entries:
        if skip is not None and p.resolve() == skip:
            continue
        views += read_view(p, fmt, layout, None, images_file, image_regex)
    if not views:
        raise DatasetError(f"{root}: no keypoint folders or files (one per view)")
    names = [v.name for v in views]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DatasetError(f"{root}: view name(s) {dup} occur twice; name the views with --views")
    return views
