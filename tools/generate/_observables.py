r"""Shower observables: the high-level quantities calorimeter surrogates are validated on.

As in the CaloChallenge evaluation (arXiv:2410.21611) and CaloFlow (arXiv:2106.05285), a shower of
cell energies :math:`E_{l,a,b}` [MeV] (layer :math:`l`, lateral indices :math:`a, b`) is summarised by

- ``energy_sum_mev``: deposited energy :math:`E_\mathrm{dep} = \sum E_{l,a,b}` [MeV];
- ``energy_ratio``: :math:`E_\mathrm{dep} / E_\mathrm{inc}` (dimensionless; the sampling fraction of a
  sampling calorimeter, ~1 % for an ILD-like Si-W ECAL);
- ``cog_z_mm``, ``width_z_mm``: energy-weighted mean and standard deviation of the depth
  :math:`z_l = (l + ½)\,t` with :math:`t` the layer thickness [mm] (longitudinal centre of gravity, width);
- ``cog_x_mm``, ``cog_y_mm``, ``width_x_mm``, ``width_y_mm``: energy-weighted mean and standard
  deviation of the cell centres in x and y [mm] (lateral centres of gravity and widths);
- ``n_hits``: number of cells with :math:`E > E_\mathrm{thr}` (dimensionless count);
- ``layer_energy_mev_00`` … ``layer_energy_mev_{L-1}``: energy per layer [MeV], one feature per layer;

and, pooled over all showers rather than one value per shower, the **cell-energy spectrum**
(:func:`cell_energy_spectrum`: every cell energy above threshold, in MeV).

Cell centres: in a ``cartesian`` geometry :math:`x_a = (a - (n_a - 1)/2)\,s`, :math:`y_b = (b - (n_b - 1)/2)\,s`
with :math:`s` the cell size [mm], centred on the shower axis. In a ``cylindrical`` geometry (CaloChallenge
datasets 2 and 3: radial bin :math:`a`, angular bin :math:`b`) :math:`r_a = (a + ½)\,s` and
:math:`\alpha_b = 2\pi (b + ½)/n_b`, :math:`x = r\cos\alpha`, :math:`y = r\sin\alpha`; the sizes there are labels,
so these lateral observables are in nominal units. A shower without any deposit has its centres of
gravity and widths set to 0 (CaloChallenge convention), which shows up as a spike at 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from physagent.tools.simulate._calo import CaloGeometry, Showers

__all__ = ["SUMMARY_OBSERVABLES", "cell_energy_spectrum", "layer_name", "observable_unit", "shower_observables"]

#: The per-shower observables other than the per-layer energies, in the order they are returned.
SUMMARY_OBSERVABLES = ("energy_sum_mev", "energy_ratio", "cog_z_mm", "width_z_mm", "cog_x_mm", "cog_y_mm",
                       "width_x_mm", "width_y_mm", "n_hits")
_MEV_PER_GEV = 1000.0


def layer_name(layer: int) -> str:
    """The observable name of one layer's energy: ``layer_energy_mev_07`` for layer 7 (0-based)."""
    return f"layer_energy_mev_{layer:02d}"


def observable_unit(name: str) -> str:
    """'MeV', 'mm' or '' (dimensionless) for an observable name, from its suffix.

    >>> observable_unit("cog_z_mm"), observable_unit("layer_energy_mev_03"), observable_unit("n_hits")
    ('mm', 'MeV', '')
    """
    if name.endswith("_mm"):
        return "mm"
    return "MeV" if "_mev" in name else ""


