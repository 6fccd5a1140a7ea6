r"""Run an eval suite through the agent and score every answer against machine-checkable expectations.

A suite is a YAML file of tasks (see ``evals/basic.yaml`` for the schema): a plain-language request
and what a correct run must show — tools called successfully in order, artifact kinds made, argument
values, numbers in the answer (or in a tool result) within a range, and a grounded answer. Each task
runs in a fresh workspace; a backend that raises fails its task, never the suite.

The ``physagent eval`` command is a few lines over this module:

>>> from physagent.evals import DEFAULT_SUITE, format_report, load_suite, run_suite, select_tasks
>>> tasks = select_tasks(load_suite(DEFAULT_SUITE), only=["dy_explicit"])   # --suite, --only
>>> report = run_suite(tasks, "embedded:1.5b", "eval-runs",                 # --backend
...                    progress=lambda r, i, n: print(f"[{i}/{n}] {r.id}: {r.verdict}"))  # doctest: +SKIP
>>> print(format_report(report))                                           # doctest: +SKIP
>>> Path("report.json").write_text(report.model_dump_json(indent=2))        # --json --output  # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, computed_field, field_validator, model_validator

from physagent.agent import AgentRecord, Assistant, ChatBackend, get_backend
from physagent.knowledge import KnowledgeBase, sample_corpus
from physagent.tools import Workspace, registry

__all__ = [
    "DEFAULT_SUITE", "ArgumentMatch", "EvalSuiteError", "Expectation", "NumberExpectation", "ProgressCallback",
    "SuiteReport", "Task", "TaskResult", "check", "format_report", "load_suite", "run_suite", "select_tasks",
]

DEFAULT_SUITE = Path(__file__).with_name("basic.yaml")

ArtifactKind = Literal["events", "jets", "table", "histogram", "plot", "root"]
ProgressCallback = Callable[["TaskResult", int, int], None]
"""Called after each task with its result, the number of tasks done and the total."""


class EvalSuiteError(ValueError):
    """A suite file or a task selection is malformed; the message names the file, task and field."""


# the suite schema ---------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArgumentMatch(_Strict):
    """How one argument is judged: ``equals`` a value, is ``one_of`` several, or lies in ``[min, max]``."""

    equals: Any = None
    one_of: list[Any] | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_value_means_equals(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else {"equals": value}

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> ArgumentMatch:
        kinds = [self.equals is not None, self.one_of is not None, self.min is not None or self.max is not None]
        if sum(kinds) != 1:
            raise ValueError("give a bare value, or a mapping with exactly one of: equals, one_of, min/max")
        return self

    def matches(self, value: Any) -> bool:
        if self.one_of is not None:
            return any(_same(value, option) for option in self.one_of)
        if self.equals is not None:
            return _same(value, self.equals)
        return _is_number(value) and _in_range(float(value), self.min, self.max)

    def describe(self) -> str:
        if self.one_of is not None:
            return "one of " + ", ".join(map(repr, self.one_of))
        return repr(self.equals) if self.equals is not None else _range_text(self.min, self.max)


class NumberExpectation(_Strict):
    """A quantity that must lie in ``[min, max]``: some number of the answer, and/or a tool's result field."""

    in_answer: bool = True
    result: str | None = Field(default=None, description="'tool.field' of the first successful call's result.")
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _is_checkable(self) -> NumberExpectation:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min={self.min} is above max={self.max}")
        if not self.in_answer and self.result is None:
            raise ValueError("in_answer is false and no result field is given: nothing to check")
        return self


