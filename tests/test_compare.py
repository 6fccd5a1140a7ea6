"""compare_samples: the distances are the textbook ones, classifiers see what differs, bad samples are refused."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
from scipy.stats import ks_2samp, wasserstein_distance

from physagent.tools import CallRecord, ToolInputError, Workspace, call_tool
from physagent.tools._io import write_parquet
from physagent.tools.data._expressions import parse
from physagent.tools.generate._distances import chi2_two_histograms, feature_distances
from physagent.tools.generate._observables import cell_energy_spectrum, shower_observables
from physagent.tools.generate._physics_distances import fpd, frechet_distance, kpd, mmd2_unbiased
from physagent.tools.generate._samples import _unit
from physagent.tools.generate._two_sample import auc_standard_error
from physagent.tools.simulate._calo import CaloGeometry, Showers, write_showers

# the tables are Parquet files pytest writes under tmp_path; grant that folder to read_table
pytestmark = pytest.mark.usefixtures("grant_pytest_temp")

N_ROWS, N_FEATURES = 2000, 8
GRID = CaloGeometry(n_layers=3, n_a=4, n_b=4, cell_size_mm=5.0, layer_thickness_mm=4.0)


def _gaussians(seed: int, shifts: dict[int, float] | None = None, n: int = N_ROWS) -> dict[str, np.ndarray]:
    """``N_FEATURES`` unit Gaussians x0 … x7; ``shifts`` moves the mean of some of them."""
    rng = np.random.default_rng(seed)
    return {f"x{i}": rng.normal((shifts or {}).get(i, 0.0), 1.0, n) for i in range(N_FEATURES)}


def _table(tmp_path: Path, workspace: Workspace, columns: dict[str, Any]) -> str:
    """Write ``columns`` to Parquet and read it into the workspace as a table artifact; returns its id."""
    path = tmp_path / f"{uuid.uuid4().hex}.parquet"
    ak.to_parquet(ak.Array(columns), path)
    return call_tool("read_table", {"path": str(path)}, workspace=workspace).result.data.id


def _forge(workspace: Workspace, kind: str, primary: str, write: Callable[[Path], object],
           metadata: dict[str, Any] | None = None) -> str:
    """Register an artifact of ``kind`` whose files ``write(directory)`` makes (as a simulator would)."""
    with workspace.staging_area() as staging:
        pending = workspace.new_pending(kind, staging)
        write(pending.directory)
        pending.finish(primary, f"{kind} made for a test", metadata)
        record = CallRecord(id=f"c-{uuid.uuid4().hex[:10]}", seq=0, tool="test", tool_version="1", inputs={},
                            input_artifacts={}, outputs=[pending.id], result={}, seed=None, started=time.time(),
                            wall_s=0.0, packages={}, cache_key=uuid.uuid4().hex, cached_from=None)
        workspace.commit([pending], record)
    return pending.id


def _showers(workspace: Workspace, seed: int, n: int = 300, geometry: CaloGeometry = GRID,
             scale: float = 1.0) -> str:
    """``n`` toy showers: exponential cell energies, falling with depth and distance from the axis."""
    rng = np.random.default_rng(seed)
    profile = np.exp(-np.arange(geometry.n_layers) / 2.0)[:, None, None] * np.ones(geometry.grid_shape[1:])
    cells = rng.exponential(1.0, (n, *geometry.grid_shape)) * profile * scale
    cells[rng.random(cells.shape) < 0.3] = 0.0
    showers = Showers(np.full(n, 10.0), cells.astype(np.float32), geometry)
    return _forge(workspace, "showers", "showers.h5", lambda directory: write_showers(showers, directory))


def _compare(workspace: Workspace, reference: str, candidate: str, **arguments: Any) -> Any:
    return call_tool("compare_samples", {"reference": reference, "candidate": candidate, **arguments},
                     workspace=workspace).result


def _refused(workspace: Workspace, reference: str, candidate: str, **arguments: Any) -> ToolInputError:
    """The ToolInputError of a call, after checking it added no artifact."""
    before = len(workspace.list_artifacts())
    with pytest.raises(ToolInputError) as info:
        _compare(workspace, reference, candidate, **arguments)
    assert len(workspace.list_artifacts()) == before
    return info.value


# the distances themselves -----------------------------------------------------------------------


def test_w1_and_ks_are_scipys_and_w1_of_a_shift_is_the_shift() -> None:
    """W1 and KS equal scipy's on the same values; two Gaussians 0.5 apart have W1 ≈ 0.5, W1/σ ≈ 0.5."""
    rng = np.random.default_rng(3)
    reference, candidate = rng.normal(0.0, 2.0, 50_000), rng.normal(1.0, 2.0, 50_000)
    found = feature_distances(reference, candidate)
    assert found.w1 == wasserstein_distance(reference, candidate)
    assert (found.ks, found.ks_p) == tuple(ks_2samp(reference, candidate))
    assert found.w1 == pytest.approx(1.0, abs=0.03)
    assert found.w1_over_std == pytest.approx(0.5, abs=0.02)


