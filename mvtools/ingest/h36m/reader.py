"""Raw Human3.6M ingest: CDF trees and VideoPose3D ``.npz`` files into an mvtools dataset.

Reads ``<root>/S1/MyPoseFeatures/D3_Positions/<seq>.cdf`` (32 joints, world mm) and, when present,
``D2_Positions/<seq>.<camera>.cdf`` (32 joints, px), or h36m-fetch's ``[extracted/]S1/Poses_D3_Positions/...``.
Keeps the 17-joint subset, normalises action names and sub-action ids (the irregular per-subject table of
the official ``metadata.xml``), and writes one sequence at a time through :class:`DatasetWriter`.
See docs/h36m.md for the quirks handled and the choices made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from mvtools.camera import Camera, project
from mvtools.dataset import DatasetError, DatasetWriter, base_manifest, poses2d_table, poses3d_table
from mvtools.h36m_cameras import H36M_CAMERA_IDS, H36M_SUBJECTS, H36M_TEST, H36M_TRAIN, h36m_cameras
from mvtools.ingest.h36m.cdf import read_pose_cdf
from mvtools.io import UnsafePickleError, load_npz_restricted, save_npz_atomic
from mvtools.progress import log, progress
from mvtools.skeleton import H36M17_LEFT, H36M17_RIGHT, H36M32_TO_17

FPS = 50.0  # Hz, poses and videos (VideoPose3D MocapDataset(fps=50))

# ----------------------------------------------------------------------------- names and sub-actions
#: Canonical action names (the ``action`` column): the 15 evaluation actions under their usual short names.
ACTIONS = [
    "Directions",
    "Discussion",
    "Eating",
    "Greeting",
    "Phoning",
    "Photo",
    "Posing",
    "Purchases",
    "Sitting",
    "SittingDown",
    "Smoking",
    "Waiting",
    "WalkDog",
    "Walking",
    "WalkTogether",
]

#: Raw file-name prefixes that differ from the canonical action name (S1 uses the long forms).
ACTION_ALIASES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog", "WalkingTogether": "WalkTogether"}

_TABLE_SUBJECTS = ("S1", "S5", "S6", "S7", "S8", "S9", "S11")
#: metadata.xml <mapping>: per action, per subject (S1, S5, S6, S7, S8, S9, S11) the raw file names of
#: sub-action 1 and sub-action 2 (h36m_facts.md section 3). The suffix is NOT the sub-action id.
_SUBACTION_TABLE = {
    "Directions": [
        ("Directions 1", "Directions"),
        ("Directions 1", "Directions 2"),
        ("Directions 1", "Directions"),
        ("Directions 1", "Directions"),
        ("Directions 1", "Directions"),
        ("Directions 1", "Directions"),
        ("Directions 1", "Directions"),
    ],
    "Discussion": [
        ("Discussion 1", "Discussion"),
        ("Discussion 2", "Discussion 3"),
        ("Discussion 1", "Discussion"),
        ("Discussion 1", "Discussion"),
        ("Discussion 1", "Discussion"),
        ("Discussion 1", "Discussion 2"),
        ("Discussion 1", "Discussion 2"),
    ],
    "Eating": [
        ("Eating 2", "Eating"),
        ("Eating 1", "Eating"),
        ("Eating 1", "Eating 2"),
        ("Eating 1", "Eating"),
        ("Eating 1", "Eating"),
        ("Eating 1", "Eating"),
        ("Eating 1", "Eating"),
    ],
    "Greeting": [
        ("Greeting 1", "Greeting"),
        ("Greeting 1", "Greeting 2"),
        ("Greeting 1", "Greeting"),
        ("Greeting 1", "Greeting"),
        ("Greeting 1", "Greeting"),
        ("Greeting 1", "Greeting"),
        ("Greeting 2", "Greeting"),
    ],
    "Phoning": [
        ("Phoning 1", "Phoning"),
        ("Phoning 1", "Phoning"),
        ("Phoning 1", "Phoning"),
        ("Phoning 2", "Phoning"),
        ("Phoning 1", "Phoning"),
        ("Phoning 1", "Phoning"),
        ("Phoning 3", "Phoning 2"),
    ],
    "Posing": [
        ("Posing 1", "Posing"),
        ("Posing 1", "Posing"),
        ("Posing 2", "Posing"),
        ("Posing 1", "Posing"),
        ("Posing 1", "Posing"),
        ("Posing 1", "Posing"),
        ("Posing 1", "Posing"),
    ],
    "Purchases": [("Purchases 1", "Purchases")] * 7,
    "Sitting": [
        ("Sitting 1", "Sitting 2"),
        ("Sitting 1", "Sitting"),
        ("Sitting 1", "Sitting 2"),
        ("Sitting 1", "Sitting"),
        ("Sitting 1", "Sitting"),
        ("Sitting 1", "Sitting"),
        ("Sitting 1", "Sitting"),
    ],
    "SittingDown": [
        ("SittingDown 2", "SittingDown"),
        ("SittingDown", "SittingDown 1"),
        ("SittingDown 1", "SittingDown"),
        ("SittingDown", "SittingDown 1"),
        ("SittingDown", "SittingDown 1"),
        ("SittingDown", "SittingDown 1"),
        ("SittingDown", "SittingDown 1"),
    ],
    "Smoking": [("Smoking 1", "Smoking")] * 6 + [("Smoking 2", "Smoking")],
    "Photo": [
        ("TakingPhoto 1", "TakingPhoto"),
        ("Photo", "Photo 2"),
        ("Photo", "Photo 1"),
        ("Photo", "Photo 1"),
        ("Photo 1", "Photo"),
        ("Photo 1", "Photo"),
        ("Photo 1", "Photo"),
    ],
    "Waiting": [
        ("Waiting 1", "Waiting"),
        ("Waiting 1", "Waiting 2"),
        ("Waiting 3", "Waiting"),
        ("Waiting 1", "Waiting 2"),
        ("Waiting 1", "Waiting"),
        ("Waiting 1", "Waiting"),
        ("Waiting 1", "Waiting"),
    ],
    "Walking": [
        ("Walking 1", "Walking"),
        ("Walking 1", "Walking"),
        ("Walking 1", "Walking"),
        ("Walking 1", "Walking 2"),
        ("Walking 1", "Walking"),
        ("Walking 1", "Walking"),
        ("Walking 1", "Walking"),
    ],
    "WalkDog": [("WalkingDog 1", "WalkingDog")] + [("WalkDog 1", "WalkDog")] * 6,
    "WalkTogether": [("WalkTogether 1", "WalkTogether")] * 4
    + [("WalkTogether 1", "WalkTogether 2")]
    + [("WalkTogether 1", "WalkTogether")] * 2,
}

#: {subject: {raw file name: (action, sub-action)}} built from the table above.
SUBACTIONS: dict[str, dict[str, tuple[str, int]]] = {
    s: {names[i][sub]: (action, sub + 1) for action, names in _SUBACTION_TABLE.items() for sub in (0, 1)}
    for i, s in enumerate(_TABLE_SUBJECTS)
}

#: Known bad data in the release, keyed by (subject, raw name): reported in the manifest, data kept.
KNOWN_ISSUES = {
    ("S11", "Directions"): "video of camera 54138969 is corrupt in the release (VideoPose3D drops this sequence, "
    "so its npz files have no detections for it); 3D and ground-truth 2D kept",
    ("S9", "Greeting"): "damaged: annotations are shifted horizontally relative to the video; kept unchanged",
    ("S9", "SittingDown 1"): "damaged: annotations are shifted horizontally relative to the video; kept unchanged",
    ("S9", "Waiting 1"): "damaged: annotations are shifted horizontally relative to the video; kept unchanged",
}


def videopose3d_key(raw_name: str) -> str:
    """Raw file name -> VideoPose3D's action key (``TakingPhoto 1`` -> ``Photo 1``, ``WalkingDog`` -> ``WalkDog``)."""
    return raw_name.replace("TakingPhoto", "Photo").replace("WalkingDog", "WalkDog")


