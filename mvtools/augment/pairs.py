"""The pair-shard format (its one owner: version, columns, manifest check; docs/architecture.md), pair sampling
and the shard writer. ``mvtools train`` imports the format from here."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mvtools.camera import relative_transform
from mvtools.dataset import VIEWS, DatasetError, fsl
from mvtools.skeleton import NUM_JOINTS

PAIRS_FORMAT_VERSION = 1
J = NUM_JOINTS
PAIRS_SCHEMA = pa.schema(
    [
        ("subject", pa.string()),
        ("action", pa.string()),
        ("subaction", pa.int16()),
        ("frame", pa.int32()),
        ("cam_a", pa.string()),
        ("cam_b", pa.string()),
        ("kind_a", pa.string()),
        ("kind_b", pa.string()),
        ("x2d_a", pa.list_(pa.float32(), J * 2)),
        ("x2d_b", pa.list_(pa.float32(), J * 2)),
        ("conf_a", pa.list_(pa.float32(), J)),
        ("conf_b", pa.list_(pa.float32(), J)),
        ("K_a", pa.list_(pa.float32(), 4)),
        ("K_b", pa.list_(pa.float32(), 4)),
        ("size_a", pa.list_(pa.float32(), 2)),
        ("size_b", pa.list_(pa.float32(), 2)),
        ("R_ab", pa.list_(pa.float32(), 9)),
        ("R_ba", pa.list_(pa.float32(), 9)),
        ("t_ab", pa.list_(pa.float32(), 3)),
        ("t_ba", pa.list_(pa.float32(), 3)),
        ("y3d_a", pa.list_(pa.float32(), J * 3)),
        ("y3d_b", pa.list_(pa.float32(), J * 3)),
    ]
)
#: String columns; only these are dictionary-encoded (float columns gain nothing from it and write slower).
STRING_COLUMNS = ["subject", "action", "cam_a", "cam_b", "kind_a", "kind_b"]
#: Rows per Parquet row group (smaller than a shard so memory stays bounded while writing).
ROW_GROUP = 131072


def shard_path(pdir, rel) -> Path:
    """``pdir / rel`` for a shard path from ``pairs/manifest.json``; a path that is absolute, not a string or leaves
    ``pdir`` (``..``, symlinks) is refused, so a crafted manifest cannot make a reader open other files."""
    pdir = Path(pdir)
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise DatasetError(f"{pdir / 'manifest.json'}: shard path {rel!r} must be a relative path inside {pdir}")
    p = pdir / rel
    if not Path(os.path.realpath(p)).is_relative_to(os.path.realpath(pdir)):
        raise DatasetError(f"{pdir / 'manifest.json'}: shard path {rel!r} leads outside {pdir}")
    return p


def check_pairs_version(manifest: dict, path) -> None:
    """Raise DatasetError naming ``path`` unless ``manifest`` is of the pair-shard format this mvtools reads."""
    if manifest.get("format_version") != PAIRS_FORMAT_VERSION:
        raise DatasetError(
            f"{path}: format_version {manifest.get('format_version')!r}, this mvtools reads {PAIRS_FORMAT_VERSION}"
        )


def view_pairs(n_views: int, n_real: int, views: str) -> np.ndarray:
    """Unordered view pairs (P, 2), i < j, among the first ``n_real`` views (``views="real"``) or all of them."""
    if views not in VIEWS:
        raise ValueError(f"views must be 'real' or 'all', got {views!r}")
    n = n_real if views == "real" else n_views
    i, j = np.triu_indices(n, k=1)
    return np.stack([i, j], axis=1)


def sample_pairs(avail: np.ndarray, pairs: np.ndarray, k: int, rng: np.random.Generator):
    """Draw up to ``k`` pairs per frame without replacement among the pairs whose two views are available.

    avail (N, V) bool, pairs (P, 2). Each drawn pair is oriented at random (a, b) or (b, a). Frames with fewer than
    k usable pairs give all of them. Returns (frame index (M,), view a (M,), view b (M,)), ordered by frame.
    """
    n = avail.shape[0]
    if n == 0 or len(pairs) == 0:
        e = np.zeros(0, np.int64)
        return e, e, e
    ok = avail[:, pairs[:, 0]] & avail[:, pairs[:, 1]]
    keys = np.where(ok, rng.random(ok.shape), 2.0)
    kk = min(k, len(pairs))
    order = np.argsort(keys, axis=1, kind="stable")[:, :kk]
    rows = np.broadcast_to(np.arange(n)[:, None], order.shape)
    take = ok[rows, order]
    fi, pi = rows[take], order[take]
    swap = rng.random(len(fi)) < 0.5
    a = np.where(swap, pairs[pi, 1], pairs[pi, 0])
    b = np.where(swap, pairs[pi, 0], pairs[pi, 1])
    return fi, a, b


def pair_transforms(R: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paper eq. 4 for every ordered view pair: R (V, 3, 3), t (V, 3) mm -> R_ab (V, V, 3, 3), t_ab (V, V, 3) mm,
    indexed [a, b]."""
    return relative_transform(R[:, None], t[:, None], R[None, :], t[None, :])


