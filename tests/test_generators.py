"""Generative surrogates: a flow learns a 2-D density, samples reproduce by seed, shower models make showers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from physagent.tools import CallOutcome, CallRecord, ToolInputError, Workspace, call_tool
from physagent.tools._io import read_parquet, write_parquet
from physagent.tools.simulate._calo import CaloGeometry, Showers, read_showers, write_showers

torch.set_num_threads(1)
GEOMETRY = CaloGeometry(n_layers=4, n_a=6, n_b=6, cell_size_mm=5.0, layer_thickness_mm=3.4)
FLOW_TRAINING = {"size": "small", "epochs": 60, "batch_size": 256, "learning_rate": 3e-3, "patience": 8, "seed": 3}
SHOWER_TRAINING = {"caloflow": {"size": "tiny", "epochs": 20, "batch_size": 64, "learning_rate": 3e-3, "seed": 1},
                   "calofast": {"size": "tiny", "epochs": 20, "batch_size": 64, "learning_rate": 3e-3, "seed": 1},
                   "pointcloud": {"size": "tiny", "epochs": 10, "batch_size": 64, "learning_rate": 3e-3, "seed": 1}}


@pytest.fixture(scope="module", autouse=True)
def one_worker() -> Iterator[None]:
    """One torch thread: the CI machine is shared, and spin-waiting threads made training 4× slower."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PHYSAGENT_WORKERS", "1")
        yield


def _commit(workspace: Workspace, kind: str, write: object, primary: str, summary: str, metadata: dict) -> str:
    """Register files written by ``write(directory)`` as an artifact of ``kind`` (as a loading tool would)."""
    with workspace.staging_area() as staging:
        pending = workspace.new_pending(kind, staging)
        write(pending.directory)
        pending.finish(primary, summary, metadata)
        record = CallRecord(id=f"c-{uuid.uuid4().hex[:10]}", seq=0, tool="test", tool_version="1", inputs={},
                            input_artifacts={}, outputs=[pending.id], result={}, seed=None, started=time.time(),
                            wall_s=0.0, packages={}, cache_key=uuid.uuid4().hex, cached_from=None)
        workspace.commit([pending], record)
    return pending.id


