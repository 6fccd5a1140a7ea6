"""Escape attempts from generated code: each must be contained, and the agent and the workspace stay intact.

Every test runs hostile code through the real ``run_python`` tool in a workspace that already holds
an artifact (the "victim"); after each test the victim's bytes, the workspace database and the
sandbox itself are checked. The last tests repeat a subset under the forced fallback
(``PHYSAGENT_SANDBOX=fallback``), which must report the protections it lacks.
"""

from __future__ import annotations

import json
import os
import random
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from physagent.tools import Artifact, ToolDependencyError, Workspace, call_tool, file_sha256
from physagent.tools.code import RunPythonResult, detect_isolation
from physagent.tools.code import _sandbox as sandbox_module

SECRET = "physagent-test-secret-7f3e9a"


def run(workspace: Workspace, code: str, **arguments: object) -> RunPythonResult:
    """Run ``code`` through the registered tool (no cache: every attempt really runs)."""
    outcome = call_tool("run_python", {"code": code, "timeout_s": 10.0, **arguments}, workspace=workspace,
                        use_cache=False)
    assert isinstance(outcome.result, RunPythonResult)
    return outcome.result


def printed(result: RunPythonResult) -> dict:
    return result.values


def marker() -> str:
    """A unique number: harmless as an extra ``sleep`` argument, findable in /proc/*/cmdline."""
    return f"0.{random.randrange(10**11, 10**12)}"