def test_chi2_of_two_histograms_is_the_unweighted_two_sample_formula() -> None:
    """χ² = Σ (N_c r − N_r c)² / (r + c) / (N_r N_c) over filled bins, ndf = filled bins − 1 (by hand)."""
    chi2, ndf = chi2_two_histograms(np.array([10, 20, 0, 30]), np.array([20, 20, 0, 20]))
    expected = ((60 * 10 - 60 * 20) ** 2 / 30 + 0 + (60 * 30 - 60 * 20) ** 2 / 50) / (60 * 60)
    assert (chi2, ndf) == (pytest.approx(expected), 2)
    assert chi2_two_histograms(np.array([5, 0]), np.array([7, 0])) == (0.0, 0)


def test_frechet_distance_of_known_gaussians_and_fpd_of_same_and_shifted_samples() -> None:
    """d_F² of N(0, I) and N(μ, 4I) is |μ|² + d(1 + 4 − 4); FPD ≈ 0 for one distribution, ≈ δ² when shifted."""
    assert frechet_distance(np.zeros(3), np.eye(3), np.full(3, 2.0), 4 * np.eye(3)) == pytest.approx(12.0 + 3.0)
    rng = np.random.default_rng(5)
    reference, same = rng.normal(size=(4000, 4)), rng.normal(size=(4000, 4))
    shifted = same + np.array([1.0, 0.0, 0.0, 0.0])
    same_value, same_error = fpd(reference, same)
    scale = np.max(np.abs(reference[:, 0]))  # FPD divides each feature by the reference's max |value|
    shifted_value, _ = fpd(reference, shifted)
    assert 0.0 <= same_value < 0.005 and same_error < 0.005
    assert shifted_value == pytest.approx(1.0 / scale**2, rel=0.2)


def test_kpd_is_zero_for_one_distribution_and_positive_for_different_ones() -> None:
    """KPD is ≈ 0 (either sign) for one distribution, clearly > 0 otherwise; MMD²_u is the textbook estimator."""
    rng = np.random.default_rng(8)
    reference, same, wide = rng.normal(size=(2000, 3)), rng.normal(size=(2000, 3)), rng.normal(0, 2, (2000, 3))
    value, error = kpd(reference, same)
    assert abs(value) < 3 * error + 1e-4
    assert kpd(reference, wide)[0] > 100 * abs(value)
    x, y = reference[:300], wide[:200]  # the blockwise sum equals the textbook formula on full kernel matrices
    kernel = lambda a, b: (a @ b.T / 3 + 1) ** 4  # noqa: E731
    textbook = ((kernel(x, x).sum() - np.trace(kernel(x, x))) / (300 * 299)
                + (kernel(y, y).sum() - np.trace(kernel(y, y))) / (200 * 199) - 2 * kernel(x, y).mean())
    assert mmd2_unbiased(x, y) == pytest.approx(textbook, rel=1e-10)


def test_auc_standard_error_is_hanley_mcneil() -> None:
    """At AUC 0.5 with 600 + 600 rows the Hanley–McNeil error is √((0.25 + 1198/12) / 600²) ≈ 0.0167."""
    assert auc_standard_error(0.5, 600, 600) == pytest.approx(np.sqrt((0.25 + 1198 / 12) / 600**2))
    assert auc_standard_error(1.0, 600, 600) == 0.0


# shower observables ----------------------------------------------------------------------------