def shower_observables(showers: Showers, hit_threshold_mev: float = 0.0) -> dict[str, np.ndarray]:
    """The per-shower observables of the module docstring, each an (N,) float64 array.

    Args:
        showers: N showers of one geometry (cells in MeV, incident energies in GeV).
        hit_threshold_mev: a cell is a hit when its energy exceeds this [MeV]; 0 counts every cell
            with a deposit.

    Returns:
        ``{name: values}`` in the order of :data:`SUMMARY_OBSERVABLES`, then one ``layer_energy_mev_LL``
        per layer.

    >>> from physagent.tools.simulate._calo import CaloGeometry, Showers
    >>> cells = np.zeros((1, 2, 3, 3), dtype=np.float32)
    >>> cells[0, 0, 1, 1], cells[0, 1, 1, 2] = 30.0, 10.0
    >>> found = shower_observables(Showers([10.0], cells, CaloGeometry(2, 3, 3, cell_size_mm=5.0,
    ...                                                                   layer_thickness_mm=4.0)))
    >>> float(found["energy_sum_mev"][0]), float(found["cog_z_mm"][0]), float(found["cog_y_mm"][0])
    (40.0, 3.0, 1.25)
    """
    cells = showers.cells_mev  # float32; sums accumulate in float64 without a float64 copy of every cell
    geometry = showers.geometry
    layers = cells.sum(axis=(2, 3), dtype=np.float64)  # (N, L)
    lateral = cells.sum(axis=1, dtype=np.float64)  # (N, A, B)
    total = layers.sum(axis=1)
    depth = (np.arange(geometry.n_layers) + 0.5) * geometry.layer_thickness_mm
    x_map, y_map = _cell_centres(geometry)
    found = {
        "energy_sum_mev": total,
        "energy_ratio": total / (showers.incident_energy_gev * _MEV_PER_GEV),
    }
    found["cog_z_mm"], found["width_z_mm"] = _moments(layers, depth, total)
    flat, flat_total = lateral.reshape(len(total), -1), total
    found["cog_x_mm"], found["width_x_mm"] = _moments(flat, x_map.reshape(-1), flat_total)
    found["cog_y_mm"], found["width_y_mm"] = _moments(flat, y_map.reshape(-1), flat_total)
    found["n_hits"] = np.count_nonzero(cells > hit_threshold_mev, axis=(1, 2, 3)).astype(np.float64)
    ordered = {name: found[name] for name in SUMMARY_OBSERVABLES}
    return ordered | {layer_name(layer): layers[:, layer] for layer in range(geometry.n_layers)}


def cell_energy_spectrum(showers: Showers, hit_threshold_mev: float = 0.0) -> np.ndarray:
    """Every cell energy above ``hit_threshold_mev`` (and above 0) of every shower, in MeV, pooled (1-D)."""
    cells = np.asarray(showers.cells_mev).reshape(-1)
    return cells[cells > max(hit_threshold_mev, 0.0)].astype(np.float64)


def _cell_centres(geometry: CaloGeometry) -> tuple[np.ndarray, np.ndarray]:
    """x and y of every (a, b) cell centre in mm, each of shape (n_a, n_b)."""
    a, b = np.arange(geometry.n_a, dtype=np.float64), np.arange(geometry.n_b, dtype=np.float64)
    size = geometry.cell_size_mm
    if geometry.kind == "cylindrical":
        radius = (a[:, None] + 0.5) * size
        angle = 2.0 * np.pi * (b[None, :] + 0.5) / geometry.n_b
        return radius * np.cos(angle), radius * np.sin(angle)
    x = (a - (geometry.n_a - 1) / 2.0) * size
    y = (b - (geometry.n_b - 1) / 2.0) * size
    return np.broadcast_to(x[:, None], (geometry.n_a, geometry.n_b)), np.broadcast_to(y[None, :],
                                                                                      (geometry.n_a, geometry.n_b))


def _moments(weights: np.ndarray, positions: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Energy-weighted mean and standard deviation of ``positions`` per shower (0 and 0 without energy)."""
    safe = np.where(total > 0, total, 1.0)
    mean = weights @ positions / safe
    variance = weights @ positions**2 / safe - mean**2
    empty = total <= 0
    return np.where(empty, 0.0, mean), np.where(empty, 0.0, np.sqrt(np.clip(variance, 0.0, None)))
