r"""``reference_anomaly_classifier``: the upper references a weakly supervised search is measured against.

Neither is a search — each reads what real data never offers — and the result says so
(``is_reference=True``, and ``inputs_seen`` names the forbidden input):

- ``idealized`` — the *idealized anomaly detector* (Hallin et al., CATHODE, arXiv:2109.00546; Nachman,
  Shih, ANODE, arXiv:2001.04990): a classifier of signal-region data vs the dataset's independent
  *reference background* simulation in the signal region, i.e. CATHODE with a perfect background model.
  It bounds what CWoLa and CATHODE can reach on the same data.
- ``supervised`` — a classifier of signal vs background trained with truth labels: the data's own truth
  labels in the signal region (the injected signal and the background it sits on). Those events are not
  in the held-out test set (:mod:`tools.anomaly._injection` keeps the test set's events apart), so the
  evaluation is honest; with few injected signal events it is a modest, not an ultimate, bound.

Both train k-fold (:mod:`tools.anomaly._classifiers`): signal-region data events are scored out of fold,
all other data events by one fold classifier each (the same score distribution, so a cut fakes no bump),
the test set by the mean of the fold classifiers.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import tool
from physagent.tools.anomaly._classifiers import (
    ClassifierParam,
    DatasetParam,
    check_class_counts,
    check_not_empty,
    feature_matrix,
    kfold_classify,
    search_windows,
)
from physagent.tools.anomaly._method_result import AnomalyScores, write_scores
from physagent.tools.anomaly._search_data import (
    MASS,
    TRUTH,
    SearchData,
    Windows,
    check_features,
    read_search_data,
)

__all__ = ["ReferenceMethod", "reference_anomaly_classifier"]

_TOOL = "reference_anomaly_classifier"
ReferenceMethod = Literal["idealized", "supervised"]


@tool(category="anomaly", version="1")
def reference_anomaly_classifier(
    dataset: DatasetParam,
    method: Annotated[ReferenceMethod, Field(
        description="idealized (signal-region data vs the dataset's reference background simulation) or "
                    "supervised (signal vs background with truth labels).",
        json_schema_extra={"x-phrases": {"idealized": "idealized", "ideal": "idealized",
                                         "perfect background": "idealized", "supervised": "supervised",
                                         "fully supervised": "supervised", "truth labels": "supervised"}})
    ] = "idealized",
    features: Annotated[list[str] | None, Field(max_length=16, description=(
        "Classifier inputs, columns of the dataset (None: mj1_gev, delta_mj_gev, tau21_j1, tau21_j2). Never "
        "mjj_gev or the truth label."))] = None,
    classifier: ClassifierParam = "bdt",
    n_folds: Annotated[int, Field(ge=2, le=10, description="k of the k-fold training: every signal-region data "
                                                           "event is scored by a model that did not train on "
                                                           "it.")] = 5,
    signal_region_gev: Annotated[list[float] | None, Field(min_length=2, max_length=2, description=(
        "Signal region [low, high] in m_jj, GeV (None: the dataset's)."))] = None,
    seed: Annotated[int, Field(ge=0, description="Random seed for the folds and the classifiers.")] = 0,
    *,
    ctx: ToolContext,
) -> AnomalyScores:
    """Train a reference anomaly classifier (idealized or supervised) that a real search cannot build.

    The idealized detector separates signal-region data from a perfect background simulation; the
    supervised one uses truth labels. Both mark the best a weakly supervised search (CWoLa, CATHODE) could
    do on the dataset; the result says what they read (is_reference=True). Evaluates AUC and SIC on the test set.
    """
    data = read_search_data(ctx, dataset)
    chosen = check_features(_TOOL, features, data)
    windows = search_windows(_TOOL, data, signal_region_gev)
    observed = data.observed()
    x, mjj = feature_matrix(observed, chosen), np.asarray(observed[MASS], dtype=np.float64)
    in_sr = windows.in_signal_region(mjj)
    if method == "idealized":
        x_train, y_train, seen, note = _idealized(data, windows, x[in_sr], chosen, n_folds)
    else:
        x_train, y_train, seen, note = _supervised(data, windows, x[in_sr], chosen, n_folds, dataset)
    models = kfold_classify(ctx, x_train, y_train, classifier, n_folds, seed, f"{method} reference")
    scores = np.empty(len(mjj))
    scores[in_sr] = models.out_of_fold[:int(in_sr.sum())]  # the data's signal-region rows come first
    scores[~in_sr] = models.predict_like_out_of_fold(x[~in_sr])
    return write_scores(
        ctx, data, scores, models.predict(feature_matrix(data.test, chosen)), method, seen,
        n_data_events_seen=int(in_sr.sum()), is_reference=True, windows=windows,
        label=f"{method} ({classifier})", notes=f"{note} {classifier} classifiers, {n_folds}-fold.",
    )


def _idealized(data: SearchData, windows: Windows, x_sr: np.ndarray, features: list[str], n_folds: int
               ) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """Signal-region data (class 1) vs the reference background in the signal region (class 0)."""
    reference = data.reference
    in_sr = windows.in_signal_region(np.asarray(reference[MASS], dtype=np.float64))
    counts = {"signal region": len(x_sr), "reference background in the signal region": int(in_sr.sum())}
    check_not_empty(_TOOL, windows, {"signal region": len(x_sr)})
    check_class_counts(_TOOL, counts, n_folds, "widen signal_region_gev, or make a larger dataset")
    x_ref = feature_matrix(reference, features)[in_sr]
    names = ", ".join(features)
    seen = [f"data: {names} of the signal-region events; {MASS} only to select the signal region",
            f"reference_background: {names} of its signal-region events (idealized reference: a perfect "
            "background model, which a real search does not have)"]
    note = (f"Idealized anomaly detector: {len(x_sr):,} signal-region data events vs {len(x_ref):,} reference "
            "background events; an upper reference for CWoLa and CATHODE, not a search.")
    return np.concatenate([x_sr, x_ref]), np.concatenate([np.ones(len(x_sr)), np.zeros(len(x_ref))]).astype(
        np.int64), seen, note


def _supervised(data: SearchData, windows: Windows, x_sr: np.ndarray, features: list[str], n_folds: int,
                dataset: str) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """Signal-region data with their truth labels: signal (1) vs background (0)."""
    labels = np.asarray(data.data[TRUTH]).astype(np.int64)[windows.in_signal_region(
        np.asarray(data.data[MASS], dtype=np.float64))]
    check_not_empty(_TOOL, windows, {"signal region": len(x_sr)})
    n_signal = int(labels.sum())
    if n_signal == 0:
        raise ToolInputError.for_param(_TOOL, "method", "supervised", (
            f"needs signal events with truth labels, but dataset {dataset} has no injected signal in its signal "
            "region (S/B = 0?). Use method='idealized', or a dataset with signal injected."))
    check_class_counts(_TOOL, {"labelled signal": n_signal, "labelled background": len(labels) - n_signal},
                       n_folds, "widen signal_region_gev, or make a dataset with more signal injected")
    names = ", ".join(features)
    seen = [f"data: {names} of the signal-region events; {MASS} only to select the signal region",
            f"data: the truth column {TRUTH!r} of the signal-region events (supervised reference: reads truth "
            "labels, which a real search does not have; none of these events is in the test set)"]
    note = (f"Fully supervised reference: {n_signal:,} labelled signal vs {len(labels) - n_signal:,} labelled "
            "background events of the observed data's signal region; not a search.")
    return x_sr, labels, seen, note