def test_shower_observables_on_a_hand_made_grid() -> None:
    """Two showers in a 2 × 3 × 3 grid (5 mm cells, 4 mm layers): sums, centres of gravity and widths by hand."""
    geometry = CaloGeometry(n_layers=2, n_a=3, n_b=3, cell_size_mm=5.0, layer_thickness_mm=4.0)
    cells = np.zeros((2, 2, 3, 3), dtype=np.float32)
    cells[0, 0, 1, 1], cells[0, 1, 2, 1] = 30.0, 10.0  # 30 MeV on the axis in layer 0, 10 MeV at x = +5 mm in layer 1
    cells[1, 1, 0, 0] = 0.05  # one soft cell, under a 0.1 MeV threshold
    found = shower_observables(Showers(np.array([20.0, 1.0]), cells, geometry), hit_threshold_mev=0.1)
    assert found["energy_sum_mev"] == pytest.approx([40.0, 0.05])
    assert found["energy_ratio"] == pytest.approx([40.0 / 20_000.0, 0.05 / 1000.0])
    assert found["layer_energy_mev_00"] == pytest.approx([30.0, 0.0])
    assert found["layer_energy_mev_01"] == pytest.approx([10.0, 0.05])
    assert found["cog_z_mm"] == pytest.approx([(30 * 2.0 + 10 * 6.0) / 40, 6.0])  # layer centres at 2 and 6 mm
    assert found["width_z_mm"][0] == pytest.approx(np.sqrt((30 * 4.0 + 10 * 36.0) / 40 - 3.0**2))
    assert found["cog_x_mm"] == pytest.approx([10 * 5.0 / 40, -5.0])
    assert found["cog_y_mm"] == pytest.approx([0.0, -5.0])
    assert found["width_x_mm"][0] == pytest.approx(np.sqrt(10 * 25.0 / 40 - 1.25**2))
    assert found["width_y_mm"] == pytest.approx([0.0, 0.0])
    assert list(found["n_hits"]) == [2.0, 0.0]
    assert sorted(cell_energy_spectrum(Showers(np.array([20.0, 1.0]), cells, geometry), 0.1)) == [10.0, 30.0]


def test_an_empty_shower_has_centres_and_widths_of_zero() -> None:
    """A shower without deposits has zero energy, no hits, and 0 for every centre of gravity and width."""
    found = shower_observables(Showers(np.array([5.0]), np.zeros((1, *GRID.grid_shape)), GRID))
    assert all(float(values[0]) == 0.0 for values in found.values())


# the tool -----------------------------------------------------------------------------------------


def test_samples_of_one_distribution_are_indistinguishable(tmp_path: Path, workspace: Workspace) -> None:
    """Two 2000-row samples of the same 8 Gaussians: AUCs ≈ 0.5, FPD ≈ 0, small W1/σ; table and plot written."""
    reference = _table(tmp_path, workspace, _gaussians(1))
    candidate = _table(tmp_path, workspace, _gaussians(2))
    result = _compare(workspace, reference, candidate)
    assert (result.kind, result.n_reference, result.n_candidate) == ("table", N_ROWS, N_ROWS)
    assert [f.name for f in result.features] == [f"x{i}" for i in range(N_FEATURES)]
    assert abs(result.classifier_auc_gbdt - 0.5) < 0.07 and abs(result.classifier_auc_mlp - 0.5) < 0.07
    assert 0.01 < result.classifier_auc_gbdt_err < 0.025 and result.n_classifier_test == 600
    assert result.fpd < 0.01 and abs(result.kpd) < 0.001
    assert all(f.w1_over_std < 0.15 and f.ks_p > 1e-4 for f in result.features)
    table = ak.from_parquet(result.table.path)
    assert list(table.feature) == [f.name for f in result.features]
    assert np.allclose(np.asarray(table.w1), [f.w1 for f in result.features])
    assert {"w1", "w1_over_std", "ks", "ks_p", "chi2_ndf", "ndf"} <= set(table.fields)
    assert result.plot.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "plot.pdf" in result.plot.files


