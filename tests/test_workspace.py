"""Workspace guarantees: atomic artifacts, cache, provenance, and reproduction by an exported script."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import Field

from physagent.tools import (
    Artifact,
    ToolContext,
    ToolResult,
    ToolRuntimeError,
    Workspace,
    call_tool,
    export_script,
    registry,
    tool,
)


class _Written(ToolResult):
    table: Artifact = Field(description="The written file.")


def write_then_fail(
    fail: Annotated[bool, Field(description="Raise after writing half the artifact.")],
    interrupt: Annotated[bool, Field(description="Raise KeyboardInterrupt (Ctrl-C) instead.")] = False,
    *,
    ctx: ToolContext,
) -> _Written:
    """Write an artifact, then optionally crash: a test of atomic commits."""
    pending = ctx.new_artifact("table")
    (pending.directory / "half.txt").write_text("half-written")
    if interrupt:
        raise KeyboardInterrupt
    if fail:
        raise OSError("disk vanished")
    return _Written(table=pending.finish("half.txt", "a test file"))


@pytest.fixture(autouse=True, scope="module")
def _crashing_tool() -> Iterator[None]:
    """Registered only while this module's tests run: other tests see the real registry."""
    tool(category="test")(write_then_fail)
    yield
    registry.remove("write_then_fail")


def _visible_files(workspace: Workspace) -> list[Path]:
    database = {".sqlite", ".sqlite-wal", ".sqlite-shm"}
    return [p for p in workspace.root.rglob("*") if p.is_file() and p.suffix not in database]


def test_a_crash_inside_a_tool_leaves_no_artifact(workspace: Workspace) -> None:
    """An exception after writing part of an artifact leaves no file, row or staging directory."""
    with pytest.raises(ToolRuntimeError, match="write_then_fail: failed with OSError: disk vanished"):
        call_tool("write_then_fail", {"fail": True}, workspace=workspace)
    assert _visible_files(workspace) == []
    assert workspace.list_artifacts() == [] and workspace.calls() == []


def test_ctrl_c_inside_a_tool_leaves_no_artifact(workspace: Workspace) -> None:
    """KeyboardInterrupt propagates and leaves nothing half-written behind."""
    with pytest.raises(KeyboardInterrupt):
        call_tool("write_then_fail", {"fail": False, "interrupt": True}, workspace=workspace)
    assert _visible_files(workspace) == []


