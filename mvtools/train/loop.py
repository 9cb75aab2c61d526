"""The training loop: pair shards -> run directory (config.json, last.pt, best.pt, metrics.jsonl, plots).

One function, :func:`train`, readable top to bottom. It runs unchanged in one process or under
``torchrun --nproc-per-node N -m mvtools train ...`` (DDP: RANK / WORLD_SIZE / LOCAL_RANK from the environment,
gloo on CPU, nccl on CUDA; each rank takes a disjoint slice of every global batch; only rank 0 writes).

Schedule (Li et al. 2020): ``pretrain_epochs`` of eq. 6 (Adam, constant ``lr``), then ``epochs`` of the main
loss (a fresh Adam at ``lr``, x0.1 every ceil(epochs / 3) epochs). ``loss="supervised"`` has no pre-training.
"""
from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from mvtools.dataset import DatasetError
from mvtools.io import atomic_path, write_json_atomic
from mvtools.evaluate.metrics import mpjpe_per_pose, p_mpjpe_per_pose
from mvtools.progress import log, progress
from mvtools.train import losses
from mvtools.train.data import Pairs, epoch_batches, load_pairs, pairs_dir, read_pairs_manifest
from mvtools.train.model import TwoBranch, global_pose, normalise_2d

LOSSES = ("trans-reproj", "reproj", "supervised")
#: options that define a run; ``--resume`` must be given the same values
RUN_KEYS = ("loss", "epochs", "pretrain_epochs", "lr", "lam", "batch_size", "channels", "blocks", "dropout",
            "seed", "max_pairs", "val_max_pairs", "extrinsics", "lr_step")


