"""scan_training: every grid point an ordinary training call (cached, with its own model), the best point the
argmax of the table, bad grids refused before anything trains, and the same numbers on a Dask LocalCluster."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import awkward as ak
import numpy as np
import pytest

from physagent.tools import (
    CallRecord,
    ProgressUpdate,
    ToolCancelledError,
    ToolInputError,
    ToolRuntimeError,
    Workspace,
    call_tool,
    close_cluster,
    cluster_client,
    package_versions,
)
from physagent.tools._io import read_parquet, write_json, write_parquet

# tiny MLP on jet substructure: 5 epochs of 360 jets take well under a second once torch is loaded
MLP = {"model": "mlp", "size": "tiny", "epochs": 5, "batch_size": 64, "export": False}
RATES = [0.001, 0.003, 0.01]


@pytest.fixture(scope="module", autouse=True)
def one_worker() -> Iterator[None]:
    """One torch thread in this process and on the Dask workers (started later, they inherit it): the thread
    count is part of what makes a training reproducible, and the test machine is shared."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PHYSAGENT_WORKERS", "1")
        patch.setenv("PHYSAGENT_CLUSTER", "none")
        yield


def toy_jets(n_per_class: int, seed: int, n_constituents: int = 4) -> ak.Array:
    """Jets with the fields of a make_jet_dataset row: 'signal' heavy and three-pronged, 'background' light.
    Not physics: the substructure taggers need seconds, not a Pythia run."""
    rng = np.random.default_rng(seed)
    n = 2 * n_per_class
    label = np.repeat([1, 0], n_per_class).astype(np.int8)
    signal = label == 1
    mass = np.where(signal, rng.normal(170.0, 25.0, n), rng.exponential(60.0, n) + 20.0)
    tau21 = np.where(signal, rng.beta(4, 4, n), rng.beta(5, 3, n))
    tau32 = np.where(signal, rng.beta(3, 5, n), rng.beta(5, 3, n))
    tau1 = rng.uniform(0.2, 0.5, n)
    pt, eta, phi = rng.uniform(500.0, 600.0, n), rng.uniform(-2.0, 2.0, n), rng.uniform(-np.pi, np.pi, n)
    share = rng.dirichlet(np.ones(n_constituents), n).ravel()
    c_pt = share * np.repeat(pt, n_constituents)
    deta, dphi = rng.normal(0.0, 0.2, c_pt.size), rng.normal(0.0, 0.2, c_pt.size)
    c_eta = np.repeat(eta, n_constituents) + deta
    constituents = ak.unflatten(ak.zip({
        "pt": c_pt, "eta": c_eta, "phi": np.repeat(phi, n_constituents) + dphi, "e": c_pt * np.cosh(c_eta),
        "deta": deta, "dphi": dphi, "pid": np.full(c_pt.size, 211), "charge": np.ones(c_pt.size)}),
        np.full(n, n_constituents))
    return ak.zip({
        "pt": pt, "eta": eta, "phi": phi, "e": np.hypot(pt * np.cosh(eta), mass), "mass": mass, "msd": 0.9 * mass,
        "tau1": tau1, "tau2": tau1 * tau21, "tau3": tau1 * tau21 * tau32, "tau21": tau21, "tau32": tau32,
        "n_constituents": np.full(n, n_constituents), "constituents": constituents, "label": label,
        "weight": np.ones(n), "split": rng.choice([0, 1, 2], n, p=[0.6, 0.2, 0.2]).astype(np.int8)},
        depth_limit=1)


def _commit(workspace: Workspace, kind: str, primary: str, write: Any, metadata: dict[str, Any]) -> str:
    """Register files written by ``write(directory)`` as an artifact of ``kind`` (as a loading tool would)."""
    with workspace.staging_area() as staging:
        pending = workspace.new_pending(kind, staging)
        write(pending.directory)
        pending.finish(primary, f"toy {kind} for a test", metadata)
        record = CallRecord(id=f"c-{uuid.uuid4().hex[:10]}", seq=0, tool="test", tool_version="1", inputs={},
                            input_artifacts={}, outputs=[pending.id], result={}, seed=None, started=time.time(),
                            wall_s=0.0, packages=package_versions(), cache_key=uuid.uuid4().hex, cached_from=None)
        workspace.commit([pending], record)
    return pending.id


