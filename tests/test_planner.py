"""Plan-then-execute with a scripted model through the real tools: checks before running, replans,
placeholders rendered with units, failed steps contributing no value, retries without unstated arguments."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from physagent.agent import Assistant, ScriptedBackend
from physagent.agent.backends.scripted import answer, call, last_artifact, plan
from physagent.agent.claims import (
    RENDERED_MARK,
    Rendered,
    find_placeholders,
    format_value,
    mislabelled,
    quantity_before,
    render,
)
from physagent.agent.execution import Run
from physagent.agent.grounding import Source, mislabelled_numbers, unsupported_numbers
from physagent.agent.plan import Plan, PlanError, Step, check_plan, complete_plan, parse_plan
from physagent.tools import ToolInputError, Workspace, call_tool, registry

DY = {"process": "drell_yan_mumu", "n_events": 120, "mpi": False, "seed": 2}
ALL_TOOLS = registry.names()


def _assistant(turns: list, workspace: Workspace, **options: object) -> tuple[Assistant, ScriptedBackend]:
    backend = ScriptedBackend(turns)
    return Assistant(backend=backend, workspace=workspace, examples_per_request=0, **options), backend


def _problems(steps: list[dict], answer_text: str = "", artifacts: dict[str, str] | None = None) -> list[str]:
    try:
        check_plan(parse_plan({"steps": steps, "answer": answer_text}), ALL_TOOLS, artifacts or {})
    except PlanError as error:
        return error.problems
    return []


def test_a_plan_with_a_dangling_reference_is_refused_before_any_tool_runs(workspace: Workspace) -> None:
    """'$2.events' in step 1, a field that is no artifact, and an invented id: all refused, nothing runs."""
    problems = _problems([
        {"tool": "cluster_jets", "arguments": {"events": "$2.events"}},
        {"tool": "generate_events", "arguments": DY},
        {"tool": "histogram", "arguments": {"source": "$2.sigma_pb", "field": "m_hat_gev"}},
        {"tool": "plot", "arguments": {"histograms": ["hist-3f2a9c1b7d"]}},
    ], "The mean is {$3.median}.")
    assert any("step 1: events='$2.events' refers to step 2, which does not come before it" in p for p in problems)
    assert any("'sigma_pb' of step 2 (generate_events), which is no artifact; its artifacts are events" in p
               for p in problems)
    assert any("'hist-3f2a9c1b7d' is not an artifact of this session" in p for p in problems)
    assert any("histogram results have no field 'median'" in p for p in problems)

    assistant, backend = _assistant([
        plan([{"tool": "cluster_jets", "arguments": {"events": "$2.events"}},
              {"tool": "generate_events", "arguments": DY}], "Done."),
        answer("I could not make a valid plan."),
    ], workspace, plan_fixes=1)
    record = assistant.ask("Cluster jets in some Drell-Yan events")
    assert record.tool_calls == [] and workspace.list_artifacts() == []
    refusal = backend.seen[1][0][-1]
    assert refusal["role"] == "tool" and "Your plan was NOT run" in refusal["content"]
    assert record.plan[0]["refused"] and record.answer == "I could not make a valid plan."


def test_sound_steps_under_a_broken_answer_template_run_and_are_answered_from_their_results(
        workspace: Workspace) -> None:
    """'{$2.median}' of a histogram (which has no median): the steps still run, and the answer is asked for with the
    results in view instead of refusing a plan that would work."""
    steps = [{"tool": "generate_events", "arguments": DY},
             {"tool": "histogram", "arguments": {"source": "$1.events", "field": "m_hat_gev", "bins": 20,
                                                 "range_min": 60, "range_max": 120}}]
    assistant, backend = _assistant([plan(steps, "The median dimuon mass is {$2.median}."),
                                     answer("The mean dimuon mass is {$2.mean}.")], workspace)
    record = assistant.ask("Generate 120 Drell-Yan events, seed 2, MPI off, and histogram the dimuon mass")
    assert [c["tool"] for c in record.tool_calls] == ["generate_events", "histogram"]
    assert all(c["ok"] for c in record.tool_calls) and len(backend.seen) == 2
    assert backend.seen[1][0][-1]["content"].startswith("Results:\nstep 1 generate_events")
    mean = next(c for c in workspace.calls() if c.tool == "histogram").result["mean"]
    assert record.answer.startswith(f"The mean dimuon mass is {format_value(mean, 'GeV')}")
    assert any("answer template" in finding for finding in record.findings)


def test_schema_errors_and_unknown_tools_are_named_per_step() -> None:
    """A negative count and a made-up tool are refused with the tool's own message."""
    problems = _problems([{"tool": "generate_events", "arguments": {**DY, "n_events": -5}},
                          {"tool": "make_jet_dataset(...)", "arguments": {}}])
    assert problems[0].startswith("step 1: generate_events: n_events=-5 must be greater than or equal to 1")
    assert "step 2: there is no tool 'make_jet_dataset(...)'" in problems[1]


def test_a_plan_runs_and_its_placeholders_render_with_units_and_artifact_ids(workspace: Workspace) -> None:
    """generate → histogram from one reply; the answer's values come from the results, with units and ids."""
    assistant, backend = _assistant([plan([
        {"tool": "generate_events", "arguments": DY},
        {"tool": "histogram", "arguments": {"source": "$1.events", "field": "m_hat_gev", "bins": 30,
                                            "range_min": 60, "range_max": 120}},
    ], "Generated {$1.n_events} events with σ = {$1.sigma_pb}; the dimuon mass peaks at {$2.peak} "
       "(mean {$2.mean}).")], workspace)
    record = assistant.ask("Generate 120 Drell-Yan events without MPI, seed 2, and histogram the dimuon mass")
    assert backend.remaining == 0 and record.ok and record.steps == 1 and record.mode == "plan"
    events_id, hist_id = (a["id"] for a in record.artifacts)
    sigma = next(c for c in workspace.calls() if c.tool == "generate_events").result["sigma_pb"]
    hist = next(c for c in workspace.calls() if c.tool == "histogram").result
    assert f"σ = {format_value(sigma, 'pb')} [{events_id}];" in record.answer
    assert f"peaks at {format_value(hist['peak'], 'GeV')} [{hist_id}]" in record.answer
    assert 80 <= hist["peak"] <= 100 and "{$" not in record.answer
    assert record.timing["tools_s"] > 0


def test_a_failed_step_leads_to_a_replan_that_succeeds(workspace: Workspace) -> None:
    """Step 2 fails at run time; the model sees the error and the results so far and sends a corrected
    plan, whose first step is served from the cache."""
    assistant, backend = _assistant([
        plan([{"tool": "generate_events", "arguments": DY},
              {"tool": "histogram", "arguments": {"source": "$1.events", "field": "jets.pt"}}],
             "The mean is {$2.mean}."),
        plan([{"tool": "generate_events", "arguments": DY},
              {"tool": "histogram", "arguments": {"source": "$1.events", "field": "m_hat_gev", "bins": 20,
                                                  "range_min": 60, "range_max": 120}}],
             "The mean dimuon mass is {$2.mean}."),
    ], workspace)
    record = assistant.ask("Generate 120 Drell-Yan events, seed 2, MPI off, and tell me the mean dimuon mass")
    assert [c["ok"] for c in record.tool_calls] == [True, False, True, True]
    assert record.failed_steps == [{"step": 2, "tool": "histogram", "error": record.tool_calls[1]["error"]}]
    replan_prompt = backend.seen[1][0][-1]["content"]
    assert "Step 2 (histogram) FAILED" in replan_prompt
    assert "step 1 generate_events: generate_events OK" in replan_prompt
    assert len([c for c in workspace.calls() if c.tool == "generate_events" and c.cached_from is None]) == 1
    mean = next(c for c in reversed(workspace.calls()) if c.tool == "histogram").result["mean"]
    assert record.ok and f"The mean dimuon mass is {format_value(mean, 'GeV')}" in record.answer
    assert "failed" not in record.answer


def test_a_failed_step_contributes_no_value_to_the_answer(workspace: Workspace) -> None:
    """With no replans left, the answer says what failed and quotes nothing the step would have made."""
    assistant, _ = _assistant([plan([
        {"tool": "generate_events", "arguments": DY},
        {"tool": "run_python", "arguments": {  # the wrong input id: the code fails its checks
            "code": "import json\nimport awkward as ak\ndata = ak.from_parquet(INPUTS['ev-0000000000'])\n"
                    "print(json.dumps({'fraction': 0.0}))",
            "inputs": ["$1.events"], "values": {"fraction": "float"}}},
    ], "The fraction is {$2.values.fraction}.")], workspace, replans=0)
    record = assistant.ask("Generate 120 Drell-Yan events and compute the fraction of events with two muons")
    assert not record.tool_calls[1]["ok"]
    assert "0.0" not in record.answer.replace("(", " ").split("failed")[0]
    assert "[not available: step 2 (run_python) failed]" in record.answer
    assert "Step 2 (run_python) failed:" in record.answer


def test_when_no_step_ran_the_answer_says_so_whatever_the_model_writes(workspace: Workspace) -> None:
    """Every step failed: the model's 'successfully written' story is not shown; the answer says nothing was done
    and why."""
    assistant, _ = _assistant([plan([{"tool": "read_root", "arguments": {"path": "/no/such/run.root"}}], ""),
                               answer("The histograms have been successfully written to histograms.root.")],
                              workspace, replans=0)
    record = assistant.ask("Load /no/such/run.root and tell me what is in it")
    assert record.answer.startswith("Nothing was done. Step 1 (read_root) failed: ")
    assert "histograms.root" not in record.answer and "/no/such/run.root" in record.answer
    assert [f["tool"] for f in record.failed_steps] == ["read_root"]


def test_a_step_reading_a_session_artifact_as_a_file_is_dropped_for_the_artifact() -> None:
    """read_root(path='hist-….root') for a histogram of the session: the step goes, and the export that referred to
    it takes the histogram's id; a real file path stays."""
    from physagent.agent.references import drop_artifact_reads

    artifacts = {"hist-0123456789": "histogram"}
    planned = parse_plan({"steps": [
        {"tool": "read_root", "arguments": {"path": "hist-0123456789.root", "tree": "hist-0123456789"}},
        {"tool": "read_root", "arguments": {"path": "/data/run.root"}},
        {"tool": "export_histograms", "arguments": {"histograms": ["$1"]}}], "answer": "{$1.n_rows} rows"})
    dropped = drop_artifact_reads(planned, artifacts)
    assert [(s.number, s.tool) for s in dropped.steps] == [(2, "read_root"), (3, "export_histograms")]
    assert dropped.steps[1].arguments == {"histograms": ["hist-0123456789"]} and dropped.answer == ""
    assert dropped.notes == ["step 1 read the session's artifact hist-0123456789 as a file; dropped, hist-0123456789 "
                             "is used as it is"]


def test_a_sample_read_as_a_file_before_a_hepmc_export_is_exported_as_it_is(workspace: Workspace) -> None:
    """'the first 30 events of ev-…' to HepMC3: the model reads the events id as a ROOT file; that step goes, the
    left-out write_hepmc is added for the session's events with the 30 events asked for."""
    def read_as_file(messages: list[dict]) -> object:
        return plan([{"tool": "read_root", "arguments": {"path": last_artifact(messages, "ev"), "tree": "Delphes"}}])

    assistant, _ = _assistant([plan([{"tool": "generate_events", "arguments": DY}], "Made {$1.n_events}."),
                               read_as_file, answer("Wrote {$1.n_events} events.")], workspace)
    events = assistant.ask("Generate 120 Drell-Yan events with MPI off").artifacts[0]["id"]
    record = assistant.ask(f"Write the first 30 events of {events} to HepMC3 for my Rivet analysis")
    assert [(c["tool"], c["arguments"]) for c in record.tool_calls] == [
        ("write_hepmc", {"events": events, "max_events": 30})]
    assert record.ok and record.answer.startswith("Wrote 30 events")


def test_a_median_or_mean_mismatch_is_flagged_and_sent_back_once(workspace: Workspace) -> None:
    """'median' before {$2.mean} is refused before running; the corrected plan runs."""
    steps = [{"tool": "generate_events", "arguments": DY},
             {"tool": "histogram", "arguments": {"source": "$1.events", "field": "m_hat_gev", "bins": 20,
                                                 "range_min": 60, "range_max": 120}}]
    assert mislabelled("The median mass is {$2.mean}.") == [
        "the answer says 'median' before {$2.mean}, but that field is a mean"]
    assert mislabelled("mean {$2.mean} ± {$2.std}; AUC {$1.test_auc}") == []
    assert mislabelled("the mean leading-jet mass peaks at {$2.leading_jet_mean_mass_gev}") == []
    assert mislabelled("the mean is 5 and the peak is {$2.mean}") != []
    assistant, backend = _assistant([plan(steps, "The median mass is {$2.mean}."),
                                     plan(steps, "The mean mass is {$2.mean}.")], workspace)
    record = assistant.ask("Generate 120 Drell-Yan events and give the median dimuon mass")
    assert "that field is a mean" in backend.seen[1][0][-1]["content"]
    assert record.ok and record.answer.startswith("The mean mass is")


