r"""Physics notation survives the model: LaTeX in a JSON reply (``\rho``, ``\tau``, ``\nu``, ``\rightarrow``) is
kept by both backends, real JSON escapes still work, control characters become findings, and the answer, the
report, the CLI and the knowledge passages keep the LaTeX source."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_openai_server import FakeOpenAIServer
from typer.testing import CliRunner

import physagent.knowledge.samples
from physagent.agent import Assistant, ScriptedBackend
from physagent.agent.backends._latex import control_characters, latex_safe, loads, redecode
from physagent.agent.backends.embedded import parse_reply
from physagent.agent.backends.openai_compat import OpenAICompatibleBackend
from physagent.agent.backends.scripted import answer, plan
from physagent.agent.execution import observation
from physagent.agent.plan import plan_schema
from physagent.agent.report import write_report
from physagent.app.cli import app
from physagent.knowledge import KnowledgeBase
from physagent.tools import Workspace, call_tool, registry

# (what the model writes inside a JSON string, the text it means); LaTeX is meant literally, so most agree
CASES = [
    (r"$\rho(1800) \rightarrow 3\pi$", r"$\rho(1800) \rightarrow 3\pi$"),
    (r"$\tau_{21} = \tau_2/\tau_1$", r"$\tau_{21} = \tau_2/\tau_1$"),
    (r"$\nu_\mu$ and $\bar{\nu}_e$", r"$\nu_\mu$ and $\bar{\nu}_e$"),
    (r"$\sqrt{s} = 13.6$ TeV", r"$\sqrt{s} = 13.6$ TeV"),
    (r"$\frac{d\sigma}{dp_T}$, $\beta$, $\forall$", r"$\frac{d\sigma}{dp_T}$, $\beta$, $\forall$"),
    (r"$\theta$, $\times$, $\to$, $\text{GeV}$, $\tilde{q}$", r"$\theta$, $\times$, $\to$, $\text{GeV}$, $\tilde{q}$"),
    (r"$\neq$, $\nabla$, $\not\in$, $\Rightarrow$, $\right)$, $\rm{b}$, $\bf{x}$",
     r"$\neq$, $\nabla$, $\not\in$, $\Rightarrow$, $\right)$, $\rm{b}$, $\bf{x}$"),
    (r"$\alpha_s$, $\Delta R$, $\upsilon$, $\{a\}$, $a\,b$", r"$\alpha_s$, $\Delta R$, $\upsilon$, $\{a\}$, $a\,b$"),
    (r"First line.\nThe second, with $\nu$.", "First line.\nThe second, with $\\nu$."),
    (r"a\n\nu quark \"line\" and a \\ backslash", "a\n" + r'\nu quark "line" and a \ backslash'),  # \nu wins
    (r"$\nu$\n$\tau$\tcolumn\t2", "$\\nu$\n$\\tau$\tcolumn\t2"),
    (r"already escaped: \\tau and \\rho", r"already escaped: \tau and \rho"),
    (r"\u03c4\u2082\u2081 = 0.4 \/ done", "τ₂₁ = 0.4 / done"),
    (r"line\r\nnext\nnuclear\tthe end", "line\r\nnext\nnuclear\tthe end"),
]
LATEX_ONLY = [(written, meant) for written, meant in CASES if "\n" not in meant and "\t" not in meant]


def _embedded(content: str, tools: list[dict[str, Any]] | None = None) -> Any:
    response = {"choices": [{"message": {"content": content}, "finish_reason": "stop"}], "usage": {}}
    return parse_reply(response, tools or [])


def _plan_tool() -> dict[str, Any]:
    return plan_schema([registry.get("generate_events").json_schema()])


@pytest.mark.parametrize(("written", "meant"), CASES)
def test_the_decoding_table_holds_for_the_rule_and_the_embedded_answer(written: str, meant: str) -> None:
    """Each case decodes to the text the model meant, as a bare string and as an embedded answer."""
    assert loads(f'"{written}"') == meant
    assert _embedded(f'{{"answer": "{written}"}}').text == meant


@pytest.mark.parametrize(("written", "meant"), CASES)
def test_an_embedded_plan_keeps_latex_in_its_answer_template(written: str, meant: str) -> None:
    """submit_plan's answer template from the embedded model decodes under the same rule."""
    reply = f'{{"tool": "submit_plan", "arguments": {{"steps": [], "answer": "{written}"}}}}'
    call = _embedded(reply, [_plan_tool()]).tool_calls[0]
    assert call.name == "submit_plan" and call.arguments["answer"] == meant


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    """A local fake OpenAI-compatible server that needs no key."""
    with FakeOpenAIServer() as fake:
        yield fake


def _openai(server: FakeOpenAIServer) -> OpenAICompatibleBackend:
    return OpenAICompatibleBackend(server.base_url, "fake-model", max_retries=0)


@pytest.mark.parametrize(("written", "meant"), CASES)
def test_openai_native_and_text_tool_calls_keep_latex(server: FakeOpenAIServer, written: str, meant: str) -> None:
    """A native submit_plan call (langchain decodes it; \\sqrt is no JSON at all) and one written in the text."""
    server.reply_tool_calls([("submit_plan", f'{{"steps": [], "answer": "{written}"}}')])
    server.reply_text(f'<tool_call>{{"name": "submit_plan", "arguments": {{"steps": [], "answer": "{written}"}}}}'
                      "</tool_call>")
    backend, tools = _openai(server), [_plan_tool()]
    for _ in range(2):
        call = backend.complete([{"role": "user", "content": "plan"}], tools).tool_calls[0]
        assert call.name == "submit_plan" and call.arguments["answer"] == meant