def banana(n: int, seed: int) -> dict[str, np.ndarray]:
    """A correlated, curved 2-D density: a ~ N(0, 1), b = a²/2 + N(0, 0.4²) − 1, plus a positive column m."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = 0.5 * a**2 + rng.normal(scale=0.4, size=n) - 1.0
    return {"a": a, "b": b}


def table_artifact(workspace: Workspace, columns: dict[str, np.ndarray], summary: str = "test table") -> str:
    return _commit(workspace, "table", lambda d: write_parquet(ak.zip(columns), d / "table.parquet"), "table.parquet",
                   summary, {"n_rows": len(next(iter(columns.values()))), "fields": list(columns)})


def synthetic_showers(n: int, seed: int, geometry: CaloGeometry = GEOMETRY) -> Showers:
    """Photon-like showers: E_vis ≈ 12 MeV/GeV with 1/√E fluctuations, a gamma longitudinal profile whose
    maximum moves deeper with log E, a Gaussian lateral core, exponential hit energies."""
    rng = np.random.default_rng(seed)
    energies = np.exp(rng.uniform(np.log(10.0), np.log(100.0), n))
    hits, cells = [], np.zeros((n, *geometry.grid_shape), dtype=np.float32)
    for i, e in enumerate(energies):
        count = rng.poisson(15 + 0.5 * e)
        visible = 12.0 * e * (1 + 0.15 / np.sqrt(e / 10) * rng.normal())
        depth = rng.gamma(1.5 + 0.3 * np.log(e), 0.7, count)
        layer = np.minimum(depth.astype(np.int64), geometry.n_layers - 1)
        x, y = rng.normal(0, 4.0, count), rng.normal(0, 4.0, count)
        deposit = rng.exponential(1.0, count)
        deposit *= visible / deposit.sum()
        a = np.floor(x / geometry.cell_size_mm + geometry.n_a / 2).astype(np.int64)
        b = np.floor(y / geometry.cell_size_mm + geometry.n_b / 2).astype(np.int64)
        inside = (a >= 0) & (a < geometry.n_a) & (b >= 0) & (b < geometry.n_b)
        np.add.at(cells[i], (layer[inside], a[inside], b[inside]), deposit[inside])
        hits.append({"x_mm": x, "y_mm": y, "z_mm": (layer + 0.5) * geometry.layer_thickness_mm, "layer": layer,
                     "e_mev": deposit})
    counts = [len(h["e_mev"]) for h in hits]
    points = ak.unflatten(ak.zip({k: np.concatenate([h[k] for h in hits]) for k in hits[0]}), counts)
    return Showers(energies, cells, geometry, None, "photon", points)


def showers_artifact(workspace: Workspace, showers: Showers) -> str:
    return _commit(workspace, "showers", lambda d: write_showers(showers, d), "showers.h5", "synthetic showers",
                   {"n_showers": len(showers)})


def train(workspace: Workspace, source: str, **arguments: object) -> CallOutcome:
    return call_tool("train_generator", {"source": source} | arguments, workspace=workspace)


def sample(workspace: Workspace, generator: str, **arguments: object) -> CallOutcome:
    return call_tool("sample_generator", {"generator": generator} | arguments, workspace=workspace)


def classifier_auc(real: np.ndarray, fake: np.ndarray, seed: int = 0) -> float:
    """AUC of a gradient-boosted classifier telling real from generated rows on a held-out half."""
    x = np.concatenate([real, fake])
    y = np.concatenate([np.zeros(len(real)), np.ones(len(fake))])
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, random_state=seed, stratify=y)
    model = HistGradientBoostingClassifier(max_iter=100, random_state=seed).fit(x_train, y_train)
    return float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]))


@pytest.fixture(scope="module")
def flow_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("generators"))


@pytest.fixture(scope="module")
def banana_flow(flow_workspace: Workspace) -> CallOutcome:
    """An NSF trained on 6,000 banana rows."""
    source = table_artifact(flow_workspace, banana(6000, seed=0), "banana")
    return train(flow_workspace, source, **FLOW_TRAINING)


@pytest.fixture(scope="module")
def tiny_showers(flow_workspace: Workspace) -> str:
    """300 synthetic photon showers in a 4 × 6 × 6 grid, with their hits."""
    return showers_artifact(flow_workspace, synthetic_showers(300, seed=2))


# --- the tabular flow ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_flow_learns_a_curved_2d_density_to_classifier_auc_below_055(
    flow_workspace: Workspace, banana_flow: CallOutcome
) -> None:
    """A classifier cannot tell 20,000 flow samples from fresh banana rows: AUC < 0.55."""
    trained = banana_flow.result
    assert trained.model == "flow" and trained.flow_kind == "nsf" and trained.features == ["a", "b"]
    assert trained.best_epoch <= trained.epochs_run and trained.n_parameters > 1000
    drawn = sample(flow_workspace, trained.generator.id, n=20_000, seed=11).result
    table = read_parquet(drawn.samples.path)
    fake = np.stack([np.asarray(table.a), np.asarray(table.b)], axis=1)
    fresh = banana(20_000, seed=99)
    auc = classifier_auc(np.stack([fresh["a"], fresh["b"]], axis=1), fake)
    assert auc < 0.55, f"classifier AUC {auc:.3f}"
    assert drawn.columns == ["a", "b"] and drawn.n_samples == 20_000 and drawn.ms_per_sample > 0


@pytest.mark.slow
def test_the_model_card_records_data_transform_and_training(banana_flow: CallOutcome) -> None:
    """card.json names the data (id, hash), the transform, parameter count, history; the curve is drawn."""
    trained = banana_flow.result
    card = trained.generator.metadata
    assert card["data"]["id"].startswith("tab-") and len(card["data"]["sha256"]) == 64
    assert [t["name"] for t in card["transform"]["features"]] == ["a", "b"]
    assert not any(t["log"] for t in card["transform"]["features"])  # b takes negative values, a is symmetric
    assert card["n_parameters"] == trained.n_parameters
    assert len(card["training"]["history"]) == trained.epochs_run
    assert card["training"]["history"][trained.best_epoch - 1]["val_loss"] == pytest.approx(trained.validation_loss)
    assert (trained.generator.directory / "training_curve.png").stat().st_size > 5_000
    assert {"model.pt", "card.json", "training_curve.png"} <= set(trained.generator.files)


@pytest.mark.slow
def test_same_seed_gives_identical_samples_from_the_stored_artifact_and_seeds_differ(
    flow_workspace: Workspace, banana_flow: CallOutcome
) -> None:
    """Two calls with seed 5 (no cache, any batch size) give the same table; seed 6 gives another."""
    generator = banana_flow.result.generator.id
    first = sample(flow_workspace, generator, n=500, seed=5, batch_size=1000).result
    again = call_tool("sample_generator", {"generator": generator, "n": 500, "seed": 5, "batch_size": 64},
                      workspace=flow_workspace, use_cache=False).result
    other = sample(flow_workspace, generator, n=500, seed=6).result
    a, b, c = (read_parquet(r.samples.path) for r in (first, again, other))
    assert again.samples.id != first.samples.id
    np.testing.assert_allclose(np.asarray(a.a), np.asarray(b.a), rtol=0, atol=1e-5)
    assert not np.allclose(np.asarray(a.a), np.asarray(c.a))


def test_a_conditional_flow_on_jets_follows_its_condition_and_refuses_bad_conditions(workspace: Workspace) -> None:
    """mass[0] | pt[0] of a jets artifact: samples shift with pT; missing, extra or out-of-range conditions fail."""
    rng = np.random.default_rng(4)
    n = 3000
    pt = rng.uniform(300, 600, n)
    mass = 0.1 * pt * np.exp(rng.normal(0, 0.2, n))
    jets = ak.zip({"event": np.arange(n), "jets": ak.unflatten(ak.zip({"pt": pt, "mass": mass, "eta": rng.normal(
        size=n)}), np.ones(n, dtype=np.int64))}, depth_limit=1)
    source = _commit(workspace, "jets", lambda d: write_parquet(jets, d / "jets.parquet"), "jets.parquet", "jets", {})
    trained = train(workspace, source, features=["jets.mass[0]"], conditions=["jets.pt[0]"], size="tiny", epochs=25,
                    learning_rate=3e-3, seed=2).result
    card = trained.generator.metadata
    assert trained.conditions == ["jets.pt[0]"] and card["transform"]["features"][0]["log"]  # log-normal mass
    assert trained.exported == ["sampler.onnx"] and card["export"]["sampler"]["max_abs_diff_vs_torch"] < 1e-3
    low = sample(workspace, trained.generator.id, n=2000, condition_values={"jets.pt[0]": [320]}).result
    high = sample(workspace, trained.generator.id, n=2000, condition_values={"jets_pt_0": [580]}).result
    m_low, m_high = (np.asarray(read_parquet(r.samples.path).jets_mass_0) for r in (low, high))
    assert np.median(m_low) == pytest.approx(32.0, rel=0.15) and np.median(m_high) == pytest.approx(58.0, rel=0.15)
    assert low.columns == ["jets_mass_0", "jets_pt_0"]
    as_ref = sample(workspace, trained.generator.id, reference=source, seed=1).result
    assert as_ref.n_samples == n and as_ref.condition_source == "reference"
    before = len(workspace.list_artifacts("table"))
    for arguments, message in (
        ({}, r"condition_values=None is needed: the generator is conditioned on \['jets.pt\[0\]'\]"),
        ({"condition_values": {"jets.pt[0]": [900]}}, r"outside the range the generator was trained on"),
        ({"condition_values": {"jets.eta[0]": [0]}}, r"does not know.*Its conditions are \['jets.pt\[0\]'\]"),
        ({"energy_min_gev": 10}, "applies to shower generators"),
    ):
        with pytest.raises(ToolInputError, match=message):
            sample(workspace, trained.generator.id, n=10, **arguments)
    assert len(workspace.list_artifacts("table")) == before


# --- bad inputs to training -----------------------------------------------------------------------


def test_training_refuses_nan_features_empty_data_and_the_wrong_model(workspace: Workspace) -> None:
    """NaN in a feature (named), too few rows, a shower model on a table, features for caloflow: nothing written."""
    columns = banana(200, seed=1)
    columns["b"][17] = np.nan
    with_nan = table_artifact(workspace, columns)
    empty = table_artifact(workspace, {"a": np.zeros(0), "b": np.zeros(0)})
    showers = showers_artifact(workspace, synthetic_showers(20, seed=3))
    for source, arguments, message in (
        (with_nan, {}, r"features='b' has 1 NaN or infinite values"),
        (empty, {}, r"has 0 usable rows; a generator needs at least 10"),
        (with_nan, {"model": "caloflow"}, r"learns calorimeter showers, but .* is a table artifact"),
        (showers, {"model": "flow"}, r"holds calorimeter showers. Use model='caloflow'"),
        (showers, {"features": ["a"]}, r"apply to model='flow' only"),
        (with_nan, {"features": ["a[0]"]}, r"cannot be evaluated"),
    ):
        with pytest.raises(ToolInputError, match=message):
            train(workspace, source, size="tiny", epochs=1, **arguments)
    assert workspace.list_artifacts("generator") == []


def test_caloflow_refuses_a_grid_above_its_voxel_limit_and_suggests_pointcloud(workspace: Workspace) -> None:
    """A 30 × 24 × 24 grid is too large for caloflow: the error says so and names model='pointcloud'."""
    big = CaloGeometry()
    showers = Showers(np.full(12, 50.0), np.ones((12, *big.grid_shape), dtype=np.float32), big)
    source = showers_artifact(workspace, showers)
    with pytest.raises(ToolInputError, match=r"at most 600 voxels; .* 30×24×24 = 17280. Use model='calofast' "
                                             r"\(up to 20,000 voxels\) or model='pointcloud'"):
        train(workspace, source, model="caloflow", size="tiny", epochs=1)
    assert workspace.list_artifacts("generator") == []


# --- shower models ----------------------------------------------------------------------------------


def _check_showers(path: Path, energies: tuple[float, float]) -> Showers:
    showers = read_showers(path)
    assert showers.geometry.grid_shape == GEOMETRY.grid_shape
    assert np.all(showers.cells_mev >= 0) and np.all(np.isfinite(showers.cells_mev))
    assert np.all((showers.incident_energy_gev >= energies[0] - 1e-9) & (showers.incident_energy_gev <= energies[1]
                                                                         + 1e-9))
    return showers


def _deposit_slope(showers: Showers) -> float:
    """Slope of log(Σ cells) against log(E_inc): 1 when the deposit is proportional to the energy."""
    total = showers.cells_mev.reshape(len(showers), -1).sum(1)
    keep = total > 0
    return float(np.polyfit(np.log(showers.incident_energy_gev[keep]), np.log(total[keep]), 1)[0])


@pytest.mark.parametrize("model", [pytest.param("caloflow", marks=pytest.mark.slow), "calofast", "pointcloud"])
def test_shower_models_train_and_sample_showers_of_the_trained_geometry(
    model: str, flow_workspace: Workspace, tiny_showers: str
) -> None:
    """A few epochs give showers of the right grid, non-negative energies and a deposit that grows with E_inc."""
    trained = train(flow_workspace, tiny_showers, model=model, **SHOWER_TRAINING[model]).result
    assert trained.model == model and trained.conditions == ["incident_energy_gev"]
    assert np.isfinite(trained.validation_loss) and trained.n_train + trained.n_validation == 300
    exports = {"caloflow": ["sampler.onnx"], "calofast": ["sampler.onnx"], "pointcloud": ["velocity.onnx",
                                                                                      "set_flow.onnx"]}
    assert trained.exported == exports[model] and trained.export_problems == []
    drawn = sample(flow_workspace, trained.generator.id, n=200, energy_min_gev=15.0, energy_max_gev=90.0,
                   ode_steps=8).result
    showers = _check_showers(drawn.samples.path, (15.0, 90.0))
    assert 0.5 < _deposit_slope(showers) < 1.5
    assert 0.004 < drawn.mean_deposit_fraction < 0.03  # the data's ≈ 0.012 (12 MeV per GeV, some outside the grid)
    if model == "pointcloud":
        assert showers.points is not None and len(showers.points) == 200
        binned = ak.sum(showers.points.e_mev, axis=1)
        assert np.all(np.asarray(binned) >= showers.cells_mev.reshape(200, -1).sum(1) - 1e-2)
    again = call_tool("sample_generator", {"generator": trained.generator.id, "n": 200, "energy_min_gev": 15.0,
                                           "energy_max_gev": 90.0, "ode_steps": 8, "batch_size": 37},
                      workspace=flow_workspace, use_cache=False).result
    np.testing.assert_allclose(read_showers(again.samples.path).cells_mev, showers.cells_mev, rtol=1e-4, atol=1e-3)


@pytest.fixture(scope="module")
def fast_generator(flow_workspace: Workspace, tiny_showers: str) -> CallOutcome:
    """A tiny calofast model of the 300 synthetic 4 × 6 × 6 showers."""
    return train(flow_workspace, tiny_showers, model="calofast", **SHOWER_TRAINING["calofast"])


def _fast_noise(model: torch.nn.Module, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Incident energies (15–90 GeV), stage-1 normals and one random int32 word per voxel."""
    rng = np.random.default_rng(seed)
    energies = torch.from_numpy(np.exp(rng.uniform(np.log(15.0), np.log(90.0), n))).float()
    z = torch.from_numpy(rng.standard_normal((n, model.grid_shape[0]))).float()
    bits = torch.from_numpy(rng.integers(-(2**31), 2**31, (n, model.n_voxels), dtype=np.int32))
    return energies, z, bits


