"""The weakly supervised searches (cwola_hunt, cathode_search) and their references
(reference_anomaly_classifier) on the analytic toy dataset: they find an injected W′, stay quiet without
one, read no truth, report what they read, and refuse bad inputs."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from anomaly_toy import toy_anomaly_dataset

from physagent.tools import Artifact, CallOutcome, ToolInputError, Workspace, call_tool
from physagent.tools._context import ToolContext
from physagent.tools.anomaly import cwola
from physagent.tools.anomaly._search_data import TRUTH, SearchData, read_search_data

# 20,000 toy background events (≈ 12,000 observed, ≈ 1,500 in the 3.3–3.7 TeV signal region) with S/B = 1 %
STRONG = {"n_background": 20_000, "s_over_b": 0.01, "seed": 1}
CATHODE_FAST = {"flow_size": "tiny", "flow_epochs": 8, "n_folds": 3}


pytestmark = pytest.mark.usefixtures("one_worker")


@pytest.fixture(scope="module")
def toy_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """One workspace for this module's toy datasets and method runs."""
    return Workspace(tmp_path_factory.mktemp("anomaly-methods"))


@pytest.fixture(scope="module")
def strong(toy_workspace: Workspace) -> Artifact:
    """A toy dataset with a W′ (3.5 TeV → X 500 GeV, Y 100 GeV) injected at S/B = 1 %."""
    return toy_anomaly_dataset(toy_workspace, **STRONG)


def _run(workspace: Workspace, tool: str, **arguments: object) -> CallOutcome:
    return call_tool(tool, arguments, workspace=workspace)


@pytest.fixture(scope="module")
def cwola_run(toy_workspace: Workspace, strong: Artifact) -> CallOutcome:
    return _run(toy_workspace, "cwola_hunt", dataset=strong.id, seed=3)


@pytest.fixture(scope="module")
def cathode_run(toy_workspace: Workspace, strong: Artifact) -> CallOutcome:
    return _run(toy_workspace, "cathode_search", dataset=strong.id, seed=3, **CATHODE_FAST)


@pytest.fixture(scope="module")
def idealized_run(toy_workspace: Workspace, strong: Artifact) -> CallOutcome:
    return _run(toy_workspace, "reference_anomaly_classifier", dataset=strong.id, method="idealized", seed=3)


def _search_data(workspace: Workspace, dataset: str) -> SearchData:
    with workspace.staging_area() as staging:
        return read_search_data(ToolContext("test", workspace, staging), dataset)


def test_cwola_finds_the_injected_signal(cwola_run: CallOutcome) -> None:
    """CWoLa on S/B = 1 % beats chance on the test set (AUC, SIC > 1) and sees a > 3σ bump in the signal region."""
    result = cwola_run.result
    assert result.method == "cwola" and not result.is_reference
    assert result.auc > 0.8
    assert max(result.max_sic, result.sic_at_signal_eff_0p2) > 1.5
    assert result.z_local_max > 3.0 and result.best_signal_region_gev == [3300.0, 3700.0]
    window = result.searched_windows[0]
    assert window.observed > window.expected
    assert window.n_selected == pytest.approx(0.1 * (window.n_signal_region + window.n_sidebands), abs=2)


def test_cwola_with_a_neural_network_also_finds_the_signal(toy_workspace: Workspace, strong: Artifact) -> None:
    """classifier='mlp' (sklearn MLP on standardised features) also beats chance on S/B = 1 %."""
    result = _run(toy_workspace, "cwola_hunt", dataset=strong.id, classifier="mlp", n_folds=3).result
    assert result.auc > 0.8 and max(result.max_sic, result.sic_at_signal_eff_0p2) > 1.5
    assert "mlp classifiers, 3-fold" in result.notes


def test_cathode_finds_the_injected_signal(cathode_run: CallOutcome) -> None:
    """CATHODE (tiny flow, 8 epochs) on S/B = 1 % beats chance on the test set (AUC, SIC > 1), with 4× samples."""
    result = cathode_run.result
    assert result.method == "cathode" and not result.is_reference
    assert result.auc > 0.8
    assert max(result.max_sic, result.sic_at_signal_eff_0p2) > 1.5
    n_signal_region = int(np.sum(ak.to_numpy(ak.from_parquet(result.scores.path).in_signal_region)))
    assert result.n_background_samples == pytest.approx(4 * n_signal_region, rel=0.01)
    assert 1 <= result.flow_best_epoch <= result.flow_epochs_run <= 8
    assert np.isfinite(result.flow_val_nll)


