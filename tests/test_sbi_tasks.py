"""The sbibm benchmark tasks (two moons, Gaussian linear, SLCP), their reference posteriors, and the C2ST metric."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from physagent.tools.sbi._c2st import c2st
from physagent.tools.sbi._task import N_OBSERVATIONS, make_task, task_names
from physagent.tools.sbi.tasks import slcp

BENCHMARKS = ["two_moons", "gaussian_linear", "slcp"]
SHAPES = {"two_moons": (2, 2), "gaussian_linear": (10, 10), "slcp": (5, 8)}


@pytest.mark.parametrize("name", BENCHMARKS)
def test_make_task_builds_each_benchmark_from_the_registry(name: str) -> None:
    """make_task(name) gives a task with named parameters and observables and a float32 sbi prior."""
    task = make_task(name)
    d, k = SHAPES[name]
    assert name in task_names()
    assert task.name == name and task.options == {}
    assert name.replace("_", " ").split(maxsplit=1)[0] in task.description.lower()
    assert [p.name for p in task.parameters] == [f"theta_{i}" for i in range(1, d + 1)]
    assert task.observables == tuple(f"x_{i}" for i in range(1, k + 1))
    theta = task.prior().sample((5,))
    assert theta.shape == (5, d) and theta.dtype == torch.float32
    assert task.likelihood_intervals(np.zeros(k), 0.68) is None
    assert 0 < task.seconds_per_simulation < 1e-3


def test_unknown_task_option_is_a_type_error_naming_the_task() -> None:
    """A benchmark task takes no options and says so."""
    with pytest.raises(TypeError, match=r"'slcp' takes no options, got distractors"):
        make_task("slcp", distractors=True)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_simulate_is_deterministic_in_the_seed(name: str) -> None:
    """Same θ and seed give the same x; another seed gives other x; rows are independent of batch order."""
    task = make_task(name)
    theta = task.observation(1).theta_true[None, :].repeat(50, axis=0)
    x = task.simulate(theta, seed=3)
    assert x.shape == (50, SHAPES[name][1]) and x.dtype == np.float64
    np.testing.assert_array_equal(x, task.simulate(theta, seed=3))
    assert not np.allclose(x, task.simulate(theta, seed=4))
    assert len(np.unique(x[:, 0])) == 50  # noise is drawn per row
    done: list[int] = []
    task.simulate(theta, seed=3, progress=done.append)
    assert sum(done) == 50


def test_simulate_rejects_theta_of_the_wrong_shape() -> None:
    """A (n, 3) θ for a 2-parameter task is refused with the expected shape."""
    with pytest.raises(ValueError, match=r"expected \(n, 2\) with columns theta_1, theta_2"):
        make_task("two_moons").simulate(np.zeros((4, 3)), seed=0)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_observations_are_stable_and_numbered_one_to_ten(name: str) -> None:
    """Observation n is the same every time, differs from n + 1, and lies in the prior; 0 and 11 are refused."""
    task = make_task(name)
    first, again, second = task.observation(1), make_task(name).observation(1), task.observation(2)
    np.testing.assert_array_equal(first.x, again.x)
    np.testing.assert_array_equal(first.theta_true, again.theta_true)
    assert not np.allclose(first.x, second.x)
    theta = torch.as_tensor(first.theta_true, dtype=torch.float32)
    assert torch.isfinite(task.prior().log_prob(theta))
    for number in (0, N_OBSERVATIONS + 1):
        with pytest.raises(ValueError, match=r"observation number .* out of range; choose 1 … 10"):
            task.observation(number)


def _sbc_ranks(name: str, n_trials: int, n_samples: int) -> np.ndarray:
    task = make_task(name)
    rng = np.random.default_rng(11)
    theta = task.sample_prior(n_trials, rng)  # type: ignore[attr-defined]
    x = task.simulate(theta, seed=12)
    return np.array([(task.reference_posterior(x[i], n_samples, seed=i) < theta[i]).sum(axis=0)
                     for i in range(n_trials)])


@pytest.mark.parametrize("name", BENCHMARKS)
def test_reference_posterior_is_calibrated_against_the_simulator(name: str) -> None:
    """Simulation-based calibration: the rank of θ_true among reference draws is uniform in every parameter."""
    n_samples = 99
    ranks = _sbc_ranks(name, n_trials=300, n_samples=n_samples)
    jitter = np.random.default_rng(0).uniform(size=ranks.shape)
    p_values = [stats.kstest((ranks[:, j] + jitter[:, j]) / (n_samples + 1), "uniform").pvalue
                for j in range(ranks.shape[1])]
    assert min(p_values) > 1e-3, p_values


def test_gaussian_linear_reference_is_the_analytic_posterior() -> None:
    """Reference draws have mean x_o/2 and covariance 0.05·I, and C2ST cannot tell them from the conjugate formula."""
    task = make_task("gaussian_linear")
    x_o = task.observation(3).x
    samples = task.reference_posterior(x_o, 2000, seed=0)
    np.testing.assert_allclose(samples.mean(axis=0), x_o / 2, atol=4 * math.sqrt(0.05 / 2000))
    np.testing.assert_allclose(np.cov(samples.T), 0.05 * np.eye(10), atol=0.012)
    precision = np.eye(10) / 0.1 + np.eye(10) / 0.1  # prior + likelihood precision, computed independently
    covariance = np.linalg.inv(precision)
    analytic = np.random.default_rng(1).multivariate_normal(covariance @ (x_o / 0.1), covariance, size=500)
    assert abs(c2st(samples[:500], analytic, early_stopping=True) - 0.5) < 0.07


def test_two_moons_reference_has_both_moons_and_reproduces_x_o() -> None:
    """Draws lie in the prior, near θ_true and its mirror image, and simulate back to the neighbourhood of x_o."""
    task = make_task("two_moons")
    observation = task.observation(2)
    samples = task.reference_posterior(observation.x, 4000, seed=0)
    assert np.all(np.abs(samples) <= 1.0)
    mirror = -observation.theta_true[::-1]  # θ1 + θ2 → −(θ1 + θ2) leaves x unchanged
    for point in (observation.theta_true, mirror):
        if np.all(np.abs(point) <= 1.0):
            assert np.min(np.linalg.norm(samples - point, axis=1)) < 0.02
    assert 0.4 < np.mean(samples.sum(axis=1) > 0) < 0.6  # the two moons carry equal mass
    predictive = task.simulate(samples, seed=1)
    distance = np.linalg.norm(predictive - observation.x, axis=1)
    assert np.max(distance) < 0.3 and np.median(distance) < 0.15  # x_o − x' is a difference of two p's (r ≈ 0.1)


def _slcp_log_likelihood(theta: np.ndarray, x_o: np.ndarray) -> np.ndarray:
    """Σⱼ log N(xʲ | m, Σ) written out independently of the task code."""
    s1, s2, rho = theta[:, 2] ** 2, theta[:, 3] ** 2, np.tanh(theta[:, 4])
    total = np.zeros(len(theta))
    for point in x_o.reshape(4, 2):
        u, v = (point[0] - theta[:, 0]) / s1, (point[1] - theta[:, 1]) / s2
        norm = np.log(2 * np.pi * s1 * s2 * np.sqrt(1 - rho**2))
        total += -(u**2 - 2 * rho * u * v + v**2) / (2 * (1 - rho**2)) - norm
    return total


def _assert_close(actual: np.ndarray, expected: np.ndarray, tolerance: np.ndarray) -> None:
    assert np.all(np.abs(actual - expected) <= tolerance), (actual, expected, tolerance)


def _folded(theta: np.ndarray) -> np.ndarray:
    return np.column_stack([theta[:, :2], np.abs(theta[:, 2:4]), theta[:, 4]])


def test_slcp_reference_has_four_symmetric_modes_and_covers_theta_true() -> None:
    """The signs of θ3, θ4 are equally likely, and θ_true (folded) is inside the central 99.8 % of the draws."""
    task = make_task("slcp")
    observation = task.observation(4)
    samples = task.reference_posterior(observation.x, 4000, seed=0)
    assert np.all(np.abs(samples) <= 3.0)
    quadrants = np.bincount(2 * (samples[:, 2] > 0) + (samples[:, 3] > 0), minlength=4) / len(samples)
    np.testing.assert_allclose(quadrants, 0.25, atol=0.03)
    low, high = np.quantile(_folded(samples), [0.001, 0.999], axis=0)
    truth = _folded(observation.theta_true[None, :])[0]
    assert np.all((low < truth) & (truth < high)), (low, truth, high)


def test_slcp_reference_matches_importance_sampling_with_the_likelihood() -> None:
    """Posterior means and standard deviations agree with self-normalised importance sampling of L(θ)·prior."""
    task = make_task("slcp")
    x_o = task.observation(1).x
    reference = _folded(task.reference_posterior(x_o, 4000, seed=0))
    rng = np.random.default_rng(5)
    # proposal: a broadened Gaussian fit to the folded reference, mixed with the prior so its support is complete
    mean, cov = reference.mean(axis=0), 2.0 * np.cov(reference.T)
    n = 400_000
    proposal = rng.multivariate_normal(mean, cov, size=n)
    from_prior = rng.uniform(size=n) < 0.2
    proposal[from_prior] = np.column_stack([rng.uniform(-3, 3, (from_prior.sum(), 2)),
                                            rng.uniform(0, 3, (from_prior.sum(), 2)),
                                            rng.uniform(-3, 3, from_prior.sum())])
    density = 0.8 * stats.multivariate_normal(mean, cov).pdf(proposal) + 0.2 / (6**3 * 3**2)
    inside = np.all(np.abs(proposal) <= 3, axis=1) & np.all(proposal[:, 2:4] > 0, axis=1)
    log_weight = np.where(inside, _slcp_log_likelihood(proposal, x_o) - np.log(density), -np.inf)
    weight = np.exp(log_weight - log_weight.max())
    weight /= weight.sum()
    assert 1 / np.sum(weight**2) > 5000  # effective sample size
    is_mean = weight @ proposal
    is_std = np.sqrt(weight @ (proposal - is_mean) ** 2)
    tolerance = 5 * reference.std(axis=0) / math.sqrt(len(reference)) + 0.01
    _assert_close(reference.mean(axis=0), is_mean, tolerance)
    _assert_close(reference.std(axis=0), is_std, tolerance)


def test_slcp_gibbs_stage_reproduces_the_exact_sampler(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the exact-rejection budget cut so the Gibbs sweeps do most of the work, the draws are unchanged."""
    task = make_task("slcp")
    x_o = task.observation(8).x
    exact = _folded(task.reference_posterior(x_o, 2000, seed=0))
    monkeypatch.setattr(slcp, "PILOT_PROPOSALS", 2000)
    gibbs = _folded(task.reference_posterior(x_o, 2000, seed=1))
    tolerance = 5 * exact.std(axis=0) / math.sqrt(1000) + 0.01
    _assert_close(gibbs.mean(axis=0), exact.mean(axis=0), tolerance)
    _assert_close(gibbs.std(axis=0), exact.std(axis=0), tolerance)
    assert len(np.unique(gibbs[:, 0])) == 2000