def test_calofast_layers_hold_their_stage_one_energy_up_to_cells_zeroed_below_epsilon(
    fast_generator: CallOutcome,
) -> None:
    """Each sampled layer sums to its stage-1 energy E_l, less cells below ε; a layer with E_l < ε is empty."""
    from physagent.tools.generate._architectures import load_generator

    trained = fast_generator.result
    model, card = load_generator(trained.generator)
    assert card["model"] == "calofast" and card["flow_kind"] == "nsf" and trained.n_parameters > 1000
    epsilon = float(model.noise_mev)
    assert card["showers"]["noise_mev"] == pytest.approx(epsilon) and epsilon > 0
    energies, z, bits = _fast_noise(model, 400, seed=0)
    with torch.inference_mode():
        cells = model.sample(energies, z, bits)
        layer_e = torch.exp(model._from_x(model.energy_flow.sample(z, model.c_norm(torch.log(energies)[:, None]))))
    assert cells.shape == (400, *GEOMETRY.grid_shape) and torch.all(cells >= 0) and torch.all(torch.isfinite(cells))
    assert torch.all((cells == 0) | (cells >= epsilon))
    sums, empty = cells.sum((2, 3)), layer_e < epsilon
    assert torch.all(sums[empty] == 0) and bool((~empty).any())
    deficit = (layer_e - sums)[~empty]
    cells_per_layer = GEOMETRY.n_a * GEOMETRY.n_b
    assert torch.all(deficit > -1e-4 * layer_e[~empty]) and torch.all(deficit < cells_per_layer * epsilon + 1e-4)
    assert float((deficit.abs() / layer_e[~empty]).median()) < 1e-5