def train(ds, out, *, loss: str = "trans-reproj", epochs: int = 300, pretrain_epochs: int = 20, lr: float = 1e-3,
          lam: float = 1.0, batch_size: int = 1024, channels: int = 1024, blocks: int = 4, dropout: float = 0.5,
          seed: int = 0, max_pairs: int | None = None, val_max_pairs: int | None = 20000,
          device: str = "auto", extrinsics: str | None = None, amp: str = "off", compile: bool = False,
          resume: bool = False, stop_after: int | None = None, lr_step: int | None = None,
          warmup_steps: int = 300, plots: bool = True) -> dict:
    """Train the two-branch lifter on ``ds``'s pair shards and write the run directory ``out``.

    ``epochs`` / ``pretrain_epochs``: main / pre-training epochs. ``lr``: Adam learning rate. ``lam``: the
    lambda of eq. 7. ``batch_size``: pairs per global batch (all ranks together). ``channels`` / ``blocks`` /
    ``dropout``: backbone size. ``max_pairs``: random subset of training pairs; ``val_max_pairs``: of the
    validation (test-split) pairs (None or 0 = all). ``extrinsics``: 'given' or 'estimated', must match the
    shards (None = accept the shards'). ``amp``: 'bf16' | 'fp16' | 'off' (CUDA only). ``stop_after``: stop once
    this many epochs (pre-training included) are done, leaving a resumable run. ``lr_step``: main-phase decay
    period in epochs (default ceil(epochs / 3)). ``warmup_steps``: the learning rate rises linearly from
    lr/warmup_steps to lr over the first optimiser steps of each phase (0 = off; without it a fresh Adam's first
    steps can throw a wide network out of the pre-trained basin, see docs/method.md). Returns a summary dict (best validation MPJPE in mm, ...).
    """
    # ------------------------------------------------------------------ setup: processes, device, options
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if amp not in ("off", "bf16", "fp16"):
        raise ValueError(f"amp must be bf16, fp16 or off, got {amp!r}")
    for name, v in (("epochs", epochs), ("batch_size", batch_size), ("channels", channels)):
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    if pretrain_epochs < 0 or blocks < 0 or warmup_steps < 0 or not 0 <= dropout < 1:
        raise ValueError("pretrain_epochs and blocks must be >= 0 and dropout in [0, 1)")
    rank, world, local_rank = _init_distributed(device)
    dev = _device(device, local_rank)
    if amp != "off" and dev.type != "cuda":
        raise ValueError(f"--amp {amp} needs a CUDA device (got {dev}); use --amp off on CPU")
    if batch_size < world:
        raise ValueError(f"batch_size {batch_size} is smaller than the number of processes {world}")
    if loss == "supervised":
        pretrain_epochs = 0
    lr_step = lr_step or max(1, math.ceil(epochs / 3))
    val_max_pairs = val_max_pairs or None
    out = Path(out)
    pdir = pairs_dir(ds)
    manifest = read_pairs_manifest(pdir)
    if extrinsics is not None and manifest["extrinsics"] != extrinsics:
        raise ValueError(f"{pdir / 'manifest.json'}: shards were built with {manifest['extrinsics']!r} extrinsics "
                         f"but --extrinsics {extrinsics} was asked; re-run `mvtools augment` or change the option")
    extrinsics = manifest["extrinsics"]
    config = dict(loss=loss, epochs=epochs, pretrain_epochs=pretrain_epochs, lr=lr, lam=lam, batch_size=batch_size,
                  channels=channels, blocks=blocks, dropout=dropout, seed=seed, max_pairs=max_pairs,
                  val_max_pairs=val_max_pairs, extrinsics=extrinsics, lr_step=lr_step, warmup_steps=warmup_steps)
    config_extra = dict(dataset=str(Path(ds).absolute()), pairs=str(pdir.absolute()),
                        source2d=manifest.get("source2d"), views=manifest.get("views"),
                        virtual_views=manifest.get("virtual_views"), splits=manifest.get("splits"),
                        world_size=world, device=str(dev), amp=amp, compile=compile, torch=torch.__version__)
    ckpt = None
    if resume:
        ckpt = _load_resume(out, config)
    elif rank == 0 and out.exists() and any(out.iterdir()):
        raise ValueError(f"{out}: run directory exists and is not empty (remove it, or pass --resume)")

    # ------------------------------------------------------------------ data
    tr = load_pairs(pdir, "train", max_pairs, seed, manifest)
    if len(tr) == 0:
        raise DatasetError(f"{pdir}: no training pairs (split 'train' is empty)")
    va = load_pairs(pdir, "test", val_max_pairs, seed + 1, manifest)
    if rank == 0:
        log(f"train: {len(tr)} pairs, validation: {len(va)} pairs ({pdir}); device {dev}, {world} process(es)")

    # ------------------------------------------------------------------ model, RNG, checkpoint state
    torch.manual_seed(seed)  # same initial weights on every rank
    model = TwoBranch(channels, blocks, dropout).to(dev)
    trainable = model.lift if loss == "supervised" else model
    torch.manual_seed(seed + 1 + 1000 * rank)  # dropout stream per rank
    np.random.seed((seed + 1000 * rank) % 2 ** 32)
    gen = torch.Generator().manual_seed(seed)  # batch permutation, identical on all ranks
    net = trainable
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            trainable, device_ids=[local_rank] if dev.type == "cuda" else None)
    step_net = torch.compile(net) if compile else net
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)) \
        if amp != "off" else nullcontext

    start, best, best_epoch, phase, opt, sched = 0, math.inf, None, None, None, None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        start, best, best_epoch, phase = ckpt["epoch"], ckpt["best"], ckpt["best_epoch"], ckpt["phase"]
        opt, sched = _optimizer(trainable, lr, phase, lr_step)
        opt.load_state_dict(ckpt["optimizer"])
        if sched is not None:
            sched.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        gen.set_state(ckpt["perm_generator"])
        _set_rng(ckpt["rng"], rank, world)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "config.json", {**config, **config_extra})
        _truncate_metrics(out / "metrics.jsonl", start)

    # ------------------------------------------------------------------ epochs
    total = pretrain_epochs + epochs
    stop = total if stop_after is None else min(total, stop_after)
    for epoch in range(start, stop):
        ep_phase = "pretrain" if epoch < pretrain_epochs else "main"
        if ep_phase != phase:  # a fresh Adam for each phase
            phase = ep_phase
            opt, sched = _optimizer(trainable, lr, phase, lr_step)
        cur_lr = opt.param_groups[0]["lr"]  # the scheduled rate; warm-up scales it per step below
        net.train()
        batches = epoch_batches(len(tr), batch_size, gen, rank, world)
        # optimiser steps already taken in this phase (a function of the epoch, so --resume stays exact)
        phase_step = (epoch - (0 if phase == "pretrain" else pretrain_epochs)) * len(batches)
        sums = torch.zeros(4, dtype=torch.float64)  # total, reproj, t_reproj, n
        t0 = time.perf_counter()
        with progress(length=len(batches), label=f"{phase} {epoch + 1}/{total}") as bar:
            for i, (idx, n_global) in enumerate(batches):
                if phase_step + i < warmup_steps:
                    for g in opt.param_groups:
                        g["lr"] = cur_lr * (phase_step + i + 1) / warmup_steps
                elif i and phase_step + i == warmup_steps:
                    for g in opt.param_groups:
                        g["lr"] = cur_lr
                b = tr.batch(idx, dev)
                with autocast():
                    per, parts = _batch_loss(step_net, b, loss, phase, lam)
                # per-sample losses summed over this rank's slice, scaled so that DDP's gradient average equals
                # the gradient of the mean over the global batch
                obj = per.sum() * (world / n_global)
                opt.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(obj).backward()
                    scaler.step(opt)
                    scaler.update()
                else:
                    obj.backward()
                    opt.step()
                with torch.no_grad():
                    sums += torch.stack([per.sum().double().cpu()] + [p.sum().double().cpu() for p in parts]
                                        + [torch.tensor(float(len(idx)), dtype=torch.float64)])
                bar.update(1)
        train_time = time.perf_counter() - t0
        for g in opt.param_groups:  # the scheduler continues from the scheduled rate, not a warm-up fraction
            g["lr"] = cur_lr
        if world > 1:
            dist.all_reduce(sums)
        if sched is not None:
            sched.step()
        val = _validate(model.lift, va, dev, rank, world)
        n = max(float(sums[3]), 1.0)
        rec = {"epoch": epoch + 1, "phase": phase, "loss": float(sums[0]) / n, "lr": cur_lr,
               "pairs_per_s": float(sums[3]) / max(train_time, 1e-9), "train_s": train_time, **val}
        if loss == "trans-reproj" and phase == "main":
            rec.update(loss_reproj=float(sums[1]) / n, loss_t_reproj=float(sums[2]) / n)
        # best.pt: lowest validation MPJPE of the main phase (no validation split: the latest main epoch)
        vm = val.get("val_mpjpe")
        improved = phase == "main" and (vm is None or vm < best)
        if improved:
            best_epoch = epoch + 1
            best = vm if vm is not None else best
        rng = _gather_rng(rank, world)
        if rank == 0:
            state = {"model": model.state_dict(), "config": {**config, **config_extra}, "epoch": epoch + 1,
                     "phase": phase, "optimizer": opt.state_dict(),
                     "scheduler": sched.state_dict() if sched is not None else None,
                     "scaler": scaler.state_dict() if scaler is not None else None,
                     "perm_generator": gen.get_state(), "rng": rng, "best": best, "best_epoch": best_epoch,
                     "world_size": world}
            _save(state, out / "last.pt")
            if improved:
                _save({k: state[k] for k in ("model", "config", "epoch", "phase")} | {"val": val}, out / "best.pt")
            with open(out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(rec) + "\n")
            msg = f"epoch {epoch + 1}/{total} {phase}: loss {rec['loss']:.4g}, {rec['pairs_per_s']:.0f} pairs/s"
            if "val_mpjpe" in val:
                msg += f", val MPJPE {val['val_mpjpe']:.1f} mm, P-MPJPE {val['val_p_mpjpe']:.1f} mm"
            log(msg)

    # ------------------------------------------------------------------ plots, summary
    if rank == 0 and plots:
        from mvtools.train.plots import write_plots

        write_plots(out, model.lift, va, dev)
    if world > 1:
        dist.barrier()
    return {"run": str(out), "epochs_done": max(stop, start), "best_val_mpjpe": None if best == math.inf else best,
            "best_epoch": best_epoch, "train_pairs": len(tr), "val_pairs": len(va)}


