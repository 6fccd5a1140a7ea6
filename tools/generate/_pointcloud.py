r"""A point-cloud shower generator: conditional flow matching with EPiC layers (EPiC-FM / CaloClouds style).

A shower is a set of points (x, y [mm], layer, e [MeV]) and its incident energy E_inc [GeV]. Two parts:

- a *shower flow* (zuko NSF) learns the number of points n and the visible energy E_vis = Σ e given
  log E_inc, as y = (log(n + u), log(E_vis / E_inc)), u ~ U(0, 1) dequantising n;
- a *velocity network* v_θ(x_t, t | E_inc, n) of EPiC layers (Buhmann et al., arXiv:2301.08128:
  per-point MLPs talking to a global vector through mean and sum pooling, so the network is
  permutation-equivariant and works at any n) trained by conditional flow matching (Lipman et al.,
  arXiv:2210.02747; EPiC-FM, Birk et al., arXiv:2310.00049) on straight paths x_t = (1 − t) x₀ + t x₁
  from Gaussian noise x₀ to the standardised points x₁ = (x, y, layer, log e), target x₁ − x₀.

Sampling draws (n, E_vis) from the shower flow, integrates dx/dt = v_θ from t = 0 to 1 with a fixed
number of Euler or midpoint steps, rounds the layer, rescales the point energies to sum to E_vis and bins
the points into the cell grid (points outside the grid are dropped, as deposits outside a calorimeter are).
Lateral cells are centred on the shower axis: cell index ⌊x / cell_size + n_a / 2⌋. Discrete coordinates
are dequantised while training: the layer by U(−½, ½), and cell centres (when the artifact has no
points and they are made from the cells) by U(−½, ½) of a cell. The loss is the flow-matching mean
squared error plus the shower flow's negative log-likelihood [nats per shower].
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from physagent.tools.generate._flows import TabularFlow

__all__ = ["POINTCLOUD_REFERENCE", "PointCloudModel", "bin_points", "pad_points", "shower_points"]

POINTCLOUD_REFERENCE = ("Birk, Buhmann, Ewen, Kasieczka, Shih, EPiC-FM, arXiv:2310.00049; Buhmann et al., EPiC-GAN, "
                        "arXiv:2301.08128; CaloClouds, arXiv:2305.04847; flow matching, arXiv:2210.02747")
_FREQUENCIES = 4


def shower_points(showers: Any) -> tuple[list[np.ndarray], str]:
    """Per shower an (n, 4) array of x_mm, y_mm, layer, e_mev: the stored hits, else the hit cells' centres."""
    import awkward as ak

    if showers.points is not None:
        hits = showers.points
        counts = np.asarray(ak.num(hits.e_mev, axis=1))
        flat = np.stack([np.asarray(ak.flatten(hits[name]), dtype=np.float64)
                         for name in ("x_mm", "y_mm", "layer", "e_mev")], axis=1)
        split = np.split(flat, np.cumsum(counts)[:-1])
        return [p[p[:, 3] > 0] for p in split], "hits"
    geometry = showers.geometry
    found = []
    for cells in showers.cells_mev:
        layer, a, b = np.nonzero(cells)
        x = (a - geometry.n_a / 2 + 0.5) * geometry.cell_size_mm
        y = (b - geometry.n_b / 2 + 0.5) * geometry.cell_size_mm
        found.append(np.stack([x, y, layer, cells[layer, a, b]], axis=1).astype(np.float64))
    return found, "cells"


