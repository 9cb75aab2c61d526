"""The temporal backbone against ResLinear at the same budget (issue 13): MPJPE, P-MPJPE and MPJVE on held-out
subjects, with training time.

    python bench/temporal.py                              # synthetic H36M-layout data (the demo's dataset)
    python bench/temporal.py --ds /tmp/cmu                 # an existing dataset with pairs/ (e.g. CMU via bench/bvh.py)
    python bench/temporal.py --runs res-tr,tmp27-tr --work /tmp/tb
    python bench/temporal.py --sequences 16                # four times the synthetic training motion

Data: by default ``synth_dataset(sequences_per_subject=4, frames=500)`` (realistic detector noise) and
``augment(virtual_views=8)``: 40,000 training and 16,000 test pairs, detected 2D, test subjects S9 and S11. Every
run trains with the same budget (batch 256, 3 pre-training + 10 main epochs; ``--budget``) and the trainer's defaults
otherwise (lr 1e-3, warm-up 300 steps, lambda 2, root weight 16, no root-branch dropout), one torch thread, then
``mvtools evaluate`` scores its ``best.pt`` (chosen by the trainer on held-out TRAINING sequences: label-free multi-view
consistency for trans-reproj, held-out MPJPE for supervised) on the test subjects' real cameras, with test-time flip
averaging (the default; ``--no-test-flip`` to score without). Runs (``--runs``, names
``BACKBONE-LOSS[-dDROPOUT][-sSEED]``):

- ``res-tr`` / ``res-sup``: ResLinear, 256 channels, 2 blocks, trans-reproj / supervised; ``resW-...``: W channels;
- ``tmpR-tr`` / ``tmpR-sup``: temporal backbone, receptive field R (9, 27, 81, 243) frames, 128 channels (about
  ResLinear-256's FLOPs per window at R = 27), trans-reproj / supervised; ``tmpRcW-...``: W channels
  (``tmp27c256``: ResLinear's width);
- ``-dNN``: lifting-branch dropout NN / 100 (``-d0``: none, ``-d25``: VideoPose3D's 0.25; default: the trainer's 0.1);
- ``-s1``: seed 1 (weights, batch order, dropout, held-out split; default 0).

Each run is its own ``mvtools train`` subprocess; its wall time is reported (the machine may be shared). Prints a
Markdown table (with each run's MPJVE ratio against the ResLinear run of the same loss, dropout and seed, when that
run is in the list) and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: the budget every docs/benchmarks.md row ran with (everything else: the trainer's defaults)
BUDGET = "--batch-size 256 --pretrain-epochs 3 --epochs 10"
DEFAULT_RUNS = "res-tr,tmp81c256-tr-d25,res-sup,tmp81c256-sup-d25"
RUN_NAME = re.compile(r"(res(\d+)?|tmp(\d+)(?:c(\d+))?)-(tr|sup)(?:-d(\d+))?(?:-s(\d+))?")


def run_options(name: str) -> list[str]:
    """Backbone, loss, dropout and seed options of a run name (see the module doc)."""
    m = RUN_NAME.fullmatch(name)
    if not m:
        raise SystemExit(f"unknown run {name!r} (res-tr, res512-sup-d25, tmp27c256-tr, tmp81-sup-d0-s1, ...)")
    opts = ["--loss", "trans-reproj" if m.group(5) == "tr" else "supervised"]
    if m.group(6) is not None:
        opts += ["--dropout", str(int(m.group(6)) / 100)]
    if m.group(7) is not None:
        opts += ["--seed", m.group(7)]
    if m.group(1).startswith("res"):
        return opts + ["--channels", m.group(2) or "256", "--blocks", "2"]
    return opts + ["--channels", m.group(4) or "128", "--backbone", "temporal", "--receptive-field", m.group(3)]


def reference_run(name: str) -> str:
    """The ResLinear run (256 x 2) a run's MPJVE ratio is taken against: same loss, dropout and seed."""
    m = RUN_NAME.fullmatch(name)
    return "res" + name[len(m.group(1)) :]


