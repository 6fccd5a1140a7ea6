"""The summarize tool: statistics equal numpy's, selections count what they should, unsafe text is refused."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest

from physagent.tools import CallOutcome, ToolInputError, Workspace, call_tool
from physagent.tools.data import _expressions
from physagent.tools.data._expressions import ExpressionError, parse

# these tests read files pytest writes (tmp_path, the shared samples); they grant that folder
pytestmark = pytest.mark.usefixtures("grant_pytest_temp")

# Four events with known jets (pt [GeV], eta): event 1 is stored out of pT order, event 2 has no jets.
JETS = [
    [{"pt": 50.0, "eta": 0.5}, {"pt": 40.0, "eta": -2.8}, {"pt": 10.0, "eta": 1.0}],
    [{"pt": 20.0, "eta": 0.1}, {"pt": 35.0, "eta": 2.2}],
    [],
    [{"pt": 100.0, "eta": -1.5}, {"pt": 31.0, "eta": 0.3}, {"pt": 30.5, "eta": 2.6}, {"pt": 5.0, "eta": 0.0}],
]
M_HAT_GEV = [91.0, 85.0, 70.0, 120.0]
TRACKS = [[{"pt": 1.0}], [{"pt": 2.0}, {"pt": 3.0}], [], [{"pt": 4.0}]]


def _store(tmp_path: Path, workspace: Workspace, columns: dict[str, Any]) -> str:
    """Write ``columns`` to Parquet and read it into the workspace as a table artifact; returns its id."""
    path = tmp_path / "input.parquet"
    ak.to_parquet(ak.Array(columns), path)
    return call_tool("read_table", {"path": str(path)}, workspace=workspace).result.data.id


@pytest.fixture
def toy_jets(tmp_path: Path, workspace: Workspace) -> str:
    """The four hand-made events above, as a table artifact."""
    return _store(tmp_path, workspace, {"m_hat_gev": M_HAT_GEV, "jets": JETS, "tracks": TRACKS,
                                        "region": ["SR", "CR", "CR", "SR"]})


def _summarize(workspace: Workspace, source: str, **arguments: Any) -> Any:
    return call_tool("summarize", {"source": source, **arguments}, workspace=workspace).result


def _selection_error(workspace: Workspace, source: str, selection: str) -> str:
    with pytest.raises(ToolInputError) as info:
        _summarize(workspace, source, selection=selection)
    assert info.value.param == "selection"
    return str(info.value)


# statistics ------------------------------------------------------------------------------------


def test_statistics_equal_numpy_on_a_known_table(tmp_path: Path, workspace: Workspace) -> None:
    """count, mean, std (ddof=0), median, quantiles, min and max are numpy's, value for value."""
    rng = np.random.default_rng(11)
    mass, eta = rng.normal(91.2, 2.5, 997), rng.uniform(-2.5, 2.5, 997)
    source = _store(tmp_path, workspace, {"mass_gev": mass, "eta": eta})
    result = _summarize(workspace, source, fields=["mass_gev", "eta"], quantiles=[0.025, 0.5, 0.975])
    assert list(result.stats) == ["mass_gev", "eta"]
    for values, stats in ((mass, result.stats["mass_gev"]), (eta, result.stats["eta"])):
        low, mid, high = np.quantile(values, [0.025, 0.5, 0.975])
        assert (stats.count, stats.mean, stats.std, stats.median) == (997, np.mean(values), np.std(values),
                                                                      np.median(values))
        assert stats.quantiles == {"q2_5": low, "q50": mid, "q97_5": high}
        assert (stats.min, stats.max, stats.level, stats.n_nonfinite) == (values.min(), values.max(), "event", 0)
    assert (result.stats["mass_gev"].unit, result.stats["eta"].unit) == ("GeV", "")
    assert (result.selection_level, result.n_events, result.fraction_passing) == (None, 997, 1.0)


