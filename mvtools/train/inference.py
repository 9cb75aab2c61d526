"""Using a trained run: load its lifting branch from a checkpoint and lift 2D joints to root-relative 3D.

Used by ``evaluate``, ``predict`` and the training plots (nothing here imports the training loop).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mvtools.skeleton import H36M17_FLIP, NUM_JOINTS
from mvtools.train.checkpoint import load_checkpoint
from mvtools.train.config import TrainConfig
from mvtools.train.model import LiftingNet, build_model, normalise_2d

#: facts older checkpoints stored beside the options in ``config`` (format 1)
_LEGACY_DATA_KEYS = ("dataset", "pairs", "source2d", "views", "virtual_views", "splits", "world_size", "device")


@dataclass
class LoadedRun:
    """A run's lifting branch (eval mode), its options, data facts and which checkpoint was read.

    ``checkpoint``: {path, which, epoch, phase, selection} - ``selection`` says how best.pt was chosen
    (metric, value, unit, computed_on), or that the file is the last epoch."""

    lift: LiftingNet | FlipAveraged
    config: TrainConfig
    data: dict = field(default_factory=dict)
    checkpoint: dict = field(default_factory=dict)


def checkpoint_path(run, which: str = "best") -> tuple[Path, str]:
    """``which`` = 'best' (best.pt, else last.pt), 'last', or a .pt path -> (path, what it is)."""
    run = Path(run)
    if which in ("best", "last"):
        path = run / f"{which}.pt"
        if which == "best" and not path.exists() and (run / "last.pt").exists():
            return run / "last.pt", "last (the run has no best.pt)"
        if not path.exists():
            raise ValueError(f"{path}: no checkpoint (is {run} a training run directory?)")
        return path, which
    return Path(which), "file"


def load_run(run, which: str = "best", device: str | torch.device = "cpu", test_flip: bool | None = None) -> LoadedRun:
    """Load ``run``'s lifting branch from ``which`` (see :func:`checkpoint_path`); files are read with
    ``weights_only=True`` (:func:`mvtools.train.checkpoint.load_checkpoint`). ``test_flip``: wrap it in
    :class:`FlipAveraged` (None: as the run was trained to be used, ``--test-flip``; checkpoints written before
    the option existed: off). ``config.test_flip`` is the setting in effect."""
    path, what = checkpoint_path(run, which)
    ckpt = load_checkpoint(path)
    stored = ckpt.get("config") or {}
    cfg = TrainConfig.from_dict(stored, str(path))
    if test_flip is not None or "test_flip" not in stored:
        cfg = cfg.replace(test_flip=bool(test_flip))
    data = ckpt.get("data") or {k: stored[k] for k in _LEGACY_DATA_KEYS if k in stored}
    try:
        model = build_model(cfg)
        model.load_state_dict(ckpt["model"])
    except (KeyError, RuntimeError, ValueError) as e:
        raise ValueError(
            f"{path}: model weights do not fit the stored configuration ({str(e).splitlines()[0][:300]})"
        ) from None
    selection = ckpt.get("selection")
    if selection is None:
        if ckpt.get("kind") == "last" or what.startswith("last"):
            selection = {"metric": "last epoch"}
        else:
            selection = {"metric": "unknown (checkpoint written by an older mvtools)"}
    info = {
        "path": str(path),
        "which": what,
        "epoch": ckpt.get("epoch"),
        "phase": ckpt.get("phase"),
        "selection": selection,
    }
    lift = FlipAveraged(model.lift) if cfg.test_flip else model.lift
    return LoadedRun(lift.to(device).eval(), cfg, data, info)


def load_lifter(run, which: str = "best", device: str | torch.device = "cpu", test_flip: bool | None = None):
    """``(lift, dict)``: the lifting branch (eval mode) and the run's options plus data facts (flat dict)."""
    r = load_run(run, which, device, test_flip)
    return r.lift, {**r.config.to_dict(), **r.data}


def flip_2d(xn: torch.Tensor) -> torch.Tensor:
    """Mirror normalised 2D (..., J, 2) about the optical axis (x -> -x) and swap left and right joints."""
    return xn[..., torch.as_tensor(H36M17_FLIP), :] * xn.new_tensor([-1.0, 1.0])


def flip_3d(Y: torch.Tensor) -> torch.Tensor:
    """Mirror camera-frame 3D (..., J, 3) in the x = 0 plane and swap left and right joints."""
    return Y[..., torch.as_tensor(H36M17_FLIP), :] * Y.new_tensor([-1.0, 1.0, 1.0])


class FlipAveraged(torch.nn.Module):
    """A lifting branch with test-time flip averaging: the mean of its output for the input and, mirrored back,
    for the mirrored input (``--test-flip``; VideoPose3D's test-time augmentation)."""

    def __init__(self, lift: torch.nn.Module):
        super().__init__()
        self.lift = lift

    def forward(self, xn: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.lift(xn) + flip_3d(self.lift(flip_2d(xn))))

    @property
    def net(self):
        return self.lift.net

    def receptive_field(self) -> int:
        return self.lift.receptive_field()

    def forward_sequence(self, xs: torch.Tensor) -> torch.Tensor:
        """Temporal backbones: whole padded sequences, flip-averaged frame by frame."""
        return 0.5 * (self.lift.forward_sequence(xs) + flip_3d(self.lift.forward_sequence(flip_2d(xs))))


