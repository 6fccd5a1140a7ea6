"""Shared fixtures: a private workspace per test, small real Pythia samples made once per session, and a Dask
LocalCluster per test module that asks for one."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from physagent.tools import CallOutcome, Workspace, call_tool, close_cluster, cluster_client


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """An empty workspace that is also the default (PHYSAGENT_HOME) for the test."""
    home = tmp_path / "physagent-home"
    monkeypatch.setenv("PHYSAGENT_HOME", str(home))
    return Workspace(home)


@pytest.fixture(scope="session")
def shared_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """One workspace for the session's expensive samples; tests must not modify its artifacts."""
    return Workspace(tmp_path_factory.mktemp("shared-home"))


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    """A LocalCluster of two single-threaded worker processes, configured as a user would, for the module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PHYSAGENT_CLUSTER", "local:2")
        yield cluster_client()
        close_cluster()


def generate(workspace: Workspace, **arguments: object) -> CallOutcome:
    return call_tool("generate_events", dict(arguments), workspace=workspace)


@pytest.fixture(scope="session")
def ttbar_sample(shared_workspace: Workspace) -> CallOutcome:
    """Boosted all-hadronic ttbar, MPI off: 600 events with p̂T > 400 GeV (≈ 3 s on 2 cores)."""
    return generate(
        shared_workspace, process="ttbar", n_events=600, pt_hat_min_gev=400.0, decay="hadronic",
        mpi=False, seed=7, shards=2,
    )


@pytest.fixture(scope="session")
def drell_yan_sample(shared_workspace: Workspace) -> CallOutcome:
    """Drell-Yan Z/γ* → μμ with 60 < m̂ < 120 GeV, MPI off: 1,000 events."""
    return generate(shared_workspace, process="drell_yan_mumu", n_events=1000, mpi=False, seed=3)


@pytest.fixture
def plot_pipeline_script(tmp_path: Path) -> Callable[[str], Path]:
    """Writes a scripted model (generate 200 Drell-Yan events → histogram → plot → ``answer``) to a JSON
    file for the ``scripted:<path>`` backend, and returns its path."""

    def write(answer: str) -> Path:
        path = tmp_path / "script.json"
        path.write_text(json.dumps([
            {"tool": "generate_events", "arguments": {"process": "drell_yan_mumu", "n_events": 200, "mpi": False}},
            {"tool": "histogram", "arguments": {"source": "$last:ev", "field": "m_hat_gev", "bins": 30,
                                                "range_min": 60, "range_max": 120}},
            {"tool": "plot", "arguments": {"histograms": ["$last:hist"]}},
            {"answer": answer},
        ]))
        return path

    return write


@pytest.fixture
def no_workspace_writes(workspace: Workspace) -> Iterator[Workspace]:
    """Yields the workspace and checks afterwards that nothing at all was written to it."""
    yield workspace
    assert not workspace.root.exists() or not any(workspace.root.rglob("*")), (
        f"the workspace {workspace.root} was written to: {list(workspace.root.rglob('*'))[:5]}"
    )


@pytest.fixture(scope="module")
def one_worker() -> Iterator[None]:
    """One OpenMP/torch thread for a whole module (``pytestmark = pytest.mark.usefixtures("one_worker")``): on a
    shared 2-core machine spin-waiting threads made training tests 10× slower, and samplers run on one thread."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PHYSAGENT_WORKERS", "1")
        yield


@pytest.fixture
def grant_pytest_temp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the data tools read files under pytest's temp root (tmp_path, the shared samples), as a user
    grants a data folder with PHYSAGENT_DATA_DIRS; outside it the file-access rule still holds."""
    monkeypatch.setenv("PHYSAGENT_DATA_DIRS", str(tmp_path_factory.getbasetemp()))
