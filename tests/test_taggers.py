"""Taggers on a small top-vs-QCD sample: each beats chance, numbers recompute, checkpoints and exports agree."""

from __future__ import annotations

import time
import uuid
import warnings

import awkward as ak
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from physagent.tools import Artifact, CallOutcome, CallRecord, ToolInputError, Workspace, call_tool
from physagent.tools._io import read_parquet, write_json, write_parquet
from physagent.tools.tag import inputs_for, load_tagger, score_model
from physagent.tools.tag._export import ONNX_FILE, TORCHSCRIPT_FILE, run_onnx

# the same arguments as in test_tag_dataset.py: whichever module runs first generates, the other hits the cache
TOP_DATASET = {"task": "top_vs_qcd", "n_jets_per_class": 700, "pt_min_gev": 500.0, "pt_max_gev": 600.0,
               "n_constituents": 32, "seed": 1}
NETWORKS = ("pfn", "efn", "part", "particlenet")
# tiny models, a few epochs: enough to beat chance clearly on truth-matched tops
TRAINING = {"pfn": {"epochs": 8, "learning_rate": 3e-3}, "efn": {"epochs": 8, "learning_rate": 3e-3},
            "part": {"epochs": 4}, "particlenet": {"epochs": 4}, "bdt": {}}

pytestmark = pytest.mark.slow  # every test here needs the generated top-vs-QCD sample (≈ 30 s) or a trained model


@pytest.fixture(scope="module")
def top_dataset(shared_workspace: Workspace) -> CallOutcome:
    """700 truth-matched top jets and 700 QCD jets, 500 < pT < 600 GeV, R = 0.8, 32 constituents."""
    return call_tool("make_jet_dataset", TOP_DATASET, workspace=shared_workspace)


def train(workspace: Workspace, dataset: CallOutcome, kind: str) -> CallOutcome:
    """Train (or fetch from the cache) the tiny model of ``kind`` on the shared dataset."""
    arguments = {"dataset": dataset.result.dataset.id, "model": kind, "size": "tiny", "batch_size": 64,
                 "seed": 5} | TRAINING[kind]
    return call_tool("train_tagger", arguments, workspace=workspace)


def _test_scores(model: Artifact) -> ak.Array:
    return ak.from_parquet(model.directory / "test_scores.parquet")


@pytest.mark.parametrize("kind", ["bdt", *NETWORKS])
def test_each_tagger_trains_and_beats_chance_clearly(
    kind: str, shared_workspace: Workspace, top_dataset: CallOutcome
) -> None:
    """Every model kind reaches test AUC > 0.85 and writes a complete model card and training curve."""
    result = train(shared_workspace, top_dataset, kind).result
    assert result.test_auc > 0.85, f"{kind}: test AUC {result.test_auc:.3f}"
    assert result.test_rejection_at_30 >= result.test_rejection_at_50 > 1.0
    card = result.model.metadata
    assert card["dataset"]["id"] == top_dataset.result.dataset.id
    assert card["dataset"]["sha256"] == top_dataset.result.dataset.sha256
    assert card["n_parameters"] == result.n_parameters > 0 and card["reference"]
    assert card["training"]["best_epoch"] == result.best_epoch <= result.epochs_run == len(card["training"]["history"])
    assert card["metrics"]["test"]["auc"] == pytest.approx(result.test_auc)
    assert (result.model.directory / "training_curve.png").stat().st_size > 5_000
    expected_features = {"bdt": "substructure", "efn": "efn"}.get(kind, "kinematic+pid")
    assert result.features == card["features"]["set"] == expected_features


