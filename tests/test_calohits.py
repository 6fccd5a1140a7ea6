"""calohits: a shower surrogate whose sampling cost grows with the hits, trained and sampled on the full grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_generators import showers_artifact  # writes a showers artifact as a loading tool would

from physagent.tools import CallOutcome, ToolInputError, Workspace, call_tool
from physagent.tools.generate._architectures import load_generator
from physagent.tools.generate.train import _auto_shower_model
from physagent.tools.simulate._calo import CaloGeometry, Showers, read_showers

torch.set_num_threads(1)
FULL = CaloGeometry()  # the simulator's default 30 × 24 × 24 grid
TRAINING = {"model": "calohits", "size": "tiny", "epochs": 15, "batch_size": 64, "learning_rate": 3e-3, "seed": 1}


pytestmark = pytest.mark.usefixtures("one_worker")


@pytest.fixture(scope="module")
def hits_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("calohits"))


def simulate(workspace: Workspace, n: int, seed: int) -> CallOutcome:
    return call_tool("simulate_showers", {"n_showers": n, "particle": "photon", "energy_min_gev": 10.0,
                                          "energy_max_gev": 100.0, "seed": seed}, workspace=workspace)


@pytest.fixture(scope="module")
def full_grid_showers(hits_workspace: Workspace) -> str:
    """600 simulated photon showers (10–100 GeV) on the full grid."""
    return simulate(hits_workspace, 600, seed=11).result.showers.id


@pytest.fixture(scope="module")
def hits_generator(hits_workspace: Workspace, full_grid_showers: str) -> CallOutcome:
    """A tiny calohits model of the 600 full-grid showers."""
    return call_tool("train_generator", {"source": full_grid_showers} | TRAINING, workspace=hits_workspace)


def _noise(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Incident energies (15–90 GeV), stage-1 normals and one 64-bit key per shower."""
    rng = np.random.default_rng(seed)
    energies = torch.from_numpy(np.exp(rng.uniform(np.log(15.0), np.log(90.0), n))).float()
    z = torch.from_numpy(rng.standard_normal((n, FULL.n_layers))).float()
    return energies, z, rng.bit_generator.random_raw(n)


def test_calohits_trains_on_the_full_grid_and_reports_why_it_has_no_onnx_export(hits_generator: CallOutcome) -> None:
    """A few epochs on 30 × 24 × 24 showers give a finite loss, a card with ε, and the missing export explained."""
    trained = hits_generator.result
    card = trained.generator.metadata
    geometry = card["showers"]["geometry"]
    assert trained.model == "calohits" and (geometry["n_layers"], geometry["n_a"], geometry["n_b"]) == (30, 24, 24)
    assert np.isfinite(trained.validation_loss) and trained.n_train + trained.n_validation == 600
    assert card["showers"]["noise_mev"] > 0 and trained.n_parameters > 1000
    assert trained.exported == []
    assert len(trained.export_problems) == 1 and "numba loop" in trained.export_problems[0]


def test_calohits_layers_hold_their_stage_one_energy_and_hits_stay_on_the_templates_support(
    hits_generator: CallOutcome,
) -> None:
    """Each sampled layer sums to its stage-1 energy E_l, less cells below ε; every hit lies in a voxel the
    training showers hit (the templates' support); cells are 0 or at least ε."""
    model, _ = load_generator(hits_generator.result.generator)
    energies, z, keys = _noise(300, seed=0)
    with torch.inference_mode():
        cells = model.sample(energies, z, keys)
        _, _, layer_e = model.sample_layer_energies(energies, z)
    epsilon = float(model.noise_mev)
    assert cells.shape == (300, *FULL.grid_shape) and torch.all(torch.isfinite(cells))
    assert torch.all((cells == 0) | (cells >= epsilon))
    sums, empty = cells.sum((2, 3)).double(), layer_e.double() < epsilon
    assert torch.all(sums[empty] == 0) and bool((~empty).any())
    deficit = (layer_e.double() - sums)[~empty]
    assert torch.all(deficit > -1e-5 * layer_e[~empty]) and torch.all(deficit < FULL.n_a * FULL.n_b * epsilon)
    assert float((deficit.abs() / layer_e[~empty]).median()) < 1e-5
    outside = (cells.view(300, FULL.n_layers, -1) > 0) & ~model.support
    assert not bool(outside.any()) and bool((~model.support).any())