def test_steps_the_model_left_out_are_added_to_its_plan(workspace: Workspace) -> None:
    """The model plans generate + histogram twice (advice not taken): the ordered plot of the histogram, in the
    style the user named, and the export are added as steps, run, and recorded as added; a ROOT file of the
    last data made is added likewise; nothing is made up when an added step would lack its input."""
    steps = [{"tool": "generate_events", "arguments": DY},
             {"tool": "histogram", "arguments": {"source": "$1.events", "field": "m_hat_gev", "bins": 20,
                                                 "range_min": 60, "range_max": 120}}]
    assistant, backend = _assistant([plan(steps, "Histogrammed the mass: mean {$2.mean}."),
                                     plan(steps, "Histogrammed the mass: mean {$2.mean}."),
                                     answer("Plotted the mass (mean {$2.mean}) and exported the script.")],
                                    workspace)
    record = assistant.ask("Generate 120 Drell-Yan events, histogram the dimuon mass, plot it in CMS style "
                           "and export the session as a script")
    assert "no step calls plot" in backend.seen[1][0][-1]["content"]
    assert [c["tool"] for c in record.tool_calls] == ["generate_events", "histogram", "plot", "export_session"]
    assert all(c["ok"] for c in record.tool_calls) and record.tool_calls[2]["arguments"]["style"] == "CMS"
    assert record.plan[-1]["added"] == ["step 3 (plot) added: the request asks to plot",
                                        "step 4 (export_session) added: the request asks to export the session"]
    assert {a.kind for a in workspace.list_artifacts()} >= {"events", "histogram", "plot"}
    planned = parse_plan({"steps": steps, "answer": ""})
    saved = complete_plan(planned, "Generate events, histogram them and save the events as a ROOT RNTuple",
                          ["generate_events", "histogram", "write_root"], {})
    assert saved.steps[-1] == Step(3, "write_root", {"source": "$1", "format": "rntuple"})
    alone = parse_plan({"steps": steps[:1], "answer": ""})
    assert complete_plan(alone, "Generate events and plot them", ["generate_events", "plot"], {}) is alone
    histograms = {"hist-0123456789": "histogram", "hist-0123456788": "histogram"}
    exported = complete_plan(parse_plan({"steps": [], "answer": ""}), "For my fit: put hist-0123456789 and "
                             "hist-0123456788 into one .root file as TH1s called mjj and ptj.",
                             ["export_histograms", "write_root", "plot"], histograms)
    assert exported.steps == [Step(1, "export_histograms", {"histograms": list(histograms), "names": ["mjj", "ptj"]})]


def test_a_left_out_training_or_evaluation_step_is_added_with_the_users_settings() -> None:
    """"… and train a BDT on it" with only the dataset step planned gets train_tagger on that dataset with the
    model the user named; "evaluate the tagger" gets evaluate_tagger of the trained model; the session's only
    dataset serves when the plan makes none; two session datasets leave the plan alone (which one is a guess);
    training a surrogate is not read as training a tagger."""
    offered = ["make_jet_dataset", "train_tagger", "evaluate_tagger"]
    dataset = parse_plan({"steps": [{"tool": "make_jet_dataset", "arguments": {"n_jets_per_class": 200}}],
                          "answer": ""})
    trained = complete_plan(dataset, "Make a top dataset with 200 jets per class, then train a BDT on it and "
                                     "evaluate the tagger", offered, {})
    assert trained.steps[1:] == [Step(2, "train_tagger", {"dataset": "$1", "model": "bdt"}),
                                 Step(3, "evaluate_tagger", {"models": ["$2"]})]
    empty = parse_plan({"steps": [{"tool": "evaluate_tagger", "arguments": {"models": ["model-0123456789"]}}],
                        "answer": ""})
    in_session = complete_plan(empty, "train a particlenet on my dataset and evaluate it", offered,
                               {"ds-0123456789": "dataset", "model-0123456789": "model"})
    assert in_session.steps[-1] == Step(2, "train_tagger", {"dataset": "ds-0123456789", "model": "particlenet"})
    two = {"ds-0123456789": "dataset", "ds-abcdef0123": "dataset", "model-0123456789": "model"}
    assert complete_plan(empty, "train a particlenet on the dataset", offered, two) is empty
    assert complete_plan(empty, "train a fast surrogate flow on the showers", offered, two) is empty


def test_a_left_out_fpga_export_exports_the_trained_model_and_compares_when_asked_what_it_costs() -> None:
    """"train … then export it to hls4ml firmware and tell me the AUC" with only the training planned gets
    export_fpga of that model on its dataset; without a question about the cost, no dataset; a plan whose
    precision scan makes the project, or a request that only mentions an FPGA, is left alone."""
    offered = ["train_tagger", "export_fpga", "scan_precision"]
    trained = parse_plan({"steps": [{"tool": "train_tagger", "arguments": {"dataset": "datas-0123456789",
                                                                           "model": "mlp", "quantize_bits": 6}}],
                          "answer": ""})
    session = {"datas-0123456789": "dataset"}
    asked = complete_plan(trained, "Train the jet-feature network at 6 bits, then export it to hls4ml firmware and "
                                   "tell me the AUC of the emulation", offered, session)
    assert asked.steps[1:] == [Step(2, "export_fpga", {"model": "$1", "dataset": "datas-0123456789"})]
    assert asked.notes[-1] == "step 2 (export_fpga) added: the request asks to export the model to FPGA firmware"
    plain = complete_plan(trained, "Train the mlp and convert it to FPGA firmware", offered, session)
    assert plain.steps[1:] == [Step(2, "export_fpga", {"model": "$1"})]
    assert complete_plan(trained, "Train an mlp small enough for an FPGA trigger", offered, session) is trained
    scanned = parse_plan({"steps": [*[{"tool": s.tool, "arguments": s.arguments} for s in trained.steps],
                                    {"tool": "scan_precision", "arguments": {"model": "$1",
                                                                              "dataset": "datas-0123456789"}}],
                          "answer": ""})
    assert complete_plan(scanned, "Train the mlp and export it to firmware at the narrowest width", offered,
                         session) is scanned


def test_a_left_out_comparison_compares_the_generators_samples_with_its_training_data() -> None:
    """"… and tell me how well a classifier tells them from the real ones" after train + sample adds compare_samples
    of the samples against the data the generator learned; two ids written in the request are compared likewise."""
    offered = ["simulate_showers", "train_generator", "sample_generator", "compare_samples"]
    drawn = parse_plan({"steps": [
        {"tool": "simulate_showers", "arguments": {"n_showers": 300}},
        {"tool": "train_generator", "arguments": {"source": "$1.showers", "size": "tiny"}},
        {"tool": "sample_generator", "arguments": {"generator": "$2.generator", "n": 300}}], "answer": ""})
    completed = complete_plan(drawn, "Simulate 300 showers, train a tiny surrogate, sample 300 and tell me how well "
                                     "a classifier tells them from the simulated ones", offered, {})
    assert completed.steps[-1] == Step(4, "compare_samples", {"reference": "$1.showers", "candidate": "$3"})
    nothing = parse_plan({"steps": [], "answer": ""})
    named = complete_plan(nothing, "Are jet-0123456789 and jet-abcdef0123 statistically compatible?", offered,
                          {"jet-0123456789": "jets", "jet-abcdef0123": "jets"})
    assert named.steps == [Step(1, "compare_samples", {"reference": "jet-0123456789", "candidate": "jet-abcdef0123"})]


def test_a_step_using_a_tool_that_does_not_exist_is_a_plan_problem_not_a_crash() -> None:
    """A made-up tool ('calculate_median') that later steps and the answer refer to is named once as a problem."""
    problems = _problems([
        {"tool": "generate_events", "arguments": DY},
        {"tool": "calculate_median", "arguments": {"source": "$1.events"}},
        {"tool": "histogram", "arguments": {"source": "$2", "field": "m_hat_gev"}},
    ], "The median is {$2.median}.")
    assert len(problems) == 1 and problems[0].startswith("step 2: there is no tool 'calculate_median'; use one of")


def test_an_abbreviated_parameter_name_is_taken_for_the_one_parameter_it_abbreviates(workspace: Workspace) -> None:
    """'r' for cluster_jets' radius (the model's shorthand) runs as radius = 1.0 instead of refusing the plan."""
    steps = [{"tool": "generate_events", "arguments": DY},
             {"tool": "cluster_jets", "arguments": {"events": "$1.events", "r": 1.0, "pt_min_gev": 20}}]
    assistant, _ = _assistant([plan(steps, "Clustered {$2.n_jets} jets.")], workspace, hygiene=True)
    record = assistant.ask("Generate 120 Drell-Yan events, seed 2, MPI off, and cluster R = 1.0 jets above 20 GeV")
    assert [c["tool"] for c in record.tool_calls] == ["generate_events", "cluster_jets"]
    assert record.tool_calls[1]["arguments"]["radius"] == 1.0 and record.ok


def test_an_unstated_argument_the_tool_rejects_is_retried_without_it(workspace: Workspace) -> None:
    """A decay mode for a process that has none is dropped and the call retried; a stated one would not be."""
    assistant, _ = _assistant([plan([{"tool": "generate_events", "arguments": {**DY, "decay": "leptonic"}}],
                                    "Generated {$1.n_events} events.")], workspace)
    record = assistant.ask("Generate 120 Drell-Yan events, seed 2, MPI off")
    assert [c["ok"] for c in record.tool_calls] == [False, True]
    assert "decay" in record.tool_calls[0]["arguments"] and "decay" not in record.tool_calls[1]["arguments"]
    assert record.ok and "Generated 120 events" in record.answer


@pytest.mark.usefixtures("grant_pytest_temp")
def test_a_rejected_derived_field_is_mended_from_the_tools_list_or_replanned_not_dropped(
    workspace: Workspace, tmp_path: Path,
) -> None:
    """summarize(fields=['lepton.pt']) on a table is refused with its columns; 'the mean lepton pT' names one of
    them (lep_pt): the call is retried with it. For events, 'the pT' fits no listed name alone: the model replans
    with the list in view. Dropping the fields would compute nothing asked."""
    import awkward as ak

    from physagent.tools import call_tool

    ak.to_parquet(ak.Array({"lep_pt": [40.0, 50.0], "lep_eta": [0.1, -1.2], "met_et": [20.0, 30.0]}),
                  tmp_path / "leptons.parquet")
    table = call_tool("read_table", {"path": str(tmp_path / "leptons.parquet")}, workspace=workspace).result.data.id
    guessed = [{"tool": "summarize", "arguments": {"source": table, "fields": ["lepton.pt"]}}]
    assistant, _ = _assistant([plan(guessed, "Mean {$1.stats.lep_pt.mean}.")], workspace)
    record = assistant.ask(f"What is the mean lepton pT in {table}?")
    assert [(c["ok"], c["arguments"]["fields"]) for c in record.tool_calls] == [(False, ["lepton.pt"]),
                                                                                 (True, ["lep_pt"])]
    assert record.ok and record.answer.startswith("Mean 45")
    wrong = [{"tool": "generate_events", "arguments": DY},
             {"tool": "summarize", "arguments": {"source": "$1.events", "fields": ["muon.pt"]}}]
    right = [wrong[0], {"tool": "summarize", "arguments": {"source": "$1.events", "fields": ["muons.pt"]}}]
    assistant, backend = _assistant([plan(wrong, "Mean {$2.stats.muon_pt_gev.mean}."),
                                     plan(right, "Mean {$2.stats.muons_pt_gev.mean}.")], workspace)
    record = assistant.ask("Generate 120 Drell-Yan events with MPI off and summarise the pT")
    summaries = [c for c in record.tool_calls if c["tool"] == "summarize"]
    assert [(c["ok"], c["arguments"]["fields"]) for c in summaries] == [(False, ["muon.pt"]), (True, ["muons.pt"])]
    assert "muons.*" in backend.seen[1][0][-1]["content"] and record.ok


def test_a_stated_value_is_passed_as_stated_and_refused_by_the_tool(workspace: Workspace) -> None:
    """The user's -5 reaches the checker unchanged; the tool's own message becomes the refusal, at once."""
    assistant, backend = _assistant([
        plan([{"tool": "generate_events", "arguments": {"process": "ttbar", "n_events": 5}}], "Done."),
    ], workspace, hygiene=True)
    record = assistant.ask("generate -5 ttbar events")
    assert backend.remaining == 0 and record.plan[0]["refused"]
    assert record.ok and workspace.list_artifacts() == []
    assert record.answer.startswith("I can't do this as asked: generate_events: n_events=-5 must be greater than "
                                    "or equal to 1")


def test_numbers_typed_freely_are_checked_with_their_quantity() -> None:
    """A mean quoted as a median is mislabelled; a stray zero does not support 'the fraction is 0'."""
    sources = [Source(172.4, "mean"), Source(0.0, None), Source(12.0, "std")]
    assert mislabelled_numbers("The median jet mass is 172.4 GeV.", sources) == ["172.4"]
    assert mislabelled_numbers("The mean jet mass is 172.4 GeV.", sources) == []
    assert unsupported_numbers("The fraction is 0.", sources) == ["0"]
    assert unsupported_numbers("I made 2 plots and 1 histogram.", sources) == []
    assert unsupported_numbers("The fraction is 0.", [Source(0.0, "fraction")]) == []


def test_a_quantity_word_labels_only_the_value_that_follows_it() -> None:
    """'AUC 0.80, SIC 1.91 at ε_S = 0.2': the 0.2 is a signal efficiency, not a second AUC, also when the AUC's
    value was rendered from a result (its span blanked to a mark before typed numbers are checked); a median
    written right before a mean's value is still caught."""
    sources = [Source(0.8, "auc"), Source(1.91, None), Source(0.2, "efficiency"), Source(172.4, "mean")]
    assert mislabelled_numbers("It reaches AUC 0.80, SIC 1.91 at ε_S = 0.2.", sources) == []
    assert mislabelled_numbers(f"It reaches AUC {RENDERED_MARK}     , SIC {RENDERED_MARK}     at ε_S = 0.2.",
                               sources) == []
    assert mislabelled_numbers("The AUC is 0.2.", sources) == ["0.2"]
    assert mislabelled_numbers("The AUC of 0.80 and a median of 172.4 GeV.", sources) == ["172.4"]


