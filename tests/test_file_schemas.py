"""The physicist's own ROOT files: NanoAOD and Delphes trees written by the tests with uproot, flat ntuples in MeV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pandas as pd
import pytest
import uproot

from physagent.tools import CallOutcome, ToolInputError, Workspace, call_tool

pytestmark = pytest.mark.usefixtures("grant_pytest_temp")

F32, I32 = np.float32, np.int32
# One Drell-Yan-like event: u ū → Z (→ a recoil copy, status 62) → μ⁻ μ⁺, then the final muons and a pion.
#        pdgId status mother   pt    eta   phi   mass
_GEN = [(2, -21, -1, 0.0, 0.0, 0.0, 0.0), (-2, -21, -1, 0.0, 0.0, 0.0, 0.0),
        (23, -22, 0, 5.0, 0.4, 0.3, 91.2), (23, -62, 2, 5.0, 0.4, 0.3, 91.2),
        (13, 23, 3, 40.0, 0.9, 1.1, 0.10566), (-13, 23, 3, 38.0, -0.2, -2.0, 0.10566),
        (13, 1, 4, 39.5, 0.9, 1.1, 0.10566), (-13, 1, 5, 37.9, -0.2, -2.0, 0.10566),
        (211, 1, 3, 2.5, -3.1, 0.7, 0.13957)]
_JETS = [[(55.0, 0.1, 1.0, 6.0, 0.9)], [], [(31.0, -1.0, -2.0, 3.5, 0.1), (22.0, 2.0, 0.5, 2.0, 0.4)]]
_MUONS = [[(39.0, 0.9, 1.1, 0.10566, -1), (37.0, -0.2, -2.0, 0.10566, 1)], [(25.0, 1.5, 0.0, 0.10566, 1)], []]


def _records(rows: list[list[tuple[Any, ...]]], names: list[str], types: list[type]) -> ak.Array:
    columns = {name: ak.values_astype(ak.Array([[row[i] for row in event] for event in rows]), kind)
               for i, (name, kind) in enumerate(zip(names, types, strict=True))}
    return ak.zip(columns)


def _nano_columns(drop: str | None = None) -> dict[str, Any]:
    jets = _records(_JETS, ["pt", "eta", "phi", "mass", "btagDeepFlavB"], [F32] * 5)
    if drop:
        jets = jets[[name for name in ak.fields(jets) if name != drop]]
    gen = _records([_GEN] * 3, ["pdgId", "status", "genPartIdxMother", "pt", "eta", "phi", "mass"],
                   [I32, I32, np.int16, F32, F32, F32, F32])
    fat = _records([[(450.0, 0.2, 0.1, 170.0, 165.0, 0.5, 0.2, 0.1)]] * 3,
                   ["pt", "eta", "phi", "mass", "msoftdrop", "tau1", "tau2", "tau3"], [F32] * 8)
    muons = _records(_MUONS, ["pt", "eta", "phi", "mass", "charge"], [F32, F32, F32, F32, I32])
    return {"Jet": jets, "FatJet": fat, "Muon": muons, "GenPart": gen, "MET_pt": np.array([12.0, 30.0, 5.0], F32),
            "MET_phi": np.array([0.1, -1.0, 2.0], F32), "genWeight": np.array([1.5, 0.5, 1.0], F32),
            "run": np.ones(3, np.uint32)}


def _write(path: Path, name: str, columns: dict[str, Any], title: str = "", delphes: bool = False) -> Path:
    """A TTree as uproot's mktree lays it out: NanoAOD-style (nJet, Jet_pt) or Delphes-style (Jet_size, Jet.PT)."""
    naming = {"counter_name": lambda c: c.replace(".", "_") + "_size",
              "field_name": lambda o, i: i if o == "" else o + "." + i} if delphes else {}
    with uproot.recreate(path) as file:
        types = {k: v.type.content if isinstance(v, ak.Array) else v.dtype for k, v in columns.items()}
        file.mktree(name, types, title=title, **naming)
        file[name].extend(columns)
    return path


