"""``mvtools calibrate``: camera extrinsics from 2D joints alone, and aniposelib TOML import/export."""
from __future__ import annotations

from pathlib import Path

import click

from mvtools.cli.common import friendly_errors, overwrite_option, split_list


@click.command("calibrate")
@click.argument("dataset", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--from-joints", "from_joints", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Dataset directory DS: estimate every subject's camera extrinsics (R, t in mm) from its 2D "
                   "joints; the intrinsics (px) of DS's cameras are taken as known.")
@click.option("--subjects", default=None, help="Comma-separated subjects (default: all with 2D joints).")
@click.option("--source", type=click.Choice(["detected", "gt"]), default=None,
              help="Which 2D joints (px) to use (default: detected when present, else gt).")
@click.option("--reference-camera", default=None,
              help="Camera id whose frame anchors the rig (R = I, t = 0 before placing it in the world); "
                   "default: each subject's first camera.")
@click.option("--scale", type=click.Choice(["given", "baseline", "body"]), default="given", show_default=True,
              help="Metric scale: 'given' fits the camera-centre distances (mm) of DS's given calibration, "
                   "'baseline' uses --baseline-mm, 'body' fits triangulated bone lengths to an adult prior (mm) "
                   "and reports its uncertainty.")
@click.option("--baseline-mm", type=float, default=None,
              help="With --scale baseline: distance between the reference camera's centre and the second "
                   "camera's (--baseline-camera), mm.")
@click.option("--baseline-camera", default=None,
              help="With --scale baseline: the camera at --baseline-mm from the reference (default: the next "
                   "camera of the subject).")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=0.3, show_default=True,
              help="Ignore 2D joints whose confidence (0..1) is below this.")
@click.option("--refine/--no-refine", default=True, show_default=True,
              help="Bundle adjustment of all cameras over a subsample of frames (robust, confidence-weighted "
                   "reprojection error in px).")
@click.option("--method", type=click.Choice(["magsac", "ransac"]), default="magsac", show_default=True,
              help="Robust estimator of the essential matrix (OpenCV USAC_MAGSAC or RANSAC).")
@click.option("--threshold-px", type=click.FloatRange(min=0.1), default=6.0, show_default=True,
              help="Inlier threshold for epipolar distance and reprojection error, undistorted px.")
@click.option("--max-frames", type=click.IntRange(min=10), default=2000, show_default=True,
              help="Synchronous frames sampled (evenly at random over all sequences) for the epipolar stage.")
@click.option("--ba-frames", type=click.IntRange(min=10), default=400, show_default=True,
              help="Frames sampled for bundle adjustment (17 joints each).")
@click.option("--loss-scale-px", type=click.FloatRange(min=0.1), default=8.0, show_default=True,
              help="Bundle adjustment: scale of the robust (soft-L1) loss, px; residuals beyond it count less.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (sampling, RANSAC).")
@click.option("--export-toml", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the estimated cameras as aniposelib calibration TOML (translation mm); with "
                   "several subjects one file each, '_<subject>' inserted before the suffix.")
@click.option("--import-toml", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Instead of estimating: read an aniposelib TOML into DATASET's cameras table for --subject "
                   "(as 'estimated' rows, or 'given' with --as-given).")
@click.option("--subject", default=None, help="With --import-toml: the subject the cameras belong to.")
@click.option("--as-given", is_flag=True, help="With --import-toml: store the cameras as the 'given' calibration.")
@click.option("--toml-units", type=click.Choice(["mm", "cm", "m"]), default=None,
              help="With --import-toml: unit of the TOML translations (default: its [metadata] units, else mm).")
@overwrite_option
@friendly_errors
def calibrate(dataset, from_joints, subjects, source, reference_camera, scale, baseline_mm, baseline_camera,
              min_confidence, refine, method, threshold_px, max_frames, ba_frames, loss_scale_px, seed, export_toml,
              import_toml,
              subject, as_given, toml_units, overwrite):
    """Camera extrinsics from 2D joints alone (--from-joints DS), or import an aniposelib TOML
    (--import-toml FILE --subject S DATASET).

    Writes the estimated cameras to DS/cameras.parquet (source 'estimated'; the given rows stay),
    DS/calibration_report.json (per subject and camera pair: rotation and translation-direction error in
    degrees and baseline error in mm against the given calibration, inlier ratio, reprojection RMS in px) and
    the manifest's 'calibration' entry, and prints a table of the errors.
    """
    from mvtools.calibration.pipeline import calibrate_from_joints, format_report, import_toml as do_import

    if import_toml is not None:
        ds = dataset or from_joints
        if ds is None or (dataset is not None and from_joints is not None):
            raise click.UsageError("--import-toml FILE --subject S needs exactly one dataset (DATASET argument)")
        if not subject:
            raise click.UsageError("--import-toml needs --subject S")
        cams = do_import(ds, import_toml, subject, source="given" if as_given else "estimated", units=toml_units,
                          overwrite=overwrite)
        click.echo(f"imported {len(cams)} cameras of {subject} from {import_toml} into {ds} "
                   f"as {'given' if as_given else 'estimated'}: {', '.join(c.camera for c in cams)}")
        return
    if from_joints is None:
        if dataset is None:
            raise click.UsageError("give --from-joints DS (or --import-toml FILE --subject S DATASET)")
        from_joints = dataset
    elif dataset is not None:
        raise click.UsageError("give the dataset once (--from-joints DS)")
    report = calibrate_from_joints(
        from_joints, subjects=split_list(subjects), source=source, reference_camera=reference_camera, scale=scale,
        baseline_mm=baseline_mm, baseline_camera=baseline_camera, min_confidence=min_confidence, refine=refine,
        method=method, seed=seed, threshold_px=threshold_px, max_frames=max_frames, ba_frames=ba_frames,
        loss_scale_px=loss_scale_px, export_toml=export_toml, overwrite=overwrite)
    click.echo(format_report(report))
    click.echo(f"wrote {Path(from_joints) / 'calibration_report.json'} and estimated cameras to "
               f"{Path(from_joints) / 'cameras.parquet'}")
    for p in report.get("toml", []):
        click.echo(f"wrote {p}")
