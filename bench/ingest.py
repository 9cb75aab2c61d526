"""Benchmark `mvtools ingest h36m` against the floor of reading the same CDFs and writing the same columns.

    python bench/ingest.py                      # full scale: 7 subjects x 30 sequences x 4300 frames (~900k/camera)
    python bench/ingest.py --sequences 4        # reduced size
    python bench/ingest.py --raw /path/to/tree  # reuse an existing raw tree (synthetic or the real release)

Each measured stage runs in a fresh subprocess so its peak resident memory (ru_maxrss) is its own. The floor
reads every D3/D2 CDF with cdflib and writes the poses3d / poses2d columns with pyarrow (zstd, one file per
subject and table), i.e. the I/O ingest cannot avoid; ingest adds name parsing, validation, trimming, the
D2-vs-projection check and the manifest. A small tree is also ingested to show that peak memory does not grow
with the dataset (bounded by one sequence). Prints a markdown table for docs/benchmarks.md.
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


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def stage_ingest(raw: str, out: str) -> dict:
    import cdflib  # noqa: F401  (imported before timing, as in the floor)

    from mvtools.ingest.h36m.reader import ingest_h36m

    t = time.perf_counter()
    s = ingest_h36m(raw, out)
    return {
        "wall_s": time.perf_counter() - t,
        "frames": s["frames"],
        "sequences": s["sequences"],
        "rows2d": s["rows"]["poses2d"]["gt"],
        "peak_mb": _peak_mb(),
    }


def stage_floor(raw: str, out: str) -> dict:
    """cdflib reads + pyarrow writes of the same columns, nothing else."""
    import cdflib
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mvtools.dataset import POSES2D_SCHEMA, POSES3D_SCHEMA, fsl
    from mvtools.skeleton import H36M32_TO_17

    t = time.perf_counter()
    frames = seqs = rows2d = 0
    outp = Path(out)
    for sdir in sorted(Path(raw).glob("S*")):
        d3dir, d2dir = sdir / "MyPoseFeatures/D3_Positions", sdir / "MyPoseFeatures/D2_Positions"
        if not d3dir.is_dir():
            continue
        w3 = w2 = None
        for f in sorted(d3dir.glob("*.cdf")):
            name = f.stem
            j = cdflib.CDF(str(f))["Pose"].reshape(-1, 32, 3)[:, H36M32_TO_17]
            n = len(j)
            fr = np.arange(n, dtype=np.int32)
            cams, uv = [], []
            for g in sorted(d2dir.glob(f"{name}.*.cdf")):
                cams.append(g.name[len(name) + 1 : -4])
                uv.append(cdflib.CDF(str(g))["Pose"].reshape(-1, 32, 2)[:n, H36M32_TO_17])
            t3 = pa.Table.from_arrays(
                [
                    pa.array(np.full(n, "a", object)),
                    pa.array(np.zeros(n, np.int16)),
                    pa.array(np.full(n, name, object)),
                    pa.array(fr),
                    fsl(j),
                ],
                schema=POSES3D_SCHEMA,
            )
            m = sum(len(u) for u in uv)
            t2 = pa.Table.from_arrays(
                [
                    pa.array(np.full(m, "a", object)),
                    pa.array(np.zeros(m, np.int16)),
                    pa.array(np.full(m, name, object)),
                    pa.array(np.concatenate([np.arange(len(u), dtype=np.int32) for u in uv])),
                    pa.array(np.repeat(cams, [len(u) for u in uv]).astype(object)),
                    fsl(np.concatenate(uv)),
                    fsl(np.ones((m, 17), np.float32)),
                    pa.array(np.full(m, "gt", object)),
                ],
                schema=POSES2D_SCHEMA,
            )
            if w3 is None:
                (outp / "poses3d" / f"subject={sdir.name}").mkdir(parents=True, exist_ok=True)
                (outp / "poses2d" / f"subject={sdir.name}").mkdir(parents=True, exist_ok=True)
                w3 = pq.ParquetWriter(
                    outp / "poses3d" / f"subject={sdir.name}/part-0.parquet", POSES3D_SCHEMA, compression="zstd"
                )
                w2 = pq.ParquetWriter(
                    outp / "poses2d" / f"subject={sdir.name}/gt-0.parquet", POSES2D_SCHEMA, compression="zstd"
                )
            w3.write_table(t3)
            w2.write_table(t2)
            frames += n
            rows2d += m
            seqs += 1
        if w3 is not None:
            w3.close()
            w2.close()
    return {
        "wall_s": time.perf_counter() - t,
        "frames": frames,
        "sequences": seqs,
        "rows2d": rows2d,
        "peak_mb": _peak_mb(),
    }


def _run(stage: str, raw: Path, out: Path) -> dict:
    if out.exists():
        shutil.rmtree(out)
    r = subprocess.run(
        [sys.executable, __file__, "--stage", stage, "--raw", str(raw), "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "MVTOOLS_QUIET": "1"},
    )
    return json.loads(r.stdout.strip().splitlines()[-1])


def _du_mb(p: Path) -> float:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--raw", help="existing raw tree to ingest (default: synthesise one)")
    ap.add_argument("--work", help="working directory (default: a temporary directory, removed afterwards)")
    ap.add_argument("--sequences", type=int, default=30, help="sequences per subject when synthesising (30 = full)")
    ap.add_argument("--frames", type=int, default=4300, help="frames per sequence when synthesising (50 Hz)")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per stage (best is reported)")
    ap.add_argument("--stage", choices=["ingest", "floor"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.stage:
        fn = stage_ingest if a.stage == "ingest" else stage_floor
        print(json.dumps(fn(a.raw, a.out)))
        return

    work = Path(a.work or tempfile.mkdtemp(prefix="mvtools-bench-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        from mvtools.synth.h36m import synth_h36m

        raw = Path(a.raw) if a.raw else work / "raw"
        if not a.raw:
            t = time.perf_counter()
            synth_h36m(raw, sequences=a.sequences, frames=a.frames, seed=0, detections=False)
            print(
                f"synth h36m: {a.sequences} sequences x {a.frames} frames x 7 subjects in "
                f"{time.perf_counter() - t:.1f} s ({_du_mb(raw):.0f} MB of CDF)",
                file=sys.stderr,
            )
        small = work / "raw-small"
        synth_h36m(small, sequences=2, frames=a.frames, seed=1, detections=False)

        res = {}
        for stage in ("floor", "ingest"):
            runs = [_run(stage, raw, work / f"out-{stage}") for _ in range(a.repeats)]
            res[stage] = min(runs, key=lambda r: r["wall_s"])
            res[stage]["out_mb"] = _du_mb(work / f"out-{stage}")
        res["ingest_small"] = _run("ingest", small, work / "out-small")
        one_seq_mb = a.frames * (96 + 4 * 64) * 8 / 2**20  # one sequence's D3 + 4 D2 arrays (float64)

        f, i, s = res["floor"], res["ingest"], res["ingest_small"]
        print(
            f"\nmeasured {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, python {sys.version.split()[0]}; "
            f"tree: {i['sequences']} sequences, {i['frames']} frames per camera, {_du_mb(raw):.0f} MB of CDF\n"
        )
        print("| stage | wall (s) | frames/s (per camera) | 2D rows/s | peak RSS (MB) | output (MB) |")
        print("|---|---|---|---|---|---|")
        for name, r in (("floor: cdflib read + pyarrow write", f), ("`ingest_h36m`", i)):
            print(
                f"| {name} | {r['wall_s']:.1f} | {r['frames'] / r['wall_s']:,.0f} | {r['rows2d'] / r['wall_s']:,.0f} "
                f"| {r['peak_mb']:.0f} | {r['out_mb']:.0f} |"
            )
        print(
            f"| `ingest_h36m`, 14 sequences only | {s['wall_s']:.1f} | {s['frames'] / s['wall_s']:,.0f} | "
            f"{s['rows2d'] / s['wall_s']:,.0f} | {s['peak_mb']:.0f} | - |"
        )
        print(
            f"\ningest / floor wall time: {i['wall_s'] / f['wall_s']:.2f}x (target <= 1.5x); peak RSS "
            f"{i['peak_mb']:.0f} MB on {i['sequences']} sequences vs {s['peak_mb']:.0f} MB on 14 "
            f"(one sequence's raw arrays: {one_seq_mb:.0f} MB)"
        )
    finally:
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
