"""autoencoder_search on the toy anomaly dataset: it trains, scores every event, exports and reloads identically."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import onnx
import pytest
from anomaly_toy import WINDOWS, toy_anomaly_dataset

from physagent.tools import Artifact, CallOutcome, ToolInputError, Workspace, call_tool
from physagent.tools.anomaly._autoencoder import ONNX_FILE, SCORE_ONNX_FILE, load_autoencoder, run_onnx
from physagent.tools.anomaly._search_data import FEATURES

SMALL = {"epochs": 6, "batch_size": 256, "learning_rate": 3e-3, "seed": 3}


@pytest.fixture(scope="module")
def toy(shared_workspace: Workspace) -> Artifact:
    """A small toy dataset (8,000 background events before the split, S/B = 2 %)."""
    return toy_anomaly_dataset(shared_workspace, n_background=8_000, n_signal=1_000, s_over_b=0.02, seed=5)


@pytest.fixture(scope="module")
def trained(shared_workspace: Workspace, toy: Artifact) -> CallOutcome:
    """The autoencoder trained a few epochs on every observed event of the toy."""
    return call_tool("autoencoder_search", {"dataset": toy.id, "train_on": "all", **SMALL}, workspace=shared_workspace)


def observed(toy: Artifact) -> ak.Array:
    return ak.from_parquet(toy.directory / "data.parquet")


def features(table: ak.Array, dtype: type = np.float32) -> np.ndarray:
    return np.column_stack([np.asarray(table[name], dtype=dtype) for name in FEATURES])


def test_autoencoder_trains_and_scores_every_observed_event(trained: CallOutcome, toy: Artifact) -> None:
    """The loss falls, every data event gets one finite non-negative score, and the test metrics are filled in."""
    result = trained.result
    history = result.model.metadata["training"]["history"]
    assert history[-1]["train_loss"] < 0.8 * history[0]["train_loss"]
    assert result.best_val_loss <= history[0]["val_loss"]
    assert result.epochs_run == len(history) <= SMALL["epochs"] and 1 <= result.best_epoch <= result.epochs_run
    table = ak.from_parquet(result.scores.path)
    data = observed(toy)
    assert len(table) == len(data) == result.n_data_events_seen == result.n_train_events
    scores = np.asarray(table.score)
    assert np.all(np.isfinite(scores)) and np.all(scores >= 0)
    assert np.array_equal(np.asarray(table.mjj_gev), np.asarray(data.mjj_gev))
    assert np.array_equal(np.asarray(table.in_signal_region), WINDOWS.in_signal_region(np.asarray(data.mjj_gev)))
    assert result.method == "autoencoder" and not result.is_reference and result.train_on == "all"
    assert 0.0 <= result.auc <= 1.0 and result.n_test_signal > 0 and result.n_test_background > 0
    assert result.n_parameters == 4 * 32 + 32 + 32 * 16 + 16 + 16 * 2 + 2 + 2 * 16 + 16 + 16 * 32 + 32 + 32 * 4 + 4
    seen = " ".join(result.inputs_seen)
    assert "label" not in seen and "reference" not in seen and "mjj_gev" not in seen  # trained on all: m_jj unread
    assert (result.model.directory / "training_curve.png").stat().st_size > 5_000


def test_model_card_records_features_preprocessing_and_architecture(trained: CallOutcome) -> None:
    """card.json holds what is needed to rebuild the score: features, log/standardisation, widths, training."""
    card = json.loads((trained.result.model.directory / "card.json").read_text())
    assert card["features"] == list(FEATURES)
    assert card["preprocessing"]["log"] == [True, True, False, False]  # masses in GeV are log-transformed
    assert card["architecture"]["layers"] == [4, 32, 16, 2, 16, 32, 4]
    assert card["training"]["seed"] == SMALL["seed"] and card["training"]["threads"] == 1
    assert "timing" not in card and "id" not in card["dataset"]  # nothing that differs between reruns


def test_onnx_exports_match_torch_and_use_only_dense_layers(trained: CallOutcome, toy: Artifact) -> None:
    """score.onnx reproduces the table's scores from raw features; model.onnx is Gemm/Relu only (for hls4ml)."""
    result = trained.result
    assert set(result.exported) == {ONNX_FILE, SCORE_ONNX_FILE} and result.export_problems == []
    directory = result.model.directory
    x = features(observed(toy))
    onnx_scores = run_onnx(directory / SCORE_ONNX_FILE, {"x": x}, "score")
    torch_scores = np.asarray(ak.from_parquet(result.scores.path).score)
    np.testing.assert_allclose(onnx_scores, torch_scores, rtol=1e-4, atol=1e-5)
    ops = {node.op_type for node in onnx.load(directory / ONNX_FILE).graph.node}
    assert ops <= {"Gemm", "Relu"}, ops
    for entry in result.model.metadata["export"].values():
        assert entry["max_abs_diff_vs_torch"] < 1e-4


