r"""Run untrusted code in a separate, confined process: bubblewrap, or the strongest fallback available.

``PHYSAGENT_SANDBOX`` chooses the isolation (``auto``, the default: bwrap when it works here):

- ``bwrap``: new network, PID, IPC, UTS, user and cgroup namespaces; an empty root with read-only
  ``/usr``, a few ``/etc`` files and the Python installation; a private size-limited ``/tmp``;
  read-only inputs under ``/inputs/<artifact-id>/``; the run's output directory at ``/output``
  (the only writable host directory); no capabilities; the environment cleared; killed with the agent.
- ``fallback``: ``unshare`` (own network and PID namespaces) when usable, else a plain process in a
  new session — no filesystem confinement. :attr:`Isolation.missing` says what is lost.

Both add rlimits and, where possible, a cgroup (:mod:`tools.code._limits`), cap what is kept of
stdout/stderr (head and tail), stop the run at the wall-time limit or when the output directory grows
past its size limit, and kill the run's whole process tree before returning. The code never runs
in the agent's own process.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal, cast

from physagent.tools._errors import ToolDependencyError
from physagent.tools.code._limits import MIB, Cgroup, Limits, apply_rlimits, user_process_count

__all__ = [
    "INPUTS_DIR", "OUTPUT_DIR", "Isolation", "Limits", "Mechanism", "Mount", "Sandbox", "SandboxResult",
    "detect_isolation", "make_owner_writable",
]

OUTPUT_DIR = "/output"
INPUTS_DIR = "/inputs"
Mechanism = Literal["bwrap", "unshare", "process"]
Termination = Literal["exited", "timeout", "output_limit", "memory", "cancelled"]

log = logging.getLogger("physagent.sandbox")

_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "nsswitch.conf", "host.conf",
        "hosts", "gai.conf", "protocols", "services", "ssl", "ca-certificates", "fonts", "mime.types",
        "os-release", "alternatives")
_BWRAP_BASE = ("--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--hostname", "sandbox")
# The gate holds the child until the parent has set its rlimits and cgroup (no preexec_fn: unsafe with
# threads); it waits on a pipe as stdin, then runs the command with stdin from /dev/null.
_GATE = 'IFS= read -r _ || exit 125; exec "$@" </dev/null'
_CONFINED = ("no network (own network namespace)", "own PID namespace",
             "filesystem: read-only system and Python files only; home directories, the workspace and other "
             "host files hidden", "writable: only the run's output directory and a private size-limited /tmp")
_NAMESPACES = (("--net", "no network (own network namespace)", "network isolation (no network namespace)"),
               ("--pid", "own PID namespace", "PID namespace"))
_COMMON = ("separate process", "clean environment (no API keys or tokens)",
           "wall-time limit (whole process tree killed)", "CPU-time limit", "memory limit (RLIMIT_AS)",
           "file-size limit (RLIMIT_FSIZE)", "output-directory size limit", "stdout/stderr size cap")


@dataclass(frozen=True)
class Isolation:
    """How this machine confines sandboxed code: the mechanism, what it protects, what it cannot."""

    mechanism: Mechanism
    protections: tuple[str, ...]
    missing: tuple[str, ...]
    cgroup: bool
    flags: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for a person (and the model): the mechanism and any missing protection."""
        text = f"sandbox: {self.mechanism}"
        return text + (f"; MISSING protections: {'; '.join(self.missing)}" if self.missing else " (full isolation)")


@dataclass(frozen=True)
class Mount:
    """A host path shown read-only to the code at ``target`` (bwrap) or at its own path (fallback)."""

    source: Path
    target: str


@dataclass(frozen=True)
class SandboxResult:
    """What happened to one sandboxed run."""

    exit_code: int | None  # None when the sandbox stopped the run; negative: killed by that signal
    termination: Termination
    stdout: str
    stderr: str
    stdout_bytes: int
    stderr_bytes: int
    duration_s: float
    peak_memory_mb: float
    peak_processes: int | None
    isolation: Isolation

    truncated: bool = False  # stdout or stderr lost its middle part


