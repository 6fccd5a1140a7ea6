"""simulate_showers and read_calochallenge: shower physics against the documented formulas, files, errors."""

from __future__ import annotations

import math
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pytest
from scipy.optimize import curve_fit

from physagent.tools import ToolInputError, Workspace, call_tool
from physagent.tools.simulate._calo import read_showers
from physagent.tools.simulate._showers import EcalStack, Medium, median_shower_max_x0, simulate_batch

STACK = EcalStack()
ENERGIES_GEV = (10.0, 20.0, 50.0, 100.0)
LAYER_CENTRES_X0 = (STACK.x0_edges[:-1] + STACK.x0_edges[1:]) / 2


def showers(energy_gev: float, n: int = 100, particle: str = "electron", seed: int = 5, theta_deg: float = 0.0):
    """``n`` showers from the physics core (no files), the ILD-like default stack."""
    return simulate_batch(np.full(n, energy_gev), theta_deg, particle, STACK, 0.17, np.random.default_rng(seed))


def layer_energies(cells_mev: np.ndarray) -> np.ndarray:
    return cells_mev.sum(axis=(2, 3))


def fitted_shower_max_x0(cells_mev: np.ndarray) -> float:
    """T = (α − 1)/β of a Γ fit to the mean calibrated profile dE/dt (energy per X0 at the layer centres)."""
    profile = (layer_energies(cells_mev) / (STACK.sampling_fractions * STACK.x0_per_layer)).mean(axis=0)

    def gamma(t: np.ndarray, norm: float, alpha: float, beta: float) -> np.ndarray:
        return norm * t ** (alpha - 1) * np.exp(-beta * t)

    start = LAYER_CENTRES_X0[np.argmax(profile)]
    (_, alpha, beta), _ = curve_fit(gamma, LAYER_CENTRES_X0, profile, p0=[profile.max() / start**3, 4.0, 3 / start],
                                    maxfev=20_000)
    return float((alpha - 1) / beta)


def calibrated_over_incident(cells_mev: np.ndarray, energy_gev: float) -> np.ndarray:
    return (layer_energies(cells_mev) / STACK.sampling_fractions).sum(axis=1) / (energy_gev * 1000.0)


def test_the_front_layer_medium_matches_hand_computed_effective_quantities() -> None:
    """2.1 mm W + 0.5 mm Si + 0.8 mm gap: X0 = 5.62 mm, R_M = 14.4 mm, E_c = 8.25 MeV, s = ê·f_mip = 2.82 %."""
    medium = Medium.of_layer(2.1, 0.5, 0.8)
    assert medium.x0_mm == pytest.approx(3.4 / (2.1 / 3.504 + 0.5 / 93.7), rel=1e-3)
    assert medium.rm_mm == pytest.approx(14.4, rel=0.01)
    assert medium.ec_mev == pytest.approx(8.25, rel=0.01)
    f_mip = 0.5 * 0.3876 / (0.5 * 0.3876 + 2.1 * 2.2099)  # PDG minimum dE/dx of Si and W, MeV/mm
    assert medium.sampling_fraction == pytest.approx(f_mip / (1 + 0.007 * (74 - 14)), rel=1e-3)
    assert STACK.x0_edges[-1] == pytest.approx(20 * 2.1 / 3.504 + 10 * 4.2 / 3.504 + 30 * 0.5 / 93.7, rel=1e-6)


def test_shower_maximum_grows_by_one_x0_per_e_fold_as_documented() -> None:
    """Electrons of 10–100 GeV: the fitted maximum is within 0.35 X0 of exp⟨ln T⟩ and has slope 1 ± 0.1 in ln E."""
    fitted = np.array([fitted_shower_max_x0(showers(energy).cells_mev) for energy in ENERGIES_GEV])
    documented = median_shower_max_x0(np.array(ENERGIES_GEV), STACK.front)
    assert np.all(np.abs(fitted - documented) < 0.35), (fitted, documented)
    slope = np.polyfit(np.log(ENERGIES_GEV), fitted, 1)[0]
    assert slope == pytest.approx(1.0, abs=0.1)


def test_photons_peak_a_conversion_length_deeper_than_electrons() -> None:
    """At 50 GeV the photon maximum lies 9/7 X0 (the mean conversion depth) deeper, within 0.35 X0."""
    shift = fitted_shower_max_x0(showers(50.0, particle="photon").cells_mev) - fitted_shower_max_x0(
        showers(50.0).cells_mev)
    assert shift == pytest.approx(9 / 7, abs=0.35)


