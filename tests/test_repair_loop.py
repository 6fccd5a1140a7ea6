"""The code repair loop with a scripted model: broken first attempt → report (+ docs) → fixed second attempt."""

from __future__ import annotations

import pytest

from physagent.agent import Assistant, ScriptedBackend
from physagent.agent.backends import BackendError, ModelTurn
from physagent.agent.backends.scripted import answer, call
from physagent.agent.repair import SUBMIT_CODE, api_docs, extract_code, write_and_run
from physagent.tools import CallOutcome, Workspace

BROKEN = """
import json
counts = [3, 5, 4, 1, 6]
fraction = sum(n >= 4 for n in count) / len(counts)
print(json.dumps({"fraction": fraction}))
"""
FIXED = BROKEN.replace("for n in count)", "for n in counts)")


def submit(code: str) -> ModelTurn:
    return call("submit_code", code=code)


def test_broken_first_attempt_is_repaired_on_the_second(workspace: Workspace) -> None:
    """A NameError is fed back with the traceback and API docs; the fix validates; both attempts are recorded."""
    backend = ScriptedBackend([submit(BROKEN), submit(FIXED)])
    queries: list[str] = []

    def docs(query: str) -> str:
        queries.append(query)
        return "builtins.sum(iterable, /, start=0): Return the sum of a 'start' value plus an iterable."

    result = write_and_run("Fraction of events with at least 4 jets", backend=backend, workspace=workspace,
                           values={"fraction": "float"}, checks={"fraction": {"quantity": "fraction"}}, docs=docs)
    assert result.ok and result.error is None
    assert result.values == {"fraction": 0.6} and result.code == FIXED
    assert [a.ok for a in result.attempts] == [False, True]
    assert "NameError: name 'count' is not defined" in result.attempts[0].report
    assert queries == ["NameError: name 'count' is not defined. Did you mean: 'counts'?"]
    repair_prompt = backend.seen[1][0][-1]["content"]
    assert backend.seen[1][0][-1]["role"] == "tool"
    assert "Attempt 1 of 3 failed validation" in repair_prompt and 'File "/code/main.py", line 4' in repair_prompt
    assert "builtins.sum(iterable" in repair_prompt
    assert backend.seen[0][1] == [SUBMIT_CODE]
    calls = workspace.calls(session=result.session)
    assert [c.tool for c in calls] == ["run_python", "run_python"]
    assert [c.id for c in calls] == [a.call_id for a in result.attempts]
    stored = next(s for s in workspace.sessions() if s["id"] == result.session)
    turn = stored["record"]["turns"][0]
    assert [c["ok"] for c in turn["tool_calls"]] == [False, True] and len(stored["record"]["repair"]) == 2


def test_repair_gives_up_after_max_attempts_with_the_last_error(workspace: Workspace) -> None:
    """Three failing attempts end in a clear failure report; the model is not asked a fourth time."""
    backend = ScriptedBackend([submit(BROKEN), submit("print('no json')"), submit("import json\n"
                                                                               "print(json.dumps({'fraction': 2.5}))")])
    result = write_and_run("Fraction of events with at least 4 jets", backend=backend, workspace=workspace,
                           values={"fraction": "float"}, checks={"fraction": {"quantity": "fraction"}})
    assert not result.ok and len(result.attempts) == 3 and backend.remaining == 0
    assert result.error is not None and "after 3 attempt(s)" in result.error
    assert "fraction=2.5 is outside [0, 1] expected for a fraction" in result.error
    assert "no JSON object on the last line of stdout" in result.attempts[1].report
    stored = next(s for s in workspace.sessions() if s["id"] == result.session)
    assert stored["record"]["turns"][0]["error"] == result.error


def test_a_resubmitted_failing_program_is_not_rerun(workspace: Workspace) -> None:
    """The same broken program twice costs an attempt but no run; the model is told to change the failing line."""
    backend = ScriptedBackend([submit(BROKEN), submit(BROKEN + "\n"), submit(FIXED)])
    result = write_and_run("Fraction", backend=backend, workspace=workspace, values={"fraction": "float"})
    assert result.ok and [a.ok for a in result.attempts] == [False, False, True]
    assert result.attempts[1].report.startswith("this is the same program as attempt 1")
    assert "NameError" in result.attempts[1].report and result.attempts[1].call_id is None
    assert len(workspace.calls(session=result.session)) == 2


