"""cluster_jets chunks and run_python's sandboxed runs as Dask tasks on a LocalCluster: the same artifacts as in
this process, the workers recorded, user errors reported (not retried), cancellation, and a killed worker."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

from physagent.tools import CallOutcome, ProgressUpdate, ToolCancelledError, ToolDependencyError, Workspace, call_tool
from physagent.tools.code import _sandbox_cluster, run
from physagent.tools.code._sandbox import Limits, Mount, Sandbox
from physagent.tools.code._sandbox_cluster import SandboxJob, WorkerCannotRun, run_on_worker
from physagent.tools.simulate import jets

pytestmark = pytest.mark.usefixtures("dask_client")

_MEASURE = '''
import json
import awkward as ak
import pyarrow as pa, pyarrow.parquet as pq
events = ak.from_parquet(INPUTS[{events!r}])
n = ak.num(events.particles)
pq.write_table(pa.table({{"n_particles": ak.to_numpy(n)}}), "multiplicity.parquet")
with open("summary.json", "w") as f:
    json.dump({{"events": len(events), "most": int(ak.max(n))}}, f, sort_keys=True)
print("events read:", len(events))
print(json.dumps({{"mean_particles": float(ak.mean(n)), "n_events": len(events)}}))
'''


def _on(monkeypatch: pytest.MonkeyPatch, cluster: str, tool: str, arguments: dict[str, Any], workspace: Workspace,
        **options: Any) -> CallOutcome:
    monkeypatch.setenv("PHYSAGENT_CLUSTER", cluster)
    return call_tool(tool, arguments, workspace=workspace, use_cache=False, **options)


def test_cluster_jets_chunks_on_two_workers_write_the_in_process_jets_and_name_the_workers(
        monkeypatch: pytest.MonkeyPatch, shared_workspace: Workspace, ttbar_sample: CallOutcome) -> None:
    """Chunks of 200 events (3 Dask tasks for 600 events in 2 row groups) give the jets file of one pass in this
    process, byte for byte; the record names each task's events, worker and single attempt; progress counts
    chunk by chunk up to 600."""
    monkeypatch.setattr(jets, "_CHUNK_EVENTS", 200)  # the workers get the chunk size with each task
    arguments = {"events": ttbar_sample.result.events.id, "radius": 0.8, "pt_min_gev": 100.0}
    here = _on(monkeypatch, "none", "cluster_jets", arguments, shared_workspace).result
    updates: list[ProgressUpdate] = []
    on_dask = _on(monkeypatch, "local:2", "cluster_jets", arguments, shared_workspace,
                  progress=updates.append).result
    assert on_dask.jets.sha256 == here.jets.sha256 and on_dask.n_jets == here.n_jets > 0
    assert "execution" not in here.jets.metadata
    execution = on_dask.jets.metadata["execution"]
    assert execution["executor"] == "dask" and execution["scheduler"].startswith("tcp://127.0.0.1:")
    assert [s["events"] for s in execution["shards"]] == [[0, 200], [200, 400], [400, 600]]
    assert all(s["worker"].startswith("tcp://127.0.0.1:") and s["attempts"] == 1 for s in execution["shards"])
    done = [u.completed for u in updates if u.task == "FastJet clustering"]
    assert {200.0, 400.0} <= set(done) and done[-1] == 600.0


@pytest.mark.usefixtures("grant_pytest_temp")
def test_run_python_on_a_worker_makes_the_in_process_outputs_and_records_the_worker(
        monkeypatch: pytest.MonkeyPatch, shared_workspace: Workspace, drell_yan_sample: CallOutcome) -> None:
    """The same code on a Dask worker prints the same values and writes the same Parquet and JSON artifacts as
    in this process; the worker and its one attempt are in isolation and in each output's record."""
    events = drell_yan_sample.result.events.id
    arguments = {"code": _MEASURE.format(events=events), "inputs": [events],
                 "outputs": ["multiplicity.parquet", "summary.json"],
                 "values": {"mean_particles": "float", "n_events": "int"}}
    here = _on(monkeypatch, "none", "run_python", arguments, shared_workspace).result
    on_dask = _on(monkeypatch, "local:2", "run_python", arguments, shared_workspace).result
    assert here.ok and on_dask.ok, on_dask.report
    assert on_dask.values == here.values and on_dask.values["n_events"] == 1000
    assert on_dask.stdout == here.stdout and "events read: 1000" in on_dask.stdout
    assert [a.sha256 for a in on_dask.outputs] == [a.sha256 for a in here.outputs]
    assert [a.kind for a in on_dask.outputs] == ["table", "file"]
    assert on_dask.isolation.startswith(here.isolation) and "; ran on Dask worker tcp://127.0.0.1:" in \
        on_dask.isolation
    execution = on_dask.outputs[0].metadata["execution"]
    assert execution["executor"] == "dask" and execution["attempts"] == 1
    assert execution["worker"] == on_dask.isolation.rsplit(" ", 1)[-1]
    assert "execution" not in here.outputs[0].metadata


