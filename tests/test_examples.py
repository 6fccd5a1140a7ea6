"""The worked-example bank (agent/examples/*.yaml): every plan checks against the current tools.

The embedded model copies the examples closest to a request, so a wrong example is a wrong answer:
these tests run each example's plan through the same checker as a model's plan, so the bank cannot
rot when a tool changes.
"""

from __future__ import annotations

import typing
from pathlib import Path

import numpy as np
import pytest
import yaml
from pydantic import BaseModel

from physagent.agent.claims import find_placeholders, mislabelled, result_field_type
from physagent.agent.examples import ExampleBank, WorkedExample, default_bank
from physagent.agent.plan import PlanError, check_plan, parse_plan
from physagent.tools import Artifact, registry

EVALS = Path(__file__).resolve().parents[1] / "evals"
MAX_EVAL_SIMILARITY = 0.9


@pytest.fixture(scope="module")
def bank() -> ExampleBank:
    return default_bank()


def _label(example: WorkedExample) -> str:
    return f"{example.source}: {example.request!r}"


def _has_computed_values(tool: str) -> bool:
    """Whether a tool's result holds numbers (or a dict of them) an answer should quote by placeholder."""
    numeric = {int, float, dict}
    for info in registry.get(tool).result_model.model_fields.values():
        kinds = {info.annotation, *typing.get_args(info.annotation)}
        if Artifact in kinds:
            continue
        if kinds & numeric or any(typing.get_origin(k) is dict for k in kinds):
            return True
    return False


def test_the_bank_is_large_and_covers_every_registered_tool(bank: ExampleBank) -> None:
    """At least 120 examples, and each registered tool appears in one of them."""
    assert len(bank.examples) >= 120, len(bank.examples)
    used = {tool for example in bank.examples for tool in example.tools}
    missing = sorted(spec.name for spec in registry if spec.name not in used)
    assert not missing, f"tools without a worked example: {missing}"


def test_every_example_plan_passes_the_plan_checker(bank: ExampleBank) -> None:
    """Each example's steps and answer pass check_plan with all tools offered and its context's artifacts."""
    offered = [spec.name for spec in registry]
    problems = []
    for example in bank.examples:
        artifacts = {artifact["id"]: artifact["kind"] for artifact in example.context}
        try:
            check_plan(parse_plan({"steps": example.steps, "answer": example.answer}), offered, artifacts)
        except PlanError as error:
            problems.append(f"{_label(example)}: {'; '.join(error.problems)}")
    assert not problems, "\n".join(problems)


def _whole_container(tool: str, path: str) -> bool:
    """Whether a placeholder names a whole list, dict or model field: the loop shows single values only."""
    annotation = result_field_type(registry.get(tool).result_model, path)
    if annotation is None or "." in path:  # absent (the plan checker says so) or a path into a value
        return False
    container = typing.get_origin(annotation) in (list, dict)
    return container or (isinstance(annotation, type) and issubclass(annotation, BaseModel))


def test_answers_label_placeholders_correctly_and_quote_computed_values(bank: ExampleBank) -> None:
    """No placeholder sits after the wrong quantity word or names a whole list; computed values are quoted."""
    problems = []
    for example in bank.examples:
        problems += [f"{_label(example)}: {p}" for p in mislabelled(example.answer)]
        for placeholder in find_placeholders(example.answer):
            number = placeholder.step
            if number is not None and 0 < number <= len(example.steps):
                tool = example.steps[number - 1]["tool"]
                if tool in registry and _whole_container(tool, placeholder.path):
                    problems.append(f"{_label(example)}: {placeholder.text} is a list or mapping, not one value")
        computes = any(_has_computed_values(tool) for tool in example.tools if tool in registry)
        if not example.answer.strip() and (computes or not example.steps):  # a search may leave it to the loop
            problems.append(f"{_label(example)}: no answer")
        if computes and not find_placeholders(example.answer):
            problems.append(f"{_label(example)}: the answer quotes no result by placeholder")
    assert not problems, "\n".join(problems)


def test_examples_stay_clear_of_the_eval_requests(bank: ExampleBank) -> None:
    """Every eval request has cosine similarity at most 0.9 to every example request."""
    requests = []
    for suite in sorted(EVALS.glob("*.yaml")):
        tasks = (yaml.safe_load(suite.read_text()) or {}).get("tasks", [])
        requests += [(suite.name, task["request"]) for task in tasks]
    assert requests, f"no eval requests found under {EVALS}"
    too_close = []
    for suite, request in requests:
        similarities = bank.similarities(request)
        nearest = int(np.argmax(similarities))
        if similarities[nearest] > MAX_EVAL_SIMILARITY:
            too_close.append(f"{suite}: {request!r} ~ {_label(bank.examples[nearest])} "
                             f"(cosine {similarities[nearest]:.3f})")
    assert not too_close, "\n".join(too_close)


def test_example_requests_are_unique(bank: ExampleBank) -> None:
    """No request appears twice in the bank (case and surrounding space ignored)."""
    seen: dict[str, str] = {}
    duplicates = []
    for example in bank.examples:
        key = " ".join(example.request.lower().split())
        if key in seen:
            duplicates.append(f"{_label(example)} repeats {seen[key]}")
        seen.setdefault(key, _label(example))
    assert not duplicates, "\n".join(duplicates)


_SMALL_SAMPLE = 200  # events per example: enough for every program's physics checks, small enough for a test


def _programs(bank: ExampleBank) -> list[WorkedExample]:
    """Examples whose run_python step reads data made by their own earlier steps (not a session artifact)."""
    return [e for e in bank.examples if e.program and not e.context]


def _run_example_program(example: WorkedExample, workspace: object) -> object:
    from physagent.tools import call_tool

    made: dict[int, object] = {}
    for number, step in enumerate(example.steps, start=1):
        arguments = {k: _resolved(v, made) for k, v in step["arguments"].items()}
        if step["tool"] == "generate_events":
            arguments |= {"n_events": min(arguments["n_events"], _SMALL_SAMPLE), "seed": 11}
        outcome = call_tool(step["tool"], arguments, workspace=workspace)
        if step["tool"] == "run_python":
            return outcome.result
        made[number] = outcome.result
    raise AssertionError(f"{_label(example)} has no run_python step")


def _resolved(value: object, made: dict[int, object]) -> object:
    if isinstance(value, list):
        return [_resolved(v, made) for v in value]
    if isinstance(value, str) and value.startswith("$"):
        number, _, field = value[1:].partition(".")
        return getattr(made[int(number)], field).id
    return value


@pytest.mark.slow
def test_every_worked_program_runs_on_real_events_and_passes_its_own_checks(bank: ExampleBank, workspace) -> None:
    """The code writer is shown the closest worked program to adapt: each one runs in the sandbox on real Pythia
    events (a small sample) and prints its declared values within its declared physics checks."""
    programs = _programs(bank)
    assert len(programs) >= 10
    failed = []
    for example in programs:
        result = _run_example_program(example, workspace)
        if not result.ok:
            failed.append(f"{_label(example)}: {result.report}")
    assert not failed, "\n".join(failed)
