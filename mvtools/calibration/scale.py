"""Metric scale of a rig that is known up to scale (unit = one camera-centre distance).

- ``baseline``: one known camera-centre distance (mm), the paper's way.
- ``given``: least-squares fit of all camera-centre distances to those of a given calibration.
- ``body``: bone lengths of the triangulated skeleton against an adult prior (:data:`BONE_PRIOR_MM`).
"""

from __future__ import annotations

import numpy as np

from mvtools.skeleton import H36M17_NAMES, bones

#: Adult bone-length prior for the 17-joint H36M layout, one entry per ``skeleton.bones()`` row
#: (child, parent): (mean mm, relative SD). Means: the Human3.6M skeleton's segment offsets (the H36M
#: metadata skeleton used by human-motion-prediction / QuaterNet); relative SDs: our assumption from adult
#: anthropometric spread (stature CV ~5 %; limb segments ~6 %, widths ~8 %, the detector-defined spine, neck
#: and head points 10-12 %).
BONE_PRIOR_MM = {
    ("right_hip", "pelvis"): (132.9, 0.08),
    ("right_knee", "right_hip"): (442.9, 0.06),
    ("right_ankle", "right_knee"): (454.2, 0.06),
    ("left_hip", "pelvis"): (132.9, 0.08),
    ("left_knee", "left_hip"): (442.9, 0.06),
    ("left_ankle", "left_knee"): (454.2, 0.06),
    ("spine", "pelvis"): (233.5, 0.10),
    ("thorax", "spine"): (257.1, 0.10),
    ("neck", "thorax"): (121.1, 0.12),
    ("head", "neck"): (115.0, 0.12),
    ("left_shoulder", "thorax"): (151.0, 0.08),
    ("left_elbow", "left_shoulder"): (278.9, 0.06),
    ("left_wrist", "left_elbow"): (251.7, 0.06),
    ("right_shoulder", "thorax"): (151.0, 0.08),
    ("right_elbow", "right_shoulder"): (278.9, 0.06),
    ("right_wrist", "right_elbow"): (251.7, 0.06),
}
#: Relative SD of an adult's overall size (stature) around the prior: a bias no number of frames removes.
BODY_SIZE_CV = 0.05


def bone_prior() -> tuple[np.ndarray, np.ndarray]:
    """(mean mm (B,), relative SD (B,)) in the order of ``mvtools.skeleton.bones()``."""
    b = bones()
    mean, cv = zip(*(BONE_PRIOR_MM[(H36M17_NAMES[c], H36M17_NAMES[p])] for c, p in b))
    return np.array(mean), np.array(cv)


def given_scale(C_est: np.ndarray, C_given: np.ndarray) -> tuple[float, float]:
    """Scale s (mm per rig unit) minimising sum (s d_est - d_given)^2 over all camera-centre distances.

    C_est, C_given (V, 3). Returns (s, relative spread of the per-pair ratios)."""
    i, j = np.triu_indices(len(C_est), 1)
    de = np.linalg.norm(C_est[i] - C_est[j], axis=1)
    dg = np.linalg.norm(C_given[i] - C_given[j], axis=1)
    if not (de > 0).all() or not (dg > 0).all():
        raise ValueError("camera centres coincide; no distance to scale by")
    s = float((de * dg).sum() / (de * de).sum())
    spread = float(np.std(dg / de) / s) if len(de) > 1 else 0.0
    return s, spread


def body_scale(joints: np.ndarray, n_boot: int = 200, seed: int = 0) -> dict:
    """Scale (mm per rig unit) from triangulated joints (F, 17, 3) in rig units, NaN = missing.

    Per bone: the median length over frames; per bone a log-ratio to the prior, combined with weights
    1 / cv^2. Uncertainty: bootstrap over frames (``n_boot`` resamples), the spread between bones, and the
    prior's overall body-size spread (:data:`BODY_SIZE_CV`) combined in quadrature.
    """
    b = bones()
    L = np.linalg.norm(joints[:, b[:, 0]] - joints[:, b[:, 1]], axis=-1)  # (F, B)
    mean, cv = bone_prior()
    ok = np.isfinite(L).all(1)
    L = L[ok]
    if len(L) < 5:
        raise ValueError(f"only {len(L)} frames have all 17 joints triangulated (need 5) for --scale body")
    w = 1.0 / cv**2

    def estimate(Ls):
        med = np.median(Ls, axis=0)
        return float((w * np.log(mean / med)).sum() / w.sum()), np.log(mean / med)

    log_s, per_bone = estimate(L)
    rng = np.random.default_rng(seed)
    boot = np.array([estimate(L[rng.integers(0, len(L), len(L))])[0] for _ in range(n_boot)])
    boot_sd = float(np.std(boot))
    # spread of the bones around the common scale, as the SD of the weighted mean
    resid = per_bone - log_s
    between = float(np.sqrt((w * resid**2).sum() / w.sum() / max(len(w) - 1, 1)))
    total = float(np.sqrt(boot_sd**2 + between**2 + BODY_SIZE_CV**2))
    s = float(np.exp(log_s))
    return {
        "value": s,
        "uncertainty_rel": total,
        "uncertainty_mm_per_unit": s * total,
        "bootstrap_rel": boot_sd,
        "between_bones_rel": between,
        "body_size_prior_rel": BODY_SIZE_CV,
        "frames": int(len(L)),
        "per_bone_scale": {f"{H36M17_NAMES[c]}-{H36M17_NAMES[p]}": float(np.exp(r)) for (c, p), r in zip(b, per_bone)},
    }