def toy_dataset(workspace: Workspace, seed: int = 0) -> str:
    """A 600-jet dataset artifact (≈ 360 train, 120 validation, 120 test jets) with 4 constituents per jet."""
    card = {"task": "toy", "cuts": {"n_constituents": 4}, "labels": {"1": "signal", "0": "background"}}

    def write(directory: Any) -> None:
        write_parquet(toy_jets(300, seed), directory / "dataset.parquet")
        write_json(card, directory / "card.json")

    return _commit(workspace, "dataset", "dataset.parquet", write, card)


def scan(workspace: Workspace, dataset: str, grid: dict[str, list[Any]], use_cache: bool = True,
         **arguments: Any) -> Any:
    arguments = {"dataset": dataset, "grid": grid, "fixed": MLP} | arguments
    return call_tool("scan_training", arguments, workspace=workspace, use_cache=use_cache)


@pytest.fixture
def dataset(workspace: Workspace) -> str:
    return toy_dataset(workspace)


# --- in this process ------------------------------------------------------------------------------------


def test_a_scan_makes_one_model_and_one_row_per_point_and_picks_the_argmax(
        workspace: Workspace, dataset: str) -> None:
    """Three learning rates ⇒ three ordinary model artifacts, three table rows; the best point is the row with
    the largest validation AUC, its model and metrics those of its own train_tagger call."""
    result = scan(workspace, dataset, {"learning_rate": RATES}).result
    assert result.n_points == 3 and result.n_cached == 0 and result.metric == "validation_auc"
    rows = read_parquet(result.points_table.path)
    assert ak.to_list(rows.point) == [1, 2, 3] and ak.to_list(rows.learning_rate) == RATES
    best_row = int(np.argmax(np.asarray(rows.validation_auc)))
    assert result.best_parameters == {"learning_rate": RATES[best_row]}
    assert result.best_value == result.best_validation_auc == pytest.approx(float(rows.validation_auc[best_row]))
    assert result.best_test_auc == result.best_metrics["test_auc"] == pytest.approx(float(rows.test_auc[best_row]))
    models = {model.id: model for model in workspace.list_artifacts("model")}
    assert set(models) == {point.model for point in result.points} and result.best_model in models
    for point in result.points:
        card = models[point.model].metadata
        assert card["training"]["learning_rate"] == point.parameters["learning_rate"]
        assert card["metrics"]["test"]["auc"] == pytest.approx(point.metrics["test_auc"])
        kept = card["training"]["history"][card["training"]["best_epoch"] - 1]
        assert kept["val_auc"] == pytest.approx(point.metrics["validation_auc"])
        assert point.worker == "in-process" and point.attempts == 1
    assert result.executor == "in-process"
    assert result.points_table.metadata["execution"]["executor"] == "in-process"
    assert result.plot.path.name == "scan.png" and result.plot.path.stat().st_size > 10_000
    assert result.table.count("\n") == 1 + 3 and f"**{result.points[best_row].point}**" in result.table


def test_the_same_scan_again_takes_every_point_from_the_call_cache(workspace: Workspace, dataset: str) -> None:
    """Rerunning a scan (its own cache off) trains nothing: every point is answered by the call cache with the same
    model; a larger grid trains only its new points."""
    first = scan(workspace, dataset, {"learning_rate": RATES[:2]}).result
    again = scan(workspace, dataset, {"learning_rate": RATES[:2]}, use_cache=False).result
    assert again.n_cached == 2 and all(point.cached for point in again.points)
    assert [p.model for p in again.points] == [p.model for p in first.points]
    assert again.points_table.sha256 == first.points_table.sha256  # the file holds values, not ids or timings
    wider = scan(workspace, dataset, {"learning_rate": RATES}).result
    assert [p.cached for p in wider.points] == [True, True, False]
    assert len(workspace.list_artifacts("model")) == 3


def test_two_parameters_span_the_product_with_the_first_slowest(workspace: Workspace, dataset: str) -> None:
    """A 2 × 2 grid gives four points in row-major order; a scanned value close to a default is passed as given."""
    result = scan(workspace, dataset, {"batch_size": [32, 64], "learning_rate": [0.003, 0.01]},
                  fixed={"model": "mlp", "size": "tiny", "epochs": 3, "export": False}).result
    assert [p.parameters for p in result.points] == [
        {"batch_size": 32, "learning_rate": 0.003}, {"batch_size": 32, "learning_rate": 0.01},
        {"batch_size": 64, "learning_rate": 0.003}, {"batch_size": 64, "learning_rate": 0.01}]
    assert result.scanned == ["batch_size", "learning_rate"]


