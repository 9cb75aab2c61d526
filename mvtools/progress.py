"""Progress bars on stderr, quiet when stderr is not a TTY or with ``mvtools --quiet``."""

from __future__ import annotations

import os
import sys

import click


def quiet() -> bool:
    return os.environ.get("MVTOOLS_QUIET") == "1" or not sys.stderr.isatty()


def progress(iterable=None, length: int | None = None, label: str = ""):
    """A click progress bar on stderr (use as a context manager); a no-op wrapper when quiet."""
    if quiet():
        return _Silent(iterable, length)
    return click.progressbar(iterable, length=length, label=label, file=sys.stderr, show_pos=True, show_eta=True)


class _Silent:
    def __init__(self, iterable, length):
        self.iterable = iterable if iterable is not None else range(length or 0)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def __iter__(self):
        return iter(self.iterable)

    def update(self, n, current_item=None):
        pass


def log(msg: str) -> None:
    """A status line on stderr (always shown, unless --quiet)."""
    if os.environ.get("MVTOOLS_QUIET") != "1":
        click.echo(msg, err=True)
