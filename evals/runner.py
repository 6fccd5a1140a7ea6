r"""Run an eval suite through the agent and score every run against machine-checkable expectations.

A suite is YAML files of tasks (schema: the header of ``evals/basic.yaml``; models:
:mod:`physagent.evals.schema`). Each run of a task gets a fresh task directory and workspace:

1. files with literal ``text`` are written to ``<task dir>/data/``;
2. the ``setup`` calls run through :func:`~physagent.tools.call_tool` — in the task's workspace, so the
   agent sees their artifacts as earlier work, or (``setup_visible: false``) in a scratch workspace
   ``<task dir>/setup`` it never sees — and ``files`` copied from setup artifacts land in ``data/``;
3. the ``history`` requests run through the same :class:`~physagent.agent.Assistant`, unjudged;
4. the request runs (``{files.NAME}`` → the file's absolute path, ``{setup.NAME}`` → the setup artifact's
   id) and :func:`~physagent.evals.checks.check` judges it.

A backend that raises fails its run, never the suite; so does a setup call that fails (``setup_failed``).
The ``physagent eval`` command is a few lines over this module:

>>> from physagent.evals import DEFAULT_SUITE, format_report, load_suite, run_suite, select_tasks
>>> tasks = select_tasks(load_suite(DEFAULT_SUITE), tags=["follow_up"])        # --suite, --only, --tag
>>> report = run_suite(tasks, "embedded:1.5b", "eval-runs", mode="step",        # --backend, --mode
...                    repeats=3)                                                 # --repeat  # doctest: +SKIP
>>> print(format_report(report))                                                # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from physagent.agent import AgentRecord, Assistant, ChatBackend, get_backend
from physagent.agent.loop import Mode
from physagent.evals.checks import Failure, check
from physagent.evals.report import SuiteReport, TaskResult
from physagent.evals.schema import Task, substitute
from physagent.knowledge import KnowledgeBase, sample_corpus
from physagent.tools import CallOutcome, FileAccess, ToolError, Workspace, call_tool

__all__ = ["ProgressCallback", "prepare_task", "run_suite"]

ProgressCallback = Callable[[TaskResult, int, int], None]
"""Called after each run with its result, the number of runs done and the total."""


class SetupError(RuntimeError):
    """A setup step or file of a task could not be made."""


@dataclass
class Prepared:
    """A task ready to run: its workspace, its files and setup results, and the texts with placeholders filled."""

    workspace: Workspace
    files: dict[str, Path] = field(default_factory=dict)
    outcomes: dict[str, CallOutcome] = field(default_factory=dict)
    visible: list[dict[str, str]] = field(default_factory=list)  # setup artifacts the agent sees
    history: list[str] = field(default_factory=list)
    request: str = ""
    setup_s: float = 0.0


def run_suite(
    tasks: Sequence[Task],
    backend: str | ChatBackend | None = None,
    workspace_dir: Path | str = "eval-runs",
    progress: ProgressCallback | None = None,
    *,
    mode: Mode | None = None,
    repeats: int = 1,
    suite: str = "",
    max_seconds: float | None = None,
    tools_per_request: int = 5,
) -> SuiteReport:
    """Run every task ``repeats`` times through one backend in one mode, each run in a fresh workspace.

    Args:
        tasks: from :func:`load_suite` (optionally :func:`select_tasks`).
        backend: a spec for :func:`agent.get_backend` ('embedded:1.5b', 'openai', None: the default) or a
            backend object; it is made once and shared by all runs.
        workspace_dir: parent of the per-run task directories (``<task id>-<random>``; never reused or deleted).
        progress: called after each run with its result, the count done and the total.
        mode: the agent mode, 'plan' or 'step' (None: the Assistant's default).
        repeats: runs per task (pass^k needs k ≥ 2); the runs of a task follow each other.
        suite: a name for the report.
        max_seconds: wall-time cap per request, overriding each task's ``max_seconds``.
        tools_per_request: tools offered to the model per request (the Assistant's selector).

    Returns:
        The report; a run whose backend raised or whose setup failed is a failed run with the reason.
    """
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be at least 1")
    chat = get_backend(backend) if backend is None or isinstance(backend, str) else backend
    root = Path(workspace_dir)
    root.mkdir(parents=True, exist_ok=True)
    report = SuiteReport(backend=chat.name, mode=mode or "", suite=suite, repeats=repeats)
    total = len(tasks) * repeats
    for task in tasks:
        for repeat in range(repeats):
            result = _run_task(task, chat, root, mode, max_seconds or task.max_seconds, tools_per_request)
            result.repeat = repeat
            report.runs.append(result)
            if progress:
                progress(result, len(report.runs), total)
    if report.runs and not report.mode:
        report.mode = report.runs[0].mode
    return report


def _run_task(task: Task, backend: ChatBackend, root: Path, mode: Mode | None, max_seconds: float,
              tools_per_request: int) -> TaskResult:
    workspace = _task_workspace(Path(tempfile.mkdtemp(prefix=f"{task.id}-", dir=root)))
    if task.knowledge == "sample":
        shutil.copytree(_sample_knowledge(root), workspace.root / "knowledge")
    try:
        prepared = prepare_task(task, workspace)
    except SetupError as exc:
        return _setup_failed(task, workspace, str(exc))
    assistant = Assistant(backend=backend, workspace=workspace, mode=mode, max_steps=task.max_steps,
                          max_seconds=max_seconds, tools_per_request=tools_per_request)
    history: list[AgentRecord] = []
    request = prepared.history[0] if prepared.history else prepared.request
    start = time.perf_counter()
    try:
        for request in prepared.history:
            history.append(assistant.ask(request))
        request = prepared.request
        record = assistant.ask(request)
    except Exception as exc:  # a crashing backend or loop fails this run only; the suite goes on
        elapsed = time.perf_counter() - start - sum(r.wall_s for r in history)
        record = _crashed(assistant, request, len(history), exc, elapsed)
    result = check(task, record, history, prepared.visible)
    result.workspace, result.setup_s = str(workspace.root), round(prepared.setup_s, 3)
    return result


def _task_workspace(root: Path) -> Workspace:
    """The task's workspace; as in the CLI its tools may read the current directory, and also the task's files."""
    return Workspace(root, file_access=FileAccess(data_dirs=(root / "data",)))


def prepare_task(task: Task, workspace: Workspace) -> Prepared:
    """Write the task's files, make its setup calls and fill the placeholders of its requests.

    Raises:
        SetupError: a setup call failed, or an artifact named in ``files`` has no such file.
    """
    began = time.perf_counter()
    prepared = Prepared(workspace)
    data = workspace.root / "data"
    for name, spec in task.files.items():
        if spec.text is not None:
            prepared.files[name] = _write(data / spec.name, spec.text)
    setup_space = workspace if task.setup_visible else Workspace(workspace.root / "setup",
                                                                 file_access=workspace.file_access)

    def lookup(group: str, name: str, path: str | None) -> Any:
        if group == "files":
            return str(prepared.files[name])
        outcome = prepared.outcomes[name]
        if path is None:
            return outcome.artifacts[0].id
        value = getattr(outcome.result, path.partition(".")[0])
        return getattr(value, "id", value)

    for step in task.setup:
        arguments = substitute(step.arguments, lookup)
        try:
            prepared.outcomes[step.name] = call_tool(step.tool, arguments, workspace=setup_space)
        except ToolError as exc:
            raise SetupError(f"setup step {step.name!r} ({step.tool}) failed: {exc}") from exc
    for name, spec in task.files.items():
        if spec.source is not None:
            prepared.files[name] = _copy(prepared.outcomes[spec.source], spec.file, data / spec.name)
    if task.setup_visible:
        prepared.visible = [{"id": a.id, "kind": a.kind, "path": str(a.path), "tool": o.tool}
                            for o in prepared.outcomes.values() for a in o.artifacts]
    prepared.history = [substitute(h, lookup) for h in task.history]
    prepared.request = substitute(task.request, lookup)
    prepared.setup_s = time.perf_counter() - began
    return prepared


def _write(target: Path, text: str) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return target


def _copy(outcome: CallOutcome, name: str | None, target: Path) -> Path:
    if not outcome.artifacts:
        raise SetupError(f"{outcome.tool} made no artifact to copy a file from")
    artifact = outcome.artifacts[0]
    source = artifact.path if name is None else artifact.directory / name
    if not source.is_file():
        raise SetupError(f"artifact {artifact.id} has no file {source.name!r}; it has: {', '.join(artifact.files)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(source, target))


def _setup_failed(task: Task, workspace: Workspace, reason: str) -> TaskResult:
    failure = Failure("setup_failed", reason)
    return TaskResult(id=task.id, suite=task.suite, tags=task.tags, passed=False, failures=[failure.message],
                      failure_kinds=[failure.kind], expected_calls=len(task.expect.tools), correct_calls=0,
                      error=reason, workspace=str(workspace.root))


def _sample_knowledge(root: Path) -> Path:
    """A knowledge base holding the sample corpus, ingested once per eval folder and copied per task."""
    home = root / ".sample-knowledge"
    KnowledgeBase.open(home).ingest(sample_corpus())
    return home / "knowledge"


def _crashed(assistant: Assistant, request: str, turn: int, exc: Exception, wall_s: float) -> AgentRecord:
    """The partial record of the request that raised, with the exception as its error."""
    partial = assistant.records[turn] if len(assistant.records) > turn else None
    record = partial or AgentRecord(session=assistant.session, backend=assistant.backend.name, request=request,
                                    mode=assistant.mode)
    record.error = f"{type(exc).__name__}: {exc}"
    record.wall_s, record.steps = round(wall_s, 3), max(record.steps, 1)
    return record
