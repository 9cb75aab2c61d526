"""BVH motion capture: the file reader, unit and T-pose detection, axes.

Our own reader (no dependency): the format is small, and reading the motion block straight into one
(T, C) float array lets forward kinematics run over all frames at once (one numpy step per joint, no
loop over frames). See docs/bvh.md.

Conventions:
- Euler channels are degrees, applied in the order listed: ``CHANNELS 3 Zrotation Yrotation Xrotation``
  gives the local rotation ``Rz @ Ry @ Rx`` (parent <- joint).
- A joint sits at ``parent_pos + parent_global_R @ local translation``; the local translation is the OFFSET,
  or the joint's position channels where it has them (Blender's importer, LAFAN1's loader; see
  :mod:`mvtools.ingest.bvh.kinematics` for the other convention).
- End Sites become extra joints named ``<Parent>_End`` with no channels (``_End2``... if several).
- Lengths stay in the file's unit in :class:`Bvh`; :func:`detect_units` gives mm per unit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mvtools.dataset import DatasetError
from mvtools.rotations import Y_UP_TO_Z_UP
from mvtools.skeleton import chain_kinematics

_AXES = "XYZ"
#: mm per unit. ``cmu`` is the CMU ASF unit of the cgspeed BVH conversion: 1/0.45 inch.
UNITS = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "inch": 25.4, "cmu": 25.4 / 0.45}
_UNIT_ALIASES = {
    "millimeter": "mm",
    "millimeters": "mm",
    "millimetre": "mm",
    "millimetres": "mm",
    "centimeter": "cm",
    "centimeters": "cm",
    "centimetre": "cm",
    "centimetres": "cm",
    "meter": "m",
    "meters": "m",
    "metre": "m",
    "metres": "m",
    "in": "inch",
    "inches": "inch",
    "cmu_asf": "cmu",
}
#: Typical adult stature (mm) used to pick the unit when the file gives no hint.
TYPICAL_HEIGHT_MM = 1700.0
PLAUSIBLE_HEIGHT_MM = (1000.0, 2500.0)
#: Accepted ``Frame Time`` (seconds per frame): 0.1 ms to 10 s (10 kHz to 0.1 Hz).
FRAME_TIME_RANGE_S = (1e-4, 10.0)
#: Up axes a file may have (``to_z_up``).
UP_AXES = ("x", "y", "z")


@dataclass
class Bvh:
    """A parsed BVH file; lengths in the file's own unit, angles in degrees.

    names (J,) joint names (End Sites as ``<Parent>_End``), parents (J,) int (-1 for roots),
    offsets (J, 3), channels: per joint a tuple of channel names (e.g. ``("Zrotation", "Yrotation",
    "Xrotation")``), motion (T, C) float64 with C = total channel count in hierarchy order,
    frame_time seconds per frame, end_site (J,) bool, unit_hint from a header comment (or None).
    """

    names: list[str]
    parents: np.ndarray
    offsets: np.ndarray
    channels: list[tuple[str, ...]]
    motion: np.ndarray
    frame_time: float
    end_site: np.ndarray
    path: str = ""
    unit_hint: str | None = None
    channel_index: list[np.ndarray] = field(default_factory=list, repr=False)
    #: How position channels of non-root joints combine with OFFSET: ``replace`` (the channels are the local
    #: translation; Blender, LAFAN1) or ``add`` (OFFSET + channels; PyMO). See kinematics.resolve_position_mode.
    position_mode: str = "replace"

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    @property
    def fps(self) -> float:
        """Frames per second from ``Frame Time`` (snapped to an integer when within 0.1%)."""
        f = 1.0 / self.frame_time
        return float(round(f)) if abs(f - round(f)) < 1e-3 * f else f

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"{self.path}: no joint {name!r}") from None


# ----------------------------------------------------------------------------- reading
def _err(path, line: int | None, msg: str) -> DatasetError:
    where = f"{path}: line {line}: " if line is not None else f"{path}: "
    return DatasetError(where + msg)


def _parse_float(tok: str, path, line: int, what: str) -> float:
    try:
        return float(tok)
    except ValueError:
        raise _err(path, line, f"{what}: {tok!r} is not a number") from None


def _check_channels(names: list[str], path, line: int) -> tuple[str, ...]:
    out = []
    for n in names:
        m = re.fullmatch(r"([XYZxyz])(position|rotation)", n, flags=re.IGNORECASE)
        if not m:
            raise _err(path, line, f"unknown channel {n!r} (expected X/Y/Z followed by position or rotation)")
        out.append(m.group(1).upper() + m.group(2).lower())
    rot = "".join(c[0] for c in out if c.endswith("rotation"))
    pos = "".join(c[0] for c in out if c.endswith("position"))
    if len(set(rot)) != len(rot):
        raise _err(path, line, f"unknown rotation order {rot!r}: an axis repeats (channels {' '.join(names)})")
    if len(set(pos)) != len(pos):
        raise _err(path, line, f"position channel repeats (channels {' '.join(names)})")
    return tuple(out)


def read_bvh(path) -> Bvh:
    """Parse a BVH file. Errors (:class:`DatasetError`) name the file and the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror})") from None
    return parse_bvh(text, str(path))


