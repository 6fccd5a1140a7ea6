r"""Judging one run: an :class:`~physagent.agent.AgentRecord` against a task's expectations.

Every failure is a sentence and has a kind from :data:`~physagent.evals.report.FAILURE_KINDS`; the rules:

- the run did not finish: ``limit_reached`` when the loop stopped at max_steps or max_seconds,
  ``gave_up_after_error`` when it stopped a repeated failing call, ``invalid_plan`` when every plan the
  model submitted failed the plan checker, else ``crash``;
- ``refusal: true``: any artifact made in the judged request, or an answer without refusal wording
  (:func:`refuses`), is ``not_refused``;
- an expected tool without a successful call: ``code_failure`` when it is ``run_python`` and every attempt
  failed, ``gave_up_after_error`` for another tool that was tried and failed, ``wrongly_refused`` when it
  was never tried, no call failed and the answer refuses, else ``wrong_tool`` (also for calls out of order
  and a missing artifact kind);
- an argument unlike the expected value: ``bad_argument``;
- ``unsupported`` numbers in the record: ``invented_number``; ``mislabelled`` ones: ``wrong_quantity``;
- a checked value (answer number, result field, recomputed artifact value) missing or off: ``wrong_number``;
- a missing phrase or citation: ``incomplete_answer``.

Only the judged (last) request is judged; the history turns and the visible setup before it provide the
artifacts an argument may be expected to reuse (``earlier``), and the results (history) and artifacts
(``turn: any``: history and setup) a number may come from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from physagent.agent import AgentRecord
from physagent.agent.claims import resolve_path
from physagent.evals.measures import MeasureError, measure
from physagent.evals.report import TaskResult
from physagent.evals.schema import ArtifactCheck, Expectation, Task, in_range, is_number, range_text
from physagent.tools import registry

__all__ = ["Failure", "check", "refuses"]

_REFUSAL = re.compile(
    r"\b(?:cannot|can ?not|can't|can’t|unable|impossible|invalid|sorry|not (?:possible|supported|available|allowed|"
    r"able|valid|physical|found|exist)|(?:no|not a) (?:such )?(?:tool|process|option)|(?:do|does|did)(?: not|n't|n’t) "
    r"(?:have|exist|support|offer|provide)|(?:is|are)(?: not|n't|n’t) (?:possible|supported|available|allowed|"
    r"valid|offered)|must be|out of (?:range|bounds)|exceeds?|too (?:large|many|big|high|low|small)|at (?:least|most)|"
    r"greater than|less than|could(?: not|n't|n’t)|failed|won't|beyond|outside|only (?:supports?|offers?|provides?|"
    r"has|have|takes?|accepts?)|refuse)\b", re.IGNORECASE)
_PERCENT = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)\s*%")


def refuses(answer: str) -> bool:
    """Whether an answer says the request cannot be done (wording such as 'cannot', 'must be at least',
    'not supported', 'no tool', 'exceeds')."""
    return bool(_REFUSAL.search(answer or ""))


@dataclass(frozen=True)
class Failure:
    """One unmet expectation: its taxonomy kind and a sentence saying what was expected and what happened."""

    kind: str
    message: str


@dataclass(frozen=True)
class _Run:
    """The judged record and what came before it."""

    record: AgentRecord
    history: Sequence[AgentRecord] = ()
    setup: Sequence[Mapping[str, str]] = ()

    @property
    def earlier(self) -> dict[str, str]:
        """Artifact ids made before the judged request (setup, history turns) → their kinds."""
        made = [*self.setup, *(a for r in self.history for a in r.artifacts)]
        return {a["id"]: a["kind"] for a in made}

    def artifact_groups(self, turn: str) -> list[list[tuple[Mapping[str, Any], str | None]]]:
        """(artifact, the tool that made it) per turn: the judged request first, then (turn 'any') the
        history turns newest first, then the setup."""
        groups: list[list[tuple[Mapping[str, Any], str | None]]] = [
            [(a, _maker(self.record, a["id"])) for a in self.record.artifacts]]
        if turn == "any":
            groups += [[(a, _maker(r, a["id"])) for a in r.artifacts] for r in reversed(self.history)]
            groups.append([(a, a.get("tool")) for a in self.setup])
        return groups


def check(task: Task, record: AgentRecord, history: Sequence[AgentRecord] = (),
          setup: Sequence[Mapping[str, str]] = ()) -> TaskResult:
    """Judge the last request of a task; ``history`` holds the records of the earlier turns and ``setup`` the
    setup artifacts the agent could see (``id``, ``kind``, ``path``, ``tool`` each)."""
    run = _Run(record, history, setup)
    expect = task.expect
    measured = _measure_all(expect, run)
    failures = [
        *_check_finished(expect, record), *_check_refusal(expect, record), *_check_tools(expect, record),
        *_check_attempted(expect, record),
        *_check_artifacts(expect, record), *_check_arguments(expect, run), *_check_measured(expect, measured),
        *_check_numbers(expect, run, measured), *_check_grounded(expect, record), *_check_answer(expect, record),
    ]
    turns = [*history, record]
    return TaskResult(
        id=task.id, suite=task.suite, tags=task.tags, mode=record.mode, passed=not failures,
        failures=[f.message for f in failures], failure_kinds=[f.kind for f in failures],
        expected_calls=len(expect.tools), correct_calls=_correct_calls(expect, run),
        tool_calls=[_call_text(c) for c in record.tool_calls],
        history_calls=[f"turn {i}: {_call_text(c)}" for i, r in enumerate(history, 1) for c in r.tool_calls],
        answer=record.answer, error=record.error, steps=sum(r.steps for r in turns),
        prompt_tokens=sum(r.prompt_tokens for r in turns), completion_tokens=sum(r.completion_tokens for r in turns),
        wall_s=round(sum(r.wall_s for r in turns), 3),
    )


def _call_text(call: dict[str, Any]) -> str:
    return f"{call['tool']} ({'ok' if call['ok'] else 'failed'})"


def _tool_of(call: dict[str, Any]) -> str:
    """The registered tool a call ran: the agent's write_code is run_python with code the model wrote."""
    return "run_python" if call["tool"] == "write_code" else str(call["tool"])


