r"""``train_tagger``: train a jet tagger (ParT, ParticleNet, PFN, EFN or BDT) on a dataset artifact.

Networks train with AdamW on the weighted cross-entropy, a per-step learning-rate schedule (cosine
decay, one-cycle, or constant) and early stopping on the validation loss with the best epoch's weights
restored; everything is seeded. The BDT boosts until the validation loss stops improving. The model
is then scored on the test split: AUC, background rejection 1/ε_B at ε_S = 0.3 and 0.5, accuracy.

Output: a ``model`` artifact with ``model.pt`` (state dict) or ``model.joblib`` (BDT), ``card.json``
(the model card: data provenance, features, architecture, parameter count, training settings and
curve, test metrics, export checks), ``training_curve.png``, ``test_scores.parquet`` (the scores the
metrics come from) and, for networks, ``model.onnx`` and ``model.torchscript.pt``
(:mod:`tools.tag._export`). Runs on CUDA when available, else on the CPU with one thread per core.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.metadata
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from physagent.tools._artifacts import ARTIFACT_ID_PATTERN, Accepts, Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import ToolResult, tool
from physagent.tools.tag._architectures import ARCHITECTURES, INPUT_NAMES, REFERENCES, ModelKind, Size
from physagent.tools.tag._features import JET_FEATURES, TaggerInputs, has_pid, non_finite_fields, particle_feature_names
from physagent.tools.tag._metrics import metrics, plot_training_curve, save_png
from physagent.tools.tag.dataset import DatasetRef, read_dataset, split_rows

__all__ = [
    "ModelRef", "TrainedTagger", "check_inputs_match", "device", "inputs_for", "load_tagger", "score_model",
    "score_network", "torch_threads", "train_tagger",
]

ModelRef = Annotated[str, Accepts(("model",)), Field(pattern=ARTIFACT_ID_PATTERN)]
FeatureSet = Literal["auto", "kinematic", "kinematic+pid"]
Schedule = Literal["cosine", "one_cycle", "constant"]
_SCORE_BATCH = 1024


@dataclass(frozen=True)
class _Split:
    rows: np.ndarray  # row indices in the dataset
    inputs: TaggerInputs
    labels: np.ndarray
    weights: np.ndarray


@dataclass(frozen=True)
class _Settings:
    epochs: int
    batch_size: int
    learning_rate: float
    lr_schedule: str
    weight_decay: float
    patience: int
    seed: int


class TrainedTagger(ToolResult):
    """A trained tagger and its test-split performance."""

    model: Artifact = Field(description="The model artifact (kind 'model'): weights, card.json, training curve, "
                                        "test scores, ONNX/TorchScript exports.")
    kind: str = Field(description="Model kind: part, particlenet, pfn, efn or bdt.")
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
                    "Energy Flow Network) or bdt (boosted trees on jet substructure).",
        json_schema_extra={"x-phrases": {"particle transformer": "part", "transformer": "part",
                                         "particlenet": "particlenet", "graph network": "particlenet",
                                         "particle flow network": "pfn", "deep sets": "pfn",
                                         "energy flow network": "efn", "bdt": "bdt", "boosted decision tree": "bdt",
                                         "gradient boosting": "bdt"}},
    )] = "part",
    size: Annotated[Size, Field(description="tiny (seconds, for tests), small (minutes on 2 CPU cores), or large "
                                            "(the published architecture).")] = "small",
    features: Annotated[FeatureSet, Field(
        description="Particle features: kinematic (Δη, Δφ, log pT, log E, relative pT/E, ΔR), kinematic+pid "
                    "(plus charge and particle-type flags), or auto (PID when the data has it). The EFN always "
                    "uses z, Δη, Δφ and the BDT jet substructure.")] = "auto",
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
    *,
    ctx: ToolContext,
) -> TrainedTagger:
    """Train a jet tagger (ParT, ParticleNet, PFN, EFN or BDT) on a dataset and score its test split.

    Returns the model artifact with its model card, training curve, test AUC and background rejection
    1/ε_B at ε_S = 0.3 and 0.5; networks are also exported to ONNX and TorchScript.
    """
    source = ctx.artifact(dataset, "dataset")
    jets = read_dataset(source.path)
    feature_set = _feature_set(model, features, jets, dataset)
    n_constituents = int(source.metadata.get("cuts", {}).get("n_constituents", 64))
    arch = ARCHITECTURES[model][size]
    _check_trainable(jets, dataset, model, arch, n_constituents)
    splits = {name: _split(jets, name, n_constituents, feature_set) for name in ("train", "validation", "test")}
    settings = _Settings(epochs, batch_size, learning_rate, lr_schedule, weight_decay, patience, seed)
    pending = ctx.new_artifact("model")
    fitted = _fit(ctx, model, arch, feature_set, splits, settings)
    return _write(pending, source, model, size, arch, feature_set, n_constituents, splits, settings, fitted, export)


# --- checks: everything that can be wrong with the inputs fails here, before any training --------


def _feature_set(model: str, features: str, jets: Any, dataset: str) -> str:
    if model == "bdt":
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


def _split(jets: Any, name: str, n_constituents: int, feature_set: str) -> _Split:
    rows = split_rows(jets, name)
    picked = jets[rows]
    inputs = inputs_for(picked, n_constituents, feature_set)
    return _Split(rows, inputs, np.asarray(picked.label, dtype=np.int64), np.asarray(picked.weight, dtype=np.float64))


def inputs_for(jets: Any, n_constituents: int, feature_set: str) -> TaggerInputs:
    """Model inputs for flat jet records; EFN and BDT need no particle-feature choice."""
    from physagent.tools.tag._features import tagger_inputs

    particle_set = "kinematic+pid" if feature_set == "kinematic+pid" else "kinematic"
    return tagger_inputs(jets, n_constituents, particle_set)


# --- fitting ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fitted:
    model: Any  # nn.Module (best weights) or fitted sklearn estimator
    history: list[dict[str, Any]]
    best_epoch: int
    wall_s: float
    device: str
    threads: int


def device() -> str:
    """``cuda`` when a GPU is usable, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def thread_count() -> int:
    """Threads for torch and sklearn: ``PHYSAGENT_WORKERS`` if set, else one per available core.

    The count changes the floating-point summation order, so it is fixed per machine (recorded in the
    model card) rather than adapted to the load. On a machine shared with other busy processes set
    ``PHYSAGENT_WORKERS=1``: spin-waiting OpenMP threads on occupied cores made training 5–40× slower
    than one thread here (load 7 on 2 cores).
    """
    override = os.environ.get("PHYSAGENT_WORKERS")
    return max(1, int(override)) if override else max(1, len(os.sched_getaffinity(0)))


