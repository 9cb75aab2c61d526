"""The training loop: pair shards -> run directory (config.json, last.pt, best.pt, metrics.jsonl, plots).

:func:`train` reads top to bottom; every step is a function of its own below it. It runs unchanged in one
process or under ``torchrun --nproc-per-node N -m mvtools train ...`` (DDP: RANK / WORLD_SIZE / LOCAL_RANK from
the environment, gloo on CPU, nccl on CUDA; each rank takes a disjoint slice of every global batch; only rank 0
writes).

Data: the shards' ``train`` split minus a held-out part of its sequences (``heldout_fraction``, whole
sequences) is trained on; the held-out part chooses ``best.pt`` with the main loss itself (label-free for the
self-supervised losses). The ``test`` split is read only to log its MPJPE, which decides nothing.

Schedule (Li et al. 2020, laid out in optimiser steps): ``pretrain_epochs`` of eq. 6 (Adam, constant ``lr``),
then ``epochs`` of the main loss (a fresh Adam at ``lr``, x0.1 after each third of the phase's steps); each phase
starts with a linear warm-up. ``supervised`` has no pre-training.

Per epoch, rank 0 writes ``best.pt`` (when the held-out score improved), then the epoch's metrics line, then
``last.pt``, so a kill leaves ``last.pt`` no newer than the other two (``--resume`` redoes the epoch exactly).
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from mvtools.dataset import DatasetError
from mvtools.evaluate.metrics import mpjpe_per_pose, p_mpjpe_per_pose
from mvtools.io import atomic_path, check_not_input, lock_output, write_json_atomic
from mvtools.progress import log, progress
from mvtools.train import schedule
from mvtools.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from mvtools.train.config import TrainConfig, run_keys
from mvtools.train.data import (
    Pairs,
    epoch_batches,
    flip_pairs,
    load_pairs,
    pairs_dir,
    read_pairs_manifest,
    split_sequences,
)
from mvtools.train.inference import lift_view_a
from mvtools.train.losses import LossSpec, Prediction, get_loss
from mvtools.train.model import build_model, global_pose, normalise_2d
from mvtools.train.temporal import receptive_field_of
from mvtools.train.windows import PairWindows, load_sequences

#: files a run directory may hold before its first checkpoint (a restart may replace them)
RUN_FILES = ("config.json", "metrics.jsonl", "best.pt", "last.pt", "loss.png", "mpjpe.png", "skeletons.png")


def train(ds, out, config: TrainConfig | None = None, **options) -> dict:
    """Train the two-branch lifter on ``ds``'s pair shards and write the run directory ``out``.

    ``config``: a :class:`TrainConfig` (default: all defaults); ``options`` override single fields
    (``train(ds, out, epochs=3, channels=64)``). Returns a summary dict (best epoch, its held-out score, ...).
    """
    cfg = (config or TrainConfig()).replace(**options).validate()
    env = _processes(cfg)
    out = Path(out)
    # the one output guard (mvtools.io): out never inside the dataset, and one writer at a time (rank 0 holds the
    # lock for the whole run); an existing directory is continued only with --resume (see _start), never replaced
    claim = None
    if env.rank == 0:
        check_not_input(out.absolute(), [ds])
        claim = lock_output(out.absolute())
    try:
        return _train(ds, out, cfg, env)
    finally:
        if claim is not None:
            claim.release()


def _train(ds, out: Path, cfg: TrainConfig, env) -> dict:
    """The training run of :func:`train` (the caller holds the output's lock)."""
    ckpt = _start(out, cfg, env)
    main_loss = get_loss(cfg.loss)
    data = _load_data(ds, cfg, env)
    _set_threads(cfg, ckpt, env, data)
    model, net, trainable = _build(cfg, env, main_loss)
    st = _State.from_checkpoint(ckpt, main_loss)
    gen = torch.Generator().manual_seed(cfg.seed)  # batch permutation, identical on all ranks
    torch.manual_seed(cfg.seed + 1 + 1000 * env.rank)  # dropout stream per rank
    opt = None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt = _optimizer(trainable, cfg)
        opt.load_state_dict(ckpt["optimizer"])
        gen.set_state(ckpt["perm_generator"])
        _restore_rng(ckpt["rng"], env)
    if env.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "config.json", {**cfg.to_dict(), "derived": data.derived})
        _truncate_metrics(out / "metrics.jsonl", st.epoch)

    total = _phase_epochs(cfg)[2]
    stop = total if cfg.stop_after is None else min(total, cfg.stop_after)
    for epoch in range(st.epoch, stop):
        phase = _phase(cfg, epoch)
        spec = get_loss("pretrain") if phase == "pretrain" else main_loss
        if phase != st.phase:  # a fresh Adam for each phase
            st.phase, opt = phase, _optimizer(trainable, cfg)
        rec = {"epoch": epoch + 1, "phase": phase}
        rec |= _train_epoch(net, opt, data, gen, cfg, env, spec, epoch)
        rec |= _heldout_scores(model, data.heldout, cfg, env, spec)
        rec |= _test_metrics(model.lift, data.test, env)
        improved = _select(st, rec, epoch)
        if env.rank == 0:
            _save_epoch(out, model, opt, gen, st, cfg, data.derived, rec, improved, env)
        else:
            _gather_rng(env)  # the all-gather rank 0 does while saving
    if env.rank == 0 and cfg.plots:
        from mvtools.train.plots import write_plots

        write_plots(out, model.lift, data.test, env.device)
    if env.world > 1:
        dist.barrier()
    return {
        "run": str(out),
        "epochs_done": max(stop, st.epoch),
        "best_epoch": st.best_epoch,
        "best_heldout_score": None if st.best == math.inf else st.best,
        "selection": data.derived["selection"],
        "train_pairs": len(data.train),
        "heldout_pairs": len(data.heldout),
        "test_pairs": len(data.test),
    }