def test_placeholders_and_quantity_words_are_found() -> None:
    """Both placeholder forms parse; the nearest quantity word in the clause is the one that counts."""
    found = find_placeholders("σ = {$1.sigma_pb}, peak {hist-3f2a9c1b7d:peak}, f = {$2.values.fraction}")
    assert [(p.step, p.artifact, p.path) for p in found] == [
        (1, None, "sigma_pb"), (None, "hist-3f2a9c1b7d", "peak"), (2, None, "values.fraction")]
    assert quantity_before("the mean is 3 and the median of the mass is ", 44) == "median"
    assert format_value(555.2341, "pb") == "555.2 pb" and format_value(0.000123) == "1.230e-04"


def test_write_code_in_a_plan_writes_runs_and_validates_code_for_the_model(workspace: Workspace) -> None:
    """A computation no tool names: the plan says what; a focused code turn (seeing the row type) writes it."""
    code = ("import json\nimport awkward as ak\ndata = ak.from_parquet(INPUT_FILES[0])\n"
            "muons = data.particles[abs(data.particles.pid) == 13]\n"
            "pt = (muons.px ** 2 + muons.py ** 2) ** 0.5\n"
            "print(json.dumps({'fraction': float(ak.mean(ak.sum(pt > 20, axis=1) >= 2))}))")
    assistant, backend = _assistant([
        plan([{"tool": "generate_events", "arguments": DY},
              {"tool": "write_code", "arguments": {"task": "fraction of events with two muons above 20 GeV",
                                                   "inputs": ["$1.events"], "values": {"fraction": "float"}}}],
             "The fraction of events with two muons above 20 GeV is {$2.values.fraction}."),
        lambda m: call("submit_code", code=code),
    ], workspace, mode="plan")
    record = assistant.ask("Generate 120 Drell-Yan events, seed 2, MPI off; compute the fraction of events with "
                           "two muons above 20 GeV")
    code_prompt = backend.seen[1][0][-1]["content"]
    assert "INPUTS[" in code_prompt and "each row:" in code_prompt and "particles" in code_prompt
    fraction = next(c for c in workspace.calls() if c.tool == "run_python").result["values"]["fraction"]
    assert 0.3 < fraction <= 1.0 and record.ok
    assert f"is {format_value(fraction)}" in record.answer


def test_an_answer_without_the_quantity_asked_for_is_sent_back_once(workspace: Workspace) -> None:
    """'the fraction' answered with a mean multiplicity is refused before running; the fixed plan runs."""
    steps = [{"tool": "generate_events", "arguments": DY},
             {"tool": "summarize", "arguments": {"source": "$1.events", "selection": "count(muons.pt > 20) >= 2"}}]
    assistant, backend = _assistant([plan(steps, "On average {$2.multiplicities.muons.mean} muons per event."),
                                     plan(steps, "A fraction of {$2.fraction_passing} of the events pass.")],
                                    workspace)
    record = assistant.ask("Generate 120 Drell-Yan events; what fraction has two muons above 20 GeV?")
    assert "asks for the fraction, but no placeholder in the answer holds one (write {$2.fraction_passing})" in (
        backend.seen[1][0][-1]["content"])
    fraction = next(c for c in workspace.calls() if c.tool == "summarize").result["fraction_passing"]
    assert record.ok and f"A fraction of {format_value(fraction)}" in record.answer and 0.5 < fraction <= 1


def test_a_quantity_still_missing_after_the_advice_is_added_by_the_loop(workspace: Workspace) -> None:
    """The model ignores the advice and sends the same answer: the fraction the request asks for is appended as the
    placeholder the advice named, and rendered from the result."""
    steps = [{"tool": "generate_events", "arguments": DY},
             {"tool": "summarize", "arguments": {"source": "$1.events", "selection": "count(muons.pt > 20) >= 2"}}]
    same = plan(steps, "On average {$2.multiplicities.muons.mean} muons per event.")
    assistant, _ = _assistant([same, same], workspace)
    record = assistant.ask("Generate 120 Drell-Yan events; what fraction has two muons above 20 GeV?")
    fraction = next(c for c in workspace.calls() if c.tool == "summarize").result["fraction_passing"]
    assert record.ok and f"Fraction passing: {format_value(fraction)}" in record.answer
    assert any("the loop added" in finding for finding in record.findings)


def test_an_answer_written_after_the_results_without_the_quantity_asked_for_is_sent_back_once(
    workspace: Workspace,
) -> None:
    """A plan with no answer template: the answer written from the results quotes a mean where the request asks
    for a fraction; it is sent back with the field that holds one, and the second answer is rendered."""
    steps = [{"tool": "generate_events", "arguments": DY},
             {"tool": "summarize", "arguments": {"source": "$1.events", "selection": "count(muons.pt > 20) >= 2"}}]
    assistant, backend = _assistant([plan(steps, ""), answer("On average {$2.multiplicities.muons.mean} muons."),
                                     answer("A fraction of {$2.fraction_passing} of the events pass.")], workspace)
    record = assistant.ask("Generate 120 Drell-Yan events; what fraction has two muons above 20 GeV?")
    assert backend.remaining == 0
    assert "(write {$2.fraction_passing})" in backend.seen[2][0][-1]["content"]
    fraction = next(c for c in workspace.calls() if c.tool == "summarize").result["fraction_passing"]
    assert record.ok and f"A fraction of {format_value(fraction)}" in record.answer


def test_a_statistic_no_step_computes_is_sent_back_with_a_summarize_step_to_add(workspace: Workspace) -> None:
    """'give me the mean muon pT': summarize is offered first (the generators outrank it on similarity), and a plan
    that only generates is sent back naming the summarize step to add; the second plan's mean is rendered."""
    made = [{"tool": "generate_events", "arguments": DY}]
    both = [*made, {"tool": "summarize", "arguments": {"source": "$1.events", "fields": ["muons.pt"]}}]
    assistant, backend = _assistant([plan(made, "Generated {$1.n_events} events."),
                                     plan(both, "The mean muon pT is {$2.stats.muons_pt_gev.mean}.")], workspace)
    record = assistant.ask("Generate 120 Drell-Yan events with MPI off and give me the mean muon pT in GeV.")
    assert record.events[0]["tools"][0] == "summarize"
    assert ("no step computes it: add step 2 summarize with source '$1' and the field asked for, and write "
            "{$2.stats.<field>.mean}") in backend.seen[1][0][-1]["content"]
    mean = next(c for c in workspace.calls() if c.tool == "summarize").result["stats"]["muons_pt_gev"]["mean"]
    assert record.ok and format_value(mean) in record.answer and 20 < mean < 60


def test_a_plan_that_takes_the_advice_by_dropping_an_asked_step_is_not_run(workspace: Workspace) -> None:
    """Sent back because the answer lacks the event yield, the model drops the histogram the request orders: the
    advised plan runs instead and the loop adds the histogram's Σw, which equals σ·L."""
    steps = [{"tool": "generate_events", "arguments": DY},
             {"tool": "histogram", "arguments": {"source": "$1.events", "field": "m_hat_gev", "luminosity_fb": 10}}]
    assistant, _ = _assistant([plan(steps, "σ = {$1.sigma_pb}."), plan(steps[:1], "σ = {$1.sigma_pb}.")], workspace)
    record = assistant.ask("How many Drell-Yan events does 10 fb^-1 hold? Generate 120 Drell-Yan events with MPI off "
                           "and histogram m-hat weighted to 10 fb^-1.")
    assert [c["tool"] for c in record.tool_calls] == ["generate_events", "histogram"]
    histogram = next(c for c in workspace.calls() if c.tool == "histogram").result
    assert histogram["sum_weights"] == pytest.approx(histogram["sigma_pb"] * 1000 * 10, rel=1e-6)
    assert record.ok and f"Sum weights: {format_value(histogram['sum_weights'])}" in record.answer
    assert any("the plan before it ran" in finding for finding in record.findings)


def test_a_left_out_merge_and_histogram_of_two_slices_are_added_in_pipeline_order() -> None:
    """Two generated slices, then 'Merge them … histogram pT-hat … to 2 fb^-1' left out: merge_samples of both
    slices, then the histogram of the merged sample with the field, axis and luminosity written; a histogram whose
    field the request does not name is not added."""
    slices = [{"tool": "generate_events", "arguments": {"process": "z_jets", "n_events": 150}}] * 2
    planned = parse_plan({"steps": slices, "answer": ""})
    request = ("Generate 150 Z+jet events with pT-hat between 30 and 60 GeV and 150 with pT-hat above 60 GeV. Merge "
               "them, then histogram pT-hat from 0 to 300 GeV weighted to 2 fb^-1.")
    completed = complete_plan(planned, request, ["generate_events", "merge_samples", "histogram"], {})
    assert [(s.tool, s.arguments) for s in completed.steps[2:]] == [
        ("merge_samples", {"samples": ["$1", "$2"]}),
        ("histogram", {"source": "$3", "field": "pt_hat_gev", "range_min": 0, "range_max": 300, "luminosity_fb": 2})]
    unnamed = complete_plan(planned, "Generate two Z+jet slices, merge them and histogram it",
                            ["generate_events", "merge_samples", "histogram"], {})
    assert [s.tool for s in unnamed.steps[2:]] == ["merge_samples"]


def test_a_plan_without_an_answer_that_computes_no_asked_statistic_is_sent_back(workspace: Workspace) -> None:
    """A plan that only generates, with the answer left for later, for 'the median muon pT': sent back naming the
    summarize step; the plan with it runs and its median is rendered."""
    made = [{"tool": "generate_events", "arguments": DY}]
    both = [*made, {"tool": "summarize", "arguments": {"source": "$1.events", "fields": ["muons.pt"]}}]
    median_text = "The median muon pT is {$2.stats.muons_pt_gev.median}."
    assistant, backend = _assistant([plan(made, ""), plan(both, median_text)], workspace)
    record = assistant.ask("Generate 120 Drell-Yan events with MPI off; what is the median muon pT in GeV?")
    assert ("the request asks for the median, but no step computes it: add step 2 summarize with source '$1'"
            in backend.seen[1][0][-1]["content"])
    median = next(c for c in workspace.calls() if c.tool == "summarize").result["stats"]["muons_pt_gev"]["median"]
    assert record.ok and format_value(median) in record.answer


def test_a_count_of_other_objects_is_not_the_multiplicity_asked_for() -> None:
    """'the average number of jets per event': generate_events' mean_particles (particles per event) does not hold
    it, so a plan without summarize computes nothing asked; 'particles per event' still finds mean_particles."""
    from physagent.agent.planner import _asked_field

    steps = [{"tool": "generate_events", "arguments": DY}, {"tool": "cluster_jets", "arguments": {"events": "$1"}}]
    planned = parse_plan({"steps": steps, "answer": ""})
    jets = _asked_field(planned, "mean", "cluster jets and tell me the average number of jets per event")
    assert jets is not None and jets[1] != "mean_particles" and jets[2] == 0
    asked = _asked_field(planned, "mean", "cluster jets and tell me how many jets an event has on average")
    assert asked is not None and asked[1] != "mean_particles"
    particles = _asked_field(planned, "mean", "what is the average number of particles per event?")
    assert particles is not None and particles[1] == "mean_particles"


def test_numbers_no_result_gives_are_sent_back_once_and_the_answer_is_written_without_them(
    workspace: Workspace,
) -> None:
    """'p̂T > 250 GeV, seed 9817' copied from a worked example into the answer: the model is told which numbers have no
    source and writes the answer again; the second answer is shown, with no unverified numbers."""
    made = [{"tool": "generate_events", "arguments": DY}]
    # no passages: what the bundled books say is no part of this check (a clean clone's retrieval once held "21",
    # then "250", and supported the copied numbers)
    assistant, backend = _assistant([plan(made, "Made {$1.n_events} events with p̂T > 250 GeV, seed 9817."),
                                     answer("Made {$1.n_events} Drell-Yan events.")], workspace, retrieve_first=False)
    record = assistant.ask("Generate 120 Drell-Yan events with MPI off")
    assert "The numbers 250, 9817 are in no tool result" in backend.seen[1][0][-1]["content"]
    assert record.answer.startswith("Made 120 Drell-Yan events") and "unverified" not in record.answer


def test_the_merged_cross_section_asked_for_is_added_beside_a_slice_s(workspace: Workspace) -> None:
    """'the total cross-section of the merged sample' answered with the first slice's σ: the merged sample's
    total σ (the sum of the slices') is added by the loop, labelled from its description."""
    slices = [{"tool": "generate_events", "arguments": {**DY, "m_hat_max_gev": 100}},
              {"tool": "generate_events", "arguments": {**DY, "m_hat_min_gev": 100, "m_hat_max_gev": 200}},
              {"tool": "merge_samples", "arguments": {"samples": ["$1", "$2"]}}]
    assistant, _ = _assistant([plan(slices, "The first slice has σ = {$1.sigma_pb}.")], workspace)
    record = assistant.ask("Generate 120 Drell-Yan events with MPI off and m-hat from 60 to 100 GeV and 120 from "
                           "100 to 200 GeV, merge them, and give me the total cross-section of the merged sample.")
    merged = next(c for c in workspace.calls() if c.tool == "merge_samples").result
    assert merged["sigma_pb"] == pytest.approx(sum(s["sigma_pb"] for s in merged["slices"]))
    assert record.ok and f"Total cross-section Σσ_k: {format_value(merged['sigma_pb'])}" in record.answer


