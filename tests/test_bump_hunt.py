"""bump_hunt and the dijet bump fit on the toy anomaly dataset: no fake bumps, a real one grows with a good cut."""

from __future__ import annotations

import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from anomaly_toy import WINDOWS, toy_anomaly_dataset, toy_background

from physagent.tools import Artifact, ToolInputError, Workspace, call_tool
from physagent.tools.anomaly._bump import MIN_SIDEBAND_EVENTS, _discovery, fit_bump


def tau21_table(workspace: Workspace, dataset: Artifact, tmp_path: Path, name: str = "scores") -> Artifact:
    """A scores table made by hand from the observed data (no truth): two-prong jets (low τ21) score high."""
    data = ak.from_parquet(dataset.directory / "data.parquet")
    path = tmp_path / f"{name}.parquet"
    ak.to_parquet(ak.zip({"mjj_gev": data.mjj_gev, "score": -(data.tau21_j1 + data.tau21_j2)}), path)
    return call_tool("read_table", {"path": str(path)}, workspace=workspace).result.data


def windows_args() -> dict[str, list[float]]:
    return {"signal_region_gev": list(WINDOWS.signal_region_gev), "sidebands_gev": list(WINDOWS.sidebands_gev)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_background_only_gives_no_significant_bump(workspace: Workspace, seed: int) -> None:
    """With no signal injected and no cut, the plain m_jj fit finds |Z| < 3 and a good χ²/ndf."""
    dataset = toy_anomaly_dataset(workspace, n_background=30_000, s_over_b=0.0, seed=seed)
    result = call_tool("bump_hunt", {"source": dataset.id}, workspace=workspace).result
    assert result.method == "none" and result.after is None and result.score_threshold is None
    assert abs(result.before.z_local) < 3.0
    assert 0.4 < result.before.chi2_per_ndf < 2.0
    pull = result.before.excess / np.sqrt(result.before.expected + result.before.expected_uncertainty ** 2)
    assert abs(pull) < 3.0
    assert result.signal_region_gev == list(WINDOWS.signal_region_gev)


def test_a_random_score_cut_on_background_makes_no_bump(
    workspace: Workspace, tmp_path: Path, grant_pytest_temp: None
) -> None:
    """A score independent of m_jj keeps 10 % everywhere and fakes no bump: |Z| < 3 after the cut too."""
    dataset = toy_anomaly_dataset(workspace, n_background=30_000, s_over_b=0.0, seed=4)
    mjj = ak.from_parquet(dataset.directory / "data.parquet").mjj_gev
    path = tmp_path / "random.parquet"
    ak.to_parquet(ak.zip({"mjj_gev": mjj, "score": np.random.default_rng(4).uniform(size=len(mjj))}), path)
    table = call_tool("read_table", {"path": str(path)}, workspace=workspace).result.data
    result = call_tool("bump_hunt", {"source": table.id, **windows_args()}, workspace=workspace).result
    assert result.after is not None and abs(result.after.z_local) < 3.0
    assert result.selection_efficiency == pytest.approx(0.1, abs=1e-3)
    assert result.efficiency_signal_region == pytest.approx(0.1, abs=0.02)
    assert result.efficiency_sidebands == pytest.approx(0.1, abs=0.01)
    assert result.after.n_events == pytest.approx(0.1 * result.before.n_events, abs=1)
    assert result.method == "unknown"  # a hand-made table names no method


def test_a_cut_that_prefers_the_signal_raises_the_significance(
    workspace: Workspace, tmp_path: Path, grant_pytest_temp: None
) -> None:
    """With S/B = 1 % injected, keeping the 10 % most two-prong events raises Z well above the plain fit's."""
    dataset = toy_anomaly_dataset(workspace, s_over_b=0.01, seed=0)
    table = tau21_table(workspace, dataset, tmp_path)
    result = call_tool("bump_hunt", {"source": table.id, "selection_efficiency": 0.1, **windows_args()},
                       workspace=workspace).result
    assert result.after is not None
    assert result.after.z_local > result.before.z_local + 2.0, (result.before, result.after)
    assert result.efficiency_signal_region > 1.2 * result.efficiency_sidebands
    assert result.after.observed < result.before.observed
    assert result.after.p_local < result.before.p_local
    assert "most anomalous 10 %" in result.selection
    assert result.warnings == []
    files = set(result.plot.files)
    assert {"bump.png", "bump.pdf"} <= files and result.plot.kind == "plot"
    assert (result.plot.directory / "bump.png").stat().st_size > 20_000


def test_a_score_threshold_keeps_exactly_the_events_above_it(
    workspace: Workspace, tmp_path: Path, grant_pytest_temp: None
) -> None:
    """score_threshold replaces the efficiency: the kept fraction is that of scores ≥ the threshold."""
    dataset = toy_anomaly_dataset(workspace, s_over_b=0.01, seed=0)
    table = tau21_table(workspace, dataset, tmp_path)
    data = ak.from_parquet(dataset.directory / "data.parquet")
    mjj, score = np.asarray(data.mjj_gev), -np.asarray(data.tau21_j1 + data.tau21_j2)
    in_range = (mjj >= WINDOWS.sidebands_gev[0]) & (mjj < WINDOWS.sidebands_gev[1])
    result = call_tool("bump_hunt", {"source": table.id, "score_threshold": -0.9, "selection_efficiency": 0.5,
                                     **windows_args()}, workspace=workspace).result
    assert result.score_threshold == -0.9
    assert result.selection_efficiency == pytest.approx(np.mean(score[in_range] >= -0.9))
    assert result.after.n_events == int(np.sum(in_range & (score >= -0.9)))
    assert "score ≥ -0.9" in result.selection


def test_a_tight_cut_warns_that_few_sideband_events_remain(
    workspace: Workspace, tmp_path: Path, grant_pytest_temp: None
) -> None:
    """Keeping 0.6 % of the events leaves a few dozen in the sidebands: the fit runs, with a warning."""
    dataset = toy_anomaly_dataset(workspace, s_over_b=0.01, seed=0)
    table = tau21_table(workspace, dataset, tmp_path)
    result = call_tool("bump_hunt", {"source": table.id, "selection_efficiency": 0.006, **windows_args()},
                       workspace=workspace).result
    assert result.after.n_events - result.after.observed < 100
    assert any("sideband events after the cut" in w and "raise selection_efficiency" in w for w in result.warnings)


def test_bump_hunt_refuses_bad_inputs_with_clear_messages(
    workspace: Workspace, tmp_path: Path, grant_pytest_temp: None
) -> None:
    """Efficiency outside (0, 1], missing columns or windows, and empty sidebands are input errors that say why."""
    dataset = toy_anomaly_dataset(workspace, n_background=10_000, s_over_b=0.0, seed=0)
    table = tau21_table(workspace, dataset, tmp_path)
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ToolInputError, match="selection_efficiency") as info:
            call_tool("bump_hunt", {"source": table.id, "selection_efficiency": bad, **windows_args()},
                      workspace=workspace)
        assert "greater than 0" in str(info.value) or "less than or equal to 1" in str(info.value)
    with pytest.raises(ToolInputError, match="signal_region_gev=None is needed"):
        call_tool("bump_hunt", {"source": table.id}, workspace=workspace)
    with pytest.raises(ToolInputError, match="strictly inside the sidebands"):
        call_tool("bump_hunt", {"source": table.id, "signal_region_gev": [2000, 3000],
                                "sidebands_gev": [2700, 5000]}, workspace=workspace)
    with pytest.raises(ToolInputError, match=r"only 0 events in the sidebands.*loosen the selection"):
        call_tool("bump_hunt", {"source": table.id, "score_threshold": 10.0, **windows_args()}, workspace=workspace)
    with pytest.raises(ToolInputError, match=r"needs anomaly scores, but .* is an anomaly_dataset"):
        call_tool("bump_hunt", {"source": dataset.id, "score_threshold": 0.5}, workspace=workspace)
    path = tmp_path / "no_score.parquet"
    ak.to_parquet(ak.zip({"mjj_gev": np.array([3000.0, 3500.0]), "weight": np.ones(2)}), path)
    no_score = call_tool("read_table", {"path": str(path)}, workspace=workspace).result.data
    with pytest.raises(ToolInputError, match="has no column 'score' \\(it has mjj_gev, weight\\)"):
        call_tool("bump_hunt", {"source": no_score.id, **windows_args()}, workspace=workspace)


