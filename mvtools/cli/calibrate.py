"""``mvtools calibrate``: camera extrinsics from 2D joints alone, and aniposelib TOML import/export."""

from __future__ import annotations

from pathlib import Path

import click

from mvtools.calibration import pipeline as lib
from mvtools.calibration.toml_io import UNITS_MM
from mvtools.calibration.twoview import METHODS
from mvtools.cli.common import defaults_of, friendly_errors, overwrite_option, split_list
from mvtools.dataset import INPUT_SOURCES

D = defaults_of(lib.calibrate_from_joints)
DI = defaults_of(lib.import_toml)


@click.command("calibrate")
@click.argument("dataset", metavar="DS", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--from-joints",
    "from_joints",
    is_flag=True,
    help="Estimate every subject's camera extrinsics (R, t in mm) of DS from its 2D joints; the "
    "intrinsics (px) of DS's cameras are taken as known. The default mode (without --import-toml).",
)
@click.option("--subjects", default=D["subjects"], help="Comma-separated subjects (default: all with 2D joints).")
@click.option(
    "--source",
    type=click.Choice(INPUT_SOURCES),
    default=D["source"],
    help="Which 2D joints (px) to use (default: detected when present, else gt).",
)
@click.option(
    "--reference-camera",
    default=D["reference_camera"],
    help="Camera id whose frame anchors the rig (R = I, t = 0 before placing it in the world); "
    "default: each subject's first camera.",
)
@click.option(
    "--scale",
    type=click.Choice(lib.SCALES),
    default=D["scale"],
    show_default=True,
    help="Metric scale: 'given' fits the camera-centre distances (mm) of DS's given calibration, "
    "'baseline' uses --baseline-mm, 'body' fits triangulated bone lengths to an adult prior (mm) "
    "and reports its uncertainty.",
)
@click.option(
    "--baseline-mm",
    type=float,
    default=D["baseline_mm"],
    help="With --scale baseline: distance between the reference camera's centre and the second "
    "camera's (--baseline-camera), mm.",
)
@click.option(
    "--baseline-camera",
    default=D["baseline_camera"],
    help="With --scale baseline: the camera at --baseline-mm from the reference (default: the next "
    "camera of the subject).",
)
@click.option(
    "--min-confidence",
    type=click.FloatRange(0, 1),
    default=D["min_confidence"],
    show_default=True,
    help="Ignore 2D joints whose confidence (0..1) is below this.",
)
@click.option(
    "--refine/--no-refine",
    default=D["refine"],
    show_default=True,
    help="Bundle adjustment of all cameras over a subsample of frames (robust, confidence-weighted "
    "reprojection error in px).",
)
@click.option(
    "--method",
    type=click.Choice(sorted(METHODS)),
    default=D["method"],
    show_default=True,
    help="Robust estimator of the essential matrix (OpenCV USAC_MAGSAC or RANSAC).",
)
@click.option(
    "--threshold-px",
    type=click.FloatRange(min=0.1),
    default=D["threshold_px"],
    show_default=True,
    help="Inlier threshold for epipolar distance and reprojection error, undistorted px.",
)
@click.option(
    "--max-frames",
    type=click.IntRange(min=10),
    default=D["max_frames"],
    show_default=True,
    help="Synchronous frames sampled (evenly at random over all sequences) for the epipolar stage.",
)
@click.option(
    "--ba-frames",
    type=click.IntRange(min=10),
    default=D["ba_frames"],
    show_default=True,
    help="Frames sampled for bundle adjustment (17 joints each).",
)
@click.option(
    "--loss-scale-px",
    type=click.FloatRange(min=0.1),
    default=D["loss_scale_px"],
    show_default=True,
    help="Bundle adjustment: scale of the robust (soft-L1) loss, px; residuals beyond it count less.",
)
@click.option("--seed", type=int, default=D["seed"], show_default=True, help="Random seed (sampling, RANSAC).")
@click.option(
    "--export-toml",
    type=click.Path(dir_okay=False, path_type=Path),
    default=D["export_toml"],
    help="Also write the estimated cameras as aniposelib calibration TOML (translation mm); with "
    "several subjects one file each, '_<subject>' inserted before the suffix.",
)
@click.option(
    "--import-toml",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Instead of estimating: read an aniposelib TOML into DS's cameras table for --subject "
    "(as 'estimated' rows, or 'given' with --as-given).",
)
@click.option("--subject", default=None, help="With --import-toml: the subject the cameras belong to.")
@click.option("--as-given", is_flag=True, help="With --import-toml: store the cameras as the 'given' calibration.")
@click.option(
    "--toml-units",
    type=click.Choice(list(UNITS_MM)),
    default=DI["units"],
    help="With --import-toml: unit of the TOML translations (default: its [metadata] units, else mm).",
)
@overwrite_option
@friendly_errors
def calibrate(
    dataset,
    from_joints,
    subjects,
    source,
    reference_camera,
    scale,
    baseline_mm,
    baseline_camera,
    min_confidence,
    refine,
    method,
    threshold_px,
    max_frames,
    ba_frames,
    loss_scale_px,
    seed,
    export_toml,
    import_toml,
    subject,
    as_given,
    toml_units,
    overwrite,
):
    """Camera extrinsics of dataset DS from 2D joints alone (`calibrate --from-joints DS`), or import an
    aniposelib TOML (`calibrate DS --import-toml FILE --subject S`).

    Writes the estimated cameras to DS/cameras.parquet (source 'estimated'; the given rows stay),
    DS/calibration_report.json (per subject and camera pair: rotation and translation-direction error in
    degrees and baseline error in mm against the given calibration, inlier ratio, reprojection RMS in px) and
    the manifest's 'calibration' entry, and prints a table of the errors.
    """
    if import_toml is not None:
        if from_joints:
            raise click.UsageError("give either --from-joints or --import-toml FILE, not both")
        if not subject:
            raise click.UsageError("--import-toml needs --subject S")
        store_as = "given" if as_given else DI["source"]
        cams = lib.import_toml(dataset, import_toml, subject, source=store_as, units=toml_units, overwrite=overwrite)
        click.echo(
            f"imported {len(cams)} cameras of {subject} from {import_toml} into {dataset} "
            f"as {store_as}: {', '.join(c.camera for c in cams)}"
        )
        return
    report = lib.calibrate_from_joints(
        dataset,
        subjects=split_list(subjects),
        source=source,
        reference_camera=reference_camera,
        scale=scale,
        baseline_mm=baseline_mm,
        baseline_camera=baseline_camera,
        min_confidence=min_confidence,
        refine=refine,
        method=method,
        seed=seed,
        threshold_px=threshold_px,
        max_frames=max_frames,
        ba_frames=ba_frames,
        loss_scale_px=loss_scale_px,
        export_toml=export_toml,
        overwrite=overwrite,
    )
    click.echo(lib.format_report(report))
    click.echo(f"wrote {dataset / 'calibration_report.json'} and estimated cameras to {dataset / 'cameras.parquet'}")
    for p in report.get("toml", []):
        click.echo(f"wrote {p}")
