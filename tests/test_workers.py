"""Workers: one count for every tool (PHYSAGENT_WORKERS or the usable cores), and worker processes
that never outlive the call that started them (SIGKILL, SIGTERM, Ctrl-C, an error)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import pytest

from physagent.tools import ToolInputError, Workspace, worker_count
from physagent.tools._workers import worker_pool

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_workers_variable_overrides_the_core_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """PHYSAGENT_WORKERS sets the count, even above the number of cores."""
    monkeypatch.setenv("PHYSAGENT_WORKERS", "3")
    assert worker_count() == 3
    monkeypatch.setenv("PHYSAGENT_WORKERS", " 64 ")
    assert worker_count() == 64


@pytest.mark.parametrize("unset", [None, ""])
def test_without_the_variable_every_usable_core_is_a_worker(monkeypatch: pytest.MonkeyPatch,
                                                            unset: str | None) -> None:
    """Unset (or empty), the count is the cores this process may run on, at least one."""
    if unset is None:
        monkeypatch.delenv("PHYSAGENT_WORKERS", raising=False)
    else:
        monkeypatch.setenv("PHYSAGENT_WORKERS", unset)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    assert worker_count() == max(1, cores) >= 1


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_workers_value_says_what_is_wrong_and_how_to_fix_it(monkeypatch: pytest.MonkeyPatch,
                                                                  value: str) -> None:
    """A value that is not a positive integer fails with a message naming the value and the fix."""
    monkeypatch.setenv("PHYSAGENT_WORKERS", value)
    with pytest.raises(ToolInputError) as caught:
        worker_count()
    message = str(caught.value)
    assert f"PHYSAGENT_WORKERS={value!r} is not a positive integer" in message
    assert "at least 1 (e.g. PHYSAGENT_WORKERS=2)" in message
    assert "or unset it" in message


def _poll(condition: Callable[[], object], timeout_s: float, what: str) -> object:
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.05)
    return value


def _children(pid: int) -> list[int]:
    """Live (not zombie) child processes of ``pid``, from /proc/<pid>/stat."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()  # after "(comm)": state, ppid, ...
        except OSError:
            continue
        if fields[1] == str(pid) and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state != "Z":  # a zombie is dead; its new parent reaps it when it likes
            alive.append(pid)
    return alive


def _start_generate_events(home: Path, log: Path) -> subprocess.Popen[bytes]:
    """``physagent tools call generate_events`` with 2 Pythia workers and enough events to run a while."""
    command = [sys.executable, "-c", "from physagent.app.cli import main; main()", "tools", "call",
               "generate_events", "--arg", "process=drell_yan_mumu", "--arg", "n_events=200000", "--arg",
               "shards=2", "--arg", "mpi=false", "--no-cache"]
    env = os.environ | {"PHYSAGENT_HOME": str(home), "PHYSAGENT_WORKERS": "2", "HF_HUB_OFFLINE": "1"}
    with log.open("wb") as output:
        return subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)


def _two_workers(pid: int, besides: frozenset[int] = frozenset()) -> list[int]:
    """The two children of ``pid`` that are not among ``besides`` (a process that ran a Dask LocalCluster keeps
    multiprocessing's resource tracker as a child for its lifetime)."""
    children = [child for child in _children(pid) if child not in besides]
    return children if len(children) == 2 else []


def _kill_mid_generation(tmp_path: Path, signum: int) -> tuple[subprocess.Popen[bytes], list[int], Path]:
    home = tmp_path / "home"
    call = _start_generate_events(home, tmp_path / "call.log")
    try:
        workers = _poll(lambda: call.poll() is not None or _two_workers(call.pid), 120, "2 Pythia workers")
        assert call.poll() is None, (tmp_path / "call.log").read_text()[-2000:]
        call.send_signal(signum)
        call.wait(timeout=30)
    finally:
        call.kill()  # a no-op once it has exited
    return call, workers, home  # type: ignore[return-value]


@linux_only
def test_sigkill_of_a_call_takes_its_pythia_workers_with_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """kill -9 of `tools call generate_events` leaves no worker; the next open sweeps its staging dir."""
    call, workers, home = _kill_mid_generation(tmp_path, signal.SIGKILL)
    assert call.returncode == -signal.SIGKILL
    _poll(lambda: not _alive(workers), 10, f"workers {workers} to die with their parent")
    (leftover,) = (home / ".staging").iterdir()
    with caplog.at_level(logging.WARNING, logger="physagent.tools._workspace"):
        Workspace(home)
    assert f"removed 1 leftover(s) of interrupted calls from workspace {home}: .staging/{leftover.name}" in caplog.text
    assert not (home / ".staging").exists() and not (home / "artifacts").exists()


@linux_only
def test_sigterm_of_a_call_is_a_clean_ctrl_c(tmp_path: Path) -> None:
    """kill (SIGTERM) cancels like Ctrl-C: exit 130, workers gone, nothing half-written, no traceback."""
    call, workers, home = _kill_mid_generation(tmp_path, signal.SIGTERM)
    assert call.returncode == 130, (tmp_path / "call.log").read_text()[-2000:]
    _poll(lambda: not _alive(workers), 10, f"workers {workers} to stop")
    assert not home.exists()  # the call created the workspace, and leaves it as it found it
    assert "Traceback" not in (tmp_path / "call.log").read_text()


def _sleep(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _fail_while_workers_sleep(futures: list[Future[int]], workers: list[int]) -> None:
    before = frozenset(_children(os.getpid()))
    with worker_pool(2) as pool:
        futures += [pool.submit(_sleep, 60) for _ in range(3)]
        workers += _poll(lambda: _two_workers(os.getpid(), before), 30, "2 workers")  # type: ignore[arg-type]
        raise RuntimeError("the parent failed")


@linux_only
def test_an_error_in_the_parent_kills_the_workers_without_waiting_for_their_tasks() -> None:
    """Leaving a worker_pool by an exception kills its workers at once instead of finishing 60 s tasks."""
    futures: list[Future[int]] = []
    workers: list[int] = []
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="the parent failed"):
        _fail_while_workers_sleep(futures, workers)
    assert time.monotonic() - started < 20
    assert len(workers) == 2 and not _alive(workers)
    assert all(f.cancelled() or f.exception() is not None for f in futures)


def test_a_worker_pool_left_normally_returns_every_result() -> None:
    """Leaving the block normally waits for the submitted work, as a plain ProcessPoolExecutor does."""
    with worker_pool(2) as pool:
        futures = [pool.submit(_sleep, 0) for _ in range(4)]
    assert all(isinstance(f.result(), int) and f.result() != os.getpid() for f in futures)