def test_a_model_giving_up_after_a_refused_plan_is_overruled_by_the_derivable_steps(workspace: Workspace) -> None:
    """The session holds two histograms; the model's plan reads '$1.root' (refused) and it then says the files do
    not exist: the export the request orders follows from the named ids and the keys given, so it runs."""
    made = [{"tool": "generate_events", "arguments": DY},
            {"tool": "histogram", "arguments": {"source": "$1.events", "field": "m_hat_gev"}},
            {"tool": "histogram", "arguments": {"source": "$1.events", "field": "pt_hat_gev"}}]
    broken = [{"tool": "read_root", "arguments": {"path": "$1.root"}}]
    assistant, _ = _assistant([plan(made, "Made {$2.entries} entries."), plan(broken, ""),
                               answer("This cannot be done: the files do not exist."),
                               answer("Both histograms are in one ROOT file now.")], workspace)
    first = assistant.ask("Generate 120 Drell-Yan events with MPI off, histogram m-hat and pT-hat")
    mass, pt = [a["id"] for a in first.artifacts if a["kind"] == "histogram"]
    record = assistant.ask(f"Save {mass} and {pt} to one ROOT file as TH1s named mdy and ptdy.")
    assert [(c["tool"], c["arguments"]) for c in record.tool_calls] == [
        ("export_histograms", {"histograms": [mass, pt], "names": ["mdy", "ptdy"]})]
    assert record.ok and any("were derived from it and ran" in finding for finding in record.findings)


def test_a_reply_to_advice_with_only_the_step_to_add_continues_the_advised_plan(workspace: Workspace) -> None:
    """Told to add a summarize step, the model sends only that step (numbered 1, reading '$1', its answer quoting
    {$2…}): it runs after the advised plan's generation, and the median is rendered."""
    made = [{"tool": "generate_events", "arguments": DY}]
    added = [{"tool": "summarize", "arguments": {"source": "$1", "fields": ["muons.pt"]}}]
    assistant, _ = _assistant([plan(made, ""), plan(added, "Median {$2.stats.muons_pt_gev.median}.")], workspace)
    record = assistant.ask("Generate 120 Drell-Yan events with MPI off; what is the median muon pT in GeV?")
    assert [c["tool"] for c in record.tool_calls] == ["generate_events", "summarize"]
    median = next(c for c in workspace.calls() if c.tool == "summarize").result["stats"]["muons_pt_gev"]["median"]
    assert record.ok and record.answer.startswith(f"Median {format_value(median)}")


def test_a_number_from_a_listed_session_artifacts_summary_is_supported(workspace: Workspace) -> None:
    """A histogram made before the chat (an upload, an earlier session) is listed to the model with its summary;
    'the 17-bin histogram' quotes that summary, so 17 is no unverified number, while 23 (nowhere) is sent back."""
    from physagent.tools import call_tool

    events = call_tool("generate_events", DY, workspace=workspace).result.events.id
    histogram = call_tool("histogram", {"source": events, "field": "m_hat_gev", "bins": 17, "range_min": 60,
                                        "range_max": 120}, workspace=workspace).result.histogram.id
    drawn = plan([{"tool": "plot", "arguments": {"histograms": [histogram]}}],
                 "Drew the 17-bin histogram, and 23 more.")
    assistant, backend = _assistant([drawn, answer("Drew the 17-bin histogram.")], workspace)
    record = assistant.ask(f"Draw {histogram}")
    assert "The numbers 23 are in no tool result" in backend.seen[1][0][-1]["content"]
    assert record.ok and record.answer.startswith("Drew the 17-bin histogram") and record.unsupported == []


def test_a_placeholder_into_a_one_entry_mapping_reads_that_entry() -> None:
    """{$2.stats.particles.pt.mean} when summarize computed only lep_pt: the one entry is the value meant; with two
    entries nothing is guessed."""
    from physagent.agent.claims import resolve_path

    one = {"stats": {"lep_pt": {"mean": 45.5, "count": 8}}}
    assert resolve_path(one, "stats.particles.pt.mean") == 45.5 and resolve_path(one, "stats.lepton_pt.count") == 8
    two = {"stats": {"lep_pt": {"mean": 45.5}, "lep_eta": {"mean": 0.1}}}
    with pytest.raises(KeyError):
        resolve_path(two, "stats.particles.pt.mean")
    with pytest.raises(KeyError):
        resolve_path(one, "stats.particles.pt.median")


def test_a_left_out_hepmc_export_is_added_for_the_generated_events() -> None:
    """'… and write them to a HepMC3 file': a plan that only generates gets a write_hepmc step of its events."""
    planned = parse_plan({"steps": [{"tool": "generate_events", "arguments": DY}], "answer": ""})
    request = "Generate 120 Drell-Yan events with MPI off and write them to a HepMC3 file for Rivet"
    completed = complete_plan(planned, request, ["generate_events", "write_hepmc"], {})
    assert [(s.tool, s.arguments) for s in completed.steps[1:]] == [("write_hepmc", {"events": "$1"})]
    assert completed.notes == ["step 2 (write_hepmc) added: the request asks to write a HepMC3 file"]
    handed = complete_plan(planned, "Shower 120 Drell-Yan events, then give me them as a HepMC3 file",
                           ["generate_events", "write_hepmc"], {})
    assert [s.tool for s in handed.steps] == ["generate_events", "write_hepmc"]


def test_a_shortened_field_name_is_mended_to_the_one_field_it_can_mean(workspace: Workspace) -> None:
    """{$2.mean_mass_gev} of cluster_jets can only mean leading_jet_mean_mass_gev: rendered from it without a
    retry; a placeholder several fields could mean ({$2.mean}) is not guessed."""
    steps = [{"tool": "generate_events", "arguments": DY},
             {"tool": "cluster_jets", "arguments": {"events": "$1.events", "pt_min_gev": 5}}]
    assistant, backend = _assistant([plan(steps, "The leading jet's mean mass is {$2.mean_mass_gev}.")], workspace)
    record = assistant.ask("Generate 120 Drell-Yan events, cluster jets above 5 GeV: what is the leading jet's "
                           "mean mass?")
    mass = next(c for c in workspace.calls() if c.tool == "cluster_jets").result["leading_jet_mean_mass_gev"]
    assert backend.remaining == 0 and record.ok
    assert f"mean mass is {format_value(mass, 'GeV')}" in record.answer
    assert "mended {$2.mean_mass_gev} to the field leading_jet_mean_mass_gev" in record.findings
    from physagent.agent.claims import field_meant

    assert field_meant("mean", ["leading_jet_mean_pt_gev", "leading_jet_mean_mass_gev"]) is None


def test_a_maximum_is_asked_for_only_right_after_an_asking_word() -> None:
    """'what maximum SIC' asks for a maximum (a SIC at a fixed working point is not one); the highest-pT jet and a
    maximum η setting do not, and a peak answers a maximum."""
    from physagent.agent.claims import missing_quantities

    asked = "What maximum significance improvement does the idealized detector reach?"
    assert [q for q, _ in missing_quantities(asked, "{$1.sic_at_signal_eff_0p2}")] == ["maximum"]
    assert missing_quantities(asked, "{$1.max_sic}") == []
    assert missing_quantities("What is the mass of the highest-pT jet?", "{$1.mass_gev}") == []
    assert missing_quantities("With a maximum η of 2.5, what is the mean jet pT?", "{$1.mean}") == []
    assert missing_quantities("What is the maximum of the dijet mass distribution?", "{$1.peak}") == []


def test_an_answer_with_placeholders_but_no_plan_is_asked_to_plan(workspace: Workspace) -> None:
    """'σ = {$1.sigma_pb}' with no steps is not rendered as missing values: the model is asked for the plan."""
    assistant, backend = _assistant([
        answer("The cross-section is {$1.sigma_pb}."),
        plan([{"tool": "generate_events", "arguments": DY}], "The cross-section is {$1.sigma_pb}."),
    ], workspace)
    record = assistant.ask("What is the Drell-Yan cross-section? 120 events, seed 2, MPI off")
    assert "you sent no plan" in backend.seen[1][0][-1]["content"]
    assert record.ok and "not available" not in record.answer and " pb [ev-" in record.answer


def test_a_plan_that_skips_a_step_the_request_names_is_sent_back_once() -> None:
    """'…and plot it' with no plot step, and 'cluster' with no cluster_jets, are named."""
    from physagent.agent.plan import missing_actions

    skipped = parse_plan({"steps": [{"tool": "generate_events", "arguments": DY},
                                    {"tool": "histogram", "arguments": {"source": "$1.events", "field": "m_hat_gev"}}],
                          "answer": "The mean is {$2.mean}."})
    request = "Generate QCD dijets, cluster anti-kT R = 0.4 jets and plot the leading-jet pT on a log scale."
    assert missing_actions(request, skipped, ALL_TOOLS, {}) == [
        "the request asks to plot, but no step calls plot", "the request asks to cluster jets, but no step calls "
        "cluster_jets"]
    assert missing_actions("plot that histogram in log scale", parse_plan({"steps": [
        {"tool": "plot", "arguments": {"histograms": ["hist-0123456789"]}}]}), ALL_TOOLS,
        {"hist-0123456789": "histogram"}) == []


def test_an_answer_that_only_repeats_the_loops_feedback_is_not_shown_as_an_answer(workspace: Workspace) -> None:
    """A refused plan's problems parroted back as the 'answer' are removed; the user is told what went wrong."""
    assistant, _ = _assistant([
        plan([{"tool": "generate_events", "arguments": {"process": "ttbar", "n_events": 20, "seed": -1}}], "Done."),
        answer("Your plan was NOT run. Problems: step 1: generate_events: seed=-1 must be greater than or "
               "equal to 0 — Random seed; same seed and shards, same events."),
    ], workspace)
    record = assistant.ask("generate 20 ttbar events")
    assert not record.answer.startswith("Your plan was NOT run")
    assert record.answer.startswith("I could not produce an answer: step 1: generate_events: seed=-1")
    assert "the answer only echoed the instructions" in record.findings


def test_advice_the_model_does_not_take_leaves_its_plan_to_run(workspace: Workspace) -> None:
    """Sent back only for advice (a skipped plot), a text reply instead of a new plan runs the first plan,
    completed with the plot; a skipped histogram (its field unknown) is not made up but reported."""
    steps = [{"tool": "generate_events", "arguments": DY},
             {"tool": "histogram", "arguments": {"source": "$1.events", "field": "m_hat_gev", "bins": 20,
                                                 "range_min": 60, "range_max": 120}}]
    assistant, backend = _assistant([plan(steps, "The dimuon mass peaks at {$2.peak}."),
                                     answer("The request asks to plot, but no step calls plot.")], workspace)
    record = assistant.ask("Generate 120 Drell-Yan events, histogram the dimuon mass and plot it")
    assert "the request asks to plot, but no step calls plot" in backend.seen[1][0][-1]["content"]
    assert [c["tool"] for c in record.tool_calls] == ["generate_events", "histogram", "plot"]
    assert record.answer.startswith("The dimuon mass peaks at") and "Not done" not in record.answer
    other = Workspace(workspace.root.parent / "other")
    assistant, _ = _assistant([plan(steps[:1], "Generated {$1.n_events} events."), answer("Done.")], other)
    record = assistant.ask("Generate 120 Drell-Yan events and histogram the dimuon mass")
    assert [c["tool"] for c in record.tool_calls] == ["generate_events"]
    assert record.answer.endswith("Not done: histogram (no step ran it).")


def test_a_refusal_is_the_users_only_for_a_value_they_gave_that_very_parameter() -> None:
    """'from 0 to 400 GeV' does not make the model's eta_max=0 the user's value; '-5 events' is theirs."""
    from physagent.agent.planner import _caused_by_request

    zjets = [{"role": "user", "content": "Cluster R = 0.4 jets and histogram the leading-jet pT from 0 to 400 GeV"}]
    assert not _caused_by_request(["step 2: cluster_jets: eta_max=0 must be greater than 0 — Maximum jet |η|."], zjets)
    negative = [{"role": "user", "content": "generate -5 ttbar events"}]
    assert _caused_by_request(["step 1: generate_events: n_events=-5 must be greater than or equal to 1 — Events."],
                              negative)


def test_how_many_events_a_luminosity_holds_asks_for_the_weighted_histogram_sum() -> None:
    """'How many tt̄ events in 139 fb⁻¹?' answered with σ lacks the event yield, and the hint names the histogram's
    sum_weights; 'how many events pass the cut' (no luminosity) asks for no yield."""
    from physagent.agent.claims import missing_quantities
    from physagent.agent.planner import _hint

    asked = "How many ttbar events are produced in 139 fb^-1? Generate 300 events and histogram pT-hat."
    assert [q for q, _ in missing_quantities(asked, "σ = {$1.sigma_pb}")] == ["event_yield"]
    assert missing_quantities(asked, "{$2.sum_weights} events") == []
    assert missing_quantities("How many events pass the cut?", "{$1.n_passing}") == []
    steps = parse_plan({"steps": [{"tool": "generate_events", "arguments": {}},
                                  {"tool": "histogram", "arguments": {}}], "answer": ""})
    assert _hint(steps, "event_yield", asked) == " (write {$2.sum_weights})"


def test_the_hint_for_a_missing_quantity_names_the_field_the_request_describes() -> None:
    """"On average, how many cells fire?" → mean_hits_per_shower (its description says cells), not the first mean."""
    from physagent.agent.planner import _hint

    showers = parse_plan({"steps": [{"tool": "simulate_showers", "arguments": {}}], "answer": ""})
    assert _hint(showers, "mean", "On average, how many cells fire per shower?") == " (write {$1.mean_hits_per_shower})"
    assert _hint(showers, "mean", "What is the mean incident energy?") == " (write {$1.mean_incident_energy_gev})"