def parse_bvh(text: str, path: str = "<string>") -> Bvh:
    """Parse BVH text (see :func:`read_bvh`); ``path`` is used in error messages."""
    lines = text.splitlines()
    unit_hint = None
    tokens: list[tuple[str, int]] = []
    motion_line = None
    for i, raw in enumerate(lines, 1):
        s = raw.strip()
        if s.startswith("#") or s.startswith("//"):
            m = re.search(r"units?\s*[:=]?\s*([A-Za-z_]+)", s, flags=re.IGNORECASE)
            if m and _unit_name(m.group(1)) is not None:
                unit_hint = _unit_name(m.group(1))
            continue
        if s.upper() == "MOTION":
            motion_line = i
            break
        tokens.extend((t, i) for t in s.replace("{", " { ").replace("}", " } ").split())
    if not tokens or tokens[0][0].upper() != "HIERARCHY":
        raise _err(path, tokens[0][1] if tokens else 1, "not a BVH file (expected HIERARCHY)")
    if motion_line is None:
        raise _err(path, len(lines), "no MOTION section (file truncated in the hierarchy?)")

    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[tuple[str, ...]] = []
    end_site: list[bool] = []
    joint_lines: dict[str, int] = {}  # ROOT/JOINT name -> line
    stack: list[int] = []  # joint index per open brace
    pending: int | None = None  # joint declared, waiting for "{"
    pos = 1
    n_tok = len(tokens)

    def need(k: int, what: str, line: int):
        if pos + k > n_tok:
            raise _err(path, line, f"{what}: hierarchy ends early")

    def declare(name: str, parent: int, is_end: bool) -> int:
        """Append a joint (offset and channels filled in later); returns its index."""
        names.append(name)
        parents.append(parent)
        offsets.append([0.0, 0.0, 0.0])
        channels.append(())
        end_site.append(is_end)
        return len(names) - 1

    while pos < n_tok:
        tok, line = tokens[pos]
        up = tok.upper()
        if up in ("ROOT", "JOINT"):
            need(1, up, line)
            name = tokens[pos + 1][0]
            if up == "JOINT" and not stack:
                raise _err(path, line, f"JOINT {name} outside any ROOT")
            if name in joint_lines:
                raise _err(path, line, f"duplicate joint name {name!r} (also on line {joint_lines[name]})")
            joint_lines[name] = line
            pending = declare(name, stack[-1] if stack else -1, False)
            pos += 2
        elif up == "END":
            need(1, "End Site", line)
            if not stack:
                raise _err(path, line, "End Site outside any joint")
            pending = declare("", stack[-1], True)  # named after the hierarchy is read (see below)
            pos += 2
        elif tok == "{":
            if pending is None:
                raise _err(path, line, "'{' without a ROOT/JOINT/End Site before it")
            stack.append(pending)
            pending = None
            pos += 1
        elif tok == "}":
            if not stack:
                raise _err(path, line, "unbalanced '}'")
            stack.pop()
            pos += 1
        elif up == "OFFSET":
            if not stack:
                raise _err(path, line, "OFFSET outside a joint")
            vals = [t for t, ln in tokens[pos + 1 : pos + 4] if ln == line]
            if len(vals) != 3:
                raise _err(path, line, f"OFFSET needs 3 numbers, got {len(vals)}")
            offsets[stack[-1]] = [_parse_float(v, path, line, "OFFSET") for v in vals]
            pos += 4
        elif up == "CHANNELS":
            if not stack:
                raise _err(path, line, "CHANNELS outside a joint")
            j = stack[-1]
            if end_site[j]:
                raise _err(path, line, "End Site cannot have CHANNELS")
            need(1, "CHANNELS", line)
            try:
                n = int(tokens[pos + 1][0])
            except ValueError:
                raise _err(path, line, f"CHANNELS count {tokens[pos + 1][0]!r} is not an integer") from None
            listed = []
            q = pos + 2
            while q < n_tok and tokens[q][1] == line and tokens[q][0] not in ("{", "}"):
                listed.append(tokens[q][0])
                q += 1
            if len(listed) != n:
                raise _err(
                    path,
                    line,
                    f"channel count mismatch: CHANNELS says {n} but lists {len(listed)} ({' '.join(listed) or 'none'})",
                )
            channels[j] = _check_channels(listed, path, line)
            pos += 2 + n
        else:
            raise _err(path, line, f"unexpected {tok!r} in the hierarchy")
    if stack or pending is not None:
        raise _err(path, motion_line, f"hierarchy not closed before MOTION ({len(stack)} open brace(s))")
    if not names:
        raise _err(path, motion_line, "hierarchy has no joints")
    _name_end_sites(names, parents, end_site)

    # ---- MOTION header
    def header(k: int, key: str) -> str:
        if k >= len(lines):
            raise _err(path, len(lines), f"missing '{key}' line after MOTION")
        s = lines[k].strip()
        if not s.lower().replace(" ", "").startswith(key.lower().replace(" ", "")):
            raise _err(path, k + 1, f"expected '{key}', got {s[:40]!r}")
        return s.split(":", 1)[1].strip() if ":" in s else ""

    k = motion_line  # 0-based index of the line after MOTION
    while k < len(lines) and not lines[k].strip():
        k += 1
    frames_s = header(k, "Frames:")
    try:
        n_frames = int(frames_s)
    except ValueError:
        raise _err(path, k + 1, f"Frames: {frames_s!r} is not an integer") from None
    frames_line = k + 1
    k += 1
    ft_s = header(k, "Frame Time:")
    frame_time = _parse_float(ft_s, path, k + 1, "Frame Time")
    if not FRAME_TIME_RANGE_S[0] <= frame_time <= FRAME_TIME_RANGE_S[1]:
        raise _err(
            path,
            k + 1,
            f"Frame Time {ft_s} s is not a plausible frame period (expected "
            f"{FRAME_TIME_RANGE_S[0]:g} to {FRAME_TIME_RANGE_S[1]:g} s, i.e. "
            f"{1 / FRAME_TIME_RANGE_S[1]:g} to {1 / FRAME_TIME_RANGE_S[0]:g} Hz)",
        )
    k += 1

    n_ch = sum(len(c) for c in channels)
    data_lines = lines[k:]
    while data_lines and not data_lines[-1].strip():
        data_lines.pop()
    if n_frames == 0 and not data_lines:
        raise _err(path, frames_line, "Frames: 0 (no motion)")
    motion = _parse_numbers(data_lines) if len(data_lines) == n_frames else None
    if motion is None or motion.shape != (n_frames, n_ch) or not np.isfinite(motion).all():
        _motion_error(data_lines, k, n_frames, n_ch, frames_line, path)

    starts = np.cumsum([0] + [len(c) for c in channels])
    chan_index = [np.arange(starts[j], starts[j + 1]) for j in range(len(names))]
    return Bvh(
        names=names,
        parents=np.array(parents, dtype=np.int64),
        offsets=np.array(offsets, float),
        channels=channels,
        motion=motion,
        frame_time=frame_time,
        end_site=np.array(end_site),
        path=path,
        unit_hint=unit_hint,
        channel_index=chan_index,
    )


