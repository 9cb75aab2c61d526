"""``mvtools predict RUN INPUT --out OUT``: lift 2D detections from a file (thin layer over
:func:`mvtools.evaluate.predict.predict`)."""

from __future__ import annotations

import click

from mvtools.cli.common import (
    defaults_of,
    device_option,
    friendly_errors,
    overwrite_option,
    renamed_option,
    test_flip_option,
)
from mvtools.evaluate.predict import predict as run_predict
from mvtools.ingest.keypoints.formats import FORMATS
from mvtools.ingest.keypoints.layouts import LAYOUTS

D = defaults_of(run_predict)


@click.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True))
@click.option(
    "--out",
    "-o",
    "out",
    required=True,
    type=click.Path(dir_okay=False),
    help="Output file: .npz (VideoPose3D positions_3d from npz input; frames/joints3d/confidence arrays "
    "from keypoint input), .parquet or .csv; 3D in mm.",
)
@click.option(
    "--calibration",
    default=D["cameras"],
    help="Camera intrinsics. npz input: 'h36m' (built-in, H36M camera order) or a camera JSON / aniposelib "
    "TOML (list index i = camera i). Keypoint input: an aniposelib TOML, OpenCV FileStorage YAML/XML "
    "or JSON (see `mvtools ingest keypoints --help`). Pixels are undistorted with its lens model.",
)
@renamed_option("--cameras", "--calibration", "calibration")
@click.option(
    "--camera",
    default=D["camera"],
    help="Keypoint input: which camera of --calibration (default: the only one, or the one named like the input).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("auto", *FORMATS)),
    default=D["fmt"],
    show_default=True,
    help="Keypoint input format (auto: from the file; tables and VideoPose3D npz are recognised as before).",
)
@click.option(
    "--layout",
    type=click.Choice(("auto", *LAYOUTS)),
    default=D["layout"],
    show_default=True,
    help="Keypoint layout (auto: by keypoint count).",
)
@click.option(
    "--focal-px",
    default=D["focal_px"],
    type=float,
    help="Keypoint input without --calibration: focal length guess, px.",
)
@click.option(
    "--fov-deg",
    default=D["fov_deg"],
    type=float,
    help="Keypoint input without --calibration: horizontal field of view guess, degrees.",
)
@click.option(
    "--image-size", default=D["image_size"], help="Image size WIDTHxHEIGHT px for a --focal-px/--fov-deg guess."
)
@click.option("--checkpoint", default=D["checkpoint"], show_default=True, help="best, last, or a path to a .pt file.")
@device_option
@test_flip_option
@overwrite_option
@friendly_errors
def predict(
    run,
    input_path,
    out,
    calibration,
    camera,
    fmt,
    layout,
    focal_px,
    fov_deg,
    image_size,
    checkpoint,
    device,
    test_flip,
    overwrite,
):
    """Lift 17-joint 2D poses (px) in INPUT to root-relative 3D in each camera's frame (mm).

    INPUT is a VideoPose3D 2D .npz (positions_2d[subject][action] = per-camera arrays), a .parquet/.csv
    table with one frame per row: joints2d (34 floats) or x0,y0..x16,y16 (px), fx, fy, cx, cy (px), optional
    OpenCV k1, k2, p1, p2, k3 (other columns are copied to the output), or one view's detector keypoints:
    an OpenPose JSON folder, a COCO keypoint results JSON, mmpose predictions, or a frames x keypoints x 3
    .npz/.npy/.csv array (mapped to the 17 H36M joints as in `mvtools ingest keypoints`).

    Temporal runs (--backbone temporal) lift whole sequences, one padded pass each: every npz array is one; table
    rows group by their subject, action, subaction, camera and sequence columns, in frame-column order.
    """
    path = run_predict(
        run,
        input_path,
        out,
        cameras=calibration,
        checkpoint=checkpoint,
        device=device,
        fmt=fmt,
        layout=layout,
        camera=camera,
        focal_px=focal_px,
        fov_deg=fov_deg,
        image_size=image_size,
        overwrite=overwrite,
        test_flip=test_flip,
    )
    click.echo(f"wrote {path}")
