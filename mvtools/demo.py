"""The whole pipeline on the embedded synthetic Human3.6M-layout data, in one call (``mvtools demo``).

synth h36m -> ingest h36m (with detections) -> calibrate --from-joints -> augment --virtual-views 8
-> train (trans-reproj, reproj, supervised) -> evaluate on the held-out subjects (S9, S11).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from mvtools.progress import log

LOSSES = ("trans-reproj", "reproj", "supervised")

#: Small settings that run in minutes on a 2-core CPU (the paper's are 1024 channels, 4 blocks, 20 + 300 epochs).
#: Chosen by a sweep on this synthetic data (docs/method.md): lambda 2 beat 0.5 and 1; lr 2e-3 diverged. A 256-wide
#: network needs no learning-rate warm-up (trans-reproj 68.3 mm without, 76.9 mm with the default 300 steps, which
#: spend much of this short budget at a low rate); wider ones do (512 wide: 71.0 mm with, ~700 mm without).
DEMO_TRAIN = dict(channels=256, blocks=2, epochs=10, pretrain_epochs=3, batch_size=256, lr=1e-3, dropout=0.0,
                  lam=2.0, warmup_steps=0)


def run_demo(out, seed: int = 0, sequences: int = 4, frames: int = 500, virtual_views: int = 8,
             pairs_per_frame: int = 4, train_options: dict | None = None, losses=LOSSES,
             overwrite: bool = False) -> dict:
    """Run every stage into ``out`` and return {loss: evaluation dict} plus the stage summaries.

    ``sequences`` per subject and ``frames`` per sequence (50 Hz) size the synthetic data. ``out`` is marked as a
    demo output (``demo.json``, written first); an earlier demo output there is replaced with ``overwrite``.
    """
    from mvtools.io import claim_output

    with claim_output(out, "demo", overwrite=overwrite):
        _clear_earlier_demo(Path(out))
        return _run_demo(Path(out), seed, sequences, frames, virtual_views, pairs_per_frame, train_options, losses)


def _clear_earlier_demo(out: Path) -> None:
    """Remove what an earlier demo wrote into ``out`` (only the demo's own entries; other files stay)."""
    import shutil

    from mvtools.dataset import producer
    from mvtools.io import write_json_atomic

    for p in [out / "raw", out / "dataset", *out.glob("run-*"), out / "summary.json", out / "summary.md"]:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "demo.json", {"mvtools_output": "demo", "producer": producer()})


def _run_demo(out, seed, sequences, frames, virtual_views, pairs_per_frame, train_options, losses) -> dict:
    from mvtools.augment.pipeline import augment
    from mvtools.calibration.pipeline import calibrate_from_joints, format_report
    from mvtools.evaluate.evaluation import evaluate_run
    from mvtools.ingest.h36m.reader import ingest_h36m
    from mvtools.synth.h36m import synth_h36m
    from mvtools.train.loop import train

    import torch

    torch.set_num_threads(1)  # small networks: one thread is faster, and robust when the CPU is shared
    raw, ds = out / "raw", out / "dataset"
    opts = {**DEMO_TRAIN, **(train_options or {})}
    stages = {}

    def stage(name, fn, *a, **kw):
        log(f"== {name}")
        t0 = time.perf_counter()
        res = fn(*a, **kw)
        stages[name] = {"seconds": round(time.perf_counter() - t0, 1)}
        return res

    stage("synth h36m", synth_h36m, raw, sequences=sequences, frames=frames, seed=seed)
    stage("ingest h36m", ingest_h36m, raw, ds, detections=raw / "detections.npz")
    rep = stage("calibrate --from-joints", calibrate_from_joints, ds, scale="given", seed=seed)
    log(format_report(rep))
    aug = stage("augment --virtual-views", augment, ds, virtual_views=virtual_views, extrinsics="estimated",
                pairs_per_frame=pairs_per_frame, seed=seed)
    stages["augment --virtual-views"]["rows"] = aug.get("rows")
    results = {}
    for loss in losses:
        run = out / f"run-{loss}"
        stage(f"train --loss {loss}", train, ds, run, loss=loss, seed=seed, extrinsics="estimated", **opts)
        results[loss] = stage(f"evaluate {loss}", evaluate_run, run, ds)
    summary = {"stages": stages, "train_options": opts, "results": results}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(format_table(results) + "\n")
    return summary


def format_table(results: dict) -> str:
    """Markdown table of MPJPE / P-MPJPE (mm) and PCK@150 (percent, as :func:`evaluate_run` returns it) per
    training loss on the held-out subjects."""
    lines = ["| training loss | MPJPE (mm) | P-MPJPE (mm) | PCK@150 (%) | poses |", "|---|---:|---:|---:|---:|"]
    for loss, r in results.items():
        lines.append(f"| {loss} | {r['mpjpe']:.1f} | {r['p_mpjpe']:.1f} | {r['pck150']:.1f} | {r['n_poses']} |")
    return "\n".join(lines)
