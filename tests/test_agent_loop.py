"""The agent loop driven by a scripted model through the real tools: flows, recovery, grounding, memory."""

from __future__ import annotations

import pytest

from physagent.agent import Assistant, ScriptedBackend
from physagent.agent.backends import BackendError, ModelTurn
from physagent.agent.backends.scripted import ScriptExhaustedError, answer, call, last_artifact
from physagent.agent.grounding import extract_numbers, unsupported_numbers
from physagent.tools import Workspace, export_script

GENERATE = {"process": "ttbar", "n_events": 300, "decay": "hadronic", "pt_hat_min_gev": 400.0, "mpi": False,
            "seed": 5}


def _peak_answer(messages: list[dict]) -> ModelTurn:
    observation = next(m["content"] for m in reversed(messages) if m["content"].startswith("histogram OK"))
    peak = observation.split('"peak": ')[1].split(",")[0]
    return answer(f"The leading large-R jet mass peaks at {peak} GeV; see the plot.")


def _assistant(turns: list, workspace: Workspace, **options: object) -> tuple[Assistant, ScriptedBackend]:
    backend = ScriptedBackend(turns)
    return Assistant(backend=backend, workspace=workspace, **options), backend


def test_scripted_model_drives_generate_cluster_histogram_plot(workspace: Workspace) -> None:
    """Four real tool calls chained by artifact ids end in a grounded answer, events in order."""
    assistant, backend = _assistant([
        call("generate_events", **GENERATE),
        lambda m: call("cluster_jets", events=last_artifact(m, "ev"), radius=1.0, pt_min_gev=300.0),
        lambda m: call("histogram", source=last_artifact(m, "jet"), field="jets.mass", object_index=0,
                       bins=30, range_min=0.0, range_max=300.0),
        lambda m: call("plot", histograms=[last_artifact(m, "hist")]),
        _peak_answer,
    ], workspace)
    events = list(assistant.stream("Generate boosted ttbar, cluster R=1.0 jets, plot the leading jet mass"))
    record = assistant.records[-1]
    assert backend.remaining == 0 and record.ok and record.steps == 5
    assert [c["tool"] for c in record.tool_calls] == ["generate_events", "cluster_jets", "histogram", "plot"]
    assert [a["kind"] for a in record.artifacts] == ["events", "jets", "histogram", "plot"]
    peak = float(record.numbers[0])
    assert 150.0 <= peak <= 200.0
    types = [e.type for e in events]
    assert types[0] == "plan" and types[-1] == "answer" and types.count("tool_result") == 4
    assert {"generate_events", "cluster_jets", "histogram", "plot"} <= set(events[0].tools)


def test_session_is_recorded_and_exportable(workspace: Workspace) -> None:
    """The session record is stored with its calls tagged, and export reproduces what it made."""
    assistant, _ = _assistant([call("generate_events", **GENERATE | {"n_events": 50}), answer("Done.")], workspace)
    record = assistant.ask("Generate 50 boosted ttbar events")
    stored = workspace.sessions()[0]
    assert stored["id"] == assistant.session and stored["record"]["turns"][0]["answer"] == "Done."
    assert [c.tool for c in workspace.calls(session=assistant.session)] == ["generate_events"]
    script = export_script(workspace, session=assistant.session)
    assert script.count("\nrun(") == 1 and record.artifacts[0]["id"] in script


def test_a_failing_tool_becomes_an_observation_the_model_can_fix(workspace: Workspace) -> None:
    """A rejected Pythia setting is fed back; the model retries correctly and answers."""
    assistant, backend = _assistant([
        call("generate_events", process="ttbar", n_events=50, mpi=False, settings=["Foo:bar = 1"]),
        call("generate_events", process="ttbar", n_events=50, mpi=False),
        answer("Generated the events."),
    ], workspace)
    record = assistant.ask("Generate 50 ttbar events with the Pythia settings Foo:bar = 1")
    assert [c["ok"] for c in record.tool_calls] == [False, True]
    assert "was rejected by Pythia" in record.tool_calls[0]["error"]
    second_prompt = backend.seen[1][0]
    assert second_prompt[-1]["role"] == "tool" and "FAILED" in second_prompt[-1]["content"]


def test_unknown_tool_and_invalid_arguments_are_observations(workspace: Workspace) -> None:
    """A hallucinated tool name and a bad argument each come back as an error message, not a crash."""
    assistant, backend = _assistant([
        call("make_coffee", strength=3),
        call("generate_events", process="ttbar", n_events=-5),
        answer("I could not generate events with a negative count."),
    ], workspace)
    record = assistant.ask("Generate ttbar events")
    errors = [c["error"] for c in record.tool_calls]
    assert "unknown tool 'make_coffee'" in errors[0]
    assert "n_events=-5 must be greater than or equal to 1" in errors[1]
    assert record.error is None and backend.remaining == 0 and workspace.list_artifacts() == []


