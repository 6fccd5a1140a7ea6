"""`export_session`: the reproduction script of one agent session as an artifact, replayable in a fresh directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from physagent.tools import Artifact, ToolInputError, Workspace, call_tool, registry

SESSION, OTHER = "s-00000000aa", "s-00000000bb"
EVENTS = {"process": "drell_yan_mumu", "n_events": 60, "mpi": False}


def _events(workspace: Workspace, seed: int, session: str | None) -> Artifact:
    return call_tool("generate_events", EVENTS | {"seed": seed}, workspace=workspace, session=session).result.events


def _count_jets_code(jets_id: str) -> str:
    """Analysis code that names its input by literal id, as generated code does."""
    return (
        "import json\nimport awkward as ak\n"
        f"jets = ak.from_parquet(INPUTS[{jets_id!r}])\n"
        "n = ak.num(jets.jets) if 'jets' in ak.fields(jets) else ak.num(jets)\n"
        "with open('njets.txt', 'w') as out:\n"
        "    out.write(','.join(str(int(x)) for x in n) + '\\n')\n"
        "print(json.dumps({'total': int(ak.sum(n))}))\n"
    )


def test_an_exported_session_reproduces_every_artifact_in_a_fresh_directory(workspace: Workspace,
                                                                             tmp_path: Path) -> None:
    """The script replays generate → cluster → run_python (whose code names its input id) with identical sha256."""
    events = _events(workspace, seed=3, session=SESSION)
    jets = call_tool("cluster_jets", {"events": events.id, "pt_min_gev": 5}, workspace=workspace,
                     session=SESSION).result.jets
    counted = call_tool("run_python", {"code": _count_jets_code(jets.id), "inputs": [jets.id],
                                       "outputs": ["njets.txt"], "values": {"total": "int"}},
                        workspace=workspace, session=SESSION).result
    assert counted.ok, counted.report
    _events(workspace, seed=4, session=OTHER)

    exported = call_tool("export_session", {}, workspace=workspace, session=SESSION).result
    assert exported.session == SESSION and (exported.n_calls, exported.n_artifacts) == (3, 3)
    assert exported.tools == ["generate_events", "cluster_jets", "run_python"]
    assert exported.script.kind == "script" and exported.script.id.startswith("scr-")
    source = exported.script.path.read_text()
    assert f"ids_in({_count_jets_code(jets.id)!r})" in source and "'seed': 4" not in source

    fresh = tmp_path / "elsewhere"
    fresh.mkdir()
    run = subprocess.run([sys.executable, str(exported.script.path), str(fresh / "again")], capture_output=True,
                         text=True, timeout=600, cwd=fresh, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "all 3 artifact(s) reproduced with identical sha256" in run.stdout
    reproduced = Workspace(fresh / "again").list_artifacts()
    original = [events, jets, *counted.outputs]
    assert sorted(a.sha256 for a in reproduced) == sorted(a.sha256 for a in original)
    assert not {a.id for a in reproduced} & {a.id for a in original}  # new ids: the remapping was needed


def test_export_session_covers_the_calling_session_only_and_never_itself(workspace: Workspace) -> None:
    """ctx.session picks the calls; an explicit session overrides it; no session means the workspace; exports
    are never replayed and never served from the cache."""
    mine, theirs = _events(workspace, seed=1, session=SESSION), _events(workspace, seed=2, session=OTHER)

    first = call_tool("export_session", {}, workspace=workspace, session=SESSION)
    again = call_tool("export_session", {}, workspace=workspace, session=SESSION)
    assert not again.cached and again.result.script.id != first.result.script.id
    for outcome in (first, again):
        script = outcome.result.script.path.read_text()
        assert outcome.result.n_calls == 1 and "'seed': 1" in script and "'seed': 2" not in script
        assert "run('export_session'" not in script

    other = call_tool("export_session", {"session": OTHER}, workspace=workspace, session=SESSION).result
    assert other.session == OTHER and other.script.metadata["artifacts"] == [theirs.id]
    whole = call_tool("export_session", {}, workspace=workspace).result  # `physagent tools call`: no session
    assert whole.session is None and whole.script.metadata["artifacts"] == [mine.id, theirs.id]
    assert registry.get("export_session").cacheable is False


def test_export_session_explains_when_there_is_nothing_to_export(workspace: Workspace) -> None:
    """An empty workspace, a session without artifacts and an unknown session are input errors that say so."""
    with pytest.raises(ToolInputError, match="the workspace has no artifacts yet"):
        call_tool("export_session", {}, workspace=workspace)
    with pytest.raises(ToolInputError, match=f"session {SESSION} has made no artifacts yet"):
        call_tool("export_session", {}, workspace=workspace, session=SESSION)
    _events(workspace, seed=1, session=SESSION)
    with pytest.raises(ToolInputError, match="session='s-unknown' is not an agent session of this workspace"):
        call_tool("export_session", {"session": "s-unknown"}, workspace=workspace, session=SESSION)
    assert [a.kind for a in workspace.list_artifacts()] == ["events"]  # a refused export writes nothing


def test_the_agent_exports_its_own_session_through_the_tool(workspace: Workspace) -> None:
    """Through the real loop: the call is tagged with the assistant's session, and only its work is exported."""
    from physagent.agent import Assistant
    from physagent.agent.backends.scripted import ScriptedBackend, answer, call

    _events(workspace, seed=9, session=None)  # made before, outside the assistant
    backend = ScriptedBackend([call("generate_events", **EVENTS, seed=1), call("export_session"),
                               answer("Done: the script reproduces the events.")])
    assistant = Assistant(backend=backend, workspace=workspace)
    record = assistant.ask("Generate 60 Drell-Yan events with seed 1, then export what we did as a script.")
    assert [c["tool"] for c in record.tool_calls] == ["generate_events", "export_session"]
    assert all(c["ok"] for c in record.tool_calls)
    export = next(c for c in workspace.calls() if c.tool == "export_session")
    assert export.session == assistant.session
    assert export.result["n_calls"] == 1 and export.result["tools"] == ["generate_events"]
    assert "'seed': 1" in Path(export.result["script"]["path"]).read_text()
