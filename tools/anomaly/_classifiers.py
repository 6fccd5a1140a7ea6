r"""The k-fold classifiers behind the weakly supervised searches (CWoLa, CATHODE, the references), and the
checks of their inputs (signal region, class sizes) that every such tool shares.

Every method trains a binary classifier "class 1 vs class 0" on the features (signal region vs
sidebands, data vs background samples, …) and needs a score for every data event from a model that did
not see that event. :func:`kfold_classify` splits the training rows into ``n_folds`` stratified folds,
trains one classifier per fold on the other folds, and returns

- ``out_of_fold``: each training row scored by the one model that did not train on it;
- :meth:`FoldModels.predict_like_out_of_fold`: one fold model per row, for other data events a bump hunt
  cuts on together with the out-of-fold scores (same score distribution);
- :meth:`FoldModels.predict`: the mean over the fold models, for rows that were in no fold (events
  outside the training region, the labelled test set).

The score is the classifier's P(class 1 | x) = n₁p₁(x) / (n₁p₁(x) + n₀p₀(x)), a monotonic function of the
likelihood ratio p₁/p₀ whatever the class sizes n₁, n₀ (Metodiev, Nachman, Thaler, arXiv:1708.02949), so
classes are not reweighted (weighted binning made the BDT ten times slower) and folds are stratified,
keeping n₁/n₀ the same in every fold.

Classifiers (:data:`CLASSIFIERS`):

- ``bdt``: scikit-learn ``HistGradientBoostingClassifier`` with the tiny settings of the ``train_tagger``
  BDT (:func:`tools.tag._models.build_bdt`), early stopping on an internal fifth of each training fold;
- ``mlp``: standardised features into an sklearn ``MLPClassifier`` (64-64, ReLU, Adam), early stopping
  on an internal fifth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools.anomaly._search_data import AnomalyDatasetRef, SearchData, Table, Windows

__all__ = ["CLASSIFIERS", "MIN_PER_FOLD", "ClassifierKind", "ClassifierParam", "DatasetParam", "FoldModels",
           "build_classifier",
           "check_class_counts", "check_not_empty", "feature_matrix", "kfold_classify", "search_windows"]

ClassifierKind = Literal["bdt", "mlp"]
# the parameters every weakly supervised tool takes, described once
DatasetParam = Annotated[AnomalyDatasetRef, Field(description="Id of an anomaly_dataset artifact "
                                                              "(make_anomaly_dataset).")]
ClassifierParam = Annotated[ClassifierKind, Field(description="bdt (gradient-boosted trees, the default) or mlp "
                                                              "(a small neural network).")]
CLASSIFIERS = ("bdt", "mlp")
MIN_PER_FOLD = 10  # events of each class per fold: fewer, and a fold's model has nothing to learn from
_VALIDATION_FRACTION = 0.2


@dataclass(frozen=True)
class FoldModels:
    """One fitted classifier per fold, and the out-of-fold score of every training row."""

    models: list[Any]
    out_of_fold: np.ndarray  # P(class 1) from the model that did not train on the row
    fold: np.ndarray  # the fold each training row was held out in

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Mean P(class 1) over the fold models, for rows none of them trained on."""
        from physagent.tools.tag._runtime import torch_threads

        if len(x) == 0:
            return np.zeros(0)
        with torch_threads():  # sklearn predicts on OpenMP threads too
            return np.mean([_probability(model, x) for model in self.models], axis=0)

    def predict_like_out_of_fold(self, x: np.ndarray) -> np.ndarray:
        """P(class 1) of each row from ONE fold model (row i → model i mod k), for data events outside the
        training rows that a bump hunt cuts on together with out-of-fold scores: the fold mean has narrower
        tails than a single model, so a cut on mixed scores would keep more training-region events and
        fake a bump."""
        from physagent.tools.tag._runtime import torch_threads

        scores = np.zeros(len(x))
        assigned = np.arange(len(x)) % len(self.models)
        with torch_threads():
            for index, model in enumerate(self.models):
                rows = assigned == index
                if rows.any():
                    scores[rows] = _probability(model, x[rows])
        return scores


