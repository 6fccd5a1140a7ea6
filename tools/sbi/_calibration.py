r"""Calibration of an amortized posterior over simulated pseudo-experiments: SBC ranks, TARP and coverage.

Every check here reads the same inputs: a *calibration set* of m pseudo-experiments, θ_i ~ p(θ) and
x_i ~ p(x | θ_i), simulated afresh (never the training set), and N posterior samples θ_i⁽¹…ᴺ⁾ ~ q(θ | x_i) for
each of them, shape (N, m, d). If q is the true posterior, θ_i is one more draw from q(θ | x_i), so

- **SBC** (Talts et al., arXiv:1804.06788): the rank r_i = #{n : θ_i⁽ⁿ⁾ < θ_i} of each marginal is uniform on
  0 … N. Ranks piled at both edges (U) mean q is too narrow (over-confident), bunched in the middle (∩) too
  wide (under-confident), piled at one edge shifted (biased). The ranks are those of ``sbi.diagnostics.run_sbc``
  (``reduce_fns="marginals"``), computed from the samples drawn once for every check.
- **TARP** (Lemos et al., arXiv:2302.03026): the expected coverage of the credible regions defined by the
  distance to random reference points equals the credibility level α for all α; ``sbi.diagnostics.check_tarp``
  gives the area between the curve and the diagonal above α = 0.5 (ATC: < 0 over-confident or biased,
  > 0 under-confident) and a Kolmogorov–Smirnov p-value between the curve and the diagonal.
- **coverage**: the fraction of pseudo-experiments whose central credible interval at level cl (posterior
  quantiles (1 − cl)/2 and (1 + cl)/2) holds θ_i, which is cl for a calibrated posterior — and, for a task with a
  likelihood, the same for its profile-likelihood interval, to compare the two constructions.

Symbols: m pseudo-experiments, N posterior samples each, d parameters; u = (r + U(0, 1)) / (N + 1) is the
normalised rank, exactly U(0, 1) under calibration even for small N (the uniform jitter spreads the N + 1
discrete ranks), on which the Kolmogorov–Smirnov test of uniformity runs.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from physagent.tools.sbi._task import Task

__all__ = ["KS_ALPHA", "BatchSampler", "CalibrationSet", "CoverageRow", "SbcMarginal", "TarpCheck", "batched_sampler",
           "check_sbc_marginals", "check_tarp_coverage", "derive_seed", "draw_posterior_samples",
           "likelihood_interval_coverage", "posterior_interval_coverage", "sbc_ranks", "simulate_calibration_set",
           "task_progress", "weak_settings_warnings"]

EDGE = 0.1  # SBC: fraction of the rank range at each edge (lowest and highest tenth)
SIGNIFICANT_Z = 3.0  # a shape statistic this many σ from its calibrated value counts
KS_ALPHA = 0.01  # SBC: a Kolmogorov–Smirnov p-value below this rejects uniform ranks
TARP_ATC_VARIANCE = 0.026  # m · Var(ATC) under calibration: ∫∫_{[½,1]²} (min(a, b) − ab) da db = 1/6 − 9/64


class BatchSampler(Protocol):
    """Draws ``n`` posterior samples for each row of ``xs`` (b, k): returns (n, b, d), seeded by ``seed``."""

    def __call__(self, xs: np.ndarray, n: int, seed: int) -> np.ndarray: ...


def derive_seed(seed: int, *keys: int) -> int:
    """An independent 32-bit seed for one use of the base ``seed`` (the prior, the simulator, a sampling chunk).

    >>> derive_seed(0, 1) == derive_seed(0, 1) != derive_seed(0, 2)
    True
    """
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


# --- the calibration set -----------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationSet:
    """Fresh pseudo-experiments: θ ~ prior (m, d) and x ~ simulator (m, k); rows that failed to simulate dropped."""

    theta: np.ndarray
    x: np.ndarray
    n_failed: int


def simulate_calibration_set(task: Task, n: int, seed: int, progress: Callable[[int], None] | None = None
                             ) -> CalibrationSet:
    """θ_i from the task's prior and x_i from its simulator, both seeded from ``seed``; NaN rows are dropped.

    Args:
        task: The task the posterior was trained on.
        n: Pseudo-experiments to simulate.
        seed: Base seed (the prior draw and the simulator get independent seeds derived from it).
        progress: Called with the number of rows finished since its last call.

    Returns:
        The calibration set, with the count of dropped rows.
    """
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(derive_seed(seed, 1))
        theta = task.prior().sample((n,)).double().numpy()
    x = np.asarray(task.simulate(theta, derive_seed(seed, 2), task_progress(progress)), dtype=np.float64)
    good = np.all(np.isfinite(x), axis=1)
    return CalibrationSet(theta[good], x[good], int((~good).sum()))


def task_progress(progress: Callable[[int], None] | None) -> Callable[[int], None] | None:
    """A task reports rows done so far in the call; our progress callbacks take rows done since the last one."""
    if progress is None:
        return None
    done = [0]

    def report(n_done: int) -> None:
        progress(n_done - done[0])
        done[0] = n_done

    return report


def draw_posterior_samples(sampler: BatchSampler, xs: np.ndarray, n: int, seed: int, chunk: int = 50,
                           progress: Callable[[int], None] | None = None) -> np.ndarray:
    """N = ``n`` posterior samples for every row of ``xs``, in chunks of ``chunk`` rows, as (n, m, d).

    Each chunk gets its own seed derived from ``seed`` and its first row, so the result does not depend on
    how often ``progress`` (called with the rows of each chunk as it finishes) is reported.
    """
    parts = []
    for start in range(0, len(xs), chunk):
        part = np.asarray(sampler(xs[start:start + chunk], n, derive_seed(seed, 3, start)), dtype=np.float64)
        parts.append(part)
        if progress is not None:
            progress(part.shape[1])
    return np.concatenate(parts, axis=1)


def batched_sampler(posterior: Any, **options: Any) -> BatchSampler:
    """A :class:`BatchSampler` from an sbi posterior with ``sample_batched`` (NPE: one pass of the flow for all
    x; NLE/NRE: vectorised slice-sampling chains for all x), seeded through torch without touching the caller's
    generator. ``options`` go to ``sample_batched`` (e.g. MCMC chain settings)."""
    import torch

    def sample(xs: np.ndarray, n: int, seed: int) -> np.ndarray:
        with torch.random.fork_rng(), warnings.catch_warnings():
            torch.manual_seed(seed)
            warnings.simplefilter("ignore")  # sbi notes that it caps its rejection batch size
            drawn = posterior.sample_batched((n,), x=torch.as_tensor(xs, dtype=torch.float32),
                                             show_progress_bars=False, **options)
        return drawn.double().numpy()

    return sample


class _FixedSamples:
    """Stands in for an sbi posterior in ``run_sbc`` / ``run_tarp``: returns samples drawn beforehand, so every
    check reads the same samples and sampling is done (and its progress reported) once."""

    def __init__(self, samples: np.ndarray) -> None:
        import torch

        self.samples = torch.as_tensor(samples, dtype=torch.float64)

    def sample_batched(self, sample_shape: Any, x: Any, **_: Any) -> Any:
        return self.samples


def weak_settings_warnings(n_simulations: int, n_posterior_samples: int, checks: list[str]) -> list[str]:
    """What the settings cannot show, with what to do: valid but weak settings warn, they do not fail."""
    found = []
    if n_simulations < 100 and set(checks) & {"sbc", "tarp", "coverage"}:
        found.append(f"only {n_simulations} calibration simulations: SBC, TARP and coverage on fewer than 100 "
                     "pseudo-experiments have little power (the Kolmogorov–Smirnov test can miss a posterior "
                     "twice too wide); use num_calibration_simulations=200 or more")
    if n_posterior_samples < 100 and set(checks) & {"sbc", "tarp", "coverage"}:
        found.append(f"only {n_posterior_samples} posterior samples per pseudo-experiment: SBC ranks are coarse "
                     f"({n_posterior_samples + 1} possible values) and the credible intervals noisy; use "
                     "num_posterior_samples=1000 (at least 100)")
    if n_simulations < 1000 and "lc2st" in checks:
        found.append(f"L-C2ST trains its classifier on only {n_simulations} calibration pairs, too few for much "
                     "power (thousands are typical): a p-value above 0.05 is weak evidence; raise "
                     "num_calibration_simulations to 1000 or more")
    return found


# --- SBC ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SbcMarginal:
    """SBC of one parameter: its ranks, the KS test of uniformity and the shape of the rank distribution."""

    name: str
    ranks: np.ndarray  # (m,) integers 0 … n_samples
    n_samples: int
    ks_pvalue: float
    low_edge: float  # fraction of normalised ranks below EDGE (EDGE expected)
    high_edge: float  # fraction above 1 − EDGE
    middle: float  # fraction in the middle half (0.5 expected)
    mean_rank: float  # mean normalised rank (0.5 expected)
    verdict: str  # calibrated | over-confident | under-confident | biased
    detail: str


def sbc_ranks(theta: np.ndarray, x: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Marginal SBC ranks (m, d) of θ among the posterior samples (N, m, d), by ``sbi.diagnostics.run_sbc``."""
    import torch
    from sbi.diagnostics import run_sbc

    with warnings.catch_warnings():  # sbi warns below 100 pseudo-experiments; the tool words its own warning
        warnings.simplefilter("ignore")
        ranks, _ = run_sbc(torch.as_tensor(theta, dtype=torch.float64), torch.as_tensor(x, dtype=torch.float64),
                           _FixedSamples(samples), num_posterior_samples=samples.shape[0],  # type: ignore[arg-type]
                           reduce_fns="marginals", show_progress_bar=False)
    return ranks.numpy().astype(np.int64)