def _name_end_sites(names: list[str], parents: list[int], end_site: list[bool]) -> None:
    """Name End Sites ``<Parent>_End`` (``_End2``... if a joint has several), never the name of a real joint
    (a file may have a JOINT called ``Head_End``; its End Site is then ``Head_End_End``, Head's ``Head_End2``)."""
    taken = {n for n, e in zip(names, end_site, strict=True) if not e}
    for j, e in enumerate(end_site):
        if not e:
            continue
        base = f"{names[parents[j]]}_End"
        name, k = base, 2
        while name in taken:
            name, k = f"{base}{k}", k + 1
        names[j] = name
        taken.add(name)


def _motion_error(data_lines: list[str], k: int, n_frames: int, n_ch: int, frames_line: int, path) -> None:
    """Raise the error that explains why the motion block (starting at 0-based line ``k``) is malformed."""
    rows = [ln.split() for ln in data_lines]
    for b, row in enumerate(rows):
        if not row:
            raise _err(path, k + b + 1, "blank line inside the motion block")
        if len(row) != n_ch:
            raise _err(
                path,
                k + b + 1,
                f"channel count mismatch: frame {b} has {len(row)} values, the hierarchy declares {n_ch} channels",
            )
    if len(rows) < n_frames:
        raise _err(
            path,
            k + len(rows),
            f"motion block truncated: 'Frames: {n_frames}' (line {frames_line}) "
            f"but the data ends after {len(rows)} frame(s)",
        )
    if len(rows) > n_frames:
        raise _err(
            path,
            k + n_frames + 1,
            f"more frame lines than 'Frames: {n_frames}' (line {frames_line}) declares ({len(rows)})",
        )
    for r, row in enumerate(rows):
        for t in row:
            v = _parse_float(t, path, k + r + 1, f"frame {r}")
            if not math.isfinite(v):
                raise _err(path, k + r + 1, f"frame {r} has a non-finite value ({t})")
    raise _err(path, k + 1, "motion block could not be read")


