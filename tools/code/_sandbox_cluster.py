r"""Sandboxed runs as Dask tasks: the cluster branch of :func:`tools.code.run.run_python`.

The caller prepares the run as it does without a cluster: the script, the empty working directory and the
input mounts all lie in the call's staging directory ``<workspace>/.staging/<id>/`` or in the workspace's
artifacts, which every worker sees at the same path (the shared-filesystem contract). One worker runs the
sandbox command there, with the same wall-time, memory and output limits, and returns its
:class:`SandboxResult`; the caller validates the outputs and commits them as artifacts, atomically, as usual.

- **Retried**: a worker that dies mid-run; the run starts again, from an emptied working directory.
- **Not retried**: whatever the code itself does (a nonzero exit, a timeout, the memory limit) is the run's
  result, returned as a value; so is a worker that cannot run the job at all (:class:`WorkerCannotRun`: no
  view of the workspace, no Python at the caller's path, no bubblewrap), which fails the call with an error
  naming the worker.
- **Cancelled**: the caller's cancel cancels the task; the worker notices within a fraction of a second and
  stops the sandbox like a timeout.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from physagent.tools._cluster import executor_record
from physagent.tools._cluster_run import ClusterTask, ClusterTaskError, TaskAbandoned, run_on_cluster
from physagent.tools._errors import ToolDependencyError, ToolRuntimeError
from physagent.tools.code._sandbox import Limits, Mechanism, Mount, Sandbox, SandboxResult, make_owner_writable

__all__ = ["SandboxJob", "WorkerCannotRun", "run_on_worker"]

_WATCH_S = 0.25  # how often a worker asks whether its run was cancelled
_LABEL = "the sandboxed run of the code"
_SHARED = ("Put the workspace (PHYSAGENT_HOME) on a filesystem every Dask worker mounts at the same path, or "
           "unset PHYSAGENT_CLUSTER to run code on this machine.")
_PYTHON = ("Install the same Python environment at the same path on every worker (for batch clusters, activate "
           "it in job_script_prologue), or unset PHYSAGENT_CLUSTER to run code on this machine.")
_BWRAP = ("Install bubblewrap on every worker (apt-get install bubblewrap) and allow unprivileged user "
          "namespaces there, or set PHYSAGENT_SANDBOX=fallback in this process to run code without filesystem "
          "isolation.")


@dataclass(frozen=True)
class SandboxJob:
    """One prepared run, as plain data: it runs here or on a Dask worker."""

    argv: list[str]
    output_dir: Path
    mounts: list[Mount]  # under the workspace: a worker that cannot see them cannot run the job
    optional_mounts: list[Mount]  # host conveniences (the matplotlib font list): left out where absent
    env: dict[str, str]
    limits: Limits
    mechanism: Mechanism  # the sandbox the paths in argv, env and mounts were prepared for

    def run_here(self, sandbox: Sandbox, cancel: threading.Event | None) -> SandboxResult:
        """Run the job in this process's sandbox."""
        return sandbox.run(self.argv, output_dir=self.output_dir, mounts=[*self.mounts, *self.optional_mounts],
                           env=self.env, limits=self.limits, cancel=cancel)


@dataclass(frozen=True)
class WorkerCannotRun:
    """A worker's answer when it cannot run the job: returned, not raised, so that Dask does not retry it."""

    problem: str
    fix: str


def run_on_worker(client: Any, job: SandboxJob, check: Callable[[], None]) -> tuple[SandboxResult, dict[str, Any]]:
    """Run ``job`` on one of ``client``'s workers; returns its result and where it ran (for provenance).

    Args:
        client: A ``distributed.Client``.
        job: The prepared run.
        check: Called while waiting, e.g. ``ctx.check_cancelled``; what it raises cancels the run.

    Raises:
        ToolDependencyError: the worker cannot run the job; the message names the worker and the fix.
        ToolRuntimeError: the job's workers died twice.
    """
    try:
        [outcome] = list(run_on_cluster(client, [ClusterTask(_sandbox_task, (job,), _LABEL)], _ignore,
                                        check=check))
    except ClusterTaskError as exc:
        raise ToolRuntimeError(f"run_python: {exc}") from exc
    if isinstance(outcome.value, WorkerCannotRun):
        raise ToolDependencyError(f"run_python: the Dask worker {outcome.worker} {outcome.value.problem}. "
                                  f"{outcome.value.fix}")
    return outcome.value, executor_record() | {"worker": outcome.worker, "attempts": outcome.attempts}


def _ignore(_: float) -> None:
    """A sandboxed run reports no progress amounts."""


def _sandbox_task(job: SandboxJob, *, report: Callable[[float], None]) -> SandboxResult | WorkerCannotRun:
    """Runs on a Dask worker: the sandbox command in the shared staging directory."""
    unseen = [str(path) for path in (job.output_dir, *(m.source for m in job.mounts)) if not path.exists()]
    if unseen:
        return WorkerCannotRun(f"cannot see {unseen[0]}, which the run needs", _SHARED)
    if not Path(job.argv[0]).is_file():
        return WorkerCannotRun(f"has no Python at {job.argv[0]}, the interpreter of the calling process", _PYTHON)
    # the paths were prepared for the caller's sandbox: a worker must confine the same way
    sandbox = Sandbox("auto" if job.mechanism == "bwrap" else "fallback")
    if job.mechanism == "bwrap" and not sandbox.confines_files:
        return WorkerCannotRun("cannot run bubblewrap (bwrap is missing there, or user namespaces are disabled), "
                               "which the sandbox this call was prepared for needs", _BWRAP)
    _empty(job.output_dir)  # a retry after a worker death must not see the dead attempt's files
    present = [mount for mount in job.optional_mounts if mount.source.exists()]
    with _cancelled_when_abandoned(report) as cancel:
        return SandboxJob(job.argv, job.output_dir, job.mounts, present, job.env, job.limits,
                          job.mechanism).run_here(sandbox, cancel)


def _empty(directory: Path) -> None:
    make_owner_writable(directory)
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


@contextmanager
def _cancelled_when_abandoned(report: Callable[[float], None]) -> Iterator[threading.Event]:
    """An event that is set once the caller cancels this task, to stop the sandbox (``report(0)`` raises then)."""
    cancel, finished = threading.Event(), threading.Event()

    def watch() -> None:
        while not finished.wait(_WATCH_S):
            try:
                report(0)
            except TaskAbandoned:
                cancel.set()
                return

    watcher = threading.Thread(target=watch, name="physagent-sandbox-watch", daemon=True)
    watcher.start()
    try:
        yield cancel
    finally:
        finished.set()
        watcher.join()