def check_sbc_marginals(names: list[str], ranks: np.ndarray, n_samples: int, seed: int) -> list[SbcMarginal]:
    """The SBC verdict of each parameter from its ranks (m, d) among ``n_samples`` posterior samples.

    The thresholds (KS p < KS_ALPHA, a shape statistic ≥ SIGNIFICANT_Z) are Bonferroni-corrected for the d
    parameters, so a calibrated posterior passes all of them about as often as a one-parameter one passes one.
    """
    from scipy.stats import norm

    d = len(names)
    ks_alpha, z_min = KS_ALPHA / d, float(norm.isf(norm.sf(SIGNIFICANT_Z) / d))
    u = normalised_ranks(ranks, n_samples, seed)
    return [_check_marginal(name, ranks[:, j], u[:, j], n_samples, ks_alpha, z_min) for j, name in enumerate(names)]


def normalised_ranks(ranks: np.ndarray, n_samples: int, seed: int) -> np.ndarray:
    """u = (r + U(0, 1)) / (N + 1): exactly uniform on (0, 1) when r is uniform on 0 … N."""
    jitter = np.random.default_rng(derive_seed(seed, 4)).random(ranks.shape)
    return (ranks + jitter) / (n_samples + 1)


def _check_marginal(name: str, ranks: np.ndarray, u: np.ndarray, n_samples: int, ks_alpha: float, z_min: float
                    ) -> SbcMarginal:
    from scipy.stats import kstest

    m = len(u)
    p = float(kstest(u, "uniform").pvalue)
    low, high = float(np.mean(u < EDGE)), float(np.mean(u > 1 - EDGE))
    middle, mean = float(np.mean(np.abs(u - 0.5) < 0.25)), float(np.mean(u))
    verdict, detail = _sbc_shape(m, (p, ks_alpha), low, high, middle, mean, z_min)
    return SbcMarginal(name, ranks, n_samples, p, low, high, middle, mean, verdict, detail)