def test_calofast_gives_identical_showers_from_the_stored_model_and_its_onnx_export_for_the_same_noise(
    fast_generator: CallOutcome,
) -> None:
    """Two loads of the stored artifact sample identical cells from the same noise; sampler.onnx (onnxruntime)
    gives the same showers for a batch of another size than it was traced with."""
    from physagent.tools.generate._architectures import load_generator
    from physagent.tools.generate._export import run_onnx

    artifact = fast_generator.result.generator
    (first, _), (second, _) = load_generator(artifact), load_generator(artifact)
    energies, z, bits = _fast_noise(first, 257, seed=1)
    with torch.inference_mode():
        a, b = first.sample(energies, z, bits), second.sample(energies, z, bits)
    assert torch.equal(a, b) and float(a.sum()) > 0
    assert artifact.metadata["export"]["sampler"]["inputs"] == ["energy_gev", "z_layers", "bits"]
    exported = run_onnx(artifact.directory / "sampler.onnx", {"energy_gev": energies.numpy(), "z_layers": z.numpy(),
                                                               "bits": bits.numpy()}, "cells")
    assert exported.shape == (257, *GEOMETRY.grid_shape)
    np.testing.assert_allclose(exported.sum((2, 3)), a.sum((2, 3)).numpy(), rtol=1e-3, atol=1e-3)
    assert np.mean(np.abs(exported - a.numpy()) > 1e-3) < 1e-3  # equal but for rare flips at a threshold


