"""A raw Human3.6M-layout tree from procedural motion (``mvtools synth h36m``).

Writes ``<out>/S1/MyPoseFeatures/D3_Positions/<raw name>.cdf`` (variable ``Pose``, one record [T, 96], world
mm, 32 joints) and ``D2_Positions/<raw name>.<camera>.cdf`` ([T, 64] px, projected with the built-in H36M
calibration and its distortion model), with the real file names (irregular sub-action suffixes,
S1's ``TakingPhoto``/``WalkingDog``), plus ``detections.npz`` in the VideoPose3D layout with a confidence
channel. Motion from :mod:`mvtools.synth` / :mod:`mvtools.synth.motion`, detector noise from :mod:`mvtools.synth.noise`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mvtools.camera import Camera, project
from mvtools.ingest.h36m.cdf import write_pose_cdf
from mvtools.ingest.h36m.reader import TREE_LAYOUTS
from mvtools.seeding import stable_rng

#: Full scale: 7 subjects x 30 sequences x ~4300 frames, about 900,000 frames per camera like H36M.
FULL_SCALE = {"sequences": 30, "frames": 4300}


def write_raw_sequence(
    root,
    subject: str,
    raw_name: str,
    joints32: np.ndarray,
    rig: dict[str, Camera],
    d3_frames: int | None = None,
    d2_frames: dict[str, int] | None = None,
    layout: str = "release",
    dtype=np.float64,
) -> list[Path]:
    """Write one sequence in the raw layout: its D3 file and one D2 file per camera of ``rig``.

    joints32: (T, 32, 3) world mm covering the whole capture; the D3 file gets the first ``d3_frames``
    (default T) frames and each camera's D2 file its first ``d2_frames[cam]`` (default: d3_frames) frames,
    so D2/D3 length mismatches like the real release's can be reproduced. layout: ``release``
    (``S1/MyPoseFeatures/D3_Positions``) or ``h36m-fetch`` (``S1/Poses_D3_Positions``). Returns the paths.
    """
    joints32 = np.asarray(joints32, np.float64)
    T = len(joints32)
    if joints32.shape != (T, 32, 3):
        raise ValueError(f"joints32 must be (T, 32, 3) world mm, got {joints32.shape}")
    n3 = T if d3_frames is None else int(d3_frames)
    d3rel, d2rel = TREE_LAYOUTS[layout]
    sdir = Path(root) / subject
    paths = [write_pose_cdf(sdir / d3rel / f"{raw_name}.cdf", joints32[:n3].reshape(n3, 96), dtype)]
    for cam_id, cam in rig.items():
        n2 = (d2_frames or {}).get(cam_id, n3)
        if n2 > T:
            raise ValueError(f"D2 of camera {cam_id} asks for {n2} frames, the motion has {T}")
        uv = project(joints32[:n2], cam)
        paths.append(write_pose_cdf(sdir / d2rel / f"{raw_name}.{cam_id}.cdf", uv.reshape(n2, 64), dtype))
    return paths


#: Extra "video" frames beyond the mocap (the last pose held), so detections and long D2 files can run past D3.
_PAD = 8


def raw_plan(subject: str, sequences: int, seed: int = 0) -> list[tuple[str, int, str]]:
    """(action, sub-action, raw file name) of the sequences of ``subject``.

    The subject's action order from :func:`mvtools.synth.dataset.sequence_plan`, alternating sub-actions 1 and 2 so a
    small tree already holds unsuffixed and irregular names, and actions whose files carry a long prefix
    (S1's ``TakingPhoto``/``WalkingDog``) first. All 30 sequences at most.
    """
    from mvtools.ingest.h36m.reader import raw_name_for
    from mvtools.synth.dataset import sequence_plan

    order = [a for a, sub in sequence_plan(subject, 30, seed) if sub == 1]
    names = {(a, sub): raw_name_for(subject, a, sub) or f"{a} {sub}" for a in order for sub in (1, 2)}
    order.sort(key=lambda a: not names[a, 1].startswith(("TakingPhoto", "WalkingDog")))
    plan = [(a, 1 + i % 2) for i, a in enumerate(order)] + [(a, 2 - i % 2) for i, a in enumerate(order)]
    return [(a, sub, names[a, sub]) for a, sub in plan[:sequences]]


def _quirks(rng: np.random.Generator, cams: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Per camera: D2 length offset vs D3 (mostly 0; sometimes +1..4 or -1..3 frames, like the release) and
    how many frames the detections (the "video") run past the mocap (0.._PAD)."""
    d2 = {c: 0 for c in cams}
    if rng.random() < 0.25:
        d2[cams[rng.integers(len(cams))]] = int(rng.integers(1, 5))
    if rng.random() < 0.15:
        d2[cams[rng.integers(len(cams))]] = -int(rng.integers(1, 4))
    video = {c: int(min(_PAD, rng.poisson(2.0))) for c in cams}
    return d2, video


def synth_h36m(
    out_root,
    subjects=None,
    sequences: int = 4,
    frames: int = 300,
    seed: int = 0,
    detections: bool = True,
    noise="realistic",
    full_scale: bool = False,
    length_quirks: bool = True,
    dtype=np.float64,
    overwrite: bool = False,
) -> dict:
    """Write a raw Human3.6M-layout tree of procedural motion to ``out_root`` (replaced atomically).

    subjects: default the 7 labelled subjects (S1, S5, S6, S7, S8, S9, S11), each with its built-in rig.
    sequences: sequences per subject (<= 30, real H36M names); frames: mocap frames per sequence (50 Hz).
    full_scale: 30 sequences x 4300 frames per subject (~900,000 frames per camera, like H36M).
    detections: also write ``detections.npz`` (VideoPose3D layout, (T', 17, 3) px + confidence per camera,
    T' >= T) with detector noise ``noise`` ("realistic", "none", a JSON path or a NoiseParams).
    length_quirks: some D2 files a few frames longer/shorter than D3, as in the release.
    Deterministic for a seed. An existing ``out_root`` is replaced only if it is empty, or an earlier synth
    tree (it holds ``synth.json``) and ``overwrite`` is true. Returns a summary dict (also written to ``synth.json``).
    """
    from mvtools.h36m_cameras import H36M_CAMERA_IDS, H36M_SUBJECTS, h36m_rig
    from mvtools.ingest.h36m.reader import videopose3d_key, write_videopose3d_2d
    from mvtools.io import staged_directory
    from mvtools.progress import progress
    from mvtools.skeleton import H36M32_TO_17
    from mvtools.synth.dataset import subject_body
    from mvtools.synth.motion import H36M_ACTION_TO_ACTIVITY, generate_motion
    from mvtools.synth.noise import resolve_noise, simulate_detections

    if full_scale:
        sequences, frames = FULL_SCALE["sequences"], FULL_SCALE["frames"]
    subjects = list(subjects) if subjects is not None else list(H36M_SUBJECTS)
    if not 1 <= sequences <= 30:
        raise ValueError(f"sequences per subject must be 1..30 (H36M has 30), got {sequences}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    out_root = Path(out_root)
    rigs = {s: h36m_rig(s) for s in subjects}  # ValueError for subjects without calibration
    params = resolve_noise(noise) if detections else None
    positions_2d: dict = {}
    quirks, total, count = [], 0, 0
    plan = [(s, a, sub, raw) for s in subjects for a, sub, raw in raw_plan(s, sequences, seed)]
    bodies = {s: subject_body(s, seed) for s in subjects}
    inputs = [noise] if isinstance(noise, (str, Path)) and Path(noise).exists() else []
    with staged_directory(out_root, "synth-h36m", inputs, overwrite) as tmp:
        with progress(plan, label="synth h36m") as bar:
            for subject, action, subaction, raw_name in bar:
                # the same motion as mvtools.synth.dataset.synth_sequences gives for (seed, subject, action, sub-action)
                j32 = generate_motion(
                    H36M_ACTION_TO_ACTIVITY[action],
                    frames,
                    bodies[subject],
                    stable_rng(seed, subject, action, subaction),
                    fps=50,
                )
                j32 = np.concatenate([j32, np.repeat(j32[-1:], _PAD, axis=0)])
                rig = rigs[subject]
                rng = stable_rng(seed, 7, count)
                count += 1
                if length_quirks:
                    d2_off, video = _quirks(rng, list(rig))
                else:
                    d2_off, video = {c: 0 for c in rig}, {c: 0 for c in rig}
                d2_frames = {c: frames + d2_off[c] for c in rig}
                write_raw_sequence(tmp, subject, raw_name, j32, rig, d3_frames=frames, d2_frames=d2_frames, dtype=dtype)
                quirks += [
                    {"subject": subject, "raw_name": raw_name, "camera": c, "d2_frames": n, "d3_frames": frames}
                    for c, n in d2_frames.items()
                    if n != frames
                ]
                total += frames
                if not detections or (subject, raw_name) == ("S11", "Directions"):
                    continue  # VideoPose3D's files drop S11 Directions (corrupt 54138969 video) entirely
                j17 = j32[:, H36M32_TO_17]
                lst = []
                for cam_id in H36M_CAMERA_IDS:
                    if cam_id not in rig:
                        lst.append(None)
                        continue
                    uv, conf = simulate_detections(j17[: frames + video[cam_id]], rig[cam_id], params, rng, fps=50)
                    lst.append(np.concatenate([uv, conf[..., None]], -1).astype(np.float32))
                positions_2d.setdefault(subject, {})[videopose3d_key(raw_name)] = lst
        if detections:
            write_videopose3d_2d(tmp / "detections.npz", positions_2d)
        summary = {
            "generator": "mvtools synth h36m",
            "seed": seed,
            "subjects": subjects,
            "sequences": count,
            "frames_per_sequence": frames,
            "frames_per_camera": total,
            "fps": 50,
            "noise": None if params is None else params.to_dict(),
            "length_quirks": quirks,
            "detections": "detections.npz" if detections else None,
        }
        (tmp / "synth.json").write_text(json.dumps(summary, indent=2) + "\n")
    return {**summary, "out": str(out_root)}
