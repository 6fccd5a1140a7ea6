r"""The tool catalogue as a knowledge collection: one document per registered tool.

A tool's document is its name, description and parameters (with types, defaults, units and allowed
values), hashed together with the tool's version, so the collection follows the registry: a new or
changed tool is re-indexed, a removed one dropped, the rest untouched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from knowledge._sections import Section
from knowledge.store import IngestReport, KnowledgeBase, SourceDocument

__all__ = ["sync_tool_catalogue", "tool_documents", "tool_text"]


def _parameter_line(name: str, schema: dict[str, Any], required: bool) -> str:
    kind = schema.get("type") or "/".join(str(s.get("type", "")) for s in schema.get("anyOf", [])) or "value"
    extras = []
    if "enum" in schema:
        extras.append("one of " + ", ".join(map(str, schema["enum"])))
    if "default" in schema:
        extras.append(f"default {json.dumps(schema['default'])}")
    if required:
        extras.append("required")
    suffix = f" [{'; '.join(extras)}]" if extras else ""
    return f"- {name} ({kind}){suffix}: {schema.get('description', '')}"


def tool_text(spec: Any) -> str:
    """A tool described in words: what a person (or a retriever) reads to pick it."""
    schema = spec.parameters_schema()
    required = set(schema.get("required", []))
    lines = [f"{spec.name} (category {spec.category}): {spec.description}", "Parameters:"]
    for name, prop in schema.get("properties", {}).items():
        lines.append(_parameter_line(name, _resolve(prop, schema), name in required))
    return "\n".join(lines)


def _resolve(prop: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Inline a ``$ref`` to a definition (enums of Literal types live there)."""
    ref = prop.get("$ref") or next((s.get("$ref") for s in prop.get("allOf", []) if "$ref" in s), None)
    if not ref:
        return prop
    definition = schema.get("$defs", {}).get(ref.split("/")[-1], {})
    return {**definition, **{k: v for k, v in prop.items() if k not in ("$ref", "allOf")}}


def tool_documents(specs: Iterable[Any]) -> list[SourceDocument]:
    """One document per tool spec, hashed by its text and version."""
    documents = []
    for spec in specs:
        text = tool_text(spec)
        sha = hashlib.sha256(f"{spec.version}\n{text}".encode()).hexdigest()
        documents.append(SourceDocument(f"tool:{spec.name}", f"tool {spec.name}", sha,
                                        _fixed([Section(spec.name, text)])))
    return documents


def _fixed(sections: list[Section]) -> Callable[[list[str]], list[Section]]:
    def read(notes: list[str]) -> list[Section]:
        del notes
        return sections

    return read


def sync_tool_catalogue(kb: KnowledgeBase, specs: Iterable[Any] | None = None) -> IngestReport:
    """Make the ``tools`` collection match the registry (only changed tools are re-embedded)."""
    if specs is None:
        from tools import registry  # imported late: tools' search tool imports this package

        specs = list(registry)
    return kb.sync("tools", tool_documents(specs))
