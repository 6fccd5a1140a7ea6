"""The physics SBI tasks: a binned signal strength (exact posterior, pyhf interval) and Pythia8's shower α_s."""

from __future__ import annotations

import math

import awkward as ak
import numpy as np
import pytest
import torch
from scipy import stats

from physagent.tools import Workspace, call_tool
from physagent.tools._errors import ToolInputError
from physagent.tools.sbi._task import N_OBSERVATIONS, make_task, task_names
from physagent.tools.sbi.tasks import pythia_alphas
from physagent.tools.sbi.tasks.pythia_alphas import PythiaAlphasTask
from physagent.tools.sbi.tasks.signal_strength import DEFAULT_OPTIONS, SignalStrengthTask, poisson_from_uniform

# --- signal_strength ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signal_task() -> SignalStrengthTask:
    task = make_task("signal_strength")
    assert isinstance(task, SignalStrengthTask)
    return task


def test_both_physics_tasks_are_registered() -> None:
    """make_task knows signal_strength and pythia_alphas."""
    assert {"signal_strength", "pythia_alphas"} <= set(task_names())


def test_signal_strength_templates_hold_the_documented_yields(signal_task: SignalStrengthTask) -> None:
    """30 signal events peaked at 125 GeV, 300 falling background events, a control region of τ = 2 × background."""
    assert signal_task.observables[0] == "sr_bin_01" and signal_task.observables[10] == "cr_bin_01"
    assert len(signal_task.observables) == 20
    assert signal_task.signal.sum() == pytest.approx(30.0)
    assert signal_task.background.sum() == pytest.approx(300.0)
    assert set(np.argsort(signal_task.signal)[-2:]) == {4, 5}  # the bins either side of 125 GeV
    assert np.all(np.diff(signal_task.background) < 0)
    expected = signal_task.expected(np.array([[2.0, 0.5]]))[0]
    np.testing.assert_allclose(expected[:10], 2 * signal_task.signal + 0.5 * signal_task.background)
    np.testing.assert_allclose(expected[10:], 2.0 * 0.5 * signal_task.background)


def test_poisson_sampler_is_the_exact_poisson_quantile() -> None:
    """The vectorised inverse CDF equals scipy's Poisson ppf, including λ = 0 and large λ."""
    rng = np.random.default_rng(4)
    u = rng.random((4000, 5))
    lam = np.column_stack([np.zeros(4000), rng.uniform(0, 2, 4000), rng.uniform(2, 50, 4000),
                           rng.uniform(50, 500, 4000), rng.uniform(1e3, 1e4, 4000)])
    np.testing.assert_array_equal(poisson_from_uniform(u, lam), stats.poisson.ppf(u, lam))


def test_signal_strength_counts_are_poisson_with_the_template_means(signal_task: SignalStrengthTask) -> None:
    """Many simulations at fixed θ have the expected means and variances equal to the means."""
    theta = np.tile([1.5, 0.8], (20_000, 1))
    x = signal_task.simulate(theta, seed=11)
    lam = signal_task.expected(theta[:1])[0]
    assert np.all(x == np.round(x)) and x.min() >= 0
    assert np.all(np.abs(x.mean(axis=0) - lam) < 4 * np.sqrt(lam / len(x)))
    np.testing.assert_allclose(x.var(axis=0) / lam, 1.0, atol=0.05)


def test_signal_strength_simulate_is_deterministic_and_row_local(signal_task: SignalStrengthTask) -> None:
    """Same seed, same counts; a row does not change when the batch grows; another seed gives other counts;
    rows with a negative expectation are NaN."""
    theta = np.array([[1.0, 1.0], [0.2, 0.7], [2.5, 1.4]])
    first = signal_task.simulate(theta, seed=5)
    np.testing.assert_array_equal(first, signal_task.simulate(theta, seed=5))
    np.testing.assert_array_equal(first[:2], signal_task.simulate(theta[:2], seed=5))
    assert not np.array_equal(first, signal_task.simulate(theta, seed=6))
    x = signal_task.simulate(np.array([[1.0, 1.0], [-5.0, 1.0], [np.nan, 1.0]]), seed=5)
    assert np.isfinite(x[0]).all() and np.isnan(x[1:]).all()


