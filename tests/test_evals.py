"""The eval suite and its runner: the suite file is valid, checks fail for the right reasons, runs never crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from physagent.agent import AgentRecord
from physagent.agent.backends import ModelTurn
from physagent.agent.backends.scripted import ScriptedBackend, answer, call, last_artifact
from physagent.evals import (
    DEFAULT_SUITE,
    EvalSuiteError,
    Task,
    check,
    format_report,
    load_suite,
    run_suite,
    select_tasks,
)

PIPELINE = {
    "id": "pipeline",
    "request": "Generate 300 ttbar events with MPI off, cluster R=1.0 jets, histogram the leading-jet mass, "
               "plot it and give the peak.",
    "expect": {
        "tools": ["generate_events", "cluster_jets", "histogram", "plot"],
        "artifacts": ["events", "jets", "histogram", "plot"],
        "arguments": {"generate_events.process": "ttbar", "generate_events.n_events": 300,
                      "generate_events.mpi": False, "cluster_jets.radius": 1.0},
        "numbers": {"peak_gev": {"in_answer": True, "min": 150, "max": 200, "result": "histogram.peak"}},
    },
}


def _sigma(messages: list[dict[str, Any]]) -> float:
    observation = next(m["content"] for m in reversed(messages) if m["content"].startswith("generate_events OK"))
    return json.loads(observation[observation.index("{"):])["sigma_pb"]


def _good_record(**changes: Any) -> AgentRecord:
    """A record that meets every expectation of PIPELINE; ``changes`` spoil one thing at a time."""
    calls = [("generate_events", {"process": "ttbar", "n_events": 300, "mpi": False}),
             ("cluster_jets", {"events": "ev-0123456789", "radius": 1.0}),
             ("histogram", {"source": "jet-0123456789", "field": "jets.mass", "object_index": 0}),
             ("plot", {"histograms": ["hist-0123456789"]})]
    record = AgentRecord(session="s-test", backend="test", request=PIPELINE["request"],
                         answer="The leading-jet mass peaks at 175 GeV.", numbers=["175"], steps=5)
    for tool, arguments in calls:
        record.add_call(tool, arguments, ok=True, call_id=f"c-{tool}")
    record.artifacts = [{"id": f"{k[:4]}-0123456789", "kind": k, "path": "", "summary": ""}
                        for k in ("events", "jets", "histogram", "plot")]
    record.events = [{"type": "tool_result", "tool": "histogram", "ok": True, "result": {"peak": 175.0}}]
    return record.model_copy(update=changes)


def test_the_basic_suite_has_at_least_15_valid_tasks_with_unique_ids() -> None:
    """evals/basic.yaml loads, validates, and names each task once."""
    tasks = load_suite(DEFAULT_SUITE)
    ids = [t.id for t in tasks]
    assert len(tasks) >= 15 and len(set(ids)) == len(ids)
    assert {"explicit", "implicit", "multi_step"} <= {tag for t in tasks for tag in t.tags}
    assert sum(len(t.expect.tools) > 1 for t in tasks) >= 5 and sum(bool(t.expect.numbers) for t in tasks) >= 3


def test_every_suite_task_is_cheap_and_says_so_in_the_request() -> None:
    """Each generating task expects MPI off (and asks for it in words) and never expects more than 500 events."""
    for task in load_suite():
        if "generate_events" not in task.expect.tools:
            continue
        assert task.expect.arguments["generate_events.mpi"].equals is False, task.id
        assert any(w in task.request for w in ("MPI", "multi-parton", "underlying event")), task.id
        n_events = task.expect.arguments.get("generate_events.n_events")
        assert n_events is None or (n_events.equals or 0) <= 500, task.id


def test_a_malformed_task_is_reported_with_its_id_and_field(tmp_path: Path) -> None:
    """A misspelt parameter, an unknown tool and a duplicate id each give an error naming the culprit."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  - id: typo\n    request: Generate events\n    expect:\n      tools: [generate_events]\n"
                   "      arguments: {generate_events.nevents: 300}\n")
    with pytest.raises(EvalSuiteError, match=r"task 'typo': expect: arguments: generate_events has no field 'nevents'"):
        load_suite(bad)
    bad.write_text("tasks:\n  - {id: coffee, request: Make coffee, expect: {tools: [make_coffee]}}\n")
    with pytest.raises(EvalSuiteError, match=r"task 'coffee': expect\.tools: .*unknown tool\(s\) \['make_coffee'\]"):
        load_suite(bad)
    bad.write_text("tasks:\n  - {id: twice, request: a}\n  - {id: twice, request: b}\n")
    with pytest.raises(EvalSuiteError, match="duplicate task ids: twice"):
        load_suite(bad)


