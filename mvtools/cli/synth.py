"""``mvtools synth``: synthetic raw datasets for demos and tests."""

from __future__ import annotations

import click

from mvtools.cli.common import defaults_of, friendly_errors, overwrite_option, split_list
from mvtools.synth.dataset import synth_dataset
from mvtools.synth.h36m import synth_h36m

DH = defaults_of(synth_h36m)
DD = defaults_of(synth_dataset)


@click.group()
def synth() -> None:
    """Write synthetic raw datasets (procedural motion, real file formats)."""


@synth.command("h36m")
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=str),
    help="Raw tree to write (Human3.6M layout); an earlier synth tree is replaced atomically with --overwrite.",
)
@click.option(
    "--subjects",
    default=DH["subjects"],
    help="Comma-separated subjects (default: the 7 labelled ones S1,S5,S6,S7,S8,S9,S11).",
)
@click.option(
    "--sequences",
    default=DH["sequences"],
    show_default=True,
    type=click.IntRange(1, 30),
    help="Sequences per subject (real H36M names, 30 max).",
)
@click.option(
    "--frames",
    default=DH["frames"],
    show_default=True,
    type=click.IntRange(1),
    help="Mocap frames per sequence (50 Hz, so 300 frames = 6 s).",
)
@click.option(
    "--seed", default=DH["seed"], show_default=True, type=int, help="Random seed (the output is deterministic)."
)
@click.option(
    "--detections/--no-detections",
    default=DH["detections"],
    show_default=True,
    help="Also write detections.npz (VideoPose3D layout, px + confidence 0..1).",
)
@click.option(
    "--noise",
    default=DH["noise"],
    show_default=True,
    help="Detector noise: 'realistic' (CPN-like, a few px), 'none', or a JSON file of noise parameters.",
)
@click.option(
    "--full-scale",
    is_flag=True,
    help="30 sequences x 4300 frames per subject (~900,000 frames per camera, like H36M; several GB).",
)
@click.option(
    "--length-quirks/--no-length-quirks",
    default=DH["length_quirks"],
    show_default=True,
    help="Make some D2 files a few frames longer/shorter than D3, as in the real release.",
)
@click.option("--float32", "float32", is_flag=True, help="Store CDF values as float32 instead of float64.")
@overwrite_option
@friendly_errors
def h36m(out, subjects, sequences, frames, seed, detections, noise, full_scale, length_quirks, float32, overwrite):
    """Write a raw Human3.6M tree (S*/MyPoseFeatures/D3_Positions, D2_Positions CDFs; world mm, px) of
    procedural motion, ready for `mvtools ingest h36m OUT --detections OUT/detections.npz`."""
    import numpy as np

    s = synth_h36m(
        out,
        subjects=split_list(subjects),
        sequences=sequences,
        frames=frames,
        seed=seed,
        detections=detections,
        noise=noise,
        full_scale=full_scale,
        length_quirks=length_quirks,
        dtype=np.float32 if float32 else np.float64,
        overwrite=overwrite,
    )
    click.echo(
        f"wrote {s['out']}: {len(s['subjects'])} subjects, {s['sequences']} sequences, "
        f"{s['frames_per_camera']} frames per camera"
        + (f", detections in {s['out']}/detections.npz" if s["detections"] else "")
    )


@synth.command("dataset")
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(file_okay=False, path_type=str),
    help="Dataset directory to write (the mvtools data model; an earlier one replaced atomically with --overwrite).",
)
@click.option(
    "--subjects",
    default=DD["subjects"],
    help="Comma-separated subjects with the built-in H36M rigs (default: S1,S5,S6,S7,S8,S9,S11; "
    "S9 and S11 form the test split).",
)
@click.option(
    "--sequences",
    default=DD["sequences_per_subject"],
    show_default=True,
    type=click.IntRange(1),
    help="Sequences per subject (H36M action names).",
)
@click.option(
    "--frames", default=DD["frames"], show_default=True, type=click.IntRange(1), help="Frames per sequence (at --fps)."
)
@click.option(
    "--fps",
    default=DD["fps"],
    show_default=True,
    type=click.FloatRange(min=1.0, min_open=False),
    help="Frame rate of the motion, Hz.",
)
@click.option(
    "--seed", default=DD["seed"], show_default=True, type=int, help="Random seed (the output is deterministic)."
)
@click.option(
    "--detections/--no-detections",
    default=DD["detections"],
    show_default=True,
    help="Also write detector-like 2D (source 'detected', px + confidence 0..1); without: ground truth only.",
)
@click.option(
    "--noise",
    default=DD["noise"],
    show_default=True,
    help="Detector noise of the 'detected' 2D: 'realistic' (CPN-like, a few px), 'none' (the ground-truth "
    "projection, confidence 1), or a JSON file of noise parameters.",
)
@overwrite_option
@friendly_errors
def dataset(out, subjects, sequences, frames, fps, seed, detections, noise, overwrite):
    """Write a synthetic dataset directly (no raw files): 3D in world mm, ground-truth 2D through the H36M camera
    model (px) and detector-like 2D with confidences, with the built-in H36M cameras. The quick way to a dataset
    for `calibrate`, `augment` and `train`; `synth h36m` + `ingest h36m` exercise the raw file formats instead."""
    path = synth_dataset(
        out,
        subjects=split_list(subjects),
        sequences_per_subject=sequences,
        frames=frames,
        seed=seed,
        noise=noise,
        fps=fps,
        detections=detections,
        overwrite=overwrite,
    )
    click.echo(f"wrote {path}")