def test_signal_strength_prior_is_a_float32_box(signal_task: SignalStrengthTask) -> None:
    """The prior samples (μ, ν) in float32 inside U(0, 3) × U(0.5, 1.5)."""
    samples = signal_task.prior().sample((2000,))
    assert samples.dtype == torch.float32 and samples.shape == (2000, 2)
    assert samples[:, 0].min() >= 0 and samples[:, 0].max() <= 3
    assert samples[:, 1].min() >= 0.5 and samples[:, 1].max() <= 1.5


def test_stored_observations_are_fixed_and_numbered(signal_task: SignalStrengthTask) -> None:
    """Observation 3 is the same every time, inside the prior; numbers outside 1 … 10 are refused."""
    again = make_task("signal_strength").observation(3)
    first = signal_task.observation(3)
    np.testing.assert_array_equal(first.theta_true, again.theta_true)
    np.testing.assert_array_equal(first.x, again.x)
    assert 0 <= first.theta_true[0] <= 3 and 0.5 <= first.theta_true[1] <= 1.5
    with pytest.raises(ValueError, match="1 … 10"):
        signal_task.observation(N_OBSERVATIONS + 1)


def test_reference_posterior_contains_theta_true_for_stored_observations(signal_task: SignalStrengthTask) -> None:
    """For all ten observations θ_true lies inside the central 99.9 % of the exact posterior, which stays in the
    prior box."""
    for number in range(1, N_OBSERVATIONS + 1):
        observation = signal_task.observation(number)
        samples = signal_task.reference_posterior(observation.x, 5000, seed=number)
        assert samples.shape == (5000, 2)
        assert samples[:, 0].min() >= 0 and samples[:, 0].max() <= 3
        assert samples[:, 1].min() >= 0.5 and samples[:, 1].max() <= 1.5
        low, high = np.quantile(samples, [0.0005, 0.9995], axis=0)
        assert np.all((low <= observation.theta_true) & (observation.theta_true <= high)), number


def test_reference_posterior_matches_a_direct_grid_integral(signal_task: SignalStrengthTask) -> None:
    """The sampled posterior mean and standard deviation of μ and ν agree with a brute-force integral on a fine
    grid over the whole prior box."""
    x_o = signal_task.observation(2).x
    samples = signal_task.reference_posterior(x_o, 40_000, seed=0)
    mu, nu = np.linspace(0, 3, 1201)[:, None], np.linspace(0.5, 1.5, 1201)[None, :]
    weights = np.exp((log := signal_task.log_likelihood(x_o, mu, nu)) - log.max())
    weights /= weights.sum()
    for values, column in ((mu, 0), (nu, 1)):
        mean = float((weights * values).sum())
        sd = math.sqrt(float((weights * (values - mean) ** 2).sum()))
        assert samples[:, column].mean() == pytest.approx(mean, abs=0.02 * sd + 1e-4)
        assert samples[:, column].std() == pytest.approx(sd, rel=0.03)


def test_pyhf_interval_contains_mu_hat_and_ends_where_the_profile_crosses(signal_task: SignalStrengthTask) -> None:
    """The 68 % interval holds the maximum-likelihood μ̂, and −2Δln L is the χ²₁ quantile (0.989) at both ends."""
    import pyhf

    x_o = signal_task.observation(5).x
    low, high = signal_task.likelihood_intervals(x_o, 0.68)["mu"]
    model, data = signal_task._pyhf_model(), signal_task._pyhf_data(x_o)
    best, twice_min = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
    assert low < best[model.config.poi_index] < high
    for end in (low, high):
        twice = pyhf.infer.mle.fixed_poi_fit(end, data, model, return_fitted_val=True)[1]
        assert float(twice - twice_min) == pytest.approx(stats.chi2.ppf(0.68, 1), abs=0.01)


def test_pyhf_interval_agrees_with_the_posterior_away_from_the_bounds(signal_task: SignalStrengthTask) -> None:
    """With flat priors and these counts the 68 % profile-likelihood interval and the central 68 % credible
    interval of μ nearly coincide when neither touches the prior bounds."""
    compared = 0
    for number in range(1, N_OBSERVATIONS + 1):
        x_o = signal_task.observation(number).x
        low, high = signal_task.likelihood_intervals(x_o, 0.68)["mu"]
        if low < 0.3 or high > 2.7:
            continue
        credible = np.quantile(signal_task.reference_posterior(x_o, 20_000, seed=1)[:, 0], [0.16, 0.84])
        np.testing.assert_allclose(credible, [low, high], atol=0.08)
        compared += 1
    assert compared >= 5


