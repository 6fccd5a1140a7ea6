r"""Resource limits for sandboxed code: POSIX rlimits and, where the machine allows, a cgroup.

rlimits are set with ``prlimit(2)`` on the gated child before it runs anything (no ``preexec_fn``,
which is unsafe in a threaded server); they are inherited by everything the code starts:

- ``RLIMIT_AS``: address space, so a big allocation fails with ``MemoryError`` in the code;
- ``RLIMIT_CPU``: CPU seconds per process; ``RLIMIT_FSIZE``: largest file the code may write;
- ``RLIMIT_CORE`` 0 (no core dumps), ``RLIMIT_NOFILE``; ``RLIMIT_NPROC`` only for a non-root user
  without a pids cgroup (root ignores it).

A cgroup (v1 controllers or a delegated v2 subtree, created beneath the agent's own cgroup) adds
a process-count limit (``pids.max``: contains fork bombs, also for root), a memory limit that also
charges the private ``/tmp`` tmpfs, a way to kill every process of a run, and the peak process count.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MIB", "Cgroup", "Limits", "apply_rlimits"]

MIB = 1 << 20
_CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Limits:
    """What one sandboxed run may use. Sizes in MiB, times in seconds."""

    timeout_s: float = 60.0
    memory_mb: int = 4096
    max_output_mb: int = 1024
    tmp_mb: int = 256
    max_stream_bytes: int = 64 * 1024
    max_processes: int = 256
    max_open_files: int = 1024

    @property
    def cpu_s(self) -> int:
        """CPU seconds per process: the wall-time limit, rounded up (the wall clock stops it first)."""
        return int(self.timeout_s) + 1


def apply_rlimits(pid: int, limits: Limits, nproc: int | None = None) -> None:
    """Set the run's rlimits on process ``pid`` (never above the current hard limits)."""
    wanted = {
        resource.RLIMIT_AS: limits.memory_mb * MIB,
        resource.RLIMIT_CPU: limits.cpu_s,
        resource.RLIMIT_FSIZE: limits.max_output_mb * MIB,
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_NOFILE: limits.max_open_files,
    }
    if nproc is not None:
        wanted[resource.RLIMIT_NPROC] = nproc
    for which, wanted_value in wanted.items():
        _soft, hard = resource.getrlimit(which)
        # CPU: the soft limit sends SIGXCPU (the process dies); the hard one, 2 s later, SIGKILL
        soft, ceiling = wanted_value, wanted_value + 2 if which == resource.RLIMIT_CPU else wanted_value
        if hard != resource.RLIM_INFINITY:
            soft, ceiling = min(soft, hard), min(ceiling, hard)
        resource.prlimit(pid, which, (soft, ceiling))


def user_process_count() -> int:
    """Processes the current user runs now (RLIMIT_NPROC counts them all, not just the sandbox's)."""
    uid, count = os.getuid(), 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                count += entry.stat().st_uid == uid
    return count


class Cgroup:
    """A per-run cgroup with ``pids`` and ``memory`` limits; :meth:`create` returns None if none is possible."""

    def __init__(self, directories: dict[str, Path], version: int) -> None:
        self.directories = directories  # controller -> directory (one directory for v2)
        self.version = version

    @classmethod
    def create(cls, limits: Limits) -> Cgroup | None:
        """A new cgroup beneath our own with the run's limits, or None when this machine does not allow one."""
        name = f"physagent-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        parents = _own_cgroups()
        _remove_stale(parents.values())
        made: dict[str, Path] = {}
        try:
            for controller in ("pids", "memory"):
                parent = parents.get(controller)
                if parent is None:
                    raise OSError(f"no {controller} controller")
                directory = parent / name
                directory.mkdir(exist_ok=True)
                made[controller] = directory
            group = cls(made, 2 if _is_v2() else 1)
            group._set_limits(limits)
        except OSError:
            cls(made, 1).remove()
            return None
        return group

    def _set_limits(self, limits: Limits) -> None:
        pids, memory = self.directories["pids"], self.directories["memory"]
        (pids / "pids.max").write_text(str(limits.max_processes))
        budget = (limits.memory_mb + limits.tmp_mb) * MIB  # the tmpfs /tmp is charged here too
        (memory / ("memory.max" if self.version == 2 else "memory.limit_in_bytes")).write_text(str(budget))

    def add(self, pid: int) -> None:
        """Move ``pid`` (and its future children) into the cgroup."""
        for directory in dict.fromkeys(self.directories.values()):
            (directory / "cgroup.procs").write_text(str(pid))

    def pids(self) -> list[int]:
        """Processes in the cgroup now."""
        text = _read(self.directories["pids"] / "cgroup.procs") or ""
        return [int(line) for line in text.split()]

    def kill_all(self, timeout_s: float = 5.0) -> None:
        """SIGKILL every process in the cgroup and wait until it is empty."""
        kill = self.directories["pids"] / "cgroup.kill"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            pids = self.pids()
            if not pids:
                return
            if kill.exists():
                with contextlib.suppress(OSError):
                    kill.write_text("1")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)

    @property
    def peak_processes(self) -> int | None:
        """Most processes alive at once (kernels ≥ 6.1 record it), else None."""
        text = _read(self.directories["pids"] / "pids.peak")
        return int(text) if text and text.strip().isdigit() else None

    @property
    def peak_memory_bytes(self) -> int | None:
        """Most memory charged at once (anonymous memory, new page cache, the tmpfs /tmp), else None."""
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        text = _read(self.directories["memory"] / name)
        return int(text) if text and text.strip().isdigit() else None

    @property
    def oom_killed(self) -> bool:
        """True when the kernel killed a process of this cgroup for exceeding its memory limit."""
        memory = self.directories["memory"]
        text = _read(memory / ("memory.events" if self.version == 2 else "memory.oom_control")) or ""
        return any(line.split()[:1] == ["oom_kill"] and int(line.split()[1]) > 0 for line in text.splitlines())

    def remove(self) -> None:
        """Delete the cgroup directories (after :meth:`kill_all`)."""
        for directory in dict.fromkeys(self.directories.values()):
            for _ in range(100):  # exiting processes leave the cgroup a moment after they die
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


def _remove_stale(parents: Iterable[Path]) -> None:
    """Remove empty run cgroups left by agent processes that died (their names carry the pid)."""
    for parent in parents:
        for stale in parent.glob("physagent-*-*"):
            pid = stale.name.split("-")[1]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                with contextlib.suppress(OSError):
                    stale.rmdir()


def _is_v2() -> bool:
    return (_CGROUP_ROOT / "cgroup.controllers").exists()


def _own_cgroups() -> dict[str, Path]:
    """controller -> the directory of this process's own cgroup for it (v1 or v2)."""
    text = _read(Path("/proc/self/cgroup")) or ""
    found: dict[str, Path] = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        if not controllers and _is_v2():  # v2: one tree; a controller is usable if the parent delegates it
            enabled = (_read(_CGROUP_ROOT / relative / "cgroup.subtree_control") or "").split()
            found.update({c: _CGROUP_ROOT / relative for c in ("pids", "memory") if c in enabled})
        for controller in controllers.split(","):
            if controller in ("pids", "memory") and (_CGROUP_ROOT / controller / relative).is_dir():
                found[controller] = _CGROUP_ROOT / controller / relative
    return found


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None