def test_jagged_fields_are_summarised_per_object_with_units_in_their_keys(toy_jets: str, workspace: Workspace) -> None:
    """jets.pt is flattened over every jet; its key ends in _gev, jets.eta's does not; the default quantiles."""
    result = _summarize(workspace, toy_jets, fields=["jets.pt", "jets.eta", "m_hat_gev"])
    pt = np.array([jet["pt"] for event in JETS for jet in event])
    stats = result.stats["jets_pt_gev"]
    assert list(result.stats) == ["jets_pt_gev", "jets_eta", "m_hat_gev"]
    assert (stats.path, stats.level, stats.unit, stats.label) == ("jets.pt", "object", "GeV", "jet $p_{T}$ [GeV]")
    assert (stats.count, stats.mean, stats.std, stats.median) == (9, np.mean(pt), np.std(pt), np.median(pt))
    assert stats.quantiles == dict(zip(["q16", "q50", "q84"], np.quantile(pt, [0.16, 0.5, 0.84]), strict=True))
    assert result.stats["jets_eta"].label == r"jet $\eta$"
    assert result.multiplicities["jets"].model_dump() == {
        "collection": "jets", "n_objects": 9, "n_events": 4, "mean": 2.25, "std": np.std([3, 2, 0, 4]),
        "median": 2.5, "min": 0, "max": 4}


def test_no_fields_and_no_selection_report_every_collection_multiplicity(toy_jets: str, workspace: Workspace) -> None:
    """With nothing named, the answer is how many objects of each collection an event holds."""
    result = _summarize(workspace, toy_jets)
    assert result.stats == {}
    assert {name: m.mean for name, m in result.multiplicities.items()} == {"jets": 2.25, "tracks": 1.0}


def test_an_empty_selection_gives_none_statistics_not_zeros(toy_jets: str, workspace: Workspace) -> None:
    """When no event passes, count is 0 and every statistic is None."""
    result = _summarize(workspace, toy_jets, fields=["m_hat_gev"], selection="m_hat_gev > 1e9")
    stats = result.stats["m_hat_gev"]
    assert (stats.count, stats.mean, stats.median, stats.min) == (0, None, None, None)
    assert stats.quantiles == {"q16": None, "q50": None, "q84": None}
    assert (result.n_passing, result.fraction_passing) == (0, 0.0)


# selections ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("selection", "level", "passing", "considered"), [
    ("jets.pt > 30", "object", 6, 9),
    ("count(jets.pt > 30) >= 4", "event", 0, 4),
    ("count(jets.pt > 30) >= 2", "event", 2, 4),
    ("abs(jets.eta) < 2.5", "object", 7, 9),
    ("jets.pt[0] > 400 and abs(jets.eta[0]) < 2", "event", 0, 4),
    ("jets.pt[0] > 40 and abs(jets.eta[0]) < 2", "event", 2, 4),
    ("m_hat_gev > 80 and m_hat_gev < 100", "event", 2, 4),
    ("80 < m_hat_gev < 100", "event", 2, 4),
    ("any(jets.pt > 90) or len(tracks) == 2", "event", 2, 4),
    ("sum(jets.pt) / 2 >= 50 & min(jets.pt) < 10", "event", 1, 4),
    ("not m_hat_gev > 80 | max(jets.pt) > 60", "event", 2, 4),
    ("all(abs(jets.eta) < 2.5)", "event", 2, 4),
    ("jets.pt > 0.5 * m_hat_gev", "object", 2, 9),
])
def test_selections_pass_the_hand_counted_events_or_jets(
    toy_jets: str, workspace: Workspace, selection: str, level: str, passing: int, considered: int
) -> None:
    """Each selection keeps the events (or jets) counted by hand on the four toy events."""
    result = _summarize(workspace, toy_jets, selection=selection)
    assert (result.selection_level, result.n_passing, result.n_considered) == (level, passing, considered)
    assert result.fraction_passing == passing / considered


