r"""Tagger performance the way the field reports it, and the figures that show it.

- ROC: signal efficiency ε_S (true-positive rate) against background efficiency ε_B (false-positive
  rate), from ``sklearn.metrics.roc_curve`` with every threshold kept and the jets' weights.
- AUC: ``sklearn.metrics.roc_auc_score`` (weighted).
- Background rejection 1/ε_B at a working point ε_S: ε_B linearly interpolated on the ROC at ε_S
  (as in the top-tagging comparison, arXiv:1902.09914). When no background jet passes, ε_B is
  bounded by one background jet's share of the weight, so the rejection is a lower bound.
- Accuracy: the weighted fraction of jets on the right side of score 0.5.

Plots follow the convention: 1/ε_B on a log axis against ε_S.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["WORKING_POINTS", "metrics", "plot_roc", "plot_training_curve", "rejection_at", "save_png"]

WORKING_POINTS = (0.3, 0.5)


def rejection_at(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray, signal_efficiency: float) -> float:
    """1/ε_B at ε_S = ``signal_efficiency``, interpolating ε_B on the ROC."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores, sample_weight=weights, drop_intermediate=False)
    background = weights[labels == 0]
    floor = float(background.min() / background.sum()) if background.size else 1.0
    return 1.0 / max(float(np.interp(signal_efficiency, tpr, fpr)), floor)


def metrics(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> dict[str, float]:
    """AUC, 1/ε_B at ε_S = 0.3 and 0.5, and accuracy at score 0.5."""
    from sklearn.metrics import roc_auc_score

    weights = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    correct = (scores >= 0.5) == (labels == 1)
    return {
        "auc": float(roc_auc_score(labels, scores, sample_weight=weights)),
        "rejection_at_30": rejection_at(labels, scores, weights, 0.3),
        "rejection_at_50": rejection_at(labels, scores, weights, 0.5),
        "accuracy": float(np.sum(weights * correct) / np.sum(weights)),
    }


def plot_roc(curves: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], title: str) -> Any:
    """1/ε_B (log) against ε_S for (label, labels, scores, weights) curves; returns the Figure.

    Drawn in the histogram plots' neutral style with their "Simulation" label (:mod:`tools.data.plots`).
    """
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_curve

    from physagent.tools.data.plots import experiment_label, style_context

    with style_context("neutral"):
        figure = Figure(figsize=(6.0, 4.8))
        ax = figure.subplots()
        for name, labels, scores, weights in curves:
            fpr, tpr, _ = roc_curve(labels, scores, sample_weight=weights)
            keep = fpr > 0
            ax.plot(tpr[keep], 1.0 / fpr[keep], label=name)
        grid = np.linspace(0.01, 1.0, 100)
        ax.plot(grid, 1.0 / grid, ls=":", color="grey", label="random (1/ε_B = 1/ε_S)")
        for point in WORKING_POINTS:
            ax.axvline(point, color="grey", lw=0.6, ls="--")
        ax.set_yscale("log")
        ax.set_xlim(0.0, 1.0)
        ax.set_xlabel("Signal efficiency ε_S")
        ax.set_ylabel("Background rejection 1/ε_B")
        figure.suptitle(title, fontsize=10)  # not ax.set_title: the Simulation label sits just above the axes
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, which="both")
        experiment_label(ax, "simulation", None, None)
    return figure


def plot_training_curve(history: list[dict[str, Any]], title: str, best_epoch: int) -> Any:
    """Training and validation loss, and validation AUC, per epoch (or boosting iteration); kept epoch marked."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 3.4))
    loss_ax, auc_ax = figure.subplots(1, 2)
    epochs = [row["epoch"] for row in history]
    loss_ax.plot(epochs, [row["train_loss"] for row in history], label="training")
    loss_ax.plot(epochs, [row["val_loss"] for row in history], label="validation")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("cross-entropy loss")
    aucs = [(row["epoch"], row["val_auc"]) for row in history if row.get("val_auc") is not None]
    if aucs:
        auc_ax.plot(*zip(*aucs, strict=True), color="C2")
    auc_ax.set_xlabel("epoch")
    auc_ax.set_ylabel("validation AUC")
    for ax in (loss_ax, auc_ax):
        ax.axvline(best_epoch, color="grey", lw=0.8, ls="--", label="kept (lowest validation loss)")
    loss_ax.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def save_png(figure: Any, path: Path) -> None:
    """Write a PNG without a software/date stamp, so identical figures give identical bytes."""
    figure.savefig(path, dpi=120, metadata={"Software": None}, bbox_inches="tight")