def parse_sequence_name(subject: str, raw_name: str) -> tuple[str, int, str | None]:
    """(action, sub-action, note) of one raw sequence name of ``subject``.

    Uses the official per-subject table; a name outside it (another subject, or an unexpected file) falls
    back to the canonical prefix and the numeric suffix (0 without one), with a note saying so.
    VideoPose3D keys (``Photo 1`` for S1's ``TakingPhoto 1``) are accepted too.
    """
    table = SUBACTIONS.get(subject, {})
    if raw_name in table:
        a, s = table[raw_name]
        return a, s, None
    for raw, (a, s) in table.items():
        if videopose3d_key(raw) == raw_name:
            return a, s, None
    m = re.fullmatch(r"(.*?)(?: (\d+))?", raw_name.strip())
    prefix, suffix = m.group(1), m.group(2)
    action = ACTION_ALIASES.get(prefix, prefix)
    return (
        action,
        int(suffix) if suffix else 0,
        (f"{subject} {raw_name!r} is not in the H36M sub-action table; sub-action taken from the file-name suffix"),
    )


def raw_name_of(subject: str, key: str) -> str:
    """The raw file name behind a VideoPose3D action key (``S1``, ``Photo 1`` -> ``TakingPhoto 1``)."""
    for raw in SUBACTIONS.get(subject, {}):
        if videopose3d_key(raw) == key:
            return raw
    return key


