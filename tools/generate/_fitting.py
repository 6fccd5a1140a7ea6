r"""The training loop shared by every generator: AdamW, cosine decay, early stopping on a validation split.

A generator is an ``nn.Module`` with ``loss(*tensors, generator=...)`` returning the mean loss of a batch
(negative log-likelihood per sample for flows, the flow-matching regression loss for point clouds). The
loop draws batches in a seeded order, evaluates the validation split with a fixed noise seed every epoch
(so validation losses of different epochs compare the same noise), keeps the epoch with the lowest
validation loss and restores its weights. Training runs on the CPU threads of
:func:`tools.tag._runtime.torch_threads`; everything is seeded.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from physagent.tools._context import ToolContext
from physagent.tools._epochs import early_stopping_epochs
from physagent.tools.tag._runtime import torch_threads

__all__ = ["Fitted", "Settings", "count_parameters", "fit", "plot_training_curve", "save_png", "split_indices",
           "versions"]


@dataclass(frozen=True)
class Settings:
    """The optimisation settings of ``train_generator``."""

    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    patience: int
    validation_fraction: float
    seed: int


@dataclass(frozen=True)
class Fitted:
    """A trained generator (best weights, eval mode) with its per-epoch history, best epoch and wall time."""

    model: Any
    history: list[dict[str, float]]
    best_epoch: int
    wall_s: float
    threads: int


def split_indices(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded shuffle of ``range(n)`` cut into training and validation rows (at least one of each)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(max(1, round(n * fraction)), n - 1)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def fit(ctx: ToolContext, model: Any, train: tuple[Any, ...], validation: tuple[Any, ...], settings: Settings,
        label: str) -> Fitted:
    """Train ``model`` on the ``train`` tensors (first axis: samples), stopping early on ``validation``."""
    import torch

    torch.manual_seed(settings.seed)
    with torch_threads() as threads:
        start = time.perf_counter()
        history, best_state, best_epoch = _epochs(ctx, model, train, validation, settings, label)
        model.load_state_dict(best_state)
        wall = time.perf_counter() - start
    return Fitted(model.eval(), history, best_epoch, wall, threads)


def _epochs(ctx: ToolContext, model: Any, train: tuple[Any, ...], validation: tuple[Any, ...], settings: Settings,
            label: str) -> tuple[list[dict[str, float]], dict[str, Any], int]:
    import torch

    n = len(train[0])
    steps = max(1, math.ceil(n / settings.batch_size))
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=settings.epochs * steps)
    generator = torch.Generator().manual_seed(settings.seed)
    def run_epoch() -> dict[str, float]:
        train_loss = _train_epoch(ctx, model, train, optimiser, scheduler, settings.batch_size, generator)
        val_loss = evaluate_loss(model, validation, settings.batch_size, settings.seed)
        return {"train_loss": train_loss, "val_loss": val_loss, "lr": optimiser.param_groups[0]["lr"]}

    return early_stopping_epochs(ctx, f"train {label}", model, settings.epochs, settings.patience, run_epoch,
                                 lambda row: f"loss {row['train_loss']:.4g}, val loss {row['val_loss']:.4g}")


def _train_epoch(ctx: ToolContext, model: Any, tensors: tuple[Any, ...], optimiser: Any, scheduler: Any,
                 batch_size: int, generator: Any) -> float:
    import torch

    model.train()
    order = torch.randperm(len(tensors[0]), generator=generator)
    total, count = 0.0, 0
    for start in range(0, len(order), batch_size):
        ctx.check_cancelled()
        index = order[start:start + batch_size]
        loss = model.loss(*(t[index] for t in tensors), generator=generator)
        if not torch.isfinite(loss):
            continue  # a rare outlier batch of a flow; skipping it keeps the weights finite
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimiser.step()
        scheduler.step()
        total += loss.item() * len(index)
        count += len(index)
    return total / max(count, 1)


def evaluate_loss(model: Any, tensors: tuple[Any, ...], batch_size: int, seed: int) -> float:
    """Mean loss over ``tensors`` with a fixed noise seed (the same noise every epoch)."""
    import torch

    model.eval()
    generator = torch.Generator().manual_seed(seed + 1)
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(tensors[0]), batch_size):
            batch = tuple(t[start:start + batch_size] for t in tensors)
            total += model.loss(*batch, generator=generator).item() * len(batch[0])
            count += len(batch[0])
    return total / max(count, 1)


def count_parameters(model: Any) -> int:
    """Trainable parameters of a network."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def plot_training_curve(history: list[dict[str, Any]], title: str, best_epoch: int, loss_name: str) -> Any:
    """Training and validation loss per epoch, the kept epoch marked; returns the Figure."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 3.6))
    ax = figure.subplots()
    epochs = [row["epoch"] for row in history]
    ax.plot(epochs, [row["train_loss"] for row in history], label="training")
    ax.plot(epochs, [row["val_loss"] for row in history], label="validation")
    ax.axvline(best_epoch, color="grey", lw=0.8, ls="--", label="kept (lowest validation loss)")
    ax.set_xlabel("epoch")
    ax.set_ylabel(loss_name)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    figure.tight_layout()
    return figure


def save_png(figure: Any, path: Path) -> None:
    """Write a PNG without a software/date stamp, so identical figures give identical bytes."""
    figure.savefig(path, dpi=120, metadata={"Software": None}, bbox_inches="tight")


def versions() -> dict[str, str]:
    """Versions of the packages a generator's numbers depend on."""
    found = {}
    for name in ("torch", "zuko", "numpy"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found