def test_calibrated_response_is_linear_and_raw_visible_fraction_lies_between_the_sections() -> None:
    """Σ E_layer/s_layer is 97–100 % of E at every energy (±1.5 %); the raw Si fraction lies between 1.44 and 2.82 %."""
    responses, raw = [], []
    for energy in ENERGIES_GEV:
        cells = showers(energy).cells_mev
        responses.append(calibrated_over_incident(cells, energy).mean())
        raw.append(cells.sum(axis=(1, 2, 3)).mean() / (energy * 1000.0))
    assert all(0.97 < r < 1.0 for r in responses), responses
    assert max(responses) - min(responses) < 0.015
    rear, front = STACK.sampling_fractions[-1], STACK.sampling_fractions[0]
    assert all(rear < f < front for f in raw), raw
    assert raw == sorted(raw, reverse=True)  # deeper showers see more of the coarser rear section


def test_resolution_follows_a_stochastic_and_a_small_constant_term() -> None:
    """σ/E of the calibrated energy at 10–100 GeV fits a/√E ⊕ b with 0.14 < a < 0.21 √GeV and b < 2.5 %."""
    energies = np.array(ENERGIES_GEV)
    sigma = np.array([calibrated_over_incident(showers(e, n=250, seed=11).cells_mev, e).std() for e in energies])
    (a2, b2), *_ = np.linalg.lstsq(np.stack([1 / energies, np.ones_like(energies)], axis=1), sigma**2, rcond=None)
    assert 0.14 < math.sqrt(a2) < 0.21
    assert b2 < 0.025**2
    assert np.all(np.diff(sigma) < 0)


def test_ninety_percent_of_the_energy_lies_within_one_moliere_radius() -> None:
    """50 GeV electrons: 88–96 % of the deposited energy within R_M of the axis, over 97 % within 2 R_M."""
    batch = showers(50.0, n=50)
    radius = np.hypot(batch.x_mm, batch.y_mm)
    inside = batch.e_mev[radius < STACK.front.rm_mm].sum() / batch.e_mev.sum()
    assert 0.88 < inside < 0.96
    assert batch.e_mev[radius < 2 * STACK.front.rm_mm].sum() / batch.e_mev.sum() > 0.97


def test_tilted_showers_move_along_x_with_tan_theta() -> None:
    """θ = 30°: the energy-weighted mean x of each layer's deposits grows with z at slope tan 30° (±0.05)."""
    batch = showers(50.0, n=50, theta_deg=30.0)
    layers = np.arange(4, 20)
    mean_x = [np.average(batch.x_mm[batch.layer == k], weights=batch.e_mev[batch.layer == k]) for k in layers]
    mean_z = [batch.z_mm[batch.layer == k].mean() for k in layers]
    assert np.polyfit(mean_z, mean_x, 1)[0] == pytest.approx(math.tan(math.radians(30.0)), abs=0.05)
    assert np.all(np.abs(batch.y_mm.mean()) < 1.0)


@pytest.fixture(scope="module")
def photons_50(tmp_path_factory: pytest.TempPathFactory):
    """100 photons of 50 GeV through the tool, in a workspace of their own."""
    workspace = Workspace(tmp_path_factory.mktemp("showers-home"))
    return call_tool("simulate_showers", {"n_showers": 100, "energy_gev": 50.0, "seed": 3}, workspace=workspace)


def test_the_tool_reports_physical_headline_numbers(photons_50) -> None:
    """100 photons of 50 GeV: ≈ 2.3 % sampling fraction, thousands of points, ~650 hits, maximum in layer 13–16."""
    result = photons_50.result
    assert result.n_showers == 100 and result.showers.kind == "showers" and result.plot.kind == "plot"
    assert 0.021 < result.sampling_fraction < 0.026
    assert result.mean_visible_energy_mev == pytest.approx(result.sampling_fraction * 50_000.0, rel=1e-9)
    assert result.mean_points_per_shower > 3000
    assert 400 < result.mean_hits_per_shower < 900
    assert 13.0 < result.mean_shower_max_layer < 16.0
    assert 0.97 < result.response < 1.0 and 0.02 < result.relative_resolution < 0.04
    assert result.plot.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_50_gev_shower_has_thousands_of_points_summing_to_its_cells(photons_50) -> None:
    """Without noise or threshold, each shower's cells hold exactly the energy of its ≥ 2,000 points."""
    stored = read_showers(photons_50.result.showers.path)
    counts = np.asarray(ak.num(stored.points))
    assert counts.min() >= 2000
    point_sums = np.asarray(ak.sum(stored.points.e_mev, axis=1))
    np.testing.assert_allclose(stored.cells_mev.sum(axis=(1, 2, 3), dtype=np.float64), point_sums, rtol=1e-4)
    layers = np.asarray(ak.flatten(stored.points.layer))
    assert layers.min() >= 0 and layers.max() < 30