def raw_name_for(subject: str, action: str, subaction: int) -> str | None:
    """The real file name of (action, sub-action) for ``subject`` (``S1``, ``Photo``, 2 -> ``TakingPhoto``),
    or None outside the table."""
    for raw, key in SUBACTIONS.get(subject, {}).items():
        if key == (action, subaction):
            return raw
    return None


def _is_all(name: str) -> bool:
    return name.startswith("_ALL")


# ----------------------------------------------------------------------------- the raw tree
#: (D3 folder, D2 folder) relative to a subject directory: the plain release, then h36m-fetch's extraction.
TREE_LAYOUTS = {
    "release": ("MyPoseFeatures/D3_Positions", "MyPoseFeatures/D2_Positions"),
    "h36m-fetch": ("Poses_D3_Positions", "Poses_D2_Positions"),
    # mmpose's tools/dataset_converters/preprocess_h36m.py extracts only Videos, D2_Positions and
    # D3_Positions_mono (per camera, camera frame mm) into <extracted>/S1/MyPoseFeatures/: world 3D is then each
    # camera's mono file mapped to the world with the calibration, averaged over the cameras.
    "mmpose": ("MyPoseFeatures/D3_Positions_mono", "MyPoseFeatures/D2_Positions"),
}
#: D3 folders holding one file per sequence *and camera* (camera frame).
MONO_LAYOUTS = ("mmpose",)
#: Mono files mapped to the world may disagree by this much (mm) before a note is written.
MONO_TOLERANCE_MM = 1.0


@dataclass
class RawSequence:
    """One sequence of the raw tree (or of a VideoPose3D 3D file)."""

    subject: str
    action: str
    subaction: int
    raw_name: str
    d3: Path | None = None  # D3_Positions file
    d2: dict[str, Path] = field(default_factory=dict)  # camera id -> D2_Positions file
    joints32: np.ndarray | None = None  # (T, 32|17, 3) mm, when not read from a file
    d3_mono: dict[str, Path] = field(default_factory=dict)  # camera id -> D3_Positions_mono file (mmpose tree)

    @property
    def key(self) -> str:
        """VideoPose3D action key."""
        return videopose3d_key(self.raw_name)


def _subject_order(s: str):
    return (H36M_SUBJECTS.index(s), 0) if s in H36M_SUBJECTS else (len(H36M_SUBJECTS), int(s[1:]))