def test_event_level_selection_counts_events_and_jets_in_them(toy_jets: str, workspace: Workspace) -> None:
    """count(jets.pt > 30) >= 2 keeps events 0 and 3: half the events, with 3 and 4 jets."""
    result = _summarize(workspace, toy_jets, fields=["m_hat_gev"], selection="count(jets.pt > 30) >= 2")
    assert (result.selection_level, result.n_passing, result.n_events_passing, result.fraction_passing) == (
        "event", 2, 2, 0.5)
    assert result.stats["m_hat_gev"].mean == np.mean([91.0, 120.0])
    assert (result.multiplicities["jets"].mean, result.multiplicities["jets"].n_events) == (3.5, 2)


def test_object_level_selection_counts_jets_and_filters_their_fields(toy_jets: str, workspace: Workspace) -> None:
    """jets.pt > 30 keeps 6 of 9 jets in 3 events; jet fields and the jet multiplicity follow the cut."""
    result = _summarize(workspace, toy_jets, fields=["jets.pt", "jets.eta"], selection="jets.pt > 30")
    assert (result.selection_level, result.selection_collection) == ("object", "jets")
    assert (result.n_considered, result.n_passing, result.n_events_passing) == (9, 6, 3)
    assert result.fraction_passing == pytest.approx(2 / 3)
    kept = np.array([50.0, 40.0, 35.0, 100.0, 31.0, 30.5])
    assert (result.stats["jets_pt_gev"].count, result.stats["jets_pt_gev"].mean) == (6, np.mean(kept))
    assert result.stats["jets_eta"].min == -2.8
    assert list(result.multiplicities) == ["jets"]  # only collections the call names
    assert (result.multiplicities["jets"].mean, result.multiplicities["jets"].n_objects) == (1.5, 6)


def test_leading_objects_are_ordered_by_pt_and_missing_ones_fail_the_cut(toy_jets: str, workspace: Workspace) -> None:
    """jets.pt[1] uses pT order (event 1 is stored 20, 35) and the jetless event fails, also for [0]."""
    second = _summarize(workspace, toy_jets, selection="jets.pt[1] > 30")
    assert (second.n_passing, second.n_considered) == (2, 4)  # 40 and 31 pass; 20 fails; no jet fails
    negated = _summarize(workspace, toy_jets, selection="not (jets.pt[0] > 40)")
    assert negated.n_passing == 2  # event 1 (35 GeV) and the jetless event 2: a failed cut, negated
    indexed = _summarize(workspace, toy_jets, fields=["jets.pt"], object_index=1)
    assert (indexed.stats["jets_pt_gev"].count, indexed.stats["jets_pt_gev"].mean) == (3, np.mean([40.0, 20.0, 31.0]))
    assert indexed.stats["jets_pt_gev"].label == "subleading jet $p_{T}$ [GeV]"


def test_object_index_takes_the_leading_object_that_passes_an_object_cut(toy_jets: str, workspace: Workspace) -> None:
    """With abs(jets.eta) < 2.5 first, the leading central jets are 50, 35 and 100 GeV."""
    result = _summarize(workspace, toy_jets, fields=["jets.pt"], object_index=0, selection="abs(jets.eta) < 2.5")
    assert (result.stats["jets_pt_gev"].count, result.stats["jets_pt_gev"].max) == (3, 100.0)
    assert result.stats["jets_pt_gev"].mean == np.mean([50.0, 35.0, 100.0])


# refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("selection", "message"), [
    ("__import__('os')", "unexpected '__import__' at position 0; names with a double underscore are not fields"),
    ("jets.__class__", "unexpected '__class__' at position 5; names with a double underscore"),
    ("jets.pt.__class__.__mro__ > 1", "unexpected '__class__' at position 8"),
    ('"abc"', "unexpected '\"' at position 0; strings are not allowed"),
    ("jets.pt > 'abc'", "unexpected \"'\" at position 10; strings are not allowed"),
    ("lambda: 1", "unexpected 'lambda' at position 0; Python keywords are not allowed"),
    ("open('/etc/passwd')", "unknown function 'open' at position 0; allowed functions: abs, count, any, all, sum, "
     "min, max, len"),
    ("jets.pt.mean() > 1", "unknown function 'jets.pt.mean' at position 0"),
    ("[x for x in jets]", "unexpected '[' at position 0"),
    ("jets.pt > 30; import os", "unexpected ';' at position 12"),
])
def test_unsafe_selections_are_refused_naming_the_token(
    toy_jets: str, workspace: Workspace, selection: str, message: str
) -> None:
    """Anything that looks like Python escape is refused by the parser, naming the token and its position."""
    text = _selection_error(workspace, toy_jets, selection)
    assert text.startswith(f"summarize: selection={selection!r} is not a valid selection: ")
    assert message in text