def test_pyhf_interval_is_truncated_at_zero_for_a_deficit(signal_task: SignalStrengthTask) -> None:
    """Counts below the background-only expectation give μ̂ = 0 and an interval that starts at the bound 0."""
    x_o = np.floor(signal_task.expected(np.array([[0.0, 1.0]]))[0] * np.r_[np.full(10, 0.9), np.ones(10)])
    low, high = signal_task.likelihood_intervals(x_o, 0.95)["mu"]
    assert low == 0.0 and 0 < high < 3


@pytest.mark.slow
def test_pyhf_interval_covers_68_percent_of_pseudo_experiments(signal_task: SignalStrengthTask) -> None:
    """Over 200 pseudo-experiments at μ = 1, ν = 1 the 68 % interval covers μ = 1 in 68 % ± 8 % of them (≈ 10 s)."""
    x = signal_task.simulate(np.tile([1.0, 1.0], (200, 1)), seed=2024)
    covered = [low <= 1.0 <= high for low, high in (signal_task.likelihood_intervals(row, 0.68)["mu"] for row in x)]
    assert np.mean(covered) == pytest.approx(0.68, abs=0.08)


def test_pyhf_interval_refuses_a_bad_confidence_level(signal_task: SignalStrengthTask) -> None:
    """cl must lie strictly between 0 and 1, and x_o must have the task's 20 counts."""
    x_o = signal_task.observation(1).x
    with pytest.raises(ValueError, match=r"cl=68 must lie strictly between 0 and 1"):
        signal_task.likelihood_intervals(x_o, 68)
    with pytest.raises(ValueError, match="20 non-negative finite counts"):
        signal_task.likelihood_intervals(x_o[:10], 0.68)


def test_signal_strength_options_change_the_model() -> None:
    """n_bins, tau and the yields are options; they are recorded in the task's options."""
    options = {"n_bins": 20, "tau": 5.0, "signal_events": 60.0, "mu_range": (0.0, 5.0)}
    task = SignalStrengthTask(DEFAULT_OPTIONS | options)
    assert len(task.observables) == 40 and task.observables[-1] == "cr_bin_20"
    assert task.signal.sum() == pytest.approx(60.0)
    np.testing.assert_allclose(task.expected(np.array([[0.0, 1.0]]))[0, 20:], 5.0 * task.background)
    assert task.options["mu_range"] == (0.0, 5.0) and task.options["background_events"] == 300.0
    assert float(task.prior().base_dist.high[0]) == pytest.approx(5.0)
    assert len(make_task("signal_strength", n_bins=12.0).observables) == 24  # a JSON client's 12.0 is 12


@pytest.mark.parametrize(("options", "message"), [
    ({"bins": 5}, "unknown option(s) bins; its options are n_bins"),
    ({"n_bins": 0}, "n_bins=0 must be a whole number from 1 to 100"),
    ({"n_bins": 2.5}, "n_bins=2.5 must be a whole number"),
    ({"signal_events": -3}, "signal_events=-3 must be a positive finite number"),
    ({"tau": float("nan")}, "tau=nan must be a positive finite number"),
    ({"signal_mass_gev": 200.0}, "signal_mass_gev=200.0 must lie inside mass_range_gev"),
    ({"mu_range": (-1.0, 3.0)}, "must not go below 0"),
    ({"nu_range": (0.0, 1.5)}, "nu_range=(0.0, 1.5) must be positive"),
    ({"mass_range_gev": (150.0, 100.0)}, "must have low < high"),
    ({"mu_range": 3.0}, "must be a pair (low, high)"),
    ({"background_decay_gev": 0.01}, "leaves background bins empty"),
])
def test_signal_strength_refuses_bad_options(options: dict[str, object], message: str) -> None:
    """Each bad option is a ToolInputError that names the option, its value and what is allowed."""
    with pytest.raises(ToolInputError, match="SBI task signal_strength") as error:
        make_task("signal_strength", **options)
    assert message in str(error.value)