def find_sequences(root, subjects=None, actions=None) -> tuple[list[RawSequence], list[dict]]:
    """Sequences of a raw H36M tree and notes about skipped files.

    ``root`` holds ``S*/MyPoseFeatures/D3_Positions`` (the release) or ``[extracted/]S*/Poses_D3_Positions``
    (h36m-fetch). ``subjects``/``actions`` filter (actions match the canonical action, the raw name or the
    VideoPose3D key exactly). ``_ALL`` sequences are skipped.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: raw Human3.6M root not found (expected a directory with S1/, S5/, ...)")
    bases = [root] + ([root / "extracted"] if (root / "extracted").is_dir() else [])
    subj_dirs: dict[str, tuple[Path, str]] = {}
    for base in bases:
        for d in sorted(base.iterdir()):
            if not (d.is_dir() and re.fullmatch(r"S\d+", d.name)) or d.name in subj_dirs:
                continue
            for layout, (d3rel, _) in TREE_LAYOUTS.items():
                if (d / d3rel).is_dir():
                    subj_dirs[d.name] = (d, layout)
                    break
    if not subj_dirs:
        raise DatasetError(
            f"{root}: no Human3.6M poses found (expected S1/MyPoseFeatures/D3_Positions/*.cdf, "
            "h36m-fetch's [extracted/]S1/Poses_D3_Positions/*.cdf or mmpose's extracted "
            "S1/MyPoseFeatures/D3_Positions_mono/*.<camera>.cdf)"
        )
    if subjects is not None:
        missing = [s for s in subjects if s not in subj_dirs]
        if missing:
            raise DatasetError(
                f"{root}: subject(s) {', '.join(missing)} not found "
                f"(present: {', '.join(sorted(subj_dirs, key=_subject_order))})"
            )
    notes: list[dict] = []
    seqs: list[RawSequence] = []
    for subject in sorted(subj_dirs, key=_subject_order):
        if subjects is not None and subject not in subjects:
            continue
        sdir, layout = subj_dirs[subject]
        d3dir, d2dir = sdir / TREE_LAYOUTS[layout][0], sdir / TREE_LAYOUTS[layout][1]
        mono = layout in MONO_LAYOUTS
        all_noted: set[str] = set()
        by_name: dict[str, RawSequence] = {}
        seen: dict[tuple, Path] = {}
        for f in sorted(d3dir.glob("*.cdf")):
            name = f.name[:-4]
            if f.name.startswith("."):
                continue
            cam = None
            if mono:
                if "." not in name:
                    notes.append(
                        {
                            "subject": subject,
                            "file": str(f),
                            "issue": "skipped",
                            "message": "D3_Positions_mono file name without a camera suffix",
                        }
                    )
                    continue
                name, cam = name.rsplit(".", 1)
            if _is_all(name):
                if name not in all_noted:
                    notes.append({"subject": subject, "file": str(f), "issue": "skipped", "message": "_ALL sequence"})
                    all_noted.add(name)
                continue
            if not mono and "." in name:
                notes.append(
                    {
                        "subject": subject,
                        "file": str(f),
                        "issue": "skipped",
                        "message": "unexpected camera suffix in a D3_Positions file name",
                    }
                )
                continue
            if name in by_name:  # mono: another camera of a known sequence
                by_name[name].d3_mono[cam] = f
                continue
            action, sub, note = parse_sequence_name(subject, name)
            if (action, sub) in seen:
                raise DatasetError(f"{f}: {subject} {action} sub-action {sub} is also given by {seen[action, sub]}")
            seen[action, sub] = f
            if note:
                notes.append({"subject": subject, "file": str(f), "issue": "name", "message": note})
            by_name[name] = RawSequence(
                subject, action, sub, name, d3=None if mono else f, d3_mono={cam: f} if mono else {}
            )
        if d2dir.is_dir():
            for f in sorted(d2dir.glob("*.cdf")):
                stem = f.name[:-4]
                if f.name.startswith(".") or "." not in stem:
                    continue
                name, cam = stem.rsplit(".", 1)
                if _is_all(name):
                    continue
                if name not in by_name:
                    notes.append(
                        {
                            "subject": subject,
                            "file": str(f),
                            "issue": "skipped",
                            "message": "D2_Positions file without a matching D3_Positions file",
                        }
                    )
                    continue
                by_name[name].d2[cam] = f
        seqs.extend(sorted(by_name.values(), key=lambda q: (q.action, q.subaction)))
    return _filter_actions(seqs, actions, str(root)), notes


def _filter_actions(seqs: list[RawSequence], actions, where: str) -> list[RawSequence]:
    if actions is None:
        return seqs
    wanted = set(actions)
    out = [q for q in seqs if {q.action, q.raw_name, q.key} & wanted]
    known = {n for q in seqs for n in (q.action, q.raw_name, q.key)}
    unknown = sorted(wanted - known)
    if unknown:
        raise DatasetError(
            f"{where}: no sequence matches action(s) {', '.join(unknown)} "
            f"(actions present: {', '.join(sorted({q.action for q in seqs}))})"
        )
    return out


# ----------------------------------------------------------------------------- VideoPose3D npz files
def _load_npz(path, key: str):
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"{p}: no such file")
    try:
        z = load_npz_restricted(p, [key, "metadata"])  # whitelisted unpickling: no code runs from the file
    except UnsafePickleError as e:
        raise DatasetError(str(e)) from None
    except Exception as e:  # zipfile.BadZipFile, EOFError, OSError, pickle errors, ...
        raise DatasetError(f"{p}: not a readable .npz file (truncated or corrupt? {type(e).__name__}: {e})") from None
    files = z["_files"]
    if key not in z:
        raise DatasetError(
            f"{p}: no {key!r} array (found: {', '.join(files) or 'none'}); is this a VideoPose3D .npz file?"
        )
    obj, meta = z[key], z.get("metadata")
    try:
        obj = obj.item() if obj.dtype == object and obj.ndim == 0 else obj
        meta = meta.item() if meta is not None and meta.dtype == object and meta.ndim == 0 else meta
    except Exception as e:
        raise DatasetError(f"{p}: cannot unpack {key!r} ({e})") from None
    if not isinstance(obj, dict) or not all(isinstance(v, dict) for v in obj.values()):
        raise DatasetError(f"{p}: {key!r} must be a dict[subject][action], got {type(obj).__name__}")
    return obj, meta


def load_videopose3d_3d(path) -> dict[str, dict[str, np.ndarray]]:
    """VideoPose3D ``data_3d_h36m.npz``: ``{subject: {action key: (T, 32, 3)}}`` converted to world **mm**.

    The file stores metres; arrays of 17 joints (already the subset) are accepted too.
    """
    p = Path(path)
    data, _ = _load_npz(p, "positions_3d")
    out: dict[str, dict[str, np.ndarray]] = {}
    for subject, acts in data.items():
        for key, a in acts.items():
            a = np.asarray(a)
            where = f"{p}: positions_3d[{subject!r}][{key!r}]"
            if a.ndim != 3 or a.shape[1] not in (32, 17) or a.shape[2] != 3 or a.shape[0] == 0 or a.dtype.kind != "f":
                raise DatasetError(f"{where} must be a float (T, 32, 3) array in metres, got {a.dtype} {a.shape}")
            if not np.isfinite(a).all():
                raise DatasetError(f"{where} holds NaN/inf values")
            if np.abs(a).max() > 100.0:
                raise DatasetError(f"{where} has coordinates beyond 100 m: VideoPose3D 3D files are in metres")
            out.setdefault(str(subject), {})[str(key)] = a.astype(np.float64) * 1000.0
    return out


def load_videopose3d_2d(path) -> tuple[dict, dict]:
    """VideoPose3D 2D file: (``positions_2d`` = {subject: {action key: [4 x (T, 17, 2|3) or None]}}, metadata).

    Checks the nesting, the 17-joint H36M layout and the channel count; camera lists follow
    :data:`H36M_CAMERA_IDS`. Pixel coordinates; a third channel is the confidence (0..1).
    """
    p = Path(path)
    data, meta = _load_npz(p, "positions_2d")
    meta = meta if isinstance(meta, dict) else {}
    layout = meta.get("layout_name")
    if layout not in (None, "h36m"):
        raise DatasetError(f"{p}: keypoint layout {layout!r} is not supported (need the 17-joint 'h36m' layout)")
    if meta.get("num_joints", 17) != 17:
        raise DatasetError(f"{p}: metadata num_joints={meta.get('num_joints')}, need 17 (H36M layout)")
    for subject, acts in data.items():
        for key, lst in acts.items():
            where = f"{p}: positions_2d[{subject!r}][{key!r}]"
            if not isinstance(lst, (list, tuple, np.ndarray)) or len(lst) != len(H36M_CAMERA_IDS):
                raise DatasetError(
                    f"{where} must be a list of {len(H36M_CAMERA_IDS)} per-camera arrays "
                    f"(H36M camera order {', '.join(H36M_CAMERA_IDS)})"
                )
            for i, a in enumerate(lst):
                if a is None:
                    continue
                a = np.asarray(a)
                if a.ndim != 3 or a.shape[1] != 17 or a.shape[2] not in (2, 3) or a.dtype.kind != "f":
                    raise DatasetError(
                        f"{where} camera {H36M_CAMERA_IDS[i]}: expected a float (T, 17, 2) or "
                        f"(T, 17, 3) array, got {a.dtype} {a.shape}"
                    )
    return data, meta


def write_videopose3d_2d(path, positions_2d: dict, metadata: dict | None = None) -> Path:
    """Write a VideoPose3D-layout 2D file (``positions_2d``, ``metadata``) atomically.

    ``positions_2d[subject][action key]`` = list of 4 arrays (T, 17, 2|3) px (+ confidence) or None, in
    H36M camera order. Default metadata: the h36m layout with its left/right symmetry.
    """
    if metadata is None:
        metadata = {"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": [H36M17_LEFT, H36M17_RIGHT]}
    return save_npz_atomic(path, positions_2d=positions_2d, metadata=metadata)


def write_videopose3d_3d(path, positions_3d_mm: dict) -> Path:
    """Write a VideoPose3D-layout ``data_3d_h36m.npz``: ``{subject: {action key: (T, 32, 3) world mm}}``
    stored in metres (float32), as VideoPose3D's prepare_data_h36m.py does."""
    m = {
        s: {k: (np.asarray(a, np.float64) / 1000.0).astype(np.float32) for k, a in acts.items()}
        for s, acts in positions_3d_mm.items()
    }
    return save_npz_atomic(path, positions_3d=m)


