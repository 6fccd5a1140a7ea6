r"""``signal_strength``: a signal strength μ over a falling background whose normalisation ν a control region
constrains — the binned counting analysis behind most LHC searches and measurements.

Model (k = ``n_bins`` bins of a mass-like observable m in GeV, default 10 bins over 100–150 GeV):

    n_SR,j ~ Poisson(μ s_j + ν b_j),    n_CR,j ~ Poisson(τ ν b_j),    j = 1 … k,

with a Gaussian signal peak s_j (mass ``signal_mass_gev``, width ``signal_width_gev``) and a falling
exponential background b_j ∝ ∫_bin exp(−(m − m_lo)/``background_decay_gev``) dm, normalised so that
Σ s_j = ``signal_events`` (30) and Σ b_j = ``background_events`` (300) in the window at μ = ν = 1. The control
region holds τ × the background template (``tau`` = 2), no signal. x = (n_SR,1 … n_SR,k, n_CR,1 … n_CR,k),
named ``sr_bin_01`` … ``cr_bin_01`` …; θ = (μ, ν), priors U(0, 3) and U(0.5, 1.5) (``mu_range``, ``nu_range``).

- ``reference_posterior``: exact — the Poisson likelihood × the flat prior on a 2-D grid refined twice onto the
  region that holds the posterior mass, sampled cell by cell with uniform jitter inside each cell.
- ``likelihood_intervals``: the profile-likelihood interval of μ from a two-channel pyhf model (signal with
  normfactor μ; background with normfactor ν shared by both regions; ν profiled in [ν_lo/10, 10 ν_hi]):
  {μ : −2 ln λ(μ) ≤ χ²₁ quantile at ``cl``}, truncated at the prior bounds of μ (a boundary of the interval at
  0 or 3 means "truncated there", not a crossing).

References: G. Cowan, K. Cranmer, E. Gross, O. Vitells, Eur. Phys. J. C 71 (2011) 1554, arXiv:1007.1727
(profile likelihood); R. D. Cousins, J. T. Linnemann, J. Tucker, NIM A 595 (2008) 480, arXiv:physics/0702156
(on/off control regions); L. Heinrich et al., pyhf, doi:10.21105/joss.02823.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from physagent.tools._errors import ToolInputError
from physagent.tools.sbi._task import (
    N_OBSERVATIONS,
    Observation,
    Parameter,
    observation_seed,
    register_task,
    with_defaults,
)

__all__ = ["DEFAULT_OPTIONS", "SignalStrengthTask", "poisson_from_uniform", "signal_strength_task"]

NAME = "signal_strength"
DEFAULT_OPTIONS: dict[str, Any] = {
    "n_bins": 10,
    "mass_range_gev": (100.0, 150.0),
    "signal_mass_gev": 125.0,
    "signal_width_gev": 2.5,
    "signal_events": 30.0,
    "background_events": 300.0,
    "background_decay_gev": 30.0,
    "tau": 2.0,
    "mu_range": (0.0, 3.0),
    "nu_range": (0.5, 1.5),
}
MAX_BINS = 100
_GRID_CELLS = (100, 100, 400)  # cells per axis of the posterior grid: locate, refine, sample
_LOG_SUPPORT = 25.0  # grid cells within this of the maximum log posterior hold the mass (e^-25 ≈ 1e-11)


@register_task(NAME)
def signal_strength_task(**options: Any) -> SignalStrengthTask:
    """The ``signal_strength`` task with ``options`` (see :data:`DEFAULT_OPTIONS`) in place of the defaults.

    Raises:
        ToolInputError: an unknown option, or a value outside what it allows.
    """
    return SignalStrengthTask(with_defaults(NAME, options, DEFAULT_OPTIONS))


class SignalStrengthTask:
    """Binned signal strength μ with a background normalisation ν and a control region (see the module doc)."""

    name = NAME
    parameters = (Parameter("mu", "", "signal strength: signal yield over the expected one"),
                  Parameter("nu", "", "background normalisation, constrained by the control region"))
    seconds_per_simulation = 2e-5

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = _checked_options(options)
        o = self.options
        mass_lo, mass_hi = o["mass_range_gev"]
        self.edges_gev = np.linspace(mass_lo, mass_hi, o["n_bins"] + 1)
        self.signal = _gaussian_template(self.edges_gev, o["signal_mass_gev"], o["signal_width_gev"],
                                         o["signal_events"])
        self.background = _exponential_template(self.edges_gev, o["background_decay_gev"], o["background_events"])
        if self.background.min() <= 0:
            raise _option_error("background_decay_gev", o["background_decay_gev"], "leaves background bins "
                                "empty in the mass window; use a longer decay length.")
        digits = max(2, len(str(o["n_bins"])))
        self.observables = tuple(f"{region}_bin_{j:0{digits}d}" for region in ("sr", "cr")
                                 for j in range(1, o["n_bins"] + 1))
        self.description = (
            f"Binned counting analysis: {o['n_bins']} bins of a mass in {o['mass_range_gev'][0]:g}–"
            f"{o['mass_range_gev'][1]:g} GeV, a Gaussian signal peak at {o['signal_mass_gev']:g} GeV "
            f"({o['signal_events']:g} events at mu = 1) over a falling exponential background "
            f"({o['background_events']:g} events at nu = 1), plus a background-only control region with "
            f"tau = {o['tau']:g} times the background. Infers the signal strength mu and the background "
            "normalisation nu from Poisson counts; the reference posterior is exact (grid) and pyhf gives "
            "the profile-likelihood interval of mu (Cowan et al., arXiv:1007.1727).")
        self._model: Any = None

    def prior(self) -> Any:
        """U(mu_range) × U(nu_range) as an ``sbi`` ``BoxUniform`` (float32)."""
        import torch
        from sbi.utils import BoxUniform

        box = self._box()
        return BoxUniform(low=torch.tensor(box[:, 0], dtype=torch.float32),
                          high=torch.tensor(box[:, 1], dtype=torch.float32))

    def expected(self, theta: np.ndarray) -> np.ndarray:
        """Expected counts (n, 2k) for θ rows (μ, ν): μ s + ν b in the signal region, τ ν b in the control region."""
        mu, nu = theta[:, :1], theta[:, 1:2]
        return np.hstack([mu * self.signal + nu * self.background, self.options["tau"] * nu * self.background])

    def simulate(self, theta: np.ndarray, seed: int, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Poisson counts for each row of θ (n, 2); row i is the inverse CDF of uniforms i·2k … (i+1)·2k − 1 of
        ``numpy.random.default_rng(seed)``, so it depends on (seed, i, θ_i) only. Rows with a negative or
        non-finite expectation are NaN."""
        theta = _checked_theta(theta)
        lam = self.expected(theta)
        bad = ~np.all(np.isfinite(lam) & (lam >= 0), axis=1)
        uniforms = np.random.default_rng(seed).random(lam.shape)
        x = np.full(lam.shape, np.nan)
        x[~bad] = poisson_from_uniform(uniforms[~bad], lam[~bad])
        if progress is not None:
            progress(len(theta))
        return x

    def observation(self, number: int) -> Observation:
        """Stored observation ``number``: θ_true ~ prior with its fixed seed, x_o ~ simulator with that seed + 1."""
        seed = _observation_seed(number)
        box = self._box()
        theta = np.random.default_rng(seed).uniform(box[:, 0], box[:, 1])
        return Observation(number, theta, self.simulate(theta[None], seed + 1)[0])

    def log_likelihood(self, x_o: np.ndarray, mu: np.ndarray, nu: np.ndarray) -> np.ndarray:
        """ln p(x_o | μ, ν) up to a constant, for broadcastable arrays ``mu`` and ``nu``."""
        x = self._checked_x(x_o)
        k, tau = self.options["n_bins"], self.options["tau"]
        mu, nu = np.asarray(mu, dtype=float), np.asarray(nu, dtype=float)
        total = np.zeros(np.broadcast_shapes(mu.shape, nu.shape))
        for j in range(k):  # bin by bin: a (cells, cells, k) array would not fit for fine grids and many bins
            lam_sr, lam_cr = mu * self.signal[j] + nu * self.background[j], tau * nu * self.background[j]
            total += x[j] * np.log(lam_sr) - lam_sr + x[k + j] * np.log(lam_cr) - lam_cr
        return total

    def reference_posterior(self, x_o: np.ndarray, n_samples: int, seed: int) -> np.ndarray:
        """Exact posterior samples (n_samples, 2): likelihood × flat prior on a grid zoomed onto the posterior
        mass, a cell drawn by its probability and a point drawn uniformly inside the cell.

        Raises:
            ValueError: x_o is not 2k non-negative counts, or n_samples < 1.
        """
        if n_samples < 1:
            raise ValueError(f"{NAME}.reference_posterior: n_samples={n_samples} must be at least 1")
        box = self._box()
        for cells in _GRID_CELLS[:-1]:
            box = _support_box(self._grid_log_posterior(x_o, box, cells), box)
        log_post = self._grid_log_posterior(x_o, box, _GRID_CELLS[-1])
        return _sample_grid(log_post, box, n_samples, np.random.default_rng(seed))

    def likelihood_intervals(self, x_o: np.ndarray, cl: float) -> dict[str, tuple[float, float]]:
        """The profile-likelihood interval of μ at confidence level ``cl`` from pyhf (see the module doc).

        t(μ) = −2 ln λ(μ) comes from ``pyhf.infer.mle.fixed_poi_fit`` against the global fit. It is convex here
        (the Poisson log-likelihood is concave in (μ, ν), the rates linear), so each side of μ̂ has at most one
        crossing of the χ²₁ quantile q; Brent's method (inverse quadratic interpolation) finds it on
        √t(μ) − √q, which is nearly linear in μ (exactly so for a Gaussian likelihood), in a few fits. Without
        a crossing before a bound of ``mu_range`` the interval ends at the bound (truncated).
        """
        import pyhf
        from scipy.optimize import brentq
        from scipy.stats import chi2

        if not 0 < cl < 1:
            raise ValueError(f"{NAME}.likelihood_intervals: cl={cl!r} must lie strictly between 0 and 1, "
                             "e.g. 0.68 or 0.95")
        model, data = self._pyhf_model(), self._pyhf_data(x_o)
        best, twice_nll_min = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
        mu_hat, root_q = float(best[model.config.poi_index]), math.sqrt(chi2.ppf(cl, 1))

        known = {mu_hat: -root_q}  # brentq asks again for the ends of its bracket

        def distance(mu: float) -> float:  # √t(μ) − √q: negative inside the interval
            if mu not in known:
                _, twice_nll = pyhf.infer.mle.fixed_poi_fit(mu, data, model, init_pars=best.tolist(),
                                                            return_fitted_val=True)
                known[mu] = math.sqrt(max(float(twice_nll - twice_nll_min), 0.0)) - root_q
            return known[mu]

        def crossing(bound: float) -> float:
            if distance(bound) <= 0:
                return bound
            return float(brentq(distance, *sorted((mu_hat, bound)), xtol=1e-4))

        mu_lo, mu_hi = self.options["mu_range"]
        return {"mu": (crossing(mu_lo), crossing(mu_hi))}

    # --- internals --------------------------------------------------------------------------------

    def _box(self) -> np.ndarray:
        return np.array([self.options["mu_range"], self.options["nu_range"]], dtype=float)

    def _checked_x(self, x_o: np.ndarray) -> np.ndarray:
        x = np.asarray(x_o, dtype=float).reshape(-1)
        if x.shape != (len(self.observables),) or not np.all(np.isfinite(x) & (x >= 0)):
            raise ValueError(f"{NAME}: x_o must hold {len(self.observables)} non-negative finite counts "
                             f"({self.observables[0]} … {self.observables[-1]}), got shape {np.shape(x_o)}")
        return x

    def _grid_log_posterior(self, x_o: np.ndarray, box: np.ndarray, cells: int) -> np.ndarray:
        centres = [lo + (np.arange(cells) + 0.5) * (hi - lo) / cells for lo, hi in box]
        return self.log_likelihood(x_o, centres[0][:, None], centres[1][None, :])

    def _pyhf_model(self) -> Any:
        if self._model is None:
            import pyhf

            nu_lo, nu_hi = self.options["nu_range"]
            norm = {"mu": {"name": "mu", "type": "normfactor", "data": None},
                    "nu": {"name": "nu", "type": "normfactor", "data": None}}
            background = self.background.tolist()
            spec = {
                "channels": [
                    {"name": "signal_region", "samples": [
                        {"name": "signal", "data": self.signal.tolist(), "modifiers": [norm["mu"]]},
                        {"name": "background", "data": background, "modifiers": [norm["nu"]]}]},
                    {"name": "control_region", "samples": [
                        {"name": "background", "data": (self.options["tau"] * self.background).tolist(),
                         "modifiers": [norm["nu"]]}]},
                ],
                "parameters": [{"name": "mu", "bounds": [list(self.options["mu_range"])], "inits": [1.0]},
                               {"name": "nu", "bounds": [[nu_lo / 10, nu_hi * 10]], "inits": [1.0]}],
            }
            self._model = pyhf.Model(spec, poi_name="mu")
        return self._model

    def _pyhf_data(self, x_o: np.ndarray) -> list[float]:
        """x_o in pyhf's channel order (alphabetical, so the control region comes first)."""
        x, k = self._checked_x(x_o), self.options["n_bins"]
        counts = {"signal_region": x[:k], "control_region": x[k:]}
        return np.concatenate([counts[channel] for channel in self._pyhf_model().config.channels]).tolist()


