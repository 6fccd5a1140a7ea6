"""Trigger taggers (mlp, deepsets) for hls4ml: they train and score, and their FPGA network reproduces the scores."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import torch
from test_taggers import TOP_DATASET, _test_scores, _without_pid, top_dataset, train  # noqa: F401 (fixture)

from physagent.tools import CallOutcome, ToolInputError, Workspace, call_tool
from physagent.tools._io import read_parquet
from physagent.tools.tag import inputs_for, load_tagger, score_model
from physagent.tools.tag._features import JET_FEATURES
from physagent.tools.tag._trigger import TRIGGER_KINDS, trigger_input, trigger_network

# tiny networks, a few epochs on the shared top-vs-QCD sample of test_taggers.py
TRAINING = {"mlp": {"epochs": 10, "learning_rate": 3e-3}, "deepsets": {"epochs": 8, "learning_rate": 3e-3}}
HLS4ML_LAYERS = {"mlp": {torch.nn.Linear, torch.nn.ReLU},
                 "deepsets": {torch.nn.Conv1d, torch.nn.ReLU, torch.nn.AvgPool1d, torch.nn.Flatten, torch.nn.Linear}}

pytestmark = pytest.mark.slow  # the generated top-vs-QCD sample takes ≈ 30 s


def train_trigger(workspace: Workspace, dataset: CallOutcome, kind: str) -> CallOutcome:
    """Train (or fetch from the cache) the tiny trigger model of ``kind``."""
    arguments = {"dataset": dataset.result.dataset.id, "model": kind, "size": "tiny", "batch_size": 64,
                 "seed": 5} | TRAINING[kind]
    return call_tool("train_tagger", arguments, workspace=workspace)


def _test_jets(dataset: CallOutcome, model: object) -> ak.Array:
    return read_parquet(dataset.result.dataset.path)[np.asarray(_test_scores(model).row)]


@pytest.mark.parametrize("kind", TRIGGER_KINDS)
def test_each_trigger_tagger_trains_beats_chance_and_exports(
    kind: str, shared_workspace: Workspace, top_dataset: CallOutcome  # noqa: F811
) -> None:
    """mlp and deepsets reach test AUC > 0.85 and export to ONNX and TorchScript agreeing within 1e-5."""
    result = train_trigger(shared_workspace, top_dataset, kind).result
    assert result.test_auc > 0.85, f"{kind}: test AUC {result.test_auc:.3f}"
    card = result.model.metadata
    assert result.features == card["features"]["set"] == {"mlp": "substructure", "deepsets": "kinematic+pid"}[kind]
    assert card["reference"].startswith({"mlp": "arXiv:1804.06913", "deepsets": "arXiv:1703.06114"}[kind])
    assert result.export_problems == [] and set(result.exported) == {"model.onnx", "model.torchscript.pt"}
    export = card["export"]
    assert export["inputs"] == [card["trigger"]["input"]] == [{"mlp": "jet", "deepsets": "x"}[kind]]
    assert export["onnx"]["max_abs_diff_vs_torch"] < 1e-5 and export["torchscript"]["max_abs_diff_vs_torch"] < 1e-5


def test_apply_and_evaluate_reproduce_the_training_scores(
    shared_workspace: Workspace, top_dataset: CallOutcome  # noqa: F811
) -> None:
    """evaluate_tagger gives the train-time test AUC, and apply_tagger the saved test scores, for both kinds."""
    trained = [train_trigger(shared_workspace, top_dataset, kind).result for kind in TRIGGER_KINDS]
    evaluation = call_tool("evaluate_tagger", {"models": [t.model.id for t in trained]},
                           workspace=shared_workspace).result
    assert [r.kind for r in evaluation.results] == list(TRIGGER_KINDS)
    for row, result in zip(evaluation.results, trained, strict=True):
        assert row.auc == pytest.approx(result.test_auc, abs=1e-9)
        applied = call_tool("apply_tagger", {"model": result.model.id, "jets": top_dataset.result.dataset.id},
                            workspace=shared_workspace).result
        table = ak.from_parquet(applied.scores.path)
        saved = _test_scores(result.model)
        by_row = dict(zip(np.asarray(table.row).tolist(), np.asarray(table.score).tolist(), strict=True))
        np.testing.assert_allclose([by_row[r] for r in np.asarray(saved.row).tolist()], np.asarray(saved.score),
                                   atol=1e-6)


def test_mlp_standardisation_comes_from_the_training_split(
    shared_workspace: Workspace, top_dataset: CallOutcome  # noqa: F811
) -> None:
    """The card's jet_standardisation is the mean and std of the training jets' JET_FEATURES, not of all jets."""
    card = train_trigger(shared_workspace, top_dataset, "mlp").result.model.metadata
    jets = read_parquet(top_dataset.result.dataset.path)
    features = np.stack([np.asarray(jets[name], dtype=np.float64) for name in JET_FEATURES], axis=1)
    training = features[np.asarray(jets.split) == 0]
    standardisation = card["jet_standardisation"]
    assert standardisation["features"] == card["features"]["jet"] == list(JET_FEATURES)
    assert card["trigger"]["input_shape"] == [len(JET_FEATURES)]
    np.testing.assert_allclose(standardisation["mean"], training.astype(np.float32).mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(standardisation["std"], training.astype(np.float32).std(axis=0), rtol=1e-5)
    assert not np.allclose(standardisation["mean"], features.mean(axis=0), rtol=1e-7)


@pytest.mark.parametrize("kind", TRIGGER_KINDS)
def test_trigger_network_on_trigger_input_gives_the_score_model_scores(
    kind: str, shared_workspace: Workspace, top_dataset: CallOutcome  # noqa: F811
) -> None:
    """softmax(trigger_network(trigger_input(jets)))[:, 1] equals score_model's scores (and the saved ones)."""
    model = train_trigger(shared_workspace, top_dataset, kind).result.model
    jets = _test_jets(top_dataset, model)
    network, card = trigger_network(model)
    array = trigger_input(card, jets)
    assert array.dtype == np.float32 and array.shape == (len(jets), *card["trigger"]["input_shape"])
    assert not network.training and isinstance(network, torch.nn.Sequential)
    with torch.no_grad():
        logits = network(torch.from_numpy(array))
    assert logits.shape == (len(jets), 2)
    scores = torch.softmax(logits, dim=1)[:, 1].numpy()
    fitted, _ = load_tagger(model)
    features = card["features"]
    reference = score_model(fitted, kind, inputs_for(jets, features["n_constituents"], features["set"]))
    np.testing.assert_allclose(scores, reference, atol=1e-6)
    np.testing.assert_allclose(scores, np.asarray(_test_scores(model).score), atol=1e-6)
    events = ak.zip({"jets": ak.unflatten(jets, [len(jets) - 3, 3])}, depth_limit=1)  # a jets artifact's layout
    np.testing.assert_array_equal(trigger_input(card, events), array)


