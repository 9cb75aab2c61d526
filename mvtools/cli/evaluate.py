"""``mvtools evaluate RUN DS``: Protocol #1/#2 errors of a run on a dataset's single views (thin layer over
:func:`mvtools.evaluate.evaluation.evaluate_run`)."""

from __future__ import annotations

import click

from mvtools.cli.common import (
    defaults_of,
    device_option,
    friendly_errors,
    overwrite_option,
    renamed_option,
    split_list,
    test_flip_option,
)
from mvtools.dataset import INPUT_SOURCES, VIEWS
from mvtools.evaluate.evaluation import evaluate_run, write_evaluation

D = defaults_of(evaluate_run)


@click.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.argument("ds", type=click.Path(exists=True, file_okay=False))
@click.option("--subjects", default=None, help="Comma-separated subjects, e.g. S9,S11 (default: the test split).")
@click.option(
    "--source",
    type=click.Choice(INPUT_SOURCES),
    default=D["source"],
    help="2D input: detected or ground-truth projections, px (default: what the run was trained on).",
)
@click.option(
    "--views",
    type=click.Choice(VIEWS),
    default=D["cameras"],
    show_default=True,
    help="real: the dataset's calibrated cameras; all: also the virtual cameras of `mvtools augment`.",
)
@renamed_option("--cameras", "--views", "views", type=click.Choice(VIEWS))
@click.option(
    "--checkpoint",
    default=D["checkpoint"],
    show_default=True,
    help="best, last, or a path to a .pt checkpoint of the run.",
)
@device_option
@test_flip_option
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write all results to this JSON file (errors in mm, PCK and AUC in percent). An existing file is "
    "replaced only with --overwrite, and only if it is an earlier mvtools evaluation JSON.",
)
@overwrite_option
@friendly_errors
def evaluate(run, ds, subjects, source, views, checkpoint, device, test_flip, json_out, overwrite):
    """Lift the 2D poses of DS's test subjects with RUN's lifting branch and report errors per action.

    MPJPE (Protocol #1) and P-MPJPE (Protocol #2, similarity Procrustes) in mm on root-relative poses in each
    camera's frame; PCK at 150 mm and AUC over 0-150 mm in percent (over the dataset's pck_joints, e.g. the
    official 14 of MPI-INF-3DHP, else all 17 joints including the root, whose error is 0: floor 5.9 %).
    "mean over poses" pools every pose, "mean over actions" averages the per-action errors (the paper's Avg
    column).
    """
    from mvtools.evaluate.evaluation import format_table

    opts = dict(
        subjects=split_list(subjects),
        source=source,
        cameras=views,
        checkpoint=checkpoint,
        device=device,
        test_flip=test_flip,
    )
    if json_out:  # checked and locked before the work, written atomically after it
        res = write_evaluation(run, ds, json_out, overwrite=overwrite, **opts)
    else:
        res = evaluate_run(run, ds, **opts)
    click.echo(format_table(res))
