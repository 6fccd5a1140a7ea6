"""Generation shards on a Dask LocalCluster: the same sample as the fork pool, progress, retries after a killed
worker, a clear error naming a shard that fails twice, kept shards reused, cancellation."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest

from physagent.tools import (
    ProgressUpdate,
    ToolCancelledError,
    Workspace,
    call_tool,
)
from physagent.tools._io import write_parquet_row_groups
from physagent.tools.simulate import _pythia
from physagent.tools.simulate._pythia_cluster import KEPT_FOLDER, KeptShards, generate_on_cluster
from physagent.tools.simulate.events import process_settings

DRELL_YAN = process_settings("drell_yan_mumu", 13.6, None, None, None, None, "default", (0, 0, 0),
                             (False, True, True, True), [])


@pytest.fixture(scope="module")
def client(dask_client: Any) -> Any:
    """The module's LocalCluster of two workers (``dask_client`` in conftest.py)."""
    return dask_client


def _generate(workspace: Workspace, monkeypatch: pytest.MonkeyPatch, cluster: str,
              updates: list[ProgressUpdate] | None = None, **arguments: Any) -> Any:
    monkeypatch.setenv("PHYSAGENT_CLUSTER", cluster)
    sink = updates.append if updates is not None else None
    return call_tool("generate_events", arguments, workspace=workspace, use_cache=False, progress=sink).result