def _recording_runs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Where each cluster run of run_python ran (its execution record), as the tool saw it."""
    seen: list[dict[str, Any]] = []

    def recorded(*args: Any, **kwargs: Any) -> Any:
        result, execution = run_on_worker(*args, **kwargs)
        seen.append(execution)
        return result, execution

    monkeypatch.setattr(run, "run_on_worker", recorded)
    return seen


def test_an_error_in_the_users_code_is_its_result_on_a_worker_too_and_is_not_retried(
        monkeypatch: pytest.MonkeyPatch, workspace: Workspace) -> None:
    """Code that raises gives the in-process report, exit status and traceback, after one attempt."""
    arguments = {"code": "values = [1, 2]\nprint(values[5])\n"}
    here = _on(monkeypatch, "none", "run_python", arguments, workspace).result
    runs = _recording_runs(monkeypatch)
    on_dask = _on(monkeypatch, "local:2", "run_python", arguments, workspace).result
    assert not on_dask.ok and on_dask.exit_code == here.exit_code == 1
    assert on_dask.report == here.report and "IndexError: list index out of range" in on_dask.report
    assert on_dask.stderr == here.stderr
    assert [r["attempts"] for r in runs] == [1]


@contextmanager
def _when_running(command: list[str], act: Callable[[psutil.Process], None]) -> Iterator[list[psutil.Process]]:
    """Call ``act`` once on the first process running ``command`` (code in a sandbox starts it), from a thread
    that watches the process table; yields the processes acted on."""
    acted: list[psutil.Process] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set() and not acted:
            found = next((p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == command), None)
            if found is not None:
                act(found)
                acted.append(found)
            stop.wait(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield acted
    finally:
        stop.set()
        watcher.join()


def test_cancelling_run_python_stops_the_sandbox_on_the_worker(
        monkeypatch: pytest.MonkeyPatch, workspace: Workspace) -> None:
    """A caller's cancel while the code runs on a worker ends the call at once, and the worker kills the run:
    the sandboxed process is gone within seconds, not at the 60 s time limit."""
    sleep = ["sleep", "47.25"]  # a command line no other process has
    cancel = threading.Event()
    code = f"import subprocess\nsubprocess.run({sleep!r})\n"
    started = time.monotonic()
    with _when_running(sleep, lambda _: cancel.set()) as seen, \
            pytest.raises(ToolCancelledError, match="cancelled by the caller"):
        _on(monkeypatch, "local:2", "run_python", {"code": code}, workspace, cancel_event=cancel)
    assert seen, "the sandboxed code never started"
    gone, alive = psutil.wait_procs(seen, timeout=10)
    assert gone and not alive and time.monotonic() - started < 20


def _kill_its_worker(worker_pids: set[int]) -> Callable[[psutil.Process], None]:
    def kill(process: psutil.Process) -> None:
        worker = next(p for p in process.parents() if p.pid in worker_pids)
        os.kill(worker.pid, signal.SIGKILL)  # as a crash or an OOM kill would

    return kill


@pytest.mark.usefixtures("grant_pytest_temp")
def test_a_code_job_whose_worker_dies_runs_again_from_an_empty_directory(
        dask_client: Any, monkeypatch: pytest.MonkeyPatch, workspace: Workspace) -> None:
    """SIGKILL of the worker running the code ⇒ the job runs again on a live worker, without the dead attempt's
    files, and validates; its outputs record attempt 2."""
    dask_client.wait_for_workers(2, timeout=60)
    pids = set(dask_client.run(os.getpid).values())
    sleep = ["sleep", "2.375"]
    code = ("import json, os, subprocess\nleftover = os.path.exists('partial.txt')\n"
            "open('partial.txt', 'w').write('started')\n"
            f"subprocess.run({sleep!r})\nopen('done.txt', 'w').write('done')\n"
            "print(json.dumps({'leftover': leftover}))\n")
    arguments = {"code": code, "outputs": ["done.txt"], "values": {"leftover": "bool"}}
    with _when_running(sleep, _kill_its_worker(pids)) as killed:
        result = _on(monkeypatch, "local:2", "run_python", arguments, workspace).result
    assert killed, "the sandboxed code never started"
    assert result.ok and result.values == {"leftover": False}, result.report
    assert result.outputs[0].metadata["execution"]["attempts"] == 2


def test_a_worker_without_the_sandbox_or_the_workspace_says_which_and_how_to_fix_it(
        dask_client: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A worker that cannot see the run's directory, has no Python at the caller's path, or has no bubblewrap for
    a job prepared for bubblewrap answers with the problem (not an exception Dask would retry); the error names
    the worker and the fix."""
    def job(python: str, output_dir: Path) -> SandboxJob:
        return SandboxJob([python, "-c", "pass"], output_dir, [Mount(tmp_path, "/code")], [], {}, Limits(), "bwrap")

    with pytest.raises(ToolDependencyError) as caught:
        run_on_worker(dask_client, job(sys.executable, tmp_path / "not-shared"), lambda: None)
    message = str(caught.value)
    assert message.startswith("run_python: the Dask worker tcp://127.0.0.1:")
    assert f"cannot see {tmp_path / 'not-shared'}, which the run needs" in message and "same path" in message

    (tmp_path / "run").mkdir()
    no_python = _sandbox_cluster._sandbox_task(job("/opt/elsewhere/bin/python", tmp_path / "run"), report=print)
    assert isinstance(no_python, WorkerCannotRun) and "has no Python at /opt/elsewhere/bin/python" in no_python.problem
    monkeypatch.setattr(_sandbox_cluster, "Sandbox", lambda mode: Sandbox("fallback"))  # a worker without bwrap
    no_bwrap = _sandbox_cluster._sandbox_task(job(sys.executable, tmp_path / "run"), report=print)
    assert isinstance(no_bwrap, WorkerCannotRun) and "cannot run bubblewrap" in no_bwrap.problem
    assert "apt-get install bubblewrap" in no_bwrap.fix and "PHYSAGENT_SANDBOX=fallback" in no_bwrap.fix


