"""Generator files: a Les Houches file written by the test showers through Pythia, events go out as HepMC3 and
come back identical, and the pure LHE/HepMC readers round-trip."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import awkward as ak
import numpy as np
import pyhepmc
import pytest

from physagent.tools import CallOutcome, ToolInputError, Workspace, call_tool
from physagent.tools.data._generator_files import read_hepmc, read_lhe

M_Z, M_MU = 91.188, 0.10566


def _zmumu_event(rapidity: float, cos_theta: float, phi: float, weight: float) -> str:
    """u ū → Z → μ⁻μ⁺ with exact four-momentum conservation: Z at rapidity y, muons at angle θ in its rest frame."""
    e1, e2 = M_Z / 2 * math.exp(rapidity), M_Z / 2 * math.exp(-rapidity)
    beta, gamma = math.tanh(rapidity), math.cosh(rapidity)
    p_star = math.sqrt((M_Z / 2) ** 2 - M_MU**2)
    sin_theta = math.sqrt(1 - cos_theta**2)
    px, py, pz = p_star * sin_theta * math.cos(phi), p_star * sin_theta * math.sin(phi), p_star * cos_theta
    muons = [(13, px, py, gamma * (pz + beta * M_Z / 2), gamma * (M_Z / 2 + beta * pz)),
             (-13, -px, -py, gamma * (-pz + beta * M_Z / 2), gamma * (M_Z / 2 - beta * pz))]
    lines = [f"5 1 {weight:.10e} 9.1188e+01 7.546771e-03 1.3e-01",
             f"2 -1 0 0 501 0 0 0 {e1:.10e} {e1:.10e} 0 0 9",
             f"-2 -1 0 0 0 501 0 0 {-e2:.10e} {e2:.10e} 0 0 9",
             f"23 2 1 2 0 0 0 0 {e1 - e2:.10e} {e1 + e2:.10e} {M_Z:.10e} 0 9"]
    lines += [f"{pid} 1 3 3 0 0 {x:.10e} {y:.10e} {z:.10e} {e:.10e} {M_MU} 0 9" for pid, x, y, z, e in muons]
    return "<event>\n" + "\n".join(lines) + "\n</event>"


def write_zmumu_lhe(path: Path, rapidities: list[float], strategy: int = 3, weights: list[float] | None = None,
                    sigma_pb: float = 1500.0) -> Path:
    """A Les Houches file of u ū → Z → μμ events at 13 TeV, one per rapidity."""
    weights = weights or [1.0] * len(rapidities)
    angles = [(0.9 * math.cos(1.2 + 1.3 * i), 0.7 * i) for i in range(len(rapidities))]
    events = [_zmumu_event(y, cos_theta, phi, w)
              for y, (cos_theta, phi), w in zip(rapidities, angles, weights, strict=True)]
    init = f"<init>\n2212 2212 6.5e+03 6.5e+03 0 0 0 0 {strategy} 1\n{sigma_pb:.10e} 1.0e+01 1.0 1\n</init>"
    path.write_text('<LesHouchesEvents version="3.0">\n<header>\n</header>\n' + init + "\n"
                    + "\n".join(events) + "\n</LesHouchesEvents>\n")
    return path


def _shower(workspace: Workspace, path: Path, **arguments: object) -> CallOutcome:
    return call_tool("generate_events", {"process": "lhe", "lhe_path": str(path), "mpi": False, **arguments},
                     workspace=workspace)


def _events(outcome: CallOutcome) -> ak.Array:
    return ak.from_parquet(outcome.result.events.path)


@pytest.mark.usefixtures("grant_pytest_temp")
def test_lhe_made_by_the_test_showers_through_pythia(tmp_path: Path, workspace: Workspace) -> None:
    """3 events in, 3 showered: σ = XSECUP, the Z and both muons in the partons with mother1 → Z, 2 final muons."""
    lhe = write_zmumu_lhe(tmp_path / "zmumu.lhe", [0.0, 0.5, -1.0])
    outcome = _shower(workspace, lhe, n_events=3)
    assert outcome.result.n_events == 3
    assert outcome.result.sigma_pb == pytest.approx(1500.0, rel=1e-9)
    assert outcome.result.warnings == []
    partons = _events(outcome).partons
    assert ak.to_list(partons.pid) == [[2, -2, 23, 13, -13]] * 3
    muons = abs(partons.pid) == 13
    assert ak.all(partons.pid[partons.mother1[muons]] == 23)
    assert ak.all(partons.mother1[partons.pid == 23] == 0) and ak.all(partons.mother2[partons.pid == 23] == 1)
    particles = _events(outcome).particles
    assert ak.to_list(ak.sum(abs(particles.pid) == 13, axis=1)) == [2, 2, 2]
    card = outcome.result.events.metadata
    assert card["sqrt_s_tev"] == pytest.approx(13.0)
    assert card["lhe"]["n_in_file"] == 3 and card["lhe"]["strategy"] == 3
    assert card["source_path"] == str(lhe.resolve())


@pytest.mark.usefixtures("grant_pytest_temp")
def test_more_events_than_the_file_holds_are_capped_with_a_warning(tmp_path: Path, workspace: Workspace) -> None:
    """n_events = 10 on a 3-event file showers the 3 and says so."""
    outcome = _shower(workspace, write_zmumu_lhe(tmp_path / "z.lhe", [0.0, 0.5, -1.0]), n_events=10)
    assert outcome.result.n_events == 3
    assert outcome.result.warnings == ["n_events=10 is more than the 3 events in z.lhe: all 3 were showered."]


@pytest.mark.usefixtures("grant_pytest_temp")
def test_lhe_shards_skip_events(tmp_path: Path, workspace: Workspace) -> None:
    """Two shards over 4 events: every event of the file is showered once, in file order."""
    rapidities = [0.1, 0.4, -0.7, 1.2]
    outcome = _shower(workspace, write_zmumu_lhe(tmp_path / "z4.lhe", rapidities), n_events=4, shards=2)
    assert outcome.result.shards == 2
    z = _events(outcome).partons[_events(outcome).partons.pid == 23]
    expected = [M_Z * math.sinh(y) for y in rapidities]
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(z.pz)), expected, rtol=1e-5)


@pytest.mark.usefixtures("grant_pytest_temp")
def test_lhe_strategy_minus_4_gives_cross_section_weights(tmp_path: Path, workspace: Workspace) -> None:
    """Weights 250 and −100 pb under IDWTUP = −4: σ = Σw/N = 75 pb, weights kept in pb."""
    lhe = write_zmumu_lhe(tmp_path / "w4.lhe", [0.0, 0.3], strategy=-4, weights=[250.0, -100.0])
    outcome = _shower(workspace, lhe, n_events=2)
    assert outcome.result.sigma_pb == pytest.approx(75.0, rel=1e-9)
    assert ak.to_list(_events(outcome).weight) == pytest.approx([250.0, -100.0])
    assert outcome.result.events.metadata["weight_unit"] == "pb"


@pytest.mark.usefixtures("grant_pytest_temp")
@pytest.mark.parametrize(("arguments", "message"), [
    ({"settings": ["Beams:LHEF = /etc/hosts"]}, "settings='Beams:LHEF = /etc/hosts' names a file Pythia would read"),
    ({"pt_hat_min_gev": 20.0}, "pt_hat_min_gev=20.0 does not apply with process='lhe'"),
    ({"decay": "hadronic"}, "decay='hadronic' does not apply with process='lhe'"),
    ({"process": "ttbar"}, "lhe_path='LHE' is only read with process='lhe', not process='ttbar'"),
    ({"lhe_path": None}, "lhe_path=None is required with process='lhe'"),
    ({"lhe_path": "NOT_LHE"}, "is not a readable Les Houches event file"),
])
def test_bad_lhe_input_names_the_parameter(tmp_path: Path, no_workspace_writes: Workspace, arguments: dict,
                                           message: str) -> None:
    """Settings naming LHEF stay refused, cuts and decays do not go with a file, lhe_path needs process='lhe'."""
    lhe = write_zmumu_lhe(tmp_path / "z.lhe", [0.0])
    (tmp_path / "not.lhe").write_text("this is not XML\n")
    arguments = {"process": "lhe", "lhe_path": str(lhe), "mpi": False} | arguments
    if arguments["lhe_path"] == "NOT_LHE":
        arguments["lhe_path"] = str(tmp_path / "not.lhe")
    message = message.replace("'LHE'", repr(str(lhe)))
    with pytest.raises(ToolInputError) as info:
        call_tool("generate_events", arguments, workspace=no_workspace_writes)
    assert str(info.value).startswith("generate_events: ")
    assert message in str(info.value)


@pytest.mark.usefixtures("grant_pytest_temp")
def test_an_edited_lhe_file_is_showered_again_not_replayed(tmp_path: Path, workspace: Workspace) -> None:
    """The same call on an unchanged file replays the cache; after editing the file it runs on the new events."""
    lhe = write_zmumu_lhe(tmp_path / "edit.lhe", [0.2, 0.4])
    first = _shower(workspace, lhe, n_events=2)
    assert _shower(workspace, lhe, n_events=2).cached
    write_zmumu_lhe(lhe, [-0.5, 0.9])
    edited = _shower(workspace, lhe, n_events=2)
    assert not edited.cached
    assert edited.result.events.id != first.result.events.id
    z = _events(edited).partons[_events(edited).partons.pid == 23]
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(z.pz)), [M_Z * math.sinh(-0.5), M_Z * math.sinh(0.9)],
                               rtol=1e-5)


def _write_hepmc(workspace: Workspace, sample: CallOutcome, use_cache: bool = True) -> CallOutcome:
    return call_tool("write_hepmc", {"events": sample.result.events.id, "max_events": 20}, workspace=workspace,
                     use_cache=use_cache)


def test_hepmc3_read_back_gives_the_same_particles(workspace: Workspace) -> None:
    """pyhepmc reads back beams, partons (|status|, parents = mother links) and final particles, the weights and
    σ; two writes of the same events are byte-identical."""
    sample = call_tool("generate_events", {"process": "drell_yan_mumu", "n_events": 30, "mpi": False, "seed": 3},
                       workspace=workspace)
    written = _write_hepmc(workspace, sample)
    assert written.result.n_events == 20 and written.result.warnings == []
    events = _events(sample)[:20]
    with pyhepmc.open(str(written.result.hepmc.path)) as file:
        read = list(file)
    assert len(read) == 20
    for record, event in zip(events, read, strict=True):
        _check_event(record, event, sample.result.sigma_pb)
    again = _write_hepmc(workspace, sample, use_cache=False)
    assert not again.cached
    assert again.result.hepmc.path.read_bytes() == written.result.hepmc.path.read_bytes()


def _check_event(record: ak.Record, event: pyhepmc.GenEvent, sigma_pb: float) -> None:
    partons, particles = record.partons, record.particles
    n_partons = len(partons)
    got = event.numpy.particles
    assert got.pid.tolist() == [2212, 2212, *partons.pid.tolist(), *particles.pid.tolist()]
    assert got.status.tolist() == [4, 4, *np.abs(partons.status).tolist(), *[1] * len(particles)]
    for name in ("px", "py", "pz", "e"):
        expected = np.concatenate([ak.to_numpy(partons[name]), ak.to_numpy(particles[name])])
        np.testing.assert_allclose(getattr(got, name)[2:], expected, rtol=1e-7)
    for index, parton in enumerate(event.particles[2:2 + n_partons]):
        mothers = {int(partons.mother1[index]), int(partons.mother2[index])} - {-1}
        parents = {p.id - 3 for p in parton.parents if p.status != 4}
        assert parents == mothers, (index, parents, mothers)
    assert all(not p.parents for p in event.particles[2 + n_partons:])
    assert list(event.weights) == [float(record.weight)]
    assert event.cross_section.xsec() == pytest.approx(sigma_pb, rel=1e-8)  # HepMC3 writes σ to 9 digits
    assert event.momentum_unit == pyhepmc.Units.GEV


@pytest.mark.usefixtures("grant_pytest_temp")
def test_read_lhe_gives_the_file_records(tmp_path: Path) -> None:
    """read_lhe: partons = every LHE entry with 0-based mothers, particles = the two muons, σ, √s and weights;
    the gzipped file reads the same."""
    lhe = write_zmumu_lhe(tmp_path / "r.lhe", [0.0, 0.8], strategy=-4, weights=[3.0, -1.0], sigma_pb=2.0)
    events, metadata = read_lhe(lhe)
    assert ak.to_list(events.partons.pid) == [[2, -2, 23, 13, -13]] * 2
    assert ak.to_list(events.partons.mother1) == [[-1, -1, 0, 2, 2]] * 2
    assert ak.to_list(events.partons.mother2) == [[-1, -1, 1, -1, -1]] * 2
    assert ak.to_list(events.particles.charge) == [[-1, 1]] * 2
    assert ak.to_list(events.weight) == [3.0, -1.0]
    np.testing.assert_allclose(ak.to_numpy(events.partons.pz[:, 2]), [0.0, M_Z * math.sinh(0.8)], atol=1e-4)
    assert metadata["sigma_pb"] == 2.0 and metadata["sqrt_s_tev"] == pytest.approx(13.0)
    assert metadata["n_events"] == 2 and metadata["weight_unit"] == "pb"
    gzipped = tmp_path / "r.lhe.gz"
    gzipped.write_bytes(gzip.compress(lhe.read_bytes(), mtime=0))
    assert read_lhe(gzipped)[0].to_list() == events.to_list()


def test_read_hepmc_round_trips_write_hepmc(drell_yan_sample: CallOutcome, shared_workspace: Workspace) -> None:
    """read_hepmc of write_hepmc's file gives the sample's particles, partons with mothers, weights and σ."""
    written = call_tool("write_hepmc", {"events": drell_yan_sample.result.events.id, "max_events": 25},
                        workspace=shared_workspace)
    events, metadata = read_hepmc(written.result.hepmc.path)
    original = _events(drell_yan_sample)[:25]
    for collection, fields in (("particles", ("pid", "charge")), ("partons", ("pid", "mother1", "mother2"))):
        for name in fields:
            assert ak.to_list(events[collection][name]) == ak.to_list(original[collection][name])
        for name in ("px", "py", "pz", "e"):
            np.testing.assert_allclose(ak.to_numpy(ak.flatten(events[collection][name])),
                                       ak.to_numpy(ak.flatten(original[collection][name])), rtol=1e-7)
    assert ak.to_list(events.partons.status) == ak.to_list(abs(original.partons.status))
    assert ak.to_list(events.weight) == ak.to_list(original.weight)
    assert metadata["sigma_pb"] == pytest.approx(drell_yan_sample.result.sigma_pb, rel=1e-8)
    assert metadata["sqrt_s_tev"] == pytest.approx(13.6) and metadata["n_events"] == 25


@pytest.mark.usefixtures("grant_pytest_temp")
def test_a_gzipped_lhe_file_showers_like_the_plain_one(tmp_path: Path, workspace: Workspace) -> None:
    """MadGraph writes .lhe.gz: the same events come out of the gzipped file, with the same σ."""
    plain = write_zmumu_lhe(tmp_path / "z.lhe", [0.3, -0.4])
    gzipped = tmp_path / "z.lhe.gz"
    gzipped.write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    from_plain, from_gzip = _shower(workspace, plain, n_events=2), _shower(workspace, gzipped, n_events=2)
    assert from_gzip.result.sigma_pb == from_plain.result.sigma_pb == pytest.approx(1500.0)
    assert _events(from_gzip).to_list() == _events(from_plain).to_list()


@pytest.mark.usefixtures("grant_pytest_temp")
def test_a_path_with_blanks_is_showered_and_named_in_the_card(tmp_path: Path, workspace: Workspace) -> None:
    """Pythia cuts a setting at the first blank: a file under 'my runs/' is still read, and the card names it."""
    folder = tmp_path / "my runs"
    folder.mkdir()
    lhe = write_zmumu_lhe(folder / "z mumu.lhe", [0.2])
    outcome = _shower(workspace, lhe, n_events=1)
    assert outcome.result.n_events == 1
    card = outcome.result.events.metadata
    assert card["source_path"] == str(lhe.resolve())
    assert card["pythia_settings"][-1] == f"Beams:LHEF = {lhe.resolve()}"
    # Pythia's p̂T/m̂ windows do not cut Les Houches events: the card states none
    assert [card[f] for f in ("pt_hat_min_gev", "pt_hat_max_gev", "m_hat_min_gev", "m_hat_max_gev")] == [None] * 4


@pytest.mark.usefixtures("grant_pytest_temp")
def test_an_exported_session_reshowers_the_lhe_file_and_rewrites_the_hepmc_identically(
    tmp_path: Path, workspace: Workspace
) -> None:
    """export_session's script, run without the data-folder grant, reads the LHE file from the folder it grants
    itself and reproduces the showered events and the HepMC3 file byte for byte."""
    import os
    import subprocess
    import sys

    session = "s-00000000cc"
    lhe = write_zmumu_lhe(tmp_path / "replay.lhe", [0.1, -0.3, 0.5])
    events = call_tool("generate_events", {"process": "lhe", "lhe_path": str(lhe), "mpi": False, "n_events": 3},
                       workspace=workspace, session=session).result.events
    hepmc = call_tool("write_hepmc", {"events": events.id}, workspace=workspace, session=session).result.hepmc
    script = call_tool("export_session", {}, workspace=workspace, session=session).result.script
    fresh = tmp_path / "elsewhere"
    fresh.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "PHYSAGENT_DATA_DIRS"}
    run = subprocess.run([sys.executable, str(script.path), str(fresh / "again")], capture_output=True, text=True,
                         timeout=600, cwd=fresh, env=env, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "all 2 artifact(s) reproduced with identical sha256" in run.stdout
    reproduced = Workspace(fresh / "again").list_artifacts()
    assert sorted(a.sha256 for a in reproduced) == sorted([events.sha256, hepmc.sha256])


@pytest.mark.usefixtures("grant_pytest_temp")
def test_read_table_takes_lhe_and_hepmc3_files_as_events(tmp_path: Path, workspace: Workspace,
                                                         drell_yan_sample: CallOutcome,
                                                         shared_workspace: Workspace) -> None:
    """read_table of a .lhe.gz and of a .hepmc3 file: events artifacts the event tools take, with the file's σ
    in the metadata; a file that is neither says which format it failed to read; MeV is refused."""
    lhe = write_zmumu_lhe(tmp_path / "z.lhe", [0.0, 0.5, -0.5])
    gzipped = tmp_path / "z.lhe.gz"
    gzipped.write_bytes(gzip.compress(lhe.read_bytes(), mtime=0))
    read = call_tool("read_table", {"path": str(gzipped)}, workspace=workspace).result
    assert (read.kind, read.n_rows, read.file_schema) == ("events", 3, "lhe")
    assert read.data.metadata["sigma_pb"] == pytest.approx(read_lhe(lhe)[1]["sigma_pb"])
    muons = call_tool("summarize", {"source": read.data.id}, workspace=workspace).result
    assert muons.n_events == 3
    hepmc = call_tool("write_hepmc", {"events": drell_yan_sample.result.events.id, "max_events": 5},
                      workspace=shared_workspace).result.hepmc.path
    copied = tmp_path / "dy.hepmc3"
    copied.write_bytes(Path(hepmc).read_bytes())
    from_hepmc = call_tool("read_table", {"path": str(copied)}, workspace=workspace).result
    assert (from_hepmc.kind, from_hepmc.n_rows, from_hepmc.file_schema) == ("events", 5, "hepmc3")
    (tmp_path / "bad.lhe").write_text("not an event file\n")
    with pytest.raises(ToolInputError, match="not a readable LHE file"):
        call_tool("read_table", {"path": str(tmp_path / "bad.lhe")}, workspace=workspace)
    with pytest.raises(ToolInputError, match="units"):
        call_tool("read_table", {"path": str(lhe), "units": "MeV"}, workspace=workspace)