def test_calofast_refuses_maf_and_grids_above_its_voxel_limit_and_is_what_auto_picks(workspace: Workspace) -> None:
    """flow_kind='maf' (its layer flow is always a spline coupling flow) and 100 × 15 × 15 = 22,500 voxels fail;
    model='auto' picks calofast for a small grid, and caloflow when asked for a MAF."""
    big = CaloGeometry(n_layers=100, n_a=15, n_b=15)
    large = showers_artifact(workspace, Showers(np.full(12, 50.0), np.ones((12, *big.grid_shape), dtype=np.float32),
                                                big))
    small = showers_artifact(workspace, synthetic_showers(20, seed=6))
    for source, arguments, message in (
        (small, {"flow_kind": "maf"}, r"flow_kind='maf' applies to flow, caloflow and pointcloud; calofast's"),
        (large, {}, r"at most 20000 voxels; .* 100×15×15 = 22500. Use model='pointcloud'"),
    ):
        with pytest.raises(ToolInputError, match=message):
            train(workspace, source, model="calofast", size="tiny", epochs=1, **arguments)
    assert workspace.list_artifacts("generator") == []
    auto = train(workspace, small, size="tiny", epochs=1, export=False).result
    auto_maf = train(workspace, small, size="tiny", epochs=1, export=False, flow_kind="maf").result
    assert (auto.model, auto_maf.model, auto_maf.flow_kind) == ("calofast", "caloflow", "maf")


