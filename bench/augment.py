"""Benchmark `mvtools augment --virtual-views 8 --pairs-per-frame 4` on a full-scale synthetic tree.

Builds (or reuses) a synthetic H36M-like dataset with ``mvtools.synth.dataset.synth_dataset`` (default 7 subjects x 30
sequences x 4,300 frames = 903,000 frames per camera, like Human3.6M, with realistic detections), then runs
``augment`` in a child process and reports wall time, rows/s, frames/s, peak resident memory, output size. To show
that memory is bounded by one shard and not by the dataset, the same run is repeated on one subject only.

    python bench/augment.py                      # full scale (~10 min on 2 cores, ~3 GB of disk)
    python bench/augment.py --frames 500         # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def run_child(ds: Path, **kw) -> dict:
    """augment() in a fresh process; returns its summary, wall time (s) and peak RSS (MiB)."""
    code = (
        "import json, sys; from mvtools.augment import augment; "
        f"s = augment({str(ds)!r}, **json.loads(sys.argv[1])); "
        "print(json.dumps({'rows': s['rows'], 'shards': s['shards'], 'dropped': s['dropped']}))"
    )
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(kw)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "MVTOOLS_QUIET": "1"},
    )
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    peak = r1.ru_maxrss  # max over all children so far
    return {
        **json.loads(out.stdout.strip().splitlines()[-1]),
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mib": peak / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=4300, help="frames per sequence (default 4300 = H36M scale)")
    ap.add_argument("--sequences", type=int, default=30, help="sequences per subject (default 30)")
    ap.add_argument("--subjects", default="S1,S5,S6,S7,S8,S9,S11", help="comma-separated H36M subjects")
    ap.add_argument("--shard-rows", type=int, default=1_000_000, help="rows per shard (default 1,000,000)")
    ap.add_argument("--work", type=Path, default=None, help="work directory (default: a temporary one, removed)")
    ap.add_argument("--keep", action="store_true", help="keep the dataset in --work for a later run")
    args = ap.parse_args()

    from mvtools.dataset import read_poses3d
    from mvtools.synth.dataset import synth_dataset

    work = args.work or Path(tempfile.mkdtemp(prefix="mvtools-bench-augment-"))
    ds = work / f"synth-{args.frames}x{args.sequences}"
    subjects = args.subjects.split(",")
    try:
        if not (ds / "manifest.json").exists():
            t0 = time.perf_counter()
            synth_dataset(ds, subjects=subjects, sequences_per_subject=args.sequences, frames=args.frames, seed=0)
            print(f"synth: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        frames = read_poses3d(ds, columns=["frame"]).num_rows
        common = dict(virtual_views=8, pairs_per_frame=4, layout="ring", seed=0, shard_rows=args.shard_rows)
        # one subject first: RUSAGE_CHILDREN reports the largest child so far
        one = run_child(ds, subjects=[subjects[0]], **common)
        full = run_child(ds, **common)
        rows = sum(full["rows"].values())
        size_pairs = du(ds / "pairs")
        size_virtual = sum(f.stat().st_size for f in (ds / "poses2d").glob("subject=*/virtual-*.parquet"))
        row_bytes = 4 * (2 * 34 + 2 * 17 + 2 * 4 + 2 * 2 + 2 * 9 + 2 * 3 + 2 * 51)
        res = {
            "frames_per_camera": frames,
            "subjects": len(subjects),
            "rows": rows,
            "shards": full["shards"],
            "wall_s": round(full["wall_s"], 1),
            "cpu_s": round(full["cpu_s"], 1),
            "load_avg_1min": round(os.getloadavg()[0], 1),
            "rows_per_s": round(rows / full["wall_s"]),
            "frames_per_s": round(frames / full["wall_s"]),
            "peak_rss_mib": round(full["peak_rss_mib"]),
            "pairs_bytes": size_pairs,
            "virtual_poses2d_bytes": size_virtual,
            "one_shard_in_memory_mib": round(min(args.shard_rows, rows) * row_bytes / 2**20),
            "one_subject": {
                "rows": sum(one["rows"].values()),
                "wall_s": round(one["wall_s"], 1),
                "peak_rss_mib": round(one["peak_rss_mib"]),
            },
            "dropped_virtual_frames": sum(sum(v.values()) for v in full["dropped"].values()),
        }
        print(json.dumps(res, indent=2))
        print(
            f"\n| frames/camera | rows | wall (CPU) | rows/s | frames/s | peak RSS | one subject: rows, peak RSS | "
            f"pairs on disk |\n|---|---|---|---|---|---|---|---|\n"
            f"| {frames:,} | {rows:,} | {res['wall_s']} s ({res['cpu_s']} s) | {res['rows_per_s']:,} | "
            f"{res['frames_per_s']:,} | "
            f"{res['peak_rss_mib']} MiB | {res['one_subject']['rows']:,}, {res['one_subject']['peak_rss_mib']} MiB | "
            f"{size_pairs / 2**30:.2f} GiB |"
        )
    finally:
        if not args.keep:
            shutil.rmtree(ds if args.work else work, ignore_errors=True)


if __name__ == "__main__":
    main()
