"""The physagent command line, driven through typer's CliRunner as a user would type it."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from physagent.app.cli import app
from physagent.tools import Workspace

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, list(args))


def test_tools_list_json_names_every_tool(workspace: Workspace) -> None:
    """`tools list --json` gives name, category and summary of each tool."""
    result = _invoke("tools", "list", "--json")
    assert result.exit_code == 0
    tools = {t["name"]: t for t in json.loads(result.stdout)}
    assert tools["generate_events"]["category"] == "simulate"
    assert tools["cluster_jets"]["summary"].startswith("Cluster jets")


def test_tools_describe_shows_schema_and_example(workspace: Workspace) -> None:
    """`tools describe` prints the parameters with units and a runnable example."""
    text = _invoke("tools", "describe", "generate_events").stdout
    assert "sqrt_s_tev" in text and "Centre-of-mass energy in TeV" in text
    assert "example: physagent tools call generate_events --arg process=" in text
    document = json.loads(_invoke("tools", "describe", "generate_events", "--json").stdout)
    assert document["parameters"]["properties"]["n_events"]["minimum"] == 1


def test_tools_call_with_args_prints_a_json_result_with_artifacts(workspace: Workspace) -> None:
    """`tools call --arg k=v --json` runs the tool and prints one JSON document."""
    result = _invoke("tools", "call", "generate_events", "--arg", "process=drell_yan_mumu", "--arg", "n_events=40",
                     "--arg", "mpi=false", "--arg", "seed=1", "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    artifact = document["artifacts"][0]
    assert artifact["kind"] == "events" and Path(artifact["path"]).is_file()
    assert document["result"]["n_events"] == 40 and document["cached"] is False


def test_tools_call_with_input_json_and_the_cache(workspace: Workspace) -> None:
    """`--input` takes all arguments as JSON; repeating the call is a cache hit unless --no-cache."""
    payload = json.dumps({"process": "drell_yan_mumu", "n_events": 40, "mpi": False, "seed": 2})
    first = json.loads(_invoke("tools", "call", "generate_events", "--input", payload, "--json").stdout)
    second = json.loads(_invoke("tools", "call", "generate_events", "--input", payload, "--json").stdout)
    third = json.loads(_invoke("tools", "call", "generate_events", "--input", payload, "--no-cache", "--json").stdout)
    assert second["cached"] and second["artifacts"] == first["artifacts"]
    assert not third["cached"] and third["artifacts"][0]["sha256"] == first["artifacts"][0]["sha256"]


def test_tools_call_prints_a_readable_result(workspace: Workspace) -> None:
    """Without --json the result is listed as values plus artifacts with id, summary and path."""
    result = _invoke("tools", "call", "generate_events", "--arg", "process=drell_yan_mumu", "--arg", "n_events=30",
                     "--arg", "mpi=false")
    assert result.exit_code == 0
    assert "sigma_pb:" in result.stdout and "drell_yan_mumu events at sqrt(s) = 13.6 TeV" in result.stdout


def test_bad_input_exits_2_with_one_line_and_writes_nothing(no_workspace_writes: Workspace) -> None:
    """A bad argument prints one error line naming the parameter, exits 2 and writes nothing."""
    result = _invoke("tools", "call", "generate_events", "--arg", "process=ttbar", "--arg", "n_events=-5")
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "error: generate_events: n_events=-5 must be greater than or equal to 1" in result.stderr


def test_unknown_tool_and_malformed_arguments_are_explained(no_workspace_writes: Workspace) -> None:
    """An unknown tool lists the known ones; --arg without '=' and bad --input JSON are refused."""
    unknown = _invoke("tools", "call", "generate_event")
    assert unknown.exit_code == 2 and "Known tools:" in unknown.stderr
    malformed = _invoke("tools", "call", "generate_events", "--arg", "n_events")
    assert malformed.exit_code == 2 and "must look like key=value" in malformed.stderr
    bad_json = _invoke("tools", "call", "generate_events", "--input", "{process: ttbar}")
    assert bad_json.exit_code == 2 and "--input is not valid JSON" in bad_json.stderr


def test_history_artifacts_and_export(workspace: Workspace, tmp_path: Path) -> None:
    """history lists the calls, artifacts lists the outputs, export writes a runnable script."""
    _invoke("tools", "call", "generate_events", "--arg", "process=drell_yan_mumu", "--arg", "n_events=30",
            "--arg", "mpi=false")
    calls = json.loads(_invoke("history", "--json").stdout)
    assert [c["tool"] for c in calls] == ["generate_events"] and calls[0]["inputs"]["n_events"] == 30
    artifacts = json.loads(_invoke("artifacts", "list", "--json").stdout)
    assert artifacts[0]["id"] == calls[0]["outputs"][0]
    shown = _invoke("artifacts", "show", artifacts[0]["id"])
    assert artifacts[0]["sha256"] in shown.stdout
    script = tmp_path / "out.py"
    assert _invoke("export", "--script", str(script)).exit_code == 0
    assert "run('generate_events'" in script.read_text()
    compile(script.read_text(), str(script), "exec")
