r"""``train_generator``: train a generative surrogate (normalizing flow, CaloFlow, calofast, calohits, point clouds).

Models (``model``; ``auto`` picks by the input's kind: ``flow`` for tables, jets and events, ``calofast`` for
showers of at most :data:`~tools.generate._caloflow.MAX_VOXELS` voxels — as faithful as ``caloflow`` or more
in our benchmark, at a hundredth of its sampling time — ``calohits`` up to
:data:`~tools.generate._calohits.MAX_HITS_VOXELS` voxels — on the full grid at least as faithful as
``pointcloud`` in our benchmark (same data and epochs) and over 1000× faster to sample — else ``pointcloud``;
with ``flow_kind="maf"``, ``caloflow`` and ``pointcloud``):

- ``flow`` — a conditional normalizing flow (zuko NSF, arXiv:1906.04032, or MAF, arXiv:1705.07057) for
  tabular, low-dimensional data of a ``table``, ``jets`` or ``events`` artifact: ``features`` and optional
  ``conditions`` are expressions with one number per row (``jets.mass[0]``, ``jets.tau21[0]``; for a table
  by default every numeric column). Positive right-skewed features are log-transformed, all are
  standardised, inside the model (:mod:`tools.generate._flows`).
- ``caloflow`` — the two-stage CaloFlow model (arXiv:2106.05285) for small cell grids of a ``showers``
  artifact (at most :data:`~tools.generate._caloflow.MAX_VOXELS` voxels), conditioned on the incident energy.
- ``calofast`` — CaloFlow's two stages made cheap to sample (:mod:`tools.generate._calofast`): a spline
  coupling flow of the layer energies, then every voxel independently given the incident and layer energies
  (hit probability and log share from one network pass), for grids of up to
  :data:`~tools.generate._calofast.MAX_FAST_VOXELS` voxels. Sampling costs microseconds per shower at a
  batch of 1000, about 100× less than ``caloflow``; ``flow_kind`` must stay ``nsf``.
- ``calohits`` — calofast's layer-energy flow, then the hits of each layer as a Poisson process whose intensity
  mixes a few learnt templates with weights from a small network (:mod:`tools.generate._calohits`), and a
  log share per hit; sampling draws the hits alone in a compiled loop, so its cost grows with the hits, not the
  voxels: tens of microseconds per full-grid (30 × 24 × 24) shower. Grids of up to
  :data:`~tools.generate._calohits.MAX_HITS_VOXELS` voxels; ``flow_kind`` must stay ``nsf``; no ONNX export.
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

from typing import Annotated, Any, Literal

from pydantic import Field

from physagent.tools._artifacts import ARTIFACT_ID_PATTERN, Accepts, Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import ToolResult, tool
from physagent.tools.generate._architectures import ARCHITECTURES, reference_for
from physagent.tools.generate._caloflow import MAX_VOXELS
from physagent.tools.generate._calohits import MAX_HITS_VOXELS
from physagent.tools.generate._fitting import (
    Fitted,
    Settings,
    count_parameters,
    fit,
    plot_training_curve,
    save_png,
    versions,
)
from physagent.tools.generate._prepare import (
    Prepared,
    prepare_flow,
    prepare_grid,
    prepare_jet_pointcloud,
    prepare_pointcloud,
)

__all__ = ["GeneratorRef", "TrainedGenerator", "train_generator"]

GeneratorRef = Annotated[str, Accepts(("generator",)), Field(pattern=ARTIFACT_ID_PATTERN)]
SourceRef = Annotated[str, Accepts(("table", "jets", "events", "showers")), Field(pattern=ARTIFACT_ID_PATTERN)]
ModelChoice = Literal["auto", "flow", "caloflow", "calofast", "calohits", "pointcloud"]
_TOOL = "train_generator"
_SHOWER_MODELS = ("caloflow", "calofast", "calohits", "pointcloud")


class TrainedGenerator(ToolResult):
    """A trained generative model and how its training went."""

    generator: Artifact = Field(description="The generator artifact (kind 'generator'): model.pt, card.json, "
                                            "training_curve.png. Pass it to sample_generator.")
    model: str = Field(description="Model: flow, caloflow, calofast, calohits or pointcloud.")
    flow_kind: str = Field(description="Flow transform: nsf (neural spline) or maf (affine autoregressive).")
    n_parameters: int = Field(description="Trainable parameters.")
    features: list[str] = Field(description="What is generated: the feature expressions (flow), or the shower "
                                            "variables (caloflow, calofast, calohits: layer energies and cells; "
                                            "pointcloud: "
                                            "points; "
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


@tool(category="generate", version="1")
def train_generator(
    source: Annotated[SourceRef, Field(description="Id of the training data: a table, jets or events artifact "
                                                   "(flow), a showers artifact (caloflow, calofast, calohits, "
                                                   "pointcloud) or a jets artifact with constituents "
                                                   "(pointcloud).")],
    model: Annotated[ModelChoice, Field(
        description="flow (normalizing flow for tabular features), caloflow (two-stage flow for small calorimeter "
                    "grids), calofast (CaloFlow's layer-energy flow plus independent voxels: about 100× faster "
                    "sampling, grids up to 20,000 voxels), calohits (the same layer-energy flow plus Poisson hits "
                    "from templates: sampling time grows with the hits, not the voxels; the fast surrogate for large "
                    "grids up to 20,000 voxels such as the full 30×24×24), pointcloud (flow matching on shower "
                    "points, or on the leading jet's constituents of a jets artifact, conditioned on its pT) or auto "
                    f"(flow for tables/jets/events; calofast for showers with at most {MAX_VOXELS} voxels, calohits "
                    f"up to {MAX_HITS_VOXELS:,}, else pointcloud).",
        json_schema_extra={"x-phrases": {"normalizing flow": "flow", "spline flow": "flow", "caloflow": "caloflow",
                                         "calofast": "calofast", "fast surrogate": "auto",
                                         "fast caloflow": "calofast", "calohits": "calohits",
                                         "hit sampler": "calohits", "poisson hits": "calohits",
                                         "flow matching": "pointcloud", "point cloud": "pointcloud",
                                         "caloclouds": "pointcloud", "epic": "pointcloud",
                                         "jet constituents": "pointcloud", "epic-fm": "pointcloud"}})] = "auto",
    features: Annotated[list[str], Field(json_schema_extra={"x-derived": True}, max_length=32, description=(
        "flow only: what to generate, one number per row each: table columns or expressions such as "
        "'jets.mass[0]', 'jets.tau21[0]' (leading jet), 'm_hat_gev'. Empty: every numeric column of a table."))
    ] = [],  # noqa: B006 — pydantic copies defaults; a list reads best in the schema
    conditions: Annotated[list[str], Field(json_schema_extra={"x-derived": True}, max_length=16, description=(
        "flow only: what to condition on (given at sampling time), e.g. ['jets.pt[0]']. Empty: unconditional."))
    ] = [],  # noqa: B006
    flow_kind: Annotated[Literal["nsf", "maf"], Field(
        description="Flow transform: nsf (rational-quadratic neural spline flow) or maf (affine masked "
                    "autoregressive flow; not for calofast).")] = "nsf",
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
    """Train a generative surrogate (normalizing flow, CaloFlow, calofast, calohits or point-cloud flow matching).

    Returns the generator artifact (weights, model card, training curve, ONNX exports) with the best
    validation loss, epochs run and training time; sample it with sample_generator.
    """
    data = ctx.artifact(source, "source")
    chosen = _choose_model(model, data, features, conditions, flow_kind)
    arch = ARCHITECTURES[chosen][size]
    settings = Settings(epochs, batch_size, learning_rate, weight_decay, patience, validation_fraction, seed)
    if chosen == "flow":
        prepared = prepare_flow(data, features, conditions, flow_kind, log_transform, arch, settings)
    elif chosen in ("caloflow", "calofast", "calohits"):
        prepared = prepare_grid(data, chosen, flow_kind, arch, settings)
    elif data.kind == "jets":
        prepared = prepare_jet_pointcloud(data, flow_kind, arch, settings, max_points)
    else:
        prepared = prepare_pointcloud(data, flow_kind, arch, settings, max_points)
    pending = ctx.new_artifact("generator")
    fitted = fit(ctx, prepared.model, prepared.train, prepared.validation, settings, chosen)
    return _write(pending, data, (chosen, flow_kind, size, arch), settings, prepared, fitted, export)


# --- checks and data: everything that can be wrong with the inputs fails here, before training ----


def _choose_model(model: str, data: Artifact, features: list[str], conditions: list[str], flow_kind: str) -> str:
    showers = data.kind == "showers"
    if model in ("calofast", "calohits") and flow_kind != "nsf":
        raise ToolInputError.for_param(
            _TOOL, "flow_kind", flow_kind, f"applies to flow, caloflow and pointcloud; {model}'s layer-energy flow "
            "is always a spline coupling flow. Leave flow_kind at 'nsf', or use model='caloflow'.")
    if model == "auto":
        if not showers:
            return "flow"
        model = _auto_shower_model(_n_voxels(data), flow_kind)
    if model == "flow" and showers:
        raise ToolInputError.for_param(
            _TOOL, "model", model, f"learns tabular features, but {data.id} holds calorimeter showers. Use "
            "model='caloflow' (small grids), model='calofast' (fast sampling), model='calohits' (fast sampling of "
            "large grids) or model='pointcloud'.")
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


def _auto_shower_model(n_voxels: int, flow_kind: str) -> str:
    """calofast on small grids, calohits on large ones (both faster and more faithful than their alternatives in
    bench_generators.py), pointcloud beyond; caloflow and pointcloud for a MAF (calofast and calohits have none)."""
    if n_voxels <= MAX_VOXELS:
        return "calofast" if flow_kind == "nsf" else "caloflow"
    return "calohits" if flow_kind == "nsf" and n_voxels <= MAX_HITS_VOXELS else "pointcloud"


def _n_voxels(data: Artifact) -> int:
    """Voxels of a showers artifact's grid, from the attributes of its showers.h5 (no data read)."""
    import h5py

    from physagent.tools.simulate._calo import CaloGeometry

    with h5py.File(data.path, "r") as handle:
        return CaloGeometry.from_json(handle.attrs["geometry"]).n_voxels


# --- writing the generator artifact ---------------------------------------------------------


def _write(pending: Any, data: Artifact, what: tuple[str, str, str, dict[str, Any]], settings: Settings,
           prepared: Prepared, fitted: Fitted, export: bool) -> TrainedGenerator:
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


def _card(data: Artifact, what: tuple[str, str, str, dict[str, Any]], settings: Settings, prepared: Prepared,
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