def _ok_tools(record: AgentRecord) -> list[str]:
    return [_tool_of(c) for c in record.tool_calls if c["ok"]]


def _first_ok_call(record: AgentRecord, tool: str) -> dict[str, Any] | None:
    return next((c for c in record.tool_calls if c["ok"] and _tool_of(c) == tool), None)


# finishing and refusing ----------------------------------------------------------------------------


def _check_finished(expect: Expectation, record: AgentRecord) -> list[Failure]:
    if not expect.finished or not record.error:
        return []
    if record.error.startswith("stopped after"):
        kind = "limit_reached"
    elif record.error.startswith("the model repeated a failing call"):
        kind = "gave_up_after_error"
    elif record.error.startswith("the model's plan could not run"):
        kind = "invalid_plan"
    else:
        kind = "crash"
    return [Failure(kind, f"the run did not finish: {record.error}")]


def _check_refusal(expect: Expectation, record: AgentRecord) -> list[Failure]:
    if not expect.refusal or record.error:
        return []
    failures = []
    if record.artifacts:
        made = ", ".join(f"{a['id']} ({a['kind']})" for a in record.artifacts)
        failures.append(Failure("not_refused", f"expected a refusal, but the run made {made} with "
                                               f"{', '.join(dict.fromkeys(_ok_tools(record)))}"))
    if not refuses(record.answer):
        failures.append(Failure("not_refused", f"expected a refusal, but the answer does not say it cannot: "
                                               f"{_clip(record.answer)!r}"))
    return failures


# tools, artifacts, arguments -----------------------------------------------------------------------


def _check_tools(expect: Expectation, record: AgentRecord) -> list[Failure]:
    made = _ok_tools(record)
    missing = [t for t in dict.fromkeys(expect.tools) if made.count(t) < expect.tools.count(t)]
    failures = [_missing_tool(t, record) for t in missing]
    if not missing and not _is_subsequence(expect.tools, made):
        failures.append(Failure("wrong_tool", f"expected the calls in the order {' → '.join(expect.tools)}; "
                                              f"they ran as {' → '.join(made)}"))
    return failures


def _check_attempted(expect: Expectation, record: AgentRecord) -> list[Failure]:
    called = {_tool_of(c) for c in record.tool_calls}
    return [Failure("wrong_tool", f"expected a call of {tool} (its own check gives the answer); it was never "
                                  f"called (calls: {', '.join(_call_text(c) for c in record.tool_calls) or 'none'})")
            for tool in expect.attempted if tool not in called]


def _missing_tool(tool: str, record: AgentRecord) -> Failure:
    errors = [c["error"] for c in record.tool_calls if _tool_of(c) == tool and not c["ok"]]
    if errors:
        kind = "code_failure" if tool == "run_python" else "gave_up_after_error"
        return Failure(kind, f"expected a successful call of {tool}; it was called {len(errors)} time(s) and "
                             f"failed: {_clip(errors[-1] or '')}")
    any_failed = any(not c["ok"] for c in record.tool_calls)
    kind = "wrongly_refused" if not any_failed and refuses(record.answer) else "wrong_tool"
    return Failure(kind, f"expected a successful call of {tool}; it was never called (successful calls: "
                         f"{', '.join(_ok_tools(record)) or 'none'})")


