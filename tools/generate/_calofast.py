r"""``calofast``: a two-stage calorimeter surrogate that samples a batch in one pass per stage.

Showers (cells e_{l,k} in MeV, incident energy E_inc in GeV) are factorised as in CaloFlow (Krause & Shih,
arXiv:2106.05285), but the second stage is not a flow:

    p(e | E_inc) = p₁(E_1 … E_L | E_inc) · Π_{l,k} p₂(e_{l,k} | E_inc, E_1 … E_L),   E_l = Σ_k e_{l,k}

- stage 1 learns the layer energies as y_l = log((E_l + ε u_l) / MeV), u_l ~ U(0, 1) dequantising empty
  layers, mapped to x_l = logit((y_l − a_l) / (b_l − a_l)) on the training range [a_l, b_l] of y_l widened
  by 5 % (so sampled layer energies stay within it) and standardised, given the standardised
  log(E_inc / GeV), with a conditional rational-quadratic coupling flow (:mod:`._coupling`);
- stage 2 gives every voxel k, from one network pass on (log E_inc, x), a hit probability p_k = σ(logit_k)
  and, for a hit, a logistic distribution of its log share of the layer energy, t = log(e_k / E_l), with
  location μ_k and log scale log s_k from a rank-r layer. Sampling reads one random int32 word b_k per voxel:
  a hit when b_k < ⌊2³¹ tanh(logit_k / 2)⌋ (that is u_k < p_k for u_k = (b_k + 2³¹ + ½) / 2³², clipped to
  3·10⁻⁸ ≤ p_k ≤ 1 − 3·10⁻⁸); then q = u_k / p_k is uniform and the share is exp(μ_k + s_k log(q / (1 − q))),
  computed for the hits alone (about 5 % of the voxels). The shares of each layer are normalised and
  multiplied by the sampled E_l, so each layer holds its stage-1 energy; cells below ε are zeroed (the
  CaloFlow convention), which also empties a layer with E_l < ε. A layer with E_l ≥ ε and no sampled hit
  puts E_l into its most probable voxel.

The cells of a shower are modelled as independent given the incident and layer energies. In a sampling
calorimeter their fluctuations come from independent deposits (track crossings) around a common profile,
while the layer energies carry the shower-to-shower fluctuations of depth and size; the assumption is what
makes sampling a few passes over the voxels plus work per hit, instead of one network pass per transform
with a spline per voxel (CaloFlow's flow 2). ε (``noise_mev``) is half the 1 % quantile of the non-zero
training cells, as in :mod:`._caloflow`. The loss is the stage-1 NLL of the standardised x plus the stage-2
NLL (Bernoulli hit or not, and the hits' logistic log shares) summed over voxels [nats per shower].

Speed (a 6 × 10 × 10 grid, batch 1000, one thread of a 2-core VM): 8–9 µs per shower — 1 µs of noise
(600 random words from numpy), 2 µs for stage 1, 2 µs of passes over the voxels (hit logits, thresholds,
comparison, nonzero, output), 1.5 µs for the ~28 hits (shares), the rest small.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
from torch import nn

from physagent.tools.generate._caloflow import noise_scale
from physagent.tools.generate._coupling import CouplingFlow, mlp
from physagent.tools.generate._flows import Standardizer

__all__ = ["CALOFAST_REFERENCE", "MAX_FAST_VOXELS", "FastCalo", "LayerEnergies", "bits_to_uniform"]

MAX_FAST_VOXELS = 20_000
CALOFAST_REFERENCE = ("two-stage factorisation of Krause & Shih, CaloFlow, arXiv:2106.05285; coupling spline flow, "
                      "arXiv:1605.08803, arXiv:1906.04032; conditionally independent voxels (hit probability and "
                      "logistic log share)")
_TINY = 1e-30
_TWO_31 = 2.0**31
_SCALE = 2.0**31 - 128  # the largest float32 below 2³¹: thresholds stay within int32 (p in [3·10⁻⁸, 1 − 3·10⁻⁸])
_RANGE_MARGIN = 0.05  # the stage-1 support: the training range of y, widened by 5 % of it on both sides


def bits_to_uniform(bits: torch.Tensor) -> torch.Tensor:
    """u ∈ (0, 1) from random int32 words, u = (bits + 2³¹ + ½) / 2³² (float64: every word its own value)."""
    return (bits.double() + (_TWO_31 + 0.5)) / (2 * _TWO_31)


def _hits(bits: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Flat indices where bits < threshold (both int32): with numpy, whose integer comparison and nonzero are
    2–4× faster than torch's on a CPU, except while tracing for the ONNX export (``Less``, ``NonZero``)."""
    if torch.jit.is_tracing():
        return torch.nonzero((bits < threshold).reshape(-1), as_tuple=True)[0]
    return torch.from_numpy(np.flatnonzero(bits.numpy() < threshold.numpy()))


