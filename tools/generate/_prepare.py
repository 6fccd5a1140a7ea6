r"""Data preparation for ``train_generator``: rows, showers, point clouds and jets into a model with fitted
transforms and its training and validation tensors.

Everything that can be wrong with the inputs fails here, before training: too few rows, a feature
without values, a grid too large for the model, more deposits than ``max_points``. Each ``prepare_*``
returns a :class:`Prepared`: the model (transforms fitted on the training split only), the split tensors,
what is generated and given, the rows left out and the model-card entries of the data.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from physagent.tools._artifacts import Artifact
from physagent.tools._errors import ToolInputError
from physagent.tools.generate._architectures import DEFAULT_ODE_STEPS, build_model
from physagent.tools.generate._calofast import MAX_FAST_VOXELS
from physagent.tools.generate._caloflow import MAX_VOXELS
from physagent.tools.generate._calohits import MAX_HITS_VOXELS
from physagent.tools.generate._fitting import Settings, split_indices
from physagent.tools.generate._generator_io import (
    check_showers,
    column_names,
    default_features,
    read_columns,
    read_rows,
)
from physagent.tools.generate._jet_points import ETA_QUANTILES, leading_constituents
from physagent.tools.generate._pointcloud import JET_POINTS, pad_points, shower_points

__all__ = ["MIN_ROWS", "Prepared", "prepare_flow", "prepare_grid", "prepare_jet_pointcloud", "prepare_pointcloud"]

_TOOL = "train_generator"
MIN_ROWS = 10
_GRID_LIMITS = {"caloflow": MAX_VOXELS, "calofast": MAX_FAST_VOXELS, "calohits": MAX_HITS_VOXELS}


@dataclass
class Prepared:
    """Everything to train one generator: the model with fitted transforms, tensors, and its card entries."""

    model: Any
    train: tuple[Any, ...]
    validation: tuple[Any, ...]
    features: list[str]
    conditions: list[str]
    n_dropped: int
    card: dict[str, Any] = field(default_factory=dict)


def prepare_flow(data: Artifact, features: list[str], conditions: list[str], kind: str, log_mode: str,
                  arch: dict[str, Any], settings: Settings) -> Prepared:
    import torch

    array = read_rows(data.path, [*features, *conditions])
    if not features:
        if data.kind != "table":
            raise ToolInputError.for_param(
                _TOOL, "features", features, f"is empty, and {data.id} is a {data.kind} artifact without plain "
                "columns. Name one number per row each, e.g. ['jets.mass[0]', 'jets.tau21[0]'].")
        features = [name for name in default_features(array) if name not in conditions]
    overlap = sorted(set(features) & set(conditions))
    if overlap or not features:
        problem = (f"names {overlap} as both feature and condition" if overlap else
                   f"leaves no numeric column of {data.id} to generate")
        raise ToolInputError.for_param(_TOOL, "features", features, f"{problem}. Each quantity is generated or "
                                       "given, not both.")
    x = read_columns(_TOOL, "features", data.id, array, [*features, *conditions])
    check_rows(data, len(x.values), x.n_source - len(x.values))
    values, given = x.values[:, :len(features)], x.values[:, len(features):]
    train, val = split_indices(len(values), settings.validation_fraction, settings.seed)
    flow = build_model({"model": "flow", "flow_kind": kind, "architecture": arch, "features": features,
                        "conditions": conditions})
    flow.x_norm.fit(values[train], log_mode)
    flow.c_norm.fit(given[train], log_mode)
    tensors = (torch.from_numpy(values).float(), torch.from_numpy(given).float())
    card = {"columns": column_names(features), "condition_columns": column_names(conditions),
            "transform": {"log_transform": log_mode, "features": flow.x_norm.describe(features),
                          "conditions": flow.c_norm.describe(conditions)},
            "ranges": {"features": _ranges(features, values), "conditions": _ranges(conditions, given)}}
    return Prepared(flow, tuple(t[train] for t in tensors), tuple(t[val] for t in tensors), features, conditions,
                     x.n_source - len(values), card)


def _ranges(names: list[str], values: np.ndarray) -> dict[str, list[float]]:
    return {name: [float(values[:, i].min()), float(values[:, i].max())] for i, name in enumerate(names)}


def check_rows(data: Artifact, kept: int, dropped: int) -> None:
    if kept < MIN_ROWS:
        why = f" ({dropped} left out where a feature had no value)" if dropped else ""
        raise ToolInputError.for_param(
            _TOOL, "source", data.id, f"has {kept} usable rows{why}; a generator needs at least {MIN_ROWS} (and "
            "thousands to be useful). Use more data or features every row has.")


def _read_showers(data: Artifact) -> Any:
    from physagent.tools.simulate._calo import read_showers

    showers = read_showers(data.path)
    check_showers(_TOOL, "source", data.id, showers)
    check_rows(data, len(showers), 0)
    return showers


def _showers_card(showers: Any, energies: np.ndarray) -> dict[str, Any]:
    from dataclasses import asdict

    return {"geometry": asdict(showers.geometry), "particle": showers.particle,
            "incident_energy_gev_range": [float(energies.min()), float(energies.max())]}


def prepare_grid(data: Artifact, model: str, kind: str, arch: dict[str, Any], settings: Settings) -> Prepared:
    """Cells and incident energies of a showers artifact for ``caloflow``, ``calofast`` or ``calohits``."""
    import torch

    showers = _read_showers(data)
    geometry = showers.geometry
    limit = _GRID_LIMITS[model]
    if geometry.n_voxels > limit:
        other = "model='calofast' (up to 20,000 voxels) or " if model == "caloflow" else ""
        raise ToolInputError.for_param(
            _TOOL, "model", model, f"learns every voxel and takes grids of at most {limit} "
            f"voxels; {data.id} has {geometry.n_layers}×{geometry.n_a}×{geometry.n_b} = {geometry.n_voxels}. Use "
            f"{other}model='pointcloud', or simulate a coarser grid.")
    cells = showers.cells_mev.reshape(len(showers), -1)
    energies = showers.incident_energy_gev
    train, val = split_indices(len(cells), settings.validation_fraction, settings.seed)
    card = {"model": model, "flow_kind": kind, "architecture": arch, "showers": {"geometry": {
        "n_layers": geometry.n_layers, "n_a": geometry.n_a, "n_b": geometry.n_b}}}
    net = build_model(card)
    net.fit_transforms(cells[train], energies[train], settings.seed)
    tensors = (torch.from_numpy(cells).float(), torch.from_numpy(energies).float())
    info = _showers_card(showers, energies[train]) | {"noise_mev": float(net.noise_mev)}
    return Prepared(net, tuple(t[train] for t in tensors), tuple(t[val] for t in tensors),
                    ["layer_energies_mev", "cell_energies_mev"], ["incident_energy_gev"], 0, {"showers": info})


def prepare_pointcloud(data: Artifact, kind: str, arch: dict[str, Any], settings: Settings, max_points: int
                        ) -> Prepared:
    import torch

    showers = _read_showers(data)
    geometry = showers.geometry
    if geometry.kind != "cartesian":
        raise ToolInputError.for_param(
            _TOOL, "model", "pointcloud", f"needs cartesian cells (x, y positions), but {data.id} has a "
            f"{geometry.kind} geometry. Use model='caloflow' (grids up to {MAX_VOXELS} voxels).")
    points, origin = shower_points(showers)
    counts = np.array([len(p) for p in points])
    if counts.max(initial=0) > max_points and origin == "hits":  # too many deposits: one point per hit cell
        points, origin = shower_points(dataclasses.replace(showers, points=None))
        counts = np.array([len(p) for p in points])
    if counts.max(initial=0) > max_points:
        raise ToolInputError.for_param(
            _TOOL, "max_points", max_points, f"is below the {int(counts.max())} hit cells of the largest shower of "
            f"{data.id}. Raise max_points to at least {int(counts.max())} (slower), or use model='caloflow' on a "
            "small grid.")
    keep = np.flatnonzero(counts > 0)
    check_rows(data, len(keep), len(counts) - len(keep))
    padded, mask = pad_points([points[i] for i in keep], int(counts.max()))
    energies = showers.incident_energy_gev[keep]
    train, val = split_indices(len(keep), settings.validation_fraction, settings.seed)
    card = {"model": "pointcloud", "flow_kind": kind, "architecture": arch, "showers": {"geometry": {
        "n_layers": geometry.n_layers, "n_a": geometry.n_a, "n_b": geometry.n_b}}}
    net = build_model(card)
    jitter = 0.5 * geometry.cell_size_mm if origin == "cells" else 0.0
    layer_z = _layer_depths(showers, geometry)
    net.fit_transforms(padded[train], mask[train], energies[train, None], [jitter, jitter, 0.5, 0.0])
    net.layer_z_mm.copy_(torch.from_numpy(layer_z).float())
    tensors = (torch.from_numpy(padded), torch.from_numpy(mask), torch.from_numpy(energies[:, None]).float())
    info = _showers_card(showers, energies[train]) | {
        "points_from": origin, "max_points": max_points, "layer_z_mm": [float(z) for z in layer_z],
        "points_per_shower": [int(counts[keep].min()), int(counts[keep].max())], "ode_steps": DEFAULT_ODE_STEPS,
        "ode_solver": "midpoint"}
    return Prepared(net, tuple(t[train] for t in tensors), tuple(t[val] for t in tensors),
                     ["x_mm", "y_mm", "layer", "e_mev"], ["incident_energy_gev"], len(counts) - len(keep),
                     {"showers": info})


def prepare_jet_pointcloud(data: Artifact, kind: str, arch: dict[str, Any], settings: Settings, max_points: int
                            ) -> Prepared:
    import torch

    clouds = leading_constituents(_TOOL, "source", data, max_points)
    if len(clouds.points) < MIN_ROWS:
        raise ToolInputError.for_param(
            _TOOL, "source", data.id, f"has {len(clouds.points)} leading jets with constituents ({clouds.n_dropped} "
            f"events without); a generator needs at least {MIN_ROWS} (and thousands to be useful). Cluster more "
            "events with cluster_jets, or lower its pt_min_gev.")
    counts = np.array([len(p) for p in clouds.points])
    padded, mask = pad_points(clouds.points, int(counts.max()), JET_POINTS.dim)
    pt = clouds.pt_gev[:, None]
    train, val = split_indices(len(pt), settings.validation_fraction, settings.seed)
    info = _jets_card(data, clouds, train, counts, max_points)
    net = build_model({"model": "pointcloud", "flow_kind": kind, "architecture": arch, "jets": info})
    net.fit_transforms(padded[train], mask[train], pt[train], [0.0] * JET_POINTS.dim)
    tensors = (torch.from_numpy(padded), torch.from_numpy(mask), torch.from_numpy(pt).float())
    condition = JET_POINTS.conditions[0]
    card = {"jets": info, "condition_columns": ["jets_pt_0"],
            "ranges": {"conditions": {condition: [float(pt[train].min()), float(pt[train].max())]}}}
    return Prepared(net, tuple(t[train] for t in tensors), tuple(t[val] for t in tensors),
                     list(JET_POINTS.coordinates), [condition], clouds.n_dropped, card)


def _jets_card(data: Artifact, clouds: Any, train: np.ndarray, counts: np.ndarray, max_points: int
               ) -> dict[str, Any]:
    """How the jets were made and learnt: radius and soft-drop settings (for τ_N and m_SD of generated jets),
    the training jets' η quantiles (axes of generated jets), points per jet."""
    meta = data.metadata
    if "radius" in meta:
        radius, radius_from = float(meta["radius"]), "jets artifact"
    else:  # jets made elsewhere: the widest constituent's ΔR, to 0.1 above
        widest = max(float(np.hypot(p[:, 0], p[:, 1]).max()) for p in clouds.points)
        radius, radius_from = math.ceil(widest * 10) / 10, "widest constituent"
    return {"jet": "leading", "points": list(JET_POINTS.coordinates), "radius": radius, "radius_from": radius_from,
            "softdrop": [float(meta.get("softdrop_beta", 0.0)), float(meta.get("softdrop_zcut", 0.1))],
            "algorithm": meta.get("algorithm"), "pt_gev_range": [float(clouds.pt_gev[train].min()),
                                                                 float(clouds.pt_gev[train].max())],
            "eta_quantiles": [float(q) for q in np.quantile(clouds.eta[train], np.linspace(0, 1, ETA_QUANTILES))],
            "points_per_jet": [int(counts.min()), int(counts.max())], "max_points": max_points,
            "n_truncated": clouds.n_truncated, "ode_steps": DEFAULT_ODE_STEPS, "ode_solver": "midpoint"}


def _layer_depths(showers: Any, geometry: Any) -> np.ndarray:
    """Mean z [mm] of the hits in each layer (from the stored points), else the layer centre."""
    import awkward as ak

    depth = (np.arange(geometry.n_layers) + 0.5) * geometry.layer_thickness_mm
    if showers.points is None or "z_mm" not in ak.fields(showers.points):
        return depth
    layer = np.asarray(ak.flatten(showers.points.layer), dtype=np.int64)
    z = np.asarray(ak.flatten(showers.points.z_mm), dtype=np.float64)
    for i in np.unique(layer[(layer >= 0) & (layer < geometry.n_layers)]):
        depth[i] = z[layer == i].mean()
    return depth