def _read(workspace: Workspace, path: Path, **arguments: Any) -> CallOutcome:
    return call_tool("read_root", {"path": str(path), **arguments}, workspace=workspace)


def _cartesian(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mass: np.ndarray) -> np.ndarray:
    pt, eta, phi, mass = (np.asarray(x, np.float64) for x in (pt, eta, phi, mass))
    pz = pt * np.sinh(eta)
    return np.stack([pt * np.cos(phi), pt * np.sin(phi), pz, np.sqrt(pt**2 + pz**2 + mass**2)])


def test_nanoaod_file_becomes_events_with_jets_and_truth(tmp_path: Path, workspace: Workspace) -> None:
    """GenPart → particles (status 1) and partons with mother indices; Jet/FatJet/Muon/MET/genWeight renamed."""
    read = _read(workspace, _write(tmp_path / "nano.root", "Events", _nano_columns()))
    data = ak.from_parquet(read.result.data.path)
    assert (read.result.kind, read.result.file_schema, read.result.units_source) == ("events", "nanoaod", "schema")
    assert {"jets", "fatjets", "muons", "particles", "partons", "met", "weight", "run"} <= set(read.result.fields)
    final = [row for row in _GEN if row[1] == 1]
    expected = _cartesian(*np.array([row[3:] for row in final], np.float32).T)
    for i, name in enumerate(("px", "py", "pz", "e")):
        np.testing.assert_allclose(ak.to_numpy(data.particles[name][0]), expected[i], rtol=1e-6, atol=1e-6)
    assert data.particles.pid[0].tolist() == [13, -13, 211] and data.particles.charge[0].tolist() == [-1, 1, 1]
    # u, ū, Z, μ⁻, μ⁺: the muons' mother is the Z through its status-62 copy; the Z's mother the u
    assert data.partons.pid[0].tolist() == [2, -2, 23, 13, -13]
    assert data.partons.mother1[1].tolist() == [-1, -1, 0, 2, 2]
    assert data.partons.mother2[2].tolist() == [-1] * 5
    assert ak.num(data.jets).tolist() == [1, 0, 2] and data.weight.tolist() == [1.5, 0.5, 1.0]
    np.testing.assert_allclose(data.jets.e[0][0], _cartesian(55.0, 0.1, 1.0, 6.0)[3], rtol=1e-6)
    assert data.fatjets.msd[0].tolist() == [165.0] and data.fatjets.tau21[0][0] == pytest.approx(0.4)
    assert data.met.pt.tolist() == pytest.approx([12.0, 30.0, 5.0]) and data.muons.charge[0].tolist() == [-1, 1]
    assert read.result.warnings == []


def test_pruned_nanoaod_genpart_warns_and_branches_take_our_names(tmp_path: Path, workspace: Workspace) -> None:
    """GenPart without final hadrons says it is pruned; branches=['muons'] reads Muon and the weight only."""
    columns = _nano_columns()
    columns["GenPart"] = columns["GenPart"][columns["GenPart"].pdgId != 211]
    path = _write(tmp_path / "pruned.root", "Events", columns)
    assert any("pruned" in warning for warning in _read(workspace, path).result.warnings)
    only = _read(workspace, path, branches=["muons"])
    assert (only.result.fields, only.result.kind) == (["muons", "weight"], "table")