def poisson_from_uniform(u: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """The Poisson quantile F⁻¹(u; λ), elementwise: the smallest k with P(K ≤ k) ≥ u.

    Starts from the Cornish–Fisher guess ⌊λ + √λ z + (z² − 1)/6⌋ (z the normal quantile of u), then steps k up or
    down on the few entries where the guess is off; ``scipy.special.pdtr`` is the CDF.

    >>> poisson_from_uniform(np.array([0.01, 0.5, 0.99]), np.array([4.0, 4.0, 4.0])).tolist()
    [0.0, 4.0, 9.0]
    """
    from scipy.special import ndtri, pdtr

    shape = np.shape(u)
    u, lam = np.ravel(u), np.ravel(np.broadcast_to(lam, shape)).astype(float)
    z = ndtri(u)
    k = np.maximum(np.floor(lam + np.sqrt(lam) * z + (z * z - 1) / 6), 0.0)
    rows = np.flatnonzero(pdtr(k, lam) < u)
    while rows.size:
        k[rows] += 1
        rows = rows[pdtr(k[rows], lam[rows]) < u[rows]]
    rows = np.flatnonzero((k > 0) & (pdtr(k - 1, lam) >= u))
    while rows.size:
        k[rows] -= 1
        rows = rows[(k[rows] > 0) & (pdtr(k[rows] - 1, lam[rows]) >= u[rows])]
    return k.reshape(shape)


def _gaussian_template(edges: np.ndarray, mass: float, width: float, total: float) -> np.ndarray:
    from scipy.special import ndtr

    cdf = ndtr((edges - mass) / width)
    return total * np.diff(cdf) / (cdf[-1] - cdf[0])


def _exponential_template(edges: np.ndarray, decay: float, total: float) -> np.ndarray:
    survival = np.exp(-(edges - edges[0]) / decay)
    return total * -np.diff(survival) / (survival[0] - survival[-1])


def _support_box(log_post: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The part of ``box`` whose cells lie within :data:`_LOG_SUPPORT` of the maximum, one cell of margin added
    (the log posterior is concave, so its super-level sets are convex and the bounding box holds them)."""
    keep = log_post >= log_post.max() - _LOG_SUPPORT
    new = box.copy()
    for axis, (lo, hi) in enumerate(box):
        cells = log_post.shape[axis]
        used = np.flatnonzero(keep.any(axis=1 - axis))
        width = (hi - lo) / cells
        new[axis] = lo + width * max(used[0] - 1, 0), lo + width * min(used[-1] + 2, cells)
    return new


def _sample_grid(log_post: np.ndarray, box: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    weights = np.exp(log_post - log_post.max()).ravel()
    cells = rng.choice(weights.size, size=n_samples, p=weights / weights.sum())
    index = np.stack(np.unravel_index(cells, log_post.shape), axis=1)
    widths = (box[:, 1] - box[:, 0]) / np.array(log_post.shape)
    return box[:, 0] + (index + rng.random((n_samples, 2))) * widths


def _checked_theta(theta: np.ndarray) -> np.ndarray:
    theta = np.asarray(theta, dtype=float)
    if theta.ndim != 2 or theta.shape[1] != 2:
        raise ValueError(f"{NAME}.simulate: theta must have shape (n, 2) for (mu, nu), got {theta.shape}")
    return theta


def _observation_seed(number: int) -> int:
    if not 1 <= number <= N_OBSERVATIONS:
        raise ValueError(f"{NAME}: observation number {number!r} must be 1 … {N_OBSERVATIONS}")
    return observation_seed(NAME, number)


# --- options ------------------------------------------------------------------------------------

def _option_error(option: str, value: Any, problem: str) -> ToolInputError:
    return ToolInputError(f"SBI task {NAME}: option {option}={value!r} {problem}", param=option, value=value)


def _checked_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options with numbers as float/int and ranges as (lo, hi) tuples, or a ToolInputError naming the first
    bad one."""
    checked = dict(options)
    n_bins = options["n_bins"]
    whole = isinstance(n_bins, int | float | np.integer | np.floating) and not isinstance(n_bins, bool) \
        and math.isfinite(n_bins) and n_bins == int(n_bins)  # 10.0 from a JSON client is 10
    if not whole or not 1 <= n_bins <= MAX_BINS:
        raise _option_error("n_bins", n_bins, f"must be a whole number from 1 to {MAX_BINS}.")
    checked["n_bins"] = int(n_bins)
    for option in ("signal_width_gev", "signal_events", "background_events", "background_decay_gev", "tau"):
        checked[option] = _number(option, options[option], positive=True)
    for option in ("mass_range_gev", "mu_range", "nu_range"):
        checked[option] = _range(option, options[option])
    checked["signal_mass_gev"] = _number("signal_mass_gev", options["signal_mass_gev"])
    lo, hi = checked["mass_range_gev"]
    if not lo <= checked["signal_mass_gev"] <= hi:
        raise _option_error("signal_mass_gev", options["signal_mass_gev"],
                            f"must lie inside mass_range_gev = ({lo:g}, {hi:g}) GeV.")
    if lo <= 0:
        raise _option_error("mass_range_gev", options["mass_range_gev"], "must be positive masses in GeV.")
    if checked["mu_range"][0] < 0:
        raise _option_error("mu_range", options["mu_range"], "must not go below 0: a negative signal strength "
                            "can make the expected counts negative. Use e.g. (0, 3).")
    if checked["nu_range"][0] <= 0:
        raise _option_error("nu_range", options["nu_range"], "must be positive: the background normalisation "
                            "scales a positive background. Use e.g. (0.5, 1.5).")
    return checked


def _number(option: str, value: Any, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating) \
            or not math.isfinite(value) or (positive and value <= 0):
        raise _option_error(option, value, f"must be a {'positive ' if positive else ''}finite number.")
    return float(value)


def _range(option: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise _option_error(option, value, "must be a pair (low, high).")
    if not all(isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool) and math.isfinite(v)
               for v in value):
        raise _option_error(option, value, "must be two finite numbers (low, high).")
    lo, hi = float(value[0]), float(value[1])
    if lo >= hi:
        raise _option_error(option, value, "must have low < high.")
    return lo, hi
