r"""``train_generator``: train a generative surrogate (normalizing flow, CaloFlow, point-cloud flow matching).

Models (``model``; ``auto`` picks by the input's kind):

- ``flow`` — a conditional normalizing flow (zuko NSF, arXiv:1906.04032, or MAF, arXiv:1705.07057) for
  tabular, low-dimensional data of a ``table``, ``jets`` or ``events`` artifact: ``features`` and optional
  ``conditions`` are expressions with one number per row (``jets.mass[0]``, ``jets.tau21[0]``; for a table
  by default every numeric column). Positive right-skewed features are log-transformed, all are
  standardised, inside the model (:mod:`tools.generate._flows`).
- ``caloflow`` — the two-stage CaloFlow model (arXiv:2106.05285) for small cell grids of a ``showers``
  artifact (at most :data:`~tools.generate._caloflow.MAX_VOXELS` voxels), conditioned on the incident energy.
- ``pointcloud`` — conditional flow matching with EPiC layers (EPiC-FM, arXiv:2310.00049; CaloClouds,
  arXiv:2305.04847) on point clouds plus a flow for the number of points and their summed weight
  (:mod:`tools.generate._pointcloud`): a shower's points (x, y [mm], layer, e [MeV]) given the incident
  energy, for grids of any size (cartesian); or, on a ``jets`` artifact (asked for explicitly; ``auto`` picks
  ``flow`` for jets), the *leading jet's* constituents (Δη, Δφ, pT_rel = pT / pT_jet) given the jet pT
  ``jets.pt[0]`` [GeV] (:mod:`tools.generate._jet_points`). ``sample_generator`` turns those into jets.

Training: AdamW with cosine decay, early stopping on a seeded validation split with the best epoch's
weights restored (:mod:`tools.generate._fitting`). Output: a ``generator`` artifact with ``model.pt``,
``card.json`` (the model card: data provenance, features and their transforms, training ranges,
architecture, parameter count, training settings and curve, exports) and ``training_curve.png``; with
``export`` (default) also ONNX files of the sampling networks (:mod:`tools.generate._export`; a failed export
is reported in the card and the result, not raised). Sample it with ``sample_generator``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from physagent.tools._artifacts import ARTIFACT_ID_PATTERN, Accepts, Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import ToolResult, tool
from physagent.tools.generate._architectures import ARCHITECTURES, DEFAULT_ODE_STEPS, build_model, reference_for
from physagent.tools.generate._caloflow import MAX_VOXELS
from physagent.tools.generate._fitting import (
    Fitted,
    Settings,
    count_parameters,
    fit,
    plot_training_curve,
    save_png,
    split_indices,
    versions,
)
from physagent.tools.generate._generator_io import (
    check_showers,
    column_names,
    default_features,
    read_columns,
    read_rows,
)
from physagent.tools.generate._jet_points import ETA_QUANTILES, leading_constituents
from physagent.tools.generate._pointcloud import JET_POINTS, pad_points, shower_points

__all__ = ["GeneratorRef", "TrainedGenerator", "train_generator"]

GeneratorRef = Annotated[str, Accepts(("generator",)), Field(pattern=ARTIFACT_ID_PATTERN)]
SourceRef = Annotated[str, Accepts(("table", "jets", "events", "showers")), Field(pattern=ARTIFACT_ID_PATTERN)]
ModelChoice = Literal["auto", "flow", "caloflow", "pointcloud"]
_TOOL = "train_generator"
_MIN_ROWS = 10


class TrainedGenerator(ToolResult):
    """A trained generative model and how its training went."""

    generator: Artifact = Field(description="The generator artifact (kind 'generator'): model.pt, card.json, "
                                            "training_curve.png. Pass it to sample_generator.")
    model: str = Field(description="Model: flow, caloflow or pointcloud.")
    flow_kind: str = Field(description="Flow transform: nsf (neural spline) or maf (affine autoregressive).")
    n_parameters: int = Field(description="Trainable parameters.")
    features: list[str] = Field(description="What is generated: the feature expressions (flow), or the shower "
                                            "variables (caloflow: layer energies and cells; pointcloud: points; "
                                            "pointcloud on jets: deta, dphi, pt_rel of the constituents).")
    conditions: list[str] = Field(description="What the generator is conditioned on (empty: unconditional).")
    n_train: int = Field(description="Rows (showers) trained on.")
    n_validation: int = Field(description="Rows (showers) in the validation split used for early stopping.")
    n_dropped: int = Field(description="Rows left out: a feature without a value (e.g. no second jet), showers "
                                       "without deposits, or events without a leading jet with constituents "
                                       "(pointcloud).")
    epochs_run: int = Field(description="Epochs actually run before early stopping.")
    best_epoch: int = Field(description="Epoch whose weights were kept: lowest validation loss.")
    validation_loss: float = Field(description="Lowest validation loss: NLL in nats per sample of the standardised "
                                               "variables (pointcloud: flow-matching MSE plus the set-flow NLL).")
    train_wall_s: float = Field(description="Training wall time in seconds.")
    exported: list[str] = Field(description="ONNX files written for deployment (sampler.onnx: noise → sample; "
                                            "pointcloud: velocity.onnx, one ODE step, and set_flow.onnx).")
    export_problems: list[str] = Field(description="Exports that failed, with the exporter's message (else empty).")


@dataclass
class _Prepared:
    """Everything to train one generator: the model with fitted transforms, tensors, and its card entries."""

    model: Any
    train: tuple[Any, ...]
    validation: tuple[Any, ...]
    features: list[str]
    conditions: list[str]
    n_dropped: int
    card: dict[str, Any] = field(default_factory=dict)


@tool(category="generate", version="1")
def train_generator(
    source: Annotated[SourceRef, Field(description="Id of the training data: a table, jets or events artifact "
                                                   "(flow), a showers artifact (caloflow, pointcloud) or a jets "
                                                   "artifact with constituents (pointcloud).")],
    model: Annotated[ModelChoice, Field(
        description="flow (normalizing flow for tabular features), caloflow (two-stage flow for small calorimeter "
                    "grids), pointcloud (flow matching on shower points, or on the leading jet's constituents of a "
                    "jets artifact, conditioned on its pT) or auto (flow for tables/jets/events; "
                    f"caloflow for showers with at most {MAX_VOXELS} voxels, else pointcloud).",
        json_schema_extra={"x-phrases": {"normalizing flow": "flow", "spline flow": "flow", "caloflow": "caloflow",
                                         "flow matching": "pointcloud", "point cloud": "pointcloud",
                                         "caloclouds": "pointcloud", "epic": "pointcloud",
                                         "jet constituents": "pointcloud", "epic-fm": "pointcloud"}})] = "auto",
    features: Annotated[list[str], Field(max_length=32, description=(
        "flow only: what to generate, one number per row each: table columns or expressions such as "
        "'jets.mass[0]', 'jets.tau21[0]' (leading jet), 'm_hat_gev'. Empty: every numeric column of a table."))
    ] = [],  # noqa: B006 — pydantic copies defaults; a list reads best in the schema
    conditions: Annotated[list[str], Field(max_length=16, description=(
        "flow only: what to condition on (given at sampling time), e.g. ['jets.pt[0]']. Empty: unconditional."))
    ] = [],  # noqa: B006
    flow_kind: Annotated[Literal["nsf", "maf"], Field(
        description="Flow transform: nsf (rational-quadratic neural spline flow) or maf (affine masked "
                    "autoregressive flow).")] = "nsf",
    log_transform: Annotated[Literal["auto", "none"], Field(
        description="flow only: auto log-transforms features that are all positive and right-skewed before "
                    "standardising; none only standardises.")] = "auto",
    size: Annotated[Literal["tiny", "small", "large"], Field(
        description="tiny (seconds, for tests), small (minutes on 2 CPU cores) or large.")] = "small",
    epochs: Annotated[int, Field(ge=1, le=5000, description="Maximum training epochs.")] = 100,
    batch_size: Annotated[int, Field(ge=2, le=65_536, description="Rows (showers) per optimisation step.")] = 256,
    learning_rate: Annotated[float, Field(gt=0, le=1.0, description="Peak learning rate of AdamW (cosine decay).")
                             ] = 1e-3,
    weight_decay: Annotated[float, Field(ge=0, le=1.0, description="AdamW weight decay.")] = 0.0,
    patience: Annotated[int, Field(ge=0, le=1000, description="Stop after this many epochs without a lower "
                                                             "validation loss (0: never stop early).")] = 10,
    validation_fraction: Annotated[float, Field(ge=0.05, le=0.5, description="Share of rows held out for early "
                                                                             "stopping.")] = 0.2,
    max_points: Annotated[int, Field(ge=8, le=20_000, description="pointcloud only: most points a shower or jet "
                                                                  "may have (memory and time grow with it); showers "
                                                                  "with more deposits are learnt as one point per "
                                                                  "hit cell, jets keep their hardest constituents."
                                     )] = 2000,
    seed: Annotated[int, Field(ge=0, description="Random seed for the split, initialisation and batching.")] = 0,
    export: Annotated[bool, Field(description="Also write ONNX files of the sampling networks (where the "
                                              "architecture exports; problems are reported, not raised).")] = True,
    *,
    ctx: ToolContext,
) -> TrainedGenerator:
    """Train a generative surrogate (normalizing flow, CaloFlow or point-cloud flow matching) on an artifact.

    Returns the generator artifact (weights, model card, training curve, ONNX exports) with the best
    validation loss, epochs run and training time; sample it with sample_generator.
    """
    data = ctx.artifact(source, "source")
    chosen = _choose_model(model, data, features, conditions)
    arch = ARCHITECTURES[chosen][size]
    settings = Settings(epochs, batch_size, learning_rate, weight_decay, patience, validation_fraction, seed)
    if chosen == "flow":
        prepared = _prepare_flow(data, features, conditions, flow_kind, log_transform, arch, settings)
    elif chosen == "caloflow":
        prepared = _prepare_caloflow(data, flow_kind, arch, settings)
    elif data.kind == "jets":
        prepared = _prepare_jet_pointcloud(data, flow_kind, arch, settings, max_points)
    else:
        prepared = _prepare_pointcloud(data, flow_kind, arch, settings, max_points)
    pending = ctx.new_artifact("generator")
    fitted = fit(ctx, prepared.model, prepared.train, prepared.validation, settings, chosen)
    return _write(pending, data, (chosen, flow_kind, size, arch), settings, prepared, fitted, export)


# --- checks and data: everything that can be wrong with the inputs fails here, before training ----


def _choose_model(model: str, data: Artifact, features: list[str], conditions: list[str]) -> str:
    showers = data.kind == "showers"
    if model == "auto":
        if not showers:
            return "flow"
        model = "caloflow" if _n_voxels(data) <= MAX_VOXELS else "pointcloud"
    if model == "flow" and showers:
        raise ToolInputError.for_param(
            _TOOL, "model", model, f"learns tabular features, but {data.id} holds calorimeter showers. Use "
            "model='caloflow' (small grids) or model='pointcloud'.")
    if model != "flow" and not showers and not (model == "pointcloud" and data.kind == "jets"):
        jets = " (or model='pointcloud' for the constituents of jets)" if data.kind == "jets" else ""
        raise ToolInputError.for_param(
            _TOOL, "model", model, f"learns calorimeter showers, but {data.id} is a {data.kind} artifact. Use "
            f"model='flow' with features such as ['jets.mass[0]']{jets}, or a showers artifact.")
    if model != "flow" and (features or conditions):
        what = ("whole showers conditioned on the incident energy. Leave them empty" if showers else
                "the leading jet's constituents conditioned on its pT (jets.pt[0]). Leave them empty, or use "
                "model='flow' to learn those features")
        raise ToolInputError.for_param(
            _TOOL, "features" if features else "conditions", features or conditions, f"apply to model='flow' only; "
            f"{model} always generates {what}.")
    return model


def _n_voxels(data: Artifact) -> int:
    """Voxels of a showers artifact's grid, from the attributes of its showers.h5 (no data read)."""
    import h5py

    from physagent.tools.simulate._calo import CaloGeometry

    with h5py.File(data.path, "r") as handle:
        return CaloGeometry.from_json(handle.attrs["geometry"]).n_voxels


