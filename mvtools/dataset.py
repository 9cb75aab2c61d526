"""The on-disk data model (see docs/data-model.md).

A dataset is a directory::

    manifest.json            format version, joint layout, units, conventions, splits, row counts, producer
    cameras.parquet          one row per (subject, camera, source)
    poses3d/subject=S1/*.parquet   action, subaction, raw_name, frame, joints3d (51 float32, world mm)
    poses2d/subject=S1/*.parquet   action, subaction, raw_name, frame, camera, joints2d (34 float32, px),
                                   confidence (17 float32), source
    pairs/                   training pair shards (written by ``mvtools augment``)

Joint arrays are fixed-size lists of float32 (flattened joint-major: x0, y0, z0, x1, ...), so a column
turns into an (N, 17, k) numpy array with no Python loop (:func:`joints_to_numpy`). Subject is a hive
partition key (directory ``subject=S1``), which pandas, pyarrow and DuckDB all read as a column.
"""

from __future__ import annotations

import datetime as _dt
import shutil
import sys
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from mvtools import __version__
from mvtools.camera import Camera, check_cameras
from mvtools.io import (
    claim_output,
    read_json,
    recover_if_interrupted,
    swap_into_place,
    write_json_atomic,
    write_table_atomic,
)
from mvtools.progress import log
from mvtools.skeleton import NUM_JOINTS, layout_dict

FORMAT_VERSION = 1
CAMERA_SOURCES = ("given", "estimated", "virtual")
POSE2D_SOURCES = ("gt", "detected", "virtual")
#: The 2D a command takes as input (``--source``): detections or ground truth (virtual 2D is made by augment).
INPUT_SOURCES = ("detected", "gt")
#: Which cameras a command uses (``--views``): the real ones, or real and virtual (``mvtools augment``).
VIEWS = ("real", "all")

CONVENTIONS = {
    "world": "millimetres; for Human3.6M-derived data Z is up and the origin is near the floor in the middle of "
    "the capture area",
    "camera": "OpenCV: x right, y down, z forward (mm); points in front have z > 0",
    "extrinsics": "world->camera: X_cam = R @ X_world + t (R row-major 3x3, t mm); camera centre C = -R^T t (world mm)",
    "image": "pixels, origin at the top-left pixel corner convention of the source dataset, x right, y down",
    "joints": "fixed-size float32 lists flattened joint-major (x0, y0[, z0], x1, ...) in the 17-joint layout",
    "relative_transform": "paper eq. 3-4: Y_b = R_ab (Y_a - t_ab), R_ab = R_b R_a^T, t_ab = R_a (C_b - C_a)",
}


class DatasetError(Exception):
    """A dataset, or a file that feeds one, is missing or malformed. The message names the file."""


# ----------------------------------------------------------------------------- arrays <-> arrow
#: Subject ids that some readers turn into non-strings from a ``subject=<id>`` directory (besides digits/dates).
_NON_STRING_WORDS = {"nan", "inf", "infinity", "true", "false", "null", "none"}


def subject_id_is_safe(subject: str) -> bool:
    """True when ``subject=<id>`` reads back as the string ``id`` in pandas, pyarrow, polars and DuckDB, which
    infer types from hive directory names (``02`` -> int 2 in pandas/pyarrow, ``2`` -> BIGINT and ``2024-01-01``
    -> DATE in DuckDB): the id starts with a letter and is not a word like ``nan`` or ``true``."""
    return bool(subject) and subject[0].isascii() and subject[0].isalpha() and subject.lower() not in _NON_STRING_WORDS


def safe_subject_id(subject: str) -> str:
    """``subject`` when :func:`subject_id_is_safe`, else ``S`` + it (``02`` -> ``S02``)."""
    return subject if subject_id_is_safe(subject) else f"S{subject}"


def fsl(array: np.ndarray, dtype=None) -> pa.FixedSizeListArray:
    """(N, ...) numpy array -> fixed-size list array with one flattened row per item (no Python loop); ``dtype``
    a pyarrow type, default float32."""
    dtype = pa.float32() if dtype is None else dtype
    a = np.ascontiguousarray(array)
    width = int(np.prod(a.shape[1:])) if a.ndim > 1 else 1
    with np.errstate(over="ignore"):  # overflow to inf is caught by check_values
        flat = pa.array(a.reshape(-1).astype(dtype.to_pandas_dtype(), copy=False), type=dtype)
    return pa.FixedSizeListArray.from_arrays(flat, width)


