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
    return sorted(
        p.name[len("joint_map_") : -5]
        for p in d.iterdir()
        if p.name.startswith("joint_map_") and p.name.endswith(".json")
    )


#: Order in which ``--joint-map auto`` tries the built-in maps (the most specific first).
AUTO_ORDER = ("cmu", "mixamo", "lafan1", "humanik", "bandai", "biovision", "biovision-uparm")


def _normalise_sources(v, k: str, where: str) -> dict[str, float]:
    if isinstance(v, str):
        return {v: 1.0}
    if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
        return {x: 1.0 / len(v) for x in v}
    if isinstance(v, dict) and v and all(isinstance(w, (int, float)) for w in v.values()):
        tot = float(sum(v.values()))
        if abs(tot - 1.0) > 1e-6:
            raise ValueError(f"{where}: weights of {k!r} sum to {tot}, not 1")
        return {x: float(w) for x, w in v.items()}
    raise ValueError(f"{where}: source of {k!r} must be a joint name, a list of names or {{name: weight}}, got {v!r}")


def load_joint_map(spec="cmu") -> dict:
    """A joint map: built-in name (``cmu``, ``mixamo``, ...; :func:`builtin_joint_maps`), path to a JSON file,
    or an already loaded dict. (``auto`` is resolved per file by :func:`choose_joint_map`.)

    Format: ``{"up_axis": "y", "joints": {<h36m17 name>: <source>}}`` where a source is a BVH joint
    name (``"Hips"``, End Sites as ``"Head_End"``), a list of names (their mean), or ``{name: weight}``
    (weighted sum; weights sum to 1, so ``{"Head": 2.5, "Neck": -1.5}`` extrapolates). All 17 H36M joints are
    required. Optional: ``"up_axis"`` (x, y or z; default: detected from the data), ``"derived"`` (sources
    used for a joint when the file lacks a joint named by ``joints``, e.g. a head top for files without a
    head End Site) and ``"detect"`` (names a file must have for ``auto`` to pick this map).
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
                raise ValueError(f"{p}: joint map not found (built-in maps: auto, {', '.join(builtin_joint_maps())})")
            data = read_json(p, "joint map")
    joints = data.get("joints") if isinstance(data, dict) else None
    if not isinstance(joints, dict):
        raise ValueError(f"{where}: expected an object with a 'joints' object")
    missing = [n for n in H36M17_NAMES if n not in joints]
    unknown = [n for n in joints if n not in H36M17_NAMES]
    if missing or unknown:
        raise ValueError(
            f"{where}: "
            + "; ".join(
                ([f"missing H36M joint(s) {missing}"] if missing else [])
                + ([f"unknown H36M joint(s) {unknown} (names: {', '.join(H36M17_NAMES)})"] if unknown else [])
            )
        )
    norm = {k: _normalise_sources(v, k, where) for k, v in joints.items()}
    derived = data.get("derived") or {}
    if not isinstance(derived, dict) or any(k not in H36M17_NAMES for k in derived):
        raise ValueError(f"{where}: 'derived' must map H36M joint names to sources")
    derived = {k: _normalise_sources(v, k, where) for k, v in derived.items()}
    up = data.get("up_axis")
    if up is not None:
        up = str(up).lower()
        if up not in ("x", "y", "z"):
            raise ValueError(f"{where}: up_axis must be 'x', 'y' or 'z', got {up!r}")
    detect = [str(x) for x in data.get("detect", [])]
    return {"name": data.get("name", where), "up_axis": up, "joints": norm, "derived": derived, "detect": detect}


def _resolver(names: list[str]):
    """name -> index in ``names``: an exact match, else the one joint whose name without a namespace prefix
    (``mixamorig:Hips`` -> ``Hips``) is that name; None when absent or ambiguous."""
    exact = {n: i for i, n in enumerate(names)}
    bare: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        if ":" in n:
            bare.setdefault(n.rsplit(":", 1)[1], []).append(i)

    def find(name: str):
        if name in exact:
            return exact[name]
        hits = bare.get(name, [])
        return hits[0] if len(hits) == 1 else None

    return find


def _map_sources(names: list[str], joint_map: dict) -> tuple[dict, set, list]:
    """({h36m joint: {index: weight}}, missing names, joints taken from 'derived')."""
    find = _resolver(names)
    out, missing, derived_used = {}, set(), []
    for h in H36M17_NAMES:
        src = joint_map["joints"][h]
        idx = {n: find(n) for n in src}
        if any(i is None for i in idx.values()) and h in joint_map.get("derived", {}):
            alt = {n: find(n) for n in joint_map["derived"][h]}
            if all(i is not None for i in alt.values()):
                src, idx = joint_map["derived"][h], alt
                derived_used.append(h)
        missing |= {n for n, i in idx.items() if i is None}
        out[h] = {idx[n]: w for n, w in src.items() if idx[n] is not None}
    return out, missing, derived_used


def joint_map_matrix(names: list[str], joint_map: dict, path: str = "") -> np.ndarray:
    """(17, J) weights turning BVH joint positions (T, J, 3) into H36M-17 joints (T, 17, 3).

    Names match exactly or without a namespace prefix (``mixamorig:``); a joint whose sources the file lacks
    uses the map's ``derived`` sources when it has them."""
    src, missing, _ = _map_sources(names, joint_map)
    if missing:
        raise DatasetError(
            f"{path}: joint(s) {sorted(missing)} named by {joint_map['name']} are not in the "
            f"file (it has {', '.join(names)}); pass --joint-map FILE.json"
        )
    W = np.zeros((len(H36M17_NAMES), len(names)))
    for i, h in enumerate(H36M17_NAMES):
        for j, w in src[h].items():
            W[i, j] += w
    return W


def derived_joints(names: list[str], joint_map: dict) -> list[str]:
    """H36M joints that ``joint_map`` derives (from its ``derived`` sources) for a file with ``names``."""
    return _map_sources(names, joint_map)[2]


def choose_joint_map(names: list[str], path: str = "") -> dict:
    """The first built-in map (in :data:`AUTO_ORDER`) whose joints (or derived joints) and ``detect`` names
    are all in the file; a :class:`DatasetError` listing what each map lacks when none fits."""
    lacks = {}
    find = _resolver(names)
    for name in AUTO_ORDER:
        jm = load_joint_map(name)
        _, missing, _ = _map_sources(names, jm)
        missing |= {n for n in jm["detect"] if find(n) is None}
        if not missing:
            return jm
        lacks[name] = sorted(missing)
    detail = "; ".join(f"{k} lacks {', '.join(v[:4])}{' ...' if len(v) > 4 else ''}" for k, v in lacks.items())
    raise DatasetError(
        f"{path}: no built-in joint map fits this skeleton ({detail}); the file has joints "
        f"{', '.join(names)}: write a --joint-map FILE.json (format in docs/bvh.md)"
    )


def apply_joint_map(positions: np.ndarray, W: np.ndarray) -> np.ndarray:
    """BVH positions (T, J, 3) and weights (17, J) -> H36M-17 positions (T, 17, 3)."""
    return np.einsum("kj,tjd->tkd", W, positions)
