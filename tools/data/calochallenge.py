r"""``read_calochallenge``: a CaloChallenge HDF5 file into a ``showers`` artifact.

A CaloChallenge file (Fast Calorimeter Simulation Challenge 2022, arXiv:2410.21611) holds two datasets:
``incident_energies`` (N, 1) and ``showers`` (N, n_voxels), both in MeV, voxels flattened layer by layer.
The file does not say how the voxels of a layer are arranged, so the caller states the geometry:
``n_layers`` × ``n_a`` × ``n_b`` with b running fastest. For the challenge's datasets 2 and 3 (cylindrical,
order layer, angle, radius) that is 45 × 16 × 9 = 6,480 and 45 × 50 × 18 = 40,500 voxels; dataset 1 has
a different number of bins per layer and does not fit a regular grid. The ``showers.h5`` that
``simulate_showers`` writes is itself a valid CaloChallenge file and carries its geometry as an
attribute, so it reads back with no geometry arguments.

The artifact keeps the incident energy in GeV and the cells in MeV (:mod:`tools.simulate._calo`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from physagent.tools._artifacts import Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError, one_line
from physagent.tools._registry import ToolResult, tool
from physagent.tools._workspace import PendingArtifact
from physagent.tools.simulate import _calo
from physagent.tools.simulate._calo import CaloGeometry, Showers, write_showers

__all__ = ["CaloChallengeFile", "read_calochallenge"]

_TOOL = "read_calochallenge"
_GEOMETRY_PARAMS = ("n_layers", "n_a", "n_b")


class CaloChallengeFile(ToolResult):
    """Showers read from a CaloChallenge file, and what is in them."""

    showers: Artifact = Field(description="Showers artifact (kind 'showers') with the file's cells in MeV.")
    n_showers: int = Field(description="Number of showers in the file.")
    n_layers: int = Field(description="Layers of the geometry used.")
    n_a: int = Field(description="Voxels per layer along the first index (x cells, or angular bins).")
    n_b: int = Field(description="Voxels per layer along the second, fastest index (y cells, or radial bins).")
    kind: str = Field(description="Geometry kind: cartesian or cylindrical.")
    geometry_from_file: bool = Field(description="Whether the geometry came from the file's own attribute.")
    particle: str = Field(description="Incident particle recorded for the showers.")
    min_incident_energy_gev: float = Field(description="Lowest incident energy, in GeV.")
    max_incident_energy_gev: float = Field(description="Highest incident energy, in GeV.")
    mean_visible_energy_mev: float = Field(description="Mean summed voxel energy per shower, in MeV.")
    sampling_fraction: float = Field(description="Mean summed voxel energy over mean incident energy.")
    mean_hits_per_shower: float = Field(description="Mean number of voxels with energy above zero per shower.")


@tool(category="data", cacheable=False)  # the file may change between reads
def read_calochallenge(
    path: Annotated[str, Field(description="Path of a CaloChallenge .h5/.hdf5 file in an allowed folder "
                               "(uploads, the current directory in the CLI, PHYSAGENT_DATA_DIRS).")],
    n_layers: Annotated[int | None, Field(ge=1, le=1000, description="Layers of the file's geometry, e.g. 45 for "
                                          "CaloChallenge datasets 2 and 3 (None: from the file's attribute).")]
    = None,
    n_a: Annotated[int | None, Field(ge=1, le=1000, description="Voxels per layer along the first index: x cells, "
                                     "or angular bins (16 in dataset 2, 50 in dataset 3).")] = None,
    n_b: Annotated[int | None, Field(ge=1, le=1000, description="Voxels per layer along the fastest index: y "
                                     "cells, or radial bins (9 in dataset 2, 18 in dataset 3).")] = None,
    kind: Annotated[Literal["cartesian", "cylindrical"], Field(
        description="'cartesian' (square cells, point clouds defined) or 'cylindrical' (CaloChallenge r–α bins).")]
    = "cartesian",
    cell_size_mm: Annotated[float, Field(gt=0, le=1000, description="Cell size in mm (a label for cylindrical "
                                         "bins).")] = 5.0,
    particle: Annotated[Literal["photon", "electron", "positron", "pion"] | None, Field(
        description="Incident particle of the showers (None: the file's attribute, else 'photon').")] = None,
    *,
    ctx: ToolContext,
) -> CaloChallengeFile:
    """Read a CaloChallenge HDF5 file of calorimeter showers into a showers artifact.

    Give the voxel layout (n_layers × n_a × n_b) unless the file was written by physagent; energies
    are read in MeV as the CaloChallenge defines them.
    """
    file_path = ctx.input_file("path", path)
    given = {name: value for name, value in zip(_GEOMETRY_PARAMS, (n_layers, n_a, n_b), strict=True)
             if value is not None}
    if given and len(given) < 3:
        missing = next(name for name in _GEOMETRY_PARAMS if name not in given)
        raise ToolInputError.for_param(_TOOL, missing, None, f"is needed with {', '.join(given)}: state the whole "
                                       "voxel layout n_layers × n_a × n_b, or none of it for a physagent file.")
    geometry = CaloGeometry(n_layers, n_a, n_b, cell_size_mm, kind=kind) if given else None  # type: ignore[arg-type]
    file_particle = _file_particle(path, file_path)
    showers = _read(path, file_path, geometry, particle or file_particle or "photon")
    pending = ctx.new_artifact("showers")
    write_showers(showers, pending.directory)
    return _describe(pending, showers, file_path, geometry is None)


def _file_particle(path: str, file_path: Path) -> str | None:
    import h5py

    try:
        with h5py.File(file_path, "r") as handle:
            value = handle.attrs.get("particle")
    except OSError as exc:  # h5py reports a file that is not HDF5 as OSError
        raise ToolInputError.for_param(_TOOL, "path", path, f"is not a readable HDF5 file ({one_line(exc)}). "
                                       "Pass a CaloChallenge .h5/.hdf5 file.") from None
    return None if value is None else str(value)


_ADVICE = {
    "NaN": " Drop or repair those showers (e.g. numpy.nan_to_num) and write the file again.",
    "negative": " Clip negative deposits (noise) to 0 and write the file again.",
    "no showers": " Pass a file with at least one shower.",
}


def _read(path: str, file_path: Path, geometry: CaloGeometry | None, particle: str) -> Showers:
    try:
        return _calo.read_calochallenge(file_path, geometry, particle)
    except ValueError as exc:
        problem = str(exc)
    if geometry is None and "no geometry" in problem:
        raise ToolInputError.for_param(_TOOL, "n_layers", None, f"must be given: {file_path.name} carries no "
                                       f"geometry attribute ({_voxels(file_path)} voxels per shower). State the "
                                       "layout as n_layers, n_a and n_b, e.g. 45, 16, 9 for CaloChallenge dataset 2.")
    if geometry is not None and "voxels per shower" in problem:
        raise ToolInputError.for_param(_TOOL, "n_layers", geometry.n_layers, f"does not fit the file, which {problem}.")
    advice = next((text for key, text in _ADVICE.items() if key in problem), "")
    raise ToolInputError.for_param(_TOOL, "path", path, f"{problem}.{advice}")


def _voxels(file_path: Path) -> str:
    import h5py

    with h5py.File(file_path, "r") as handle:
        shape = handle["showers"].shape
    return f"{shape[1]:,}" if len(shape) == 2 else f"shape {shape}"


def _describe(pending: PendingArtifact, showers: Showers, source: Path, from_file: bool) -> CaloChallengeFile:
    geometry = showers.geometry
    n = len(showers)
    visible = showers.cells_mev.sum(axis=(1, 2, 3), dtype=np.float64)
    energies = showers.incident_energy_gev
    hits = np.count_nonzero(showers.cells_mev.reshape(n, -1), axis=1)
    layout = f"{geometry.n_layers}×{geometry.n_a}×{geometry.n_b} {geometry.kind}"
    what = f"{energies[0]:.3g}" if np.ptp(energies) == 0 else f"{energies.min():.3g}–{energies.max():.3g}"
    summary = (f"{n:,} {showers.particle} showers of {what} GeV from {source.name} ({layout} voxels): "
               f"{visible.mean():.1f} MeV per shower")
    metadata = {"source_path": str(source), "n_showers": n, "particle": showers.particle,
                "geometry_from_file": from_file,
                "geometry": {"n_layers": geometry.n_layers, "n_a": geometry.n_a, "n_b": geometry.n_b,
                             "cell_size_mm": geometry.cell_size_mm, "kind": geometry.kind}}
    artifact = pending.finish("showers.h5", summary, metadata)
    return CaloChallengeFile(
        showers=artifact, n_showers=n, n_layers=geometry.n_layers, n_a=geometry.n_a, n_b=geometry.n_b,
        kind=geometry.kind, geometry_from_file=from_file, particle=showers.particle,
        min_incident_energy_gev=float(energies.min()), max_incident_energy_gev=float(energies.max()),
        mean_visible_energy_mev=float(visible.mean()),
        sampling_fraction=float(visible.mean() / (energies.mean() * 1e3)),
        mean_hits_per_shower=float(hits.mean()),
    )
