"""detector_response: the fast detector's physics on synthetic particles, and the tool on ttbar events."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest

from physagent.tools import CallOutcome, ToolInputError, Workspace, call_tool
from physagent.tools.simulate._detector import (
    CARDS,
    DetectorCard,
    Objects,
    Particles,
    apply_overrides,
    calo_relative_resolution,
    respond_flat,
    track_relative_resolution,
)

N = 20_000
PION_MASS, KLONG_MASS, MUON_MASS = 0.13957, 0.497611, 0.105658
CARD_NAMES = sorted(CARDS)


def single_particles(
    pid: int, *, eta: np.ndarray, phi: np.ndarray, e: float | None = None, pt: float | None = None,
    charge: int = 0, mass: float = 0.0,
) -> Particles:
    """One particle per event, at the given (η, φ), with either energy ``e`` or transverse momentum ``pt``."""
    n = len(eta)
    if pt is None:
        pt = np.sqrt(e**2 - mass**2) / np.cosh(eta)
    pt = np.broadcast_to(np.asarray(pt, dtype=float), (n,))
    pz = pt * np.sinh(eta)
    energy = np.sqrt(pt**2 + pz**2 + mass**2)
    return Particles(
        np.arange(n), pt * np.cos(phi), pt * np.sin(phi), pz, energy,
        np.full(n, pid, dtype=np.int64), np.full(n, charge, dtype=np.int8),
    )


def join(*parts: Particles) -> Particles:
    """Several particle lists over the same events, as one."""
    fields = Particles.__dataclass_fields__
    return Particles(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields))


def central(n: int = N, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, n), rng.uniform(-np.pi, np.pi, n)


def eta_of(particles: ak.Array) -> ak.Array:
    return np.arcsinh(particles.pz / np.hypot(particles.px, particles.py))


def run(particles: Particles, card: DetectorCard, seed: int = 0) -> Objects:
    n_events = int(particles.event.max()) + 1
    return respond_flat(particles, n_events, card, np.random.default_rng(seed))[0]


@pytest.mark.parametrize("name", CARD_NAMES)
def test_ecal_energy_resolution_matches_the_card_formula(name: str) -> None:
    """50 GeV photons: the spread of the ECAL energy is S/√E ⊕ N/E ⊕ C within 5%."""
    card = CARDS[name]
    eta, phi = central()
    objects = run(single_particles(22, eta=eta, phi=phi, e=50.0), card)
    assert set(objects.pid) == {22}
    assert len(objects.e) == N
    expected = calo_relative_resolution(np.array(50.0), card.ecal_stochastic, card.ecal_noise_gev,
                                        card.ecal_constant)
    assert np.mean(objects.e) == pytest.approx(50.0, rel=0.002)
    assert np.std(objects.e / 50.0) == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("name", CARD_NAMES)
def test_hcal_energy_resolution_matches_the_card_formula(name: str) -> None:
    """20 GeV K_L: the spread of the HCAL energy is S/√E ⊕ N/E ⊕ C within 5%."""
    card = CARDS[name]
    eta, phi = central()
    objects = run(single_particles(130, eta=eta, phi=phi, e=20.0, mass=KLONG_MASS), card)
    assert set(objects.pid) == {130}
    expected = calo_relative_resolution(np.array(20.0), card.hcal_stochastic, card.hcal_noise_gev,
                                        card.hcal_constant)
    assert expected > 0.1
    assert np.std(objects.e / 20.0) == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("name", CARD_NAMES)
def test_track_pt_resolution_matches_a_quadrature_b_pt(name: str) -> None:
    """Charged pions at pT = 100 GeV: the spread of the track pT is a ⊕ b·pT within 5%."""
    card = CARDS[name]
    eta, phi = central()
    objects = run(single_particles(211, eta=eta, phi=phi, pt=100.0, charge=1, mass=PION_MASS), card)
    track = objects.pid == 211
    pt = np.hypot(objects.px[track], objects.py[track])
    terms = (card.track_resolution_a, card.track_resolution_b_per_gev)
    expected = track_relative_resolution(np.array(100.0), *terms)
    assert np.std(pt / 100.0) == pytest.approx(expected, rel=0.05)
    mass = np.sqrt(np.maximum(objects.e[track] ** 2 - pt**2 - objects.pz[track] ** 2, 0))
    assert np.median(mass) == pytest.approx(PION_MASS, rel=0.05)


@pytest.mark.parametrize("name", CARD_NAMES)
def test_tracking_efficiency_matches_the_card_and_lost_pions_reach_the_hcal(name: str) -> None:
    """10 GeV pions: the found fraction is the card's efficiency within 4σ; the rest are HCAL cells."""
    card = CARDS[name]
    eta, phi = central()
    objects = run(single_particles(211, eta=eta, phi=phi, pt=10.0, charge=1, mass=PION_MASS), card)
    efficiency = np.count_nonzero(objects.pid == 211) / N
    sigma = np.sqrt(card.tracking_efficiency * (1 - card.tracking_efficiency) / N)
    assert abs(efficiency - card.tracking_efficiency) < 4 * sigma + 1e-9
    n_hcal = np.count_nonzero(objects.pid == 130)
    assert n_hcal == pytest.approx(N - np.count_nonzero(objects.pid == 211), abs=5)


