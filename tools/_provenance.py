r"""Export recorded calls as a plain Python script that reproduces their artifacts without the agent.

The script replays each call through :func:`tools.call_tool` in a fresh workspace (cache off),
maps the original artifact ids to the new ones — in artifact parameters and inside any other string
argument that names them, such as ``run_python`` code reading ``INPUTS["jet-…"]`` — and compares every
new artifact's sha256 with the recorded one; it exits non-zero on any mismatch. Calls of
``export_session`` are never replayed: a script does not reproduce scripts. The folders of the host files
the calls read (``read_table``, ``read_root``) are granted to the script in ``READ_FOLDERS``, in plain sight.
"""

from __future__ import annotations

import datetime
import pprint
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from physagent.tools._registry import registry
from physagent.tools._workspace import CallRecord, Workspace

__all__ = ["NOT_REPLAYED", "calls_for_export", "export_script", "render_script"]

NOT_REPLAYED = frozenset({"export_session"})  # tools whose calls an exported script leaves out

_HEADER = '''#!/usr/bin/env python
"""Reproduce physagent artifacts without the agent.

Exported {when} from the workspace {root}
({n} tool call(s); recorded with {versions}).

    python {{this file}} [WORKSPACE_DIR]   (default: ./physagent-reproduced)

Each call is rerun with the cache off; every artifact's sha256 is compared with the recorded one.
"""

import sys
from pathlib import Path

from physagent.tools import FileAccess, Workspace, call_tool

# the host folders the recorded calls read files from: the data tools may read them (and the current directory)
READ_FOLDERS = {read_folders}
workspace = Workspace(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("physagent-reproduced"),
                      file_access=FileAccess(data_dirs=tuple(map(Path, READ_FOLDERS))))
new_ids = {{}}
mismatches = []


def ref(original_id):
    """The id, in the new workspace, of the artifact recorded as ``original_id``."""
    return new_ids[original_id]


def ids_in(text):
    """``text`` with every recorded artifact id in it replaced by the new id (code names its inputs by id)."""
    for original_id, new_id in new_ids.items():
        text = text.replace(original_id, new_id)
    return text


def run(tool, arguments, expected):
    """Rerun one call; ``expected`` maps recorded artifact ids to their sha256, in output order."""
    outcome = call_tool(tool, arguments, workspace=workspace, use_cache=False)
    if len(outcome.artifacts) != len(expected):
        report = getattr(outcome.result, "report", "")
        sys.exit(f"{{tool}} made {{len(outcome.artifacts)}} artifact(s) where the recorded call made "
                 f"{{len(expected)}}; nothing after it was replayed. {{report}}")
    for (original_id, sha256), artifact in zip(expected.items(), outcome.artifacts, strict=True):
        new_ids[original_id] = artifact.id
        status = "ok" if artifact.sha256 == sha256 else "MISMATCH"
        if status != "ok":
            mismatches.append(original_id)
        print(f"{{status:8}} {{tool:18}} {{original_id}} -> {{artifact.id}}  {{artifact.sha256[:16]}}")

'''

_FOOTER = '''
if mismatches:
    sys.exit(f"{len(mismatches)} artifact(s) differ from the recorded hashes: {mismatches}")
print(f"all {len(new_ids)} artifact(s) reproduced with identical sha256 in {workspace.root}")
'''


def calls_for_export(
    workspace: Workspace, artifact_ids: list[str] | None = None, session: str | None = None
) -> list[CallRecord]:
    """The original calls needed for ``artifact_ids`` (default: every artifact of the workspace, or of
    one agent ``session``, including calls whose cached results the session reused), in order."""
    originals = [c for c in workspace.calls() if c.cached_from is None and c.tool not in NOT_REPLAYED]
    if session is not None:
        made = [a for c in workspace.calls(session=session) if c.tool not in NOT_REPLAYED for a in c.outputs]
        artifact_ids = made + (artifact_ids or [])
        if not artifact_ids:
            raise KeyError(f"agent session {session!r} produced no artifacts in {workspace.root}")
    if not artifact_ids:
        return [c for c in originals if c.outputs]
    producer = {output: call for call in originals for output in call.outputs}
    missing = [a for a in artifact_ids if a not in producer]
    if missing:
        raise KeyError(f"no recorded call produced {missing}; list artifacts with `physagent artifacts list`")
    needed: dict[str, CallRecord] = {}
    stack = list(artifact_ids)
    while stack:
        call = producer[stack.pop()]
        if call.id not in needed:
            needed[call.id] = call
            stack += [a for a in call.input_artifacts if a in producer]
    return sorted(needed.values(), key=lambda c: c.seq)


