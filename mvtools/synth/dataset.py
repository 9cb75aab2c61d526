"""Synthetic Human3.6M-like data: procedural motion (:mod:`mvtools.synth.motion`) seen by the real H36M camera rig.

:func:`synth_sequences` yields raw 32-joint sequences named like the real ones; :func:`synth_dataset` writes an
mvtools dataset directory (poses3d, ground-truth and detected poses2d, the built-in H36M cameras) directly.
Everything is deterministic per seed and independent of iteration order: each sequence has its own random
stream derived from (seed, subject, action, subaction), each subject's body from (seed, subject).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mvtools.camera import project, world_to_camera
from mvtools.dataset import DatasetWriter, base_manifest, poses2d_table, poses3d_table
from mvtools.h36m_cameras import H36M_SUBJECTS, H36M_TEST, H36M_TRAIN, h36m_cameras, h36m_rig
from mvtools.ingest.h36m.reader import ACTIONS
from mvtools.progress import log, progress
from mvtools.seeding import stable_rng
from mvtools.skeleton import H36M32_TO_17
from mvtools.synth.motion import H36M_ACTION_TO_ACTIVITY, generate_motion, random_body
from mvtools.synth.noise import NoiseParams, resolve_noise, simulate_detections

#: The 15 canonical Human3.6M action names, in the official action-id order (2..16): the H36M reader's.
H36M_ACTIONS = ACTIONS

_REALISTIC = "realistic"


def sequence_plan(subject: str, sequences_per_subject: int, seed: int = 0) -> list[tuple[str, int]]:
    """(action, subaction) pairs of one subject: the 15 actions in a subject-specific order, subaction 1
    first, then subaction 2 (at most 30 sequences, like the real dataset)."""
    if not 1 <= sequences_per_subject <= 2 * len(H36M_ACTIONS):
        raise ValueError(f"sequences_per_subject must be 1..{2 * len(H36M_ACTIONS)}, got {sequences_per_subject}")
    order = stable_rng(seed, subject, "plan").permutation(len(H36M_ACTIONS))
    plan = [(H36M_ACTIONS[i], sub) for sub in (1, 2) for i in order]
    return plan[:sequences_per_subject]


def subject_body(subject: str, seed: int = 0):
    """The (constant) body of ``subject`` for ``seed``."""
    return random_body(stable_rng(seed, subject, "body"))


def synth_sequences(
    subjects=H36M_SUBJECTS, sequences_per_subject: int = 4, frames: int = 300, seed: int = 0, fps: float = 50.0
) -> Iterator[tuple[str, str, int, str, np.ndarray]]:
    """Yield ``(subject, action, subaction, raw_name, joints32 (frames, 32, 3) world mm)``.

    ``action`` is a canonical H36M action name, ``raw_name`` like ``"Walking 1"``, ``fps`` in Hz.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    for subject in subjects:
        body = subject_body(subject, seed)
        for action, sub in sequence_plan(subject, sequences_per_subject, seed):
            rng = stable_rng(seed, subject, action, sub)
            X = generate_motion(H36M_ACTION_TO_ACTIVITY[action], frames, body, rng, fps=fps)
            yield subject, action, sub, f"{action} {sub}", X


def synth_dataset(
    out,
    subjects=None,
    sequences_per_subject: int = 4,
    frames: int = 300,
    seed: int = 0,
    noise: NoiseParams | None | str = _REALISTIC,
    fps: float = 50.0,
    command: str | None = None,
    detections: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic H36M-like mvtools dataset to ``out`` and return its path.

    poses3d: 17 joints, world mm. poses2d ``gt``: projection through the H36M rig with lens distortion (px);
    ``detected`` (when ``noise`` is not None): :func:`mvtools.synth.noise.simulate_detections`. cameras: the built-in
    H36M calibration of the subjects used. ``subjects`` defaults to all seven labelled H36M subjects.
    ``noise``: a NoiseParams, "realistic" (the default), "none" (detections equal to the ground-truth projection,
    confidence 1, as in ``synth h36m`` and ``ingest bvh``) or a path to a NoiseParams JSON file; ``detections``
    False or ``noise`` None: ground truth only (no ``detected`` rows).
    """
    subjects = list(H36M_SUBJECTS if subjects is None else subjects)
    unknown = [s for s in subjects if s not in H36M_SUBJECTS]
    if unknown or not subjects:
        raise ValueError(f"subjects must be among {', '.join(H36M_SUBJECTS)}, got {subjects}")
    inputs = [noise] if isinstance(noise, (str, Path)) and Path(noise).exists() else []
    if not detections:
        noise = None
    elif isinstance(noise, (str, Path)):
        noise = resolve_noise(noise) or NoiseParams.none()  # "realistic", "none" or a JSON file
    rigs = {s: h36m_rig(s) for s in subjects}
    total = len(subjects) * sequences_per_subject
    outside = behind = 0
    with DatasetWriter(out, inputs, overwrite) as w, progress(length=total, label="synth") as bar:
        for subject, action, sub, raw, X32 in synth_sequences(subjects, sequences_per_subject, frames, seed, fps):
            X = X32[:, H36M32_TO_17]
            frame_ids = np.arange(len(X))
            w.add_poses3d(subject, poses3d_table(action, sub, raw, frame_ids, X))
            gt, det = [], []
            for cam_id, cam in rigs[subject].items():
                uv = project(X, cam)
                behind += int((world_to_camera(X, cam.R, cam.t)[..., 2] <= 0).any(-1).sum())
                outside += int(((uv < 0) | (uv >= [cam.width, cam.height])).any(-1).any(-1).sum())
                gt.append(poses2d_table(action, sub, raw, frame_ids, cam_id, uv, None, "gt"))
                if noise is not None:
                    d_uv, conf = simulate_detections(
                        X, cam, noise, stable_rng(seed, subject, action, sub, cam_id), fps=fps
                    )
                    det.append(poses2d_table(action, sub, raw, frame_ids, cam_id, d_uv, conf, "detected"))
            for t in gt:
                w.add_poses2d(subject, t)
            for t in det:
                w.add_poses2d(subject, t)
            bar.update(1)
        if outside or behind:
            log(f"warning: synth: {outside} camera-frames with a joint outside the image, {behind} behind a camera")
        w.set_cameras([c for c in h36m_cameras() if c.subject in subjects])
        splits = {"train": [s for s in H36M_TRAIN if s in subjects], "test": [s for s in H36M_TEST if s in subjects]}
        manifest = base_manifest(
            "synthetic-h36m",
            splits=splits,
            fps=fps,
            command=command,
            synth={
                "seed": int(seed),
                "sequences_per_subject": int(sequences_per_subject),
                "frames": int(frames),
                "noise": None if noise is None else noise.to_dict(),
                "frames_outside_image": outside,
                "frames_behind_camera": behind,
            },
        )
        return w.commit(manifest)
