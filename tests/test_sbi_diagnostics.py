"""sbi_diagnostics: SBC, TARP, coverage, the posterior predictive check and L-C2ST tell a calibrated posterior
from a miscalibrated one.

The cores are checked on a 2-d conjugate Gaussian toy whose posterior is known exactly, so a calibrated sampler
and deliberately wrong ones (too narrow, too wide, shifted) can be written down; one test trains a small NPE.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import pytest
from scipy.stats import norm

from physagent.tools import ProgressUpdate, ToolInputError, Workspace, call_tool
from physagent.tools.sbi._calibration import (
    BatchSampler,
    CalibrationSet,
    batched_sampler,
    check_sbc_marginals,
    check_tarp_coverage,
    draw_posterior_samples,
    likelihood_interval_coverage,
    posterior_interval_coverage,
    sbc_ranks,
    simulate_calibration_set,
    weak_settings_warnings,
)
from physagent.tools.sbi._lc2st import run_lc2st
from physagent.tools.sbi._predictive import posterior_predictive_check
from physagent.tools.sbi._task import Observation, Parameter
from physagent.tools.sbi.diagnostics import SbiDiagnostics

SIGMA = 0.5  # noise of x around θ
POSTERIOR_SD = math.sqrt(SIGMA**2 / (1 + SIGMA**2))
NAMES = ["a", "b"]


class GaussianToy:
    """θ ~ N(0, I₂), x ~ N(θ, σ² I₂): the posterior is N(x / (1 + σ²), σ²/(1 + σ²) I₂), the likelihood interval
    x ± z σ covers θ with probability cl exactly."""

    name = "gaussian_toy"
    description = "2-d conjugate Gaussian for the diagnostics tests"
    parameters = (Parameter("a"), Parameter("b"))
    observables = ("x_a", "x_b")
    seconds_per_simulation = 1e-6

    def __init__(self) -> None:
        self.options: dict[str, object] = {}

    def prior(self) -> object:
        import torch

        return torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))

    def simulate(self, theta: np.ndarray, seed: int, progress: Callable[[int], None] | None = None) -> np.ndarray:
        x = theta + SIGMA * np.random.default_rng(seed).normal(size=np.shape(theta))
        if progress is not None:
            progress(len(theta))
        return x

    def observation(self, number: int) -> Observation:
        theta = np.random.default_rng(number).normal(size=2)
        return Observation(number, theta, self.simulate(theta[None], number + 100)[0])

    def reference_posterior(self, x_o: np.ndarray, n_samples: int, seed: int) -> np.ndarray:
        return exact_sampler()(np.asarray(x_o)[None], n_samples, seed)[:, 0]

    def likelihood_intervals(self, x_o: np.ndarray, cl: float) -> dict[str, tuple[float, float]]:
        z = norm.ppf((1 + cl) / 2)
        return {name: (float(v - z * SIGMA), float(v + z * SIGMA)) for name, v in zip(NAMES, x_o, strict=True)}


def exact_sampler(shrink: float = 1.0, shift_sd: float = 0.0) -> BatchSampler:
    """The analytic posterior, its width divided by ``shrink`` and its mean moved by ``shift_sd`` posterior σ."""

    def sample(xs: np.ndarray, n: int, seed: int) -> np.ndarray:
        mean = xs / (1 + SIGMA**2) + shift_sd * POSTERIOR_SD
        return mean + POSTERIOR_SD / shrink * np.random.default_rng(seed).normal(size=(n, *xs.shape))

    return sample


@pytest.fixture(scope="module")
def calibration() -> CalibrationSet:
    """300 pseudo-experiments of the toy."""
    return simulate_calibration_set(GaussianToy(), 300, seed=11)


def sbc_of(calibration: CalibrationSet, sampler: BatchSampler, n_samples: int = 500) -> list:
    samples = draw_posterior_samples(sampler, calibration.x, n_samples, seed=5)
    return check_sbc_marginals(NAMES, sbc_ranks(calibration.theta, calibration.x, samples), n_samples, seed=5)


def tarp_of(calibration: CalibrationSet, sampler: BatchSampler) -> object:
    samples = draw_posterior_samples(sampler, calibration.x, 500, seed=6)
    return check_tarp_coverage(calibration.theta, calibration.x, samples, seed=6)


def test_the_calibration_set_is_fresh_seeded_and_counts_its_rows(calibration: CalibrationSet) -> None:
    """The same seed gives the same pseudo-experiments, another seed others; progress counts every row."""
    done: list[int] = []
    again = simulate_calibration_set(GaussianToy(), 300, seed=11, progress=done.append)
    assert np.array_equal(again.theta, calibration.theta) and np.array_equal(again.x, calibration.x)
    assert sum(done) == 300 and calibration.n_failed == 0
    assert not np.allclose(simulate_calibration_set(GaussianToy(), 300, seed=12).theta, calibration.theta)
    assert abs(calibration.theta.std() - 1.0) < 0.1


def test_sbc_ranks_count_the_posterior_samples_below_the_true_value(calibration: CalibrationSet) -> None:
    """The ranks from sbi's run_sbc are #{samples < θ} per parameter, 0 … N."""
    samples = draw_posterior_samples(exact_sampler(), calibration.x, 50, seed=1)
    ranks = sbc_ranks(calibration.theta, calibration.x, samples)
    assert ranks.shape == (300, 2)
    assert np.array_equal(ranks, (samples < calibration.theta[None]).sum(axis=0))