def _delphes_columns(with_particles: bool = True) -> dict[str, Any]:
    particle = _records(
        [[(2, -21, -1, -1, 0.0, 0.0, 300.0, 300.0), (-2, -21, -1, -1, 0.0, 0.0, -200.0, 200.0),
          (23, -22, 0, 1, 3.0, 4.0, 100.0, 140.0), (13, 1, 2, -1, 30.0, 40.0, 10.0, 52.0),
          (-13, 1, 2, -1, -27.0, -36.0, 90.0, 100.0)]] * 2,
        ["PID", "Status", "M1", "M2", "Px", "Py", "Pz", "E"], [I32, I32, I32, I32, F32, F32, F32, F32])
    particle = ak.with_field(particle, ak.values_astype(-np.sign(particle.PID) * (abs(particle.PID) == 13), I32),
                             "Charge")
    jets = _records([[(50.0, 0.1, 1.0, 5.0, 1)], [(30.0, -1.0, -2.0, 3.0, 0)]], ["PT", "Eta", "Phi", "Mass", "BTag"],
                    [F32, F32, F32, F32, I32])
    muons = _records([[(49.0, 0.2, 0.9, -1)], []], ["PT", "Eta", "Phi", "Charge"], [F32, F32, F32, I32])
    columns = {"Jet": jets, "Muon": muons, "Event": ak.Array([[{"Weight": 2.0}], [{"Weight": 0.25}]]),
               "MissingET": ak.Array([[{"MET": 7.0, "Phi": 0.5}], [{"MET": 9.0, "Phi": -0.5}]])}
    return {"Particle": particle, **columns} if with_particles else columns


def test_delphes_file_becomes_events(tmp_path: Path, workspace: Workspace) -> None:
    """Particle → particles and partons (M1/M2 → mother1/mother2), Jet.PT → jets.pt, Event.Weight → weight."""
    read = _read(workspace, _write(tmp_path / "delphes.root", "Delphes", _delphes_columns(), delphes=True))
    data = ak.from_parquet(read.result.data.path)
    assert (read.result.kind, read.result.file_schema) == ("events", "delphes")
    assert data.particles.pid.tolist() == [[13, -13]] * 2 and data.particles.charge.tolist() == [[-1, 1]] * 2
    assert data.particles.px[0].tolist() == [30.0, -27.0] and data.particles.e[1].tolist() == [52.0, 100.0]
    assert data.partons.mother1[0].tolist() == [-1, -1, 0] and data.partons.mother2[0].tolist() == [-1, -1, 1]
    assert data.weight.tolist() == [2.0, 0.25] and data.met.pt.tolist() == [7.0, 9.0]
    assert data.jets.btag.tolist() == [[1], [0]] and data.muons.mass[0][0] == pytest.approx(0.10566, rel=1e-4)
    np.testing.assert_allclose(data.jets.e[0][0], _cartesian(50.0, 0.1, 1.0, 5.0)[3], rtol=1e-6)


def test_delphes_energy_flow_objects_become_particles(tmp_path: Path, workspace: Workspace) -> None:
    """particles_from='eflow': tracks (mass from the PDG id) + photons (22) + neutral hadrons (130); links skipped."""
    columns = _delphes_columns(with_particles=False)
    columns["Jet"] = ak.with_field(columns["Jet"], ak.values_astype(ak.zeros_like(columns["Jet"].PT), I32),
                                   "fUniqueID")
    columns["EFlowTrack"] = _records([[(211, 1, 10.0, 0.5, 0.2)], [(-11, 1, 4.0, -1.0, 3.0)]],
                                     ["PID", "Charge", "PT", "Eta", "Phi"], [I32, I32, F32, F32, F32])
    for name in ("EFlowPhoton", "EFlowNeutralHadron", "Tower"):
        columns[name] = _records([[(6.0, 1.2, -0.4, 10.9)], []], ["ET", "Eta", "Phi", "E"], [F32] * 4)
    read = _read(workspace, _write(tmp_path / "eflow.root", "Delphes", columns, delphes=True))
    data = ak.from_parquet(read.result.data.path)
    assert read.result.kind == "events" and read.result.skipped_branches == ["Jet.fUniqueID"]
    assert data.particles.pid.tolist() == [[211, 22, 130], [-11]] and data.particles.charge.tolist() == [[1, 0, 0], [1]]
    np.testing.assert_allclose(data.particles.e[0][0], _cartesian(10.0, 0.5, 0.2, 0.13957039)[3], rtol=1e-6)
    np.testing.assert_allclose(data.particles.pz[0][1], 6.0 * np.sinh(1.2), rtol=1e-6)
    assert data.towers.pt.tolist() == [[6.0], []] and "jets" in read.result.fields
    with pytest.raises(ToolInputError, match=r"particles_from='eflow' applies to Delphes files"):
        _read(workspace, _write(tmp_path / "nano.root", "Events", _nano_columns()), particles_from="eflow")


