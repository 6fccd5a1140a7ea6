r"""What the framework adapters share: the workspace of one ``tools()`` call, and results as text for an LLM.

A tool's result reaches the model as one line of compact JSON: the tool's name, its artifacts (id,
kind, summary, path) and its inline values, e.g.

``{"tool": "generate_events", "artifacts": [{"id": "ev-3f2a9c1b7d", "kind": "events", "summary": "…",
"path": "…/events.parquet"}], "result": {"n_events": 60, "sigma_pb": 1.2, …}}``

The model chains tools by passing an artifact id to the next tool (``cluster_jets(events="ev-3f2a9c1b7d")``).
A result that writes its own text for a model (:meth:`ToolResult.observation`, e.g. retrieved passages with
citations) carries that text under ``"observation"`` instead of ``"result"``.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from pydantic import ValidationError

from physagent.tools import Artifact, CallOutcome, ToolResult, ToolSpec, Workspace, call_tool

__all__ = ["SharedWorkspace", "explain_invalid", "observation"]


class SharedWorkspace:
    """The workspace every tool of one ``tools()`` call writes to.

    The given workspace, or ``Workspace()`` (``PHYSAGENT_HOME`` or ``~/.physagent``) made on the first call,
    so building the tools touches nothing on disk. Agent frameworks run tool calls in threads: a lock
    makes sure they all get the same one.
    """

    def __init__(self, workspace: Workspace | None = None) -> None:
        self._workspace = workspace
        self._lock = threading.Lock()

    def get(self) -> Workspace:
        """The workspace, made on first use."""
        with self._lock:
            if self._workspace is None:
                self._workspace = Workspace()
            return self._workspace

    def call(self, name: str, arguments: dict[str, Any]) -> CallOutcome:
        """Run one tool call in the workspace (validation, cache, provenance: :func:`call_tool`).

        Raises:
            ToolError: the call failed in a way the model should hear about.
        """
        return call_tool(name, arguments, workspace=self.get())


def observation(outcome: CallOutcome) -> str:
    """The result as compact JSON an LLM can read and chain: artifacts as ids with summaries, then values."""
    document: dict[str, Any] = {"tool": outcome.tool, "artifacts": [_artifact(a) for a in outcome.artifacts]}
    custom = outcome.result.observation()
    if custom is None:
        document["result"] = _inline_values(outcome.result)
    else:
        document["observation"] = custom
    return json.dumps(document, ensure_ascii=False, default=str)


def explain_invalid(spec: ToolSpec, exc: ValidationError) -> str:
    """A schema violation caught by the framework, in the registry's words (what :func:`call_tool` would say).

    >>> from physagent.tools import registry
    >>> spec = registry.get("generate_events")
    >>> try:
    ...     spec.input_model.model_validate({"process": "ttbar", "n_events": -5})
    ... except ValidationError as exc:
    ...     print(explain_invalid(spec, exc))
    generate_events: n_events=-5 must be greater than or equal to 1 — Events to generate.
    """
    # the frameworks validate against the input model before we see the call; word the error as every
    # other front end does, so a model gets the same message from any of them
    return str(spec.explain(exc))


def _artifact(artifact: Artifact) -> dict[str, str]:
    return {"id": artifact.id, "kind": artifact.kind, "summary": artifact.summary, "path": str(artifact.path)}


def _inline_values(result: ToolResult) -> dict[str, Any]:
    """Every field of the result except the artifacts (those are listed on their own)."""
    artifact_fields = {name for name in type(result).model_fields if _holds_artifacts(getattr(result, name))}
    return result.model_dump(mode="json", exclude=artifact_fields)


def _holds_artifacts(value: Any) -> bool:
    items = value if isinstance(value, list) else [value]
    return bool(items) and all(isinstance(item, Artifact) for item in items)
