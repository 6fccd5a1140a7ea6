r"""The ``physagent`` command line: tools, artifacts, history and export over the tool registry.

Every command that prints results takes ``--json``. Errors print one line and exit non-zero
(2 for bad input, 1 for a failure while running); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from physagent.app import agent_cli, server_cli
from physagent.app._common import JsonFlag, err, error_line, out, print_json, print_rows, reporting_errors, state
from physagent.app._progress import RichProgress
from physagent.app.cluster_cli import cluster_app
from physagent.app.kb_cli import kb_app
from physagent.tools import ToolInputError, Workspace, call_tool, export_script, registry, stdout_to_stderr

__all__ = ["app", "main"]

app = typer.Typer(help="physagent — an assistant for physicists: typed physics and ML tools.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
tools_app = typer.Typer(help="List, describe and call tools.", no_args_is_help=True)
artifacts_app = typer.Typer(help="Artifacts in the workspace.", no_args_is_help=True)
app.add_typer(tools_app, name="tools")
app.add_typer(artifacts_app, name="artifacts")
app.add_typer(kb_app, name="kb")
app.add_typer(cluster_app, name="cluster")
agent_cli.register(app)
server_cli.register(app)

def _print_version(value: bool) -> None:
    if value:
        import physagent

        out.print(f"physagent {physagent.__version__}", highlight=False)
        raise typer.Exit


@app.callback()
def _root(
    home: Annotated[Path | None, typer.Option(
        envvar="PHYSAGENT_HOME", show_envvar=True, help="Workspace directory (default: ~/.physagent).")] = None,
    debug: Annotated[bool, typer.Option(help="Show tracebacks on errors.")] = False,
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_print_version, help="Print the version and exit.")] = False,
) -> None:
    if home is not None:  # this process's own environment: every Workspace() it opens then uses it
        os.environ["PHYSAGENT_HOME"] = str(home.expanduser())
    state["debug"] = debug


# tools ---------------------------------------------------------------------------------------

@tools_app.command("list")
def tools_list(
    category: Annotated[str | None, typer.Option(help="Only tools of this category.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List registered tools."""
    rows = [{"name": s.name, "category": s.category, "version": s.version, "summary": s.summary}
            for s in registry if category in (None, s.category)]
    print_rows(rows, ("name", "category", "summary"), as_json)


