r"""``sbi_diagnostics``: is a trained posterior calibrated? SBC, TARP, coverage, posterior predictive, L-C2ST.

The calibration checks simulate ``num_calibration_simulations`` fresh pseudo-experiments (θ_i ~ prior,
x_i ~ simulator, seeded — never the training set), draw ``num_posterior_samples`` samples of q(θ | x_i) for
each once (NPE: ``sample_batched``, one pass for all x; NLE/NRE: vectorised slice sampling with the lighter
chain settings of :data:`MCMC_CALIBRATION`, seconds per pseudo-experiment), and read them all
(:mod:`tools.sbi._calibration`):

- ``sbc``: simulation-based calibration (Talts et al., arXiv:1804.06788) — the rank of θ_i among its posterior
  samples, per parameter; a Kolmogorov–Smirnov test of uniform ranks and a verdict from the shape of the rank
  distribution (calibrated / over-confident: U-shaped / under-confident: ∩-shaped / biased: skewed), with a
  rank histogram per parameter and its ±99 % binomial band;
- ``tarp``: expected coverage of random-reference credible regions against the credibility level (Lemos et al.,
  arXiv:2302.03026), sbi's ATC and KS p-value, and the coverage curve with the diagonal;
- ``coverage`` (tasks with a likelihood, e.g. ``signal_strength``): how often the posterior's central 68 %
  credible interval and the task's 68 % profile-likelihood interval hold θ_i, with binomial errors.

At one observation x_o (``observation`` / ``observation_number`` / ``observe_at``, as for ``sbi_posterior``):

- ``ppc``: posterior predictive check (:mod:`tools.sbi._predictive`) — x simulated at 200 posterior samples,
  the predictive quantile of each observable of x_o, flags outside the central 99 %;
- ``lc2st`` (NPE only): local classifier two-sample test of q(θ | x_o) (Linhart et al., arXiv:2306.03580,
  :mod:`tools.sbi._lc2st`), trained on the calibration pairs.

``verdict`` is ``calibrated``, ``miscalibrated: <which parameters, how>`` or ``inconclusive: <why>``; each check
also has its own line in ``check_verdicts``, and ``warnings`` say which settings are too weak to show much.
Output: the numbers and one ``plot`` artifact per check that draws one (``sbc.png``, ``tarp.png``, ``ppc.png``,
``lc2st.png``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from physagent.tools._artifacts import Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError, ToolRuntimeError
from physagent.tools._registry import ToolResult, tool
from physagent.tools.sbi._artifact import (
    MAX_SAMPLING_S,
    LoadedPosterior,
    PosteriorRef,
    load_posterior,
    sample_posterior,
    seeded,
)
from physagent.tools.sbi._calibration import (
    KS_ALPHA,
    BatchSampler,
    CalibrationSet,
    CoverageRow,
    SbcMarginal,
    TarpCheck,
    batched_sampler,
    check_sbc_marginals,
    check_tarp_coverage,
    derive_seed,
    draw_posterior_samples,
    likelihood_interval_coverage,
    posterior_interval_coverage,
    sbc_ranks,
    simulate_calibration_set,
    weak_settings_warnings,
)
from physagent.tools.sbi._diagnostic_plots import plot_lc2st, plot_predictive, plot_sbc, plot_tarp
from physagent.tools.sbi._lc2st import Lc2stCheck, run_lc2st
from physagent.tools.sbi._observations import ResolvedObservation, resolve_observation
from physagent.tools.sbi._predictive import PredictiveCheck, posterior_predictive_check
from physagent.tools.sbi._task import N_OBSERVATIONS

__all__ = ["CoverageResult", "PredictiveRow", "SbcRow", "SbiDiagnostics", "sbi_diagnostics"]

TOOL = "sbi_diagnostics"
Check = Literal["sbc", "tarp", "ppc", "lc2st", "coverage"]
ORDER: tuple[str, ...] = ("sbc", "tarp", "coverage", "ppc", "lc2st")
DEFAULT_CHECKS = ["sbc", "tarp", "ppc"]
CALIBRATION_CHECKS = {"sbc", "tarp", "coverage", "lc2st"}
COVERAGE_CL = 0.68
PPC_DRAWS = 200  # posterior samples simulated for the predictive check
LC2ST_NULL_TRIALS = 30  # permutation classifiers: p-value resolution 1/30; each costs seconds (10-d θ, 100 pairs)
MAX_SAMPLE_VALUES = 50_000_000  # simulations × samples × parameters held at once (400 MB of float64)
MIN_CONCLUSIVE = 50  # fewer calibration pseudo-experiments than this cannot show a posterior is calibrated
#: NLE/NRE: slice sampling for every calibration pseudo-experiment with fewer chains and warm-up steps than
#: sbi_posterior's (10⁴ samples at one x); 2–5 s per pseudo-experiment on one core for a 2-d θ instead of ~10 s.
MCMC_CALIBRATION: dict[str, Any] = {"num_chains": 20, "warmup_steps": 20,
                                    "init_strategy_parameters": {"num_candidate_samples": 100}}
MCMC_SECONDS = 3.0  # rough cost of one pseudo-experiment's MCMC on one core (2-d θ), for the warning


class SbcRow(BaseModel):
    """SBC of one parameter."""

    name: str = Field(description="Parameter name.")
    ks_pvalue: float = Field(description="Kolmogorov–Smirnov p-value of uniform ranks (small: miscalibrated).")
    verdict: str = Field(description="calibrated, over-confident (ranks U-shaped: posterior too narrow), "
                                     "under-confident (∩-shaped: too wide) or biased (skewed: shifted).")
    detail: str = Field(description="The rank statistics behind the verdict, in words.")


class CoverageResult(BaseModel):
    """How often one interval construction at 68 % held the true value over the pseudo-experiments."""

    parameter: str = Field(description="Parameter name.")
    interval: str = Field(description="posterior (central credible interval) or likelihood (the task's "
                                      "profile-likelihood interval).")
    cl: float = Field(description="Nominal level of the intervals.")
    coverage: float = Field(description="Fraction of pseudo-experiments whose interval held θ.")
    error: float = Field(description="Binomial standard error of coverage.")
    n: int = Field(description="Pseudo-experiments counted.")
    verdict: str = Field(description="covers (within 3σ of cl), under-covers or over-covers.")


class PredictiveRow(BaseModel):
    """One observable of x_o against its posterior predictive distribution."""

    observable: str = Field(description="Observable name.")
    x_o: float = Field(description="Its observed value.")
    predictive_median: float = Field(description="Median of the posterior predictive distribution.")
    predictive_low: float = Field(description="0.5 % quantile of the posterior predictive.")
    predictive_high: float = Field(description="99.5 % quantile of the posterior predictive.")
    quantile: float = Field(description="Fraction of predictive draws below x_o (0.5 is typical).")
    pull: float | None = Field(description="(x_o − predictive median) / σ̂, σ̂ half the central 68 % width of the "
                                           "predictive (None if it has no spread).")
    flagged: bool = Field(description="x_o lies outside the central 99 % of the predictive distribution.")


class SbiDiagnostics(ToolResult):
    """Calibration checks of a trained SBI posterior, a verdict per check and overall, and their plots."""

    posterior: str = Field(description="Id of the posterior artifact checked.")
    method: str = Field(description="NPE, NLE or NRE.")
    task: str = Field(description="The posterior's simulator (task name or 'custom').")
    checks: list[str] = Field(description="Checks run, in the order run.")
    verdict: str = Field(description="calibrated, 'miscalibrated: <which parameters, how>' or "
                                     "'inconclusive: <why>'.")
    check_verdicts: dict[str, str] = Field(description="One line per check run: its verdict and the numbers.")
    n_simulations: int = Field(description="Calibration pseudo-experiments used (fresh simulations, failures "
                                           "dropped); 0 when only ppc ran.")
    n_failed_simulations: int = Field(description="Calibration simulations that failed (NaN) and were dropped.")
    num_posterior_samples: int = Field(description="Posterior samples per pseudo-experiment and at x_o.")
    sbc: list[SbcRow] = Field(description="SBC per parameter (empty if sbc was not run).")
    tarp_atc: float | None = Field(description="TARP area between the coverage curve and the diagonal above "
                                               "α = 0.5: ≈ 0 calibrated, < 0 over-confident or biased, > 0 "
                                               "under-confident.")
    tarp_ks_pvalue: float | None = Field(description="TARP Kolmogorov–Smirnov p-value between the coverage "
                                                     "curve and the diagonal (sbi's check_tarp; weak power).")
    coverage: list[CoverageResult] = Field(description="Coverage of 68 % intervals per parameter: posterior and, "
                                                       "where the task has one, likelihood interval.")
    coverage_table: str | None = Field(description="The coverage rows as a Markdown table.")
    observation_used: str | None = Field(description="Which x_o the ppc and lc2st checks used.")
    ppc: list[PredictiveRow] = Field(description="Posterior predictive check per observable (empty if not run).")
    lc2st_pvalue: float | None = Field(description="L-C2ST p-value at x_o (small: the posterior is wrong there).")
    warnings: list[str] = Field(description="Settings too weak to show much, and dropped simulations, with what to "
                                            "do; empty if none.")
    sbc_plot: Artifact | None = Field(description="Plot artifact sbc.png: rank histogram per parameter with the "
                                                  "±99 % band of uniform ranks.")
    tarp_plot: Artifact | None = Field(description="Plot artifact tarp.png: expected coverage against credibility "
                                                   "level, with the diagonal.")
    ppc_plot: Artifact | None = Field(description="Plot artifact ppc.png: predictive histogram per observable with "
                                                  "x_o marked.")
    lc2st_plot: Artifact | None = Field(description="Plot artifact lc2st.png: the L-C2ST statistic at x_o against "
                                                    "its permutation null distribution.")
    wall_s: float = Field(description="Wall time of the call in seconds.")


@tool(category="sbi", version="1")
def sbi_diagnostics(
    posterior: Annotated[PosteriorRef, Field(description="Id of a posterior artifact from sbi_train.")],
    checks: Annotated[list[Check] | None, Field(min_length=1, max_length=5, description=(
        "Which checks (default sbc, tarp, ppc): sbc (rank statistics per parameter), tarp (expected coverage), "
        "coverage (68 % posterior and likelihood intervals; only tasks with a likelihood, e.g. signal_strength), "
        "ppc (posterior predictive at x_o), lc2st (local test at x_o; NPE posteriors only; trains 31 classifiers, "
        "minutes)."))] = None,
    num_calibration_simulations: Annotated[int, Field(ge=20, le=100_000, description=(
        "Fresh pseudo-experiments (θ ~ prior, x ~ simulator) for sbc, tarp, coverage and lc2st; 200 or more "
        "for useful power, 1000+ for lc2st."))] = 200,
    num_posterior_samples: Annotated[int, Field(ge=10, le=100_000, description=(
        "Posterior samples per pseudo-experiment (the SBC rank resolution) and at x_o."))] = 1000,
    observation: Annotated[list[float] | None, Field(description=(
        "x_o for ppc and lc2st, one number per observable in order. Give at most one of observation, "
        "observation_number, observe_at; none means observation_number=1."))] = None,
    observation_number: Annotated[int | None, Field(ge=1, le=N_OBSERVATIONS, description=(
        f"Stored observation 1 … {N_OBSERVATIONS} of the task for ppc and lc2st."))] = None,
    observe_at: Annotated[list[float] | None, Field(description=(
        "θ (one value per parameter, in order) at which to simulate x_o for ppc and lc2st with seed."))] = None,
    seed: Annotated[int, Field(description="Random seed of the calibration simulations, samples and tests.")] = 0,
    *,
    ctx: ToolContext,
) -> SbiDiagnostics:
    """Check whether a trained SBI posterior is calibrated: SBC ranks, TARP coverage, predictive check, L-C2ST.

    Returns a verdict (calibrated / miscalibrated: which parameters, how / inconclusive: why), one line per
    check, SBC KS p-values per parameter, TARP ATC, 68 % coverage, the predictive check at x_o, and plots.
    """
    started = time.perf_counter()
    loaded = load_posterior(ctx, posterior)
    chosen = _checks(loaded, checks)
    _check_size(num_calibration_simulations, num_posterior_samples, len(loaded.parameter_names), chosen)
    warnings = weak_settings_warnings(num_calibration_simulations, num_posterior_samples, chosen)
    if loaded.method != "NPE" and CALIBRATION_CHECKS & set(chosen):
        minutes = num_calibration_simulations * MCMC_SECONDS / 60
        warnings.append(f"{loaded.method} posteriors are sampled by MCMC for each of the {num_calibration_simulations} "
                        f"pseudo-experiments ({MCMC_CALIBRATION['num_chains']} slice-sampling chains, "
                        f"{MCMC_CALIBRATION['warmup_steps']} warm-up steps; ~{minutes:.0f} min on one core for a 2-d "
                        "θ); a miscalibration can also mean the chains did not mix")
    resolved = _observation(loaded, chosen, observation, observation_number, observe_at, seed, warnings)
    run = _Run(ctx, loaded, seed, num_posterior_samples)
    if CALIBRATION_CHECKS & set(chosen):
        run.calibrate(num_calibration_simulations, warnings)
    steps = {"sbc": run.sbc, "tarp": run.tarp, "coverage": run.coverage, "ppc": run.ppc, "lc2st": run.lc2st}
    for name in chosen:
        steps[name](resolved)
        ctx.check_cancelled()
    return run.result(posterior, chosen, resolved, warnings, time.perf_counter() - started)


def _checks(loaded: LoadedPosterior, checks: Sequence[str] | None) -> list[str]:
    chosen = [name for name in ORDER if name in (checks or DEFAULT_CHECKS)]
    if "lc2st" in chosen and loaded.method != "NPE":
        raise ToolInputError.for_param(TOOL, "checks", checks, (
            f"includes lc2st, which needs an NPE posterior (one sample per calibration simulation in one pass); "
            f"{loaded.artifact.id} is {loaded.method}. Drop lc2st: sbc and tarp check {loaded.method} posteriors."))
    if "coverage" in chosen and _likelihood_free(loaded):
        raise ToolInputError.for_param(TOOL, "checks", checks, (
            f"includes coverage, but task {loaded.task.name} has no likelihood intervals to compare with (e.g. "
            "signal_strength has). Drop coverage; sbc and tarp check the posterior's calibration."))
    return chosen


def _check_size(n_simulations: int, n_samples: int, d: int, chosen: list[str]) -> None:
    values = n_simulations * n_samples * d
    if CALIBRATION_CHECKS & set(chosen) and values > MAX_SAMPLE_VALUES:
        raise ToolInputError.for_param(TOOL, "num_posterior_samples", n_samples, (
            f"with num_calibration_simulations={n_simulations} and {d} parameters means {values:,} sampled values "
            f"held at once, more than {MAX_SAMPLE_VALUES:,}. Lower num_posterior_samples (1000 resolves ranks well) "
            "or num_calibration_simulations."))


def _likelihood_free(loaded: LoadedPosterior) -> bool:
    stored = loaded.task.observation(1)
    return loaded.task.likelihood_intervals(np.asarray(stored.x, dtype=np.float64), COVERAGE_CL) is None


def _observation(loaded: LoadedPosterior, chosen: list[str], observation: list[float] | None,
                 observation_number: int | None, observe_at: list[float] | None, seed: int,
                 warnings: list[str]) -> ResolvedObservation | None:
    if not {"ppc", "lc2st"} & set(chosen):
        if observation is not None or observation_number is not None or observe_at is not None:
            warnings.append("observation, observation_number and observe_at are used only by ppc and lc2st; "
                            "they were ignored (add ppc to checks to use them)")
        return None
    return resolve_observation(TOOL, loaded, observation, observation_number, observe_at, seed)


class _Run:
    """The state of one call: the calibration set and samples, shared by the checks, and what each found."""

    def __init__(self, ctx: ToolContext, loaded: LoadedPosterior, seed: int, n_samples: int) -> None:
        self.ctx, self.loaded, self.seed, self.n_samples = ctx, loaded, seed, n_samples
        self.names = loaded.parameter_names
        self.calibration: CalibrationSet | None = None
        self.samples = np.empty((0, 0, len(self.names)))
        self.sbc_rows: list[SbcMarginal] = []
        self.tarp_check: TarpCheck | None = None
        self.coverage_rows: list[CoverageRow] = []
        self.predictive: PredictiveCheck | None = None
        self.lc2st_check: Lc2stCheck | None = None
        self.theta_o: np.ndarray | None = None  # posterior samples at x_o, drawn once for ppc and lc2st
        self.verdicts: dict[str, str] = {}
        self.plots: dict[str, Artifact] = {}
        self.notes: list[str] = []

    # --- the calibration set ---

    def calibrate(self, n: int, warnings: list[str]) -> None:
        task = self.loaded.task
        with self.ctx.progress("simulating calibration pseudo-experiments", total=n, unit="simulations") as bar:
            calibration = simulate_calibration_set(task, n, derive_seed(self.seed, 10), bar.advance)
        if len(calibration.theta) < 2:
            raise ToolRuntimeError(f"{TOOL}: {calibration.n_failed} of {n} calibration simulations of {task.name} "
                                   "failed (NaN): nothing to check. Check the simulator with sbi_posterior's "
                                   "observe_at, or fix the user simulator.")
        if calibration.n_failed:
            warnings.append(f"{calibration.n_failed} of {n} calibration simulations failed (NaN) and were dropped; "
                            "if failures depend on θ, the checks describe only where the simulator works")
        m = len(calibration.theta)
        with self.ctx.progress(f"sampling the {self.loaded.method} posterior for each pseudo-experiment", total=m,
                               unit="pseudo-experiments") as bar:
            self.samples = draw_posterior_samples(self._sampler(), calibration.x, self.n_samples,
                                                  derive_seed(self.seed, 11), chunk=self._chunk(),
                                                  progress=bar.advance)
        self.calibration = calibration

    def _sampler(self) -> BatchSampler:
        from physagent.tools.tag._runtime import torch_threads

        loaded = self.loaded
        if not hasattr(loaded.posterior, "sample_batched"):
            def one_by_one(xs: np.ndarray, n: int, seed: int) -> np.ndarray:
                return np.stack([sample_posterior(loaded, x, n, derive_seed(seed, i)) for i, x in enumerate(xs)],
                                axis=1)

            return one_by_one
        options = {"max_sampling_time": MAX_SAMPLING_S} if loaded.method == "NPE" else MCMC_CALIBRATION
        batched = batched_sampler(loaded.posterior, **options)

        def sample(xs: np.ndarray, n: int, seed: int) -> np.ndarray:
            with torch_threads(), seeded(seed):  # seeded: the slice sampler of NLE/NRE reads numpy's generator
                try:
                    return batched(xs, n, seed)
                except RuntimeError as exc:
                    raise ToolRuntimeError(f"{TOOL}: sampling {loaded.artifact.id} for the calibration simulations "
                                           f"failed: {exc}. The posterior puts most of its mass outside the prior "
                                           "for some of them; retrain with more simulations.") from exc

        return sample

    def _chunk(self) -> int:
        return 50 if self.loaded.method == "NPE" else 10

    @property
    def cal(self) -> CalibrationSet:
        if self.calibration is None:
            raise RuntimeError("calibrate() must run before the calibration checks")
        return self.calibration

    # --- the checks (each named as in `checks`) ---

    def sbc(self, _: ResolvedObservation | None) -> None:
        ranks = sbc_ranks(self.cal.theta, self.cal.x, self.samples)
        self.sbc_rows = check_sbc_marginals(self.names, ranks, self.n_samples, derive_seed(self.seed, 12))
        bad = [r for r in self.sbc_rows if r.verdict != "calibrated"]
        d, worst = len(self.sbc_rows), min(r.ks_pvalue for r in self.sbc_rows)
        threshold = f"{KS_ALPHA / d:.2g}" + (f", Bonferroni-corrected for {d} parameters" if d > 1 else "")
        self.verdicts["sbc"] = (f"calibrated: ranks uniform for all {d} parameters (smallest KS p = {worst:.2g}; "
                                f"threshold {threshold})" if not bad else
                                "miscalibrated: " + "; ".join(f"{r.name} {r.verdict} (KS p = {r.ks_pvalue:.2g})"
                                                             for r in bad))
        self._plot("sbc", plot_sbc(self.sbc_rows, f"SBC of {self.loaded.artifact.id} "
                                  f"({len(self.cal.theta)} pseudo-experiments)"),
                   f"SBC rank histograms of {self.loaded.artifact.id}: {self.verdicts['sbc']}")

    def tarp(self, _: ResolvedObservation | None) -> None:
        self.tarp_check = check_tarp_coverage(self.cal.theta, self.cal.x, self.samples, derive_seed(self.seed, 13))
        self.verdicts["tarp"] = f"{self.tarp_check.verdict}: {self.tarp_check.detail}"
        self._plot("tarp", plot_tarp(self.tarp_check, f"TARP of {self.loaded.artifact.id}"),
                   f"TARP expected coverage of {self.loaded.artifact.id}: {self.tarp_check.verdict}")

    def coverage(self, _: ResolvedObservation | None) -> None:
        rows = posterior_interval_coverage(self.names, self.cal.theta, self.samples, COVERAGE_CL)
        m = len(self.cal.theta)
        with self.ctx.progress("likelihood intervals of the pseudo-experiments", total=m, unit="fits") as bar:
            likelihood, failed = likelihood_interval_coverage(self.loaded.task, self.names, self.cal.theta,
                                                              self.cal.x, COVERAGE_CL, bar.advance)
        if failed:
            self.notes.append(f"{failed} of {m} likelihood-interval fits failed and were left out of the likelihood "
                              "coverage")
        self.coverage_rows = rows + likelihood
        off = [r for r in self.coverage_rows if r.verdict != "covers"]
        words = "; ".join(f"{r.parameter} {r.interval} {r.coverage:.2f} ± {r.error:.2f}" for r in self.coverage_rows)
        self.verdicts["coverage"] = (f"all 68 % intervals cover as they should: {words}" if not off else
                                     f"{', '.join(f'{r.parameter} {r.interval} interval {r.verdict}' for r in off)}: "
                                     f"{words}")

    def ppc(self, resolved: ResolvedObservation | None) -> None:
        x_o = _required(resolved).x
        theta = self._at_observation(x_o)[:PPC_DRAWS]
        with self.ctx.progress("simulating the posterior predictive", total=len(theta), unit="simulations") as bar:
            try:
                self.predictive = posterior_predictive_check(self.loaded.task, theta, x_o,
                                                             derive_seed(self.seed, 14), bar.advance)
            except ValueError as exc:
                raise ToolRuntimeError(f"{TOOL}: the posterior predictive check failed: {exc}. The simulator fails "
                                       "where the posterior puts its mass; check it with observe_at.") from exc
        self.verdicts["ppc"] = f"{self.predictive.verdict}: {self.predictive.detail}"
        self._plot("ppc", plot_predictive(self.predictive, f"posterior predictive of "
                                  f"{self.loaded.artifact.id} at {_required(resolved).label}"),
                   f"posterior predictive check of {self.loaded.artifact.id} at {_required(resolved).label}: "
                   f"{self.predictive.verdict}")

    def lc2st(self, resolved: ResolvedObservation | None) -> None:
        x_o = _required(resolved).x
        theta_o = self._at_observation(x_o)
        with self.ctx.progress(f"L-C2ST: training {LC2ST_NULL_TRIALS + 1} classifiers", total=None):
            self.lc2st_check = run_lc2st(self.cal.theta, self.cal.x, self.samples[0], theta_o, x_o,
                                         derive_seed(self.seed, 15), n_null=LC2ST_NULL_TRIALS)
        self.verdicts["lc2st"] = f"{self.lc2st_check.verdict}: {self.lc2st_check.detail}"
        self._plot("lc2st", plot_lc2st(self.lc2st_check, f"L-C2ST of {self.loaded.artifact.id} at "
                                    f"{_required(resolved).label}"),
                   f"L-C2ST of {self.loaded.artifact.id}: p = {self.lc2st_check.p_value:.2g}")

    def _at_observation(self, x_o: np.ndarray) -> np.ndarray:
        if self.theta_o is None:
            with self.ctx.progress("sampling the posterior at x_o", total=self.n_samples, unit="samples") as bar:
                self.theta_o = sample_posterior(self.loaded, x_o, self.n_samples, derive_seed(self.seed, 16))
                bar.advance(self.n_samples)
        return self.theta_o

    def _plot(self, check: str, figure: Any, summary: str) -> None:
        from physagent.tools.tag._metrics import save_png

        pending = self.ctx.new_artifact("plot")
        save_png(figure, pending.directory / f"{check}.png")
        self.plots[check] = pending.finish(f"{check}.png", summary, {"posterior": self.loaded.artifact.id,
                                                                     "check": check, "seed": self.seed})

    # --- the result ---

    def result(self, posterior: str, chosen: list[str], resolved: ResolvedObservation | None, warnings: list[str],
               wall_s: float) -> SbiDiagnostics:
        m = 0 if self.calibration is None else len(self.calibration.theta)
        tarp = self.tarp_check
        return SbiDiagnostics(
            posterior=posterior, method=self.loaded.method, task=self.loaded.task.name, checks=chosen,
            verdict=self._verdict(chosen, m), check_verdicts=self.verdicts, n_simulations=m,
            n_failed_simulations=0 if self.calibration is None else self.calibration.n_failed,
            num_posterior_samples=self.n_samples,
            sbc=[SbcRow(name=r.name, ks_pvalue=r.ks_pvalue, verdict=r.verdict, detail=r.detail) for r in self.sbc_rows],
            tarp_atc=None if tarp is None else tarp.atc, tarp_ks_pvalue=None if tarp is None else tarp.ks_pvalue,
            coverage=[CoverageResult(parameter=r.parameter, interval=r.interval, cl=r.cl, coverage=r.coverage,
                                     error=r.error, n=r.n, verdict=r.verdict) for r in self.coverage_rows],
            coverage_table=_coverage_table(self.coverage_rows) if self.coverage_rows else None,
            observation_used=None if resolved is None else resolved.label,
            ppc=[] if self.predictive is None else [
                PredictiveRow(observable=r.name, x_o=r.x_o, predictive_median=r.median, predictive_low=r.low,
                              predictive_high=r.high, quantile=r.quantile, pull=r.pull, flagged=r.flagged)
                for r in self.predictive.observables],
            lc2st_pvalue=None if self.lc2st_check is None else self.lc2st_check.p_value,
            warnings=warnings + self.notes, sbc_plot=self.plots.get("sbc"), tarp_plot=self.plots.get("tarp"),
            ppc_plot=self.plots.get("ppc"), lc2st_plot=self.plots.get("lc2st"), wall_s=round(wall_s, 3))

    def _verdict(self, chosen: list[str], m: int) -> str:
        problems = [f"{r.name} {r.verdict} (SBC KS p = {r.ks_pvalue:.2g})" for r in self.sbc_rows
                    if r.verdict != "calibrated"]
        if self.tarp_check is not None and self.tarp_check.verdict != "calibrated":
            problems.append(f"TARP {self.tarp_check.verdict} (ATC {self.tarp_check.atc:+.3f})")
        problems += [f"{r.parameter} 68 % credible interval {r.verdict} ({r.coverage:.2f} ± {r.error:.2f})"
                     for r in self.coverage_rows if r.interval == "posterior" and r.verdict != "covers"]
        if self.lc2st_check is not None and self.lc2st_check.p_value < 0.05:
            problems.append(f"L-C2ST rejects it at the observation (p = {self.lc2st_check.p_value:.2g})")
        if problems:
            return "miscalibrated: " + "; ".join(problems)
        if not CALIBRATION_CHECKS & set(chosen):
            return ("inconclusive: only the posterior predictive check ran, which tests the model at x_o, not the "
                    "posterior's calibration; add sbc and tarp to checks")
        if m < MIN_CONCLUSIVE:
            return (f"inconclusive: no miscalibration found, but {m} pseudo-experiments can show only gross "
                    "miscalibration; rerun with num_calibration_simulations=200 or more")
        if self.predictive is not None and self.predictive.verdict == "fails":
            return ("inconclusive: calibrated on simulations, but the simulator does not reproduce the observation "
                    "(posterior predictive check fails), so the posterior cannot be trusted at x_o")
        return "calibrated"


def _required(resolved: ResolvedObservation | None) -> ResolvedObservation:
    if resolved is None:
        raise RuntimeError("the observation is resolved whenever ppc or lc2st runs")
    return resolved


def _coverage_table(rows: list[CoverageRow]) -> str:
    lines = ["| parameter | interval | CL | coverage | verdict |", "|---|---|---:|---:|---|"]
    lines += [f"| {r.parameter} | {r.interval} | {r.cl:.2f} | {r.coverage:.3f} ± {r.error:.3f} | {r.verdict} |"
              for r in rows]
    return "\n".join(lines)
