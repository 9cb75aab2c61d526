"""The two-branch lifting model of Li et al. (AAAI 2020): a ResLinear lifting branch and a root-position branch.

Both branches take the 17 2D joints in normalised camera coordinates ``((u - cx) / fx, (v - cy) / fy)``
(see :func:`normalise_2d`), so the network does not depend on the intrinsics and real and virtual views mix.

- Lifting branch: root-relative 3D joints (B, 17, 3) in mm, camera frame; the root joint is fixed at 0.
- Root branch: the root's 3D position (B, 3) in mm, camera frame. Parametrised along the ray of the detected
  root: ``z = depth0 * exp(5 tanh(o_z / 5))`` (depth0 = 5000 mm), ``x = z * (x_root + o_x)``, ``y = z * (y_root + o_y)``
  with ``(x_root, y_root)`` the normalised 2D root and ``o`` the network's 3 outputs.
- Global pose = relative + root (``TwoBranch.forward``).

Backbones are pluggable: a :class:`Backbone` maps (B, receptive_field, in_features) -> (B, out_features) (the
output belongs to the centre frame, as in VideoPose3D); ``register_backbone(name)`` adds one to
:data:`BACKBONES`, and :func:`build_model` builds the two branches from a :class:`~mvtools.train.config.TrainConfig`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.nn as nn

from mvtools.skeleton import NUM_JOINTS, ROOT

#: Scale of the lifting output: the network predicts metres, the model returns mm.
OUTPUT_SCALE_MM = 1000.0
#: Typical camera-to-root distance, mm; the root branch predicts depth as a log-ratio to it.
DEPTH0_MM = 5000.0


def normalise_2d(x2d: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Pixels (B, J, 2) and intrinsics (B, 4) [fx, fy, cx, cy] px -> normalised camera coordinates (B, J, 2)."""
    return (x2d - K[:, None, 2:4]) / K[:, None, 0:2]


class GlobalBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d whose training statistics are taken over the global batch of all DDP ranks.

    Works on CPU (gloo) and CUDA (nccl): the per-rank sums are combined with a differentiable all-reduce, so
    forward outputs, gradients and running statistics equal those of one process with the whole batch.
    Without an initialised process group (or with one rank) it is exactly ``nn.BatchNorm1d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        xf = x.float()
        n_local = torch.tensor([float(x.shape[0])], device=x.device, dtype=torch.float32)
        stats = torch.cat([xf.sum(0), (xf * xf).sum(0), n_local])
        stats = all_reduce(stats)
        C = x.shape[1]
        n = stats[-1]
        mean = stats[:C] / n
        var = (stats[C : 2 * C] / n - mean * mean).clamp_min(0.0)
        with torch.no_grad():
            if self.track_running_stats:
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * (n / (n - 1).clamp_min(1.0))
                self.running_mean.mul_(1 - m).add_(mean.detach() * m)
                self.running_var.mul_(1 - m).add_(unbiased.detach() * m)
        y = (xf - mean) * torch.rsqrt(var + self.eps)
        if self.affine:
            y = y * self.weight + self.bias
        return y.to(x.dtype)