def joints_to_numpy(column, k: int, num_joints: int = NUM_JOINTS) -> np.ndarray:
    """A fixed-size list column (Array or ChunkedArray) -> (N, num_joints, k) numpy array (zero copy when possible)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    values = column.flatten() if column.offset else column.values
    return values.to_numpy(zero_copy_only=False).reshape(-1, num_joints, k)


def list_to_numpy(column, width: int) -> np.ndarray:
    """A fixed-size list column -> (N, width) numpy array."""
    return joints_to_numpy(column, width, 1).reshape(-1, width)


# ----------------------------------------------------------------------------- schemas
POSES3D_SCHEMA = pa.schema(
    [
        ("action", pa.string()),
        ("subaction", pa.int16()),
        ("raw_name", pa.string()),
        ("frame", pa.int32()),
        ("joints3d", pa.list_(pa.float32(), NUM_JOINTS * 3)),
    ]
)
POSES2D_SCHEMA = pa.schema(
    [
        ("action", pa.string()),
        ("subaction", pa.int16()),
        ("raw_name", pa.string()),
        ("frame", pa.int32()),
        ("camera", pa.string()),
        ("joints2d", pa.list_(pa.float32(), NUM_JOINTS * 2)),
        ("confidence", pa.list_(pa.float32(), NUM_JOINTS)),
        ("source", pa.string()),
    ]
)
CAMERAS_SCHEMA = pa.schema(
    [
        ("subject", pa.string()),
        ("camera", pa.string()),
        ("source", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("fx", pa.float64()),
        ("fy", pa.float64()),
        ("cx", pa.float64()),
        ("cy", pa.float64()),
        ("k1", pa.float64()),
        ("k2", pa.float64()),
        ("k3", pa.float64()),
        ("p1", pa.float64()),
        ("p2", pa.float64()),
        ("distortion_model", pa.string()),
        ("R", pa.list_(pa.float64(), 9)),
        ("t", pa.list_(pa.float64(), 3)),
        ("C", pa.list_(pa.float64(), 3)),
    ]
)


def poses3d_table(action: str, subaction: int, raw_name: str, frames: np.ndarray, joints: np.ndarray) -> pa.Table:
    """One sequence of world joints (T, 17, 3) mm as a poses3d table (without the subject column)."""
    n = len(frames)
    if joints.shape != (n, NUM_JOINTS, 3):
        raise ValueError(f"joints must be ({n}, {NUM_JOINTS}, 3), got {joints.shape}")
    return pa.Table.from_arrays(
        [
            pa.array(np.full(n, action, dtype=object), pa.string()),
            pa.array(np.full(n, subaction, np.int16)),
            pa.array(np.full(n, raw_name, dtype=object), pa.string()),
            pa.array(np.asarray(frames, np.int32)),
            fsl(np.asarray(joints)),  # cast to float32 in fsl (overflow -> inf, refused by check_values)
        ],
        schema=POSES3D_SCHEMA,
    )


def poses2d_table(
    action: str,
    subaction: int,
    raw_name: str,
    frames: np.ndarray,
    camera,
    joints2d: np.ndarray,
    confidence: np.ndarray | None,
    source: str,
) -> pa.Table:
    """2D joints (T, 17, 2) px and confidences (T, 17) as a poses2d table. ``camera`` is one id or (T,) ids."""
    n = len(frames)
    if joints2d.shape != (n, NUM_JOINTS, 2):
        raise ValueError(f"joints2d must be ({n}, {NUM_JOINTS}, 2), got {joints2d.shape}")
    if source not in POSE2D_SOURCES:
        raise ValueError(f"source must be one of {POSE2D_SOURCES}, got {source!r}")
    if confidence is None:
        confidence = np.ones((n, NUM_JOINTS), np.float32)
    cams = np.full(n, camera, dtype=object) if np.ndim(camera) == 0 else np.asarray(camera, dtype=object)
    return pa.Table.from_arrays(
        [
            pa.array(np.full(n, action, dtype=object), pa.string()),
            pa.array(np.full(n, subaction, np.int16)),
            pa.array(np.full(n, raw_name, dtype=object), pa.string()),
            pa.array(np.asarray(frames, np.int32)),
            pa.array(cams, pa.string()),
            fsl(np.asarray(joints2d)),
            fsl(np.asarray(confidence, np.float32)),
            pa.array(np.full(n, source, dtype=object), pa.string()),
        ],
        schema=POSES2D_SCHEMA,
    )


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast the standard columns of ``table`` to ``schema`` (in its order), keeping extra columns after them."""
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}")
    extra = [c for c in table.column_names if c not in schema.names]
    out = table.select(schema.names).cast(schema)
    for c in extra:
        out = out.append_column(table.schema.field(c), table.column(c))
    return out