def test_clearly_different_samples_are_told_apart(tmp_path: Path, workspace: Workspace) -> None:
    """Shifting two of 8 features by 3σ: AUCs ≈ 1, FPD large, the shifted features worst; W1 is scipy's."""
    columns_ref, columns_cand = _gaussians(1), _gaussians(2, {0: 3.0, 5: 3.0})
    result = _compare(workspace, _table(tmp_path, workspace, columns_ref),
                      _table(tmp_path, workspace, columns_cand), reference_label="Geant4", candidate_label="flow")
    assert result.classifier_auc_gbdt > 0.97 and result.classifier_auc_mlp > 0.97
    assert result.fpd > 0.5 and result.kpd > 0.01
    assert result.worst_feature in ("x0", "x5") and result.worst_w1_over_std > 2.5
    x0 = result.features[0]
    assert x0.w1 == pytest.approx(wasserstein_distance(columns_ref["x0"], columns_cand["x0"]))
    assert x0.w1 == pytest.approx(3.0, abs=0.1) and x0.ks_p < 1e-100 and x0.chi2_ndf > 50
    seen = result.observation()  # what the model reads: headline numbers first, the shifted features leading
    assert seen.startswith(f"Artifacts: {result.table.id} (table)") and "classifier_auc_gbdt=0.9" in seen
    assert seen.index("x0: ") < seen.index("x1: ") and seen.index("x5: ") < seen.index("x1: ")


def test_showers_are_compared_on_their_observables(workspace: Workspace) -> None:
    """Showers: every observable, one per layer, and the pooled cell spectrum; a 30 % energy scale is found."""
    reference, same, hotter = _showers(workspace, 1), _showers(workspace, 2), _showers(workspace, 3, scale=1.3)
    result = _compare(workspace, reference, same)
    names = [f.name for f in result.features]
    assert names[:3] == ["energy_sum_mev", "energy_ratio", "cog_z_mm"] and "n_hits" in names
    assert [n for n in names if n.startswith("layer_energy")] == [f"layer_energy_mev_{i:02d}" for i in range(3)]
    spectrum = result.features[-1]
    assert (spectrum.name, spectrum.pooled, spectrum.unit) == ("log10_cell_energy_mev", True, "log10(E/MeV)")
    assert abs(result.classifier_auc_gbdt - 0.5) < 0.12
    worse = _compare(workspace, reference, hotter, features=["energy_sum_mev", "cog_z_mm", "n_hits"])
    assert [f.name for f in worse.features] == ["energy_sum_mev", "cog_z_mm", "n_hits"]
    assert worse.worst_feature == "energy_sum_mev" and worse.classifier_auc_gbdt > 0.7


def test_jets_default_to_the_leading_jet_and_skip_events_without_one(workspace: Workspace) -> None:
    """Jets: leading-jet pt, eta, mass, tau21, tau32, msd, n_constituents; events without jets are counted out."""
    def jets(seed: int, n: int = 300) -> str:
        rng = np.random.default_rng(seed)
        events = [[] if i % 10 == 0 else [{"pt": float(rng.uniform(300, 600)), "eta": float(rng.normal()),
                   "phi": 0.0, "mass": float(rng.normal(80, 10)), "tau21": float(rng.uniform()),
                   "tau32": float(rng.uniform()), "msd": float(rng.normal(75, 10)),
                   "n_constituents": int(rng.integers(10, 60))}] for i in range(n)]
        array = ak.Array({"event": np.arange(n), "weight": np.ones(n), "jets": events})
        return _forge(workspace, "jets", "jets.parquet", lambda d: write_parquet(array, d / "jets.parquet"))

    result = _compare(workspace, jets(1), jets(2))
    assert [f.name for f in result.features] == ["jets.pt[0]", "jets.eta[0]", "jets.mass[0]", "jets.tau21[0]",
                                                 "jets.tau32[0]", "jets.msd[0]", "jets.n_constituents[0]"]
    assert (result.n_reference, result.n_reference_skipped, result.n_candidate_skipped) == (270, 30, 30)
    assert [f.unit for f in result.features][:3] == ["GeV", "", "GeV"]
    # a generator's samples (columns named after the expressions it learned) face the jets without features
    rng = np.random.default_rng(3)
    generated = ak.Array({"jets_mass_0": rng.normal(80, 10, 300), "jets_tau21_0": rng.uniform(size=300)})
    samples = _forge(workspace, "table", "samples.parquet", lambda d: write_parquet(generated, d / "samples.parquet"),
                     {"expressions": {"jets_mass_0": "jets.mass[0]", "jets_tau21_0": "jets.tau21[0]"}})
    against = _compare(workspace, jets(1), samples)
    assert [f.name for f in against.features] == ["jets.mass[0]", "jets.tau21[0]"]
    assert (against.n_reference, against.n_candidate) == (270, 300) and against.classifier_auc_gbdt < 0.65