def test_fit_bump_recovers_a_known_background_and_needs_sideband_events() -> None:
    """On pure toy background the fitted signal-region count agrees with the truth; too few events → ValueError."""
    rng = np.random.default_rng(11)
    mjj = toy_background(200_000, rng)["mjj_gev"]
    fit = fit_bump(mjj, WINDOWS)
    # the parent spectrum is 2600·(1 + Pareto(6)): its exact expectation in the signal region
    lo, hi = (np.asarray(WINDOWS.signal_region_gev) / 2600.0)
    truth = len(mjj) * (lo ** -6 - hi ** -6)
    assert fit.expected == pytest.approx(truth, abs=3 * np.hypot(fit.expected_uncertainty, np.sqrt(truth)))
    assert fit.expected_uncertainty < 0.05 * fit.expected
    assert np.all(np.diff(fit.bin_edges_gev) > 0)
    assert set(WINDOWS.signal_region_gev) <= set(fit.bin_edges_gev.tolist())
    with pytest.raises(ValueError, match=f"need {MIN_SIDEBAND_EVENTS}"):
        fit_bump(mjj[:10], WINDOWS)


def test_local_significance_matches_the_poisson_formula_for_a_known_background() -> None:
    """With B known exactly, Z = √(2(N ln(N/B) − (N − B))) (asymptotic q0); a deficit gives Z = 0, p = 0.5."""
    p, z = _discovery(150, 100.0, 1e-6)
    assert z == pytest.approx(np.sqrt(2 * (150 * np.log(1.5) - 50)), rel=0.01)
    assert p == pytest.approx(0.5 * (1 - math.erf(z / np.sqrt(2))), rel=1e-3)
    assert _discovery(90, 100.0, 5.0) == (0.5, 0.0)
    z_wide = _discovery(150, 100.0, 20.0)[1]
    assert z_wide < z  # a background uncertainty lowers the significance