def _is_subsequence(wanted: list[str], made: list[str]) -> bool:
    remaining = iter(made)
    return all(tool in remaining for tool in wanted)


def _check_artifacts(expect: Expectation, record: AgentRecord) -> list[Failure]:
    made = [a["kind"] for a in record.artifacts]
    return [Failure("wrong_tool", f"expected a {kind!r} artifact; made: {', '.join(made) or 'none'}")
            for kind in dict.fromkeys(expect.artifacts) if kind not in made]


def _check_arguments(expect: Expectation, run: _Run) -> list[Failure]:
    failures = []
    for key, match in expect.arguments.items():
        tool, _, param = key.partition(".")
        call = _first_ok_call(run.record, tool)
        if call is None:
            continue  # already reported as a missing tool
        value = _argument(tool, param, call["arguments"])
        if not match.matches(value, run.earlier):
            failures.append(Failure("bad_argument", f"{key} was {value!r}, expected {match.describe()}"))
    return failures


def _argument(tool: str, param: str, arguments: dict[str, Any]) -> Any:
    """The argument as the tool saw it: the given value, else the tool's default."""
    if param in arguments:
        return arguments[param]
    default = registry.get(tool).input_model.model_fields[param].get_default(call_default_factory=True)
    return getattr(default, "value", default)  # enums compare by their value


def _correct_calls(expect: Expectation, run: _Run) -> int:
    made = _ok_tools(run.record)
    correct = 0
    for i, tool in enumerate(expect.tools):
        if made.count(tool) <= expect.tools[:i].count(tool):
            continue
        call = _first_ok_call(run.record, tool)
        checks = [(k, m) for k, m in expect.arguments.items() if k.partition(".")[0] == tool]
        correct += call is not None and all(
            m.matches(_argument(tool, k.partition(".")[2], call["arguments"]), run.earlier) for k, m in checks)
    return correct


# values: recomputed from artifacts, from results, in the answer -----------------------------------------


def _measure_all(expect: Expectation, run: _Run) -> dict[str, tuple[float | None, str]]:
    """Each artifact check's recomputed value, or None and why it could not be computed."""
    return {name: _measure_one(spec, run) for name, spec in expect.artifact_checks.items()}


def _measure_one(spec: ArtifactCheck, run: _Run) -> tuple[float | None, str]:
    artifact = _pick_artifact(spec, run)
    if artifact is None:
        return None, f"no {spec.kind} artifact{f' made by {spec.made_by}' if spec.made_by else ''} to recompute from"
    try:
        return measure(spec.measure, artifact["path"], spec.field), ""
    except MeasureError as exc:
        return None, f"{artifact['id']}: {exc}"


def _pick_artifact(spec: ArtifactCheck, run: _Run) -> Mapping[str, Any] | None:
    for group in run.artifact_groups(spec.turn):
        candidates = [a for a, maker in group if a["kind"] == spec.kind and spec.made_by in (None, maker)]
        if candidates:
            return candidates[-1] if spec.pick == "last" else candidates[0]
    return None


def _maker(record: AgentRecord, artifact_id: str) -> str | None:
    """The tool whose step made an artifact (from the record's events)."""
    steps = {e.get("step"): e.get("tool") for e in record.events if e.get("type") == "tool_result" and e.get("ok")}
    step = next((e.get("step") for e in record.events if e.get("type") == "artifact" and e.get("id") == artifact_id),
                None)
    return steps.get(step)


def _check_measured(expect: Expectation, measured: dict[str, tuple[float | None, str]]) -> list[Failure]:
    failures = []
    for name, spec in expect.artifact_checks.items():
        value, problem = measured[name]
        if value is None:
            failures.append(Failure("wrong_tool", f"{name}: {problem}"))
        elif spec.equals is not None and not _close(value, spec.equals, spec.rel_tol, 0.0):
            failures.append(Failure("wrong_number", f"{name}: {spec.describe()} is {value:g}, expected "
                                                    f"{spec.equals:g}"))
        elif not in_range(value, spec.min, spec.max):
            failures.append(Failure("wrong_number", f"{name}: {spec.describe()} is {value:g}, expected "
                                                    f"{range_text(spec.min, spec.max)}"))
    return failures