def build(work: Path, sequences: int = 4) -> Path:
    """The synthetic dataset: ``sequences`` sequences of 500 frames per subject, 8 virtual views."""
    from mvtools.augment import augment
    from mvtools.synth.dataset import synth_dataset

    ds = work / f"synth-{sequences}"
    if not (ds / "pairs" / "manifest.json").exists():
        synth_dataset(ds, sequences_per_subject=sequences, frames=500)
        augment(ds, virtual_views=8)
    return ds


def one(ds: Path, work: Path, name: str, budget: str, threads: int, test_flip: bool = True) -> dict:
    out = work / name
    env = {**os.environ, "MVTOOLS_QUIET": "1", "OMP_NUM_THREADS": str(threads)}
    mv = [sys.executable, "-m", "mvtools"]
    t = time.perf_counter()
    subprocess.run(
        mv
        + ["train", str(ds), "--out", str(out), "--threads", str(threads), "--no-plots"]
        + budget.split()
        + run_options(name),
        check=True,
        env=env,
        capture_output=True,
    )
    wall = time.perf_counter() - t
    subprocess.run(
        mv
        + ["evaluate", str(out), str(ds), "--json", str(out) + ".eval.json", "--overwrite"]
        + ["--test-flip" if test_flip else "--no-test-flip"],
        check=True,
        env=env,
        capture_output=True,
    )
    r = json.loads(Path(str(out) + ".eval.json").read_text())
    cfg = json.loads((out / "config.json").read_text())
    recs = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    return {
        "run": name,
        "backbone": cfg["backbone"],
        "channels": cfg["channels"],
        "receptive_field": cfg["receptive_field"] if cfg["backbone"] == "temporal" else 1,
        "loss": cfg["loss"],
        "dropout": cfg["dropout"],
        "seed": cfg["seed"],
        "mpjpe": r["mpjpe"],
        "p_mpjpe": r["p_mpjpe"],
        "mpjve": r["mpjve"],
        "test_flip": r["test_flip"],
        "n_poses": r["n_poses"],
        "best_epoch": r["checkpoint"]["epoch"],
        "train_wall_s": wall,
        "train_s": sum(x["train_s"] for x in recs),
        "pairs_per_s": sum(x["pairs_per_s"] * x["train_s"] for x in recs) / sum(x["train_s"] for x in recs),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ds", type=Path, default=None, help="dataset with pairs/ (default: build the synthetic one)")
    ap.add_argument("--runs", default=DEFAULT_RUNS, help=f"comma-separated run names (default {DEFAULT_RUNS})")
    ap.add_argument(
        "--sequences", type=int, default=4, help="synthetic sequences (500 frames) per subject (without --ds)"
    )
    ap.add_argument("--budget", default=BUDGET, help="training options shared by every run (quoted)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument(
        "--no-test-flip", dest="test_flip", action="store_false", help="score without test-time flip averaging"
    )
    ap.add_argument("--work", type=Path, default=None, help="work directory (default: a temporary one)")
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="mvtools-bench-temporal-"))
    work.mkdir(parents=True, exist_ok=True)
    ds = a.ds or build(work, a.sequences)
    rows = [one(ds, work, name, a.budget, a.threads, a.test_flip) for name in a.runs.split(",")]
    by_name = {r["run"]: r for r in rows}
    print(f"data: {ds}; budget: {a.budget}; {a.threads} thread(s); test-time flip averaging {a.test_flip}")
    print(
        "| run | backbone | channels | frames | loss | dropout | MPJPE (mm) | P-MPJPE (mm) | MPJVE (mm/frame) | "
        "ResLinear MPJVE / this | best epoch | train (s) | pairs/s |"
    )
    print("|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ref = by_name.get(reference_run(r["run"]))
        ratio = f"{ref['mpjve'] / r['mpjve']:.2f}x" if ref and r["backbone"] == "temporal" else "-"
        print(
            f"| {r['run']} | {r['backbone']} | {r['channels']} | {r['receptive_field']} | {r['loss']} | "
            f"{r['dropout']} | "
            f"{r['mpjpe']:.1f} | {r['p_mpjpe']:.1f} | {r['mpjve']:.2f} | {ratio} | {r['best_epoch']} | "
            f"{r['train_s']:.0f} | {r['pairs_per_s']:.0f} |"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
