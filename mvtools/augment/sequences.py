"""Per-view 2D sequences next to the pair shards: ``pairs/sequences/<split>.parquet``.

The temporal backbone (``mvtools train --backbone temporal``) needs, for a pair (frame t, view a, view b), the
2D of each view over the frames around t. The pair shards hold only the sampled (frame, view) rows, so ``augment``
also writes every view's whole sequence: one row per (subject, action, subaction, camera, frame), the rows of one
(subject, action, subaction, camera) sequence contiguous and in frame order, so a window is a slice.

Columns: ``subject, action`` string, ``subaction`` int16, ``camera, kind`` string (kind ``real`` | ``virtual``),
``frame`` int32, ``x2d`` float32[34] (undistorted px, the same values as the pair shards' ``x2d_a`` for that
(frame, camera)), ``K`` float32[4] (fx, fy, cx, cy px), ``valid`` bool. A frame where the view has no 2D (no
detection, a virtual view with a joint behind the camera or outside the image) holds the nearest earlier valid
frame's 2D (the first valid one before any) and ``valid = false``; a view without any valid frame in a sequence is
left out. Every frame of the sequence's 3D rows gets a row, and so does every frame missing between them (a gap,
e.g. where ``ingest bvh`` dropped frames the cameras did not see: :func:`dense_frames`), as a frame without 2D,
so that a window of R rows always spans R frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mvtools.camera import Camera, undistort_pixels
from mvtools.dataset import fsl
from mvtools.skeleton import NUM_JOINTS

SEQUENCES_SCHEMA = pa.schema(
    [
        ("subject", pa.string()),
        ("action", pa.string()),
        ("subaction", pa.int16()),
        ("camera", pa.string()),
        ("kind", pa.string()),
        ("frame", pa.int32()),
        ("x2d", pa.list_(pa.float32(), NUM_JOINTS * 2)),
        ("K", pa.list_(pa.float32(), 4)),
        ("valid", pa.bool_()),
    ]
)
ROW_GROUP = 131072


def fill_from_valid(valid: np.ndarray, sequence: np.ndarray | None = None) -> np.ndarray:
    """Row index (N,) per frame: the frame itself if valid, else the nearest earlier valid one (the first valid one
    for leading gaps). ``valid`` (N,) bool. With ``sequence`` (N,) labels (rows of a sequence contiguous, in frame
    order) the rule holds within each sequence, and a sequence without any valid frame gets -1; without it the rows
    are one sequence with at least one valid frame."""
    valid = np.asarray(valid, bool)
    n = len(valid)
    if sequence is None:
        start = np.zeros(1, np.int64)
    else:
        seq = np.asarray(sequence)
        start = np.flatnonzero(np.r_[True, seq[1:] != seq[:-1]]) if n else np.zeros(0, np.int64)
    lengths = np.diff(np.r_[start, n])
    rows = np.arange(n)
    idx = np.maximum.accumulate(np.where(valid, rows, -1)) if n else rows
    first = np.minimum.reduceat(np.where(valid, rows, n), start) if n else start  # each sequence's first valid row
    first = np.where(first < n, first, -1)
    return np.where(idx < np.repeat(start, lengths), np.repeat(first, lengths), idx)


def dense_frames(frame: np.ndarray, sequence: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Time-true rows for sequences with missing frames, so that a temporal window of R rows spans R frames.

    ``frame`` (N,) increasing within each sequence; ``sequence`` (N,) labels with the rows of a sequence contiguous
    (None: one sequence). A sequence's step is the median of its frame differences (1 for every frame, 5 for every
    fifth, 33 for millisecond time stamps at 30 fps); a difference of k >= 2 steps (rounded) means k - 1 missing
    frames, which get rows copying the nearest earlier present row (``fill_from_valid``'s rule for a frame without
    2D). Returns ``pos`` (N,) int64 each row's index among the D dense rows, ``src`` (D,) int64 the row each dense
    row copies, ``frames`` (D,) int64 the dense rows' frame numbers (a missing one: previous + j steps, rounded)."""
    f = np.asarray(frame, np.float64)
    n = len(f)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    seq = np.zeros(n, np.int64) if sequence is None else np.asarray(sequence)
    new = np.r_[True, seq[1:] != seq[:-1]]
    sid = np.cumsum(new) - 1
    d = np.r_[0.0, np.diff(f)]
    inner = ~new & (d > 0)  # a repeated frame number counts as the next frame, never as a step
    med = pd.Series(d[inner]).groupby(sid[inner]).median().reindex(range(int(sid[-1]) + 1)).fillna(1.0).to_numpy()
    step = med[sid]
    k = np.where(new, 1, np.maximum(1, np.floor(d / step + 0.5))).astype(np.int64)
    k[0] = 0
    pos = np.cumsum(k)
    dense = np.arange(pos[-1] + 1)
    src = np.searchsorted(pos, dense, side="right") - 1
    frames = np.floor(f[src] + (dense - pos[src]) * step[src] + 0.5).astype(np.int64)
    return pos, src, frames