def test_an_angle_setting_echoed_in_a_result_supports_a_zero_in_the_answer() -> None:
    """"… at 0° …" is supported by the result's theta_deg = 0 (an angle, a quantity nobody asks for); a 0 no result
    holds is still unsupported, and asking for an angle is not a missing quantity."""
    from physagent.agent.claims import missing_quantities
    from physagent.agent.grounding import sources_in

    sources = sources_in({"theta_deg": 0.0, "n_showers": 200})
    assert unsupported_numbers("200 photon showers at 0° in the ECAL", sources) == []
    assert unsupported_numbers("the fraction is 0", sources_in({"n_showers": 200})) == ["0"]
    assert missing_quantities("photons at 20 degrees: what is the sampling fraction?", "{$1.sampling_fraction}") == []


def test_a_made_up_id_or_tool_name_is_taken_for_the_one_output_it_can_mean(workspace: Workspace) -> None:
    """'jet-12345' for the jets of the step before, the tool name 'generate_events' for its events: the plan
    runs on the real outputs and the notes say so; with two candidate artifacts nothing is guessed."""
    steps = [{"tool": "generate_events", "arguments": DY},
             {"tool": "cluster_jets", "arguments": {"events": "generate_events", "radius": 0.4}},
             {"tool": "histogram", "arguments": {"source": "jet-12345", "field": "jets.pt", "bins": 10}}]
    assistant, _ = _assistant([plan(steps, "Filled {$3.entries} jets.")], workspace, hygiene=True)
    record = assistant.ask("Generate 120 Drell-Yan events, seed 2, MPI off, cluster R = 0.4 jets and histogram "
                           "their pT in 10 bins")
    assert [c["tool"] for c in record.tool_calls] == ["generate_events", "cluster_jets", "histogram"]
    assert record.ok and any("'jet-12345' is no artifact; took $2.jets" in f for f in record.findings)

    from physagent.agent.references import mend_invented_ids

    two = {"ev-0000000001": "events", "ev-0000000002": "events"}
    unclear = parse_plan({"steps": [{"tool": "cluster_jets", "arguments": {"events": "ev-12345"}}]})
    assert mend_invented_ids(unclear, two) is unclear
    one = mend_invented_ids(unclear, {"ev-0000000001": "events", "hist-0000000003": "histogram"})
    assert one.steps[0].arguments["events"] == "ev-0000000001"


def test_a_left_out_bump_hunt_fits_the_last_searchs_scores_and_an_autoencoder_is_no_tagger() -> None:
    """"… train an autoencoder on it and bump hunt" with the search planned gets bump_hunt on that search's
    scores (not train_tagger: an autoencoder is no tagger); with no search, the session's anomaly dataset."""
    offered = ["autoencoder_search", "bump_hunt", "train_tagger"]
    session = {"ad-0123456789": "anomaly_dataset"}
    searched = parse_plan({"steps": [{"tool": "autoencoder_search", "arguments": {"dataset": "ad-0123456789"}}],
                           "answer": ""})
    completed = complete_plan(searched, "Train an autoencoder on ad-0123456789 and bump hunt the 5% most "
                                        "anomalous events", offered, session)
    assert [s.tool for s in completed.steps] == ["autoencoder_search", "bump_hunt"]
    assert completed.steps[1].arguments["source"] == "$1.scores"
    nothing = parse_plan({"steps": [], "answer": ""})
    fitted = complete_plan(nothing, "fit the dijet mass sidebands", offered, session)
    assert fitted.steps == [Step(1, "bump_hunt", {"source": "ad-0123456789"})]


def test_a_placeholder_with_a_miscounted_step_takes_the_one_step_that_has_the_field(workspace: Workspace) -> None:
    """Answered after the results, '{$1.mean}' names generate_events, which has no mean; the histogram (step 2)
    is the only step that has one, so its mean is shown instead of '[unknown …]'."""
    steps = [{"tool": "generate_events", "arguments": DY},
             {"tool": "histogram", "arguments": {"source": "$1.events", "field": "m_hat_gev", "bins": 20,
                                                 "range_min": 60, "range_max": 120}}]
    assistant, _ = _assistant([plan(steps, "The median dimuon mass is {$2.median}."),
                               answer("The mean dimuon mass is {$1.mean}.")], workspace)
    record = assistant.ask("Generate 120 Drell-Yan events, seed 2, MPI off, and histogram the dimuon mass")
    mean = next(c for c in workspace.calls() if c.tool == "histogram").result["mean"]
    assert record.answer.startswith(f"The mean dimuon mass is {format_value(mean, 'GeV')}")
    assert "unknown" not in record.answer


MONITORING = {"n_runs": 30, "seed": 1}
MONITOR_REQUEST = "Simulate 30 runs of detector monitoring data with seed 1 and flag the bad runs"


def test_an_answer_naming_fields_its_results_lack_is_asked_again_then_loses_those_sentences(
        workspace: Workspace) -> None:
    """'{$1.max_sic}' copied from another tool's example: the model is told it is unknown and shown the step's real
    value fields (no artifacts); a correct retry renders, a retry that repeats it loses that sentence."""
    steps = [{"tool": "generate_events", "arguments": DY}]
    copied = "The maximum SIC is {$1.max_sic}. The cross-section is {$1.sigma_pb}."
    assistant, backend = _assistant([plan(steps), answer(copied),
                                     answer("The cross-section is {$1.sigma_pb} for {$1.n_events} events.")],
                                    workspace)
    record = assistant.ask("Generate 120 Drell-Yan events, seed 2, MPI off, and give me the cross-section")
    feedback = backend.seen[2][0][-1]["content"]
    assert feedback.startswith("These placeholders name values the results do not have: {$1.max_sic}.")
    assert "\nstep 1 (generate_events): n_events, sigma_pb, sigma_err_pb, mean_particles, shards\n" in feedback
    assert backend.remaining == 0 and record.answer.startswith("The cross-section is ")
    assert record.answer.endswith(" pb for 120 events [ev-" + record.artifacts[0]["id"][3:] + "].")

    again, _ = _assistant([plan(steps), answer(copied), answer(copied)], workspace)
    kept = again.ask("Generate 120 Drell-Yan events, seed 2, MPI off, and give me the cross-section")
    assert kept.answer.startswith("The cross-section is ") and "SIC" not in kept.answer and "[" + "unknown" not in (
        kept.answer)
    assert any("{$1.max_sic}" in finding for finding in kept.findings)


def test_a_method_the_request_names_is_offered_first_hinted_and_a_plan_without_it_sent_back(
        workspace: Workspace) -> None:
    """'DINAMO-style' names monitor_histograms: it leads the offered tools, the prompt says to use it, and a plan
    that only makes the data is sent back once naming the method; the corrected plan runs."""
    from physagent.agent.selection import named_methods

    made = [{"tool": "make_monitoring_data", "arguments": MONITORING}]
    both = [*made, {"tool": "monitor_histograms", "arguments": {"data": "$1.data"}}]
    assistant, backend = _assistant([plan(made, "Made {$1.n_runs} runs."),
                                     plan(both, "The monitor flagged {$2.n_flagged} of {$2.n_runs} runs.")],
                                    workspace)
    record = assistant.ask("Simulate 30 runs of detector monitoring data with seed 1 and let a DINAMO-style "
                           "monitor find the bad runs")
    assert record.events[0]["tools"][0] == "monitor_histograms"
    assert backend.seen[0][0][0]["content"].endswith("The request names DINAMO: use monitor_histograms.")
    assert ("the request names DINAMO, so a step must call monitor_histograms (your plan calls "
            "make_monitoring_data)") in backend.seen[1][0][-1]["content"]
    assert [c["tool"] for c in record.tool_calls] == ["make_monitoring_data", "monitor_histograms"] and record.ok
    assert named_methods("fit the PMT calibration constants") == {}  # a common word names no SBI method alone
    assert named_methods("check the coverage of my neural posterior") == (
        {"coverage": ("sbi_diagnostics",), "neural posterior": ("sbi_train",)} if "sbi_train" in registry else {})
    # abilities whose verb other tools share: "export" also names export_histograms, "write" write_root
    assert named_methods("plot it and export the session as a script") == {"export the session": ("export_session",)}
    assert named_methods("save what we did as a script") == {"as a script": ("export_session",)}
    assert named_methods("write the sample as HepMC3 for Rivet") == {"write the sample as HepMC3": ("write_hepmc",)}
    assert named_methods("what is in events.hepmc3?") == {}
    assert named_methods("the leading jet pT of my NanoAOD file") == {"NanoAOD": ("read_root", "write_root")}
    from physagent.agent.selection import method_hints
    assert method_hints("write the sample as HepMC3 for Rivet", ["generate_events", "write_hepmc"]) == [
        "The request asks to write a HepMC3 file: use write_hepmc."]


def test_numbers_rendered_from_results_are_not_free_numbers_but_typed_ones_are(workspace: Workspace) -> None:
    """The χ²/ndf threshold of 3 rendered from the monitor's result is the result's value, not an unverified
    small integer; a 0 the model typed as the answer's result is sent back once, and flagged when it stays."""
    steps = [{"tool": "make_monitoring_data", "arguments": MONITORING},
             {"tool": "monitor_histograms", "arguments": {"data": "$1.data"}}]
    typed_zero = "The monitor flags runs whose χ²/ndf exceeds {$2.threshold}. The false-positive rate is 0."
    assistant, backend = _assistant([plan(steps, typed_zero), answer(typed_zero)], workspace)  # sent back once
    record = assistant.ask(MONITOR_REQUEST)
    assert "The numbers 0 are in no tool result" in backend.seen[1][0][-1]["content"]
    assert "χ²/ndf exceeds 3 [tab-" in record.answer
    assert record.unsupported == ["0"]


def test_a_refused_value_the_user_stated_ends_the_run_instead_of_a_replan_without_it(workspace: Workspace) -> None:
    """The user's three-parameter prior for a two-parameter task is refused by the tool; the run answers with
    that reason rather than replanning with the task's own prior (which would answer another request)."""
    prior = [{"name": f"p{i}", "distribution": "uniform", "low": -1, "high": 1} for i in (1, 2, 3)]
    assistant, backend = _assistant([
        plan([{"tool": "sbi_train", "arguments": {"task": "two_moons", "prior": prior}}], "Trained {$1.method}."),
        plan([{"tool": "sbi_train", "arguments": {"task": "two_moons"}}], "Trained {$1.method}."),
    ], workspace)
    record = assistant.ask("Train NPE on two moons with a prior on p1, p2 and p3, each uniform between -1 and 1.")
    assert [c["ok"] for c in record.tool_calls] == [False] and backend.remaining == 1
    assert workspace.list_artifacts() == []
    assert record.answer.startswith("I can't do this as asked: prior=['p1', 'p2', 'p3'] is a prior of wrong dimension")


def test_a_refused_artifact_the_user_named_ends_the_run_but_one_the_model_chose_does_not() -> None:
    """export_fpga refuses the ParT the user named: that is the user's own value (no other model answers the
    request), so the run ends with the reason; the same refusal of an id only the model wrote is no such stop."""
    refusal = ToolInputError("export_fpga: model='model-530b50ee1a' is a 'part' tagger, which cannot go to an FPGA",
                             tool="export_fpga", param="model", value="model-530b50ee1a")
    asked = types.SimpleNamespace(context=types.SimpleNamespace(messages=[
        {"role": "user", "content": "Convert the transformer model-530b50ee1a into an hls4ml project."}]))
    assert Run._stated_refusal(asked, "export_fpga", {"model": "model-530b50ee1a"}, refusal) == "model"  # type: ignore[arg-type]
    chosen = types.SimpleNamespace(context=types.SimpleNamespace(messages=[
        {"role": "user", "content": "Convert my latest tagger into an hls4ml project."}]))
    assert Run._stated_refusal(chosen, "export_fpga", {"model": "model-530b50ee1a"}, refusal) is None  # type: ignore[arg-type]


def test_a_refused_choice_the_user_wrote_in_another_form_is_the_users_own() -> None:
    """'decays invisibly' states decay='invisible': the tool's refusal for W+jets ends the run rather than a retry
    that quietly generates another decay; a decay only the model chose is retried without it."""
    refusal = ToolInputError("generate_events: decay='invisible' is not available for process 'w_jets'",
                             tool="generate_events", param="decay", value="invisible")
    arguments = {"process": "w_jets", "n_events": 200, "decay": "invisible"}
    asked = types.SimpleNamespace(context=types.SimpleNamespace(messages=[
        {"role": "user", "content": "Make 200 W+jets events in which the W decays invisibly, MPI off."}]))
    assert Run._stated_refusal(asked, "generate_events", arguments, refusal) == "decay"  # type: ignore[arg-type]
    chosen = types.SimpleNamespace(context=types.SimpleNamespace(messages=[
        {"role": "user", "content": "Make 200 W+jets events, MPI off."}]))
    assert Run._stated_refusal(chosen, "generate_events", arguments, refusal) is None  # type: ignore[arg-type]


