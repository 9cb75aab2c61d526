"""The ``mvtools`` command group. Subcommands live in their own modules and are imported lazily, so
``mvtools --help`` and light commands never pay for importing torch."""

from __future__ import annotations

import importlib
import os

import click

#: command name -> "module:attribute" of a click.Command
COMMANDS = {
    "synth": "mvtools.cli.synth:synth",
    "ingest": "mvtools.cli.ingest:ingest",
    "calibrate": "mvtools.cli.calibrate:calibrate",
    "triangulate": "mvtools.cli.triangulate:triangulate",
    "augment": "mvtools.cli.augment:augment",
    "train": "mvtools.cli.train:train",
    "evaluate": "mvtools.cli.evaluate:evaluate",
    "predict": "mvtools.cli.predict:predict",
    "demo": "mvtools.cli.demo:demo",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def __init__(self, *args, lazy_commands: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands or {}

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx, name):
        if name in self.lazy_commands:
            module, attr = self.lazy_commands[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="mvtools")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or status lines on stderr.")
def cli(quiet: bool) -> None:
    """mvtools: multi-view human pose data to a self-supervised 2D-to-3D lifting network.

    Units everywhere: millimetres (3D, camera translations), pixels (2D, intrinsics), degrees (angles).
    Typical pipeline: synth/ingest -> calibrate --from-joints [-> triangulate] -> augment --virtual-views 8 -> train
    -> evaluate.
    """
    if quiet:  # for this command only: restored when it ends (a Python caller's later commands are not muted)
        before = os.environ.get("MVTOOLS_QUIET")
        os.environ["MVTOOLS_QUIET"] = "1"
        click.get_current_context().call_on_close(lambda: _restore_env("MVTOOLS_QUIET", before))


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