def test_muons_are_tracked_with_the_muon_efficiency_and_leave_no_calorimeter_cells() -> None:
    """50 GeV muons: found with muon_efficiency; lost muons leave nothing (minimum-ionising)."""
    card = apply_overrides(CARDS["generic_lhc"], {"muon_efficiency": 0.8})
    eta, phi = central()
    objects = run(single_particles(13, eta=eta, phi=phi, pt=50.0, charge=-1, mass=MUON_MASS), card)
    assert set(objects.pid) == {13}
    assert len(objects.e) / N == pytest.approx(0.8, abs=4 * np.sqrt(0.8 * 0.2 / N))


def test_neutrinos_are_dropped() -> None:
    """Events of a neutrino of each flavour plus a photon come out as the photon alone."""
    eta, phi = central(n=300)
    pids = (12, -14, 16, 22)
    parts = [single_particles(pid, eta=eta, phi=phi + 0.5 * k, e=30.0) for k, pid in enumerate(pids)]
    objects = run(join(*parts), CARDS["generic_lhc"])
    assert list(np.bincount(objects.event)) == [1] * 300
    assert set(objects.pid) == {22}


def test_two_photons_in_one_ecal_cell_merge_into_one_object_with_the_summed_energy() -> None:
    """30 + 20 GeV photons in one 0.025 × 0.025 cell: one object, mean 50 GeV, σ of a 50 GeV cell."""
    card = CARDS["generic_lhc"]
    n = 5_000
    first = single_particles(22, eta=np.full(n, 0.010), phi=np.full(n, 0.500), e=30.0)
    second = single_particles(22, eta=np.full(n, 0.012), phi=np.full(n, 0.501), e=20.0)
    objects = run(join(first, second), card)
    assert list(np.bincount(objects.event)) == [1] * n
    expected = calo_relative_resolution(np.array(50.0), card.ecal_stochastic, card.ecal_noise_gev,
                                        card.ecal_constant)
    assert np.mean(objects.e) == pytest.approx(50.0, rel=0.003)
    assert np.std(objects.e / 50.0) == pytest.approx(expected, rel=0.06)
    assert np.hypot(objects.px, objects.py) * np.cosh(0.0125) == pytest.approx(objects.e, rel=1e-6)


def test_photons_in_neighbouring_cells_stay_separate() -> None:
    """Photons 0.1 apart in η land in different ECAL cells: two objects per event."""
    n = 1_000
    first = single_particles(22, eta=np.full(n, 0.01), phi=np.full(n, 0.5), e=30.0)
    second = single_particles(22, eta=np.full(n, 0.11), phi=np.full(n, 0.5), e=20.0)
    assert list(np.bincount(run(join(first, second), CARDS["generic_lhc"]).event)) == [2] * n


def test_particles_outside_the_acceptance_are_dropped_or_miss_the_tracker() -> None:
    """A photon at η = 5.5 is lost; a pion at η = 3.5 (calorimeter only) becomes an HCAL cell, not a track."""
    card = CARDS["generic_lhc"]
    n = 500
    photons = single_particles(22, eta=np.full(n, 5.5), phi=np.zeros(n), e=100.0)
    assert len(run(photons, card).e) == 0
    pions = single_particles(211, eta=np.full(n, 3.5), phi=np.zeros(n), pt=20.0, charge=1, mass=PION_MASS)
    objects = run(pions, card)
    assert set(objects.pid) == {130}
    assert np.all(np.abs(np.arctanh(objects.pz / np.sqrt(objects.e**2))) < card.calo_eta_max)


@pytest.mark.parametrize(
    ("overrides", "names"),
    [({"bogus": 1.0}, ["'bogus'", "tracking_efficiency", "hcal_cell_dphi"]),
     ({"tracking_efficiency": 1.5}, ["'tracking_efficiency'", "1.5", "less than or equal to 1"]),
     ({"ecal_stochastic": -0.1}, ["'ecal_stochastic'", "-0.1", "greater than or equal to 0"])],
)
def test_card_overrides_are_validated_and_name_the_key(overrides: dict[str, float], names: list[str]) -> None:
    """An unknown key lists the valid keys; an out-of-range value names its key and the limit."""
    with pytest.raises(ValueError, match="detector card key") as caught:
        apply_overrides(CARDS["generic_lhc"], overrides)
    for name in names:
        assert name in str(caught.value)


# --- the tool on real events ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def reco_sample(ttbar_sample: CallOutcome, shared_workspace: Workspace) -> CallOutcome:
    """The 600 ttbar events through the generic_lhc detector, seed 1."""
    return call_tool("detector_response", {"events": ttbar_sample.result.events.id, "seed": 1},
                     workspace=shared_workspace)