def test_a_tool_missing_its_software_ends_the_run_with_what_is_missing(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step whose tool needs software this machine lacks (here the sandbox a setting asks for) ends the run
    with the tool's message; no replan goes around it (another call cannot supply the software, and a
    replan once answered a synthesis request by quoting an unrelated refusal instead)."""
    monkeypatch.setenv("PHYSAGENT_SANDBOX", "bwrap-please")
    code = {"code": "import json\nprint(json.dumps({'x': 1.0}))", "values": {"x": "float"}}
    assistant, backend = _assistant([
        plan([{"tool": "run_python", "arguments": code}], "x = {$1.values.x}."),
        plan([{"tool": "run_python", "arguments": code}], "x = {$1.values.x}."),
    ], workspace)
    record = assistant.ask("Run a tiny script in the sandbox that prints x.")
    assert [c["ok"] for c in record.tool_calls] == [False] and backend.remaining == 1
    assert record.answer.startswith("I can't do this on this machine: PHYSAGENT_SANDBOX='bwrap-please' is not")
    assert "'auto', 'bwrap' or 'fallback'" in record.answer and record.unsupported == []


def test_a_unit_the_template_repeats_after_a_value_rendered_with_it_is_written_once() -> None:
    """"compiled in {$3.compile_s} s" renders "compiled in 6.01 s", not "6.01 s s"; other words stay."""
    shown = {"compile_s": "6.01 s", "mass": "173.2 GeV", "n": "12", "t": "5 s"}
    text, _ = render("compiled in {$3.compile_s} s, peak {$1.mass} GeV. {$1.n} s-jets, {$2.t} seconds",
                     lambda p: Rendered(shown[p.path]))
    assert text == "compiled in 6.01 s, peak 173.2 GeV. 12 s-jets, 5 s seconds"


def test_a_left_out_detector_step_is_added_for_the_generated_events() -> None:
    """'… and pass them through the generic LHC fast detector' with only the generation planned gets
    detector_response of those events, the card stated ('ILD-like' → ild_like); an anomaly detector is no
    detector simulation."""
    planned = parse_plan({"steps": [{"tool": "generate_events", "arguments": DY}], "answer": ""})
    offered = ["generate_events", "detector_response", "cluster_jets"]
    request = "Generate 300 Drell-Yan mu mu events with MPI off and pass them through the generic LHC fast detector."
    completed = complete_plan(planned, request, offered, {})
    assert [(s.tool, s.arguments) for s in completed.steps[1:]] == [("detector_response", {"events": "$1"})]
    ild = complete_plan(planned, "Simulate 200 Drell-Yan events, then run the ILD-like detector", offered, {})
    assert ild.steps[1].arguments == {"events": "$1", "card": "ild_like"}
    anomaly = "Generate 300 Drell-Yan events and run an anomaly detector on them"
    assert complete_plan(planned, anomaly, offered, {}) is planned


def test_a_detector_step_added_to_a_chain_goes_before_the_steps_that_read_the_events() -> None:
    """'… pass them through the generic LHC detector, cluster jets from the reconstructed objects' planned without
    the detector: it is inserted after the generation, the clustering reads its output, the answer's
    placeholders follow the renumbering."""
    steps = [{"tool": "generate_events", "arguments": DY},
             {"tool": "cluster_jets", "arguments": {"events": "$1.events", "pt_min_gev": 30}}]
    planned = parse_plan({"steps": steps, "answer": "{$1.n_events} events, {$2.n_jets} jets."})
    request = ("Generate 200 Drell-Yan events with MPI off, pass them through the generic LHC detector, cluster "
               "anti-kT jets above 30 GeV from the reconstructed objects")
    completed = complete_plan(planned, request, ["generate_events", "detector_response", "cluster_jets"], {})
    assert [(s.number, s.tool, s.arguments.get("events")) for s in completed.steps] == [
        (1, "generate_events", None), (2, "detector_response", "$1"), (3, "cluster_jets", "$2")]
    assert completed.answer == "{$1.n_events} events, {$3.n_jets} jets."
    assert completed.notes == ["step 2 (detector_response) added: the request asks to simulate the detector response"]


def test_the_tools_the_request_orders_are_offered_whatever_the_examples(workspace: Workspace) -> None:
    """'… and write the jets with their constituents to ROOT as an RNTuple': write_root is offered although the
    most similar worked examples are about taggers (it was not, and the model planned a tagger chain instead)."""
    from physagent.agent.context import gather_context

    assistant = Assistant(backend=ScriptedBackend([]), workspace=workspace)
    context = gather_context(assistant, "Make 200 ttbar events without MPI, cluster anti-kT R = 0.4 jets, and write "
                                        "the jets with their constituents to ROOT as an RNTuple.")
    assert {"generate_events", "cluster_jets", "write_root"} <= set(context.offered)
    few = Assistant(backend=ScriptedBackend([]), workspace=workspace, tools_per_request=2)  # a tight tool limit
    surrogate = gather_context(few, "Simulate 300 photon showers, train a tiny surrogate on them, sample 300 and "
                                    "say how well a classifier tells its showers from the simulated ones.")
    assert {"train_generator", "compare_samples"} <= set(surrogate.offered)  # compare_samples had been cut
    evaluated = gather_context(few, "Train a tiny PFN for 2 epochs on datas-65fc5c9037, then evaluate it on the "
                                    "validation split and tell me the AUC there.")
    assert "evaluate_tagger" in evaluated.offered


def test_a_histogram_of_jets_reads_the_clustered_jets_not_the_events() -> None:
    """'$1.jets' of generate_events goes to the one step that makes jets; a jets field read from the events that
    one cluster_jets step clustered is read from its jets; cluster_jets' summary field names the jets field."""
    from physagent.agent.arguments import clean_arguments
    from physagent.agent.references import mend_misread_sources

    steps = [{"tool": "generate_events", "arguments": DY},
             {"tool": "cluster_jets", "arguments": {"events": "$1.events"}},
             {"tool": "histogram", "arguments": {"source": "$1.jets", "field": "jets.pt", "object_index": 0}},
             {"tool": "histogram", "arguments": {"source": "$1.events", "field": "jets.mass", "object_index": 0}}]
    mended = mend_misread_sources(parse_plan({"steps": steps, "answer": ""}))
    assert [s.arguments["source"] for s in mended.steps[2:]] == ["$2.jets", "$2"]
    histogram = registry.get("histogram").parameters_schema()
    chosen = {"source": "$2", "field": "leading_jet_mean_pt_gev"}
    cleaned = clean_arguments(chosen, histogram, [{"role": "user", "content": "histogram the leading-jet pT"}])
    assert (cleaned["field"], cleaned["object_index"]) == ("jets.pt", 0)


def test_steps_after_an_unread_detector_step_read_its_output() -> None:
    """'pass them through the detector, cluster jets': a cluster step wired to the truth events reads the detector's
    events when nothing else does; a truth-vs-reco plan that reads both is left as written."""
    from physagent.agent.references import mend_misread_sources

    steps = [{"tool": "generate_events", "arguments": DY},
             {"tool": "detector_response", "arguments": {"events": "$1.events"}},
             {"tool": "cluster_jets", "arguments": {"events": "$1.events", "radius": 0.4}},
             {"tool": "summarize", "arguments": {"source": "$3"}}]
    mended = mend_misread_sources(parse_plan({"steps": steps, "answer": ""}))
    assert mended.steps[2].arguments == {"events": "$2.events", "radius": 0.4}
    assert mended.steps[3].arguments == {"source": "$3"}
    both = [*steps[:3], {"tool": "cluster_jets", "arguments": {"events": "$2.events"}}]
    kept = mend_misread_sources(parse_plan({"steps": both, "answer": ""}))
    assert [s.arguments["events"] for s in kept.steps[2:]] == ["$1.events", "$2.events"]


def test_generated_code_reads_the_events_a_planned_histogram_is_filled_from() -> None:
    """write_code given two muon histograms of the plan for 'the mean |Δφ| of the two leading muons' reads the events
    they were filled from (once); a session histogram id the user gave stays."""
    from physagent.agent.references import mend_misread_sources

    steps = [{"tool": "generate_events", "arguments": DY},
             {"tool": "histogram", "arguments": {"source": "$1.events", "field": "particles.phi", "abs_pid": [13]}},
             {"tool": "histogram", "arguments": {"source": "$1.events", "field": "particles.eta", "abs_pid": [13]}},
             {"tool": "write_code", "arguments": {"task": "the mean |delta phi| of the two leading muons",
                                                  "inputs": ["$2.histogram", "$3.histogram", "hist-0123456789"],
                                                  "values": {"mean": "float"}}}]
    mended = mend_misread_sources(parse_plan({"steps": steps, "answer": ""}))
    assert mended.steps[3].arguments["inputs"] == ["$1.events", "hist-0123456789"]


def test_steps_the_request_orders_after_reading_a_file_read_its_output() -> None:
    """A file read by read_table/read_root may be events or a table: 'find anti-kT R = 0.4 jets' clusters it and
    'histogram pT-hat with 20 bins' histograms it, with the settings written."""
    offered = ["read_table", "read_root", "cluster_jets", "histogram"]
    read = parse_plan({"steps": [{"tool": "read_table", "arguments": {"path": "/d/tt.parquet"}}], "answer": ""})
    jets = complete_plan(read, "Read the Parquet event file /d/tt.parquet, find anti-kT R = 0.4 jets with pT above "
                               "30 GeV, and tell me how many jets there are.", offered, {})
    assert [(s.tool, s.arguments) for s in jets.steps[1:]] == [
        ("cluster_jets", {"events": "$1", "radius": 0.4, "pt_min_gev": 30.0})]
    root = parse_plan({"steps": [{"tool": "read_root", "arguments": {"path": "/d/n.root"}}], "answer": ""})
    histogram = complete_plan(root, "From /d/n.root load entries 100 to 199, then histogram pT-hat with 20 bins "
                                    "between 100 and 300 GeV.", offered, {})
    assert histogram.steps[1].tool == "histogram" and histogram.steps[1].arguments["source"] == "$1"
    assert histogram.steps[1].arguments["field"] == "pt_hat_gev" and histogram.steps[1].arguments["bins"] == 20


def test_code_asked_for_by_name_needs_a_write_code_step() -> None:
    """'… then with a short Python script compute …' planned as histograms only: the advice names write_code, and
    the step is added on the plan's events with the task from that phrase on; exporting the session as a Python
    script is no code."""
    from physagent.agent.plan import missing_actions

    planned = parse_plan({"steps": [{"tool": "generate_events", "arguments": DY},
                                    {"tool": "histogram", "arguments": {"source": "$1", "field": "particles.pt"}}],
                          "answer": ""})
    offered = ["generate_events", "histogram", "write_code", "export_session"]
    request = "Generate 200 Drell-Yan events, then with a short Python script compute the pT of the muon pair"
    assert missing_actions(request, planned, offered, {}) == [
        "the request asks to compute it with code, but no step calls write_code"]
    completed = complete_plan(planned, request, offered, {})
    assert [(s.tool, s.arguments) for s in completed.steps[2:]] == [("write_code", {
        "task": "with a short Python script compute the pT of the muon pair", "inputs": ["$1"],
        "values": {"result": "float"}})]
    assert completed.answer == ""  # the planned answer quotes the histogram: written again after the results
    assert "write_code" not in " ".join(missing_actions("Generate 200 Drell-Yan events and export the session as a "
                                                        "Python script", planned, offered, {}))
    recreate = missing_actions("Now write me a standalone script that recreates this conversation", planned, offered,
                               {})
    assert recreate == ["the request asks to export the session, but no step calls export_session"]


def test_a_code_value_written_type_first_is_read_name_first() -> None:
    """write_code's values {'float': '$4.mean'} (type → name, as a small model wrote it) become {'mean': 'float'}
    before the code is written; well-formed values stay."""
    from physagent.agent.agent_tools import values_by_name

    assert values_by_name({"float": "$4.mean"}) == {"mean": "float"}
    assert values_by_name({"sigma_gev": "float", "n": "int"}) == {"sigma_gev": "float", "n": "int"}


def test_an_outcome_made_up_in_words_is_overruled_by_the_steps_the_request_orders(workspace: Workspace) -> None:
    """Follow-up 'Now find anti-kT R = 0.8 jets above 250 GeV in that sample.' answered in words with no plan ('No
    such jets'): the clustering of the session's sample follows from the request, with its R and pT cut, and runs."""
    assistant, _ = _assistant([plan([{"tool": "generate_events", "arguments": DY}], "Made {$1.n_events} events."),
                               answer("No anti-kT R = 0.8 jets above 250 GeV in that sample."),
                               answer("Clustered the jets.")], workspace)
    assistant.ask("Generate 120 Drell-Yan events with MPI off, seed 2.")
    record = assistant.ask("Now find anti-kT R = 0.8 jets above 250 GeV in that sample.")
    events = next(c for c in workspace.calls() if c.tool == "generate_events").outputs[0]
    assert [(c["tool"], c["arguments"]) for c in record.tool_calls] == [
        ("cluster_jets", {"events": events, "radius": 0.8, "pt_min_gev": 250.0})]
    assert any("answered in words without running anything" in finding for finding in record.findings)


def test_a_count_question_answered_in_words_is_counted_by_summarize(workspace: Workspace) -> None:
    """'Out of those, how many events have a leading muon harder than 40 GeV?' answered in words with made-up
    numbers: summarize with the selection the words write runs on the session's events, and the answer quotes its
    count (recomputed here from the events)."""
    assistant, _ = _assistant([plan([{"tool": "generate_events", "arguments": DY}], "Made {$1.n_events} events."),
                               answer("10 of 120 events have a leading muon above 40 GeV.")], workspace)
    assistant.ask("Generate 120 Drell-Yan events with MPI off, seed 2.")
    record = assistant.ask("Out of those, how many events have a leading muon harder than 40 GeV?")
    events = next(c for c in workspace.calls() if c.tool == "generate_events").outputs[0]
    assert [(c["tool"], c["arguments"]) for c in record.tool_calls] == [
        ("summarize", {"source": events, "selection": "muons.pt[0] > 40"})]
    counted = next(c for c in workspace.calls() if c.tool == "summarize").result["n_events_passing"]
    assert 30 < counted < 110 and f"{counted} of 120 events pass muons.pt[0] > 40" in record.answer
    assert "10 of 120" not in record.answer


