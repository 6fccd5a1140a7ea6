r"""physagent: an agentic assistant for physicists over a typed tool layer.

The public surface, importable from the top level (loaded on first use, so ``import physagent``
stays cheap):

- :class:`Assistant` — the agent: ``Assistant().ask("...")`` returns an :class:`~physagent.agent.AgentRecord`.
- :class:`Workspace` — artifacts, provenance and cache on disk (``~/.physagent`` or ``PHYSAGENT_HOME``).
- :func:`call_tool` — call a registered tool with validation, artifacts, cache and provenance.
- :data:`registry` — every registered tool's :class:`~physagent.tools.ToolSpec`.
- :func:`get_backend` — an LLM backend by name (``embedded``, ``openai:<model>``, ``scripted:<file>``).

The subpackages are ``physagent.tools``, ``physagent.agent``, ``physagent.knowledge``,
``physagent.app``, ``physagent.evals`` and ``physagent.integrations`` (langchain, llama-index).

>>> import physagent
>>> "generate_events" in physagent.registry
True
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from physagent.agent import Assistant, get_backend
    from physagent.tools import Workspace, call_tool, registry

__all__ = ["Assistant", "Workspace", "__version__", "call_tool", "get_backend", "registry"]

_EXPORTS = {
    "Assistant": "physagent.agent",
    "get_backend": "physagent.agent",
    "Workspace": "physagent.tools",
    "call_tool": "physagent.tools",
    "registry": "physagent.tools",
}

try:
    __version__ = version("physagent")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'physagent' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
