"""The temporal backbone: VideoPose3D's dilated temporal convolutions (Pavllo et al., CVPR 2019) as the lifting
and root branches of the two-branch model (the paper's Table 2 "TemporalDilated" row).

A branch maps a window of ``receptive_field`` frames of normalised 2D (``normalise_2d``) to the output of one
frame: the centre frame, or the last one with ``causal=True`` (no look-ahead, for real-time use).

Architecture (VideoPose3D ``common/model.py``): ``Conv1d(34, C, 3) -> BN -> ReLU -> Dropout``, then one block per
further filter: ``x[res] + [Conv1d(C, C, 3, dilation 3^k) -> BN -> ReLU -> Dropout -> Conv1d(C, C, 1) -> BN ->
ReLU -> Dropout]``, then ``Conv1d(C, out, 1)``. Filter widths ``[3] * k`` give a receptive field of ``3^k`` frames
(27: 3 blocks, 81: 4, 243: 5 including the input layer). Convolutions have no bias (BatchNorm follows), the output
layer has one.

One set of weights, two forward forms (VideoPose3D's ``TemporalModelOptimized1f`` and ``TemporalModel``):

- :meth:`TemporalConvNet.forward` - training form: windows (N, RF, F) -> (N, out). The convolutions run with
  stride = filter width instead of dilation, so only the positions the single output needs are computed; with
  position-major activations each is one GEMM over non-overlapping patches.
- :meth:`TemporalConvNet.forward_sequence` - inference form: (N, T + RF - 1, F) -> (N, T, out) with dilated
  convolutions, one pass over a whole (padded) sequence. In eval mode the two forms agree frame for frame.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from mvtools.skeleton import NUM_JOINTS
from mvtools.train.model import Backbone, Dropout, GlobalBatchNorm1d, register_backbone

#: Receptive fields offered by ``--receptive-field`` (frames).
RECEPTIVE_FIELDS = (27, 81, 243)


def filter_widths_for(receptive_field: int) -> list[int]:
    """Filter widths ``[3] * k`` with ``3^k == receptive_field`` (frames); a ValueError otherwise."""
    rf, widths = int(receptive_field), []
    while rf > 1 and rf % 3 == 0:
        widths.append(3)
        rf //= 3
    if rf != 1 or len(widths) < 2:
        raise ValueError(f"receptive field must be a power of 3 >= 9 frames (27, 81, 243), got {receptive_field}")
    return widths


def target_offset(receptive_field: int, causal: bool) -> int:
    """Index, inside a window of ``receptive_field`` frames, of the frame the output belongs to."""
    return receptive_field - 1 if causal else receptive_field // 2


class TemporalBatchNorm1d(GlobalBatchNorm1d):
    """BatchNorm over (N, C, T) whose training statistics cover all positions of the global batch under DDP
    (``GlobalBatchNorm1d`` on the (N * T, C) view); plain ``nn.BatchNorm1d`` otherwise."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.dim() == 3
            and self.training
            and dist.is_available()
            and dist.is_initialized()
            and dist.get_world_size() > 1
        ):
            n, c, t = x.shape
            return super().forward(x.transpose(1, 2).reshape(n * t, c)).view(n, t, c).transpose(1, 2)
        return super().forward(x)