def test_a_selection_the_request_writes_replaces_the_models_garbled_one(workspace: Workspace) -> None:
    """'What fraction of the events have both muons above 25 GeV?' planned with any(muons.pt > 25 and …): the
    summarize step runs with count(muons.pt > 25) >= 2, an event-level cut (recomputed: fewer pass than with any)."""
    steps = [{"tool": "generate_events", "arguments": DY},
             {"tool": "summarize", "arguments": {"source": "$1", "selection": "any(muons.pt > 25 and muons.pt > 25)"}}]
    assistant, _ = _assistant([plan(steps, "{$2.fraction_passing} of the events pass.")], workspace, hygiene=True)
    record = assistant.ask("Generate 120 Drell-Yan events with MPI off, seed 2. What fraction of the events have "
                           "both muons above 25 GeV in pT?")
    summarize = next(c for c in workspace.calls() if c.tool == "summarize")
    assert summarize.inputs["selection"] == "count(muons.pt > 25) >= 2"
    assert 0.3 < summarize.result["fraction_passing"] < 0.9 and record.ok


def test_a_statistic_asked_without_a_histogram_is_read_from_summarize(workspace: Workspace) -> None:
    """'the mean and the standard deviation of the leading muon pT' planned as a muon histogram: the answer's
    {$2.mean}/{$2.std} read a summarize step of muons.pt (unbinned), which matches numpy on the events."""
    import awkward as ak
    import numpy as np

    steps = [{"tool": "generate_events", "arguments": DY},
             {"tool": "histogram", "arguments": {"source": "$1", "field": "particles.pt", "abs_pid": [13],
                                                 "object_index": 0}}]
    assistant, _ = _assistant([plan(steps, "Mean {$2.mean}, std {$2.std}.")], workspace, hygiene=True)
    record = assistant.ask("Generate 120 Drell-Yan events with MPI off, seed 2, and give me the mean and the "
                           "standard deviation of the leading muon pT.")
    assert [c["tool"] for c in record.tool_calls] == ["generate_events", "histogram", "summarize"]
    summary = next(c for c in workspace.calls() if c.tool == "summarize")
    assert summary.inputs["fields"] == ["muons.pt"] and summary.inputs["object_index"] == 0
    events = ak.from_parquet(workspace.get_artifact(summary.inputs["source"]).path)
    muons = events.particles[abs(events.particles.pid) == 13]
    pt = np.hypot(muons.px, muons.py)
    leading = ak.to_numpy(ak.max(pt, axis=1)[ak.num(pt) > 0])
    stats = summary.result["stats"]["muons_pt_gev"]
    assert stats["mean"] == pytest.approx(leading.mean()) and stats["std"] == pytest.approx(leading.std())
    assert format_value(stats["mean"]) in record.answer


def test_a_count_beyond_the_tools_limit_written_in_words_is_refused(workspace: Workspace) -> None:
    """'200 million top-antitop events' planned as 200: the user's 2·10⁸ goes to the tool, which refuses it."""
    assistant, _ = _assistant([plan([{"tool": "generate_events", "arguments": {"process": "ttbar", "n_events": 200,
                                                                               "mpi": False}}], "Done.")], workspace,
                              hygiene=True)
    record = assistant.ask("I need 200 million top-antitop events by tonight, without MPI.")
    assert record.answer.startswith("I can't do this as asked") and "200000000" in record.answer
    assert workspace.list_artifacts() == []


def test_draw_that_histogram_again_plots_the_sessions_only_histogram() -> None:
    """'Draw that same histogram again, this time with a logarithmic y axis' with no plan: a plot of the session's
    one histogram with log_y; with two histograms in the session, which one is not derivable."""
    request = "Draw that same histogram again, this time with a logarithmic y axis."
    session = {"ev-0123456789": "events", "hist-0123456789": "histogram"}
    derived = complete_plan(Plan([], "", []), request, ["plot", "histogram"], session)
    assert [(s.tool, s.arguments) for s in derived.steps] == [
        ("plot", {"histograms": ["hist-0123456789"], "log_y": True})]
    two = {**session, "hist-abcdef0123": "histogram"}
    assert complete_plan(Plan([], "", []), request, ["plot", "histogram"], two).steps == []


def test_follow_ups_answered_with_no_action_get_the_steps_they_order() -> None:
    """'Write those events to a ROOT file and call the tree 'zll'' → write_root of the session's one events artifact,
    tree as written; 'Smear that sample with the linear-collider detector card' → detector_response with ild_like."""
    session = {"ev-0123456789": "events"}
    request = "Write those events to a ROOT file and call the tree 'zll'."
    written = complete_plan(Plan([], "", []), request, ["write_root"], session)
    assert [(s.tool, s.arguments) for s in written.steps] == [
        ("write_root", {"source": "ev-0123456789", "tree": "zll"})]
    smeared = complete_plan(Plan([], "", []), "Smear that sample with the linear-collider detector card.",
                            ["detector_response"], session)
    assert [(s.tool, s.arguments) for s in smeared.steps] == [
        ("detector_response", {"events": "ev-0123456789", "card": "ild_like"})]
    two = {**session, "jet-0123456789": "jets"}
    assert complete_plan(Plan([], "", []), "Save the jets to ROOT", ["write_root"], two).steps[0].arguments == {
        "source": "jet-0123456789"}


def test_do_the_same_at_another_energy_replays_the_previous_calls_with_the_new_setting(workspace: Workspace) -> None:
    """'Do the same at 13 TeV and give me that cross-section' answered in words with a made-up σ: the previous
    request's generation runs again with sqrt_s_tev=13, everything else as before."""
    assistant, _ = _assistant([plan([{"tool": "generate_events", "arguments": {**DY, "sqrt_s_tev": 13.6}}],
                                    "σ = {$1.sigma_pb}."),
                               answer("The cross-section is 100 pb."),
                               answer("The cross-section at 13 TeV is {$1.sigma_pb}.")], workspace)
    assistant.ask("Generate 120 Drell-Yan events at 13.6 TeV with MPI off, seed 2, and tell me the cross-section.")
    record = assistant.ask("Do the same at 13 TeV and give me that cross-section in pb.")
    assert [(c["tool"], c["arguments"]) for c in record.tool_calls] == [
        ("generate_events", {**DY, "sqrt_s_tev": 13.0})]
    assert record.ok and "100 pb" not in record.answer


def test_a_knowledge_answer_quoting_its_passage_keeps_the_quote_and_gets_the_citation() -> None:
    """A sentence copied from a retrieved passage is the answer's source, not an echo of the loop's messages (which
    repeat the search results); the citation is added after the echo check, which would take it for prompt text."""
    from physagent.agent.context import RequestContext

    passage = ("The hierarchical nature of these structures aligns naturally with hyperbolic space, a "
               "non-Euclidean geometry that captures hierarchy intrinsically.")
    context = RequestContext("In which geometry?", [], [], {}, [], [])
    answer = f"The talk builds them in hyperbolic space. {passage}"
    assert context.without_prompt_echo(answer, [f"Results: {passage}"], [passage]) == answer
    assert context.without_prompt_echo(answer, [f"Results: {passage}"]) == "The talk builds them in hyperbolic space."


def test_a_follow_up_whose_stated_value_the_tool_refuses_says_why_instead_of_the_models_story(
    workspace: Workspace
) -> None:
    """'Cluster ev-… into jets with a radius parameter of exactly zero' answered in words ('clustered fine'): the
    derived cluster_jets step would carry the user's R = 0, which the tool refuses, so the answer is its reason."""
    assistant, _ = _assistant([plan([{"tool": "generate_events", "arguments": DY}], "Made {$1.n_events} events."),
                               answer("The jets were clustered successfully.")], workspace)
    assistant.ask("Generate 120 Drell-Yan events with MPI off, seed 2.")
    events = workspace.list_artifacts()[0].id
    record = assistant.ask(f"Cluster the events {events} into jets with a radius parameter of exactly zero.")
    assert record.answer.startswith("I can't do this as asked: ") and "radius" in record.answer
    assert record.tool_calls == []


@pytest.mark.usefixtures("grant_pytest_temp")
def test_a_tree_name_nobody_gave_is_dropped_when_the_file_has_no_such_tree(workspace: Workspace) -> None:
    """read_root(tree='nominal') for a request that only says 'the tree': the tool lists the file's trees, and the
    call is retried once without the name (the file's only tree is read); the record says so."""
    from physagent.tools import call_tool

    events = call_tool("generate_events", DY, workspace=workspace).artifacts[0]
    root = call_tool("write_root", {"source": events.id, "tree": "dimuons"}, workspace=workspace).artifacts[0]
    steps = [{"tool": "read_root", "arguments": {"path": str(root.path), "tree": "nominal"}}]
    assistant, _ = _assistant([plan(steps, "Read {$1.n_rows} entries.")], workspace, hygiene=True)
    record = assistant.ask(f"From {root.path}, load the entries of the tree.")
    assert [(c["ok"], c["arguments"].get("tree")) for c in record.tool_calls] == [(False, "nominal"), (True, None)]
    assert "Read 120 entries" in record.answer


def test_a_plan_that_remakes_an_artifact_the_request_hands_over_uses_it_and_drops_unasked_exports() -> None:
    """'Train a tiny PFN … on the W-vs-QCD dataset datas-…, then evaluate it on the validation split': a planned new
    make_jet_dataset goes (the named dataset is used) and so does a copied export_fpga nobody asked for; a request
    that also orders events made keeps its generation step."""
    from physagent.agent.plan import asked_actions
    from physagent.agent.references import drop_unasked_exports, use_named_artifacts

    session = {"datas-0123456789": "dataset"}
    request = ("Train a tiny Particle Flow Network for 2 epochs on the W-vs-QCD dataset datas-0123456789, then "
               "evaluate it on the validation split and tell me the AUC there.")
    steps = [{"tool": "make_jet_dataset", "arguments": {"task": "w_vs_qcd"}},
             {"tool": "train_tagger", "arguments": {"dataset": "$1.dataset", "model": "pfn"}},
             {"tool": "export_fpga", "arguments": {"model": "$2.model", "dataset": "$1.dataset"}}]
    used = use_named_artifacts(parse_plan({"steps": steps, "answer": "AUC {$3.fidelity.auc_fixed}"}), request, session)
    assert [(s.tool, s.arguments.get("dataset")) for s in used.steps] == [
        ("train_tagger", "datas-0123456789"), ("export_fpga", "datas-0123456789")]
    offered = ["train_tagger", "evaluate_tagger", "export_fpga"]
    trimmed = drop_unasked_exports(used, asked_actions(request, offered, session), request)
    assert [s.tool for s in trimmed.steps] == ["train_tagger"] and trimmed.answer == ""
    assert "evaluate_tagger" in asked_actions(request, offered, session)
    events = {"ev-0123456789": "events"}
    both = "Generate 200 Drell-Yan events and compare their muon pT with ev-0123456789"
    generated = parse_plan({"steps": [{"tool": "generate_events", "arguments": DY}], "answer": ""})
    assert use_named_artifacts(generated, both, events) is generated


def test_the_mean_number_of_jets_per_event_is_read_from_a_summarize_step() -> None:
    """'tell me how many jets an event has on average' (no summarize planned): summarize of the clustered jets is
    added and the answer quotes its jets multiplicity; the R = 0.4 before the question is no count of jets."""
    from physagent.agent.cuts import selection_from_words

    request = ("Make 300 top-pair events with MPI off, cluster anti-kT R = 0.4 jets with pT above 30 GeV, and tell "
               "me how many jets an event has on average.")
    steps = [{"tool": "generate_events", "arguments": DY}, {"tool": "cluster_jets", "arguments": {"events": "$1"}}]
    planned = parse_plan({"steps": steps, "answer": "Clustered {$2.n_jets} jets."})
    completed = complete_plan(planned, request, ["generate_events", "cluster_jets", "summarize"], {})
    assert completed.steps[2] == Step(3, "summarize", {"source": "$2"})
    assert completed.answer.endswith("Mean number of jets per event: {$3.multiplicities.jets.mean}.")
    assert selection_from_words(request) is None


def test_a_placeholder_to_a_step_that_never_existed_reads_the_one_step_with_that_field(workspace: Workspace) -> None:
    """A one-step plan (cluster_jets) answered after the results with '{$2.stats.jets_mass_gev.mean}': there is no
    step 2, and only step 1 has a field it can mean (leading_jet_mean_mass_gev), so that value is shown."""
    from physagent.tools import call_tool

    events = call_tool("generate_events", DY, workspace=workspace).artifacts[0].id
    steps = [{"tool": "cluster_jets", "arguments": {"events": events, "radius": 1.0}}]
    assistant, _ = _assistant([plan(steps, ""), answer("The mean leading-jet mass is {$2.stats.jets_mass_gev.mean}.")],
                              workspace)
    record = assistant.ask(f"Cluster R = 1.0 jets in {events} and tell me the mean mass of the leading jet.")
    mass = next(c for c in workspace.calls() if c.tool == "cluster_jets").result["leading_jet_mean_mass_gev"]
    assert f"The mean leading-jet mass is {format_value(mass, 'GeV')}" in record.answer
    assert "not available" not in record.answer


