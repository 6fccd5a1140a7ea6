"""Luminosity weighting, merged p̂T slices and ROOT export of histograms, on small real Pythia samples."""

from __future__ import annotations

import hashlib
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import uproot

from physagent.tools import CallOutcome, CallRecord, Workspace, call_tool
from physagent.tools._errors import ToolInputError
from physagent.tools.data import load_histogram

_FAST = {"process": "qcd_dijet", "n_events": 150, "mpi": False, "hadronisation": False}


@pytest.fixture(scope="module")
def slices(shared_workspace: Workspace) -> list[CallOutcome]:
    """Dijet p̂T slices 50–100 GeV and ≥ 100 GeV, 150 events each, MPI and hadronisation off (≈ 2 s)."""
    return [
        call_tool("generate_events", {**_FAST, "pt_hat_min_gev": 50.0, "pt_hat_max_gev": 100.0, "seed": 11},
                  workspace=shared_workspace),
        call_tool("generate_events", {**_FAST, "pt_hat_min_gev": 100.0, "seed": 12}, workspace=shared_workspace),
    ]


@pytest.fixture(scope="module")
def merged(slices: list[CallOutcome], shared_workspace: Workspace) -> CallOutcome:
    """The two slices merged with σ_k/Σw_k weights."""
    ids = [s.result.events.id for s in slices]
    return call_tool("merge_samples", {"samples": ids}, workspace=shared_workspace)


def _pt_hat(outcome: CallOutcome) -> np.ndarray:
    return ak.to_numpy(ak.from_parquet(outcome.result.events.path, columns=["pt_hat_gev"]).pt_hat_gev)


def test_merged_slices_reproduce_the_sigma_weighted_sum(
    slices: list[CallOutcome], merged: CallOutcome, shared_workspace: Workspace
) -> None:
    """A histogram of the merged weights equals Σ_k σ_k/N_k · h_k, variances Σ_k (σ_k/N_k)² · counts_k."""
    result = call_tool("histogram", {"source": merged.result.merged.id, "field": "pt_hat_gev",
                                     "weight_field": "weight", "bins": 30, "range_min": 0.0, "range_max": 300.0},
                       workspace=shared_workspace).result
    filled = load_histogram(result.histogram.path)
    expected_values, expected_variances = np.zeros(30), np.zeros(30)
    for piece in slices:
        counts, _ = np.histogram(_pt_hat(piece), bins=30, range=(0.0, 300.0))
        scale = piece.result.sigma_pb / piece.result.n_events
        expected_values += scale * counts
        expected_variances += scale**2 * counts
    np.testing.assert_allclose(filled.values(), expected_values, rtol=1e-9)
    np.testing.assert_allclose(filled.variances(), expected_variances, rtol=1e-9)
    sigmas = [s.result.sigma_pb for s in slices]
    assert merged.result.sigma_pb == pytest.approx(sum(sigmas), rel=1e-12)
    assert merged.result.sigma_err_pb == pytest.approx(np.hypot(*[s.result.sigma_err_pb for s in slices]))
    assert result.sum_weights == pytest.approx(sum(sigmas), rel=1e-9)


def test_merged_sample_records_slices_sample_index_and_luminosity(
    slices: list[CallOutcome], merged: CallOutcome
) -> None:
    """The merge says σ, the p̂T windows and the luminosity n_k/σ_k [fb⁻¹] of each slice and the smallest."""
    result = merged.result
    meta = result.merged.metadata
    assert meta["weight_unit"] == "pb" and meta["sigma_pb"] == result.sigma_pb
    assert [(s.pt_hat_min_gev, s.pt_hat_max_gev) for s in result.slices] == [(50.0, 100.0), (100.0, None)]
    lumis = [s.result.n_events / (s.result.sigma_pb * 1000.0) for s in slices]
    assert [s.luminosity_fb for s in result.slices] == pytest.approx(lumis, rel=1e-12)
    assert result.luminosity_fb == pytest.approx(min(lumis), rel=1e-12)
    assert result.limiting_sample == slices[int(np.argmin(lumis))].result.events.id
    rows = ak.from_parquet(result.merged.path, columns=["sample", "weight"])
    assert ak.to_list(rows.sample) == [0] * 150 + [1] * 150
    assert "QCD dijet" in result.label and "13.6 TeV" in result.label and "2 slices" in result.label


