"""Validation of generated code: static findings, declared outputs and values, physics checks, artifacts."""

from __future__ import annotations

import math

import pytest

from physagent.tools import ToolInputError, Workspace, call_tool, registry
from physagent.tools.code import RunPythonResult, ValueCheck, relevant_traceback, static_findings
from physagent.tools.code._validate import value_findings


def run(workspace: Workspace, code: str, **arguments: object) -> RunPythonResult:
    result = call_tool("run_python", {"code": code, "timeout_s": 20.0, **arguments}, workspace=workspace).result
    assert isinstance(result, RunPythonResult)
    return result


# ------------------------------------------------------------------------------------- after the run


def test_missing_declared_output_fails_validation_and_registers_nothing(workspace: Workspace) -> None:
    """A declared file the code never wrote is an error naming it and the files that do exist."""
    result = run(workspace, "open('other.txt', 'w').write('x')\n", outputs=["table.parquet"])
    assert not result.ok and result.exit_code == 0
    assert "table.parquet: was not written" in result.report and "other.txt" in result.report
    assert result.outputs == [] and workspace.list_artifacts() == []


def test_nan_value_fails_validation_with_a_hint(workspace: Workspace) -> None:
    """A declared float printed as NaN is not finite: the report says so and suggests the usual cause."""
    code = "import json\nprint(json.dumps({'fraction': float('nan'), 'n': 3}))\n"
    result = run(workspace, code, values={"fraction": "float", "n": "int"})
    assert not result.ok and math.isnan(result.values["fraction"])
    assert "fraction: is nan, not a finite number" in result.report and "division by zero" in result.report
    assert "- n:" not in result.report


@pytest.mark.parametrize(("name", "fmt"), [("data.parquet", "Parquet"), ("plot.png", "PNG"), ("file.root", "ROOT"),
                                           ("values.json", "JSON")])
def test_unreadable_output_file_fails_validation(workspace: Workspace, name: str, fmt: str) -> None:
    """A declared file that does not load in its format is an error naming the format and the loader's complaint."""
    result = run(workspace, f"open({name!r}, 'wb').write(b'definitely not a real file' * 10)\n", outputs=[name])
    assert not result.ok
    assert f"{name}: does not load as {fmt}:" in result.report
    assert workspace.list_artifacts() == []


def test_empty_output_and_symlink_to_a_host_file_are_rejected(workspace: Workspace) -> None:
    """An empty file, and a link pointing outside the sandbox, are never validated or registered."""
    code = "import os\nopen('empty.csv', 'w').close()\nos.symlink('/etc/hostname', 'host.txt')\n"
    result = run(workspace, code, outputs=["empty.csv", "host.txt"])
    assert not result.ok
    assert "empty.csv: is empty (0 bytes)" in result.report
    assert "host.txt: is not a regular file" in result.report


def test_valid_outputs_become_artifacts_with_kinds_and_provenance(workspace: Workspace) -> None:
    """Parquet events, a table, ROOT and PNG outputs are loaded, typed by content and recorded with the call."""
    code = """
import json
import awkward as ak, numpy as np, uproot
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
particles = ak.Array([[{"px": 1.0, "py": 0.0, "pz": 2.0, "e": 3.0, "pid": 211, "charge": 1}]] * 5)
ak.to_parquet(ak.zip({"particles": particles}, depth_limit=1), "events.parquet")
ak.to_parquet(ak.Array({"njets": np.arange(5)}), "table.parquet")
with uproot.recreate("hist.root") as f:
    f["h"] = np.histogram(np.arange(10.0), bins=5)
plt.plot([0, 1]); plt.savefig("fig.png")
open("undeclared.txt", "w").write("ignored")
print(json.dumps({"n_events": 5}))
"""
    outputs = ["events.parquet", "table.parquet", "hist.root", "fig.png"]
    result = run(workspace, code, outputs=outputs, values={"n_events": "int"},
                 checks={"n_events": {"quantity": "count"}})
    assert result.ok, result.report
    assert [a.kind for a in result.outputs] == ["events", "table", "root", "plot"]
    assert [a.path.name for a in result.outputs] == outputs
    assert all(workspace.artifact_intact(a) for a in result.outputs)
    assert result.outputs[0].metadata["n_rows"] == 5 and result.outputs[2].metadata["keys"] == ["h"]
    assert "undeclared" not in " ".join(a.path.name for a in workspace.list_artifacts())
    call = workspace.calls()[-1]
    assert call.tool == "run_python" and call.outputs == [a.id for a in result.outputs]
    histogram = call_tool("histogram", {"source": result.outputs[0].id, "field": "particles.e", "bins": 4},
                          workspace=workspace)  # an events artifact from code feeds the other tools
    assert histogram.result.model_dump()["entries"] == 5


def test_inputs_are_mounted_read_only_and_recorded(workspace: Workspace) -> None:
    """INPUTS maps an artifact id to its file, which the code can read but not change; the hash is recorded."""
    first = run(workspace, "open('numbers.csv', 'w').write('x\\n1\\n2\\n3\\n')\n", outputs=["numbers.csv"])
    source = first.outputs[0]
    code = f"""
import json
path = INPUTS["{source.id}"]
total = sum(int(line) for line in open(path).read().split()[1:])
try:
    open(path, "a").write("4\\n"); writable = True
except OSError:
    writable = False
print(json.dumps({{"total": total, "writable": writable, "same": INPUT_FILES == [path]}}))
"""
    result = run(workspace, code, inputs=[source.id], values={"total": "int", "writable": "bool"})
    assert result.ok, result.report
    assert result.values == {"total": 6, "writable": False, "same": True}
    assert workspace.calls()[-1].input_artifacts == {source.id: source.sha256}