@pytest.mark.slow
def test_bump_hunt_on_cwola_scores_reproduces_cwola_hunt(workspace: Workspace) -> None:
    """bump_hunt on cwola_hunt's scores table at the same efficiency gives cwola_hunt's own local significance."""
    dataset = toy_anomaly_dataset(workspace, s_over_b=0.01, seed=1)
    cwola = call_tool("cwola_hunt", {"dataset": dataset.id, "selection_efficiency": 0.1, "seed": 0},
                      workspace=workspace).result
    result = call_tool("bump_hunt", {"source": cwola.scores.id, "selection_efficiency": 0.1},
                       workspace=workspace).result
    assert result.method == "cwola" and result.warnings == []
    assert result.after.z_local == pytest.approx(cwola.z_local_max, abs=1e-6)
    assert result.after.z_local > result.before.z_local + 2.0


@pytest.mark.slow
def test_bump_hunt_warns_on_the_scores_of_a_reference(workspace: Workspace) -> None:
    """The idealized reference's scores carry is_reference: bump_hunt says its bump is no evidence of a signal."""
    dataset = toy_anomaly_dataset(workspace, n_background=20_000, n_signal=2_000, s_over_b=0.01, seed=2)
    reference = call_tool("reference_anomaly_classifier", {"dataset": dataset.id, "method": "idealized"},
                          workspace=workspace).result
    result = call_tool("bump_hunt", {"source": reference.scores.id}, workspace=workspace).result
    assert result.method == "idealized"
    assert any("reference method" in w and "not evidence" in w for w in result.warnings)


@pytest.mark.parametrize("method", ["idealized", "cathode"])
def test_k_fold_scores_fake_no_bump_on_background_only(workspace: Workspace, method: str) -> None:
    """Signal-region events are scored out of fold, the others by one fold model each (not the fold mean,
    whose narrower tails made a top-10 % cut keep more signal-region events: 5.9σ on pure background)."""
    dataset = toy_anomaly_dataset(workspace, n_background=20_000, s_over_b=0.0, seed=5)
    if method == "idealized":
        scores = call_tool("reference_anomaly_classifier", {"dataset": dataset.id, "method": "idealized"},
                           workspace=workspace).result.scores
    else:
        scores = call_tool("cathode_search", {"dataset": dataset.id, "flow_size": "tiny", "flow_epochs": 5},
                           workspace=workspace).result.scores
    result = call_tool("bump_hunt", {"source": scores.id, "selection_efficiency": 0.1}, workspace=workspace).result
    assert result.after.z_local < 3.0
    assert result.efficiency_signal_region == pytest.approx(result.efficiency_sidebands, abs=0.04)
