"""Generic file helpers: crash-safe writes (temporary sibling + rename), JSON reading with file-naming errors.

Every writer in mvtools goes through these so that a kill leaves either the old file or the new one.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


@contextmanager
def atomic_path(path, suffix: str = ".tmp"):
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block completes, else delete it.

    ``suffix`` keeps an extension some writers insist on (e.g. ``.cdf``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_table_atomic(table: pa.Table, path: Path) -> None:
    """Write a Parquet file via a temporary name in the same directory, then rename."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def save_npz_atomic(path, **arrays) -> Path:
    """``np.savez_compressed`` via a temporary file and rename; returns the path."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    return Path(path)


def write_json_atomic(path, obj) -> None:
    """Write ``obj`` as indented JSON (numpy scalars and arrays allowed) via a temporary file and rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")


def read_json(path, what: str = "file", error: type[Exception] = ValueError):
    """Parsed JSON of ``path``; a missing, unreadable or malformed file raises ``error`` naming the file.
    ``what`` says what the file is for in the messages (e.g. "noise parameters")."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except OSError as e:
        raise error(f"{path}: cannot read {what} ({e.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path}: not valid JSON ({e})") from None


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def swap_into_place(tmp: Path, out: Path) -> None:
    """Rename directory ``tmp`` to ``out``, replacing an existing ``out`` only after ``tmp`` is complete."""
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(out, old)
        try:
            os.rename(tmp, out)
        except BaseException:
            os.rename(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)


@contextmanager
def staged_directory(final: Path):
    """Yield a temporary sibling directory that replaces ``final`` only if the block completes."""
    final = Path(final).absolute()
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        yield tmp
        swap_into_place(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
