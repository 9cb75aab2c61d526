"""Losses of Li et al. (AAAI 2020), eq. 1-7, as small torch functions on batches.

Shapes: poses (B, J, 3) mm in a camera frame; 2D joints (B, J, 2) px (undistorted, pinhole-exact); confidences
(B, J) in 0..1; intrinsics (B, 4) [fx, fy, cx, cy] px; rotations (B, 3, 3); translations (B, 3) mm.
Every loss returns one value per sample (B,) - summed over joints as in the paper; the training loop averages
over the batch. Units: px^2 (reprojection losses), mm^2 (pre-training loss), mm (supervised MPJPE).
All arithmetic is float32 (safe under fp16/bf16 autocast).

The bottom of the file is the loss registry: ``@register_loss(name)`` turns a function
``(pred: Prediction, batch: dict, config) -> {part name: (B,) tensor}`` into a training loss; the loop sums the
parts it gets (so a new loss is one function and one decorator line) and logs each part.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

#: Depths below this (mm) are clamped before the perspective division, so a wild prediction near or behind
#: the camera cannot produce infinite pixels (its gradient through z is then zero).
MIN_DEPTH_MM = 100.0


def project(Y: torch.Tensor, K: torch.Tensor, min_depth: float = MIN_DEPTH_MM) -> torch.Tensor:
    """Eq. 1, perspective projection: camera-frame (B, J, 3) mm, K (B, 4) -> pixels (B, J, 2)."""
    Y = Y.float()
    K = K.float()
    z = Y[..., 2:3].clamp_min(min_depth)
    return Y[..., :2] / z * K[:, None, 0:2] + K[:, None, 2:4]


def transform(Y: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Eq. 3, tau(Y) = R (Y - t): (B, J, 3) mm with R (B, 3, 3), t (B, 3) mm -> (B, J, 3) mm in the other view."""
    Y = Y.float()
    return torch.einsum("bij,bkj->bki", R.float(), Y - t.float()[:, None, :])


#: per-joint penalties of a pixel residual r (px): "squared" r^2 (the paper), "huber" (r^2 up to c, then linear,
#: 2 c r - c^2), "geman-mcclure" (r^2 c^2 / (r^2 + c^2), saturating at c^2); all px^2 and equal to r^2 for r << c
PENALTIES = ("squared", "huber", "geman-mcclure")


def penalty(r2: torch.Tensor, kind: str = "squared", c: float = 15.0) -> torch.Tensor:
    """Robust penalty of squared residuals ``r2`` (px^2) with scale ``c`` (px), px^2."""
    if kind == "squared":
        return r2
    if kind == "huber":
        r = torch.sqrt(r2 + 1e-12)
        return torch.where(r <= c, r2, 2.0 * c * r - c * c)
    if kind == "geman-mcclure":
        return r2 * (c * c) / (r2 + c * c)
    raise ValueError(f"penalty must be one of {PENALTIES}, got {kind!r}")


def _weighted_sq(
    X: torch.Tensor, x: torch.Tensor, w: torch.Tensor, kind: str = "squared", c: float = 15.0
) -> torch.Tensor:
    """sum_i w_i rho(||X_i - x_i||^2) -> (B,) (rho = ``penalty``; plain squared by default)."""
    return (w.float() * penalty(((X.float() - x) ** 2).sum(-1), kind, c)).sum(-1)


def reproj_loss(Y1, Y2, X1, X2, w1, w2, K1, K2, kind: str = "squared", c: float = 15.0) -> torch.Tensor:
    """Eq. 2: sum_i w1_i ||X1_i - rho(Y1_i)||^2 + w2_i ||X2_i - rho(Y2_i)||^2 on global poses, px^2 (B,)."""
    return _weighted_sq(X1, project(Y1, K1), w1, kind, c) + _weighted_sq(X2, project(Y2, K2), w2, kind, c)


