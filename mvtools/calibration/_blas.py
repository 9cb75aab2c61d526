"""Temporarily limit OpenBLAS to one thread (the calibration's BLAS calls are vector-sized: with several
threads they mostly wait on each other, and on a busy machine far more). A no-op where the OpenBLAS thread
functions cannot be found (non-Linux, other BLAS)."""
from __future__ import annotations

import ctypes
from contextlib import contextmanager

_NAMES = [("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
          ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
          ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
          ("openblas_set_num_threads", "openblas_get_num_threads")]


def _openblas_controls() -> list:
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:
        return []
    out = []
    for p in sorted(paths):
        try:
            lib = ctypes.CDLL(p)
        except OSError:
            continue
        for set_name, get_name in _NAMES:
            if hasattr(lib, set_name) and hasattr(lib, get_name):
                out.append((getattr(lib, set_name), getattr(lib, get_name)))
                break
    return out


@contextmanager
def single_threaded_blas():
    """Run the block with OpenBLAS limited to one thread; restores the previous counts."""
    ctl = _openblas_controls()
    before = []
    for set_fn, get_fn in ctl:
        before.append(int(get_fn()))
        set_fn(1)
    try:
        yield
    finally:
        for (set_fn, _), n in zip(ctl, before):
            set_fn(n)