def test_sbc_ranks_of_the_exact_posterior_are_uniform(calibration: CalibrationSet) -> None:
    """The analytic posterior passes SBC: KS p > 0.01 and 'calibrated' for both parameters."""
    for marginal in sbc_of(calibration, exact_sampler()):
        assert marginal.ks_pvalue > 0.01, marginal.detail
        assert marginal.verdict == "calibrated", marginal.detail


def test_a_posterior_three_times_too_narrow_is_over_confident(calibration: CalibrationSet) -> None:
    """Shrinking the posterior width 3× piles the ranks at both edges: KS p < 1e-3, verdict over-confident."""
    for marginal in sbc_of(calibration, exact_sampler(shrink=3.0)):
        assert marginal.ks_pvalue < 1e-3
        assert marginal.verdict == "over-confident", marginal.detail
        assert marginal.low_edge > 0.25 and marginal.high_edge > 0.25
        assert "U-shaped" in marginal.detail


def test_a_posterior_twice_too_wide_is_under_confident(calibration: CalibrationSet) -> None:
    """Doubling the width bunches the ranks in the middle: verdict under-confident."""
    for marginal in sbc_of(calibration, exact_sampler(shrink=0.5)):
        assert marginal.verdict == "under-confident", marginal.detail
        assert marginal.middle > 0.7


def test_a_shifted_posterior_is_biased_and_says_which_way(calibration: CalibrationSet) -> None:
    """Moving the posterior one σ up makes the ranks pile at the low edge: biased, sitting above the truth."""
    for marginal in sbc_of(calibration, exact_sampler(shift_sd=1.0)):
        assert marginal.verdict == "biased", marginal.detail
        assert marginal.mean_rank < 0.35
        assert "sits above the true value" in marginal.detail


def test_coarse_ranks_stay_uniform_thanks_to_the_jitter(calibration: CalibrationSet) -> None:
    """With only 9 posterior samples (10 rank values) the jittered KS test does not reject the exact posterior."""
    for marginal in sbc_of(calibration, exact_sampler(), n_samples=9):
        assert marginal.ks_pvalue > 0.01, marginal.detail