@pytest.mark.parametrize(("selection", "message"), [
    ("jets.pt >> 30", "unexpected '>' at position 9; use > >= < <= == !=."),
    ("jets.pt = 30", "unexpected '=' at position 8; use == to test equality"),
    ("(jets.pt > 30", "unexpected end of selection at position 13; expected ')' to close '(' at position 0"),
    ("jets.pt > 30 GeV", "unexpected 'GeV' at position 13; write numbers without units"),
    ("jets.pt > 30 jets.eta < 2", "unexpected 'jets.eta' at position 13; after a complete condition; join"),
    ("jets.pt[-1] > 3", "unexpected '-' at position 8; an index is a whole number >= 0"),
    ("jets.pt >", "unexpected end of selection at position 9; expected a number, a field path"),
    ("", "it is empty; give a condition such as jets.pt > 30"),
    ("count(jets.pt > 30)", "it is a number, not a condition; compare it"),
    ("m_hat_gev[0] > 80", "[0] at position 9 picks the k-th object of a per-object value"),
    ("count(m_hat_gev > 80) > 1", "count() at position 0 needs per-object values"),
    ("any(jets.pt) > 1", "any() at position 0 needs a condition"),
    ("jets.pt > 30 and 2", "'and' at position 13 needs conditions such as jets.pt > 30 on both sides"),
    ("jets > 3", "'jets' at position 0 is a collection, not a number; use one of its fields (jets.pt) or len(jets)"),
    ("jets.pt > tracks.pt", "'>' at position 8 combines per-object values of different collections (jets, tracks)"),
    ("jets.ptt > 30", "unknown field 'jets.ptt' at position 0; available: m_hat_gev, jets.pt, jets.eta, tracks.pt"),
])
def test_malformed_selections_say_where_and_what_is_allowed(
    toy_jets: str, workspace: Workspace, selection: str, message: str
) -> None:
    """Syntax and type errors name the token, its 0-based position and what would work."""
    assert message in _selection_error(workspace, toy_jets, selection)


def test_selection_module_never_calls_eval_exec_or_compile() -> None:
    """The evaluator works on a syntax tree with awkward; no builtin that runs Python text is called."""
    tree = ast.parse(inspect.getsource(_expressions))
    called = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert not called & {"eval", "exec", "compile", "__import__", "open"}
    with pytest.raises(ExpressionError, match="unexpected '__builtins__' at position 0"):
        parse("__builtins__.eval > 0")


def test_bad_fields_and_object_index_are_input_errors(toy_jets: str, workspace: Workspace) -> None:
    """An unknown field lists the available ones; mixing per-event fields with a per-jet cut says what to do."""
    with pytest.raises(ToolInputError, match=r"summarize: fields='jets.mas' is not a numeric field of tab-\w+\. "
                       r"Available: m_hat_gev, jets.pt, jets.eta, tracks.pt\."):
        _summarize(workspace, toy_jets, fields=["jets.mas"])
    with pytest.raises(ToolInputError, match=r"fields='region' is not a numeric field of tab-\w+\."):
        _summarize(workspace, toy_jets, fields=["region"])
    with pytest.raises(ToolInputError, match=r"fields='jets' is a collection, not a numeric field"):
        _summarize(workspace, toy_jets, fields=["jets"])
    with pytest.raises(ToolInputError, match=r"fields='m_hat_gev' has one value per event, but "
                       r"selection='jets.pt > 30' keeps jets one by one\. Make the selection event-level"):
        _summarize(workspace, toy_jets, fields=["m_hat_gev"], selection="jets.pt > 30")
    with pytest.raises(ToolInputError, match=r"fields='tracks.pt' belongs to tracks, but selection"):
        _summarize(workspace, toy_jets, fields=["tracks.pt"], selection="jets.pt > 30")
    with pytest.raises(ToolInputError, match=r"object_index=0 only applies to per-object fields"):
        _summarize(workspace, toy_jets, fields=["m_hat_gev"], object_index=0)
    with pytest.raises(ToolInputError, match=r"quantiles.0=1.5 must be less than or equal to 1"):
        _summarize(workspace, toy_jets, quantiles=[1.5])


