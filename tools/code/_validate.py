r"""Validation of generated code: static findings before it runs, and what its run produced afterwards.

Before running (:func:`static_findings`): the code parses, imports only installed modules, and calls
nothing obviously out of bounds (processes, network, native code, dynamic code, absolute paths).
These are findings for the model to read, not the security boundary: the sandbox is.

After running (:func:`run_findings`, :func:`value_findings`, :func:`output_findings`): the exit status,
every declared output file exists, is a non-empty regular file and loads in its format (Parquet, ROOT,
PNG, PDF, JSON, CSV, NumPy, HDF5, text), every declared value has its type and is finite, and the
physics checks the caller attached hold (``{"fraction": {"quantity": "fraction"}}`` — in [0, 1];
``{"m_jj": {"quantity": "mass_gev", "sqrt_s_tev": 13.6}}`` — between 0 and √s = 13,600 GeV).
All of it lands in one :class:`ValidationReport`, whose :meth:`~ValidationReport.text` the agent reads.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from physagent.tools.code._formats import FORMATS, OutputInfo, check_output_file
from physagent.tools.code._sandbox import SandboxResult

__all__ = [
    "QUANTITIES", "Finding", "ValidationReport", "ValueCheck", "ValueType", "output_findings", "parse_values",
    "relevant_traceback", "run_findings", "static_findings", "value_findings",
]

ValueType = Literal["float", "int", "bool", "str", "list[float]", "list[int]", "list[str]"]
Quantity = Literal["fraction", "efficiency", "probability", "count", "mass_gev", "energy_gev", "momentum_gev",
                   "cross_section_pb"]
Stage = Literal["static", "run", "output", "value", "check"]

# quantity -> (lowest, highest (None: √s in GeV), integer?, what it is)
QUANTITIES: dict[str, tuple[float, float | None, bool, str]] = {
    "fraction": (0.0, 1.0, False, "a fraction"),
    "efficiency": (0.0, 1.0, False, "an efficiency"),
    "probability": (0.0, 1.0, False, "a probability"),
    "count": (0.0, math.inf, True, "a count"),
    "mass_gev": (0.0, None, False, "a mass in GeV"),
    "energy_gev": (0.0, None, False, "an energy in GeV"),
    "momentum_gev": (0.0, None, False, "a momentum in GeV"),
    "cross_section_pb": (0.0, math.inf, False, "a cross-section in pb"),
}

_RISKY_CALLS = {
    "starts or signals processes (limited in the sandbox)": (
        "os.system", "os.popen", "os.fork", "os.forkpty", "os.kill", "os.killpg", "os.setsid", "os.exec",
        "os.spawn", "os.posix_spawn", "subprocess.", "pty.spawn", "multiprocessing.", "signal."),
    "uses the network (the sandbox has none)": (
        "socket.", "urllib.request.", "http.client.", "requests.", "httpx.", "ftplib.", "smtplib."),
    "calls native code directly": ("ctypes.", "cffi."),
    "runs dynamic code": ("eval", "exec", "compile", "__import__", "importlib.import_module", "importlib.__import__"),
}
_WRITE_MODES = ("w", "a", "x", "+")


class Finding(BaseModel):
    """One problem (error: validation fails) or remark (warning) about the code or what it produced."""

    severity: Literal["error", "warning"]
    stage: Stage = Field(description="static (before running), run, output (files), value, check (physics).")
    subject: str = Field(description="What the finding is about: 'line 3', a file name, a value name.")
    message: str


class ValidationReport(BaseModel):
    """Every finding of one run; ``passed`` when none is an error."""

    passed: bool
    findings: list[Finding] = Field(default_factory=list)

    @classmethod
    def of(cls, findings: list[Finding]) -> ValidationReport:
        return cls(passed=not any(f.severity == "error" for f in findings), findings=findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def text(self) -> str:
        """The report as the model reads it: verdict first, then each error, then warnings."""
        errors, warnings = self.errors, [f for f in self.findings if f.severity == "warning"]
        head = "validation passed" if self.passed else f"validation FAILED ({len(errors)} error(s))"
        lines = [head] + [f"- {f.subject}: {f.message}" for f in errors]
        lines += [f"- warning, {f.subject}: {f.message}" for f in warnings]
        return "\n".join(lines)


class ValueCheck(BaseModel):
    """A physics sanity check on one declared value (or on every element of a list value)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    quantity: Quantity | None = Field(
        default=None, description="What the value is: fraction/efficiency/probability in [0, 1], count ≥ 0 "
        "(integer), mass_gev/energy_gev/momentum_gev in [0, √s], cross_section_pb ≥ 0.")
    min: float | None = Field(default=None, description="Smallest allowed value (inclusive).")
    max: float | None = Field(default=None, description="Largest allowed value (inclusive).")
    sqrt_s_tev: float = Field(default=13.6, gt=0, description="Centre-of-mass energy in TeV bounding GeV quantities.")

    def bounds(self) -> tuple[float, float, bool, str]:
        """(lowest, highest, must be an integer, description) after combining the quantity with min/max."""
        low, high, integer, what = -math.inf, math.inf, False, "the allowed range"
        if self.quantity is not None:
            low, preset_high, integer, what = QUANTITIES[self.quantity]
            high = 1000.0 * self.sqrt_s_tev if preset_high is None else preset_high
        low = low if self.min is None else max(low, self.min)
        high = high if self.max is None else min(high, self.max)
        return low, high, integer, what