def test_deepsets_input_is_zero_in_padded_particle_slots(
    shared_workspace: Workspace, top_dataset: CallOutcome  # noqa: F811
) -> None:
    """The deepsets input is x (n, F, P) with P the dataset's constituents, exactly zero in empty slots."""
    model = train_trigger(shared_workspace, top_dataset, "deepsets").result.model
    jets = _test_jets(top_dataset, model)
    network, card = trigger_network(model)
    x = trigger_input(card, jets)
    n_features, n_particles = card["trigger"]["input_shape"]
    assert n_particles == TOP_DATASET["n_constituents"] == card["architecture"]["n_particles"]
    assert n_features == len(card["features"]["particle"]) == network[0].in_channels
    real = np.asarray(ak.num(jets.constituents))[:, None] > np.arange(n_particles)[None, :]
    assert (~real).any() and np.all(x.transpose(0, 2, 1)[~real] == 0.0)


@pytest.mark.parametrize("kind", TRIGGER_KINDS)
def test_trigger_networks_hold_only_layers_hls4ml_converts(
    kind: str, shared_workspace: Workspace, top_dataset: CallOutcome  # noqa: F811
) -> None:
    """The mlp is Linear and ReLU only; the deepsets Conv1d (k=1), ReLU, AvgPool1d over all slots, Flatten, Linear."""
    network, card = trigger_network(train_trigger(shared_workspace, top_dataset, kind).result.model)
    layers = list(network)
    assert {type(layer) for layer in layers} == HLS4ML_LAYERS[kind]
    assert all(not list(layer.children()) for layer in layers)  # flat: no nested containers
    assert isinstance(layers[-1], torch.nn.Linear) and layers[-1].out_features == 2
    if kind == "deepsets":
        assert all(conv.kernel_size == (1,) for conv in layers if isinstance(conv, torch.nn.Conv1d))
        pool = next(layer for layer in layers if isinstance(layer, torch.nn.AvgPool1d))
        assert pool.kernel_size == (card["features"]["n_constituents"],)


def test_trigger_network_refuses_a_model_hls4ml_cannot_take(
    shared_workspace: Workspace, top_dataset: CallOutcome  # noqa: F811
) -> None:
    """A BDT is refused by trigger_network and trigger_input with its kind, why, and the kinds that work."""
    bdt = train(shared_workspace, top_dataset, "bdt").result.model
    with pytest.raises(ToolInputError, match=r"is a 'bdt' tagger, which hls4ml cannot convert: it is a boosted-tree "
                                             r"ensemble.*Only mlp and deepsets"):
        trigger_network(bdt)
    with pytest.raises(ToolInputError, match=r"trigger_input: model=.*is a 'bdt' tagger"):
        trigger_input(dict(bdt.metadata), read_parquet(top_dataset.result.dataset.path))


def test_trigger_input_refuses_jets_without_the_trained_features(
    shared_workspace: Workspace, top_dataset: CallOutcome  # noqa: F811
) -> None:
    """Jets without particle ids (for a kinematic+pid deepsets) or without msd (for the mlp) are refused."""
    jets = read_parquet(top_dataset.result.dataset.path)
    deepsets = train_trigger(shared_workspace, top_dataset, "deepsets").result.model.metadata
    with pytest.raises(ToolInputError, match=r"trained with features 'kinematic\+pid'"):
        trigger_input(deepsets, _without_pid(jets))
    mlp = train_trigger(shared_workspace, top_dataset, "mlp").result.model.metadata
    no_msd = ak.zip({name: jets[name] for name in jets.fields if name != "msd"}, depth_limit=1)
    with pytest.raises(ToolInputError, match="has no msd, which model mlp"):
        trigger_input(mlp, no_msd)
