r"""One-dimensional two-sample distances per feature: W1, KS and a binned χ².

For a reference sample :math:`r` and a candidate sample :math:`c` of one feature:

- **Wasserstein-1** :math:`W_1 = \int |F_r(x) - F_c(x)|\,dx` (``scipy.stats.wasserstein_distance``), in the
  feature's unit; 0 for identical distributions, and for a pure shift by :math:`\delta`, :math:`W_1 = |\delta|`.
  ``w1_over_std`` divides it by the reference's standard deviation (the pooled one when the reference is
  constant; 0 when both samples are the same constant), so features of different units rank together.
- **Kolmogorov–Smirnov** :math:`D = \sup_x |F_r(x) - F_c(x)|` and its two-sided p-value
  (``scipy.stats.ks_2samp``, exact for small samples, asymptotic otherwise).
- **χ²/ndf** of the two histograms on a common binning: bin edges at the quantiles of the pooled sample
  (equal-population bins, so every bin is well filled; ties merge bins of discrete features), and the
  statistic for two unweighted histograms with different totals :math:`N_r, N_c` (as ROOT's
  ``TH1::Chi2Test``, Gagunashvili arXiv:physics/0605123)

  .. math:: \chi^2 = \frac{1}{N_r N_c} \sum_i \frac{(N_c\, r_i - N_r\, c_i)^2}{r_i + c_i}, \qquad
            \mathrm{ndf} = (\text{bins with } r_i + c_i > 0) - 1,

  about 1 for samples of one distribution. A constant feature has ndf = 0 and χ²/ndf = 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["FeatureDistances", "chi2_two_histograms", "feature_distances", "quantile_edges"]


@dataclass(frozen=True)
class FeatureDistances:
    """The distances between two samples of one feature (finite numbers)."""

    reference_mean: float
    candidate_mean: float
    reference_std: float
    candidate_std: float
    w1: float
    w1_over_std: float
    ks: float
    ks_p: float
    chi2: float
    ndf: int
    chi2_ndf: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def feature_distances(reference: np.ndarray, candidate: np.ndarray, n_bins: int = 30) -> FeatureDistances:
    """W1, W1 / σ_ref, KS statistic and p-value, χ² and ndf of two finite 1-D samples.

    >>> rng = np.random.default_rng(1)
    >>> found = feature_distances(rng.normal(0, 1, 20_000), rng.normal(0.5, 1, 20_000))
    >>> round(found.w1, 1), found.ks_p < 1e-10
    (0.5, True)
    """
    from scipy.stats import ks_2samp, wasserstein_distance

    w1 = float(wasserstein_distance(reference, candidate))
    ks = ks_2samp(reference, candidate)
    edges = quantile_edges(np.concatenate([reference, candidate]), n_bins)
    chi2, ndf = (chi2_two_histograms(np.histogram(reference, edges)[0], np.histogram(candidate, edges)[0])
                 if len(edges) > 1 else (0.0, 0))
    return FeatureDistances(
        reference_mean=float(np.mean(reference)), candidate_mean=float(np.mean(candidate)),
        reference_std=float(np.std(reference)), candidate_std=float(np.std(candidate)),
        w1=w1, w1_over_std=_normalised(w1, reference, candidate), ks=float(ks.statistic), ks_p=float(ks.pvalue),
        chi2=chi2, ndf=ndf, chi2_ndf=chi2 / ndf if ndf > 0 else 0.0,
    )


def quantile_edges(pooled: np.ndarray, n_bins: int) -> np.ndarray:
    """Edges at the 0, 1/n, …, 1 quantiles of ``pooled``, repeated edges merged (≥ 1 edge)."""
    return np.unique(np.quantile(pooled, np.linspace(0.0, 1.0, n_bins + 1)))


def chi2_two_histograms(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, int]:
    """χ² and ndf of two unweighted histograms of the same bins (module docstring)."""
    r, c = np.asarray(reference, dtype=np.float64), np.asarray(candidate, dtype=np.float64)
    filled = (r + c) > 0
    n_r, n_c = r.sum(), c.sum()
    if filled.sum() < 2 or n_r == 0 or n_c == 0:
        return 0.0, 0
    r, c = r[filled], c[filled]
    chi2 = float(np.sum((n_c * r - n_r * c) ** 2 / (r + c)) / (n_r * n_c))
    return chi2, int(filled.sum() - 1)


def _normalised(w1: float, reference: np.ndarray, candidate: np.ndarray) -> float:
    scale = float(np.std(reference)) or float(np.std(np.concatenate([reference, candidate])))
    return w1 / scale if scale > 0 else 0.0