def _parse_numbers(lines: list[str]) -> np.ndarray | None:
    """(rows, cols) float64 from whitespace-separated lines (pandas' C parser), None if not numeric."""
    import io

    import pandas as pd

    try:
        a = pd.read_csv(io.StringIO("\n".join(lines)), sep=r"\s+", header=None, dtype=np.float64, engine="c").to_numpy()
    except (ValueError, pd.errors.ParserError):
        return None
    return a


def rest_pose(bvh: Bvh) -> np.ndarray:
    """Joint positions (J, 3) with all rotations zero and no root translation (file units)."""
    J = len(bvh.names)
    return chain_kinematics(bvh.parents, np.broadcast_to(np.eye(3), (1, J, 3, 3)).copy(), bvh.offsets[None].copy())[0]


# ----------------------------------------------------------------------------- units
def _unit_name(s: str) -> str | None:
    s = s.strip().lower()
    s = _UNIT_ALIASES.get(s, s)
    return s if s in UNITS else None


def skeleton_height(bvh: Bvh) -> float:
    """Largest extent (file units) of the rest pose: stature, or arm span for a T-pose (about equal)."""
    p = rest_pose(bvh)
    return float((p.max(0) - p.min(0)).max())


def detect_units(bvh: Bvh, units: str = "auto", height: float | None = None) -> tuple[str, float, str]:
    """(unit name, mm per unit, how it was decided).

    ``units`` forces one of :data:`UNITS`; ``auto`` uses a ``# units: cm`` style header comment if the
    file has one, else the unit that makes the skeleton's extent closest to a 1.7 m adult (log scale).
    The extent is ``height`` (file units) when given, which :func:`mvtools.ingest.bvh.kinematics.posed_height`
    measures from the posed frames (OFFSETs *and* position channels), else the rest-pose extent (OFFSETs).
    """
    if units != "auto":
        name = _unit_name(units)
        if name is None:
            raise ValueError(f"unknown unit {units!r} (choose auto or one of {', '.join(UNITS)})")
        return name, UNITS[name], "given"
    if bvh.unit_hint:
        return bvh.unit_hint, UNITS[bvh.unit_hint], "header"
    h = height if height is not None and height > 0 else skeleton_height(bvh)
    what = "posed extent" if height is not None and height > 0 else "rest-pose extent"
    if not h > 0:
        raise DatasetError(f"{bvh.path}: skeleton has zero extent; cannot detect its unit (pass --units)")
    name = min(UNITS, key=lambda u: abs(math.log(h * UNITS[u] / TYPICAL_HEIGHT_MM)))
    hm = h * UNITS[name]
    how = f"{what} {hm / 1000:.2f} m"
    if not PLAUSIBLE_HEIGHT_MM[0] <= hm <= PLAUSIBLE_HEIGHT_MM[1]:
        how += " (implausible for a person; pass --units)"
    return name, UNITS[name], how