@torch.no_grad()
def lift_2d(
    lift,
    x2d: torch.Tensor,
    K: torch.Tensor,
    device="cpu",
    chunk: int = 16384,
    flip: bool = False,
    sequence: np.ndarray | None = None,
    frame: np.ndarray | None = None,
) -> np.ndarray:
    """Lifting branch in eval mode: undistorted pixels (N, J, 2), K (N, 4) [fx, fy, cx, cy] -> root-relative
    (N, J, 3) mm, numpy float64. ``flip``: average with the prediction for the mirrored input, mirrored back
    (test-time flip augmentation as in VideoPose3D).

    Temporal backbones (receptive field R > 1) need ``sequence`` (N,): a sequence label per row, rows in frame
    order within each sequence; every sequence is padded by replicating its first / last frame and lifted in
    one pass (:func:`mvtools.train.temporal.lift_sequences`). With ``frame`` (N,) frame numbers, frames missing
    from a sequence are re-inserted as copies of the nearest earlier row (:func:`mvtools.augment.sequences.
    dense_frames`, the rule of the training sequences), so that a window spans as many frames as in training.
    Single-frame backbones ignore both."""
    rf = lift.receptive_field() if hasattr(lift, "receptive_field") else 1
    was = lift.training
    lift.eval()
    try:
        if rf > 1:
            return _lift_sequences(lift, x2d, K, device, chunk, flip, sequence, rf, frame)
        outs = []
        for s in range(0, len(x2d), chunk):
            xn = normalise_2d(x2d[s : s + chunk].to(device).float(), K[s : s + chunk].to(device).float())
            y = lift(xn)
            if flip:
                y = 0.5 * (y + flip_3d(lift(flip_2d(xn))))
            outs.append(y.double().cpu())
    finally:
        lift.train(was)
    return torch.cat(outs).numpy() if outs else np.zeros((0,) + tuple(x2d.shape[1:-1]) + (3,))


def _lift_sequences(lift, x2d, K, device, chunk, flip, sequence, rf, frame=None) -> np.ndarray:
    from mvtools.train.temporal import lift_sequences

    if sequence is None:
        raise ValueError(
            f"a temporal model ({rf} frames per output) lifts whole sequences: pass a sequence label per row"
        )
    if len(sequence) != len(x2d):
        raise ValueError(f"{len(sequence)} sequence labels for {len(x2d)} rows")
    if len(x2d) == 0:
        return np.zeros((0,) + tuple(x2d.shape[1:-1]) + (3,))
    causal = bool(getattr(lift.net, "causal", False))
    xn = normalise_2d(x2d.to(device).float(), K.to(device).float())
    at = None
    if frame is not None:  # time-true windows: frames missing from a sequence re-inserted
        if len(frame) != len(x2d):
            raise ValueError(f"{len(frame)} frame numbers for {len(x2d)} rows")
        from mvtools.augment.sequences import dense_frames

        codes = np.unique(np.asarray(sequence), return_inverse=True)[1].reshape(-1)
        order = np.lexsort((np.asarray(frame), codes))
        pos, src, _ = dense_frames(np.asarray(frame)[order], codes[order])
        rows = order[src]  # dense row -> input row
        xn, sequence = xn.index_select(0, torch.from_numpy(rows).to(xn.device)), codes[rows]
        at = np.empty(len(order), np.int64)
        at[order] = pos  # input row -> dense row
    y = lift_sequences(lift.forward_sequence, xn, sequence, rf, causal, chunk)
    if flip:
        y = 0.5 * (y + flip_3d(lift_sequences(lift.forward_sequence, flip_2d(xn), sequence, rf, causal, chunk)))
    if at is not None:
        y = y[torch.from_numpy(at).to(y.device)]
    return y.double().cpu().numpy()


@torch.no_grad()
def lift_view_a(lift, pairs, idx: torch.Tensor, device="cpu", chunk: int = 4096) -> np.ndarray:
    """The lifting branch's root-relative 3D (len(idx), J, 3) mm, float64, for view a of pairs ``idx`` (a
    :class:`mvtools.train.data.Pairs`): single frames, or the pairs' 2D windows for temporal backbones."""
    win = getattr(pairs, "windows", None)
    if win is None:
        return lift_2d(lift, pairs.field("x2d_a")[idx], pairs.field("K_a")[idx], device)
    from mvtools.train.windows import gather_windows

    was = lift.training
    lift.eval()
    outs = [
        lift(gather_windows(win.seqs, win.rows_a[idx[s : s + chunk]], win.rf, win.causal)).double().cpu()
        for s in range(0, len(idx), chunk)
    ]
    lift.train(was)
    return torch.cat(outs).numpy() if outs else np.zeros((0, NUM_JOINTS, 3))


#: the former name (mvtools <= 0.1 used it from the training loop)
predict_relative = lift_2d