@contextlib.contextmanager
def torch_threads() -> Iterator[int]:
    """Limit torch and the OpenMP/BLAS pools (sklearn) to :func:`thread_count` threads, then restore."""
    import torch
    from threadpoolctl import threadpool_limits

    wanted = thread_count()
    before = torch.get_num_threads()
    torch.set_num_threads(wanted)
    try:
        with threadpool_limits(limits=wanted):
            yield wanted
    finally:
        torch.set_num_threads(before)


def _fit(ctx: ToolContext, kind: str, arch: dict[str, Any], feature_set: str, splits: dict[str, _Split],
         settings: _Settings) -> _Fitted:
    if kind == "bdt":
        return _fit_bdt(ctx, arch, splits, settings.seed)
    return _fit_network(ctx, kind, arch, len(particle_feature_names(_particle_set(feature_set))), splits, settings)


def _particle_set(feature_set: str) -> str:
    return "kinematic+pid" if feature_set == "kinematic+pid" else "kinematic"


def _fit_bdt(ctx: ToolContext, arch: dict[str, Any], splits: dict[str, _Split], seed: int) -> _Fitted:
    from physagent.tools.tag._models import build_bdt

    train, val = splits["train"], splits["validation"]
    data = {"X": train.inputs.jet, "y": train.labels, "sample_weight": train.weights}
    validation = {"X_val": val.inputs.jet, "y_val": val.labels, "sample_weight_val": val.weights}
    start = time.perf_counter()
    with ctx.progress("train bdt", total=2, unit="fits") as bar, torch_threads() as threads:
        probe = build_bdt(arch, seed).fit(**data, **validation)
        bar.advance()
        # sklearn keeps the n_iter_no_change trees after the best one; refit to the best iteration count
        # (boosting is deterministic, so these are the same first trees)
        history = _bdt_history(probe, val)
        best = int(np.argmin([row["val_loss"] for row in history])) + 1
        bdt = build_bdt(arch | {"max_iter": best}, seed).set_params(early_stopping=False).fit(**data)
        bar.advance()
    return _Fitted(bdt, history, best, time.perf_counter() - start, "cpu", threads)


def _bdt_history(bdt: Any, val: _Split) -> list[dict[str, Any]]:
    """Per boosting iteration: training and validation loss (sklearn stores them negated), validation AUC."""
    aucs = [metrics(val.labels, proba[:, 1], val.weights)["auc"] for proba in bdt.staged_predict_proba(val.inputs.jet)]
    losses = zip(bdt.train_score_[1:], bdt.validation_score_[1:], aucs, strict=True)
    return [{"epoch": i, "train_loss": -float(t), "val_loss": -float(v), "val_auc": auc}
            for i, (t, v, auc) in enumerate(losses, start=1)]