def test_selecting_an_unknown_task_id_lists_the_known_ones() -> None:
    """--only with a typo says which ids exist."""
    tasks = load_suite()
    assert [t.id for t in select_tasks(tasks, ["dy_explicit"])] == ["dy_explicit"]
    with pytest.raises(EvalSuiteError, match="no task dy_explict in the suite; known: dy_explicit"):
        select_tasks(tasks, ["dy_explict"])


def test_check_passes_a_record_that_meets_every_expectation() -> None:
    """A correct run passes, and all its expected calls count as correct."""
    result = check(Task.model_validate(PIPELINE), _good_record())
    assert result.passed and result.failures == [] and (result.correct_calls, result.expected_calls) == (4, 4)


@pytest.mark.parametrize(("spoil", "reason"), [
    ("missing_tool", "expected a successful call of plot; it was called 1 time(s) and failed: plot: no such histogram"),
    ("wrong_argument", "generate_events.n_events was 1000, expected 300"),
    ("missing_artifact", "expected a 'plot' artifact; made: events, jets, histogram"),
    ("number_out_of_range", "peak_gev: no number in the answer lies in [150, 200] (the answer has: 95)"),
    ("result_out_of_range", "peak_gev: histogram.peak was 95.0, expected [150, 200]"),
    ("unsupported_number", "the answer has numbers no tool result supports: 175"),
    ("stopped", "the run did not finish: stopped after 8 model turns"),
    ("wrong_order", "expected the calls in the order generate_events → cluster_jets → histogram → plot; "
                    "they ran as cluster_jets → generate_events → histogram → plot"),
])
def test_check_fails_each_kind_of_violation_with_a_readable_reason(spoil: str, reason: str) -> None:
    """Each spoiled record fails with one sentence that says what was expected and what happened."""
    record = _good_record()
    if spoil == "missing_tool":
        record.tool_calls[-1] |= {"ok": False, "error": "plot: no such histogram"}
    elif spoil == "wrong_argument":
        record.tool_calls[0]["arguments"]["n_events"] = 1000
    elif spoil == "missing_artifact":
        record.artifacts.pop()
    elif spoil == "number_out_of_range":
        record.numbers = ["95"]
    elif spoil == "result_out_of_range":
        record.events[0]["result"]["peak"] = 95.0
    elif spoil == "unsupported_number":
        record.unsupported = ["175"]
    elif spoil == "stopped":
        record.error = "stopped after 8 model turns without a final answer (max_steps=8)"
    else:
        record.tool_calls[:2] = record.tool_calls[1::-1]
    result = check(Task.model_validate(PIPELINE), record)
    assert not result.passed and any(reason in f for f in result.failures), result.failures


def test_answers_must_contain_the_phrases_and_cite_a_retrieved_passage() -> None:
    """A knowledge task passes only when the answer names the fact and cites a passage the search returned."""
    task = Task.model_validate({"id": "kb", "request": "Which algorithm? Cite.", "knowledge": "sample",
                                "expect": {"tools": ["search_knowledge"], "answer_contains": ["k-means"],
                                           "cites": True, "grounded": False}})
    record = AgentRecord(session="s", backend="test", request=task.request, steps=2,
                         answer="Cluster Scanning uses k-means [ml4jets.txt: Cluster Scanning].")
    record.add_call("search_knowledge", {"query": "cluster scanning"}, ok=True)
    record.events = [{"type": "tool_result", "tool": "search_knowledge", "ok": True,
                      "result": {"hits": [{"citation": "[ml4jets.txt: Cluster Scanning]"}]}}]
    assert check(task, record).passed
    uncited = record.model_copy(update={"answer": "It uses K-Means."})
    assert check(task, uncited).failures == ["the answer cites no retrieved passage as [source: title]"]
    invented = record.model_copy(update={"answer": "DBSCAN [ml4jets.txt: Made Up]"})
    assert check(task, invented).failures == ["the answer does not mention 'k-means'",
                                              "the answer cites no retrieved passage as [source: title]"]