def test_physics_checks_catch_values_outside_their_range(workspace: Workspace) -> None:
    """A fraction above 1, a mass above √s, and a list element below its minimum are each reported."""
    code = "import json\nprint(json.dumps({'fraction': 1.7, 'm_jj': 20000.0, 'pts': [50.0, 12.0], 'ok': 0.5}))\n"
    checks = {"fraction": {"quantity": "fraction"}, "m_jj": {"quantity": "mass_gev", "sqrt_s_tev": 13.6},
              "pts": {"min": 20.0}, "ok": {"quantity": "efficiency"}}
    result = run(workspace, code, checks=checks)
    assert not result.ok
    assert "fraction=1.7 is outside [0, 1] expected for a fraction" in result.report
    assert "m_jj=20000 is outside [0, 13600] expected for a mass in GeV" in result.report
    assert "pts[1]=12 is outside [20, inf]" in result.report
    assert "- ok:" not in result.report


def test_run_failure_reports_the_relevant_traceback_lines(workspace: Workspace) -> None:
    """A crash is reported with the code's own frames (not the bootstrap's) and the exception."""
    result = run(workspace, "def f(x):\n    return x['jets']\n\nf({'jet': 1})\n")
    assert not result.ok and result.exit_code == 1
    assert 'File "/code/main.py", line 4' in result.report and "KeyError: 'jets'" in result.report
    assert "runpy" not in result.report and "<string>" not in result.report


def test_syntax_error_and_missing_module_are_reported_without_running(workspace: Workspace) -> None:
    """Static errors stop the call before the sandbox starts, with the line and a caret."""
    broken = run(workspace, "x = [1, 2\nprint(x)\n")
    assert not broken.ok and broken.termination == "not_run"
    assert "line 1: SyntaxError" in broken.report and "^" in broken.report
    missing = run(workspace, "import physagent_no_such_module\n")
    assert missing.termination == "not_run" and "'physagent_no_such_module' is not installed" in missing.report


def test_declarations_are_checked_before_running() -> None:
    """Output names with paths and repeated outputs are refused as input errors."""
    with pytest.raises(ToolInputError, match="outputs"):
        call_tool("run_python", {"code": "pass", "outputs": ["../escape.txt"]})
    with pytest.raises(ToolInputError, match=r"names \['a.png'\] more than once"):
        call_tool("run_python", {"code": "pass", "outputs": ["a.png", "a.png"]})
    with pytest.raises(ToolInputError, match="checks"):
        call_tool("run_python", {"code": "pass", "checks": {"x": {"quantity": "banana"}}})


# --------------------------------------------------------------------------------------- pure parts


def test_static_findings_warn_on_risky_calls_but_accept_guarded_imports() -> None:
    """Process, network, native and dynamic calls are warnings (aliases resolved); optional imports pass."""
    code = """
import os as o
from subprocess import run as r
import ctypes
try:
    import not_installed_optional
except ImportError:
    not_installed_optional = None
o.system("ls")
r(["ls"])
ctypes.CDLL(None)
eval("1")
open("/etc/out.txt", "w")
"""
    findings = static_findings(code)
    assert all(f.severity == "warning" for f in findings)
    messages = " | ".join(f.message for f in findings)
    for expected in ("os.system", "subprocess.run", "ctypes.CDLL", "eval", "only the working directory"):
        assert expected in messages


def test_value_types_and_checks() -> None:
    """Types are strict (no bool for int, list elements checked); counts must be whole; checks need the value."""
    declared = {"n": "int", "flag": "bool", "xs": "list[float]"}
    findings = value_findings({"n": True, "flag": True, "xs": [1.0, "a"]}, declared, {})
    assert {f.subject: f.message for f in findings} == {
        "n": "must be int, got true (bool).", "xs": 'element 1: must be float, got "a" (str).'}
    count = value_findings({"k": 2.5}, {}, {"k": ValueCheck(quantity="count")})
    assert count[0].message == "k=2.5 is not a whole number, as a count must be."
    absent = value_findings({}, {}, {"k": ValueCheck(min=0)})
    assert "missing from the printed JSON" in absent[0].message
    assert "print(json.dumps({'k': ...}))" in value_findings(None, {"k": "float"}, {})[0].message


def test_relevant_traceback_keeps_the_last_lines_of_the_code_frames() -> None:
    """Long tracebacks are cut to their last lines, always keeping the header."""
    frames = "".join(f'  File "/code/main.py", line {i}, in f\n    f()\n' for i in range(40))
    bootstrap = '  File "<string>", line 1, in <module>\n'
    stderr = f"noise\nTraceback (most recent call last):\n{bootstrap}{frames}RecursionError: x"
    text = relevant_traceback(stderr, n_lines=5)
    lines = text.splitlines()
    assert lines[0].startswith("Traceback") and lines[-1] == "RecursionError: x" and len(lines) == 5


def test_run_python_is_registered_with_a_small_schema() -> None:
    """The tool is in the 'code' category; only `code` is required; limits have safe maxima."""
    spec = registry.get("run_python")
    schema = spec.parameters_schema()
    assert spec.category == "code" and schema["required"] == ["code"]
    assert schema["properties"]["timeout_s"]["maximum"] == 600
    assert schema["properties"]["memory_mb"]["maximum"] == 16384
