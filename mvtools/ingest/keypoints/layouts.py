"""Detector keypoint layouts (COCO-17, OpenPose BODY_25 and COCO-18, Halpe-26) and their map to the 17 H36M joints.

Every H36M joint is an affine combination of detector keypoints, so the mapping is the same for 2D and 3D arrays
(up to perspective for the derived points, see docs/keypoints.md):

- limbs (hips, knees, ankles, shoulders, elbows, wrists): the detector's joint of the same name;
- ``pelvis`` = mid-hip (mean of the two hips), ``thorax`` = mid-shoulder, ``spine`` = midpoint of pelvis and thorax;
- ``neck`` (H36M joint 9, VideoPose3D's "Neck/Nose") = the nose;
- ``head`` (H36M joint 10, the top of the head): Halpe-26's ``head`` keypoint; for the other layouts the mid-ear
  point extrapolated away from the thorax by half the thorax -> mid-ear distance:
  ``head = E + 0.5 (E - thorax)`` with ``E`` the mean of the two ears.

A derived joint's confidence is the minimum of its sources' confidences (a derived point is only as good as its
weakest source). Missing keypoints (NaN position or confidence 0) make every joint derived from them missing.
"""

from __future__ import annotations

import numpy as np

from mvtools.skeleton import H36M17_NAMES, NUM_JOINTS

COCO17 = [
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
]
#: OpenPose BODY_25 (doc/02_output.md, "Pose Output Format (BODY_25)").
BODY25 = [
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "mid_hip",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
    "left_big_toe",
    "left_small_toe",
    "left_heel",
    "right_big_toe",
    "right_small_toe",
    "right_heel",
]
#: OpenPose COCO-18 (doc/02_output.md, "Pose Output Format (COCO)").
COCO18 = [
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
]
#: Halpe-26 (AlphaPose, mmpose ``halpe26``): COCO-17, then head (top), neck, hip (mid), toes and heels.
HALPE26 = COCO17 + [
    "head",
    "neck",
    "hip",
    "left_big_toe",
    "right_big_toe",
    "left_small_toe",
    "right_small_toe",
    "left_heel",
    "right_heel",
]
LAYOUTS = {"coco17": COCO17, "body25": BODY25, "coco18": COCO18, "halpe26": HALPE26, "h36m17": list(H36M17_NAMES)}
#: layout by number of keypoints (the only way to tell them apart in most files)
BY_COUNT = {17: "coco17", 25: "body25", 18: "coco18", 26: "halpe26"}

_DIRECT = [
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
]
#: fraction of the thorax -> mid-ear vector added beyond the mid-ear point to reach the top of the head
HEAD_EXTRAPOLATION = 0.5


def _recipe(layout: str) -> list[list[tuple[str, float]]]:
    """Per H36M joint: the (source keypoint, weight) terms of its affine combination (weights sum to 1)."""
    mid = lambda a, b: [(a, 0.5), (b, 0.5)]  # noqa: E731
    hip, sh = mid("left_hip", "right_hip"), mid("left_shoulder", "right_shoulder")
    r = {n: [(n, 1.0)] for n in _DIRECT}
    r["pelvis"] = hip
    r["thorax"] = sh
    r["spine"] = [(k, 0.5 * w) for k, w in hip + sh]
    r["neck"] = [("nose", 1.0)]
    if layout == "halpe26":
        r["head"] = [("head", 1.0)]
    else:  # head = E + h (E - thorax) = (1 + h) E - h thorax
        h = HEAD_EXTRAPOLATION
        r["head"] = [(k, (1 + h) * w) for k, w in mid("left_ear", "right_ear")] + [(k, -h * w) for k, w in sh]
    return [r[n] for n in H36M17_NAMES]


