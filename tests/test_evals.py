"""The eval suite and its runner: the suite is valid and cheap, checks fail for the right reasons with the right
kind, setup/files/history reach the agent, values are recomputed from the artifacts, repeats aggregate."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from physagent.agent import AgentRecord, Assistant
from physagent.agent.backends import ModelTurn
from physagent.agent.backends.scripted import ScriptedBackend, answer, call, last_artifact, plan
from physagent.app.cli import app
from physagent.evals import (
    DEFAULT_SUITE,
    FAILURE_KINDS,
    EvalSuiteError,
    Task,
    check,
    format_report,
    load_suite,
    measure,
    prepare_task,
    run_suite,
    select_tasks,
)
from physagent.tools import Workspace, call_tool, registry

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
_GENERATES = re.compile(r"\b(generate|simulate|make|produce)\b.*\bevents?\b", re.IGNORECASE | re.DOTALL)
_MPI_WORDS = ("MPI", "multi-parton", "underlying event")


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


def _task(request: str = "r", **fields: Any) -> Task:
    return Task.model_validate({"id": "t", "request": request, **fields})


# the shipped suite ---------------------------------------------------------------------------------


def test_the_shipped_suite_has_60_valid_tasks_over_every_registered_tool() -> None:
    """Every evals/*.yaml loads; ≥ 60 unique tasks expect every registered tool and cover every kind of task."""
    tasks = load_suite(DEFAULT_SUITE)
    ids = [t.id for t in tasks]
    assert len(tasks) >= 60 and len(set(ids)) == len(ids)
    expected = {tool for t in tasks for tool in t.expect.tools + t.expect.attempted}
    assert expected <= set(registry.names())
    assert not set(registry.names()) - expected, f"tools no task expects: {set(registry.names()) - expected}"
    tags = {tag for t in tasks for tag in t.tags}
    assert {"explicit", "implicit", "multi_step", "from_file", "follow_up", "refusal", "knowledge", "code",
            "tagging", "statistics"} <= tags
    assert sum(bool(t.history) for t in tasks) >= 5 and sum(bool(t.files) for t in tasks) >= 4
    assert sum(t.expect.refusal for t in tasks) >= 6 and sum(bool(t.expect.artifact_checks) for t in tasks) >= 15
    assert sum(t.knowledge == "sample" for t in tasks) >= 2 and sum(
        t.knowledge == "none" and "search_knowledge" in t.expect.tools for t in tasks) >= 2
    assert sum(3 <= len(t.expect.tools) <= 5 for t in tasks) >= 6


def test_every_suite_task_is_cheap_and_says_so() -> None:
    """Generation ≤ 500 events with MPI off (asked for in words), tiny datasets, taggers and generators, in requests
    and setup."""
    for task in load_suite():
        texts = " ".join([*task.history, task.request])
        if "generate_events" in task.expect.tools:
            assert task.expect.arguments["generate_events.mpi"].equals is False, task.id
            assert any(w in texts for w in _MPI_WORDS), task.id
            n_events = task.expect.arguments.get("generate_events.n_events")
            assert n_events is None or (n_events.equals or 0) <= 500, task.id  # a range: the model's choice
        for turn in task.history:
            if _GENERATES.search(turn) and "dataset" not in turn:
                assert any(w in turn for w in _MPI_WORDS), (task.id, turn)
        for step in task.setup:
            if step.tool == "generate_events":
                assert step.arguments["mpi"] is False and step.arguments["n_events"] <= 500, task.id
            if step.tool == "make_jet_dataset":
                assert step.arguments["n_jets_per_class"] <= 200 and not step.arguments.get("mpi"), task.id
            if step.tool == "train_tagger":
                assert step.arguments["size"] == "tiny" and step.arguments.get("epochs", 1) <= 2, task.id
        for key in ("make_jet_dataset.n_jets_per_class", "train_tagger.epochs"):
            match = task.expect.arguments.get(key)
            assert match is None or (match.equals or 0) <= 200, (task.id, key)
        if "train_generator" in task.expect.tools:  # generators: tiny, ≤ 20 epochs, on ≤ 500 showers
            assert task.expect.arguments["train_generator.size"].equals == "tiny", task.id
            assert task.expect.arguments["train_generator.epochs"].equals <= 20, task.id
        showers = task.expect.arguments.get("simulate_showers.n_showers")
        assert showers is None or showers.equals <= 500, task.id


def test_a_malformed_task_is_reported_with_its_file_id_and_field(tmp_path: Path) -> None:
    """A misspelt parameter, an unknown tool, a duplicate id and broken setup/file references name the culprit."""
    bad = tmp_path / "bad.yaml"
    cases = [
        ("tasks:\n  - id: typo\n    request: Generate events\n    expect:\n      tools: [generate_events]\n"
         "      arguments: {generate_events.nevents: 300}\n",
         r"bad.yaml: task 'typo': expect: arguments: generate_events has no field 'nevents'"),
        ("tasks:\n  - {id: coffee, request: Make coffee, expect: {tools: [make_coffee]}}\n",
         r"task 'coffee': expect\.tools: .*unknown tool\(s\) \['make_coffee'\]"),
        ("tasks:\n  - {id: twice, request: a}\n  - {id: twice, request: b}\n", "duplicate task ids: twice"),
        ("tasks:\n  - {id: nofile, request: 'Read {files.data}'}\n", r"request: \{files\.data\} names no file"),
        ("tasks:\n  - id: hidden\n    setup_visible: false\n    setup: [{name: ev, tool: generate_events, "
         "arguments: {process: ttbar}}]\n    request: Cluster {setup.ev}\n",
         r"setup_visible is false, so the agent cannot use setup artifacts"),
        ("tasks:\n  - id: order\n    setup: [{name: w, tool: write_root, arguments: {source: '{setup.ev}'}}]\n"
         "    request: r\n", r"setup\.w: \{setup\.ev\} names no earlier setup step"),
        ("tasks:\n  - {id: m, request: r, expect: {artifact_checks: {x: {kind: plot, measure: peak}}}}\n",
         r"measure 'peak' reads histogram artifacts, not 'plot'"),
        ("tasks:\n  - {id: f, request: r, expect: {numbers: {x: {from: nothing}}}}\n",
         r"numbers\.x\.from: 'nothing' is neither an artifact check"),
        ("tasks:\n  - {id: e, request: r, expect: {tools: [plot], arguments: "
         "{plot.histograms: {earlier: histogram}}}}\n",
         r"'earlier' needs setup or history"),
    ]
    for text, message in cases:
        bad.write_text(text)
        with pytest.raises(EvalSuiteError, match=message):
            load_suite(bad)


def test_load_suite_reads_folders_and_several_files(tmp_path: Path) -> None:
    """A folder means its *.yaml files; ids must be unique across files; each task knows its file."""
    (tmp_path / "a.yaml").write_text("tasks:\n  - {id: one, request: r, tags: [x]}\n")
    (tmp_path / "b.yaml").write_text("tasks:\n  - {id: two, request: r, tags: [y]}\n")
    tasks = load_suite(tmp_path)
    assert [(t.id, t.suite) for t in tasks] == [("one", "a"), ("two", "b")]
    assert [t.id for t in load_suite([tmp_path / "b.yaml", tmp_path / "a.yaml"])] == ["two", "one"]
    (tmp_path / "c.yaml").write_text("tasks:\n  - {id: one, request: again}\n")
    with pytest.raises(EvalSuiteError, match=r"duplicate task ids: one \(a, c\)"):
        load_suite(tmp_path)


def test_selecting_by_id_and_tag_and_unknown_names_are_listed() -> None:
    """--only and --tag filter in suite order; a typo in either says what exists."""
    tasks = load_suite()
    assert [t.id for t in select_tasks(tasks, ["dy_explicit"])] == ["dy_explicit"]
    refusals = select_tasks(tasks, tags=["refusal"])
    assert refusals and all("refusal" in t.tags for t in refusals)
    assert [t.id for t in select_tasks(tasks, ["dy_explicit", refusals[0].id], ["refusal"])] == [refusals[0].id]
    with pytest.raises(EvalSuiteError, match=r"no task dy_explict in the suite; known: .*dy_explicit"):
        select_tasks(tasks, ["dy_explict"])
    with pytest.raises(EvalSuiteError, match=r"no task is tagged refusals; tags: .*refusal"):
        select_tasks(tasks, tags=["refusals"])


# judging a record ----------------------------------------------------------------------------------


def test_check_passes_a_record_that_meets_every_expectation() -> None:
    """A correct run passes, and all its expected calls count as correct."""
    result = check(Task.model_validate(PIPELINE), _good_record())
    assert result.passed and result.failures == [] and (result.correct_calls, result.expected_calls) == (4, 4)
    assert result.category is None


def test_generated_code_counts_as_the_run_python_call_it_made() -> None:
    """The agent's write_code runs run_python with the code it wrote: a task expecting run_python passes on it,
    and a failed write_code is a code failure."""
    task = _task(expect={"tools": ["generate_events", "run_python"]})
    record = AgentRecord(session="s-test", backend="test", request="r", answer="Done.", steps=2)
    record.add_call("generate_events", {"process": "ttbar"}, ok=True, call_id="c-1")
    record.add_call("write_code", {"task": "mean", "inputs": ["ev-0123456789"], "values": {"mean": "float"}},
                    ok=True, call_id="c-2")
    assert check(task, record).passed
    failed = AgentRecord(session="s-test", backend="test", request="r", answer="It failed.", steps=2)
    failed.add_call("generate_events", {"process": "ttbar"}, ok=True, call_id="c-1")
    failed.add_call("write_code", {"task": "mean"}, ok=False, error="no attempt validated")
    assert check(task, failed).failure_kinds == ["code_failure"]


@pytest.mark.parametrize(("spoil", "reason", "kind"), [
    ("missing_tool", "expected a successful call of plot; it was called 1 time(s) and failed: plot: no such histogram",
     "gave_up_after_error"),
    ("wrong_argument", "generate_events.n_events was 1000, expected 300", "bad_argument"),
    ("missing_artifact", "expected a 'plot' artifact; made: events, jets, histogram", "wrong_tool"),
    ("number_out_of_range", "peak_gev: no number in the answer lies in [150, 200] (the answer has: 95)",
     "wrong_number"),
    ("result_out_of_range", "peak_gev: histogram.peak was 95.0, expected [150, 200]", "wrong_number"),
    ("unsupported_number", "the answer has numbers no tool result supports: 175", "invented_number"),
    ("mislabelled_number", "the answer labels values as the wrong quantity: 175 is a mean", "wrong_quantity"),
    ("stopped", "the run did not finish: stopped after 8 model turns", "limit_reached"),
    ("plan_refused", "the run did not finish: the model's plan could not run: step 1: bins=-1", "invalid_plan"),
    ("wrong_order", "expected the calls in the order generate_events → cluster_jets → histogram → plot; "
                    "they ran as cluster_jets → generate_events → histogram → plot", "wrong_tool"),
    ("never_called", "expected a successful call of plot; it was never called (successful calls: "
                     "generate_events, cluster_jets, histogram)", "wrong_tool"),
])
def test_check_fails_each_kind_of_violation_with_a_reason_and_a_kind(spoil: str, reason: str, kind: str) -> None:
    """Each spoiled record fails with one sentence saying what was expected and happened, under the right kind."""
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
    elif spoil == "mislabelled_number":
        record.mislabelled = ["175 is a mean"]
    elif spoil == "stopped":
        record.error = "stopped after 8 model turns without a final answer (max_steps=8)"
    elif spoil == "plan_refused":
        record.error = "the model's plan could not run: step 1: bins=-1 must be at least 1"
    elif spoil == "never_called":
        record.tool_calls.pop()
    else:
        record.tool_calls[:2] = record.tool_calls[1::-1]
    result = check(Task.model_validate(PIPELINE), record)
    assert not result.passed and any(reason in f for f in result.failures), result.failures
    assert result.category == kind and kind in FAILURE_KINDS


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
    invented = check(task, record.model_copy(update={"answer": "DBSCAN [ml4jets.txt: Made Up]"}))
    assert invented.failures == ["the answer does not mention 'k-means'",
                                 "the answer cites no retrieved passage as [source: title]"]
    assert invented.category == "incomplete_answer"
    sourced = task.model_copy(update={"expect": task.expect.model_copy(update={"cite_source": "desy"})})
    assert check(sourced, record).failures == ["the answer cites [ml4jets.txt: Cluster Scanning], none of them "
                                               "from 'desy'"]


def test_arguments_left_out_are_judged_by_the_tools_defaults() -> None:
    """An expected value equal to the tool's default passes when the model omits the argument."""
    task = Task.model_validate({"id": "defaults", "request": "r", "expect": {
        "tools": ["generate_events"], "arguments": {"generate_events.sqrt_s_tev": 13.6,
                                                    "generate_events.mpi": {"one_of": [True]}}}})
    record = AgentRecord(session="s", backend="b", request="r")
    record.add_call("generate_events", {"process": "ttbar"}, ok=True)
    assert check(task, record).passed


def test_numbers_from_a_result_path_match_the_answer_within_tolerance_and_as_a_percentage() -> None:
    """'from: tool.path' finds the value in the result; 0.652 is matched by 0.65 (2 %) and by 65.2 %, not by 0.6."""
    task = _task(expect={"tools": ["summarize"], "numbers": {
        "fraction": {"from": "summarize.fraction_passing", "min": 0.5, "max": 0.8}}})
    record = AgentRecord(session="s", backend="b", request="r", answer="0.65 of them", numbers=["0.65"])
    record.add_call("summarize", {"source": "ev-0123456789"}, ok=True)
    record.events = [{"type": "tool_result", "tool": "summarize", "ok": True, "result": {"fraction_passing": 0.652}}]
    assert check(task, record).passed
    assert check(task, record.model_copy(update={"answer": "65.2% pass", "numbers": ["65.2"]})).passed
    wrong = check(task, record.model_copy(update={"answer": "0.6 pass", "numbers": ["0.6"]}))
    assert wrong.failures == ["fraction: no number in the answer equals summarize.fraction_passing = 0.652 "
                              "within 2% (the answer has: 0.6)"] and wrong.category == "wrong_number"


# setup, files, history --------------------------------------------------------------------------------


def _file_task(visible: bool) -> Task:
    return Task.model_validate({
        "id": "from_file", "setup_visible": visible,
        "setup": [{"name": "dy", "tool": "generate_events",
                   "arguments": {"process": "drell_yan_mumu", "n_events": 30, "mpi": False, "seed": 2}},
                  {"name": "tree", "tool": "write_root", "arguments": {"source": "{setup.dy}", "tree": "mu"}}],
        "files": {"root": {"from": "tree", "name": "mine.root"},
                  "notes": {"text": "channel,gain\n0,1.5\n1,2.5\n", "name": "gains.csv"}},
        "request": "How many entries has {files.root}? The gains are in {files.notes}.",
        "expect": {"tools": ["read_root"], "artifacts": ["events"],
                   "artifact_checks": {"rows": {"kind": "events", "measure": "n_rows", "equals": 30}},
                   "numbers": {"entries": {"from": "rows", "rel_tol": 0}}},
    })


def _path_in(messages: list[dict[str, Any]], suffix: str) -> str:
    found = re.search(rf"(/\S+{re.escape(suffix)})", messages[-1]["content"])
    assert found, messages[-1]["content"]
    return found.group(1)


def test_setup_and_files_reach_the_request_and_hidden_setup_stays_hidden(tmp_path: Path) -> None:
    """A ROOT file made by setup and a text file land under the task directory, their absolute paths replace
    {files.*} in the request, the agent reads the file, and the 30 entries are recomputed from its artifact."""
    seen: dict[str, Any] = {}

    def read(messages: list[dict[str, Any]]) -> ModelTurn:
        seen["request"], seen["system"] = messages[-1]["content"], messages[0]["content"]
        return call("read_root", path=_path_in(messages, "mine.root"))

    report = run_suite([_file_task(visible=False)], ScriptedBackend([read, answer("The tree has 30 entries.")]),
                       tmp_path, mode="step")
    (result,) = report.runs
    assert result.passed, result.failures
    root_file, csv_file = Path(result.workspace) / "data" / "mine.root", Path(result.workspace) / "data" / "gains.csv"
    assert f"How many entries has {root_file}? The gains are in {csv_file}." == seen["request"]
    assert csv_file.read_text() == "channel,gain\n0,1.5\n1,2.5\n" and root_file.stat().st_size > 0
    hidden = Workspace(Path(result.workspace) / "setup").list_artifacts()
    assert [a.kind for a in hidden] == ["events", "root"] and result.setup_s > 0
    assert not any(a.id in seen["system"] for a in hidden)  # the setup's events are not the agent's
    twice = [answer("The tree has 31 entries.")] * 2  # the loop asks once more about an unsupported number
    wrong = run_suite([_file_task(visible=False)], ScriptedBackend([read, *twice]), tmp_path, mode="step").runs[0]
    assert "entries: no number in the answer equals rows = 30 within 0% (the answer has: 31)" in wrong.failures


def test_visible_setup_artifacts_are_offered_and_named_in_the_request(workspace: Workspace) -> None:
    """With setup_visible, {setup.dy} becomes the events id and the agent's prompt lists that artifact."""
    task = Task.model_validate({
        "id": "visible", "request": "Histogram the muon pT of {setup.dy}.",
        "setup": [{"name": "dy", "tool": "generate_events",
                   "arguments": {"process": "drell_yan_mumu", "n_events": 30, "mpi": False, "seed": 2}}]})
    prepared = prepare_task(task, workspace)
    (events,) = workspace.list_artifacts()
    assert prepared.request == f"Histogram the muon pT of {events.id}."
    assert prepared.visible == [{"id": events.id, "kind": "events", "path": str(events.path),
                                 "tool": "generate_events"}]
    backend = ScriptedBackend([answer("Noted.")])
    Assistant(backend=backend, workspace=workspace, examples_per_request=0).ask(prepared.request)
    assert events.id in backend.seen[0][0][0]["content"]


def test_a_failing_setup_fails_the_run_as_setup_failed(tmp_path: Path) -> None:
    """A setup call the tool refuses is the suite's fault: the run fails under setup_failed, the agent never runs."""
    task = Task.model_validate({"id": "broken", "request": "r", "setup": [
        {"name": "ev", "tool": "generate_events", "arguments": {"process": "ttbar", "n_events": -1}}]})
    backend = ScriptedBackend([])
    (result,) = run_suite([task], backend, tmp_path).runs
    assert not result.passed and result.category == "setup_failed" and backend.seen == []
    assert result.failures[0].startswith("setup step 'ev' (generate_events) failed: generate_events: n_events=-1")


def _follow_up_task() -> Task:
    return Task.model_validate({
        "id": "follow_up", "history": ["Generate 40 Drell-Yan mu mu events, MPI off."],
        "request": "Now histogram m-hat of those events from 60 to 120 GeV in 30 bins.",
        "expect": {"tools": ["histogram"], "artifacts": ["histogram"],
                   "arguments": {"histogram.source": {"earlier": "events"}},
                   "artifact_checks": {"mean": {"kind": "histogram", "measure": "mean", "min": 80, "max": 100},
                                       "generated": {"kind": "events", "measure": "n_rows", "turn": "any",
                                                     "equals": 40}}}})


def test_history_runs_before_the_judged_request_through_the_same_assistant(tmp_path: Path) -> None:
    """The earlier request runs first and is not judged; the judged one must reuse its events (earlier)."""
    histogram = {"field": "m_hat_gev", "bins": 30, "range_min": 60, "range_max": 120}
    reuse = ScriptedBackend([
        call("generate_events", process="drell_yan_mumu", n_events=40, mpi=False),
        answer("Generated the events."),
        lambda m: call("histogram", source=last_artifact(m, "ev"), **histogram),
        answer("Histogram made."),
    ])
    (result,) = run_suite([_follow_up_task()], reuse, tmp_path, mode="step").runs
    assert result.passed, result.failures
    assert result.history_calls == ["turn 1: generate_events (ok)"] and result.tool_calls == ["histogram (ok)"]
    assert "Generate 40 Drell-Yan" in reuse.seen[2][0][-3]["content"]  # the judged turn remembers the first
    restart = ScriptedBackend([
        answer("I will do it later."),
        call("generate_events", process="drell_yan_mumu", n_events=40, mpi=False, seed=9),
        lambda m: call("histogram", source=last_artifact(m, "ev"), **histogram),
        answer("Histogram made."),
    ])
    (again,) = run_suite([_follow_up_task()], restart, tmp_path, mode="step").runs
    assert not again.passed and again.category == "bad_argument"
    assert any(f.startswith("histogram.source was 'ev-") and f.endswith(
        "expected the id of an events artifact made before this request") for f in again.failures), again.failures


def test_refusals_are_judged_both_ways(tmp_path: Path) -> None:
    """A refusal task passes a clear refusal after a failed call and fails a run that makes events; a normal
    task fails a run that refuses without trying as wrongly_refused."""
    refuse = _task("Generate -5 ttbar events with MPI off.", id="refuse",
                   expect={"refusal": True, "answer_contains": ["at least 1"]})
    good = ScriptedBackend([call("generate_events", process="ttbar", n_events=-5, mpi=False),
                            answer("I cannot generate a negative number of events: n_events must be at least 1.")])
    assert run_suite([refuse], good, tmp_path, mode="step").runs[0].passed
    obliging = ScriptedBackend([call("generate_events", process="ttbar", n_events=5, mpi=False),
                                answer("Here are 5 events instead.")])
    (made,) = run_suite([refuse], obliging, tmp_path, mode="step").runs
    assert not made.passed and made.category == "not_refused"
    assert made.failures[0].startswith("expected a refusal, but the run made ev-")
    assert made.failures[1:] == ["expected a refusal, but the answer does not say it cannot: "
                                 "'Here are 5 events instead.'", "the answer does not mention 'at least 1'"]
    normal = _task("Generate 5 ttbar events with MPI off.", id="normal", expect={"tools": ["generate_events"]})
    (timid,) = run_suite([normal], ScriptedBackend([answer("Sorry, I cannot run Pythia here.")]), tmp_path).runs
    assert timid.category == "wrongly_refused"


def test_an_attempted_tool_must_give_the_refusal_itself(tmp_path: Path) -> None:
    """With `attempted`, a refusal passes only after the tool was called (its own check gives the reason): the
    same refusal written without trying fails as wrong_tool, naming the tool."""
    refuse = _task("Generate -5 ttbar events with MPI off.", id="refuse",
                   expect={"refusal": True, "attempted": ["generate_events"]})
    tried = ScriptedBackend([call("generate_events", process="ttbar", n_events=-5, mpi=False),
                             answer("I cannot generate a negative number of events: n_events must be at least 1.")])
    assert run_suite([refuse], tried, tmp_path, mode="step").runs[0].passed
    guessed = ScriptedBackend([answer("I cannot generate a negative number of events.")])
    (run,) = run_suite([refuse], guessed, tmp_path, mode="step").runs
    assert not run.passed and run.category == "wrong_tool"
    assert run.failures[0].startswith("expected a call of generate_events (its own check gives the answer)")


# values recomputed from artifacts ---------------------------------------------------------------------


def test_an_artifact_check_is_recomputed_from_the_file_and_fails_a_wrong_answer(tmp_path: Path) -> None:
    """The histogram's peak is read from histogram.json: the right number passes, a wrong one fails as wrong_number,
    and editing the file (not the tool's result) changes the verdict."""
    task = _task("Histogram m-hat of 60 Drell-Yan events (MPI off), 60-120 GeV in 12 bins; where is the peak?",
                 expect={"tools": ["generate_events", "histogram"],
                         "artifact_checks": {"peak": {"kind": "histogram", "measure": "peak", "min": 85, "max": 95}},
                         "numbers": {"peak_in_answer": {"from": "peak", "rel_tol": 0.001}}})
    steps = [{"tool": "generate_events", "arguments": {"process": "drell_yan_mumu", "n_events": 60, "mpi": False}},
             {"tool": "histogram", "arguments": {"source": "$1.events", "field": "m_hat_gev", "bins": 12,
                                                 "range_min": 60, "range_max": 120}}]
    (good,) = run_suite([task], ScriptedBackend([plan(steps, "The peak is at {$2.peak}.")]), tmp_path).runs
    assert good.passed and good.mode == "plan", good.failures
    hist_file = next((Path(good.workspace) / "artifacts").glob("hist-*/histogram.json"))
    assert measure("peak", hist_file) == 92.5 and "92.5 GeV" in good.answer
    wrong_script = [call(steps[0]["tool"], **steps[0]["arguments"]),
                    lambda m: call("histogram", **{**steps[1]["arguments"], "source": last_artifact(m, "ev")}),
                    *[answer("The peak is at 87.5 GeV.")] * 2]  # the loop asks once more about an unsupported number
    (wrong,) = run_suite([task], ScriptedBackend(wrong_script), tmp_path, mode="step").runs
    assert not wrong.passed and wrong.category == "invented_number"
    assert "peak_in_answer: no number in the answer equals peak = 92.5 within 0% (the answer has: 87.5)" \
        in wrong.failures
    (session,) = Workspace(good.workspace).sessions()
    record = AgentRecord.model_validate(session["record"]["turns"][-1])
    document = json.loads(hist_file.read_text())
    document["storage"]["values"][1] = 1000.0  # the 60–65 GeV bin (after the underflow)
    hist_file.write_text(json.dumps(document))
    tampered = check(task, record)
    assert "peak: peak of the last histogram artifact is 62.5, expected [85, 95]" in tampered.failures


