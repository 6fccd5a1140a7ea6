r"""``train_tagger``: train a jet tagger (ParT, ParticleNet, PFN, EFN, BDT, MLP or Deep Sets) on a dataset artifact.

``mlp`` and ``deepsets`` are trigger taggers for FPGAs: layers hls4ml converts (:mod:`tools.tag._trigger`;
the MLP of arXiv:1804.06913 on the jet features, standardised with the training split's mean and std,
and Deep Sets as at Level 1, arXiv:2402.01876). ``quantize_bits`` trains the mlp quantization-aware
(brevitas fixed point, :mod:`tools.tag._quantized`).

Networks train with AdamW on the weighted cross-entropy, a per-step learning-rate schedule (cosine
decay, one-cycle, or constant) and early stopping on the validation loss with the best epoch's weights
restored; everything is seeded. The BDT boosts until the validation loss stops improving. The model
is then scored on the test split: AUC, background rejection 1/ε_B at ε_S = 0.3 and 0.5, accuracy.

Output: a ``model`` artifact with ``model.pt`` (state dict) or ``model.joblib`` (BDT), ``card.json``
(the model card: data provenance, features, architecture, parameter count, training settings and
curve, test metrics, export checks), ``training_curve.png``, ``test_scores.parquet`` (the scores the
metrics come from) and, for networks, ``model.onnx`` and ``model.torchscript.pt``
(:mod:`tools.tag._export`). Runs on CUDA when available, else on the CPU with one thread per core.
The training loop lives in :mod:`tools.tag._training`, model loading and scoring in :mod:`tools.tag._inference`.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from physagent.tools._artifacts import ARTIFACT_ID_PATTERN, Accepts, Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import ToolResult, tool
from physagent.tools.tag._architectures import ARCHITECTURES, INPUT_NAMES, JET_LEVEL_KINDS, REFERENCES, ModelKind, Size
from physagent.tools.tag._features import JET_FEATURES, TaggerInputs, has_pid, non_finite_fields, particle_feature_names
from physagent.tools.tag._inference import inputs_for, particle_set, score_model
from physagent.tools.tag._metrics import metrics, plot_training_curve, save_png
from physagent.tools.tag._quantized import MAX_BITS, MIN_BITS, quantization_card
from physagent.tools.tag._training import Fitted, Settings, Split, fit
from physagent.tools.tag._trigger import trigger_card
from physagent.tools.tag.dataset import DatasetRef, read_dataset, split_rows

__all__ = ["ModelRef", "TrainedTagger", "train_tagger"]

ModelRef = Annotated[str, Accepts(("model",)), Field(pattern=ARTIFACT_ID_PATTERN)]
FeatureSet = Literal["auto", "kinematic", "kinematic+pid"]
Schedule = Literal["cosine", "one_cycle", "constant"]


class TrainedTagger(ToolResult):
    """A trained tagger and its test-split performance."""

    model: Artifact = Field(description="The model artifact (kind 'model'): weights, card.json, training curve, "
                                        "test scores, ONNX/TorchScript exports.")
    kind: str = Field(description="Model kind: part, particlenet, pfn, efn, bdt, mlp or deepsets.")
    n_parameters: int = Field(description="Trainable parameters (BDT: tree nodes).")
    features: str = Field(description="Input features: kinematic, kinematic+pid, efn (z, Δη, Δφ) or substructure.")
    epochs_run: int = Field(description="Epochs (BDT: boosting iterations) actually run before stopping.")
    best_epoch: int = Field(description="Epoch (iteration) whose weights were kept: lowest validation loss.")
    test_auc: float = Field(description="Area under the ROC curve on the test split.")
    test_rejection_at_30: float = Field(description="Background rejection 1/ε_B at signal efficiency 0.3 (test).")
    test_rejection_at_50: float = Field(description="Background rejection 1/ε_B at signal efficiency 0.5 (test).")
    test_accuracy: float = Field(description="Accuracy at score 0.5 on the test split.")
    train_wall_s: float = Field(description="Training wall time in seconds.")
    inference_jets_per_s: float = Field(description="Scoring throughput on the test split, jets per second.")
    device: str = Field(description="Where it trained: cpu or cuda.")
    exported: list[str] = Field(description="Files exported for deployment (model.onnx, model.torchscript.pt).")
    export_problems: list[str] = Field(description="Exports that failed, with the exporter's message (else empty).")


@tool(category="tag", version="1")
def train_tagger(
    dataset: Annotated[DatasetRef, Field(description="Id of a dataset artifact from make_jet_dataset.")],
    model: Annotated[ModelKind, Field(
        description="part (Particle Transformer), particlenet, pfn (Particle Flow Network), efn (IRC-safe "
                    "Energy Flow Network), bdt (boosted trees on jet substructure), mlp (dense network on jet "
                    "substructure, for FPGA/trigger) or deepsets (hls4ml-compatible Deep Sets on particles, for "
                    "FPGA/trigger).",
        json_schema_extra={"x-phrases": {"particle transformer": "part", "transformer": "part",
                                         "particlenet": "particlenet", "graph network": "particlenet",
                                         "particle flow network": "pfn", "deep sets": "deepsets",
                                         "deepsets": "deepsets", "energy flow network": "efn", "bdt": "bdt",
                                         "boosted decision tree": "bdt", "gradient boosting": "bdt",
                                         "multilayer perceptron": "mlp", "dense network": "mlp"}},
    )] = "part",
    size: Annotated[Size, Field(description="tiny (seconds, for tests), small (minutes on 2 CPU cores), or large "
                                            "(the published architecture).")] = "small",
    features: Annotated[FeatureSet, Field(
        description="Particle features: kinematic (Δη, Δφ, log pT, log E, relative pT/E, ΔR), kinematic+pid "
                    "(plus charge and particle-type flags), or auto (PID when the data has it). The EFN always "
                    "uses z, Δη, Δφ; the BDT and MLP jet substructure.")] = "auto",
    epochs: Annotated[int, Field(ge=1, le=1000, description="Maximum training epochs (BDT: ignored; it boosts "
                                                            "until the validation loss stops improving).")] = 20,
    batch_size: Annotated[int, Field(ge=8, le=16_384, description="Jets per optimisation step.")] = 256,
    learning_rate: Annotated[float, Field(gt=0, le=1.0, description="Peak learning rate of AdamW.")] = 1e-3,
    lr_schedule: Annotated[Schedule, Field(description="Learning-rate schedule per step: cosine decay, one_cycle, "
                                                       "or constant.")] = "cosine",
    weight_decay: Annotated[float, Field(ge=0, le=1.0, description="AdamW weight decay.")] = 0.01,
    patience: Annotated[int, Field(ge=0, le=1000, description="Stop after this many epochs without a lower "
                                                             "validation loss (0: never stop early).")] = 5,
    export: Annotated[bool, Field(description="Also write model.onnx and model.torchscript.pt (networks only).")
                      ] = True,
    seed: Annotated[int, Field(ge=0, description="Random seed for initialisation and batching.")] = 0,
    quantize_bits: Annotated[int | None, Field(
        ge=MIN_BITS, le=MAX_BITS, description=(
            "mlp only, optional: quantization-aware training (brevitas) with inputs, weights and activations "
            "at this many bits of fixed point, for an FPGA (export_fpga keeps those types). Leave out for a "
            "float network."))] = None,
    *,
    ctx: ToolContext,
) -> TrainedTagger:
    """Train a jet tagger (ParT, ParticleNet, PFN, EFN, BDT, MLP, Deep Sets) on a dataset and score its test split.

    Returns the model artifact with its model card, training curve, test AUC and background rejection
    1/ε_B at ε_S = 0.3 and 0.5; networks are also exported to ONNX and TorchScript. mlp and deepsets
    are small trigger networks that hls4ml can put on an FPGA.
    """
    source = ctx.artifact(dataset, "dataset")
    jets = read_dataset(source.path)
    feature_set = _feature_set(model, features, jets, dataset)
    n_constituents = int(source.metadata.get("cuts", {}).get("n_constituents", 64))
    arch = _architecture(model, size, n_constituents, quantize_bits)
    _check_trainable(jets, dataset, model, arch, n_constituents)
    splits = {name: _split(jets, name, n_constituents, feature_set) for name in ("train", "validation", "test")}
    settings = Settings(epochs, batch_size, learning_rate, lr_schedule, weight_decay, patience, seed)
    pending = ctx.new_artifact("model")
    fitted = fit(ctx, model, arch, feature_set, splits, settings)
    return _write(pending, source, model, size, arch, feature_set, n_constituents, splits, settings, fitted, export)


def _architecture(model: str, size: str, n_constituents: int, quantize_bits: int | None) -> dict[str, Any]:
    arch = dict(ARCHITECTURES[model][size])
    if model == "deepsets":  # its average pooling spans every particle slot
        arch["n_particles"] = n_constituents
    if quantize_bits is not None:
        if model != "mlp":
            raise ToolInputError.for_param(
                "train_tagger", "quantize_bits", quantize_bits, f"applies to model='mlp' only (quantization-aware "
                f"training with brevitas), not to {model!r}. Use model='mlp', or leave quantize_bits out and "
                "choose the fixed-point precision at export_fpga.")
        arch["quantize_bits"] = quantize_bits
    return arch


# --- checks: everything that can be wrong with the inputs fails here, before any training --------


def _feature_set(model: str, features: str, jets: Any, dataset: str) -> str:
    if model in JET_LEVEL_KINDS:
        return "substructure"
    if model == "efn":
        return "efn"
    if len(jets) == 0 or "constituents" not in jets.fields:
        return "kinematic"  # the emptiness check below reports it
    pid = has_pid(jets)
    if features == "kinematic+pid" and not pid:
        raise ToolInputError.for_param(
            "train_tagger", "features", features, f"needs pid and charge of the constituents, which dataset {dataset} "
            "does not have. Use features='kinematic' (or 'auto').")
    if features == "auto":
        return "kinematic+pid" if pid else "kinematic"
    return features


def _check_trainable(jets: Any, dataset: str, model: str, arch: dict[str, Any], n_constituents: int) -> None:
    if len(jets) == 0:
        raise ToolInputError.for_param(
            "train_tagger", "dataset", dataset, "holds no jets. Build one with make_jet_dataset (check its cuts).")
    labels, split = np.asarray(jets.label), np.asarray(jets.split)
    for name, code in (("train", 0), ("validation", 1)):
        present = set(np.unique(labels[split == code]).tolist())
        if present != {0, 1}:
            have = "no jets" if not present else "only " + " and ".join(
                "signal (label 1)" if p == 1 else "background (label 0)" for p in sorted(present))
            raise ToolInputError.for_param(
                "train_tagger", "dataset", dataset, f"has {have} in its {name} split; a tagger needs both classes. "
                "Rebuild it with make_jet_dataset so that both classes have jets.")
    bad = non_finite_fields(jets)
    if bad:
        raise ToolInputError.for_param(
            "train_tagger", "dataset", dataset, f"has NaN or infinite values in {', '.join(bad)}. Drop or fix "
            "those jets (or rebuild the dataset) before training.")
    if model == "particlenet":
        k_max = max(int(k) for k, _ in arch["conv_params"])
        if n_constituents <= k_max:
            raise ToolInputError.for_param(
                "train_tagger", "model", model, f"looks at k={k_max} neighbours but the dataset keeps only "
                f"{n_constituents} constituents per jet. Rebuild with n_constituents > {k_max} or pick a smaller size.")


def _split(jets: Any, name: str, n_constituents: int, feature_set: str) -> Split:
    rows = split_rows(jets, name)
    picked = jets[rows]
    inputs = inputs_for(picked, n_constituents, feature_set)
    return Split(rows, inputs, np.asarray(picked.label, dtype=np.int64), np.asarray(picked.weight, dtype=np.float64))


# --- writing the model artifact -----------------------------------------------------------


def _write(pending: Any, source: Artifact, kind: str, size: str, arch: dict[str, Any], feature_set: str,
           n_constituents: int, splits: dict[str, Split], settings: Settings, fitted: Fitted, export: bool
           ) -> TrainedTagger:
    test = splits["test"]
    start = time.perf_counter()
    scores = score_model(fitted.model, kind, test.inputs)
    speed = len(scores) / max(time.perf_counter() - start, 1e-9)
    test_metrics = metrics(test.labels, scores, test.weights)
    directory = pending.directory
    _save_weights(fitted.model, kind, directory)
    _save_scores(test, scores, directory / "test_scores.parquet")
    title = f"{kind} ({size}) on {source.summary}"
    save_png(plot_training_curve(fitted.history, title, fitted.best_epoch), directory / "training_curve.png")
    exported = _export(fitted.model, kind, arch, test.inputs, feature_set, directory) if export else {}
    card = _card(source, kind, size, arch, feature_set, n_constituents, splits, settings, fitted, test_metrics,
                 exported)
    from physagent.tools._io import write_json

    write_json(card, directory / "card.json")
    # ids and timings vary from run to run: they go into the artifact record, not into the hashed files
    timing = {"device": fitted.device, "threads": fitted.threads, "train_wall_s": fitted.wall_s,
              "epoch_wall_s": [row.get("wall_s") for row in fitted.history], "inference_jets_per_s": speed}
    quantized = f", {arch['quantize_bits']}-bit QAT" if arch.get("quantize_bits") else ""
    summary = (f"{kind} ({size}{quantized}, {card['n_parameters']:,} parameters) on {source.id}: test AUC "
               f"{test_metrics['auc']:.4f}, 1/eB(eS=0.3) = {test_metrics['rejection_at_30']:.1f}")
    metadata = card | {"dataset": card["dataset"] | {"id": source.id}, "timing": timing}
    artifact = pending.finish("model.joblib" if kind == "bdt" else "model.pt", summary, metadata)
    files = [v["file"] for v in exported.values() if isinstance(v, dict) and "file" in v]
    problems = [f"{name}: {v['error']}" for name, v in exported.items() if isinstance(v, dict) and "error" in v]
    return TrainedTagger(
        model=artifact, kind=kind, n_parameters=card["n_parameters"], features=feature_set,
        epochs_run=len(fitted.history), best_epoch=fitted.best_epoch, test_auc=test_metrics["auc"],
        test_rejection_at_30=test_metrics["rejection_at_30"], test_rejection_at_50=test_metrics["rejection_at_50"],
        test_accuracy=test_metrics["accuracy"], train_wall_s=fitted.wall_s, inference_jets_per_s=speed,
        device=fitted.device, exported=files, export_problems=problems,
    )


def _save_weights(model: Any, kind: str, directory: Path) -> None:
    if kind == "bdt":
        import joblib

        joblib.dump(model, directory / "model.joblib")
        return
    import torch

    torch.save({name: t.detach().cpu() for name, t in model.state_dict().items()}, directory / "model.pt")


def _save_scores(split: Split, scores: np.ndarray, path: Path) -> None:
    import awkward as ak

    from physagent.tools._io import write_parquet

    write_parquet(ak.zip({"row": split.rows.astype(np.int64), "label": split.labels.astype(np.int8),
                          "weight": split.weights.astype(np.float32), "score": scores.astype(np.float32)}), path)


def _export(model: Any, kind: str, arch: dict[str, Any], inputs: TaggerInputs, feature_set: str, directory: Path
            ) -> dict[str, Any]:
    if kind == "bdt":
        return {}
    from physagent.tools.tag._export import export_network

    example = {name: getattr(inputs, name) for name in INPUT_NAMES[kind]}
    n_features = len(particle_feature_names(particle_set(feature_set)))
    return export_network(kind, arch, n_features, model.state_dict(), example, directory)


def _card(source: Artifact, kind: str, size: str, arch: dict[str, Any], feature_set: str, n_constituents: int,
          splits: dict[str, Split], settings: Settings, fitted: Fitted, test_metrics: dict[str, float],
          exported: dict[str, Any]) -> dict[str, Any]:
    """The model card written to card.json: everything that a rerun reproduces (no ids, no timings)."""
    particle = [] if kind in JET_LEVEL_KINDS else (
        ["z", "deta", "dphi"] if kind == "efn" else particle_feature_names(particle_set(feature_set)))
    n_features = len(particle_feature_names(particle_set(feature_set)))
    return {
        "model": kind, "size": size, "architecture": arch, "reference": REFERENCES[kind],
        "n_parameters": _count_parameters(fitted.model),
        "dataset": {"sha256": source.sha256, "summary": source.summary,
                    "task": source.metadata.get("task"), "cuts": source.metadata.get("cuts"),
                    "labels": source.metadata.get("labels")},
        "features": {"set": feature_set, "particle": particle,
                     "jet": list(JET_FEATURES) if kind in JET_LEVEL_KINDS else [],
                     "n_constituents": n_constituents, "n_particle_features": n_features},
        "training": {"epochs": settings.epochs, "epochs_run": len(fitted.history), "best_epoch": fitted.best_epoch,
                     "batch_size": settings.batch_size, "learning_rate": settings.learning_rate,
                     "lr_schedule": settings.lr_schedule, "weight_decay": settings.weight_decay,
                     "optimizer": "AdamW" if kind != "bdt" else None, "patience": settings.patience,
                     "seed": settings.seed, "threads": fitted.threads,
                     "history": [{k: v for k, v in row.items() if k != "wall_s"} for row in fitted.history],
                     "n_jets": {name: len(split.labels) for name, split in splits.items()}},
        "metrics": {"test": test_metrics},
        "export": exported,
        "packages": _versions(),
    } | trigger_card(kind, fitted.model, n_features, n_constituents) | quantization_card(arch)


def _count_parameters(model: Any) -> int:
    from physagent.tools.tag._models import count_parameters

    return count_parameters(model)


def _versions() -> dict[str, str]:
    found = {}
    for name in ("torch", "weaver-core", "scikit-learn", "onnx", "onnxruntime"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found