def test_showers_with_more_deposits_than_max_points_are_learnt_from_their_hit_cells(
    flow_workspace: Workspace, tiny_showers: str
) -> None:
    """A 100 GeV shower has ~8,700 deposits: above max_points, each hit cell becomes one point (CaloClouds-style
    clustering); below even the hit-cell count, the error names that count."""
    stored = read_showers(Workspace(flow_workspace.root).get_artifact(tiny_showers).path)
    most_hits = int(max(ak.num(stored.points.e_mev, axis=1)))
    most_cells = int(np.count_nonzero(stored.cells_mev.reshape(len(stored), -1), axis=1).max())
    assert most_cells < most_hits
    trained = train(flow_workspace, tiny_showers, model="pointcloud", size="tiny", epochs=1, max_points=most_cells,
                    export=False)
    assert trained.result.generator.metadata["showers"]["points_from"] == "cells"
    assert trained.result.exported == [] and not any(f.endswith(".onnx") for f in trained.result.generator.files)
    with pytest.raises(ToolInputError, match=f"below the {most_cells} hit cells"):
        train(flow_workspace, tiny_showers, model="pointcloud", size="tiny", epochs=1, max_points=most_cells - 1)


def test_shower_sampling_refuses_missing_out_of_range_and_foreign_conditions(
    flow_workspace: Workspace, tiny_showers: str
) -> None:
    """No energies, energies beyond the trained 10–100 GeV, a reference of another grid: clear errors."""
    trained = train(flow_workspace, tiny_showers, model="pointcloud", **SHOWER_TRAINING["pointcloud"]).result
    other = CaloGeometry(n_layers=3, n_a=4, n_b=4)
    foreign = showers_artifact(flow_workspace, synthetic_showers(12, seed=5, geometry=other))
    before = len(flow_workspace.list_artifacts("showers"))
    for arguments, message in (
        ({}, r"energy_min_gev=None is needed: the generator is conditioned on the incident energy"),
        ({"energy_min_gev": 50.0, "energy_max_gev": 500.0}, r"outside the range the generator was trained on"),
        ({"reference": foreign}, r"has a 3×4×4 grid, but the generator makes 4×6×6 showers"),
        ({"condition_values": {"x": [1.0]}}, r"applies to tabular flows"),
    ):
        with pytest.raises(ToolInputError, match=message):
            sample(flow_workspace, trained.generator.id, n=5, **arguments)
    assert len(flow_workspace.list_artifacts("showers")) == before
    as_ref = sample(flow_workspace, trained.generator.id, reference=tiny_showers, n=50).result
    assert as_ref.condition_source == "reference" and as_ref.n_samples == 50


# --- point clouds of jet constituents ---------------------------------------------------------------

JET_TRAINING = {"model": "pointcloud", "size": "tiny", "epochs": 12, "batch_size": 32, "learning_rate": 3e-3,
                "seed": 1}


@pytest.fixture(scope="module")
def qcd_jets(flow_workspace: Workspace) -> str:
    """Anti-kT R = 0.8 jets of 300 Pythia QCD dijet events (p̂T > 400 GeV, MPI off)."""
    events = call_tool("generate_events", {"process": "qcd_dijet", "n_events": 300, "pt_hat_min_gev": 400.0,
                                           "mpi": False, "seed": 1}, workspace=flow_workspace).result
    return call_tool("cluster_jets", {"events": events.events.id, "radius": 0.8, "pt_min_gev": 200.0},
                     workspace=flow_workspace).result.jets.id


@pytest.fixture(scope="module")
def jet_cloud(flow_workspace: Workspace, qcd_jets: str) -> CallOutcome:
    """A tiny EPiC flow-matching model of the leading jets' constituents given the jet pT."""
    return train(flow_workspace, qcd_jets, **JET_TRAINING)


def _leading(path: Path) -> ak.Array:
    jets = read_parquet(path).jets
    assert np.all(np.asarray(ak.num(jets)) == 1)
    return jets[:, 0]