class Expectation(_Strict):
    """What a correct run shows (every field optional; an empty expectation passes any finished run)."""

    tools: list[str] = Field(default_factory=list, description="Called successfully, in this order (subsequence).")
    artifacts: list[ArtifactKind] = Field(default_factory=list, description="Artifact kinds that must exist.")
    arguments: dict[str, ArgumentMatch] = Field(default_factory=dict, description="'tool.param' → expected value.")
    numbers: dict[str, NumberExpectation] = Field(default_factory=dict)
    grounded: bool = Field(default=True, description="No number in the answer lacks a source.")
    answer_contains: list[str] = Field(default_factory=list, description="Phrases the answer must contain "
                                       "(case-insensitive).")
    cites: bool = Field(default=False, description="The answer cites a retrieved passage as [source: title].")
    finished: bool = Field(default=True, description="The run ended with an answer, not at a step/time limit.")

    @field_validator("tools")
    @classmethod
    def _known_tools(cls, tools: list[str]) -> list[str]:
        unknown = [t for t in tools if t not in registry]
        if unknown:
            raise ValueError(f"unknown tool(s) {unknown}; registered: {', '.join(s.name for s in registry)}")
        return tools

    @model_validator(mode="after")
    def _references_resolve(self) -> Expectation:
        for key in self.arguments:
            _check_reference(key, self.tools, "arguments", lambda spec: spec.input_model.model_fields)
        for name, number in self.numbers.items():
            if number.result:
                _check_reference(number.result, self.tools, f"numbers.{name}.result",
                                 lambda spec: spec.result_model.model_fields)
        return self


class Task(_Strict):
    """One request of a suite and what a correct run of it shows."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    request: str = Field(min_length=1)
    expect: Expectation = Field(default_factory=Expectation)
    max_steps: int = Field(default=8, ge=1, le=50, description="Model turns allowed.")
    max_seconds: float = Field(default=300.0, gt=0, description="Wall-time cap of the run.")
    tags: list[str] = Field(default_factory=list, description="e.g. explicit, implicit, multi_step.")
    knowledge: Literal["none", "sample"] = Field(
        default="none", description="'sample': the task's workspace starts with the sample corpus ingested.")


def _check_reference(dotted: str, tools: list[str], where: str, fields: Callable[[Any], dict[str, Any]]) -> None:
    tool, _, name = dotted.partition(".")
    if tool not in tools:
        raise ValueError(f"{where}: {dotted!r} names tool {tool!r}, which is not in expect.tools {tools}")
    known = fields(registry.get(tool))
    if name not in known:
        raise ValueError(f"{where}: {tool} has no field {name!r}; it has: {', '.join(known)}")


# loading -------------------------------------------------------------------------------------------


def load_suite(path: Path | str = DEFAULT_SUITE) -> list[Task]:
    """Read and validate a suite file: a mapping with ``tasks:``, or a bare list of tasks.

    Raises:
        EvalSuiteError: unreadable YAML, a malformed task (its id and field named), or duplicate ids.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise EvalSuiteError(f"{path}: cannot read the suite: {exc}") from exc
    raw = data.get("tasks") if isinstance(data, dict) else data
    if not isinstance(raw, list) or not raw:
        raise EvalSuiteError(f"{path}: expected a non-empty list of tasks under 'tasks:'")
    tasks = [_parse_task(path, i, item) for i, item in enumerate(raw)]
    duplicates = sorted(name for name, count in Counter(t.id for t in tasks).items() if count > 1)
    if duplicates:
        raise EvalSuiteError(f"{path}: duplicate task ids: {', '.join(duplicates)}")
    return tasks


def _parse_task(path: Path, index: int, item: Any) -> Task:
    name = item.get("id", f"#{index + 1}") if isinstance(item, dict) else f"#{index + 1}"
    try:
        return Task.model_validate(item)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'task'}: {e['msg'].removeprefix('Value error, ')}"
                             for e in exc.errors())
        raise EvalSuiteError(f"{path}: task {name!r}: {problems}") from exc


def select_tasks(tasks: Sequence[Task], only: Sequence[str] | None = None) -> list[Task]:
    """The tasks whose ids are in ``only`` (all when empty), in suite order.

    Raises:
        EvalSuiteError: an id in ``only`` is not in the suite (the known ids are listed).
    """
    if not only:
        return list(tasks)
    unknown = sorted(set(only) - {t.id for t in tasks})
    if unknown:
        raise EvalSuiteError(f"no task {', '.join(unknown)} in the suite; known: {', '.join(t.id for t in tasks)}")
    return [t for t in tasks if t.id in set(only)]


# checking ------------------------------------------------------------------------------------------


class TaskResult(BaseModel):
    """One task's verdict, the expectations it failed (in words), and what the run cost."""

    id: str
    passed: bool
    failures: list[str] = Field(default_factory=list)
    expected_calls: int = Field(description="Tool calls the task expects.")
    correct_calls: int = Field(description="Expected calls made successfully with the expected arguments.")
    tool_calls: list[str] = Field(default_factory=list, description="Calls made, e.g. 'cluster_jets (failed)'.")
    answer: str = ""
    error: str | None = None
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    workspace: str | None = None

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "FAIL"