def test_tarp_tells_the_exact_posterior_from_an_over_confident_one(calibration: CalibrationSet) -> None:
    """TARP's ATC is within noise of 0 for the exact posterior and clearly negative for one 3× too narrow."""
    exact, narrow, wide = (tarp_of(calibration, exact_sampler(shrink=s)) for s in (1.0, 3.0, 0.5))
    assert exact.verdict == "calibrated", exact.detail  # type: ignore[attr-defined]
    assert abs(exact.atc) < 3 * exact.atc_sigma  # type: ignore[attr-defined]
    assert narrow.verdict == "over-confident or biased", narrow.detail  # type: ignore[attr-defined]
    assert narrow.atc < -0.08  # type: ignore[attr-defined]
    assert wide.verdict == "under-confident", wide.detail  # type: ignore[attr-defined]
    assert exact.ecp[0] == 0 and exact.ecp[-1] == pytest.approx(1.0)  # type: ignore[attr-defined]


def test_coverage_of_correct_68_percent_intervals_is_68_percent(calibration: CalibrationSet) -> None:
    """Both the exact posterior's central interval and the likelihood interval x ± σ cover θ in 68 ± 3σ_binomial %
    of the pseudo-experiments; a 3× too narrow posterior under-covers."""
    samples = draw_posterior_samples(exact_sampler(), calibration.x, 1000, seed=2)
    posterior_rows = posterior_interval_coverage(NAMES, calibration.theta, samples, 0.68)
    ticks: list[int] = []
    likelihood_rows, failed = likelihood_interval_coverage(GaussianToy(), NAMES, calibration.theta, calibration.x,
                                                           0.68, progress=ticks.append)
    tolerance = 3 * math.sqrt(0.68 * 0.32 / 300)
    for row in posterior_rows + likelihood_rows:
        assert abs(row.coverage - 0.68) < tolerance, row
        assert row.verdict == "covers" and row.n == 300
        assert row.error == pytest.approx(math.sqrt(0.68 * 0.32 / 300), rel=0.1)
    assert [r.interval for r in likelihood_rows] == ["likelihood", "likelihood"] and failed == 0
    assert sum(ticks) == 300
    narrow = draw_posterior_samples(exact_sampler(shrink=3.0), calibration.x, 1000, seed=2)
    rows = posterior_interval_coverage(NAMES, calibration.theta, narrow, 0.68)
    assert all(r.verdict == "under-covers" and r.coverage < 0.4 for r in rows)


def test_the_posterior_predictive_check_flags_an_observation_far_from_the_model() -> None:
    """x_a = 20 (prior predictive sd 1.1) lies far outside what the posterior predicts, x_b = 0 does not; a
    typical observation passes."""
    task = GaussianToy()
    far = np.array([20.0, 0.0])
    check = posterior_predictive_check(task, exact_sampler()(far[None], 200, 3)[:, 0], far, seed=4)
    (a, b) = check.observables
    assert a.flagged and a.quantile > 0.995 and a.x_o == 20.0
    assert not b.flagged and 0.005 < b.quantile < 0.995
    assert check.verdict == "fails" and "x_a" in check.detail
    typical = task.observation(1).x
    passing = posterior_predictive_check(task, exact_sampler()(typical[None], 200, 3)[:, 0], typical, seed=4)
    assert passing.verdict == "passes" and not any(r.flagged for r in passing.observables)
    assert passing.x_predictive.shape == (200, 2)


def test_weak_settings_warn_with_what_to_do() -> None:
    """Fewer than 100 simulations or posterior samples, or L-C2ST on few pairs, warn; good settings do not."""
    assert weak_settings_warnings(200, 1000, ["sbc", "tarp", "ppc"]) == []
    found = weak_settings_warnings(50, 20, ["sbc", "lc2st"])
    assert len(found) == 3
    assert "only 50 calibration simulations" in found[0] and "num_calibration_simulations=200" in found[0]
    assert "SBC ranks are coarse" in found[1] and "num_posterior_samples=1000" in found[1]
    assert "L-C2ST" in found[2] and "1000 or more" in found[2]
    assert weak_settings_warnings(50, 20, ["ppc"]) == []