# ----------------------------------------------------------------------------- cameras
def cameras_to_table(cams: Iterable[Camera], where: str = "cameras") -> pa.Table:
    cams = check_cameras(cams, where)
    for c in cams:
        if c.source not in CAMERA_SOURCES:
            raise ValueError(f"camera source must be one of {CAMERA_SOURCES}, got {c.source!r}")
    R = np.array([np.asarray(c.R, float).reshape(9) for c in cams]).reshape(-1, 9)
    t = np.array([np.asarray(c.t, float).reshape(3) for c in cams]).reshape(-1, 3)
    C = np.array([c.C for c in cams]).reshape(-1, 3)
    cols = {
        "subject": [c.subject for c in cams],
        "camera": [str(c.camera) for c in cams],
        "source": [c.source for c in cams],
        "width": [int(c.width) for c in cams],
        "height": [int(c.height) for c in cams],
        "fx": [float(c.fx) for c in cams],
        "fy": [float(c.fy) for c in cams],
        "cx": [float(c.cx) for c in cams],
        "cy": [float(c.cy) for c in cams],
        "k1": [float(c.k[0]) for c in cams],
        "k2": [float(c.k[1]) for c in cams],
        "k3": [float(c.k[2]) for c in cams],
        "p1": [float(c.p[0]) for c in cams],
        "p2": [float(c.p[1]) for c in cams],
        "distortion_model": [c.distortion_model for c in cams],
    }
    arrays = [pa.array(cols[f.name], f.type) for f in CAMERAS_SCHEMA if f.name in cols]
    arrays += [fsl(R, pa.float64()), fsl(t, pa.float64()), fsl(C, pa.float64())]
    return pa.Table.from_arrays(arrays, schema=CAMERAS_SCHEMA)


def table_to_cameras(table: pa.Table, where: str = "cameras.parquet") -> list[Camera]:
    """Cameras of a cameras table; a table of another schema or with unusable cameras raises naming ``where``."""
    missing = [f.name for f in CAMERAS_SCHEMA if f.name not in table.column_names]
    if missing:
        raise DatasetError(f"{where}: not an mvtools cameras table (lacks column(s) {', '.join(missing)})")
    try:
        table = table.select(CAMERAS_SCHEMA.names).cast(CAMERAS_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError) as e:
        raise DatasetError(f"{where}: columns do not have the cameras schema ({e})") from None
    d = table.to_pydict()
    out = []
    for i in range(table.num_rows):
        out.append(
            Camera(
                camera=d["camera"][i],
                width=d["width"][i],
                height=d["height"][i],
                fx=d["fx"][i],
                fy=d["fy"][i],
                cx=d["cx"][i],
                cy=d["cy"][i],
                R=np.array(d["R"][i], float).reshape(3, 3),
                t=np.array(d["t"][i], float),
                k=(d["k1"][i], d["k2"][i], d["k3"][i]),
                p=(d["p1"][i], d["p2"][i]),
                distortion_model=d["distortion_model"][i],
                subject=d["subject"][i],
                source=d["source"][i],
            )
        )
    try:
        return check_cameras(out, where)
    except ValueError as e:
        raise DatasetError(str(e)) from None


def read_cameras(ds, source: str | Iterable[str] | None = None, subjects: Iterable[str] | None = None) -> list[Camera]:
    """Cameras of dataset ``ds``, optionally only those of some source(s) and subjects."""
    path = Path(ds) / "cameras.parquet"
    if not path.exists() and not (recover_if_interrupted(ds) and path.exists()):
        raise DatasetError(f"{path}: missing (is {ds} an mvtools dataset?)")
    cams = table_to_cameras(read_parquet(path, "cameras table"), str(path))
    if source is not None:
        srcs = {source} if isinstance(source, str) else set(source)
        cams = [c for c in cams if c.source in srcs]
    if subjects is not None:
        subj = set(subjects)
        cams = [c for c in cams if c.subject in subj]
    return cams


