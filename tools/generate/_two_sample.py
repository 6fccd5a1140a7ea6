r"""Classifier two-sample test: can a classifier tell the candidate sample from the reference?

The test of Friedman (PHYSTAT 2003, eConf C030908 THPD002) and Lopez-Paz & Oquab (arXiv:1610.06545), used to validate
calorimeter surrogates in CaloFlow (arXiv:2106.05285) and the CaloChallenge (arXiv:2410.21611):

1. draw the same number of rows from each sample (the smaller sample's size; balanced classes, so
   AUC = 0.5 means chance), label reference 0 and candidate 1;
2. split them, stratified, into ``1 − TEST_FRACTION`` for training and ``TEST_FRACTION`` held out;
3. standardise the features with the training rows' mean and standard deviation;
4. train a gradient-boosted decision tree (``HistGradientBoostingClassifier``) and a multilayer
   perceptron (``MLPClassifier``, 2 × 64 ReLU units), both with early stopping on a validation part of the
   training rows;
5. report the ROC AUC on the held-out rows. 0.5: the samples are indistinguishable to this classifier;
   1.0: perfectly separable. (A value a little below 0.5 is a statistical fluctuation.)

The AUC's standard error is that of Hanley & McNeil, Radiology 143 (1982) 29:

.. math:: \sigma_A^2 = \frac{A(1-A) + (n_1 - 1)(Q_1 - A^2) + (n_0 - 1)(Q_2 - A^2)}{n_0 n_1},
          \quad Q_1 = \frac{A}{2 - A},\ Q_2 = \frac{2A^2}{1 + A},

with :math:`n_0, n_1` the held-out rows of each class (≈ 0.017 for 600 + 600 rows at A = 0.5).
Everything is seeded: the same inputs and seed give the same AUCs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["MIN_ROWS_PER_CLASS", "TEST_FRACTION", "ClassifierScore", "auc_standard_error", "classifier_test"]

TEST_FRACTION = 0.3
#: Fewest rows per sample the split needs: ≥ 15 held out per class, and enough left to train and stop early.
MIN_ROWS_PER_CLASS = 50
_THREADED_ROWS = 50_000  # training rows from which the classifiers use every core


@dataclass(frozen=True)
class ClassifierScore:
    """One classifier's held-out AUC, its standard error, and the held-out rows per sample."""

    auc: float
    auc_err: float
    n_test: int


def auc_standard_error(auc: float, n_positive: int, n_negative: int) -> float:
    """Hanley–McNeil standard error of an AUC measured on ``n_positive`` and ``n_negative`` rows.

    >>> round(auc_standard_error(0.5, 600, 600), 4)
    0.0167
    """
    q1, q2 = auc / (2.0 - auc), 2.0 * auc**2 / (1.0 + auc)
    variance = (auc * (1 - auc) + (n_positive - 1) * (q1 - auc**2) + (n_negative - 1) * (q2 - auc**2)) / (
        n_positive * n_negative)
    return float(np.sqrt(max(variance, 0.0)))


def classifier_test(reference: np.ndarray, candidate: np.ndarray, seed: int = 0) -> dict[str, ClassifierScore]:
    """Held-out AUCs of a GBDT and an MLP separating two (N, d) samples: ``{"gbdt": …, "mlp": …}``.

    Raises:
        ValueError: a sample has fewer than :data:`MIN_ROWS_PER_CLASS` rows.
    """
    from sklearn.model_selection import train_test_split

    n = min(len(reference), len(candidate))
    if n < MIN_ROWS_PER_CLASS:
        raise ValueError(f"needs at least {MIN_ROWS_PER_CLASS} rows per sample, got {n}")
    rng = np.random.default_rng(seed)
    rows = np.vstack([reference[rng.choice(len(reference), n, replace=False)],
                      candidate[rng.choice(len(candidate), n, replace=False)]])
    labels = np.repeat([0, 1], n)
    x_train, x_test, y_train, y_test = train_test_split(rows, labels, test_size=TEST_FRACTION, stratify=labels,
                                                        random_state=seed)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    return {name: _score(model, x_train, y_train, x_test, y_test) for name, model in _models(seed).items()}


def _models(seed: int) -> dict[str, object]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.neural_network import MLPClassifier

    return {
        "gbdt": HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, early_stopping=True,
                                               validation_fraction=0.2, n_iter_no_change=10, random_state=seed),
        "mlp": MLPClassifier(hidden_layer_sizes=(64, 64), alpha=1e-4, learning_rate_init=1e-3,
                             max_iter=200, early_stopping=True, validation_fraction=0.2, n_iter_no_change=10,
                             random_state=seed),
    }


def _score(model: object, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
           y_test: np.ndarray) -> ClassifierScore:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    # small samples train faster on one thread: OpenMP workers spin-wait on a busy machine
    threads = 1 if len(x_train) < _THREADED_ROWS else None
    with warnings.catch_warnings(), threadpool_limits(limits=threads):
        warnings.simplefilter("ignore", ConvergenceWarning)  # early stopping decides; the cap is a budget
        model.fit(x_train, y_train)  # type: ignore[attr-defined]
    scores = model.predict_proba(x_test)[:, 1]  # type: ignore[attr-defined]
    auc = float(roc_auc_score(y_test, scores))
    n_positive, n_negative = int(np.sum(y_test == 1)), int(np.sum(y_test == 0))
    return ClassifierScore(auc, auc_standard_error(auc, n_positive, n_negative), min(n_positive, n_negative))
