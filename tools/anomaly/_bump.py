r"""The bump fit: a smooth dijet function fitted to the m_jj sidebands, the excess in the signal region.

The m_jj histogram of the sidebands is fitted with the 4-parameter dijet function of the ATLAS/CMS dijet
searches,

    f(x) = p0 (1 − x)^p1 / x^(p2 + p3 ln x),    x = m_jj/√s,

by binned Poisson maximum likelihood (started from a least-squares fit; least squares with √n errors
alone biases the fit low where counts are small). Its integral over the signal-region bins is the
expected background B, with σ_B from the fit covariance (the inverse Hessian of −ln L, propagated
linearly). The local significance of the observed count N against B ± σ_B is the discovery test
statistic q0 of a one-bin pyhf model (``uncorrelated_background``, asymptotic formulae): one-sided, so a
deficit gives Z = 0 and p = 0.5. With σ_B → 0 it is Z = √(2(N ln(N/B) − (N − B))).

The bins have about equal width and their edges include the signal-region edges, so the histogram
counts in the signal region and N agree. The fit assumes the selected background spectrum stays smooth:
a cut on a score correlated with m_jj can sculpt it (χ²/ndf, and the cut's efficiency in the signal region
vs the sidebands, show it). References: CMS, arXiv:1911.03947 (the dijet function); Cowan, Cranmer,
Gross, Vitells, arXiv:1007.1727 (q0); pyhf, doi:10.21105/joss.02823.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from physagent.tools.anomaly._search_data import Windows

__all__ = ["BumpFit", "fit_bump"]

MIN_SIDEBAND_EVENTS = 20  # below this the 4-parameter fit is not determined


@dataclass(frozen=True)
class BumpFit:
    """What the fit saw and found in one signal-region window."""

    windows: Windows
    observed: int  # events in the signal region
    expected: float  # fitted background in the signal region
    expected_uncertainty: float  # its 1σ from the fit covariance
    z_local: float  # one-sided local significance (σ)
    p_local: float
    chi2_per_ndf: float  # sideband fit quality
    bin_edges_gev: np.ndarray
    counts: np.ndarray
    fitted: np.ndarray  # the fitted function per bin (all bins, signal region interpolated)


def fit_bump(mjj_gev: np.ndarray, windows: Windows, n_bins: int = 40, sqrt_s_gev: float = 13_000.0) -> BumpFit:
    """Fit the sidebands of ``mjj_gev`` (the events passing a selection) and test the signal region.

    Args:
        mjj_gev: m_jj of the events in GeV (events outside the sidebands' outer edges are ignored).
        windows: the signal region and the sidebands' outer edges.
        n_bins: about this many equal-width bins over the sidebands' outer edges.
        sqrt_s_gev: √s in GeV, the scale of the dijet function's x = m_jj/√s.

    Returns:
        The counts, the fitted background per bin, N, B ± σ_B, Z, p and the sideband χ²/ndf.

    Raises:
        ValueError: fewer than :data:`MIN_SIDEBAND_EVENTS` events in the sidebands.
    """
    edges = _bin_edges(windows, n_bins)
    counts, _ = np.histogram(mjj_gev, edges)
    centres, widths = 0.5 * (edges[1:] + edges[:-1]), np.diff(edges)
    in_sr = windows.in_signal_region(centres)
    if counts[~in_sr].sum() < MIN_SIDEBAND_EVENTS:
        raise ValueError(f"only {int(counts[~in_sr].sum())} events in the sidebands "
                         f"{windows.sidebands_gev[0]:g}–{windows.sidebands_gev[1]:g} GeV (need "
                         f"{MIN_SIDEBAND_EVENTS}); loosen the selection or widen the sidebands")
    x = centres / sqrt_s_gev
    params, covariance, chi2_ndf = _fit_sidebands(x[~in_sr], widths[~in_sr], counts[~in_sr])
    fitted = _dijet(x, *params) * widths
    expected = float(fitted[in_sr].sum())
    gradient = _gradient(lambda p: (_dijet(x[in_sr], *p) * widths[in_sr]).sum(), params)
    sigma = float(np.sqrt(max(gradient @ covariance @ gradient, 0.0)))
    observed = int(np.sum(windows.in_signal_region(np.asarray(mjj_gev))))
    p_local, z_local = _discovery(observed, expected, sigma)
    return BumpFit(windows, observed, expected, sigma, z_local, p_local, chi2_ndf, edges, counts, fitted)


def _bin_edges(windows: Windows, n_bins: int) -> np.ndarray:
    """Bins of about equal width whose edges include the signal-region edges (so counts and fit agree)."""
    (lo, hi), (sr_lo, sr_hi) = windows.sidebands_gev, windows.signal_region_gev
    width = (hi - lo) / n_bins
    pieces = ((lo, sr_lo), (sr_lo, sr_hi), (sr_hi, hi))
    parts = [np.linspace(a, b, max(1, round((b - a) / width)) + 1) for a, b in pieces if b > a]
    return np.unique(np.concatenate(parts))


def _dijet(x: np.ndarray, log_p0: float, p1: float, p2: float, p3: float) -> np.ndarray:
    log_x = np.log(x)
    return np.exp(log_p0 + p1 * np.log1p(-np.minimum(x, 0.999)) - (p2 + p3 * log_x) * log_x)


def _fit_sidebands(x: np.ndarray, widths: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Binned Poisson maximum likelihood (least squares with √n errors biases low), started from least squares."""
    from scipy.optimize import curve_fit, minimize

    density = counts / widths
    sigma = np.sqrt(np.maximum(counts, 1.0)) / widths
    start = (float(np.log(max(density.max(), 1e-9) * x[np.argmax(density)] ** 5)), 10.0, 5.0, 0.0)
    with contextlib.suppress(RuntimeError, ValueError):  # no least-squares convergence: start from the guess
        start, _ = curve_fit(_dijet, x, density, p0=start, sigma=sigma, maxfev=20_000)

    def nll(params: np.ndarray) -> float:
        mu = np.maximum(_dijet(x, *params) * widths, 1e-12)
        return float(np.sum(mu - counts * np.log(mu)))

    params = minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-8, "maxiter": 20_000}).x
    covariance = np.linalg.pinv(_hessian(nll, params))
    model = _dijet(x, *params) * widths
    pearson = (counts - model) ** 2 / np.maximum(model, 1e-12)
    return params, covariance, float(pearson.sum() / max(len(x) - 4, 1))