# ====================================================================== setup
@dataclass
class _Env:
    rank: int
    world: int
    local_rank: int
    device: torch.device
    autocast: object
    scaler: object


def _processes(cfg: TrainConfig) -> _Env:
    """Process group, device and mixed precision."""
    rank, world, local_rank = _init_distributed(cfg.device)
    dev = _device(cfg.device, local_rank)
    if cfg.amp != "off" and dev.type != "cuda":
        raise ValueError(f"--amp {cfg.amp} needs a CUDA device (got {dev}); use --amp off on CPU")
    dtype = torch.bfloat16 if cfg.amp == "bf16" else torch.float16
    autocast = (lambda: torch.autocast("cuda", dtype=dtype)) if cfg.amp != "off" else nullcontext
    scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" else None
    return _Env(rank, world, local_rank, dev, autocast, scaler)


def _set_threads(cfg: TrainConfig, ckpt: dict | None, env: _Env, data: _Data) -> None:
    """``--threads N``: N; ``0`` (auto): the count a resumed run used before (so it stays bit-identical), else
    the faster of 1 and all available cores for this width and batch, timed at the start
    (:func:`mvtools.train.threads.fastest_thread_count`). On CUDA: left as it is."""
    if env.device.type == "cuda":
        return
    n = cfg.threads
    if n == 0 and ckpt is not None:
        n = int((ckpt.get("data") or {}).get("threads") or 0)
    if n == 0:
        from mvtools.train.threads import fastest_thread_count

        n, timing = fastest_thread_count(data.batch_size, cfg.channels)
        if env.rank == 0:
            log(f"threads: {n} ({timing})")
    torch.set_num_threads(n)
    data.derived["threads"] = torch.get_num_threads()


@dataclass
class _Data:
    train: Pairs
    heldout: Pairs
    test: Pairs
    derived: dict
    batch_size: int


