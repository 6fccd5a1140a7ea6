r"""The training loop of ``train_tagger``: networks with AdamW and early stopping, the BDT by boosting.

Networks minimise the weighted cross-entropy with AdamW, a per-step learning-rate schedule (cosine decay,
one-cycle, or constant) and early stopping on the validation loss with the best epoch's weights restored;
everything is seeded. The jet MLP standardises its inputs with the mean and std of the training split.
The BDT boosts until the validation loss stops improving, then is refitted to the best iteration count.
Runs on CUDA when available, else on the CPU with :func:`tools.tag._runtime.torch_threads`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from physagent.tools._context import ToolContext
from physagent.tools._epochs import early_stopping_epochs
from physagent.tools.tag._architectures import INPUT_NAMES
from physagent.tools.tag._features import TaggerInputs, particle_feature_names
from physagent.tools.tag._inference import particle_set, score_network
from physagent.tools.tag._metrics import metrics
from physagent.tools.tag._runtime import device, torch_threads

__all__ = ["Fitted", "Settings", "Split", "fit"]


@dataclass(frozen=True)
class Split:
    """One split of the dataset: its rows, model inputs, labels and weights."""

    rows: np.ndarray  # row indices in the dataset
    inputs: TaggerInputs
    labels: np.ndarray
    weights: np.ndarray


@dataclass(frozen=True)
class Settings:
    """The optimisation settings of ``train_tagger``."""

    epochs: int
    batch_size: int
    learning_rate: float
    lr_schedule: str
    weight_decay: float
    patience: int
    seed: int


@dataclass(frozen=True)
class Fitted:
    """A trained model with its per-epoch history, best epoch, wall time, device and thread count."""

    model: Any  # nn.Module (best weights) or fitted sklearn estimator
    history: list[dict[str, Any]]
    best_epoch: int
    wall_s: float
    device: str
    threads: int


def fit(ctx: ToolContext, kind: str, arch: dict[str, Any], feature_set: str, splits: dict[str, Split],
        settings: Settings) -> Fitted:
    """Train a model of ``kind`` on the train split, stopping early on the validation split."""
    if kind == "bdt":
        return _fit_bdt(ctx, arch, splits, settings.seed)
    return _fit_network(ctx, kind, arch, len(particle_feature_names(particle_set(feature_set))), splits, settings)


def _fit_bdt(ctx: ToolContext, arch: dict[str, Any], splits: dict[str, Split], seed: int) -> Fitted:
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
    return Fitted(bdt, history, best, time.perf_counter() - start, "cpu", threads)


def _bdt_history(bdt: Any, val: Split) -> list[dict[str, Any]]:
    """Per boosting iteration: training and validation loss (sklearn stores them negated), validation AUC."""
    aucs = [metrics(val.labels, proba[:, 1], val.weights)["auc"] for proba in bdt.staged_predict_proba(val.inputs.jet)]
    losses = zip(bdt.train_score_[1:], bdt.validation_score_[1:], aucs, strict=True)
    return [{"epoch": i, "train_loss": -float(t), "val_loss": -float(v), "val_auc": auc}
            for i, (t, v, auc) in enumerate(losses, start=1)]


def _fit_network(ctx: ToolContext, kind: str, arch: dict[str, Any], n_features: int, splits: dict[str, Split],
                 settings: Settings) -> Fitted:
    import torch

    from physagent.tools.tag._models import JetMLP, build_network, jet_standardisation

    torch.manual_seed(settings.seed)
    where = device()
    with torch_threads() as threads:
        net = build_network(kind, arch, n_features)
        if isinstance(net, JetMLP):  # statistics of the training split only: validation and test stay unseen
            net.set_standardisation(*jet_standardisation(splits["train"].inputs.jet))
        net = net.to(where)
        start = time.perf_counter()
        history, best_state, best_epoch = _epochs(ctx, kind, net, splits, settings, where)
        net.load_state_dict(best_state)
        wall = time.perf_counter() - start
    return Fitted(net.eval(), history, best_epoch, wall, where, threads)


def _epochs(ctx: ToolContext, kind: str, net: Any, splits: dict[str, Split], settings: Settings, where: str
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
    def run_epoch() -> dict[str, float]:
        train_loss = _train_epoch(net, tensors, labels, weights, optimiser, scheduler, settings.batch_size,
                                  generator, where, ctx.check_cancelled)
        val_loss, val_scores = _validate(net, kind, val, where)
        val_auc = metrics(val.labels, val_scores, val.weights)["auc"]
        return {"train_loss": train_loss, "val_loss": val_loss, "val_auc": val_auc,
                "lr": optimiser.param_groups[0]["lr"]}

    return early_stopping_epochs(
        ctx, f"train {kind}", net, settings.epochs, settings.patience, run_epoch,
        lambda row: f"loss {row['train_loss']:.3f}, val loss {row['val_loss']:.3f}, val AUC {row['val_auc']:.3f}")


def _scheduler(optimiser: Any, settings: Settings, steps_per_epoch: int) -> Any:
    import torch

    total = settings.epochs * steps_per_epoch
    if settings.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=total)
    if settings.lr_schedule == "one_cycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=settings.learning_rate, total_steps=total)
    return None


def _tensors(kind: str, split: Split) -> list[Any]:
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


def _validate(net: Any, kind: str, split: Split, where: str) -> tuple[float, np.ndarray]:
    scores = score_network(net, kind, split.inputs, where)
    p = np.clip(np.where(split.labels == 1, scores, 1.0 - scores), 1e-7, 1.0)
    return float(np.sum(-np.log(p) * split.weights) / np.sum(split.weights)), scores
