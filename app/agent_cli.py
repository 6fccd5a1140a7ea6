"""``physagent ask``, ``chat`` and ``eval``: the agent from the terminal, rendering its event stream."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.markup import escape
from rich.text import Text

from physagent.agent import AgentEvent, AgentRecord, Assistant, BackendError, get_backend
from physagent.agent.loop import checked_mode
from physagent.agent.report import write_report
from physagent.app._common import JsonFlag, err, error_line, out, print_json, reporting_errors
from physagent.app._progress import RichProgress
from physagent.tools import Workspace, stdout_to_stderr

if TYPE_CHECKING:
    from physagent.agent.loop import Mode

__all__ = ["register"]

Backend = Annotated[str | None, typer.Option(help="embedded | embedded:1.5b | embedded:/path.gguf | openai "
                                                  "(default: $PHYSAGENT_LLM or embedded).")]
MaxSteps = Annotated[int, typer.Option(help="Model turns allowed per request.")]
ModeOption = Annotated[str | None, typer.Option(
    "--mode", help="plan: the whole plan in one reply, checked, then run; step: one tool call per model turn "
                   "(default: $PHYSAGENT_AGENT_MODE or plan).")]


def render(event: AgentEvent) -> None:
    """One line (or a few) per event, for a person watching the agent work."""
    if event.type == "plan":
        out.print(f"[dim]tools offered: {escape(', '.join(event.tools))}[/]")
    elif event.type == "tool_call":
        out.print(f"[bold cyan]→ {escape(event.tool)}[/] {escape(json.dumps(event.arguments))}", highlight=False)
    elif event.type == "tool_result":
        mark = "[green]✓[/]" if event.ok else "[red]✗[/]"
        out.print(f"  {mark} {escape(event.summary[:300])}", highlight=False)
    elif event.type == "artifact":
        out.print(f"  [magenta]{escape(event.id)}[/] ({escape(event.kind)}) {escape(str(event.path))}", highlight=False)
    elif event.type == "error":
        out.print(error_line(event.message, "stopped:"), highlight=False)
    elif event.type == "answer":
        out.print(Text("\n" + event.text, style="bold"), highlight=False)


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
    mode: ModeOption = None,
    report: Annotated[Path | None, typer.Option(help="Also write a Markdown report (plots copied beside it).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run one request to completion: steps, artifacts, and a grounded answer."""
    with reporting_errors():
        assistant = _assistant(backend, max_steps, mode)
        record = _run(assistant, request, as_json)
    if report is not None:
        write_report(record, report)
        if not as_json:
            out.print(f"\nreport: {report}", markup=False)
    if as_json:
        print_json(record.model_dump(mode="json"))
    if record.error:
        raise typer.Exit(1)


def chat(backend: Backend = None, max_steps: MaxSteps = 10, mode: ModeOption = None) -> None:
    """An interactive session that remembers earlier turns and their artifacts (Ctrl-D or 'exit' ends it)."""
    with reporting_errors():
        assistant = _assistant(backend, max_steps, mode)
    out.print(f"physagent chat — backend {assistant.backend.name}, session {assistant.session}. "
              "Type a request; 'exit' or Ctrl-D ends.", markup=False)
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
              "writes a script that reproduces its artifacts.", markup=False)


def _assistant(backend: str | None, max_steps: int, mode: str | None) -> Assistant:
    try:
        return Assistant(backend=get_backend(backend), workspace=Workspace(), max_steps=max_steps,
                         mode=checked_mode(mode) if mode else None)
    except ValueError as exc:
        raise BackendError(str(exc)) from None


def register(app: typer.Typer) -> None:
    """Add the agent commands to the main CLI."""
    app.command()(ask)
    app.command()(chat)
    app.command("eval")(eval_suite)


def eval_suite(
    suite: Annotated[list[Path] | None, typer.Option(help="Suite file or folder (repeatable; default: every "
                                                         "evals/*.yaml of the package).")] = None,
    backend: Annotated[list[str] | None, typer.Option(help="Backend spec, as for ask (repeatable: one report "
                                                           "each).")] = None,
    mode: Annotated[list[str] | None, typer.Option(help="Agent mode: plan | step (repeatable: one report each; "
                                                        "default: the agent's default).")] = None,
    repeat: Annotated[int, typer.Option(min=1, help="Runs per task; pass^N counts tasks that pass all N.")] = 1,
    only: Annotated[list[str] | None, typer.Option(help="Run only these task ids (repeatable).")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Run only tasks with one of these tags (repeatable).")] = None,
    output: Annotated[Path | None, typer.Option(help="Also write the report to this file.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run the eval suite: pass@1, pass^N, failure taxonomy, tool-call accuracy, time and tokens per task."""
    from physagent.evals import DEFAULT_SUITE, EvalSuiteError, format_report, load_suite, run_suite, select_tasks

    bad = [m for m in mode or [] if m not in ("plan", "step")]
    if bad:
        err.print(error_line(f"--mode {bad[0]!r}: use plan or step"), highlight=False)
        raise typer.Exit(2)
    paths = suite or [DEFAULT_SUITE]
    try:
        tasks = select_tasks(load_suite(paths), only, tag)
    except EvalSuiteError as exc:
        err.print(error_line(str(exc)), highlight=False)
        raise typer.Exit(2) from None
    name = ", ".join(p.stem if p.is_file() else f"{p.name}/*.yaml" for p in paths)
    reports = []
    with reporting_errors(), stdout_to_stderr():
        for spec in backend or [None]:
            for chosen in mode or [None]:
                reports.append(run_suite(
                    tasks, spec, Workspace().root / "eval-runs", suite=name, mode=cast("Mode | None", chosen),
                    repeats=repeat, progress=lambda r, i, n: err.print(f"[{i}/{n}] {r.id}: {r.verdict}",
                                                                        highlight=False, markup=False)))
    if as_json:
        dumped = [r.model_dump(mode="json") for r in reports]
        text = json.dumps(dumped[0] if len(dumped) == 1 else dumped, indent=2)
    else:
        text = format_report(reports)
    if output is not None:
        output.write_text(text + "\n")
    out.print(text, highlight=False, markup=False)
