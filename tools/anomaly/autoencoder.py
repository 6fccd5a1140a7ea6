r"""``autoencoder_search``: an unsupervised anomaly search with a dense autoencoder.

The autoencoder (:mod:`tools.anomaly._autoencoder`) learns to reconstruct the observed events' features
(default the LHCO set m_j1, Δm_j, τ21 of both jets; masses as log(1 + m/GeV), then standardised); the
anomaly score of an event is its reconstruction error ‖ẑ − z‖²/F. It reads no labels and no simulation.
By default (``train_on="sidebands"``) it trains only outside the m_jj signal region, so a localized
signal cannot be learnt (at the price of a background a little different from the signal region's, where the features
depend on m_jj); ``train_on="all"`` trains on every observed event (fully unsupervised, no m_jj window
needed). A compact signal *is* learnt from all data once it is a percent or so of it: on the toy
of ``tests/anomaly_toy.py`` (seeds 0–2) the test AUC fell from 0.96–0.98 at S/B = 0 to 0.53–0.70 at 1 % and
0.36–0.51 at 2 % with ``all``, and stayed at 0.92–0.98 and 0.90–0.98 with ``sidebands``.

Unlike CWoLa or CATHODE it does not compare regions, so it needs no bump in m_jj and its score can be
used anywhere; it finds events *rare* in the features, which a signal need not be (a two-prong jet with
a moderate mass is not rare in QCD). Its performance can depend strongly on the seed and the bottleneck
(``benchmarks/bench_anomaly.py`` runs several seeds): compare a few seeds before trusting it.

Output: a ``model`` artifact — ``model.pt`` (state dict), ``card.json`` (features, preprocessing,
architecture, training settings and curve, export checks), ``training_curve.png``, ``model.onnx`` (the
network, preprocessed features → reconstruction; Gemm and Relu only, ready for hls4ml) and
``score.onnx`` (features in their units → score) — and the shared scores table and ROC/SIC plot of
:func:`tools.anomaly._method_result.write_scores`. Pass the scores table to ``bump_hunt``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from physagent.tools._artifacts import Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import tool
from physagent.tools.anomaly._autoencoder import (
    WEIGHTS_FILE,
    Architecture,
    Fitted,
    Preprocessing,
    Settings,
    export_autoencoder,
    fit_autoencoder,
    reconstruction_error,
)
from physagent.tools.anomaly._method_result import AnomalyScores, write_scores
from physagent.tools.anomaly._search_data import MASS, AnomalyDatasetRef, SearchData, check_features, read_search_data

__all__ = ["AutoencoderScores", "autoencoder_search"]

TOOL = "autoencoder_search"
MIN_TRAINING_EVENTS = 100
TrainOn = Literal["all", "sidebands"]


class AutoencoderScores(AnomalyScores):
    """The autoencoder's anomaly scores and test metrics, with its training summary."""

    train_on: str = Field(description="Which observed events it trained on: all, or sidebands (outside the "
                                      "signal region).")
    n_train_events: int = Field(description="Observed events it trained on (80 %) and validated on (20 %).")
    n_parameters: int = Field(description="Trainable weights and biases.")
    epochs_run: int = Field(description="Epochs run before early stopping.")
    best_epoch: int = Field(description="Epoch whose weights were kept: lowest validation loss.")
    best_val_loss: float = Field(description="Validation reconstruction error (mean squared, in standardised "
                                             "units) of the kept epoch.")
    train_wall_s: float = Field(description="Training wall time in seconds (one CPU thread).")
    exported: list[str] = Field(description="Files exported for deployment (model.onnx, score.onnx).")
    export_problems: list[str] = Field(description="Exports that failed, with the exporter's message (else empty).")


