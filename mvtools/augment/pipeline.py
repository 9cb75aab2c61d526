"""``augment()``: virtual cameras, their 2D poses, and the training pair shards of a dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mvtools.augment.pairs import (
    PAIRS_FORMAT_VERSION,
    ShardWriter,
    pair_table,
    pair_transforms,
    sample_pairs,
    view_pairs,
)
from mvtools.augment.sequences import SequenceWriter, fill_from_valid, sequence_table
from mvtools.augment.virtual import (
    LAYOUTS,
    camera_frame,
    map_camera,
    place_virtual_cameras,
    project_virtual,
    similarity_to,
)
from mvtools.camera import Camera, has_extrinsics, intrinsics_only, undistort_pixels
from mvtools.dataset import (
    INPUT_SOURCES,
    POSES2D_SCHEMA,
    VIEWS,
    DatasetError,
    joints_to_numpy,
    list_to_numpy,
    poses2d_table,
    producer,
    read_cameras,
    read_manifest,
    read_poses3d,
    replace_cameras,
    replace_poses2d_files,
    rig,
    subjects_in,
    write_manifest,
)
from mvtools.dataset import _dataset as _poses2d_dataset
from mvtools.io import OutputError, claim_output, pause_point, staged_update, write_json_atomic
from mvtools.progress import log, progress
from mvtools.seeding import stable_rng
from mvtools.skeleton import NUM_JOINTS, ROOT
from mvtools.synth.noise import resolve_noise, simulate_detections

EXTRINSICS = ("given", "estimated")
SOURCES = INPUT_SOURCES


def default_source(ds, subjects) -> str:
    """``detected`` when every subject has detected 2D files, ``gt`` when none has; some but not all is an error
    (a missing detections file never silently switches a run to ground truth)."""
    root = Path(ds) / "poses2d"
    has = [any((root / f"subject={s}").glob("detected-*.parquet")) for s in subjects]
    if any(has) and not all(has):
        lack = [s for s, h in zip(subjects, has, strict=True) if not h]
        raise DatasetError(
            f"{root}: no detected 2D for subject(s) {', '.join(lack)} (the others have); pass "
            "--source gt to use ground-truth 2D, or ingest their detections"
        )
    if not any(has):
        log(f"{root}: no detected 2D in the dataset; using ground-truth 2D (source gt)")
    return "detected" if has and all(has) else "gt"


def _check_source(ds, subject: str, source: str) -> None:
    d = Path(ds) / "poses2d" / f"subject={subject}"
    if not any(d.glob(f"{source}-*.parquet")):
        raise DatasetError(f"{d}: no {source} 2D poses for subject {subject} (use --source gt or ingest detections)")


def _sequence_keys(action: pa.ChunkedArray, subaction: np.ndarray, frame: np.ndarray, names: pa.Array):
    """int64 keys (action index, subaction, frame) sorting by sequence then frame; -1 where action not in names."""
    idx = pc.index_in(action, value_set=names).to_numpy(zero_copy_only=False)
    idx = np.where(np.isnan(idx), -1, idx).astype(np.int64) if idx.dtype.kind == "f" else idx.astype(np.int64)
    seq = (idx << 16) | (np.asarray(subaction, np.int64) & 0xFFFF)
    return np.where(idx >= 0, (seq << 32) | (np.asarray(frame, np.int64) & 0xFFFFFFFF), -1)


def _subject_3d(ds, subject: str):
    """The subject's 3D rows sorted by (action, subaction, frame): dict of arrays and per-sequence slices."""
    t = read_poses3d(ds, [subject], columns=["action", "subaction", "raw_name", "frame", "joints3d"])
    if t.num_rows == 0:
        raise DatasetError(f"{Path(ds) / 'poses3d' / f'subject={subject}'}: no 3D poses")
    uniq = pc.unique(t["action"])
    names = pc.take(uniq, pc.array_sort_indices(uniq))
    sub = t["subaction"].to_numpy()
    frame = t["frame"].to_numpy()
    key = _sequence_keys(t["action"], sub, frame, names)
    order = np.argsort(key, kind="stable")
    key = key[order]
    if len(key) > 1 and np.any(key[1:] == key[:-1]):
        raise DatasetError(f"{Path(ds) / 'poses3d' / f'subject={subject}'}: duplicate (action, subaction, frame) rows")
    seq = key >> 32
    starts = np.flatnonzero(np.r_[True, seq[1:] != seq[:-1]])
    ends = np.r_[starts[1:], len(key)]
    first = pa.array(order[starts])
    act = pc.take(t["action"], first).to_pylist()
    raw = pc.take(t["raw_name"], first).to_pylist()
    sub0 = sub[order[starts]]
    return {
        "names": names,
        "key": key,
        "frame": frame[order],
        "X": joints_to_numpy(t["joints3d"], 3)[order],
        "seqs": [(int(s), int(e), act[i], int(sub0[i]), raw[i]) for i, (s, e) in enumerate(zip(starts, ends))],
    }