def _hessian(function, params: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    n = len(params)
    steps = 1e-4 * np.maximum(1.0, np.abs(params))
    hessian = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            di, dj = np.eye(n)[i] * steps[i], np.eye(n)[j] * steps[j]
            hessian[i, j] = (function(params + di + dj) - function(params + di - dj) - function(params - di + dj)
                             + function(params - di - dj)) / (4 * steps[i] * steps[j])
    return hessian


def _gradient(function, params: np.ndarray, step: float = 1e-6) -> np.ndarray:  # type: ignore[no-untyped-def]
    gradient = np.empty_like(params)
    for i in range(len(params)):
        shift = np.zeros_like(params)
        shift[i] = step * max(1.0, abs(params[i]))
        gradient[i] = (function(params + shift) - function(params - shift)) / (2 * shift[i])
    return gradient


def _discovery(observed: int, expected: float, sigma: float) -> tuple[float, float]:
    import pyhf
    from scipy.stats import norm

    if observed <= expected:
        return 0.5, 0.0
    background = max(expected, 1e-3)
    model = pyhf.simplemodels.uncorrelated_background(
        signal=[max(observed - background, 1.0)], bkg=[background], bkg_uncertainty=[max(sigma, 1e-3 * background)])
    data = [observed, *model.config.auxdata]
    p_value = float(pyhf.infer.hypotest(0.0, data, model, test_stat="q0"))
    return p_value, float(norm.isf(p_value))
