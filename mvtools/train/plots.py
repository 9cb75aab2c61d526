"""PNG plots of a run directory (matplotlib Agg): loss curves, validation MPJPE, predicted vs GT skeletons."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mvtools.io import atomic_path
from mvtools.skeleton import H36M17_LEFT, H36M17_PARENTS


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_metrics(run) -> list[dict]:
    """The per-epoch records of ``run/metrics.jsonl``."""
    path = Path(run) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def _savefig(fig, path: Path) -> None:
    with atomic_path(path, suffix=".tmp.png") as tmp:  # the suffix tells matplotlib the format
        fig.savefig(tmp, dpi=100)


def plot_curves(run) -> None:
    """``loss.png`` (per phase: pre-training mm^2, main loss px^2 or mm; training and held-out) and
    ``mpjpe.png`` (held-out multi-view consistency and test-pair MPJPE, mm; the test curve is logging only)."""
    plt = _plt()
    recs = read_metrics(run)
    if not recs:
        return
    run = Path(run)
    phases = [p for p in ("pretrain", "main") if any(r["phase"] == p for r in recs)]
    fig, axes = plt.subplots(1, len(phases), figsize=(5.5 * len(phases), 4), squeeze=False)
    for ax, ph in zip(axes[0], phases, strict=False):
        rs = [r for r in recs if r["phase"] == ph]
        ep = [r["epoch"] for r in rs]
        ax.plot(ep, [r["loss"] for r in rs], "o-", ms=3, label="loss")
        for key in sorted(k for k in rs[0] if k.startswith("loss_")):
            ax.plot(ep, [r[key] for r in rs], ".--", label=key[5:])
        if "heldout_loss" in rs[0]:
            ax.plot(ep, [r["heldout_loss"] for r in rs], "s-", ms=3, label="held-out (chooses best.pt)")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("pre-training loss (mm^2)" if ph == "pretrain" else "training loss (px^2 or mm)")
        ax.set_title(ph)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    _savefig(fig, run / "loss.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 4))
    series = [
        ("test_mpjpe", "o-", "test MPJPE (real view a; logged only)"),
        ("test_p_mpjpe", "s-", "test P-MPJPE (logged only)"),
        ("heldout_consistency_mm", "^-", "held-out multi-view consistency"),
    ]
    tops = []
    for key, style, lab in series:
        v = [r for r in recs if key in r]
        if v:
            ax.plot([r["epoch"] for r in v], [r[key] for r in v], style, ms=3, label=lab)
            tops.append(np.percentile([r[key] for r in v], 90) * 1.1)
    if tops:
        ax.set_ylim(0, max(max(tops), 1.0))
    ax.set_xlabel("epoch")
    ax.set_ylabel("mm")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _savefig(fig, run / "mpjpe.png")
    plt.close(fig)


def plot_skeletons(path, pred: np.ndarray, gt: np.ndarray, titles=None) -> None:
    """Predicted (red) beside ground truth (black) skeletons; (K, 17, 3) root-relative camera frame, mm."""
    plt = _plt()
    k = len(pred)
    fig = plt.figure(figsize=(3.2 * k, 3.4))
    left = set(H36M17_LEFT)
    for i in range(k):
        ax = fig.add_subplot(1, k, i + 1, projection="3d")
        for P, col in ((gt[i], "k"), (pred[i], "r")):
            # camera frame (x right, y down, z forward) shown with y up
            X, Y, Z = P[:, 0], P[:, 2], -P[:, 1]
            for j, p in enumerate(H36M17_PARENTS):
                if p >= 0:
                    ax.plot([X[j], X[p]], [Y[j], Y[p]], [Z[j], Z[p]], col, lw=2 if j in left else 1.2, alpha=0.9)
        r = 1000
        ax.set_xlim(-r, r), ax.set_ylim(-r, r), ax.set_zlim(-r, r)
        ax.set_xticklabels([]), ax.set_yticklabels([]), ax.set_zticklabels([])
        ax.view_init(elev=10, azim=-80)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    fig.suptitle("prediction (red) vs ground truth (black), mm, root-relative")
    fig.tight_layout()
    _savefig(fig, Path(path))
    plt.close(fig)


def write_plots(run, lift, va, device, k: int = 4) -> None:
    """All plots of a run: curves from metrics.jsonl and ``skeletons.png`` from ``k`` test pairs (after
    training; for the eye only)."""
    from mvtools.evaluate.metrics import mpjpe_per_pose
    from mvtools.train.inference import lift_view_a

    plot_curves(run)
    if va is None or len(va) == 0:
        return
    idx = np.linspace(0, len(va) - 1, min(k, len(va))).astype(int)
    import torch

    t = torch.from_numpy(idx)
    pred = lift_view_a(lift, va, t, device)
    gt = va.field("y3d_a")[t].double().numpy()
    gt = gt - gt[:, :1]
    err = mpjpe_per_pose(pred, gt)
    titles = [
        f"{va.meta['subject'][i]} {va.meta['action'][i]} {va.meta['cam_a'][i]}\nMPJPE {e:.0f} mm"
        for i, e in zip(idx, err, strict=True)
    ]
    plot_skeletons(Path(run) / "skeletons.png", pred, gt, titles)