def _subject_2d(ds, subject: str, source: str, d3: dict, cam_ids: list[str], batch_rows: int = 262144):
    """2D of cameras ``cam_ids`` of one subject aligned to the sorted 3D rows: raw (distorted) x2d (N, C, J, 2) px,
    conf (N, C, J), avail (N, C) bool (a row exists and is finite). Streams the poses2d rows in batches."""
    path = Path(ds) / "poses2d" / f"subject={subject}"
    n, c = len(d3["key"]), len(cam_ids)
    x2d = np.zeros((n, c, NUM_JOINTS, 2), np.float32)
    conf = np.zeros((n, c, NUM_JOINTS), np.float32)
    avail = np.zeros((n, c), bool)
    ids = pa.array(cam_ids, pa.string())
    cols = ["action", "subaction", "frame", "camera", "joints2d", "confidence"]
    flt = (pc.field("subject") == subject) & (pc.field("source") == source)
    for t in _poses2d_dataset(Path(ds) / "poses2d").to_batches(
        columns=cols, filter=flt, batch_size=batch_rows, batch_readahead=1, fragment_readahead=1
    ):
        if t.num_rows == 0:
            continue
        cam_idx = pc.index_in(t["camera"], value_set=ids)
        if cam_idx.null_count:
            bad = sorted(set(pc.filter(t["camera"], pc.is_null(cam_idx)).to_pylist()))
            raise DatasetError(f"{path}: {source} 2D of camera(s) {bad} that subject {subject} has no calibration for")
        cam_idx = cam_idx.to_numpy().astype(np.int64)
        key = _sequence_keys(t["action"], t["subaction"].to_numpy(), t["frame"].to_numpy(), d3["names"])
        pos = np.clip(np.searchsorted(d3["key"], key), 0, n - 1)
        hit = (key >= 0) & (d3["key"][pos] == key)
        rows, cols_ = pos[hit], cam_idx[hit]
        uv = joints_to_numpy(t["joints2d"], 2)[hit]
        cf = list_to_numpy(t["confidence"], NUM_JOINTS)[hit]
        x2d[rows, cols_] = uv
        conf[rows, cols_] = cf
        avail[rows, cols_] = np.isfinite(uv).all((1, 2)) & np.isfinite(cf).all(1)
    return x2d, conf, avail


def _undistort_used(x2d: np.ndarray, fi: np.ndarray, a: np.ndarray, b: np.ndarray, real: list[Camera]) -> None:
    """Undistort in place (px) the real views' 2D of the frames that a sampled pair uses (one call per camera)."""
    for ci, cam in enumerate(real):
        used = np.zeros(len(x2d), bool)
        used[fi[a == ci]] = True
        used[fi[b == ci]] = True
        if used.any():
            x2d[used, ci] = undistort_pixels(x2d[used, ci], cam)


