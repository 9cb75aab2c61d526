"""Checkpoint files (``last.pt``, ``best.pt``): tensors and plain values only, read with ``weights_only=True``.

A checkpoint is a dict of tensors, strings, numbers, None, lists and dicts - no pickled Python objects - so
loading one never runs code from the file (``torch.load(weights_only=True)`` refuses anything else). RNG states
are stored as uint8 tensors, versions as strings. Keys:

- every checkpoint: ``format`` ("mvtools-checkpoint"), ``format_version`` (2), ``mvtools``/``torch`` (version
  strings), ``kind`` ("last" | "best"), ``config`` (TrainConfig.to_dict()), ``data`` (facts about the data the
  run was trained on: source2d, splits, ...), ``model`` (state dict of both branches), ``epoch`` (epochs done,
  pre-training included), ``phase``;
- ``best.pt``: ``selection`` {metric, value, unit, computed_on, epoch};
- ``last.pt``: ``optimizer``, ``scaler`` (or None), ``perm_generator`` (uint8 tensor), ``rng`` (per process:
  {"torch": uint8 tensor, "cuda": [uint8 tensors]}), ``best``, ``best_epoch``, ``world_size``.

Checkpoints of mvtools before format 2 stored numpy RNG states (pickled objects) in ``last.pt``; they are refused
with the command that converts them (``python -m mvtools.train.checkpoint upgrade PATH``, which must be run only
on a file you wrote yourself, since it reads the file with the unsafe pickle loader). Their ``best.pt`` files hold
only tensors and plain values and load as they are.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import torch

from mvtools.io import atomic_path

FORMAT = "mvtools-checkpoint"
FORMAT_VERSION = 2


def _versions() -> dict:
    from mvtools import __version__

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mvtools": str(__version__),
        "torch": str(torch.__version__),
    }


def save_checkpoint(path, state: dict) -> None:
    """Write ``state`` (tensors and plain values) to ``path`` atomically, with the format and version keys."""
    obj = {**_versions(), **state}
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path) -> dict:
    """Read a checkpoint with ``torch.load(weights_only=True)``; a file holding anything but tensors and plain
    values (a planted pickle payload, or an old-format ``last.pt``) is refused with a ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"{path}: refused - the file holds Python objects other than tensors and plain values, and mvtools "
            f"never unpickles those ({str(e).splitlines()[0][:200]}). A last.pt written by mvtools before checkpoint "
            f"format {FORMAT_VERSION} stored numpy RNG states this way: if you wrote this file yourself, convert it "
            f"with `python -m mvtools.train.checkpoint upgrade {path}`; never do so with a file from elsewhere."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path}: not a readable checkpoint ({str(e).splitlines()[0][:200]})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or not isinstance(ckpt.get("config", {}), dict):
        raise ValueError(f"{path}: not an mvtools checkpoint (no model state / config)")
    return ckpt


# ====================================================================== RNG states as tensors
def rng_state() -> dict:
    """This process's torch RNG states (CPU, and every CUDA device) as uint8 tensors."""
    s = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        s["cuda"] = list(torch.cuda.get_rng_state_all())
    return s


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    if s.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


# ====================================================================== converting old files (trusted only)
def upgrade(path, out=None) -> Path:
    """Rewrite an old-format checkpoint that YOU wrote in format 2 (reads it with the unsafe pickle loader).

    numpy RNG states are dropped (the new trainer does not use numpy's global generator); torch states are
    kept. Returns the path written (``out``, default: ``path`` itself)."""
    path = Path(path)
    old = torch.load(path, map_location="cpu", weights_only=False)  # noqa: S614 - explicit, user-trusted file
    new = {k: v for k, v in old.items() if k not in ("rng", "scheduler")}
    if "rng" in old:
        new["rng"] = [{"torch": s["torch"], **({"cuda": list(s["cuda"])} if "cuda" in s else {})} for s in old["rng"]]
    new.setdefault("kind", "last" if "optimizer" in old else "best")
    save_checkpoint(out or path, new)
    return Path(out or path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m mvtools.train.checkpoint",
        description="Convert a checkpoint written by an older mvtools to the safe format. "
        "Only for files you wrote yourself: reading the old format can run "
        "code stored in the file.",
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("upgrade", help="rewrite PATH (or --out) in checkpoint format 2")
    up.add_argument("path", type=Path)
    up.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    print(upgrade(a.path, a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
