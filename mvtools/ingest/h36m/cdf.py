"""Human3.6M pose CDF files (``D3_Positions``, ``D2_Positions``) with cdflib.

Each raw file holds one variable, ``Pose``, stored as a single record of dims [T, D]: cdflib returns it as
(1, T, D). D = 96 for 32 joints x 3 (world mm) and D = 64 for 32 joints x 2 (px).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mvtools.dataset import DatasetError
from mvtools.io import atomic_path

#: Widths of the ``Pose`` variable: 32 joints x 3 (mm) and 32 joints x 2 (px).
POSE_WIDTHS = (96, 64)
#: Largest plausible magnitude per width: D3 100 m (in mm), D2 1e6 px (mvtools.dataset.LIMITS).
POSE_LIMITS = {96: 1e5, 64: 1e6}


def read_pose_cdf(path, width: int | None = None) -> np.ndarray:
    """The ``Pose`` variable of a raw H36M CDF as a (T, D) array (dtype as stored, float64 or float32).

    ``width`` (96 or 64) checks D; by default any of :data:`POSE_WIDTHS` is accepted. Raises
    :class:`DatasetError` naming the file when it is missing, unreadable/truncated, lacks ``Pose``, has the
    wrong shape, or holds NaN/inf values.
    """
    import cdflib

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such CDF file")
    try:
        f = cdflib.CDF(str(path))
        info = f.cdf_info()
        names = list(info.zVariables) + list(info.rVariables)
    except Exception as e:  # cdflib raises OSError/ValueError/UnicodeDecodeError/... on damaged files
        raise DatasetError(f"{path}: not a readable CDF file (truncated or corrupt? {type(e).__name__}: {e})") from None
    if "Pose" not in names:
        raise DatasetError(f"{path}: no variable 'Pose' (found: {', '.join(names) or 'none'})")
    try:
        dims = [int(d) for d in f.varinq("Pose").Dim_Sizes]
        data = np.asarray(f.varget("Pose"))
    except Exception as e:
        raise DatasetError(
            f"{path}: cannot read variable 'Pose' (truncated or corrupt? {type(e).__name__}: {e})"
        ) from None
    if data.dtype.kind != "f" or data.ndim < 2:
        raise DatasetError(f"{path}: 'Pose' must be a float array of shape (1, T, D), got {data.dtype} {data.shape}")
    D = data.shape[-1]
    if len(dims) >= 1 and dims[-1] != D or data.size % D:
        raise DatasetError(f"{path}: 'Pose' data ({data.shape}) does not match its declared dims {dims} (corrupt?)")
    expect = POSE_WIDTHS if width is None else (width,)
    if D not in expect:
        want = " or ".join(str(w) for w in expect)
        raise DatasetError(
            f"{path}: 'Pose' has {D} values per frame, expected {want} "
            f"(32 joints x {'3 (D3_Positions)' if want == '96' else '2 (D2_Positions)' if want == '64' else '3 or 2'})"
        )
    out = data.reshape(-1, D)
    if out.shape[0] == 0:
        raise DatasetError(f"{path}: 'Pose' has no frames")
    with np.errstate(over="ignore"):
        finite = np.isfinite(out) & np.isfinite(out.astype(np.float32))  # what the dataset will store
    if not finite.all():
        bad = np.flatnonzero(~finite.all(axis=1))
        raise DatasetError(
            f"{path}: 'Pose' holds NaN/inf values in {bad.size} of {out.shape[0]} frames "
            f"(first at frame {bad[0]}) (values beyond the float32 range count as inf)"
        )
    limit = POSE_LIMITS.get(D)
    if limit is not None and np.abs(out).max() > limit:
        bad = np.flatnonzero((np.abs(out) > limit).any(axis=1))
        raise DatasetError(
            f"{path}: 'Pose' has values beyond {limit:g} {'mm' if D == 96 else 'px'} (CDF fill "
            f"values about -1e30, or not a pose file?) in {bad.size} frames (first at frame {bad[0]})"
        )
    return out


def write_pose_cdf(path, array: np.ndarray, dtype=np.float64) -> Path:
    """Write a (T, D) pose array as a raw-layout H36M CDF: variable ``Pose``, one record with dims [T, D].

    Written to a temporary name and renamed, so a crash never leaves a half-written file at ``path``.
    ``dtype`` float64 (CDF_DOUBLE) or float32 (CDF_FLOAT). ``path`` must end in ``.cdf``.
    """
    from cdflib.cdfwrite import CDF

    path = Path(path)
    a = np.asarray(array)
    if a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"{path}: pose array must be (T, D) with T > 0, got {a.shape}")
    if path.suffix != ".cdf":
        raise ValueError(f"{path}: CDF file names must end in .cdf")
    dtype = np.dtype(dtype)
    cdf_type = {np.dtype(np.float64): CDF.CDF_DOUBLE, np.dtype(np.float32): CDF.CDF_FLOAT}.get(dtype)
    if cdf_type is None:
        raise ValueError(f"{path}: dtype must be float64 or float32, got {dtype}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".tmp.cdf") as tmp:
        w = CDF(str(tmp))
        try:
            w.write_var(
                {
                    "Variable": "Pose",
                    "Data_Type": cdf_type,
                    "Num_Elements": 1,
                    "Rec_Vary": True,
                    "Dim_Sizes": [int(a.shape[0]), int(a.shape[1])],
                    "Compress": 0,
                },
                var_data=np.ascontiguousarray(a, dtype=dtype)[None],
            )
        finally:
            w.close()
    return path
