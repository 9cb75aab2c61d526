"""``mvtools triangulate DS``: 3D joints from the 2D detections and a calibrated rig (thin layer over
:func:`mvtools.calibration.triangulate.triangulate_dataset`)."""

from __future__ import annotations

import click

from mvtools.calibration.triangulate import EXTRINSICS, SOURCES2D, triangulate_dataset
from mvtools.cli.common import defaults_of, friendly_errors, overwrite_option, split_list

D = defaults_of(triangulate_dataset)


@click.command()
@click.argument("ds", type=click.Path(exists=True, file_okay=False))
@click.option("--subjects", default=None, help="Comma-separated subjects (default: all with 2D joints).")
@click.option(
    "--extrinsics",
    type=click.Choice(EXTRINSICS),
    default=D["extrinsics"],
    show_default=True,
    help="Camera poses: estimated (from `calibrate --from-joints`), given (the dataset's calibration); "
    "auto: estimated when the subject has them, else given.",
)
@click.option(
    "--source",
    type=click.Choice(SOURCES2D),
    default=D["source"],
    help="2D joints (px) to triangulate (default: detected when present, else gt).",
)
@click.option(
    "--min-confidence",
    type=click.FloatRange(0, 1),
    default=D["min_confidence"],
    show_default=True,
    help="Ignore 2D joints whose confidence (0..1) is below this.",
)
@click.option(
    "--threshold-px",
    type=click.FloatRange(min=0.1),
    default=D["threshold_px"],
    show_default=True,
    help="RANSAC over views: a view whose reprojection error exceeds this (undistorted px) is an outlier "
    "for that joint and frame.",
)
@click.option(
    "--min-views",
    type=click.IntRange(min=2),
    default=D["min_views"],
    show_default=True,
    help="Inlier views a joint needs to be triangulated (else NaN).",
)
@overwrite_option
@friendly_errors
def triangulate(ds, subjects, extrinsics, source, min_confidence, threshold_px, min_views, overwrite):
    """Triangulate every frame's 17 joints from DS's 2D detections (confidence-weighted DLT, RANSAC over views,
    refined by reprojection) and store them as 3D poses of source 'triangulated' (world mm of the rig, with the
    per-joint reprojection error in px). For datasets without 3D, e.g. from `mvtools ingest keypoints`.
    """
    rep = triangulate_dataset(
        ds,
        subjects=split_list(subjects),
        extrinsics=extrinsics,
        source=source,
        min_confidence=min_confidence,
        threshold_px=threshold_px,
        min_views=min_views,
        overwrite=overwrite,
    )
    for s, e in rep["subjects"].items():
        r = e["reprojection_error_px"]
        click.echo(
            f"{s}: {e['frames']} frames ({e['frames_complete']} with all 17 joints), "
            f"{100 * e['joints_triangulated']:.1f}% of joints triangulated with {e['extrinsics']} extrinsics; "
            f"reprojection error median {r['median']} px, 95th percentile {r['p95']} px; "
            f"{100 * e['views_rejected']:.1f}% of 2D observations rejected as outliers"
        )
    click.echo(f"wrote 3D poses (source 'triangulated') to {ds}/poses3d")
