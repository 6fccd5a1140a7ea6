"""make_anomaly_dataset: the LHCO R&D selection and features from Pythia, the split and injection, imported
feature tables, and the bad inputs."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from anomaly_toy import toy_background, toy_signal

from physagent.tools import CallOutcome, ToolInputError, Workspace, call_tool
from physagent.tools._context import ToolContext
from physagent.tools.anomaly._search_data import COLUMNS, TRUTH, read_search_data

# 3,000 QCD events (≈ 23% land inside the 2.8–5 TeV sidebands after the selection) and 800 W′ events (≈ 70%)
GENERATED = {"n_background_events": 3000, "n_signal_events": 800, "s_over_b": 0.2, "seed": 2}


@pytest.fixture(scope="module")
def generated(shared_workspace: Workspace) -> CallOutcome:
    """A small real Pythia run with the defaults (W′ 3.5 TeV → X 500 GeV, Y 100 GeV; MPI off) (≈ 30–60 s)."""
    return call_tool("make_anomaly_dataset", GENERATED, workspace=shared_workspace)


def _tables(outcome: CallOutcome, workspace: Workspace) -> dict[str, dict[str, np.ndarray]]:
    with workspace.staging_area() as staging:
        data = read_search_data(ToolContext("test", workspace, staging), outcome.result.dataset.id)
    return {"data": data.data, "reference": data.reference, "test": data.test}


def _rows(table: dict[str, np.ndarray], label: int | None = None) -> dict[str, np.ndarray]:
    keep = np.ones(len(table["mjj_gev"]), bool) if label is None else table[TRUTH] == label
    return {name: values[keep] for name, values in table.items()}


@pytest.mark.slow  # a real Pythia run of 3,800 events
def test_generated_events_pass_the_lhco_selection(generated: CallOutcome, shared_workspace: Workspace) -> None:
    """Every event has a leading jet above 1.2 TeV, both jets within |η| < 2.5, and m_jj inside 2.8–5 TeV."""
    for name, table in _tables(generated, shared_workspace).items():
        assert set(table) == {*COLUMNS, TRUTH}, name
        assert np.all(np.maximum(table["pt_j1_gev"], table["pt_j2_gev"]) > 1200.0), name
        assert np.all((np.abs(table["eta_j1"]) < 2.5) & (np.abs(table["eta_j2"]) < 2.5)), name
        assert np.all((table["mjj_gev"] >= 2800.0) & (table["mjj_gev"] < 5000.0)), name
        assert np.all(table["delta_mj_gev"] >= 0.0) and np.all((table["tau21_j1"] >= 0) & (table["tau21_j1"] <= 1))
    card = generated.result.dataset.metadata
    assert card["selection"]["radius"] == 1.0 and card["generation"]["pt_hat_min_gev"] == pytest.approx(1000.0)
    assert 0.1 < generated.result.background_efficiency < 0.4 and generated.result.signal_efficiency > 0.5


@pytest.mark.slow  # a real Pythia run of 3,800 events
def test_signal_peaks_at_the_wprime_x_and_y_masses(generated: CallOutcome, shared_workspace: Workspace) -> None:
    """Injected W′ events peak near m_jj = 3.5 TeV, the lighter jet near 100 GeV (Y), the heavier near 500 GeV (X)."""
    signal = _rows(_tables(generated, shared_workspace)["data"], 1)
    assert len(signal["mjj_gev"]) > 50
    assert np.median(signal["mjj_gev"]) == pytest.approx(3500.0, abs=200.0)
    assert np.median(signal["mj1_gev"]) == pytest.approx(100.0, abs=25.0)
    assert np.median(signal["mj1_gev"] + signal["delta_mj_gev"]) == pytest.approx(500.0, abs=50.0)
    assert np.mean(np.abs(signal["mjj_gev"] - 3500.0) < 350.0) > 0.6  # a bump, not a continuum


@pytest.mark.slow  # a real Pythia run of 3,800 events
def test_signal_jets_are_two_pronged_and_qcd_jets_are_not(generated: CallOutcome, shared_workspace: Workspace
                                                         ) -> None:
    """τ21 of both W′ daughter jets is well below that of QCD jets on average."""
    data = _tables(generated, shared_workspace)["data"]
    signal, background = _rows(data, 1), _rows(data, 0)
    for tau in ("tau21_j1", "tau21_j2"):
        assert np.mean(signal[tau]) < np.mean(background[tau]) - 0.1, tau
    assert np.median(background["mj1_gev"]) < 150.0  # QCD jets are light


@pytest.mark.slow  # a real Pythia run of 3,800 events
def test_signal_is_injected_at_the_requested_s_over_b(generated: CallOutcome, shared_workspace: Workspace) -> None:
    """label == 1 counts in the data equal round(S/B × background), and the result reports them."""
    result, data = generated.result, _tables(generated, shared_workspace)["data"]
    n_signal, n_background = int(np.sum(data[TRUTH] == 1)), int(np.sum(data[TRUTH] == 0))
    assert n_signal == round(0.2 * n_background) == result.n_signal_injected
    assert n_background == result.n_background_data and result.n_data == n_signal + n_background
    assert result.s_over_b == pytest.approx(0.2, rel=0.02)
    in_sr = (data["mjj_gev"] >= 3300.0) & (data["mjj_gev"] < 3700.0)
    s_sr, b_sr = int(np.sum(in_sr & (data[TRUTH] == 1))), int(np.sum(in_sr & (data[TRUTH] == 0)))
    assert result.s_over_b_signal_region == pytest.approx(s_sr / b_sr)
    assert result.s_over_b_signal_region > result.s_over_b  # the signal is concentrated in the SR


@pytest.mark.slow  # a real Pythia run of 3,800 events
def test_truth_lives_only_in_data_and_test_and_splits_are_disjoint(generated: CallOutcome,
                                                                   shared_workspace: Workspace) -> None:
    """The reference is pure background, the test set is the SR only, and no event appears in two tables."""
    tables = _tables(generated, shared_workspace)
    assert np.all(tables["reference"][TRUTH] == 0)
    test = tables["test"]
    assert np.all((test["mjj_gev"] >= 3300.0) & (test["mjj_gev"] < 3700.0))
    assert set(np.unique(test[TRUTH])) == {0, 1}
    background = np.concatenate([_rows(tables["data"], 0)["mjj_gev"], tables["reference"]["mjj_gev"],
                                 _rows(test, 0)["mjj_gev"]])
    signal = np.concatenate([_rows(tables["data"], 1)["mjj_gev"], _rows(test, 1)["mjj_gev"]])
    assert len(np.unique(background)) == len(background) and len(np.unique(signal)) == len(signal)
    n_selected = generated.result.dataset.metadata["counts"]["background_selected"]
    assert len(tables["reference"]["mjj_gev"]) == round(0.2 * n_selected)
    assert generated.result.n_background_data == round(0.6 * n_selected)


@pytest.mark.slow  # two Pythia runs of 1,200 events
def test_same_seed_gives_the_same_dataset_whatever_the_worker_count(workspace: Workspace,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Rerunning (cache bypassed, one worker instead of all cores) reproduces the artifact's sha256."""
    arguments = {"n_background_events": 1000, "n_signal_events": 200, "s_over_b": 0.05, "seed": 4}
    first = call_tool("make_anomaly_dataset", arguments, workspace=workspace)
    monkeypatch.setenv("PHYSAGENT_WORKERS", "1")
    second = call_tool("make_anomaly_dataset", arguments, workspace=workspace, use_cache=False)
    assert first.result.dataset.id != second.result.dataset.id
    assert first.result.dataset.sha256 == second.result.dataset.sha256