def test_a_repeated_call_is_replayed_from_the_cache_unchanged(toy_jets: str, workspace: Workspace) -> None:
    """The nested statistics survive the workspace cache: a second identical call returns an equal result."""
    arguments = {"source": toy_jets, "fields": ["jets.pt"], "selection": "count(jets.pt > 30) >= 2"}
    first = call_tool("summarize", arguments, workspace=workspace)
    second = call_tool("summarize", arguments, workspace=workspace)
    assert (first.cached, second.cached) == (False, True)
    assert second.result == first.result
    assert second.result.stats["jets_pt_gev"].quantiles["q50"] == first.result.stats["jets_pt_gev"].median


# physics ---------------------------------------------------------------------------------------


def test_drell_yan_mass_lies_in_the_generated_window_and_events_hold_two_muons(
    drell_yan_sample: CallOutcome, workspace: Workspace
) -> None:
    """Pythia Z/γ* → μμ with 60 < m̂ < 120 GeV: m̂ statistics inside the window, peaked at m_Z; two muons."""
    events = ak.from_parquet(drell_yan_sample.result.events.path)
    source = call_tool("read_table", {"path": str(drell_yan_sample.result.events.path)},
                       workspace=workspace).result.data.id
    result = _summarize(workspace, source, fields=["m_hat_gev", "muons.pt"], object_index=0,
                        selection="count(muons.pt > 5) >= 2")
    m_hat = result.stats["m_hat_gev"]
    assert 60.0 <= m_hat.min < m_hat.mean < m_hat.max <= 120.0
    assert 86.0 < m_hat.median < 94.0  # the Z peak at 91.19 GeV dominates the window
    assert result.fraction_passing > 0.95
    assert result.multiplicities["muons"].min >= 2
    leading = result.stats["muons_pt_gev"]
    assert leading.label == "leading muon $p_{T}$ [GeV]"
    assert 35.0 < leading.median < 55.0  # Jacobian peak near m_Z / 2, boosted
    everything = _summarize(workspace, source, fields=["m_hat_gev"])
    assert everything.stats["m_hat_gev"].mean == np.mean(ak.to_numpy(events.m_hat_gev))



def test_invisible_alias_counts_neutralinos_and_neutrinos_and_neutrinos_still_works(
    tmp_path: Path, workspace: Workspace
) -> None:
    """`invisible` selects every id of the shared invisible set (ν and χ̃⁰₁ here), `neutrinos` only the ν."""
    def particle(pid: int, px: float) -> dict:
        return {"px": px, "py": 0.0, "pz": 0.0, "e": abs(px) + 1.0, "pid": pid, "charge": 0}

    events = [[particle(1000022, 90.0), particle(12, 30.0), particle(211, 100.0)],
              [particle(-14, 20.0), particle(22, 5.0)]]
    source = _store(tmp_path, workspace, {"particles": events, "weight": [1.0, 1.0]})
    result = _summarize(workspace, source, fields=["invisible.pt", "neutrinos.pt"])
    assert result.stats["invisible_pt_gev"].count == 3
    assert result.stats["invisible_pt_gev"].max == 90.0
    assert result.stats["neutrinos_pt_gev"].count == 2
    assert result.stats["neutrinos_pt_gev"].max == 30.0