def t_reproj_loss(
    Y1, Y2, X1, X2, w1, w2, K1, K2, R12, t12, R21, t21, kind: str = "squared", c: float = 15.0
) -> torch.Tensor:
    """Eq. 5, exactly as printed: sum_i w1_i ||X2_i - rho(tau(Y1)_i)||^2 + w2_i ||X1_i - rho(tau(Y2)_i)||^2.

    Note the weight of the view-1 prediction moved into view 2 is view 1's confidence (as in the paper).
    Projection into view 2 uses view 2's intrinsics and vice versa. px^2, (B,).
    """
    return _weighted_sq(X2, project(transform(Y1, R12, t12), K2), w1, kind, c) + _weighted_sq(
        X1, project(transform(Y2, R21, t21), K1), w2, kind, c
    )


def trans_reproj_loss(Y1, Y2, X1, X2, w1, w2, K1, K2, R12, t12, R21, t21, lam: float = 1.0):
    """Eq. 7, L_T = L_reproj + lambda * L_t-reproj. Returns (total, reproj, t_reproj), each (B,) px^2."""
    lr = reproj_loss(Y1, Y2, X1, X2, w1, w2, K1, K2)
    lt = t_reproj_loss(Y1, Y2, X1, X2, w1, w2, K1, K2, R12, t12, R21, t21)
    return lr + lam * lt, lr, lt


def pretrain_loss(Y1, Y2, R12, t12, R21, t21) -> torch.Tensor:
    """Eq. 6: sum_i ||tau(Y1)_i - Y2_i||^2 + ||tau(Y2)_i - Y1_i||^2 on global poses, mm^2 (B,)."""
    d12 = ((transform(Y1, R12, t12) - Y2.float()) ** 2).sum(-1).sum(-1)
    d21 = ((transform(Y2, R21, t21) - Y1.float()) ** 2).sum(-1).sum(-1)
    return d12 + d21


def supervised_loss(relative: torch.Tensor, y3d: torch.Tensor, root: int = 0) -> torch.Tensor:
    """MPJPE of root-relative predictions (B, J, 3) against absolute camera-frame ground truth (B, J, 3), mm (B,).

    The ground truth is made root-relative here; this is the fully supervised upper bound (no pairs needed).
    """
    gt = y3d.float() - y3d.float()[:, root : root + 1]
    return torch.linalg.vector_norm(relative.float() - gt, dim=-1).mean(-1)


# ====================================================================== registry
@dataclass
class Prediction:
    """Model outputs for the two views of a batch of pairs: root-relative poses ``rel_a``, ``rel_b`` (B, J, 3)
    mm and, when the loss uses the root branch, global poses ``Y_a``, ``Y_b`` (B, J, 3) mm (else None)."""

    rel_a: torch.Tensor
    rel_b: torch.Tensor
    Y_a: torch.Tensor | None = None
    Y_b: torch.Tensor | None = None


@dataclass(frozen=True)
class LossSpec:
    """A registered loss. ``uses_root``: needs the root branch (global poses); ``pretrain``: preceded by the
    eq. 6 pre-training phase; ``labels``: reads the 3D ground truth (then its held-out score may too);
    ``main``: selectable as ``--loss``; ``unit`` of the summed value; ``select``: the held-out score that
    chooses best.pt."""

    name: str
    fn: Callable[[Prediction, dict, object], dict[str, torch.Tensor]]
    uses_root: bool = True
    pretrain: bool = True
    labels: bool = False
    main: bool = True
    unit: str = "px^2"
    #: what chooses best.pt on the held-out sequences: "loss" (this loss) or "consistency" (the lifting branch's
    #: scale-free multi-view consistency, label-free)
    select: str = "consistency"


#: loss name -> spec
LOSSES: dict[str, LossSpec] = {}


def register_loss(name: str, **spec):
    """Decorator: register ``fn(pred, batch, config) -> {part: (B,) tensor}`` as loss ``name`` (``spec``: the
    :class:`LossSpec` flags)."""

    def deco(fn):
        if name in LOSSES:
            raise ValueError(f"loss {name!r} is already registered")
        LOSSES[name] = LossSpec(name, fn, **spec)
        return fn

    return deco