def test_the_task_prompt_describes_parquet_inputs_by_their_row_type(workspace: Workspace) -> None:
    """The model is shown each input's id, kind and awkward row type, so it can name fields correctly."""
    made = write_and_run("Make a table", backend=ScriptedBackend([submit(
        "import awkward as ak\nak.to_parquet(ak.Array({'jets': [[{'pt': 40.0}], []]}), 'jets.parquet')\n")]),
        workspace=workspace, outputs=["jets.parquet"])
    table = made.attempts[0].outputs[0]
    backend = ScriptedBackend([submit("print(INPUTS)")])
    write_and_run("Count jets", backend=backend, workspace=workspace, inputs=[table])
    task = backend.seen[0][0][1]["content"]
    assert f"INPUTS['{table}']: table, jets.parquet" in task
    assert "each row: {jets: var * {pt: float64}}" in task


def test_outputs_of_a_validated_attempt_are_artifacts_of_the_session(workspace: Workspace) -> None:
    """Declared files become artifacts that the session record lists."""
    code = "import json\nopen('summary.json', 'w').write(json.dumps({'n': 3}))\nprint(json.dumps({'n': 3}))\n"
    result = write_and_run("Write a summary", backend=ScriptedBackend([submit(code)]), workspace=workspace,
                           outputs=["summary.json"], values={"n": "int"})
    assert result.ok and len(result.attempts) == 1
    artifact_id = result.attempts[0].outputs[0]
    assert workspace.get_artifact(artifact_id).kind == "file"
    stored = next(s for s in workspace.sessions() if s["id"] == result.session)
    assert [a["id"] for a in stored["record"]["turns"][0]["artifacts"]] == [artifact_id]


def test_code_in_a_text_reply_and_an_empty_reply(workspace: Workspace) -> None:
    """A fenced block in a text answer is run; a reply without code counts as a failed attempt with advice."""
    fenced = answer("Here you go:\n```python\nimport json\nprint(json.dumps({'x': 1}))\n```\nDone.")
    result = write_and_run("Print x", backend=ScriptedBackend([answer("I think it is 1."), fenced]),
                           workspace=workspace, values={"x": "int"})
    assert result.ok and [a.ok for a in result.attempts] == [False, True]
    assert "contained no program" in result.attempts[0].report
    assert extract_code(answer("x = 1")) == "x = 1" and extract_code(answer("It is one.")) == ""


def test_an_unusable_model_reply_is_a_failed_attempt_not_a_crash(workspace: Workspace) -> None:
    """A reply cut off at max_tokens costs one attempt; the model is asked for a shorter program and recovers."""

    def cut_off(messages: list[dict]) -> ModelTurn:
        raise BackendError("embedded model: the reply is not the JSON asked for (it stopped at max_tokens)")

    backend = ScriptedBackend([cut_off, submit(FIXED)])
    result = write_and_run("Fraction", backend=backend, workspace=workspace, values={"fraction": "float"})
    assert result.ok and [a.ok for a in result.attempts] == [False, True]
    assert "stopped at max_tokens" in result.attempts[0].report
    assert "Submit a shorter program" in backend.seen[1][0][-1]["content"]


def test_unknown_input_artifact_is_an_attempt_failure_not_a_crash(workspace: Workspace) -> None:
    """A tool input error (an input id that does not exist) is reported like any other failure."""
    result = write_and_run("Read it", backend=ScriptedBackend([submit("pass")]), workspace=workspace,
                           inputs=["ev-0000000000"], max_attempts=1)
    assert not result.ok and "ev-0000000000" in result.attempts[0].report
    with pytest.raises(ValueError, match="max_attempts=0"):
        write_and_run("x", backend=ScriptedBackend([]), workspace=workspace, max_attempts=0)