def detect_isolation(mode: str | None = None) -> Isolation:
    """The isolation used for ``mode`` (default ``$PHYSAGENT_SANDBOX``, else ``auto``).

    Raises:
        ToolDependencyError: ``mode`` is unknown, or ``bwrap`` was asked for and does not work here.
    """
    mode = (mode or os.environ.get("PHYSAGENT_SANDBOX") or "auto").strip().lower()
    if mode not in ("auto", "bwrap", "fallback"):
        raise ToolDependencyError(
            f"run_python: PHYSAGENT_SANDBOX={mode!r} is not a sandbox mode. Use 'auto', 'bwrap' or 'fallback'.")
    isolation = _isolation(mode)
    if mode == "bwrap" and isolation.mechanism != "bwrap":
        raise ToolDependencyError(
            "run_python: PHYSAGENT_SANDBOX=bwrap but bubblewrap does not work here. Install it "
            "(apt-get install bubblewrap) and allow user namespaces, or set PHYSAGENT_SANDBOX=auto.")
    if isolation.missing:
        _log_once(isolation)
    return isolation


@functools.cache
def _isolation(mode: str) -> Isolation:
    cgroup = _cgroup_usable()
    protections, missing = [*_COMMON, *_process_limits(cgroup)], []
    if not cgroup and os.getuid() == 0:
        missing.append("process-count limit (root without a pids cgroup: a fork bomb is stopped only by the "
                       "time limit)")
    bwrap = _bwrap_flags() if mode != "fallback" else None
    if bwrap is not None:
        return Isolation("bwrap", (*protections, *_CONFINED), tuple(missing), cgroup, bwrap)
    missing.append("filesystem isolation (the code can read and write every file the agent's user can)")
    flags = _unshare_flags()
    for flag, present, absent in _NAMESPACES:
        (protections if flag in flags else missing).append(present if flag in flags else absent)
    return Isolation("unshare" if flags else "process", tuple(protections), tuple(missing), cgroup, flags)


def _process_limits(cgroup: bool) -> list[str]:
    if cgroup:
        return ["process-count limit (pids cgroup)", "memory cgroup"]
    return ["process-count limit (RLIMIT_NPROC)"] if os.getuid() != 0 else []


def _log_once(isolation: Isolation) -> None:
    if isolation not in _LOGGED:
        _LOGGED.add(isolation)
        log.warning("%s", isolation.describe())


_LOGGED: set[Isolation] = set()


