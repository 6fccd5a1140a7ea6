"""``physagent ask``, ``chat`` and ``eval``: the agent from the terminal, rendering its event stream."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated

import typer

from physagent.agent import AgentEvent, AgentRecord, Assistant, get_backend
from physagent.agent.report import write_report
from physagent.app._common import JsonFlag, err, out, print_json, reporting_errors
from physagent.app._progress import RichProgress
from physagent.tools import Workspace, stdout_to_stderr

__all__ = ["register"]

Backend = Annotated[str | None, typer.Option(help="embedded | embedded:1.5b | embedded:/path.gguf | openai "
                                                  "(default: $PHYSAGENT_LLM or embedded).")]
MaxSteps = Annotated[int, typer.Option(help="Model turns allowed per request.")]


def render(event: AgentEvent) -> None:
    """One line (or a few) per event, for a person watching the agent work."""
    if event.type == "plan":
        out.print(f"[dim]tools offered: {', '.join(event.tools)}[/]")
    elif event.type == "tool_call":
        out.print(f"[bold cyan]→ {event.tool}[/] {json.dumps(event.arguments)}", highlight=False)
    elif event.type == "tool_result":
        mark = "[green]✓[/]" if event.ok else "[red]✗[/]"
        out.print(f"  {mark} {event.summary[:300]}", highlight=False)
    elif event.type == "artifact":
        out.print(f"  [magenta]{event.id}[/] ({event.kind}) {event.path}", highlight=False)
    elif event.type == "error":
        out.print(f"[bold red]stopped:[/] {event.message}", highlight=False)
    elif event.type == "answer":
        out.print(f"\n[bold]{event.text}[/]", highlight=False)


def _run(assistant: Assistant, request: str, as_json: bool) -> AgentRecord:
    """Stream the request; with --json, stdout carries only the record (library chatter goes to stderr)."""
    with stdout_to_stderr() if as_json else contextlib.nullcontext(), RichProgress(err) as progress:
        assistant.progress = progress
        for event in assistant.stream(request):
            if not as_json:
                render(event)
    return assistant.records[-1]


def ask(
    request: Annotated[str, typer.Argument(help="What you want, in plain language.")],
    backend: Backend = None,
    max_steps: MaxSteps = 10,
    report: Annotated[Path | None, typer.Option(help="Also write a Markdown report (plots copied beside it).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run one request to completion: steps, artifacts, and a grounded answer."""
    with reporting_errors():
        assistant = Assistant(backend=get_backend(backend), workspace=Workspace(), max_steps=max_steps)
        record = _run(assistant, request, as_json)
    if report is not None:
        write_report(record, report)
        if not as_json:
            out.print(f"\nreport: {report}")
    if as_json:
        print_json(record.model_dump(mode="json"))
    if record.error:
        raise typer.Exit(1)


def chat(backend: Backend = None, max_steps: MaxSteps = 10) -> None:
    """An interactive session that remembers earlier turns and their artifacts (Ctrl-D or 'exit' ends it)."""
    with reporting_errors():
        assistant = Assistant(backend=get_backend(backend), workspace=Workspace(), max_steps=max_steps)
    out.print(f"physagent chat — backend {assistant.backend.name}, session {assistant.session}. "
              "Type a request; 'exit' or Ctrl-D ends.")
    while True:
        try:
            request = typer.prompt("you", prompt_suffix="> ").strip()
        except (EOFError, typer.Abort):
            break
        if request.lower() in {"exit", "quit"}:
            break
        if request:
            with reporting_errors():
                _run(assistant, request, as_json=False)
    out.print(f"session {assistant.session} saved; `physagent export --session {assistant.session}` "
              "writes a script that reproduces its artifacts.")


def register(app: typer.Typer) -> None:
    """Add the agent commands to the main CLI."""
    app.command()(ask)
    app.command()(chat)
    app.command("eval")(eval_suite)


def eval_suite(
    suite: Annotated[Path | None, typer.Option(help="Suite file (default: the built-in evals/basic.yaml).")] = None,
    backend: Backend = None,
    only: Annotated[list[str] | None, typer.Option(help="Run only these task ids (repeatable).")] = None,
    output: Annotated[Path | None, typer.Option(help="Also write the report to this file.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run an eval suite on a backend: pass rate, tool-call accuracy, steps, tokens and time."""
    from physagent.evals import DEFAULT_SUITE, EvalSuiteError, format_report, load_suite, run_suite, select_tasks

    try:
        tasks = select_tasks(load_suite(suite or DEFAULT_SUITE), only)
    except EvalSuiteError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    with reporting_errors(), stdout_to_stderr():
        report = run_suite(tasks, backend, Workspace().root / "eval-runs", suite=Path(suite or DEFAULT_SUITE).stem,
                           progress=lambda r, i, n: err.print(f"[{i}/{n}] {r.id}: {r.verdict}", highlight=False))
    text = report.model_dump_json(indent=2) if as_json else format_report(report)
    if output is not None:
        output.write_text(text + "\n")
    out.print(text, highlight=False, markup=False)