def test_api_docs_searches_the_api_collection() -> None:
    """The knowledge-base adapter asks the 'api' collection and cites each passage's source."""

    class Hit:
        def __init__(self, text: str) -> None:
            self.text, self.source, self.title = text, "awkward", "ak.num"

    class KB:
        def __init__(self) -> None:
            self.asked: list[tuple[str, int, list[str]]] = []

        def search(self, query: str, k: int = 5, collections: list[str] | None = None) -> list[Hit]:
            self.asked.append((query, k, list(collections or [])))
            return [Hit("ak.num(array, axis=1)")]

    kb = KB()
    assert api_docs(kb, k=2)("AttributeError: ak.count") == "[awkward: ak.num]\nak.num(array, axis=1)"
    assert kb.asked == [("AttributeError: ak.count", 2, ["api"])]


@pytest.mark.slow  # loads the tool-selection embedder (~20 s on 2 busy cores)
def test_assistant_sees_a_failed_validation_as_an_observation_and_retries(workspace: Workspace) -> None:
    """In the agent loop a failing run_python is an observation with the report; the model's fix then validates."""
    arguments = {"values": {"fraction": "float"}, "checks": {"fraction": {"quantity": "fraction"}}}
    backend = ScriptedBackend([call("run_python", code=BROKEN, **arguments),
                               call("run_python", code=FIXED, **arguments),
                               answer("The fraction is 0.6 of the events.")])
    record = Assistant(backend=backend, workspace=workspace).ask(
        "Compute the fraction of events with at least 4 jets with Python")
    observation = backend.seen[1][0][-1]["content"]
    assert "validation FAILED" in observation and "NameError" in observation
    assert record.ok and [c["tool"] for c in record.tool_calls] == ["run_python", "run_python"]
    assert record.numbers == ["0.6"] and record.unsupported == []  # grounded in run_python's values


class FreeTextBackend(ScriptedBackend):
    """A scripted model that, like the embedded one, writes programs as free text (``write_program``)."""

    def __init__(self, turns: list[ModelTurn]) -> None:
        super().__init__(turns)
        self.temperatures: list[float] = []

    def write_program(self, messages: list[dict], temperature: float = 0.0) -> ModelTurn:
        self.temperatures.append(temperature)
        return self.complete(messages, [])


def fenced(code: str) -> ModelTurn:
    return answer(f"Here is the program:\n```python\n{code}```\n")


def test_a_free_text_writer_gets_its_failed_program_back_as_its_own_fenced_reply(workspace: Workspace) -> None:
    """No tool schema for code (a small model's unescaped quote would end the JSON string): the failed program
    is replayed as the model's fenced reply and the report follows as the user's turn."""
    backend = FreeTextBackend([fenced(BROKEN), fenced(FIXED)])
    result = write_and_run("Fraction", backend=backend, workspace=workspace, values={"fraction": "float"})
    assert result.ok and result.code.strip() == FIXED.strip()
    assert backend.seen[0][1] == [] and backend.temperatures == [0.0, 0.0]
    replayed, report = backend.seen[1][0][-2:]
    assert replayed == {"role": "assistant", "content": f"```python\n{BROKEN.rstrip()}\n```"}
    assert report["role"] == "user" and "Attempt 1 of 3 failed validation" in report["content"]


def test_a_repeated_program_starts_the_conversation_afresh_and_samples(workspace: Workspace) -> None:
    """Greedy decoding of the same conversation repeats a failed program: after a verbatim resubmission the
    model is asked afresh, warned of the error, and sampled."""
    backend = FreeTextBackend([fenced(BROKEN), fenced(BROKEN), fenced(FIXED)])
    result = write_and_run("Fraction", backend=backend, workspace=workspace, values={"fraction": "float"})
    assert result.ok and [a.repeat_of for a in result.attempts] == [None, 1, None]
    assert backend.temperatures[:2] == [0.0, 0.0] and backend.temperatures[2] > 0
    fresh = backend.seen[2][0]
    assert [m["role"] for m in fresh] == ["system", "user"]
    assert "A program written for this task before failed with" in fresh[1]["content"]
    assert "NameError: name 'count' is not defined" in fresh[1]["content"]