def test_noise_and_threshold_change_the_cells_not_the_points(workspace: Workspace) -> None:
    """A 0.5-MIP threshold zeroes small cells: every kept cell is above it and the sum drops by under 5 %."""
    arguments = {"n_showers": 10, "energy_gev": 20.0, "particle": "electron", "noise_mev": 0.01,
                 "threshold_mev": 0.075}
    stored = read_showers(call_tool("simulate_showers", arguments, workspace=workspace).result.showers.path)
    kept = stored.cells_mev[stored.cells_mev > 0]
    assert kept.min() > 0.075
    point_sum = float(ak.sum(stored.points.e_mev))
    assert 0.95 * point_sum < stored.cells_mev.sum(dtype=np.float64) < point_sum


def test_the_same_seed_reproduces_identical_files_and_another_seed_does_not(workspace: Workspace) -> None:
    """Two uncached calls with seed 4 give the same hashes; seed 5 gives different ones."""
    arguments = {"n_showers": 8, "energy_min_gev": 10.0, "energy_max_gev": 60.0, "spectrum": "log_uniform", "seed": 4}
    first = call_tool("simulate_showers", arguments, workspace=workspace, use_cache=False).result
    second = call_tool("simulate_showers", arguments, workspace=workspace, use_cache=False).result
    other = call_tool("simulate_showers", arguments | {"seed": 5}, workspace=workspace, use_cache=False).result
    assert first.showers.id != second.showers.id and first.showers.sha256 == second.showers.sha256
    assert other.showers.sha256 != first.showers.sha256
    energies = read_showers(first.showers.path, with_points=False).incident_energy_gev
    assert np.all((energies >= 10.0) & (energies <= 60.0)) and np.ptp(energies) > 0


@pytest.mark.parametrize(
    ("arguments", "param", "text"),
    [
        ({"n_thick_layers": 12, "n_layers": 10}, "n_thick_layers", "exceeds n_layers=10"),
        ({"energy_min_gev": 10.0}, "energy_max_gev", "must be given with energy_min_gev"),
        ({"energy_min_gev": 80.0, "energy_max_gev": 20.0}, "energy_min_gev", "must be below energy_max_gev=20.0"),
    ],
)
def test_inconsistent_settings_are_input_errors_and_write_nothing(
    no_workspace_writes: Workspace, arguments: dict, param: str, text: str
) -> None:
    """A bad layer count or energy range names the parameter and what to do; no artifact is written."""
    with pytest.raises(ToolInputError) as caught:
        call_tool("simulate_showers", {"n_showers": 2} | arguments, workspace=no_workspace_writes)
    assert caught.value.param == param and text in str(caught.value)



def write_calochallenge(path: Path, energies_mev: np.ndarray, showers_mev: np.ndarray, **datasets: np.ndarray) -> Path:
    """A CaloChallenge file as the challenge writes them (gzip, no attributes), plus any extra datasets."""
    with h5py.File(path, "w") as handle:
        for name, data in {"incident_energies": energies_mev, "showers": showers_mev, **datasets}.items():
            if data is not None:
                handle.create_dataset(name, data=data, compression="gzip")
    return path