def main_losses() -> list[str]:
    """Names selectable as ``--loss``."""
    return [n for n, s in LOSSES.items() if s.main]


def get_loss(name: str) -> LossSpec:
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r} (known: {', '.join(main_losses())})")
    return LOSSES[name]


def _views(b: dict, config=None):
    """2D, confidences (the root joint's multiplied by ``config.root_weight``) and intrinsics of both views."""
    w = getattr(config, "root_weight", 1.0)
    ca, cb = b["conf_a"], b["conf_b"]
    if w != 1.0:
        from mvtools.skeleton import ROOT

        scale = torch.ones(ca.shape[-1], dtype=ca.dtype, device=ca.device)
        scale[ROOT] = w
        ca, cb = ca * scale, cb * scale
    return b["x2d_a"], b["x2d_b"], ca, cb, b["K_a"], b["K_b"]


#: left / right bones (child joints in the H36M-17 layout, parents from mvtools.skeleton): hip, thigh, shin,
#: shoulder, upper arm, forearm
SYMMETRIC_BONES = ((4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16))


def bone_symmetry(rel: torch.Tensor) -> torch.Tensor:
    """sum over left/right bone pairs of (|left| - |right|)^2, mm^2 (B,): a label-free prior (bodies are
    symmetric), no bone-length statistics needed."""
    from mvtools.skeleton import H36M17_PARENTS

    idx = torch.as_tensor(SYMMETRIC_BONES)
    par = torch.as_tensor(H36M17_PARENTS)
    length = torch.linalg.vector_norm(rel.float() - rel.float()[:, par.clamp_min(0)], dim=-1)  # (B, J)
    return ((length[:, idx[:, 0]] - length[:, idx[:, 1]]) ** 2).sum(-1)


def _regularisers(pred: Prediction, config) -> dict:
    w = getattr(config, "bone_symmetry", 0.0)
    if not w:
        return {}
    return {"bone_symmetry": w * (bone_symmetry(pred.rel_a) + bone_symmetry(pred.rel_b))}


def _robust(config) -> tuple[str, float]:
    return getattr(config, "penalty", "squared"), getattr(config, "penalty_px", 15.0)


@register_loss("trans-reproj")
def _trans_reproj(pred: Prediction, b: dict, config) -> dict:
    """Eq. 7: reproj (eq. 2) + lambda t_reproj (eq. 5), px^2 (optionally robust, plus regularisers)."""
    args = (pred.Y_a, pred.Y_b, *_views(b, config))
    rho = _robust(config)
    return {
        "reproj": reproj_loss(*args, *rho),
        "t_reproj": config.lam * t_reproj_loss(*args, b["R_ab"], b["t_ab"], b["R_ba"], b["t_ba"], *rho),
        **_regularisers(pred, config),
    }


@register_loss("reproj")
def _reproj(pred: Prediction, b: dict, config) -> dict:
    """Eq. 2 alone, px^2 (the paper's depth-ambiguous baseline)."""
    return {
        "reproj": reproj_loss(pred.Y_a, pred.Y_b, *_views(b, config), *_robust(config)),
        **_regularisers(pred, config),
    }


@register_loss("supervised", uses_root=False, pretrain=False, labels=True, unit="mm", select="loss")
def _supervised(pred: Prediction, b: dict, config) -> dict:
    """MPJPE of both views against the root-relative ground truth, mm (the upper bound)."""
    return {"mpjpe": 0.5 * (supervised_loss(pred.rel_a, b["y3d_a"]) + supervised_loss(pred.rel_b, b["y3d_b"]))}


@register_loss("pretrain", main=False, unit="mm^2")
def _pretrain(pred: Prediction, b: dict, config) -> dict:
    """Eq. 6, mm^2 (the pre-training phase of every loss with ``pretrain=True``)."""
    return {"consistency": pretrain_loss(pred.Y_a, pred.Y_b, b["R_ab"], b["t_ab"], b["R_ba"], b["t_ba"])}