def _sbc_shape(m: int, ks: tuple[float, float], low: float, high: float, middle: float, mean: float, z_min: float
               ) -> tuple[str, str]:
    """The verdict from the rank distribution's shape, each statistic as σ from its calibrated value.

    U-shaped: both edges hold more than EDGE; ∩-shaped: the middle half holds more than half; skewed: the
    mean normalised rank is off 0.5. The strongest of the three names the verdict; none reaching ``z_min`` σ
    and the KS p-value at least its threshold ``ks[1]`` is "calibrated".
    """
    p, ks_alpha = ks
    edge_sigma = math.sqrt(EDGE * (1 - EDGE) / m)
    z_low, z_high = (low - EDGE) / edge_sigma, (high - EDGE) / edge_sigma
    scores = {"over-confident": min(z_low, z_high), "under-confident": (middle - 0.5) / math.sqrt(0.25 / m),
              "biased": abs(mean - 0.5) * math.sqrt(12 * m)}
    numbers = (f"KS p = {p:.2g}; {100 * low:.0f} % and {100 * high:.0f} % of ranks in the lowest and highest "
               f"tenth (10 % each if calibrated), {100 * middle:.0f} % in the middle half (50 %), mean normalised "
               f"rank {mean:.2f} (0.50)")
    strongest = max(scores, key=lambda k: scores[k])
    if p >= ks_alpha and scores[strongest] < z_min:
        return "calibrated", f"ranks consistent with uniform: {numbers}"
    meaning = {"over-confident": "ranks pile up at both edges (U-shaped): the posterior is too narrow",
               "under-confident": "ranks bunch in the middle (∩-shaped): the posterior is too wide",
               "biased": "ranks pile up at the " + ("high edge: the posterior sits below the true value"
                                                    if mean > 0.5 else
                                                    "low edge: the posterior sits above the true value")}
    weak = "" if scores[strongest] >= z_min else " (weakly: the KS test rejects, no shape stands out)"
    also = [k for k in scores if k != strongest and scores[k] >= z_min and {k, strongest} != {
        "over-confident", "under-confident"}]
    extra = f"; also {' and '.join(also)}" if also else ""
    return strongest, f"{meaning[strongest]}{weak}{extra}: {numbers}"