def _splits(ds, manifest: dict, subjects: list[str]) -> dict[str, str]:
    sp = manifest.get("splits") or {}
    train, test = set(sp.get("train") or []), set(sp.get("test") or [])
    both = sorted(train & test & set(subjects))
    if both:
        raise DatasetError(f"{Path(ds) / 'manifest.json'}: subject(s) {both} are in both the train and test splits")
    return {s: ("test" if s in test else "train") for s in subjects}


def _check_args(virtual_views, layout, extrinsics, views, pairs_per_frame, shard_rows, seed, source) -> None:
    def whole(x):
        return not isinstance(x, bool) and isinstance(x, (int, np.integer))

    if not whole(virtual_views) or virtual_views < 0:
        raise ValueError(f"virtual_views must be an integer >= 0, got {virtual_views!r}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if extrinsics is not None and extrinsics not in EXTRINSICS:
        raise ValueError(f"extrinsics must be one of {EXTRINSICS}, got {extrinsics!r}")
    if views not in VIEWS:
        raise ValueError(f"views must be 'real' or 'all', got {views!r}")
    if not whole(pairs_per_frame) or pairs_per_frame < 1:
        raise ValueError(f"pairs_per_frame must be an integer >= 1, got {pairs_per_frame!r}")
    if not whole(shard_rows) or shard_rows < 1:
        raise ValueError(f"shard_rows must be an integer >= 1, got {shard_rows!r}")
    if not whole(seed) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if source is not None and source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")


def default_extrinsics(ds, cams: list[Camera], subjects: list[str]) -> tuple[str, str]:
    """(extrinsics, why) when none is asked: ``given`` when every subject's given cameras carry a calibration
    (distinct centres), else ``estimated`` (the rig of ``mvtools calibrate --from-joints``)."""
    if all(has_extrinsics(list(rig(cams, s, "given").values())) for s in subjects):
        return "given", "the dataset's calibration"
    if all(rig(cams, s, "estimated") for s in subjects):
        return "estimated", "the dataset has no given calibration; the rig of `mvtools calibrate --from-joints`"
    raise DatasetError(
        f"{Path(ds) / 'cameras.parquet'}: the given cameras carry no calibration (all at one centre) "
        f"and there are no estimated ones; run `mvtools calibrate --from-joints {ds}` first"
    )


def augment(
    ds,
    virtual_views: int = 8,
    layout: str = "ring",
    seed: int = 0,
    extrinsics: str | None = None,
    pairs_per_frame: int = 4,
    views: str = "all",
    subjects=None,
    shard_rows: int = 1_000_000,
    source: str | None = None,
    command: str | None = None,
    overwrite: bool = False,
    virtual_noise="none",
) -> dict:
    """Add ``virtual_views`` virtual cameras per subject rig and write the pair shards ``ds/pairs/``.

    - virtual cameras (``source="virtual"`` rows of cameras.parquet, ids ``virtual-00``...) and their 2D poses
      (poses2d ``source="virtual"``: pinhole projections of the 3D ground truth, px, confidence 1; with
      ``virtual_noise`` - 'realistic', a noise parameter JSON file or a :class:`~mvtools.synth.noise.NoiseParams` -
      what a 2D detector would report instead, :func:`mvtools.synth.noise.simulate_detections` over each whole
      sequence at the manifest's frame rate), replacing older virtual rows of the processed subjects; (frame,
      virtual camera) views with a joint behind the camera or outside the image are dropped and counted;
    - pair shards per docs/architecture.md: ``pairs_per_frame`` view pairs per frame drawn without replacement
      among the real views (``views="real"``) or real and virtual views (``"all"``), transforms (mm) from the
      ``extrinsics`` rig (``given`` | ``estimated``; default :func:`default_extrinsics`, logged and returned),
      2D (px) from ``source`` (``detected``/``gt``; default detected when present), real views
      undistorted; at most ``shard_rows`` rows per file; train and test subjects (manifest splits) apart;
    - ``pairs/manifest.json`` and an ``augment`` entry in the dataset manifest.

    Everything is one atomic commit (a kill leaves the old dataset or the new one); an earlier augment output is
    replaced only with ``overwrite``. Returns a summary dict (rows per split, shards, dropped frames per subject and
    virtual camera, ...).
    """
    ds = Path(ds)
    _check_args(virtual_views, layout, extrinsics, views, pairs_per_frame, shard_rows, seed, source)
    noise = resolve_noise(virtual_noise)  # a clear error for a bad noise file before anything else
    read_manifest(ds)  # a clear error for a broken dataset before anything else
    with claim_output(ds, "dataset", in_place=True):  # lock ds; repair what a killed run left
        _check_earlier(ds, overwrite)
        return _augment(
            ds,
            virtual_views,
            layout,
            seed,
            extrinsics,
            pairs_per_frame,
            views,
            subjects,
            shard_rows,
            source,
            command,
            noise,
        )


def _augment(
    ds, virtual_views, layout, seed, extrinsics, pairs_per_frame, views, subjects, shard_rows, source, command, noise
) -> dict:
    virtual_views, pairs_per_frame, shard_rows, seed = (
        int(x) for x in (virtual_views, pairs_per_frame, shard_rows, seed)
    )

    manifest = read_manifest(ds)
    noise_info = noise.to_dict() if noise is not None else None  # recorded in both manifests
    present = subjects_in(ds)
    subjects = list(present) if subjects is None else list(subjects)
    missing = [s for s in subjects if s not in present]
    if missing or not subjects:
        hint = (
            (
                "; the dataset has 2D but no 3D poses: run `mvtools triangulate` first (needs "
                "`mvtools calibrate --from-joints`)"
            )
            if any((ds / "poses2d").glob("subject=*"))
            else ""
        )
        raise DatasetError(
            f"{ds / 'poses3d'}: no subject(s) {missing or ''} with 3D poses (have {', '.join(present) or 'none'}){hint}"
        )
    split_of = _splits(ds, manifest, subjects)
    source = source or default_source(ds, subjects)
    cams = read_cameras(ds)
    cam_file = ds / "cameras.parquet"
    why = "as asked"
    if extrinsics is None:
        extrinsics, why = default_extrinsics(ds, cams, subjects)
    log(f"extrinsics: {extrinsics} ({why})")
    # datasets from `ingest keypoints`: given cameras carry intrinsics only; their 3D is triangulated in the
    # estimated rig's frame, which then serves as the reference frame (3D, virtual cameras) and the extrinsics
    no_ext = {s for s in subjects if intrinsics_only(list(rig(cams, s, "given").values()))}
    if no_ext and extrinsics == "given":
        if len(no_ext) < len(subjects):
            raise DatasetError(
                f"{cam_file}: subject(s) {sorted(no_ext)} have no given extrinsics (intrinsics only) "
                "but others do; use --extrinsics estimated"
            )
        log(
            "augment: the given cameras carry intrinsics only (no extrinsics): using the estimated rig of "
            "`mvtools calibrate --from-joints` (--extrinsics estimated)"
        )
        extrinsics = "estimated"
    rigs = {}
    for s in subjects:  # check everything before the long work
        _check_source(ds, s, source)
        given = rig(cams, s, "given")
        if not given:
            raise DatasetError(f"{cam_file}: no given cameras for subject {s}")
        used = given
        if extrinsics == "estimated":
            used = rig(cams, s, "estimated")
            if not used:
                raise DatasetError(
                    f"{cam_file}: no estimated cameras for subject {s}; run "
                    f"`mvtools calibrate --from-joints {ds}` first or use --extrinsics given"
                )
        rigs[s] = (used, used) if s in no_ext else (given, used)

    total = sum(_num_rows(f) for s in subjects for f in (ds / "poses3d" / f"subject={s}").glob("*.parquet"))
    report = {"subjects": {}, "dropped": {}, "invalid_3d_frames": {}}
    virtual_all: list[Camera] = []
    # one atomic commit: a copy-on-write staging dataset (hard links) gets the new pairs/, virtual 2D, cameras and
    # manifest, then is exchanged with ds in one rename (mvtools.io.staged_update; docs/reliability.md)
    with staged_update(ds, drop=["pairs"], copy=["cameras.parquet", "manifest.json"]) as new:
        pdir = new / "pairs"
        stage = new / ".virtual-stage"
        pdir.mkdir()
        stage.mkdir()
        writers = {sp: ShardWriter(pdir, sp, shard_rows) for sp in ("train", "test")}
        seq_writers = {sp: SequenceWriter(pdir, sp) for sp in ("train", "test")}  # per-view 2D sequences
        try:
            with progress(length=total, label="augment") as bar:
                for s in subjects:
                    info = _augment_subject(
                        ds,
                        s,
                        rigs[s],
                        source,
                        virtual_views,
                        layout,
                        seed,
                        extrinsics,
                        pairs_per_frame,
                        views,
                        writers[split_of[s]],
                        stage,
                        bar,
                        seq_writers[split_of[s]],
                        (noise, float(manifest.get("fps") or 50.0)),
                    )
                    virtual_all += info.pop("virtual_cameras")
                    report["dropped"][s] = info.pop("dropped")
                    report["invalid_3d_frames"][s] = info.pop("invalid_3d_frames")
                    report["subjects"][s] = info
                    pa.default_memory_pool().release_unused()  # keep RSS at one subject's working set
            shards = writers["train"].close() + writers["test"].close()
            sequences = seq_writers["train"].close() + seq_writers["test"].close()
        except BaseException:
            for w in [*writers.values(), *seq_writers.values()]:
                w.abort()
            raise
        rows = {sp: sum(x["rows"] for x in shards if x["split"] == sp) for sp in ("train", "test")}
        pm = {
            "format_version": PAIRS_FORMAT_VERSION,
            "extrinsics": extrinsics,
            "views": views,
            "virtual_views": virtual_views,
            "pairs_per_frame": pairs_per_frame,
            "source2d": source,
            "seed": seed,
            "splits": {sp: [s for s in subjects if split_of[s] == sp] for sp in ("train", "test")},
            "shards": shards,
            "sequences": sequences,
            "rows": rows,
            "layout": layout,
            "virtual_noise": noise_info,
            "producer": producer(command),
        }
        write_json_atomic(pdir / "manifest.json", pm)
        pause_point("augment:pairs-written")
        for s in subjects:
            f = stage / f"{s}.parquet"
            replace_poses2d_files(new, s, "virtual", pq.read_table(f) if f.exists() else None)
            pa.default_memory_pool().release_unused()
        shutil.rmtree(stage)
        pause_point("augment:virtual-2d-written")
        allc = replace_cameras(new, virtual_all, "virtual", subjects)
        pause_point("augment:cameras-written")
        n_virtual = sum(pq.read_metadata(f).num_rows for f in (new / "poses2d").glob("subject=*/virtual-*.parquet"))
        manifest.setdefault("rows", {}).setdefault("poses2d", {})["virtual"] = n_virtual
        manifest["rows"]["cameras"] = len(allc)
        summary = {
            "pairs_dir": str(ds / "pairs"),
            "rows": rows,
            "shards": len(shards),
            "source2d": source,
            "extrinsics": extrinsics,
            "extrinsics_reason": why,
            "views": views,
            "virtual_views": virtual_views,
            "layout": layout,
            "virtual_noise": noise_info,
            "pairs_per_frame": pairs_per_frame,
            "seed": seed,
            "splits": pm["splits"],
            **report,
        }
        manifest["augment"] = {
            **{k: v for k, v in summary.items() if k != "pairs_dir"},
            "pairs": "pairs/manifest.json",
            "producer": pm["producer"],
        }
        write_manifest(new, manifest)
        pause_point("augment:before-commit")
    return summary


def _num_rows(f: Path) -> int:
    try:
        return pq.read_metadata(f).num_rows
    except (pa.ArrowException, OSError) as e:
        raise DatasetError(f"{f}: not a readable Parquet file (truncated or corrupt? {e})") from None


def _check_earlier(ds: Path, overwrite: bool) -> None:
    """An earlier augment output (pairs/, virtual cameras or 2D) is replaced only with ``overwrite``."""
    if overwrite:
        return
    earlier = [p for p in [ds / "pairs"] if p.exists()]
    earlier += sorted((ds / "poses2d").glob("subject=*/virtual-*.parquet"))[:1]
    if earlier or any(c.source == "virtual" for c in read_cameras(ds)):
        raise OutputError(
            f"{ds}: holds an earlier `mvtools augment` output (pairs/, virtual cameras and their 2D); "
            "pass --overwrite to replace it"
        )


def virtual_detections(X, finite, virt, params, fps: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Simulated detector output of the virtual cameras for one sequence: world joints ``X`` (T, 17, 3) mm with
    ``finite`` (T,) frames -> ``uv`` (T, V, 17, 2) px and ``conf`` (T, V, 17) in [0, 1]. The noise runs over the whole
    sequence (temporally correlated, ``fps`` Hz); frames without finite 3D borrow the nearest earlier finite frame's
    pose so the noise stays continuous (they are dropped anyway)."""
    Xf = X[fill_from_valid(finite)] if finite.any() else np.zeros_like(X)
    uv = np.empty((len(X), len(virt), NUM_JOINTS, 2))
    conf = np.empty((len(X), len(virt), NUM_JOINTS), np.float32)
    for v, cam in enumerate(virt):
        uv[:, v], conf[:, v] = simulate_detections(Xf, cam, params, rng, fps)
    return uv, conf


def _augment_subject(
    ds, subject, rigs, source, n_virtual, layout, seed, extrinsics, k, views, writer, stage, bar, seq_writer, noise_fps
):
    given, used = rigs
    d3 = _subject_3d(ds, subject)
    # real views: the given cameras that have 2D of this source, in rig order
    x2d_r, conf_r, avail_r = _subject_2d(ds, subject, source, d3, list(given))
    pa.default_memory_pool().release_unused()
    keep = np.flatnonzero(avail_r.any(0))
    real_ids = [list(given)[i] for i in keep]
    if len(keep) < len(given):
        x2d_r, conf_r, avail_r = x2d_r[:, keep], conf_r[:, keep], avail_r[:, keep]
    if extrinsics == "estimated":
        lacking = [c for c in real_ids if c not in used]
        if lacking:
            raise DatasetError(
                f"{Path(ds) / 'cameras.parquet'}: no estimated extrinsics for camera(s) {lacking} of subject {subject}"
            )
    real_used = [used[c] for c in real_ids]
    real_given = [given[c] for c in real_ids]

    X = d3["X"]
    finite = np.isfinite(X).all((1, 2))
    root_mean = np.nanmean(X[finite, ROOT], axis=0) if finite.any() else np.zeros(3)
    rng = stable_rng(seed, subject)
    virt, info = place_virtual_cameras(list(given.values()), n_virtual, layout, rng, root_mean, subject)
    virt_pose = virt
    if extrinsics == "estimated" and virt:
        common = [c for c in given if c in used]
        s, Rs, Ts, res = similarity_to([given[c] for c in common], [used[c] for c in common])
        virt_pose = [map_camera(c, s, Rs, Ts) for c in virt]
        info["estimated_alignment"] = res

    all_pose = real_used + virt_pose
    ids = [c.camera for c in real_used] + [c.camera for c in virt]
    kinds = ["real"] * len(real_used) + ["virtual"] * len(virt)
    R = np.array([c.R for c in all_pose]).reshape(-1, 3, 3)
    t = np.array([c.t for c in all_pose]).reshape(-1, 3)
    R_ab, t_ab = pair_transforms(R, t)
    pairs = view_pairs(len(ids), len(real_used), views)
    static = {
        "ids": ids,
        "kinds": kinds,
        "R_ab": R_ab.astype(np.float32),
        "t_ab": t_ab.astype(np.float32),
        "K": np.array([c.intrinsics for c in real_used + virt], np.float32).reshape(-1, 4),
        "size": np.array([[c.width, c.height] for c in real_used + virt], np.float32).reshape(-1, 2),
    }
    dropped = np.zeros(len(virt), np.int64)
    vwriter = None
    try:
        for start, end, action, subaction, raw in d3["seqs"]:
            Xs, fin = X[start:end], finite[start:end]
            frames = d3["frame"][start:end]
            y3d_r = camera_frame(Xs, real_given)
            if virt:
                y3d_v, uv_v, ok_v = project_virtual(Xs, virt)
                ok_v &= fin[:, None]
                conf_v = np.ones(ok_v.shape + (NUM_JOINTS,), np.float32)
                if noise_fps[0] is not None:
                    nrng = stable_rng(seed, subject, action, int(subaction), "virtual-noise")
                    uv_v, conf_v = virtual_detections(Xs, fin, virt, *noise_fps, nrng)
                dropped += (~ok_v & fin[:, None]).sum(0)
                fi, vi = np.nonzero(ok_v)
                if len(fi):
                    tbl = poses2d_table(
                        action,
                        subaction,
                        raw,
                        frames[fi],
                        np.array([c.camera for c in virt])[vi],
                        uv_v[fi, vi],
                        conf_v[fi, vi],
                        "virtual",
                    )
                    if vwriter is None:
                        vwriter = pq.ParquetWriter(
                            stage / f"{subject}.parquet",
                            POSES2D_SCHEMA,
                            compression="none",
                            use_dictionary=["action", "raw_name", "camera", "source"],
                        )
                    vwriter.write_table(tbl)
                y3d = np.concatenate([y3d_r, y3d_v], axis=1)
                x2d = np.concatenate([x2d_r[start:end], uv_v.astype(np.float32)], axis=1)
                conf = np.concatenate([conf_r[start:end], conf_v], axis=1)
                avail = np.concatenate([avail_r[start:end] & fin[:, None], ok_v], axis=1)
            else:
                y3d, x2d, conf = y3d_r, x2d_r[start:end].copy(), conf_r[start:end]
                avail = avail_r[start:end] & fin[:, None]
            seen = np.concatenate([avail_r[start:end], ok_v], axis=1) if virt else avail_r[start:end]
            seq_writer.write(
                sequence_table(subject, action, subaction, frames, ids, kinds, static["K"], x2d, seen, real_used)
            )
            prng = stable_rng(seed, subject, action, int(subaction))
            fi, a, b = sample_pairs(avail, pairs, k, prng)
            if len(fi):
                _undistort_used(x2d, fi, a, b, real_used)
                writer.write(
                    pair_table(
                        subject,
                        action,
                        subaction,
                        frames,
                        fi,
                        a,
                        b,
                        {**static, "x2d": x2d, "conf": conf, "y3d": y3d.astype(np.float32)},
                    )
                )
            bar.update(end - start)
    finally:
        if vwriter is not None:
            vwriter.close()
    for c, n in zip(virt, dropped):
        if n:
            log(f"{subject} {c.camera}: dropped {n} frames (a joint behind the camera or outside the image)")
    info.update(
        {
            "real_cameras": ids[: len(real_used)],
            "virtual_cameras": virt,
            "frames": int(len(X)),
            "dropped": {c.camera: int(n) for c, n in zip(virt, dropped)},
            "invalid_3d_frames": int((~finite).sum()),
        }
    )
    return info