def export_script(
    workspace: Workspace, artifact_ids: list[str] | None = None, session: str | None = None
) -> str:
    """Python source that reproduces the selected artifacts (see the module docstring)."""
    return render_script(workspace, calls_for_export(workspace, artifact_ids, session))


def render_script(workspace: Workspace, calls: list[CallRecord]) -> str:
    """Python source that replays ``calls`` (from :func:`calls_for_export`) and checks their artifacts."""
    versions = _versions_line(calls)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    produced = {output for call in calls for output in call.outputs}
    lines = [_HEADER.format(when=when, root=workspace.root, n=len(calls), versions=versions,
                            read_folders=_read_folders(calls))]
    for call in calls:
        lines.append(_call_source(call, produced))
    lines.append(_FOOTER)
    return "\n".join(lines)


def _read_folders(calls: list[CallRecord]) -> list[str]:
    """Folders of the host files the calls read (``source_path`` in their artifacts' metadata), sorted."""
    folders = {str(Path(artifact["metadata"]["source_path"]).parent) for call in calls
               for artifact in _artifact_records(call.result) if "source_path" in artifact.get("metadata", {})}
    return sorted(folders)


def _artifact_records(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        if {"id", "kind", "sha256"} <= value.keys():
            yield value
        for item in value.values():
            yield from _artifact_records(item)
    elif isinstance(value, list):
        for item in value:
            yield from _artifact_records(item)


def _call_source(call: CallRecord, produced: set[str]) -> str:
    params = registry.get(call.tool).artifact_params if call.tool in registry else {}
    arguments = _literal({k: _with_refs(v, True) if k in params else _with_ids(v, produced)
                          for k, v in call.inputs.items()})
    expected = pprint.pformat({a: _find_sha(call.result, a) for a in call.outputs}, width=100, sort_dicts=False)
    return f"# {call.id}: {call.tool} (tool version {call.tool_version}, {call.wall_s:.1f} s)\n" \
           f"run({call.tool!r}, {arguments}, {expected})\n"


def _find_sha(value: Any, artifact_id: str) -> str:
    if isinstance(value, dict):
        if value.get("id") == artifact_id and "sha256" in value:
            return str(value["sha256"])
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            found = _find_sha(item, artifact_id)
            if found:
                return found
    return ""


class _Ref:
    def __init__(self, artifact_id: str) -> None:
        self.artifact_id = artifact_id

    def __repr__(self) -> str:
        return f"ref({self.artifact_id!r})"


class _IdsIn:
    """A string argument that names recorded artifact ids: the script substitutes the new ones."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"ids_in({self.text!r})"


def _with_ids(value: Any, produced: set[str]) -> Any:
    """``value`` with each string that names an artifact of the export wrapped for :func:`ids_in`."""
    if isinstance(value, str):
        return _IdsIn(value) if any(artifact_id in value for artifact_id in produced) else value
    if isinstance(value, list):
        return [_with_ids(item, produced) for item in value]
    if isinstance(value, dict):
        return {key: _with_ids(item, produced) for key, item in value.items()}
    return value


def _with_refs(value: Any, is_artifact: bool) -> Any:
    if not is_artifact or value is None:
        return value
    if isinstance(value, list):
        return [_Ref(v) for v in value]
    return _Ref(value)


def _literal(arguments: dict[str, Any]) -> str:
    body = ", ".join(f"{key!r}: {_py(value)}" for key, value in arguments.items())
    return "{" + body + "}"


def _py(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_py(item) for item in value) + "]"
    return repr(value)  # JSON values, _Ref and _IdsIn have Python-literal reprs


def _versions_line(calls: list[CallRecord]) -> str:
    packages = calls[-1].packages if calls else {}
    keys = ("physagent", "pythia8mc", "fastjet", "awkward", "uproot")
    return ", ".join(f"{k} {packages[k]}" for k in keys if k in packages) or "unknown versions"