def test_measures_read_tables_jets_root_files_and_model_scores(workspace: Workspace) -> None:
    """n_rows, n_jets, tree_entries, column_mean and entries agree with what the tools wrote."""
    events = call_tool("generate_events", {"process": "ttbar", "n_events": 25, "mpi": False}, workspace=workspace)
    jets = call_tool("cluster_jets", {"events": events.result.events.id, "pt_min_gev": 30}, workspace=workspace)
    root = call_tool("write_root", {"source": events.result.events.id, "tree": "tt"}, workspace=workspace)
    hist = call_tool("histogram", {"source": jets.result.jets.id, "field": "jets.pt", "bins": 10,
                                   "range_min": 30, "range_max": 300}, workspace=workspace)
    assert measure("n_rows", events.result.events.path) == 25 == measure("tree_entries", root.result.root.path)
    histogram_file = hist.result.histogram.path
    assert measure("n_jets", jets.result.jets.path) == jets.result.n_jets == measure("entries", histogram_file)
    assert measure("mean", hist.result.histogram.path) == pytest.approx(hist.result.mean, rel=0.05)
    assert measure("column_mean", events.result.events.path, "pt_hat_gev") > 0
    with pytest.raises(ValueError, match="has no column 'nope'"):
        measure("column_mean", events.result.events.path, "nope")


