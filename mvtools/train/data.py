"""Pair shards (docs/architecture.md) -> one contiguous float32 tensor, and batches drawn by index.

All per-pair numbers are packed side by side in a single (N, F) float32 matrix, so a batch is one
``index_select`` (one memory gather) and the named fields are views into it. No per-sample ``__getitem__``.
Under DDP every rank holds the same matrix and takes a disjoint slice of each global batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from mvtools.augment.pairs import check_pairs_version, shard_path
from mvtools.dataset import DatasetError, list_to_numpy
from mvtools.io import read_json
from mvtools.skeleton import NUM_JOINTS

J = NUM_JOINTS
#: column name -> per-pair shape (float32 fixed-size list in the shards)
FIELDS: dict[str, tuple[int, ...]] = {
    "x2d_a": (J, 2),
    "x2d_b": (J, 2),
    "conf_a": (J,),
    "conf_b": (J,),
    "K_a": (4,),
    "K_b": (4,),
    "R_ab": (3, 3),
    "R_ba": (3, 3),
    "t_ab": (3,),
    "t_ba": (3,),
    "y3d_a": (J, 3),
    "y3d_b": (J, 3),
}
#: string columns kept (as numpy object arrays) for reports and plots
META = ("subject", "action", "subaction", "frame", "cam_a", "cam_b", "kind_a", "kind_b")


def _layout() -> dict[str, tuple[int, int, tuple[int, ...]]]:
    out, start = {}, 0
    for name, shape in FIELDS.items():
        width = int(np.prod(shape))
        out[name] = (start, start + width, shape)
        start += width
    return out


LAYOUT = _layout()
WIDTH = max(v[1] for v in LAYOUT.values())


def pairs_dir(ds) -> Path:
    """The pair-shard directory of dataset ``ds`` (``ds/pairs``), or ``ds`` itself if it is one."""
    p = Path(ds)
    if (p / "pairs" / "manifest.json").exists():
        return p / "pairs"
    if (p / "manifest.json").exists():
        try:
            if "shards" in json.loads((p / "manifest.json").read_text()):
                return p
        except json.JSONDecodeError:
            pass
    raise DatasetError(f"{p / 'pairs' / 'manifest.json'}: missing (run `mvtools augment {ds}` first)")


def read_pairs_manifest(pdir) -> dict:
    """The pair-shard manifest (validated) of a ``pairs/`` directory."""
    path = Path(pdir) / "manifest.json"
    if not path.exists():
        raise DatasetError(f"{path}: missing (run `mvtools augment` first)")
    m = read_json(path, "pair-shard manifest", DatasetError)
    check_pairs_version(m, path)
    for key in ("extrinsics", "shards"):
        if key not in m:
            raise DatasetError(f"{path}: lacks {key!r}")
    return m


@dataclass
class Pairs:
    """N pairs packed in ``packed`` (N, WIDTH) float32; ``meta`` holds the string columns (N,) each.
    ``windows``: for temporal backbones, the 2D windows of both views (:class:`mvtools.train.windows.PairWindows`,
    attached after any subsetting); ``batch`` then adds ``win_a`` / ``win_b`` (B, R, J, 2) normalised 2D."""

    packed: torch.Tensor
    meta: dict[str, np.ndarray]
    windows: object = None

    def __len__(self) -> int:
        return self.packed.shape[0]

    def field(self, name: str) -> torch.Tensor:
        """All pairs' ``name`` as (N, *shape) (a view)."""
        s, e, shape = LAYOUT[name]
        return self.packed[:, s:e].reshape(-1, *shape)

    def batch(self, idx: torch.Tensor, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Rows ``idx`` as {field: (B, *shape)} on ``device`` (pinned, non-blocking copy on CUDA)."""
        device = torch.device(device)
        if device.type == "cuda":
            buf = torch.empty((len(idx), WIDTH), dtype=torch.float32, pin_memory=True)
            torch.index_select(self.packed, 0, idx, out=buf)
            rows = buf.to(device, non_blocking=True)
        else:
            rows = self.packed.index_select(0, idx)
        out = unpack(rows)
        if self.windows is not None:
            out["win_a"], out["win_b"] = self.windows.batch(idx)
        return out

    def subset(self, idx: np.ndarray) -> Pairs:
        idx = np.asarray(idx, dtype=np.int64)
        return Pairs(self.packed[torch.from_numpy(idx)].contiguous(), {k: v[idx] for k, v in self.meta.items()})

    def sample(self, max_pairs: int | None, seed: int) -> Pairs:
        """A seeded random subset of at most ``max_pairs`` pairs, in their original order (None: all)."""
        if max_pairs is None or len(self) <= max_pairs:
            return self
        return self.subset(np.sort(np.random.default_rng(seed).choice(len(self), size=max_pairs, replace=False)))

    def sequences(self) -> np.ndarray:
        """Per pair its sequence id 'subject/action/subaction' (N,) object."""
        m = self.meta
        ids = zip(m["subject"], m["action"], m["subaction"], strict=True)
        return np.array([f"{s}/{a}/{u}" for s, a, u in ids], object)

    @classmethod
    def empty(cls) -> Pairs:
        return cls(torch.zeros((0, WIDTH)), {k: np.empty(0, object) for k in META})


def split_sequences(pairs: Pairs, fraction: float, seed: int) -> tuple[Pairs, Pairs, list[str]]:
    """Hold out whole sequences: ``round(fraction * n)`` of the n sequences (at least one when fraction > 0 and
    n >= 2; never all), drawn with ``seed``. Returns (kept pairs, held-out pairs, held-out sequence ids)."""
    seq = pairs.sequences()
    ids = sorted(set(seq.tolist()))
    k = 0
    if fraction > 0 and len(ids) >= 2:
        k = min(len(ids) - 1, max(1, round(fraction * len(ids))))
    held = sorted(np.random.default_rng(seed).choice(ids, size=k, replace=False).tolist()) if k else []
    mask = np.isin(seq, held)
    return pairs.subset(np.flatnonzero(~mask)), pairs.subset(np.flatnonzero(mask)), held


def unpack(rows: torch.Tensor) -> dict[str, torch.Tensor]:
    """Packed rows (B, WIDTH) -> {field: (B, *shape)} views."""
    return {name: rows[:, s:e].reshape(-1, *shape) for name, (s, e, shape) in LAYOUT.items()}


def load_pairs(pdir, split: str, max_pairs: int | None = None, seed: int = 0, manifest: dict | None = None) -> Pairs:
    """Read all shards of ``split`` ('train' or 'test') into one packed tensor.

    ``max_pairs`` keeps a random subset (seeded by ``seed``, in shard order) of at most that many pairs.
    """
    pdir = Path(pdir)
    m = manifest or read_pairs_manifest(pdir)
    shards = [s for s in m["shards"] if s.get("split") == split]
    total = 0
    tables = []
    for s in shards:
        path = shard_path(pdir, s.get("path"))  # stays inside pairs/
        if not path.exists():
            raise DatasetError(f"{path}: shard listed in {pdir / 'manifest.json'} is missing")
        try:
            meta = pq.read_metadata(path)
        except Exception as e:  # pyarrow raises several types for corrupt files
            raise DatasetError(f"{path}: not a readable Parquet file ({e})") from None
        tables.append((path, meta.num_rows))
        total += meta.num_rows
    keep = None
    if max_pairs is not None and 0 < max_pairs < total:
        keep = np.sort(np.random.default_rng(seed).choice(total, size=max_pairs, replace=False))
    n = total if keep is None else len(keep)
    packed = np.empty((n, WIDTH), np.float32)
    meta_cols: dict[str, list] = {k: [] for k in META}
    row0 = out0 = 0
    for path, rows in tables:
        sel = None
        if keep is not None:
            lo, hi = np.searchsorted(keep, [row0, row0 + rows])
            sel = keep[lo:hi] - row0
            row0 += rows
            if len(sel) == 0:
                continue
        else:
            row0 += rows
        t = _read_shard(path)
        if sel is not None:
            t = t.take(sel)
        k = t.num_rows
        for name, (s, e, _) in LAYOUT.items():
            packed[out0 : out0 + k, s:e] = list_to_numpy(t.column(name), e - s)
        for c in META:
            meta_cols[c].append(
                t.column(c).to_numpy(zero_copy_only=False).astype(object)
                if c in t.column_names
                else np.full(k, "", object)
            )
        out0 += k
    if not np.isfinite(packed).all():
        raise DatasetError(f"{pdir}: {split} shards contain NaN or infinite values")
    meta_np = {c: (np.concatenate(v) if v else np.empty(0, object)) for c, v in meta_cols.items()}
    return Pairs(torch.from_numpy(packed), meta_np)


def _read_shard(path: Path):
    try:
        schema = pq.read_schema(path)
    except Exception as e:
        raise DatasetError(f"{path}: not a readable Parquet file ({e})") from None
    missing = [c for c in FIELDS if c not in schema.names]
    if missing:
        raise DatasetError(f"{path}: pair shard lacks column(s) {missing}")
    for name, shape in FIELDS.items():
        typ = schema.field(name).type
        width = int(np.prod(shape))
        if getattr(typ, "list_size", None) != width:
            raise DatasetError(f"{path}: column {name} must be a fixed-size list of {width} floats, got {typ}")
    cols = list(FIELDS) + [c for c in META if c in schema.names]
    return pq.read_table(path, columns=cols)


def epoch_batches(
    n: int, batch_size: int, generator: torch.Generator, rank: int = 0, world_size: int = 1
) -> list[tuple[torch.Tensor, int]]:
    """One epoch of batches: a seeded permutation cut into global batches of ``batch_size`` (the last,
    incomplete one is dropped unless it is the only one); this rank's disjoint slice of each.

    Returns [(local indices, global batch size)]. All ranks must pass generators in the same state.
    """
    perm = torch.randperm(n, generator=generator)
    nb = max(1, n // batch_size)
    out = []
    for b in range(nb):
        idx = perm[b * batch_size : (b + 1) * batch_size]
        out.append((torch.tensor_split(idx, world_size)[rank], len(idx)))
    return out


def flip_pairs(b: dict[str, torch.Tensor], mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mirror the pairs where ``mask`` (B,) is True: both views horizontally about their principal points
    (u -> 2 cx - u), left and right joints swapped, and the pair transform conjugated by M = diag(-1, 1, 1)
    (each camera frame mirrored in its x = 0 plane: R_ab -> M R_ab M, t_ab -> M t_ab), so that eq. 3 still maps
    view a onto view b. Ground truth (evaluation / supervised only) is mirrored the same way. Returns a new dict."""
    from mvtools.skeleton import H36M17_FLIP

    if not bool(mask.any()):
        return b
    perm = torch.as_tensor(H36M17_FLIP)
    m = mask.to(b["x2d_a"].dtype)
    sign = torch.tensor([-1.0, 1.0, 1.0], dtype=b["R_ab"].dtype)
    M = torch.diag(sign)
    out = dict(b)
    for v in ("a", "b"):
        x = b[f"x2d_{v}"][:, perm]
        cx = b[f"K_{v}"][:, None, 2]
        x = torch.stack([2 * cx - x[..., 0], x[..., 1]], -1)
        out[f"x2d_{v}"] = torch.lerp(b[f"x2d_{v}"], x, m[:, None, None])
        out[f"conf_{v}"] = torch.where(mask[:, None], b[f"conf_{v}"][:, perm], b[f"conf_{v}"])
        out[f"y3d_{v}"] = torch.where(mask[:, None, None], b[f"y3d_{v}"][:, perm] * sign, b[f"y3d_{v}"])
        if f"win_{v}" in b:  # temporal windows of normalised 2D: u -> 2 cx - u is x -> -x
            w = b[f"win_{v}"]
            out[f"win_{v}"] = torch.where(
                mask.to(w.device)[:, None, None, None], w[:, :, perm.to(w.device)] * w.new_tensor([-1.0, 1.0]), w
            )
    for k in ("ab", "ba"):
        out[f"R_{k}"] = torch.where(mask[:, None, None], M @ b[f"R_{k}"] @ M, b[f"R_{k}"])
        out[f"t_{k}"] = torch.where(mask[:, None], b[f"t_{k}"] * sign, b[f"t_{k}"])
    return out