@pytest.mark.usefixtures("grant_pytest_temp")
def test_our_showers_file_reads_back_as_calochallenge_without_geometry(photons_50, workspace: Workspace) -> None:
    """simulate_showers' showers.h5 is a CaloChallenge file: read_calochallenge recovers geometry, energies, cells."""
    outcome = call_tool("read_calochallenge", {"path": str(photons_50.result.showers.path)}, workspace=workspace)
    result = outcome.result
    assert result.geometry_from_file and (result.n_layers, result.n_a, result.n_b) == (30, 24, 24)
    assert result.particle == "photon" and result.n_showers == 100
    original = read_showers(photons_50.result.showers.path, with_points=False)
    copy = read_showers(result.showers.path)
    np.testing.assert_array_equal(copy.cells_mev, original.cells_mev)
    np.testing.assert_allclose(copy.incident_energy_gev, 50.0)
    assert result.mean_visible_energy_mev == pytest.approx(photons_50.result.mean_visible_energy_mev, rel=1e-5)


@pytest.mark.usefixtures("grant_pytest_temp")
def test_a_foreign_cylindrical_file_reads_with_the_stated_geometry(tmp_path: Path, workspace: Workspace) -> None:
    """A dataset-2-shaped file (45 × 16 × 9 voxels, energies in MeV) reads with n_layers=45, n_a=16, n_b=9."""
    rng = np.random.default_rng(0)
    energies = rng.uniform(1e3, 1e6, (6, 1))
    cells = rng.exponential(1.0, (6, 6480)) * (rng.random((6, 6480)) < 0.2)
    path = write_calochallenge(tmp_path / "dataset_2.hdf5", energies, cells)
    arguments = {"path": str(path), "n_layers": 45, "n_a": 16, "n_b": 9, "kind": "cylindrical", "particle": "electron"}
    result = call_tool("read_calochallenge", arguments, workspace=workspace).result
    stored = read_showers(result.showers.path)
    assert stored.cells_mev.shape == (6, 45, 16, 9) and stored.geometry.kind == "cylindrical"
    np.testing.assert_allclose(stored.incident_energy_gev, energies[:, 0] / 1000.0)
    np.testing.assert_allclose(stored.cells_mev[2, 0, 1], cells[2, 9:18], rtol=1e-6)  # layer 0, second angular slice
    assert result.min_incident_energy_gev == pytest.approx(energies.min() / 1000.0)
    assert result.mean_hits_per_shower == pytest.approx(np.count_nonzero(cells, axis=1).mean())


@pytest.mark.usefixtures("grant_pytest_temp")
@pytest.mark.parametrize(
    ("content", "arguments", "param", "text"),
    [
        ({"showers": np.ones((3, 40))}, {"n_layers": 2, "n_a": 4, "n_b": 5}, "path", "lacks incident_energies"),
        ({}, {"n_layers": 2, "n_a": 4, "n_b": 4}, "n_layers", "has 40 voxels per shower, but 2 layers × 4 × 4 = 32"),
        ({"nan": True}, {"n_layers": 2, "n_a": 4, "n_b": 5}, "path", "contains NaN or infinite values"),
        ({}, {}, "n_layers", "carries no geometry attribute (40 voxels per shower)"),
        ({}, {"n_layers": 2, "n_a": 4}, "n_b", "state the whole voxel layout"),
    ],
)
def test_bad_calochallenge_files_are_input_errors_that_write_nothing(
    tmp_path: Path, no_workspace_writes: Workspace, content: dict, arguments: dict, param: str, text: str
) -> None:
    """Missing keys, a voxel count that does not fit, NaN, or no geometry: a clear error naming the fix, no artifact."""
    cells = np.ones((3, 40))
    if content.get("nan"):
        cells[1, 7] = np.nan
    if "showers" in content:
        path = write_calochallenge(tmp_path / "bad.h5", None, content["showers"])  # type: ignore[arg-type]
    else:
        path = write_calochallenge(tmp_path / "bad.h5", np.full((3, 1), 5e4), cells)
    with pytest.raises(ToolInputError) as caught:
        call_tool("read_calochallenge", {"path": str(path)} | arguments, workspace=no_workspace_writes)
    assert caught.value.param == param
    assert text in str(caught.value)
    assert str(caught.value).startswith("read_calochallenge: ")


@pytest.mark.usefixtures("grant_pytest_temp")
def test_a_file_that_is_not_hdf5_is_an_input_error(tmp_path: Path, no_workspace_writes: Workspace) -> None:
    """A text file named .h5 is refused with the reason, and nothing is written."""
    path = tmp_path / "notes.h5"
    path.write_text("not a calorimeter\n")
    with pytest.raises(ToolInputError, match="is not a readable HDF5 file"):
        call_tool("read_calochallenge", {"path": str(path)}, workspace=no_workspace_writes)
