"""``mvtools train DS --out RUN``: the two-branch self-supervised lifter on DS/pairs/ (thin layer over
:func:`mvtools.train.loop.train`)."""
from __future__ import annotations

import json

import click

from mvtools.cli.common import friendly_errors


@click.command()
@click.argument("ds", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Run directory to write (config.json, last.pt, best.pt, metrics.jsonl, PNG plots).")
@click.option("--loss", type=click.Choice(["trans-reproj", "reproj", "supervised"]), default="trans-reproj",
              show_default=True,
              help="trans-reproj: eq. 7 (L_reproj + lambda L_t-reproj, px^2); reproj: eq. 2 alone; "
                   "supervised: MPJPE (mm) against the 3D ground truth (upper bound, no pre-training).")
@click.option("--epochs", type=click.IntRange(1), default=300, show_default=True,
              help="Main-phase epochs; the learning rate drops x0.1 every ceil(epochs/3) epochs.")
@click.option("--pretrain-epochs", type=click.IntRange(0), default=20, show_default=True,
              help="Pre-training epochs with eq. 6 (global-pose consistency, mm^2).")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Adam learning rate (both phases).")
@click.option("--lambda", "lam", type=float, default=1.0, show_default=True,
              help="Weight of L_t-reproj in eq. 7 (dimensionless; both terms are px^2).")
@click.option("--batch-size", type=click.IntRange(1), default=1024, show_default=True,
              help="Pairs per global batch (all DDP processes together).")
@click.option("--channels", type=click.IntRange(1), default=1024, show_default=True,
              help="Width of every hidden linear layer (both branches).")
@click.option("--blocks", type=click.IntRange(0), default=4, show_default=True,
              help="Residual blocks per branch (each 2 x linear, BatchNorm, ReLU, dropout).")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.5, show_default=True,
              help="Dropout probability after every hidden layer.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of weights, batches and dropout.")
@click.option("--max-pairs", type=click.IntRange(1), default=None,
              help="Train on a random subset of at most this many pairs (default: all).")
@click.option("--val-max-pairs", type=click.IntRange(0), default=20000, show_default=True,
              help="Validate each epoch on at most this many test-split pairs (0 = all).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where to train; auto = CUDA when available.")
@click.option("--extrinsics", type=click.Choice(["given", "estimated"]), default=None,
              help="Expected calibration of the shards' relative transforms (mm); an error if the shards "
                   "were built with the other one (default: accept the shards').")
@click.option("--amp", type=click.Choice(["off", "bf16", "fp16"]), default="off", show_default=True,
              help="Mixed-precision autocast (CUDA only).")
@click.option("--compile", "compile_", is_flag=True, help="Wrap the model in torch.compile.")
@click.option("--resume", is_flag=True,
              help="Continue RUN from its last.pt (same options; the result is the same as an uninterrupted run).")
@click.option("--stop-after", type=click.IntRange(1), default=None,
              help="Stop after this many epochs in total (pre-training included), leaving a resumable run.")
@click.option("--warmup-steps", type=click.IntRange(0), default=300, show_default=True,
              help="Optimiser steps at the start of each phase over which the learning rate rises linearly "
                   "to --lr (0 = off). Keeps a fresh Adam from throwing wide networks out of the pre-trained "
                   "state (docs/method.md).")
@click.option("--no-plots", is_flag=True, help="Do not write the PNG plots at the end.")
@friendly_errors
def train(ds, out, loss, epochs, pretrain_epochs, lr, lam, batch_size, channels, blocks, dropout, seed,
          max_pairs, val_max_pairs, device, extrinsics, amp, compile_, resume, stop_after, warmup_steps,
          no_plots):
    """Train the 2D-to-3D lifter on the pair shards in DS/pairs/ (written by `mvtools augment`).

    Validation each epoch: MPJPE / P-MPJPE (mm) of the lifting branch on view a of the test-split pairs.
    Multi-process: `torchrun --nproc-per-node N -m mvtools train DS --out RUN ...` (gloo on CPU, nccl on CUDA).
    """
    from mvtools.train.loop import train as run_train

    summary = run_train(ds, out, loss=loss, epochs=epochs, pretrain_epochs=pretrain_epochs, lr=lr, lam=lam,
                        batch_size=batch_size, channels=channels, blocks=blocks, dropout=dropout, seed=seed,
                        max_pairs=max_pairs, val_max_pairs=val_max_pairs, device=device, extrinsics=extrinsics,
                        amp=amp, compile=compile_, resume=resume, stop_after=stop_after,
                        warmup_steps=warmup_steps, plots=not no_plots)
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0:
        click.echo(json.dumps(summary))
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