def rig(cams: Iterable[Camera], subject: str, source: str = "given") -> dict[str, Camera]:
    """{camera id: Camera} for one subject and source, in table order."""
    return {c.camera: c for c in cams if c.subject == subject and c.source == source}


def write_cameras(ds, cams: Iterable[Camera]) -> None:
    """Replace the cameras table of an existing dataset atomically."""
    write_table_atomic(cameras_to_table(cams, str(Path(ds) / "cameras.parquet")), Path(ds) / "cameras.parquet")


def read_parquet(path, what: str = "Parquet file") -> pa.Table:
    """A whole Parquet file; a truncated or corrupt one raises :class:`DatasetError` naming it."""
    try:
        return pq.read_table(path)
    except FileNotFoundError:
        raise DatasetError(f"{path}: {what} not found") from None
    except (pa.ArrowException, OSError) as e:
        raise DatasetError(f"{path}: not a readable {what} (truncated or corrupt? {e})") from None


def replace_cameras(ds, new: Iterable[Camera], source: str, subjects: Iterable[str] | None = None) -> list[Camera]:
    """Drop the cameras of ``source`` (for ``subjects`` or all) and add ``new``; returns the full list."""
    subj = None if subjects is None else set(subjects)
    keep = [c for c in read_cameras(ds) if not (c.source == source and (subj is None or c.subject in subj))]
    allc = keep + list(new)
    write_cameras(ds, allc)
    return allc


def read_manifest(ds) -> dict:
    path = Path(ds) / "manifest.json"
    if not path.exists() and not (recover_if_interrupted(ds) and path.exists()):
        raise DatasetError(f"{path}: missing (is {ds} an mvtools dataset?)")
    m = read_json(path, "dataset manifest", DatasetError)
    if not isinstance(m, dict):
        raise DatasetError(f"{path}: a dataset manifest must be a JSON object, got a JSON {type(m).__name__}")
    if m.get("format_version") != FORMAT_VERSION:
        raise DatasetError(f"{path}: format_version {m.get('format_version')!r}, this mvtools reads {FORMAT_VERSION}")
    return m


def write_manifest(ds, manifest: dict) -> None:
    write_json_atomic(Path(ds) / "manifest.json", manifest)


