"""Host files the data tools may read: uploads, the CLI's current directory and PHYSAGENT_DATA_DIRS only —
checked through the CLI, REST and MCP with real files, symlinks and ``..`` tricks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from mcp import Client
from typer.testing import CliRunner

from physagent.app.cli import app as cli_app
from physagent.app.mcp_server import create_server
from physagent.app.rest import SESSION_HEADER, create_app
from physagent.tools import FileAccess, ToolAccessError, ToolInputError, Workspace, call_tool, export_script

CSV = "pt_gev,eta\n10,0.1\n20,0.2\n"
OUTSIDE_RULE = "is outside the allowed data folders"
NEVER_RULE = "are never read, even from a folder granted in PHYSAGENT_DATA_DIRS"


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A current directory and a granted folder with a CSV each, and a secret CSV in a folder nobody granted."""
    made = {name: tmp_path / name for name in ("cwd", "granted", "secret")}
    for name, folder in made.items():
        folder.mkdir()
        (folder / f"{name}.csv").write_text(CSV)
    (made["cwd"] / "link.csv").symlink_to(made["secret"] / "secret.csv")
    monkeypatch.chdir(made["cwd"])
    monkeypatch.setenv("PHYSAGENT_DATA_DIRS", str(made["granted"]))
    return made


def _refused(folders: dict[str, Path]) -> dict[str, str]:
    """Paths every front end must refuse → the rule the message names."""
    secret = str(folders["secret"] / "secret.csv")
    return {
        "/etc/passwd": OUTSIDE_RULE,
        "/proc/self/environ": NEVER_RULE,
        secret: OUTSIDE_RULE,
        "link.csv": OUTSIDE_RULE,  # a symlink in the current directory pointing out of it
        "../secret/secret.csv": OUTSIDE_RULE,
        f"{folders['granted']}/../secret/secret.csv": OUTSIDE_RULE,
        "/etc/../etc/./passwd": OUTSIDE_RULE,
    }


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_the_policy_resolves_symlinks_and_dot_dots_before_checking(folders: dict[str, Path]) -> None:
    """The rule applies to the real path: a link out is refused, a path that only passes through is read."""
    uploads = folders["cwd"] / "uploads"
    local = FileAccess()
    assert local.resolve("t", "path", "cwd.csv", uploads) == folders["cwd"] / "cwd.csv"
    assert local.resolve("t", "path", "../granted/granted.csv", uploads) == folders["granted"] / "granted.csv"
    for path, rule in _refused(folders).items():
        with pytest.raises(ToolAccessError, match=rule):
            local.resolve("t", "path", path, uploads)
    with pytest.raises(ToolAccessError, match=OUTSIDE_RULE):  # servers never read their current directory
        FileAccess(allow_cwd=False).resolve("t", "path", str(folders["cwd"] / "cwd.csv"), uploads)


def test_a_missing_file_outside_the_folders_is_refused_without_saying_whether_it_exists(
    folders: dict[str, Path],
) -> None:
    """Inside an allowed folder a missing file 'does not exist'; outside, the answer is the rule (no probing)."""
    uploads = folders["cwd"] / "uploads"
    with pytest.raises(ToolInputError, match="does not exist") as inside:
        FileAccess().resolve("t", "path", "nope.csv", uploads)
    assert not isinstance(inside.value, ToolAccessError)
    (folders["cwd"] / "etc").symlink_to("/etc")
    for path in ("/etc/no-such-file", "etc/no-such-file"):  # etc/ is a link out of the current directory
        with pytest.raises(ToolAccessError, match=OUTSIDE_RULE):
            FileAccess().resolve("t", "path", path, uploads)
    for odd in ("bad\0name.csv", "~no-such-user/x.csv"):  # taken literally, never a crash
        with pytest.raises(ToolInputError, match="does not exist"):
            FileAccess().resolve("t", "path", odd, uploads)


def test_granting_proc_sys_or_dev_does_not_open_them(folders: dict[str, Path], monkeypatch: pytest.MonkeyPatch
                                                     ) -> None:
    """/proc, /sys and /dev stay closed even when PHYSAGENT_DATA_DIRS names them (or the whole disk)."""
    monkeypatch.setenv("PHYSAGENT_DATA_DIRS", os.pathsep.join(["/", "/proc", "/dev"]))
    for path in ("/proc/self/environ", "/dev/null", "/sys/kernel/hostname"):
        with pytest.raises(ToolAccessError, match=NEVER_RULE):
            FileAccess().resolve("t", "path", path, folders["cwd"] / "uploads")