class VoxelNet(nn.Module):
    """Per voxel: the hit logit, and the location μ and log scale of its log share (through a rank-``rank`` layer)."""

    def __init__(self, n_in: int, n_voxels: int, hidden: list[int], rank: int) -> None:
        super().__init__()
        self.body = mlp([n_in, *hidden])
        self.hit = nn.Linear(hidden[-1], n_voxels)
        self.share = nn.Sequential(nn.Linear(hidden[-1], rank), nn.Linear(rank, 2 * n_voxels))

    def forward(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hit logits (B, V) and (μ, log s) (B, V, 2)."""
        h = self.body(c)
        return self.hit(h), self.share(h).unflatten(-1, (-1, 2))


class LayerEnergies(nn.Module):
    """Stage 1, shared by calofast and calohits: the layer energies E_l given E_inc, as a spline coupling flow of
    x = standardised logit((y − y_low) / (y_high − y_low)), y = log((E_l + ε u) / MeV), with ε = ``noise_mev``."""

    noise_mev: torch.Tensor
    y_low: torch.Tensor
    y_high: torch.Tensor

    def __init__(self, grid_shape: tuple[int, int, int], flow: dict[str, Any]) -> None:
        super().__init__()
        self.grid_shape = tuple(grid_shape)
        n_layers = grid_shape[0]
        self.n_voxels = int(np.prod(grid_shape))
        self.energy_flow = CouplingFlow(n_layers, 1, flow["transforms"], flow["hidden_features"], flow["bins"])
        self.y_norm = Standardizer(n_layers)
        self.c_norm = Standardizer(1)
        self.register_buffer("noise_mev", torch.tensor(1e-3))
        self.register_buffer("y_low", torch.full((n_layers,), -10.0))
        self.register_buffer("y_high", torch.full((n_layers,), 10.0))

    def _to_x(self, y: torch.Tensor) -> torch.Tensor:
        """Stage-1 variables x = standardised logit((y − y_low) / (y_high − y_low)): bounded layer energies."""
        return self.y_norm(torch.logit(((y - self.y_low) / (self.y_high - self.y_low)).clamp(1e-6, 1 - 1e-6)))

    def _from_x(self, x: torch.Tensor) -> torch.Tensor:
        return self.y_low + (self.y_high - self.y_low) * torch.sigmoid(self.y_norm.inverse(x))

    def _stage_one_targets(self, layer_e: torch.Tensor, energy_gev: torch.Tensor, generator: torch.Generator | None
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x of the dequantised layer energies (B, L), standardised log E_inc (B, 1))."""
        y = torch.log(layer_e + torch.rand(layer_e.shape, generator=generator) * self.noise_mev)
        return self._to_x(y), self.c_norm(torch.log(energy_gev).unsqueeze(-1))

    def _fit_stage_one(self, cells: np.ndarray, energy_gev: np.ndarray, generator: torch.Generator) -> None:
        """ε, the support [y_low, y_high] of y and the standardisations, from the training showers."""
        self.noise_mev.fill_(noise_scale(cells))
        with torch.no_grad():
            layer_e = torch.from_numpy(cells).view(len(cells), self.grid_shape[0], -1).sum(-1)
            y = torch.log(layer_e + torch.rand(layer_e.shape, generator=generator) * self.noise_mev)
            low, high = y.amin(0), y.amax(0)
            self.y_low.copy_(low - _RANGE_MARGIN * (high - low))
            self.y_high.copy_(high + _RANGE_MARGIN * (high - low))
            self.y_norm.fit(torch.logit((y - self.y_low) / (self.y_high - self.y_low)).double().numpy(), "none")
            self.c_norm.fit(np.log(energy_gev)[:, None], "none")

    def sample_layer_energies(self, energy_gev: torch.Tensor, z_layers: torch.Tensor
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(standardised log E_inc (B, 1), x (B, L), layer energies E_l (B, L) [MeV]) for stage-1 noise z."""
        c = self.c_norm(torch.log(energy_gev).unsqueeze(-1))
        x = self.energy_flow.sample(z_layers, c)
        return c, x, torch.exp(self._from_x(x))


class FastCalo(LayerEnergies):
    """Stage 1 (layer energies) and stage 2 (independent voxels) for a grid of ``grid_shape``."""

    def __init__(self, grid_shape: tuple[int, int, int], arch: dict[str, Any]) -> None:
        super().__init__(grid_shape, arch["energy_flow"])
        voxels = arch["voxel_net"]
        self.voxels = VoxelNet(1 + grid_shape[0], self.n_voxels, voxels["hidden_features"], voxels["rank"])

    def _layers(self, cells: torch.Tensor) -> torch.Tensor:
        return cells.view(len(cells), self.grid_shape[0], -1)

    def _targets(self, cells: torch.Tensor, energy_gev: torch.Tensor, generator: torch.Generator | None
                 ) -> tuple[torch.Tensor, ...]:
        """(stage-1 variables x, standardised log E_inc, hit flags (B, V), log shares of the hits (B, V), else 0)."""
        layer_e = self._layers(cells).sum(-1)
        x, c = self._stage_one_targets(layer_e, energy_gev, generator)
        hits = cells > 0
        share = cells / layer_e.clamp_min(_TINY).repeat_interleave(self.n_voxels // self.grid_shape[0], dim=1)
        t = torch.where(hits, torch.log(share.clamp_min(_TINY)), torch.zeros_like(share))
        return x, c, hits.float(), t

    def fit_transforms(self, cells: np.ndarray, energy_gev: np.ndarray, seed: int) -> None:
        """ε, the standardisations, and stage-2 biases at the training data's per-voxel hit rates and shares."""
        generator = torch.Generator().manual_seed(seed)
        self._fit_stage_one(cells, energy_gev, generator)
        with torch.no_grad():
            _, _, hits, t = self._targets(torch.from_numpy(cells), torch.from_numpy(energy_gev).float(), generator)
            rate = hits.mean(0).clamp(1e-4, 1 - 1e-4)
            n_hits = hits.sum(0).clamp_min(1)
            mean = (t * hits).sum(0) / n_hits
            std = (((t - mean) ** 2 * hits).sum(0) / n_hits).sqrt().clamp_min(0.1)
            self.voxels.hit.bias.copy_(torch.logit(rate))
            spread = torch.log(std * np.sqrt(3) / np.pi)
            cast(nn.Linear, self.voxels.share[-1]).bias.copy_(torch.stack([mean, spread], -1).view(-1))

    def loss(self, cells: torch.Tensor, energy_gev: torch.Tensor, generator: torch.Generator | None = None
             ) -> torch.Tensor:
        """Stage-1 NLL of the standardised x plus the stage-2 NLL summed over voxels [nats per shower]."""
        y, c, hits, t = self._targets(cells, energy_gev, generator)
        nll_layers = -self.energy_flow.log_prob(y, c)
        logit, share = self.voxels(torch.cat([c, y], -1))
        mu, log_s = share.unbind(-1)
        z = (t - mu) * torch.exp(-log_s)
        nll_share = (z + log_s + 2 * nn.functional.softplus(-z)) * hits
        nll_hit = nn.functional.binary_cross_entropy_with_logits(logit, hits, reduction="none")
        return (nll_layers + (nll_hit + nll_share).sum(-1)).mean()

    def sample(self, energy_gev: torch.Tensor, z_layers: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
        """Cells (B, L, A, B) [MeV] for incident energies (B,) [GeV], stage-1 noise z (B, L) ~ N(0, 1) and one
        random int32 word per voxel (B, V), read as the uniform u_k = :func:`bits_to_uniform`."""
        c, x, layer_e = self.sample_layer_energies(energy_gev, z_layers)
        layer_e = layer_e.view(-1)
        h = self.voxels.body(torch.cat([c, x], -1))
        # a hit when u < p, compared on the integers: bits < p·2³² − 2³¹ = 2³¹ tanh(logit / 2), made in place
        # (each new (B, V) tensor costs about as much as an operation on it)
        hit = self.voxels.hit
        limit = nn.functional.linear(h, 0.5 * hit.weight, 0.5 * hit.bias).tanh_().mul_(_SCALE).to(torch.int32)
        hits = _hits(bits, limit)
        w = self._hit_weights(h, limit, bits, hits)
        per_layer = self.n_voxels // self.grid_shape[0]
        layer = torch.div(hits, per_layer, rounding_mode="floor")  # flat (shower, layer) index of each hit
        sums = torch.zeros_like(layer_e).scatter_add(0, layer, w)
        energy = w / sums.index_select(0, layer) * layer_e.index_select(0, layer)
        energy = torch.where(energy < self.noise_mev, 0.0, energy)
        cells = torch.zeros_like(limit, dtype=energy.dtype).view(-1).scatter_(0, hits, energy)
        return self._fallback(cells, h, sums, layer_e).view(-1, *self.grid_shape)

    def _hit_weights(self, h: torch.Tensor, limit: torch.Tensor, bits: torch.Tensor, hits: torch.Tensor
                     ) -> torch.Tensor:
        """exp(t) of the hits (flat indices): q = u / p with p = (limit + 2³¹) / 2³² the exact probability of
        bits < limit, so q is uniform on (0, 1); t = μ + s log(q / (1 − q)), μ and log s from the rank-r share
        layer evaluated for the hits alone; q in float64 (near q = 1, u and p nearly agree)."""
        shower = torch.div(hits, self.n_voxels, rounding_mode="floor")
        voxel = hits - shower * self.n_voxels
        low, high = (cast(nn.Linear, layer) for layer in self.voxels.share)
        weight = high.weight.view(self.n_voxels, 2, -1).index_select(0, voxel)
        share = (weight @ low(h).index_select(0, shower).unsqueeze(-1)).squeeze(-1)
        share = share + high.bias.view(self.n_voxels, 2).index_select(0, voxel)
        p = (limit.view(-1).index_select(0, hits).double() + _TWO_31) / (2 * _TWO_31)
        q = (bits_to_uniform(bits.view(-1).index_select(0, hits)) / p).clamp(1e-12, 1 - 1e-12)
        t = share[:, 0].double() + torch.exp(share[:, 1].double()) * torch.log(q / (1 - q))
        return torch.exp(t.clamp_max(30.0)).float()

    def _fallback(self, cells: torch.Tensor, h: torch.Tensor, sums: torch.Tensor, layer_e: torch.Tensor
                  ) -> torch.Tensor:
        """A layer with E_l ≥ ε but no sampled hit: E_l into its most probable voxel (by the hit logits of those
        few showers, recomputed: the thresholds of tiny probabilities all round to −2³¹)."""
        n_layers, per_layer = self.grid_shape[0], self.n_voxels // self.grid_shape[0]
        (lonely,) = torch.nonzero((sums == 0) & (layer_e >= self.noise_mev), as_tuple=True)
        shower = torch.div(lonely, n_layers, rounding_mode="floor")
        logit = nn.functional.linear(h.index_select(0, shower), self.voxels.hit.weight, self.voxels.hit.bias)
        layer = (lonely - shower * n_layers).view(-1, 1, 1).expand(-1, 1, per_layer)
        best = logit.view(-1, n_layers, per_layer).gather(1, layer).squeeze(1).argmax(-1)
        return cells.scatter_(0, lonely * per_layer + best, layer_e.index_select(0, lonely))