def test_a_value_printed_under_another_name_is_renamed_without_a_model_turn(workspace: Workspace) -> None:
    """'mean_delta_phi' printed where 'mean' was promised: the program is rerun with the promised name. Not a name
    the worked program prints (its own quantity, copied), nor a guess between two names sharing the word."""
    from physagent.agent.repair import Attempt, _with_promised_names

    code = "import json\nprint(json.dumps({'mean_delta_phi': 2.7}))\n"
    backend = ScriptedBackend([submit(code)])
    result = write_and_run("Mean", backend=backend, workspace=workspace, values={"mean": "float"})
    assert result.ok and result.values == {"mean": 2.7} and backend.remaining == 0
    assert "missing from the printed JSON" in result.attempts[0].report
    assert "'mean': 2.7" in result.code and len(workspace.calls(session=result.session)) == 2
    copied = "print(json.dumps({'mean_m_mumu_gev': 88.5}))"
    failed = Attempt(number=1, code=copied, ok=False, report="missing", values={"mean_m_mumu_gev": 88.5})
    assert _with_promised_names(failed, {"mean": "float"}) == "print(json.dumps({'mean': 88.5}))"
    assert _with_promised_names(failed, {"mean": "float"}, shown=f"```python\n{copied}\n```") == ""
    beside = "print(json.dumps({'mean_pt_gev': 21.0, 'n_pairs': 3}))"
    counted = Attempt(number=1, code=beside, ok=False, report="missing", values={"mean_pt_gev": 21.0, "n_pairs": 3})
    assert _with_promised_names(counted, {"mean": "float"}) == "print(json.dumps({'mean': 21.0, 'n_pairs': 3}))"
    two = Attempt(number=1, code="", ok=False, report="missing", values={"mean_pt": 2.7, "mean_eta": 0.1})
    assert _with_promised_names(two, {"mean": "float"}) == ""
    unrelated = Attempt(number=1, code="print(json.dumps({'width': 1.0}))", ok=False, report="", values={"width": 1.0})
    assert _with_promised_names(unrelated, {"mean": "float"}) == ""


def test_curve_fit_unpacked_flat_is_regrouped_and_fits(workspace: Workspace) -> None:
    """``norm, mu, sigma, _ = curve_fit(...)`` fails to unpack; it is rerun as ``(norm, mu, sigma), _ = ...``
    and the fit of a known Gaussian returns its width."""
    code = """import json
import numpy as np
from scipy.optimize import curve_fit
values = np.random.default_rng(5).normal(91.0, 2.0, 20000)
counts, edges = np.histogram(values, bins=40, range=(80.0, 100.0))
centres = 0.5 * (edges[1:] + edges[:-1])
def gauss(x, norm, mu, sigma):
    return norm * np.exp(-0.5 * ((x - mu) / sigma) ** 2)
norm, mu, sigma, _ = curve_fit(gauss, centres, counts, p0=[counts.max(), 90.0, 5.0])
print(json.dumps({"sigma_gev": float(abs(sigma))}))
"""
    result = write_and_run("Fit", backend=ScriptedBackend([submit(code)]), workspace=workspace,
                           values={"sigma_gev": "float"})
    assert result.ok and "(norm, mu, sigma), _ = curve_fit(" in result.code
    assert result.values["sigma_gev"] == pytest.approx(2.0, rel=0.05)
    assert "values to unpack" in result.attempts[0].report


def test_the_task_prompt_shows_a_close_worked_program_and_the_expressions_the_task_names(
        workspace: Workspace) -> None:
    """The closest worked program reads this task's input by id; the expressions shown are those the task's
    words call for (|Δφ| for azimuths, not a Gaussian fit)."""
    made = write_and_run("Make a table", backend=ScriptedBackend([submit(
        "import awkward as ak\nak.to_parquet(ak.Array({'n': [1, 2]}), 't.parquet')\n")]),
        workspace=workspace, outputs=["t.parquet"])
    table = made.attempts[0].outputs[0]
    backend = ScriptedBackend([submit("print(INPUTS)")])
    write_and_run("the mean |delta phi| between the two leading muons", backend=backend, workspace=workspace,
                  inputs=[table], max_attempts=1,
                  request="Are the muons of 300 Drell-Yan events back to back? Mean |delta phi| of the two leading")
    task = backend.seen[0][0][1]["content"]
    assert "Worked programs" in task and f"INPUTS[{table!r}]" in task and "INPUT_FILES[0]" not in task
    assert "|Δφ| in [0, π]" in task and "the two leading objects" in task and "Gaussian fit" not in task


