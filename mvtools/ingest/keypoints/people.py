"""Which person to keep when a detector reports several per frame.

Rule (per view, documented in docs/keypoints.md): the person of interest is the most prominent one.

1. Size of a detection = diagonal of the bounding box of its keypoints with confidence >= ``min_conf`` (px);
   detections with fewer than ``min_keypoints`` such keypoints are ignored.
2. The first frame takes the largest person.
3. Every later frame takes the detection whose box centre is nearest to the last chosen one, if that distance is at
   most ``max_jump`` x the last chosen size (a 2D track); otherwise (nobody near, e.g. after the person left the
   image) the largest person again, and the switch is counted.

Across views the same rule picks the same person when the person of interest is the most prominent in every view
(the usual lab recording). Nothing geometric links the views before calibration; a wrong pick in one view is an
outlier that the triangulation's RANSAC over views rejects (``mvtools triangulate``).
"""

from __future__ import annotations

import numpy as np


def boxes(kp: np.ndarray, min_conf: float = 0.1, min_keypoints: int = 4):
    """Box centres (..., 2) px, sizes (...,) px (NaN where too few confident keypoints) of detections kp (..., K, 3)."""
    ok = np.isfinite(kp[..., :2]).all(-1) & (np.nan_to_num(kp[..., 2]) >= min_conf)
    xy = np.where(ok[..., None], kp[..., :2], np.nan)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = np.nanmin(xy, -2), np.nanmax(xy, -2)
    size = np.linalg.norm(hi - lo, axis=-1)
    size = np.where(ok.sum(-1) >= min_keypoints, size, np.nan)
    return 0.5 * (lo + hi), size


def select_person(
    kp: np.ndarray, max_jump: float = 0.5, min_conf: float = 0.1, min_keypoints: int = 4
) -> tuple[np.ndarray, dict]:
    """Pick one person per frame from kp (T, P, K, 3). Returns ((T, K, 3) with NaN rows where nobody was usable,
    info {"frames_with_several": n, "frames_without": n, "switches": n})."""
    T, P = kp.shape[:2]
    centre, size = boxes(kp, min_conf, min_keypoints)  # (T, P, 2), (T, P)
    out = np.full(kp.shape[:1] + kp.shape[2:], np.nan)
    usable = np.isfinite(size)
    several = int((usable.sum(1) > 1).sum())
    if P == 1:  # nothing to choose: vectorised
        out[usable[:, 0]] = kp[usable[:, 0], 0]
        return out, {"frames_with_several": 0, "frames_without": int((~usable[:, 0]).sum()), "switches": 0}
    last_c = last_s = None
    switches = 0
    for t in range(T):
        cand = np.flatnonzero(usable[t])
        if not len(cand):
            continue
        pick = None
        if last_c is not None:
            d = np.linalg.norm(centre[t, cand] - last_c, axis=-1)
            i = int(np.argmin(d))
            if d[i] <= max_jump * last_s:
                pick = cand[i]
        if pick is None:
            pick = cand[int(np.argmax(size[t, cand]))]
            switches += last_c is not None
        out[t] = kp[t, pick]
        last_c, last_s = centre[t, pick], size[t, pick]
    return out, {"frames_with_several": several, "frames_without": int((~usable.any(1)).sum()), "switches": switches}
