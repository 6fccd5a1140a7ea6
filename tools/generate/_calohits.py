r"""``calohits``: a calorimeter surrogate whose sampling cost grows with the hits, not with the voxels.

Showers (cells e_{l,k} in MeV, incident energy E_inc in GeV) are factorised as in CaloFlow (Krause & Shih,
arXiv:2106.05285) and :mod:`._calofast`:

- stage 1, the layer energies E_l given E_inc, is calofast's spline coupling flow (:class:`._calofast.LayerEnergies`);
- stage 2 makes the hits of layer l an inhomogeneous Poisson process over its K voxels with intensity

      λ_k = Σ_j a_j T_jk,   T_j = softmax over the layer's voxels (J templates per layer),
      a_j = softplus(MLP(log E_inc, x)),  x the stage-1 variables of all layers,

  so voxel k holds a deposit with probability p_k = 1 − e^{−λ_k} (draws on one voxel merge). A hit's log share
  of its layer, t = log(e_k / E_l), is t = μ_jk + s_jk log D with D ~ Exp(1) (for s = 1 the log of one
  exponential deposit; a Gumbel-min law), with μ and log s of the template j that drew it — template j with
  probability a_j T_jk / λ_k. Training minimises the exact negative log-likelihood: the stage-1 NLL, the
  Bernoulli NLL of "any deposit in voxel k" with p_k, and the mixture NLL of the hits' log shares (nats per
  shower) — per-voxel work that only training pays.

Templates are confined to the voxels hit at least once in the training showers (``support``). They start at
the hit rates of J bins of incident energy (μ, s at those bins' log shares), the intensities at the bins'
expected numbers of deposits. Sampling (:mod:`._hit_sampler`) tests the voxels hit in most training showers
one by one and draws the others, N_j ~ Poisson voxels from each template by alias tables; it merges repeats,
gives each hit a tabulated weight e^t and splits the stage-1 layer energy in proportion — each layer holds
exactly its stage-1 energy, less cells below ε (the CaloFlow noise level, :func:`._caloflow.noise_scale`), as
in calofast. All randomness of a shower's hits comes from one 64-bit key, so a seed gives the same showers
whatever the batch size.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
from torch import nn

from physagent.tools.generate._calofast import LayerEnergies
from physagent.tools.generate._coupling import mlp
from physagent.tools.generate._hit_sampler import hit_tables, sample_hits

__all__ = ["CALOHITS_REFERENCE", "MAX_HITS_VOXELS", "CaloHits"]

MAX_HITS_VOXELS = 20_000
CALOHITS_REFERENCE = ("two-stage factorisation of Krause & Shih, CaloFlow, arXiv:2106.05285; coupling spline flow, "
                      "arXiv:1605.08803, arXiv:1906.04032; hits as an inhomogeneous Poisson process with template "
                      "intensities, log-exponential (Gumbel-min) log shares; Walker/Vose alias sampling")
_TINY = 1e-30
_MIN_RATE, _MAX_RATE = 1e-4, 0.999  # initial hit rates: every supported voxel possible, none certain
_OUTSIDE = -30.0  # template logit outside the support: e^{-30} of a voxel's share, and exactly 0 when sampling
_EULER_GAMMA, _LOG_D_STD = 0.5772156649, np.pi / np.sqrt(6)  # −mean and std of log D, D ~ Exp(1)
_CORE_RATE = 0.5  # voxels hit in at least half the training showers are sampled one by one (see _hit_sampler)


class CaloHits(LayerEnergies):
    """Stage 1 (layer energies) and stage 2 (Poisson hits from templates) for a grid of ``grid_shape``."""

    support: torch.Tensor
    hit_rate: torch.Tensor

    def __init__(self, grid_shape: tuple[int, int, int], arch: dict[str, Any]) -> None:
        super().__init__(grid_shape, arch["energy_flow"])
        hits = arch["hit_model"]
        n_layers, n_cells, n_templates = grid_shape[0], grid_shape[1] * grid_shape[2], hits["templates"]
        self.n_templates = n_templates
        self.intensity = nn.Sequential(mlp([1 + n_layers, *hits["hidden_features"]]),
                                       nn.Linear(hits["hidden_features"][-1], n_layers * n_templates))
        shape = (n_layers, n_templates, n_cells)
        self.template_logits = nn.Parameter(torch.zeros(shape))
        self.location = nn.Parameter(torch.zeros(shape))
        self.log_scale = nn.Parameter(torch.zeros(shape))
        self.register_buffer("support", torch.ones((n_layers, n_cells), dtype=torch.bool))
        self.register_buffer("hit_rate", torch.zeros((n_layers, n_cells)))
        self._tables: tuple[np.ndarray, ...] | None = None

    def _layers(self, cells: torch.Tensor) -> torch.Tensor:
        return cells.view(len(cells), self.grid_shape[0], -1)

    def _intensities(self, c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """a_j per shower and layer (B, L, J): expected draws of each template."""
        return nn.functional.softplus(self.intensity(torch.cat([c, x], -1))).view(len(c), self.grid_shape[0], -1)

    def _log_templates(self) -> torch.Tensor:
        """log T_jk (L, J, K), normalised over the supported voxels of each layer."""
        logits = torch.where(self.support.unsqueeze(1), self.template_logits, _OUTSIDE)
        return torch.log_softmax(logits, -1)

    # --- training ---------------------------------------------------------------------------------

    def fit_transforms(self, cells: np.ndarray, energy_gev: np.ndarray, seed: int) -> None:
        """ε, stage-1 transforms, the support, and stage-2 parameters at J incident-energy bins of the data."""
        generator = torch.Generator().manual_seed(seed)
        self._fit_stage_one(cells, energy_gev, generator)
        layers = cells.reshape(len(cells), self.grid_shape[0], -1)
        self.hit_rate.copy_(torch.from_numpy((layers > 0).mean(0)))
        self.support.copy_(self.hit_rate > 0)
        expected = np.zeros((self.grid_shape[0], self.n_templates))
        with torch.no_grad():
            for j, rows in enumerate(np.array_split(np.argsort(energy_gev), self.n_templates)):
                expected[:, j] = self._fit_template(j, layers[rows])
            bias = expected / self.n_templates  # a_j = Λ_j / J: λ starts at the bins' average
            head = cast(nn.Linear, self.intensity[-1])
            head.weight.mul_(0.1)
            head.bias.copy_(torch.from_numpy(np.log(np.expm1(np.maximum(bias, 1e-3)))).float().view(-1))

    def _fit_template(self, j: int, layers: np.ndarray) -> np.ndarray:
        """Template j from showers (N, L, K) of one energy bin; returns its expected draws per layer Λ_j (L,)."""
        rate = np.clip((layers > 0).mean(0), _MIN_RATE, _MAX_RATE)
        lam = -np.log1p(-rate) * self.support.numpy()
        self.template_logits[:, j] = torch.from_numpy(np.log(np.maximum(lam, _TINY))).float()
        hits = layers > 0
        t = np.log(np.maximum(layers / np.maximum(layers.sum(-1, keepdims=True), _TINY), _TINY)) * hits
        n = np.maximum(hits.sum(0), 1)
        mean = t.sum(0) / n
        std = np.sqrt(((t - mean) ** 2 * hits).sum(0) / n)
        layer_mean = (t.sum((0, 2)) / np.maximum(hits.sum((0, 2)), 1))[:, None]
        mean = np.where(hits.sum(0) > 0, mean, layer_mean)  # unhit voxels: the layer's mean log share
        scale = np.where(hits.sum(0) > 1, np.maximum(std, 0.1), 1.0) / _LOG_D_STD  # matches the std of t
        self.location[:, j] = torch.from_numpy(mean + _EULER_GAMMA * scale).float()  # and its mean: E log D = −γ
        self.log_scale[:, j] = torch.from_numpy(np.log(scale)).float()
        return lam.sum(-1)

    def loss(self, cells: torch.Tensor, energy_gev: torch.Tensor, generator: torch.Generator | None = None
             ) -> torch.Tensor:
        """Stage-1 NLL plus, summed over voxels, the hit NLL and the hits' log-share mixture NLL [nats/shower].

        The hit NLL needs λ of every voxel (one batched matrix product); the share NLL is evaluated at the hits
        alone (≈ 4 % of the voxels of a full-grid shower)."""
        layers = self._layers(cells)
        layer_e = layers.sum(-1)
        x, c = self._stage_one_targets(layer_e, energy_gev, generator)
        nll_layers = -self.energy_flow.log_prob(x, c)
        a = self._intensities(c, x)
        log_t = self._log_templates()
        lam = torch.einsum("blj,ljk->blk", a, torch.exp(log_t)).clamp_min(1e-10)
        hits = layers > 0
        nll_hit = torch.where(hits, -torch.log(-torch.expm1(-lam)), lam).sum((1, 2))
        return (nll_layers + nll_hit + self._share_nll(layers, layer_e, a, log_t, lam)).mean()

    def _share_nll(self, layers: torch.Tensor, layer_e: torch.Tensor, a: torch.Tensor, log_t: torch.Tensor,
                   lam: torch.Tensor) -> torch.Tensor:
        """−log Σ_j (a_j T_jk / λ_k) p(t_k; μ_jk, s_jk) summed over each shower's hits (B,), with p the density
        of t = μ + s log D, D ~ Exp(1): p = exp(y − e^y) / s, y = (t − μ) / s.

        Why not a logistic (as calofast): its heavy upper tail in t gave halo voxels, after normalisation, the
        energy of the core now and then, and showers 4 % too wide (width W1/σ 0.42 on the full grid); log D
        has a thin upper tail, like a share, which cannot exceed 1."""
        shower, layer, voxel = torch.nonzero(layers > 0, as_tuple=True)
        t = torch.log((layers[shower, layer, voxel] / layer_e[shower, layer]).clamp_min(_TINY))
        log_part = torch.log(a[shower, layer].clamp_min(_TINY)) + log_t[layer, :, voxel]  # (H, J)
        log_s = self.log_scale[layer, :, voxel]
        y = ((t.unsqueeze(-1) - self.location[layer, :, voxel]) * torch.exp(-log_s)).clamp_max(60.0)
        log_pdf = y - torch.exp(y) - log_s
        log_share = torch.logsumexp(log_part + log_pdf, -1) - torch.log(lam[shower, layer, voxel])
        return torch.zeros(len(layers), dtype=t.dtype).index_add(0, shower, -log_share)

    # --- sampling ---------------------------------------------------------------------------------

    def train(self, mode: bool = True) -> CaloHits:
        self._tables = None  # parameters may change (training) or be loaded: rebuild the tables when sampling
        return super().train(mode)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        self._tables = None  # tables of the old weights must not outlive them
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def prepare_sampling(self) -> None:
        """Build the sampling tables now (≈ 10–50 ms, a function of the weights alone), not in the first batch."""
        self._sampling_tables()

    def _sampling_tables(self) -> tuple[np.ndarray, ...]:
        """Templates, core voxels, alias tables and tabulated hit weights, built once per set of weights."""
        if self._tables is None:
            with torch.no_grad():
                templates = (torch.exp(self._log_templates()) * self.support.unsqueeze(1)).double().numpy()
                templates /= templates.sum(-1, keepdims=True)
                core = (self.hit_rate >= _CORE_RATE).numpy()
                self._tables = hit_tables(templates, core, self.location.double().numpy(),
                                          self.log_scale.double().numpy())
        return self._tables

    def sample(self, energy_gev: torch.Tensor, z_layers: torch.Tensor, keys: np.ndarray) -> torch.Tensor:
        """Cells (B, L, A, B) [MeV] for incident energies (B,) [GeV], stage-1 noise z (B, L) ~ N(0, 1) and one
        random 64-bit key per shower (B,) uint64 that seeds all of its hits."""
        c, x, layer_e = self.sample_layer_energies(energy_gev, z_layers)
        intensity = self._intensities(c, x).double().numpy()
        cells = np.zeros((len(keys), self.grid_shape[0], self.n_voxels // self.grid_shape[0]), np.float32)
        sample_hits(intensity, layer_e.double().numpy(), np.ascontiguousarray(keys, dtype=np.uint64),
                    self._sampling_tables(), float(self.noise_mev), cells)
        return torch.from_numpy(cells).view(-1, *self.grid_shape)
