"""``mvtools ingest 3dhp``: MPI-INF-3DHP training and/or test set into a dataset directory."""

from __future__ import annotations

import click

from mvtools.cli.common import defaults_of, friendly_errors, overwrite_option, split_list
from mvtools.ingest.mpi3dhp import SPLITS, TEST_INTRINSICS
from mvtools.ingest.mpi3dhp import ingest_3dhp as run

D = defaults_of(run)


def _camera_list(value: str) -> list[int]:
    from mvtools.ingest.mpi3dhp import CAMERA_SETS

    if value.strip().lower() in CAMERA_SETS:
        return list(CAMERA_SETS[value.strip().lower()])
    try:
        return [int(v) for v in split_list(value) or []]
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected comma-separated camera indices 0..13 or 'all'") from None


@click.command("3dhp")
@click.argument("root", type=click.Path(file_okay=False, path_type=str))
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(path_type=str),
    help="Dataset directory to create (an earlier one replaced atomically, with --overwrite).",
)
@click.option(
    "--split",
    type=click.Choice(SPLITS),
    default=D["split"],
    show_default=True,
    help="train: S1..S8/Seq1,Seq2 (annot.mat + camera.calibration); test: mpi_inf_3dhp_test_set/TS1..TS6 "
    "(annot_data.mat, HDF5); both: one dataset with both (same columns).",
)
@click.option(
    "--cameras",
    default="chest",
    show_default=True,
    help="Training cameras: 'chest' (0,2,4,7,8, the five chest-height cameras the paper trains with), "
    "'vnect' (0,1,2,4,5,6,7,8, as VNect, mmpose and PosePile load), 'all' (0..13) or comma-separated "
    "indices 0..13. Test sequences have one camera each.",
)
@click.option(
    "--subjects",
    default=D["subjects"],
    help="Comma-separated subjects to read, e.g. S1,S2,TS1 (default: all present for the split).",
)
@click.option(
    "--test-intrinsics",
    type=click.Choice(TEST_INTRINSICS),
    default=D["test_intrinsics"],
    show_default=True,
    help="Test-camera intrinsics (px): 'known' = published calibration (TS1-4 2048x2048 px, f 7.32506 mm "
    "on a 10 mm sensor; TS5-6 1920x1080 px, f 8.770747185 mm, OpenCV distortion); 'pinhole' = the "
    "same without distortion; 'auto' = per sequence whichever of the two reproduces annot2 from "
    "annot3 (fails when neither is within 3 px RMS); 'fit' = least-squares fx, fy, cx, cy.",
)
@overwrite_option
@friendly_errors
def ingest_3dhp(root, out, split, cameras, subjects, test_intrinsics, overwrite):
    """Read the MPI-INF-3DHP tree at ROOT (S1..S8/ and/or mpi_inf_3dhp_test_set/).

    Keeps the 17 H36M-compatible joints in mvtools' H36M order. 3D in mm: training joints in the calibration's
    world rotated to Z up; test joints in each test camera's frame (R = I, t = 0). 2D in px as given (gt).
    poses3d gets the extra columns valid, scene and joints3d_univ (univ_annot3, the evaluation reference).
    """
    s = run(
        root,
        out,
        split=split,
        cameras=_camera_list(cameras),
        subjects=split_list(subjects),
        test_intrinsics=test_intrinsics,
        overwrite=overwrite,
    )
    click.echo(
        f"wrote {s['out']}: {s['rows']['poses3d']} 3D rows, {s['rows']['poses2d']['gt']} 2D rows, "
        f"{s['rows']['cameras']} cameras"
    )
    for r in s["train"]:
        click.echo(
            f"  {r['subject']}/{r['sequence']}: {r['frames']} frames ({r['annot_rows']} annotated), "
            f"cameras {','.join(map(str, r['cameras']))}, camera disagreement "
            f"{r['max_camera_disagreement_mm']:.2f} mm, reprojection {r['reprojection_rms_px']:.2f} px RMS"
        )
    for r in s["test"]:
        click.echo(
            f"  {r['subject']} ({r['scene']}): {r['frames']} frames, {r['valid_frames']} valid, camera "
            f"{r['camera_chosen']} (--test-intrinsics {r['intrinsics']}): annot2 reproduced to "
            f"{r['reprojection_rms_px_known']:.2f} px RMS (known) / {r['reprojection_rms_px_pinhole']:.2f} px "
            f"(pinhole) / {r['reprojection_rms_px_fit']:.2f} px (fit)"
        )
