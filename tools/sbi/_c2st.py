r"""The classifier two-sample test (C2ST): how well a classifier tells two sets of samples apart.

The accuracy of a classifier trained to separate samples of P (label 0) from samples of Q (label 1), estimated
by cross validation: 0.5 means P and Q are indistinguishable (to this classifier), 1.0 means fully separable.
It is the main metric of the sbibm benchmark, between an inference method's posterior samples and reference
posterior samples (same number of each, 10⁴ in sbibm).

We compute it exactly as sbibm does (``sbibm.metrics.c2st``): both samples z-scored with the mean and standard
deviation (ddof = 1) of the first; scikit-learn's ``MLPClassifier`` with two ReLU hidden layers of 10·dim units,
adam, ``max_iter=10000`` (stopping when the training loss stalls, sklearn's defaults); 5-fold ``KFold`` with
shuffling; the mean test accuracy. ``sbi.utils.metrics.c2st(classifier="mlp")`` differs (``max_iter=1000``,
early stopping on a validation split), so it is not reused. A feature of the first sample with zero spread is
left unscaled instead of dividing by zero, as ``sbi`` does.

References: Lopez-Paz & Oquab, arXiv:1610.06545 (C2ST); Lueckmann et al., arXiv:2101.04653 (sbibm).
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["MIN_SAMPLES", "c2st"]

MIN_SAMPLES = 10  # per sample: 5 folds need at least a couple of each label in every test fold
N_FOLDS = 5


def c2st(samples_p: np.ndarray, samples_q: np.ndarray, seed: int = 0, *, early_stopping: bool = False) -> float:
    """Classifier two-sample test accuracy: 0.5 = indistinguishable, 1.0 = fully separable.

    Args:
        samples_p: (n, dim) samples of the first distribution (e.g. the reference posterior); its mean and
            standard deviation z-score both samples. A 1-d array is one feature.
        samples_q: (m, dim) samples of the second distribution; use m = n (a different m moves the chance level
            to max(n, m)/(n + m), and warns).
        seed: seeds the classifier's initialisation and the fold split; same seed, same accuracy.
        early_stopping: stop training when the accuracy on a 10 % validation split has not improved for 50 epochs
            (at most 1000), as ``sbi.utils.metrics.c2st(classifier="mlp")`` does. Not sbibm's number, but far
            faster when P and Q are alike: sbibm's MLP then memorises the training folds, for hundreds of epochs.

    Returns:
        The mean 5-fold cross-validated accuracy, in [0, 1].

    Raises:
        ValueError: the samples differ in dim, are not 1-d or 2-d, have fewer than :data:`MIN_SAMPLES` rows, or
            hold NaN or infinite values.

    >>> rng = np.random.default_rng(0)
    >>> round(c2st(rng.normal(size=(200, 1)), rng.normal(10.0, 1.0, size=(200, 1))), 2)
    1.0
    """
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    p, q = _as_samples(samples_p, "samples_p"), _as_samples(samples_q, "samples_q")
    if p.shape[1] != q.shape[1]:
        raise ValueError(f"c2st: samples_p has dim {p.shape[1]} but samples_q has dim {q.shape[1]}; "
                         "pass samples of the same parameters, in the same column order")
    if max(len(p), len(q)) > 1.1 * min(len(p), len(q)):
        warnings.warn(f"c2st: {len(p)} vs {len(q)} samples, so chance accuracy is "
                      f"{max(len(p), len(q)) / (len(p) + len(q)):.3f}, not 0.5; pass equal numbers",
                      stacklevel=2)
    mean, std = p.mean(axis=0), p.std(axis=0, ddof=1)
    std[std < 1e-14] = 1.0
    data = (np.concatenate([p, q]) - mean) / std
    labels = np.concatenate([np.zeros(len(p)), np.ones(len(q))])
    dim = p.shape[1]
    stopping = {"early_stopping": True, "n_iter_no_change": 50, "max_iter": 1000} if early_stopping else {}
    classifier = MLPClassifier(**{"activation": "relu", "hidden_layer_sizes": (10 * dim, 10 * dim), "max_iter": 10_000,
                                  "solver": "adam", "random_state": seed, **stopping})
    folds = KFold(n_splits=N_FOLDS, shuffle=True, random_state=seed)
    with threadpool_limits(1):  # the MLP's matrices are tiny: BLAS threads only add synchronisation (≈ 5× slower)
        scores = cross_val_score(classifier, data, labels, cv=folds, scoring="accuracy")
    return float(np.mean(scores))


def _as_samples(samples: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(samples, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"c2st: {name} has shape {array.shape}; pass an (n_samples, dim) array")
    if len(array) < MIN_SAMPLES:
        raise ValueError(f"c2st: {name} has {len(array)} samples, need at least {MIN_SAMPLES} "
                         f"(sbibm uses 10000); draw more samples")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"c2st: {name} holds {int(np.sum(~np.isfinite(array)))} NaN or infinite values; "
                         "drop those rows first")
    return array
