r"""physagent's tools as LlamaIndex tools: one ``FunctionTool`` per registered tool.

>>> from physagent.integrations.llama_index import tools
>>> from llama_index.core.agent.workflow import FunctionAgent
>>> agent = FunctionAgent(tools=tools(), llm=llm)  # doctest: +SKIP

Each tool's ``metadata.fn_schema`` is the tool's own input model, its description the tool's docstring.
A call runs through :func:`physagent.tools.call_tool` in one workspace shared by the tools; the
``ToolOutput`` content is compact JSON with artifact ids, summaries and inline values (see
:mod:`physagent.integrations._common`).

Errors: a :class:`~physagent.tools.ToolError` (invalid arguments included: LlamaIndex passes them on
unvalidated) comes back as a ``ToolOutput`` with ``is_error=True`` and the message as content; any other
exception propagates.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.tools import FunctionTool, ToolOutput

from physagent.integrations._common import SharedWorkspace, observation
from physagent.tools import ToolError, ToolSpec, Workspace, registry

__all__ = ["tools"]


class PhysagentFunctionTool(FunctionTool):
    """A ``FunctionTool`` that returns a :class:`ToolError` as an error output instead of raising it."""

    def call(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Run the tool; a ToolError becomes ``ToolOutput(is_error=True)`` with the message as content."""
        try:
            return super().call(*args, **kwargs)
        except ToolError as exc:
            return self._failure(exc, args, kwargs)

    async def acall(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Run the tool in a worker thread; a ToolError becomes ``ToolOutput(is_error=True)``."""
        try:
            return await super().acall(*args, **kwargs)
        except ToolError as exc:
            return self._failure(exc, args, kwargs)

    def _failure(self, exc: ToolError, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ToolOutput:
        return ToolOutput(tool_name=self.metadata.get_name(), content=str(exc), raw_output=str(exc),
                          raw_input={"args": args, "kwargs": kwargs}, is_error=True, exception=exc)


def tools(workspace: Workspace | None = None) -> list[FunctionTool]:
    """Every registered physagent tool as a LlamaIndex ``FunctionTool``.

    Args:
        workspace: where artifacts and provenance go; default ``Workspace()`` (``PHYSAGENT_HOME`` or
            ``~/.physagent``), opened on the first call.

    Returns:
        One tool per entry of :data:`physagent.tools.registry`, sharing one workspace.
    """
    shared = SharedWorkspace(workspace)
    return [_function_tool(spec, shared) for spec in registry]


def _function_tool(spec: ToolSpec, shared: SharedWorkspace) -> FunctionTool:
    """One registered tool as a ``FunctionTool`` that runs in ``shared``'s workspace."""

    def run(**arguments: Any) -> str:
        return observation(shared.call(spec.name, arguments))

    return PhysagentFunctionTool.from_defaults(
        fn=run, name=spec.name, description=spec.description, fn_schema=spec.input_model,
    )