# ====================================================================== pieces of the loop
def _batch_loss(net, b: dict, loss: str, phase: str, lam: float):
    """Per-sample loss (B,) and its logged parts for one batch (both views through one forward pass)."""
    B = b["x2d_a"].shape[0]
    xn = torch.cat([normalise_2d(b["x2d_a"], b["K_a"]), normalise_2d(b["x2d_b"], b["K_b"])])
    if loss == "supervised":
        rel = net(xn)
        per = 0.5 * (losses.supervised_loss(rel[:B], b["y3d_a"]) + losses.supervised_loss(rel[B:], b["y3d_b"]))
        return per, (per.detach(), per.detach() * 0)
    rel, root = net(xn)
    Y = global_pose(rel, root)
    Y1, Y2 = Y[:B], Y[B:]
    if phase == "pretrain":
        per = losses.pretrain_loss(Y1, Y2, b["R_ab"], b["t_ab"], b["R_ba"], b["t_ba"])
        return per, (per.detach() * 0, per.detach() * 0)
    args = (Y1, Y2, b["x2d_a"], b["x2d_b"], b["conf_a"], b["conf_b"], b["K_a"], b["K_b"])
    if loss == "reproj":
        per = losses.reproj_loss(*args)
        return per, (per.detach(), per.detach() * 0)
    per, lr_, lt = losses.trans_reproj_loss(*args, b["R_ab"], b["t_ab"], b["R_ba"], b["t_ba"], lam)
    return per, (lr_.detach(), lt.detach())