@tools_app.command("describe")
def tools_describe(name: str, as_json: JsonFlag = False) -> None:
    """Show a tool's description, parameter schema and an example call."""
    with reporting_errors():
        spec = registry.get(name)
    document = spec.json_schema() | {"category": spec.category, "version": spec.version,
                                     "example": spec.example()}
    if as_json:
        print_json(document)
        return
    out.print(f"[bold]{spec.name}[/] ({spec.category}, v{spec.version})\n\n{escape(spec.description)}\n\nparameters:")
    required = spec.parameters_schema().get("required", [])
    for pname, prop in spec.parameters_schema().get("properties", {}).items():
        default = "required" if pname in required else f"default {json.dumps(prop.get('default'))}"
        out.print(f"  [bold]{pname}[/] ({escape(_type_text(prop))}; {escape(default)})\n"
                  f"      {escape(prop.get('description', ''))}", highlight=False)
    args = " ".join(f"--arg {k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in spec.example().items())
    out.print(f"\nexample: physagent tools call {spec.name} {args}", highlight=False, markup=False)


def _type_text(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return " | ".join(map(str, prop["enum"]))
    if "anyOf" in prop:
        return " | ".join(_type_text(p) for p in prop["anyOf"])
    return str(prop.get("type", "any"))


@tools_app.command("call")
def tools_call(
    name: str,
    arg: Annotated[
        list[str] | None, typer.Option("--arg", help="key=value (value parsed as JSON if it can be).")
    ] = None,
    input_json: Annotated[str | None, typer.Option("--input", help="All arguments as one JSON object.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Rerun even if an identical call is cached.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Call a tool with validated arguments and print its typed result."""
    with reporting_errors():
        arguments = _parse_arguments(name, arg or [], input_json)
        with stdout_to_stderr(), RichProgress(err) as progress:
            outcome = call_tool(name, arguments, workspace=Workspace(), use_cache=not no_cache,
                                progress=progress)
    if as_json:
        print_json(outcome.to_json())
        return
    _print_outcome(outcome)


def _parse_arguments(tool: str, pairs: list[str], input_json: str | None) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    if input_json:
        try:
            arguments = json.loads(input_json)
        except json.JSONDecodeError as exc:
            raise ToolInputError(
                f"{tool}: --input is not valid JSON ({exc}). Example: --input '{{\"n_events\": 100}}'",
                tool=tool, param="--input", value=input_json) from None
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ToolInputError(f"{tool}: --arg {pair!r} must look like key=value, e.g. --arg n_events=1000.",
                                 tool=tool, param="--arg", value=pair)
        arguments[key.strip()] = _parse_value(raw)
    return arguments


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw  # a bare word such as ttbar is a string


def _print_outcome(outcome: Any) -> None:
    note = " (cached result)" if outcome.cached else f" in {outcome.wall_s:.1f} s"
    out.print(f"[bold]{outcome.tool}[/] finished{escape(note)} — call {escape(outcome.call_id)}")
    values = {k: v for k, v in outcome.result.model_dump(mode="json").items()
              if not _is_artifact_value(v)}
    for key, value in values.items():
        out.print(f"  {key}: {_short(value)}", highlight=False, markup=False)
    for artifact in outcome.artifacts:
        out.print(f"  [cyan]{artifact.id}[/] ({artifact.kind}) {escape(artifact.summary)}\n"
                  f"    {escape(str(artifact.path))}", highlight=False)


def _is_artifact_value(value: Any) -> bool:
    items = value if isinstance(value, list) else [value]
    return bool(items) and all(isinstance(i, dict) and {"id", "sha256"} <= i.keys() for i in items)


def _short(value: Any) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) < 200 else text[:197] + "..."


# artifacts, history, export -------------------------------------------------------------------

@artifacts_app.command("list")
def artifacts_list(
    kind: Annotated[str | None, typer.Option(help="Only artifacts of this kind.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List artifacts in the workspace."""
    rows = [a.model_dump(mode="json") for a in Workspace().list_artifacts(kind)]
    print_rows(rows, ("id", "kind", "summary"), as_json)


@artifacts_app.command("show")
def artifacts_show(artifact_id: str, as_json: JsonFlag = False) -> None:
    """Show one artifact: path, hash, metadata."""
    artifact = Workspace().get_artifact(artifact_id)
    if artifact is None:
        err.print(error_line(f"no artifact {artifact_id!r} in {Workspace().root}"), highlight=False)
        raise typer.Exit(2)
    if as_json:
        print_json(artifact.model_dump(mode="json"))
        return
    out.print(f"{artifact.id} ({artifact.kind}) {artifact.summary}\n  path: {artifact.path}\n"
              f"  sha256: {artifact.sha256}\n  metadata: {json.dumps(artifact.metadata, indent=2)}",
              highlight=False, markup=False)


@app.command()
def history(
    limit: Annotated[int, typer.Option(help="Show the last N calls (0: all).")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """List recorded tool calls (provenance) in the workspace."""
    calls = Workspace().calls(limit or None)
    if as_json:
        print_json([c.__dict__ for c in calls])
        return
    table = Table("call", "tool", "inputs", "outputs", "seconds", box=None)
    for call in calls:
        cached = f" (cache of {call.cached_from})" if call.cached_from else ""
        table.add_row(*map(Text, (call.id, call.tool, _short(call.inputs), ", ".join(call.outputs) + cached,
                                  f"{call.wall_s:.1f}")))  # values, not markup
    out.print(table)


@app.command()
def export(
    script: Annotated[Path, typer.Option(help="Where to write the reproduction script.")] = Path("reproduce.py"),
    artifact: Annotated[list[str] | None, typer.Option(help="Only what these artifacts need (repeatable).")] = None,
    session: Annotated[str | None, typer.Option(help="Only what this agent session produced.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write a plain Python script that reproduces the workspace's artifacts without the agent."""
    try:
        source = export_script(Workspace(), artifact, session)
    except KeyError as exc:
        err.print(error_line(str(exc.args[0])), highlight=False)
        raise typer.Exit(2) from None
    tmp = script.with_name(script.name + ".tmp")
    tmp.write_text(source)
    tmp.replace(script)
    if as_json:
        print_json({"script": str(script.resolve())})
    else:
        out.print(f"wrote {script} — run it with: python {script}", markup=False)


def main() -> None:
    """Console-script entry point; SIGTERM (``kill``, ``timeout``, a batch system) stops it like Ctrl-C."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate_like_ctrl_c)
    app()


def _terminate_like_ctrl_c(signum: int, frame: object) -> None:
    """Unwind as KeyboardInterrupt does: staging removed, workers killed, exit code 130."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt that cleanup
    raise KeyboardInterrupt