@tool(category="anomaly", version="1")
def autoencoder_search(
    dataset: Annotated[AnomalyDatasetRef, Field(description="Id of an anomaly_dataset artifact from "
                                                             "make_anomaly_dataset.")],
    features: Annotated[list[str] | None, Field(
        description="Feature columns the autoencoder reconstructs (default: mj1_gev, delta_mj_gev, tau21_j1, "
                    "tau21_j2). Never mjj_gev or the truth label.", max_length=32)] = None,
    train_on: Annotated[TrainOn, Field(
        description="sidebands (default): train only on events outside the m_jj signal region, so a signal "
                    "there is not learnt — an autoencoder trained on all events learns to reconstruct a signal "
                    "of about a percent of the data. all: every observed event (fully unsupervised, for "
                    "non-resonant searches).")] = "sidebands",
    hidden_units: Annotated[int, Field(ge=2, le=1024, description="Width of the first and last hidden layers "
                                                                  "(the inner ones have half).")] = 32,
    latent_dim: Annotated[int, Field(ge=1, le=64, description="Width of the bottleneck; must be smaller than the "
                                                              "number of features.")] = 2,
    epochs: Annotated[int, Field(ge=1, le=1000, description="Maximum training epochs.")] = 100,
    batch_size: Annotated[int, Field(ge=8, le=65_536, description="Events per optimisation step.")] = 256,
    learning_rate: Annotated[float, Field(gt=0, le=1.0, description="Learning rate of AdamW.")] = 1e-3,
    weight_decay: Annotated[float, Field(ge=0, le=1.0, description="AdamW weight decay.")] = 0.0,
    patience: Annotated[int, Field(ge=0, le=1000, description="Stop after this many epochs without a lower "
                                                             "validation loss (0: never stop early).")] = 10,
    export: Annotated[bool, Field(description="Also write model.onnx and score.onnx, checked with onnxruntime.")
                      ] = True,
    seed: Annotated[int, Field(ge=0, description="Random seed for initialisation, validation split and "
                                                 "batching.")] = 0,
    *,
    ctx: ToolContext,
) -> AutoencoderScores:
    """Search for anomalies without labels: train an autoencoder on the observed events and score them.

    Returns the per-event anomaly scores (reconstruction error) as a table for bump_hunt, the test-set
    AUC and SIC, and the model artifact with its card and ONNX exports.
    """
    data = read_search_data(ctx, dataset)
    chosen = check_features(TOOL, features, data)
    if latent_dim >= len(chosen):
        raise ToolInputError.for_param(TOOL, "latent_dim", latent_dim, f"must be smaller than the {len(chosen)} "
                                       "features, or the network learns the identity and every event scores 0. "
                                       f"Use latent_dim ≤ {len(chosen) - 1} or add features.")
    x_data = _matrix(data.observed(), chosen, dataset)
    x_train = x_data[_training_rows(data, train_on, dataset)]
    prep = Preprocessing.of(x_train, chosen)
    arch = Architecture(len(chosen), hidden_units, latent_dim)
    settings = Settings(epochs, batch_size, learning_rate, weight_decay, patience, seed)
    fitted = fit_autoencoder(ctx, prep.apply(x_train), arch, settings)
    scores_data = reconstruction_error(fitted.model, prep.apply(x_data))
    scores_test = reconstruction_error(fitted.model, prep.apply(_matrix(data.test, chosen, dataset)))
    model, exported = _write_model(ctx, data, chosen, train_on, prep, arch, settings, fitted, x_train, export)
    seen = [f"data: {', '.join(chosen)} of every observed event (to train and to score)"]
    if train_on == "sidebands":
        seen.append(f"data: {MASS} only to pick the sideband events to train on")
    best = fitted.history[fitted.best_epoch - 1]
    return write_scores(
        ctx, data, scores_data, scores_test, "autoencoder", seen, n_data_events_seen=len(x_data), model=model,
        notes=f"trained on {len(x_train):,} {'sideband' if train_on == 'sidebands' else 'observed'} events; "
              f"{arch.widths + arch.widths[-2::-1]} dense autoencoder, seed {seed}",
        result_type=AutoencoderScores, train_on=train_on, n_train_events=len(x_train),
        n_parameters=_count(fitted), epochs_run=len(fitted.history), best_epoch=fitted.best_epoch,
        best_val_loss=float(best["val_loss"]), train_wall_s=fitted.wall_s,
        exported=[v["file"] for v in exported.values() if "file" in v],
        export_problems=[f"{k}: {v['error']}" for k, v in exported.items() if "error" in v],
    )


def _matrix(table: dict[str, np.ndarray], features: list[str], dataset: str) -> np.ndarray:
    x = np.column_stack([np.asarray(table[name], dtype=np.float64) for name in features])
    bad = [name for name, column in zip(features, x.T, strict=True) if not np.all(np.isfinite(column))]
    if bad:
        raise ToolInputError.for_param(TOOL, "dataset", dataset, f"has NaN or infinite values in {', '.join(bad)}. "
                                       "Rebuild the dataset or choose other features.")
    return x


