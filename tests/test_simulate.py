"""Physics sanity of generate_events and cluster_jets on small real samples, and their bad inputs."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import vector

from physagent.tools import CallOutcome, ToolInputError, Workspace, call_tool

vector.register_awkward()


def _read(artifact_path: object) -> ak.Array:
    return ak.from_parquet(artifact_path)


def _peak(values: np.ndarray, low: float, high: float, width: float) -> float:
    counts, edges = np.histogram(values, bins=np.arange(low, high + width, width))
    return float(edges[np.argmax(counts)] + width / 2)


@pytest.fixture(scope="module")
def ttbar_large_r_jets(ttbar_sample: CallOutcome, shared_workspace: Workspace) -> ak.Array:
    outcome = call_tool(
        "cluster_jets",
        {"events": ttbar_sample.result.events.id, "radius": 1.0, "pt_min_gev": 300.0, "eta_max": 2.0},
        workspace=shared_workspace,
    )
    return _read(outcome.result.jets.path)


def test_boosted_top_jet_mass_peaks_near_the_top_mass(ttbar_large_r_jets: ak.Array) -> None:
    """The leading R=1.0 jet mass in boosted hadronic ttbar peaks between 150 and 200 GeV."""
    leading = ak.drop_none(ak.firsts(ttbar_large_r_jets.jets))
    assert len(leading) > 400
    assert 150.0 <= _peak(np.asarray(leading.mass), 0, 300, 10) <= 200.0
    assert 150.0 <= _peak(np.asarray(leading.msd), 0, 300, 10) <= 200.0  # soft drop keeps the top


def test_top_jets_are_three_prong(ttbar_large_r_jets: ak.Array) -> None:
    """Jets in the top mass window have a lower median τ32 than the light jets outside it."""
    jets = ak.flatten(ttbar_large_r_jets.jets)
    tops = (jets.mass > 150) & (jets.mass < 200)
    assert np.median(np.asarray(jets.tau32[tops])) < np.median(np.asarray(jets.tau32[jets.mass < 60]))


def test_jets_respect_cuts_and_are_pt_ordered(ttbar_large_r_jets: ak.Array) -> None:
    """Jets pass pT and |η| cuts, come sorted by pT, and ratios and soft-drop mass are bounded."""
    jets = ttbar_large_r_jets.jets
    flat = ak.flatten(jets)
    assert ak.all(flat.pt > 300.0) and ak.all(abs(flat.eta) < 2.0)
    assert ak.all(jets.pt[:, :-1] >= jets.pt[:, 1:])
    assert ak.all((flat.tau21 >= 0) & (flat.tau21 <= 1.0001)) and ak.all(flat.msd <= flat.mass * 1.0001)
    assert ak.all(ak.num(flat.constituents) <= 100) and ak.all(flat.n_constituents >= ak.num(flat.constituents))


def test_constituents_add_up_to_the_jet(shared_workspace: Workspace, ttbar_sample: CallOutcome) -> None:
    """With all constituents kept, their four-momenta sum to the jet's pT and mass."""
    outcome = call_tool(
        "cluster_jets",
        {"events": ttbar_sample.result.events.id, "radius": 0.8, "pt_min_gev": 200.0, "n_constituents": 0},
        workspace=shared_workspace,
    )
    jets = ak.flatten(_read(outcome.result.jets.path).jets)[:200]
    c = jets.constituents
    p4 = ak.zip({"pt": c.pt, "eta": c.eta, "phi": c.phi, "e": c.e}, with_name="Momentum4D")
    total = ak.zip({k: ak.sum(getattr(p4, k), axis=1) for k in ("px", "py", "pz", "e")}, with_name="Momentum4D")
    np.testing.assert_allclose(np.asarray(total.pt), np.asarray(jets.pt), rtol=1e-3)
    np.testing.assert_allclose(np.asarray(total.mass), np.asarray(jets.mass), rtol=2e-2, atol=0.5)
    assert not ak.any(abs(ak.flatten(c.pid)) == 12)  # neutrinos are never clustered