def check(task: Task, record: AgentRecord) -> TaskResult:
    """Judge one agent record against a task's expectations; every failure is a sentence."""
    expect = task.expect
    failures = [
        *_check_finished(expect, record), *_check_tools(expect, record), *_check_artifacts(expect, record),
        *_check_arguments(expect, record), *_check_numbers(expect, record), *_check_grounded(expect, record),
        *_check_answer(expect, record),
    ]
    return TaskResult(
        id=task.id, passed=not failures, failures=failures, expected_calls=len(expect.tools),
        correct_calls=_correct_calls(expect, record),
        tool_calls=[f"{c['tool']} ({'ok' if c['ok'] else 'failed'})" for c in record.tool_calls],
        answer=record.answer, error=record.error, steps=record.steps, prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens, wall_s=record.wall_s,
    )


def _ok_tools(record: AgentRecord) -> list[str]:
    return [c["tool"] for c in record.tool_calls if c["ok"]]


def _first_ok_call(record: AgentRecord, tool: str) -> dict[str, Any] | None:
    return next((c for c in record.tool_calls if c["ok"] and c["tool"] == tool), None)


def _check_finished(expect: Expectation, record: AgentRecord) -> list[str]:
    return [f"the run did not finish: {record.error}"] if expect.finished and record.error else []


def _check_tools(expect: Expectation, record: AgentRecord) -> list[str]:
    made = _ok_tools(record)
    missing = [t for t in dict.fromkeys(expect.tools) if made.count(t) < expect.tools.count(t)]
    failures = [f"expected a successful call of {t}{_failed_attempts(record, t)}" for t in missing]
    if not missing and not _is_subsequence(expect.tools, made):
        failures.append(f"expected the calls in the order {' → '.join(expect.tools)}; "
                        f"they ran as {' → '.join(made)}")
    return failures


def _failed_attempts(record: AgentRecord, tool: str) -> str:
    errors = [c["error"] for c in record.tool_calls if c["tool"] == tool and not c["ok"]]
    if errors:
        return f"; it was called {len(errors)} time(s) and failed: {_clip(errors[-1])}"
    return f"; it was never called (successful calls: {', '.join(_ok_tools(record)) or 'none'})"


def _is_subsequence(wanted: list[str], made: list[str]) -> bool:
    remaining = iter(made)
    return all(tool in remaining for tool in wanted)


def _check_artifacts(expect: Expectation, record: AgentRecord) -> list[str]:
    made = [a["kind"] for a in record.artifacts]
    return [f"expected a {kind!r} artifact; made: {', '.join(made) or 'none'}"
            for kind in dict.fromkeys(expect.artifacts) if kind not in made]


def _check_arguments(expect: Expectation, record: AgentRecord) -> list[str]:
    failures = []
    for key, match in expect.arguments.items():
        tool, _, param = key.partition(".")
        call = _first_ok_call(record, tool)
        if call is None:
            continue  # already reported as a missing tool
        value = _argument(tool, param, call["arguments"])
        if not match.matches(value):
            failures.append(f"{key} was {value!r}, expected {match.describe()}")
    return failures


def _argument(tool: str, param: str, arguments: dict[str, Any]) -> Any:
    """The argument as the tool saw it: the given value, else the tool's default."""
    if param in arguments:
        return arguments[param]
    default = registry.get(tool).input_model.model_fields[param].get_default(call_default_factory=True)
    return getattr(default, "value", default)  # enums compare by their value


def _correct_calls(expect: Expectation, record: AgentRecord) -> int:
    made = _ok_tools(record)
    correct = 0
    for i, tool in enumerate(expect.tools):
        if made.count(tool) <= expect.tools[:i].count(tool):
            continue
        call = _first_ok_call(record, tool)
        checks = [(k, m) for k, m in expect.arguments.items() if k.partition(".")[0] == tool]
        correct += all(m.matches(_argument(tool, k.partition(".")[2], call["arguments"])) for k, m in checks)
    return correct