def test_lc2st_rejects_an_over_confident_posterior_at_the_observation(calibration: CalibrationSet) -> None:
    """L-C2ST on 300 pairs: no rejection for the exact posterior, rejection (p < 0.05) for one 3× too narrow."""
    x_o = calibration.x[0]
    p_values = []
    for shrink in (1.0, 3.0):
        sampler = exact_sampler(shrink=shrink)
        one_each = sampler(calibration.x, 1, 8)[0]
        check = run_lc2st(calibration.theta, calibration.x, one_each, sampler(x_o[None], 300, 9)[:, 0], x_o,
                          seed=0, n_null=10)
        p_values.append(check.p_value)
        assert check.null_statistics.shape == (10,) and check.n_train == 300
    assert p_values[0] >= 0.05 and p_values[1] < 0.05, p_values


@pytest.fixture(scope="module")
def trained_npe() -> object:
    """A one-component MDN NPE trained on 1,000 simulations of the toy (≈ 15 s)."""
    import torch
    from sbi.inference import NPE
    from sbi.neural_nets import posterior_nn

    from physagent.tools.sbi.train import _NullTracker  # sbi's default tracker writes ./sbi-logs

    task = GaussianToy()
    train = simulate_calibration_set(task, 1000, seed=1)
    with torch.random.fork_rng(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sbi notes when 200 epochs end before its convergence criterion
        torch.manual_seed(1)
        inference = NPE(task.prior(), density_estimator=posterior_nn("mdn", num_components=1, hidden_features=20),
                        show_progress_bars=False, tracker=_NullTracker())
        inference.append_simulations(torch.as_tensor(train.theta, dtype=torch.float32),
                                     torch.as_tensor(train.x, dtype=torch.float32)).train(
            training_batch_size=100, max_num_epochs=200)
        return inference.build_posterior()


def test_sbc_ranks_of_a_well_trained_npe_are_uniform(calibration: CalibrationSet, trained_npe: object) -> None:
    """A small NPE trained on the toy passes SBC (KS p > 0.01) through the batched sbi sampler, reproducibly."""
    sampler = batched_sampler(trained_npe)
    for marginal in sbc_of(calibration, sampler):
        assert marginal.ks_pvalue > 0.01, marginal.detail
        assert marginal.verdict == "calibrated", marginal.detail
    first, again = (sampler(calibration.x[:3], 5, 7) for _ in range(2))
    assert first.shape == (5, 3, 2) and np.array_equal(first, again)


def test_sbi_diagnostics_end_to_end_on_a_trained_signal_strength_posterior(workspace: Workspace) -> None:
    """sbi_train then sbi_diagnostics (SBC, TARP, coverage against the pyhf interval, PPC, L-C2ST) by call_tool:
    every check reports, plots are written, progress is shown, and 40 pseudo-experiments warn and are
    inconclusive."""
    trained = call_tool("sbi_train", {"task": "signal_strength", "method": "NPE", "density_estimator": "mdn",
                                      "num_simulations": 1000, "seed": 0}, workspace=workspace)
    posterior = trained.result.posterior.id  # type: ignore[attr-defined]
    updates: list[ProgressUpdate] = []
    arguments = {"posterior": posterior, "checks": ["ppc", "sbc", "lc2st", "coverage", "tarp"],
                 "num_calibration_simulations": 40, "num_posterior_samples": 200}
    outcome = call_tool("sbi_diagnostics", arguments, workspace=workspace, progress=updates.append)
    result = outcome.result
    assert isinstance(result, SbiDiagnostics)
    assert result.checks == ["sbc", "tarp", "coverage", "ppc", "lc2st"] and result.n_simulations == 40
    assert [row.name for row in result.sbc] == ["mu", "nu"]
    assert all(0 <= row.ks_pvalue <= 1 for row in result.sbc)
    assert result.tarp_atc is not None and result.tarp_ks_pvalue is not None
    assert [(r.parameter, r.interval) for r in result.coverage] == [("mu", "posterior"), ("nu", "posterior"),
                                                                    ("mu", "likelihood")]
    assert result.coverage_table is not None and "| mu | likelihood | 0.68 |" in result.coverage_table
    assert len(result.ppc) == 20 and result.observation_used == "observation 1 of signal_strength"
    assert set(result.check_verdicts) == {"sbc", "tarp", "coverage", "ppc", "lc2st"}
    assert result.verdict.startswith(("inconclusive: no miscalibration found, but 40", "miscalibrated: ")), \
        result.verdict
    assert any("only 40 calibration simulations" in w for w in result.warnings)
    assert any("L-C2ST trains its classifier on only 40" in w for w in result.warnings)
    assert result.lc2st_pvalue is not None and 0 <= result.lc2st_pvalue <= 1
    for plot, name in ((result.sbc_plot, "sbc.png"), (result.tarp_plot, "tarp.png"), (result.ppc_plot, "ppc.png"),
                       (result.lc2st_plot, "lc2st.png")):
        assert plot is not None and plot.kind == "plot" and plot.path.name == name and plot.path.stat().st_size > 0
    finished = {u.task for u in updates if u.finished}
    assert {"simulating calibration pseudo-experiments", "sampling the NPE posterior for each pseudo-experiment",
            "likelihood intervals of the pseudo-experiments", "simulating the posterior predictive"} <= finished
    only_sbc = call_tool("sbi_diagnostics", {"posterior": posterior, "checks": ["sbc"], "observation_number": 2,
                                             "num_calibration_simulations": 40, "num_posterior_samples": 200},
                         workspace=workspace).result
    assert only_sbc.sbc == result.sbc  # type: ignore[attr-defined]
    assert any("used only by ppc and lc2st" in w for w in only_sbc.warnings)  # type: ignore[attr-defined]
    with pytest.raises(ToolInputError, match="num_calibration_simulations=5 must be greater than or equal to 20"):
        call_tool("sbi_diagnostics", {"posterior": posterior, "num_calibration_simulations": 5}, workspace=workspace)


def test_lc2st_needs_npe_and_coverage_needs_a_likelihood() -> None:
    """Asking for lc2st on an NLE posterior, or coverage on a task without likelihood intervals, is refused with
    what to do instead."""
    from pathlib import Path

    from physagent.tools import Artifact
    from physagent.tools.sbi._artifact import LoadedPosterior
    from physagent.tools.sbi.diagnostics import _checks

    class NoLikelihood(GaussianToy):
        def likelihood_intervals(self, x_o: np.ndarray, cl: float) -> None:  # type: ignore[override]
            return None

    artifact = Artifact(id="post-0123456789", kind="posterior", path=Path("/nowhere/posterior.pt"), files=[],
                        sha256="", summary="")

    def loaded(method: str, task: GaussianToy) -> LoadedPosterior:
        return LoadedPosterior(artifact, None, None, method, task, NAMES, {})  # type: ignore[arg-type]

    with pytest.raises(ToolInputError, match=r"includes lc2st, which needs an NPE posterior.*is NLE\. Drop lc2st"):
        _checks(loaded("NLE", GaussianToy()), ["sbc", "lc2st"])
    with pytest.raises(ToolInputError, match=r"task gaussian_toy has no likelihood intervals.*Drop coverage"):
        _checks(loaded("NPE", NoLikelihood()), ["coverage"])
    assert _checks(loaded("NPE", GaussianToy()), ["ppc", "coverage", "sbc", "sbc"]) == ["sbc", "coverage", "ppc"]
    assert _checks(loaded("NLE", GaussianToy()), None) == ["sbc", "tarp", "ppc"]