def _fit_network(ctx: ToolContext, kind: str, arch: dict[str, Any], n_features: int, splits: dict[str, _Split],
                 settings: _Settings) -> _Fitted:
    import torch

    from physagent.tools.tag._models import build_network

    torch.manual_seed(settings.seed)
    where = device()
    with torch_threads() as threads:
        net = build_network(kind, arch, n_features).to(where)
        start = time.perf_counter()
        history, best_state, best_epoch = _epochs(ctx, kind, net, splits, settings, where)
        net.load_state_dict(best_state)
        wall = time.perf_counter() - start
    return _Fitted(net.eval(), history, best_epoch, wall, where, threads)


def _epochs(ctx: ToolContext, kind: str, net: Any, splits: dict[str, _Split], settings: _Settings, where: str
            ) -> tuple[list[dict[str, float]], dict[str, Any], int]:
    import torch

    train, val = splits["train"], splits["validation"]
    tensors = _tensors(kind, train)
    weights = torch.from_numpy(train.weights).float()
    labels = torch.from_numpy(train.labels)
    steps = max(1, math.ceil(len(train.labels) / settings.batch_size))
    optimiser = torch.optim.AdamW(net.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    scheduler = _scheduler(optimiser, settings, steps)
    generator = torch.Generator().manual_seed(settings.seed)
    history: list[dict[str, float]] = []
    best = (math.inf, copy.deepcopy(net.state_dict()), 0)
    with ctx.progress(f"train {kind}", total=settings.epochs, unit="epochs") as bar:
        for epoch in range(1, settings.epochs + 1):
            t0 = time.perf_counter()
            train_loss = _train_epoch(net, tensors, labels, weights, optimiser, scheduler, settings.batch_size,
                                      generator, where, ctx.check_cancelled)
            val_loss, val_scores = _validate(net, kind, val, where)
            val_auc = metrics(val.labels, val_scores, val.weights)["auc"]
            history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_auc": val_auc,
                            "lr": optimiser.param_groups[0]["lr"], "wall_s": time.perf_counter() - t0})
            if val_loss < best[0]:
                best = (val_loss, copy.deepcopy(net.state_dict()), epoch)
            bar.unit = f"epochs (loss {train_loss:.3f}, val loss {val_loss:.3f}, val AUC {val_auc:.3f})"
            bar.advance()
            if settings.patience and epoch - best[2] >= settings.patience:
                break
    return history, best[1], best[2]


def _scheduler(optimiser: Any, settings: _Settings, steps_per_epoch: int) -> Any:
    import torch

    total = settings.epochs * steps_per_epoch
    if settings.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=total)
    if settings.lr_schedule == "one_cycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=settings.learning_rate, total_steps=total)
    return None


def _tensors(kind: str, split: _Split) -> list[Any]:
    import torch

    return [torch.from_numpy(getattr(split.inputs, name)) for name in INPUT_NAMES[kind]]


def _train_epoch(net: Any, tensors: list[Any], labels: Any, weights: Any, optimiser: Any, scheduler: Any,
                 batch_size: int, generator: Any, where: str, check_cancelled: Callable[[], None]) -> float:
    import torch

    net.train()
    order = torch.randperm(len(labels), generator=generator)
    total, norm = 0.0, 0.0
    for start in range(0, len(order), batch_size):
        check_cancelled()  # an epoch of a large model can take minutes
        index = order[start:start + batch_size]
        if len(index) < 2:  # batch norm cannot train on a single jet
            continue
        w = weights[index].to(where)
        logits = net(*(t[index].to(where) for t in tensors))
        per_jet = torch.nn.functional.cross_entropy(logits, labels[index].to(where), reduction="none")
        loss = (per_jet * w).sum() / w.sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if scheduler is not None:
            scheduler.step()
        total += loss.item() * w.sum().item()
        norm += w.sum().item()
    return total / max(norm, 1e-12)


def _validate(net: Any, kind: str, split: _Split, where: str) -> tuple[float, np.ndarray]:
    scores = score_network(net, kind, split.inputs, where)
    p = np.clip(np.where(split.labels == 1, scores, 1.0 - scores), 1e-7, 1.0)
    return float(np.sum(-np.log(p) * split.weights) / np.sum(split.weights)), scores


