"""Test helpers (not tests): tiny synthetic datasets and pair shards for the trainer, evaluate, predict and
calibration tests.

Built here from the data-model and pair-shard contract (docs/architecture.md) with mvtools' own camera
functions, so these tests do not depend on the synth / augment modules (only the format version comes from
mvtools.augment.pairs, the pair-shard format's owner).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mvtools.augment.pairs import PAIRS_FORMAT_VERSION
from mvtools.camera import (
    Camera,
    look_at,
    project,
    project_pinhole,
    relative_transform,
    tvec_from_center,
    world_to_camera,
)
from mvtools.dataset import DatasetWriter, base_manifest, fsl, poses2d_table, poses3d_table
from mvtools.rotations import rodrigues

# 17-joint rest pose, pelvis at the origin, Z up, mm
REST = np.array(
    [
        [0, 0, 0],
        [-130, 0, 0],
        [-130, 0, -450],
        [-130, 0, -900],
        [130, 0, 0],
        [130, 0, -450],
        [130, 0, -900],
        [0, 0, 230],
        [0, 0, 480],
        [0, 0, 580],
        [0, 0, 680],
        [170, 0, 450],
        [190, 0, 170],
        [200, 0, -80],
        [-170, 0, 450],
        [-190, 0, 170],
        [-200, 0, -80],
    ],
    float,
)
# (joint indices moved, pivot joint, angle range degrees) rotations about the body's x axis
LIMBS = [
    ([12, 13], 11, (-120, 40)),
    ([13], 12, (-100, 0)),
    ([15, 16], 14, (-120, 40)),
    ([16], 15, (-100, 0)),
    ([2, 3], 1, (-60, 40)),
    ([3], 2, (0, 90)),
    ([5, 6], 4, (-60, 40)),
    ([6], 5, (0, 90)),
    ([8, 9, 10, 11, 12, 13, 14, 15, 16], 7, (-30, 30)),
]


def make_poses(n: int, rng, spread_mm: float = 800.0) -> np.ndarray:
    """(n, 17, 3) world mm: limb rotations, a random yaw and a random position on the floor within
    +-``spread_mm`` of the origin in x and y."""
    P = np.broadcast_to(REST, (n, 17, 3)).copy()
    for joints, pivot, (lo, hi) in LIMBS:
        ang = np.radians(rng.uniform(lo, hi, n))
        R = rodrigues(np.stack([ang, np.zeros(n), np.zeros(n)], -1))
        piv = P[:, pivot : pivot + 1]
        P[:, joints] = np.einsum("nij,nkj->nki", R, P[:, joints] - piv) + piv
    yaw = rng.uniform(-np.pi, np.pi, n)
    Rz = rodrigues(np.stack([np.zeros(n), np.zeros(n), yaw], -1))
    P = np.einsum("nij,nkj->nki", Rz, P)
    P[:, :, :2] += rng.uniform(-spread_mm, spread_mm, (n, 1, 2))
    P[:, :, 2] += 950
    return P


def make_cameras(subject: str, n_cams: int = 4, distortion: bool = True) -> list[Camera]:
    az = np.radians(np.arange(n_cams) * 360.0 / n_cams + 45.0)
    C = np.stack([4500 * np.cos(az), 4500 * np.sin(az), np.full(n_cams, 1500.0)], -1)
    out = []
    for i in range(n_cams):
        R = look_at(C[i], np.array([0.0, 0.0, 900.0]))
        out.append(
            Camera(
                camera=f"cam{i}",
                width=1000,
                height=1000,
                fx=1100.0 + 20 * i,
                fy=1100.0 + 20 * i,
                cx=500.0 + 5 * i,
                cy=505.0 - 3 * i,
                R=R,
                t=tvec_from_center(R, C[i]),
                k=(-0.2, 0.2, -0.01) if distortion else (0.0, 0.0, 0.0),
                p=(-0.001, -0.001) if distortion else (0.0, 0.0),
                distortion_model="h36m" if distortion else "none",
                subject=subject,
                source="given",
            )
        )
    return out


def make_dataset(
    out, subjects=("S1", "S2", "S9"), test=("S9",), frames=40, n_cams=4, seed=0, detected_noise=0.0, extras=False
) -> Path:
    """A dataset directory with poses3d, poses2d (gt and detected) and given cameras (H36M distortion).

    ``extras``: MPI-INF-3DHP-style hooks: poses3d columns ``valid`` (every third frame False), ``scene``
    ("studio" for even frames, else "outdoor") and ``joints3d_univ`` (the pose scaled by 0.9 about the pelvis),
    and manifest ``evaluation`` = {"reference_column": "joints3d_univ", "root_joint": 0}."""
    rng = np.random.default_rng(seed)
    cams = []
    with DatasetWriter(out) as w:
        for s in subjects:
            rigcams = make_cameras(s, n_cams)
            cams += rigcams
            for _a, action in enumerate(["Walk", "Sit"]):
                P = make_poses(frames, rng)
                fr = np.arange(frames)
                t3 = poses3d_table(action, 1, f"{action} 1", fr, P.astype(np.float32))
                if extras:
                    univ = P[:, :1] + 0.9 * (P - P[:, :1])
                    t3 = (
                        t3.append_column("valid", pa.array(fr % 3 != 0))
                        .append_column("scene", pa.array(np.where(fr % 2 == 0, "studio", "outdoor")))
                        .append_column("joints3d_univ", fsl(univ))
                    )
                w.add_poses3d(s, t3)
                for cam in rigcams:
                    uv = project(P, cam)
                    w.add_poses2d(s, poses2d_table(action, 1, f"{action} 1", fr, cam.camera, uv, None, "gt"))
                    det = uv + rng.normal(0, detected_noise, uv.shape) if detected_noise else uv
                    conf = np.clip(1 - rng.uniform(0, 0.3, (frames, 17)), 0, 1) if detected_noise else None
                    w.add_poses2d(s, poses2d_table(action, 1, f"{action} 1", fr, cam.camera, det, conf, "detected"))
        w.set_cameras(cams)
        train = [s for s in subjects if s not in test]
        extra = {"evaluation": {"reference_column": "joints3d_univ", "root_joint": 0}} if extras else {}
        w.commit(base_manifest("synthetic-test", {"train": train, "test": list(test)}, 50.0, command="test", **extra))
    return Path(out)


def make_shards(
    ds, pairs_per_frame: int | None = None, seed: int = 0, extrinsics: str = "given", noise_px: float = 0.0
) -> Path:
    """pairs/ for ``ds`` built from its poses3d and given cameras (exact pinhole 2D, optional noise)."""
    from mvtools.dataset import joints_to_numpy, read_cameras, read_manifest, read_poses3d, rig

    ds = Path(ds)
    man = read_manifest(ds)
    cams = read_cameras(ds, source="given")
    rng = np.random.default_rng(seed)
    pdir = ds / "pairs"
    shards, rows = [], {}
    for split in ("train", "test"):
        cols: dict[str, list] = {}
        for s in man["splits"][split]:
            r = rig(cams, s)
            ids = list(r)
            t3 = read_poses3d(ds, [s])
            P = joints_to_numpy(t3.column("joints3d"), 3).astype(np.float64)
            n = len(P)
            pairs = [(a, b) for a in ids for b in ids if a != b]
            if pairs_per_frame:
                pairs = [pairs[i] for i in rng.choice(len(pairs), pairs_per_frame, replace=False)]
            for a, b in pairs:
                ca, cb = r[a], r[b]
                Ya = world_to_camera(P, ca.R, ca.t)
                Yb = world_to_camera(P, cb.R, cb.t)
                Rab, tab = relative_transform(ca.R, ca.t, cb.R, cb.t)
                Rba, tba = relative_transform(cb.R, cb.t, ca.R, ca.t)
                xa = project_pinhole(Ya, ca.intrinsics) + rng.normal(0, noise_px, (n, 17, 2)) * (noise_px > 0)
                xb = project_pinhole(Yb, cb.intrinsics) + rng.normal(0, noise_px, (n, 17, 2)) * (noise_px > 0)
                add = {
                    "subject": pa.array(np.full(n, s, object), pa.string()),
                    "action": t3.column("action").combine_chunks(),
                    "subaction": t3.column("subaction").combine_chunks(),
                    "frame": t3.column("frame").combine_chunks(),
                    "cam_a": pa.array(np.full(n, a, object), pa.string()),
                    "cam_b": pa.array(np.full(n, b, object), pa.string()),
                    "kind_a": pa.array(np.full(n, "real", object), pa.string()),
                    "kind_b": pa.array(np.full(n, "real", object), pa.string()),
                    "x2d_a": fsl(xa),
                    "x2d_b": fsl(xb),
                    "conf_a": fsl(np.ones((n, 17))),
                    "conf_b": fsl(np.ones((n, 17))),
                    "K_a": fsl(np.tile(ca.intrinsics, (n, 1))),
                    "K_b": fsl(np.tile(cb.intrinsics, (n, 1))),
                    "size_a": fsl(np.tile([ca.width, ca.height], (n, 1))),
                    "size_b": fsl(np.tile([cb.width, cb.height], (n, 1))),
                    "R_ab": fsl(np.tile(Rab.reshape(9), (n, 1))),
                    "R_ba": fsl(np.tile(Rba.reshape(9), (n, 1))),
                    "t_ab": fsl(np.tile(tab, (n, 1))),
                    "t_ba": fsl(np.tile(tba, (n, 1))),
                    "y3d_a": fsl(Ya),
                    "y3d_b": fsl(Yb),
                }
                for k, v in add.items():
                    cols.setdefault(k, []).append(v)
        if not cols:
            continue
        table = pa.table({k: pa.concat_arrays(v) for k, v in cols.items()})
        rel = f"{split}/part-00000.parquet"
        (pdir / split).mkdir(parents=True, exist_ok=True)
        pq.write_table(table, pdir / rel)
        shards.append({"path": rel, "split": split, "rows": table.num_rows})
        rows[split] = table.num_rows
    manifest = {
        "format_version": PAIRS_FORMAT_VERSION,
        "extrinsics": extrinsics,
        "views": "real",
        "virtual_views": 0,
        "pairs_per_frame": pairs_per_frame,
        "source2d": "gt",
        "seed": seed,
        "splits": man["splits"],
        "shards": shards,
        "rows": rows,
    }
    (pdir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return pdir