def test_drell_yan_dimuon_mass_peaks_at_the_z(drell_yan_sample: CallOutcome) -> None:
    """The opposite-sign dimuon mass peaks at 91 ± 2 GeV."""
    particles = _read(drell_yan_sample.result.events.path).particles
    muons = particles[abs(particles.pid) == 13]
    mu = ak.zip(
        {"px": muons.px, "py": muons.py, "pz": muons.pz, "e": muons.e, "q": muons.charge}, with_name="Momentum4D"
    )
    pairs = ak.combinations(mu, 2)
    pairs = pairs[pairs["0"].q != pairs["1"].q]
    mass = np.asarray(ak.flatten((pairs["0"] + pairs["1"]).mass))
    assert len(mass) > 800
    assert abs(_peak(mass, 60, 120, 2.0) - 91.0) <= 2.0


def test_cross_section_is_positive_and_stable_under_the_same_seed(
    drell_yan_sample: CallOutcome, workspace: Workspace
) -> None:
    """Same seed ⇒ identical file hash and cross-section; σ(Z→μμ, 60–120 GeV) is near 2 nb."""
    again = call_tool(
        "generate_events", {"process": "drell_yan_mumu", "n_events": 1000, "mpi": False, "seed": 3}, workspace=workspace
    )
    assert again.result.events.sha256 == drell_yan_sample.result.events.sha256
    assert again.result.sigma_pb == drell_yan_sample.result.sigma_pb
    assert 1000.0 < drell_yan_sample.result.sigma_pb < 3000.0
    assert drell_yan_sample.result.events.metadata["sigma_pb"] == drell_yan_sample.result.sigma_pb


def test_different_seeds_give_different_events(workspace: Workspace) -> None:
    """Different seeds ⇒ different output hashes."""
    base = {"process": "drell_yan_mumu", "n_events": 100, "mpi": False}
    one = call_tool("generate_events", base | {"seed": 1}, workspace=workspace).result.events
    two = call_tool("generate_events", base | {"seed": 2}, workspace=workspace).result.events
    assert one.sha256 != two.sha256


