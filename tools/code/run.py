r"""``run_python``: run generated analysis code in the sandbox and validate what it produced.

The code runs in a separate confined process (:mod:`tools.code._sandbox`): no network, read-only
inputs, only its working directory writable, wall-time/CPU/memory/output limits. Inside it sees

- ``INPUTS``: a dict, artifact id → path of the artifact's primary file (also ``INPUT_FILES``, the
  same paths in the order given, and the ``PHYSAGENT_INPUTS`` environment variable as JSON);
  with bubblewrap the files lie under ``/inputs/<artifact-id>/``;
- its working directory (``/output`` with bubblewrap): declared output files are written there by name.

Declared values are printed as one JSON object on the last line of stdout
(``print(json.dumps({"fraction": 0.42}))``). A failed validation is a normal result with
``ok=False`` and a report saying what to fix — not an exception — so a model can repair the code.
Outputs become artifacts only when validation passes: Parquet → ``events`` (particles with
px, py, pz, e [GeV], pid, charge) or ``table``; ROOT → ``root``; PNG/PDF/SVG → ``plot``; else ``file``.

With a Dask cluster configured the sandbox runs on a worker (:mod:`tools.code._sandbox_cluster`), in the
staging directory prepared here on the shared workspace; this process validates and commits as without one,
and names the worker in ``isolation`` and in each output's ``metadata["execution"]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from physagent.tools._artifacts import ARTIFACT_ID_PATTERN, Accepts, Artifact
from physagent.tools._cluster import cluster_client
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import ToolResult, tool
from physagent.tools.code._formats import OutputInfo
from physagent.tools.code._sandbox import INPUTS_DIR, Limits, Mount, Sandbox, SandboxResult, make_owner_writable
from physagent.tools.code._sandbox_cluster import SandboxJob, run_on_worker
from physagent.tools.code._validate import (
    Finding,
    ValidationReport,
    ValueCheck,
    ValueType,
    output_findings,
    parse_values,
    run_findings,
    static_findings,
    value_findings,
)
from physagent.tools.data._common import EVENT_PARTICLE_FIELDS

__all__ = ["INPUT_KINDS", "RunPythonResult", "run_python"]

# Every artifact kind the tools make; a new kind must be added here to be readable by code.
INPUT_KINDS = ("events", "jets", "table", "histogram", "plot", "root", "dataset", "model", "file", "script")
AnyRef = Annotated[str, Accepts(INPUT_KINDS), Field(pattern=ARTIFACT_ID_PATTERN)]
OutputName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]

# Runs the code as __main__ with INPUTS defined; the code's own frames keep their line numbers.
_BOOTSTRAP = (
    "import json, os, runpy, sys; sys.argv = sys.argv[1:]; "
    "INPUTS = json.loads(os.environ.get('PHYSAGENT_INPUTS', '{}')); "
    "runpy.run_path(sys.argv[0], init_globals={'INPUTS': INPUTS, 'INPUT_FILES': list(INPUTS.values())}, "
    "run_name='__main__')"
)
_KINDS = {".root": "root", ".png": "plot", ".pdf": "plot", ".svg": "plot"}


class RunPythonResult(ToolResult):
    """The outcome of one sandboxed run: validated or not, why, values, output artifacts, resources."""

    ok: bool = Field(description="True when the code ran cleanly and every declared output and value passed.")
    report: str = Field(description="The validation report: what failed and how to fix it. Read this first.")
    values: dict[str, Any] = Field(description="The JSON object the code printed on its last stdout line.")
    outputs: list[Artifact] = Field(description="One artifact per declared output file (only when ok).")
    exit_code: int | None = Field(description="Exit status; negative: killed by that signal; None: stopped.")
    termination: str = Field(description="exited, timeout, output_limit, memory, or not_run (static errors).")
    duration_s: float = Field(description="Wall time of the run in seconds, sandbox start-up included.")
    peak_memory_mb: float = Field(description="Peak memory of the run in MiB.")
    isolation: str = Field(description="The sandbox used, and any protection this machine cannot provide.")
    missing_protections: list[str] = Field(description="Protections missing on this machine (empty with bwrap).")
    validation: ValidationReport = Field(description="Every finding, structured.")
    stdout: str = Field(description="Standard output (start and end kept when long).")
    stderr: str = Field(description="Standard error (start and end kept when long).")


# Not cacheable: code may use randomness, the clock or the machine's load (a timeout); a rerun really runs.
@tool(category="code", cacheable=False)
def run_python(
    code: Annotated[str, Field(min_length=1, max_length=200_000, description=(
        "Python source to run in an isolated sandbox. Read inputs from INPUTS['<artifact id>'] (a file path); "
        "write each declared output file into the current directory; end with print(json.dumps({...})) "
        "holding the declared values."))],
    inputs: Annotated[list[AnyRef] | None, Field(max_length=20, description=(
        "Ids of artifacts the code reads (read-only); INPUTS maps each id to its file path."))] = None,
    outputs: Annotated[list[OutputName] | None, Field(json_schema_extra={"x-derived": True}, max_length=20,
                                                      description=(
        "File names the code promises to write, e.g. ['njets.png']; each becomes an artifact."))] = None,
    values: Annotated[dict[str, ValueType] | None, Field(description=(
        "Values the code promises to print as JSON, with their types, e.g. {'fraction': 'float'}."))] = None,
    checks: Annotated[dict[str, ValueCheck] | None, Field(description=(
        "Physics checks on printed values, e.g. {'fraction': {'quantity': 'fraction'}} (in [0, 1]) or "
        "{'m_top': {'min': 150, 'max': 200}}."))] = None,
    timeout_s: Annotated[float, Field(gt=0, le=600, description=(
        "Wall-time limit in seconds; the code and everything it started are killed after it."))] = 60.0,
    memory_mb: Annotated[int, Field(ge=256, le=16384, description="Memory limit in MiB.")] = 4096,
    max_output_mb: Annotated[int, Field(ge=1, le=10240, description=(
        "Most MiB the code may write into its working directory (and the largest single file)."))] = 1024,
    *,
    ctx: ToolContext,
) -> RunPythonResult:
    """Run Python analysis code in an isolated sandbox and validate its outputs and printed values.

    For computations no other tool covers: custom selections and cuts, counting events or the fraction
    of events passing a cut, efficiencies, invariant masses, fits, custom plots. The result says
    whether the run validated and, if not, what to fix; fix the code and call again.
    """
    # One straight pipeline (static checks → sandbox → run, output and value findings → artifacts), kept
    # in one function so the order of the steps reads top to bottom.
    outputs, values, checks = outputs or [], values or {}, checks or {}
    _check_declarations(outputs)
    limits = Limits(timeout_s=timeout_s, memory_mb=memory_mb, max_output_mb=max_output_mb)
    findings = static_findings(code)
    sandbox = Sandbox()
    if any(f.severity == "error" for f in findings):
        return _not_run(findings, sandbox)
    run_dir, mounts, paths = _prepare(ctx, code, inputs or [], sandbox)
    script = f"{sandbox.inside(mounts[0])}/main.py"
    env = _environment(sandbox, paths, ctx.staging)
    fonts = _font_cache(sandbox, Path(env["MPLCONFIGDIR"]))
    job = SandboxJob([sys.executable, "-I", "-u", "-c", _BOOTSTRAP, script], run_dir, mounts, fonts, env, limits,
                     sandbox.isolation.mechanism)
    with ctx.progress("running code in the sandbox"):
        result, execution = _run_job(ctx, sandbox, job)
    ctx.check_cancelled()
    make_owner_writable(run_dir)
    printed = parse_values(result.stdout)
    findings += run_findings(result, timeout_s, memory_mb, max_output_mb)
    infos: dict[str, OutputInfo] = {}
    if result.termination == "exited" and result.exit_code == 0:  # outputs of a crashed run are noise
        output_problems, infos = output_findings(run_dir, outputs)
        findings += output_problems + value_findings(printed, values, checks)
    report = ValidationReport.of(findings)
    artifacts = _register(ctx, run_dir, infos, code, inputs or [], execution) if report.passed else []
    return _result(report, result, printed or {}, artifacts, execution)


def _check_declarations(outputs: list[str]) -> None:
    repeated = sorted({name for name in outputs if outputs.count(name) > 1})
    if repeated:
        raise ToolInputError.for_param("run_python", "outputs", outputs, f"names {repeated} more than once. "
                                       "List each output file once.")


def _prepare(ctx: ToolContext, code: str, inputs: list[str],
             sandbox: Sandbox) -> tuple[Path, list[Mount], dict[str, str]]:
    """Write the script, make the empty working directory, and mount the inputs; returns INPUTS too."""
    code_dir, run_dir = ctx.staging / "code", ctx.staging / "run"
    code_dir.mkdir(parents=True)
    run_dir.mkdir()
    (code_dir / "main.py").write_text(code)
    mounts = [Mount(code_dir, "/code")]
    paths: dict[str, str] = {}
    for artifact_id in dict.fromkeys(inputs):
        artifact = ctx.artifact(artifact_id, "inputs")
        mount = Mount(artifact.directory, f"{INPUTS_DIR}/{artifact_id}")
        mounts.append(mount)
        paths[artifact_id] = f"{sandbox.inside(mount)}/{artifact.path.name}"
    return run_dir, mounts, paths


def _run_job(ctx: ToolContext, sandbox: Sandbox, job: SandboxJob) -> tuple[SandboxResult, dict[str, Any] | None]:
    """Run the job in this process's sandbox, or on a Dask worker when a cluster is configured (then also
    return where it ran)."""
    client = cluster_client()
    if client is None:
        return job.run_here(sandbox, ctx.cancel_event), None
    return run_on_worker(client, job, ctx.check_cancelled)


def _environment(sandbox: Sandbox, paths: dict[str, str], staging: Path) -> dict[str, str]:
    """The code's whole environment: nothing from the agent's (no keys, no tokens)."""
    home = "/tmp"
    if not sandbox.confines_files:  # no private /tmp: give the run its own directory instead
        home = str(staging / "home")
        Path(home).mkdir()
    threads = dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"),
                            "1")
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home,
        "USER": "sandbox", "LOGNAME": "sandbox", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": f"{home}/matplotlib", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "PHYSAGENT_INPUTS": json.dumps(paths), **threads,
    }


def _font_cache(sandbox: Sandbox, config_dir: Path) -> list[Mount]:
    """Show the code the agent's matplotlib font list, so each run skips rebuilding it (~0.5 s)."""
    host = os.environ.get("MPLCONFIGDIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / \
        "matplotlib"
    found = sorted(Path(host).glob("fontlist-v*.json"))
    if not found:
        return []
    if sandbox.confines_files:
        return [Mount(found[-1], str(config_dir / found[-1].name))]
    config_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(found[-1], config_dir / found[-1].name)
    return []


def _register(ctx: ToolContext, run_dir: Path, infos: dict[str, OutputInfo], code: str,
              inputs: list[str], execution: dict[str, Any] | None) -> list[Artifact]:
    """Move each declared output into its own artifact (committed atomically with the call)."""
    code_sha = hashlib.sha256(code.encode()).hexdigest()
    artifacts = []
    for name, info in infos.items():
        pending = ctx.new_artifact(_kind(name, info))
        (run_dir / name).rename(pending.directory / name)
        metadata = {"made_by": "run_python", "format": info.format, "code_sha256": code_sha, "inputs": inputs,
                    **info.metadata} | ({"execution": execution} if execution else {})
        artifacts.append(pending.finish(name, f"{name}: {info.summary} (written by run_python)", metadata))
    return artifacts


def _kind(name: str, info: OutputInfo) -> str:
    suffix = Path(name).suffix.lower()
    if suffix == ".parquet":
        particle_fields = set(info.metadata.get("particle_fields", []))
        return "events" if set(EVENT_PARTICLE_FIELDS) <= particle_fields else "table"
    return _KINDS.get(suffix, "file")


def _not_run(findings: list[Finding], sandbox: Sandbox) -> RunPythonResult:
    report = ValidationReport.of(findings)
    isolation = sandbox.isolation
    return RunPythonResult(
        ok=False, report="not run: " + report.text(), values={}, outputs=[], exit_code=None,
        termination="not_run", duration_s=0.0, peak_memory_mb=0.0, isolation=isolation.describe(),
        missing_protections=list(isolation.missing), validation=report, stdout="", stderr="",
    )


def _result(report: ValidationReport, run: SandboxResult, printed: dict[str, Any], artifacts: list[Artifact],
            execution: dict[str, Any] | None) -> RunPythonResult:
    made = "; ".join(f"{a.id} ({a.kind}): {a.summary}" for a in artifacts)
    text = report.text() + (f"\noutputs: {made}" if made else "")
    where = f"; ran on Dask worker {execution['worker']}" if execution else ""
    return RunPythonResult(
        ok=report.passed, report=text, values=printed, outputs=artifacts, exit_code=run.exit_code,
        termination=run.termination, duration_s=round(run.duration_s, 3),
        peak_memory_mb=round(run.peak_memory_mb, 1), isolation=run.isolation.describe() + where,
        missing_protections=list(run.isolation.missing), validation=report, stdout=run.stdout, stderr=run.stderr,
    )