def test_feature_units_follow_the_expression() -> None:
    """A field keeps its unit through [k], abs, min/max/sum and sums of one unit; counts and products have none."""
    units = {text: _unit(parse(text)) for text in ("jets.pt[0]", "max(jets.msd)", "-abs(m_hat_gev)", "jets.eta[0]",
                                                   "jets.pt[0] - jets.pt[1]", "count(jets.pt > 30)", "len(jets)",
                                                   "jets.mass[0] / jets.pt[0]", "jets.pt[0] + jets.eta[0]")}
    assert units == {"jets.pt[0]": "GeV", "max(jets.msd)": "GeV", "-abs(m_hat_gev)": "GeV", "jets.eta[0]": "",
                     "jets.pt[0] - jets.pt[1]": "GeV", "count(jets.pt > 30)": "", "len(jets)": "",
                     "jets.mass[0] / jets.pt[0]": "", "jets.pt[0] + jets.eta[0]": ""}


# bad input ---------------------------------------------------------------------------------------


def test_empty_samples_are_refused(tmp_path: Path, workspace: Workspace) -> None:
    """A table without rows is named; nothing is written."""
    empty = _table(tmp_path, workspace, {"x0": np.zeros(0)})
    full = _table(tmp_path, workspace, {"x0": np.zeros(100)})
    error = _refused(workspace, full, empty)
    assert error.param == "candidate" and "holds no rows" in str(error)


def test_nan_and_inf_are_refused_naming_the_feature_and_count(tmp_path: Path, workspace: Workspace) -> None:
    """NaN or ±inf in a feature: the message names the feature, the sample and how many values."""
    columns = _gaussians(1, n=200)
    columns["x3"][[4, 9]] = np.nan
    columns["x6"][7] = np.inf
    error = _refused(workspace, _table(tmp_path, workspace, _gaussians(2, n=200)), _table(tmp_path, workspace,
                                                                                           columns))
    assert error.param == "candidate" and "x3 (2), x6 (1)" in str(error)


def test_unknown_features_are_named_with_the_available_ones(tmp_path: Path, workspace: Workspace) -> None:
    """An expression over a missing field names it and lists the fields there are."""
    reference = _table(tmp_path, workspace, _gaussians(1, n=200))
    error = _refused(workspace, reference, reference, features=["x1", "jets.mass[0]"])
    assert error.param == "features" and "unknown field 'jets.mass'" in str(error) and "x0, x1, x2" in str(error)
    shower = _showers(workspace, 1, n=60)
    error = _refused(workspace, shower, shower, features=["energy_sum_mev", "shower_depth"])
    assert "'shower_depth'" in str(error) and "layer_energy_mev_00 … layer_energy_mev_02" in str(error)


def test_per_object_and_constant_expressions_are_refused(tmp_path: Path, workspace: Workspace) -> None:
    """A feature needs one value per row: jets.pt over all jets or a bare number is explained."""
    table = _table(tmp_path, workspace, {"x": np.arange(100.0), "jets": [[{"pt": 1.0}]] * 100})
    assert "pick one object with [0]" in str(_refused(workspace, table, table, features=["jets.pt"]))
    assert "is a constant" in str(_refused(workspace, table, table, features=["3 * 2"]))
    assert "not a valid expression" in str(_refused(workspace, table, table, features=["x >"]))


def test_too_few_rows_for_a_held_out_split_are_refused(tmp_path: Path, workspace: Workspace) -> None:
    """30 rows cannot be split into training and test parts; the message says how many are needed."""
    small, large = _table(tmp_path, workspace, _gaussians(1, n=30)), _table(tmp_path, workspace, _gaussians(2))
    error = _refused(workspace, large, small)
    assert error.param == "candidate" and "has 30 usable rows" in str(error) and "at least 50" in str(error)


def test_different_kinds_and_geometries_are_refused(tmp_path: Path, workspace: Workspace) -> None:
    """Showers against a table, or showers of two geometries, cannot be compared; the message says why."""
    shower = _showers(workspace, 1, n=60)
    table = _table(tmp_path, workspace, _gaussians(1, n=100))
    error = _refused(workspace, shower, table)
    assert "is a table artifact but reference" in str(error) and "is showers" in str(error)
    finer = _showers(workspace, 2, n=60, geometry=CaloGeometry(n_layers=3, n_a=8, n_b=8))
    error = _refused(workspace, shower, finer)
    assert "cartesian 3×8×8" in str(error) and "cartesian 3×4×4" in str(error) and "same cell grid" in str(error)
