r"""What a running tool can reach: the workspace (read artifacts, create new ones), host files inside the
allowed folders (``ctx.input_file``), progress, cancellation, and the agent session that made the call
(``ctx.session``; None for a call from the CLI or a script).

A tool declares a parameter ``ctx: ToolContext`` to receive it; the parameter is not part of the
schema the LLM sees. Progress goes through one protocol, :class:`ProgressSink`, which the CLI renders
as a progress bar and other front ends forward as events.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from physagent.tools._artifacts import Artifact
from physagent.tools._errors import ToolCancelledError, ToolInputError
from physagent.tools._workspace import PendingArtifact, Workspace

__all__ = ["ProgressSink", "ProgressTask", "ProgressUpdate", "ToolContext"]


@dataclass(frozen=True)
class ProgressUpdate:
    """The state of one unit of long work inside a tool call."""

    tool: str
    task: str
    completed: float
    total: float | None
    unit: str
    finished: bool = False


class ProgressSink(Protocol):
    """Receives progress updates; must be cheap and must not raise."""

    def __call__(self, update: ProgressUpdate) -> None: ...


@dataclass
class ProgressTask:
    """A handle a tool advances as work completes."""

    _emit: Callable[[ProgressUpdate], None]
    tool: str
    task: str
    total: float | None
    unit: str
    completed: float = 0.0

    def advance(self, amount: float = 1.0) -> None:
        self.completed += amount
        self._emit(ProgressUpdate(self.tool, self.task, self.completed, self.total, self.unit))


@dataclass
class ToolContext:
    """Per-call services for a tool: artifacts in, artifacts out, progress, cancellation, the calling session."""

    tool: str
    workspace: Workspace
    staging: Path
    progress_sink: ProgressSink | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    pending: list[PendingArtifact] = field(default_factory=list)
    session: str | None = None  # the agent session the call belongs to (as tagged in provenance)

    def artifact(self, artifact_id: str, param: str = "artifact") -> Artifact:
        """The committed artifact ``artifact_id`` (checked to exist before the tool ran)."""
        found = self.workspace.get_artifact(artifact_id)
        if found is None:
            raise ToolInputError.for_param(
                self.tool, param, artifact_id, "is not an artifact in this workspace."
                " List them with `physagent artifacts list`."
            )
        return found

    def input_file(self, param: str, path: str) -> Path:
        """The real path of the host file ``path``, if the workspace's file access allows reading it.

        Raises:
            ToolAccessError: outside the allowed folders (see :mod:`tools._paths`).
            ToolInputError: missing, or not a regular file.
        """
        return self.workspace.file_access.resolve(self.tool, param, path, self.workspace.root / "uploads")

    def new_artifact(self, kind: str) -> PendingArtifact:
        """Start a new artifact: write its files into ``.directory``, then call ``.finish(...)``."""
        self.check_cancelled()
        pending = self.workspace.new_pending(kind, self.staging)
        self.pending.append(pending)
        return pending

    @contextmanager
    def progress(self, task: str, total: float | None = None, unit: str = "") -> Iterator[ProgressTask]:
        """Report progress of one piece of work; the sink learns when it finishes."""
        handle = ProgressTask(self._emit, self.tool, task, total, unit)
        self._emit(ProgressUpdate(self.tool, task, 0.0, total, unit))
        try:
            yield handle
        finally:
            self._emit(ProgressUpdate(self.tool, task, handle.completed, handle.total, unit, finished=True))

    def check_cancelled(self) -> None:
        """Raise :class:`ToolCancelledError` if the caller asked to stop."""
        if self.cancel_event.is_set():
            raise ToolCancelledError(f"{self.tool}: cancelled by the caller; nothing was written.")

    def _emit(self, update: ProgressUpdate) -> None:
        self.check_cancelled()
        if self.progress_sink is not None:
            self.progress_sink(update)