# --- pythia_alphas --------------------------------------------------------------------------------


def _mercedes(rotation: float) -> list[dict[str, object]]:
    """Three massless 30 GeV particles 120° apart, in a plane tilted by ``rotation`` about the x axis."""
    particles: list[dict[str, object]] = []
    for k, (pid, charge) in enumerate(((211, 1), (-211, -1), (22, 0))):
        angle = 2 * math.pi * k / 3
        px, py = 30 * math.cos(angle), 30 * math.sin(angle)
        particles.append({"px": px, "py": py * math.cos(rotation), "pz": py * math.sin(rotation), "e": 30.0,
                          "pid": pid, "charge": charge})
    return particles


def test_event_statistics_match_hand_computed_values_for_a_three_jet_event() -> None:
    """A symmetric three-particle event: 2 charged, 1 − T = 1/3, y₂₃ = 1/3, three Durham jets, and the
    two-jet clustering merges two particles into a jet of mass √(2·30²·(1 − cos 120°)) = √2700 GeV."""
    events = ak.Array([{"particles": _mercedes(0.0)}, {"particles": _mercedes(1.0)}])
    n_charged, one_minus_thrust, neg_ln_y23, n_jets, jet_mass = pythia_alphas.event_statistics(events)
    assert n_charged == 2
    assert one_minus_thrust == pytest.approx(1 / 3)
    assert neg_ln_y23 == pytest.approx(math.log(3))
    assert n_jets == 3
    assert jet_mass == pytest.approx(math.sqrt(2700) / 2)  # the mean over both jets; the single particle is massless