def test_merged_sample_weighted_to_luminosity_is_w_times_1000_l(
    merged: CallOutcome, shared_workspace: Workspace
) -> None:
    """σ-weights in pb become expected events with w·1000·L: the weights sum to Σσ·1000·L."""
    result = call_tool("histogram", {"source": merged.result.merged.id, "field": "pt_hat_gev",
                                     "luminosity_fb": 2.0}, workspace=shared_workspace).result
    assert result.sum_weights == pytest.approx(merged.result.sigma_pb * 1000.0 * 2.0, rel=1e-9)
    assert result.normalisation is not None and result.normalisation.startswith("w·1000·L")
    assert result.luminosity_fb == 2.0 and result.histogram.metadata["luminosity_fb"] == 2.0


def test_luminosity_weighting_uses_sigma_over_sum_of_weights(
    drell_yan_sample: CallOutcome, shared_workspace: Workspace
) -> None:
    """L = 10 fb⁻¹: the weights sum to σ·1000·L, the in-range bins to that times the in-range fraction."""
    sample = drell_yan_sample.result
    result = call_tool("histogram", {"source": sample.events.id, "field": "m_hat_gev", "bins": 20,
                                     "range_min": 80.0, "range_max": 100.0, "luminosity_fb": 10.0},
                       workspace=shared_workspace).result
    m_hat = _pt_hat_like(sample.events.path, "m_hat_gev")
    inside = np.count_nonzero((m_hat >= 80.0) & (m_hat < 100.0)) / m_hat.size
    expected = sample.sigma_pb * 1000.0 * 10.0
    assert result.sum_weights == pytest.approx(expected, rel=1e-9)
    assert load_histogram(result.histogram.path).values().sum() == pytest.approx(expected * inside, rel=1e-9)
    assert result.sigma_pb == sample.sigma_pb and result.sqrt_s_tev == 13.6 and result.luminosity_fb == 10.0
    meta = result.histogram.metadata
    assert meta["sqrt_s_tev"] == 13.6 and meta["sample"] == "Drell–Yan μμ, Pythia8, 13.6 TeV"
    assert f"card of {sample.events.id}" in (result.normalisation or "")


def _pt_hat_like(path: Path, field: str) -> np.ndarray:
    return ak.to_numpy(ak.from_parquet(path, columns=[field])[field])


def test_jets_find_the_cross_section_through_their_source(
    drell_yan_sample: CallOutcome, shared_workspace: Workspace
) -> None:
    """A jets artifact has no σ of its own: histogram follows metadata.source to the generator card."""
    jets = call_tool("cluster_jets", {"events": drell_yan_sample.result.events.id, "pt_min_gev": 5.0},
                     workspace=shared_workspace).result
    result = call_tool("histogram", {"source": jets.jets.id, "field": "event", "luminosity_fb": 0.5},
                       workspace=shared_workspace).result
    assert result.sigma_pb == drell_yan_sample.result.sigma_pb
    assert result.sum_weights == pytest.approx(drell_yan_sample.result.sigma_pb * 500.0, rel=1e-9)


@pytest.mark.usefixtures("grant_pytest_temp")
def test_luminosity_without_a_cross_section_is_refused_and_the_override_works(
    tmp_path: Path, workspace: Workspace
) -> None:
    """A file carries no σ: luminosity_fb alone is refused, naming it and cross_section_pb; σ given works."""
    path = tmp_path / "toy.parquet"
    ak.to_parquet(ak.Array({"x": [1.0, 2.0, 3.0], "weight": [1.0, 2.0, 3.0]}), path)
    table = call_tool("read_table", {"path": str(path)}, workspace=workspace).result.data.id
    with pytest.raises(ToolInputError, match=r"histogram: luminosity_fb=10\.0 needs the cross-section.*"
                                             r"cross_section_pb"):
        call_tool("histogram", {"source": table, "field": "x", "luminosity_fb": 10.0}, workspace=workspace)
    result = call_tool("histogram", {"source": table, "field": "x", "bins": 3, "range_min": 0.5, "range_max": 3.5,
                                     "luminosity_fb": 10.0, "cross_section_pb": 2.0}, workspace=workspace).result
    # w_i · σ · 1000 · L / Σw = w_i · 2 · 1e4 / 6
    np.testing.assert_allclose(load_histogram(result.histogram.path).values(), np.array([1, 2, 3]) * 2e4 / 6,
                               rtol=1e-12)
    assert "σ = 2 pb (given)" in (result.normalisation or "")
    assert result.histogram.metadata["sample"] == "toy"


