r"""Typed shapes of what the front ends return for a tool call: one pydantic model per tool.

:meth:`tools.CallOutcome.to_json` is a JSON document whose ``result`` is the tool's own
:class:`tools.ToolResult`. :func:`call_model` types that document for one tool (the MCP server's
``outputSchema`` and ``structuredContent``); :func:`rest_call_model` adds what the REST API adds
(the session id, a download URL per artifact) for the response model of ``POST /tools/{name}``.
Both forbid extra keys, so a front end that returns more or less than its model fails loudly.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from physagent.tools import ToolResult, ToolSpec

__all__ = ["ArtifactEntry", "LinkedArtifactEntry", "RestToolCall", "ToolCall", "call_model", "output_schema",
           "rest_call_model"]


class ArtifactEntry(BaseModel):
    """An artifact the call produced, as listed beside the result."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Artifact id, e.g. 'ev-3f2a9c1b7d'; pass it to the next tool.")
    kind: str = Field(description="What the artifact holds: events, jets, table, histogram, plot, root, ...")
    path: str = Field(description="Absolute path of its primary file on the server.")
    sha256: str = Field(description="Content hash.")
    summary: str = Field(description="One line for a person: what is in it.")


class LinkedArtifactEntry(ArtifactEntry):
    """An artifact with the URL that downloads it in the caller's session."""

    url: str = Field(description="GET this to download the primary file, e.g. /artifacts/ev-3f2a9c1b7d?session=…")


class ToolCall(BaseModel):
    """One tool call: its provenance id, whether the cache answered, the typed result and its artifacts."""

    model_config = ConfigDict(extra="forbid")

    call_id: str = Field(description="Provenance id of this call, e.g. 'c-3f2a9c1b7d'.")
    tool: str = Field(description="The tool that ran.")
    cached: bool = Field(description="True when an identical earlier call was replayed from the cache.")
    wall_s: float = Field(description="Wall-clock time of the call in seconds (0 for a cache hit).")
    result: ToolResult = Field(description="The tool's typed result.")
    artifacts: list[ArtifactEntry] = Field(description="The artifacts in the result, in field order.")


class RestToolCall(ToolCall):
    """A tool call over REST: the session it ran in, and a download URL for each artifact."""

    artifacts: list[LinkedArtifactEntry] = Field(  # type: ignore[assignment]  # narrower items: each has a URL
        description="The artifacts in the result, with download URLs.")
    session: str = Field(description="The session the call ran in (also the X-Physagent-Session header).")


def call_model(spec: ToolSpec) -> type[ToolCall]:
    """The model of ``CallOutcome.to_json()`` for ``spec``'s tool, e.g. ``GenerateEventsCall``."""
    return _specialise(ToolCall, "Call", spec.name, spec.result_model)


def rest_call_model(spec: ToolSpec) -> type[RestToolCall]:
    """The response model of ``POST /tools/{name}`` for ``spec``'s tool, e.g. ``GenerateEventsResponse``."""
    return _specialise(RestToolCall, "Response", spec.name, spec.result_model)


def output_schema(spec: ToolSpec) -> dict[str, Any]:
    """JSON schema of what a call returns as JSON (serialisation mode: paths are strings)."""
    return call_model(spec).model_json_schema(mode="serialization")


@functools.cache
def _specialise(base: type[Any], suffix: str, name: str, result_model: type[ToolResult]) -> Any:
    """``base`` with ``tool`` fixed to ``name`` and ``result`` typed as the tool's result model."""
    model_name = "".join(part.title() for part in name.split("_")) + suffix
    return create_model(
        model_name, __base__=base, __doc__=f"A {name} call: {(base.__doc__ or '').split(':', 1)[-1].strip()}",
        tool=(Literal[name], Field(description="The tool that ran.")),  # type: ignore[arg-type, valid-type]
        result=(result_model, Field(description=f"The typed result of {name}.")),
    )