@register_backbone("temporal")
class TemporalConvNet(Backbone):
    """Dilated temporal convolutions: (N, RF, in_features) windows -> (N, out_features) (see module doc)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        receptive_field: int = 243,
        channels: int = 1024,
        dropout: float = 0.25,
        causal: bool = False,
    ):
        super().__init__()
        self.widths = filter_widths_for(receptive_field)
        self.causal = bool(causal)
        self.expand = nn.Conv1d(in_features, channels, self.widths[0], bias=False)
        self.expand_bn = TemporalBatchNorm1d(channels)
        self.convs = nn.ModuleList()
        self.bns = nn.ModuleList()
        for w in self.widths[1:]:
            self.convs += [nn.Conv1d(channels, channels, w, bias=False), nn.Conv1d(channels, channels, 1, bias=False)]
            self.bns += [TemporalBatchNorm1d(channels), TemporalBatchNorm1d(channels)]
        self.drop = Dropout(dropout)
        self.shrink = nn.Conv1d(channels, out_features, 1)
        # small output layer, as in ResLinear: start near "zero relative pose, root on its ray at 5 m"
        nn.init.normal_(self.shrink.weight, std=1e-3)
        nn.init.zeros_(self.shrink.bias)

    @classmethod
    def from_config(cls, in_features: int, out_features: int, config) -> TemporalConvNet:
        """``--receptive-field``, ``--channels``, ``--dropout``, ``--causal`` (``--blocks`` does not apply: the
        depth follows from the receptive field)."""
        return cls(
            in_features, out_features, receptive_field_of(config), config.channels, config.dropout, config.causal
        )

    def receptive_field(self) -> int:
        """Frames of input per output frame: the product of the filter widths."""
        rf = 1
        for w in self.widths:
            rf *= w
        return rf

    def target_frame(self) -> int:
        return target_offset(self.receptive_field(), self.causal)

    def _unit(self, conv, bn, x, stride: int = 1, dilation: int = 1) -> torch.Tensor:
        return self.drop(F.relu(bn(F.conv1d(x, conv.weight, None, stride, 0, dilation))))

    def _patch_unit(self, conv, bn, h: torch.Tensor, n: int) -> torch.Tensor:
        """A strided convolution (stride = width w) on position-major activations as one GEMM: h (n * P, C_in)
        -> (n * P / w, C_out), then BN, ReLU, dropout. Non-overlapping patches of w positions are rows of
        (n * P / w, w * C_in); the weight (C_out, C_in, w) is laid out to match."""
        c_out, c_in, w = conv.weight.shape
        patches = h.reshape(n, -1, w * c_in).reshape(-1, w * c_in)
        wmat = conv.weight.permute(0, 2, 1).reshape(c_out, w * c_in)
        return self.drop(F.relu(bn(patches @ wmat.t())))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Training form: windows (N, RF, in_features) -> (N, out_features). The convolutions run with stride =
        width (only the positions the output needs), on (N x positions, channels) activations: each is one GEMM
        and BatchNorm sees a plain (rows, C) batch - the same statistics as over (N, C, positions)."""
        if x.shape[1] != self.receptive_field():
            raise ValueError(f"expected windows of {self.receptive_field()} frames, got {x.shape[1]}")
        n = x.shape[0]
        h = self._patch_unit(self.expand, self.expand_bn, x.reshape(n * x.shape[1], -1), n)
        for i, w in enumerate(self.widths[1:]):
            shift = w // 2 if self.causal else 0
            res = h.view(n, -1, h.shape[1])[:, shift + w // 2 :: w].reshape(-1, h.shape[1])
            h = self._patch_unit(self.convs[2 * i], self.bns[2 * i], h, n)
            h = res + self._patch_unit(self.convs[2 * i + 1], self.bns[2 * i + 1], h, n)
        return F.linear(h, self.shrink.weight[:, :, 0], self.shrink.bias)

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Inference form: (N, T + RF - 1, in_features) -> (N, T, out_features); dilated convolutions, output t
        from input frames t .. t + RF - 1 (pad the sequence with :func:`mvtools.train.windows.pad_edges`)."""
        if x.shape[1] < self.receptive_field():
            raise ValueError(f"a sequence needs at least {self.receptive_field()} (padded) frames, got {x.shape[1]}")
        h = self._unit(self.expand, self.expand_bn, x.transpose(1, 2))
        dilation = self.widths[0]
        for i, w in enumerate(self.widths[1:]):
            pad = (w - 1) * dilation // 2
            shift = pad if self.causal else 0
            res = h[:, :, pad + shift : h.shape[2] - pad + shift]
            h = self._unit(self.convs[2 * i], self.bns[2 * i], h, dilation=dilation)
            h = res + self._unit(self.convs[2 * i + 1], self.bns[2 * i + 1], h)
            dilation *= w
        return self.shrink(h).transpose(1, 2)


def receptive_field_of(config) -> int:
    """The receptive field (frames) a TrainConfig asks for: ``--receptive-field`` for the temporal backbone (an
    error naming the option unless 27, 81, 243, ...), 1 for single-frame backbones."""
    if getattr(config, "backbone", "reslinear") != "temporal":
        return 1
    rf = int(config.receptive_field)
    try:
        filter_widths_for(rf)
    except ValueError:
        offered = ", ".join(map(str, RECEPTIVE_FIELDS))
        raise ValueError(
            f"--receptive-field must be a power of 3 of at least 9 frames ({offered}), got {config.receptive_field}"
        ) from None
    return rf


def conv_flops_per_window(
    receptive_field: int, channels: int, out_features: int, in_features: int = 2 * NUM_JOINTS
) -> int:
    """Forward multiply-add FLOPs (2 per MAC) of one branch's training form for one window."""
    widths = filter_widths_for(receptive_field)
    n = receptive_field // widths[0]  # output positions of the input layer
    macs = in_features * channels * widths[0] * n
    for w in widths[1:]:
        n //= w
        macs += channels * channels * (w + 1) * n
    return 2 * (macs + channels * out_features)


@torch.no_grad()
def lift_sequences(
    forward_sequence, xn: torch.Tensor, seq: np.ndarray, rf: int, causal: bool, chunk: int = 8192
) -> torch.Tensor:
    """Sequence inference: ``forward_sequence`` ((1, T + rf - 1, J, 2) -> (1, T, J, 3)) over every sequence of
    ``xn`` (N, J, 2) normalised 2D, rows labelled by ``seq`` (N,) and in frame order within a sequence; each
    sequence padded by edge replication and run in one pass (sequences longer than ``chunk`` frames in chunks
    overlapping by rf - 1 frames: the same outputs). Returns (N, J, 3) in ``xn``'s row order."""
    from mvtools.train.windows import pad_edges

    order = np.argsort(np.unique(np.asarray(seq), return_inverse=True)[1].reshape(-1), kind="stable")
    lab = np.asarray(seq)[order]
    bounds = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1], True])
    order_t = torch.from_numpy(order).to(xn.device)
    out = None
    for s, e in zip(bounds[:-1], bounds[1:], strict=True):
        rows = order_t[s:e]
        padded = pad_edges(xn.index_select(0, rows), rf, causal)[None]
        parts = [forward_sequence(padded[:, t : t + chunk + rf - 1]) for t in range(0, e - s, chunk)]
        y = torch.cat(parts, dim=1)[0]
        if out is None:
            out = xn.new_empty((len(xn),) + tuple(y.shape[1:]))
        out[rows] = y
    return out if out is not None else xn.new_zeros((0,) + tuple(xn.shape[1:-1]) + (3,))