def _strings(index: np.ndarray, names: list[str]) -> pa.Array:
    """Strings names[index] built through a dictionary array (no per-row Python objects)."""
    d = pa.DictionaryArray.from_arrays(pa.array(np.asarray(index, np.int32)), pa.array(names, pa.string()))
    return d.cast(pa.string())


def pair_table(
    subject: str,
    action: str,
    subaction: int,
    frames: np.ndarray,
    fi: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    views: dict,
) -> pa.Table:
    """Shard rows for sampled pairs (frame index fi, views a, b) of one sequence.

    ``views`` holds per-view arrays: ``ids`` (V,) str, ``kinds`` (V,) str, ``x2d`` (N, V, J, 2) px,
    ``conf`` (N, V, J), ``y3d`` (N, V, J, 3) mm, ``K`` (V, 4) px, ``size`` (V, 2) px, ``R_ab`` (V, V, 3, 3),
    ``t_ab`` (V, V, 3) mm.
    """
    m = len(fi)
    const = np.zeros(m, np.int32)
    kind_names = ["real", "virtual"]
    kind_idx = np.array([kind_names.index(k) for k in views["kinds"]], np.int32)
    cols = [
        _strings(const, [subject]),
        _strings(const, [action]),
        pa.array(np.full(m, subaction, np.int16)),
        pa.array(np.asarray(frames, np.int32)[fi]),
        _strings(a, list(views["ids"])),
        _strings(b, list(views["ids"])),
        _strings(kind_idx[a], kind_names),
        _strings(kind_idx[b], kind_names),
        fsl(views["x2d"][fi, a]),
        fsl(views["x2d"][fi, b]),
        fsl(views["conf"][fi, a]),
        fsl(views["conf"][fi, b]),
        fsl(views["K"][a]),
        fsl(views["K"][b]),
        fsl(views["size"][a]),
        fsl(views["size"][b]),
        fsl(views["R_ab"][a, b]),
        fsl(views["R_ab"][b, a]),
        fsl(views["t_ab"][a, b]),
        fsl(views["t_ab"][b, a]),
        fsl(views["y3d"][fi, a]),
        fsl(views["y3d"][fi, b]),
    ]
    return pa.Table.from_arrays(cols, schema=PAIRS_SCHEMA)


class ShardWriter:
    """Streams pair tables of one split into ``root/<split>/part-NNNNN.parquet`` files of at most ``shard_rows``
    rows each; holds at most one row group (ROW_GROUP rows) plus the incoming table in memory."""

    def __init__(self, root: Path, split: str, shard_rows: int, row_group: int = ROW_GROUP):
        if shard_rows < 1:
            raise ValueError(f"shard_rows must be >= 1, got {shard_rows}")
        self.root, self.split, self.shard_rows = Path(root), split, int(shard_rows)
        self.row_group = max(1, min(row_group, self.shard_rows))
        self.shards: list[dict] = []
        self._writer: pq.ParquetWriter | None = None
        self._rows = 0  # rows in the current shard (written + buffered)
        self._buf: list[pa.Table] = []
        self._buf_rows = 0

    def write(self, table: pa.Table) -> None:
        while table.num_rows:
            take = table.slice(0, self.shard_rows - self._rows)
            table = table.slice(take.num_rows)
            self._buf.append(take)
            self._buf_rows += take.num_rows
            self._rows += take.num_rows
            if self._buf_rows >= self.row_group or self._rows == self.shard_rows:
                self._flush()
            if self._rows == self.shard_rows:
                self._close_shard()

    def _flush(self) -> None:
        if not self._buf_rows:
            return
        if self._writer is None:
            rel = f"{self.split}/part-{len(self.shards):05d}.parquet"
            (self.root / self.split).mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(
                self.root / rel, PAIRS_SCHEMA, compression="zstd", use_dictionary=STRING_COLUMNS
            )
            self.shards.append({"path": rel, "split": self.split, "rows": 0})
        t = pa.concat_tables(self._buf)
        self._writer.write_table(t, row_group_size=t.num_rows)
        self._buf, self._buf_rows = [], 0

    def _close_shard(self) -> None:
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self.shards[-1]["rows"] = self._rows
        self._writer, self._rows = None, 0

    def close(self) -> list[dict]:
        """Finish the last shard; returns [{"path", "split", "rows"}] for this split."""
        self._close_shard()
        return self.shards

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
