"""``mvtools ingest h36m``: raw Human3.6M (or VideoPose3D's npz) into a dataset directory."""

from __future__ import annotations

import click

from mvtools.cli.common import defaults_of, friendly_errors, overwrite_option, renamed_option, split_list
from mvtools.ingest.h36m.reader import ingest_h36m as run

D = defaults_of(run)


@click.command("h36m")
@click.argument("raw_root", required=False, type=click.Path(file_okay=False, path_type=str))
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(path_type=str),
    help="Dataset directory to write (an earlier one replaced atomically, with --overwrite).",
)
@click.option(
    "--subjects", default=D["subjects"], help="Comma-separated subjects to ingest, e.g. S1,S5 (default: all found)."
)
@click.option(
    "--actions",
    default=D["actions"],
    help="Comma-separated actions (canonical names like Photo, WalkDog, raw names like 'TakingPhoto 1', "
    "or VideoPose3D keys); exact matches, so Sitting does not select SittingDown (default: all).",
)
@click.option(
    "--calibration",
    "cameras_file",
    default=D["cameras_file"],
    type=click.Path(dir_okay=False, exists=True),
    help="Camera JSON in the layout of mvtools/data/h36m_cameras.json (intrinsics px, centres mm) "
    "replacing the built-in H36M calibration.",
)
@renamed_option("--cameras", "--calibration", "cameras_file", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--detections",
    default=D["detections"],
    type=click.Path(dir_okay=False, exists=True),
    help="2D detections .npz in the VideoPose3D layout (positions_2d[subject][action] = 4 arrays "
    "(T,17,2|3) px [+ confidence 0..1], H36M camera order); stored as source=detected.",
)
@click.option(
    "--from-videopose3d",
    "from_videopose3d",
    default=D["from_videopose3d"],
    type=click.Path(dir_okay=False, exists=True),
    help="Read VideoPose3D's data_3d_h36m.npz (world metres, 32 joints) instead of RAW_ROOT; "
    "ground-truth 2D is then the projection of the 3D (px).",
)
@click.option(
    "--d2-tolerance",
    default=D["d2_tolerance_px"],
    show_default=True,
    type=float,
    help="Report D2_Positions files that differ from the projection of D3 by more than this (px).",
)
@click.option(
    "--drop-s11-directions",
    is_flag=True,
    help="Leave out S11 Directions (camera 54138969's video is corrupt in the release; VideoPose3D drops "
    "the sequence). Default: kept, with a note.",
)
@overwrite_option
@friendly_errors
def ingest_h36m(
    raw_root,
    out,
    subjects,
    actions,
    cameras_file,
    detections,
    from_videopose3d,
    d2_tolerance,
    drop_s11_directions,
    overwrite,
):
    """Ingest Human3.6M from RAW_ROOT (S1/MyPoseFeatures/D3_Positions/*.cdf [+ D2_Positions], h36m-fetch's
    extracted/S1/Poses_D3_Positions/..., or mmpose's extracted S1/MyPoseFeatures/D3_Positions_mono/*.<camera>.cdf)
    into dataset directory --out.

    Keeps the 17-joint subset (world mm, image px), normalises action names and sub-action ids, trims
    D2/D3 length mismatches to the common length and reports them in manifest.json ("notes").
    """
    s = run(
        raw_root,
        out,
        subjects=split_list(subjects),
        actions=split_list(actions),
        cameras_file=cameras_file,
        detections=detections,
        from_videopose3d=from_videopose3d,
        d2_tolerance_px=d2_tolerance,
        drop_s11_directions=drop_s11_directions,
        overwrite=overwrite,
    )
    g = s["gt2d"]
    r = s["rows"]["poses2d"]
    click.echo(
        f"wrote {s['out']}: {len(s['subjects'])} subjects, {s['sequences']} sequences, "
        f"{s['frames']} frames (3D, mm); 2D rows gt {r['gt']}, detected {r['detected']}"
    )
    if g["from_d2_files"]:
        click.echo(f"D2 files: {g['from_d2_files']}, max deviation from projected D3 {g['d2_max_deviation_px']:.4f} px")
    if g["projected"]:
        click.echo(f"2D ground truth projected from 3D for {g['projected']} (sequence, camera) pairs")
    issues = [n for n in s["notes"] if n["issue"] not in ("skipped",)]
    if issues:
        click.echo(f"{len(issues)} notes (length mismatches, known issues, ...) in manifest.json")
