"""Shared pieces of the command line: consoles, the --json flag, error mapping, JSON printing."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from physagent.agent.backends import BackendError
from physagent.tools import ToolError

__all__ = ["JsonFlag", "err", "error_line", "out", "print_json", "print_rows", "reporting_errors", "state"]

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
state = {"debug": False}

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one machine-readable JSON document.")]


@contextmanager
def reporting_errors() -> Iterator[None]:
    """Map errors once: one line on stderr, exit code 2 for bad input, 1 otherwise."""
    try:
        yield
    except (ToolError, BackendError) as exc:
        if state["debug"]:
            err.print_exception()
        err.print(error_line(str(exc)), highlight=False)
        raise typer.Exit(getattr(exc, "exit_code", 1)) from None


def error_line(message: str, label: str = "error:", style: str = "bold red") -> Text:
    """``error: message`` with the label styled and the message as plain text: user values such as
    ``[/x]`` or an id pattern ``^[a-z]{2,5}-…`` print as they are, never read as rich markup."""
    return Text.assemble((label, style), " ", message)


def print_json(document: Any) -> None:
    """One strict JSON document on stdout: a NaN or ±inf (only a record written before provenance was
    strict can hold one) prints as null, never as the invalid token ``NaN``."""
    try:
        text = json.dumps(document, indent=2, default=str, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(document), indent=2, default=str, allow_nan=False)
    sys.stdout.write(text + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def print_rows(rows: list[dict[str, Any]], columns: tuple[str, ...], as_json: bool) -> None:
    """All fields as JSON, or the chosen columns as a table for a person."""
    if as_json:
        print_json(rows)
        return
    table = Table(*columns, box=None)
    for row in rows:
        table.add_row(*(Text(str(row[c])) for c in columns))  # cells are values, not markup
    out.print(table)


