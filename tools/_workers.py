r"""How many workers physagent runs in parallel, and the one way it starts worker processes.

``worker_count``: ``PHYSAGENT_WORKERS``, else the cores it may use. One count for every parallel part:
Pythia processes in ``generate_events`` and ``make_jet_dataset``, torch/OpenMP threads when taggers
train and score, llama.cpp threads of the embedded model.

``worker_pool``: a pool of forked processes that never outlives the process that made it. Each worker
asks the kernel for SIGKILL when its parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``; elsewhere a thread
that watches the parent pid), so a ``kill -9`` of a call takes its workers with it; an exception in the
parent (Ctrl-C, SIGTERM turned into Ctrl-C by the CLI, an error) kills the workers at once instead of
waiting for their running tasks. Workers ignore SIGINT: the parent alone handles Ctrl-C.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

from physagent.tools._errors import ToolInputError

__all__ = ["WORKERS_VARIABLE", "worker_count", "worker_pool"]

WORKERS_VARIABLE = "PHYSAGENT_WORKERS"
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def worker_count() -> int:
    """Workers to run: ``PHYSAGENT_WORKERS`` if set, else the cores this process may run on, at least 1.

    The cores come from ``os.sched_getaffinity`` where the OS has it (Linux), which respects ``taskset``
    and cgroup CPU pinning, unlike ``os.cpu_count()`` (the fallback elsewhere).

    Returns:
        A positive worker count.

    Raises:
        ToolInputError: ``PHYSAGENT_WORKERS`` is set but is not a positive integer.
    """
    raw = os.environ.get(WORKERS_VARIABLE, "").strip()
    if not raw:
        return _usable_cores()
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if count < 1:
        raise ToolInputError(
            f"{WORKERS_VARIABLE}={raw!r} is not a positive integer; it sets how many worker processes or "
            f"threads physagent runs. Set it to a whole number of at least 1 (e.g. {WORKERS_VARIABLE}=2), "
            "or unset it to use every core this process may run on.")
    return count


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):  # Linux: respects taskset/cgroup pinning, unlike os.cpu_count()
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


@contextmanager
def worker_pool(
    workers: int, initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()
) -> Iterator[ProcessPoolExecutor]:
    """A ``ProcessPoolExecutor`` of ``workers`` forked processes that die with the caller.

    Fork, not spawn: spawn re-imports ``__main__``, which breaks scripts and notebooks that call us
    without an ``if __name__ == "__main__"`` guard. The workers are forked by the calling thread, and
    the parent-death signal fires when that thread ends, so use the pool from the thread that made it.

    Args:
        workers: Number of worker processes.
        initializer: Run once in each worker after it has tied its life to the parent's.
        initargs: Arguments of ``initializer``.

    Yields:
        The pool; leaving the block normally waits for submitted work, leaving it by an exception
        (including Ctrl-C or closing a generator) kills the workers and cancels what has not run.
    """
    context = multiprocessing.get_context("fork")
    sys.stdout.flush()  # forked workers would otherwise print the parent's buffered output again
    sys.stderr.flush()
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                               initargs=(os.getpid(), initializer, initargs))
    try:
        yield pool
    except BaseException:
        _kill(pool)
        raise
    pool.shutdown(wait=True)


def _start_worker(parent: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the parent stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler (the CLI turns it into Ctrl-C)
    _die_with_parent(parent)
    if initializer is not None:
        initializer(*initargs)


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when ``parent`` dies, even by SIGKILL (which no handler of the parent sees)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            _watch_parent_in_thread(parent)
    else:
        _watch_parent_in_thread(parent)
    if os.getppid() != parent:  # the parent died between fork and prctl: no signal will come
        os._exit(1)


def _watch_parent_in_thread(parent: int) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="physagent-parent-watch", daemon=True).start()


def _kill(pool: ProcessPoolExecutor) -> None:
    """Stop now: cancel queued work and SIGKILL the workers (they hold nothing worth a clean exit)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # copied: shutdown clears the dict
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.kill()  # a no-op for a worker already reaped, so never a reused pid
    for process in processes:
        process.join(timeout=5)  # returns when the worker is dead, not merely signalled
    pool.shutdown(wait=True)  # the executor reaps its dead workers and joins its manager thread
