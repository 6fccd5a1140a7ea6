r"""A lean conditional coupling flow with rational-quadratic splines, built for fast batched sampling.

Each of the ``transforms`` coupling layers (Dinh et al., arXiv:1605.08803) keeps half of the D features
(even/odd indices, then first/second half, alternating) and transforms the others: a network of the kept
features and the conditions c gives every transformed feature a monotonic rational-quadratic spline on
[−B, B] with K bins, identity outside (Durkan et al., Neural Spline Flows, arXiv:1906.04032). Bin widths
and heights are softmaxes of the network outputs (each at least 10⁻³ of the range), the inner knot
derivatives exp(output) + 10⁻³, and the end slopes 1. Then

    log p(x | c) = log N(f(x; c); 0, 1) + Σ_layers log |det ∂f_layer/∂x|,

and sampling, x = f⁻¹(z; c), needs one network call per layer on the whole batch, whatever D.

Why not zuko here: at a batch of 1000 sampling a few features costs per tensor operation and per element
of the (batch, features, bins) tensors, not in arithmetic (torch's softmax over a last axis of 8, and any
elementwise operation on a strided slice, are slow). This flow computes splines for the transformed half
only, has separate output layers for bin sizes and knot derivatives (contiguous outputs), normalises the
bins after one cumulative sum and reads a bin with two ``gather`` calls: about 40 operations per layer.
The formulas are those of zuko's ``MonotonicRQSTransform``. Sampling without gradients leaves the spline itself
(knots, bin search, inverse) to one compiled loop over the rows (:func:`_rqs_inverse_rows`, numba): the same
formulas, but one pass instead of ~30 tensor operations of a few microseconds each (sampling a 6-layer
calohits shower: 1.5 → 1.0 µs for the flow, of which 0.6 µs are the networks' matrix products). The
compiled path needs ``torch.no_grad`` or ``torch.inference_mode``, as sampling runs.
"""

from __future__ import annotations

import itertools
import math
from typing import cast

import numpy as np
import torch
from numba import njit
from torch import nn

__all__ = ["BOUND", "CouplingFlow", "mlp", "rqs_forward", "rqs_inverse", "spline_knots"]

BOUND = 5.0
_MIN_BIN = 1e-3
_MIN_SLOPE = 1e-3
_LOG_SLOPE = 7.0  # inner knot derivatives between e^-7 and e^7


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of ``sizes``, each followed by a SiLU."""
    blocks: list[nn.Module] = []
    for n_in, n_out in itertools.pairwise(sizes):
        blocks += [nn.Linear(n_in, n_out), nn.SiLU()]
    return nn.Sequential(*blocks)


def _offsets(bins: int) -> torch.Tensor:
    """The knots' positions without the bins' shares: −B + 2B m i for knot i (m the minimum share)."""
    return 2 * BOUND * _MIN_BIN * torch.arange(bins + 1.0) - BOUND


def spline_knots(sizes: torch.Tensor, slopes: torch.Tensor, offsets: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Knot positions (…, 2, K + 1), rows x and y, and knot derivatives (…, K + 1), from raw network outputs
    for the bin widths and heights (…, 2, K) and the inner derivatives (…, K − 1)."""
    cumulative = torch.cumsum(sizes.clamp(-30.0, 30.0).exp(), -1)
    scale = (2 * BOUND * (1 - _MIN_BIN * sizes.shape[-1])) / cumulative[..., -1:]
    positions = torch.addcmul(offsets, nn.functional.pad(cumulative, (1, 0)), scale)
    inner = slopes.clamp(-_LOG_SLOPE, _LOG_SLOPE).exp() + _MIN_SLOPE
    return positions, nn.functional.pad(inner, (1, 1), value=1.0)


def _bin(knots: tuple[torch.Tensor, torch.Tensor], value: torch.Tensor, row: int) -> tuple[torch.Tensor, ...]:
    """x_k, x_{k+1}, y_k, y_{k+1}, d_k, d_{k+1} of the bin holding ``value`` along knot row ``row`` (0: x, 1: y)."""
    positions, derivatives = knots
    k = (positions[..., row, 1:-1] <= value.unsqueeze(-1)).sum(-1, keepdim=True)
    index = torch.cat([k, k + 1], -1)
    xy = positions.gather(-1, index.unsqueeze(-2).expand(*index.shape[:-1], 2, 2))
    d = derivatives.gather(-1, index)
    return xy[..., 0, 0], xy[..., 0, 1], xy[..., 1, 0], xy[..., 1, 1], d[..., 0], d[..., 1]