def test_cli_refuses_host_files_with_exit_2_naming_the_rule(folders: dict[str, Path], workspace: Workspace) -> None:
    """`tools call read_table` on /etc/passwd, /proc/self/environ, a symlink out or a `..` path: exit 2, no table."""
    for path, rule in _refused(folders).items():
        result = CliRunner().invoke(cli_app, ["tools", "call", "read_table", "--arg", f"path={path}",
                                              "--arg", "format=csv"])
        message = _flat(result.stderr)
        assert result.exit_code == 2, (path, result.output)
        assert rule in message and "read_table: path=" in message, message
        if rule == OUTSIDE_RULE:
            assert "add its folder to PHYSAGENT_DATA_DIRS" in message
    assert workspace.list_artifacts() == [] and not (workspace.root / "artifacts").exists()


def test_cli_reads_files_in_the_current_directory_and_granted_folders(folders: dict[str, Path],
                                                                    workspace: Workspace) -> None:
    """A relative path in the current directory and an absolute one in PHYSAGENT_DATA_DIRS are read."""
    for path in ("cwd.csv", str(folders["granted"] / "granted.csv")):
        result = CliRunner().invoke(cli_app, ["tools", "call", "read_table", "--arg", f"path={path}", "--json"])
        assert result.exit_code == 0, result.output
    assert [a.kind for a in workspace.list_artifacts()] == ["table", "table"]


def test_rest_refuses_host_files_and_its_own_directory_with_403(folders: dict[str, Path], tmp_path: Path) -> None:
    """Over REST every refused path, and even a file in the server's current directory, is 403 naming the rule."""
    client = TestClient(create_app(tmp_path / "home"))
    session = client.post("/sessions").json()["session"]
    headers = {SESSION_HEADER: session}
    uploads = tmp_path / "home" / "sessions" / session / "uploads"
    uploads.mkdir()
    (uploads / "link.csv").symlink_to(folders["secret"] / "secret.csv")  # a symlink in uploads pointing out
    refused = {**_refused(folders), str(folders["cwd"] / "cwd.csv"): OUTSIDE_RULE}  # relative paths start at uploads
    for path, rule in refused.items():
        response = client.post("/tools/read_table", json={"path": path, "format": "csv"}, headers=headers)
        assert response.status_code == 403, (path, response.text)
        body = response.json()
        assert body["type"] == "ToolAccessError" and rule in body["detail"]
    assert client.get(f"/sessions/{session}").json()["artifacts"] == []
    assert not (tmp_path / "home" / "sessions" / session / "artifacts").exists()
    assert "403" in client.get("/openapi.json").json()["paths"]["/tools/read_table"]["post"]["responses"]