def _probe(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _bwrap_flags() -> tuple[str, ...] | None:
    """bwrap's namespace flags that work here (with nested user namespaces disabled if possible), or None."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return None
    for extra in (("--unshare-user", "--disable-userns"), ()):
        flags = (bwrap, *_BWRAP_BASE, *extra)
        if _probe([*flags, "--ro-bind", "/", "/", "--", "true"]):
            return flags
    return None


def _unshare_flags() -> tuple[str, ...]:
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    user = ("--map-root-user",) if os.getuid() != 0 else ()
    for flags in (("--net", "--pid", "--fork", "--kill-child", "--mount", "--mount-proc"),
                  ("--net", "--pid", "--fork", "--kill-child"), ("--net",)):
        if _probe([unshare, *user, *flags, "--", "true"]):
            return (unshare, *user, *flags, "--")
    return ()


def _cgroup_usable() -> bool:
    group = Cgroup.create(Limits())
    if group is None:
        return False
    group.remove()
    return True


class Sandbox:
    """Runs commands under one :class:`Isolation`; see the module docstring."""

    def __init__(self, mode: str | None = None) -> None:
        self.isolation = detect_isolation(mode)

    @property
    def confines_files(self) -> bool:
        return self.isolation.mechanism == "bwrap"

    def inside(self, mount: Mount) -> str:
        """The path at which the code sees ``mount``."""
        return mount.target if self.confines_files else str(mount.source)

    def run(self, argv: list[str], *, output_dir: Path, mounts: list[Mount], env: dict[str, str],
            limits: Limits, cancel: threading.Event | None = None) -> SandboxResult:
        """Run ``argv`` (paths as the code sees them) confined, and return what happened.

        Setting ``cancel`` stops the run like a timeout (termination ``cancelled``).
        """
        command = self._command(argv, output_dir, mounts, env, limits)
        cgroup = Cgroup.create(limits) if self.isolation.cgroup else None
        try:
            return _Supervisor(command, output_dir, env, limits, cgroup, self.isolation, cancel).run()
        finally:
            if cgroup is not None:
                cgroup.remove()

    def _command(self, argv: list[str], output_dir: Path, mounts: list[Mount], env: dict[str, str],
                 limits: Limits) -> list[str]:
        if self.isolation.mechanism != "bwrap":
            return [*self.isolation.flags, *argv]
        command = [*self.isolation.flags, "--clearenv"]
        for key, value in env.items():
            command += ["--setenv", key, value]
        command += _system_binds()
        command += ["--dev", "/dev", "--proc", "/proc", "--size", str(limits.tmp_mb * MIB), "--tmpfs", "/tmp"]
        for root in _python_roots():
            command += ["--ro-bind", root, root]
        for extra in filter(None, os.environ.get("PHYSAGENT_SANDBOX_READ_ONLY", "").split(os.pathsep)):
            command += ["--ro-bind-try", extra, extra]
        for mount in mounts:
            command += ["--ro-bind", str(mount.source), mount.target]
        return [*command, "--bind", str(output_dir), OUTPUT_DIR, "--chdir", OUTPUT_DIR, "--remount-ro", "/",
                "--", *argv]


def _system_binds() -> list[str]:
    binds: list[str] = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            binds += ["--symlink", str(path.readlink()), str(path)]
        elif path.is_dir():
            binds += ["--ro-bind", str(path), str(path)]
    for name in _ETC:
        binds += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return binds


@functools.cache
def _python_roots() -> tuple[str, ...]:
    """Directories holding this Python and its packages (outside /usr), outermost only."""
    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                  str(Path(sys.executable).parent), str(Path(sys.executable).resolve().parent.parent)}
    paths = sorted({str(Path(p).resolve()) for p in candidates} | {str(Path(p)) for p in candidates})
    roots: list[str] = []
    for path in paths:
        if path.startswith("/usr/") or path == "/usr" or any(path.startswith(r + "/") for r in roots):
            continue
        if Path(path).is_dir():
            roots.append(path)
    return tuple(roots)


@dataclass
class _Capped:
    """A stream's first and last ``cap / 2`` bytes, and how many bytes it had in all."""

    cap: int
    head: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)
    total: int = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.cap // 2 - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail += chunk
        if len(self.tail) > self.cap // 2:
            del self.tail[: len(self.tail) - self.cap // 2]

    def text(self) -> str:
        omitted = self.total - len(self.head) - len(self.tail)
        middle = f"\n[... {omitted} bytes omitted ...]\n".encode() if omitted else b""
        return bytes(self.head + middle + self.tail).decode("utf-8", errors="replace")


class _Supervisor:
    """Starts one gated child, feeds its pipes into capped buffers, enforces the limits, kills the tree."""

    def __init__(self, command: list[str], output_dir: Path, env: dict[str, str], limits: Limits,
                 cgroup: Cgroup | None, isolation: Isolation, cancel: threading.Event | None) -> None:
        self.command, self.output_dir, self.env, self.limits = command, output_dir, env, limits
        self.cgroup, self.isolation, self.cancel = cgroup, isolation, cancel or threading.Event()
        self.streams = [_Capped(limits.max_stream_bytes), _Capped(limits.max_stream_bytes)]

    def run(self) -> SandboxResult:
        start = time.monotonic()
        proc = self._start()
        termination: Termination = "exited"
        try:
            termination = self._watch(proc, start)
        finally:
            status, peak_kb = self._stop(proc)
        duration = time.monotonic() - start
        peak_mb = peak_kb / 1024
        if self.cgroup is not None:
            termination = "memory" if self.cgroup.oom_killed else termination
            peak_mb = (self.cgroup.peak_memory_bytes or peak_kb * 1024) / MIB
        return SandboxResult(
            exit_code=_exit_code(status, self.isolation) if termination == "exited" else None,
            termination=termination, stdout=self.streams[0].text(), stderr=self.streams[1].text(),
            stdout_bytes=self.streams[0].total, stderr_bytes=self.streams[1].total, duration_s=duration,
            truncated=any(s.total > len(s.head) + len(s.tail) for s in self.streams),
            peak_memory_mb=peak_mb, isolation=self.isolation,
            peak_processes=self.cgroup.peak_processes if self.cgroup else None,
        )

    def _start(self) -> subprocess.Popen[bytes]:
        gate_read, gate_write = os.pipe()
        try:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", _GATE, "physagent-sandbox", *self.command], stdin=gate_read,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                env=self.env, cwd=self.output_dir,
            )
        finally:
            os.close(gate_read)
        try:
            nproc = None
            if self.cgroup is None and os.getuid() != 0:
                nproc = user_process_count() + self.limits.max_processes
            apply_rlimits(proc.pid, self.limits, nproc)
            if self.cgroup is not None:
                self.cgroup.add(proc.pid)
            os.write(gate_write, b"go\n")
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            os.close(gate_write)
        return proc

    def _watch(self, proc: subprocess.Popen[bytes], start: float) -> Termination:
        """Read output until the child exits and its pipes close, or a limit is hit."""
        pipes = cast(tuple[IO[bytes], IO[bytes]], (proc.stdout, proc.stderr))  # both are PIPEs
        selector = selectors.DefaultSelector()
        for stream, fd in zip(self.streams, (pipes[0].fileno(), pipes[1].fileno()), strict=True):
            selector.register(fd, selectors.EVENT_READ, stream)
        deadline, next_size_check, exited_at = start + self.limits.timeout_s, 0.0, None
        with selector:
            while True:
                for key, _ in selector.select(timeout=0.05 if selector.get_map() else 0.005):
                    chunk = os.read(key.fd, 1 << 16)
                    if chunk:
                        key.data.add(chunk)
                    else:
                        selector.unregister(key.fd)
                now = time.monotonic()
                if exited_at is None and _has_exited(proc.pid):
                    exited_at = now
                if exited_at is not None and (not selector.get_map() or now - exited_at > 0.2):
                    return "exited"  # a leftover child holding the pipes open does not keep us waiting
                if now > deadline:
                    return "timeout"
                if self.cancel.is_set():
                    return "cancelled"
                if now >= next_size_check:
                    if _disk_usage(self.output_dir) > self.limits.max_output_mb * MIB:
                        return "output_limit"
                    next_size_check = now + 0.1

    def _stop(self, proc: subprocess.Popen[bytes]) -> tuple[int, int]:
        """Kill every process of the run, reap the child; returns its wait status and peak RSS in KiB."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # the child is still unreaped, so its group id is still ours
        if self.cgroup is not None:
            self.cgroup.kill_all()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        self._drain(proc)
        # ru_maxrss covers the reaped descendants, but also the agent's own RSS at the fork (the kernel
        # carries the parent's high-water mark across exec): an upper bound, used only without a cgroup
        return status, usage.ru_maxrss

    def _drain(self, proc: subprocess.Popen[bytes]) -> None:
        for stream, pipe in zip(self.streams, (proc.stdout, proc.stderr), strict=True):
            if pipe is None:
                continue
            os.set_blocking(pipe.fileno(), False)
            with contextlib.suppress(BlockingIOError, OSError):
                while chunk := os.read(pipe.fileno(), 1 << 16):
                    stream.add(chunk)
            pipe.close()


def _has_exited(pid: int) -> bool:
    """True once ``pid`` has exited; it stays a zombie (not reaped), so its process group id stays valid."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _exit_code(status: int, isolation: Isolation) -> int:
    code = os.waitstatus_to_exitcode(status)
    # bwrap and unshare report a child killed by signal N as exit status 128 + N
    if isolation.mechanism != "process" and 128 < code < 128 + signal.NSIG:
        return -(code - 128)
    return code


def make_owner_writable(directory: Path) -> None:
    """Undo permissions the code may have removed, so validation can read and cleanup can delete."""
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = Path(root) / name
            mode = path.lstat().st_mode
            if stat.S_ISDIR(mode):
                path.chmod(stat.S_IMODE(mode) | stat.S_IRWXU)
            elif stat.S_ISREG(mode):
                path.chmod(stat.S_IMODE(mode) | stat.S_IRUSR | stat.S_IWUSR)


def _disk_usage(directory: Path) -> int:
    """Bytes of disk the files under ``directory`` occupy (symlinks not followed)."""
    total = 0
    for root, dirs, files in os.walk(directory):
        for name in files + dirs:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512  # noqa: PTH118
    return total