def _prepare_flow(data: Artifact, features: list[str], conditions: list[str], kind: str, log_mode: str,
                  arch: dict[str, Any], settings: Settings) -> _Prepared:
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
    _check_rows(data, len(x.values), x.n_source - len(x.values))
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
    return _Prepared(flow, tuple(t[train] for t in tensors), tuple(t[val] for t in tensors), features, conditions,
                     x.n_source - len(values), card)


def _ranges(names: list[str], values: np.ndarray) -> dict[str, list[float]]:
    return {name: [float(values[:, i].min()), float(values[:, i].max())] for i, name in enumerate(names)}


def _check_rows(data: Artifact, kept: int, dropped: int) -> None:
    if kept < _MIN_ROWS:
        why = f" ({dropped} left out where a feature had no value)" if dropped else ""
        raise ToolInputError.for_param(
            _TOOL, "source", data.id, f"has {kept} usable rows{why}; a generator needs at least {_MIN_ROWS} (and "
            "thousands to be useful). Use more data or features every row has.")


def _read_showers(data: Artifact) -> Any:
    from physagent.tools.simulate._calo import read_showers

    showers = read_showers(data.path)
    check_showers(_TOOL, "source", data.id, showers)
    _check_rows(data, len(showers), 0)
    return showers


def _showers_card(showers: Any, energies: np.ndarray) -> dict[str, Any]:
    from dataclasses import asdict

    return {"geometry": asdict(showers.geometry), "particle": showers.particle,
            "incident_energy_gev_range": [float(energies.min()), float(energies.max())]}


