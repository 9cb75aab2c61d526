"""``mvtools demo``: the whole pipeline on synthetic data."""

from __future__ import annotations

import click

from mvtools.cli.common import defaults_of, friendly_errors, overwrite_option
from mvtools.demo import run_demo

D = defaults_of(run_demo)


@click.command()
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False),
    default="demo-out",
    show_default=True,
    help="Directory for everything the demo writes: raw/ (synthetic H36M tree), dataset/, run-*/ "
    "(one training run per loss), summary.json and summary.md.",
)
@click.option(
    "--seed", type=int, default=D["seed"], show_default=True, help="Seed for data, virtual cameras and training."
)
@click.option(
    "--sequences",
    type=int,
    default=D["sequences"],
    show_default=True,
    help="Synthetic sequences per subject (7 subjects: S1 S5 S6 S7 S8 train, S9 S11 test).",
)
@click.option(
    "--frames",
    type=int,
    default=D["frames"],
    show_default=True,
    help="Frames per synthetic sequence (50 Hz, so 500 frames = 10 s).",
)
@click.option(
    "--epochs",
    type=int,
    default=None,
    help="Main training epochs per run (default: the demo's small setting; the paper uses 300).",
)
@click.option(
    "--channels",
    type=int,
    default=None,
    help="Width of the lifting and root networks (default: the demo's 256; the paper uses 1024).",
)
@overwrite_option
@friendly_errors
def demo(out, seed, sequences, frames, epochs, channels, overwrite):
    """Run synth -> ingest -> calibrate --from-joints -> augment --virtual-views 8 -> train -> evaluate.

    Trains three lifters on the same pairs (trans-reproj, reproj-only and supervised) and prints their MPJPE and
    P-MPJPE (mm) on the held-out synthetic subjects S9 and S11. A few minutes on a 2-core CPU.
    """
    from mvtools.demo import format_table

    opts = {k: v for k, v in {"epochs": epochs, "channels": channels}.items() if v is not None}
    if channels is not None and channels > 256:
        opts["warmup_steps"] = 300  # wider networks need the warm-up (docs/method.md)
    summary = run_demo(out, seed=seed, sequences=sequences, frames=frames, train_options=opts, overwrite=overwrite)
    click.echo(format_table(summary["results"]))
    click.echo(f"\nWritten to {out}/ (summary.json, summary.md, run-*/ with plots and checkpoints)")