def _import(sample: CallOutcome, workspace: Workspace) -> str:
    return call_tool("read_table", {"path": str(sample.result.events.path)}, workspace=workspace).result.data.id


@pytest.mark.parametrize("schema", ["native", "nanoaod", "delphes"])
def test_round_trip_per_schema(schema: str, drell_yan_sample: CallOutcome, workspace: Workspace) -> None:
    """Generated events → write_root(schema) → read_root(auto) gives the same particles, partons and weights."""
    original = ak.from_parquet(drell_yan_sample.result.events.path)
    written = call_tool("write_root", {"source": _import(drell_yan_sample, workspace), "schema": schema},
                        workspace=workspace)
    read = _read(workspace, written.result.root.path)
    back = ak.from_parquet(read.result.data.path)
    assert read.result.file_schema == ("flat" if schema == "native" else schema) and read.result.kind == "events"
    assert ak.array_equal(back.weight, original.weight)
    assert {"mother1", "mother2"} <= set(ak.fields(original.partons))
    for name in ("particles", "partons"):
        exact = ["pid", "charge"] if name == "particles" else ["pid", "status", "mother1"]
        exact += ["mother2"] if name == "partons" and schema != "nanoaod" else []  # NanoAOD keeps one mother
        for field in exact:
            assert ak.array_equal(back[name][field], original[name][field]), f"{name}.{field}"
        # (pT, η, φ, m) cannot hold a momentum along the beam (pT = 0): NanoAOD's incoming partons lose pz
        moving = np.hypot(ak.flatten(original[name].px), ak.flatten(original[name].py)) > 0
        for field in ("px", "py", "pz", "e"):
            np.testing.assert_allclose(ak.to_numpy(ak.flatten(back[name][field]))[moving],
                                       ak.to_numpy(ak.flatten(original[name][field]))[moving], rtol=1e-5, atol=1e-3)


def test_write_root_layouts_name_branches_like_the_experiments(
    drell_yan_sample: CallOutcome, workspace: Workspace
) -> None:
    """schema='nanoaod' writes Events with nGenPart/GenPart_pdgId/genWeight; 'delphes' Delphes with Particle.PID."""
    source = _import(drell_yan_sample, workspace)
    nano = call_tool("write_root", {"source": source, "schema": "nanoaod"}, workspace=workspace).result
    delphes = call_tool("write_root", {"source": source, "schema": "delphes"}, workspace=workspace).result
    assert nano.tree == "Events" and {"nGenPart", "GenPart_pdgId", "GenPart_genPartIdxMother",
                                      "GenPart_statusFlags", "genWeight"} <= set(nano.branches)
    assert delphes.tree == "Delphes" and {"Particle_size", "Particle.PID", "Particle.M1",
                                          "Event.Weight"} <= set(delphes.branches)
    with pytest.raises(ToolInputError, match=r"format='rntuple' does not go with schema='nanoaod'.*format='ttree'"):
        call_tool("write_root", {"source": source, "schema": "nanoaod", "format": "rntuple"}, workspace=workspace)


def _flat_columns(scale: float) -> dict[str, Any]:
    jet = ak.zip({"pt": ak.values_astype(ak.Array([[120.5, 45.25], [80.0], []]) * scale, F32),
                  "eta": ak.values_astype(ak.Array([[0.5, -1.2], [2.1], []]), F32)})
    return {"jet": jet, "met_et": np.array([35.5, 12.0, 80.0], F32) * F32(scale),
            "mjj": np.array([900.0, 0.0, 0.0]) * scale, "njet_tight": np.array([2, 1, 0], I32)}


