r"""Scoring an anomaly score against truth: the only reader of the held-out, labelled test set.

ROC from the test set's labels (signal 1, background 0). The significance improvement characteristic
SIC = ε_S/√ε_B says by how much a cut on the score multiplies a counting experiment's S/√B. Its maximum
is taken only where at least :data:`MIN_BACKGROUND` test background events pass, so a lucky cut that
keeps one background event cannot claim a huge SIC.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from physagent.tools.anomaly._search_data import TRUTH, SearchData

__all__ = ["MIN_BACKGROUND", "SIGNAL_EFFICIENCY", "Metrics", "evaluate_scores"]

MIN_BACKGROUND = 10  # test background events that must pass a cut for its SIC to count
SIGNAL_EFFICIENCY = 0.2  # the working point quoted as "SIC at ε_S = 0.2"


@dataclass(frozen=True)
class Metrics:
    """ROC and SIC of one score on the test set."""

    auc: float
    sic_at_signal_eff_0p2: float
    max_sic: float
    signal_efficiency: np.ndarray  # ε_S per threshold, descending threshold
    background_efficiency: np.ndarray
    n_signal: int
    n_background: int

    def as_dict(self) -> dict[str, float | int]:
        return {"auc": self.auc, "sic_at_signal_eff_0p2": self.sic_at_signal_eff_0p2, "max_sic": self.max_sic,
                "n_test_signal": self.n_signal, "n_test_background": self.n_background}


def evaluate_scores(scores: np.ndarray, data: SearchData) -> Metrics:
    """ROC/AUC and SIC of ``scores`` (one per row of ``data.test``; larger = more anomalous)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    labels = np.asarray(data.test[TRUTH]).astype(int)
    scores = np.asarray(scores, dtype=float)
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.shape[0]} scores for {labels.shape[0]} test events")
    eps_b, eps_s, _ = roc_curve(labels, scores, drop_intermediate=False)  # max SIC needs every threshold
    n_signal, n_background = int(labels.sum()), int((labels == 0).sum())
    return Metrics(
        auc=float(roc_auc_score(labels, scores)),
        sic_at_signal_eff_0p2=_sic_at(eps_s, eps_b, SIGNAL_EFFICIENCY, n_background),
        max_sic=_max_sic(eps_s, eps_b, n_background),
        signal_efficiency=eps_s, background_efficiency=eps_b, n_signal=n_signal, n_background=n_background,
    )


def _sic_at(eps_s: np.ndarray, eps_b: np.ndarray, target: float, n_background: int) -> float:
    # ε_B interpolated on the ROC at ε_S = target (tied scores make steps in ε_S; interpolating is the
    # random tie-break), and no passing test background means ε_B < 1/n_B, not 0: bounded there, so the
    # SIC is limited by the test set's size rather than divided by zero
    index = min(int(np.searchsorted(eps_s, target)), len(eps_s) - 1)  # eps_s rises along the ROC
    if index == 0 or eps_s[index] <= eps_s[index - 1]:
        eps_b_at = float(eps_b[index])
    else:  # between the last point below the target and the first at or above it
        step = (target - eps_s[index - 1]) / (eps_s[index] - eps_s[index - 1])
        eps_b_at = float(eps_b[index - 1] + step * (eps_b[index] - eps_b[index - 1]))
    return float(target / np.sqrt(max(eps_b_at, 1.0 / max(n_background, 1))))


def _max_sic(eps_s: np.ndarray, eps_b: np.ndarray, n_background: int) -> float:
    usable = eps_b * n_background >= MIN_BACKGROUND
    if not usable.any():
        return float("nan")
    return float(np.max(eps_s[usable] / np.sqrt(eps_b[usable])))