def test_a_missing_kinematic_field_gets_a_hint_to_add_it(workspace: Workspace) -> None:
    """awkward's "no field named 'phi'" comes back with how to add phi from px, py."""
    code = "import awkward as ak\nrows = ak.Array([{'px': 1.0, 'py': 0.0}])\nprint(rows.phi)\n"
    backend = ScriptedBackend([submit(code), submit("import json\nprint(json.dumps({'x': 1}))\n")])
    result = write_and_run("x", backend=backend, workspace=workspace, values={"x": "int"})
    assert result.ok
    repair = backend.seen[1][0][-1]["content"]
    assert "no field named 'phi'" in repair and "ak.with_field(p, np.arctan2(p.py, p.px), 'phi')" in repair


def test_a_curve_fit_start_list_of_the_wrong_length_gets_a_hint(workspace: Workspace) -> None:
    """p0 with four values for a three-parameter Gaussian ("gaussian() takes 4 positional arguments but 5 were
    given", seen from the 1.5B model) comes back with how long p0 must be."""
    code = ("import numpy as np\nfrom scipy.optimize import curve_fit\nx = np.linspace(-3, 3, 20)\n"
            "def gaussian(m, norm, mu, sigma):\n    return norm * np.exp(-0.5 * ((m - mu) / sigma) ** 2)\n"
            "params, _ = curve_fit(gaussian, x, gaussian(x, 5.0, 0.0, 1.0), p0=[5.0, 0.0, 1.0, 0.5])\n")
    backend = ScriptedBackend([submit(code), submit("import json\nprint(json.dumps({'x': 1}))\n")])
    assert write_and_run("x", backend=backend, workspace=workspace, values={"x": "int"}).ok
    repair = backend.seen[1][0][-1]["content"]
    assert "takes 4 arguments, x and then its parameters" in repair and "one fewer than 4" in repair


def test_code_with_doubly_escaped_newlines_is_mended_only_when_that_makes_it_parse() -> None:
    assert extract_code(submit("import json\\nx = 1\\nprint(x)")) == "import json\nx = 1\nprint(x)"
    assert extract_code(submit("print('a\\nb')")) == "print('a\\nb')"


def _leading_pair_delta_phi(path: str) -> float:
    """The mean |Δφ| of the two hardest muons, computed here with numpy to check the generated program."""
    import awkward as ak
    import numpy as np

    muons = ak.from_parquet(path).particles
    muons = muons[abs(muons.pid) == 13]
    muons = muons[ak.argsort(np.hypot(muons.px, muons.py), axis=1, ascending=False)]
    two = muons[ak.num(muons) >= 2]
    phi = np.arctan2(two.py, two.px)
    return float(np.mean(np.abs((phi[:, 0] - phi[:, 1] + np.pi) % (2 * np.pi) - np.pi)))


@pytest.mark.slow
def test_the_real_default_model_writes_a_program_whose_value_matches_numpy(
        drell_yan_sample: CallOutcome, shared_workspace: Workspace) -> None:
    """The embedded 1.5B model, shown a worked program and the expressions, computes a per-event pair quantity
    of real Pythia events correctly (checked against numpy on the same file)."""
    from physagent.agent.backends.embedded import EmbeddedBackend

    events = drell_yan_sample.result.events
    result = write_and_run("the mean absolute azimuthal separation |delta phi| of the two hardest muons",
                           backend=EmbeddedBackend("1.5b"), workspace=shared_workspace, inputs=[events.id],
                           values={"mean_delta_phi": "float"})
    assert result.ok, result.error
    assert result.values["mean_delta_phi"] == pytest.approx(_leading_pair_delta_phi(str(events.path)), rel=1e-4)