# --- TARP --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TarpCheck:
    """TARP: expected coverage probability against credibility level, with sbi's ATC and KS p-value."""

    ecp: np.ndarray
    alpha: np.ndarray
    atc: float
    ks_pvalue: float
    atc_sigma: float  # the spread of ATC for a calibrated posterior with this many pseudo-experiments
    verdict: str  # calibrated | over-confident or biased | under-confident
    detail: str


def check_tarp_coverage(theta: np.ndarray, x: np.ndarray, samples: np.ndarray, seed: int) -> TarpCheck:
    """TARP by ``sbi.diagnostics.run_tarp`` (z-scored θ, L2 distance, m/10 bins) and ``check_tarp``.

    The reference points are drawn uniformly in the bounding box of θ, as sbi does, but from a generator seeded
    apart from the data (a reference stream correlated with the θ draws biases the coverage).
    """
    import torch
    from sbi.diagnostics import check_tarp, run_tarp

    m = len(theta)
    theta_t = torch.as_tensor(theta, dtype=torch.float64)
    rng = np.random.default_rng(derive_seed(seed, 5))
    references = torch.as_tensor(rng.uniform(theta.min(axis=0), theta.max(axis=0), size=theta.shape))
    with warnings.catch_warnings():  # sbi warns below 100 pseudo-experiments; the tool words its own warning
        warnings.simplefilter("ignore")
        ecp, alpha = run_tarp(theta_t, torch.as_tensor(x, dtype=torch.float64), _FixedSamples(samples),  # type: ignore[arg-type]
                              references=references, num_posterior_samples=samples.shape[0],
                              show_progress_bar=False, num_bins=max(m // 10, 5), z_score_theta=True)
        atc, ks_p = check_tarp(ecp, alpha)
    sigma = math.sqrt(TARP_ATC_VARIANCE / m)
    words = f"ATC = {atc:+.3f} (0 ± {sigma:.3f} if calibrated), KS p = {ks_p:.2g}"
    if atc <= -SIGNIFICANT_Z * sigma:
        verdict, detail = "over-confident or biased", f"expected coverage below the credibility level: {words}"
    elif atc >= SIGNIFICANT_Z * sigma:
        verdict, detail = "under-confident", f"expected coverage above the credibility level: {words}"
    else:
        verdict, detail = "calibrated", f"expected coverage follows the credibility level: {words}"
    return TarpCheck(ecp.numpy(), alpha.numpy(), float(atc), float(ks_p), sigma, verdict, detail)


# --- coverage of intervals ---------------------------------------------------------------------


@dataclass(frozen=True)
class CoverageRow:
    """How often one kind of interval at level ``cl`` held the true value, over the pseudo-experiments."""

    parameter: str
    interval: str  # "posterior" (central credible interval) or "likelihood" (the task's profile-likelihood one)
    cl: float
    n: int
    covered: int
    verdict: str  # covers | under-covers | over-covers

    @property
    def coverage(self) -> float:
        return self.covered / self.n

    @property
    def error(self) -> float:
        """Binomial standard error of the coverage (with (k+1)/(n+2) in place of k/n, so 0 and 1 have one)."""
        p = (self.covered + 1) / (self.n + 2)
        return math.sqrt(p * (1 - p) / self.n)


def _coverage_row(parameter: str, interval: str, cl: float, inside: np.ndarray) -> CoverageRow:
    n, k = len(inside), int(inside.sum())
    z = (k / n - cl) / math.sqrt(cl * (1 - cl) / n)
    verdict = "under-covers" if z <= -SIGNIFICANT_Z else "over-covers" if z >= SIGNIFICANT_Z else "covers"
    return CoverageRow(parameter, interval, cl, n, k, verdict)


def posterior_interval_coverage(names: list[str], theta: np.ndarray, samples: np.ndarray, cl: float
                                ) -> list[CoverageRow]:
    """Coverage of the central credible interval at ``cl`` of each parameter (samples (N, m, d), θ (m, d))."""
    lo, hi = np.quantile(samples, [(1 - cl) / 2, (1 + cl) / 2], axis=0)
    inside = (lo <= theta) & (theta <= hi)
    return [_coverage_row(name, "posterior", cl, inside[:, j]) for j, name in enumerate(names)]


def likelihood_interval_coverage(task: Task, names: list[str], theta: np.ndarray, x: np.ndarray, cl: float,
                                 progress: Callable[[int], None] | None = None) -> tuple[list[CoverageRow], int]:
    """Coverage of the task's likelihood intervals at ``cl`` (``task.likelihood_intervals(x_i, cl)``).

    Returns:
        One row per parameter the task gives intervals for, and the number of pseudo-experiments whose interval
        could not be computed (a failed fit), which are left out.
    """
    hits: dict[str, list[bool]] = {}
    failed = 0
    for theta_i, x_i in zip(theta, x, strict=True):
        try:
            intervals = task.likelihood_intervals(x_i, cl) or {}
        except (ValueError, RuntimeError, ArithmeticError):
            failed += 1
            intervals = {}
        for name, (lo, hi) in intervals.items():
            value = theta_i[names.index(name)]
            hits.setdefault(name, []).append(bool(lo <= value <= hi))
        if progress is not None:
            progress(1)
    rows = [_coverage_row(name, "likelihood", cl, np.array(hits[name])) for name in names if hits.get(name)]
    return rows, failed