def rqs_forward(x: torch.Tensor, knots: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """y = g(x) and log g'(x) inside [−B, B] (identity and 0 outside)."""
    x0, x1, y0, y1, d0, d1 = _bin(knots, x, 0)
    width, height = x1 - x0, y1 - y0
    s = height / width
    xi = ((x - x0) / width).clamp(0, 1)
    xi1 = xi * (1 - xi)
    denominator = s + (d0 + d1 - 2 * s) * xi1
    y = y0 + height * (s * xi * xi + d0 * xi1) / denominator
    slope = s * s * (d1 * xi * xi + 2 * s * xi1 + d0 * (1 - xi) ** 2) / denominator**2
    inside = x.abs() < BOUND
    return torch.where(inside, y, x), torch.where(inside, torch.log(slope), 0.0)


def rqs_inverse(y: torch.Tensor, knots: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """x = g⁻¹(y) inside [−B, B] (the root of the quadratic in ξ that lies in [0, 1]; identity outside)."""
    x0, x1, y0, y1, d0, d1 = _bin(knots, y, 1)
    width, height = x1 - x0, y1 - y0
    s = height / width
    dy = y - y0
    curved = dy * (d0 + d1 - 2 * s)
    a = height * (s - d0) + curved
    b = height * d0 - curved
    s_dy = s * dy
    xi = 2 * s_dy / (b + torch.sqrt((b * b + 4 * a * s_dy).clamp_min(0)))
    return torch.where(y.abs() < BOUND, x0 + xi * width, y)


@njit(cache=True, nogil=True)
def _rqs_inverse_rows(shares: np.ndarray, inner: np.ndarray, offsets: np.ndarray, y: np.ndarray, out: np.ndarray
                      ) -> None:
    """out = g⁻¹(y) per row and feature, from the exponentiated bin sizes (B, C, 2, K) (rows x, y), the inner
    knot derivatives (B, C, K − 1) and the knot offsets (K + 1): :func:`spline_knots` then :func:`rqs_inverse`,
    with the knots built on the fly while the bin holding y is sought."""
    n_rows, n_changed, _, bins = shares.shape
    span = 2 * BOUND * (1 - _MIN_BIN * bins)
    for r in range(n_rows):
        for f in range(n_changed):
            value = y[r, f]
            if abs(value) >= BOUND:  # identity outside [−B, B]
                out[r, f] = value
                continue
            total_x, total_y = 0.0, 0.0
            for i in range(bins):
                total_x += shares[r, f, 0, i]
                total_y += shares[r, f, 1, i]
            scale_x, scale_y = span / total_x, span / total_y
            below_x, below_y, k = 0.0, 0.0, 0
            while k < bins - 1 and offsets[k + 1] + (below_y + shares[r, f, 1, k]) * scale_y <= value:
                below_x += shares[r, f, 0, k]
                below_y += shares[r, f, 1, k]
                k += 1
            x0, y0 = offsets[k] + below_x * scale_x, offsets[k] + below_y * scale_y
            width = offsets[k + 1] + (below_x + shares[r, f, 0, k]) * scale_x - x0
            height = offsets[k + 1] + (below_y + shares[r, f, 1, k]) * scale_y - y0
            d0 = 1.0 if k == 0 else inner[r, f, k - 1]
            d1 = 1.0 if k == bins - 1 else inner[r, f, k]
            s = height / width
            dy = value - y0
            curved = dy * (d0 + d1 - 2 * s)
            a, b = height * (s - d0) + curved, height * d0 - curved
            xi = 2 * s * dy / (b + math.sqrt(max(b * b + 4 * a * s * dy, 0.0)))
            out[r, f] = x0 + xi * width


def _split(features: int, layer: int) -> tuple[list[int], list[int]]:
    """Kept and transformed features of coupling layer ``layer``: even/odd, then halves, each both ways."""
    index = list(range(features))
    if features == 1:  # nothing to couple to: the spline depends on the conditions only
        return [], index
    if (layer // 2) % 2 == 0:
        first, second = index[0::2], index[1::2]
    else:
        first, second = index[:features // 2], index[features // 2:]
    return (first, second) if layer % 2 == 0 else (second, first)


class _CouplingLayer(nn.Module):
    kept: torch.Tensor
    changed: torch.Tensor
    order: torch.Tensor
    offsets: torch.Tensor

    def __init__(self, features: int, context: int, hidden: list[int], bins: int, layer: int) -> None:
        super().__init__()
        kept, changed = _split(features, layer)
        self.bins, self.n_changed = bins, len(changed)
        self.register_buffer("kept", torch.tensor(kept, dtype=torch.long), persistent=False)
        self.register_buffer("changed", torch.tensor(changed, dtype=torch.long), persistent=False)
        self.register_buffer("order", torch.argsort(torch.tensor(kept + changed)), persistent=False)
        self.register_buffer("offsets", _offsets(bins), persistent=False)
        self.net = mlp([len(kept) + context, *hidden])
        self.sizes = nn.Linear(hidden[-1], len(changed) * 2 * bins)  # bin widths and heights
        self.slopes = nn.Linear(hidden[-1], len(changed) * (bins - 1))  # inner knot derivatives (log)
        for head in (self.sizes, self.slopes):  # start as the identity: equal bins, unit slopes
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def _knots(self, kept: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net(torch.cat([kept, c], -1))
        sizes = self.sizes(h).unflatten(-1, (self.n_changed, 2, self.bins))
        slopes = self.slopes(h).unflatten(-1, (self.n_changed, self.bins - 1))
        return spline_knots(sizes, slopes, self.offsets)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kept = x.index_select(1, self.kept)
        y, log_slope = rqs_forward(x.index_select(1, self.changed), self._knots(kept, c))
        return torch.cat([kept, y], -1).index_select(1, self.order), log_slope.sum(-1)

    def inverse(self, y: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        kept = y.index_select(1, self.kept)
        changed = y.index_select(1, self.changed)
        if torch.jit.is_tracing() or torch.is_grad_enabled():
            x = rqs_inverse(changed, self._knots(kept, c))  # differentiable, and what ONNX records
        else:
            x = self._compiled_inverse(changed, kept, c)
        return torch.cat([kept, x], -1).index_select(1, self.order)

    def _compiled_inverse(self, changed: torch.Tensor, kept: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """:func:`rqs_inverse` of the knots :func:`spline_knots` would build, in one compiled pass (no autograd)."""
        h = self.net(torch.cat([kept, c], -1))
        shares = self.sizes(h).clamp_(-30.0, 30.0).exp_().view(len(h), self.n_changed, 2, self.bins)
        inner = self.slopes(h).clamp_(-_LOG_SLOPE, _LOG_SLOPE).exp_().add_(_MIN_SLOPE)
        out = torch.empty_like(changed)
        _rqs_inverse_rows(shares.numpy(), inner.view(len(h), self.n_changed, -1).numpy(), self.offsets.numpy(),
                          changed.numpy(), out.numpy())
        return out


class CouplingFlow(nn.Module):
    """p(x | c) of ``features`` standardised features given ``context`` standardised conditions."""

    def __init__(self, features: int, context: int, transforms: int, hidden: list[int], bins: int = 8) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_CouplingLayer(features, context, hidden, bins, i) for i in range(transforms))

    def log_prob(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """log p(x | c) per row [nats]."""
        total = torch.zeros_like(x[:, 0])
        for layer in self.layers:
            x, log_det = layer(x, c)
            total = total + log_det
        return total - 0.5 * (x * x).sum(-1) - 0.5 * x.shape[1] * math.log(2 * math.pi)

    def sample(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """x = f⁻¹(z; c) for base noise z (B, D) ~ N(0, 1)."""
        for layer in reversed(self.layers):
            z = cast(_CouplingLayer, layer).inverse(z, c)
        return z