def sequences_from_videopose3d(path, subjects=None, actions=None) -> tuple[list[RawSequence], list[dict]]:
    """Sequences of a VideoPose3D ``data_3d_h36m.npz`` (3D in world mm), filtered like :func:`find_sequences`."""
    data = load_videopose3d_3d(path)
    if subjects is not None:
        missing = [s for s in subjects if s not in data]
        if missing:
            raise DatasetError(f"{path}: subject(s) {', '.join(missing)} not found (present: {', '.join(data)})")
    notes, seqs = [], []
    for subject in sorted(data, key=_subject_order):
        if subjects is not None and subject not in subjects:
            continue
        seen: dict[tuple, str] = {}
        mine = []
        for key, a in data[subject].items():
            raw = raw_name_of(subject, key)
            action, sub, note = parse_sequence_name(subject, raw)
            if (action, sub) in seen:
                raise DatasetError(
                    f"{path}: {subject} keys {seen[action, sub]!r} and {key!r} are both {action} sub-action {sub}"
                )
            seen[action, sub] = key
            if note:
                notes.append({"subject": subject, "file": str(path), "issue": "name", "message": note})
            mine.append(RawSequence(subject, action, sub, raw, joints32=a))
        seqs.extend(sorted(mine, key=lambda q: (q.action, q.subaction)))
    return _filter_actions(seqs, actions, str(path)), notes