def _training_rows(data: SearchData, train_on: str, dataset: str) -> np.ndarray:
    mjj = np.asarray(data.data[MASS], dtype=np.float64)
    rows = np.flatnonzero(data.windows.in_sidebands(mjj)) if train_on == "sidebands" else np.arange(len(mjj))
    if len(rows) < MIN_TRAINING_EVENTS:
        where = "in the sidebands " + "–".join(f"{v:g}" for v in data.windows.sidebands_gev) + " GeV" \
            if train_on == "sidebands" else "observed"
        raise ToolInputError.for_param(TOOL, "dataset", dataset, f"has only {len(rows)} events {where}; the "
                                       f"autoencoder needs at least {MIN_TRAINING_EVENTS}. Use train_on='all' or "
                                       "a larger dataset.")
    return rows


# --- the model artifact ----------------------------------------------------------------------


def _write_model(ctx: ToolContext, data: SearchData, features: list[str], train_on: str, prep: Preprocessing,
                 arch: Architecture, settings: Settings, fitted: Fitted, x_train: np.ndarray, export: bool
                 ) -> tuple[Artifact, dict[str, Any]]:
    import torch

    from physagent.tools._io import write_json
    from physagent.tools.tag._metrics import save_png

    pending = ctx.new_artifact("model")
    directory = pending.directory
    torch.save({k: t.detach().cpu() for k, t in fitted.model.state_dict().items()}, directory / WEIGHTS_FILE)
    exported = export_autoencoder(fitted.model, prep, x_train, features, directory) if export else {}
    save_png(_training_curve(fitted), directory / "training_curve.png")
    card: dict[str, Any] = {
        "model": "autoencoder", "architecture": arch.as_dict(), "n_parameters": _count(fitted),
        "features": features, "preprocessing": prep.as_dict(),
        "score": "mean squared reconstruction error of the preprocessed features, larger = more anomalous",
        "dataset": {"sha256": data.artifact.sha256, "summary": data.artifact.summary},
        "training": {"train_on": train_on, "n_train": fitted.n_train, "n_validation": fitted.n_validation,
                     "epochs": settings.epochs, "epochs_run": len(fitted.history), "best_epoch": fitted.best_epoch,
                     "batch_size": settings.batch_size, "learning_rate": settings.learning_rate,
                     "weight_decay": settings.weight_decay, "optimizer": "AdamW", "loss": "MSE",
                     "patience": settings.patience, "seed": settings.seed, "threads": fitted.threads,
                     "history": [{k: v for k, v in row.items() if k != "wall_s"} for row in fitted.history]},
        "export": exported, "packages": _versions(),
    }
    write_json(card, directory / "card.json")
    summary = (f"autoencoder {arch.widths + arch.widths[-2::-1]} on {len(features)} features of {data.artifact.id} "
               f"(trained on {train_on}, best epoch {fitted.best_epoch})")
    # timings vary from run to run: they go into the artifact record, not into the hashed files
    metadata = card | {"dataset": card["dataset"] | {"id": data.artifact.id}, "timing": {
        "train_wall_s": fitted.wall_s, "epoch_wall_s": [row.get("wall_s") for row in fitted.history]}}
    return pending.finish(WEIGHTS_FILE, summary, metadata), exported


def _training_curve(fitted: Fitted) -> Any:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.0, 3.4))
    ax = figure.subplots()
    epochs = [row["epoch"] for row in fitted.history]
    ax.plot(epochs, [row["train_loss"] for row in fitted.history], label="training")
    ax.plot(epochs, [row["val_loss"] for row in fitted.history], label="validation")
    ax.axvline(fitted.best_epoch, color="grey", ls="--", lw=0.8, label=f"kept (epoch {fitted.best_epoch})")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("reconstruction error (MSE)")
    ax.legend()
    figure.tight_layout()
    return figure


def _count(fitted: Fitted) -> int:
    return int(sum(p.numel() for p in fitted.model.parameters() if p.requires_grad))


def _versions() -> dict[str, str]:
    found = {}
    for name in ("torch", "onnx", "onnxruntime"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found
