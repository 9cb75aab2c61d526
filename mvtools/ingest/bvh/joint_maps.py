"""Joint maps: which BVH joints (or weighted means of them) give each of the 17 H36M joints."""
from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np

from mvtools.dataset import DatasetError
from mvtools.io import read_json
from mvtools.skeleton import H36M17_NAMES


def builtin_joint_maps() -> list[str]:
    """Names of the joint maps shipped in mvtools/data (``joint_map_<name>.json``)."""
    d = resources.files("mvtools").joinpath("data")
    return sorted(p.name[len("joint_map_"):-5] for p in d.iterdir()
                  if p.name.startswith("joint_map_") and p.name.endswith(".json"))


def load_joint_map(spec="cmu") -> dict:
    """A joint map: built-in name (``cmu``), path to a JSON file, or an already loaded dict.

    Format: ``{"up_axis": "y", "joints": {<h36m17 name>: <source>}}`` where a source is a BVH joint
    name (``"Hips"``, End Sites as ``"Head_End"``), a list of names (their mean), or ``{name: weight}``
    (weighted sum; weights sum to 1). All 17 H36M joints are required.
    """
    where = "joint map"
    if isinstance(spec, dict):
        data = spec
    else:
        s = str(spec)
        if s in builtin_joint_maps():
            where = f"built-in joint map {s!r}"
            data = json.loads(resources.files("mvtools").joinpath(f"data/joint_map_{s}.json").read_text())
        else:
            p = Path(s)
            where = str(p)
            if not p.exists():
                raise ValueError(f"{p}: joint map not found (built-in maps: {', '.join(builtin_joint_maps())})")
            data = read_json(p, "joint map")
    joints = data.get("joints") if isinstance(data, dict) else None
    if not isinstance(joints, dict):
        raise ValueError(f"{where}: expected an object with a 'joints' object")
    missing = [n for n in H36M17_NAMES if n not in joints]
    unknown = [n for n in joints if n not in H36M17_NAMES]
    if missing or unknown:
        raise ValueError(f"{where}: " + "; ".join(
            ([f"missing H36M joint(s) {missing}"] if missing else []) +
            ([f"unknown H36M joint(s) {unknown} (names: {', '.join(H36M17_NAMES)})"] if unknown else [])))
    norm = {}
    for k, v in joints.items():
        if isinstance(v, str):
            norm[k] = {v: 1.0}
        elif isinstance(v, list) and v and all(isinstance(x, str) for x in v):
            norm[k] = {x: 1.0 / len(v) for x in v}
        elif isinstance(v, dict) and v and all(isinstance(w, (int, float)) for w in v.values()):
            tot = float(sum(v.values()))
            if abs(tot - 1.0) > 1e-6:
                raise ValueError(f"{where}: weights of {k!r} sum to {tot}, not 1")
            norm[k] = {x: float(w) for x, w in v.items()}
        else:
            raise ValueError(f"{where}: source of {k!r} must be a joint name, a list of names or "
                             f"{{name: weight}}, got {v!r}")
    up = str(data.get("up_axis", "y")).lower()
    if up not in ("y", "z"):
        raise ValueError(f"{where}: up_axis must be 'y' or 'z', got {up!r}")
    return {"name": data.get("name", where), "up_axis": up, "joints": norm}


def joint_map_matrix(names: list[str], joint_map: dict, path: str = "") -> np.ndarray:
    """(17, J) weights turning BVH joint positions (T, J, 3) into H36M-17 joints (T, 17, 3)."""
    W = np.zeros((len(H36M17_NAMES), len(names)))
    missing = set()
    for i, h in enumerate(H36M17_NAMES):
        for src, w in joint_map["joints"][h].items():
            if src not in names:
                missing.add(src)
                continue
            W[i, names.index(src)] += w
    if missing:
        raise DatasetError(f"{path}: joint(s) {sorted(missing)} named by {joint_map['name']} are not in the "
                           f"file (it has {', '.join(names)}); pass --joint-map FILE.json")
    return W


def apply_joint_map(positions: np.ndarray, W: np.ndarray) -> np.ndarray:
    """BVH positions (T, J, 3) and weights (17, J) -> H36M-17 positions (T, 17, 3)."""
    return np.einsum("kj,tjd->tkd", W, positions)
