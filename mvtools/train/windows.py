"""Temporal windows of 2D: the per-view sequences of ``pairs/sequences/`` (``mvtools.augment.sequences``) as one
tensor, an index from (subject, action, subaction, camera, frame) to its row, and windows gathered by index.

A window of ``rf`` frames around row r is the contiguous slice ``r - rf // 2 .. r + rf // 2`` (causal:
``r - rf + 1 .. r``) of its sequence; frames beyond the sequence's ends replicate the first / last frame, as
VideoPose3D's ``ChunkedGenerator`` pads with ``np.pad(..., 'edge')``. Gathering is one index computation and one
``index_select`` per batch: no Python loop over samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from mvtools.dataset import DatasetError, joints_to_numpy, list_to_numpy
from mvtools.skeleton import NUM_JOINTS

SEQUENCE_KEYS = ["subject", "action", "subaction", "camera"]


@dataclass
class Sequences:
    """M rows of per-view 2D sequences. ``xn`` (M, J, 2) float32 normalised camera coordinates
    ``((u - cx) / fx, (v - cy) / fy)``; ``first`` / ``last`` (M,) int64 the first / last row of each row's
    sequence; ``frame`` (M,) int64; ``runs`` one row per sequence (SEQUENCE_KEYS, ``start``, ``stop``)."""

    xn: torch.Tensor
    first: torch.Tensor
    last: torch.Tensor
    frame: np.ndarray
    runs: pd.DataFrame

    def __len__(self) -> int:
        return self.xn.shape[0]

    def to(self, device) -> Sequences:
        return Sequences(self.xn.to(device), self.first.to(device), self.last.to(device), self.frame, self.runs)

    def rows(self, subject, action, subaction, camera, frame, where: str = "pairs") -> np.ndarray:
        """Row (N,) int64 of each (subject, action, subaction, camera, frame); a DatasetError naming ``where``
        when one is missing."""
        q = pd.DataFrame(
            {
                "subject": np.asarray(subject, object),
                "action": np.asarray(action, object),
                "subaction": np.asarray(subaction, np.int64),
                "camera": np.asarray(camera, object),
            }
        )
        run = q.merge(self.runs.reset_index(names="run"), on=SEQUENCE_KEYS, how="left")["run"].to_numpy()
        if np.isnan(run).any():
            i = int(np.flatnonzero(np.isnan(run))[0])
            raise DatasetError(f"{where}: no 2D sequence for {q.iloc[i].to_dict()} (re-run `mvtools augment`)")
        run = run.astype(np.int64)
        key = (run << 32) | np.asarray(frame, np.int64)
        pos = np.clip(np.searchsorted(self._keys(), key), 0, len(self) - 1)
        bad = self._keys()[pos] != key
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DatasetError(
                f"{where}: frame {int(np.asarray(frame)[i])} of {q.iloc[i].to_dict()} has no row in "
                "the 2D sequences (re-run `mvtools augment`)"
            )
        return pos

    def _keys(self) -> np.ndarray:
        if not hasattr(self, "_key_cache"):
            run = np.repeat(
                np.arange(len(self.runs), dtype=np.int64), (self.runs["stop"] - self.runs["start"]).to_numpy()
            )
            self._key_cache = (run << 32) | self.frame
        return self._key_cache


def sequences_from_arrays(
    meta: pd.DataFrame, frame: np.ndarray, x2d: np.ndarray, K: np.ndarray, where: str = "sequences"
) -> Sequences:
    """Build :class:`Sequences` from rows already grouped by sequence (``meta`` with SEQUENCE_KEYS, frames
    increasing within a sequence), pixels (M, J, 2) and K (M, 4)."""
    m = len(frame)
    frame = np.asarray(frame, np.int64)
    if m == 0:
        raise DatasetError(f"{where}: no rows")
    change = np.zeros(m, bool)
    change[0] = True
    for k in SEQUENCE_KEYS:
        col = meta[k].to_numpy()
        change[1:] |= col[1:] != col[:-1]
    start = np.flatnonzero(change)
    stop = np.r_[start[1:], m]
    inside = ~change[1:]
    if (np.diff(frame)[inside] <= 0).any():
        raise DatasetError(f"{where}: frames are not increasing within a sequence")
    runs = meta.iloc[start][SEQUENCE_KEYS].reset_index(drop=True)
    if runs.duplicated().any():
        raise DatasetError(f"{where}: a sequence's rows are not contiguous")
    runs["start"], runs["stop"] = start, stop
    lengths = stop - start
    first = np.repeat(start, lengths)
    last = np.repeat(stop - 1, lengths)
    xn = (np.asarray(x2d, np.float32) - K[:, None, 2:4].astype(np.float32)) / K[:, None, 0:2].astype(np.float32)
    return Sequences(
        torch.from_numpy(np.ascontiguousarray(xn)), torch.from_numpy(first), torch.from_numpy(last), frame, runs
    )


def load_sequences(pdir, split: str, manifest: dict) -> Sequences:
    """The per-view sequences of ``split`` listed in the pair-shard manifest (``"sequences"``)."""
    pdir = Path(pdir)
    files = [s for s in manifest.get("sequences") or [] if s.get("split") == split]
    if "sequences" not in manifest:
        raise DatasetError(
            f"{pdir / 'manifest.json'}: the pair shards have no per-view 2D sequences, which the "
            "temporal backbone needs; re-run `mvtools augment` with this mvtools"
        )
    if not files:
        raise DatasetError(f"{pdir / 'manifest.json'}: no {split} 2D sequences")
    tables = []
    for s in files:
        path = pdir / s["path"]
        try:
            tables.append(pq.read_table(path, columns=SEQUENCE_KEYS + ["frame", "x2d", "K"]))
        except FileNotFoundError:
            raise DatasetError(f"{path}: listed in {pdir / 'manifest.json'} but missing") from None
        except Exception as e:
            raise DatasetError(f"{path}: not a readable 2D-sequence file ({e})") from None
    parts = []
    for t in tables:
        meta = pd.DataFrame({k: t.column(k).to_numpy(zero_copy_only=False) for k in SEQUENCE_KEYS})
        parts.append(
            (meta, t.column("frame").to_numpy(), joints_to_numpy(t.column("x2d"), 2), list_to_numpy(t.column("K"), 4))
        )
    meta = pd.concat([p[0] for p in parts], ignore_index=True)
    x2d = np.concatenate([p[2] for p in parts])
    K = np.concatenate([p[3] for p in parts])
    if not (np.isfinite(x2d).all() and np.isfinite(K).all()):
        raise DatasetError(f"{pdir / 'sequences'}: {split} 2D sequences hold NaN or infinite values")
    return sequences_from_arrays(meta, np.concatenate([p[1] for p in parts]), x2d, K, str(pdir / "sequences"))


def window_offsets(rf: int, causal: bool, device=None) -> torch.Tensor:
    """Frame offsets (rf,) of a window relative to its target frame: -rf//2 .. rf//2, causal -(rf-1) .. 0."""
    return torch.arange(rf, device=device) - (rf - 1 if causal else rf // 2)


def window_index(rows: torch.Tensor, first: torch.Tensor, last: torch.Tensor, rf: int, causal: bool) -> torch.Tensor:
    """Row indices (B, rf) of the windows around ``rows`` (B,), clamped to each row's sequence [first, last]
    (edge replication)."""
    idx = rows[:, None] + window_offsets(rf, causal, rows.device)[None, :]
    return torch.minimum(torch.maximum(idx, first[rows][:, None]), last[rows][:, None])


def gather_windows(seqs: Sequences, rows: torch.Tensor, rf: int, causal: bool) -> torch.Tensor:
    """Windows (B, rf, J, 2) of normalised 2D around ``rows`` (B,) (on ``seqs``' device)."""
    rows = rows.to(seqs.xn.device)
    idx = window_index(rows, seqs.first, seqs.last, rf, causal)
    return seqs.xn.index_select(0, idx.reshape(-1)).view(len(rows), rf, NUM_JOINTS, 2)


def pad_edges(x: torch.Tensor, rf: int, causal: bool) -> torch.Tensor:
    """A sequence (T, ...) padded by replicating its first / last frame to (T + rf - 1, ...), so that the full-
    sequence form of the temporal model yields one output per frame (VideoPose3D's evaluation padding:
    ``pad + causal_shift`` frames before, ``pad - causal_shift`` after)."""
    pad = rf // 2
    before, after = (2 * pad, 0) if causal else (pad, pad)
    idx = torch.arange(-before, x.shape[0] + after, device=x.device).clamp(0, x.shape[0] - 1)
    return x.index_select(0, idx)


class PairWindows:
    """The windows of both views of every pair of a pair set: rows of view a and view b in ``seqs`` (found once,
    vectorised), gathered per batch. ``meta`` is the pair set's meta dict (subject, action, subaction, cam_a,
    cam_b, frame: (N,) arrays)."""

    def __init__(self, seqs: Sequences, meta: dict, rf: int, causal: bool, where: str = "pairs"):
        self.seqs, self.rf, self.causal = seqs, int(rf), bool(causal)
        keys = [meta[k] for k in ("subject", "action")], meta["subaction"], meta["frame"]
        self.rows_a = torch.from_numpy(seqs.rows(*keys[0], keys[1], meta["cam_a"], keys[2], where))
        self.rows_b = torch.from_numpy(seqs.rows(*keys[0], keys[1], meta["cam_b"], keys[2], where))

    def __len__(self) -> int:
        return len(self.rows_a)

    def to(self, device) -> PairWindows:
        """Sequences on ``device`` (windows are then gathered there: one small index tensor per batch moves)."""
        self.seqs = self.seqs.to(device)
        return self

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows (B, rf, J, 2) of view a and of view b of pairs ``idx`` (B,), on the sequences' device."""
        return (
            gather_windows(self.seqs, self.rows_a[idx], self.rf, self.causal),
            gather_windows(self.seqs, self.rows_b[idx], self.rf, self.causal),
        )