def _prepare_caloflow(data: Artifact, kind: str, arch: dict[str, Any], settings: Settings) -> _Prepared:
    import torch

    showers = _read_showers(data)
    geometry = showers.geometry
    if geometry.n_voxels > MAX_VOXELS:
        raise ToolInputError.for_param(
            _TOOL, "model", "caloflow", f"learns every voxel jointly and takes grids of at most {MAX_VOXELS} "
            f"voxels; {data.id} has {geometry.n_layers}×{geometry.n_a}×{geometry.n_b} = {geometry.n_voxels}. Use "
            "model='pointcloud', or simulate a coarser grid.")
    cells = showers.cells_mev.reshape(len(showers), -1)
    energies = showers.incident_energy_gev
    train, val = split_indices(len(cells), settings.validation_fraction, settings.seed)
    card = {"model": "caloflow", "flow_kind": kind, "architecture": arch, "showers": {"geometry": {
        "n_layers": geometry.n_layers, "n_a": geometry.n_a, "n_b": geometry.n_b}}}
    flow = build_model(card)
    flow.fit_transforms(cells[train], energies[train], settings.seed)
    tensors = (torch.from_numpy(cells).float(), torch.from_numpy(energies).float())
    info = _showers_card(showers, energies[train]) | {"noise_mev": float(flow.noise_mev)}
    return _Prepared(flow, tuple(t[train] for t in tensors), tuple(t[val] for t in tensors),
                     ["layer_energies_mev", "cell_energies_mev"], ["incident_energy_gev"], 0, {"showers": info})


