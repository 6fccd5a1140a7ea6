r"""physagent's typed tool layer.

Every capability is a typed function registered with :func:`tool`; importing this package
registers all built-in tools. Call them through :func:`call_tool` (validation, artifacts, cache,
provenance) or look them up in :data:`registry`.

>>> from physagent.tools import call_tool, registry
>>> "generate_events" in registry
True
"""

from physagent.tools import anomaly, code, data, fpga, generate, retrieval, sbi, session, simulate, tag  # noqa: F401  (registers the built-in tools)
from physagent.tools._artifacts import (
    ARTIFACT_ID_PATTERN,
    KIND_PREFIXES,
    Accepts,
    Artifact,
    artifact_ref,
    file_sha256,
)
from physagent.tools._cluster import ExecutionStatus, close_cluster, cluster_client, execution_status, job_script
from physagent.tools._cluster_config import CLUSTER_VARIABLE, ClusterConfig, cluster_config
from physagent.tools._context import ProgressSink, ProgressUpdate, ToolContext
from physagent.tools._errors import (
    ToolAccessError,
    ToolCancelledError,
    ToolDependencyError,
    ToolError,
    ToolInputError,
    ToolRuntimeError,
)
from physagent.tools._kinematics import four_vectors
from physagent.tools._paths import SERVER_ACCESS, FileAccess
from physagent.tools._provenance import export_script
from physagent.tools._registry import ToolResult, ToolSpec, registry, tool, tool_spec
from physagent.tools._runner import CallOutcome, call_tool, package_versions
from physagent.tools._stdio import capture_fd_stdout, stdout_to_stderr
from physagent.tools._workers import worker_count
from physagent.tools._workspace import CallRecord, Workspace, default_home

__all__ = [
    "ARTIFACT_ID_PATTERN",
    "CLUSTER_VARIABLE",
    "KIND_PREFIXES",
    "SERVER_ACCESS",
    "Accepts",
    "Artifact",
    "CallOutcome",
    "CallRecord",
    "ClusterConfig",
    "ExecutionStatus",
    "FileAccess",
    "ProgressSink",
    "ProgressUpdate",
    "ToolAccessError",
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
    "capture_fd_stdout",
    "close_cluster",
    "cluster_client",
    "cluster_config",
    "default_home",
    "execution_status",
    "export_script",
    "file_sha256",
    "four_vectors",
    "job_script",
    "package_versions",
    "registry",
    "stdout_to_stderr",
    "tool",
    "tool_spec",
    "worker_count",
]