def _check_numbers(expect: Expectation, record: AgentRecord) -> list[str]:
    failures = []
    for name, spec in expect.numbers.items():
        wanted = _range_text(spec.min, spec.max)
        values = [float(n.replace(",", "")) for n in record.numbers]
        if spec.in_answer and not any(_in_range(v, spec.min, spec.max) for v in values):
            failures.append(f"{name}: no number in the answer lies in {wanted} (the answer has: "
                            f"{', '.join(record.numbers) or 'no numbers'})")
        if spec.result:
            value = _result_value(record, spec.result)
            if value is None or not _is_number(value) or not _in_range(float(value), spec.min, spec.max):
                failures.append(f"{name}: {spec.result} was {value!r}, expected {wanted}")
    return failures


def _result_value(record: AgentRecord, dotted: str) -> Any:
    tool, _, field = dotted.partition(".")
    for event in record.events:
        if event.get("type") == "tool_result" and event.get("tool") == tool and event.get("ok"):
            return (event.get("result") or {}).get(field)
    return None


def _check_grounded(expect: Expectation, record: AgentRecord) -> list[str]:
    if expect.grounded and record.unsupported:
        return [f"the answer has numbers no tool result supports: {', '.join(record.unsupported)}"]
    return []


def _check_answer(expect: Expectation, record: AgentRecord) -> list[str]:
    answer = (record.answer or "").casefold()
    failures = [f"the answer does not mention {p!r}" for p in expect.answer_contains if p.casefold() not in answer]
    if expect.cites and not any(c.casefold() in answer for c in _retrieved_citations(record)):
        failures.append("the answer cites no retrieved passage as [source: title]")
    return failures


def _retrieved_citations(record: AgentRecord) -> list[str]:
    """Citations of every passage search_knowledge returned in the run."""
    return [hit.get("citation", "") for event in record.events
            if event.get("type") == "tool_result" and event.get("tool") == "search_knowledge" and event.get("ok")
            for hit in (event.get("result") or {}).get("hits", [])]