def test_a_pointcloud_learns_the_leading_jets_constituents_and_exports_its_networks(jet_cloud: CallOutcome) -> None:
    """Training on jets learns (Δη, Δφ, pT_rel) given jets.pt[0]; the card keeps R = 0.8; ONNX files are written."""
    trained = jet_cloud.result
    card = trained.generator.metadata
    assert trained.model == "pointcloud" and trained.features == ["deta", "dphi", "pt_rel"]
    assert trained.conditions == ["jets.pt[0]"] and trained.n_train + trained.n_validation == 300
    assert card["jets"]["radius"] == 0.8 and card["jets"]["radius_from"] == "jets artifact"
    assert 250 < card["ranges"]["conditions"]["jets.pt[0]"][0] < card["ranges"]["conditions"]["jets.pt[0]"][1]
    assert trained.exported == ["velocity.onnx", "set_flow.onnx"] and trained.export_problems == []
    assert card["export"]["velocity"]["max_abs_diff_vs_torch"] < 1e-4
    assert {"velocity.onnx", "set_flow.onnx"} <= set(trained.generator.files)


def test_generated_jets_have_the_cluster_jets_layout_and_the_asked_pt(
    flow_workspace: Workspace, jet_cloud: CallOutcome
) -> None:
    """150 jets at pT = 600 GeV: finite constituents (pid, charge 0), jet four-vector = Σ constituents, pT ≈ 600."""
    drawn = sample(flow_workspace, jet_cloud.result.generator.id, n=150, seed=4,
                   condition_values={"jets.pt[0]": [600.0]}, ode_steps=10).result
    assert drawn.samples.kind == "jets" and drawn.n_samples == 150 and drawn.columns == []
    assert drawn.condition_source == "values" and drawn.mean_deposit_fraction is None
    jet = _leading(drawn.samples.path)
    parts = jet.constituents
    for name in ("pt", "eta", "phi", "e", "deta", "dphi"):
        assert np.all(np.isfinite(np.asarray(ak.flatten(parts[name]))))
    assert np.all(np.asarray(ak.flatten(parts.pid)) == 0) and np.all(np.asarray(ak.flatten(parts.charge)) == 0)
    assert np.array_equal(np.asarray(jet.n_constituents), np.asarray(ak.num(parts)))
    px, py = ak.sum(parts.pt * np.cos(parts.phi), axis=1), ak.sum(parts.pt * np.sin(parts.phi), axis=1)
    np.testing.assert_allclose(np.hypot(px, py), np.asarray(jet.pt), rtol=1e-3)
    pt = np.asarray(jet.pt)
    assert np.median(pt) == pytest.approx(600.0, rel=0.1) and np.mean(np.abs(pt / 600.0 - 1) < 0.25) > 0.9
    mass, tau21 = np.asarray(jet.mass), np.asarray(jet.tau21)
    assert np.all(mass >= 0) and np.all((tau21 >= 0) & (tau21 <= 1)) and np.all(np.isfinite(np.asarray(jet.msd)))


def test_jets_from_a_reference_follow_its_pt_reproduce_by_seed_and_compare_with_real_jets(
    flow_workspace: Workspace, jet_cloud: CallOutcome, qcd_jets: str
) -> None:
    """With reference=<jets>, one jet per reference jet at its pT and axis; same seed (any batch size) gives
    the same jets, another seed other ones; compare_samples faces them with the real jets."""
    generator = jet_cloud.result.generator.id
    first = sample(flow_workspace, generator, reference=qcd_jets, seed=5, ode_steps=10).result
    again = call_tool("sample_generator", {"generator": generator, "reference": qcd_jets, "seed": 5, "ode_steps": 10,
                                           "batch_size": 37}, workspace=flow_workspace, use_cache=False).result
    other = sample(flow_workspace, generator, reference=qcd_jets, seed=6, ode_steps=10).result
    assert first.n_samples == 300 and first.condition_source == "reference"
    a, b, c = (_leading(r.samples.path) for r in (first, again, other))
    np.testing.assert_allclose(np.asarray(ak.flatten(a.constituents.pt)), np.asarray(ak.flatten(b.constituents.pt)),
                               rtol=1e-4, atol=1e-3)
    assert not np.array_equal(np.asarray(a.n_constituents), np.asarray(c.n_constituents))
    real = read_parquet(Workspace(flow_workspace.root).get_artifact(qcd_jets).path).jets[:, 0]
    assert np.median(np.asarray(a.pt) / np.asarray(real.pt)) == pytest.approx(1.0, abs=0.1)
    assert np.median(np.abs(np.asarray(a.eta) - np.asarray(real.eta))) < 0.15  # the axis is recomputed
    compared = call_tool("compare_samples", {"reference": qcd_jets, "candidate": first.samples.id},
                         workspace=flow_workspace).result
    assert [f.name for f in compared.features] == ["jets.pt[0]", "jets.eta[0]", "jets.mass[0]", "jets.tau21[0]",
                                                   "jets.tau32[0]", "jets.msd[0]", "jets.n_constituents[0]"]
    assert compared.n_candidate == 300 and 0.0 <= compared.classifier_auc_gbdt <= 1.0


