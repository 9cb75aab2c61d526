"""``mvtools ingest <format>``: raw datasets into the mvtools data model."""

from __future__ import annotations

import click

from mvtools.cli.main import LazyGroup

INGESTERS = {
    "h36m": "mvtools.cli.ingest_h36m:ingest_h36m",
    "bvh": "mvtools.cli.ingest_bvh:ingest_bvh",
    "3dhp": "mvtools.cli.ingest_3dhp:ingest_3dhp",
    "keypoints": "mvtools.cli.ingest_keypoints:ingest_keypoints",
}


@click.group(cls=LazyGroup, lazy_commands=INGESTERS)
def ingest() -> None:
    """Read a raw dataset (Human3.6M, BVH motion capture, MPI-INF-3DHP) or multi-view 2D keypoint files into a
    dataset directory."""
