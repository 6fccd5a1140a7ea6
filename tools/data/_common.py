r"""Helpers shared by the data tools: the events-vs-table rule, storing arrays.

An array read from outside becomes an ``events`` artifact (``events.parquet``) when it has a
``particles`` collection with ``px, py, pz, e`` [GeV], ``pid`` and ``charge`` — the shape
``generate_events`` writes, so every tool that takes events can use it — and a ``table`` artifact
(``table.parquet``) otherwise. An events artifact always has a per-event ``weight`` (1.0 when the file has none).

Files with a schema (NanoAOD, Delphes; see :mod:`tools.data._schemas`) are read into the same shape: ``particles``
{px, py, pz, e [GeV], pid, charge}, ``partons`` {…, status, mother1, mother2 (index in ``partons``, −1 none)}, reco
collections ``jets``, ``fatjets``, ``genjets``, ``muons``, ``electrons``, ``photons``, ``taus`` {pt, eta, phi, mass,
e [GeV], …} and ``met`` {pt, phi}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from physagent.tools._artifacts import Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._io import write_parquet
from physagent.tools._registry import ToolResult

__all__ = [
    "EVENT_PARTICLE_FIELDS", "FileNotes", "LoadedData", "array_kind", "check_not_empty_fields", "row_type",
    "store_array", "with_weight",
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
    file_schema: str = Field(default="flat", description="How the file was read: 'nanoaod', 'delphes', 'lhe', "
                             "'hepmc3' or 'flat' (branches/columns as they are).")
    units: str = Field(default="GeV", description="Unit of the stored momenta and energies: always 'GeV' (converted).")
    units_source: str = Field(default="none", description="Unit of the file and where it came from: 'given' (units=), "
                              "'file' (a unit note in the file), 'schema' (NanoAOD/Delphes/LHE/HepMC3 are GeV), "
                              "'guess' (see warnings) or 'none' (no momentum-like fields).")
    file_units: str = Field(default="GeV", description="The unit the file's momenta were in before conversion to GeV.")
    warnings: list[str] = Field(default_factory=list, description="What was guessed or may surprise, in words.")
    skipped_branches: list[str] = Field(default_factory=list, description="Branches not read (TRef links, "
                                        "fUniqueID/fBits, fixed-size arrays).")


@dataclass
class FileNotes:
    """How a file was interpreted (schema and units), for the result and the artifact's metadata."""

    schema: str = "flat"
    file_units: str = "GeV"
    units_source: str = "none"
    warnings: list[str] = field(default_factory=list)
    skipped_branches: list[str] = field(default_factory=list)


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


def with_weight(array: Any, always: bool = False) -> Any:
    """Events (or, with ``always``, any per-event data) get ``weight`` = 1.0 when they have none."""
    import awkward as ak
    import numpy as np

    if "weight" in ak.fields(array) or not (always or array_kind(array) == "events"):
        return array
    return ak.with_field(array, np.ones(len(array)), "weight")


def store_array(
    ctx: ToolContext, array: Any, summary: str, metadata: dict[str, Any], notes: FileNotes | None = None
) -> LoadedData:
    """Write ``array`` as an events or table artifact and describe it."""
    import awkward as ak

    notes = notes or FileNotes()
    kind = array_kind(array)
    pending = ctx.new_artifact(kind)
    write_parquet(array, pending.directory / _PRIMARY[kind])
    fields = list(ak.fields(array))
    details = {**metadata, "n_rows": len(array), "fields": fields, "schema": notes.schema, "units": "GeV",
               "file_units": notes.file_units, "units_source": notes.units_source}
    artifact = pending.finish(_PRIMARY[kind], f"{kind}: {summary}", details)
    return LoadedData(data=artifact, kind=kind, n_rows=len(array), fields=fields, type=row_type(array),
                      file_schema=notes.schema, units_source=notes.units_source, file_units=notes.file_units,
                      warnings=notes.warnings, skipped_branches=notes.skipped_branches)


def check_not_empty_fields(tool: str, param: str, value: Any, array: Any) -> None:
    """Reject arrays without fields: there is nothing to store or histogram."""
    import awkward as ak

    if not ak.fields(array):
        raise ToolInputError.for_param(
            tool, param, value, "holds no columns (no fields were found). Point it at a file with data."
        )