def build_classifier(kind: str, seed: int) -> Any:
    """An unfitted classifier of ``kind`` ('bdt' or 'mlp') with early stopping on an internal split."""
    if kind == "bdt":
        from physagent.tools.tag._architectures import ARCHITECTURES
        from physagent.tools.tag._models import build_bdt

        return build_bdt(ARCHITECTURES["bdt"]["tiny"], seed).set_params(
            max_iter=200, validation_fraction=_VALIDATION_FRACTION)
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), MLPClassifier(
        hidden_layer_sizes=(64, 64), batch_size=256, learning_rate_init=1e-3, alpha=1e-4, max_iter=100,
        early_stopping=True, validation_fraction=_VALIDATION_FRACTION, n_iter_no_change=8, random_state=seed))


def check_class_counts(tool: str, counts: dict[str, int], n_folds: int, fix: str) -> None:
    """Refuse a classifier whose classes (name → events) cannot fill ``n_folds`` folds.

    Raises:
        ToolInputError: naming ``n_folds`` and the class that is short, with ``fix`` as the way out.
    """
    need = MIN_PER_FOLD * n_folds
    short = {name: n for name, n in counts.items() if n < need}
    if short:
        have = ", ".join(f"{n:,} events in the {name}" for name, n in short.items())
        raise ToolInputError.for_param(
            tool, "n_folds", n_folds, f"needs at least {need:,} events per class ({MIN_PER_FOLD} per fold), but "
            f"there are {have}. Lower n_folds, {fix}.")


def search_windows(tool: str, data: SearchData, signal_region_gev: list[float] | None) -> Windows:
    """The dataset's windows, or its sidebands around ``signal_region_gev`` [low, high] in GeV when given."""
    card = data.windows
    if signal_region_gev is None:
        return card
    sr_lo, sr_hi = (float(v) for v in signal_region_gev)
    lo, hi = card.sidebands_gev
    if not lo < sr_lo < sr_hi < hi:
        raise ToolInputError.for_param(tool, "signal_region_gev", signal_region_gev, (
            f"must be an interval [low, high] with low < high inside the dataset's sidebands {lo:g}–{hi:g} GeV "
            "(with room for sidebands on both sides). Choose a window inside that range."))
    return Windows((sr_lo, sr_hi), (lo, hi))


def check_not_empty(tool: str, windows: Windows, counts: dict[str, int]) -> None:
    """Refuse a search whose signal region or sidebands (name → data events) hold no data events."""
    empty = [name for name, n in counts.items() if n == 0]
    if empty:
        (sr_lo, sr_hi), (lo, hi) = windows.signal_region_gev, windows.sidebands_gev
        raise ToolInputError.for_param(tool, "signal_region_gev", [sr_lo, sr_hi], (
            f"leaves no data events in the {' or the '.join(empty)} (sidebands {lo:g}–{hi:g} GeV). Move the "
            "signal region to where the data are, or check the dataset's m_jj range."))


def feature_matrix(table: Table, features: list[str]) -> np.ndarray:
    """The (N, F) array of ``features`` of ``table``."""
    return np.column_stack([np.asarray(table[name], dtype=np.float64) for name in features])


def kfold_classify(ctx: ToolContext, x: np.ndarray, y: np.ndarray, kind: str, n_folds: int, seed: int,
                   task: str = "k-fold classifier") -> FoldModels:
    """Train ``n_folds`` classifiers of ``kind`` on ``x`` (N, F) with labels ``y`` ∈ {0, 1}; see the module doc."""
    from sklearn.model_selection import StratifiedKFold

    from physagent.tools.tag._runtime import torch_threads

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64)
    out_of_fold, fold = np.zeros(len(y)), np.zeros(len(y), dtype=np.int64)
    models = []
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    with ctx.progress(task, total=n_folds, unit="folds") as bar, torch_threads():
        for index, (train, held_out) in enumerate(splitter.split(x, y)):
            model = build_classifier(kind, seed + index).fit(x[train], y[train])
            out_of_fold[held_out] = _probability(model, x[held_out])
            fold[held_out] = index
            models.append(model)
            bar.advance()
    return FoldModels(models, out_of_fold, fold)


def _probability(model: Any, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict_proba(x)[:, 1], dtype=np.float64)
