"""Checks on BVH results after forward kinematics: the file's up axis, and whether the skeleton is a person.

Both work on the 17 H36M joints (after the joint map), in mm. See docs/bvh.md ("Plausibility").
"""

from __future__ import annotations

import numpy as np

from mvtools.dataset import DatasetError
from mvtools.ingest.bvh.reader import UP_AXES
from mvtools.skeleton import H36M17_NAMES

_I = {n: i for i, n in enumerate(H36M17_NAMES)}
#: Adult ranges (mm): stature (bone chain ankle -> head top + 80 mm of foot), femur, tibia, humerus.
RANGES_MM = {"stature": (1000.0, 2500.0), "femur": (300.0, 650.0), "tibia": (280.0, 600.0), "humerus": (200.0, 450.0)}
#: Foot height (ankle to sole, mm) added to the bone chain for the stature estimate.
FOOT_MM = 80.0
#: A frame is upright when pelvis -> thorax is within this angle (degrees) of +Z.
UPRIGHT_DEG = 60.0
#: Fewer upright frames than this fraction fail the check.
MIN_UPRIGHT_FRACTION = 0.2


def detect_up_axis(X_file: np.ndarray) -> tuple[str, str]:
    """(axis, how) of the file's up axis from H36M-17 joints (T, 17, 3) in the file's axes: the axis along which
    the median direction from the ankles to the head points. A head below the feet is an error."""
    d = X_file[:, _I["head"]] - X_file[:, [_I["left_ankle"], _I["right_ankle"]]].mean(1)
    n = np.linalg.norm(d, axis=-1, keepdims=True)
    ok = np.isfinite(n[:, 0]) & (n[:, 0] > 0)
    if not ok.any():
        raise DatasetError("cannot detect the up axis: no frame with distinct head and ankles")
    m = np.median(d[ok] / n[ok], axis=0)
    k = int(np.argmax(np.abs(m)))
    axis = UP_AXES[k]
    share = abs(m[k]) / max(float(np.abs(m).sum()), 1e-12)
    how = (
        f"detected +{axis.upper()} (median ankles -> head direction ({m[0]:+.2f}, {m[1]:+.2f}, {m[2]:+.2f}) "
        f"in the file's axes)"
    )
    if m[k] < 0:
        raise DatasetError(
            f"the head is below the ankles along {axis.upper()} in most frames (median direction "
            f"{np.round(m, 2).tolist()}): the file is upside down, or the joint map swaps head and "
            f"feet; pass --up-axis or --joint-map"
        )
    if share < 0.5:
        how += "; weak: the person is rarely upright"
    return axis, how


def measure(X: np.ndarray) -> dict:
    """Stature, femur/tibia/humerus lengths (mm, medians over frames, mean of left and right) and the fraction
    of upright frames of Z-up H36M-17 joints (T, 17, 3) mm."""

    def length(a, b):
        return float(np.nanmedian(np.linalg.norm(X[:, _I[a]] - X[:, _I[b]], axis=-1)))

    femur = (length("left_hip", "left_knee") + length("right_hip", "right_knee")) / 2
    tibia = (length("left_knee", "left_ankle") + length("right_knee", "right_ankle")) / 2
    humerus = (length("left_shoulder", "left_elbow") + length("right_shoulder", "right_elbow")) / 2
    trunk = sum(
        length(a, b) for a, b in (("pelvis", "spine"), ("spine", "thorax"), ("thorax", "neck"), ("neck", "head"))
    )
    v = X[:, _I["thorax"]] - X[:, _I["pelvis"]]
    n = np.linalg.norm(v, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = v[:, 2] / n
    ok = np.isfinite(cos)
    upright = float((cos[ok] >= np.cos(np.radians(UPRIGHT_DEG))).mean()) if ok.any() else 0.0
    return {
        "stature_mm": round(femur + tibia + trunk + FOOT_MM, 1),
        "femur_mm": round(femur, 1),
        "tibia_mm": round(tibia, 1),
        "humerus_mm": round(humerus, 1),
        "upright_fraction": round(upright, 3),
    }


def problems(m: dict) -> list[str]:
    """Human-readable list of the measurements of :func:`measure` outside the adult ranges."""
    out = []
    for k, (lo, hi) in RANGES_MM.items():
        v = m[f"{k}_mm"]
        if not (np.isfinite(v) and lo <= v <= hi):
            out.append(f"{k} {v:.0f} mm (adult range {lo:.0f}-{hi:.0f} mm)")
    if not m["upright_fraction"] >= MIN_UPRIGHT_FRACTION:
        out.append(
            f"{m['upright_fraction']:.0%} of frames upright (pelvis -> thorax within {UPRIGHT_DEG:.0f} deg "
            f"of up; expected at least {MIN_UPRIGHT_FRACTION:.0%})"
        )
    return out


def plausibility_error(path, found: list[str], report: dict) -> DatasetError:
    """The error for an implausible skeleton: the measured numbers and the likely causes, with the choices made."""
    causes = [
        f"units: {report['units']} ({report['units_how']}); force with --units",
        f"position channels: {report['position_channels']} ({report['position_channels_how']}); "
        f"try --position-channels {'add' if report['position_channels'] == 'replace' else 'replace'}",
        f"up axis: {report['up_axis']} ({report['up_axis_how']}); force with --up-axis x|y|z",
        f"joint map: {report['joint_map']}; pass --joint-map FILE.json",
    ]
    return DatasetError(
        f"{path}: implausible person after forward kinematics: {'; '.join(found)}. Likely causes: "
        + "; ".join(causes)
        + ". --no-check-plausibility writes it anyway."
    )
