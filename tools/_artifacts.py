r"""Artifacts: files in the workspace that tools produce and consume, referred to by id.

An artifact id looks like ``ev-3f2a9c1b7d``: a short prefix for its kind and ten hex digits.
Tool parameters that take artifacts are typed with :func:`artifact_ref`, so the registry checks
that the id exists and has an accepted kind before the tool runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ARTIFACT_ID_PATTERN", "Accepts", "Artifact", "DataRef", "EventsRef", "HistogramRef", "artifact_ref",
    "file_sha256", "files_sha256"]

ARTIFACT_ID_PATTERN = r"^[a-z]{2,5}-[0-9a-f]{10}$"

KIND_PREFIXES = {
    "events": "ev",
    "jets": "jet",
    "table": "tab",
    "histogram": "hist",
    "plot": "plot",
    "root": "root",
    "script": "scr",
    "showers": "shw",
    "generator": "gen",
    "comparison": "cmp",
    "anomaly_dataset": "ad",
    "monitoring": "mon",
    "posterior": "post",
    "hls_project": "hls",
    "hepmc": "hepmc",
}


def id_prefix(kind: str) -> str:
    """The id prefix for an artifact kind (``events`` → ``ev``)."""
    return KIND_PREFIXES.get(kind, kind[:5])


@dataclass(frozen=True)
class Accepts:
    """Marks a parameter as an artifact id and lists the artifact kinds it accepts."""

    kinds: tuple[str, ...]


def artifact_ref(*kinds: str) -> Any:
    """The type of a parameter that takes the id of an artifact of one of ``kinds``.

    For type checkers, use the module-level aliases (``EventsRef`` …) in annotations; this
    function builds new ones.
    """
    return Annotated[str, Accepts(kinds), Field(pattern=ARTIFACT_ID_PATTERN)]


EventsRef = Annotated[str, Accepts(("events",)), Field(pattern=ARTIFACT_ID_PATTERN)]
HistogramRef = Annotated[str, Accepts(("histogram",)), Field(pattern=ARTIFACT_ID_PATTERN)]
DataRef = Annotated[str, Accepts(("events", "jets", "table")), Field(pattern=ARTIFACT_ID_PATTERN)]


class Artifact(BaseModel):
    """A file (or a few files) in the workspace, produced by one tool call."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Artifact id, e.g. 'ev-3f2a9c1b7d'; pass it to the next tool.")
    kind: str = Field(description="What the artifact holds: events, jets, table, histogram, plot, root.")
    path: Path = Field(description="Absolute path of the primary file.")
    files: list[str] = Field(description="Names of all files of the artifact, in its directory.")
    sha256: str = Field(description="Content hash (of the file, or of the sorted per-file hashes).")
    summary: str = Field(description="One line for a person: what is in it.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Kind-specific facts.")

    @property
    def directory(self) -> Path:
        return self.path.parent


def file_sha256(path: Path) -> str:
    """sha256 of one file, streamed (artifacts can be gigabytes)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def files_sha256(directory: Path, names: list[str]) -> str:
    """The artifact hash: the file's own sha256 when there is one file, else a hash of hashes."""
    if len(names) == 1:
        return file_sha256(directory / names[0])
    lines = "".join(f"{name}\0{file_sha256(directory / name)}\n" for name in sorted(names))
    return hashlib.sha256(lines.encode()).hexdigest()
