"""``mvtools train DS --out RUN``: the two-branch self-supervised lifter on DS/pairs/ (thin layer over
:func:`mvtools.train.loop.train`). Every option below is generated from :class:`mvtools.train.config.TrainConfig`
(name, type, range, default, unit and help text live there only)."""

from __future__ import annotations

import json

import click

from mvtools.cli.common import friendly_errors
from mvtools.train.config import TrainConfig, choices, option_fields


def option_name(f) -> str:
    """The command-line name of a TrainConfig field (``--pretrain-epochs``, ``--lambda``)."""
    return "--" + (f.metadata["cli"] or f.name.replace("_", "-"))


class RegistryChoice(click.Choice):
    """A click.Choice whose values come from a registry on first use (so ``mvtools --help`` imports no torch)."""

    def __init__(self, field):
        self._field = field
        self._values = None
        super().__init__([], case_sensitive=True)

    @property
    def choices(self):
        if self._values is None:
            self._values = tuple(choices(self._field))
        return self._values

    @choices.setter
    def choices(self, value):
        pass


def click_option(f):
    """A click option for TrainConfig field ``f`` (its default, range, choices and help with the unit)."""
    m = f.metadata
    help_ = m["help"] + (f" [unit: {m['unit']}]" if m["unit"] else "")
    name = option_name(f)
    if m["type"] is bool:
        flag = f"{name}/--no-{name[2:]}"
        return click.option(flag, f.name, default=f.default, show_default=True, help=help_)
    if m["registry"]:
        typ = RegistryChoice(f)
    elif m["choices"] is not None:
        typ = click.Choice(list(m["choices"]))
    elif m["min"] is None and m["max"] is None:
        typ = m["type"]
    elif m["type"] is int:
        typ = click.IntRange(m["min"], m["max"], max_open=m["max_open"])
    else:
        typ = click.FloatRange(m["min"], m["max"], max_open=m["max_open"])
    return click.option(name, f.name, type=typ, default=f.default, show_default=f.default is not None, help=help_)


def config_options(fn):
    """Decorate ``fn`` with one click option per TrainConfig field, in declaration order."""
    for f in reversed(option_fields()):
        fn = click_option(f)(fn)
    return fn


@click.command()
@click.argument("ds", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False),
    help="Run directory to write (config.json, last.pt, best.pt, metrics.jsonl, PNG plots). Never replaced: an "
    "existing run is only continued with --resume (train has no --overwrite; remove a run yourself to redo it), and "
    "it may not lie inside DS.",
)
@config_options
@friendly_errors
def train(ds, out, **options):
    """Train the 2D-to-3D lifter on the pair shards in DS/pairs/ (written by `mvtools augment`).

    best.pt is chosen on held-out sequences of the TRAINING subjects (--heldout-fraction) by the main loss
    itself, so a self-supervised run never uses 3D labels to choose; the test split's MPJPE is only logged.
    Multi-process: `torchrun --nproc-per-node N -m mvtools train DS --out RUN ...` (gloo on CPU, nccl on CUDA).
    """
    from mvtools.train.loop import train as run_train

    summary = run_train(ds, out, TrainConfig(**options))
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0:
        click.echo(json.dumps(summary))
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