def _load_data(ds, cfg: TrainConfig, env: _Env) -> _Data:
    """Training pairs, held-out training sequences (model selection) and test pairs (logging only)."""
    pdir = pairs_dir(ds)
    m = read_pairs_manifest(pdir)
    if cfg.extrinsics is not None and m["extrinsics"] != cfg.extrinsics:
        raise ValueError(
            f"{pdir / 'manifest.json'}: shards were built with {m['extrinsics']!r} extrinsics "
            f"but --extrinsics {cfg.extrinsics} was asked; re-run `mvtools augment` or change the option"
        )
    pool = load_pairs(pdir, "train", None, cfg.seed, m)
    if len(pool) == 0:
        raise DatasetError(f"{pdir}: no training pairs (split 'train' is empty)")
    tr, ho, held = split_sequences(pool, cfg.heldout_fraction, cfg.seed)
    tr = tr.sample(cfg.max_pairs, cfg.seed)
    ho = ho.sample(cfg.val_max_pairs or None, cfg.seed + 2)
    te = load_pairs(pdir, "test", cfg.test_max_pairs, cfg.seed + 1, m) if cfg.test_max_pairs else Pairs.empty()
    _attach_windows(pdir, m, cfg, env, tr, ho, te)
    batch = schedule.batch_size(cfg.batch_size, len(tr))
    spec = get_loss(cfg.loss)
    if len(ho) and spec.select == "loss":
        how = (
            f"lowest held-out {cfg.loss} loss (main phase) on {len(held)} held-out training sequence(s), "
            f"{len(ho)} pairs" + ("" if spec.labels else "; no 3D labels used")
        )
    elif len(ho):
        how = (
            f"lowest multi-view inconsistency of the lifting branch, mean ||R_ab Y_a - Y_b|| / pose size (main "
            f"phase), on {len(held)} held-out training sequence(s), {len(ho)} pairs; no 3D labels used"
        )
    else:
        how = "last epoch (no held-out sequences)"
    derived = dict(
        dataset=str(Path(ds).absolute()),
        pairs=str(pdir.absolute()),
        extrinsics=m["extrinsics"],
        source2d=m.get("source2d"),
        views=m.get("views"),
        virtual_views=m.get("virtual_views"),
        splits=m.get("splits"),
        heldout_sequences=held,
        selection=how,
        world_size=env.world,
        device=str(env.device),
        batch_size=batch,
        torch=str(torch.__version__),
    )
    if batch < env.world:
        raise ValueError(f"batch size {batch} is smaller than the number of processes {env.world}")
    if env.rank == 0:
        log(
            f"train: {len(tr)} pairs (batch {batch}), held-out (model selection): {len(ho)} pairs of {len(held)} "
            f"training sequence(s), test (logging only): {len(te)} pairs ({pdir}); device {env.device}, "
            f"{env.world} process(es)"
        )
    return _Data(tr, ho, te, derived, batch)


def _attach_windows(pdir, manifest: dict, cfg: TrainConfig, env: _Env, *sets: Pairs) -> None:
    """Temporal backbones: the 2D windows of both views of every pair (per-view sequences of ``augment``; the
    held-out pairs are training-split sequences), kept on the training device."""
    rf = receptive_field_of(cfg)
    if rf == 1:
        return
    seqs = {}
    for p, split in zip(sets, ("train", "train", "test"), strict=True):
        if len(p) == 0:
            continue
        if split not in seqs:
            seqs[split] = load_sequences(pdir, split, manifest).to(env.device)
        p.windows = PairWindows(seqs[split], p.meta, rf, cfg.causal, f"{pdir} ({split} pairs)")


