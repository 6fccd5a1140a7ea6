"""sbi_posterior: samples, intervals, MAP and the corner plot at one observation; C2ST against the analytic
Gaussian-linear posterior; likelihood intervals beside credible intervals; observations checked clearly."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
from test_sbi_train import NPE_GAUSSIAN_LINEAR, loaded_samples

from physagent.tools import CallOutcome, ToolInputError, Workspace, call_tool
from physagent.tools.sbi._task import make_task

#: measured 0.569 for NPE_GAUSSIAN_LINEAR at observation 1 with 400 samples per side (0.569 with 10³ for seed 0);
#: the bound leaves room for the noise of 400 samples (±0.03) and for other machines' floating point
C2ST_BOUND = 0.7
N_SAMPLES = 400


@pytest.fixture(scope="module")
def npe(shared_workspace: Workspace) -> CallOutcome:
    """The Gaussian-linear NPE of test_sbi_train (a cache hit when that module ran first)."""
    return call_tool("sbi_train", NPE_GAUSSIAN_LINEAR, workspace=shared_workspace)


@pytest.fixture
def narrow_two_moons(workspace: Workspace) -> CallOutcome:
    """NPE on two moons with the prior narrowed to U(-0.8, 0.8)² (tiny budget)."""
    prior = [{"name": f"theta_{i}", "distribution": "uniform", "low": -0.8, "high": 0.8} for i in (1, 2)]
    return call_tool("sbi_train", {"task": "two_moons", "prior": prior, "num_simulations": 200, "max_epochs": 3},
                     workspace=workspace)


@pytest.fixture(scope="module")
def summary(npe: CallOutcome, shared_workspace: Workspace) -> CallOutcome:
    """sbi_posterior at stored observation 1 (the default)."""
    return call_tool("sbi_posterior", {"posterior": npe.result.posterior.id, "num_samples": N_SAMPLES, "seed": 4},
                     workspace=shared_workspace)


def test_npe_posterior_matches_the_analytic_gaussian_linear_posterior(summary: CallOutcome) -> None:
    """C2ST against N(x_o/2, 0.05 I) stays below the bound; means and widths are close to the exact ones."""
    result = summary.result
    assert result.observation_label == "observation 1 of gaussian_linear" and result.c2st_samples == N_SAMPLES
    assert result.c2st_vs_reference is not None and 0.4 < result.c2st_vs_reference < C2ST_BOUND
    x_o = np.array(result.x_o)
    np.testing.assert_array_equal(x_o, make_task("gaussian_linear").observation(1).x)
    for row, x in zip(result.parameters.values(), x_o, strict=True):
        assert row.mean == pytest.approx(x / 2, abs=0.12)  # half a posterior σ (measured: at most 0.09)
        assert row.std == pytest.approx(0.05**0.5, rel=0.25)


def test_summary_rows_hold_ordered_intervals_map_and_truth(summary: CallOutcome) -> None:
    """Each row: 68 % interval inside the 95 % one around the median, MAP in range, θ_true with its verdicts."""
    result = summary.result
    assert result.credible_level == 0.68 and result.num_samples == N_SAMPLES and len(result.parameters) == 10
    truth = make_task("gaussian_linear").observation(1).theta_true
    inside = []
    for row, true in zip(result.parameters.values(), truth, strict=True):
        assert row.interval_95_low < row.interval_low < row.median < row.interval_high < row.interval_95_high
        assert row.interval_95_low < row.map < row.interval_95_high
        assert row.theta_true == pytest.approx(true) and row.unit == ""
        assert row.true_inside == (row.interval_low <= true <= row.interval_high)
        assert row.likelihood_interval_low is None
        inside.append(row.true_inside_95)
    assert sum(inside) >= 8  # 95 % intervals of a calibrated posterior: about 9.5 of 10


def test_samples_table_and_corner_plot_are_written(summary: CallOutcome, npe: CallOutcome,
                                                   shared_workspace: Workspace) -> None:
    """samples.parquet has one column per parameter, the samples of the loaded posterior with the call's seed;
    the corner plot exists."""
    result = summary.result
    table = ak.from_parquet(result.samples.path)
    assert ak.fields(table) == [f"theta_{i}" for i in range(1, 11)] and len(table) == N_SAMPLES
    assert result.samples.metadata["posterior"] == npe.result.posterior.id
    assert result.corner.kind == "plot" and result.corner.path.stat().st_size > 20_000
    column = np.asarray(table["theta_3"])
    assert np.mean(column) == pytest.approx(result.parameters["theta_3"].mean)
    again = loaded_samples(shared_workspace, npe.result.posterior.id, np.array(result.x_o), N_SAMPLES, seed=4)
    np.testing.assert_array_equal(again[:, 2], column)


def test_observe_at_simulates_x_at_the_given_theta(narrow_two_moons: CallOutcome, workspace: Workspace) -> None:
    """observe_at: x_o simulated at θ with the seed, θ_true = θ, and the label names the point."""
    theta = [0.25, -0.5]
    result = call_tool("sbi_posterior", {"posterior": narrow_two_moons.result.posterior.id, "observe_at": theta,
                                         "num_samples": 200, "seed": 5}, workspace=workspace).result
    assert result.observation_label == "simulated at theta_1=0.25, theta_2=-0.5 (seed 5)"
    assert [row.theta_true for row in result.parameters.values()] == theta
    np.testing.assert_array_equal(result.x_o, make_task("two_moons").simulate(np.array([theta]), 5)[0])
    with pytest.raises(ToolInputError, match="outside the prior the posterior was trained with"):
        call_tool("sbi_posterior", {"posterior": narrow_two_moons.result.posterior.id, "observe_at": [0.9, 0.0]},
                  workspace=workspace)


@pytest.mark.parametrize(("arguments", "words"), [
    ({"observation": [0.1, 0.2, 0.3]}, ["observation=[0.1, 0.2, 0.3] has 3 entries", "expects 10",
                                        "observables in this order: x_1, x_2"]),
    ({"observe_at": [0.0, 1.0]}, ["has 2 entries", "parameters in this order: theta_1"]),
    ({"observation": [0.0] * 10, "observation_number": 2}, ["at most one of", "observation and observation_number"]),
    ({"observation_number": 11}, ["observation_number=11", "less than or equal to 10"]),
])
def test_bad_observations_are_refused_with_what_is_expected(npe: CallOutcome, shared_workspace: Workspace,
                                                            arguments: dict[str, object], words: list[str]) -> None:
    """A wrong length names the expected count and entries; two ways at once, or a number out of range, too."""
    with pytest.raises(ToolInputError) as info:
        call_tool("sbi_posterior", {"posterior": npe.result.posterior.id, **arguments}, workspace=shared_workspace)
    for word in words:
        assert word in str(info.value)


def test_a_nan_observation_is_refused(npe: CallOutcome, shared_workspace: Workspace) -> None:
    """NaN in x_o is refused before anything runs."""
    with pytest.raises(ToolInputError, match="observation"):
        call_tool("sbi_posterior", {"posterior": npe.result.posterior.id, "observation": [float("nan")] * 10},
                  workspace=shared_workspace)


def test_signal_strength_reports_the_likelihood_interval_beside_the_credible_one(workspace: Workspace) -> None:
    """For signal_strength, mu's row carries pyhf's profile-likelihood interval at the credible level."""
    trained = call_tool("sbi_train", {"task": "signal_strength", "num_simulations": 300, "max_epochs": 5},
                        workspace=workspace).result
    result = call_tool("sbi_posterior", {"posterior": trained.posterior.id, "observation_number": 2,
                                         "num_samples": 200}, workspace=workspace).result
    mu = result.parameters["mu"]
    assert mu.name == "mu" and mu.likelihood_interval_low is not None and mu.likelihood_interval_high is not None
    assert mu.likelihood_interval_low < mu.likelihood_interval_high
    assert any("profile-likelihood" in note for note in result.notes)


def test_a_replaced_prior_skips_the_reference_comparison(narrow_two_moons: CallOutcome, workspace: Workspace) -> None:
    """With a prior other than the task's, the reference posterior does not apply: no C2ST, and a note says why."""
    result = call_tool("sbi_posterior", {"posterior": narrow_two_moons.result.posterior.id, "num_samples": 200},
                       workspace=workspace).result
    assert result.c2st_vs_reference is None and any("prior was replaced" in note for note in result.notes)
    assert all(row.interval_95_low >= -0.8 and row.interval_95_high <= 0.8 for row in result.parameters.values())