def test_mev_file_reads_equal_to_gev_file(tmp_path: Path, workspace: Workspace) -> None:
    """A flat tree in MeV ('[MeV]' in its title, or a 'units' note) equals the GeV one; without a note it is guessed."""
    gev = _read(workspace, _write(tmp_path / "gev.root", "nominal", _flat_columns(1.0), title="ATLAS [GeV]"))
    mev = _read(workspace, _write(tmp_path / "mev.root", "nominal", _flat_columns(1000.0), title="ATLAS [MeV]"))
    assert (gev.result.units_source, gev.result.file_units, mev.result.units_source, mev.result.file_units) == (
        "file", "GeV", "file", "MeV")
    expected, got = ak.from_parquet(gev.result.data.path), ak.from_parquet(mev.result.data.path)
    for path in (("jet", "pt"), ("met_et",), ("mjj",)):
        np.testing.assert_allclose(ak.to_numpy(ak.flatten(got[path], axis=None)),
                                   ak.to_numpy(ak.flatten(expected[path], axis=None)), rtol=1e-6)
    assert got.jet.pt.type.content.content == expected.jet.pt.type.content.content  # float32 stays float32
    assert got.jet.eta.tolist() == expected.jet.eta.tolist() and got.njet_tight.tolist() == [2, 1, 0]
    guessed = _read(workspace, _write(tmp_path / "plain.root", "nominal", _flat_columns(1000.0)))
    assert (guessed.result.units_source, guessed.result.file_units) == ("guess", "MeV")
    assert "MeV" in guessed.result.warnings[0] and "jet.pt" in guessed.result.warnings[0]
    np.testing.assert_allclose(ak.from_parquet(guessed.result.data.path).mjj, expected.mjj, rtol=1e-6)
    with uproot.update(tmp_path / "plain.root") as file:
        file["units"] = "MeV"
    noted = _read(workspace, tmp_path / "plain.root", tree="nominal")
    assert (noted.result.units_source, noted.result.file_units, noted.result.warnings) == ("file", "MeV", [])
    overridden = _read(workspace, tmp_path / "plain.root", tree="nominal", units="GeV")
    assert overridden.result.units_source == "given"
    assert "overrides the file's TObjString" in overridden.result.warnings[0]
    assert ak.from_parquet(overridden.result.data.path).mjj.tolist() == [900000.0, 0.0, 0.0]


def test_read_table_units_convert_csv_momenta(tmp_path: Path, workspace: Workspace) -> None:
    """read_table(units='MeV') divides momentum columns by 1000; names stating GeV and TeV-scale masses are kept."""
    path = tmp_path / "leptons.csv"
    pd.DataFrame({"lep_pt": [25000.0, 40000.0], "lep_eta": [0.5, -1.0], "mll_gev": [91.0, 88.0]}).to_csv(path,
                                                                                                   index=False)
    read = call_tool("read_table", {"path": str(path), "units": "MeV"}, workspace=workspace)
    table = ak.from_parquet(read.result.data.path)
    assert table.lep_pt.tolist() == [25.0, 40.0] and table.lep_eta.tolist() == [0.5, -1.0]
    assert table.mll_gev.tolist() == [91.0, 88.0] and read.result.units_source == "given"
    # a dijet mass spectrum in GeV lies above 1000: without transverse momenta nothing is guessed or rescaled
    masses = tmp_path / "dijets.csv"
    pd.DataFrame({"mjj": [1850.0, 2400.0, 3100.0]}).to_csv(masses, index=False)
    kept = call_tool("read_table", {"path": str(masses)}, workspace=workspace).result
    assert ak.from_parquet(kept.data.path).mjj.tolist() == [1850.0, 2400.0, 3100.0]
    assert (kept.units_source, kept.file_units) == ("guess", "GeV") and "no transverse momenta" in kept.warnings[0]