def _prepare_pointcloud(data: Artifact, kind: str, arch: dict[str, Any], settings: Settings, max_points: int
                        ) -> _Prepared:
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
    _check_rows(data, len(keep), len(counts) - len(keep))
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
    return _Prepared(net, tuple(t[train] for t in tensors), tuple(t[val] for t in tensors),
                     ["x_mm", "y_mm", "layer", "e_mev"], ["incident_energy_gev"], len(counts) - len(keep),
                     {"showers": info})


def _prepare_jet_pointcloud(data: Artifact, kind: str, arch: dict[str, Any], settings: Settings, max_points: int
                            ) -> _Prepared:
    import torch

    clouds = leading_constituents(_TOOL, "source", data, max_points)
    if len(clouds.points) < _MIN_ROWS:
        raise ToolInputError.for_param(
            _TOOL, "source", data.id, f"has {len(clouds.points)} leading jets with constituents ({clouds.n_dropped} "
            f"events without); a generator needs at least {_MIN_ROWS} (and thousands to be useful). Cluster more "
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
    return _Prepared(net, tuple(t[train] for t in tensors), tuple(t[val] for t in tensors),
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


# --- writing the generator artifact ---------------------------------------------------------


def _write(pending: Any, data: Artifact, what: tuple[str, str, str, dict[str, Any]], settings: Settings,
           prepared: _Prepared, fitted: Fitted, export: bool) -> TrainedGenerator:
    import torch

    from physagent.tools._io import write_json
    from physagent.tools.generate._export import export_generator

    model, kind, size, _ = what
    directory = pending.directory
    torch.save({name: t.detach().cpu() for name, t in fitted.model.state_dict().items()}, directory / "model.pt")
    loss_name = "flow-matching MSE + set-flow NLL" if model == "pointcloud" else "NLL [nats per sample]"
    save_png(plot_training_curve(fitted.history, f"{model} ({kind}, {size}) on {data.summary}", fitted.best_epoch,
                                 loss_name), directory / "training_curve.png")
    exported = export_generator(fitted.model, model, prepared.train, directory) if export else {}
    card = _card(data, what, settings, prepared, fitted) | {"export": exported}
    write_json(card, directory / "card.json")
    best = min(row["val_loss"] for row in fitted.history)
    given = f" given {', '.join(prepared.conditions)}" if prepared.conditions else ""
    summary = (f"{model} generator ({kind}, {size}, {card['n_parameters']:,} parameters) of "
               f"{', '.join(prepared.features)}{given} trained on {data.id}: validation loss {best:.4g}")
    timing = {"threads": fitted.threads, "train_wall_s": fitted.wall_s,
              "epoch_wall_s": [row["wall_s"] for row in fitted.history]}
    metadata = card | {"data": card["data"] | {"id": data.id}, "timing": timing}
    artifact = pending.finish("model.pt", summary, metadata)
    files = [v["file"] for v in exported.values() if isinstance(v, dict) and "file" in v]
    problems = [f"{name}: {v['error']}" for name, v in exported.items() if isinstance(v, dict) and "error" in v]
    return TrainedGenerator(
        generator=artifact, model=model, flow_kind=kind, n_parameters=card["n_parameters"],
        features=prepared.features, conditions=prepared.conditions, n_train=len(prepared.train[0]),
        n_validation=len(prepared.validation[0]), n_dropped=prepared.n_dropped, epochs_run=len(fitted.history),
        best_epoch=fitted.best_epoch, validation_loss=best, train_wall_s=fitted.wall_s, exported=files,
        export_problems=problems)


def _card(data: Artifact, what: tuple[str, str, str, dict[str, Any]], settings: Settings, prepared: _Prepared,
          fitted: Fitted) -> dict[str, Any]:
    """The model card written to card.json: everything a rerun reproduces (no ids, no timings)."""
    model, kind, size, arch = what
    return {
        "model": model, "flow_kind": kind, "size": size, "architecture": arch, "reference": reference_for(model, kind),
        "n_parameters": count_parameters(fitted.model),
        "data": {"kind": data.kind, "sha256": data.sha256, "summary": data.summary,
                 "n_rows": len(prepared.train[0]) + len(prepared.validation[0]), "n_dropped": prepared.n_dropped},
        "features": prepared.features, "conditions": prepared.conditions,
        "training": {"epochs": settings.epochs, "epochs_run": len(fitted.history), "best_epoch": fitted.best_epoch,
                     "batch_size": settings.batch_size, "learning_rate": settings.learning_rate,
                     "lr_schedule": "cosine", "weight_decay": settings.weight_decay, "optimizer": "AdamW",
                     "patience": settings.patience, "validation_fraction": settings.validation_fraction,
                     "seed": settings.seed, "threads": fitted.threads,
                     "n_rows": {"train": len(prepared.train[0]), "validation": len(prepared.validation[0])},
                     "history": [{k: v for k, v in row.items() if k != "wall_s"} for row in fitted.history]},
        "packages": versions(),
    } | prepared.card