def test_openai_text_answers_are_not_json_and_stay_as_written(server: FakeOpenAIServer) -> None:
    """A plain-text answer is never JSON-decoded: the LaTeX arrives unchanged."""
    server.reply_text(r"The ratio $\tau_{21}$ and $\rho \rightarrow \pi\pi$.")
    assert _openai(server).complete([{"role": "user", "content": "?"}], []).text == \
        r"The ratio $\tau_{21}$ and $\rho \rightarrow \pi\pi$."


def test_redecoding_plainly_decoded_values_restores_the_latex() -> None:
    """What plain json.loads made of \\tau and \\rightarrow (tab + au, CR + ightarrow) is LaTeX again."""
    for written, meant in CASES:
        try:
            plain = json.loads(f'"{written}"', strict=False)
        except json.JSONDecodeError:
            continue  # \\sqrt and the like: langchain reports the call invalid and _recovered_call decodes it
        assert redecode({"a": [plain]}) == {"a": [meant]}
    assert latex_safe(r'"\nThe"') == r'"\nThe"' and latex_safe(r'"\nu"') == r'"\\nu"'


def test_control_characters_are_named() -> None:
    """Newline and tab are text; backspace, form feed and CR are control characters."""
    assert control_characters("a\nb\tc") == []
    assert control_characters("\x08ar \x0cr \rho \x08") == ["U+0008", "U+000C", "U+000D"]


def _assistant(turns: list[Any], workspace: Workspace) -> tuple[Assistant, ScriptedBackend]:
    backend = ScriptedBackend(turns)
    return Assistant(backend=backend, workspace=workspace, examples_per_request=0, retrieve_first=False), backend


TAU = r"The N-subjettiness ratio $\tau_{21}$ separates W jets from QCD jets, $W \rightarrow q\bar{q}$."


def test_a_latex_answer_is_kept_in_the_record_the_report_and_the_cli(
        workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$\\tau_{21}$ reaches the answer, the Markdown report and `physagent ask` unchanged, with no finding."""
    record = _assistant([answer(TAU)], workspace)[0].ask("What separates W jets from QCD jets?")
    assert record.answer.startswith(TAU) and record.findings == [] and record.unsupported == []
    assert TAU in write_report(record, tmp_path / "report.md").read_text()

    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"answer": TAU}]))
    monkeypatch.setattr(physagent.knowledge.samples, "sample_corpus", lambda: [])  # no passages to index
    result = CliRunner().invoke(app, ["ask", "What separates W jets from QCD jets?", "--backend",
                                      f"scripted:{script}", "--report", str(tmp_path / "cli.md")])
    assert result.exit_code == 0, result.output
    assert TAU in " ".join(result.stdout.split())  # rich wraps long lines at spaces, nothing else
    assert TAU in (tmp_path / "cli.md").read_text()


def test_control_characters_left_in_an_answer_are_written_out_and_recorded(workspace: Workspace) -> None:
    """A backspace (the \\b of \\bar decoded as JSON) is shown as \\b and named in the findings."""
    record = _assistant([answer("The antiquark $\x08ar{q}$ and a form feed\x0c.")], workspace)[0].ask("antiquark?")
    assert record.answer.startswith(r"The antiquark $\bar{q}$ and a form feed\f.")
    assert not control_characters(record.answer)
    assert any("U+0008, U+000C" in finding for finding in record.findings), record.findings


PASSAGE = r"The decay $\tau \rightarrow \mu\mu\mu$ violates lepton flavour; $\sqrt{s} = 13$ TeV, $\nu_\tau$ escapes."


@pytest.fixture
def lfv_workspace(workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A workspace whose only document is a note with LaTeX (the bundled samples left out: not needed here)."""
    monkeypatch.setattr(physagent.knowledge.samples, "sample_corpus", lambda: [])
    note = tmp_path / "lfv.md"
    note.write_text(f"# Lepton flavour violation\n\n{PASSAGE}\n")
    KnowledgeBase.open(workspace.root).ingest([note])
    return workspace


def test_a_knowledge_passage_keeps_its_latex_in_hits_observations_and_the_answer(lfv_workspace: Workspace) -> None:
    """\\rightarrow in a passage is quoted intact to the model, in the record and in the answer that cites it."""
    found = call_tool("search_knowledge", {"query": "tau to three muons", "k": 1}, workspace=lfv_workspace)
    assert PASSAGE in found.result.hits[0].text and PASSAGE in observation(found)

    quoted = rf"$\tau \rightarrow \mu\mu\mu$ violates lepton flavour {found.result.hits[0].citation}."
    assistant, backend = _assistant([plan([{"tool": "search_knowledge", "arguments": {"query": "tau to three muons"}}]),
                                     answer(quoted)], lfv_workspace)
    record = assistant.ask("What does my note say about tau to three muons?")
    shown = "\n".join(str(m.get("content")) for m in backend.seen[-1][0])
    assert PASSAGE in shown and record.answer.startswith(quoted) and record.findings == []
