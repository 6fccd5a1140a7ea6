"""The shared PDG rules (tools/_pdg.py) checked against Pythia's particle table and by hand; the shared kinematics
(tools/_kinematics.py) against hand values and vector."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from physagent.tools import CallOutcome, _pdg
from physagent.tools._io import read_parquet
from physagent.tools._kinematics import cartesian, delta_r, four_vectors, polar


@pytest.fixture(scope="module")
def particle_data() -> object:
    import pythia8mc

    return pythia8mc.Pythia("", False).particleData


def test_invisible_set_agrees_with_pythia(particle_data: object) -> None:
    """Every id we call invisible is invisible to Pythia; everyday detector particles are visible to both."""
    seen_by_pythia = [pid for pid in sorted(_pdg.INVISIBLE_PIDS) if particle_data.isVisible(pid)]
    assert seen_by_pythia == []
    for pid in (11, 13, 22, 211, 2112, 130):
        assert particle_data.isVisible(pid), pid
        assert not _pdg.is_invisible(np.array([pid, -pid])).any()


def test_is_invisible_works_on_jagged_and_signed_ids() -> None:
    """Antiparticles count by |pid|, and a jagged array keeps its event structure."""
    pids = ak.Array([[12, -14, 211], [], [-1000022, 13]])
    assert ak.to_list(_pdg.is_invisible(pids)) == [[True, True, False], [], [True, False]]


def test_charges_come_from_the_pdg_tables_and_unknown_ids_are_neutral() -> None:
    """e⁻ −1, e⁺ +1, π⁺ +1, p̄ −1, γ 0, χ̃₁± ±1; the generator-internal 9000001 gets 0."""
    assert _pdg.charges(np.array([11, -11, 211, -2212, 22, 1000024, -1000024, 9000001])).tolist() == [
        -1, 1, 1, -1, 0, 1, -1, 0]
    jagged = _pdg.charges(ak.Array([[13, -13], [], [2212]]))
    assert ak.to_list(jagged) == [[-1, 1], [], [1]]


def test_pdg_label_names_known_unknown_and_susy_ids() -> None:
    """PDG names from `particle`, the SUSY fallback for ids it lacks, and a plain 'PDG n' for the rest."""
    assert _pdg.pdg_label(13) == "mu-"
    assert _pdg.pdg_label(13, latex=True) == r"\mu^{-}"
    assert _pdg.pdg_label(1000022) == "~chi_10"
    assert _pdg.pdg_label(-1000024) == "~chi_1-"
    assert _pdg.pdg_label(9000001) == "PDG 9000001"


def test_hard_mothers_walk_through_copies_to_the_nearest_hard_entry() -> None:
    """A Pythia-like record (entry 0 = system): a copy between the top and its W is walked through."""
    # 0 system, 1 g(-21), 2 g(-21), 3 t(-22), 4 t copy(-62), 5 W(-22), 6 b(23), 7 beam(-12, not hard)
    status = ak.Array([[-11, -21, -21, -22, -62, -22, 23, -12]])
    mother1 = ak.Array([[0, 7, 7, 1, 3, 4, 4, 0]])
    assert ak.to_list(_pdg.hard_mothers(status, mother1)) == [[-1, -1, 0, 2, 2]]
    lhe_like = _pdg.hard_mothers(ak.Array([[-21, -21, 22, 23]]), ak.Array([[0, 0, 1, 3]]), one_based=True)
    assert ak.to_list(lhe_like) == [[-1, -1, 0, 2]]


def test_cartesian_matches_hand_values_and_gives_no_nan_at_zero_pt() -> None:
    """pT = 3 GeV at η = 0, φ = 0, m = 4 GeV → (3, 0, 0, 5); pT = 0 with η = ∞ gives zeros, not NaN."""
    pt, eta = ak.Array([[3.0, 0.0]]), ak.Array([[0.0, np.inf]])
    px, py, pz, e = cartesian(pt, eta, ak.Array([[0.0, 1.0]]), ak.Array([[4.0, -0.0]]))
    assert ak.to_list(px) == [[3.0, 0.0]]
    assert ak.to_list(pz) == [[0.0, 0.0]]
    assert ak.to_list(e) == [[5.0, 0.0]]
    assert not np.isnan(ak.to_numpy(ak.flatten(py))).any()


def test_polar_inverts_cartesian_and_handles_the_beam_axis() -> None:
    """(pT, η, φ, m) → (px, py, pz, E) → back, for numpy and jagged arrays; along the beam η = ±∞ with the sign
    of pz, and a massless particle's E² − p² < 0 rounding gives m = 0, not NaN or a negative mass."""
    rng = np.random.default_rng(3)
    pt, eta, phi, mass = rng.uniform(1, 500, 50), rng.uniform(-4, 4, 50), rng.uniform(-3, 3, 50), rng.uniform(0, 90, 50)
    back = polar(*cartesian(pt, eta, phi, mass))
    for name, value in (("pt", pt), ("eta", eta), ("phi", phi), ("mass", mass)):
        np.testing.assert_allclose(back[name], value, rtol=1e-9, atol=1e-6)
    beam = polar(ak.Array([[0.0, 0.0]]), ak.Array([[0.0, 0.0]]), ak.Array([[5.0, -5.0]]), ak.Array([[5.0, 5.0]]))
    assert ak.to_list(beam["eta"]) == [[np.inf, -np.inf]] and ak.to_list(beam["mass"]) == [[0.0, 0.0]]
    spacelike = polar(np.array([3.0]), np.array([4.0]), np.array([0.0]), np.array([5.0 - 1e-12]))
    assert spacelike["mass"].tolist() == [0.0]
    assert delta_r(0.0, np.pi - 0.1, 0.0, -np.pi + 0.1) == pytest.approx(0.2)  # Δφ wraps around ±π


