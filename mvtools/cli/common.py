"""Shared CLI helpers: turning library errors into clear messages and a non-zero exit."""
from __future__ import annotations

import errno
import functools

import click

from mvtools.dataset import DatasetError


def split_list(value: str | None) -> list[str] | None:
    """'S1,S5' -> ['S1', 'S5']; None stays None."""
    if value is None or value == "":
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def friendly_errors(fn):
    """Report DatasetError / ValueError / FileNotFoundError / OSError (e.g. disk full) as 'Error: ...' with exit
    code 1, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (DatasetError, ValueError, FileNotFoundError, KeyError) as e:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else e
            raise click.ClickException(str(msg)) from None
        except OSError as e:  # disk full (ENOSPC), quota, file too large, permissions, I/O errors
            where = f"{e.filename}: " if e.filename else ""
            hint = " (disk full? nothing was committed)" if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) \
                else ""
            raise click.ClickException(f"{where}{e.strerror or e}{hint}") from None

    return wrapper


def overwrite_option(fn):
    """The ``--overwrite`` flag, the same everywhere (mvtools.io.claim_output is the rule it feeds)."""
    from mvtools.io import OVERWRITE_HELP

    return click.option("--overwrite", is_flag=True, help=OVERWRITE_HELP)(fn)