# ----------------------------------------------------------------------------- ingest
def read_d3(path) -> np.ndarray:
    """D3_Positions file -> (T, 32, 3) world mm (float64)."""
    return read_pose_cdf(path, 96).reshape(-1, 32, 3).astype(np.float64, copy=False)


def read_d2(path) -> np.ndarray:
    """D2_Positions file -> (T, 32, 2) px (float64)."""
    return read_pose_cdf(path, 64).reshape(-1, 32, 2).astype(np.float64, copy=False)


def load_cameras(cameras_file=None) -> list[Camera]:
    """Built-in H36M calibration, or a JSON file in the same layout; rejects cameras H36M does not have."""
    cams = h36m_cameras(cameras_file)
    where = str(cameras_file) if cameras_file is not None else "built-in calibration"
    for c in cams:
        if c.camera not in H36M_CAMERA_IDS:
            raise ValueError(
                f"{where}: unknown camera {c.camera!r} for {c.subject} "
                f"(Human3.6M cameras are {', '.join(H36M_CAMERA_IDS)})"
            )
    if not cams:
        raise ValueError(f"{where}: no cameras with extrinsics")
    return cams


def _rig(cams: list[Camera], subject: str, where: str) -> dict[str, Camera]:
    mine = {c.camera: c for c in cams if c.subject == subject}
    if not mine:
        have = sorted({c.subject for c in cams}, key=_subject_order)
        raise ValueError(
            f"{where}: no cameras for subject {subject} (calibrated subjects: {', '.join(have)}); "
            "leave it out with --subjects or give its calibration with --calibration"
        )
    return {cid: mine[cid] for cid in H36M_CAMERA_IDS if cid in mine}


@dataclass
class _Stats:
    d2_files: int = 0
    projected: int = 0
    d2_max_px: float = 0.0
    d2_sum_px: float = 0.0
    d2_count: int = 0
    worst: str = ""
    det_sequences: int = 0
    det_trimmed_frames: int = 0


def _ingest_sequence(
    w: DatasetWriter,
    seq: RawSequence,
    rig: dict[str, Camera],
    dets: dict | None,
    det_path: str,
    notes: list,
    st: _Stats,
    tol_px: float,
    synthetic: bool = False,
) -> int:
    """Read, check, trim and write one sequence; returns the number of frames kept."""
    subj = seq.subject
    if seq.joints32 is not None:
        j = seq.joints32
        j17 = j[:, H36M32_TO_17] if j.shape[1] == 32 else j
        src3 = "videopose3d"
    elif seq.d3 is None:
        j17, src3 = _world_from_mono(seq, rig, notes)
    else:
        j17 = read_d3(seq.d3)[:, H36M32_TO_17]
        src3 = str(seq.d3)
    T3 = len(j17)
    d2 = {}
    for cam, p in seq.d2.items():
        if cam not in rig:
            raise DatasetError(f"{p}: camera {cam!r} has no calibration for {subj} (calibrated: {', '.join(rig)})")
        d2[cam] = read_d2(p)[:, H36M32_TO_17]
    n = min([T3] + [len(a) for a in d2.values()])
    for cam, a in d2.items():
        if len(a) != T3:
            notes.append(
                {
                    "subject": subj,
                    "raw_name": seq.raw_name,
                    "file": str(seq.d2[cam]),
                    "issue": "length",
                    "message": f"D2 has {len(a)} frames, D3 {T3}; kept frames 0..{n - 1}",
                    "d2_frames": len(a),
                    "d3_frames": T3,
                    "kept": n,
                }
            )
    if n < T3:
        notes.append(
            {
                "subject": subj,
                "raw_name": seq.raw_name,
                "file": src3,
                "issue": "length",
                "message": f"3D trimmed from {T3} to {n} frames (shortest D2 file)",
                "d3_frames": T3,
                "kept": n,
            }
        )
    if (subj, seq.raw_name) in KNOWN_ISSUES and not (synthetic and subj == "S9"):  # S9's: the release's video
        notes.append(
            {
                "subject": subj,
                "raw_name": seq.raw_name,
                "file": src3,
                "issue": "known",
                "message": KNOWN_ISSUES[subj, seq.raw_name],
            }
        )
    j17 = j17[:n]
    frames = np.arange(n, dtype=np.int32)
    w.add_poses3d(subj, poses3d_table(seq.action, seq.subaction, seq.raw_name, frames, j17))

    cams = list(rig)
    uv = np.empty((len(cams), n, 17, 2))
    for i, cam in enumerate(cams):
        proj = project(j17, rig[cam])
        if cam in d2:
            uv[i] = d2[cam][:n]
            dev = np.linalg.norm(uv[i] - proj, axis=-1)
            mx = float(dev.max())
            st.d2_files += 1
            st.d2_sum_px += float(dev.sum())
            st.d2_count += dev.size
            if mx >= st.d2_max_px:
                st.d2_max_px, st.worst = mx, str(seq.d2[cam])
            if mx > tol_px:
                notes.append(
                    {
                        "subject": subj,
                        "raw_name": seq.raw_name,
                        "file": str(seq.d2[cam]),
                        "issue": "d2_projection",
                        "message": f"D2 differs from the projection of D3 by up to {mx:.2f} px "
                        f"(tolerance {tol_px} px): check the calibration",
                    }
                )
        else:
            uv[i] = proj
            st.projected += 1
    w.add_poses2d(
        subj,
        poses2d_table(
            seq.action,
            seq.subaction,
            seq.raw_name,
            np.tile(frames, len(cams)),
            np.repeat(cams, n),
            uv.reshape(-1, 17, 2),
            None,
            "gt",
        ),
    )

    if dets is not None:
        _add_detections(w, seq, rig, dets, det_path, n, notes, st)
    return n