class Dropout(nn.Module):
    """Inverted dropout. On CPU the keep mask comes from random bytes (8 per int64 draw), with ``p`` rounded to a
    multiple of 1/256 and the kept values scaled by 1 / (1 - rounded p): about 10x faster than PyTorch's CPU
    Bernoulli sampling, which otherwise costs more than half of a 1024-wide linear layer. CUDA uses
    ``F.dropout``. Both draw from the global torch RNG (seeded and checkpointed by the training loop)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.threshold = int(round(p * 256))
        self.scale = 256.0 / (256 - self.threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == 0:
            return x
        if x.device.type != "cpu":
            return nn.functional.dropout(x, self.p, True)
        n = x.numel()
        words = torch.randint(-(2**63), 2**63 - 1, ((n + 7) // 8,), dtype=torch.int64)
        keep = words.view(torch.uint8)[:n].view(x.shape) >= self.threshold
        return x * (keep.to(x.dtype) * self.scale)

    def extra_repr(self) -> str:
        return f"p={self.p} (effective {self.threshold / 256:.4f})"


class Backbone(nn.Module):
    """Base class of the lifting / root networks: (B, R, in_features) -> (B, out_features), R =
    :meth:`receptive_field` input frames per output (1 for single-frame networks; the output is the centre
    frame's, frame R // 2). Subclasses are built by ``from_config(in_features, out_features, config)``."""

    def receptive_field(self) -> int:
        """Input frames per output frame (VideoPose3D's ``receptive_field()``)."""
        return 1

    def target_frame(self) -> int:
        """Index, inside the R input frames, of the frame the output belongs to (the centre; causal networks:
        the last)."""
        return self.receptive_field() // 2

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Whole sequences: (B, T + R - 1, in_features) -> (B, T, out_features), output t from input frames
        t .. t + R - 1. This default runs the single-frame network on every frame (R = 1)."""
        if self.receptive_field() != 1:
            raise NotImplementedError(f"{type(self).__name__} has no sequence form")
        B, T, F = x.shape
        return self(x.reshape(B * T, 1, F)).view(B, T, -1)

    @classmethod
    def from_config(cls, in_features: int, out_features: int, config) -> Backbone:
        raise NotImplementedError


#: backbone name -> class (``--backbone``)
BACKBONES: dict[str, type[Backbone]] = {}


def register_backbone(name: str) -> Callable[[type[Backbone]], type[Backbone]]:
    """Class decorator: make a :class:`Backbone` subclass available as ``--backbone name``."""

    def deco(cls):
        if name in BACKBONES:
            raise ValueError(f"backbone {name!r} is already registered")
        BACKBONES[name] = cls
        return cls

    return deco


@register_backbone("reslinear")
class ResLinear(Backbone):
    """Martinez et al. (2017) backbone: Linear -> BN -> ReLU -> Dropout, then ``blocks`` residual blocks of
    2 x (Linear, BN, ReLU, Dropout), then a Linear to ``out_features``. Input (B, in_features) or (B, 1,
    in_features); one frame."""

    def __init__(
        self, in_features: int, out_features: int, channels: int = 1024, blocks: int = 4, dropout: float = 0.5
    ):
        super().__init__()

        def unit():
            return [nn.Linear(channels, channels), GlobalBatchNorm1d(channels), nn.ReLU(inplace=True), Dropout(dropout)]

        self.inp = nn.Sequential(
            nn.Linear(in_features, channels), GlobalBatchNorm1d(channels), nn.ReLU(inplace=True), Dropout(dropout)
        )
        self.blocks = nn.ModuleList([nn.Sequential(*unit(), *unit()) for _ in range(blocks)])
        self.out = nn.Linear(channels, out_features)
        # small output layer: the model starts near "zero relative pose, root on the 2D root's ray at 5 m"
        nn.init.normal_(self.out.weight, std=1e-3)
        nn.init.zeros_(self.out.bias)

    @classmethod
    def from_config(cls, in_features: int, out_features: int, config) -> ResLinear:
        return cls(in_features, out_features, config.channels, config.blocks, config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x.flatten(1))
        for b in self.blocks:
            h = h + b(h)
        return self.out(h)


def _frames(xn: torch.Tensor) -> torch.Tensor:
    """(B, J, 2) or (B, R, J, 2) normalised 2D -> (B, R, 2 J)."""
    if xn.dim() == 3:
        xn = xn[:, None]
    return xn.flatten(2)


class LiftingNet(nn.Module):
    """Lifting branch: normalised 2D (B, J, 2) or windows (B, R, J, 2) -> root-relative 3D (B, J, 3) mm of the
    (centre) frame; the root row is exactly 0."""

    def __init__(self, net: Backbone, num_joints: int = NUM_JOINTS, root: int = ROOT):
        super().__init__()
        self.num_joints = num_joints
        self.net = net
        mask = torch.ones(num_joints, 1)
        mask[root] = 0.0
        self.register_buffer("root_mask", mask, persistent=False)

    def receptive_field(self) -> int:
        return self.net.receptive_field()

    def forward(self, xn: torch.Tensor) -> torch.Tensor:
        y = self.net(_frames(xn)).view(-1, self.num_joints, 3)
        return y * self.root_mask * OUTPUT_SCALE_MM

    def forward_sequence(self, xs: torch.Tensor) -> torch.Tensor:
        """Padded sequences (B, T + R - 1, J, 2) -> root-relative 3D of every frame (B, T, J, 3) mm, one pass
        (see :func:`mvtools.train.windows.pad_edges`)."""
        y = self.net.forward_sequence(xs.flatten(2))
        return y.view(y.shape[0], y.shape[1], self.num_joints, 3) * self.root_mask * OUTPUT_SCALE_MM


class RootNet(nn.Module):
    """Root-position branch: normalised 2D (B, J, 2) or (B, R, J, 2) -> root position (B, 3) mm in the camera
    frame, on the ray of the (centre frame's) 2D root."""

    def __init__(self, net: Backbone, root: int = ROOT):
        super().__init__()
        self.root = root
        self.net = net

    def forward(self, xn: torch.Tensor) -> torch.Tensor:
        o = self.net(_frames(xn))
        centre = xn if xn.dim() == 3 else xn[:, self.net.target_frame()]
        z = DEPTH0_MM * torch.exp(5.0 * torch.tanh(o[:, 2:3] / 5.0))  # soft bound e^+-5, never a zero gradient
        xy = z * (centre[:, self.root] + o[:, 0:2])
        return torch.cat([xy, z], dim=1)


class TwoBranch(nn.Module):
    """Lifting + root branches (no shared weights). ``forward(xn) -> (relative (B,J,3), root (B,3))``, mm.

    ``TwoBranch(channels, blocks, dropout)`` builds two ResLinear branches; :func:`build_model` any backbone."""

    def __init__(
        self,
        channels: int = 1024,
        blocks: int = 4,
        dropout: float = 0.5,
        *,
        lift: LiftingNet | None = None,
        root: RootNet | None = None,
    ):
        super().__init__()
        J = NUM_JOINTS
        self.lift = lift or LiftingNet(ResLinear(2 * J, 3 * J, channels, blocks, dropout))
        self.root = root or RootNet(ResLinear(2 * J, 3, channels, blocks, dropout))

    def receptive_field(self) -> int:
        return self.lift.receptive_field()

    def forward(self, xn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lift(xn), self.root(xn)


def build_model(config) -> TwoBranch:
    """The two-branch model of ``config`` (a TrainConfig or anything with ``backbone``, ``channels``, ...): both
    branches are ``BACKBONES[config.backbone]`` with their own weights (the root branch has 3 outputs and
    ``config.root_dropout`` as its dropout)."""
    name = getattr(config, "backbone", "reslinear")
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r} (known: {', '.join(BACKBONES)})")
    cls = BACKBONES[name]
    J = NUM_JOINTS
    root_cfg = config
    if hasattr(config, "root_dropout") and hasattr(config, "replace"):
        root_cfg = config.replace(dropout=config.root_dropout)
    return TwoBranch(
        lift=LiftingNet(cls.from_config(2 * J, 3 * J, config)), root=RootNet(cls.from_config(2 * J, 3, root_cfg))
    )


def global_pose(relative: torch.Tensor, root: torch.Tensor) -> torch.Tensor:
    """Relative pose (B, J, 3) + root position (B, 3) -> global camera-frame pose (B, J, 3), mm."""
    return relative + root[:, None, :]


# the temporal backbone registers itself as ``--backbone temporal`` (imported last: it builds on the classes above)
import mvtools.train.temporal  # noqa: E402,F401
