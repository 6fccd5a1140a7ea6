r"""Run independent tasks on a Dask cluster: results in task order, with progress, retries, cancellation and
provenance (the worker that ran each task and how many attempts it took).

- **Progress**: a task gets a ``report(amount)`` callback like the fork pool's; each call logs the task's running
  total as a Dask event (``Worker.log_event``) that reaches this process through ``Client.subscribe_topic``.
  A retried task counts only once: the caller hears the highest total any attempt of it reached.
- **Retries**: a task that raises runs once more (``retries=1``); one whose worker dies is rescheduled by the
  scheduler (``allowed-failures``, see :mod:`tools._cluster`). A second failure raises
  :class:`ClusterTaskError` naming the task.
- **Cancellation**: an exception in the caller (Ctrl-C, a cancelled tool call, an error) cancels every future;
  a task already running stops at its next ``report`` (Dask cannot interrupt a running function). ``check``
  lets the caller stop while no progress arrives; ``report(0)`` only asks whether the task is still wanted
  (a task that waits on a subprocess calls it from a watcher thread).
- **Kept results**: with a :class:`Keeper`, the tasks that did finish in a failed run are saved before the error
  is raised, and the same run again reuses them, computing only what failed.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from physagent.tools._errors import one_line

__all__ = ["RETRIES", "ClusterTask", "ClusterTaskError", "Keeper", "TaskAbandoned", "TaskOutcome", "run_on_cluster"]

RETRIES = 1  # a task that raises runs once more before its error is final
_log = logging.getLogger(__name__)
_POLL_S = 0.2
# one topic for every run (the scheduler keeps a bounded log per topic, so one topic stays small); each event
# names its run, and one handler per client hands it to that run's queue
_TOPIC = "physagent-progress"
_runs: dict[str, queue.Queue[Any]] = {}
_subscribed: set[str] = set()  # ids of the clients whose handler is installed
_runs_lock = threading.Lock()


@dataclass(frozen=True)
class ClusterTask:
    """One task: ``function(*args, report=callback, **kwargs)`` on a worker; ``label`` names it in errors.

    ``report(amount)`` adds to the task's progress and raises :class:`TaskAbandoned` once the caller has
    cancelled the task. A task raising an exception is retried: a failure that retrying cannot fix (the user's
    own code failing) should be returned as a value instead."""

    function: Callable[..., Any]  # importable on the workers (a module-level function)
    args: tuple[Any, ...]
    label: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskOutcome:
    """A finished task: its value, the Dask worker that ran it, how many attempts it took, and the total it
    reported as progress. ``kept``: reused from an earlier run that failed."""

    index: int
    value: Any
    worker: str
    attempts: int
    reported: float
    kept: bool = False


class Keeper(Protocol):
    """Stores the finished tasks of a failed run, so that running it again computes only what failed."""

    where: str  # for messages: where the kept results lie

    def load(self, index: int) -> TaskOutcome | None: ...

    def save(self, outcome: TaskOutcome) -> None: ...

    def discard(self) -> None: ...


class ClusterTaskError(RuntimeError):
    """A task failed on every attempt; ``index`` and ``label`` name it."""

    def __init__(self, message: str, index: int, label: str) -> None:
        super().__init__(message)
        self.index, self.label = index, label


def run_on_cluster(client: Any, tasks: list[ClusterTask], report: Callable[[float], None],
                   keeper: Keeper | None = None, check: Callable[[], None] | None = None) -> Iterator[TaskOutcome]:
    """Submit every task to ``client``'s cluster; yield their outcomes in task order.

    Args:
        client: A ``distributed.Client``.
        tasks: The tasks; each is submitted once (with one retry), except those ``keeper`` still holds.
        report: Called in this thread with progress amounts, as the tasks report them.
        keeper: Where a failed run keeps its finished tasks (None: they are discarded).
        check: Called in this thread about every 0.2 s while waiting, e.g. ``ctx.check_cancelled``; an exception
            it raises cancels every task and propagates.

    Raises:
        ClusterTaskError: a task failed on its last attempt; the message names it, says why, and where the
            other tasks' results were kept.
    """
    run = _Run(client, tasks, report, keeper, check)
    try:
        for index in range(len(tasks)):
            yield run.outcome(index)
        if keeper is not None:
            keeper.discard()
    finally:
        run.close()


class _Run:
    """The futures and progress of one :func:`run_on_cluster` call."""

    def __init__(self, client: Any, tasks: list[ClusterTask], report: Callable[[float], None],
                 keeper: Keeper | None, check: Callable[[], None] | None) -> None:
        self.client, self.tasks, self.report, self.keeper, self.check = client, tasks, report, keeper, check
        self.run_id = uuid.uuid4().hex
        self.updates = _listen(client, self.run_id)
        self.best: dict[int, float] = {}
        self.kept = {i: o for i in range(len(tasks)) if keeper is not None and (o := keeper.load(i)) is not None}
        self.futures = {i: self._submit(i, task) for i, task in enumerate(tasks) if i not in self.kept}

    def _submit(self, index: int, task: ClusterTask) -> Any:
        key = f"physagent-{index}-{uuid.uuid4().hex[:12]}"
        return self.client.submit(_run_task, task.function, task.args, task.kwargs, self.run_id, index,
                                  key=key, retries=RETRIES, pure=False)

    def outcome(self, index: int) -> TaskOutcome:
        if index in self.kept:
            self._advance(index, self.kept[index].reported)
            return self.kept[index]
        future = self.futures[index]
        self._wait(future)
        try:
            value, worker, reported = future.result()
        except Exception as exc:
            raise self._failure(index, exc) from exc
        self._advance(index, reported)  # events still in flight would only repeat what this says
        return TaskOutcome(index, value, worker, self._attempts(future), reported)

    def _wait(self, future: Any) -> None:
        while not future.done():
            if self.check is not None:
                self.check()
            try:
                self._on_event(self.updates.get(timeout=_POLL_S))
            except queue.Empty:
                continue
        while not self.updates.empty():
            self._on_event(self.updates.get_nowait())

    def _on_event(self, event: Any) -> None:
        _, message = event
        self._advance(int(message["task"]), float(message["done"]))

    def _advance(self, index: int, done: float) -> None:
        """Report the growth of task ``index``'s highest total (a retry starts again from zero)."""
        grown = done - self.best.get(index, 0.0)
        if grown > 0:
            self.best[index] = done
            self.report(grown)

    def _attempts(self, future: Any) -> int:
        return int(self.client.run_on_scheduler(_attempts_on_scheduler, key=future.key, retries=RETRIES))

    def _failure(self, index: int, exc: Exception) -> ClusterTaskError:
        label, attempts = self.tasks[index].label, self._attempts(self.futures[index])
        kept = self._keep_others(index)
        if len(self.tasks) == 1:
            after = ""
        elif self.keeper is None:
            after = "The other tasks' results were not kept."
        elif kept:
            after = (f"The {kept} other finished task(s) are kept in {self.keeper.where}: the same call again "
                     "recomputes only what failed.")
        else:
            after = "No other task had finished, so nothing was kept."
        message = (f"{label} failed on the Dask cluster after {attempts} attempt(s){_last_worker(exc)}: "
                   f"{one_line(exc, 400)}. {after}".rstrip())
        return ClusterTaskError(message, index, label)

    def _keep_others(self, failed: int) -> int:
        """Wait for the other tasks and save those that succeed; returns how many are kept."""
        if self.keeper is None:
            return 0
        kept = len(self.kept)
        for index, future in self.futures.items():
            if index == failed:
                continue
            self._wait(future)
            if future.status != "finished":
                continue
            value, worker, reported = future.result()
            try:
                self.keeper.save(TaskOutcome(index, value, worker, self._attempts(future), reported))
            except OSError as exc:  # a full or read-only disk must not hide the failure being reported
                _log.warning("could not keep task %d in %s: %s", index, self.keeper.where, exc)
                continue
            kept += 1
        return kept

    def close(self) -> None:
        """Cancel what still runs or waits, release the rest, and stop listening for progress."""
        self.client.cancel(list(self.futures.values()))
        with _runs_lock:
            _runs.pop(self.run_id, None)