# repeats, modes and the report ----------------------------------------------------------------------


def test_repeats_give_pass_at_1_pass_hat_k_and_a_failure_taxonomy(tmp_path: Path) -> None:
    """Three tasks × 3 runs: one always passes, one passes 2 of 3, one never; pass@1 = 5/9, pass^3 = 1/3."""
    tasks = [_task("Say hello.", id="hello", expect={"answer_contains": ["hello"]}),
             _task("Generate 20 Drell-Yan mu mu events with MPI off.", id="flaky",
                   expect={"tools": ["generate_events"], "arguments": {"generate_events.n_events": 20}}),
             _task("Say goodbye.", id="never", max_steps=1, expect={"answer_contains": ["goodbye"]})]
    dy = {"process": "drell_yan_mumu", "mpi": False}
    backend = ScriptedBackend([
        answer("hello"), answer("Hello!"), answer("hello there"),
        call("generate_events", **dy, n_events=20), answer("Done."),
        call("generate_events", **dy, n_events=30), answer("Done."),
        call("generate_events", **dy, n_events=20), answer("Done."),
        call("generate_events", **dy, n_events=1),  # max_steps=1: stops before answering
        answer("bye"), answer("Bye."),
    ])
    seen: list[tuple[str, int, int]] = []
    report = run_suite(tasks, backend, tmp_path, mode="step", repeats=3, suite="tiny",
                       progress=lambda r, i, n: seen.append((r.id, i, n)))
    assert backend.remaining == 0 and len(report.runs) == 9 and seen[-1] == ("never", 9, 9)
    assert [r.repeat for r in report.runs] == [0, 1, 2] * 3 and report.mode == "step" and report.repeats == 3
    assert report.pass_at_1 == pytest.approx(5 / 9) and report.pass_hat_k == pytest.approx(1 / 3)
    assert report.taxonomy == {"limit_reached": 1, "bad_argument": 1, "incomplete_answer": 2}
    rows = {t.id: t for t in report.summaries()}
    assert (rows["hello"].passes, rows["flaky"].passes, rows["never"].passes) == (3, 2, 0)
    assert rows["flaky"].categories == {"bad_argument": 1} and rows["flaky"].first_failure == \
        "generate_events.n_events was 30, expected 20"
    assert report.median_tokens == 15 and report.median_wall_s >= 0
    text = format_report(report)
    assert "| scripted | step | 3 × 3 | 56% | 33% |" in text and "pass^3" in text
    assert "| limit_reached | the run stopped at max_steps" in text and "| flaky |  | **2/3** |" in text
    dumped = json.loads(report.model_dump_json())
    assert dumped["pass_at_1"] == pytest.approx(5 / 9) and dumped["taxonomy"]["incomplete_answer"] == 2
    assert dumped["runs"][4]["category"] == "bad_argument"


