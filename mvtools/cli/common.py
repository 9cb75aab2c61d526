"""Shared CLI helpers: library defaults, the shared options, renamed options, and clear errors.

The CLI owns no defaults or choice lists: :func:`defaults_of` reads them from the library function a command
calls, choice lists are the library's constants (tests/test_contracts.py checks that they agree). The
vocabulary (one word, one meaning in every command) is in docs/cli.md.
"""

from __future__ import annotations

import errno
import functools
import inspect

import click
from click.core import ParameterSource

from mvtools.dataset import DatasetError
from mvtools.devices import DEFAULT_DEVICE, DEVICES


def defaults_of(fn) -> dict:
    """{parameter: default} of a library function's keyword parameters (the one place the CLI takes them from)."""
    return {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def device_option(fn):
    """``--device auto|cpu|cuda`` (default auto: CUDA when available), the same in every command."""
    return click.option(
        "--device",
        type=click.Choice(DEVICES),
        default=DEFAULT_DEVICE,
        show_default=True,
        help="Where to run the network: auto (CUDA when available), cpu or cuda.",
    )(fn)


def test_flip_option(fn):
    """``--test-flip / --no-test-flip`` of evaluate and predict: the run's training option ``--test-flip``
    overridden for this command (default: as the run was trained)."""
    return click.option(
        "--test-flip/--no-test-flip",
        default=None,
        help="Test-time flip averaging: average the lifting of the input and of its mirror image, mirrored back "
        "(VideoPose3D). Default: the run's own --test-flip setting (on for runs trained by this mvtools).",
    )(fn)


def renamed_option(old: str, new: str, param: str, **attrs):
    """The old spelling ``old`` of option ``new`` (parameter ``param``), kept hidden for one release.

    Using it prints a deprecation warning on stderr and sets ``param``; giving both spellings is a usage error.
    ``attrs`` are the old option's click attributes (type, is_flag, ...).
    """
    hidden = f"_renamed_{param}"

    def decorator(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            value = kwargs.pop(hidden)
            if value is not None:
                ctx = click.get_current_context()
                if ctx.get_parameter_source(param) == ParameterSource.COMMANDLINE:
                    raise click.UsageError(f"{old} is the old spelling of {new}: give only {new}")
                click.echo(
                    f"Warning: {old} is deprecated and will be removed in the next release; use {new}.", err=True
                )
                kwargs[param] = value
            return fn(*args, **kwargs)

        return click.option(old, hidden, hidden=True, default=None, help=f"Old spelling of {new}.", **attrs)(wrapper)

    return decorator


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
            hint = " (disk full? nothing was committed)" if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else ""
            raise click.ClickException(f"{where}{e.strerror or e}{hint}") from None

    return wrapper


def overwrite_option(fn):
    """The ``--overwrite`` flag, the same everywhere (mvtools.io.claim_output is the rule it feeds)."""
    from mvtools.io import OVERWRITE_HELP

    return click.option("--overwrite", is_flag=True, help=OVERWRITE_HELP)(fn)
