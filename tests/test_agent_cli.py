"""`physagent ask` from the command line, driven by a scripted model through the real tools."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from physagent.app.cli import app
from physagent.tools import Workspace

runner = CliRunner()


@pytest.fixture
def scripted(plot_pipeline_script: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """A JSON script: generate → histogram → plot → answer, selected through PHYSAGENT_LLM."""
    script = plot_pipeline_script("Generated 200 Drell-Yan events and plotted the mass.")
    monkeypatch.setenv("PHYSAGENT_LLM", f"scripted:{script}")
    return script


def test_ask_prints_steps_and_answer(workspace: Workspace, scripted: Path) -> None:
    """Without --json the steps (tool, arguments, result) and the answer are printed."""
    result = runner.invoke(app, ["ask", "Generate 200 Drell-Yan events and plot the mass"])
    assert result.exit_code == 0, result.output
    assert "→ generate_events" in result.stdout and "✓ generate_events OK" in result.stdout
    assert "Generated 200 Drell-Yan events and plotted the mass." in result.stdout


def test_ask_json_is_one_machine_readable_record(workspace: Workspace, scripted: Path, tmp_path: Path) -> None:
    """--json prints answer, tool calls with status, artifacts, numbers, backend, tokens and time; --report
    writes Markdown with the plot beside it."""
    report = tmp_path / "report" / "report.md"
    result = runner.invoke(app, ["ask", "Generate 200 Drell-Yan events and plot the mass", "--json",
                                 "--report", str(report)])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert [c["tool"] for c in record["tool_calls"]] == ["generate_events", "histogram", "plot"]
    assert all(c["ok"] for c in record["tool_calls"]) and record["backend"] == "scripted"
    assert {a["kind"] for a in record["artifacts"]} == {"events", "histogram", "plot"}
    assert record["numbers"] == ["200"] and record["prompt_tokens"] > 0 and record["wall_s"] > 0
    text = report.read_text()
    plot_id = next(a["id"] for a in record["artifacts"] if a["kind"] == "plot")
    assert "![" in text and f"({plot_id}.png)" in text and (report.parent / f"{plot_id}.png").is_file()


def test_ask_with_an_unknown_backend_fails_with_advice(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelt backend is one error line that lists the valid choices."""
    monkeypatch.setenv("PHYSAGENT_LLM", "gpt-7")
    result = runner.invoke(app, ["ask", "hello"])
    assert result.exit_code == 1 and "unknown backend 'gpt-7'" in result.stderr and "embedded:1.5b" in result.stderr


def test_chat_keeps_memory_between_turns(workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two requests in one chat share a session; the second uses the first turn's artifact."""
    script = tmp_path / "chat.json"
    script.write_text(json.dumps([
        {"tool": "generate_events", "arguments": {"process": "drell_yan_mumu", "n_events": 30, "mpi": False}},
        {"answer": "Generated 30 events."},
        {"tool": "histogram", "arguments": {"source": "$last:ev", "field": "pt_hat_gev", "bins": 10}},
        {"answer": "Histogram done."},
    ]))
    monkeypatch.setenv("PHYSAGENT_LLM", f"scripted:{script}")
    result = runner.invoke(app, ["chat"], input="generate 30 DY events\nhistogram pt_hat of that sample\nexit\n")
    assert result.exit_code == 0, result.output
    assert "Histogram done." in result.stdout
    sessions = workspace.sessions()
    assert len(sessions) == 1 and len(sessions[0]["record"]["turns"]) == 2