def _check_numbers(expect: Expectation, run: _Run, measured: dict[str, tuple[float | None, str]]) -> list[Failure]:
    failures = []
    answer = _answer_values(run.record)
    for name, spec in expect.numbers.items():
        wanted = range_text(spec.min, spec.max) if spec.min is not None or spec.max is not None else ""
        if spec.result:
            value = _result_value([run.record], spec.result)
            if value is None or not is_number(value) or not in_range(float(value), spec.min, spec.max):
                failures.append(Failure("wrong_number", f"{name}: {spec.result} was {value!r}, expected {wanted}"))
        if spec.source is not None:
            failures += _check_from(name, spec.source, spec, run, measured, answer)
        elif spec.in_answer and not any(in_range(v, spec.min, spec.max) for v in answer):
            failures.append(Failure("wrong_number", f"{name}: no number in the answer lies in {wanted} (the answer "
                                                    f"has: {_listed(run.record.numbers)})"))
    return failures


def _check_from(name: str, source: str, spec: Any, run: _Run, measured: dict[str, tuple[float | None, str]],
                answer: list[float]) -> list[Failure]:
    if source in measured:
        target, problem = measured[source]
    else:
        value = _result_value([run.record, *reversed(run.history)], source)
        target, problem = (float(value), "") if is_number(value) else (None, f"{source} was {value!r}")
    if target is None:
        return [Failure("wrong_number", f"{name}: no reference value: {problem}")]
    failures = []
    if not in_range(target, spec.min, spec.max):
        failures.append(Failure("wrong_number", f"{name}: {source} is {target:g}, expected "
                                                f"{range_text(spec.min, spec.max)}"))
    if spec.in_answer and not any(_close(v, target, spec.rel_tol, spec.abs_tol) for v in answer):
        failures.append(Failure("wrong_number", f"{name}: no number in the answer equals {source} = {target:.4g} "
                                                f"within {spec.rel_tol:.0%} (the answer has: "
                                                f"{_listed(run.record.numbers)})"))
    return failures


def _listed(numbers: list[str]) -> str:
    return ", ".join(dict.fromkeys(numbers)) or "no numbers"


def _close(value: float, target: float, rel_tol: float, abs_tol: float) -> bool:
    return abs(value - target) <= max(rel_tol * abs(target), abs_tol)


def _answer_values(record: AgentRecord) -> list[float]:
    """Every number of the answer, and each percentage also as its fraction (65 % → 0.65)."""
    values = []
    for text in record.numbers:
        try:
            values.append(float(text.replace(",", "")))
        except ValueError:
            continue
    values += [float(m.group(1).replace(",", "")) / 100 for m in _PERCENT.finditer(record.answer or "")]
    return values


def _result_value(records: Sequence[AgentRecord], dotted: str) -> Any:
    """A field (a dotted path into the result) of the first successful call of the tool, in the first record
    that has one."""
    tool, _, path = dotted.partition(".")
    for record in records:
        for event in record.events:
            if event.get("type") == "tool_result" and event.get("tool") == tool and event.get("ok"):
                try:
                    return resolve_path(event.get("result") or {}, path)
                except KeyError:
                    return None
    return None


# grounding and wording -----------------------------------------------------------------------------


def _check_grounded(expect: Expectation, record: AgentRecord) -> list[Failure]:
    if not expect.grounded:
        return []
    failures = []
    if record.unsupported:
        failures.append(Failure("invented_number", "the answer has numbers no tool result supports: "
                                                   f"{', '.join(record.unsupported)}"))
    if record.mislabelled:
        failures.append(Failure("wrong_quantity", "the answer labels values as the wrong quantity: "
                                                  f"{'; '.join(record.mislabelled)}"))
    return failures


def _check_answer(expect: Expectation, record: AgentRecord) -> list[Failure]:
    answer = (record.answer or "").casefold()
    failures = [Failure("incomplete_answer", f"the answer does not mention {p!r}")
                for p in expect.answer_contains if p.casefold() not in answer]
    cited = [c for c in _retrieved_citations(record) if c and c.casefold() in answer]
    if (expect.cites or expect.cite_source) and not cited:
        failures.append(Failure("incomplete_answer", "the answer cites no retrieved passage as [source: title]"))
    elif expect.cite_source and not any(expect.cite_source.casefold() in c.casefold() for c in cited):
        failures.append(Failure("incomplete_answer", f"the answer cites {', '.join(cited)}, none of them from "
                                                     f"{expect.cite_source!r}"))
    return failures


def _retrieved_citations(record: AgentRecord) -> list[str]:
    """Citations of every passage search_knowledge returned in the run."""
    return [hit.get("citation", "") for event in record.events
            if event.get("type") == "tool_result" and event.get("tool") == "search_knowledge" and event.get("ok")
            for hit in (event.get("result") or {}).get("hits", [])]


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