def fill_invalid_rows(x: np.ndarray, sequence: np.ndarray) -> np.ndarray:
    """The rule above for rows already grouped by sequence: ``x`` (N, ...) with the rows of a sequence contiguous
    and in frame order, ``sequence`` (N,) labels. A row holding a non-finite value (a keypoint the detector did not
    find) gets a copy of the nearest earlier finite row of its sequence (the first finite one for leading gaps);
    a sequence without any finite row becomes zeros (its outputs cannot be scored). The temporal backbone's input
    at test time (``evaluate``, ``predict``) is filled as ``augment`` fills the training sequences, so a missing
    keypoint never reaches a neighbouring frame's window as NaN. Returns a copy (N, ...)."""
    x = np.asarray(x)
    idx = fill_from_valid(np.isfinite(x).all(axis=tuple(range(1, x.ndim))), sequence)
    out = x[np.maximum(idx, 0)]  # fancy indexing: a copy
    out[idx < 0] = 0  # a sequence without any finite row
    return out


def _repeat(s: str, n: int) -> pa.Array:
    return pa.array([s], pa.string()).take(pa.array(np.zeros(n, np.int64)))


def sequence_table(
    subject: str,
    action: str,
    subaction: int,
    frames: np.ndarray,
    ids: list[str],
    kinds: list[str],
    K: np.ndarray,
    x2d: np.ndarray,
    seen: np.ndarray,
    real: list[Camera],
) -> pa.Table | None:
    """Rows of one sequence for every view: ``x2d`` (N, V, J, 2) px as read (real views still distorted; the
    first ``len(real)`` views are undistorted here with those cameras, on a copy), ``seen`` (N, V) bool, ``K``
    (V, 4), ``frames`` (N,). None when no view has a valid frame."""
    pos, src, frames = dense_frames(frames)  # a frame without 3D rows (a gap) gets rows too: windows stay time-true
    present = np.zeros(len(src), bool)
    present[pos] = True
    x2d, seen = x2d[src], seen[src] & present[:, None]
    parts = []
    for v in range(len(ids)):
        ok = seen[:, v]
        if not ok.any():
            continue
        x = np.array(x2d[:, v], np.float64)
        if v < len(real):
            x[ok] = undistort_pixels(x[ok], real[v])
        x = x[fill_from_valid(ok)].astype(np.float32)
        n = len(frames)
        parts.append(
            pa.table(
                {
                    "subject": _repeat(subject, n),
                    "action": _repeat(action, n),
                    "subaction": pa.array(np.full(n, subaction, np.int16)),
                    "camera": _repeat(ids[v], n),
                    "kind": _repeat(kinds[v], n),
                    "frame": pa.array(np.asarray(frames, np.int32)),
                    "x2d": fsl(x),
                    "K": fsl(np.broadcast_to(np.asarray(K[v], np.float32), (n, 4))),
                    "valid": pa.array(ok),
                },
                schema=SEQUENCES_SCHEMA,
            )
        )
    return pa.concat_tables(parts) if parts else None


class SequenceWriter:
    """Streams sequence tables of one split into ``root/sequences/<split>.parquet`` (row groups of ~ROW_GROUP
    rows; a table is never split, so a sequence stays in one file)."""

    def __init__(self, root: Path, split: str):
        self.root, self.split = Path(root), split
        self.rel = f"sequences/{split}.parquet"
        self._writer: pq.ParquetWriter | None = None
        self._buf: list[pa.Table] = []
        self._buf_rows = self.rows = 0

    def write(self, table: pa.Table | None) -> None:
        if table is None or table.num_rows == 0:
            return
        self._buf.append(table)
        self._buf_rows += table.num_rows
        self.rows += table.num_rows
        if self._buf_rows >= ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        if not self._buf_rows:
            return
        if self._writer is None:
            (self.root / "sequences").mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(
                self.root / self.rel,
                SEQUENCES_SCHEMA,
                compression="zstd",
                use_dictionary=["subject", "action", "camera", "kind"],
            )
        t = pa.concat_tables(self._buf)
        self._writer.write_table(t, row_group_size=t.num_rows)
        self._buf, self._buf_rows = [], 0

    def close(self) -> list[dict]:
        """Finish the file; returns [{"path", "split", "rows"}] (empty when nothing was written)."""
        self._flush()
        if self._writer is None:
            return []
        self._writer.close()
        self._writer = None
        return [{"path": self.rel, "split": self.split, "rows": self.rows}]

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
