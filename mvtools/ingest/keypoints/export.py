"""Writers of the detector formats that :mod:`.formats` reads, in the producing tools' own layouts.

Used to build test fixtures and benchmarks from synthetic data (and handy to hand mvtools' 2D to other tools).
``kp`` arrays are (T, P, K, 3): x, y px and confidence; NaN-padded people are skipped; missing keypoints (NaN)
are written as OpenPose's ``0, 0, 0``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _people(kp_t: np.ndarray):
    for p in kp_t:
        if np.isfinite(p[:, :2]).any():
            yield np.where(np.isfinite(p), p, 0.0)


def write_openpose_dir(folder, frames, kp: np.ndarray, name: str = "video") -> Path:
    """OpenPose ``--write_json`` output: ``<name>_<frame:012d>_keypoints.json`` per frame (version 1.3)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for f, kp_t in zip(frames, kp, strict=True):
        people = [
            {
                "person_id": [-1],
                "pose_keypoints_2d": [round(float(x), 3) for x in p.reshape(-1)],
                "face_keypoints_2d": [],
                "hand_left_keypoints_2d": [],
                "hand_right_keypoints_2d": [],
                "pose_keypoints_3d": [],
                "face_keypoints_3d": [],
                "hand_left_keypoints_3d": [],
                "hand_right_keypoints_3d": [],
            }
            for p in _people(kp_t)
        ]
        (folder / f"{name}_{int(f):012d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": people}))
    return folder


def coco_results(frames, kp: np.ndarray, image_ids=None, score=None) -> list[dict]:
    """COCO keypoint results records (Detectron2 ``instances_to_coco_json`` / mmpose layout):
    ``image_id``, ``category_id`` 1, flat ``keypoints`` [x, y, score, ...], instance ``score``."""
    ids = list(frames) if image_ids is None else list(image_ids)
    out = []
    for t, (iid, kp_t) in enumerate(zip(ids, kp, strict=True)):
        for i, p in enumerate(_people(kp_t)):
            s = float(np.mean(p[:, 2])) if score is None else float(score[t, i])
            out.append(
                {
                    "image_id": int(iid),
                    "category_id": 1,
                    "keypoints": [round(float(x), 3) for x in p.reshape(-1)],
                    "score": round(s, 4),
                }
            )
    return out


def coco_images(entries) -> dict:
    """A minimal COCO annotation file: ``images`` from (id, file_name, width, height) tuples."""
    return {
        "images": [{"id": int(i), "file_name": f, "width": int(w), "height": int(h)} for i, f, w, h in entries],
        "annotations": [],
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
    }


def mmpose_instances(kp_t: np.ndarray) -> list[dict]:
    """mmpose ``split_instances`` records of one frame: keypoints [[x, y], ...], keypoint_scores, bbox, bbox_score."""
    out = []
    for p in _people(kp_t):
        lo, hi = p[:, :2].min(0), p[:, :2].max(0)
        out.append(
            {
                "keypoints": p[:, :2].round(3).tolist(),
                "keypoint_scores": p[:, 2].round(4).tolist(),
                "bbox": [[float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])]],
                "bbox_score": round(float(p[:, 2].mean()), 4),
            }
        )
    return out


def write_mmpose_video(path, frames, kp: np.ndarray) -> Path:
    """mmpose inferencer video output: ``[{"frame_id": i, "instances": [...]}, ...]``."""
    path = Path(path)
    recs = [{"frame_id": int(f), "instances": mmpose_instances(k)} for f, k in zip(frames, kp, strict=True)]
    path.write_text(json.dumps(recs))
    return path