def test_scripted_model_solves_two_real_suite_tasks_through_the_real_tools(tmp_path: Path) -> None:
    """Two tasks of the suite, solved by a script through real Pythia and uproot, pass and report their cost."""
    tasks = select_tasks(load_suite(), ["dy_xsec_implicit", "dy_to_root_ttree"])
    backend = ScriptedBackend([
        call("generate_events", process="drell_yan_mumu", n_events=100, mpi=False, seed=1),
        lambda m: answer(f"Pythia gives sigma = {_sigma(m):.0f} pb for Z/γ* → μμ at 13.6 TeV."),
        call("generate_events", process="drell_yan_mumu", n_events=200, mpi=False),
        lambda m: call("write_root", source=last_artifact(m, "ev"), format="ttree"),
        answer("Wrote the events to a ROOT TTree."),
    ])
    report = run_suite(tasks, backend, tmp_path / "runs", suite="basic")
    assert report.pass_at_1 == 1.0 and report.tool_call_accuracy == 1.0, format_report(report)
    assert (report.prompt_tokens, report.completion_tokens, report.mean_steps) == (50, 25, 2.5)
    assert len({t.workspace for t in report.runs}) == 2 and all(t.wall_s > 0 for t in report.runs)
    assert report.runs[1].tool_calls == ["generate_events (ok)", "write_root (ok)"]