def test_opening_a_workspace_sweeps_what_killed_calls_left_but_never_a_live_call(
    workspace: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    """Stale staging and unlisted artifact dirs go, with a warning naming them; a live call's dir stays."""
    kept = call_tool("write_then_fail", {"fail": False}, workspace=workspace).result.table
    stale = workspace.root / ".staging" / ("0" * 32)
    (stale / "tab-0123456789").mkdir(parents=True)
    (stale / "tab-0123456789" / "half.txt").write_text("killed mid-write")
    unlisted = workspace.root / "artifacts" / "tab-abcdef0123"  # killed between rename and commit
    unlisted.mkdir()
    (unlisted / "half.txt").write_text("never recorded")
    foreign = workspace.root / "artifacts" / "my-notes"  # not an artifact id: not ours to remove
    foreign.mkdir()
    with workspace.staging_area() as live, caplog.at_level(logging.WARNING, logger="physagent.tools._workspace"):
        (live / "part.txt").write_text("being written")  # flock-ed by this call, as a live writer's is
        Workspace(workspace.root)  # the first open in this process sweeps
        assert (live / "part.txt").is_file()
    assert not stale.exists() and not unlisted.exists()
    assert foreign.is_dir() and workspace.get_artifact(kept.id) == kept and kept.path.is_file()
    assert (f"removed 2 leftover(s) of interrupted calls from workspace {workspace.root}: "
            f".staging/{stale.name}, artifacts/{unlisted.name}") in caplog.text
    assert workspace.sweep() == []  # nothing left to sweep


def test_a_failed_commit_leaves_no_unlisted_artifact_directory(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If recording the call fails after the rename, the files move back and go with the staging dir."""
    def refuse(*args: object) -> None:
        raise OSError("database went away")

    monkeypatch.setattr(Workspace, "_insert_call", staticmethod(refuse))
    with pytest.raises(OSError, match="database went away"):
        call_tool("write_then_fail", {"fail": False}, workspace=workspace)
    assert list((workspace.root / "artifacts").iterdir()) == [] and workspace.list_artifacts() == []
    assert _visible_files(workspace) == []


def test_a_successful_call_commits_the_artifact_with_its_hash(workspace: Workspace) -> None:
    """The committed artifact is in artifacts/<id>/ and its recorded hash matches the file."""
    outcome = call_tool("write_then_fail", {"fail": False}, workspace=workspace)
    artifact = outcome.result.table
    assert artifact.path == workspace.root / "artifacts" / artifact.id / "half.txt"
    assert artifact.path.read_text() == "half-written"
    assert workspace.get_artifact(artifact.id) == artifact
    assert not list((workspace.root / ".staging").glob("*"))


def test_identical_call_is_served_from_the_cache(workspace: Workspace) -> None:
    """A second identical call returns the stored result; --no-cache runs it again."""
    args = {"process": "drell_yan_mumu", "n_events": 50, "mpi": False, "seed": 11}
    first = call_tool("generate_events", args, workspace=workspace)
    second = call_tool("generate_events", args, workspace=workspace)
    rerun = call_tool("generate_events", args, workspace=workspace, use_cache=False)
    assert not first.cached and second.cached
    assert second.result == first.result
    assert not rerun.cached and rerun.result.events.id != first.result.events.id
    assert rerun.result.events.sha256 == first.result.events.sha256
    assert workspace.calls()[1].cached_from == first.call_id


def test_cache_misses_when_an_input_changes(workspace: Workspace) -> None:
    """Changing any input (here the seed) is a different call."""
    base = {"process": "drell_yan_mumu", "n_events": 50, "mpi": False}
    call_tool("generate_events", base | {"seed": 1}, workspace=workspace)
    assert not call_tool("generate_events", base | {"seed": 2}, workspace=workspace).cached


def test_provenance_records_what_ran_on_what_with_which_software(workspace: Workspace) -> None:
    """Each call records tool version, validated inputs, input hashes, outputs, seed, time and versions."""
    events = call_tool("generate_events", {"process": "drell_yan_mumu", "n_events": 50, "mpi": False,
                                           "seed": 5}, workspace=workspace).result.events
    jets = call_tool("cluster_jets", {"events": events.id, "pt_min_gev": 5}, workspace=workspace)
    gen, clu = workspace.calls()
    assert gen.tool == "generate_events" and gen.seed == 5
    assert gen.tool_version == registry.get("generate_events").version
    assert gen.inputs["n_events"] == 50 and gen.inputs["sqrt_s_tev"] == 13.6  # defaults recorded too
    assert gen.outputs == [events.id] and gen.wall_s > 0
    assert {"pythia8mc", "fastjet", "awkward", "numpy", "python"} <= gen.packages.keys()
    assert clu.input_artifacts == {events.id: events.sha256}
    assert clu.outputs == [jets.result.jets.id]


def test_exported_script_reproduces_artifacts_with_identical_hashes(workspace: Workspace, tmp_path: Path) -> None:
    """`export` writes a plain script; running it in a new workspace gives the same sha256 values."""
    events = call_tool("generate_events", {"process": "drell_yan_mumu", "n_events": 120, "mpi": False,
                                           "seed": 9, "shards": 2}, workspace=workspace).result.events
    jets = call_tool("cluster_jets", {"events": events.id, "pt_min_gev": 5}, workspace=workspace).result.jets
    script = tmp_path / "reproduce.py"
    script.write_text(export_script(workspace))
    run = subprocess.run([sys.executable, str(script), str(tmp_path / "again")], capture_output=True,
                         text=True, timeout=300, cwd=tmp_path, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "all 2 artifact(s) reproduced with identical sha256" in run.stdout
    reproduced = Workspace(tmp_path / "again").list_artifacts()
    assert sorted(a.sha256 for a in reproduced) == sorted([events.sha256, jets.sha256])


def test_export_of_one_artifact_includes_only_the_calls_it_needs(workspace: Workspace) -> None:
    """Exporting a jets artifact pulls in its events call and nothing unrelated."""
    base = {"process": "drell_yan_mumu", "n_events": 40, "mpi": False}
    events = call_tool("generate_events", base | {"seed": 1}, workspace=workspace).result.events
    call_tool("generate_events", base | {"seed": 2}, workspace=workspace)
    jets = call_tool("cluster_jets", {"events": events.id, "pt_min_gev": 5}, workspace=workspace).result.jets
    source = export_script(workspace, [jets.id])
    assert source.count("\nrun(") == 2 and f"ref({events.id!r})" in source and "'seed': 2" not in source
