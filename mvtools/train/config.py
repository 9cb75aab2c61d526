"""``TrainConfig``: the one home of every training option - its default, unit, range and help text.

The ``mvtools train`` command is generated from it (:mod:`mvtools.cli.train`; a test checks that they agree),
``config.json`` in a run directory is its serialisation (:meth:`TrainConfig.to_dict`, plus facts about the data
under ``"derived"``), and checkpoints carry the same plain dict.

Each field has a *role*:

- ``run``: decides the result; ``--resume`` must be given the same value.
- ``runtime``: how the run executes (device, threads, precision); recorded, may differ on ``--resume`` (a different
  thread count or device may change the last bits of the result).
- ``invocation``: what this call does (resume, stop early, plots); not recorded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields

ROLES = ("run", "runtime", "invocation")


def option(
    default,
    help: str,
    *,
    unit: str | None = None,
    type=None,
    choices=None,
    min=None,
    max=None,
    max_open: bool = False,
    cli: str | None = None,
    role: str = "run",
    registry: str | None = None,
):
    """A dataclass field with the metadata the CLI and the docs are generated from.

    ``type``: the Python type of the value (default: the default's type); ``choices``: allowed strings, or
    ``registry`` ('loss' | 'backbone') to take them from the registries at use time; ``min``/``max``: inclusive
    bounds (``max_open``: max excluded); ``cli``: the option name when it is not ``--field-name``."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    meta = dict(
        help=help,
        unit=unit,
        type=type or _type_of(default),
        choices=choices,
        min=min,
        max=max,
        max_open=max_open,
        cli=cli,
        role=role,
        registry=registry,
    )
    return field(default=default, metadata=meta)


def _type_of(default):
    if default is None:
        raise TypeError("an option whose default is None needs an explicit type")
    return bool if isinstance(default, bool) else type(default)


