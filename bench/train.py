"""Training throughput of `mvtools train` on CPU (issue 5).

Measured in one run, each mode in its own subprocess (so peak RSS is per mode):

- ``loop``: :func:`mvtools.train.loop.train` with the trans-reproj loss (pairs/s of the last epoch).
- ``matmul``: the same GEMMs one training step of the two-branch model performs (forward, grad-input and
  grad-weight of every linear layer, both branches, both views) timed with bare ``torch.mm`` -> the matmul-bound
  pairs/s for the same FLOPs.
- ``dataloader``: a plain PyTorch ``Dataset`` with per-sample ``__getitem__`` over the same shards (columns held as
  numpy arrays), ``DataLoader(shuffle=True)`` with default collation, the same model, loss and optimizer step.
- ``data-only`` rows: batches per second of the two data paths without the model.

``--backbone temporal --receptive-field R`` (issue 13) measures the temporal backbone instead: ``loop`` in windows/s
(two windows, one per view, per pair), against ``matmul`` = the same-FLOP bound of its strided convolutions (each
one is a GEMM over (rows x positions, C_in x width) x (C_in x width, C_out): forward, grad-input and grad-weight,
both branches, both views), and ``windows-only`` = gathering the 2D windows of a batch (index arithmetic and one
``index_select``) without the model. The DataLoader comparison is ResLinear's only.

Every figure is the best of 3 repeats of ``--steps`` steps (the machine is shared; the best repeat is the least
disturbed one). Usage: ``python bench/train.py [--pairs 40000] [--channels 1024] [--blocks 4] [--batch-size 1024]
[--steps 8] [--threads N]``. Prints a Markdown table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build_shards(work: Path, pairs: int) -> Path:
    """A synthetic dataset with pair shards of about ``pairs`` training pairs (synth + augment)."""
    from mvtools.augment import augment
    from mvtools.synth.dataset import synth_dataset

    ds = work / "ds"
    if not (ds / "pairs" / "manifest.json").exists():
        frames = max(50, pairs // (5 * 4 * 4))  # 5 train subjects x 4 sequences x 4 pairs per frame
        synth_dataset(ds, sequences_per_subject=4, frames=frames)
        augment(ds, virtual_views=8)
    return ds


def mode_loop(a) -> dict:
    import torch

    from mvtools.train.loop import train

    run = Path(a.work) / f"run-{os.getpid()}"
    bs = a.batch_size
    train(
        a.ds,
        run,
        epochs=REPEATS + 1,
        pretrain_epochs=0,
        channels=a.channels,
        blocks=a.blocks,
        batch_size=bs,
        max_pairs=a.steps * bs,
        val_max_pairs=256,
        test_max_pairs=0,
        dropout=a.dropout,
        plots=False,
        threads=a.threads,
        backbone=a.backbone,
        receptive_field=a.receptive_field,
    )
    recs = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    return {"pairs_per_s": max(r["pairs_per_s"] for r in recs[1:]), "threads": torch.get_num_threads()}


def _gemm_shapes(B: int, channels: int, blocks: int, backbone: str = "reslinear", rf: int = 1):
    """(m, k, n) of every GEMM in one training step of both branches on 2B rows (both views). Temporal: each
    strided convolution of width w over n output positions is a GEMM of 2B n rows, k = C_in w, n = C_out."""
    shapes = []
    for out in (51, 3):  # lifting branch, root branch
        if backbone == "temporal":
            from mvtools.train.temporal import filter_widths_for

            widths = filter_widths_for(rf)
            pos = rf // widths[0]
            layers = [(pos, 34 * widths[0], channels)]
            for w in widths[1:]:
                pos //= w
                layers += [(pos, channels * w, channels), (pos, channels, channels)]
            layers.append((1, channels, out))
        else:
            layers = [(1, 34, channels)] + [(1, channels, channels)] * (2 * blocks) + [(1, channels, out)]
        for pos, fin, fout in layers:
            rows = 2 * B * pos
            shapes.append((rows, fin, fout))  # forward
            shapes.append((rows, fout, fin))  # grad input
            shapes.append((fin, rows, fout))  # grad weight
    return shapes


def mode_matmul(a) -> dict:
    import torch

    shapes = _gemm_shapes(a.batch_size, a.channels, a.blocks, a.backbone, a.receptive_field)
    mats = [(torch.randn(m, k), torch.randn(k, n), torch.empty(m, n)) for m, k, n in shapes]
    flops = sum(2 * m * k * n for m, k, n in shapes)
    for x, y, o in mats:  # warm-up
        torch.mm(x, y, out=o)
    mean = float("inf")
    for _ in range(REPEATS):
        t = time.perf_counter()
        for _ in range(a.steps):
            for x, y, o in mats:
                torch.mm(x, y, out=o)
        mean = min(mean, (time.perf_counter() - t) / a.steps)
    return {"pairs_per_s": a.batch_size / mean, "gflops": flops / mean / 1e9, "flop_per_pair": flops / a.batch_size}


def _step_fn(a):
    import torch

    from mvtools.train.config import TrainConfig
    from mvtools.train.loop import _forward
    from mvtools.train.losses import get_loss
    from mvtools.train.model import build_model

    torch.manual_seed(0)
    cfg = TrainConfig(channels=a.channels, blocks=a.blocks, dropout=a.dropout)
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    spec = get_loss("trans-reproj")

    def step(b):
        per = sum(spec.fn(_forward(model, b, True), b, cfg).values())
        opt.zero_grad(set_to_none=True)
        per.mean().backward()
        opt.step()

    return step


def _naive_loader(a):
    import numpy as np
    import pyarrow.parquet as pq
    import torch
    from torch.utils.data import DataLoader, Dataset

    from mvtools.train.data import FIELDS, pairs_dir, read_pairs_manifest

    pdir = pairs_dir(a.ds)
    m = read_pairs_manifest(pdir)
    tables = [pq.read_table(pdir / s["path"], columns=list(FIELDS)) for s in m["shards"] if s["split"] == "train"]

    class PairDataset(Dataset):
        def __init__(self):
            self.cols = {}
            for name, shape in FIELDS.items():
                arr = np.concatenate([np.stack(t.column(name).to_numpy(zero_copy_only=False)) for t in tables])
                self.cols[name] = arr.astype(np.float32).reshape((-1,) + shape)

        def __len__(self):
            return len(self.cols["x2d_a"])

        def __getitem__(self, i):
            return {k: torch.from_numpy(v[i]) for k, v in self.cols.items()}

    return DataLoader(PairDataset(), batch_size=a.batch_size, shuffle=True, drop_last=True)


def mode_dataloader(a) -> dict:
    import torch

    step = _step_fn(a)
    loader = _naive_loader(a)
    it = iter(loader)
    step(next(it))  # warm-up
    best = 0.0
    for _ in range(REPEATS):
        t = time.perf_counter()
        for _ in range(a.steps):
            step(next(it))
        best = max(best, a.steps * a.batch_size / (time.perf_counter() - t))
    return {"pairs_per_s": best, "threads": torch.get_num_threads()}


def mode_data_only(a) -> dict:
    import torch

    from mvtools.train.data import epoch_batches, load_pairs, pairs_dir

    pairs = load_pairs(pairs_dir(a.ds), "train")
    g = torch.Generator().manual_seed(0)
    ours = naive = 0.0
    loader = _naive_loader(a)
    for _ in range(REPEATS):
        t = time.perf_counter()
        batches = epoch_batches(len(pairs), a.batch_size, g)[: a.steps]
        for idx, _ in batches:
            pairs.batch(idx)
        ours = max(ours, len(batches) * a.batch_size / (time.perf_counter() - t))
        t, n = time.perf_counter(), 0
        for _ in loader:
            n += a.batch_size
            if n >= a.steps * a.batch_size:
                break
        naive = max(naive, n / (time.perf_counter() - t))
    return {"ours_pairs_per_s": ours, "dataloader_pairs_per_s": naive}


def mode_windows_only(a) -> dict:
    import torch

    from mvtools.train.data import epoch_batches, load_pairs, pairs_dir, read_pairs_manifest
    from mvtools.train.windows import PairWindows, load_sequences

    pdir = pairs_dir(a.ds)
    m = read_pairs_manifest(pdir)
    pairs = load_pairs(pdir, "train", manifest=m)
    pairs.windows = PairWindows(load_sequences(pdir, "train", m), pairs.meta, a.receptive_field, False)
    g = torch.Generator().manual_seed(0)
    best = 0.0
    for _ in range(REPEATS):
        t = time.perf_counter()
        batches = epoch_batches(len(pairs), a.batch_size, g)[: a.steps]
        for idx, _ in batches:
            pairs.batch(idx)
        best = max(best, 2 * len(batches) * a.batch_size / (time.perf_counter() - t))
    return {"windows_per_s": best, "pairs_per_s": best / 2}


REPEATS = 3
MODES = {
    "loop": mode_loop,
    "matmul": mode_matmul,
    "dataloader": mode_dataloader,
    "data-only": mode_data_only,
    "windows-only": mode_windows_only,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=40000, help="training pairs in the synthetic shards")
    ap.add_argument("--channels", type=int, default=1024)
    ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--backbone", choices=("reslinear", "temporal"), default="reslinear")
    ap.add_argument("--receptive-field", type=int, default=243, help="frames (temporal backbone)")
    ap.add_argument("--steps", type=int, default=8, help="training steps per timed repeat")
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads; 0 (default) = what `mvtools train` chooses by default (it measures "
        "1 vs all cores); the other modes then use the loop's count",
    )
    ap.add_argument("--work", default=None, help="work directory (default: a temporary one)")
    ap.add_argument("--mode", choices=sorted(MODES), default=None, help=argparse.SUPPRESS)
    ap.add_argument("--ds", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    os.environ["MVTOOLS_QUIET"] = "1"
    if a.mode:  # child process: one measurement
        import torch

        if a.threads:
            torch.set_num_threads(a.threads)
        res = MODES[a.mode](a)
        res["peak_rss_mb"] = _peak_mb()
        print(json.dumps(res))
        return
    work = Path(a.work or tempfile.mkdtemp(prefix="mvtools-bench-train-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ds = build_shards(work, a.pairs)
    base = [
        sys.executable,
        __file__,
        "--work",
        str(work),
        "--ds",
        str(ds),
        "--channels",
        str(a.channels),
        "--blocks",
        str(a.blocks),
        "--batch-size",
        str(a.batch_size),
        "--steps",
        str(a.steps),
        "--dropout",
        str(a.dropout),
        "--threads",
        str(a.threads),
        "--backbone",
        a.backbone,
        "--receptive-field",
        str(a.receptive_field),
    ]
    if a.backbone == "temporal":
        return _main_temporal(a, base, t0)
    res = {}
    # the loop runs first with the requested threads (0: the trainer's own choice); the other modes use its count.
    # matmul is measured before and after the others and the better figure kept, so a burst of other work on the
    # machine during one measurement cannot make the loop look better than the matmul bound
    for mode in ("loop", "matmul", "dataloader", "data-only", "matmul"):
        cmd = base + ["--mode", mode]
        if mode != "loop":
            cmd[cmd.index("--threads") + 1] = str(res["loop"]["threads"])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        if mode not in res or r["pairs_per_s"] > res[mode]["pairs_per_s"]:
            res[mode] = r
    mm, loop, dl = res["matmul"]["pairs_per_s"], res["loop"]["pairs_per_s"], res["dataloader"]["pairs_per_s"]
    print(
        f"model: {a.channels} channels, {a.blocks} blocks, batch {a.batch_size}, dropout {a.dropout}; "
        f"{res['matmul']['flop_per_pair'] / 1e6:.0f} MFLOP per pair per step; torch threads "
        f"{res['loop']['threads']}"
    )
    print("| path | pairs/s | vs matmul-bound | peak RSS (MB) |")
    print("|---|---:|---:|---:|")
    print(
        f"| matmul-bound (same GEMMs, {res['matmul']['gflops']:.1f} GFLOP/s) | {mm:,.0f} | 100% | "
        f"{res['matmul']['peak_rss_mb']:.0f} |"
    )
    print(f"| `mvtools train` loop | {loop:,.0f} | {100 * loop / mm:.0f}% | {res['loop']['peak_rss_mb']:.0f} |")
    print(
        f"| DataLoader + per-sample `__getitem__` | {dl:,.0f} | {100 * dl / mm:.0f}% | "
        f"{res['dataloader']['peak_rss_mb']:.0f} |"
    )
    d = res["data-only"]
    print(f"| data path only: packed index_select | {d['ours_pairs_per_s']:,.0f} | - | {d['peak_rss_mb']:.0f} |")
    print(f"| data path only: DataLoader | {d['dataloader_pairs_per_s']:,.0f} | - | |")
    print(
        f"loop / DataLoader = {loop / dl:.2f}x end to end, "
        f"{d['ours_pairs_per_s'] / d['dataloader_pairs_per_s']:.0f}x data path; "
        f"wall {time.perf_counter() - t0:.0f} s"
    )
    print(json.dumps(res))


def _main_temporal(a, base, t0) -> None:
    res = {}
    for mode in ("matmul", "loop", "windows-only", "matmul"):
        out = subprocess.run(base + ["--mode", mode], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        if mode not in res or r["pairs_per_s"] > res[mode]["pairs_per_s"]:
            res[mode] = r
    mm, loop, win = (2 * res[k]["pairs_per_s"] for k in ("matmul", "loop", "windows-only"))
    print(
        f"temporal backbone: receptive field {a.receptive_field} frames, {a.channels} channels, batch "
        f"{a.batch_size} pairs ({2 * a.batch_size} windows), dropout {a.dropout}; "
        f"{res['matmul']['flop_per_pair'] / 2e6:.0f} MFLOP per window per step; torch threads "
        f"{res['loop']['threads']}"
    )
    print("| path | windows/s | vs same-FLOP GEMM bound | peak RSS (MB) |")
    print("|---|---:|---:|---:|")
    print(
        f"| same-FLOP GEMM bound of the strided convolutions ({res['matmul']['gflops']:.1f} GFLOP/s) | {mm:,.0f} "
        f"| 100% | {res['matmul']['peak_rss_mb']:.0f} |"
    )
    print(
        f"| `mvtools train --backbone temporal` loop | {loop:,.0f} | {100 * loop / mm:.0f}% | "
        f"{res['loop']['peak_rss_mb']:.0f} |"
    )
    print(f"| data path only: window gather | {win:,.0f} | - | {res['windows-only']['peak_rss_mb']:.0f} |")
    print(f"wall {time.perf_counter() - t0:.0f} s")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