def test_output_does_not_depend_on_the_number_of_worker_processes(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shards run in one process or in a pool give byte-identical files; shards are distinct."""
    args = {"process": "drell_yan_mumu", "n_events": 300, "mpi": False, "seed": 4, "shards": 3}
    monkeypatch.setenv("PHYSAGENT_WORKERS", "1")
    serial = call_tool("generate_events", args, workspace=workspace).result
    monkeypatch.setenv("PHYSAGENT_WORKERS", "2")
    parallel = call_tool("generate_events", args, workspace=workspace, use_cache=False).result
    assert serial.events.sha256 == parallel.events.sha256 and serial.n_events == 300
    seeds = [s["pythia_seed"] for s in serial.events.metadata["shards"]]
    assert len(set(seeds)) == 3
    events = _read(serial.events.path)
    assert len(events) == 300 and np.all(np.asarray(events.weight) == 1.0)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("process", "extra", "signature_pid"),
    [
        ("qcd_dijet", {"pt_hat_min_gev": 100.0}, None),
        ("w_jets", {"decay": "leptonic"}, 24),
        ("z_jets", {}, 23),
        ("higgs_gammagamma", {}, 25),
        ("wprime_to_xy", {"m_wprime_gev": 2000.0}, 9000001),
        ("custom", {"settings": ["HardQCD:gg2gg = on", "PhaseSpace:pTHatMin = 50"]}, 21),
    ],
)
def test_every_named_process_generates_its_hard_process(
    process: str, extra: dict, signature_pid: int | None, workspace: Workspace
) -> None:
    """Each process initialises, generates, and its defining particle is in the hard process."""
    outcome = call_tool(
        "generate_events", {"process": process, "n_events": 30, "mpi": False, "seed": 1} | extra, workspace=workspace
    )
    events = _read(outcome.result.events.path)
    assert len(events) == 30 and outcome.result.sigma_pb > 0
    if signature_pid is not None:
        assert ak.all(ak.any(abs(events.partons.pid) == signature_pid, axis=1))


def test_the_card_states_the_windows_pythia_generated_in(
    ttbar_sample: CallOutcome, drell_yan_sample: CallOutcome, workspace: Workspace
) -> None:
    """Card fields in GeV: the p̂T cut asked for, a process's default m̂ window, and raw settings overriding both
    (the last line wins; a maximum of −1 is Pythia's 'no cut')."""
    fields = ("pt_hat_min_gev", "pt_hat_max_gev", "m_hat_min_gev", "m_hat_max_gev")
    assert [ttbar_sample.result.events.metadata[f] for f in fields] == [400.0, None, None, None]
    assert [drell_yan_sample.result.events.metadata[f] for f in fields] == [0.0, None, 60.0, 120.0]
    raw = ["HardQCD:gg2gg = on", "PhaseSpace:pTHatMin = 30", "PhaseSpace:pTHatMin=50", "PhaseSpace:pTHatMax = -1"]
    custom = call_tool("generate_events", {"process": "custom", "settings": raw, "pt_hat_max_gev": 200.0,
                                           "n_events": 5, "mpi": False, "hadronisation": False}, workspace=workspace)
    assert [custom.result.events.metadata[f] for f in fields] == [50.0, None, None, None]
    assert ak.min(_read(custom.result.events.path).pt_hat_gev) >= 50.0


@pytest.mark.slow
def test_z_plus_jet_default_decay_is_invisible_and_higgs_decays_to_photons(workspace: Workspace) -> None:
    """z_jets defaults to Z→νν (quark/gluon studies); H→γγ gives a diphoton mass at 125 GeV."""
    z = _read(
        call_tool(
            "generate_events", {"process": "z_jets", "n_events": 30, "mpi": False}, workspace=workspace
        ).result.events.path
    )
    pid = abs(z.partons.pid)
    neutrinos = (pid == 12) | (pid == 14) | (pid == 16)
    assert ak.all(ak.sum(neutrinos, axis=1) >= 2)
    h = _read(
        call_tool(
            "generate_events", {"process": "higgs_gammagamma", "n_events": 30, "mpi": False}, workspace=workspace
        ).result.events.path
    )
    photons = h.partons[(h.partons.pid == 22) & (abs(h.partons.status) == 23)]
    pair = ak.zip({k: ak.sum(photons[k], axis=1) for k in ("px", "py", "pz", "e")}, with_name="Momentum4D")
    np.testing.assert_allclose(np.asarray(pair.mass), 125.0, atol=1.0)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"process": "ttbar", "n_events": -5}, "n_events=-5 must be greater than or equal to 1"),
        ({"process": "ttbar", "n_events": 10**9}, "n_events=1000000000 must be less than or equal to 10000000"),
        ({"process": "tt_bar"}, "process='tt_bar' must be 'ttbar', 'qcd_dijet'"),
        (
            {"process": "ttbar", "pt_hat_min_gev": 500, "pt_hat_max_gev": 400},
            "pt_hat_max_gev=400.0 must be larger than pt_hat_min_gev=500",
        ),
        (
            {"process": "drell_yan_mumu", "m_hat_min_gev": 130},
            "m_hat_max_gev=120.0 must be larger than m_hat_min_gev=130",
        ),
        ({"process": "ttbar", "decay": "invisible"}, "decay='invisible' is not available for process 'ttbar'"),
        ({"process": "ttbar", "settings": ["Foo:bar = 3"]}, "settings='Foo:bar = 3' was rejected by Pythia"),
        ({"process": "ttbar", "settings": ["PhaseSpace:pTHatMin = abc"]}, "was rejected by Pythia"),
        ({"process": "custom", "settings": []}, "do not define a process Pythia can initialise"),
        ({"process": "wprime_to_xy", "m_wprime_gev": 500}, "must exceed m_x_gev + m_y_gev"),
        ({"process": "ttbar", "sqrt_s_tev": 0}, "sqrt_s_tev=0 must be greater than 0"),
    ],
)
def test_bad_generation_input_fails_cleanly(arguments: dict, message: str, no_workspace_writes: Workspace) -> None:
    """Each bad input names the parameter and what is allowed, and writes nothing."""
    with pytest.raises(ToolInputError) as info:
        call_tool("generate_events", arguments, workspace=no_workspace_writes)
    assert message in str(info.value)
    assert str(info.value).startswith("generate_events: ")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"events": "ev-0123456789"}, "events='ev-0123456789' is not an artifact in the workspace"),
        ({"events": "../../etc/passwd"}, "events='../../etc/passwd' must match pattern"),
        ({"events": "ev-0123456789", "radius": -0.4}, "radius=-0.4 must be greater than 0"),
        (
            {"events": "ev-0123456789", "algorithm": "siscone"},
            "algorithm='siscone' must be 'antikt', 'kt' or 'cambridge'",
        ),
    ],
)
def test_bad_clustering_input_fails_cleanly(arguments: dict, message: str, no_workspace_writes: Workspace) -> None:
    """A wrong artifact id or setting for cluster_jets is refused before anything runs."""
    with pytest.raises(ToolInputError, match=r"^cluster_jets: ") as info:
        call_tool("cluster_jets", arguments, workspace=no_workspace_writes)
    assert message in str(info.value)