def test_events_without_weight_get_unit_weights(tmp_path: Path, workspace: Workspace) -> None:
    """A Parquet of particles without a weight column reads as events with weight 1.0 (cluster_jets needs none)."""
    path = tmp_path / "noweight.parquet"
    ak.to_parquet(ak.Array({"particles": [[{"px": 1.0, "py": 0.0, "pz": 2.0, "e": 3.0, "pid": 211, "charge": 1}]] * 2}),
                  path)
    read = call_tool("read_table", {"path": str(path)}, workspace=workspace)
    assert read.result.kind == "events" and ak.from_parquet(read.result.data.path).weight.tolist() == [1.0, 1.0]


def test_bad_schema_input_names_the_branch(tmp_path: Path, workspace: Workspace) -> None:
    """Missing Jet_eta, Particle.PT counts ≠ Particle.PID, delphes on NanoAOD, no Particle, an unknown unit."""
    broken = _write(tmp_path / "noeta.root", "Events", _nano_columns(drop="eta"))
    with pytest.raises(ToolInputError, match=r"branch 'Jet_eta' is missing.*schema='flat'"):
        _read(workspace, broken)
    mixed = {"Particle.PID": ak.Array([[11, -11], [22]]), "Particle.PT": ak.Array([[5.0], [1.0, 2.0]])}
    with pytest.raises(ToolInputError, match=r"branch 'Particle.PT' has a different number of entries"):
        _read(workspace, _write(tmp_path / "mixed.root", "Delphes", mixed, delphes=True))
    nano = _write(tmp_path / "nano.root", "Events", _nano_columns())
    with pytest.raises(ToolInputError, match=r"schema='delphes' does not fit .*Particle.PID.*NanoAOD tree.*"
                                             r"schema='nanoaod'"):
        _read(workspace, nano, schema="delphes")
    with pytest.raises(ToolInputError, match=r"units='MeV' does not apply: nanoaod files store GeV"):
        _read(workspace, nano, units="MeV")
    flat = _write(tmp_path / "flat.root", "nominal", _flat_columns(1.0))
    with pytest.raises(ToolInputError, match=r"schema='nanoaod' does not fit .*flat tree with branches njet, jet_pt"):
        _read(workspace, flat, schema="nanoaod")
    reco_only = _write(tmp_path / "reco.root", "Delphes", _delphes_columns(with_particles=False), delphes=True)
    with pytest.raises(ToolInputError, match=r"particles_from='truth' needs the Delphes branch 'Particle'"):
        _read(workspace, reco_only, particles_from="truth")
    assert _read(workspace, reco_only).result.kind == "table"
    odd = _write(tmp_path / "kev.root", "nominal", _flat_columns(1.0))
    with uproot.update(odd) as file:
        file["units"] = "keV"
    with pytest.raises(ToolInputError, match=r"units='auto' cannot follow the file: its TObjString 'units' says "
                                             r"'keV'.*units='MeV' or units='GeV'"):
        _read(workspace, odd)


def test_schema_files_feed_the_event_tools(
    tmp_path: Path, workspace: Workspace, drell_yan_sample: CallOutcome
) -> None:
    """A NanoAOD file's jets histogram, its muons summarise; a Delphes file's particles cluster into jets."""
    nano = _read(workspace, _write(tmp_path / "nano.root", "Events", _nano_columns())).result.data.id
    hist = call_tool("histogram", {"source": nano, "field": "jets.pt", "bins": 10, "range_min": 0,
                                   "range_max": 100}, workspace=workspace).result
    assert hist.entries == 3
    summary = call_tool("summarize", {"source": nano, "fields": ["muons.pt"]}, workspace=workspace).result
    assert summary.stats["muons_pt_gev"].mean == pytest.approx(np.mean([39.0, 37.0, 25.0]), rel=1e-6)
    written = call_tool("write_root", {"source": _import(drell_yan_sample, workspace), "schema": "delphes"},
                        workspace=workspace)
    events = _read(workspace, written.result.root.path).result.data.id
    jets = call_tool("cluster_jets", {"events": events, "radius": 0.4, "pt_min_gev": 20.0}, workspace=workspace)
    assert jets.result.n_events == drell_yan_sample.result.n_events