def test_a_count_of_objects_quotes_the_field_that_counts_them() -> None:
    """'how many jets there are in total' answered with read_table's n_rows in the jets sentence: it reads the one
    cluster step's n_jets; with no count in such a sentence the count is added; a per-event average is left alone."""
    from physagent.agent.planner import _counted_objects_quoted

    request = "Read the Parquet event file /d/tt.parquet, find R = 0.4 jets, and tell me how many jets there are."
    steps = [{"tool": "read_table", "arguments": {"path": "/d/tt.parquet"}},
             {"tool": "cluster_jets", "arguments": {"events": "$1", "radius": 0.4}}]
    wrong = parse_plan({"steps": steps, "answer": "Read {$1.n_rows} events. The total number of jets is {$1.n_rows}."})
    assert _counted_objects_quoted(wrong, request).answer == (
        "Read {$1.n_rows} events. The total number of jets is {$2.n_jets}.")
    silent = parse_plan({"steps": steps, "answer": "Clustered the jets of the file."})
    assert _counted_objects_quoted(silent, request).answer.endswith("Number of jets: {$2.n_jets}.")
    average = "find R = 0.4 jets and tell me how many jets an event has on average"
    assert _counted_objects_quoted(wrong, average) is wrong


def test_a_count_put_under_the_wrong_group_reads_the_multiplicity(workspace: Workspace) -> None:
    """'{$3.stats.jets.mean}' for the average number of jets per event: summarize puts it under multiplicities, two
    levels down; the answer shows multiplicities.jets.mean instead of dropping the sentence."""
    steps = [{"tool": "generate_events", "arguments": DY}, {"tool": "cluster_jets", "arguments": {"events": "$1"}},
             {"tool": "summarize", "arguments": {"source": "$2", "selection": "jets.pt > 30"}}]
    assistant, _ = _assistant([plan(steps, "Jets per event: {$3.stats.jets.mean}.")], workspace)
    record = assistant.ask("Generate 120 Drell-Yan events with MPI off, seed 2, cluster jets above 30 GeV and tell me "
                           "the average number of jets per event.")
    mean = next(c for c in workspace.calls() if c.tool == "summarize").result["multiplicities"]["jets"]["mean"]
    assert f"Jets per event: {format_value(mean)}" in record.answer


def test_steps_repeating_an_earlier_step_exactly_are_dropped_unless_a_repeat_is_asked() -> None:
    """Six identical η histograms leave one (readers and the answer read it), which frees the plan for the code step
    the request asks for; 'generate it twice' keeps both generations."""
    from physagent.agent.references import drop_repeated_steps

    eta = {"tool": "histogram", "arguments": {"source": "$1", "field": "particles.eta"}}
    planned = parse_plan({"steps": [{"tool": "generate_events", "arguments": DY}, eta, eta, eta,
                                    {"tool": "plot", "arguments": {"histograms": ["$3", "$4"]}}],
                          "answer": "Mean η {$4.mean}."})
    kept = drop_repeated_steps(planned, "Generate 120 Drell-Yan events and histogram the muon eta")
    assert [(s.number, s.tool) for s in kept.steps] == [(1, "generate_events"), (2, "histogram"), (5, "plot")]
    assert kept.steps[2].arguments == {"histograms": ["$2", "$2"]} and kept.answer == "Mean η {$2.mean}."
    twice = parse_plan({"steps": [{"tool": "generate_events", "arguments": DY}] * 2, "answer": ""})
    assert drop_repeated_steps(twice, "Generate the same 120 Drell-Yan events twice") is twice


def test_a_mean_number_of_objects_per_event_reads_the_summary_multiplicity() -> None:
    """'the average number of jets per event' planned as summarize of fields ['stats.mean'] (no such field): the
    step reads no fields and the answer quotes multiplicities.jets.mean; the advice for a missing step says so."""
    from physagent.agent.planner import _multiplicity_summarized, _summarize_step

    request = ("Generate 200 ttbar events, cluster anti-kT R = 0.4 jets above 30 GeV and tell me the average number "
               "of jets per event.")
    steps = [{"tool": "generate_events", "arguments": {"process": "ttbar", "n_events": 200}},
             {"tool": "cluster_jets", "arguments": {"events": "$1", "radius": 0.4, "pt_min_gev": 30}},
             {"tool": "summarize", "arguments": {"source": "$2", "fields": ["stats.mean"]}}]
    wrong = parse_plan({"steps": steps, "answer": "On average there are {$3.stats.mean} jets per event."})
    mended = _multiplicity_summarized(wrong, request)
    assert mended.steps[2].arguments == {"source": "$2"}
    assert mended.answer == "On average there are {$3.multiplicities.jets.mean} jets per event."
    assert _multiplicity_summarized(mended, request) == mended
    assert _multiplicity_summarized(wrong, "Generate 200 ttbar events and give the mean jet pT.") is wrong
    two_steps = parse_plan({"steps": steps[:2], "answer": "Done."})
    assert "{$3.multiplicities.jets.mean}" in _summarize_step(two_steps, "mean", ["summarize"], "jets")


def test_a_scan_the_request_lists_is_derived_on_the_sessions_dataset() -> None:
    """'compare batch sizes 32 and 128 for a tiny MLP tagger in one hyper-parameter scan' answered in words: the
    scan_training step follows from the request and the session's dataset (grid from the listed values, the
    tagger's stated settings fixed), and its answer quotes the best point; 'compare' is not evaluate_tagger."""
    from physagent.agent.plan import Plan, asked_actions, with_derived_steps

    request = ("Then compare batch sizes 32 and 128 for a tiny MLP tagger in one hyper-parameter scan and give me "
               "the test AUC of the better one.")
    offered, session = ["scan_training", "train_tagger", "evaluate_tagger"], {"datas-0123456789": "dataset"}
    assert asked_actions(request, offered, session) == ["scan_training"]
    derived = with_derived_steps(Plan([], "", []), request, offered, session)
    step = derived.steps[0]
    assert step.tool == "scan_training" and step.arguments["dataset"] == "datas-0123456789"
    assert step.arguments["grid"] == {"batch_size": [32, 128]}
    assert step.arguments["fixed"] == {"model": "mlp", "size": "tiny"}
    assert "{$1.best_test_auc}" in derived.answer and "{$1.best_parameters.batch_size}" in derived.answer
    sizes = with_derived_steps(Plan([], "", []), "run a hyper-parameter scan of the BDT over the sizes tiny, small "
                               "and large with 15 epochs each", offered, session).steps[0].arguments
    assert sizes["grid"] == {"size": ["tiny", "small", "large"]} and sizes["fixed"] == {"model": "bdt", "epochs": 15}
    assert with_derived_steps(Plan([], "", []), request, offered, {}).steps == []  # no dataset in the session


def test_the_answer_quotes_what_the_generated_code_computed(workspace: Workspace) -> None:
    """A plan whose answer quotes other steps (the events' mean multiplicity) or nothing of the code step: the
    code's printed values are added, rendered from its result."""
    code = "import json\nprint(json.dumps({'mean_delta_phi': 2.75}))\n"
    steps = [{"tool": "generate_events", "arguments": DY},
             {"tool": "write_code", "arguments": {"task": "the mean |delta phi| of the two leading muons",
                                                  "inputs": ["$1.events"], "values": {"mean_delta_phi": "float"}}}]
    assistant, _ = _assistant([plan(steps, "The mean is {$1.mean_particles}."), call("submit_code", code=code)],
                              workspace)
    record = assistant.ask("Generate 120 Drell-Yan events with MPI off, seed 2, and compute in Python the mean "
                           "|delta phi| of the two leading muons.")
    assert "Computed by the generated code: mean delta phi = 2.75" in record.answer, record.answer
    assert not record.unsupported, record.unsupported


def test_an_aside_copying_a_worked_examples_numbers_is_dropped_when_asking_again_did_not_remove_it(
        workspace: Workspace) -> None:
    """The plan's answer wrote "(45 layers × 16 × 9 voxels)" — a worked example's numbers as text — and kept them
    when asked again: the aside goes, the values computed stay, and no number is left unsupported."""
    from physagent.agent.planner import _without_asides_holding

    copied = "Generated {$1.n_events} Drell-Yan events (45 layers × 16 × 9 voxels), σ = {$1.sigma_pb}."
    assistant, _ = _assistant([plan([{"tool": "generate_events", "arguments": DY}], copied), answer(copied)],
                              workspace)
    record = assistant.ask("Generate 120 Drell-Yan mu mu events with MPI off, seed 2. How many did you get?")
    assert "45" not in record.answer and "120" in record.answer and "σ = " in record.answer, record.answer
    assert not record.unsupported and any("dropped asides" in f for f in record.findings)
    kept = "Read {$1.n_showers} showers ({$1.n_layers} layers) from 20 GeV (seed 2)."
    assert _without_asides_holding(kept, ["45"]) == (kept, [])  # placeholders, or none of the numbers: kept


def test_a_failed_step_nobody_asked_for_and_nothing_reads_is_left_out(workspace: Workspace) -> None:
    """A small model adds a step the request does not ask for; when it fails and no later step reads its output,
    the plan goes on without it (no replan, no refusal), and the record says what was left out and why."""
    steps = [{"tool": "generate_events", "arguments": DY},
             {"tool": "histogram", "arguments": {"source": "$1.events", "field": "no_such_field"}},
             {"tool": "summarize", "arguments": {"source": "$1.events"}}]
    assistant, _ = _assistant([plan(steps, "There are {$3.multiplicities.particles.mean} particles per event.")],
                              workspace)
    record = assistant.ask("Generate 120 Drell-Yan mu mu events with MPI off, seed 2, and summarize them: how many "
                           "particles are there per event on average?")
    assert record.error is None and "particles per event" in record.answer and not record.unsupported
    assert any("left out step 2 (histogram)" in f for f in record.findings), record.findings
    assert [c["tool"] for c in record.tool_calls if c.get("ok", True)][-1] == "summarize"


def test_a_question_about_the_tool_catalogue_searches_it_instead_of_calling_a_guessed_tool(
        workspace: Workspace) -> None:
    """"Look through your tool catalogue: which tool loads HDF5 …" planned as a read_table call of an invented
    file: the catalogue search the request asks for is added, the failed guess is left out, and the answer is
    written from the catalogue's passages."""
    guessed = [{"tool": "read_table", "arguments": {"path": "top_train.h5", "format": "hdf5"}}]
    late = answer("read_table loads HDF5 files; its parameter key picks the group.")
    assistant, backend = _assistant([plan(guessed, "read_table loads it; `key` picks the group."), late, late],
                                    workspace, retrieve_first=False)
    record = assistant.ask("Look through your tool catalogue: which of your tools loads an HDF5 file, and which "
                           "of its parameters picks the group inside the file?")
    searches = [c for c in record.tool_calls if c["tool"] == "search_knowledge"]
    assert searches and searches[0]["arguments"]["collection"] == "tools", record.tool_calls
    assert any("left out step 1 (read_table)" in f for f in record.findings), record.findings
    asked = backend.seen[-1][0][-1]["content"]
    assert "[tool read_table: read_table]" in record.answer and "read_table" in asked
    assert "The request was: Look through your tool catalogue" in asked  # the question beside the passages
    assert "written before these passages were found" in asked  # greedy decoding repeated the plan's answer


def test_a_refusal_naming_the_fix_the_request_states_is_retried_with_it(workspace: Workspace) -> None:
    """The model left out train_generator's features for a jets sample; the tool's error gives
    ['jets.mass[0]', 'jets.tau21[0]'] as its example and the request asks for exactly those: the call is retried
    with them, and "draw 500 new jets" is sampling, not a plot."""
    from physagent.agent.plan import asked_actions

    events = call_tool("generate_events", {"process": "qcd_dijet", "n_events": 120, "pt_hat_min_gev": 200.0,
                                           "mpi": False, "seed": 3}, workspace=workspace).result.events.id
    jets = call_tool("cluster_jets", {"events": events, "radius": 0.8}, workspace=workspace).result.jets.id
    request = (f"Learn the joint distribution of the leading-jet mass and tau21 in {jets} with a tiny normalizing "
               "flow (2 epochs), draw 200 new jets from it.")
    assert "plot" not in asked_actions(request, ["plot", "sample_generator"], {})
    steps = [{"tool": "train_generator", "arguments": {"source": jets, "model": "flow", "size": "tiny", "epochs": 2}}]
    assistant, _ = _assistant([plan(steps, "Trained {$1.generator}."), answer("Trained {$1.generator}.")], workspace)
    record = assistant.ask(request)
    trained = [c for c in record.tool_calls if c["tool"] == "train_generator"]
    assert trained[-1]["arguments"]["features"] == ["jets.mass[0]", "jets.tau21[0]"], trained
    assert record.error is None and not record.failed_steps, record.failed_steps


def test_a_particle_flow_network_is_a_tagger_not_a_generative_flow() -> None:
    """'Train a tiny Particle Flow Network …' asked for train_generator (its "flow"), and the advice to add it
    derailed the plan; PFN and EFN are taggers, a "normalizing flow" is a generator."""
    from physagent.agent.plan import asked_actions

    offered = ["train_tagger", "evaluate_tagger", "train_generator"]
    pfn = ("Train a tiny Particle Flow Network for 2 epochs on datas-65fc5c9037, then evaluate it on the validation "
           "split and tell me the AUC there.")
    assert asked_actions(pfn, offered, {"datas-65fc5c9037": "dataset"}) == ["train_tagger", "evaluate_tagger"]
    assert asked_actions("train an Energy Flow Network", offered, {}) == ["train_tagger"]
    assert asked_actions("train a normalizing flow on the jets", offered, {}) == ["train_generator"]