def test_the_jets_of_a_file_are_read_in_the_same_chunks_whatever_its_row_groups(tmp_path: Path) -> None:
    """Any slice start..stop starting on a chunk boundary is cut at the chunks of one pass over the file, for row
    groups smaller than, equal to and larger than a chunk."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from physagent.tools._io import parquet_batches

    for row_group in (150, 200, 700, 5000):
        path = tmp_path / f"rows-{row_group}.parquet"
        pq.write_table(pa.table({"x": list(range(1030))}), path, row_group_size=row_group)
        whole = [b.column(0).to_pylist() for b in parquet_batches(path, 200, ["x"])]
        assert [len(b) for b in whole] == [200] * 5 + [30]
        for start, stop in ((0, 200), (200, 800), (800, 1030), (1000, 1030)):
            cut = [b.column(0).to_pylist() for b in parquet_batches(path, 200, ["x"], start, stop)]
            assert cut == [c for c in whole if start <= c[0] < stop], (row_group, start, stop)


def test_a_task_spans_several_chunks_only_when_row_groups_are_far_larger(tmp_path: Path) -> None:
    """One chunk per Dask task for row groups of a few chunks; for one huge row group, tasks of a tenth of it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for rows, row_group, expected in ((5000, 2500, [(0, 2000), (2000, 4000), (4000, 5000)]),
                                      (100_000, 100_000, [(start, start + 10_000) for start in range(0, 100_000,
                                                                                                       10_000)])):
        path = tmp_path / f"{rows}.parquet"
        pq.write_table(pa.table({"x": list(range(rows))}), path, row_group_size=row_group)
        assert jets._task_ranges(path, rows) == expected