def test_cathode_beats_the_plain_fit_in_the_right_window_only(toy_workspace: Workspace, strong: Artifact,
                                                              cathode_run: CallOutcome) -> None:
    """A bump hunt on CATHODE's scores in the true window (3.3–3.7 TeV) sees more than the plain m_jj fit and
    > 3σ; CATHODE run on a window beside it (2.9–3.3 TeV) finds no 3σ bump there: it tells the windows apart."""
    right = _run(toy_workspace, "bump_hunt", source=cathode_run.result.scores.id, selection_efficiency=0.1).result
    assert right.after.z_local > right.before.z_local and right.after.z_local > 3.0
    beside = _run(toy_workspace, "cathode_search", dataset=strong.id, seed=3, signal_region_gev=[2900.0, 3300.0],
                  **CATHODE_FAST).result
    wrong = _run(toy_workspace, "bump_hunt", source=beside.scores.id, selection_efficiency=0.1).result
    assert wrong.signal_region_gev == [2900.0, 3300.0] and wrong.after.z_local < 3.0


def test_idealized_reference_is_at_least_as_good_as_cwola(idealized_run: CallOutcome,
                                                          cwola_run: CallOutcome) -> None:
    """The idealized detector (data vs perfect background) is labelled a reference and matches or beats CWoLa."""
    ideal = idealized_run.result
    assert ideal.is_reference and ideal.method == "idealized"
    assert any(line.startswith("reference_background:") for line in ideal.inputs_seen)
    assert ideal.auc >= cwola_run.result.auc - 0.03
    assert ideal.max_sic >= 0.8 * cwola_run.result.max_sic


def test_supervised_reference_reads_truth_and_says_so(toy_workspace: Workspace, strong: Artifact) -> None:
    """The supervised reference trains on the data's truth labels, and its result says so."""
    result = _run(toy_workspace, "reference_anomaly_classifier", dataset=strong.id, method="supervised",
                  n_folds=3).result
    assert result.is_reference and result.method == "supervised"
    assert any(f"'{TRUTH}'" in line for line in result.inputs_seen)
    assert result.auc > 0.9


def test_search_methods_report_inputs_without_truth(cwola_run: CallOutcome, cathode_run: CallOutcome) -> None:
    """CWoLa and CATHODE name the data columns they read and never the truth label or the reference background."""
    for outcome in (cwola_run, cathode_run):
        seen = " ".join(outcome.result.inputs_seen)
        assert "tau21_j1" in seen and "mjj_gev" in seen
        for forbidden in (TRUTH, "truth", "reference_background", "test"):
            assert forbidden not in seen, (outcome.tool, forbidden, seen)


def test_scores_table_has_one_row_per_data_event(cwola_run: CallOutcome, toy_workspace: Workspace,
                                                 strong: Artifact) -> None:
    """scores.parquet: one row per observed event, in order, with m_jj, a finite score and the signal-region flag."""
    data = _search_data(toy_workspace, strong.id)
    scores = cwola_run.result.scores
    table = ak.from_parquet(scores.path)
    assert set(ak.fields(table)) == {"row", "mjj_gev", "score", "in_signal_region"}
    assert len(table) == len(data.data["mjj_gev"]) and np.array_equal(ak.to_numpy(table.row), np.arange(len(table)))
    assert np.allclose(ak.to_numpy(table.mjj_gev), data.data["mjj_gev"])
    assert np.all(np.isfinite(ak.to_numpy(table.score)))
    assert np.array_equal(ak.to_numpy(table.in_signal_region), data.windows.in_signal_region(data.data["mjj_gev"]))
    test_scores = ak.from_parquet(Path(scores.path).parent / "test_scores.parquet")
    assert len(test_scores) == len(data.test["mjj_gev"])
    assert cwola_run.result.plot.path.name == "roc_sic.png" and cwola_run.result.plot.path.stat().st_size > 10_000