def test_evaluation_numbers_recompute_from_the_saved_scores(
    shared_workspace: Workspace, top_dataset: CallOutcome
) -> None:
    """AUC and 1/ε_B from evaluate_tagger equal sklearn's on the saved scores, and train-time numbers."""
    trained = {kind: train(shared_workspace, top_dataset, kind).result for kind in TRAINING}
    evaluation = call_tool("evaluate_tagger", {"models": [t.model.id for t in trained.values()]},
                           workspace=shared_workspace).result
    scores = ak.from_parquet(evaluation.scores.path)
    labels, weights = np.asarray(scores.label), np.asarray(scores.weight)
    assert len(labels) == evaluation.n_signal + evaluation.n_background == 280
    for row, (kind, result) in zip(evaluation.results, trained.items(), strict=True):
        s = np.asarray(scores[row.column])
        assert row.auc == pytest.approx(roc_auc_score(labels, s, sample_weight=weights), abs=1e-12)
        fpr, tpr, _ = roc_curve(labels, s, drop_intermediate=False)
        background_jets = np.sum(labels == 0)  # no background left: the rejection is bounded by their number
        for efficiency, rejection in ((0.3, row.rejection_at_30), (0.5, row.rejection_at_50)):
            expected = 1.0 / max(np.interp(efficiency, tpr, fpr), 1.0 / background_jets)
            assert rejection == pytest.approx(expected, rel=1e-9)
        assert row.auc == pytest.approx(result.test_auc, abs=1e-9), kind  # same jets, reloaded model
    assert evaluation.best_model == max(evaluation.results, key=lambda r: r.auc).model
    assert evaluation.table.count("\n") == 1 + len(TRAINING) and "1/ε_B @ ε_S=0.3" in evaluation.table
    assert evaluation.roc_plot.path.stat().st_size > 10_000


@pytest.mark.parametrize("kind", ["bdt", *NETWORKS])
def test_checkpoint_round_trip_gives_identical_scores(
    kind: str, shared_workspace: Workspace, top_dataset: CallOutcome
) -> None:
    """A model reloaded from its artifact scores the test jets exactly as the trained model did."""
    model = train(shared_workspace, top_dataset, kind).result.model
    saved = _test_scores(model)
    fitted, card = load_tagger(model)
    jets = read_parquet(top_dataset.result.dataset.path)[np.asarray(saved.row)]
    again = score_model(fitted, kind, inputs_for(jets, card["features"]["n_constituents"], card["features"]["set"]))
    assert np.array_equal(again, np.asarray(saved.score))


def test_retraining_reproduces_the_model_artifact_byte_for_byte(
    shared_workspace: Workspace, top_dataset: CallOutcome
) -> None:
    """Rerunning a recorded train_tagger call (same seed, same threads) gives identical weights and exports."""
    first = train(shared_workspace, top_dataset, "pfn").result.model
    arguments = {"dataset": top_dataset.result.dataset.id, "model": "pfn", "size": "tiny", "batch_size": 64,
                 "seed": 5} | TRAINING["pfn"]
    again = call_tool("train_tagger", arguments, workspace=shared_workspace, use_cache=False).result.model
    assert again.id != first.id and again.sha256 == first.sha256
    assert {"model.pt", "model.onnx", "model.torchscript.pt", "card.json"} <= set(again.files)