def _build(cfg: TrainConfig, env: _Env, spec: LossSpec):
    """(model, the module the step runs (DDP / compiled), the trained module). Same initial weights on every
    rank. A loss without the root branch trains the lifting branch alone."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg).to(env.device)
    trainable = model if spec.uses_root or spec.pretrain else model.lift
    net = trainable
    if env.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            trainable, device_ids=[env.local_rank] if env.device.type == "cuda" else None
        )
    return model, (torch.compile(net) if cfg.compile else net), trainable


def _optimizer(module, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(module.parameters(), lr=cfg.lr)


# ====================================================================== one epoch
def _phase_epochs(cfg: TrainConfig) -> tuple[int, int, int]:
    """(pre-training epochs, main epochs, total)."""
    pre = cfg.pretrain_epochs if get_loss(cfg.loss).pretrain else 0
    return pre, cfg.epochs, pre + cfg.epochs


def _phase(cfg: TrainConfig, epoch: int) -> str:
    return "pretrain" if epoch < _phase_epochs(cfg)[0] else "main"


def _train_epoch(net, opt, data: _Data, gen, cfg: TrainConfig, env: _Env, spec: LossSpec, epoch: int) -> dict:
    """One pass over the training pairs: per-step learning rate, loss parts summed, optimiser step."""
    tr = data.train
    pre, main, total = _phase_epochs(cfg)
    phase = _phase(cfg, epoch)
    batches = epoch_batches(len(tr), data.batch_size, gen, env.rank, env.world)
    n_ep = len(batches)
    first = epoch - (0 if phase == "pretrain" else pre)  # epochs already done in this phase
    phase_steps = (pre if phase == "pretrain" else main) * n_ep
    sums: dict[str, torch.Tensor] = {}
    net.train()
    t0 = time.perf_counter()
    lr = cfg.lr
    with progress(length=n_ep, label=f"{phase} {epoch + 1}/{total}") as bar:
        for i, (idx, n_global) in enumerate(batches):
            lr = schedule.learning_rate(cfg, phase, first * n_ep + i, phase_steps, n_ep)
            for g in opt.param_groups:
                g["lr"] = lr
            b = tr.batch(idx, env.device)
            if cfg.flip:
                b = flip_pairs(b, torch.rand(len(idx), device=env.device) < 0.5)
            with env.autocast():
                parts = spec.fn(_forward(net, b, spec.uses_root or phase == "pretrain"), b, cfg)
            per = sum(parts.values())
            # summed over this rank's slice and scaled so that DDP's gradient average is the gradient of the
            # mean over the global batch
            _step(opt, per.sum() * (env.world / n_global), env.scaler)
            with torch.no_grad():
                _accumulate(sums, {"loss": per, **{f"loss_{k}": v for k, v in parts.items()}}, len(idx))
            bar.update(1)
    train_s = time.perf_counter() - t0
    rec = _reduce(sums, env)
    n = rec.pop("n")
    return {**rec, "lr": lr, "pairs_per_s": n / max(train_s, 1e-9), "train_s": train_s}


def _forward(net, b: dict, uses_root: bool) -> Prediction:
    """Both views of a batch through one forward pass (BatchNorm statistics cover both)."""
    B = b["x2d_a"].shape[0]
    if "win_a" in b:  # temporal backbone: windows of normalised 2D around each view's frame
        xn = torch.cat([b["win_a"], b["win_b"]])
    else:
        xn = torch.cat([normalise_2d(b["x2d_a"], b["K_a"]), normalise_2d(b["x2d_b"], b["K_b"])])
    if not uses_root:
        rel = net(xn)
        return Prediction(rel[:B], rel[B:])
    rel, root = net(xn)
    Y = global_pose(rel, root)
    return Prediction(rel[:B], rel[B:], Y[:B], Y[B:])


def _step(opt, objective: torch.Tensor, scaler) -> None:
    opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(objective).backward()
        scaler.step(opt)
        scaler.update()
    else:
        objective.backward()
        opt.step()


def _accumulate(sums: dict, values: dict, n: int) -> None:
    for k, v in values.items():
        sums[k] = sums.get(k, 0.0) + v.detach().double().sum().cpu()
    sums["n"] = sums.get("n", 0.0) + torch.tensor(float(n), dtype=torch.float64)


def _reduce(sums: dict, env: _Env) -> dict:
    """Per-pair means of the accumulated sums over all ranks; ``n`` = pairs seen."""
    keys = sorted(sums)
    vec = (
        torch.stack([torch.as_tensor(sums[k], dtype=torch.float64) for k in keys])
        if keys
        else torch.zeros(0, dtype=torch.float64)
    )
    if env.world > 1:
        dist.all_reduce(vec)
    d = dict(zip(keys, vec.tolist(), strict=True))
    n = d.get("n", 0.0)
    return {**{k: v / max(n, 1.0) for k, v in d.items() if k != "n"}, "n": n}


# ====================================================================== scores
@torch.no_grad()
def _heldout_scores(model, ho: Pairs, cfg: TrainConfig, env: _Env, spec: LossSpec, chunk: int = 4096) -> dict:
    """The phase's loss on the held-out training sequences (eval mode, mean per pair; this chooses best.pt) and
    the label-free multi-view consistency of the lifting branch, mean over joints of ||R_ab Y_a - Y_b|| (mm,
    root-relative)."""
    if len(ho) == 0:
        return {}
    was = model.training
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    idx = torch.tensor_split(torch.arange(len(ho)), env.world)[env.rank]
    for s in range(0, len(idx), chunk):
        b = ho.batch(idx[s : s + chunk], env.device)
        pred = _forward(model, b, True)
        parts = spec.fn(pred, b, cfg)
        cons = torch.linalg.vector_norm(torch.einsum("bij,bkj->bki", b["R_ab"], pred.rel_a) - pred.rel_b, dim=-1)
        size = 0.5 * (torch.linalg.vector_norm(pred.rel_a, dim=-1) + torch.linalg.vector_norm(pred.rel_b, dim=-1))
        _accumulate(
            sums,
            {
                "heldout_loss": sum(parts.values()),
                "heldout_consistency_mm": cons.mean(-1),
                "_cons": cons.sum(-1),
                "_size": size.sum(-1),
            },
            len(b["x2d_a"]),
        )
    model.train(was)
    rec = _reduce(sums, env)
    rec.pop("n")
    cons_sum, size_sum = rec.pop("_cons"), rec.pop("_size")
    rec["heldout_consistency_rel"] = cons_sum / max(size_sum, 1e-9)
    return rec


def _test_metrics(lift, te: Pairs, env: _Env) -> dict:
    """MPJPE / P-MPJPE (mm) of the lifting branch on view a of the test pairs whose view a is a real camera.
    Logged for information only: nothing in training reads these numbers."""
    if len(te) == 0:
        return {}
    real = np.flatnonzero(te.meta["kind_a"] != "virtual")
    idx = torch.from_numpy(np.array_split(real, env.world)[env.rank])
    pred = lift_view_a(lift, te, idx, env.device)
    gt = te.field("y3d_a")[idx].double().numpy()
    gt = gt - gt[:, :1]
    s = torch.tensor(
        [mpjpe_per_pose(pred, gt).sum(), p_mpjpe_per_pose(pred, gt).sum(), float(len(idx))]
        if len(idx)
        else [0.0, 0.0, 0.0],
        dtype=torch.float64,
    )
    if env.world > 1:
        dist.all_reduce(s)
    if s[2] == 0:
        return {}
    return {"test_mpjpe": float(s[0] / s[2]), "test_p_mpjpe": float(s[1] / s[2])}


def _select(st: _State, rec: dict, epoch: int) -> bool:
    """best.pt: the main-phase epoch with the lowest held-out loss (without held-out pairs: the latest)."""
    if rec["phase"] != "main":
        return False
    score = rec.get(st.metric)
    if score is not None and not score < st.best:
        return False
    st.best_epoch = epoch + 1
    st.best = score if score is not None else st.best
    return True


# ====================================================================== run directory and checkpoints
#: held-out score -> unit (of the loss for "heldout_loss")
_SELECT_UNITS = {"heldout_loss": "{unit}", "heldout_consistency_rel": "fraction of the pose size"}


@dataclass
class _State:
    metric: str
    epoch: int = 0
    phase: str | None = None
    best: float = math.inf
    best_epoch: int | None = None

    @classmethod
    def from_checkpoint(cls, ckpt: dict | None, spec: LossSpec) -> _State:
        metric = "heldout_loss" if spec.select == "loss" else "heldout_consistency_rel"
        if ckpt is None:
            return cls(metric)
        return cls(metric, int(ckpt["epoch"]), ckpt["phase"], float(ckpt["best"]), ckpt["best_epoch"])


def _start(out: Path, cfg: TrainConfig, env: _Env) -> dict | None:
    """The checkpoint to resume from (None: start afresh); refuses a directory that is not this run's."""
    last = out / "last.pt"
    if cfg.resume and last.exists():
        ckpt = load_checkpoint(last)
        stored = ckpt.get("config", {})
        diff = [k for k in run_keys() if stored.get(k) != getattr(cfg, k)]
        if diff:
            detail = ", ".join(f"{k}: run has {stored.get(k)!r}, asked {getattr(cfg, k)!r}" for k in diff)
            raise ValueError(f"{last}: --resume needs the same options as the run ({detail})")
        if ckpt.get("world_size", env.world) != env.world and env.rank == 0:
            log(
                f"resume: checkpoint was written by {ckpt.get('world_size')} process(es), now {env.world}; "
                "dropout random streams restart (the run is not bit-identical)"
            )
        return ckpt
    if env.rank == 0 and out.exists() and any(out.iterdir()):  # (other ranks: rank 0 may be writing already)
        own = all(p.name in RUN_FILES or p.name.startswith(".") for p in out.iterdir())
        if not (cfg.resume and own and (out / "config.json").exists()):
            hint = "pass --resume to continue it" if own else "it is not an mvtools run: choose another --out"
            raise ValueError(f"{out}: run directory exists and is not empty ({hint})")
        log(f"resume: {last} does not exist yet (killed before its first checkpoint); starting the run afresh")
        for name in ("best.pt", "metrics.jsonl"):
            (out / name).unlink(missing_ok=True)
    return None


