"""``mvtools augment DS``: virtual cameras and training pair shards."""

from __future__ import annotations

import click

from mvtools.augment import pipeline as lib
from mvtools.augment.virtual import LAYOUTS
from mvtools.cli.common import defaults_of, friendly_errors, overwrite_option, split_list
from mvtools.dataset import VIEWS

D = defaults_of(lib.augment)


@click.command()
@click.argument("ds", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--virtual-views",
    type=click.IntRange(min=0),
    default=D["virtual_views"],
    show_default=True,
    help="Virtual cameras per subject rig (0: real views only). Placed like the real cameras: height (mm) "
    "and distance (mm) to the capture centre within the real rig's ranges, looking at the capture "
    "centre, no roll, a real camera's intrinsics (px), no distortion.",
)
@click.option(
    "--layout",
    type=click.Choice(LAYOUTS),
    default=D["layout"],
    show_default=True,
    help="ring: azimuths (degrees) spread evenly between the real cameras so all form a ring; random: "
    "azimuth and elevation (degrees) drawn within the real rig's ranges (seeded).",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=D["seed"],
    show_default=True,
    help="Seed of the random layout and of the pair sampling; the same seed gives identical output.",
)
@click.option(
    "--extrinsics",
    type=click.Choice(lib.EXTRINSICS),
    default=D["extrinsics"],
    help="Camera extrinsics for the pair transforms R (row-major) and t (mm): the dataset's calibration, "
    "or the rig of `mvtools calibrate --from-joints` (virtual cameras are then expressed in its frame). "
    "[default: given when the dataset has a calibration, else estimated; the choice is printed]",
)
@click.option(
    "--pairs-per-frame",
    "-k",
    type=click.IntRange(min=1),
    default=D["pairs_per_frame"],
    show_default=True,
    help="View pairs drawn per frame, without replacement (all usable pairs when a frame has fewer).",
)
@click.option(
    "--views",
    type=click.Choice(VIEWS),
    default=D["views"],
    show_default=True,
    help="Pairs among the real views only, or among real and virtual views (real-real, real-virtual, virtual-virtual).",
)
@click.option(
    "--subjects",
    default=D["subjects"],
    metavar="S1,S5,...",
    help="Comma-separated subjects to process (default: all); train/test from the manifest splits.",
)
@click.option(
    "--shard-rows",
    type=click.IntRange(min=1),
    default=D["shard_rows"],
    show_default=True,
    help="At most this many rows (view pairs) per Parquet shard.",
)
@click.option(
    "--source",
    type=click.Choice(lib.SOURCES),
    default=D["source"],
    help="2D inputs of the real views (px): detections, or ground truth. "
    "[default: detected when the dataset has detections, else gt]",
)
@click.option(
    "--virtual-noise",
    default=D["virtual_noise"],
    show_default=True,
    metavar="none|realistic|FILE.json",
    help="2D of the virtual views: none (pinhole projections of the 3D, confidence 1, as in the paper), "
    "realistic (what a CPN-like detector would report, as `synth --noise realistic`: px noise correlated "
    "over frames, outliers, left/right swaps, confidences), or a noise parameter FILE.json (px and frames, "
    "docs/synthetic.md). Makes the virtual views' 2D look like the real views' detections.",
)
@overwrite_option
@friendly_errors
def augment(
    ds,
    virtual_views,
    layout,
    seed,
    extrinsics,
    pairs_per_frame,
    views,
    subjects,
    shard_rows,
    source,
    virtual_noise,
    overwrite,
):
    """Add virtual cameras to DS and write the training pair shards DS/pairs/ (replaced atomically).

    Virtual cameras go into cameras.parquet (source=virtual, ids virtual-00...) and their 2D poses (pinhole
    projections of the 3D ground truth, px, confidence 1, or simulated detections with --virtual-noise) into
    poses2d (source=virtual); frames where a joint would be behind a virtual camera or outside its image are
    dropped and reported. See docs/augment.md.
    """
    s = lib.augment(
        ds,
        virtual_views=virtual_views,
        layout=layout,
        seed=seed,
        extrinsics=extrinsics,
        pairs_per_frame=pairs_per_frame,
        views=views,
        subjects=split_list(subjects),
        shard_rows=shard_rows,
        source=source,
        virtual_noise=virtual_noise,
        overwrite=overwrite,
    )
    click.echo(f"pairs: {s['pairs_dir']}  ({s['shards']} shards, 2D source {s['source2d']}, views {s['views']})")
    click.echo(f"extrinsics: {s['extrinsics']} ({s['extrinsics_reason']})")
    for sp in ("train", "test"):
        click.echo(f"  {sp:5s} {s['rows'][sp]:>10,d} rows  subjects {', '.join(s['splits'][sp]) or '-'}")
    if s["virtual_views"]:
        noisy = ", simulated detector noise" if s["virtual_noise"] else ""
        click.echo(f"virtual cameras: {s['virtual_views']} per subject ({s['layout']} layout{noisy}); dropped frames:")
        for subj, d in s["dropped"].items():
            frames = s["subjects"][subj]["frames"]
            parts = [f"{c[len('virtual-') :]}:{n}" for c, n in d.items()]
            click.echo(f"  {subj}: {' '.join(parts)}  (of {frames:,d} frames)")
    bad = {k: v for k, v in s["invalid_3d_frames"].items() if v}
    if bad:
        click.echo(f"frames with non-finite 3D skipped: {bad}")