@pytest.mark.parametrize("kind", NETWORKS)
def test_onnx_and_torchscript_exports_match_pytorch(
    kind: str, shared_workspace: Workspace, top_dataset: CallOutcome
) -> None:
    """model.onnx in onnxruntime and model.torchscript.pt reproduce the PyTorch scores within 1e-5."""
    model = train(shared_workspace, top_dataset, kind).result.model
    export = model.metadata["export"]
    assert export["onnx"]["max_abs_diff_vs_torch"] < 1e-5 and export["torchscript"]["max_abs_diff_vs_torch"] < 1e-5
    assert train(shared_workspace, top_dataset, kind).result.export_problems == []
    saved = _test_scores(model)
    jets = read_parquet(top_dataset.result.dataset.path)[np.asarray(saved.row)]
    features = model.metadata["features"]
    inputs = inputs_for(jets, features["n_constituents"], features["set"])
    feed = {name: getattr(inputs, name) for name in export["inputs"]}
    np.testing.assert_allclose(run_onnx(model.directory / ONNX_FILE, feed), np.asarray(saved.score), atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 steers users to torch.export
        scripted = torch.jit.load(str(model.directory / TORCHSCRIPT_FILE))
    with torch.no_grad():
        traced = scripted(*(torch.from_numpy(feed[name]) for name in export["inputs"])).numpy()
    np.testing.assert_allclose(traced, np.asarray(saved.score), atol=1e-5)


def test_apply_tagger_scores_every_jet_of_a_jets_artifact(
    shared_workspace: Workspace, top_dataset: CallOutcome, ttbar_sample: CallOutcome
) -> None:
    """apply_tagger scores cluster_jets output jet by jet and says how many lie outside the training window."""
    jets = call_tool("cluster_jets", {"events": ttbar_sample.result.events.id, "radius": 0.8, "pt_min_gev": 300.0},
                     workspace=shared_workspace).result
    model = train(shared_workspace, top_dataset, "pfn").result.model
    applied = call_tool("apply_tagger", {"model": model.id, "jets": jets.jets.id}, workspace=shared_workspace).result
    table = ak.from_parquet(applied.scores.path)
    assert applied.n_jets == len(table) == jets.n_jets
    assert np.all((np.asarray(table.score) >= 0) & (np.asarray(table.score) <= 1))
    assert 0.0 < applied.outside_training_window < 1.0
    on_dataset = call_tool("apply_tagger", {"model": model.id, "jets": top_dataset.result.dataset.id},
                           workspace=shared_workspace).result
    rows = ak.from_parquet(on_dataset.scores.path)
    test = np.asarray(rows.split) == 2
    in_window = (np.asarray(table.pt) > 500) & (np.asarray(table.pt) < 600)
    top_like = in_window & (np.asarray(table.mass) > 140) & (np.asarray(table.mass) < 200)
    qcd_test = np.asarray(rows.score)[test & (np.asarray(rows.label) == 0)]
    assert np.asarray(table.score)[top_like].mean() > qcd_test.mean() + 0.2  # ttbar jets of top mass look like tops
    assert np.array_equal(np.asarray(rows.score)[test][np.argsort(np.asarray(rows.row)[test])],
                          np.asarray(_test_scores(model).score)[np.argsort(np.asarray(_test_scores(model).row))])


# --- bad input: clear errors before training starts -----------------------------------------


def _forge_dataset(workspace: Workspace, jets: ak.Array, card: dict) -> str:
    """Register ``jets`` as a dataset artifact directly (the way a corrupted or foreign file would look)."""
    with workspace.staging_area() as staging:
        pending = workspace.new_pending("dataset", staging)
        write_parquet(jets, pending.directory / "dataset.parquet")
        write_json(card, pending.directory / "card.json")
        pending.finish("dataset.parquet", "forged for a test", card)
        record = CallRecord(id=f"c-{uuid.uuid4().hex[:10]}", seq=0, tool="test", tool_version="1", inputs={},
                            input_artifacts={}, outputs=[pending.id], result={}, seed=None, started=time.time(),
                            wall_s=0.0, packages={}, cache_key=uuid.uuid4().hex, cached_from=None)
        workspace.commit([pending], record)
    return pending.id


def _variant(dataset: CallOutcome, workspace: Workspace, change: object) -> str:
    jets = read_parquet(dataset.result.dataset.path)
    return _forge_dataset(workspace, change(jets), dataset.result.dataset.metadata)


def _with(jets: ak.Array, **fields: object) -> ak.Array:
    return ak.zip({name: jets[name] for name in jets.fields} | fields, depth_limit=1)


def _nan_in_constituent_pt(jets: ak.Array) -> ak.Array:
    counts = ak.num(jets.constituents)
    pt = np.asarray(ak.flatten(jets.constituents.pt)).copy()
    pt[5] = np.nan
    constituents = ak.zip({name: jets.constituents[name] for name in jets.constituents.fields}
                          | {"pt": ak.unflatten(pt, counts)})
    return _with(jets, constituents=constituents)


def _without_pid(jets: ak.Array) -> ak.Array:
    kinematic = ak.zip({name: jets.constituents[name] for name in ("pt", "eta", "phi", "e", "deta", "dphi")})
    return _with(jets, constituents=kinematic)


@pytest.mark.parametrize(
    ("change", "arguments", "message"),
    [
        (lambda j: _with(j, label=np.zeros(len(j), dtype=np.int8)), {}, "has only background \\(label 0\\) in its "
         "train split; a tagger needs both classes"),
        (lambda j: j[:0], {}, "holds no jets"),
        (_nan_in_constituent_pt, {"model": "pfn"}, "has NaN or infinite values in constituents.pt"),
        (_without_pid, {"features": "kinematic+pid"}, "features='kinematic\\+pid' needs pid and charge"),
    ],
    ids=["one-class", "empty", "nan", "features-missing"],
)
def test_bad_datasets_fail_before_training_starts(
    change: object, arguments: dict, message: str, shared_workspace: Workspace, top_dataset: CallOutcome
) -> None:
    """One class only, no jets, NaNs, missing PID, too few particles: a ToolInputError, no model written."""
    dataset = _variant(top_dataset, shared_workspace, change)
    models_before = len(shared_workspace.list_artifacts("model"))
    started = time.perf_counter()
    with pytest.raises(ToolInputError, match=message):
        call_tool("train_tagger", {"dataset": dataset, "model": "part", "size": "tiny"} | arguments,
                  workspace=shared_workspace)
    assert time.perf_counter() - started < 20.0  # refused while loading, not after epochs
    assert len(shared_workspace.list_artifacts("model")) == models_before


def test_particlenet_needs_more_particles_than_neighbours(
    shared_workspace: Workspace, top_dataset: CallOutcome
) -> None:
    """ParticleNet with k = 8 neighbours on jets cut to 8 constituents is refused with the fix."""
    jets = read_parquet(top_dataset.result.dataset.path)
    card = top_dataset.result.dataset.metadata
    dataset = _forge_dataset(shared_workspace, jets, card | {"cuts": card["cuts"] | {"n_constituents": 8}})
    with pytest.raises(ToolInputError, match="looks at k=8 neighbours but the dataset keeps only 8 constituents"):
        call_tool("train_tagger", {"dataset": dataset, "model": "particlenet", "size": "tiny"},
                  workspace=shared_workspace)


def test_a_model_refuses_data_without_the_features_it_was_trained_on(
    shared_workspace: Workspace, top_dataset: CallOutcome
) -> None:
    """A kinematic+pid model evaluated or applied on jets without particle ids says so and how to fix it."""
    model = train(shared_workspace, top_dataset, "pfn").result.model
    no_pid = _variant(top_dataset, shared_workspace, _without_pid)
    for tool, arguments in (("evaluate_tagger", {"models": [model.id], "dataset": no_pid}),
                            ("apply_tagger", {"model": model.id, "jets": no_pid})):
        with pytest.raises(ToolInputError, match=r"trained with features 'kinematic\+pid'.*features='kinematic'"):
            call_tool(tool, arguments, workspace=shared_workspace)


@pytest.mark.parametrize("mode", ["top", "w", "quark_gluon"])
def test_mother_matching_agrees_with_momentum_matching(
    ttbar_sample: CallOutcome, shared_workspace: Workspace, mode: str
) -> None:
    """Mother-link labels equal four-momentum labels for ≥ 99 % of R = 1.0 ttbar jets (W, quark/gluon); for tops
    the links only add matches: ISR recoil moves the hard-process top away from b + W (up to 50 % of its energy
    in this sample), beyond the momentum tolerance, yet its products are in the jet."""
    from physagent.tools.tag._matching import _match

    jets_outcome = call_tool("cluster_jets", {"events": ttbar_sample.result.events.id, "radius": 1.0,
                                              "pt_min_gev": 200.0, "eta_max": 2.5}, workspace=shared_workspace)
    jets = read_parquet(jets_outcome.result.jets.path).jets
    partons = read_parquet(ttbar_sample.result.events.path).partons
    flat = ak.flatten(jets)
    args = (np.asarray(ak.num(jets)), np.asarray(flat.eta), np.asarray(flat.phi))
    by_mother, _ = _match(*args, partons, mode, 1.0)
    by_momentum, _ = _match(*args, partons[["px", "py", "pz", "e", "pid", "status"]], mode, 1.0)
    assert len(by_mother) > 500
    assert (by_mother == 1).sum() > 100
    if mode == "top":
        differ = by_mother != by_momentum
        assert np.all(by_mother[differ] == 1) and np.all(by_momentum[differ] == -1)
        assert (by_momentum == 1).sum() > 100
    else:
        assert np.mean(by_mother == by_momentum) >= 0.99