def test_cwola_scores_do_not_depend_on_the_truth_labels(toy_workspace: Workspace, strong: Artifact,
                                                        cwola_run: CallOutcome,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Scrambling the observed data's truth labels leaves every CWoLa score unchanged: the search never reads them."""
    original = cwola.read_search_data

    def scrambled(ctx: ToolContext, artifact_id: str, param: str = "dataset") -> SearchData:
        data = original(ctx, artifact_id, param)
        flipped = {**data.data, TRUTH: 1 - np.asarray(data.data[TRUTH])}
        return SearchData(data.artifact, flipped, data.reference, data.test, data.card)

    monkeypatch.setattr(cwola, "read_search_data", scrambled)
    rerun = call_tool("cwola_hunt", {"dataset": strong.id, "seed": 3}, workspace=toy_workspace, use_cache=False)
    before = ak.to_numpy(ak.from_parquet(cwola_run.result.scores.path).score)
    after = ak.to_numpy(ak.from_parquet(rerun.result.scores.path).score)
    assert np.array_equal(before, after)


def test_cwola_scan_picks_the_window_with_the_signal(toy_workspace: Workspace, strong: Artifact) -> None:
    """Sliding a 400 GeV window over 2.7–5 TeV, CWoLa hunting is most significant in a window holding 3.5 TeV."""
    result = _run(toy_workspace, "cwola_hunt", dataset=strong.id, scan=True, n_folds=3, seed=0).result
    low, high = result.best_signal_region_gev
    assert low <= 3500.0 < high
    assert result.z_local_max > 3.0
    assert len(result.searched_windows) == 8
    assert [w.signal_region_gev[0] for w in result.searched_windows] == [2900.0 + 200.0 * i for i in range(8)]
    assert result.scan_plot.path.name == "bump.png"


@pytest.mark.parametrize("seed", [11, 12])
def test_cwola_scan_without_signal_finds_nothing_at_3_sigma(toy_workspace: Workspace, seed: int) -> None:
    """Without injected signal no scanned window reaches a local significance of 3σ."""
    dataset = toy_anomaly_dataset(toy_workspace, n_background=20_000, s_over_b=0.0, seed=seed)
    result = _run(toy_workspace, "cwola_hunt", dataset=dataset.id, scan=True, n_folds=3, seed=seed).result
    significances = [w.z_local for w in result.searched_windows]
    assert all(z is not None for z in significances)
    assert max(significances) < 3.0, significances  # type: ignore[type-var]


# --- bad inputs: each refused before any training, with the parameter and the fix named -------------


@pytest.mark.parametrize(("tool", "features", "expected"), [
    ("cwola_hunt", ["mj1_gev", "mjj_gev"], "the variable the search scans"),
    ("cathode_search", ["label"], "may not see truth labels"),
    ("reference_anomaly_classifier", ["mj1_gev", "n_tracks"], "names n_tracks, which the dataset does not have"),
])
def test_methods_refuse_bad_features(toy_workspace: Workspace, strong: Artifact, tool: str,
                                     features: list[str], expected: str) -> None:
    """m_jj, the truth label or an unknown column as a feature is refused, listing the columns to choose from."""
    with pytest.raises(ToolInputError, match=expected) as caught:
        _run(toy_workspace, tool, dataset=strong.id, features=features)
    assert caught.value.param == "features" and "Choose from mj1_gev" in str(caught.value)


def test_methods_refuse_a_signal_region_outside_the_sidebands(toy_workspace: Workspace, strong: Artifact) -> None:
    """A signal region outside the dataset's m_jj range is refused, naming the range."""
    with pytest.raises(ToolInputError, match="inside the dataset's sidebands 2700–5000 GeV") as caught:
        _run(toy_workspace, "cwola_hunt", dataset=strong.id, signal_region_gev=[1000.0, 1400.0])
    assert caught.value.param == "signal_region_gev"


def test_methods_refuse_an_empty_signal_region(toy_workspace: Workspace, strong: Artifact) -> None:
    """A signal region without data events is refused, saying to move it to where the data are."""
    for tool in ("cwola_hunt", "cathode_search", "reference_anomaly_classifier"):
        with pytest.raises(ToolInputError, match="leaves no data events in the signal region"):
            _run(toy_workspace, tool, dataset=strong.id, signal_region_gev=[4999.0, 4999.5])


def test_methods_refuse_too_few_events_for_the_folds(toy_workspace: Workspace, strong: Artifact) -> None:
    """A signal region too thin for k folds is refused naming n_folds and what to change."""
    with pytest.raises(ToolInputError, match=r"needs at least 100 events per class \(10 per fold\)") as caught:
        _run(toy_workspace, "cwola_hunt", dataset=strong.id, signal_region_gev=[4500.0, 4600.0], n_folds=10)
    assert caught.value.param == "n_folds" and "Lower n_folds" in str(caught.value)


def test_supervised_reference_refuses_a_dataset_without_signal(toy_workspace: Workspace) -> None:
    """The supervised reference needs labelled signal: on S/B = 0 it says to use the idealized one."""
    dataset = toy_anomaly_dataset(toy_workspace, n_background=6_000, s_over_b=0.0, seed=5)
    with pytest.raises(ToolInputError, match="method='idealized'") as caught:
        _run(toy_workspace, "reference_anomaly_classifier", dataset=dataset.id, method="supervised")
    assert caught.value.param == "method"