def processes_with(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def wait_until_gone(text: str, grace_s: float = 1.0) -> list[int]:
    """Processes still showing ``text`` after ``grace_s`` (the kernel tears a namespace down in ms)."""
    deadline = time.monotonic() + grace_s
    while (alive := processes_with(text)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return alive


@pytest.fixture
def victim(workspace: Workspace) -> Iterator[tuple[Workspace, Artifact]]:
    """A workspace holding one artifact; afterwards its bytes, the database and the sandbox must be intact."""
    made = run(workspace, "open('victim.json', 'w').write('{\"precious\": 1}')", outputs=["victim.json"])
    artifact = made.outputs[0]
    digest = file_sha256(artifact.path)
    yield workspace, artifact
    assert file_sha256(artifact.path) == digest, "the workspace's other artifact was modified"
    assert workspace.get_artifact(artifact.id) == artifact, "the workspace database changed the artifact"
    after = run(workspace, "import json; print(json.dumps({'alive': True}))", values={"alive": "bool"})
    assert after.ok and after.values == {"alive": True}, "the sandbox stopped working after the attempt"


@pytest.fixture(autouse=True)
def _bwrap_here() -> None:
    """The escape suite is about the real sandbox: on this machine it must be bubblewrap."""
    assert detect_isolation().mechanism == "bwrap", detect_isolation().describe()


def test_writes_outside_the_working_directory_fail_and_leave_the_host_untouched(
    victim: tuple[Workspace, Artifact], tmp_path: Path,
) -> None:
    """Writing to host paths, the workspace's database and artifacts, or via '..' changes nothing on the host."""
    workspace, artifact = victim
    before = sorted(p.relative_to(workspace.root) for p in workspace.root.rglob("*"))
    name = f"physagent-escape-{marker()}"  # unique, so a regression's debris is recognisable and removed
    host_targets = [tmp_path / name, Path("/etc") / name, Path("/usr") / name, Path("/") / name, Path.home() / name]
    targets = [*map(str, host_targets), str(workspace.db_path), str(artifact.path), f"../{name}", f"../../{name}",
               "../../../physagent.sqlite"]
    code = f"""
import json
wrote = []
for target in {targets!r}:
    try:
        with open(target, "w") as handle:
            handle.write("pwned")
        wrote.append(target)
    except OSError:
        pass
print(json.dumps({{"wrote": wrote}}))
"""
    try:
        result = run(workspace, code)
        escaped = [p for p in host_targets if p.exists()]
    finally:
        for path in host_targets:
            path.unlink(missing_ok=True)
    assert result.ok, result.report
    assert result.values["wrote"] == [], f"writes succeeded inside the sandbox: {result.values['wrote']}"
    assert escaped == []
    after = sorted(p.relative_to(workspace.root) for p in workspace.root.rglob("*"))
    assert [p for p in after if "escape" in str(p)] == []
    assert set(before) <= set(after)


def test_host_files_environment_and_other_processes_are_invisible(
    victim: tuple[Workspace, Artifact], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A secret in the parent's environment, a private file, /etc/shadow, /root and /proc/*/environ stay unread."""
    workspace, artifact = victim
    monkeypatch.setenv("PHYSAGENT_TEST_TOKEN", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    secret_file = tmp_path / "other-user" / "secret.txt"
    secret_file.parent.mkdir()
    secret_file.write_text(SECRET)
    secret_file.chmod(0o600)
    code = f"""
import json, os, glob
seen = {{"env": dict(os.environ), "files": {{}}, "proc": []}}
for path in [{str(secret_file)!r}, "/etc/shadow", "/etc/passwd", {str(artifact.path)!r}, {str(workspace.db_path)!r}]:
    try:
        seen["files"][path] = open(path, errors="replace").read()
    except OSError as exc:
        seen["files"][path] = type(exc).__name__
seen["root"] = sorted(os.listdir("/root")) if os.path.isdir("/root") else []
for environ in glob.glob("/proc/*/environ"):
    try:
        seen["proc"].append(open(environ, "rb").read().decode(errors="replace"))
    except OSError:
        pass
print(json.dumps(seen))
"""
    result = run(workspace, code)
    assert result.ok, result.report
    assert SECRET not in result.stdout and SECRET not in result.stderr
    seen = result.values
    assert "PHYSAGENT_TEST_TOKEN" not in seen["env"] and "OPENAI_API_KEY" not in seen["env"]
    assert set(seen["env"]) <= {"PATH", "HOME", "TMPDIR", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "PWD",
                                "MPLBACKEND", "MPLCONFIGDIR", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                                "PHYSAGENT_INPUTS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                "NUMEXPR_NUM_THREADS"}
    assert all(value == "FileNotFoundError" for value in seen["files"].values()), seen["files"]
    assert seen["root"] in ([], [".pyenv"]), f"/root shows host files: {seen['root']}"


def test_network_connections_and_name_resolution_fail(workspace: Workspace) -> None:
    """A TCP server on the host's 127.0.0.1 is unreachable from inside, and no hostname resolves."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted: list[object] = []
    server.settimeout(0.2)

    def serve() -> None:
        end = time.monotonic() + 8
        while time.monotonic() < end:
            try:
                accepted.append(server.accept())
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with socket.create_connection(("127.0.0.1", port), timeout=2):  # the host itself can connect
        pass
    time.sleep(0.3)
    host_connections = len(accepted)
    code = f"""
import json, socket
out = {{}}
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2).close(); out["connect"] = "connected"
except OSError as exc:
    out["connect"] = type(exc).__name__
for host in ("example.com", "pypi.org"):
    try:
        out[host] = socket.getaddrinfo(host, 443)[0][4][0]
    except OSError as exc:
        out[host] = type(exc).__name__
print(json.dumps(out))
"""
    try:
        result = run(workspace, code)
    finally:
        server.close()
        thread.join()
    assert result.ok, result.report
    assert result.values["connect"] in {"ConnectionRefusedError", "OSError", "TimeoutError"}
    assert result.values["example.com"] == "gaierror" and result.values["pypi.org"] == "gaierror"
    assert len(accepted) == host_connections, "the sandboxed code reached the host's server"


@pytest.mark.parametrize("main_waits", [True, False], ids=["main-runs-into-timeout", "main-exits-early"])
def test_processes_started_by_the_code_do_not_outlive_the_run(
    victim: tuple[Workspace, Artifact], main_waits: bool,
) -> None:
    """A child, and a double-forked daemon in its own session, are gone when run_python returns."""
    workspace, _ = victim
    tag = marker()
    code = f"""
import os, subprocess, time
subprocess.Popen(["sleep", "600", "{tag}"], start_new_session=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "600", "{tag}"])
    os._exit(0)
time.sleep(0.3)
print("children started", flush=True)
{"time.sleep(600)" if main_waits else ""}
"""
    result = run(workspace, code, timeout_s=1.5)
    assert "children started" in result.stdout
    assert result.termination == ("timeout" if main_waits else "exited")
    assert wait_until_gone(tag) == [], "a process started by the code survived the run"


def test_fork_bomb_is_capped_and_killed(victim: tuple[Workspace, Artifact]) -> None:
    """A fork bomb stops at the process limit, and every process is gone afterwards."""
    workspace, _ = victim
    tag = marker()
    # Safety valve: each process forks at most 10 times (≤ 1,024 processes even without any limit).
    code = f"""
import os
for _ in range(10):
    try:
        os.fork()
    except OSError as exc:
        print("fork refused:", type(exc).__name__, flush=True)
        break
os.execvp("sleep", ["sleep", "600", "{tag}"])
"""
    started = time.monotonic()
    result = run(workspace, code, timeout_s=2.0)
    assert result.termination == "timeout" and time.monotonic() - started < 10
    assert wait_until_gone(tag) == []
    isolation = detect_isolation()
    if isolation.cgroup:  # the pids cgroup (256 processes) refused forks long before 1,024
        assert "fork refused: BlockingIOError" in result.stdout
    else:
        assert any("process-count" in m for m in isolation.missing) or os.getuid() != 0


def test_allocating_50_gb_fails_with_memory_error_in_the_code(victim: tuple[Workspace, Artifact]) -> None:
    """A 50 GB allocation raises MemoryError inside the sandbox; the report names memory_mb; the agent is unchanged."""
    workspace, _ = victim
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run(workspace, "block = bytearray(50 * 1024**3)\n", memory_mb=1024)
    assert not result.ok and result.exit_code == 1
    assert "MemoryError" in result.stderr and "memory_mb=1024" in result.report
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 200 * 1024  # KiB: no 50 GB here


def test_infinite_loop_is_stopped_at_the_wall_time_limit(victim: tuple[Workspace, Artifact]) -> None:
    """`while True: pass` ends at timeout_s with a report saying so."""
    workspace, _ = victim
    started = time.monotonic()
    result = run(workspace, "while True:\n    pass\n", timeout_s=1.5)
    assert result.termination == "timeout" and not result.ok
    assert time.monotonic() - started >= 1.4  # ran to the limit, not killed early
    assert "did not finish within 1.5 s" in result.report


def test_printing_1_gb_is_truncated_quickly(victim: tuple[Workspace, Artifact]) -> None:
    """1 GiB on stdout keeps only its start and end (the JSON last line still parses) and takes seconds."""
    workspace, _ = victim
    code = "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n" \
           "print()\nprint('{\"done\": true}')\n"
    started = time.monotonic()
    result = run(workspace, code, values={"done": "bool"}, timeout_s=30.0)
    assert time.monotonic() - started < 20
    assert result.ok and result.values == {"done": True}
    assert len(result.stdout) < 70_000 and "bytes omitted" in result.stdout
    assert "only the start and the end were kept" in result.report


@pytest.mark.parametrize("layout", ["one-file", "many-files"])
def test_writing_10_gb_into_the_workspace_is_stopped_at_the_size_limit(
    victim: tuple[Workspace, Artifact], layout: str,
) -> None:
    """A 10 GB write stops at max_output_mb: one big file by RLIMIT_FSIZE, many files by the size watch."""
    workspace, _ = victim
    name = "'big.bin'" if layout == "one-file" else "f'part{i}.bin'"
    mode = "'ab'" if layout == "one-file" else "'wb'"
    code = f"""
block = bytes(1 << 20)
for i in range(10 * 1024):
    with open({name}, {mode}) as handle:
        handle.write(block)
"""
    started = time.monotonic()
    result = run(workspace, code, max_output_mb=32, timeout_s=30.0)
    assert time.monotonic() - started < 15 and not result.ok
    if layout == "one-file":
        assert "File too large" in result.stderr and "max_output_mb=32" in result.report
    else:
        assert result.termination == "output_limit" and "more than 32 MB" in result.report
    assert sum(p.stat().st_size for p in workspace.root.rglob("*.bin")) == 0  # the staging area was removed


def test_os_system_and_subprocess_see_only_the_sandbox(victim: tuple[Workspace, Artifact]) -> None:
    """Shell commands run inside the sandbox: no /etc/shadow, no host processes, no writable /usr."""
    workspace, _ = victim
    pwned = Path("/usr") / f"physagent-escape-{marker()}"
    code = f"""
import json, os, subprocess
status = os.system("cat /etc/shadow > shadow.txt 2>/dev/null; touch {pwned} 2>/dev/null")
ps = subprocess.run(["sh", "-c", "ls /proc | grep -c '^[0-9]'"], capture_output=True, text=True).stdout.strip()
print(json.dumps({{"status": status, "shadow": os.path.getsize("shadow.txt"), "processes": int(ps)}}))
"""
    try:
        result = run(workspace, code)
        escaped = pwned.exists()
    finally:
        pwned.unlink(missing_ok=True)
    assert result.ok, result.report
    assert result.values["status"] != 0 and result.values["shadow"] == 0
    assert result.values["processes"] < 10, "the code sees the host's processes"
    assert not escaped
    assert any("os.system" in f.message for f in result.validation.findings if f.severity == "warning")


def test_ctypes_cannot_mount_unshare_or_change_user(victim: tuple[Workspace, Artifact]) -> None:
    """libc mount(2), unshare(2) and setuid(2) through ctypes all fail inside the sandbox."""
    workspace, artifact = victim
    code = f"""
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
results = {{
    "mount": libc.mount(b"none", b"/usr", b"tmpfs", 0, None),
    "bind": libc.mount(b"{artifact.directory}", b"/tmp", None, 4096, None),
    "unshare_user": libc.unshare(0x10000000),
    "unshare_net": libc.unshare(0x40000000),
    "setuid": libc.setuid(12345) if os.getuid() == 0 else -1,
    "chroot": libc.chroot(b"/tmp"),
}}
print(json.dumps(results))
"""
    result = run(workspace, code)
    assert result.ok, result.report
    assert all(value == -1 for key, value in result.values.items() if key != "setuid"), result.values
    assert any("ctypes" in f.message for f in result.validation.findings)


def test_importlib_tricks_reach_neither_network_nor_workspace(victim: tuple[Workspace, Artifact]) -> None:
    """Modules imported by computed names work, but still meet the same walls (network, files, agent code)."""
    workspace, _ = victim
    code = f"""
import importlib, json
sock = importlib.import_module("".join(["so", "cket"]))
osmod = __import__("o" + "s")
out = {{}}
try:
    sock.create_connection(("10.0.0.1", 80), timeout=1); out["net"] = "connected"
except OSError as exc:
    out["net"] = type(exc).__name__
try:
    importlib.import_module("physagent.tools._workspace"); out["agent_code"] = "imported"
except ImportError as exc:
    out["agent_code"] = type(exc).__name__
out["workspace"] = osmod.path.exists({str(workspace.root)!r})
print(json.dumps(out))
"""
    result = run(workspace, code)
    assert result.ok, result.report
    assert result.values["net"] != "connected" and result.values["workspace"] is False
    assert result.values["agent_code"] == "ModuleNotFoundError"
    assert any("importlib.import_module" in f.message for f in result.validation.findings)


# ------------------------------------------------------------------------------------------------ fallback


@pytest.fixture
def fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHYSAGENT_SANDBOX", "fallback")


@pytest.mark.usefixtures("fallback")
def test_fallback_reports_the_protections_it_lacks(workspace: Workspace) -> None:
    """Without bwrap the result says, in words and as a list, that files are not confined."""
    result = run(workspace, "print('{\"x\": 1}')", values={"x": "int"})
    assert result.ok
    assert result.isolation.startswith("sandbox: unshare") or result.isolation.startswith("sandbox: process")
    assert "MISSING protections" in result.isolation
    assert any("filesystem isolation" in m for m in result.missing_protections)
    assert detect_isolation("fallback").missing == tuple(result.missing_protections)


@pytest.mark.usefixtures("fallback")
def test_fallback_still_hides_the_environment_and_limits_time_and_memory(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under the fallback the parent's secrets stay out, 50 GB fails, a loop and its children are killed."""
    monkeypatch.setenv("PHYSAGENT_TEST_TOKEN", SECRET)
    seen = run(workspace, "import json, os\nprint(json.dumps({'env': sorted(os.environ)}))")
    assert "PHYSAGENT_TEST_TOKEN" not in seen.values["env"] and SECRET not in seen.stdout
    memory = run(workspace, "block = bytearray(50 * 1024**3)\n", memory_mb=1024)
    assert "MemoryError" in memory.stderr
    tag = marker()
    looping = run(workspace, f"import subprocess\nsubprocess.Popen(['sleep', '600', '{tag}'], "
                             "start_new_session=True)\nwhile True:\n    pass\n", timeout_s=1.5)
    assert looping.termination == "timeout"
    assert wait_until_gone(tag) == []


@pytest.mark.usefixtures("fallback")
def test_fallback_blocks_the_network_when_unshare_works(workspace: Workspace) -> None:
    """With unshare usable here, the fallback still has no network; otherwise it says network isolation is missing."""
    isolation = detect_isolation("fallback")
    code = "import json, socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=1); r = 'connected'\n" \
           "except OSError as exc:\n    r = type(exc).__name__\nprint(json.dumps({'r': r}))\n"
    result = run(workspace, code)
    if "--net" in isolation.flags:
        assert result.values["r"] != "connected"
    else:
        assert any("network" in m for m in isolation.missing)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == result.values


def test_without_unshare_the_plain_process_fallback_still_kills_the_tree(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With neither bwrap nor unshare, the code runs in a plain process that says what it lacks; timeouts still hold."""
    monkeypatch.setattr(sandbox_module, "_unshare_flags", lambda: ())
    monkeypatch.setattr(sandbox_module, "_bwrap_flags", lambda: None)
    sandbox_module._isolation.cache_clear()
    try:
        isolation = detect_isolation()
        assert isolation.mechanism == "process"
        assert {"network isolation (no network namespace)", "PID namespace"} <= set(isolation.missing)
        tag = marker()
        result = run(workspace, f"import subprocess\nsubprocess.Popen(['sleep', '600', '{tag}'], "
                                "start_new_session=True)\nwhile True:\n    pass\n", timeout_s=1.5)
        assert result.termination == "timeout" and result.isolation.startswith("sandbox: process")
        if isolation.cgroup:  # a new session escapes the process group, not the cgroup
            assert wait_until_gone(tag) == []
        else:
            for pid in processes_with(tag):
                os.kill(pid, 9)
    finally:
        sandbox_module._isolation.cache_clear()


def test_asking_for_bwrap_where_it_does_not_work_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """PHYSAGENT_SANDBOX=bwrap never silently degrades; an unknown mode is refused."""
    monkeypatch.setattr(sandbox_module, "_bwrap_flags", lambda: None)
    sandbox_module._isolation.cache_clear()
    try:
        with pytest.raises(ToolDependencyError, match="bubblewrap does not work here"):
            detect_isolation("bwrap")
        with pytest.raises(ToolDependencyError, match="'auto', 'bwrap' or 'fallback'"):
            detect_isolation("docker")
    finally:
        sandbox_module._isolation.cache_clear()
