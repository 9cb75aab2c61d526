"""``mvtools ingest bvh``: BVH motion capture -> multi-view dataset (thin layer over ``ingest_bvh``)."""

from __future__ import annotations

import click

from mvtools.cli.common import defaults_of, friendly_errors, overwrite_option, renamed_option
from mvtools.ingest.bvh.ingest import FLOOR_MODES
from mvtools.ingest.bvh.ingest import ingest_bvh as run
from mvtools.ingest.bvh.kinematics import POSITION_MODES, RESAMPLE_METHODS
from mvtools.ingest.bvh.reader import UNITS, UP_AXES

D = defaults_of(run)


@click.command("bvh")
@click.argument("files_or_dir", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(),
    help="Dataset directory to write (an earlier one replaced atomically, with --overwrite).",
)
@click.option(
    "--rig",
    default=D["rig"],
    show_default=True,
    help="Cameras: h36m:<subject> (built-in Human3.6M rig, e.g. h36m:S9) or an aniposelib RIG.toml "
    "(translations to mm from its units). The person stands on z=0 of a Z-up rig; for other rigs "
    "the floor is put 0.9 m below the point the cameras look at (docs/bvh.md).",
)
@click.option(
    "--fps",
    default=D["fps"],
    show_default=True,
    type=float,
    help="Output frame rate in Hz (frames/s); 0 keeps the file's rate (CMU: 120 Hz).",
)
@click.option(
    "--subject-map",
    default=D["subject_map"],
    help='Which files form which subject: a JSON {"glob": "subject"}, a text file of glob=subject '
    "lines, or inline '02_*=A,03_*=B'. Default: CMU names SS_TT.bvh -> subject CMU<SS>, "
    "other files -> their stem.",
)
@click.option(
    "--test-subjects",
    "split",
    default=D["split"],
    show_default=True,
    help="Test subjects: 'auto' (last 20% of subjects in sorted order), 'none' (all train) or a "
    "comma-separated list such as CMU08,CMU09.",
)
@renamed_option("--split", "--test-subjects", "split")
@click.option(
    "--noise",
    "detector_noise",
    default=D["detector_noise"],
    show_default=True,
    help="Detector noise of source 'detected': none (ground truth, confidence 1), realistic, or a "
    "noise parameter FILE.json (px and frames, see docs/synthetic.md).",
)
@renamed_option("--detector-noise", "--noise", "detector_noise")
@click.option(
    "--seed", default=D["seed"], show_default=True, type=int, help="Seed for the random yaw and the detector noise."
)
@click.option(
    "--joint-map",
    default=D["joint_map"],
    show_default=True,
    help="BVH joints -> 17 H36M joints: auto (the built-in map that fits the joint names), a built-in "
    "map (cmu, mixamo, lafan1, humanik, bandai, biovision, biovision-uparm) or a FILE.json "
    "(format in docs/bvh.md).",
)
@click.option(
    "--position-channels",
    default=D["position_channels"],
    show_default=True,
    type=click.Choice(POSITION_MODES),
    help="Position channels of non-root joints: replace = they are the joint's local translation "
    "(Blender, LAFAN1; e.g. Bandai Namco files), add = OFFSET + channels (PyMO); auto = replace "
    "unless the channels stay near zero. Root position channels always give the root position.",
)
@click.option(
    "--up-axis",
    default=D["up_axis"],
    show_default=True,
    type=click.Choice(["auto", *UP_AXES]),
    help="The file's up axis; auto = detected from the data (median ankles -> head direction), reported per file.",
)
@click.option(
    "--check-plausibility/--no-check-plausibility",
    default=D["check_plausibility"],
    show_default=True,
    help="Fail when the person is implausible after forward kinematics (stature, femur, tibia, humerus "
    "in mm, fraction of upright frames), naming the numbers and likely causes.",
)
@click.option(
    "--subject-from",
    default=D["subject_from"],
    help="Group clips into subjects (clips of one performer should share one, so calibration pools "
    "them): 'folder' (the file's directory name) or a regex on the file stem whose group "
    "'subject' (or first group) is the subject. --subject-map rules take precedence.",
)
@click.option(
    "--units",
    default=D["units"],
    show_default=True,
    type=click.Choice(["auto", *UNITS]),
    help="Length unit of the BVH files (converted to mm); auto = header hint, else from the skeleton's "
    "height (adult ~1.7 m). cmu = CMU ASF unit, 1/0.45 inch.",
)
@click.option(
    "--drop-tpose",
    default=D["drop_tpose"],
    show_default=True,
    type=click.Choice(["auto", "yes", "no"]),
    help="Drop frame 0 when it is a synthetic T-pose (cgspeed CMU conversion); auto detects it.",
)
@click.option(
    "--random-yaw/--no-random-yaw",
    default=D["random_yaw"],
    show_default=True,
    help="Rotate each clip about the vertical by a seeded random angle (0-360 degrees).",
)
@click.option(
    "--min-views",
    default=D["min_views"],
    type=int,
    help="Keep a frame when at least this many cameras see every joint (default: all cameras).",
)
@click.option(
    "--near",
    "near_mm",
    default=D["near_mm"],
    show_default=True,
    type=float,
    help="Joints closer than this (mm) in front of a camera count as behind it.",
)
@click.option(
    "--floor",
    default=D["floor"],
    show_default=True,
    type=click.Choice(FLOOR_MODES),
    help="Ground plane: file = the BVH's own (y=0), lowest = the clip's low point (2nd percentile of "
    "the per-frame lowest joint) at z=0, auto = file when the low point is within 150 mm of it.",
)
@click.option(
    "--resample",
    default=D["resample"],
    show_default=True,
    type=click.Choice(RESAMPLE_METHODS),
    help="Resampling to --fps: slerp of joint rotations + linear root position, or the nearest frame.",
)
@overwrite_option
@friendly_errors
def ingest_bvh(
    files_or_dir,
    out,
    rig,
    fps,
    subject_map,
    split,
    detector_noise,
    seed,
    joint_map,
    position_channels,
    up_axis,
    check_plausibility,
    subject_from,
    units,
    drop_tpose,
    random_yaw,
    min_views,
    near_mm,
    floor,
    resample,
    overwrite,
) -> None:
    """Turn BVH motion capture (files or directories) into a multi-view dataset: 3D joints (mm) from
    forward kinematics placed in a camera rig, ground-truth 2D (px) and simulated detections side by side.

    Frames where a joint leaves an image or goes behind a camera are dropped and reported per file and
    camera in manifest.json.
    """
    s = run(
        list(files_or_dir),
        out,
        rig=rig,
        fps=fps or None,
        subject_map=subject_map,
        split=split,
        detector_noise=detector_noise,
        seed=seed,
        joint_map=joint_map,
        units=units,
        drop_tpose={"auto": "auto", "yes": True, "no": False}[drop_tpose],
        random_yaw=random_yaw,
        min_views=min_views,
        near_mm=near_mm,
        resample=resample,
        floor=floor,
        position_channels=position_channels,
        up_axis=up_axis,
        check_plausibility=check_plausibility,
        subject_from=subject_from,
        overwrite=overwrite,
    )
    click.echo(
        f"{s['out']}: {s['files']} file(s), {len(s['subjects'])} subject(s) "
        f"(train {','.join(s['splits']['train']) or '-'}; test {','.join(s['splits']['test']) or '-'}), "
        f"{s['frames_kept']} frames kept of {s['frames_resampled']} ({s['frames_dropped']} dropped: not visible "
        f"in every required camera), {s['rows']['poses2d']['gt']} 2D rows per source, {s['seconds']:.1f} s"
    )