# ----------------------------------------------------------------------------- axes
def to_z_up(points: np.ndarray, up_axis: str = "y") -> np.ndarray:
    """Points (..., 3) from a file frame whose up axis is +X, +Y (BVH default) or +Z to Z-up.

    Y up: (x, y, z) -> (x, -z, y) (+90 degrees about X); X up: (x, y, z) -> (y, z, x) (a cyclic permutation);
    Z up: unchanged. All proper rotations, so handedness and left/right are preserved.
    """
    up_axis = str(up_axis).lower()
    if up_axis not in UP_AXES:
        raise ValueError(f"up_axis must be one of {', '.join(UP_AXES)}, got {up_axis!r}")
    p = np.asarray(points, dtype=np.float64)
    if up_axis == "z":
        return p
    if up_axis == "x":
        return np.stack([p[..., 1], p[..., 2], p[..., 0]], -1)
    return p @ Y_UP_TO_Z_UP.T


# ----------------------------------------------------------------------------- T-pose frame
def has_tpose_frame(bvh: Bvh) -> bool:
    """True for the cgspeed conversion's synthetic frame 0: whole-degree angles, root at frame 1's
    position, and a frame 1 that is not whole-degree (real capture)."""
    if bvh.num_frames < 2:
        return False
    rot_cols = np.concatenate(
        [[col for c, col in zip(ch, idx) if c.endswith("rotation")] for ch, idx in zip(bvh.channels, bvh.channel_index)]
        + [[]]
    ).astype(int)
    pos_cols = np.concatenate(
        [[col for c, col in zip(ch, idx) if c.endswith("position")] for ch, idx in zip(bvh.channels, bvh.channel_index)]
        + [[]]
    ).astype(int)
    if len(rot_cols) == 0:
        return False
    f0, f1 = bvh.motion[0, rot_cols], bvh.motion[1, rot_cols]
    whole0 = np.allclose(f0, np.round(f0), atol=1e-6)
    whole1 = np.allclose(f1, np.round(f1), atol=1e-6)
    same_root = np.allclose(bvh.motion[0, pos_cols], bvh.motion[1, pos_cols], atol=1e-3)
    return bool(whole0 and not whole1 and same_root)
