r"""physagent's typed tool layer.

Every capability is a typed function registered with :func:`tool`; importing this package
registers all built-in tools. Call them through :func:`call_tool` (validation, artifacts, cache,
provenance) or look them up in :data:`registry`.

>>> from tools import call_tool, registry
>>> "generate_events" in registry
True
"""

from tools import code, data, retrieval, simulate, tag  # noqa: F401  (registers the built-in tools)
from tools._artifacts import Artifact, artifact_ref
from tools._context import ProgressSink, ProgressUpdate, ToolContext
from tools._errors import (
    ToolCancelledError,
    ToolDependencyError,
    ToolError,
    ToolInputError,
    ToolRuntimeError,
)
from tools._registry import ToolResult, ToolSpec, registry, tool
from tools._runner import CallOutcome, call_tool, package_versions
from tools._workspace import CallRecord, Workspace, default_home

__all__ = [
    "Artifact",
    "CallOutcome",
    "CallRecord",
    "ProgressSink",
    "ProgressUpdate",
    "ToolCancelledError",
    "ToolContext",
    "ToolDependencyError",
    "ToolError",
    "ToolInputError",
    "ToolResult",
    "ToolRuntimeError",
    "ToolSpec",
    "Workspace",
    "artifact_ref",
    "call_tool",
    "default_home",
    "package_versions",
    "registry",
    "tool",
]