def test_clustering_refuses_an_artifact_of_the_wrong_kind(
    ttbar_sample: CallOutcome, shared_workspace: Workspace
) -> None:
    """Passing a jets artifact where events are expected says which kind is needed."""
    jets = call_tool("cluster_jets", {"events": ttbar_sample.result.events.id}, workspace=shared_workspace).result.jets
    with pytest.raises(ToolInputError, match="is a 'jets' artifact; this parameter takes events"):
        call_tool("cluster_jets", {"events": jets.id}, workspace=shared_workspace)


def test_more_shards_than_events_is_refused_before_anything_runs(no_workspace_writes: Workspace) -> None:
    """shards=1000 for 400 events names both numbers and the fix instead of crashing in Pythia."""
    with pytest.raises(ToolInputError, match=r"shards=1000 is more than n_events=400: each shard needs"):
        call_tool("generate_events", {"process": "ttbar", "n_events": 400, "shards": 1000, "mpi": False},
                  workspace=no_workspace_writes)


def test_concurrent_in_process_generation_from_threads_completes(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server runs tool calls in threads: several in-process generate_events calls at once all finish
    (they used to hang in Pythia construction and fd-1 captures) and each keeps its own events."""
    import threading

    monkeypatch.setenv("PHYSAGENT_WORKERS", "1")
    outcomes: dict[int, CallOutcome] = {}

    def generate(i: int) -> None:
        arguments = {"process": "drell_yan_mumu", "n_events": 20, "mpi": False, "seed": i + 1}
        outcomes[i] = call_tool("generate_events", arguments, workspace=Workspace(tmp_path / f"w{i}"))

    threads = [threading.Thread(target=generate, args=(i,), daemon=True) for i in range(4)]  # daemon: a hang fails
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert sorted(outcomes) == [0, 1, 2, 3], "in-process generation from threads hung or failed"
    events = [_read(outcomes[i].artifacts[0].path) for i in range(4)]
    assert [len(e) for e in events] == [20] * 4
    assert len({float(ak.sum(e.m_hat_gev)) for e in events}) == 4  # distinct seeds, distinct samples


def test_a_neutralino_beside_a_hadron_is_neither_clustered_nor_seen_by_the_detector() -> None:
    """One rule for what is invisible: a 90 GeV χ̃⁰₁ (and a ν) collinear with a 100 GeV pion leaves a 100 GeV jet
    of one constituent, and the detector turns the same event into the pion's objects alone."""
    from physagent.tools._pdg import INVISIBLE_PIDS, is_invisible
    from physagent.tools.simulate import _detector
    from physagent.tools.simulate._jets import cluster_events

    def along_x(pt: float, mass: float, pid: int, charge: int) -> dict:
        return {"px": pt, "py": 0.0, "pz": 0.0, "e": float(np.hypot(pt, mass)), "pid": pid, "charge": charge}

    particles = ak.Array([[along_x(100.0, 0.14, 211, 1), along_x(90.0, 100.0, 1000022, 0),
                           along_x(5.0, 0.0, 12, 0)]])
    jets = cluster_events(particles, "antikt", 0.8, 20.0, 2.5, 10)
    assert ak.num(jets, axis=1).tolist() == [1]
    jet = jets[0, 0]
    assert jet.pt == pytest.approx(100.0, rel=1e-4) and jet.n_constituents == 1
    assert ak.to_list(jet.constituents.pid) == [211]
    assert ak.to_list(is_invisible(particles.pid)) == [[False, True, True]] and 1000039 in INVISIBLE_PIDS
    seen, counts = _detector.respond(particles, _detector.CARDS["generic_lhc"], np.random.default_rng(1))
    assert counts.n_input_particles == 3 and counts.n_tracks == 1
    assert sum(ak.to_list(ak.flatten(seen.e))) == pytest.approx(100.0, rel=0.2)  # the pion alone, smeared


@pytest.mark.usefixtures("grant_pytest_temp")
def test_events_of_the_users_own_without_weights_cluster_with_weight_one(tmp_path: object, workspace: Workspace
                                                                          ) -> None:
    """A Parquet file of particles without a ``weight`` column (read with read_table) clusters; every event
    gets weight 1."""
    def pion(px: float, pz: float) -> dict:  # along ±x: back-to-back pions are separate jets
        return {"px": px, "py": 0.0, "pz": pz, "e": float(np.hypot(np.hypot(px, pz), 0.14)), "pid": 211,
                "charge": 1}

    path = tmp_path / "mine.parquet"  # type: ignore[operator]
    ak.to_parquet(ak.Array({"particles": [[pion(120.0, 5.0), pion(-60.0, -3.0)], [pion(45.0, 1.0)]]}), path)
    events = call_tool("read_table", {"path": str(path)}, workspace=workspace).result
    assert events.kind == "events"
    jets = call_tool("cluster_jets", {"events": events.data.id, "radius": 0.4, "pt_min_gev": 20.0},
                     workspace=workspace).result
    table = ak.from_parquet(jets.jets.path)
    assert table.weight.tolist() == [1.0, 1.0] and ak.num(table.jets).tolist() == [2, 1]
    assert ak.flatten(table.jets.pt).tolist() == pytest.approx([120.0, 60.0, 45.0], rel=1e-3)


def test_charges_match_pythia_for_every_pid_of_ttbar(ttbar_sample: CallOutcome) -> None:
    """The shared PDG charges equal the charge Pythia stored for every final-state id of a ttbar sample."""
    from physagent.tools import _pdg

    particles = _read(ttbar_sample.result.events.path).particles
    pid = ak.to_numpy(ak.flatten(particles.pid))
    unique, first = np.unique(pid, return_index=True)
    stored = ak.to_numpy(ak.flatten(particles.charge))[first]
    assert len(unique) >= 15  # leptons, neutrinos, photons, π, K, n, p and their antiparticles
    assert _pdg.charges(unique).tolist() == stored.tolist()


def test_partons_carry_mother_indices(ttbar_sample: CallOutcome) -> None:
    """W daughters point at a W, each W at a top, incoming partons at nothing; indices stay inside the event; the
    daughter links are the inverse (a top's b and W, a W's quarks)."""
    partons = _read(ttbar_sample.result.events.path).partons
    assert {"mother1", "mother2"} <= set(partons.fields)
    n = ak.num(partons)
    for name in ("mother1", "mother2"):
        assert ak.all((partons[name] >= -1) & (partons[name] < n))
    mother_pid = partons.pid[ak.where(partons.mother1 >= 0, partons.mother1, 0)]
    w_daughter = (partons.mother1 >= 0) & (abs(mother_pid) == 24)
    assert ak.all(ak.sum(w_daughter, axis=1) == 4)  # two hadronic Ws, two quarks each
    assert ak.all(abs(partons.pid[w_daughter]) <= 5)
    w = abs(partons.pid) == 24
    assert ak.all(abs(partons.pid[partons.mother1[w]]) == 6)
    incoming = abs(partons.status) == 21
    assert ak.all(partons.mother1[incoming] == -1) and ak.all(partons.mother2[incoming] == -1)
    tops = abs(partons.pid) == 6  # tt̄ from the two incoming partons: mother1 0, mother2 1
    assert ak.to_list(ak.flatten(partons.mother1[tops]))[:2] == [0, 0]
    assert ak.to_list(ak.flatten(partons.mother2[tops]))[:2] == [1, 1]
    # the inverse links: a top's daughters are its b and W, a W's its two quarks, final quarks have none
    top_daughters = partons.pid[partons.daughter1[tops]], partons.pid[partons.daughter2[tops]]
    assert ak.all(abs(top_daughters[0]) + abs(top_daughters[1]) == 29)  # {5, 24} in either order
    w_quarks = partons.pid[partons.daughter1[w]], partons.pid[partons.daughter2[w]]
    assert ak.all((abs(w_quarks[0]) <= 5) & (abs(w_quarks[1]) <= 5))
    assert ak.all(partons.daughter1[w_daughter] == -1) and ak.all(partons.daughter2[w_daughter] == -1)