def score_network(net: Any, kind: str, inputs: TaggerInputs, where: str = "cpu") -> np.ndarray:
    """Signal probabilities of a (logit-returning) network, in eval mode, in fixed-size batches."""
    import torch

    net.eval()
    tensors = [torch.from_numpy(getattr(inputs, name)) for name in INPUT_NAMES[kind]]
    out = []
    with torch.no_grad():
        for start in range(0, len(inputs), _SCORE_BATCH):
            logits = net(*(t[start:start + _SCORE_BATCH].to(where) for t in tensors))
            out.append(torch.softmax(logits.float(), dim=1)[:, 1].cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def score_model(model: Any, kind: str, inputs: TaggerInputs) -> np.ndarray:
    """Signal scores of a network or a fitted BDT."""
    with torch_threads():
        if kind == "bdt":
            return model.predict_proba(inputs.jet)[:, 1].astype(np.float32)
        return score_network(model, kind, inputs, device())


# --- writing the model artifact -----------------------------------------------------------


def _write(pending: Any, source: Artifact, kind: str, size: str, arch: dict[str, Any], feature_set: str,
           n_constituents: int, splits: dict[str, _Split], settings: _Settings, fitted: _Fitted, export: bool
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
    summary = (f"{kind} ({size}, {card['n_parameters']:,} parameters) on {source.id}: test AUC "
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


def _save_scores(split: _Split, scores: np.ndarray, path: Path) -> None:
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
    n_features = len(particle_feature_names(_particle_set(feature_set)))
    return export_network(kind, arch, n_features, model.state_dict(), example, directory)


def _card(source: Artifact, kind: str, size: str, arch: dict[str, Any], feature_set: str, n_constituents: int,
          splits: dict[str, _Split], settings: _Settings, fitted: _Fitted, test_metrics: dict[str, float],
          exported: dict[str, Any]) -> dict[str, Any]:
    """The model card written to card.json: everything that a rerun reproduces (no ids, no timings)."""
    particle = [] if kind == "bdt" else (
        ["z", "deta", "dphi"] if kind == "efn" else particle_feature_names(_particle_set(feature_set)))
    return {
        "model": kind, "size": size, "architecture": arch, "reference": REFERENCES[kind],
        "n_parameters": _count_parameters(fitted.model),
        "dataset": {"sha256": source.sha256, "summary": source.summary,
                    "task": source.metadata.get("task"), "cuts": source.metadata.get("cuts"),
                    "labels": source.metadata.get("labels")},
        "features": {"set": feature_set, "particle": particle, "jet": list(JET_FEATURES) if kind == "bdt" else [],
                     "n_constituents": n_constituents, "n_particle_features": len(
                         particle_feature_names(_particle_set(feature_set)))},
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
    }


def _count_parameters(model: Any) -> int:
    from physagent.tools.tag._models import count_parameters

    return count_parameters(model)


def _versions() -> dict[str, str]:
    found = {}
    for name in ("torch", "weaver-core", "scikit-learn", "onnx", "onnxruntime"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


def load_tagger(artifact: Artifact) -> tuple[Any, dict[str, Any]]:
    """The fitted model of a model artifact (network in eval mode, or BDT) and its card (with the ids)."""
    card = dict(artifact.metadata)
    kind = card["model"]
    if kind == "bdt":
        import joblib

        return joblib.load(artifact.directory / "model.joblib"), card
    import torch

    from physagent.tools.tag._models import build_network

    net = build_network(kind, card["architecture"], card["features"]["n_particle_features"])
    net.load_state_dict(torch.load(artifact.directory / "model.pt", map_location="cpu", weights_only=True))
    return net.to(device()).eval(), card


def check_inputs_match(card: dict[str, Any], jets: Any, tool_name: str, param: str, data_id: str) -> None:
    """Raise a ToolInputError when ``jets`` lack what the model of ``card`` was trained on, or hold NaNs."""
    import awkward as ak

    kind, feature_set = card["model"], card["features"]["set"]
    fields = set(ak.fields(jets))
    needed = set(JET_FEATURES) if kind == "bdt" else {"constituents", "pt", "e"}
    missing = sorted(needed - fields)
    if missing:
        raise ToolInputError.for_param(
            tool_name, param, data_id, f"has no {', '.join(missing)}, which model {kind} ({feature_set} features) "
            "reads. Use jets from cluster_jets or make_jet_dataset.")
    if feature_set == "kinematic+pid" and not has_pid(jets):
        raise ToolInputError.for_param(
            tool_name, param, data_id, "has no pid and charge for its constituents, but the model was trained "
            "with features 'kinematic+pid'. Use jets with particle ids, or train with features='kinematic'.")
    bad = non_finite_fields(jets)
    if bad:
        raise ToolInputError.for_param(
            tool_name, param, data_id, f"has NaN or infinite values in {', '.join(bad)}. Drop or fix those jets first.")