def _world_from_mono(seq: RawSequence, rig: dict[str, Camera], notes: list) -> tuple[np.ndarray, str]:
    """World joints (T, 17, 3) mm of a sequence given as per-camera D3_Positions_mono files (mmpose's tree):
    each camera's file mapped to the world (``X_world = R^T (X_cam - t)``), cut to the shortest, averaged; a note
    when the cameras disagree by more than :data:`MONO_TOLERANCE_MM`."""
    per = {}
    for cam, p in sorted(seq.d3_mono.items()):
        if cam not in rig:
            raise DatasetError(
                f"{p}: camera {cam!r} has no calibration for {seq.subject} (calibrated: {', '.join(rig)})"
            )
        Xc = read_pose_cdf(p, 96).reshape(-1, 32, 3).astype(np.float64, copy=False)[:, H36M32_TO_17]
        per[cam] = (Xc - rig[cam].t) @ rig[cam].R
    n = min(len(a) for a in per.values())
    W = np.stack([a[:n] for a in per.values()])
    X = W.mean(0)
    dis = float(np.abs(W - X).max()) if n else 0.0
    first = str(next(iter(sorted(seq.d3_mono.values()))))
    if dis > MONO_TOLERANCE_MM or any(len(a) != n for a in per.values()):
        notes.append(
            {
                "subject": seq.subject,
                "raw_name": seq.raw_name,
                "file": first,
                "issue": "mono",
                "message": f"D3_Positions_mono of cameras {', '.join(per)} mapped to the world disagree by up "
                f"to {dis:.2f} mm (lengths {[len(a) for a in per.values()]}, kept {n}): check the "
                f"calibration",
            }
        )
    return X, first


def _add_detections(w, seq, rig, dets, det_path, n, notes, st) -> None:
    entry = dets.get(seq.subject, {}).get(seq.key)
    if entry is None:
        notes.append(
            {
                "subject": seq.subject,
                "raw_name": seq.raw_name,
                "file": det_path,
                "issue": "detections",
                "message": f"no detections for {seq.subject} {seq.key!r}",
            }
        )
        return
    frames = np.arange(n, dtype=np.int32)
    tables = []
    for cam, a in zip(H36M_CAMERA_IDS, entry):
        if a is None:
            notes.append(
                {
                    "subject": seq.subject,
                    "raw_name": seq.raw_name,
                    "file": det_path,
                    "issue": "detections",
                    "message": f"no detections for camera {cam}",
                }
            )
            continue
        if cam not in rig:
            continue
        a = np.asarray(a)
        where = f"{det_path}: detections of {seq.subject} {seq.key!r} camera {cam}"
        if len(a) < n:
            raise DatasetError(f"{where} have {len(a)} frames, fewer than the {n} frames of 3D")
        st.det_trimmed_frames += len(a) - n
        a = a[:n]
        if not np.isfinite(a).all():
            bad = np.flatnonzero(~np.isfinite(a).all(axis=(1, 2)))
            raise DatasetError(f"{where} hold NaN/inf values ({bad.size} frames, first {bad[0]})")
        conf = a[..., 2] if a.shape[2] == 3 else None
        tables.append(poses2d_table(seq.action, seq.subaction, seq.raw_name, frames, cam, a[..., :2], conf, "detected"))
    if tables:
        st.det_sequences += 1
        w.add_poses2d(seq.subject, pa.concat_tables(tables))


