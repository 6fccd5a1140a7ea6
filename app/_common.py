"""Shared pieces of the command line: consoles, the --json flag, error mapping, JSON printing."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from physagent.agent.backends import BackendError
from physagent.tools import ToolError

__all__ = ["JsonFlag", "err", "out", "print_json", "print_rows", "reporting_errors", "state"]

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
        err.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        raise typer.Exit(getattr(exc, "exit_code", 1)) from None


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def print_rows(rows: list[dict[str, Any]], columns: tuple[str, ...], as_json: bool) -> None:
    """All fields as JSON, or the chosen columns as a table for a person."""
    if as_json:
        print_json(rows)
        return
    table = Table(*columns, box=None)
    for row in rows:
        table.add_row(*(str(row[c]) for c in columns))
    out.print(table)


