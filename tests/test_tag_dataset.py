"""make_jet_dataset: truth-matched, balanced, reproducible jet datasets from simulation, and its bad inputs."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from physagent.tools import CallOutcome, ToolInputError, Workspace, call_tool
from physagent.tools.tag._features import PID_FEATURES, particle_feature_names, tagger_inputs

# the same arguments as in test_taggers.py: whichever module runs first generates, the other hits the cache
TOP_DATASET = {"task": "top_vs_qcd", "n_jets_per_class": 700, "pt_min_gev": 500.0, "pt_max_gev": 600.0,
               "n_constituents": 32, "seed": 1}


@pytest.fixture(scope="module")
def top_dataset(shared_workspace: Workspace) -> CallOutcome:
    """700 truth-matched top jets and 700 QCD jets, 500 < pT < 600 GeV, R = 0.8, MPI off (≈ 30 s)."""
    return call_tool("make_jet_dataset", TOP_DATASET, workspace=shared_workspace)


@pytest.fixture(scope="module")
def qcd_events(shared_workspace: Workspace) -> CallOutcome:
    """400 QCD dijet events with p̂T > 400 GeV, MPI off."""
    return call_tool("generate_events", {"process": "qcd_dijet", "n_events": 400, "pt_hat_min_gev": 400.0,
                                         "mpi": False, "seed": 11}, workspace=shared_workspace)


def _from_samples(workspace: Workspace, ttbar: CallOutcome, qcd: CallOutcome, **extra: object) -> CallOutcome:
    arguments = {"task": "top_vs_qcd", "signal_sample": ttbar.result.events.id,
                 "background_sample": qcd.result.events.id, "n_jets_per_class": 5000, "pt_min_gev": 400.0,
                 "pt_max_gev": 700.0, "n_constituents": 32} | extra
    return call_tool("make_jet_dataset", arguments, workspace=workspace)


def _jets(outcome: CallOutcome) -> ak.Array:
    return ak.from_parquet(outcome.result.dataset.path)


@pytest.mark.slow  # the generated top-vs-QCD sample takes ≈ 30 s
def test_top_dataset_is_balanced_and_split_by_class(top_dataset: CallOutcome) -> None:
    """Equal classes, and each class split 60/20/20 into train/validation/test as the card records."""
    result, jets = top_dataset.result, _jets(top_dataset)
    assert result.n_signal == result.n_background == 700 and len(jets) == result.n_jets == 1400
    label, split = np.asarray(jets.label), np.asarray(jets.split)
    for code, fraction in ((0, 0.6), (1, 0.2), (2, 0.2)):
        for cls in (0, 1):
            assert np.sum((split == code) & (label == cls)) == round(fraction * 700)
    card = result.dataset.metadata
    assert card["counts"]["test"] == {"signal": 140, "background": 140}
    assert card["labels"] == {"1": "top", "0": "QCD"} and card["samples"]["top"]["process"] == "ttbar"
    assert card["samples"]["QCD"]["events"] > 0 and result.events_generated > 1400


@pytest.mark.slow  # the generated top-vs-QCD sample takes ≈ 30 s
def test_top_jets_are_truth_matched_and_look_like_tops(top_dataset: CallOutcome) -> None:
    """Containment is reported and partial; matched top jets peak at the top mass, QCD jets do not."""
    result, jets = top_dataset.result, _jets(top_dataset)
    assert result.containment_fraction is not None and 0.35 < result.containment_fraction < 0.95
    assert result.match_efficiency is not None and result.match_efficiency < result.containment_fraction
    matching = result.dataset.metadata["truth_matching"]
    assert matching["contained"] / matching["axis_matched"] == pytest.approx(result.containment_fraction)
    msd = np.asarray(jets.msd)
    top, qcd = msd[np.asarray(jets.label) == 1], msd[np.asarray(jets.label) == 0]
    assert 150.0 < np.median(top) < 195.0
    assert np.median(qcd) < 110.0
    assert np.mean((top > 140) & (top < 210)) > 0.6


@pytest.mark.slow  # the generated top-vs-QCD sample takes ≈ 30 s
def test_dataset_rows_respect_the_cuts(top_dataset: CallOutcome) -> None:
    """Jets lie in the pT and |η| window; constituents are the ≤ 32 leading ones, sorted by pT."""
    jets = _jets(top_dataset)
    assert ak.all((jets.pt > 500.0) & (jets.pt < 600.0) & (abs(jets.eta) < 2.0))
    pt = jets.constituents.pt
    assert ak.max(ak.num(pt)) == 32 and ak.all(pt[:, :-1] >= pt[:, 1:])
    assert ak.all(jets.n_constituents >= ak.num(pt))


@pytest.mark.slow  # the generated top-vs-QCD sample takes ≈ 30 s
def test_features_are_padded_masked_and_standardised(top_dataset: CallOutcome) -> None:
    """Padded slots are zero and masked; real features are finite and within the clip range."""
    jets = _jets(top_dataset)[:200]
    inputs = tagger_inputs(jets, 40, "kinematic+pid")
    assert inputs.x.shape == (200, len(particle_feature_names("kinematic+pid")), 40)
    mask = inputs.mask[:, 0, :]
    assert np.array_equal(mask.sum(axis=1), np.minimum(np.asarray(ak.num(jets.constituents)), 40))
    assert np.all(inputs.x[:, :, 32:] == 0) and np.all(inputs.v[:, :, 32:] == 0)
    assert np.all(np.isfinite(inputs.x)) and np.abs(inputs.x).max() <= 5.0
    flags = inputs.x[:, 7 + 1:, :].sum(axis=1)  # the five particle-type flags after the charge
    assert np.all(flags[mask == 1] == 1.0) and len(PID_FEATURES) == 6
    pt = np.hypot(inputs.v[:, 0], inputs.v[:, 1])
    np.testing.assert_allclose(pt[:, 0], np.asarray(jets.constituents.pt[:, 0]), rtol=1e-5)


def test_truth_matching_keeps_only_fully_contained_tops(
    shared_workspace: Workspace, ttbar_sample: CallOutcome, qcd_events: CallOutcome
) -> None:
    """From given events artifacts: matching drops partially contained tops, which sit below the top mass."""
    matched = _from_samples(shared_workspace, ttbar_sample, qcd_events, balance="weights")
    unmatched = _from_samples(shared_workspace, ttbar_sample, qcd_events, balance="weights", truth_matching=False)
    assert matched.result.events_generated == 0 and matched.result.containment_fraction is not None
    assert unmatched.result.containment_fraction is None
    assert 0 < matched.result.n_signal < unmatched.result.n_signal
    in_window = [np.mean(np.abs(np.asarray(_jets(o).msd[_jets(o).label == 1]) - 175.0) < 30.0)
                 for o in (matched, unmatched)]
    assert in_window[0] > in_window[1] + 0.1
    jets = _jets(matched)
    weights = {cls: float(np.sum(np.asarray(jets.weight)[np.asarray(jets.label) == cls])) for cls in (0, 1)}
    assert weights[0] == pytest.approx(weights[1], rel=1e-5)  # 'weights' balances the class totals


def test_same_seed_same_dataset_and_another_seed_another_split(
    shared_workspace: Workspace, ttbar_sample: CallOutcome, qcd_events: CallOutcome
) -> None:
    """A dataset is reproducible from its provenance: rerunning the call gives byte-identical files."""
    first = _from_samples(shared_workspace, ttbar_sample, qcd_events, seed=3)
    again = call_tool("make_jet_dataset", {"task": "top_vs_qcd", "signal_sample": ttbar_sample.result.events.id,
                                           "background_sample": qcd_events.result.events.id,
                                           "n_jets_per_class": 5000, "pt_min_gev": 400.0, "pt_max_gev": 700.0,
                                           "n_constituents": 32, "seed": 3},
                      workspace=shared_workspace, use_cache=False)
    other = _from_samples(shared_workspace, ttbar_sample, qcd_events, seed=4)
    assert again.result.dataset.sha256 == first.result.dataset.sha256
    assert other.result.dataset.sha256 != first.result.dataset.sha256
    assert first.result.n_signal == first.result.n_background  # equal_counts downsampled the larger class
    assert first.result.notes and "only" in first.result.notes[0]


def test_jets_artifact_input_is_matched_through_its_source_events(
    shared_workspace: Workspace, ttbar_sample: CallOutcome, qcd_events: CallOutcome
) -> None:
    """A jets artifact from cluster_jets works as a sample; truth matching reads its source events."""
    jets = call_tool("cluster_jets", {"events": ttbar_sample.result.events.id, "radius": 0.8, "pt_min_gev": 300.0,
                                      "eta_max": 2.5, "n_constituents": 32}, workspace=shared_workspace)
    from_jets = call_tool("make_jet_dataset", {
        "task": "top_vs_qcd", "signal_sample": jets.result.jets.id, "background_sample": qcd_events.result.events.id,
        "n_jets_per_class": 5000, "pt_min_gev": 400.0, "pt_max_gev": 700.0, "n_constituents": 32,
        "balance": "weights"}, workspace=shared_workspace)
    from_events = _from_samples(shared_workspace, ttbar_sample, qcd_events, balance="weights")
    assert from_jets.result.n_signal == from_events.result.n_signal
    assert from_jets.result.containment_fraction == pytest.approx(from_events.result.containment_fraction)


@pytest.mark.slow
def test_generated_dataset_is_reproducible_from_its_provenance(workspace: Workspace) -> None:
    """Rerunning a recorded make_jet_dataset call regenerates byte-identical events, jets and splits."""
    arguments = {"n_jets_per_class": 20, "pt_min_gev": 500.0, "pt_max_gev": 600.0, "n_constituents": 16, "seed": 9}
    first = call_tool("make_jet_dataset", arguments, workspace=workspace)
    recorded = next(c for c in workspace.calls() if c.tool == "make_jet_dataset")
    again = call_tool("make_jet_dataset", recorded.inputs, workspace=workspace, use_cache=False)
    assert again.result.dataset.sha256 == first.result.dataset.sha256
    assert recorded.inputs["seed"] == 9 and first.result.dataset.metadata["samples"]["top"]["rounds"]


@pytest.mark.slow
def test_w_and_quark_gluon_tasks_generate_their_processes(shared_workspace: Workspace) -> None:
    """W vs QCD matches the W and both quarks; quark vs gluon labels Z+jet jets by the hard parton."""
    common = {"n_jets_per_class": 60, "pt_min_gev": 400.0, "pt_max_gev": 600.0, "n_constituents": 16, "seed": 2}
    w = call_tool("make_jet_dataset", {"task": "w_vs_qcd"} | common, workspace=shared_workspace).result
    assert w.n_signal == w.n_background == 60 and w.signal == "W"
    assert w.containment_fraction is not None and w.containment_fraction > 0.7  # W → qq̄ at 500 GeV is collimated
    w_jets = ak.from_parquet(w.dataset.path)
    assert 60.0 < np.median(np.asarray(w_jets.msd)[np.asarray(w_jets.label) == 1]) < 100.0
    qg = call_tool("make_jet_dataset", {"task": "quark_vs_gluon"} | common, workspace=shared_workspace).result
    assert (qg.signal, qg.background) == ("quark", "gluon") and qg.n_signal == qg.n_background == 60
    assert qg.dataset.metadata["samples"]["quark/gluon"]["process"] == "z_jets"
    jets = ak.from_parquet(qg.dataset.path)
    gluon, quark = (np.asarray(jets.n_constituents)[np.asarray(jets.label) == cls] for cls in (0, 1))
    assert np.mean(gluon) > np.mean(quark)  # gluon jets radiate more (C_A > C_F)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"pt_min_gev": 600.0, "pt_max_gev": 500.0}, "pt_max_gev=500.0 must be larger than pt_min_gev=600"),
        ({"task": "two_samples"}, "signal_sample=None is required for task='two_samples'"),
        ({"task": "quark_vs_gluon", "truth_matching": False}, "truth_matching=False is required for quark_vs_gluon"),
        ({"validation_fraction": 0.5, "test_fraction": 0.45}, "leaves under 20% of the jets for training"),
    ],
)
def test_bad_requests_are_refused_before_any_work(
    arguments: dict, message: str, no_workspace_writes: Workspace
) -> None:
    """Contradictory settings fail at once with the parameter, the value and the fix; nothing is written."""
    with pytest.raises(ToolInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_tool("make_jet_dataset", arguments, workspace=no_workspace_writes)


def test_a_window_without_jets_is_an_empty_dataset_error(
    shared_workspace: Workspace, ttbar_sample: CallOutcome, qcd_events: CallOutcome
) -> None:
    """Samples with no jet in the pT window give a clear error instead of an empty dataset."""
    with pytest.raises(ToolInputError, match=r"leaves no signal jets inside the cuts .* the dataset would be empty"):
        _from_samples(shared_workspace, ttbar_sample, qcd_events, pt_min_gev=3000.0, pt_max_gev=4000.0)


def test_a_jets_artifact_with_another_radius_is_refused(
    shared_workspace: Workspace, ttbar_sample: CallOutcome, qcd_events: CallOutcome
) -> None:
    """Jets clustered with R = 0.4 cannot make an R = 0.8 dataset; the error says how to fix it."""
    narrow = call_tool("cluster_jets", {"events": ttbar_sample.result.events.id, "radius": 0.4, "pt_min_gev": 300.0},
                       workspace=shared_workspace)
    with pytest.raises(ToolInputError, match=r"holds jets with R=0.4, but radius=0.8. Pass radius=0.4"):
        call_tool("make_jet_dataset", {"task": "top_vs_qcd", "signal_sample": narrow.result.jets.id,
                                       "background_sample": qcd_events.result.events.id},
                  workspace=shared_workspace)