def test_reference_posterior_refuses_an_x_o_of_the_wrong_size() -> None:
    """x_o must have one entry per observable."""
    with pytest.raises(ValueError, match=r"x_o must be 8 finite numbers \(x_1, x_2"):
        make_task("slcp").reference_posterior(np.zeros(3), 10, seed=0)


def test_c2st_is_one_half_for_one_distribution_and_one_for_separated_ones() -> None:
    """Chance accuracy for samples of the same Gaussian, near-perfect accuracy for Gaussians 6σ apart."""
    rng = np.random.default_rng(0)
    p, q = rng.normal(size=(400, 2)), rng.normal(size=(400, 2))
    assert abs(c2st(p, q) - 0.5) < 0.07
    separated = c2st(p[:100], q[:100] + np.array([6.0, 0.0]), seed=3)
    assert separated > 0.97
    assert separated == c2st(p[:100], q[:100] + np.array([6.0, 0.0]), seed=3)  # same seed, same accuracy


def test_c2st_refuses_mismatched_or_too_few_samples() -> None:
    """Different dimensions, fewer than 10 samples and NaN values are refused with what to do instead."""
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="samples_p has dim 2 but samples_q has dim 3"):
        c2st(rng.normal(size=(50, 2)), rng.normal(size=(50, 3)))
    with pytest.raises(ValueError, match="samples_q has 5 samples, need at least 10"):
        c2st(rng.normal(size=(50, 2)), rng.normal(size=(5, 2)))
    with pytest.raises(ValueError, match="1 NaN or infinite values"):
        c2st(rng.normal(size=(50, 2)), np.where(np.arange(100).reshape(50, 2) == 7, np.nan, 0.0))
    with pytest.warns(UserWarning, match="chance accuracy is 0.667"):
        c2st(rng.normal(size=(40, 1)), rng.normal(size=(20, 1)))
