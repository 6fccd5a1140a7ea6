r"""What fixed point costs: float model against its bit-accurate emulation on the same events.

Outputs: max and mean |Δ| over every output value (logits, the reconstruction ẑ, or BDT log-odds).
Task metric: for a tagger the AUC of the signal probability (softmax of the logits' second column; the
sigmoid of a BDT's log-odds) on the dataset's labels, weighted by the jets' weights as evaluate_tagger
does; for the autoencoder the anomaly score s = ‖ẑ − z‖²/F, its mean relative change, and the AUC of s
against the signal truth of the anomaly dataset's test table (as the anomaly tools evaluate it).
ΔAUC = AUC(fixed) − AUC(float): negative when fixed point costs separation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from physagent.tools.fpga._data import EvalData
from physagent.tools.fpga._models import Exportable, task_scores

__all__ = ["Comparison", "Fidelity", "compare_outputs", "fidelity_plot"]


class Fidelity(BaseModel):
    """Float model vs its fixed-point emulation on one set of events."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(description="Id of the dataset compared on.")
    split: str = Field(description="Its split used: test, validation, train or all.")
    n_events: int = Field(description="Events (jets) compared.")
    output: str = Field(description="What was compared: logits, reconstruction ẑ, or BDT log-odds.")
    max_abs_delta_output: float = Field(description="Largest |fixed − float| over all outputs.")
    mean_abs_delta_output: float = Field(description="Mean |fixed − float| over all outputs.")
    score: str = Field(description="The task score: signal probability, or reconstruction error.")
    mean_score_float: float = Field(description="Mean score of the float model.")
    mean_score_fixed: float = Field(description="Mean score of the fixed-point emulation.")
    relative_delta_mean_score: float = Field(description="(mean fixed score − mean float score) / mean float "
                                                         "score; for the autoencoder the relative change of the "
                                                         "mean reconstruction error.")
    mean_abs_delta_score: float = Field(description="Mean |fixed − float| of the per-event score.")
    auc_float: float | None = Field(description="AUC of the float model's score (None: the dataset has no "
                                                "labels of both classes).")
    auc_fixed: float | None = Field(description="AUC of the fixed-point score.")
    delta_auc: float | None = Field(description="AUC(fixed) − AUC(float); negative means fixed point loses "
                                                "separation.")


@dataclass(frozen=True)
class Comparison:
    """A fidelity summary and the arrays behind it (for plots)."""

    fidelity: Fidelity
    float_out: np.ndarray
    fixed_out: np.ndarray
    float_scores: np.ndarray
    fixed_scores: np.ndarray
    labels: np.ndarray | None
    dataset_sha256: str


def compare_outputs(model: Exportable, data: EvalData, float_out: np.ndarray, fixed_out: np.ndarray) -> Comparison:
    """The :class:`Fidelity` of ``fixed_out`` against ``float_out`` (both (n, k)) on ``data``."""
    float_out = np.asarray(float_out, dtype=np.float64).reshape(len(data), -1)
    fixed_out = np.asarray(fixed_out, dtype=np.float64).reshape(float_out.shape)
    delta = np.abs(fixed_out - float_out)
    s_float, s_fixed = task_scores(model, float_out, data.x), task_scores(model, fixed_out, data.x)
    auc_float, auc_fixed = auc(data, s_float), auc(data, s_fixed)
    mean_float = float(s_float.mean())
    fidelity = Fidelity(
        dataset=data.dataset.id, split=data.split, n_events=len(data), output=model.output,
        max_abs_delta_output=float(delta.max()), mean_abs_delta_output=float(delta.mean()), score=model.score,
        mean_score_float=mean_float, mean_score_fixed=float(s_fixed.mean()),
        relative_delta_mean_score=float((s_fixed.mean() - mean_float) / mean_float) if mean_float else 0.0,
        mean_abs_delta_score=float(np.abs(s_fixed - s_float).mean()), auc_float=auc_float, auc_fixed=auc_fixed,
        delta_auc=None if auc_float is None or auc_fixed is None else auc_fixed - auc_float)
    return Comparison(fidelity, float_out, fixed_out, s_float, s_fixed, data.labels, data.dataset.sha256)


def auc(data: EvalData, scores: np.ndarray) -> float | None:
    """Weighted ROC AUC of ``scores`` on the data's labels; None without labels of both classes."""
    from sklearn.metrics import roc_auc_score

    if data.labels is None or len(np.unique(data.labels)) < 2:
        return None
    return float(roc_auc_score(data.labels, scores, sample_weight=data.weights))


def fidelity_plot(model: Exportable, comparison: Comparison, precision: str) -> Any:
    """Left: fixed against float outputs. Right: score distributions, float (lines) and fixed (filled)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9.0, 3.8))
    scatter, scores = figure.subplots(1, 2)
    f, q = comparison.float_out.ravel(), comparison.fixed_out.ravel()
    scatter.scatter(f, q, s=3, alpha=0.4, lw=0)
    low, high = float(min(f.min(), q.min())), float(max(f.max(), q.max()))
    scatter.plot([low, high], [low, high], color="grey", lw=0.8, ls="--", label="fixed = float")
    scatter.set_xlabel(f"float output ({model.output})", fontsize=8)
    scatter.set_ylabel(f"fixed-point output, {precision}", fontsize=8)
    scatter.legend(fontsize=8, loc="upper left")  # off the diagonal; "best" over thousands of points is slow
    _score_histograms(scores, model, comparison)
    fid = comparison.fidelity
    auc_text = f", ΔAUC = {fid.delta_auc:+.4f}" if fid.delta_auc is not None else ""
    figure.suptitle(f"{model.kind} at {precision}: max |Δ| = {fid.max_abs_delta_output:.3g}{auc_text}", fontsize=10)
    figure.tight_layout()
    return figure


def _score_histograms(ax: Any, model: Exportable, comparison: Comparison) -> None:
    """Per class when labels exist (signal red, background blue), else all events."""
    log = model.task == "autoencoder"

    def shown(s: np.ndarray) -> np.ndarray:
        return np.log10(np.maximum(s, 1e-12)) if log else s

    both = shown(np.concatenate([comparison.float_scores, comparison.fixed_scores]))
    bins = np.linspace(float(both.min()), float(both.max()) + 1e-9, 41)
    labels = comparison.labels
    classes = [("all", np.ones(len(comparison.float_scores), bool), "C0")] if labels is None else [
        ("background", labels == 0, "C0"), ("signal", labels == 1, "C3")]
    for name, rows, colour in classes:
        ax.hist(shown(comparison.fixed_scores[rows]), bins=bins, alpha=0.35, color=colour, label=f"{name}, fixed")
        ax.hist(shown(comparison.float_scores[rows]), bins=bins, histtype="step", color=colour,
                label=f"{name}, float")
    ax.set_xlabel(("log10 " if log else "") + model.score, fontsize=8)
    ax.set_ylabel("events")
    ax.set_yscale("log")
    ax.legend(fontsize=7, title=f"{comparison.fidelity.n_events:,} events", title_fontsize=7, loc="upper center")