def test_step_limit_ends_with_a_clear_answer_and_an_intact_record(workspace: Workspace) -> None:
    """A model that never stops is cut off at max_steps with an error event and a summary answer."""
    looping = [call("generate_events", process="drell_yan_mumu", n_events=20, mpi=False, seed=s) for s in range(3)]
    assistant, _ = _assistant(looping, workspace, max_steps=3)
    events = list(assistant.stream("Generate Drell-Yan events"))
    record = assistant.records[-1]
    assert [e.type for e in events][-2:] == ["error", "answer"]
    assert "max_steps=3" in record.error and "generate_events (ok)" in record.answer
    assert len(workspace.sessions()[0]["record"]["turns"][0]["tool_calls"]) == 3


def test_backend_failure_ends_the_request_gracefully(workspace: Workspace) -> None:
    """A backend error (server down) becomes an error event and an answer that says so."""

    class Down:
        name = "down"

        def complete(self, messages: list, tools: list) -> ModelTurn:
            raise BackendError("cannot reach http://127.0.0.1:9/v1 — is the server running?")

    record = Assistant(backend=Down(), workspace=workspace).ask("Generate events")
    assert record.error.startswith("the model backend failed: cannot reach") and "could not finish" in record.answer


def test_invented_numbers_are_repaired_or_flagged(workspace: Workspace) -> None:
    """An answer with a number no tool returned is sent back once; if still invented it is flagged."""
    assistant, backend = _assistant([
        call("generate_events", process="drell_yan_mumu", n_events=40, mpi=False, seed=1),
        answer("The cross-section is 4321.5 pb."),
        lambda m: answer(f"The cross-section is {m[-3]['content'].split('sigma_pb')[1].split(',')[0][3:]} pb."),
    ], workspace)
    repaired = assistant.ask("Generate 40 Drell-Yan events and report the cross-section")
    assert repaired.ok and "4321.5" not in repaired.answer
    assert "appear in no tool result: 4321.5" in backend.seen[2][0][-1]["content"]
    stubborn, _ = _assistant([answer("The top mass is 999.9 GeV."), answer("It is 999.9 GeV.")], workspace)
    flagged = stubborn.ask("What is the top mass?")
    assert flagged.unsupported == ["999.9"] and "[unverified: 999.9" in flagged.answer


def test_chat_remembers_artifacts_of_earlier_turns(workspace: Workspace) -> None:
    """A follow-up request can use the artifact made in the previous turn."""
    assistant, backend = _assistant([
        call("generate_events", process="drell_yan_mumu", n_events=30, mpi=False, seed=2),
        answer("Generated 30 events."),
        lambda m: call("histogram", source=last_artifact(m, "ev"), field="pt_hat_gev", bins=10),
        answer("Histogram made."),
    ], workspace)
    assistant.ask("Generate 30 Drell-Yan events")
    record = assistant.ask("now histogram pt_hat of that sample")
    assert record.tool_calls[0]["ok"] and record.artifacts[0]["kind"] == "histogram"
    assert any("ev-" in m["content"] for m in backend.seen[2][0] if m["role"] == "assistant")


def test_running_out_of_script_fails_loudly(workspace: Workspace) -> None:
    """The scripted model raises when the agent asks for more turns than scripted."""
    assistant, _ = _assistant([call("generate_events", process="drell_yan_mumu", n_events=20, mpi=False)], workspace)
    with pytest.raises(ScriptExhaustedError, match="script ran out after 1 turn"):
        assistant.ask("Generate events")


def test_number_check_accepts_roundings_percentages_and_ignores_ids() -> None:
    """173 is supported by 172.6, 29.8% by 0.298; hex digits of artifact ids are not numbers."""
    assert extract_numbers("see ev-3f2a9c1b7d and 1,000 events at 13.6 TeV") == ["1,000", "13.6"]
    assert unsupported_numbers("peak 173 GeV, 29.8% efficiency, 1,000 events", [172.6, 0.298, 1000]) == []
    assert unsupported_numbers("peak 180 GeV", [172.6]) == ["180"]


def test_a_small_integer_is_supported_only_by_its_quantity_or_a_quotation() -> None:
    """A 3 or a 0 stated as a result needs a source of its quantity; one copied from a passage is supported when it
    follows the same words there (the decay "π(1800) → 3π"), not because the passage holds some other 3."""
    from physagent.agent.grounding import sources_in

    passage = sources_in(r"hadronic three-body decays, $\pi(1800) \rightarrow 3\pi$ and more", "passage")
    quoted = r"the three-body decays, $\rho(1800) \rightarrow 3\rightarrow$, via MadJax"
    assert unsupported_numbers(quoted, passage) == []
    assert unsupported_numbers("The number of decays is 3.", passage) == ["3"]
    assert unsupported_numbers("The fraction is 0.", sources_in("hits: 0 of 5")) == ["0"]