def _listen(client: Any, run_id: str) -> queue.Queue[Any]:
    """A queue that receives the progress events of run ``run_id``."""
    updates: queue.Queue[Any] = queue.Queue()
    with _runs_lock:
        _runs[run_id] = updates
        if client.id not in _subscribed:
            client.subscribe_topic(_TOPIC, _dispatch)
            _subscribed.add(client.id)
    return updates


def _dispatch(event: Any) -> None:
    """Runs on the client's event-loop thread: hand the event to its run (gone runs' late events are dropped)."""
    updates = _runs.get(event[1].get("run"))
    if updates is not None:
        updates.put(event)


def _last_worker(exc: Exception) -> str:
    """", the last on <address>" when the error names the worker (a KilledWorker names the one that died)."""
    worker = getattr(exc, "last_worker", None)
    return f", the last on {getattr(worker, 'address', worker)}" if worker is not None else ""


def _attempts_on_scheduler(key: str, retries: int, dask_scheduler: Any = None) -> int:
    """Runs on the scheduler: attempts of task ``key`` so far. Every worker death and every used retry started
    one more attempt, except a death past ``allowed_failures``, which ended the task instead."""
    state = dask_scheduler.tasks.get(key)
    if state is None:
        return 1
    ended_by_a_death = state.suspicious > dask_scheduler.allowed_failures
    return (0 if ended_by_a_death else 1) + state.suspicious + max(0, retries - state.retries)


class TaskAbandoned(Exception):  # noqa: N818 — not an error: the caller no longer wants the result
    """Raised inside a running task whose future was cancelled, to stop it at its next progress report."""


def _run_task(function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], run_id: str,
              index: int) -> tuple[Any, str, float]:
    """Runs on a worker: the task, with progress sent as events; returns (value, worker address, reported)."""
    from distributed import get_worker
    from distributed.worker import thread_state

    worker, key = get_worker(), thread_state.key
    done = 0.0

    def report(amount: float) -> None:
        nonlocal done
        state = worker.state.tasks.get(key)
        if state is None or state.state == "cancelled":
            raise TaskAbandoned(f"task {key} was cancelled by its caller")
        if amount:  # report(0) only checks that the task is still wanted
            done += amount
            worker.log_event(_TOPIC, {"run": run_id, "task": index, "done": done})

    value = function(*args, report=report, **kwargs)
    return value, worker.address, done