def mapping_matrix(layout: str) -> tuple[np.ndarray, np.ndarray]:
    """(W (17, K) weights, S (17, K) bool sources) with ``h36m = W @ keypoints`` for a layout of K keypoints."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown keypoint layout {layout!r} (known: {', '.join(LAYOUTS)})")
    names = LAYOUTS[layout]
    if layout == "h36m17":
        return np.eye(NUM_JOINTS), np.eye(NUM_JOINTS, dtype=bool)
    W = np.zeros((NUM_JOINTS, len(names)))
    for j, terms in enumerate(_recipe(layout)):
        for k, w in terms:
            W[j, names.index(k)] += w
    return W, W != 0


def to_h36m(kp: np.ndarray, conf: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """Detector keypoints (..., K, D) and confidences (..., K) -> H36M joints (..., 17, D), confidences (..., 17).

    A keypoint is missing when its position is not finite (readers turn OpenPose's ``0, 0, 0`` into NaN); a joint
    is missing (NaN, confidence 0) when any of its sources is. Confidence of a joint = minimum over its sources
    (NaN confidences count as 0); a joint with confidence 0 keeps its position.
    """
    W, S = mapping_matrix(layout)
    kp = np.asarray(kp, np.float64)
    conf = np.asarray(conf, np.float64)
    if kp.shape[-2] != W.shape[1]:
        raise ValueError(f"layout {layout} has {W.shape[1]} keypoints, got {kp.shape[-2]}")
    miss = ~np.isfinite(kp).all(-1)
    c = np.where(miss | ~np.isfinite(conf), 0.0, np.maximum(conf, 0.0))
    x = np.where(miss[..., None], 0.0, kp)
    out = np.einsum("jk,...kd->...jd", W, x)
    cj = np.where(S, c[..., None, :], np.inf).min(-1)  # (..., 17)
    bad = (S & miss[..., None, :]).any(-1)
    out[bad] = np.nan
    return out, np.where(bad, 0.0, cj)


def from_h36m(joints: np.ndarray, layout: str, conf: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Synthesise detector keypoints (..., K, D) from H36M joints (..., 17, D) so that :func:`to_h36m` gives back
    the limbs, neck (nose) and head exactly (pelvis, spine and thorax become the hip / shoulder midpoints).

    For synthetic fixtures and benchmarks only (eyes, ears, feet are placed by fixed rules, not anatomy): ears at
    ``E -+ 0.2 (left_shoulder - right_shoulder)`` with ``E = (head + 0.5 thorax') / 1.5``, eyes between nose and
    ears, BODY_25 feet along the shin. Confidence of a synthesised keypoint: that of the H36M joint it comes from
    (ears and eyes: min of head and neck).
    """
    J = np.asarray(joints, np.float64)
    c = np.ones(J.shape[:-1]) if conf is None else np.asarray(conf, np.float64)
    if layout == "h36m17":
        return J.copy(), c.copy()
    n = {name: J[..., i, :] for i, name in enumerate(H36M17_NAMES)}
    cn = {name: c[..., i] for i, name in enumerate(H36M17_NAMES)}
    sh = 0.5 * (n["left_shoulder"] + n["right_shoulder"])
    E = (n["head"] + HEAD_EXTRAPOLATION * sh) / (1 + HEAD_EXTRAPOLATION)
    lat = n["left_shoulder"] - n["right_shoulder"]
    pts = {k: n[k] for k in _DIRECT}
    conf_of = {k: cn[k] for k in _DIRECT}
    face_c = np.minimum(cn["head"], cn["neck"])
    pts["nose"], conf_of["nose"] = n["neck"], cn["neck"]
    pts["left_ear"], pts["right_ear"] = E + 0.2 * lat, E - 0.2 * lat
    pts["left_eye"] = 0.6 * n["neck"] + 0.4 * E + 0.08 * lat
    pts["right_eye"] = 0.6 * n["neck"] + 0.4 * E - 0.08 * lat
    for k in ("left_ear", "right_ear", "left_eye", "right_eye"):
        conf_of[k] = face_c
    pts["neck"], conf_of["neck"] = sh, np.minimum(cn["left_shoulder"], cn["right_shoulder"])
    pts["mid_hip"] = 0.5 * (n["left_hip"] + n["right_hip"])
    conf_of["mid_hip"] = np.minimum(cn["left_hip"], cn["right_hip"])
    pts["hip"], conf_of["hip"] = pts["mid_hip"], conf_of["mid_hip"]
    pts["head"], conf_of["head"] = n["head"], cn["head"]
    for side in ("left", "right"):
        a, k = n[f"{side}_ankle"], n[f"{side}_knee"]
        shin = a - k
        pts[f"{side}_heel"] = a + 0.12 * shin
        pts[f"{side}_big_toe"] = a + 0.2 * shin + 0.15 * lat * (1 if side == "left" else -1)
        pts[f"{side}_small_toe"] = a + 0.2 * shin + 0.25 * lat * (1 if side == "left" else -1)
        for f in ("heel", "big_toe", "small_toe"):
            conf_of[f"{side}_{f}"] = cn[f"{side}_ankle"]
    names = LAYOUTS[layout]
    return np.stack([pts[k] for k in names], -2), np.stack([conf_of[k] for k in names], -1)
