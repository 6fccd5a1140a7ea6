r"""physagent's tools as LangChain tools: one ``StructuredTool`` per registered tool.

>>> from physagent.integrations.langchain import tools
>>> from langchain.agents import create_agent
>>> agent = create_agent(model, tools())  # doctest: +SKIP

Each tool's ``args_schema`` is the tool's own input model (types, limits, descriptions), its description
the tool's docstring. A call runs through :func:`physagent.tools.call_tool` (validation, artifacts, cache,
provenance) in one workspace shared by the tools. The ``ToolMessage`` content is compact JSON: artifact ids
with summaries and the inline values (see :mod:`physagent.integrations._common`); its ``artifact`` is
the full :meth:`CallOutcome.to_json` document, for code rather than the model.

Errors: a :class:`~physagent.tools.ToolError` and a schema violation come back to the model as an
error ``ToolMessage`` (``status="error"``) it can act on; any other exception propagates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.tools import StructuredTool, ToolException
from pydantic import ValidationError

from physagent.integrations._common import SharedWorkspace, explain_invalid, observation
from physagent.tools import ToolError, ToolSpec, Workspace, registry

if TYPE_CHECKING:
    from collections.abc import Callable

    from pydantic.v1 import ValidationError as ValidationErrorV1

__all__ = ["tools"]


def tools(workspace: Workspace | None = None) -> list[StructuredTool]:
    """Every registered physagent tool as a LangChain ``StructuredTool``.

    Args:
        workspace: where artifacts and provenance go; default ``Workspace()`` (``PHYSAGENT_HOME`` or
            ``~/.physagent``), opened on the first call.

    Returns:
        One tool per entry of :data:`physagent.tools.registry`, sharing one workspace.
    """
    shared = SharedWorkspace(workspace)
    return [_structured_tool(spec, shared) for spec in registry]


def _structured_tool(spec: ToolSpec, shared: SharedWorkspace) -> StructuredTool:
    """One registered tool as a ``StructuredTool`` that runs in ``shared``'s workspace."""

    def run(**arguments: Any) -> tuple[str, dict[str, Any]]:
        try:
            outcome = shared.call(spec.name, arguments)
        except ToolError as exc:  # handle_tool_error turns it into an error message for the model
            raise ToolException(str(exc)) from exc
        return observation(outcome), outcome.to_json()

    return StructuredTool.from_function(
        func=run,
        name=spec.name,
        description=spec.description,
        args_schema=spec.input_model,
        response_format="content_and_artifact",
        handle_tool_error=True,
        handle_validation_error=_validation_handler(spec),
    )


def _validation_handler(spec: ToolSpec) -> Callable[[ValidationError | ValidationErrorV1], str]:
    """LangChain validates arguments against ``args_schema`` first: word its errors as physagent does."""

    def handle(exc: ValidationError | ValidationErrorV1) -> str:
        return explain_invalid(spec, exc) if isinstance(exc, ValidationError) else str(exc)

    return handle
