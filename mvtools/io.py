"""Generic file helpers: crash-safe writes (temporary sibling + rename), JSON reading with file-naming errors,
the output guard every directory-writing command goes through, and the atomic directory swap.

Every writer in mvtools goes through these so that a kill leaves either the old file or the new one
(docs/reliability.md).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import pickle
import shutil
import time
import uuid
import zipfile
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


@contextmanager
def naming_os_errors(where):
    """Re-raise an OSError that names no file (pyarrow's "No space left on device", ...) as one naming ``where``."""
    try:
        yield
    except OSError as e:
        if e.filename or isinstance(e, (FileNotFoundError, OutputError)):
            raise
        raise OSError(e.errno, e.strerror or str(e), str(where)) from None


def pause_point(name: str) -> None:
    """Test hook: when ``MVTOOLS_TEST_PAUSE_AT`` equals ``name``, say so on stderr and sleep (to be SIGKILLed by a
    fault-injection test at a named commit point). Does nothing otherwise."""
    if os.environ.get("MVTOOLS_TEST_PAUSE_AT") == name:
        os.write(2, f"MVTOOLS_PAUSED {name}\n".encode())
        time.sleep(600)


# ----------------------------------------------------------------------------- atomic directory swap
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _renameat2(src, dst, flags: int) -> bool:
    """Linux renameat2(2); False where the C library, kernel or file system lacks it."""
    if os.environ.get("MVTOOLS_NO_RENAME_EXCHANGE"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    e = ctypes.get_errno()
    if e in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(e, os.strerror(e), str(dst))


def swap_into_place(tmp: Path, out: Path) -> None:
    """Make complete directory ``tmp`` the directory ``out``, atomically.

    A new ``out`` is one rename. An existing ``out`` is exchanged with ``tmp`` in one ``renameat2(RENAME_EXCHANGE)``
    call, so every observer and every kill sees the old directory or the new one; the old one (now at ``tmp``) is
    then deleted (a kill before that leaves a hidden ``.NAME.tmp-*`` that :func:`claim_output` removes). Without
    RENAME_EXCHANGE (not Linux, or a file system without it) two renames are used: ``out`` -> ``.NAME.old-*``,
    ``tmp`` -> ``out``; a kill between them leaves no ``out`` but the ``.old-*`` directory, which
    :func:`recover_output` (run by :func:`claim_output` and :func:`staged_directory`) renames back."""
    tmp, out = Path(tmp), Path(out)
    if not os.path.lexists(out):
        os.rename(tmp, out)
        return
    if _renameat2(tmp, out, _RENAME_EXCHANGE):
        pause_point("swap:exchanged")
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(out, old)
    pause_point("swap:between-renames")
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def recover_output(out) -> list[str]:
    """Repair what a killed run left beside ``out``: a fallback swap killed between its two renames (``out``
    missing, ``.NAME.old-*`` present) gets its old directory back; leftover ``.NAME.tmp-*`` staging directories
    and ``.NAME.old-*`` directories are removed. Call only while holding ``out``'s lock. Returns what was done."""
    out = Path(out).absolute()
    done = []
    if not out.parent.is_dir():
        return done
    olds = sorted(out.parent.glob(f".{glob_escape(out.name)}.old-*"), key=lambda p: p.stat().st_mtime)
    if olds and not os.path.lexists(out):
        os.rename(olds.pop(), out)
        done.append(f"restored {out} from an interrupted swap")
    for p in olds + list(out.parent.glob(f".{glob_escape(out.name)}.tmp-*")):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)
        done.append(f"removed {p.name} left by an interrupted run")
    return done


def recover_if_interrupted(out) -> bool:
    """For readers: if ``out`` is missing because a fallback swap was killed between its renames, take its lock and
    put the old directory back (:func:`recover_output`). Returns whether anything was restored."""
    out = Path(out).absolute()
    if os.path.lexists(out) or not any(out.parent.glob(f".{glob_escape(out.name)}.old-*")):
        return False
    with lock_output(out):  # fails at once if a writer is in the middle of it
        return bool(recover_output(out))


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


# ----------------------------------------------------------------------------- the output guard
class OutputError(ValueError):
    """An output that mvtools refuses to write (it would destroy data, or another process is writing it)."""


def _is_dataset(m) -> bool:
    p = m.get("producer")
    return (
        "format_version" in m
        and isinstance(p, dict)
        and "mvtools_version" in p
        and m.get("kind", "dataset") == "dataset"
    )


#: Kinds of mvtools outputs: marker file -> test of its JSON content (docs/reliability.md).
OUTPUT_KINDS = {
    "dataset": ("manifest.json", _is_dataset),
    "synth-h36m": ("synth.json", lambda m: m.get("generator") == "mvtools synth h36m"),
    "run": ("config.json", lambda m: m.get("mvtools_output") == "run" or "loss" in m and "pretrain_epochs" in m),
    "demo": ("demo.json", lambda m: m.get("mvtools_output") == "demo"),
}


#: File outputs whose existing file must be an mvtools output of that kind to be replaced (with --overwrite):
#: kind -> test of the file's JSON content.
FILE_KINDS = {
    "evaluation": lambda m: m.get("mvtools_output") == "evaluation" or {"run", "dataset", "mpjpe", "units"} <= set(m),
}


def _json_object(path) -> dict | None:
    """The JSON object in ``path``, or None when it is unreadable, not JSON or not an object."""
    try:
        m = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return m if isinstance(m, dict) else None


def output_kind(path) -> str | None:
    """The kind of mvtools output directory ``path`` is (a key of :data:`OUTPUT_KINDS`), or None."""
    for kind, (name, test) in OUTPUT_KINDS.items():
        m = _json_object(Path(path) / name)
        if m is not None and test(m):
            return kind
    return None


OVERWRITE_HELP = (
    "Replace an existing output, but only one that mvtools wrote and of the same kind (an earlier "
    "dataset, run, ...); anything else is always refused. Without it an existing output is an error."
)


def check_not_input(out, inputs) -> None:
    """Refuse an output that equals, contains or lies inside one of ``inputs`` (paths; None entries ignored)."""
    real = Path(os.path.realpath(out))
    for i in inputs:
        if i is None:
            continue
        ri = Path(os.path.realpath(i))
        how = (
            "is" if real == ri else "contains" if real in ri.parents else "lies inside" if ri in real.parents else None
        )
        if how:
            raise OutputError(
                f"{out}: the output {how} the input {i}; writing it would destroy the input. "
                "Choose another output path."
            )


class OutputClaim:
    """The lock on one output path, held from the checks until the output is committed (:func:`claim_output`)."""

    def __init__(self, out: Path, lock: Path, fd: int):
        self.out, self.lock, self._fd = out, lock, fd

    def release(self) -> None:
        """Drop the lock and remove the lock file (safe: :func:`lock_output` re-checks the inode it locked)."""
        if self._fd is not None:
            try:
                self.lock.unlink()
            except OSError:
                pass
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


def lock_output(out) -> OutputClaim:
    """Take the exclusive lock ``.NAME.lock`` beside ``out`` (fcntl.flock), or fail at once if it is held.

    The lock file is removed on release; a process that locked a file which was removed meanwhile notices (its
    descriptor's inode is no longer the path's) and tries again, so two processes never both hold the lock."""
    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = out.parent / f".{out.name}.lock"
    for _ in range(100):
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputError(
                f"{out}: another mvtools process is writing this output (lock {lock} is held); wait for it to finish"
            ) from None
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return OutputClaim(out, lock, fd)
        os.close(fd)
    raise OutputError(f"{out}: cannot take the lock {lock}")


def claim_output(
    out, kind: str, inputs=(), overwrite: bool = False, in_place: bool = False, file: bool = False
) -> OutputClaim:
    """The one guard of every command that writes ``out``. Checks, then locks, then cleans up; returns the lock.

    - ``out`` must not equal, contain or lie inside any of ``inputs``;
    - a second writer of the same ``out`` fails at once (fcntl lock on ``.NAME.lock`` beside it);
    - leftovers of a killed run on ``out`` are repaired or removed (:func:`recover_output`);
    - an existing directory ``out`` is replaced only if it is empty, or an mvtools output of ``kind``
      (:func:`output_kind`) and ``overwrite`` is true. ``in_place`` commands (augment, calibrate) update ``out``:
      it must be of ``kind``, and they check ``overwrite`` for the parts they replace themselves;
    - with ``file=True`` ``out`` is a file, replaced only with ``overwrite`` (and never a directory); for the
      kinds of :data:`FILE_KINDS` only if the existing file is an mvtools output of that kind.
    Release the claim (or use it as a context manager) after the commit.
    """
    out = Path(os.path.realpath(out)) if in_place else Path(out).absolute()  # in place: the real directory
    check_not_input(out, inputs)
    claim = lock_output(out)
    try:
        if not file:
            recover_output(out)
        else:  # temporaries of atomic_path left by a killed writer of this file
            for t in out.parent.glob(f".{glob_escape(out.name)}.*.tmp*"):
                t.unlink(missing_ok=True)
        _check_existing(out, kind, overwrite, in_place, file)
    except BaseException:
        claim.release()
        raise
    return claim


def _check_existing(out: Path, kind: str, overwrite: bool, in_place: bool, file: bool) -> None:
    if file:
        if out.is_dir():
            raise OutputError(f"{out}: is a directory; the output must be a file path")
        if os.path.lexists(out) and not overwrite:
            raise OutputError(f"{out}: exists; pass --overwrite to replace it")
        if os.path.lexists(out) and kind in FILE_KINDS and not FILE_KINDS[kind](_json_object(out) or {}):
            raise OutputError(
                f"{out}: exists and is not an mvtools {kind} file; refusing to replace it. Choose another "
                "output path, or remove it yourself."
            )
        return
    if not os.path.lexists(out):
        if in_place:
            raise OutputError(f"{out}: no such {kind}")
        return
    if not out.is_dir():
        raise OutputError(f"{out}: exists and is not a directory; refusing to replace it (choose another output)")
    found = output_kind(out)
    if in_place:
        if found != kind:
            raise OutputError(f"{out}: not an mvtools {kind} (no valid {OUTPUT_KINDS[kind][0]})")
        return
    if not any(out.iterdir()):
        return
    if found != kind:
        what = (
            f"an mvtools {found}"
            if found
            else f"not written by mvtools (no {OUTPUT_KINDS[kind][0]} of an mvtools {kind})"
        )
        raise OutputError(
            f"{out}: exists and is {what}; refusing to replace it. Choose another output path, or remove it yourself."
        )
    if not overwrite:
        raise OutputError(f"{out}: holds an earlier mvtools {kind}; pass --overwrite to replace it")


@contextmanager
def staged_directory(final: Path, kind: str | None = None, inputs=(), overwrite: bool = False):
    """Yield a temporary sibling directory that replaces ``final`` (atomically) only if the block completes.

    With ``kind`` the output is claimed first (:func:`claim_output`: refusals, lock, leftovers) and the lock is
    held until the swap."""
    final = Path(final).absolute()
    claim = claim_output(final, kind, inputs, overwrite) if kind is not None else None
    try:
        tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            with naming_os_errors(final):
                yield tmp
            swap_into_place(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if claim is not None:
            claim.release()


@contextmanager
def staged_update(ds, drop=(), copy=()):
    """Copy-on-write update of an existing directory ``ds`` as one atomic commit.

    Yields a sibling staging directory holding hard links to every file of ``ds`` (real copies of the relative
    paths in ``copy``, nothing of those in ``drop``); the caller writes the new state there (files only ever
    replaced by rename, never rewritten in place) and, if the block completes, the staging directory is swapped
    with ``ds`` (:func:`swap_into_place`). A kill at any moment leaves the old ``ds`` or the new one. Hold ``ds``'s
    claim around it."""
    ds = Path(os.path.realpath(ds))  # a symlinked dataset: update the directory it points to
    drop, copy = {Path(p) for p in drop}, {Path(p) for p in copy}
    tmp = ds.parent / f".{ds.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with naming_os_errors(ds):
            _link_tree(ds, tmp, drop, copy)
            yield tmp
        cwd = os.getcwd()
        swap_into_place(tmp, ds)
        if Path(cwd).is_relative_to(ds):
            os.chdir(cwd)  # stay in the new tree, not the deleted old one
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _link_tree(src: Path, dst: Path, drop: set, copy: set) -> None:
    dst.mkdir()
    for root, dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        dirs[:] = [d for d in dirs if rel / d not in drop]
        for d in dirs:
            if (Path(root) / d).is_symlink():
                os.symlink(os.readlink(Path(root) / d), dst / rel / d)
            else:
                (dst / rel / d).mkdir()
        dirs[:] = [d for d in dirs if not (Path(root) / d).is_symlink()]
        for f in files:
            r, s = rel / f, Path(root) / f
            if r in drop:
                continue
            if s.is_symlink():
                os.symlink(os.readlink(s), dst / r)
            elif r in copy:
                shutil.copy2(s, dst / r)
            else:
                try:
                    os.link(s, dst / r)
                except OSError:
                    shutil.copy2(s, dst / r)


# ----------------------------------------------------------------------------- restricted unpickling of npz files
#: The only globals a pickle inside a VideoPose3D-style .npz may name: numpy's array, dtype and scalar
#: reconstructors (numpy 1.x ``numpy.core``, numpy 2.x ``numpy._core``) and OrderedDict. Dicts, lists, tuples,
#: strings, numbers, None and booleans need no global. Anything else (os.system, builtins.eval, ...) is refused.
SAFE_PICKLE_GLOBALS = frozenset(
    [(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")]
    + [(m, "_frombuffer") for m in ("numpy.core.numeric", "numpy._core.numeric")]
    + [("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict")]
)


class UnsafePickleError(ValueError):
    """A pickle names a global outside :data:`SAFE_PICKLE_GLOBALS` (it could run code); nothing was run."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in SAFE_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(f"{module}.{name}")


def load_npz_restricted(path, keys) -> dict:
    """The arrays ``keys`` (those present) of ``.npz`` file ``path``, unpickling object arrays with a whitelist.

    Plain arrays are read with ``allow_pickle=False``; object arrays (VideoPose3D's dicts of lists of arrays) go
    through an unpickler that admits only :data:`SAFE_PICKLE_GLOBALS`, so a planted payload raises
    :class:`UnsafePickleError` (naming the file and the global) instead of running. Other errors propagate
    (zipfile.BadZipFile, EOFError, ValueError, ...). Returns ``{"_files": [all array names], key: value, ...}``."""
    from numpy.lib import format as npf

    out = {}
    with zipfile.ZipFile(path) as zf:
        names = {n[:-4]: n for n in zf.namelist() if n.endswith(".npy")}
        out["_files"] = list(names)
        for key in keys:
            if key not in names:
                continue
            with zf.open(names[key]) as f:
                version = npf.read_magic(f)
                header = npf.read_array_header_1_0 if version == (1, 0) else npf.read_array_header_2_0
                shape, fortran, dtype = header(f)
                if not dtype.hasobject:
                    with zf.open(names[key]) as g:
                        out[key] = npf.read_array(g, allow_pickle=False)
                    continue
                try:
                    out[key] = _RestrictedUnpickler(f, encoding="latin1").load()
                except UnsafePickleError as e:
                    raise UnsafePickleError(
                        f"{path}: {key!r} holds a pickled reference to {e}, which a "
                        "VideoPose3D file never contains; refusing to load it (mvtools runs "
                        "no code from data files)"
                    ) from None
    return out