def producer(command: str | None = None) -> dict:
    return {
        "command": command if command is not None else " ".join(["mvtools"] + sys.argv[1:]),
        "mvtools_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def base_manifest(dataset: str, splits: dict, fps: float | None, command: str | None = None, **extra) -> dict:
    m = {
        "format_version": FORMAT_VERSION,
        "dataset": dataset,
        "joints": layout_dict(),
        "units": {"poses3d": "mm", "poses2d": "px", "confidence": "0..1", "cameras": "px (intrinsics), mm (t, C)"},
        "conventions": CONVENTIONS,
        "fps": fps,
        "splits": splits,
        "producer": producer(command),
    }
    m.update(extra)
    return m


# ----------------------------------------------------------------------------- reading poses
def _dataset(path: Path):
    return pads.dataset(
        path,
        format="parquet",
        partitioning=pads.partitioning(pa.schema([("subject", pa.string())]), flavor="hive"),
        exclude_invalid_files=False,
        ignore_prefixes=[".", "_"],
    )


def _read(ds, name: str, subjects, filters, columns) -> pa.Table:
    path = Path(ds) / name
    if not path.is_dir():
        raise DatasetError(f"{path}: missing (is {ds} an mvtools dataset?)")
    d = _dataset(path)
    expr = None
    if subjects is not None:
        expr = pads.field("subject").isin(list(subjects))
    for col, vals in (filters or {}).items():
        e = pads.field(col).isin(list(vals)) if isinstance(vals, (list, tuple, set)) else pads.field(col) == vals
        expr = e if expr is None else expr & e
    try:
        return d.to_table(columns=columns, filter=expr)
    except (pa.ArrowException, OSError) as e:
        raise DatasetError(f"{path}: a Parquet part is unreadable (truncated or corrupt? {e})") from None


def read_poses3d(ds, subjects=None, columns=None, **filters) -> pa.Table:
    """poses3d rows (with ``subject``) for some subjects; extra keyword filters by column equality/membership."""
    return _read(ds, "poses3d", subjects, filters, columns)


def read_poses2d(ds, subjects=None, columns=None, **filters) -> pa.Table:
    """poses2d rows (with ``subject``), e.g. ``read_poses2d(ds, ["S1"], source="gt")``."""
    return _read(ds, "poses2d", subjects, filters, columns)


def subjects_in(ds) -> list[str]:
    """Subjects present in poses3d (partition directories), in manifest order when listed there."""
    d = Path(ds) / "poses3d"
    found = sorted(p.name.split("=", 1)[1] for p in d.glob("subject=*") if p.is_dir())
    try:
        order = read_manifest(ds).get("subjects") or []
    except DatasetError:
        order = []
    return [s for s in order if s in found] + [s for s in found if s not in order]


# ----------------------------------------------------------------------------- checks at the door
#: Largest plausible magnitudes: 3D 100 m (in mm; CDF fill values are about -1e30), 2D 1e6 px.
LIMITS = {"joints3d": 1e5, "joints3d_univ": 1e5, "joints2d": 1e6}
_BAD_NAME_CHARS = set("/\\\0=") | {chr(i) for i in range(32)}


def check_name(name, what: str) -> str:
    """A name from file contents that becomes part of a path (subject directory, file tag): non-empty, at most 200
    characters, no path separators, '=', control characters, no leading '.' or '_' (hidden/ignored files)."""
    if (
        not isinstance(name, str)
        or not name
        or len(name) > 200
        or set(name) & _BAD_NAME_CHARS
        or name[0] in "._"
        or name.strip() != name
    ):
        raise DatasetError(
            f"{what} name {name!r} cannot be used in a file path (need 1-200 characters without "
            "'/', '\\', '=', control characters, leading '.' or '_' or surrounding spaces)"
        )
    return name


def check_values(table: pa.Table, where: str) -> pa.Table:
    """Refuse poses that would poison a dataset, checked on the float32 values as stored: NaN/inf (also values that
    overflowed the float32 cast), coordinates beyond :data:`LIMITS` (fill values); confidences outside 0..1 are
    clipped with a warning. The one exception: a 2D joint a detector did not find is stored as NaN x and y with
    confidence 0 (``ingest keypoints``). Returns the (possibly clipped) table."""
    conf = list_to_numpy(table.column("confidence"), NUM_JOINTS) if "confidence" in table.column_names else None
    for name, limit in LIMITS.items():
        if name not in table.column_names:
            continue
        col = table.column(name)
        k = col.type.list_size // NUM_JOINTS
        a = joints_to_numpy(col, k)
        ok = np.isfinite(a)
        if name == "joints2d" and conf is not None:  # a joint the detector did not find: NaN with confidence 0
            ok |= (np.isnan(a).all(-1) & (conf == 0))[..., None]
        bad = ~ok.all((1, 2)) | (np.abs(np.nan_to_num(a)) > limit).any((1, 2))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            row = {
                c: table.column(c)[i].as_py()
                for c in ("action", "raw_name", "frame", "camera")
                if c in table.column_names
            }
            what = "NaN/inf values" if not np.isfinite(a[i]).all() else f"values beyond {limit:g} (fill values?)"
            raise DatasetError(f"{where}: {name} holds {what} in {int(bad.sum())} row(s), first {row}")
    if conf is not None:
        c = conf
        if not np.isfinite(c).all():
            raise DatasetError(f"{where}: confidence holds NaN/inf values")
        out = (c < 0) | (c > 1)
        if out.any():
            log(f"warning: {where}: {int(out.sum())} confidence value(s) outside 0..1 clipped to 0..1")
            i = table.column_names.index("confidence")
            table = table.set_column(i, table.schema.field(i), fsl(np.clip(c, 0, 1).astype(np.float32)))
    return table


# ----------------------------------------------------------------------------- writing
class DatasetWriter:
    """Streams tables into a new dataset directory and renames it into place on :meth:`commit`.

    Nothing is visible at ``out`` until commit; an exception (or interrupt) leaves any previous dataset at
    ``out`` untouched. Memory stays bounded by the tables passed in (one sequence at a time)::

        with DatasetWriter(out) as w:
            w.add_poses3d("S1", table)
            w.add_poses2d("S1", table2d)
            w.set_cameras(cams)
            w.commit(manifest)
    """

    def __init__(self, out, inputs=(), overwrite: bool = False):
        self.out = Path(out).absolute()
        # refusals (inputs, foreign directories, --overwrite), the lock and a killed run's leftovers
        self._claim = claim_output(self.out, "dataset", inputs, overwrite)
        try:
            self.tmp = self.out.parent / f".{self.out.name}.tmp-{uuid.uuid4().hex[:8]}"
            self.tmp.mkdir()
        except BaseException:
            self._claim.release()
            raise
        self._writers: dict[tuple, pq.ParquetWriter] = {}
        self.rows = {"poses3d": 0, "poses2d": {s: 0 for s in POSE2D_SOURCES}}
        self.subjects: list[str] = []
        self._cams: list[Camera] | None = None
        self.committed = False

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if not self.committed:
            self.abort()
        if isinstance(exc, OSError) and not exc.filename and not isinstance(exc, FileNotFoundError):
            raise OSError(exc.errno, exc.strerror or str(exc), str(self.out)) from None  # name the dataset
        return False

    def _writer(self, kind: str, subject: str, tag: str, schema: pa.Schema) -> pq.ParquetWriter:
        check_name(subject, "subject")
        check_name(tag, "file tag")
        key = (kind, subject, tag)
        if key not in self._writers:
            d = self.tmp / kind / f"subject={subject}"
            d.mkdir(parents=True, exist_ok=True)
            self._writers[key] = pq.ParquetWriter(d / f"{tag}-0.parquet", schema, compression="zstd")
        if subject not in self.subjects:
            self.subjects.append(subject)
        return self._writers[key]

    def add_poses3d(self, subject: str, table: pa.Table) -> None:
        """Append 3D rows. Extra columns after the standard ones (e.g. 3DHP's ``valid``) are kept;
        every call for one dataset must then use the same schema."""
        table = check_values(conform(table, POSES3D_SCHEMA), f"{self.out}: subject {subject}")
        self._writer("poses3d", subject, "part", table.schema).write_table(table)
        self.rows["poses3d"] += table.num_rows

    def add_poses2d(self, subject: str, table: pa.Table, tag: str | None = None) -> None:
        """Append 2D rows; one file per (subject, source) unless ``tag`` names another."""
        table = check_values(conform(table, POSES2D_SCHEMA), f"{self.out}: subject {subject}")
        srcs = set(table.column("source").unique().to_pylist())
        if tag is None:
            if len(srcs) != 1:
                raise ValueError("pass one source per call (or a tag)")
            tag = srcs.pop()
        self._writer("poses2d", subject, tag, table.schema).write_table(table)
        for vc in pc.value_counts(table.column("source")).to_pylist():
            self.rows["poses2d"][vc["values"]] += int(vc["counts"])

    def set_cameras(self, cams: Iterable[Camera]) -> None:
        self._cams = list(cams)

    def commit(self, manifest: dict) -> Path:
        """Close files, write cameras and manifest, and rename the dataset into place."""
        for w in self._writers.values():
            w.close()
        self._writers.clear()
        if self._cams is None:
            raise DatasetError("no cameras were set for the dataset")
        (self.tmp / "poses3d").mkdir(exist_ok=True)
        (self.tmp / "poses2d").mkdir(exist_ok=True)
        pq.write_table(cameras_to_table(self._cams, f"{self.out}: cameras"), self.tmp / "cameras.parquet")
        manifest = dict(manifest)
        manifest.setdefault("subjects", self.subjects)
        manifest["rows"] = {
            "poses3d": self.rows["poses3d"],
            "poses2d": {k: v for k, v in self.rows["poses2d"].items()},
            "cameras": len(self._cams),
        }
        write_manifest(self.tmp, manifest)
        swap_into_place(self.tmp, self.out)
        self.committed = True
        self._claim.release()
        return self.out

    def abort(self) -> None:
        for w in self._writers.values():
            try:
                w.close()
            except Exception:
                pass
        self._writers.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self._claim.release()


def replace_poses2d_files(ds, subject: str, tag: str, table: pa.Table | None) -> None:
    """Atomically replace ``poses2d/subject=<subject>/<tag>-*.parquet`` with ``table`` (None removes them)."""
    d = Path(ds) / "poses2d" / f"subject={subject}"
    d.mkdir(parents=True, exist_ok=True)
    old = list(d.glob(f"{tag}-*.parquet"))
    if table is not None:
        write_table_atomic(table.cast(POSES2D_SCHEMA), d / f"{tag}-0.parquet")
    for f in old:
        if table is None or f.name != f"{tag}-0.parquet":
            f.unlink()
