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
  arXiv:2305.04847) on the shower's points (x, y [mm], layer, e [MeV]) plus a flow for the number of points
  and the visible energy, conditioned on the incident energy; for grids of any size (cartesian).

Training: AdamW with cosine decay, early stopping on a seeded validation split with the best epoch's
weights restored (:mod:`tools.generate._fitting`). Output: a ``generator`` artifact with ``model.pt``,
``card.json`` (the model card: data provenance, features and their transforms, training ranges,
architecture, parameter count, training settings and curve) and ``training_curve.png``. Sample it with
``sample_generator``.
"""

from __future__ import annotations

import dataclasses
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
from physagent.tools.generate._pointcloud import pad_points, shower_points

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
                                            "variables (caloflow: layer energies and cells; pointcloud: points).")
    conditions: list[str] = Field(description="What the generator is conditioned on (empty: unconditional).")
    n_train: int = Field(description="Rows (showers) trained on.")
    n_validation: int = Field(description="Rows (showers) in the validation split used for early stopping.")
    n_dropped: int = Field(description="Rows left out: a feature without a value (e.g. no second jet), or showers "
                                       "without deposits (pointcloud).")
    epochs_run: int = Field(description="Epochs actually run before early stopping.")
    best_epoch: int = Field(description="Epoch whose weights were kept: lowest validation loss.")
    validation_loss: float = Field(description="Lowest validation loss: NLL in nats per sample of the standardised "
                                               "variables (pointcloud: flow-matching MSE plus the shower-flow NLL).")
    train_wall_s: float = Field(description="Training wall time in seconds.")


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
                                                   "(flow) or a showers artifact (caloflow, pointcloud).")],
    model: Annotated[ModelChoice, Field(
        description="flow (normalizing flow for tabular features), caloflow (two-stage flow for small calorimeter "
                    "grids), pointcloud (flow matching on shower points) or auto (flow for tables/jets/events; "
                    f"caloflow for showers with at most {MAX_VOXELS} voxels, else pointcloud).",
        json_schema_extra={"x-phrases": {"normalizing flow": "flow", "spline flow": "flow", "caloflow": "caloflow",
                                         "flow matching": "pointcloud", "point cloud": "pointcloud",
                                         "caloclouds": "pointcloud", "epic": "pointcloud"}})] = "auto",
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
    max_points: Annotated[int, Field(ge=8, le=20_000, description="pointcloud only: most points a shower may "
                                                                  "have (memory and time grow with it); showers "
                                                                  "with more deposits are learnt as one point per "
                                                                  "hit cell.")] = 2000,
    seed: Annotated[int, Field(ge=0, description="Random seed for the split, initialisation and batching.")] = 0,
    *,
    ctx: ToolContext,
) -> TrainedGenerator:
    """Train a generative surrogate (normalizing flow, CaloFlow or point-cloud flow matching) on an artifact.

    Returns the generator artifact (weights, model card, training curve) with the best validation loss,
    epochs run and training time; sample it with sample_generator.
    """
    data = ctx.artifact(source, "source")
    chosen = _choose_model(model, data, features, conditions)
    arch = ARCHITECTURES[chosen][size]
    settings = Settings(epochs, batch_size, learning_rate, weight_decay, patience, validation_fraction, seed)
    if chosen == "flow":
        prepared = _prepare_flow(data, features, conditions, flow_kind, log_transform, arch, settings)
    elif chosen == "caloflow":
        prepared = _prepare_caloflow(data, flow_kind, arch, settings)
    else:
        prepared = _prepare_pointcloud(data, flow_kind, arch, settings, max_points)
    pending = ctx.new_artifact("generator")
    fitted = fit(ctx, prepared.model, prepared.train, prepared.validation, settings, chosen)
    return _write(pending, data, chosen, flow_kind, size, arch, settings, prepared, fitted)


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
    if model != "flow" and not showers:
        raise ToolInputError.for_param(
            _TOOL, "model", model, f"learns calorimeter showers, but {data.id} is a {data.kind} artifact. Use "
            "model='flow' with features such as ['jets.mass[0]'], or a showers artifact.")
    if model != "flow" and (features or conditions):
        raise ToolInputError.for_param(
            _TOOL, "features" if features else "conditions", features or conditions, f"apply to model='flow' only; "
            f"{model} always generates whole showers conditioned on the incident energy. Leave them empty.")
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
    net.fit_transforms(padded[train], mask[train], energies[train], jitter, layer_z)
    tensors = (torch.from_numpy(padded), torch.from_numpy(mask), torch.from_numpy(energies).float())
    info = _showers_card(showers, energies[train]) | {
        "points_from": origin, "max_points": max_points, "layer_z_mm": [float(z) for z in layer_z],
        "points_per_shower": [int(counts[keep].min()), int(counts[keep].max())], "ode_steps": DEFAULT_ODE_STEPS,
        "ode_solver": "midpoint"}
    return _Prepared(net, tuple(t[train] for t in tensors), tuple(t[val] for t in tensors),
                     ["x_mm", "y_mm", "layer", "e_mev"], ["incident_energy_gev"], len(counts) - len(keep),
                     {"showers": info})


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


def _write(pending: Any, data: Artifact, model: str, kind: str, size: str, arch: dict[str, Any], settings: Settings,
           prepared: _Prepared, fitted: Fitted) -> TrainedGenerator:
    import torch

    from physagent.tools._io import write_json

    directory = pending.directory
    torch.save({name: t.detach().cpu() for name, t in fitted.model.state_dict().items()}, directory / "model.pt")
    loss_name = "flow-matching MSE + shower-flow NLL" if model == "pointcloud" else "NLL [nats per sample]"
    save_png(plot_training_curve(fitted.history, f"{model} ({kind}, {size}) on {data.summary}", fitted.best_epoch,
                                 loss_name), directory / "training_curve.png")
    card = _card(data, model, kind, size, arch, settings, prepared, fitted)
    write_json(card, directory / "card.json")
    best = min(row["val_loss"] for row in fitted.history)
    given = f" given {', '.join(prepared.conditions)}" if prepared.conditions else ""
    summary = (f"{model} generator ({kind}, {size}, {card['n_parameters']:,} parameters) of "
               f"{', '.join(prepared.features)}{given} trained on {data.id}: validation loss {best:.4g}")
    timing = {"threads": fitted.threads, "train_wall_s": fitted.wall_s,
              "epoch_wall_s": [row["wall_s"] for row in fitted.history]}
    metadata = card | {"data": card["data"] | {"id": data.id}, "timing": timing}
    artifact = pending.finish("model.pt", summary, metadata)
    return TrainedGenerator(
        generator=artifact, model=model, flow_kind=kind, n_parameters=card["n_parameters"],
        features=prepared.features, conditions=prepared.conditions, n_train=len(prepared.train[0]),
        n_validation=len(prepared.validation[0]), n_dropped=prepared.n_dropped, epochs_run=len(fitted.history),
        best_epoch=fitted.best_epoch, validation_loss=best, train_wall_s=fitted.wall_s)


def _card(data: Artifact, model: str, kind: str, size: str, arch: dict[str, Any], settings: Settings,
          prepared: _Prepared, fitted: Fitted) -> dict[str, Any]:
    """The model card written to card.json: everything a rerun reproduces (no ids, no timings)."""
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