def test_ranking_by_a_test_metric_warns_that_it_is_optimistic(workspace: Workspace, dataset: str) -> None:
    """metric='test_auc' ranks by the test AUC, and a warning says the number is biased by the choice."""
    result = scan(workspace, dataset, {"learning_rate": RATES[:2]}, metric="test_auc").result
    assert result.best_value == max(p.metrics["test_auc"] for p in result.points)
    assert any("optimistic" in warning for warning in result.warnings)


def test_a_generator_scan_ranks_by_the_lowest_validation_loss(workspace: Workspace) -> None:
    """train_generator points rank by validation_loss, lower is better."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=1500)
    columns = {"a": a, "b": 0.5 * a**2 + rng.normal(scale=0.4, size=a.size) - 1.0}
    table = _commit(workspace, "table", "table.parquet",
                    lambda d: write_parquet(ak.zip(columns), d / "table.parquet"), {"fields": list(columns)})
    result = call_tool("scan_training", {
        "dataset": table, "trainer": "train_generator", "grid": {"learning_rate": [0.001, 0.01]},
        "fixed": {"size": "tiny", "epochs": 3, "export": False}}, workspace=workspace).result
    assert result.metric == "validation_loss" and not result.higher_is_better
    assert result.best_value == min(p.metrics["validation_loss"] for p in result.points)
    assert result.best_validation_auc is None and result.best_test_auc is None
    assert {a.kind for a in workspace.list_artifacts()} >= {"generator", "table", "plot"}


# --- refused before anything trains ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"grid": {}}, r"grid=\{\} is empty: nothing to scan"),
        ({"grid": {"lr": [0.001]}}, r"grid='lr' is not a parameter of train_tagger\. Its parameters: model, "),
        ({"grid": {"learning_rate": [0.001, 0.003]}, "fixed": {"learning_rate": 0.01}},
         "grid='learning_rate' is both in fixed and in grid"),
        ({"grid": {"learning_rate": [0.001, 2.0]}},
         "the point learning_rate=2.0 is not a valid train_tagger call — train_tagger: learning_rate=2.0 must be "
         "less than or equal to 1.*Fix or drop that value in grid"),
        ({"grid": {"model": ["mlp", "transformer"]}, "fixed": {"size": "tiny"}},
         "the point model='transformer' is not a valid train_tagger"),
        ({"grid": {"learning_rate": [0.001, 1e-3]}}, "gives the same training twice: point 1 of 2"),
        ({"grid": {"learning_rate": [0.001] * 8, "batch_size": list(range(16, 25))}, "fixed": {"model": "mlp"}},
         "makes 72 trainings \\(8 learning_rate × 9 batch_size\\), more than the 64"),
        ({"grid": {"dataset": ["datas-0123456789"]}}, "names the training data, which the scan takes as dataset"),
        ({"grid": {"learning_rate": [0.001]}, "fixed": {"seed": 3}}, "sets the seed, which is the scan's own"),
        ({"grid": {"learning_rate": [0.001]}, "trainer": "train_generator"},
         "is a dataset artifact; train_generator trains on table or jets or events or showers"),
    ],
    ids=["empty", "unknown-name", "fixed-and-scanned", "rejected-value", "rejected-choice", "repeated-value",
         "too-many", "data-scanned", "seed-fixed", "wrong-kind"],
)
def test_bad_scans_are_refused_before_any_training(
        arguments: dict[str, Any], message: str, workspace: Workspace, dataset: str) -> None:
    """Each mistake is a ToolInputError naming the entry and the fix; no model is trained, nothing is written."""
    with pytest.raises(ToolInputError, match=message) as caught:
        call_tool("scan_training", {"dataset": dataset, "fixed": MLP} | arguments, workspace=workspace)
    assert str(caught.value).startswith("scan_training: ")
    assert [a.kind for a in workspace.list_artifacts()] == ["dataset"]


def test_a_metric_the_trainer_does_not_report_is_refused(workspace: Workspace) -> None:
    """A generator has no AUC: metric='test_auc' names the metrics it offers."""
    table = _commit(workspace, "table", "table.parquet",
                    lambda d: write_parquet(ak.zip({"a": np.arange(10.0)}), d / "table.parquet"), {})
    with pytest.raises(ToolInputError, match="metric='test_auc' is not a result of train_generator; it offers "
                                             "validation_loss"):
        call_tool("scan_training", {"dataset": table, "trainer": "train_generator", "metric": "test_auc",
                                    "grid": {"learning_rate": [0.001]}}, workspace=workspace)


def test_a_point_that_fails_names_itself_and_the_finished_points_are_reused(
        workspace: Workspace, dataset: str) -> None:
    """ParticleNet needs more constituents than the toy's 4: its point fails, the BDT point after it still trains,
    and the error names the failed point; a scan of the BDT alone then takes its model from the cache."""
    grid = {"model": ["particlenet", "bdt"]}
    with pytest.raises(ToolInputError) as caught:
        scan(workspace, dataset, grid, fixed={"size": "tiny", "export": False})
    message = str(caught.value)
    assert message.startswith("scan_training: point 1 of 2 (model='particlenet') failed — train_tagger: "
                              "model='particlenet' looks at k=")
    assert "The 1 other point(s) finished: their models are in the workspace" in message
    assert "the same scan again takes them from the call cache" in message
    assert [m.metadata["model"] for m in workspace.list_artifacts("model")] == ["bdt"]
    again = scan(workspace, dataset, {"model": ["bdt"]}, fixed={"size": "tiny", "export": False}).result
    assert again.n_cached == 1


def test_a_cancelled_scan_stops_between_points_and_keeps_the_finished_ones(
        workspace: Workspace, dataset: str) -> None:
    """Cancelling once the first point finished ⇒ ToolCancelledError saying how far it got; the finished point's
    model stays and the same scan again starts from it."""
    cancel = threading.Event()

    def sink(update: ProgressUpdate) -> None:
        if update.task.startswith("train_tagger:") and update.completed > 1.1:  # point 2 is under way
            cancel.set()

    arguments = {"dataset": dataset, "grid": {"learning_rate": RATES}, "fixed": MLP}
    with pytest.raises(ToolCancelledError, match="cancelled by the caller after 1 of 3 points"):
        call_tool("scan_training", arguments, workspace=workspace, progress=sink, cancel_event=cancel)
    assert len(workspace.list_artifacts("model")) == 1
    assert not workspace.list_artifacts("table")
    assert [p.cached for p in call_tool("scan_training", arguments, workspace=workspace).result.points] == [
        True, False, False]


# --- on a Dask LocalCluster -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(one_worker: None) -> Iterator[Any]:
    """A LocalCluster of two single-threaded worker processes, configured as a user would, for the module."""
    with pytest.MonkeyPatch.context() as patch:  # started with the configuration a user would give
        patch.setenv("PHYSAGENT_CLUSTER", "local:2")
        started = cluster_client()
    yield started  # a test asks for it with PHYSAGENT_CLUSTER=local:2; the others still run in-process
    close_cluster()


@pytest.mark.slow  # the cluster's start and torch's import on each worker: ≈ 20 s on 2 loaded cores
@pytest.mark.usefixtures("client")
def test_a_local_cluster_scan_gives_the_in_process_numbers_and_names_its_workers(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same scan in this process and on two Dask workers (separate workspaces, same seed) ⇒ the same metrics
    and the same table file; each point records the worker that trained it, in the result and the artifact."""
    results = {}
    for cluster in ("none", "local:2"):
        monkeypatch.setenv("PHYSAGENT_CLUSTER", cluster)
        workspace = Workspace(tmp_path / cluster.replace(":", "-"))
        results[cluster] = scan(workspace, toy_dataset(workspace), {"learning_rate": RATES}, seed=4).result
    local, on_dask = results["none"], results["local:2"]
    assert [p.metrics for p in on_dask.points] == [p.metrics for p in local.points]
    assert on_dask.points_table.sha256 == local.points_table.sha256
    assert on_dask.best_parameters == local.best_parameters
    assert all(p.worker.startswith("tcp://127.0.0.1:") and p.attempts == 1 for p in on_dask.points)
    execution = on_dask.points_table.metadata["execution"]
    assert execution["executor"] == "dask" and execution["cluster"] == "local"
    assert [p["worker"] for p in execution["points"]] == [p.worker for p in on_dask.points]
    assert on_dask.executor.startswith("Dask local cluster, scheduler tcp://127.0.0.1:")