def pad_points(points: list[np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, size, 4) float32 points padded with zeros, and the (N, size) mask of real points."""
    out = np.zeros((len(points), size, 4), dtype=np.float32)
    mask = np.zeros((len(points), size), dtype=bool)
    for i, p in enumerate(points):
        out[i, :len(p)] = p
        mask[i, :len(p)] = True
    return out, mask


def bin_points(points: list[np.ndarray], geometry: Any) -> np.ndarray:
    """Cells (N, L, A, B) [MeV] from points (x_mm, y_mm, layer, e_mev); points outside the grid are dropped."""
    cells = np.zeros((len(points), *geometry.grid_shape), dtype=np.float64)
    for i, p in enumerate(points):
        a = np.floor(p[:, 0] / geometry.cell_size_mm + geometry.n_a / 2).astype(np.int64)
        b = np.floor(p[:, 1] / geometry.cell_size_mm + geometry.n_b / 2).astype(np.int64)
        layer = p[:, 2].astype(np.int64)
        inside = (a >= 0) & (a < geometry.n_a) & (b >= 0) & (b < geometry.n_b) & (layer >= 0) & \
                 (layer < geometry.n_layers)
        np.add.at(cells[i], (layer[inside], a[inside], b[inside]), p[inside, 3])
    return cells.astype(np.float32)


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                         nn.Linear(hidden, n_out))


class EPiCLayer(nn.Module):
    """One EPiC layer: the global vector reads the mean and (scaled) sum of the points, each point the global."""

    def __init__(self, local: int, glob: int, cond: int) -> None:
        super().__init__()
        self.to_global = _mlp(2 * local + glob + cond, glob, glob)
        self.to_local = _mlp(local + glob + cond, local, local)

    def forward(self, h: torch.Tensor, g: torch.Tensor, c: torch.Tensor, mask: torch.Tensor, n_scale: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        m = mask.unsqueeze(-1)
        total = (h * m).sum(1)
        g = g + self.to_global(torch.cat([total / m.sum(1).clamp_min(1), total / n_scale, g, c], dim=-1))
        size = h.shape[1]
        h = h + self.to_local(torch.cat([h, g.unsqueeze(1).expand(-1, size, -1), c.unsqueeze(1).expand(-1, size, -1)],
                                        dim=-1))
        return h * m, g


class EPiCVelocity(nn.Module):
    """v_θ(x_t, t | c) for padded point sets (B, P, 4), permutation-equivariant in the points."""

    n_scale: torch.Tensor

    def __init__(self, n_cond: int, arch: dict[str, Any]) -> None:
        super().__init__()
        local, glob = arch["local"], arch["global"]
        cond = n_cond + 1 + 2 * _FREQUENCIES
        self.embed_local = nn.Linear(4 + cond, local)
        self.embed_global = nn.Linear(cond, glob)
        self.layers = nn.ModuleList(EPiCLayer(local, glob, cond) for _ in range(arch["layers"]))
        self.out = nn.Linear(local, 4)
        self.register_buffer("n_scale", torch.tensor(1.0))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        k = torch.arange(1, _FREQUENCIES + 1, dtype=x.dtype) * math.pi
        c = torch.cat([cond, t, torch.sin(t * k), torch.cos(t * k)], dim=-1)
        h = self.embed_local(torch.cat([x, c.unsqueeze(1).expand(-1, x.shape[1], -1)], dim=-1)) * mask.unsqueeze(-1)
        g = self.embed_global(c)
        for layer in self.layers:
            h, g = layer(h, g, c, mask, self.n_scale)
        return self.out(h) * mask.unsqueeze(-1)


class PointCloudModel(nn.Module):
    """The shower flow (n, E_vis | E_inc) and the flow-matching velocity network for the points."""

    point_shift: torch.Tensor
    point_scale: torch.Tensor
    jitter: torch.Tensor
    layer_z_mm: torch.Tensor

    def __init__(self, kind: str, n_layers: int, arch: dict[str, Any]) -> None:
        super().__init__()
        self.shower_flow = TabularFlow(kind, 2, 1, arch["shower_flow"])
        self.velocity = EPiCVelocity(2, arch["velocity"])
        self.register_buffer("point_shift", torch.zeros(4))
        self.register_buffer("point_scale", torch.ones(4))
        self.register_buffer("jitter", torch.tensor([0.0, 0.0, 0.5, 0.0]))
        self.register_buffer("layer_z_mm", torch.zeros(n_layers))

    def fit_transforms(self, points: np.ndarray, mask: np.ndarray, energy_gev: np.ndarray, jitter_xy_mm: float,
                       layer_z_mm: np.ndarray) -> None:
        """Standardisation of points and shower variables from the training showers."""
        real = points[mask].astype(np.float64)
        real[:, 3] = np.log(real[:, 3])
        self.point_shift.copy_(torch.from_numpy(real.mean(axis=0)).float())
        self.point_scale.copy_(torch.from_numpy(np.maximum(real.std(axis=0), 1e-6)).float())
        self.jitter[:2] = jitter_xy_mm
        self.layer_z_mm.copy_(torch.from_numpy(layer_z_mm).float())
        counts = mask.sum(1)
        self.velocity.n_scale.fill_(float(counts.mean()))
        shower = np.stack([np.log(counts + 0.5), np.log(points[..., 3].sum(1) / energy_gev)], axis=1)
        self.shower_flow.x_norm.fit(shower, "none")
        self.shower_flow.c_norm.fit(np.log(energy_gev)[:, None], "none")

    def _condition(self, energy_gev: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        log_e = self.shower_flow.c_norm(torch.log(energy_gev).unsqueeze(-1))
        norm = self.shower_flow.x_norm
        log_n = (torch.log(counts.float() + 0.5) - norm.shift[0]) / norm.scale[0]
        return torch.cat([log_e, log_n.unsqueeze(-1)], dim=-1)

    def loss(self, points: torch.Tensor, mask: torch.Tensor, energy_gev: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Flow-matching MSE of the points plus the shower flow's NLL [per shower]."""
        counts = mask.sum(1)
        u = torch.rand(len(counts), generator=generator)
        shower = torch.stack([torch.log(counts + u), torch.log(points[..., 3].sum(1) / energy_gev)], dim=1)
        nll = self.shower_flow.loss(shower, torch.log(energy_gev).unsqueeze(-1))
        jitter = (torch.rand(points.shape, generator=generator) - 0.5) * 2 * self.jitter
        raw = torch.cat([points[..., :3] + jitter[..., :3], torch.log(points[..., 3:].clamp_min(1e-30))], dim=-1)
        x1 = (raw - self.point_shift) / self.point_scale
        x0 = torch.randn(points.shape, generator=generator)
        t = torch.rand((len(points), 1), generator=generator)
        xt = (1 - t.unsqueeze(-1)) * x0 + t.unsqueeze(-1) * x1
        v = self.velocity(xt, t, self._condition(energy_gev, counts), mask.float())
        m = mask.unsqueeze(-1).float()
        return ((v - (x1 - x0)) ** 2 * m).sum() / (4 * m.sum()).clamp_min(1) + nll

    def sample_showers(self, energy_gev: torch.Tensor, z: torch.Tensor, max_points: int
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Numbers of points (B,) in [1, max_points] and visible energies (B,) [MeV] from base noise (B, 2).

        ``max_points`` is the most points of a training shower: beyond it the flow extrapolates.
        """
        y = self.shower_flow.sample(torch.log(energy_gev).unsqueeze(-1), z)
        counts = torch.floor(torch.exp(y[:, 0])).clamp(1, max_points).long()
        return counts, torch.exp(y[:, 1]) * energy_gev

    def sample_points(self, energy_gev: torch.Tensor, counts: torch.Tensor, x0: torch.Tensor, mask: torch.Tensor,
                      steps: int, solver: str) -> torch.Tensor:
        """Points (B, P, 4) as x_mm, y_mm, layer (continuous), e_mev by integrating the velocity from x₀."""
        cond, m = self._condition(energy_gev, counts), mask.float()
        x, dt = x0, 1.0 / steps
        for i in range(steps):
            t = torch.full((len(x), 1), i * dt)
            v = self.velocity(x, t, cond, m)
            if solver == "midpoint":
                v = self.velocity(x + 0.5 * dt * v, t + 0.5 * dt, cond, m)
            x = x + dt * v
        raw = x * self.point_scale + self.point_shift
        return torch.cat([raw[..., :3], torch.exp(raw[..., 3:])], dim=-1)