def test_arguments_left_out_are_judged_by_the_tools_defaults() -> None:
    """An expected value equal to the tool's default passes when the model omits the argument."""
    task = Task.model_validate({"id": "defaults", "request": "r", "expect": {
        "tools": ["generate_events"], "arguments": {"generate_events.sqrt_s_tev": 13.6,
                                                    "generate_events.mpi": {"one_of": [True]}}}})
    record = AgentRecord(session="s", backend="b", request="r")
    record.add_call("generate_events", {"process": "ttbar"}, ok=True)
    assert check(task, record).passed


def test_scripted_model_solves_two_real_suite_tasks_through_the_real_tools(tmp_path: Path) -> None:
    """Two tasks of basic.yaml, solved by a script through real Pythia and uproot, pass and report their cost."""
    tasks = select_tasks(load_suite(), ["dy_xsec_implicit", "dy_to_root_ttree"])
    backend = ScriptedBackend([
        call("generate_events", process="drell_yan_mumu", n_events=100, mpi=False, seed=1),
        lambda m: answer(f"Pythia gives sigma = {_sigma(m):.0f} pb for Z/γ* → μμ at 13.6 TeV."),
        call("generate_events", process="drell_yan_mumu", n_events=200, mpi=False),
        lambda m: call("write_root", source=last_artifact(m, "ev"), format="ttree"),
        answer("Wrote the events to a ROOT TTree."),
    ])
    seen = []
    report = run_suite(tasks, backend, tmp_path / "runs", progress=lambda r, i, n: seen.append((r.id, i, n)),
                       suite="basic")
    assert report.pass_rate == 1.0 and report.tool_call_accuracy == 1.0, format_report(report)
    assert (report.prompt_tokens, report.completion_tokens, report.mean_steps) == (50, 25, 2.5)
    assert seen == [("dy_xsec_implicit", 1, 2), ("dy_to_root_ttree", 2, 2)] and backend.remaining == 0
    assert len({t.workspace for t in report.tasks}) == 2 and all(t.wall_s > 0 for t in report.tasks)
    assert "| scripted | 2/2 | 100% | 100% | 2.5 | 50 | 25 |" in format_report(report)
    dumped = report.model_dump(mode="json")
    assert dumped["pass_rate"] == 1.0 and json.loads(json.dumps(dumped))["tasks"][1]["tool_calls"] == [
        "generate_events (ok)", "write_root (ok)"]


def test_a_backend_that_raises_mid_suite_fails_its_task_not_the_suite(tmp_path: Path) -> None:
    """An exception from the model becomes a failed task with the reason; the next task still runs."""
    script = ScriptedBackend([call("generate_events", process="drell_yan_mumu", n_events=20, mpi=False),
                              answer("Nothing to do.")])

    class Flaky:
        name = "flaky"

        def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelTurn:
            if script.remaining == 1 and len(script.seen) == 1:
                script.seen.append(([], []))
                raise RuntimeError("CUDA error: out of memory")
            return script.complete(messages, tools)

    tasks = [Task.model_validate({"id": "crashes", "request": "Generate 20 Drell-Yan events, MPI off",
                                  "expect": {"tools": ["generate_events"]}}),
             Task.model_validate({"id": "survives", "request": "Say hello"})]
    report = run_suite(tasks, Flaky(), tmp_path)
    crashed, survived = report.tasks
    assert not crashed.passed and crashed.error == "RuntimeError: CUDA error: out of memory"
    assert crashed.failures == ["the run did not finish: RuntimeError: CUDA error: out of memory"]
    assert crashed.tool_calls == ["generate_events (ok)"] and survived.passed and report.pass_rate == 0.5
    assert "**FAIL**" in format_report(report) and "CUDA error" in format_report(report)