def test_thrust_finds_the_maximum_of_a_dense_axis_scan() -> None:
    """On random 40-particle events the thrust equals the best of 200,000 random axes (which can only fall short)."""
    rng = np.random.default_rng(8)
    momenta = rng.normal(size=(5, 40, 3)) * np.array([1.0, 1.0, 4.0])
    thrust = pythia_alphas._thrust(momenta)
    axes = rng.normal(size=(200_000, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    for event, value in zip(momenta, thrust, strict=True):
        scan = (np.abs(axes @ event.T).sum(axis=1) / np.linalg.norm(event, axis=1).sum()).max()
        assert scan - 1e-4 <= value <= scan + 2e-3


@pytest.fixture(scope="module")
def alphas_task() -> PythiaAlphasTask:
    task = make_task("pythia_alphas", events_per_simulation=60)
    assert isinstance(task, PythiaAlphasTask)
    return task


def test_pythia_alphas_is_deterministic_in_the_seed(alphas_task: PythiaAlphasTask) -> None:
    """Same seed, same statistics; a row does not change when the batch grows; another seed differs."""
    theta = np.array([[0.12], [0.14]])
    first = alphas_task.simulate(theta, seed=3)
    assert first.shape == (2, 5) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, alphas_task.simulate(theta, seed=3))
    np.testing.assert_array_equal(first[:1], alphas_task.simulate(theta[:1], seed=3))
    assert not np.array_equal(first[:1], alphas_task.simulate(theta[:1], seed=4))


def test_pythia_alphas_rows_do_not_depend_on_the_worker_count(alphas_task: PythiaAlphasTask,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Two worker processes give the same rows as one, and progress counts finished rows up to n."""
    theta = np.array([[0.11], [0.15]])
    monkeypatch.setenv("PHYSAGENT_WORKERS", "1")
    serial = alphas_task.simulate(theta, seed=9)
    monkeypatch.setenv("PHYSAGENT_WORKERS", "2")
    done: list[int] = []
    parallel = alphas_task.simulate(theta, seed=9, progress=done.append)
    np.testing.assert_array_equal(serial, parallel)
    assert done == [1, 2]


def test_statistics_respond_to_alpha_s_in_the_expected_direction() -> None:
    """More shower radiation at α_s = 0.15 than at 0.11: more charged particles, less pencil-like events, a larger
    y₂₃ (smaller −ln y₂₃), more Durham jets and heavier jets; Monash-like values at α_s = 0.1365."""
    task = make_task("pythia_alphas", events_per_simulation=300)
    low, monash, high = task.simulate(np.array([[0.11], [0.1365], [0.15]]), seed=1)
    assert np.all((high - low) * np.array([1, 1, -1, 1, 1]) > 0), (low, high)
    assert 18 < monash[0] < 23  # LEP measured 20.9 charged particles per hadronic Z
    assert 0.055 < monash[1] < 0.08  # ⟨1 − T⟩ ≈ 0.067 at LEP


def test_pythia_alphas_gives_nan_rows_for_refused_or_failed_runs(alphas_task: PythiaAlphasTask,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """α_s outside Pythia's 0.06–0.25 or NaN gives a NaN row without a run; a run that fails gives a NaN row."""
    monkeypatch.setenv("PHYSAGENT_WORKERS", "1")
    x = alphas_task.simulate(np.array([[0.3], [np.nan], [0.13]]), seed=2)
    assert np.isnan(x[:2]).all() and np.isfinite(x[2]).all()

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Pythia failed to initialise with the given settings")

    monkeypatch.setattr(pythia_alphas._pythia, "generate_shard", fail)
    assert np.isnan(alphas_task.simulate(np.array([[0.13]]), seed=2)).all()


def test_pythia_alphas_observation_and_no_reference(alphas_task: PythiaAlphasTask) -> None:
    """An observation has α_s_true in the prior and finite statistics; there is no reference posterior or
    likelihood interval; the prior is U(0.10, 0.16) in float32."""
    observation = alphas_task.observation(1)
    assert 0.10 <= observation.theta_true[0] <= 0.16 and np.isfinite(observation.x).all()
    assert alphas_task.reference_posterior(observation.x, 100, seed=0) is None
    assert alphas_task.likelihood_intervals(observation.x, 0.68) is None
    samples = alphas_task.prior().sample((500,))
    assert samples.dtype == torch.float32 and samples.shape == (500, 1)
    assert float(samples.min()) >= 0.10 and float(samples.max()) <= 0.16
    assert alphas_task.observables == ("n_charged", "one_minus_thrust", "neg_ln_y23", "n_jets_durham",
                                       "jet_mass_gev")


@pytest.mark.parametrize(("options", "message"), [
    ({"n_events": 100}, "unknown option(s) n_events; its options are events_per_simulation, alpha_s_range"),
    ({"events_per_simulation": 0}, "events_per_simulation=0 must be a whole number from 1 to 100,000"),
    ({"alpha_s_range": (0.05, 0.2)}, "0.06 <= low < high <= 0.25"),
    ({"alpha_s_range": (0.16, 0.10)}, "must be a pair (low, high)"),
])
def test_pythia_alphas_refuses_bad_options(options: dict[str, object], message: str) -> None:
    """Bad options are ToolInputErrors naming the option, the value and the allowed range."""
    with pytest.raises(ToolInputError, match="SBI task pythia_alphas") as error:
        make_task("pythia_alphas", **options)
    assert message in str(error.value)


@pytest.mark.slow
def test_npe_posterior_for_a_monash_sample_covers_the_monash_alpha_s(workspace: Workspace) -> None:
    """The issue's physics check: NPE amortized over 200 Pythia runs of 300 events, evaluated on a fresh sample
    generated at Monash's α_s = 0.1365, has a 95 % credible interval that contains 0.1365 and is several times
    narrower than the prior U(0.10, 0.16), so covering it is not just returning the prior."""
    trained = call_tool("sbi_train", {"task": "pythia_alphas", "task_options": {"events_per_simulation": 300},
                                      "method": "NPE", "num_simulations": 200, "seed": 0}, workspace=workspace).result
    assert trained.n_failed_simulations == 0
    summary = call_tool("sbi_posterior", {"posterior": trained.posterior.id, "observe_at": [0.1365],
                                          "num_samples": 4000, "seed": 11}, workspace=workspace).result
    alpha_s = summary.parameters["alpha_s"]
    assert alpha_s.interval_95_low <= 0.1365 <= alpha_s.interval_95_high, alpha_s
    assert alpha_s.true_inside_95 is True
    assert alpha_s.interval_95_high - alpha_s.interval_95_low < 0.02, alpha_s
