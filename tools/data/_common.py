r"""Helpers shared by the data tools: the events-vs-table rule, storing arrays.

An array read from outside becomes an ``events`` artifact (``events.parquet``) when it has a
``particles`` collection with ``px, py, pz, e`` [GeV], ``pid`` and ``charge`` — the shape
``generate_events`` writes, so every tool that takes events can use it — and a ``table`` artifact
(``table.parquet``) otherwise.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from physagent.tools._artifacts import Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._io import write_parquet
from physagent.tools._registry import ToolResult

__all__ = [
    "EVENT_PARTICLE_FIELDS", "LoadedData", "array_kind", "check_not_empty_fields", "row_type", "store_array",
]

EVENT_PARTICLE_FIELDS = ("px", "py", "pz", "e", "pid", "charge")
_PRIMARY = {"events": "events.parquet", "table": "table.parquet"}


class LoadedData(ToolResult):
    """Data read from a file into the workspace."""

    data: Artifact = Field(description="Parquet artifact of the data (kind 'events' or 'table').")
    kind: str = Field(description="'events' when it has particles with px, py, pz, e, pid, charge; else 'table'.")
    n_rows: int = Field(description="Number of rows (events or entries) read.")
    fields: list[str] = Field(description="Top-level fields (columns), in file order.")
    type: str = Field(description="The awkward type of one row, e.g. '{x: float64, y: var * int32}'.")


def array_kind(array: Any) -> str:
    """``events`` when ``array`` has a particles collection with the event fields, else ``table``."""
    import awkward as ak

    if "particles" not in ak.fields(array):
        return "table"
    return "events" if set(EVENT_PARTICLE_FIELDS) <= set(ak.fields(array["particles"])) else "table"


def row_type(array: Any) -> str:
    """The type of one row as text (truncated for very wide records)."""
    text = str(array.type.content)
    return text if len(text) <= 2000 else text[:1997] + "..."


def store_array(ctx: ToolContext, array: Any, summary: str, metadata: dict[str, Any]) -> LoadedData:
    """Write ``array`` as an events or table artifact and describe it."""
    import awkward as ak

    kind = array_kind(array)
    pending = ctx.new_artifact(kind)
    write_parquet(array, pending.directory / _PRIMARY[kind])
    fields = list(ak.fields(array))
    details = {**metadata, "n_rows": len(array), "fields": fields}
    artifact = pending.finish(_PRIMARY[kind], f"{kind}: {summary}", details)
    return LoadedData(data=artifact, kind=kind, n_rows=len(array), fields=fields, type=row_type(array))


def check_not_empty_fields(tool: str, param: str, value: Any, array: Any) -> None:
    """Reject arrays without fields: there is nothing to store or histogram."""
    import awkward as ak

    if not ak.fields(array):
        raise ToolInputError.for_param(
            tool, param, value, "holds no columns (no fields were found). Point it at a file with data."
        )
