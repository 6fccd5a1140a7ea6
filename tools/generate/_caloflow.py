r"""A two-stage CaloFlow model for small calorimeter grids (Krause & Shih, arXiv:2106.05285, 2110.11377).

Showers of a ``showers`` artifact (cells e_{l,k} in MeV, incident energy E_inc in GeV) are factorised as

    p(e | E_inc) = p₁(E_1 … E_L | E_inc) · p₂(I | E_1 … E_L, E_inc),   E_l = Σ_k e_{l,k},  I_{l,k} = e_{l,k} / E_l

- flow 1 learns the layer energies as y = log(E_l / MeV) given log(E_inc / GeV);
- flow 2 learns the normalised cell energies as x = logit(α + (1 − 2α) I) given log E_inc and the log layer
  energies, with coupling layers (two passes) so that sampling costs one network call per transform.

Zero cells are dequantised with uniform noise U(0, ε) added to every cell while training (ε = ``noise_mev``
in the model card, half the 1 % quantile of the non-zero cells); sampled cells below ε are set to zero, as
in CaloFlow. Sampled shapes are clipped at zero and renormalised per layer before multiplying by the
sampled layer energies. Both flows train together (their parameters are disjoint, so the summed loss
trains each on its own likelihood); the loss is the summed negative log-likelihood in nats per shower
of the standardised variables. Grids above :data:`MAX_VOXELS` voxels are refused (flow 2 grows with the
square of the voxel count): use the point-cloud model or a coarser geometry.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from physagent.tools.generate._flows import TabularFlow

__all__ = ["ALPHA", "CALOFLOW_REFERENCE", "MAX_VOXELS", "CaloFlow", "noise_scale"]

MAX_VOXELS = 600
ALPHA = 1e-6
CALOFLOW_REFERENCE = ("Krause & Shih, CaloFlow, arXiv:2106.05285; CaloFlow II, arXiv:2110.11377; "
                      "spline flows arXiv:1906.04032")


def noise_scale(cells_mev: np.ndarray) -> float:
    """ε: half the 1 % quantile of the non-zero cell energies [MeV] (1 keV when no cell is hit)."""
    positive = cells_mev[cells_mev > 0]
    return 0.5 * float(np.quantile(positive, 0.01)) if positive.size else 1e-3


class CaloFlow(nn.Module):
    """Flow 1 (layer energies) and flow 2 (normalised cell energies) for a grid of ``grid_shape``."""

    noise_mev: torch.Tensor

    def __init__(self, kind: str, grid_shape: tuple[int, int, int], arch: dict[str, Any]) -> None:
        super().__init__()
        self.grid_shape = tuple(grid_shape)
        n_layers = grid_shape[0]
        self.n_voxels = int(np.prod(grid_shape))
        self.energy_flow = TabularFlow(kind, n_layers, 1, arch["energy_flow"])
        self.shape_flow = TabularFlow(kind, self.n_voxels, 1 + n_layers, arch["shape_flow"] | {"passes": 2})
        self.register_buffer("noise_mev", torch.tensor(1e-3))

    def _variables(self, cells: torch.Tensor, energy_gev: torch.Tensor, generator: torch.Generator | None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(layer y, flow-1 condition, shape x, flow-2 condition) of dequantised cells (B, V) [MeV]."""
        noisy = cells + torch.rand(cells.shape, generator=generator) * self.noise_mev
        layers = noisy.view(len(cells), self.grid_shape[0], -1)
        layer_e = layers.sum(-1)
        shares = (layers / layer_e.unsqueeze(-1)).reshape(len(cells), -1)
        log_e = torch.log(energy_gev).unsqueeze(-1)
        y = torch.log(layer_e)
        x = torch.logit(ALPHA + (1 - 2 * ALPHA) * shares)
        return y, log_e, x, torch.cat([log_e, y], dim=1)

    def fit_transforms(self, cells: np.ndarray, energy_gev: np.ndarray, seed: int) -> None:
        """Set ε and the standardisation of both flows from the training showers (cells flattened, MeV)."""
        self.noise_mev.fill_(noise_scale(cells))
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            y, c1, x, c2 = self._variables(torch.from_numpy(cells), torch.from_numpy(energy_gev).float(), generator)
        for flow, values, conditions in ((self.energy_flow, y, c1), (self.shape_flow, x, c2)):
            flow.x_norm.fit(values.double().numpy(), "none")
            flow.c_norm.fit(conditions.double().numpy(), "none")

    def loss(self, cells: torch.Tensor, energy_gev: torch.Tensor, generator: torch.Generator | None = None
             ) -> torch.Tensor:
        """Summed NLL of flow 1 and flow 2 [nats per shower, standardised variables]."""
        y, c1, x, c2 = self._variables(cells, energy_gev, generator)
        return self.energy_flow.loss(y, c1) + self.shape_flow.loss(x, c2)

    def sample(self, energy_gev: torch.Tensor, z_layers: torch.Tensor, z_cells: torch.Tensor) -> torch.Tensor:
        """Cells (B, L, A, B) [MeV] for incident energies (B,) [GeV] and base noise of both flows."""
        log_e = torch.log(energy_gev).unsqueeze(-1)
        y = self.energy_flow.sample(log_e, z_layers)
        x = self.shape_flow.sample(torch.cat([log_e, y], dim=1), z_cells)
        # -1 for the batch axis (not len(y)): the ONNX export keeps the batch size dynamic
        shares = ((torch.sigmoid(x) - ALPHA) / (1 - 2 * ALPHA)).clamp_min(0).view(-1, self.grid_shape[0],
                                                                                  self.n_voxels // self.grid_shape[0])
        shares = shares / shares.sum(-1, keepdim=True).clamp_min(1e-12)
        cells = shares * torch.exp(y).unsqueeze(-1)
        cells = torch.where(cells < self.noise_mev, torch.zeros_like(cells), cells)
        return cells.view(-1, *self.grid_shape)