# --------------------------------------------------------------------------------------------- static


def static_findings(code: str) -> list[Finding]:
    """Findings about ``code`` before it runs: syntax errors and missing modules are errors, risky calls warnings."""
    try:
        tree = ast.parse(code, filename="main.py")
    except SyntaxError as exc:
        where = f"\n    {(exc.text or '').rstrip()}\n    {' ' * max((exc.offset or 1) - 1, 0)}^" if exc.text else ""
        return [Finding(severity="error", stage="static", subject=f"line {exc.lineno}",
                        message=f"SyntaxError: {exc.msg}{where}")]
    guarded = _guarded_imports(tree)
    aliases: dict[str, str] = {}
    findings: list[Finding] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            findings += _import_findings(node, guarded, aliases)
        elif isinstance(node, ast.Call):
            findings += _call_findings(node, aliases)
    return findings


def _guarded_imports(tree: ast.AST) -> set[int]:
    """ids of import statements inside a ``try`` that handles ImportError (optional imports)."""
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(_catches_import_error(h) for h in node.handlers):
            guarded |= {id(inner) for stmt in node.body for inner in ast.walk(stmt)}
    return guarded


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    names = [handler.type] if not isinstance(handler.type, ast.Tuple) else list(handler.type.elts)
    return any(isinstance(n, ast.Name) and n.id in {"ImportError", "ModuleNotFoundError", "Exception"} for n in names)


def _import_findings(node: ast.Import | ast.ImportFrom, guarded: set[int], aliases: dict[str, str]) -> list[Finding]:
    if isinstance(node, ast.ImportFrom):
        if node.level or not node.module:
            return []
        modules = [node.module]
        aliases.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
    else:
        modules = [a.name for a in node.names]
        aliases.update({a.asname or a.name.split(".")[0]: a.name if a.asname else a.name.split(".")[0]
                        for a in node.names})
    findings = []
    for module in modules:
        top = module.split(".")[0]
        if id(node) not in guarded and not _installed(top):
            findings.append(Finding(
                severity="error", stage="static", subject=f"line {node.lineno}",
                message=f"module {top!r} is not installed here. Use an installed library (numpy, awkward, "
                        "uproot, hist, vector, pandas, pyarrow, scipy, matplotlib, fastjet, sklearn, torch).",
            ))
    return findings


def _installed(top: str) -> bool:
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return True
    try:
        return importlib.util.find_spec(top) is not None  # a top-level name: searched, never imported
    except (ImportError, ValueError):
        return False


def _call_findings(node: ast.Call, aliases: dict[str, str]) -> list[Finding]:
    name = _dotted(node.func)
    if name is None:
        return []
    head, _, rest = name.partition(".")
    full = aliases.get(head, head) + (f".{rest}" if rest else "")
    for why, patterns in _RISKY_CALLS.items():
        # 'socket.' matches a whole module; 'os.exec' also os.execv...; a bare builtin name only itself
        if any(full == p or ("." in p and full.startswith(p)) for p in patterns):
            return [Finding(severity="warning", stage="static", subject=f"line {node.lineno}",
                            message=f"{full}(...) {why}.")]
    if full == "open" and node.args:
        return _open_findings(node)
    return []


def _open_findings(node: ast.Call) -> list[Finding]:
    path = node.args[0]
    mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
    writes = isinstance(mode, ast.Constant) and isinstance(mode.value, str) and \
        any(c in mode.value for c in _WRITE_MODES)
    if writes and isinstance(path, ast.Constant) and str(path.value).startswith("/") and \
            not str(path.value).startswith("/tmp/"):
        return [Finding(severity="warning", stage="static", subject=f"line {node.lineno}",
                        message=f"writes {path.value!r}: only the working directory (and /tmp) is writable; "
                                "write outputs with a relative file name.")]
    return []