def test_a_backend_that_raises_mid_suite_fails_its_run_not_the_suite(tmp_path: Path) -> None:
    """An exception from the model becomes a failed run of kind crash; the next task still runs."""
    script = ScriptedBackend([call("generate_events", process="drell_yan_mumu", n_events=20, mpi=False),
                              answer("Nothing to do.")])

    class Flaky:
        name = "flaky"

        def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelTurn:
            if script.remaining == 1 and len(script.seen) == 1:
                script.seen.append(([], []))
                raise RuntimeError("CUDA error: out of memory")
            return script.complete(messages, tools)

    tasks = [_task("Generate 20 Drell-Yan events, MPI off", id="crashes", expect={"tools": ["generate_events"]}),
             _task("Say hello", id="survives")]
    report = run_suite(tasks, Flaky(), tmp_path, mode="step")
    crashed, survived = report.runs
    assert not crashed.passed and crashed.error == "RuntimeError: CUDA error: out of memory"
    assert crashed.failures == ["the run did not finish: RuntimeError: CUDA error: out of memory"]
    assert crashed.category == "crash" and report.taxonomy == {"crash": 1}
    assert crashed.tool_calls == ["generate_events (ok)"] and survived.passed and report.pass_at_1 == 0.5
    assert "**0/1**" in format_report(report) and "CUDA error" in format_report(report)