def test_saved_model_reloads_to_identical_scores(trained: CallOutcome, toy: Artifact) -> None:
    """Loading model.pt with the card's preprocessing gives bit-identical scores to the tool's."""
    from physagent.tools.anomaly._autoencoder import reconstruction_error

    model, prep = load_autoencoder(trained.result.model.directory, trained.result.model.metadata)
    scores = reconstruction_error(model, prep.apply(features(observed(toy), np.float64)))
    np.testing.assert_array_equal(scores, np.asarray(ak.from_parquet(trained.result.scores.path).score))


def test_same_seed_gives_identical_scores(shared_workspace: Workspace, toy: Artifact, trained: CallOutcome) -> None:
    """A rerun with the cache off trains to the same weights: identical scores and model file hashes."""
    again = call_tool("autoencoder_search", {"dataset": toy.id, "train_on": "all", **SMALL}, workspace=shared_workspace,
                      use_cache=False).result
    np.testing.assert_array_equal(np.asarray(ak.from_parquet(again.scores.path).score),
                                  np.asarray(ak.from_parquet(trained.result.scores.path).score))
    assert again.model.sha256 == trained.result.model.sha256


def test_sideband_training_reads_mjj_only_to_pick_the_sidebands(shared_workspace: Workspace, toy: Artifact) -> None:
    """train_on='sidebands' trains on the sideband events only and says it read m_jj to find them."""
    result = call_tool("autoencoder_search", {"dataset": toy.id, "train_on": "sidebands", **SMALL},
                       workspace=shared_workspace).result
    mjj = np.asarray(observed(toy).mjj_gev)
    assert result.n_train_events == int(WINDOWS.in_sidebands(mjj).sum()) < len(mjj)
    assert result.n_data_events_seen == len(mjj)
    assert any("mjj_gev" in line and "sideband" in line for line in result.inputs_seen)
    assert result.model.metadata["training"]["n_train"] + result.model.metadata["training"]["n_validation"] == \
        result.n_train_events


def test_sideband_training_keeps_finding_a_signal_that_training_on_all_events_learns(workspace: Workspace) -> None:
    """At S/B = 2 % an autoencoder trained on all events learns to reconstruct the signal (AUC near 0.5);
    trained on the sidebands, where the signal is not, it still singles it out (AUC > 0.9)."""
    dataset = toy_anomaly_dataset(workspace, n_background=10_000, n_signal=1_000, s_over_b=0.02, seed=1)
    auc = {train_on: call_tool("autoencoder_search", {"dataset": dataset.id, "epochs": 30, "train_on": train_on},
                               workspace=workspace).result.auc for train_on in ("all", "sidebands")}
    assert auc["sidebands"] > 0.9, auc
    assert auc["all"] < auc["sidebands"] - 0.2, auc


def test_autoencoder_scores_feed_bump_hunt(shared_workspace: Workspace, trained: CallOutcome) -> None:
    """The scores table goes straight into bump_hunt, which reads the windows from it."""
    hunt = call_tool("bump_hunt", {"source": trained.result.scores.id, "selection_efficiency": 0.2},
                     workspace=shared_workspace).result
    assert hunt.method == "autoencoder" and hunt.signal_region_gev == list(WINDOWS.signal_region_gev)
    assert hunt.after is not None and hunt.after.n_events < hunt.before.n_events


def test_autoencoder_refuses_bad_settings_with_clear_messages(shared_workspace: Workspace, toy: Artifact) -> None:
    """A bottleneck as wide as the input, m_jj or the truth label as a feature are input errors that say why."""
    with pytest.raises(ToolInputError, match=r"latent_dim=4 must be smaller than the 4 features.*latent_dim ≤ 3"):
        call_tool("autoencoder_search", {"dataset": toy.id, "latent_dim": 4}, workspace=shared_workspace)
    with pytest.raises(ToolInputError, match="the variable the search scans"):
        call_tool("autoencoder_search", {"dataset": toy.id, "features": ["mjj_gev", "mj1_gev"]},
                  workspace=shared_workspace)
    with pytest.raises(ToolInputError, match="may not see truth labels"):
        call_tool("autoencoder_search", {"dataset": toy.id, "features": ["label", "mj1_gev", "tau21_j1"],
                                         "latent_dim": 1}, workspace=shared_workspace)
    with pytest.raises(ToolInputError, match="must be greater than or equal to 1"):
        call_tool("autoencoder_search", {"dataset": toy.id, "latent_dim": 0}, workspace=shared_workspace)