def _save_epoch(
    out: Path, model, opt, gen, st: _State, cfg: TrainConfig, derived: dict, rec: dict, improved: bool, env: _Env
) -> None:
    """best.pt (if improved), then the metrics line, then last.pt (which marks the epoch done)."""
    base = {
        "config": cfg.to_dict(),
        "data": derived,
        "model": model.state_dict(),
        "epoch": rec["epoch"],
        "phase": rec["phase"],
    }
    if improved:
        sel = {
            "metric": st.metric if st.metric in rec else "last epoch",
            "value": rec.get(st.metric),
            "unit": _SELECT_UNITS[st.metric].format(unit=get_loss(cfg.loss).unit),
            "computed_on": derived["selection"],
            "epoch": rec["epoch"],
        }
        save_checkpoint(out / "best.pt", {**base, "kind": "best", "selection": sel})
        _fault("after-best")
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(rec) + "\n")
        f.flush()
        os.fsync(f.fileno())
    _fault("after-metrics")
    save_checkpoint(
        out / "last.pt",
        {
            **base,
            "kind": "last",
            "optimizer": opt.state_dict(),
            "scaler": env.scaler.state_dict() if env.scaler is not None else None,
            "perm_generator": gen.get_state(),
            "rng": _gather_rng(env),
            "best": st.best,
            "best_epoch": st.best_epoch,
            "world_size": env.world,
        },
    )
    _fault("after-last")
    _log_epoch(rec, _phase_epochs(cfg)[2])