# --- imported feature tables (fast) ---------------------------------------------------------


def _write_toy_table(path: Path, n_background: int = 6000, n_signal: int = 600, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    background, signal = toy_background(n_background, rng), toy_signal(n_signal, rng)
    table = {name: np.concatenate([background[name], signal[name]]) for name in COLUMNS}
    table[TRUTH] = np.concatenate([np.zeros(n_background, np.int8), np.ones(n_signal, np.int8)])
    ak.to_parquet(ak.zip(table, depth_limit=1), path)
    return path


def _import(workspace: Workspace, path: Path) -> str:
    return call_tool("read_table", {"path": str(path)}, workspace=workspace).result.data.id


@pytest.mark.usefixtures("grant_pytest_temp")
def test_features_table_is_selected_split_and_injected(workspace: Workspace, tmp_path: Path) -> None:
    """A table with the contract's columns: the pT/η cuts apply, S/B is as asked, nothing is generated."""
    table_id = _import(workspace, _write_toy_table(tmp_path / "features.parquet"))
    outcome = call_tool("make_anomaly_dataset", {"features_table": table_id, "s_over_b": 0.01}, workspace=workspace)
    result, tables = outcome.result, _tables(outcome, workspace)
    assert result.source == "features_table" and result.events_generated == 0
    assert result.n_signal_injected == round(0.01 * result.n_background_data) > 0
    data = tables["data"]
    assert np.all(np.maximum(data["pt_j1_gev"], data["pt_j2_gev"]) > 1200.0)
    assert np.all(np.abs(data["eta_j1"]) < 2.5) and np.all(np.abs(data["eta_j2"]) < 2.5)
    assert result.background_efficiency < 0.9  # the toy's pT and η spread past the cuts
    assert result.dataset.metadata["source"] == "features_table"
    assert any("generation parameters" in note for note in result.notes)


@pytest.mark.usefixtures("grant_pytest_temp")
def test_lhco_rnd_columns_become_the_features(workspace: Workspace, tmp_path: Path) -> None:
    """LHCO R&D columns (pxj1 … tau3j2): back-to-back central jets give m_jj = E1 + E2, jets ordered by mass."""
    n = 4000
    rng = np.random.default_rng(1)
    pt = rng.uniform(1300.0, 2400.0, n)
    label = (rng.uniform(size=n) < 0.1).astype(np.int8)
    columns = {"pxj1": pt, "pyj1": np.zeros(n), "pzj1": np.zeros(n), "mj1": np.full(n, 500.0),
               "tau1j1": np.full(n, 0.4), "tau2j1": np.full(n, 0.1), "tau3j1": np.full(n, 0.05),
               "pxj2": -pt, "pyj2": np.zeros(n), "pzj2": np.zeros(n), "mj2": np.full(n, 100.0),
               "tau1j2": np.full(n, 0.5), "tau2j2": np.full(n, 0.4), "tau3j2": np.full(n, 0.2), "label": label}
    path = tmp_path / "lhco.parquet"
    ak.to_parquet(ak.zip(columns, depth_limit=1), path)
    outcome = call_tool("make_anomaly_dataset", {"features_table": _import(workspace, path), "s_over_b": 0.05},
                        workspace=workspace)
    data = _tables(outcome, workspace)["data"]
    pt_out = data["pt_j1_gev"]
    expected_mjj = np.sqrt(pt_out**2 + 100.0**2) + np.sqrt(pt_out**2 + 500.0**2)
    np.testing.assert_allclose(data["mjj_gev"], expected_mjj, rtol=1e-9)
    np.testing.assert_allclose(data["mj1_gev"], 100.0)
    np.testing.assert_allclose(data["delta_mj_gev"], 400.0)
    np.testing.assert_allclose(data["tau21_j1"], 0.8)  # the lighter jet's τ2/τ1
    np.testing.assert_allclose(data["tau21_j2"], 0.25)
    np.testing.assert_allclose(data["eta_j1"], 0.0, atol=1e-12)


@pytest.mark.usefixtures("grant_pytest_temp")
def test_features_table_missing_columns_are_named(workspace: Workspace, tmp_path: Path) -> None:
    """A table without τ21 of the heavier jet and without labels: the error names both and writes nothing."""
    path = _write_toy_table(tmp_path / "features.parquet")
    array = ak.from_parquet(path)
    ak.to_parquet(array[[name for name in ak.fields(array) if name not in ("tau21_j2", "label")]],
                  tmp_path / "partial.parquet")
    table_id = _import(workspace, tmp_path / "partial.parquet")
    with pytest.raises(ToolInputError, match=r"features_table=.* lacks the column\(s\) tau21_j2, label"):
        call_tool("make_anomaly_dataset", {"features_table": table_id}, workspace=workspace)
    assert workspace.list_artifacts("anomaly_dataset") == []


@pytest.mark.usefixtures("grant_pytest_temp")
def test_features_table_with_other_labels_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    """Labels must be 0 (background) and 1 (signal)."""
    path = _write_toy_table(tmp_path / "features.parquet")
    array = ak.from_parquet(path)
    array = ak.with_field(array, np.asarray(array.label) * 2, "label")
    ak.to_parquet(array, tmp_path / "relabelled.parquet")
    with pytest.raises(ToolInputError, match="values other than 0 and 1"):
        call_tool("make_anomaly_dataset", {"features_table": _import(workspace, tmp_path / "relabelled.parquet")},
                  workspace=workspace)


@pytest.mark.usefixtures("grant_pytest_temp")
def test_a_selection_that_empties_the_signal_region_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    """A leading-jet cut no toy event passes leaves nothing to search: the error says what to loosen."""
    table_id = _import(workspace, _write_toy_table(tmp_path / "features.parquet"))
    with pytest.raises(ToolInputError, match=r"no background event in the m_jj sidebands.*loosen pt_min_gev"):
        call_tool("make_anomaly_dataset", {"features_table": table_id, "pt_min_gev": 3000.0}, workspace=workspace)
    assert workspace.list_artifacts("anomaly_dataset") == []


@pytest.mark.usefixtures("grant_pytest_temp")
def test_too_little_signal_for_the_requested_s_over_b_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    """S/B = 1 needs as much signal as background in the data: the error points at s_over_b."""
    table_id = _import(workspace, _write_toy_table(tmp_path / "features.parquet", n_signal=100))
    with pytest.raises(ToolInputError, match=r"s_over_b=1\.0 cannot make the dataset: S/B = 1 needs"):
        call_tool("make_anomaly_dataset", {"features_table": table_id, "s_over_b": 1.0}, workspace=workspace)


@pytest.mark.parametrize(("arguments", "message"), [
    ({"s_over_b": 1.5}, r"s_over_b=1\.5 must be less than or equal to 1"),
    ({"s_over_b": -0.1}, r"s_over_b=-0\.1 must be greater than or equal to 0"),
    ({"signal_region_min_gev": 2500.0}, r"sideband_min_gev=2800\.0 must be below the signal region's lower edge"),
    ({"signal_region_max_gev": 5200.0}, r"sideband_max_gev=5000\.0 must be above the signal region's upper edge"),
    ({"signal_region_min_gev": 3700.0, "signal_region_max_gev": 3300.0}, r"the signal region would be empty"),
    ({"m_x_gev": 3000.0, "m_y_gev": 600.0}, r"m_wprime_gev=3500\.0 must exceed m_x_gev \+ m_y_gev = 3600"),
    ({"m_wprime_gev": 20000.0}, r"m_wprime_gev=20000\.0 is out of reach at sqrt_s_tev=13"),
    ({"pt_min_gev": 9000.0, "sideband_max_gev": 12000.0}, r"pt_min_gev=9000\.0 puts the QCD p̂T cut at 7500 GeV"),
])
def test_bad_settings_fail_before_anything_runs(no_workspace_writes: Workspace, arguments: dict[str, object],
                                                message: str) -> None:
    """Impossible windows, masses and S/B are refused with the parameter named, before any generation."""
    with pytest.raises(ToolInputError, match=message):
        call_tool("make_anomaly_dataset", arguments, workspace=no_workspace_writes)