def test_the_exported_velocity_network_matches_torch_on_a_random_input(jet_cloud: CallOutcome) -> None:
    """velocity.onnx (onnxruntime) gives torch's velocity on a random batch of another size: atol 1e-4."""
    from physagent.tools.generate._architectures import load_generator
    from physagent.tools.generate._export import run_onnx

    artifact = jet_cloud.result.generator
    model, _ = load_generator(artifact)
    rng = np.random.default_rng(0)
    inputs = {"points": rng.standard_normal((7, 23, 3)).astype(np.float32),
              "mask": (rng.uniform(size=(7, 23)) < 0.7).astype(np.float32),
              "t": rng.uniform(size=(7, 1)).astype(np.float32),
              "condition": rng.uniform(400, 800, size=(7, 1)).astype(np.float32)}
    inputs["mask"][:, 0] = 1.0
    exported = run_onnx(artifact.directory / "velocity.onnx", inputs, "velocity")
    with torch.no_grad():
        expected = model.velocity_step(*(torch.from_numpy(inputs[k]) for k in ("points", "t", "condition", "mask")))
    assert exported.shape == (7, 23, 3) and np.abs(exported).max() > 1e-3
    np.testing.assert_allclose(exported, expected.numpy(), rtol=0, atol=1e-4)


def _constituent_jets(workspace: Workspace, n: int, with_constituents: bool) -> str:
    """n events with one jet each (pT 400–600 GeV), with or without 5 constituents per jet."""
    rng = np.random.default_rng(n)
    events = []
    for _ in range(n):
        pt = float(rng.uniform(400, 600))
        jet = {"pt": pt, "eta": float(rng.normal()), "phi": 0.0, "mass": 50.0}
        if with_constituents:
            jet["constituents"] = [{"pt": pt / 5, "deta": float(d), "dphi": 0.0} for d in rng.normal(0, 0.1, 5)]
        events.append([jet])
    array = ak.Array({"event": np.arange(n), "jets": events})
    return _commit(workspace, "jets", lambda d: write_parquet(array, d / "jets.parquet"), "jets.parquet", "jets", {})


def test_jet_point_clouds_refuse_features_missing_constituents_and_too_few_jets(
    flow_workspace: Workspace, jet_cloud: CallOutcome
) -> None:
    """Features with pointcloud, jets without constituents, 6 jets, caloflow on jets; showers' energy or a pT
    outside the trained range at sampling: each names the fix, nothing is written."""
    bare = _constituent_jets(flow_workspace, 50, with_constituents=False)
    few = _constituent_jets(flow_workspace, 6, with_constituents=True)
    before = len(flow_workspace.list_artifacts("generator"))
    for source, arguments, message in (
        (bare, {"features": ["jets.mass[0]"]}, r"apply to model='flow' only; pointcloud always generates the "
                                               r"leading jet's constituents .* or use model='flow'"),
        (bare, {}, r"has no jet constituents .* Cluster the events with cluster_jets"),
        (few, {}, r"has 6 leading jets with constituents \(0 events without\); a generator needs at least 10"),
    ):
        with pytest.raises(ToolInputError, match=message):
            train(flow_workspace, source, model="pointcloud", size="tiny", epochs=1, **arguments)
    with pytest.raises(ToolInputError, match=r"is a jets artifact. .*or model='pointcloud' for the constituents"):
        train(flow_workspace, bare, model="caloflow", size="tiny", epochs=1)
    assert len(flow_workspace.list_artifacts("generator")) == before
    jets_before = len(flow_workspace.list_artifacts("jets"))
    for arguments, message in (
        ({"energy_min_gev": 10.0}, r"applies to shower generators; this one makes jets"),
        ({"condition_values": {"jets.pt[0]": [5000.0]}}, r"outside the range the generator was trained on"),
        ({}, r"condition_values=None is needed: the generator is conditioned on \['jets.pt\[0\]'\]"),
    ):
        with pytest.raises(ToolInputError, match=message):
            sample(flow_workspace, jet_cloud.result.generator.id, n=5, **arguments)
    assert len(flow_workspace.list_artifacts("jets")) == jets_before
