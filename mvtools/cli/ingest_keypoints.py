"""``mvtools ingest keypoints``: multi-view 2D keypoint files -> dataset (thin layer over ``ingest_keypoints``)."""

from __future__ import annotations

import click

from mvtools.cli.common import defaults_of, friendly_errors, overwrite_option, renamed_option
from mvtools.ingest.keypoints.formats import FORMATS
from mvtools.ingest.keypoints.ingest import ingest_keypoints as run
from mvtools.ingest.keypoints.layouts import LAYOUTS

D = defaults_of(run)


@click.command("keypoints")
@click.argument("root", type=click.Path(exists=True))
@click.option(
    "--out",
    "-o",
    required=True,
    type=click.Path(),
    help="Dataset directory to write (atomically; an existing one only with --overwrite).",
)
@click.option(
    "--view-names",
    "views",
    default=D["views"],
    help="View names: 'a,b,c' for the view folders/files in sorted order, or 'old=new,...'. "
    "Default: the folder or file names.",
)
@renamed_option("--views", "--view-names", "views")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("auto", *FORMATS)),
    default=D["fmt"],
    show_default=True,
    help="openpose: per-frame *_keypoints.json folders; coco: keypoint results JSON (mmpose, Detectron2, "
    "ViTPose); mmpose: inferencer predictions (per-image folder or video JSON); array: .npz/.npy/.csv "
    "(frames x keypoints x 3). auto: from the files.",
)
@click.option(
    "--layout",
    type=click.Choice(("auto", *LAYOUTS)),
    default=D["layout"],
    show_default=True,
    help="Keypoint layout; auto: by count (17 COCO, 25 BODY_25, 18 OpenPose COCO, 26 Halpe, 133 "
    "COCO-WholeBody's body).",
)
@click.option(
    "--coco-images",
    "images_file",
    default=D["images_file"],
    type=click.Path(exists=True, dir_okay=False),
    help="COCO annotation file whose 'images' (id, file_name, width, height) map results to views and "
    "frames: view = folder of file_name, frame = last number in its name.",
)
@click.option(
    "--image-regex",
    default=D["image_regex"],
    help="Regex with named groups view and frame applied to COCO file_name, e.g. '(?P<view>cam\\d)_(?P<frame>\\d+)'.",
)
@click.option(
    "--intrinsics",
    multiple=True,
    default=(),
    help="Repeatable: FILE, VIEW=FILE or a folder of VIEW.<ext> files. aniposelib .toml, OpenCV "
    "FileStorage .yml/.yaml/.xml (camera_matrix, distortion_coefficients, image_width, "
    "image_height) or .json (fx, fy, cx, cy or camera_matrix, width, height px).",
)
@click.option(
    "--focal-px",
    default=D["focal_px"],
    type=float,
    help="Guess: focal length in px for views without intrinsics (principal point at the centre).",
)
@click.option(
    "--fov-deg",
    default=D["fov_deg"],
    type=float,
    help="Guess: horizontal field of view in degrees for views without intrinsics.",
)
@click.option(
    "--image-size", default=D["image_size"], help="Image size WIDTHxHEIGHT px for a --focal-px/--fov-deg guess."
)
@click.option(
    "--offsets",
    default=D["offsets"],
    help="Per-view frame offsets 'cam1=3,cam2=-2': added to that view's frame numbers so that equal "
    "numbers are the same instant.",
)
@click.option("--subject", default=D["subject"], show_default=True, help="Subject id of the recording.")
@click.option("--sequence", default=D["sequence"], show_default=True, help="Sequence name (stored as the action).")
@click.option("--fps", default=D["fps"], type=float, help="Frame rate of the videos, Hz (stored in the manifest).")
@click.option(
    "--max-jump",
    default=D["max_jump"],
    show_default=True,
    type=float,
    help="Person tracking: the kept person may move by at most this fraction of its size (bounding-box "
    "diagonal) between frames; else the largest person is taken.",
)
@overwrite_option
@friendly_errors
def ingest_keypoints(
    root,
    out,
    views,
    fmt,
    layout,
    images_file,
    image_regex,
    intrinsics,
    focal_px,
    fov_deg,
    image_size,
    offsets,
    subject,
    sequence,
    fps,
    max_jump,
    overwrite,
) -> None:
    """Turn multi-view 2D keypoint files (one folder or file per view) into a dataset with detected 2D (px),
    camera intrinsics and no 3D or extrinsics.

    Keypoints are mapped to the 17 H36M joints (docs/keypoints.md); one person per frame is kept. Next:
    `mvtools calibrate --from-joints OUT --scale body`, then `mvtools triangulate OUT`.
    """
    s = run(
        root,
        out,
        views=views,
        fmt=fmt,
        layout=layout,
        images_file=images_file,
        image_regex=image_regex,
        intrinsics=list(intrinsics),
        focal_px=focal_px,
        fov_deg=fov_deg,
        image_size=image_size,
        offsets=offsets,
        subject=subject,
        sequence=sequence,
        fps=fps,
        max_jump=max_jump,
        overwrite=overwrite,
    )
    for v, r in s["views"].items():
        click.echo(
            f"{v}: {r['format']} {r['layout']}, {r['frames_written']}/{r['frames_read']} frames, offset "
            f"{r['offset']}, mean confidence {r['mean_confidence'] or 0:.2f}"
            + (f", {r['frames_with_several']} frames with several people" if r["frames_with_several"] else "")
        )
    for w in s["warnings"]:
        click.echo(f"warning: {w}")
    click.echo(
        f"{s['out']}: {len(s['views'])} view(s), {s['rows']} detected 2D rows, no 3D, no extrinsics "
        f"({s['seconds']:.1f} s). Next: mvtools calibrate --from-joints {s['out']} --scale body"
    )