def test_output_has_the_events_schema_and_no_neutrinos(
    ttbar_sample: CallOutcome, reco_sample: CallOutcome
) -> None:
    """Same fields and types as the input, same number of events, no neutrinos, cells neutral."""
    truth = ak.from_parquet(ttbar_sample.result.events.path)
    reco = ak.from_parquet(reco_sample.result.events.path)
    assert str(ak.type(reco).content) == str(ak.type(truth).content)
    schemas = [pq.read_schema(o.result.events.path) for o in (reco_sample, ttbar_sample)]
    assert schemas[0].equals(schemas[1])
    assert len(reco) == len(truth) == reco_sample.result.n_events == 600
    pid = np.abs(np.asarray(ak.flatten(reco.particles.pid)))
    assert not np.isin(pid, [12, 14, 16]).any()
    cells = np.isin(pid, [22, 130]) & (np.asarray(ak.flatten(reco.particles.charge)) == 0)
    assert np.count_nonzero(cells) >= reco_sample.result.n_ecal_cells + reco_sample.result.n_hcal_cells
    assert ak.all(reco.partons.px == truth.partons.px)
    assert ak.all(reco.pt_hat_gev == truth.pt_hat_gev)


def test_counts_add_up_and_the_card_is_recorded(reco_sample: CallOutcome) -> None:
    """Objects = tracks + ECAL + HCAL cells; card.json records the card values and the seed."""
    result = reco_sample.result
    assert result.n_output_objects == result.n_tracks + result.n_ecal_cells + result.n_hcal_cells
    assert 0 < result.n_output_objects < result.n_input_particles
    assert result.card == CARDS["generic_lhc"]
    detector = result.events.metadata["detector"]
    assert detector["values"]["ecal_stochastic"] == 0.10
    assert detector["seed"] == 1
    assert "sigma_pb" in result.events.metadata  # the generator card is carried over


def test_visible_energy_per_event_is_close_to_the_truth(
    ttbar_sample: CallOutcome, reco_sample: CallOutcome
) -> None:
    """Σ E of the objects is within 20% of Σ E of visible truth particles (|η| < 4.9) in every event."""
    truth = ak.from_parquet(ttbar_sample.result.events.path).particles
    reco = ak.from_parquet(reco_sample.result.events.path).particles
    pt = np.hypot(truth.px, truth.py)
    eta = np.arcsinh(truth.pz / pt)
    apid = np.abs(truth.pid)
    visible = (apid != 12) & (apid != 14) & (apid != 16) & (pt > 0) & (np.abs(eta) < 4.9)
    ratio = np.asarray(ak.sum(reco.e, axis=1)) / np.asarray(ak.sum(truth.e[visible], axis=1))
    assert np.all(np.abs(ratio - 1) < 0.2)
    assert np.median(ratio) == pytest.approx(1.0, abs=0.03)


def test_same_seed_gives_the_same_file_and_another_seed_a_different_one(
    ttbar_sample: CallOutcome, reco_sample: CallOutcome, shared_workspace: Workspace
) -> None:
    """Rerunning with seed 1 (cache off) reproduces the sha256; seed 2 changes it."""
    events = ttbar_sample.result.events.id
    again = call_tool("detector_response", {"events": events, "seed": 1}, workspace=shared_workspace,
                      use_cache=False)
    other = call_tool("detector_response", {"events": events, "seed": 2}, workspace=shared_workspace)
    assert again.result.events.sha256 == reco_sample.result.events.sha256
    assert other.result.events.sha256 != reco_sample.result.events.sha256


def test_ild_card_keeps_objects_within_its_acceptance(
    ttbar_sample: CallOutcome, reco_sample: CallOutcome, shared_workspace: Workspace
) -> None:
    """The ild_like card keeps |η| < 3 and, with finer cells, makes more ECAL cells than generic_lhc."""
    outcome = call_tool("detector_response", {"events": ttbar_sample.result.events.id, "card": "ild_like"},
                        workspace=shared_workspace)
    assert outcome.result.card.track_resolution_b_per_gev == 2e-5
    ild, lhc = (ak.from_parquet(o.result.events.path).particles for o in (outcome, reco_sample))
    assert ak.max(np.abs(eta_of(ild))) < 3.0
    n_ild, n_lhc = (ak.sum((p.pid == 22) & (np.abs(eta_of(p)) < 3.0)) for p in (ild, lhc))
    assert n_ild > n_lhc


@pytest.mark.parametrize(
    ("overrides", "key"), [({"bogus": 1}, "'bogus'"), ({"tracking_efficiency": 1.5}, "'tracking_efficiency'")]
)
def test_bad_overrides_fail_naming_the_key_and_write_nothing(
    overrides: dict[str, float], key: str, no_workspace_writes: Workspace
) -> None:
    """The tool rejects the overrides before touching the workspace; the message names the key."""
    with pytest.raises(ToolInputError, match="detector_response: overrides=") as caught:
        call_tool("detector_response", {"events": "ev-0123456789", "overrides": overrides},
                  workspace=no_workspace_writes)
    assert key in str(caught.value)
