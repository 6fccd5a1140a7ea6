r"""Point-cloud generators: conditional flow matching with EPiC layers (EPiC-FM / CaloClouds style).

A point cloud is a set of n points with D coordinates, the last the log of a positive weight, and K
positive set conditions (:class:`PointSpec`):

- showers (:data:`SHOWER_POINTS`): points (x, y [mm], layer, e [MeV]) given the incident energy E_inc [GeV];
- jet constituents (:data:`JET_POINTS`, :mod:`tools.generate._jet_points`): points (Δη, Δφ, pT_rel =
  pT / pT_jet) given the jet's pT [GeV] (EPiC-FM, OmniJet-α, arXiv:2403.05618, on jets).

Two parts:

- a *set flow* (zuko NSF) learns the number of points n and the summed weight W = Σ w (showers: the
  visible energy over E_inc, E_vis / E_inc [MeV/GeV]; jets: Σ pT_rel) given the log conditions, as
  y = (log(n + u), log W), u ~ U(0, 1) dequantising n;
- a *velocity network* v_θ(x_t, t | c, n) of EPiC layers (Buhmann et al., arXiv:2301.08128:
  per-point MLPs talking to a global vector through mean and sum pooling, so the network is
  permutation-equivariant and works at any n) trained by conditional flow matching (Lipman et al.,
  arXiv:2210.02747; EPiC-FM, Birk et al., arXiv:2310.00049) on straight paths x_t = (1 − t) x₀ + t x₁
  from Gaussian noise x₀ to the standardised points x₁ = (coordinates, log w), target x₁ − x₀.

Sampling draws (n, W) from the set flow, integrates dx/dt = v_θ from t = 0 to 1 with a fixed number of
Euler or midpoint steps and rescales the weights to sum to W. Showers then round the layer and bin the
points into the cell grid (points outside the grid are dropped, as deposits outside a calorimeter are).
Lateral cells are centred on the shower axis: cell index ⌊x / cell_size + n_a / 2⌋. Discrete coordinates
are dequantised while training (:attr:`PointCloudModel.jitter`): the layer by U(−½, ½), and cell centres
(when the artifact has no points and they are made from the cells) by U(−½, ½) of a cell. The loss is
the flow-matching mean squared error plus the set flow's negative log-likelihood [nats per set].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from physagent.tools.generate._flows import TabularFlow

__all__ = ["JET_POINTS", "POINTCLOUD_REFERENCE", "SHOWER_POINTS", "PointCloudModel", "PointSpec", "bin_points",
           "pad_points", "shower_points"]

POINTCLOUD_REFERENCE = ("Birk, Buhmann, Ewen, Kasieczka, Shih, EPiC-FM, arXiv:2310.00049; Buhmann et al., EPiC-GAN, "
                        "arXiv:2301.08128; CaloClouds, arXiv:2305.04847; flow matching, arXiv:2210.02747")
_FREQUENCIES = 4


@dataclass(frozen=True)
class PointSpec:
    """What a point cloud holds: coordinate names (the last a positive weight, learnt as its log) and the
    set conditions (positive, learnt as their logs). ``total_per_condition``: the set flow learns Σ w over
    the first condition (showers: MeV per GeV of E_inc) rather than Σ w itself (jets: Σ pT_rel)."""

    coordinates: tuple[str, ...]
    conditions: tuple[str, ...]
    total_per_condition: bool

    @property
    def dim(self) -> int:
        return len(self.coordinates)


SHOWER_POINTS = PointSpec(("x_mm", "y_mm", "layer", "e_mev"), ("incident_energy_gev",), True)
JET_POINTS = PointSpec(("deta", "dphi", "pt_rel"), ("jets.pt[0]",), False)


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


def pad_points(points: list[np.ndarray], size: int, dim: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(N, size, dim) float32 points padded with zeros, and the (N, size) mask of real points."""
    out = np.zeros((len(points), size, dim), dtype=np.float32)
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
    """v_θ(x_t, t | c) for padded point sets (B, P, dim), permutation-equivariant in the points."""

    n_scale: torch.Tensor

    def __init__(self, n_cond: int, arch: dict[str, Any], dim: int = 4) -> None:
        super().__init__()
        local, glob = arch["local"], arch["global"]
        cond = n_cond + 1 + 2 * _FREQUENCIES
        self.embed_local = nn.Linear(dim + cond, local)
        self.embed_global = nn.Linear(cond, glob)
        self.layers = nn.ModuleList(EPiCLayer(local, glob, cond) for _ in range(arch["layers"]))
        self.out = nn.Linear(local, dim)
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
    """The set flow (n, W | c) and the flow-matching velocity network for the points of a :class:`PointSpec`.

    Conditions ``cond`` are (B, K) in their physical units (GeV); points (B, P, D) with the weight last.
    """

    point_shift: torch.Tensor
    point_scale: torch.Tensor
    jitter: torch.Tensor
    layer_z_mm: torch.Tensor

    def __init__(self, kind: str, arch: dict[str, Any], spec: PointSpec = SHOWER_POINTS, n_layers: int = 0) -> None:
        super().__init__()
        self.spec = spec
        k, dim = len(spec.conditions), spec.dim
        self.set_flow = TabularFlow(kind, 2, k, arch["set_flow"] if "set_flow" in arch else arch["shower_flow"])
        self.velocity = EPiCVelocity(k + 1, arch["velocity"], dim)
        self.register_buffer("point_shift", torch.zeros(dim))
        self.register_buffer("point_scale", torch.ones(dim))
        self.register_buffer("jitter", torch.zeros(dim))
        self.register_buffer("layer_z_mm", torch.zeros(n_layers))  # showers only: depth of each layer

    def fit_transforms(self, points: np.ndarray, mask: np.ndarray, cond: np.ndarray, jitter: list[float]) -> None:
        """Standardisation of points and set variables from the training sets; ``jitter``: dequantisation
        half-widths per coordinate (0 for continuous ones)."""
        real = points[mask].astype(np.float64)
        real[:, -1] = np.log(real[:, -1])
        self.point_shift.copy_(torch.from_numpy(real.mean(axis=0)).float())
        self.point_scale.copy_(torch.from_numpy(np.maximum(real.std(axis=0), 1e-6)).float())
        self.jitter.copy_(torch.tensor(jitter, dtype=torch.float32))
        counts = mask.sum(1)
        self.velocity.n_scale.fill_(float(counts.mean()))
        totals = points[..., -1].sum(1) / (cond[:, 0] if self.spec.total_per_condition else 1.0)
        self.set_flow.x_norm.fit(np.stack([np.log(counts + 0.5), np.log(totals)], axis=1), "none")
        self.set_flow.c_norm.fit(np.log(cond), "none")

    def _condition(self, cond: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        log_c = self.set_flow.c_norm(torch.log(cond))
        norm = self.set_flow.x_norm
        log_n = (torch.log(counts.float() + 0.5) - norm.shift[0]) / norm.scale[0]
        return torch.cat([log_c, log_n.unsqueeze(-1)], dim=-1)

    def _per_condition(self, cond: torch.Tensor) -> torch.Tensor:
        return cond[:, 0] if self.spec.total_per_condition else torch.ones_like(cond[:, 0])

    def loss(self, points: torch.Tensor, mask: torch.Tensor, cond: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Flow-matching MSE of the points plus the set flow's NLL [per set]."""
        counts = mask.sum(1)
        u = torch.rand(len(counts), generator=generator)
        totals = points[..., -1].sum(1) / self._per_condition(cond)
        nll = self.set_flow.loss(torch.stack([torch.log(counts + u), torch.log(totals)], dim=1), torch.log(cond))
        jitter = (torch.rand(points.shape, generator=generator) - 0.5) * 2 * self.jitter
        raw = torch.cat([points[..., :-1] + jitter[..., :-1], torch.log(points[..., -1:].clamp_min(1e-30))], dim=-1)
        x1 = (raw - self.point_shift) / self.point_scale
        x0 = torch.randn(points.shape, generator=generator)
        t = torch.rand((len(points), 1), generator=generator)
        xt = (1 - t.unsqueeze(-1)) * x0 + t.unsqueeze(-1) * x1
        v = self.velocity(xt, t, self._condition(cond, counts), mask.float())
        m = mask.unsqueeze(-1).float()
        return ((v - (x1 - x0)) ** 2 * m).sum() / (self.spec.dim * m.sum()).clamp_min(1) + nll

    def sample_sets(self, cond: torch.Tensor, z: torch.Tensor, max_points: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Numbers of points (B,) in [1, max_points] and summed weights W (B,) (showers: E_vis [MeV]) from base
        noise (B, 2). ``max_points`` is the most points of a training set: beyond it the flow extrapolates."""
        y = self.set_flow.sample(torch.log(cond), z)
        counts = torch.floor(torch.exp(y[:, 0])).clamp(1, max_points).long()
        return counts, torch.exp(y[:, 1]) * self._per_condition(cond)

    def velocity_step(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor
                      ) -> torch.Tensor:
        """v_θ(x_t, t) for standardised points, raw conditions (B, K) and a float mask (B, P): one ODE step's
        network call, with n read from the mask (the ONNX-exported function)."""
        return self.velocity(x, t, self._condition(cond, mask.sum(1)), mask)

    def sample_points(self, cond: torch.Tensor, counts: torch.Tensor, x0: torch.Tensor, mask: torch.Tensor,
                      steps: int, solver: str) -> torch.Tensor:
        """Points (B, P, D) in physical units (weight last) by integrating the velocity from x₀."""
        c, m = self._condition(cond, counts), mask.float()
        x, dt = x0, 1.0 / steps
        for i in range(steps):
            t = torch.full((len(x), 1), i * dt)
            v = self.velocity(x, t, c, m)
            if solver == "midpoint":
                v = self.velocity(x + 0.5 * dt * v, t + 0.5 * dt, c, m)
            x = x + dt * v
        raw = x * self.point_scale + self.point_shift
        return torch.cat([raw[..., :-1], torch.exp(raw[..., -1:])], dim=-1)

    def _load_from_state_dict(self, state: dict[str, Any], prefix: str, *args: Any) -> None:
        # generators trained before jets were added call the set flow shower_flow
        for key in [k for k in state if k.startswith(f"{prefix}shower_flow.")]:
            state[key.replace(f"{prefix}shower_flow.", f"{prefix}set_flow.", 1)] = state.pop(key)
        super()._load_from_state_dict(state, prefix, *args)
