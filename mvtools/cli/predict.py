"""``mvtools predict RUN INPUT --out OUT``: lift 2D detections from a file (thin layer over
:func:`mvtools.evaluate.predict.predict`)."""
from __future__ import annotations

import click

from mvtools.cli.common import friendly_errors


@click.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Output file: .npz (VideoPose3D positions_3d, from npz input), .parquet or .csv; 3D in mm.")
@click.option("--cameras", default=None,
              help="Intrinsics for npz input: 'h36m' (built-in, H36M camera order) or a camera JSON / aniposelib "
                   "TOML file (list index i = camera i). Pixels are undistorted with its lens model.")
@click.option("--checkpoint", default="best", show_default=True, help="best, last, or a path to a .pt file.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Where to run the lifting network.")
@friendly_errors
def predict(run, input_path, out, cameras, checkpoint, device):
    """Lift 17-joint 2D poses (px) in INPUT to root-relative 3D in each camera's frame (mm).

    INPUT is a VideoPose3D 2D .npz (positions_2d[subject][action] = per-camera arrays) or a .parquet/.csv
    table with one frame per row: joints2d (34 floats) or x0,y0..x16,y16 (px), fx, fy, cx, cy (px), optional
    OpenCV k1, k2, p1, p2, k3; other columns are copied to the output.

    Temporal runs (--backbone temporal) lift whole sequences, one padded pass each: every npz array is one; table
    rows group by their subject, action, subaction, camera and sequence columns, in frame-column order.
    """
    from mvtools.evaluate.predict import predict as run_predict

    path = run_predict(run, input_path, out, cameras=cameras, checkpoint=checkpoint, device=device)
    click.echo(f"wrote {path}")
