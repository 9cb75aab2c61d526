"""Choosing the CPU thread count of a training run by measuring it (``--threads 0``, the default).

On a machine whose cores are shared with other jobs, OpenMP's spinning barriers make several threads far slower
than one (measured 2026-12-01 on a loaded 2-core machine: 256 channels, batch 1024, 1,119 vs 163 pairs/s; batch
256, 819 vs 49 pairs/s); on an idle many-core machine a wide network is several times faster with all cores. So
the trainer times the product that dominates a step (the hidden layer's GEMM at the run's batch size and width)
with 1 thread and with all available cores for a fraction of a second each and keeps the faster (random input
from its own generator: the run's weights and random streams are untouched).
"""

from __future__ import annotations

import os
import time

import torch

#: seconds each setting is timed for (after one warm-up product)
PROBE_SECONDS = 0.15


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _gemm_per_s(threads: int, rows: int, channels: int) -> float:
    """Products per second of the hidden layer's GEMM, (rows, C) @ (C, C), with ``threads`` threads."""
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    a, w = torch.randn(rows, channels, generator=g), torch.randn(channels, channels, generator=g)
    out = torch.empty(rows, channels)
    torch.mm(a, w, out=out)
    n, t0 = 0, time.perf_counter()
    while True:
        torch.mm(a, w, out=out)
        n += 1
        dt = time.perf_counter() - t0
        if dt > PROBE_SECONDS or n >= 200:
            return n / dt


def fastest_thread_count(batch_size: int, channels: int) -> tuple[int, str]:
    """(thread count, a note with the measured rates): 1 or all available cores, whichever runs the model's
    hidden-layer GEMM (both views of a batch: 2 x batch rows, ``channels`` wide) faster, by more than 10 %."""
    cores = available_cores()
    if cores <= 1:
        return 1, "one core available"
    rows, ch = 2 * min(batch_size, 1024), channels
    one = _gemm_per_s(1, rows, ch)
    many = _gemm_per_s(cores, rows, ch)
    n = cores if many > 1.1 * one else 1
    flop = 2.0 * rows * ch * ch
    return n, (
        f"measured ({rows} x {ch}) @ ({ch} x {ch}) products: 1 thread {one * flop / 1e9:.1f} GFLOP/s, "
        f"{cores} threads {many * flop / 1e9:.1f} GFLOP/s"
    )