def test_the_eval_command_runs_repeats_in_a_mode_filtered_by_tag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                 ) -> None:
    """`physagent eval --tag --mode step --repeat 2 --json` prints the report; a bad tag or mode exits 2."""
    monkeypatch.setenv("PHYSAGENT_HOME", str(tmp_path / "home"))
    suite = tmp_path / "suite.yaml"
    suite.write_text("tasks:\n  - {id: greet, request: Say hello, tags: [chat], expect: {answer_contains: [hello]}}\n"
                     "  - {id: other, request: Say bye, tags: [skip]}\n")
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"answer": "hello"}, {"answer": "Hello again"}]))
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "--suite", str(suite), "--tag", "chat", "--mode", "step", "--repeat", "2",
                                 "--backend", f"scripted:{script}", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["mode"], report["repeats"], report["pass_at_1"], report["pass_hat_k"]) == ("step", 2, 1.0, 1.0)
    assert [r["id"] for r in report["runs"]] == ["greet", "greet"]
    bad = runner.invoke(app, ["eval", "--suite", str(suite), "--tag", "nope"])
    assert bad.exit_code == 2 and "no task is tagged nope; tags: chat, skip" in bad.output
    assert runner.invoke(app, ["eval", "--suite", str(suite), "--mode", "steps"]).exit_code == 2