@dataclass
class TrainConfig:
    """Every option of ``mvtools train`` (see the field help texts; units in brackets)."""

    # ------------------------------------------------------------------ what is learnt
    loss: str = option(
        "trans-reproj",
        "Training loss of the main phase. trans-reproj: eq. 7 (L_reproj + lambda "
        "L_t-reproj, px^2); reproj: eq. 2 alone (px^2); supervised: MPJPE against the 3D ground "
        "truth (mm; the upper bound, no pre-training).",
        registry="loss",
    )
    lam: float = option(
        2.0,
        "Weight of L_t-reproj in eq. 7 (both terms are px^2; the paper tunes it per dataset, "
        "2 measured best on CMU and synthetic data, docs/method.md).",
        unit="dimensionless",
        min=0.0,
        cli="lambda",
    )
    penalty: str = option(
        "squared",
        "Penalty of each joint's pixel residual in L_reproj / L_t-reproj: squared "
        "(the paper), huber (squared up to --penalty-px, then linear) or geman-mcclure (saturates "
        "at --penalty-px^2): robust to detector outliers and left/right swaps.",
        choices=("squared", "huber", "geman-mcclure"),
    )
    penalty_px: float = option(
        15.0, "Scale of the robust penalty: residuals beyond it count less than squared.", unit="px", min=0.0, max=1e4
    )
    root_weight: float = option(
        16.0,
        "Weight of the root joint's (pelvis') terms in L_reproj / L_t-reproj, "
        "relative to the other joints' (1 = the paper; 16 = as much as the 16 others "
        "together). The root branch and the lifting branch can trade the pelvis' place "
        "within the body, and only the pelvis' own terms see it (docs/method.md).",
        min=0.0,
    )
    bone_symmetry: float = option(
        0.0,
        "Weight of the label-free bone-symmetry regulariser: sum over left/right "
        "bone pairs of (|left| - |right|)^2 (mm^2), added to the loss (0 = off).",
        unit="px^2 per mm^2",
        min=0.0,
    )
    flip: bool = option(
        False,
        "Training augmentation: mirror a random half of each batch's pairs (both views "
        "about their principal points, left/right swapped, pair transform conjugated).",
    )
    test_flip: bool = option(
        True,
        "Test-time flip averaging in evaluate / predict: average the lifting of the "
        "input and of its mirror image, mirrored back (VideoPose3D).",
    )
    backbone: str = option(
        "reslinear",
        "Network of both branches (reslinear: Martinez et al. 2017, one frame; "
        "temporal: VideoPose3D's dilated temporal convolutions over --receptive-field frames).",
        registry="backbone",
    )
    receptive_field: int = option(
        27,
        "Frames of 2D the temporal backbone sees per output frame: a power of 3 (9, 27, 81, 243: "
        "2-5 convolution layers; 27 is VideoPose3D's default, the paper's Table 2 uses 243, "
        "which overfits small training sets: docs/benchmarks.md). Ignored by reslinear.",
        unit="frames",
        min=9,
    )
    causal: bool = option(
        False,
        "Temporal backbone: causal convolutions (the output belongs to the last frame "
        "of the window, no look-ahead; for real-time use) instead of the centre frame.",
    )
    channels: int = option(
        1024, "Width of every hidden layer of both branches (linear units; temporal: convolution channels).", min=1
    )
    blocks: int = option(
        4,
        "Residual blocks per branch (each 2 x linear, BatchNorm, ReLU, dropout; reslinear "
        "only: the temporal backbone's depth follows from --receptive-field).",
        min=0,
    )
    dropout: float = option(
        0.1,
        "Dropout probability after every hidden layer of the lifting branch (Martinez et "
        "al. use 0.5, VideoPose3D 0.25; 0.1 measured best here for both backbones, "
        "docs/benchmarks.md).",
        min=0.0,
        max=1.0,
        max_open=True,
    )
    root_dropout: float = option(
        0.0,
        "Dropout probability in the root-position branch (its depth enters every "
        "projection, so dropout noise there becomes pixel noise in the loss; docs/method.md).",
        min=0.0,
        max=1.0,
        max_open=True,
    )
    # ------------------------------------------------------------------ budget and schedule
    epochs: int = option(
        300,
        "Main-phase epochs (the budget; the learning-rate schedule is laid out over the phase's optimiser steps).",
        unit="epochs",
        min=1,
    )
    pretrain_epochs: int = option(
        20, "Pre-training epochs with eq. 6 (global-pose consistency, mm^2).", unit="epochs", min=0
    )
    lr: float = option(1e-3, "Adam learning rate at the top of the schedule (both phases).", min=0.0)
    warmup_steps: int = option(
        300,
        "Optimiser steps at the start of each phase over which the learning rate "
        "rises linearly to --lr (0 = off; at most a tenth of the phase). Keeps a fresh Adam "
        "from throwing wide networks out of the pre-trained state (docs/method.md).",
        unit="steps",
        min=0,
    )
    lr_step: int = option(
        None,
        "Main-phase decay period: x0.1 every this many epochs (default: a third of the "
        "main phase, counted in optimiser steps).",
        unit="epochs",
        type=int,
        min=1,
    )
    batch_size: int = option(
        0,
        "Pairs per global batch (all DDP processes together). 0 = auto: the largest of "
        "1024, 512, 256, 128, 64 that gives each epoch at least 128 optimiser steps (a small "
        "dataset gets more, smaller steps; Human3.6M-sized ones VideoPose3D's 1024).",
        unit="pairs",
        min=0,
    )
    # ------------------------------------------------------------------ data
    seed: int = option(0, "Seed of weights, batch order, dropout and the held-out split.")
    max_pairs: int = option(
        None, "Train on a random subset of at most this many pairs (default: all).", unit="pairs", type=int, min=1
    )
    heldout_fraction: float = option(
        0.1,
        "Fraction of the TRAINING subjects' sequences (whole sequences) held "
        "out of training to choose best.pt, label-free for self-supervised losses "
        "(0 = none: best.pt is the last epoch).",
        min=0.0,
        max=0.5,
    )
    val_max_pairs: int = option(
        20000, "At most this many held-out pairs are scored per epoch (0 = all).", unit="pairs", min=0
    )
    test_max_pairs: int = option(
        20000,
        "Test-split pairs whose MPJPE is logged per epoch, for information only "
        "(it chooses nothing; 0 = do not read the test split).",
        unit="pairs",
        min=0,
    )
    extrinsics: str = option(
        None,
        "Expected calibration of the shards' relative transforms (mm); an error if "
        "the shards were built with the other one (default: accept the shards').",
        type=str,
        choices=("given", "estimated"),
    )
    # ------------------------------------------------------------------ how it runs
    device: str = option(
        "auto", "Where to train; auto = CUDA when available.", choices=("auto", "cpu", "cuda"), role="runtime"
    )
    threads: int = option(
        0,
        "torch CPU threads per process. 0 = measure: the faster of 1 and all available "
        "cores for this model and batch, timed at the start (on a shared machine "
        "one thread can be 7-17x faster than all; a resumed run keeps its count).",
        min=0,
        role="runtime",
    )
    amp: str = option("off", "Mixed-precision autocast (CUDA only).", choices=("off", "bf16", "fp16"), role="runtime")
    compile: bool = option(False, "Wrap the model in torch.compile.", role="runtime")
    # ------------------------------------------------------------------ this call
    resume: bool = option(
        False,
        "Continue the run from its last.pt (same options; the result is bit-identical "
        "to an uninterrupted run). A run killed before its first checkpoint starts afresh.",
        role="invocation",
    )
    stop_after: int = option(
        None,
        "Stop after this many epochs in total (pre-training included), leaving a resumable run.",
        unit="epochs",
        type=int,
        min=1,
        role="invocation",
    )
    plots: bool = option(True, "Write the PNG plots at the end.", role="invocation")

    # ------------------------------------------------------------------ (de)serialisation and checks
    def to_dict(self, roles=("run", "runtime")) -> dict:
        """The options of the given roles as a plain dict (what config.json and checkpoints store)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata["role"] in roles}

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> TrainConfig:
        """Inverse of :meth:`to_dict`. Keys that are not options (e.g. ``derived``, or facts older mvtools
        versions stored beside the options) are ignored; missing options take their defaults."""
        if not isinstance(d, dict):
            raise ValueError(f"{source}: training configuration must be a JSON object")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def replace(self, **changes) -> TrainConfig:
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(f"unknown training option(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)

    def validate(self) -> TrainConfig:
        """Raise ValueError naming the option for any value outside its range or choices; returns self."""
        for f in fields(self):
            v, m = getattr(self, f.name), f.metadata
            name = "--" + (m["cli"] or f.name.replace("_", "-"))
            if v is None:
                if f.default is not None:
                    raise ValueError(f"{name} must be given")
                continue
            if not _type_ok(v, m["type"]):
                raise ValueError(f"{name} must be a {m['type'].__name__}, got {v!r}")
            allowed = choices(f)
            if allowed is not None and v not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {v!r}")
            if m["min"] is not None and v < m["min"]:
                raise ValueError(f"{name} must be >= {m['min']}, got {v!r}")
            if m["max"] is not None and (v >= m["max"] if m["max_open"] else v > m["max"]):
                raise ValueError(f"{name} must be {'<' if m['max_open'] else '<='} {m['max']}, got {v!r}")
        return self


def _type_ok(v, t) -> bool:
    if t is bool or isinstance(v, bool):
        return t is bool and isinstance(v, bool)
    if t is float:
        return isinstance(v, (int, float))
    return isinstance(v, t)


def choices(f: dataclasses.Field) -> tuple[str, ...] | None:
    """The allowed values of a string option (from the loss / backbone registries where the field says so)."""
    reg = f.metadata["registry"]
    if reg == "loss":
        from mvtools.train.losses import main_losses

        return tuple(main_losses())
    if reg == "backbone":
        from mvtools.train.model import BACKBONES

        return tuple(BACKBONES)
    return f.metadata["choices"]


def option_fields(roles=ROLES) -> list[dataclasses.Field]:
    """The fields of :class:`TrainConfig` of the given roles, in declaration order."""
    return [f for f in fields(TrainConfig) if f.metadata["role"] in roles]


def run_keys() -> tuple[str, ...]:
    """Options that define a run (``--resume`` must be given the same values)."""
    return tuple(f.name for f in option_fields(("run",)))


def options_markdown() -> str:
    """The option table of docs/training.md, generated from the fields (a test keeps the docs in step)."""
    lines = ["| option | default | unit | meaning |", "|---|---|---|---|"]
    for f in option_fields():
        m = f.metadata
        name = "--" + (m["cli"] or f.name.replace("_", "-"))
        if m["type"] is bool:
            name = f"{name} / --no-{name[2:]}"
        default = (
            "-"
            if f.default is None
            else ("on" if f.default is True else "off" if f.default is False else str(f.default))
        )
        allowed = choices(f)
        meaning = m["help"] + (f" Choices: {', '.join(allowed)}." if allowed and m["registry"] is None else "")
        lines.append(f"| `{name}` | {default} | {m['unit'] or ''} | {meaning.replace('|', '/')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(options_markdown())