def _dotted(node: ast.expr) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


# ------------------------------------------------------------------------------------------------ run


def run_findings(result: SandboxResult, timeout_s: float, memory_mb: int, max_output_mb: int) -> list[Finding]:
    """Errors for a run that did not exit cleanly, with the relevant traceback lines and what to change."""
    if result.termination == "timeout":
        return [_run_error(f"did not finish within {timeout_s:g} s and was stopped with every process it "
                           "started. Make it faster (vectorise with numpy/awkward, use fewer events) or raise "
                           "timeout_s (at most 600).", result)]
    if result.termination == "output_limit":
        return [_run_error(f"wrote more than {max_output_mb} MB into its working directory and was stopped. "
                           "Write smaller outputs or raise max_output_mb.", result)]
    if result.termination == "memory":
        return [_run_error(f"used more than memory_mb={memory_mb} MB and was killed. Process the data in "
                           "chunks or raise memory_mb.", result)]
    findings = []
    if result.exit_code != 0:
        findings.append(_run_error(_exit_message(result, memory_mb, max_output_mb), result))
    if result.truncated:
        findings.append(Finding(severity="warning", stage="run", subject="output",
                                message=f"stdout/stderr were {result.stdout_bytes}/{result.stderr_bytes} bytes; "
                                        "only the start and the end were kept. Print less."))
    return findings


def _exit_message(result: SandboxResult, memory_mb: int, max_output_mb: int) -> str:
    code = result.exit_code
    if code is not None and code < 0:
        hints = {-9: f"killed (SIGKILL), most likely over memory_mb={memory_mb} MB",
                 -24: "stopped at its CPU-time limit (SIGXCPU); make it faster or raise timeout_s",
                 -25: f"stopped writing a file larger than max_output_mb={max_output_mb} MB (SIGXFSZ)"}
        return hints.get(code, f"killed by signal {-code}")
    text = f"exited with status {code}"
    if "MemoryError" in result.stderr:
        text += f" (out of memory: memory_mb={memory_mb} MB; process in chunks or raise memory_mb)"
    elif "File too large" in result.stderr:
        text += f" (a file grew past max_output_mb={max_output_mb} MB)"
    return text


def _run_error(message: str, result: SandboxResult) -> Finding:
    tail = relevant_traceback(result.stderr)
    return Finding(severity="error", stage="run", subject="run", message=message + (f":\n{tail}" if tail else ""))