def ingest_h36m(
    raw_root,
    out,
    subjects=None,
    actions=None,
    cameras_file=None,
    detections=None,
    from_videopose3d=None,
    d2_tolerance_px: float = 1.0,
    drop_s11_directions: bool = False,
    overwrite: bool = False,
) -> dict:
    """Ingest Human3.6M into dataset directory ``out`` (atomic) and return a summary dict.

    raw_root: raw tree (see :func:`find_sequences`), or None with ``from_videopose3d`` = VideoPose3D
    ``data_3d_h36m.npz`` (metres). subjects/actions: filters. cameras_file: JSON in the layout of
    mvtools/data/h36m_cameras.json (default: built in). detections: VideoPose3D-layout 2D ``.npz`` stored
    as source ``detected``. d2_tolerance_px: D2 files deviating more than this from the projection of D3
    are reported. drop_s11_directions: leave out S11 Directions (camera 54138969's video is corrupt; VideoPose3D
    drops it). A raw tree written by ``mvtools synth h36m`` (it holds ``synth.json``) gets no "damaged" notes for
    S9 (they describe the release's annotations, not synthetic ones; the S11 Directions note stays, since the
    synthetic detections leave that sequence out like VideoPose3D's). Memory is bounded by one sequence (plus
    the npz inputs, which are single pickles).
    """
    if (raw_root is None) == (from_videopose3d is None):
        raise ValueError("give either a raw Human3.6M root or --from-videopose3d FILE (exactly one)")
    cams = load_cameras(cameras_file)
    cam_where = str(cameras_file) if cameras_file is not None else "built-in calibration"
    if raw_root is not None:
        seqs, notes = find_sequences(raw_root, subjects, actions)
        source = {
            "kind": "raw",
            "root": str(Path(raw_root).absolute()),
            "layout": sorted({"mmpose" if q.d3_mono else "release/h36m-fetch" for q in seqs}),
        }
    else:
        seqs, notes = sequences_from_videopose3d(from_videopose3d, subjects, actions)
        source = {"kind": "videopose3d", "file": str(Path(from_videopose3d).absolute())}
    synthetic = raw_root is not None and (Path(raw_root) / "synth.json").is_file()
    if drop_s11_directions:
        dropped = [q for q in seqs if q.subject == "S11" and q.action == "Directions"]
        seqs = [q for q in seqs if q not in dropped]
        notes.extend(
            {
                "subject": "S11",
                "raw_name": q.raw_name,
                "file": str(q.d3 or raw_root or from_videopose3d),
                "issue": "dropped",
                "message": "left out (--drop-s11-directions, as VideoPose3D)",
            }
            for q in dropped
        )
    if not seqs:
        raise DatasetError(f"{raw_root or from_videopose3d}: no sequences to ingest")
    present = list(dict.fromkeys(q.subject for q in seqs))
    rigs = {s: _rig(cams, s, cam_where) for s in present}
    dets, det_path = None, None
    if detections is not None:
        det_path = str(detections)
        dets, _ = load_videopose3d_2d(detections)
    source.update(cameras=cam_where, detections=det_path)

    st = _Stats()
    frames_total = 0
    with DatasetWriter(out, [raw_root, cameras_file, detections, from_videopose3d], overwrite) as w:
        with progress(seqs, label="ingest h36m") as bar:
            for seq in bar:
                frames_total += _ingest_sequence(
                    w, seq, rigs[seq.subject], dets, det_path, notes, st, d2_tolerance_px, synthetic
                )
        w.set_cameras([c for s in present for c in rigs[s].values()])
        gt2d = {
            "from_d2_files": st.d2_files,
            "projected": st.projected,
            "d2_tolerance_px": d2_tolerance_px,
            "d2_max_deviation_px": round(st.d2_max_px, 6) if st.d2_files else None,
            "d2_mean_deviation_px": round(st.d2_sum_px / st.d2_count, 6) if st.d2_count else None,
            "d2_worst_file": st.worst or None,
        }
        det = None
        if dets is not None:
            used = {(q.subject, q.key) for q in seqs}
            unused = sorted(f"{s}/{k}" for s, acts in dets.items() for k in acts if (s, k) not in used)
            det = {
                "file": det_path,
                "sequences": st.det_sequences,
                "trimmed_frames": st.det_trimmed_frames,
                "unused_entries": len(unused),
                "unused_subjects": sorted({u.split("/")[0] for u in unused}),
            }
        manifest = base_manifest(
            "h36m",
            splits={"train": [s for s in H36M_TRAIN if s in present], "test": [s for s in H36M_TEST if s in present]},
            fps=FPS,
            subjects=present,
            source=source,
            sequences=len(seqs),
            gt2d=gt2d,
            detections=det,
            notes=notes,
        )
        path = w.commit(manifest)
        rows = dict(w.rows)
    shown = [nt for nt in notes if nt["issue"] in ("length", "d2_projection")]
    for nt in shown[:10]:
        log(f"note: {nt['file']}: {nt['message']}")
    if len(shown) > 10:
        log(f"note: ... and {len(shown) - 10} more (manifest.json 'notes')")
    return {
        "out": str(path),
        "subjects": present,
        "sequences": len(seqs),
        "frames": frames_total,
        "rows": rows,
        "gt2d": gt2d,
        "detections": det,
        "notes": notes,
    }