@pytest.mark.slow
@pytest.mark.usefixtures("client")
def test_a_point_failing_on_dask_names_itself_after_the_others_finished(
        workspace: Workspace, dataset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A point whose training refuses its input (ParticleNet on 4 constituents) is not retried: the scan fails
    naming it once the other point finished on the cluster; that point's model stays and the same scan reuses it."""
    monkeypatch.setenv("PHYSAGENT_CLUSTER", "local:2")
    grid = {"model": ["particlenet", "bdt"]}
    with pytest.raises(ToolInputError) as caught:
        scan(workspace, dataset, grid, fixed={"size": "tiny", "export": False})
    message = str(caught.value)
    assert message.startswith("scan_training: point 1 of 2 (model='particlenet') failed — train_tagger: ")
    assert "The 1 other point(s) finished: their models are in the workspace" in message
    assert [m.metadata["model"] for m in workspace.list_artifacts("model")] == ["bdt"]
    with pytest.raises(ToolInputError):
        scan(workspace, dataset, grid, fixed={"size": "tiny", "export": False})
    assert len(workspace.list_artifacts("model")) == 1  # the bdt point came from the cache, not a second training


def _kill_worker_running(client: Any, index: int, stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL (as a crash or an OOM kill would) the worker process running task ``index`` alone, once it has been
    seen running it twice in a row (so mid-training); runs in a thread until ``stop``."""
    seen_on: str | None = None
    while not stop.is_set() and not killed:
        running_on = next((address for address, keys in client.processing().items()
                           if [str(key).split("-")[1] for key in keys] == [str(index)]), None)
        if running_on is not None and running_on == seen_on:
            pid = client.run(os.getpid, workers=[running_on])[running_on]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        seen_on = running_on
        stop.wait(0.2)


@pytest.mark.slow
def test_a_point_whose_worker_is_killed_is_retried_and_gives_the_same_numbers(
        client: Any, workspace: Workspace, dataset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL of the worker training point 1 ⇒ the point trains again (attempt 2, recorded), and its metrics
    equal those of the same point trained in this process."""
    grid = {"learning_rate": [0.003, 0.01]}
    long_mlp = MLP | {"epochs": 150, "patience": 0}  # several seconds per point: time to be killed mid-training
    local = scan(workspace, dataset, grid, fixed=long_mlp, seed=9).result
    monkeypatch.setenv("PHYSAGENT_CLUSTER", "local:2")
    client.wait_for_workers(2, timeout=60)
    stop, killed = threading.Event(), []
    watcher = threading.Thread(target=_kill_worker_running, args=(client, 0, stop, killed), daemon=True)
    other = Workspace(workspace.root.parent / "on-dask")
    watcher.start()
    try:
        on_dask = scan(other, toy_dataset(other), grid, fixed=long_mlp, seed=9).result
    finally:
        stop.set()
        watcher.join()
    assert killed, "the test never saw point 1 running"
    assert [p.attempts for p in on_dask.points] == [2, 1]
    assert on_dask.points_table.metadata["execution"]["points"][0]["attempts"] == 2
    assert [p.metrics for p in on_dask.points] == [p.metrics for p in local.points]


def test_a_workspace_the_workers_cannot_see_is_named(tmp_path: Any) -> None:
    """A worker that does not mount the workspace fails its point with a message naming the shared-filesystem
    contract (run here as the task would run on such a worker)."""
    from physagent.tools.tag import _scan_points

    class _Worker:
        address = "tcp://10.0.0.7:4242"

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("distributed.get_worker", _Worker)
        with pytest.raises(ToolRuntimeError, match=r"the Dask worker tcp://10\.0\.0\.7:4242 cannot see the workspace "
                                                   r".*must lie on a filesystem that every worker mounts"):
            _scan_points.point_task(str(tmp_path / "elsewhere"), "train_tagger", {}, None, report=lambda _: None)


def test_requests_to_scan_a_training_setting_name_scan_training() -> None:
    """'scan the learning rate', 'hyper-parameter search' ask for scan_training; a precision scan, a bump hunt's
    scan or default hyper-parameters do not."""
    from physagent.agent.selection import method_hints, named_methods

    assert named_methods("Scan the learning rate of the MLP over 1e-3 and 1e-2") == {
        "Scan the learning rate": ("scan_training",)}
    assert named_methods("a quick hyper-parameter search for the BDT") == {"hyper-parameter search": ("scan_training",)}
    assert named_methods("grid search over batch sizes 64 and 256") == {
        "grid search over batch sizes": ("scan_training",)}
    assert named_methods("do a precision scan of the MLP") == {"precision scan": ("scan_precision",)}
    assert named_methods("train a BDT with its default hyper-parameters") == {}
    assert named_methods("a bump hunt scan of the dijet mass") == {}
    assert method_hints("scan the learning rate of a tiny MLP", ["scan_training", "train_tagger"]) == [
        "The request asks to scan training hyper-parameters: use scan_training."]