def relevant_traceback(stderr: str, n_lines: int = 15) -> str:
    """The lines of the last traceback in ``stderr`` that locate the error, at most ``n_lines`` (else stderr's tail).

    Kept, in order: the header, every frame of the code's own script (``main.py``) with its source line,
    the innermost frame (often inside a library), and the start of the exception message. The
    bootstrap's frames (``<string>``, ``<frozen runpy>``) are dropped.
    """
    lines = stderr.rstrip().splitlines()
    start = max((i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")),
                default=None)
    if start is None:
        return "\n".join(lines[-n_lines:])
    frames, message = _split_traceback(lines[start + 1:])
    own = [frame for frame in frames if 'main.py"' in frame[0]]
    chosen = own + ([frames[-1]] if frames and frames[-1] not in own else [])
    kept = [line for frame in chosen for line in frame]
    room = max(n_lines - 1 - len(message[:3]), 2)
    kept = kept[-room:]
    return "\n".join([lines[start], *kept, *message][:n_lines])


def _split_traceback(body: list[str]) -> tuple[list[list[str]], list[str]]:
    """(frames, each its "File ..." line plus indented source lines; the exception message lines)."""
    frames: list[list[str]] = []
    index = 0
    while index < len(body) and body[index].startswith("  "):
        if body[index].startswith("  File "):
            frames.append([body[index]])
        elif frames:
            frames[-1].append(body[index])
        index += 1
    frames = [f for f in frames if not f[0].startswith(('  File "<string>"', '  File "<frozen runpy>"'))]
    return frames, [line for line in body[index:] if line.strip()]


# --------------------------------------------------------------------------------------------- values


def parse_values(stdout: str) -> dict[str, Any] | None:
    """The JSON object on the last non-empty line of stdout, or None."""
    for line in reversed(stdout.strip().splitlines()):
        if line.strip():
            try:
                values = json.loads(line)
            except json.JSONDecodeError:
                return None
            return values if isinstance(values, dict) else None
    return None


def value_findings(values: dict[str, Any] | None, declared: Mapping[str, str],
                   checks: Mapping[str, ValueCheck]) -> list[Finding]:
    """Errors for missing, mistyped or non-finite declared values and for failed physics checks."""
    if not declared and not checks:
        return []
    if values is None:
        return [Finding(severity="error", stage="value", subject="stdout", message=(
            "no JSON object on the last line of stdout. End the code with "
            f"print(json.dumps({{{', '.join(repr(k) + ': ...' for k in declared or checks)}}})).")
        )]
    findings: list[Finding] = []
    for name in [n for n in checks if n not in declared and n not in values]:
        findings.append(Finding(severity="error", stage="value", subject=name,
                                message=f"missing from the printed JSON (it has {sorted(values) or 'no keys'})."))
    for name, kind in declared.items():
        if name not in values:
            findings.append(Finding(severity="error", stage="value", subject=name,
                                    message=f"missing from the printed JSON (it has {sorted(values) or 'no keys'})."))
            continue
        problem = _type_problem(values[name], kind)
        if problem:
            findings.append(Finding(severity="error", stage="value", subject=name, message=problem))
    for name, check in checks.items():
        if name in values and not any(f.subject == name for f in findings):
            findings += _check_findings(name, values[name], check)
    return findings


def _type_problem(value: Any, kind: str) -> str | None:
    if kind.startswith("list["):
        if not isinstance(value, list):
            return f"must be a list ({kind}), got {_show(value)}."
        problems = [_type_problem(item, kind[5:-1]) for item in value]
        return next((f"element {i}: {p}" for i, p in enumerate(problems) if p), None)
    ok = {"float": isinstance(value, int | float) and not isinstance(value, bool),
          "int": isinstance(value, int) and not isinstance(value, bool),
          "bool": isinstance(value, bool), "str": isinstance(value, str)}[kind]
    if not ok:
        return f"must be {kind}, got {_show(value)} ({type(value).__name__})."
    if kind == "float" and not math.isfinite(value):
        return f"is {value}, not a finite number (check for division by zero or empty selections)."
    return None


def _check_findings(name: str, value: Any, check: ValueCheck) -> list[Finding]:
    low, high, integer, what = check.bounds()
    items = value if isinstance(value, list) else [value]
    for i, item in enumerate(items):
        label = f"{name}[{i}]" if isinstance(value, list) else name
        if not isinstance(item, int | float) or isinstance(item, bool) or not math.isfinite(item):
            return [Finding(severity="error", stage="check", subject=name, message=f"{label}={_show(item)} is not "
                            f"a finite number, so it cannot be {what}.")]
        if not low <= item <= high:
            return [Finding(severity="error", stage="check", subject=name,
                            message=f"{label}={item:g} is outside [{low:g}, {high:g}] expected for {what}.")]
        if integer and item != int(item):
            return [Finding(severity="error", stage="check", subject=name,
                            message=f"{label}={item:g} is not a whole number, as {what} must be.")]
    return []


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


# -------------------------------------------------------------------------------------------- outputs


def output_findings(directory: Path, declared: list[str]) -> tuple[list[Finding], dict[str, OutputInfo]]:
    """Errors for declared outputs that are missing, not regular files, empty or unreadable; infos of the rest."""
    present = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    findings: list[Finding] = []
    infos: dict[str, OutputInfo] = {}
    for name in declared:
        path = directory / name
        try:
            info = path.lstat()
        except FileNotFoundError:
            shown = ", ".join(present[:10]) or "none"
            findings.append(Finding(severity="error", stage="output", subject=name, message=(
                f"was not written. Files in the working directory: {shown}. Write it with a relative name.")))
            continue
        problem = _file_problem(info)
        if problem is None:
            try:
                infos[name] = check_output_file(path)
            except Exception as exc:  # any loader failure means the file is unusable: report it
                problem = f"does not load as {FORMATS.get(path.suffix.lower(), 'a file')}: {type(exc).__name__}: {exc}"
        if problem:
            findings.append(Finding(severity="error", stage="output", subject=name, message=problem))
    return findings, infos


def _file_problem(info: Any) -> str | None:
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        return "is not a regular file (a link or a special file); write the data itself."
    if info.st_nlink != 1:
        return "is a hard link; write the data itself."
    if info.st_size == 0:
        return "is empty (0 bytes)."
    return None