def _events_sha256(shards: list[_pythia.ShardResult], path: Path) -> str:
    write_parquet_row_groups((shard.events for shard in shards), path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.usefixtures("client")
def test_a_local_cluster_of_two_workers_makes_the_same_sample_as_the_fork_pool(
        workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same seed and shards on two Dask workers and on the fork pool ⇒ the same artifact hash; the record names
    each shard's Dask worker, its Pythia seed and one attempt."""
    monkeypatch.setenv("PHYSAGENT_WORKERS", "2")
    args = {"process": "drell_yan_mumu", "n_events": 300, "mpi": False, "seed": 11, "shards": 3}
    forked = _generate(workspace, monkeypatch, "none", **args)
    on_dask = _generate(workspace, monkeypatch, "local:2", **args)
    assert on_dask.events.sha256 == forked.events.sha256 and on_dask.n_events == 300
    execution = on_dask.events.metadata["execution"]
    assert execution["executor"] == "dask" and execution["cluster"] == "local"
    assert execution["scheduler"].startswith("tcp://127.0.0.1:")
    seeds = [s["pythia_seed"] for s in on_dask.events.metadata["shards"]]
    assert [s["pythia_seed"] for s in execution["shards"]] == seeds
    assert all(s["worker"].startswith("tcp://127.0.0.1:") and s["attempts"] == 1 for s in execution["shards"])
    assert forked.events.metadata["execution"]["executor"] == "fork pool"


@pytest.mark.usefixtures("client")
def test_progress_from_dask_workers_reaches_the_progress_bar_batch_by_batch(
        workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers report every batch of events (not just finished shards); the bar counts up to n_events."""
    updates: list[ProgressUpdate] = []
    _generate(workspace, monkeypatch, "local:2", updates, process="drell_yan_mumu", n_events=1200, mpi=False, seed=5,
              shards=2)
    bar = [u for u in updates if u.task.startswith("Pythia8")]
    done = [u.completed for u in bar if not u.finished]
    assert done == sorted(done) and bar[-1].completed == 1200 and bar[-1].finished
    assert len([d for d in done if 0 < d < 1200]) >= 3  # 3 batches per shard: more updates than shards


@contextmanager
def _killing_the_worker_running(client: Any, shard: int, times: int = 1) -> Iterator[list[int]]:
    """SIGKILL (as a crash or an OOM kill would) the worker process running ``shard`` once it has run for a
    moment, on ``times`` different workers, from a thread that watches the scheduler; yields the killed pids."""
    killed: list[int] = []
    client.wait_for_workers(2, timeout=60)  # a worker killed by an earlier test is back
    pids: dict[str, int] = client.run(os.getpid)  # a worker busy in Pythia answers only between batches
    stop = threading.Event()

    def watch() -> None:
        seen_on: str | None = None
        while not stop.is_set() and len(killed) < times:
            # only a worker holding this shard alone: Dask charges every task a dying worker holds
            running_on = next((address for address, keys in client.processing().items()
                               if [str(key).split("-")[1] for key in keys] == [str(shard)]), None)
            if running_on is not None and running_on == seen_on:  # running since the last look: mid-shard
                # asked once per address: asking a worker killed a moment ago would wait for a connect timeout
                if running_on not in pids:
                    pids[running_on] = client.run(os.getpid, workers=[running_on])[running_on]
                if pids[running_on] not in killed:
                    os.kill(pids[running_on], signal.SIGKILL)
                    killed.append(pids[running_on])
            seen_on = running_on
            stop.wait(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield killed
    finally:
        stop.set()
        watcher.join()


@pytest.mark.slow
def test_a_worker_killed_mid_shard_is_retried_and_the_record_says_so(
        client: Any, workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL of the worker running shard 0 ⇒ the shard runs again elsewhere, the sample is identical to the
    fork pool's, and the record shows attempt 2 on another worker."""
    args = {"process": "drell_yan_mumu", "n_events": 6000, "mpi": False, "seed": 21, "shards": 2}
    monkeypatch.setenv("PHYSAGENT_CLUSTER", "none")
    forked = call_tool("generate_events", args, workspace=workspace).result
    monkeypatch.setenv("PHYSAGENT_CLUSTER", "local:2")
    with _killing_the_worker_running(client, shard=0) as killed:
        on_dask = call_tool("generate_events", args, workspace=workspace, use_cache=False).result
    assert killed, "the test never found shard 0 running"
    assert on_dask.events.sha256 == forked.events.sha256
    shards = on_dask.events.metadata["execution"]["shards"]
    assert shards[0]["attempts"] == 2 and shards[1]["attempts"] == 1


@pytest.mark.slow
def test_a_shard_whose_worker_dies_twice_fails_naming_it_and_the_other_shard_is_kept(
        client: Any, tmp_path: Path) -> None:
    """Two SIGKILLs of the workers running shard 1 ⇒ an error naming shard 1, its seed and both attempts (Dask's
    KilledWorker), raised after shard 0 finished and was kept."""
    plan = _pythia.shard_plan(10_000, 2, seed=13)
    with _killing_the_worker_running(client, shard=1, times=2) as killed, pytest.raises(RuntimeError) as caught:
        list(generate_on_cluster(client, [DRELL_YAN] * 2, plan, lambda n: None, None, False, tmp_path))
    assert len(killed) == 2
    message = str(caught.value)
    assert f"shard 1 of 2 (Pythia seed {plan[1][1]}, 5000 events) failed on the Dask cluster after 2 attempt(s)" \
        in message
    assert "KilledWorker" in message and "The 1 other finished task(s) are kept" in message
    assert sorted(p.name for p in (tmp_path / KEPT_FOLDER).rglob("shard-*")) == ["shard-0.json", "shard-0.npz"]


def test_a_shard_that_fails_twice_is_named_and_the_finished_shards_are_kept(client: Any, tmp_path: Path) -> None:
    """Shard 1 cannot initialise Pythia: after its retry the error names it and its seed, and shards 0 and 2
    are kept on disk (events and record) before the error is raised."""
    plan = _pythia.shard_plan(300, 3, seed=8)
    broken = [DRELL_YAN, [*DRELL_YAN, "WeakSingleBoson:ffbar2gmZ = off"], DRELL_YAN]  # no process left
    with pytest.raises(RuntimeError) as caught:
        list(generate_on_cluster(client, broken, plan, lambda n: None, None, False, tmp_path))
    message = str(caught.value)
    shard = f"shard 1 of 3 (Pythia seed {plan[1][1]}, 100 events)"
    assert f"{shard} failed on the Dask cluster after 2 attempt(s)" in message
    assert "Pythia failed to initialise" in message
    assert "The 2 other finished task(s) are kept in" in message and "recomputes only what failed" in message
    kept = sorted(p.name for p in (tmp_path / KEPT_FOLDER).rglob("shard-*"))
    assert kept == ["shard-0.json", "shard-0.npz", "shard-2.json", "shard-2.npz"]


def test_kept_shards_are_reused_by_the_same_run_which_then_matches_a_clean_one(client: Any, tmp_path: Path) -> None:
    """With shards 0 and 2 kept from a failed run, the same run computes only shard 1, marks the others as kept,
    writes the same events as a clean run, and removes the kept files."""
    plan = _pythia.shard_plan(300, 3, seed=9)
    settings = [DRELL_YAN] * 3
    clean = list(generate_on_cluster(client, settings, plan, lambda n: None, None, False, tmp_path / "clean"))
    assert not (tmp_path / "clean" / KEPT_FOLDER).exists() or not any((tmp_path / "clean" / KEPT_FOLDER).iterdir())
    keeper = KeptShards(tmp_path, _run_key(settings, plan))
    from physagent.tools._cluster_run import TaskOutcome

    for index in (0, 2):
        keeper.save(TaskOutcome(index, clean[index], clean[index].worker, 2, clean[index].n_accepted))
    reported: list[int] = []
    rerun = list(generate_on_cluster(client, settings, plan, reported.append, None, False, tmp_path))
    assert [s.kept for s in rerun] == [True, False, True] and rerun[0].attempts == 2
    assert sum(reported) == 300
    assert _events_sha256(rerun, tmp_path / "rerun.parquet") == _events_sha256(clean, tmp_path / "clean.parquet")
    assert ak.sum(rerun[0].events.weight) == ak.sum(clean[0].events.weight)
    assert not keeper.directory.exists()


def _run_key(settings: list[list[str]], plan: list[tuple[int, int]]) -> str:
    from physagent.tools.simulate._pythia_cluster import _run_key as key

    return key(settings, plan, False)


def test_an_exception_in_the_caller_cancels_every_shard(client: Any) -> None:
    """Closing the generation early (Ctrl-C, a cancelled call) cancels the queued shards and stops the running
    ones at their next batch: the cluster is idle within seconds."""
    plan = _pythia.shard_plan(40_000, 8, seed=3)

    def ctrl_c(_: int) -> None:  # arrives while the caller waits for the first shard, as Ctrl-C would
        raise KeyboardInterrupt

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        list(generate_on_cluster(client, [DRELL_YAN] * 8, plan, ctrl_c, None, False, None))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (busy := _physagent_tasks(client)):
        time.sleep(0.1)
    assert not busy, f"tasks still on the cluster: {busy}"
    assert time.monotonic() - started < 15  # 8 × 5000 events would take far longer on two workers


def _physagent_tasks(client: Any) -> list[str]:
    return client.run_on_scheduler(_tasks_on_scheduler)


def _tasks_on_scheduler(dask_scheduler: Any = None) -> list[str]:
    return [str(key) for key, state in dask_scheduler.tasks.items()
            if str(key).startswith("physagent-") and state.state in {"processing", "waiting", "no-worker", "queued"}]


@pytest.mark.slow
@pytest.mark.usefixtures("client")
def test_make_jet_dataset_generates_its_events_on_the_cluster_with_the_same_result(
        workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """make_jet_dataset's generation rounds run as Dask tasks: the same dataset as on the fork pool, and each
    source's shards recorded with round, Pythia seed, worker and attempts."""
    arguments = {"n_jets_per_class": 20, "pt_min_gev": 500.0, "pt_max_gev": 600.0, "n_constituents": 16, "seed": 9}
    monkeypatch.setenv("PHYSAGENT_CLUSTER", "none")
    forked = call_tool("make_jet_dataset", arguments, workspace=workspace).result
    monkeypatch.setenv("PHYSAGENT_CLUSTER", "local:2")
    on_dask = call_tool("make_jet_dataset", arguments, workspace=workspace, use_cache=False).result
    assert on_dask.dataset.sha256 == forked.dataset.sha256
    execution = on_dask.dataset.metadata["execution"]
    assert execution["executor"] == "dask" and set(execution["sources"]) == {"top", "QCD"}
    first_round = on_dask.dataset.metadata["samples"]["top"]["rounds"][0]["shards"]
    top = [s for s in execution["sources"]["top"] if s["round"] == 0]
    assert [s["pythia_seed"] for s in top] == [s["pythia_seed"] for s in first_round]
    assert all(s["worker"].startswith("tcp://") and s["attempts"] == 1 for s in top)


def test_pythia_alphas_simulations_run_as_dask_tasks_with_the_same_rows(
        client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """sbi's Pythia α_s simulator runs its rows on the cluster (never the fork pool) and gets the same statistics."""
    from physagent.tools.sbi._task import make_task
    from physagent.tools.sbi.tasks import pythia_alphas

    task = make_task("pythia_alphas", events_per_simulation=60)
    theta = [[0.11], [0.15], [0.13]]
    monkeypatch.setenv("PHYSAGENT_CLUSTER", "none")
    local = task.simulate(np.array(theta), seed=9)

    def no_fork_pool(*_: Any) -> None:
        raise AssertionError("the fork pool ran although a cluster is configured")

    monkeypatch.setattr(pythia_alphas, "worker_pool", no_fork_pool)
    monkeypatch.setenv("PHYSAGENT_CLUSTER", "local:2")
    done: list[int] = []
    on_dask = task.simulate(np.array(theta), seed=9, progress=done.append)
    np.testing.assert_array_equal(on_dask, local)
    assert done == [1, 2, 3] and client.status == "running"


def test_cancelling_the_tool_call_cancels_its_dask_tasks(client: Any, workspace: Workspace) -> None:
    """A caller's cancel (web UI stop button, REST cancel) during a cluster run ends the call with nothing
    written, and its tasks leave the cluster."""
    cancel = threading.Event()

    def stop_after_first_batch(update: ProgressUpdate) -> None:
        if update.completed:
            cancel.set()

    with pytest.raises(ToolCancelledError, match="cancelled by the caller"):
        call_tool("generate_events", {"process": "drell_yan_mumu", "n_events": 20_000, "mpi": False, "seed": 2,
                                      "shards": 4}, workspace=workspace, progress=stop_after_first_batch,
                  cancel_event=cancel)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (busy := _physagent_tasks(client)):
        time.sleep(0.1)
    assert not busy, f"tasks still on the cluster: {busy}"
    assert not list(workspace.root.glob("artifacts/*"))


def test_a_kept_shard_that_cannot_be_read_is_computed_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A damaged kept shard (a truncated buffer file) is not used: load says so in the log and returns nothing."""
    from physagent.tools._cluster_run import TaskOutcome

    shard = _pythia.generate_shard(DRELL_YAN, 50, 7, 0, lambda n: None)
    keeper = KeptShards(tmp_path, "run")
    keeper.save(TaskOutcome(0, shard, "tcp://127.0.0.1:1", 1, 50))
    assert keeper.load(0) is not None and keeper.load(0).value.n_accepted == 50  # type: ignore[union-attr]
    buffers = keeper.directory / "shard-0.npz"
    buffers.write_bytes(buffers.read_bytes()[:100])
    with caplog.at_level("WARNING"):
        assert keeper.load(0) is None
    assert "cannot be read" in caplog.text and "computing the shard again" in caplog.text


@pytest.mark.usefixtures("client")
def test_make_anomaly_dataset_reduces_its_shards_on_the_cluster_to_the_same_dataset(
        workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dijet features computed inside each Dask task (the ``reduce`` step, never the fork pool) give the fork
    pool's dataset."""
    arguments = {"n_background_events": 1000, "n_signal_events": 200, "s_over_b": 0.05, "seed": 4}
    monkeypatch.setenv("PHYSAGENT_CLUSTER", "none")
    forked = call_tool("make_anomaly_dataset", arguments, workspace=workspace).result

    def no_fork_pool(*_: Any) -> None:
        raise AssertionError("the fork pool ran although a cluster is configured")

    monkeypatch.setattr(_pythia, "worker_pool", no_fork_pool)
    monkeypatch.setenv("PHYSAGENT_CLUSTER", "local:2")
    on_dask = call_tool("make_anomaly_dataset", arguments, workspace=workspace, use_cache=False).result
    assert on_dask.dataset.sha256 == forked.dataset.sha256
    ran = on_dask.dataset.metadata["execution"]
    assert ran["executor"] == "dask" and ran["cluster"] == "local"
    assert all(s["worker"].startswith("tcp://") and s["attempts"] == 1 for s in ran["background_shards"])
    assert forked.dataset.metadata["execution"]["executor"] == "fork pool"