def _optimizer(module, lr: float, phase: str, lr_step: int):
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=lr_step, gamma=0.1) if phase == "main" else None
    return opt, sched


@torch.no_grad()
def predict_relative(lift, x2d: torch.Tensor, K: torch.Tensor, device, chunk: int = 16384) -> np.ndarray:
    """Lifting branch in eval mode: pixels (N, J, 2), K (N, 4) -> root-relative (N, J, 3) mm numpy float64."""
    was = lift.training
    lift.eval()
    outs = []
    for s in range(0, len(x2d), chunk):
        xn = normalise_2d(x2d[s:s + chunk].to(device).float(), K[s:s + chunk].to(device).float())
        outs.append(lift(xn).double().cpu())
    lift.train(was)
    return torch.cat(outs).numpy() if outs else np.zeros((0,) + tuple(x2d.shape[1:-1]) + (3,))


def _validate(lift, va: Pairs, dev, rank: int, world: int) -> dict:
    """MPJPE / P-MPJPE (mm) of the lifting branch on view a of the validation pairs (sharded over ranks)."""
    if len(va) == 0:
        return {}
    idx = torch.tensor_split(torch.arange(len(va)), world)[rank]
    pred = predict_relative(lift, va.field("x2d_a")[idx], va.field("K_a")[idx], dev)
    gt = va.field("y3d_a")[idx].double().numpy()
    gt = gt - gt[:, :1]
    s = torch.tensor([mpjpe_per_pose(pred, gt).sum(), p_mpjpe_per_pose(pred, gt).sum(), float(len(idx))]
                     if len(idx) else [0.0, 0.0, 0.0], dtype=torch.float64)
    if world > 1:
        dist.all_reduce(s)
    return {"val_mpjpe": float(s[0] / s[2]), "val_p_mpjpe": float(s[1] / s[2])}


# ====================================================================== processes and devices
def _init_distributed(device: str) -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    if not dist.is_initialized():
        use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))


def _device(device: str, local_rank: int) -> torch.device:
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked but no CUDA device is available")
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


# ====================================================================== RNG state and checkpoints
def _rng_state() -> dict:
    s = {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def _gather_rng(rank: int, world: int) -> list:
    if world == 1:
        return [_rng_state()]
    states = [None] * world
    dist.all_gather_object(states, _rng_state())
    return states


def _set_rng(states: list, rank: int, world: int) -> None:
    if len(states) != world:
        log(f"resume: checkpoint was written by {len(states)} process(es), now {world}; "
            "dropout random streams restart (the run is not bit-identical)")
        return
    s = states[rank]
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def _save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _truncate_metrics(path: Path, epochs_done: int) -> None:
    """Keep only the metrics.jsonl lines of epochs already in the checkpoint (a resumed run appends)."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    keep = [ln for ln in lines if json.loads(ln).get("epoch", 0) <= epochs_done]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(ln + "\n" for ln in keep))


def _load_resume(out: Path, config: dict) -> dict:
    path = out / "last.pt"
    if not path.exists():
        raise ValueError(f"{path}: no checkpoint to resume from")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ValueError(f"{path}: cannot read checkpoint ({e})") from None
    stored = ckpt.get("config", {})
    diff = [k for k in RUN_KEYS if stored.get(k) != config.get(k)]
    if diff:
        detail = ", ".join(f"{k}: run has {stored.get(k)!r}, asked {config.get(k)!r}" for k in diff)
        raise ValueError(f"{path}: --resume needs the same options as the run ({detail})")
    return ckpt


def load_lifter(run, which: str = "best", device: str | torch.device = "cpu"):
    """The lifting branch of a run (eval mode) and the run's config: ``(LiftingNet, dict)``.

    ``which`` is 'best' (best.pt, falling back to last.pt) or 'last', or a path to a .pt file.
    """
    run = Path(run)
    if which in ("best", "last"):
        path = run / f"{which}.pt"
        if which == "best" and not path.exists():
            path = run / "last.pt"
    else:
        path = Path(which)
    if not path.exists():
        raise ValueError(f"{path}: no checkpoint (is {run} a training run directory?)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        cfg = ckpt["config"]
        model = TwoBranch(cfg["channels"], cfg["blocks"], cfg["dropout"])
        model.load_state_dict(ckpt["model"])
    except (KeyError, RuntimeError, EOFError, OSError) as e:
        raise ValueError(f"{path}: not a valid mvtools checkpoint ({e})") from None
    lift = model.lift.to(device).eval()
    return lift, cfg
