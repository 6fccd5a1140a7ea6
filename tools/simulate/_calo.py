r"""The ``showers`` artifact: calorimeter showers as cell grids (CaloChallenge HDF5) and point clouds.

Files of a ``showers`` artifact:

- ``showers.h5`` (primary) in the CaloChallenge format: ``incident_energies`` (N, 1) and ``showers``
  (N, n_voxels), both in **MeV** as the CaloChallenge defines them; voxels are ordered layer-major
  (layer, then the two lateral indices). Our geometry is stored as attributes of the root group
  (``geometry`` as JSON) so the file reads back without guessing; a user's own CaloChallenge file has
  no such attributes and is read with a geometry the user states.
- ``points.parquet`` (optional): per shower ``hits: var * {x_mm, y_mm, z_mm, layer, e_mev}`` — the
  energy deposits as a point cloud (CaloClouds style), plus ``incident_energy_gev`` and ``theta_deg``.

In memory, :class:`Showers` holds energies in GeV for the incident particle and MeV for deposits
(the natural scales: a 50 GeV photon leaves ~1 % of its energy in the silicon, in MeV-sized hits).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CALOCHALLENGE_KEYS", "CaloGeometry", "Showers", "read_calochallenge", "read_showers", "write_showers"]

CALOCHALLENGE_KEYS = ("incident_energies", "showers")
MEV_PER_GEV = 1000.0


@dataclass(frozen=True)
class CaloGeometry:
    """A layered calorimeter read out in cells: ``n_layers`` × ``n_a`` × ``n_b`` voxels.

    ``cartesian``: a, b are x, y cells of ``cell_size_mm`` centred on the shower axis (ILD-like ECAL).
    ``cylindrical``: a, b are the angular and radial bins in the CaloChallenge voxel order (layer, angle,
    radius: dataset 2 is 45 × 16 × 9); the sizes are then only labels, and point clouds are not defined.
    """

    n_layers: int = 30
    n_a: int = 24
    n_b: int = 24
    cell_size_mm: float = 5.0
    layer_thickness_mm: float = 3.4  # one W absorber (2.1/4.2 mm) + Si sensor + readout, ILD-like average
    kind: str = "cartesian"

    @property
    def n_voxels(self) -> int:
        return self.n_layers * self.n_a * self.n_b

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        return (self.n_layers, self.n_a, self.n_b)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CaloGeometry:
        return cls(**json.loads(text))


@dataclass
class Showers:
    """N showers: conditions, cell energies (MeV) and optionally the deposits as points."""

    incident_energy_gev: np.ndarray  # (N,)
    cells_mev: np.ndarray  # (N, n_layers, n_a, n_b), float32
    geometry: CaloGeometry
    theta_deg: np.ndarray | None = None  # (N,) incidence angle to the layer normal
    particle: str = "photon"
    points: Any = None  # awkward array (N,) of var * {x_mm, y_mm, z_mm, layer, e_mev}, or None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.incident_energy_gev = np.asarray(self.incident_energy_gev, dtype=np.float64).reshape(-1)
        self.cells_mev = np.asarray(self.cells_mev, dtype=np.float32)
        n = len(self.incident_energy_gev)
        if self.cells_mev.shape != (n, *self.geometry.grid_shape):
            raise ValueError(f"cells have shape {self.cells_mev.shape}, expected {(n, *self.geometry.grid_shape)} "
                             f"for {n} showers in a {self.geometry.grid_shape} geometry")
        if self.theta_deg is None:
            self.theta_deg = np.zeros(n)

    def __len__(self) -> int:
        return len(self.incident_energy_gev)


def write_showers(showers: Showers, directory: Path) -> list[str]:
    """Write ``showers.h5`` (and ``points.parquet`` when there are points); returns the file names."""
    import h5py

    names = ["showers.h5"]
    n = len(showers)
    with h5py.File(directory / "showers.h5", "w", track_order=True) as handle:
        handle.create_dataset("incident_energies", data=(showers.incident_energy_gev * MEV_PER_GEV).reshape(n, 1))
        flat = showers.cells_mev.reshape(n, showers.geometry.n_voxels)
        handle.create_dataset("showers", data=flat, compression="gzip", compression_opts=4, shuffle=True,
                              chunks=(min(max(n, 1), 256), showers.geometry.n_voxels))
        handle.create_dataset("theta_deg", data=np.asarray(showers.theta_deg, dtype=np.float64))
        handle.attrs["geometry"] = showers.geometry.to_json()
        handle.attrs["particle"] = showers.particle
        handle.attrs["physagent"] = json.dumps(showers.extra, sort_keys=True)
    if showers.points is not None:
        import awkward as ak

        from physagent.tools._io import write_parquet

        table = ak.zip({"incident_energy_gev": showers.incident_energy_gev, "theta_deg": showers.theta_deg,
                        "hits": showers.points}, depth_limit=1)
        write_parquet(table, directory / "points.parquet")
        names.append("points.parquet")
    return names


def read_showers(path: Path, *, with_points: bool = True) -> Showers:
    """Read a ``showers`` artifact written by :func:`write_showers` (``path``: its ``showers.h5``)."""
    import h5py

    with h5py.File(path, "r") as handle:
        geometry = CaloGeometry.from_json(handle.attrs["geometry"])
        energies = np.asarray(handle["incident_energies"][:], dtype=np.float64).reshape(-1) / MEV_PER_GEV
        cells = np.asarray(handle["showers"][:], dtype=np.float32).reshape(len(energies), *geometry.grid_shape)
        theta = np.asarray(handle["theta_deg"][:]) if "theta_deg" in handle else None
        particle = str(handle.attrs.get("particle", "photon"))
        extra = json.loads(handle.attrs.get("physagent", "{}"))
    points = None
    points_path = Path(path).with_name("points.parquet")
    if with_points and points_path.exists():
        from physagent.tools._io import read_parquet

        points = read_parquet(points_path).hits
    return Showers(energies, cells, geometry, theta, particle, points, extra)


def read_calochallenge(path: Path, geometry: CaloGeometry | None, particle: str = "photon") -> Showers:
    """Read a CaloChallenge HDF5 file (energies in MeV); ``geometry`` states its voxel layout.

    Raises:
        ValueError: a missing key (naming the keys found), shapes that do not fit the geometry,
            no showers, or non-finite / negative values.
    """
    import h5py

    with h5py.File(path, "r") as handle:
        missing = [key for key in CALOCHALLENGE_KEYS if key not in handle]
        if missing:
            raise ValueError(f"is not a CaloChallenge file: it lacks {', '.join(missing)} (found: "
                             f"{', '.join(sorted(handle.keys())) or 'nothing'}); a CaloChallenge file holds "
                             "'incident_energies' (N, 1) and 'showers' (N, n_voxels), both in MeV")
        if geometry is None and "geometry" in handle.attrs:
            geometry = CaloGeometry.from_json(handle.attrs["geometry"])
        energies = np.asarray(handle["incident_energies"][:], dtype=np.float64).reshape(-1) / MEV_PER_GEV
        flat = np.asarray(handle["showers"][:], dtype=np.float32)
    if geometry is None:
        raise ValueError("has no geometry attributes: state the number of layers and the voxels per layer")
    _check_calochallenge(energies, flat, geometry)
    cells = flat.reshape(len(energies), *geometry.grid_shape)
    return Showers(energies, cells, geometry, None, particle)


def _check_calochallenge(energies: np.ndarray, flat: np.ndarray, geometry: CaloGeometry) -> None:
    if len(energies) == 0:
        raise ValueError("holds no showers")
    if flat.ndim != 2 or flat.shape[0] != len(energies):
        raise ValueError(f"has 'showers' of shape {flat.shape} for {len(energies)} incident energies; "
                         "expected (N, n_voxels) with one row per energy")
    if flat.shape[1] != geometry.n_voxels:
        raise ValueError(f"has {flat.shape[1]} voxels per shower, but {geometry.n_layers} layers × "
                         f"{geometry.n_a} × {geometry.n_b} = {geometry.n_voxels}; state the file's geometry")
    if not (np.all(np.isfinite(energies)) and np.all(np.isfinite(flat))):
        raise ValueError("contains NaN or infinite values")
    if np.any(energies <= 0) or np.any(flat < 0):
        raise ValueError("contains negative energies (incident energies must be > 0, deposits ≥ 0)")