def test_a_malformed_reply_is_retried_not_fatal(workspace: Workspace) -> None:
    """A retryable backend error (unparseable tool call) is shown to the model, which then answers."""

    class GarbledReplyError(BackendError):
        retryable = True

    turns = iter([GarbledReplyError("arguments were not valid JSON"), answer("Nothing to do.")])

    class Flaky:
        name = "flaky"

        def complete(self, messages: list, tools: list) -> ModelTurn:
            turn = next(turns)
            if isinstance(turn, Exception):
                raise turn
            return turn

    record = Assistant(backend=Flaky(), workspace=workspace).ask("Say hello")
    assert record.error is None and record.answer == "Nothing to do." and record.steps == 2


def test_a_repeated_call_is_taken_as_done_and_the_model_is_asked_to_answer(workspace: Workspace) -> None:
    """Small models repeat a finished call instead of answering; the loop asks for the answer instead."""
    arguments = {"process": "drell_yan_mumu", "n_events": 20, "mpi": False, "seed": 1}
    assistant, backend = _assistant([call("generate_events", **arguments), call("generate_events", **arguments),
                                     answer("Generated 20 events.")], workspace)
    record = assistant.ask("Generate 20 Drell-Yan events")
    assert len(record.tool_calls) == 1 and record.answer == "Generated 20 events."
    assert backend.seen[2][1] == [] and "already ran" in backend.seen[2][0][-1]["content"]


def test_repeating_a_failing_call_ends_the_run_with_the_error(workspace: Workspace) -> None:
    """A model that sends the same failing call again is stopped at once, with the tool's error."""
    bad = {"process": "ttbar", "n_events": 10, "pt_hat_min_gev": 20.0, "pt_hat_max_gev": 20.0}
    assistant, _ = _assistant([call("generate_events", **bad), call("generate_events", **bad)], workspace)
    record = assistant.ask("Generate 10 ttbar events")
    assert record.steps == 2 and "repeated a failing call" in record.error
    assert "pt_hat_max_gev=20.0 must be larger than pt_hat_min_gev=20" in record.answer


def test_a_request_for_an_ability_no_tool_has_is_answered_without_a_model_turn(workspace: Workspace) -> None:
    """'with Sherpa rather than Pythia' and 'push it to the Hugging Face Hub' get the reason and what would work; no
    model turn (the script is empty), no tool runs; a MadGraph LHE file to shower is no such request."""
    from physagent.agent.abilities import missing_ability

    assistant = Assistant(backend=ScriptedBackend([]), workspace=workspace, examples_per_request=0)
    record = assistant.ask("Produce 300 W+jets events using Sherpa instead of Pythia.")
    assert record.answer.startswith("I can't do this as asked: my event generator is Pythia 8")
    assert "LHE" in record.answer and record.tool_calls == [] and workspace.list_artifacts() == []
    pushed = assistant.ask("Upload the tagger model to the Hugging Face hub, please.")
    assert "network access" in pushed.answer and pushed.tool_calls == []
    assert missing_ability("Shower the MadGraph events in /data/zmm.lhe with Pythia 8") is None
    assert missing_ability("How does the jet mass differ between Pythia and Herwig?") is None


def test_a_search_keeps_to_the_document_the_request_names(workspace: Workspace, tmp_path, monkeypatch) -> None:
    """'According to the 2024 beamline notes' and a model's query without that name: the query gets the document's
    name, so every passage found comes from the 2024 notes, not the near-identical 2023 ones."""
    import physagent.knowledge.samples
    from physagent.agent.backends.scripted import plan
    from physagent.knowledge import KnowledgeBase

    monkeypatch.setattr(physagent.knowledge.samples, "sample_corpus", lambda: [])
    notes = []
    for year, magnet in ((2023, "quadrupole"), (2024, "sextupole")):
        note = tmp_path / f"beamline-notes-{year}.md"
        note.write_text(f"# Beam loss study\n\nThe beam loss study traced the losses to a misaligned {magnet} "
                        "magnet in the transfer line.\n")
        notes.append(note)
    KnowledgeBase.open(workspace.root).ingest(notes)
    # the bundled books are listed twice once synced (shipped and in the knowledge base): still one document named
    monkeypatch.setattr(physagent.knowledge.samples, "sample_corpus", lambda: notes)
    assistant, _ = _assistant([plan([{"tool": "search_knowledge", "arguments": {"query": "beam loss magnet"}}]),
                               answer("See the passages.")], workspace)
    record = assistant.ask("According to the 2024 beamline notes, which magnet caused the beam losses?")
    hits = next(e["result"]["hits"] for e in record.events if e["type"] == "tool_result")
    assert hits and {h["source"] for h in hits} == {"beamline-notes-2024.md"}
