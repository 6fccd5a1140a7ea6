r"""L-C2ST: is the posterior right *at the observation*? (local classifier two-sample test).

SBC and TARP average over the prior predictive; a posterior can pass them and still be wrong at the x_o that
matters. L-C2ST (Linhart, Gramfort, Rodrigues, arXiv:2306.03580) trains a classifier to tell the pairs
(θ_i, x_i) of the calibration set (θ_i ~ prior, x_i ~ simulator) from (θ'_i, x_i) with θ'_i ~ q(θ | x_i); if q is
the true posterior the two joint distributions are equal and the classifier cannot do better than chance,
anywhere. Its statistic at x_o is the mean squared distance of its predicted class probability from ½ over
posterior samples θ ~ q(θ | x_o); the null distribution comes from classifiers trained on label-permuted pairs,
and the p-value is the fraction of null statistics above the observed one (``sbi.diagnostics.LC2ST``, MLP
classifier on z-scored inputs).

The classifier trains for a fixed :data:`EPOCHS` epochs without early stopping: sbi's default stops on a
validation split of a tenth of the pairs, which for a few hundred pairs often halts before it has learnt
anything (on a 2-d Gaussian toy with 200 pairs, a posterior 10× too narrow was not rejected). The null
classifiers are trained the same way, so the permutation test stays valid.

It needs a posterior that is cheap to sample for every x_i (NPE) and many calibration pairs: with a few hundred
the classifier has little power (the test then rarely rejects even a clearly over-confident posterior),
thousands are typical. Each null trial trains one classifier, so the cost is (1 + ``n_null``) trainings.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["ALPHA", "Lc2stCheck", "run_lc2st"]

ALPHA = 0.05  # the posterior is rejected at x_o when the p-value is below this
EPOCHS = 200
CLASSIFIER = {"early_stopping": False, "max_iter": EPOCHS}


@dataclass(frozen=True)
class Lc2stCheck:
    """L-C2ST at one observation: the statistic, its null distribution and the p-value."""

    statistic: float
    null_statistics: np.ndarray
    p_value: float
    n_train: int
    verdict: str  # no evidence against the posterior | rejects the posterior
    detail: str


def run_lc2st(theta: np.ndarray, x: np.ndarray, posterior_theta: np.ndarray, theta_o: np.ndarray,
              x_o: np.ndarray, seed: int, n_null: int = 30) -> Lc2stCheck:
    """L-C2ST of q at ``x_o``.

    Args:
        theta: Calibration parameters θ_i ~ prior, (m, d).
        x: Their simulations x_i, (m, k).
        posterior_theta: One sample θ'_i ~ q(θ | x_i) per calibration pair, (m, d).
        theta_o: Posterior samples at the observation, (n, d).
        x_o: The observation, (k,).
        seed: Seed of the classifiers and the permutations.
        n_null: Classifiers trained on permuted labels (the p-value's resolution is 1/n_null).

    Returns:
        The statistic, the null statistics, the p-value and the verdict at ``ALPHA``.
    """
    import torch
    from sbi.diagnostics import LC2ST

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.float32)

    # the permutations re-seed torch's global generator: keep the caller's stream untouched
    with warnings.catch_warnings(), torch.random.fork_rng():
        warnings.simplefilter("ignore")  # scikit-learn notes that a fixed number of epochs did not converge
        test = LC2ST(prior_samples=tensor(theta), xs=tensor(x), posterior_samples=tensor(posterior_theta),
                     seed=seed, num_trials_null=n_null, z_score=True, classifier_kwargs=dict(CLASSIFIER))
        test.train_on_observed_data(seed=seed, verbosity=0)
        test.train_under_null_hypothesis(verbosity=0)
        statistic = test.get_statistic_on_observed_data(tensor(theta_o), tensor(x_o))
        null = test.get_statistics_under_null_hypothesis(tensor(theta_o), tensor(x_o)).scores  # type: ignore[union-attr]
    p = float(np.mean(statistic < null))
    words = f"p = {p:.2g} from {n_null} permutations (statistic {statistic:.3g}, null median {np.median(null):.3g})"
    if p < ALPHA:
        return Lc2stCheck(statistic, null, p, len(theta), "rejects the posterior",
                          f"a classifier tells q(θ | x_o) from the true posterior at the observation: {words}")
    return Lc2stCheck(statistic, null, p, len(theta), "no evidence against the posterior",
                      f"the classifier cannot tell q(θ | x_o) from the true posterior at the observation: {words}")