def test_stored_collections_become_vector_four_momenta(drell_yan_sample: CallOutcome) -> None:
    """A user who loads our Parquet gets .pt, .deltaR and sums from four_vectors: particles as stored, jets with
    their mass (vector refuses mass and e together; .E gives the energy back)."""
    events = read_parquet(drell_yan_sample.result.events.path)
    particles = four_vectors(events.particles[:20])
    muons = particles[abs(particles.pid) == 13]
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(muons.pt)),
                               ak.to_numpy(ak.flatten(np.hypot(muons.px, muons.py))), rtol=1e-6)
    pairs = muons[ak.num(muons) == 2]
    dimuon = pairs[:, 0] + pairs[:, 1]
    assert ak.all((dimuon.mass > 55) & (dimuon.mass < 125))  # the generated 60 < m̂ < 120 GeV, with FSR
    jets = four_vectors(ak.Array([[{"pt": 50.0, "eta": 0.5, "phi": 0.0, "mass": 10.0, "e": 59.0, "tau21": 0.4}]]))
    assert "e" not in ak.fields(jets) and jets[0, 0].tau21 == 0.4
    assert pytest.approx(np.sqrt(10.0**2 + (50.0 * np.cosh(0.5)) ** 2)) == jets[0, 0].E
    assert jets[0, 0].deltaR(jets[0, 0]) == 0.0


def test_to_gev_converts_mev_exactly_and_leaves_gev_alone() -> None:
    """1234.5 MeV → 1.2345 GeV (factor exactly 1e-3), 2 TeV → 2000 GeV, GeV unchanged (same object)."""
    values = np.array([1234.5])
    assert _pdg.to_gev(values, "MeV").tolist() == [1234.5 * 1e-3]
    assert _pdg.to_gev(np.array([2.0]), "TeV").tolist() == [2000.0]
    assert _pdg.to_gev(values, "GeV") is values


def test_axis_labels_name_particles_by_their_pdg_names() -> None:
    """histogram's axis label for abs_pid: everyday names, then the PDG tables (LaTeX), SUSY names we add, and the
    bare id for generator-internal codes."""
    from physagent.tools.data._fields import field_label

    assert field_label("particles.pt", 0, [13]) == "leading muon $p_{T}$ [GeV]"
    assert field_label("particles.pt", 0, [321]) == "leading $K^{+}$ $p_{T}$ [GeV]"
    assert field_label("particles.pt", None, [1000022, 13]) == r"particle ($\tilde{\chi}^{0}_{1}$, muon) $p_{T}$ [GeV]"
    assert field_label("particles.pt", None, [9000001]) == "particle (|pid| = 9000001) $p_{T}$ [GeV]"
    assert _pdg.pdg_label(-13) == "mu+" and _pdg.pdg_label(-1000024) == "~chi_1-"