def _same(value: Any, expected: Any) -> bool:
    if _is_number(value) and _is_number(expected):
        return math.isclose(float(value), float(expected), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(value, list) and isinstance(expected, list):
        return len(value) == len(expected) and all(map(_same, value, expected))
    if isinstance(value, dict) and isinstance(expected, dict):
        return value.keys() == expected.keys() and all(_same(value[k], expected[k]) for k in value)
    return value == expected


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _in_range(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def _range_text(low: float | None, high: float | None) -> str:
    if low is None:
        return f"≤ {high:g}"
    return f"≥ {low:g}" if high is None else f"[{low:g}, {high:g}]"


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# running -------------------------------------------------------------------------------------------


class SuiteReport(BaseModel):
    """One backend's results over a suite, with the aggregates people compare backends by."""

    backend: str
    suite: str = ""
    tasks: list[TaskResult] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def pass_rate(self) -> float:
        return sum(t.passed for t in self.tasks) / len(self.tasks) if self.tasks else 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def tool_call_accuracy(self) -> float:
        """Expected tool calls made successfully with the expected arguments, over all expected calls."""
        expected = sum(t.expected_calls for t in self.tasks)
        return sum(t.correct_calls for t in self.tasks) / expected if expected else 1.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def mean_steps(self) -> float:
        return sum(t.steps for t in self.tasks) / len(self.tasks) if self.tasks else 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def prompt_tokens(self) -> int:
        return sum(t.prompt_tokens for t in self.tasks)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def completion_tokens(self) -> int:
        return sum(t.completion_tokens for t in self.tasks)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def wall_s(self) -> float:
        return round(sum(t.wall_s for t in self.tasks), 3)


def run_suite(
    tasks: Sequence[Task],
    backend: str | ChatBackend | None = None,
    workspace_dir: Path | str = "eval-runs",
    progress: ProgressCallback | None = None,
    *,
    suite: str = "",
    max_seconds: float | None = None,
    tools_per_request: int = 5,
) -> SuiteReport:
    """Run every task through one backend, each in a fresh workspace under ``workspace_dir``.

    Args:
        tasks: from :func:`load_suite` (optionally :func:`select_tasks`).
        backend: a spec for :func:`agent.get_backend` ('embedded:1.5b', 'openai', None: the default) or a
            backend object; it is made once and shared by all tasks.
        workspace_dir: parent of the per-task workspaces (``<task id>-<random>``; never reused or deleted).
        progress: called after each task with its result, the count done and the total.
        suite: a name for the report (e.g. the suite file's stem).
        max_seconds: wall-time cap per task, overriding each task's ``max_seconds``.
        tools_per_request: tools offered to the model per request (the Assistant's selector).

    Returns:
        The report; a task whose backend raised is a failed task with the exception in its failures.
    """
    chat = get_backend(backend) if backend is None or isinstance(backend, str) else backend
    root = Path(workspace_dir)
    root.mkdir(parents=True, exist_ok=True)
    report = SuiteReport(backend=chat.name, suite=suite)
    for done, task in enumerate(tasks, start=1):
        result = _run_task(task, chat, root, max_seconds or task.max_seconds, tools_per_request)
        report.tasks.append(result)
        if progress:
            progress(result, done, len(tasks))
    return report


def _run_task(task: Task, backend: ChatBackend, root: Path, max_seconds: float, tools_per_request: int) -> TaskResult:
    workspace = Workspace(tempfile.mkdtemp(prefix=f"{task.id}-", dir=root))
    if task.knowledge == "sample":
        shutil.copytree(_sample_knowledge(root), workspace.root / "knowledge")
    assistant = Assistant(backend=backend, workspace=workspace, max_steps=task.max_steps, max_seconds=max_seconds,
                          tools_per_request=tools_per_request)
    start = time.perf_counter()
    try:
        record = assistant.ask(task.request)
    except Exception as exc:  # a crashing backend or loop fails this task only; the suite goes on
        record = _crashed(assistant, task, exc, time.perf_counter() - start)
    result = check(task, record)
    result.workspace = str(workspace.root)
    return result


def _sample_knowledge(root: Path) -> Path:
    """A knowledge base holding the sample corpus, ingested once per eval folder and copied per task."""
    home = root / ".sample-knowledge"
    KnowledgeBase.open(home).ingest(sample_corpus())
    return home / "knowledge"


def _crashed(assistant: Assistant, task: Task, exc: Exception, wall_s: float) -> AgentRecord:
    """The partial record of a run that raised, with the exception as its error."""
    partial = assistant.records[-1] if assistant.records else None
    record = partial or AgentRecord(session=assistant.session, backend=assistant.backend.name, request=task.request)
    record.error = f"{type(exc).__name__}: {exc}"
    record.wall_s, record.steps = round(wall_s, 3), max(record.steps, 1)
    return record


# reporting -----------------------------------------------------------------------------------------


def format_report(reports: SuiteReport | Sequence[SuiteReport]) -> str:
    """A Markdown report: one summary row per backend, then each backend's tasks with their failures."""
    reports = [reports] if isinstance(reports, SuiteReport) else list(reports)
    suite = reports[0].suite if reports else ""
    lines = [f"## physagent eval{f' — suite {suite}' if suite else ''}", "",
             "| backend | passed | pass rate | tool-call accuracy | mean steps | prompt tokens | completion tokens "
             "| wall time |", "|---|---|---|---|---|---|---|---|"]
    lines += [_summary_row(r) for r in reports]
    for report in reports:
        lines += ["", f"### {report.backend}", "", "| task | result | steps | tokens in/out | wall s | failures |",
                  "|---|---|---|---|---|---|"]
        lines += [_task_row(t) for t in report.tasks]
    return "\n".join(lines) + "\n"


def _summary_row(r: SuiteReport) -> str:
    passed = sum(t.passed for t in r.tasks)
    return (f"| {r.backend} | {passed}/{len(r.tasks)} | {r.pass_rate:.0%} | {r.tool_call_accuracy:.0%} "
            f"| {r.mean_steps:.1f} | {r.prompt_tokens:,} | {r.completion_tokens:,} | {r.wall_s:.1f} s |")


def _task_row(t: TaskResult) -> str:
    failures = "<br>".join(_cell(f) for f in t.failures)
    return (f"| {t.id} | {'pass' if t.passed else '**FAIL**'} | {t.steps} | {t.prompt_tokens:,}/"
            f"{t.completion_tokens:,} | {t.wall_s:.1f} | {failures} |")


def _cell(text: str) -> str:
    return re.sub(r"\s+", " ", _clip(text, 300)).replace("|", "\\|")