def _log_epoch(rec: dict, total: int) -> None:
    msg = f"epoch {rec['epoch']}/{total} {rec['phase']}: loss {rec['loss']:.4g}, {rec['pairs_per_s']:.0f} pairs/s"
    if "heldout_loss" in rec:
        msg += (
            f", held-out training sequences: loss {rec['heldout_loss']:.4g}, multi-view consistency "
            f"{rec['heldout_consistency_mm']:.1f} mm ({100 * rec['heldout_consistency_rel']:.1f} % of pose size)"
        )
    if "test_mpjpe" in rec:
        msg += f"; test pairs, real view a (logged only): MPJPE {rec['test_mpjpe']:.1f} mm"
    log(msg)


def _fault(point: str) -> None:
    """Test hook: ``MVTOOLS_TRAIN_FAULT=point:epoch`` SIGKILLs this process at ``point`` of that epoch's save
    (used by the kill tests; inert otherwise)."""
    spec = os.environ.get("MVTOOLS_TRAIN_FAULT")
    if not spec:
        return
    name, _, count = spec.partition(":")
    if name == point:
        n = _fault.__dict__.setdefault("seen", {}).get(point, 0) + 1
        _fault.seen[point] = n
        if n == int(count or 1):
            import signal

            os.kill(os.getpid(), signal.SIGKILL)


def _truncate_metrics(path: Path, epochs_done: int) -> None:
    """Keep only the metrics.jsonl lines of epochs already in the checkpoint (a resumed run appends); a line
    cut short by a kill is dropped."""
    if not path.exists():
        return
    keep = []
    for ln in path.read_text().splitlines():
        try:
            if json.loads(ln).get("epoch", 0) <= epochs_done:
                keep.append(ln)
        except json.JSONDecodeError:
            continue
    with atomic_path(path) as tmp:
        tmp.write_text("".join(ln + "\n" for ln in keep))


# ====================================================================== processes, devices, RNG
def _init_distributed(device: str) -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    if not dist.is_initialized():
        use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))


def _device(device: str, local_rank: int) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked but no CUDA device is available")
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def _gather_rng(env: _Env) -> list:
    if env.world == 1:
        return [rng_state()]
    states = [None] * env.world
    dist.all_gather_object(states, rng_state())
    return states


def _restore_rng(states: list, env: _Env) -> None:
    if len(states) == env.world:
        set_rng_state(states[env.rank])