def test_calohits_samples_do_not_depend_on_batch_size_and_reload_identically(
    hits_workspace: Workspace, hits_generator: CallOutcome
) -> None:
    """One seed gives the same showers at batch sizes 1000 and 37; two loads of the artifact give identical cells
    for the same noise; another seed gives other showers."""
    generator = hits_generator.result.generator

    def draw(batch_size: int, seed: int = 4) -> np.ndarray:
        result = call_tool("sample_generator", {"generator": generator.id, "n": 150, "energy_min_gev": 20.0,
                                                "energy_max_gev": 80.0, "batch_size": batch_size, "seed": seed},
                           workspace=hits_workspace, use_cache=False).result
        assert result.model == "calohits" and result.n_samples == 150
        return read_showers(result.samples.path).cells_mev

    whole, pieces, other = draw(1000), draw(37), draw(1000, seed=5)
    assert np.mean((whole > 0) == (pieces > 0)) > 0.9999  # a flip only where float32 rounding moves a count
    np.testing.assert_allclose(pieces.sum((2, 3)), whole.sum((2, 3)), rtol=1e-4, atol=1e-3)
    assert not np.array_equal(whole > 0, other > 0)
    (first, _), (second, _) = load_generator(generator), load_generator(generator)
    energies, z, keys = _noise(64, seed=2)
    with torch.inference_mode():
        assert torch.equal(first.sample(energies, z, keys), second.sample(energies, z, keys))


def test_calohits_is_refused_for_another_grid_a_maf_and_too_many_voxels(
    hits_workspace: Workspace, hits_generator: CallOutcome
) -> None:
    """A reference of another grid, flow_kind='maf' and a 100 × 15 × 15 grid are refused, naming the fix."""
    coarse_id = call_tool("simulate_showers", {"n_showers": 12, "n_layers": 6, "n_cells": 10, "seed": 3},
                          workspace=hits_workspace).result.showers.id
    with pytest.raises(ToolInputError, match=r"has a 6×10×10 grid, but the generator makes 30×24×24 showers"):
        call_tool("sample_generator", {"generator": hits_generator.result.generator.id, "reference": coarse_id},
                  workspace=hits_workspace)
    with pytest.raises(ToolInputError, match=r"flow_kind='maf' applies to flow, caloflow and pointcloud; calohits'"):
        call_tool("train_generator", {"source": coarse_id, "model": "calohits", "flow_kind": "maf"},
                  workspace=hits_workspace)
    big = CaloGeometry(n_layers=100, n_a=15, n_b=15)
    large = showers_artifact(hits_workspace, Showers(np.full(12, 50.0), np.ones((12, *big.grid_shape),
                                                                                dtype=np.float32), big))
    before = len(hits_workspace.list_artifacts("generator"))
    with pytest.raises(ToolInputError, match=r"at most 20000 voxels; .* 100×15×15 = 22500. Use model='pointcloud'"):
        call_tool("train_generator", {"source": large, "model": "calohits"}, workspace=hits_workspace)
    assert len(hits_workspace.list_artifacts("generator")) == before


def test_calohits_matches_the_simulators_hit_count_and_longitudinal_centre_of_gravity(
    hits_workspace: Workspace, hits_generator: CallOutcome
) -> None:
    """On 400 held-out simulated showers, the sampled showers at the same energies have a mean number of hits
    within 10 % and an energy-weighted mean layer within 0.5 layers of the simulator's."""
    held_out = simulate(hits_workspace, 400, seed=12).result.showers.id
    drawn = call_tool("sample_generator", {"generator": hits_generator.result.generator.id, "reference": held_out,
                                           "seed": 1}, workspace=hits_workspace).result
    real = read_showers(hits_workspace.get_artifact(held_out).path).cells_mev
    fake = read_showers(drawn.samples.path).cells_mev

    def hits_and_depth(cells: np.ndarray) -> tuple[float, float]:
        layer_e = cells.sum((2, 3))
        depth = (layer_e * np.arange(FULL.n_layers)).sum(1) / layer_e.sum(1)
        return float((cells > 0).sum((1, 2, 3)).mean()), float(depth.mean())

    (real_hits, real_depth), (fake_hits, fake_depth) = hits_and_depth(real), hits_and_depth(fake)
    assert fake_hits == pytest.approx(real_hits, rel=0.10)
    assert fake_depth == pytest.approx(real_depth, abs=0.5)


def test_auto_picks_calohits_for_the_full_grid_and_pointcloud_when_asked_for_a_maf(
    hits_workspace: Workspace, full_grid_showers: str
) -> None:
    """model='auto' on 30 × 24 × 24 = 17,280 voxels trains calohits; with flow_kind='maf' (calohits has none) it
    falls back to pointcloud."""
    arguments = {"source": full_grid_showers, "size": "tiny", "epochs": 1, "export": False}
    auto = call_tool("train_generator", arguments, workspace=hits_workspace).result
    assert auto.model == "calohits" and auto.flow_kind == "nsf"
    assert _auto_shower_model(FULL.n_voxels, "maf") == "pointcloud"
    assert _auto_shower_model(600, "nsf") == "calofast" and _auto_shower_model(20_001, "nsf") == "pointcloud"
