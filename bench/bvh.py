"""Benchmark `mvtools ingest bvh` on the real CMU clips, then the full pipeline on the result.

    python bench/bvh.py                          # ingest ../shared/data/cmu, then calibrate/augment/train/evaluate
    python bench/bvh.py --ingest-only            # just the ingest timing
    python bench/bvh.py --epochs 20 --keep /tmp/cmu_bench

Stage 1 runs `mvtools ingest bvh CMU --out DS --rig h36m:S1 --noise realistic` in a subprocess and
reports wall time, input frames/s (120 Hz frames read) and output frames/s (50 Hz frames written), plus the
reader + forward-kinematics time alone. Stage 2 (when the commands exist) runs
`mvtools calibrate --from-joints DS`, `mvtools augment DS --virtual-views 8 [--extrinsics estimated]`, then
`mvtools train DS --out RUN --loss L --epochs N --pretrain-epochs P --channels 256` (the trainer's defaults for
everything but the budget, see --train-args) for L in trans-reproj, reproj, supervised (no pre-training for
supervised) and
`mvtools evaluate RUN DS --json OUT`, on the manifest's subject split (CMU01-07 train, CMU08-09 test), and
prints the MPJPE table. Prints markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOSSES = ("trans-reproj", "reproj", "supervised")


def cmu_dir() -> Path:
    env = os.environ.get("MVTOOLS_SHARED")
    base = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"
    return base / "data" / "cmu"


def run(cmd: list[str], log: Path) -> float:
    """Run an mvtools command, tee its output to ``log``; returns wall seconds (raises on failure)."""
    print("$ " + " ".join(cmd), flush=True)
    t = time.perf_counter()
    with open(log, "w") as f:
        p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "MVTOOLS_QUIET": "1"})
    wall = time.perf_counter() - t
    if p.returncode:
        tail = Path(log).read_text()[-2000:]
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{tail}")
    return wall


def have_command(name: str) -> bool:
    from mvtools.cli.main import COMMANDS

    module = COMMANDS[name].split(":")[0]
    try:
        importlib.import_module(module)
        return True
    except ImportError:
        return False


def reader_fk_seconds(files: list[Path]) -> tuple[float, int]:
    from mvtools.ingest.bvh.kinematics import forward_kinematics
    from mvtools.ingest.bvh.reader import read_bvh

    t = time.perf_counter()
    n = 0
    for f in files:
        b = read_bvh(f)
        forward_kinematics(b)
        n += b.num_frames
    return time.perf_counter() - t, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cmu", type=Path, default=cmu_dir(), help="folder of BVH files (default ../shared/data/cmu)")
    ap.add_argument("--rig", default="h36m:S1", help="rig for ingest bvh")
    ap.add_argument("--noise", default="realistic", help="none | realistic | FILE.json")
    ap.add_argument("--fps", type=float, default=50.0, help="output rate, Hz")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=10, help="main-phase training epochs per loss")
    ap.add_argument("--pretrain-epochs", type=int, default=3, help="pre-training epochs (eq. 6) per loss")
    ap.add_argument(
        "--extrinsics",
        choices=["estimated", "given"],
        default="estimated",
        help="extrinsics used by augment: from `calibrate --from-joints` or the rig's",
    )
    ap.add_argument("--virtual-views", type=int, default=8)
    ap.add_argument(
        "--train-args",
        default="--channels 256",
        help="extra arguments for mvtools train (quoted string). The default sets only the budget (a "
        "256-wide network; with --epochs / --pretrain-epochs): every other option is the trainer's "
        "default, as for a user who runs `mvtools train DS --out RUN`",
    )
    ap.add_argument("--ingest-only", action="store_true", help="skip calibrate/augment/train/evaluate")
    ap.add_argument("--keep", type=Path, default=None, help="work directory to keep (default: a temporary one)")
    a = ap.parse_args()

    files = sorted(a.cmu.glob("*.bvh"))
    if not files:
        sys.exit(f"{a.cmu}: no BVH files (set MVTOOLS_SHARED or --cmu)")
    work = a.keep or Path(tempfile.mkdtemp(prefix="mvtools-bench-bvh-"))
    work.mkdir(parents=True, exist_ok=True)
    ds = work / "ds"
    mv = [sys.executable, "-m", "mvtools"]
    nbytes = sum(f.stat().st_size for f in files)

    fk_s, fk_frames = reader_fk_seconds(files)
    wall = run(
        mv
        + [
            "ingest",
            "bvh",
            str(a.cmu),
            "--out",
            str(ds),
            "--rig",
            a.rig,
            "--fps",
            str(a.fps),
            "--noise",
            a.noise,
            "--seed",
            str(a.seed),
        ],
        work / "ingest.log",
    )
    m = json.loads((ds / "manifest.json").read_text())
    tot = m["totals"]
    print("\n## ingest bvh\n")
    print(
        "| files | MB | frames read (120 Hz) | frames out (50 Hz) | kept | wall s | frames read/s | frames out/s "
        "| read+FK only s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {len(files)} | {nbytes / 1e6:.1f} | {tot['frames_read']:,} | {tot['frames_resampled']:,} | "
        f"{tot['frames_kept']:,} ({100 * tot['frames_kept'] / tot['frames_resampled']:.1f}%) | {wall:.2f} | "
        f"{tot['frames_read'] / wall:,.0f} | {tot['frames_kept'] / wall:,.0f} | "
        f"{fk_s:.2f} ({fk_frames / fk_s:,.0f} frames/s) |"
    )
    print(f"\nsplits: train {m['splits']['train']}, test {m['splits']['test']}; rig {a.rig}; noise {a.noise}")

    if a.ingest_only:
        return
    missing = [c for c in ("calibrate", "augment", "train", "evaluate") if not have_command(c)]
    if missing:
        print(f"\npipeline not run: command(s) {', '.join(missing)} not available in this installation")
        return
    t_cal = run(mv + ["calibrate", "--from-joints", str(ds)], work / "calibrate.log")
    aug = mv + ["augment", str(ds), "--virtual-views", str(a.virtual_views), "--seed", str(a.seed)]
    if a.extrinsics == "estimated":
        aug += ["--extrinsics", "estimated"]
    t_aug = run(aug, work / "augment.log")
    rows = []
    for loss in LOSSES:
        run_dir = work / f"run-{loss}"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        t_tr = run(
            mv
            + [
                "train",
                str(ds),
                "--out",
                str(run_dir),
                "--loss",
                loss,
                "--epochs",
                str(a.epochs),
                "--pretrain-epochs",
                str(a.pretrain_epochs),
                "--seed",
                str(a.seed),
            ]
            + a.train_args.split(),
            work / f"train-{loss}.log",
        )
        out_json = work / f"eval-{loss}.json"
        run(mv + ["evaluate", str(run_dir), str(ds), "--json", str(out_json), "--overwrite"], work / f"eval-{loss}.log")
        r = json.loads(out_json.read_text())
        rows.append((loss, r.get("mpjpe"), r.get("p_mpjpe"), r.get("n_mpjpe"), r.get("pck150"), t_tr))
    print(
        f"\n## pipeline on CMU (calibrate {t_cal:.1f} s, augment {t_aug:.1f} s; train: {a.epochs} epochs "
        f"+ {a.pretrain_epochs} pre-training, {a.train_args}; extrinsics {a.extrinsics}; "
        f"test {', '.join(m['splits']['test'])}, detected 2D)\n"
    )
    print("| loss | MPJPE mm | P-MPJPE mm | N-MPJPE mm | PCK@150 % | MPJPE / supervised | train s |")
    print("|---|---:|---:|---:|---:|---:|---:|")

    def f(v):
        return f"{v:.1f}" if isinstance(v, (int, float)) else "n/a"

    sup = next((mp for loss, mp, *_ in rows if loss == "supervised"), None)
    for loss, mp, pmp, nmp, pck, t in rows:
        ratio = f"{mp / sup:.2f}" if sup and isinstance(mp, (int, float)) else "n/a"
        print(f"| {loss} | {f(mp)} | {f(pmp)} | {f(nmp)} | {f(pck)} | {ratio} | {t:.0f} |")
    by = {loss: mp for loss, mp, *_ in rows}
    if by.get("trans-reproj") and by.get("reproj"):
        print(f"\nreproj / trans-reproj = {by['reproj'] / by['trans-reproj']:.1f}x (the paper's Table 1: 7.9x)")
    print(f"\nwork directory: {work}")


if __name__ == "__main__":
    main()
