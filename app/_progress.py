"""A rich progress bar fed by the tool layer's progress protocol; appears only for work over a second."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from physagent.tools import ProgressUpdate

__all__ = ["RichProgress"]

_SHOW_AFTER_S = 1.0


class RichProgress:
    """Context manager and :class:`tools.ProgressSink`: renders tasks on ``console`` (stderr)."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}", markup=False), TimeRemainingColumn(), console=console, transient=True,
        )
        self._tasks: dict[str, TaskID] = {}
        self._started_at: dict[str, float] = {}
        self._live = False

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self._live:
            self._progress.stop()

    def __call__(self, update: ProgressUpdate) -> None:
        started = self._started_at.setdefault(update.task, time.monotonic())
        if not self._live and (update.finished or time.monotonic() - started < _SHOW_AFTER_S):
            return
        if not self._live:
            self._progress.start()
            self._live = True
        if update.task not in self._tasks:
            self._tasks[update.task] = self._progress.add_task(update.task, total=update.total, unit=update.unit)
        self._progress.update(self._tasks[update.task], completed=update.completed)