def test_cross_section_without_luminosity_is_refused(
    drell_yan_sample: CallOutcome, shared_workspace: Workspace
) -> None:
    """cross_section_pb alone would silently do nothing: it is refused, pointing at luminosity_fb."""
    with pytest.raises(ToolInputError, match=r"cross_section_pb=3\.0 only applies together with luminosity_fb"):
        call_tool("histogram", {"source": drell_yan_sample.result.events.id, "field": "pt_hat_gev",
                                "cross_section_pb": 3.0}, workspace=shared_workspace)


def test_merge_refuses_overlapping_windows_mixed_sqrt_s_and_missing_sigma(
    slices: list[CallOutcome], shared_workspace: Workspace, tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Overlapping p̂T windows of one process, different √s and a sample without σ are refused by id."""
    low, high = (s.result.events.id for s in slices)
    overlap = call_tool("generate_events", {**_FAST, "n_events": 20, "pt_hat_min_gev": 80.0, "seed": 13},
                        workspace=shared_workspace).result.events.id
    with pytest.raises(ToolInputError, match=rf"has {low} \(p̂T 50–100 GeV\) and {overlap} \(p̂T > 80 GeV\) of the "
                                             r"same process 'qcd_dijet' with overlapping windows"):
        call_tool("merge_samples", {"samples": [low, high, overlap]}, workspace=shared_workspace)
    other = call_tool("generate_events", {**_FAST, "n_events": 20, "pt_hat_min_gev": 100.0, "sqrt_s_tev": 13.0,
                                          "seed": 14}, workspace=shared_workspace).result.events.id
    with pytest.raises(ToolInputError, match=rf"different √s \({low}: 13.6 TeV, {other}: 13 TeV\)"):
        call_tool("merge_samples", {"samples": [low, other]}, workspace=shared_workspace)
    monkeypatch.setenv("PHYSAGENT_DATA_DIRS", str(tmp_path_factory.getbasetemp()))
    from_file = call_tool("read_table", {"path": str(slices[1].result.events.path)},
                          workspace=shared_workspace).result.data.id
    with pytest.raises(ToolInputError, match=rf"includes {from_file} without a cross-section"):
        call_tool("merge_samples", {"samples": [low, from_file]}, workspace=shared_workspace)
    with pytest.raises(ToolInputError, match=rf"names {low} more than once"):
        call_tool("merge_samples", {"samples": [low, low]}, workspace=shared_workspace)


def test_merge_accepts_adjoining_windows_and_different_processes(
    slices: list[CallOutcome], drell_yan_sample: CallOutcome, shared_workspace: Workspace
) -> None:
    """Windows that only touch (100 GeV) do not overlap; Drell–Yan + dijet is a process merge, σ summed."""
    ids = [slices[1].result.events.id, drell_yan_sample.result.events.id]
    result = call_tool("merge_samples", {"samples": ids, "labels": ["dijet", "DY"]},
                       workspace=shared_workspace).result
    assert result.sigma_pb == pytest.approx(slices[1].result.sigma_pb + drell_yan_sample.result.sigma_pb)
    assert [s.label for s in result.slices] == ["dijet", "DY"]
    assert result.label.startswith("QCD dijet + Drell–Yan μμ")


def test_merging_jets_takes_cross_sections_and_windows_from_the_events_cards(
    slices: list[CallOutcome], merged: CallOutcome, shared_workspace: Workspace
) -> None:
    """Jets carry no σ: the cards behind them give σ and p̂T windows; a merge is not merged with its own slice."""
    jets = [call_tool("cluster_jets", {"events": s.result.events.id}, workspace=shared_workspace).result.jets.id
            for s in slices]
    result = call_tool("merge_samples", {"samples": jets}, workspace=shared_workspace).result
    assert result.merged.kind == "jets" and result.sigma_pb == pytest.approx(merged.result.sigma_pb, rel=1e-12)
    assert [(s.pt_hat_min_gev, s.pt_hat_max_gev) for s in result.slices] == [(50.0, 100.0), (100.0, None)]
    lumi = call_tool("histogram", {"source": result.merged.id, "field": "jets.pt", "object_index": 0,
                                   "luminosity_fb": 1.0}, workspace=shared_workspace).result
    assert lumi.normalisation is not None and lumi.normalisation.startswith("w·1000·L")
    again = call_tool("cluster_jets", {"events": slices[0].result.events.id, "radius": 0.8},
                      workspace=shared_workspace).result.jets.id
    with pytest.raises(ToolInputError, match=rf"{jets[1]}: antikt R=0.4, {again}: antikt R=0.8"):
        call_tool("merge_samples", {"samples": [jets[1], again]}, workspace=shared_workspace)
    same_events = call_tool("cluster_jets", {"events": slices[0].result.events.id, "pt_min_gev": 25.0},
                            workspace=shared_workspace).result.jets.id
    with pytest.raises(ToolInputError, match=rf"has {jets[0]} \(p̂T 50–100 GeV\) and {same_events} .*overlapping"):
        call_tool("merge_samples", {"samples": [jets[0], same_events]}, workspace=shared_workspace)
    own = slices[0].result.events.id
    with pytest.raises(ToolInputError, match=rf"includes {merged.result.merged.id}, a merge that already contains "
                                             rf"{own}"):
        call_tool("merge_samples", {"samples": [merged.result.merged.id, own]}, workspace=shared_workspace)


_WINDOW_FIELDS = ("pt_hat_min_gev", "pt_hat_max_gev", "m_hat_min_gev", "m_hat_max_gev")


def _copy_with_card(workspace: Workspace, sample: CallOutcome, metadata: dict[str, Any]) -> str:
    """Register a copy of ``sample``'s events whose card is ``metadata`` (as an older generate_events wrote it)."""
    with workspace.staging_area() as staging:
        pending = workspace.new_pending("events", staging)
        shutil.copy(sample.result.events.path, pending.directory / "events.parquet")
        pending.finish("events.parquet", "events with a hand-made card", metadata)
        record = CallRecord(id=f"c-{uuid.uuid4().hex[:10]}", seq=0, tool="test", tool_version="1", inputs={},
                            input_artifacts={}, outputs=[pending.id], result={}, seed=None, started=time.time(),
                            wall_s=0.0, packages={}, cache_key=uuid.uuid4().hex, cached_from=None)
        workspace.commit([pending], record)
    return pending.id


def _sample_label(source: str, workspace: Workspace) -> str:
    result = call_tool("histogram", {"source": source, "field": "pt_hat_gev"}, workspace=workspace).result
    return str(result.histogram.metadata["sample"])


def test_the_card_states_the_windows_and_normalisation_reads_them_from_there(
    slices: list[CallOutcome], shared_workspace: Workspace
) -> None:
    """generate_events writes the p̂T/m̂ windows as numbers; a card whose settings lost their PhaseSpace lines
    still gives the label and the merge its window, so the numbers, not the setting strings, are read."""
    card = slices[0].result.events.metadata
    assert [card[name] for name in _WINDOW_FIELDS] == [50.0, 100.0, None, None]
    settings = [line for line in card["pythia_settings"] if not line.startswith("PhaseSpace:")]
    numbers_only = _copy_with_card(shared_workspace, slices[0], card | {"pythia_settings": settings})
    assert _sample_label(numbers_only, shared_workspace) == "QCD dijet, p̂T 50–100 GeV, Pythia8, 13.6 TeV"
    merged = call_tool("merge_samples", {"samples": [numbers_only, slices[1].result.events.id]},
                       workspace=shared_workspace).result
    assert [(s.pt_hat_min_gev, s.pt_hat_max_gev) for s in merged.slices] == [(50.0, 100.0), (100.0, None)]


def test_a_card_written_before_the_window_fields_still_normalises_from_its_settings(
    slices: list[CallOutcome], shared_workspace: Workspace
) -> None:
    """An older card has only 'PhaseSpace:pTHatMin = 50'-style settings: label, slices and overlaps come from them."""
    card = {k: v for k, v in slices[0].result.events.metadata.items() if k not in _WINDOW_FIELDS}
    old = _copy_with_card(shared_workspace, slices[0], card)
    assert _sample_label(old, shared_workspace) == "QCD dijet, p̂T 50–100 GeV, Pythia8, 13.6 TeV"
    merged = call_tool("merge_samples", {"samples": [old, slices[1].result.events.id]},
                       workspace=shared_workspace).result
    assert [(s.pt_hat_min_gev, s.pt_hat_max_gev) for s in merged.slices] == [(50.0, 100.0), (100.0, None)]
    new = slices[0].result.events.id
    with pytest.raises(ToolInputError, match=rf"has {old} \(p̂T 50–100 GeV\) and {new} \(p̂T 50–100 GeV\) "
                                             r"of the same process 'qcd_dijet' with overlapping windows"):
        call_tool("merge_samples", {"samples": [old, new]}, workspace=shared_workspace)


def _histograms(merged: CallOutcome, workspace: Workspace) -> list[str]:
    one = call_tool("histogram", {"source": merged.result.merged.id, "field": "pt_hat_gev", "bins": 10,
                                  "range_min": 60.0, "range_max": 160.0, "luminosity_fb": 1.0}, workspace=workspace)
    two = call_tool("histogram", {"source": merged.result.merged.id, "field": "pt_hat_gev", "field_y": "m_hat_gev",
                                  "weight_field": "weight", "bins": 5, "range_min": 60.0, "range_max": 160.0,
                                  "bins_y": 4, "range_min_y": 100.0, "range_max_y": 400.0}, workspace=workspace)
    return [one.result.histogram.id, two.result.histogram.id]


def test_export_histograms_round_trips_through_uproot(merged: CallOutcome, shared_workspace: Workspace) -> None:
    """TH1D and TH2D read back with to_hist() give the values and variances, flow bins included."""
    ids = _histograms(merged, shared_workspace)
    result = call_tool("export_histograms", {"histograms": ids}, workspace=shared_workspace).result
    assert result.names == ["pt_hat_gev", "pt_hat_gev_vs_m_hat_gev"] and result.classes == ["TH1D", "TH2D"]
    with uproot.open(result.root.path) as file:
        for name, hist_id in zip(result.names, ids, strict=True):
            original = load_histogram(shared_workspace.get_artifact(hist_id).path)
            back = file[name].to_hist()
            np.testing.assert_allclose(back.values(flow=True), original.values(flow=True), rtol=1e-12)
            np.testing.assert_allclose(back.variances(flow=True), original.variances(flow=True), rtol=1e-12)
            assert back.axes[0].label == original.axes[0].label
            assert file[name].member("fTitle") == merged.result.label
    again = call_tool("export_histograms", {"histograms": ids}, workspace=shared_workspace, use_cache=False).result
    assert hashlib.sha256(again.root.path.read_bytes()).hexdigest() == result.root.sha256


def test_export_histograms_refuses_names_that_are_not_root_keys(
    merged: CallOutcome, shared_workspace: Workspace
) -> None:
    """Keys must be identifiers, one per histogram, all different."""
    ids = _histograms(merged, shared_workspace)
    with pytest.raises(ToolInputError, match=r"not ROOT identifiers \(2pt\)"):
        call_tool("export_histograms", {"histograms": ids, "names": ["ok", "2pt"]}, workspace=shared_workspace)
    with pytest.raises(ToolInputError, match=r"repeats h"):
        call_tool("export_histograms", {"histograms": ids, "names": ["h", "h"]}, workspace=shared_workspace)
    with pytest.raises(ToolInputError, match=r"one entry per histogram \(2\), got 1"):
        call_tool("export_histograms", {"histograms": ids, "names": ["h"]}, workspace=shared_workspace)
