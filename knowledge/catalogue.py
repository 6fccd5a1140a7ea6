r"""The tool catalogue as a knowledge collection: one document per registered tool.

A tool's document is its catalogue text (name, description and parameters with types, defaults, units
and allowed values; written by the tool layer's ``ToolSpec.catalogue_text``), hashed together with the
tool's version, so the collection follows the registry: a new or changed tool is re-indexed, a removed
one dropped, the rest untouched. The caller passes the specs: the knowledge base knows nothing of the
tool layer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Protocol

from physagent.knowledge._sections import Section
from physagent.knowledge.store import IngestReport, KnowledgeBase, SourceDocument

__all__ = ["CatalogueEntry", "sync_tool_catalogue", "tool_documents"]


class CatalogueEntry(Protocol):
    """What the catalogue needs of a tool (``physagent.tools.ToolSpec`` provides it)."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    def catalogue_text(self) -> str: ...


def tool_documents(specs: Iterable[CatalogueEntry]) -> list[SourceDocument]:
    """One document per tool spec, hashed by its text and version."""
    documents = []
    for spec in specs:
        text = spec.catalogue_text()
        sha = hashlib.sha256(f"{spec.version}\n{text}".encode()).hexdigest()
        documents.append(SourceDocument(f"tool:{spec.name}", f"tool {spec.name}", sha,
                                        _fixed([Section(spec.name, text)])))
    return documents


def _fixed(sections: list[Section]) -> Callable[[list[str]], list[Section]]:
    def read(notes: list[str]) -> list[Section]:
        del notes
        return sections

    return read


def sync_tool_catalogue(kb: KnowledgeBase, specs: Iterable[CatalogueEntry]) -> IngestReport:
    """Make the ``tools`` collection match ``specs`` (only changed tools are re-embedded)."""
    return kb.sync("tools", tool_documents(specs))