def test_rest_reads_uploads_by_name_and_granted_folders(folders: dict[str, Path], tmp_path: Path) -> None:
    """An uploaded file is read by its name (relative paths start at uploads); a granted folder is read too."""
    client = TestClient(create_app(tmp_path / "home"))
    upload = client.post("/uploads", files={"file": ("muons.csv", CSV.encode(), "text/csv")})
    assert upload.status_code == 200 and upload.json()["artifact"]["kind"] == "table", upload.text
    headers = {SESSION_HEADER: upload.json()["session"]}
    for path in ("muons.csv", str(folders["granted"] / "granted.csv")):
        response = client.post("/tools/read_table", json={"path": path}, params={"no_cache": True}, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["result"]["n_rows"] == 2


def test_the_agent_behind_rest_cannot_read_host_files(folders: dict[str, Path], tmp_path: Path) -> None:
    """A model that asks read_table for /etc/passwd gets the rule back as a failed step; nothing is stored."""
    script = tmp_path / "reader.json"
    script.write_text(json.dumps([{"tool": "read_table", "arguments": {"path": "/etc/passwd", "format": "csv"}},
                                  {"answer": "I may not read that file."}]))
    client = TestClient(create_app(tmp_path / "home", backend=f"scripted:{script}"))
    response = client.post("/agent/ask", json={"request": "Load /etc/passwd", "stream": False})
    assert response.status_code == 200, response.text
    record = response.json()
    (call,) = record["tool_calls"]
    assert call["tool"] == "read_table" and not call["ok"] and OUTSIDE_RULE in json.dumps(record)
    assert record["artifacts"] == []


def _mcp_calls(workspace: Workspace, paths: list[str]) -> list[Any]:
    async def main() -> list[Any]:
        async with Client(create_server(workspace)) as client:
            return [await client.call_tool("read_table", {"path": p, "format": "csv"}) for p in paths]

    return anyio.run(main)


def test_mcp_refuses_host_files_and_its_own_directory_as_error_results(folders: dict[str, Path],
                                                                       workspace: Workspace) -> None:
    """An MCP client gets an error result naming the rule; the server's current directory is not readable."""
    (workspace.root / "uploads").mkdir(parents=True)
    (workspace.root / "uploads" / "link.csv").symlink_to(folders["secret"] / "secret.csv")
    refused = {**_refused(folders), str(folders["cwd"] / "cwd.csv"): OUTSIDE_RULE}
    results = _mcp_calls(workspace, list(refused))
    for (path, rule), result in zip(refused.items(), results, strict=True):
        assert result.is_error and rule in result.content[0].text, (path, result.content)
    assert workspace.list_artifacts() == [] and not (workspace.root / "artifacts").exists()


def test_mcp_reads_granted_folders(folders: dict[str, Path], workspace: Workspace) -> None:
    """A file in a PHYSAGENT_DATA_DIRS folder is read over MCP."""
    (result,) = _mcp_calls(workspace, [str(folders["granted"] / "granted.csv")])
    assert not result.is_error and result.structured_content["result"]["n_rows"] == 2


def test_python_calls_follow_the_workspace_file_access(folders: dict[str, Path], tmp_path: Path) -> None:
    """call_tool reads the current directory by default; a workspace given SERVER-like access does not."""
    assert call_tool("read_table", {"path": "cwd.csv"}, workspace=Workspace(tmp_path / "a")).result.n_rows == 2
    confined = Workspace(tmp_path / "b", file_access=FileAccess(allow_cwd=False))
    with pytest.raises(ToolAccessError, match=OUTSIDE_RULE):
        call_tool("read_table", {"path": str(folders["cwd"] / "cwd.csv")}, workspace=confined)
    assert confined.list_artifacts() == []


@pytest.mark.parametrize("setting", [
    "Beams:LHEF = /etc/passwd", "SLHA:file=/etc/passwd", "Vincia:mePlugin = /tmp/plugin.so",
    "MultipartonInteractions:reuseInit = 2", "PDF:pSet = LHAGrid1:/etc/passwd",
])
def test_generate_events_refuses_pythia_settings_that_name_host_files(setting: str,
                                                                      no_workspace_writes: Workspace) -> None:
    """Raw Pythia settings cannot read, write or load host files (LHEF, SLHA, init files, plugins, PDF grids)."""
    with pytest.raises(ToolInputError, match=r"generate_events: settings=.* names a file Pythia would read, write"):
        call_tool("generate_events", {"process": "drell_yan_mumu", "n_events": 10, "settings": [setting]},
                  workspace=no_workspace_writes)


def test_an_exported_script_may_read_the_folders_its_calls_read(folders: dict[str, Path], workspace: Workspace,
                                                                tmp_path: Path) -> None:
    """The script grants the recorded read_table's folder (READ_FOLDERS), so it replays from anywhere."""
    read = call_tool("read_table", {"path": str(folders["granted"] / "granted.csv")}, workspace=workspace)
    script = export_script(workspace)
    assert f"READ_FOLDERS = {[str(folders['granted'])]!r}" in script
    (tmp_path / "replay.py").write_text(script)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PHYSAGENT_DATA_DIRS"}
    run = subprocess.run([sys.executable, str(tmp_path / "replay.py"), str(elsewhere / "again")], cwd=elsewhere,
                         env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert [a.sha256 for a in Workspace(elsewhere / "again").list_artifacts()] == [read.result.data.sha256]
