r"""Adapters for agent frameworks: physagent's tools inside the agents people already run.

- :func:`physagent.integrations.langchain.tools` — every registered tool as a LangChain ``StructuredTool``
  (for ``langchain.agents.create_agent`` and anything that takes LangChain tools).
- :func:`physagent.integrations.llama_index.tools` — every registered tool as a LlamaIndex ``FunctionTool``.

Both take an optional :class:`~physagent.tools.Workspace` (default ``PHYSAGENT_HOME`` or ``~/.physagent``),
run calls through :func:`~physagent.tools.call_tool` (validation, artifacts, cache, provenance), return
compact JSON with artifact ids the model passes to the next tool, and hand a
:class:`~physagent.tools.ToolError` back to the model as an error message instead of raising it.

The submodules are imported on first use, so ``import physagent.integrations`` imports neither framework.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["langchain", "llama_index"]


def __getattr__(name: str) -> ModuleType:
    if name not in __all__:
        raise AttributeError(f"module 'physagent.integrations' has no attribute {name!r}")
    return importlib.import_module(f"{__name__}.{name}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
