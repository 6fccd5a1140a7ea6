r"""What both agent modes share: running one tool call safely, and finishing a grounded answer.

:class:`Run` holds one request's state — the record, the event list, the numbers an answer may quote
(:class:`~physagent.agent.grounding.Source`) and each step's outcome. :meth:`Run.execute` runs a call:
arguments cleaned for small models (:mod:`physagent.agent.arguments`), artifact ids checked against
the session's, and, when a tool rejects an argument nobody stated, one retry without it.
:meth:`Run.finish` renders placeholders, checks the numbers the model typed (those rendering wrote are the
results' own) and strips any echo of the prompt.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from physagent.agent.agent_tools import WRITE_CODE, is_known, run_write_code, spec
from physagent.agent.arguments import (
    clean_arguments,
    example_from_error,
    is_choice,
    is_stated,
    name_from_offer,
    stated_settings,
    value_words_stated,
)
from physagent.agent.backends import ChatBackend, ModelTurn, Usage
from physagent.agent.backends._latex import control_characters, visible_controls
from physagent.agent.claims import (
    RENDERED_MARK,
    Placeholder,
    Rendered,
    field_meant,
    find_placeholders,
    format_value,
    mend_fields,
    render,
    resolve_path,
    unit_of,
    value_fields,
    without_sentences,
    without_unrenderable,
)
from physagent.agent.events import (
    AgentEvent,
    AnswerEvent,
    ArtifactEvent,
    ErrorEvent,
    PlanEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from physagent.agent.grounding import (
    Source,
    cite_passages,
    extract_numbers,
    mislabelled_numbers,
    sources_in,
    unsupported_numbers,
)
from physagent.agent.record import AgentRecord
from physagent.tools import ARTIFACT_ID_PATTERN, CallOutcome, ToolDependencyError, ToolError, ToolInputError, call_tool

if TYPE_CHECKING:
    from physagent.agent.context import RequestContext
    from physagent.agent.loop import Assistant

__all__ = ["Run", "StepOutcome"]

_OBSERVATION_CHARS = 900
_LONG_OBSERVATION_CHARS = 2400  # results that are text to read (passages), written compactly by the tool
_ID = re.compile(ARTIFACT_ID_PATTERN.strip("^$"))
_CLAUSE_END = re.compile(r"[.;:!?](?=\s|$)|\n|\s\(")


@dataclass
class StepOutcome:
    """One executed step: the call as run, and its outcome or error."""

    number: int
    tool: str
    arguments: dict[str, Any]
    outcome: CallOutcome | None
    error: str = ""
    refused_stated: str | None = None  # the parameter the user stated that the tool refused, if that failed it
    missing_software: bool = False  # the tool needs software this machine lacks: no other call provides it

    @property
    def ok(self) -> bool:
        return self.outcome is not None

    @property
    def ends_run(self) -> bool:
        """Whether no replan can help: the user's own value was refused, or the software is missing."""
        return self.refused_stated is not None or self.missing_software


def _user_gave(name: str, value: Any, parameters: dict[str, Any], messages: list[dict[str, Any]]) -> bool:
    """Whether the user gave this value: the parameter named and, for a list or free string, the value's own words
    too ("of the tree" does not give ``tree='nominal'``); a choice by its stem ("invisibly"). Required arguments
    count as given: a call cannot go without them."""
    if name in parameters.get("required", []):
        return True
    stated = is_stated(name, value, parameters, messages, strict=True)
    if stated and isinstance(value, (list, dict, str)) and not is_choice(parameters["properties"].get(name, {})):
        stated = value_words_stated(value, messages)
    return stated


class Run:
    """The state of one request; subclasses drive the model (plan or step by step) in :meth:`events`."""

    def __init__(self, assistant: Assistant, request: str, context: RequestContext) -> None:
        self.a, self.request, self.context = assistant, request, context
        self.start = time.perf_counter()
        self.turns = 0
        self.usage = Usage()
        self.model_s = 0.0
        self.tool_s = 0.0
        self.record = AgentRecord(session=assistant.session, backend=assistant.backend.name, request=request)
        self.sources: list[Source] = sources_in(request, "request") + context.sources
        self.steps: dict[int, StepOutcome] = {}
        self.made: dict[str, str] = {}  # id → kind of every artifact this request made (kept across replans)
        self.feedback: list[str] = []  # what the loop told the model (an answer must not repeat it)
        self.messages: list[dict[str, Any]] = []  # the conversation with the model (the mode fills it)
        self.rendered: tuple[str, list[tuple[int, int]]] = ("", [])  # the last rendered answer, its values' spans

    def events(self) -> Iterator[AgentEvent]:
        """Run the request, yielding each event (the subclass's mode)."""
        raise TypeError(f"{type(self).__name__} does not drive a model; use PlanRun or StepRun")

    @property
    def backend(self) -> ChatBackend:
        return self.a.backend

    # model -------------------------------------------------------------------------------------

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelTurn:
        began = time.perf_counter()
        self.turns += 1  # a turn that failed still counts against max_steps
        try:
            turn = self.backend.complete(messages, tools)
        finally:
            self.model_s += time.perf_counter() - began
        self.usage += turn.usage
        return turn

    def out_of_budget(self) -> str | None:
        if self.turns >= self.a.max_steps:
            return f"stopped after {self.turns} model turns without a final answer (max_steps={self.a.max_steps})"
        if time.perf_counter() - self.start > self.a.max_seconds:
            return f"stopped after {self.a.max_seconds:.0f} s without a final answer"
        return None

    # tools -------------------------------------------------------------------------------------

    def execute(self, number: int, tool: str, arguments: dict[str, Any]) -> Iterator[AgentEvent]:
        """Run one call (cleaned, ids checked, one retry without an unstated rejected argument)."""
        if self.a.hygiene and is_known(tool):
            arguments = clean_arguments(arguments, spec(tool).parameters_schema(), self.context.messages,
                                        self.context.example_values(tool))
        yield self.emit(ToolCallEvent(session=self.a.session, step=number, tool=tool, arguments=arguments))
        self.sources += sources_in(arguments, "argument")
        outcome, error, arguments, failure = self._call_with_retry(tool, arguments)
        if outcome is not None and getattr(outcome.result, "ok", True) is False:
            # the code ran but failed its checks: its values must not reach an answer
            error = f"its checks failed: {getattr(outcome.result, 'report', '')}".strip()
            outcome = None
        rejected = failure if isinstance(failure, ToolInputError) else None
        step = StepOutcome(number, tool, arguments, outcome, error, self._stated_refusal(tool, arguments, rejected),
                           missing_software=isinstance(failure, ToolDependencyError))
        self.steps[number] = step
        yield from self._report(step)

    def _stated_refusal(self, tool: str, arguments: dict[str, Any], rejected: ToolInputError | None) -> str | None:
        """The parameter of a refused value the user stated ("a prior on three parameters"): working around it
        would answer another request than the one asked, so the run ends with the tool's reason instead."""
        if rejected is None or rejected.param not in arguments or not is_known(tool):
            return None
        value = arguments[rejected.param]
        if isinstance(value, str) and re.fullmatch(ARTIFACT_ID_PATTERN, value) and value_words_stated(
                value, self.context.messages):
            return rejected.param  # the user's own artifact ("export model-…"): another one answers another request
        parameters = spec(tool).parameters_schema()
        if rejected.param in parameters.get("required", []):
            return None  # required arguments always count as stated: no evidence the user chose this value
        return rejected.param if _user_gave(rejected.param, value, parameters, self.context.messages) else None

    def _call_with_retry(self, tool: str, arguments: dict[str, Any]
                         ) -> tuple[CallOutcome | None, str, dict[str, Any], ToolError | None]:
        outcome, error, failure = self._call(tool, arguments)
        rejected = failure if isinstance(failure, ToolInputError) else None
        retry = self._retry_arguments(tool, arguments, rejected, error) if outcome is None else None
        if retry is None:
            return outcome, error, arguments, failure
        self.record.add_call(tool, arguments, ok=False, error=error)
        outcome, second, again = self._call(tool, retry[0])
        return outcome, (retry[1] + second if second else ""), retry[0], again

    def _retry_arguments(self, tool: str, arguments: dict[str, Any], rejected: ToolInputError | None, error: str
                         ) -> tuple[dict[str, Any], str] | None:
        """The one retry of a rejected call: without an unstated choice (a decay mode nobody asked for), or with the
        one name of the tool's "Available: …" list that the request writes (``lep_pt`` for "lepton pT")."""
        if rejected is not None and rejected.param and is_known(tool) and not arguments.get(rejected.param):
            example = example_from_error(error, self.context.messages)  # the fix the tool names, in the user's words
            if example is not None:
                return ({**arguments, rejected.param: example},
                        f"(retried with {rejected.param}={example!r}, the tool's example, which the request names) ")
        if rejected is None or rejected.param not in arguments or not is_known(tool):
            return None
        parameters = spec(tool).parameters_schema()
        param, value = rejected.param, arguments[rejected.param]
        # numbers are left alone: dropping one falls back to a default that may be costly (10,000 events);
        # derived names (summarize's fields) are mended, not dropped: without them the step computes nothing asked
        derived = parameters.get("properties", {}).get(param, {}).get("x-derived", False)
        if derived and isinstance(rejected.value, str):
            offered = name_from_offer(error, self.context.messages, rejected.value)
            if offered is None:
                return None
            mended = [offered if v == rejected.value else v for v in value] if isinstance(value, list) else offered
            return ({**arguments, param: mended},
                    f"(retried with {param}={mended!r}, the one available name the request writes) ")
        choice = isinstance(value, (str, bool, list))
        if choice and not _user_gave(param, value, parameters, self.context.messages):
            return ({k: v for k, v in arguments.items() if k != param},
                    f"(retried without {param}={value!r}, which nobody asked for) ")
        return None

    def _call(self, tool: str, arguments: dict[str, Any]) -> tuple[CallOutcome | None, str, ToolError | None]:
        unknown = self._unknown_ids(arguments)
        if not is_known(tool):
            offered = ", ".join(self.context.offered)
            return None, f"unknown tool {tool!r}. Available tools: {offered}.", None
        if unknown:
            return None, unknown, None
        began = time.perf_counter()
        try:
            if tool == WRITE_CODE:
                outcome, error = run_write_code(self, arguments)
                return outcome, error, None
            if tool == "search_knowledge":
                arguments = self._naming_the_document(arguments)
            outcome = call_tool(tool, arguments, workspace=self.a.workspace, session=self.a.session,
                                progress=self.a.progress)
            return outcome, "", None
        except ToolInputError as exc:
            self.sources += sources_in(str(exc), "error")  # the limits a refusal may quote
            return None, str(exc), exc
        except ToolDependencyError as exc:
            self.sources += sources_in(str(exc), "error")  # the versions and names a refusal may quote
            return None, str(exc), exc
        except ToolError as exc:
            return None, str(exc), None
        finally:
            self.tool_s += time.perf_counter() - began

    def _naming_the_document(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """A search whose request names one document ("according to the 2024 DESY deep-learning round table") and
        whose query does not: the query gets the document's name, so the search keeps to that document."""
        from physagent.knowledge import KnowledgeBase
        from physagent.knowledge.samples import sample_corpus
        from physagent.knowledge.store import named_source

        query = str(arguments.get("query", ""))
        listed = KnowledgeBase.open(self.a.workspace.root).documents()  # the bundled books once they are synced too
        sources = list(dict.fromkeys([p.name for p in sample_corpus()] + [d["source"] for d in listed]))
        named = named_source(self.request, sources)
        if named is None or named_source(query, sources) == named:
            return arguments
        name = re.sub(r"[-_.]+", " ", named.rsplit(".", 1)[0])
        return {**arguments, "query": f"{query} ({name})"}

    def _unknown_ids(self, arguments: dict[str, Any]) -> str:
        """An error naming ids the session does not hold (a copied example id, a tool name), or ''."""
        allowed = self.allowed_ids()
        for name, value in arguments.items():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str) and _ID.fullmatch(item) and item not in allowed:
                    listed = ", ".join(f"{i} ({k})" for i, k in allowed.items()) or "none yet"
                    return (f"{name}={item!r} is not an artifact of this session. Session artifacts: {listed}. "
                            "Use an id from this list or the output of an earlier step.")
        return ""

    def allowed_ids(self) -> dict[str, str]:
        return {**self.context.artifacts, **self.made}

    def _report(self, step: StepOutcome) -> Iterator[AgentEvent]:
        session = self.a.session
        if step.outcome is None:
            self.record.add_call(step.tool, step.arguments, ok=False, error=step.error)
            yield self.emit(ToolResultEvent(session=session, step=step.number, tool=step.tool, ok=False,
                                            summary=step.error))
            return
        outcome = step.outcome
        self.made |= {a.id: a.kind for a in outcome.artifacts}
        self.sources += sources_in(outcome.result.model_dump(mode="json"), "result")
        self.record.add_call(step.tool, step.arguments, ok=True, call_id=outcome.call_id)
        yield self.emit(ToolResultEvent(session=session, step=step.number, tool=step.tool, ok=True,
                                        summary=observation(outcome), call_id=outcome.call_id, cached=outcome.cached,
                                        result=outcome.result.model_dump(mode="json")))
        for artifact in outcome.artifacts:
            yield self.emit(ArtifactEvent(session=session, step=step.number, id=artifact.id, kind=artifact.kind,
                                          path=str(artifact.path), summary=artifact.summary))

    # answers -----------------------------------------------------------------------------------

    def lookup(self, placeholder: Placeholder) -> Rendered:
        """The value a placeholder names, with its unit and artifact id, or why it cannot be shown."""
        result, artifact, failed = self._result_for(placeholder)
        if failed:
            return Rendered(f"[not available: {failed}]", problem=failed)
        if result is None:
            return Rendered(f"[unknown {placeholder.text}]", problem=f"{placeholder.text} names no result",
                            unknown=True)
        try:
            value = resolve_path(result, placeholder.path)
        except KeyError as exc:
            found = self._only_step_with(placeholder)
            if found is None:
                return Rendered(f"[unknown {placeholder.text}]", problem=str(exc).strip("'\""), unknown=True)
            result, artifact, value = found
        if value is None:  # a field this run left empty (no SIC without signal): nothing to show
            return Rendered(f"[no value {placeholder.text}]", problem=f"{placeholder.text} holds no value",
                            unknown=True)
        if isinstance(value, (dict, list)):
            return Rendered(f"[{placeholder.text} is not one value]", problem=f"{placeholder.text} is not one value")
        return Rendered(format_value(value, unit_of(placeholder.path, result)), value, artifact)

    def _only_step_with(self, placeholder: Placeholder) -> tuple[dict[str, Any], str | None, Any] | None:
        """A placeholder whose step number is off ("{$1.before.z_local}" for step 2's field): the one other
        step whose result has that path, if exactly one has (a small model miscounts its steps)."""
        if placeholder.step is None:
            return None
        found = []
        for number, step in self.steps.items():
            if number == placeholder.step or step.outcome is None:
                continue
            result = step.outcome.result.model_dump(mode="json")
            try:
                value = resolve_path(result, placeholder.path)
            except KeyError:
                continue
            made = step.outcome.artifacts
            found.append((result, made[0].id if made else None, value))
        return found[0] if len(found) == 1 else None

    def _result_for(self, placeholder: Placeholder) -> tuple[dict[str, Any] | None, str | None, str | None]:
        if placeholder.step is not None:
            step = self.steps.get(placeholder.step)
            if step is None:
                return None, None, f"step {placeholder.step} did not run"
            if step.outcome is None:
                return None, None, f"step {placeholder.step} ({step.tool}) failed"
            made = step.outcome.artifacts
            return step.outcome.result.model_dump(mode="json"), made[0].id if made else None, None
        for step in self.steps.values():
            if step.outcome and placeholder.artifact in {a.id for a in step.outcome.artifacts}:
                return step.outcome.result.model_dump(mode="json"), placeholder.artifact, None
        for call in reversed(self.a.workspace.calls()):
            if placeholder.artifact in call.outputs:
                return call.result, placeholder.artifact, None
        return None, None, None

    def with_known_fields(self, template: str, ask: bool = True) -> str:
        """The answer template with placeholders only to values the results hold. A small model copies fields
        from another tool's worked example (``{$1.max_sic}`` of a result without one): it is told which
        placeholders are unknown and which fields its steps have, once (``ask``); what is still unknown then
        goes with its sentence rather than reaching the user as ``[unknown …]``."""
        template = self._mended_fields(template)
        unknown = self._unknown_placeholders(template)
        if unknown and ask and self.a.grounding_retries:
            self.messages += [{"role": "assistant", "content": template},
                              {"role": "user", "content": self._fields_feedback(unknown)}]
            retry = self.complete(self.messages, []).text
            if retry.strip():
                template, unknown = retry, self._unknown_placeholders(retry)
        if not unknown:
            return template
        self.record.findings.append("dropped placeholders to values the results do not hold: "
                                    + ", ".join(dict.fromkeys(p.text for p in unknown)))
        return without_sentences(template, unknown) or self._results_template()

    def _mended_fields(self, template: str) -> str:
        """Each unknown placeholder whose words all belong to exactly one field of its step's result is pointed
        at that field: ``{$2.mean_mass_gev}`` → ``{$2.leading_jet_mean_mass_gev}`` (a small model shortens
        long field names); with several candidates nothing is guessed."""
        def fields_of(placeholder: Placeholder) -> list[str] | None:
            step = self.steps.get(placeholder.step) if placeholder.step is not None else None
            if step is None or not step.ok or not self.lookup(placeholder).unknown:
                return None
            return value_fields(_result(step), limit=400, depth=2)

        template, findings = mend_fields(self._to_steps_that_ran(template), fields_of)
        self.record.findings += findings
        return template

    def _to_steps_that_ran(self, template: str) -> str:
        """Each placeholder to a step that never existed (``{$2.mean_mass}`` after a one-step plan) pointed at the one
        step that ran whose result has a field it can mean (:func:`field_meant`)."""
        for placeholder in find_placeholders(template):
            if placeholder.step is None or placeholder.step in self.steps:
                continue
            meant = [(number, field) for number, step in self.steps.items() if step.ok
                     if (field := field_meant(placeholder.path, value_fields(_result(step), limit=400, depth=2)))]
            if len(meant) == 1:
                template = template.replace(placeholder.text, f"{{${meant[0][0]}.{meant[0][1]}}}")
                self.record.findings.append(f"mended {placeholder.text} to step {meant[0][0]}'s {meant[0][1]}")
        return template

    def _unknown_placeholders(self, template: str) -> list[Placeholder]:
        return [p for p in find_placeholders(template) if self.lookup(p).unknown]

    def _fields_feedback(self, unknown: list[Placeholder]) -> str:
        """Which placeholders are unknown, and the value fields of the steps they name (all steps if unclear)."""
        named = {p.step for p in unknown} & {n for n, s in self.steps.items() if s.ok}
        fields = "\n".join(f"step {n} ({s.tool}): {', '.join(value_fields(_result(s))) or 'no values'}"
                           for n, s in self.steps.items() if s.ok and (n in named or not named))
        return (f"These placeholders name values the results do not have: "
                f"{', '.join(dict.fromkeys(p.text for p in unknown))}. The results have these fields:\n{fields}\n"
                "Answer again, writing each value as a placeholder {$N.field} to one of these fields.")

    def _results_template(self) -> str:
        """An answer from the results alone, when nothing of the model's is left: a few values of each step."""
        lines = [f"{s.tool}: " + ", ".join(f"{f.replace('_', ' ')} {{${n}.{f}}}" for f in value_fields(_result(s))[:4])
                 for n, s in self.steps.items() if s.ok and value_fields(_result(s))]
        return "\n".join(lines)

    def render_answer(self, template: str) -> tuple[str, list[str]]:
        """The answer with its placeholders filled; the problems of those that could not be."""
        text, rendered = render(template, self.lookup)
        text, rendered = _tag_artifacts(text, rendered)
        self.rendered = (text, [(v.start, v.end) for v in rendered])
        for value in rendered:
            if value.problem is None and isinstance(value.value, (int, float)):
                self.sources.append(Source(float(value.value), None, "result"))
        return text, [v.problem for v in rendered if v.problem]

    def check_numbers(self, text: str) -> tuple[list[str], list[str]]:
        """(unsupported, mislabelled) numbers the model typed into an answer (what rendering wrote is the results');
        a setting the user stated that no call used ("pT-hat above 400 GeV" while no step cut at 400) is unsupported
        when quoted."""
        typed = self._typed_only(text)
        unsupported = unsupported_numbers(typed, self.sources)
        unused = self._unused_settings()
        unsupported += [n for n in extract_numbers(typed) if n not in unsupported and _to_float(n) in unused]
        return unsupported, mislabelled_numbers(typed, self.sources)

    def _typed_only(self, text: str) -> str:
        """``text`` with the spans the last rendering wrote blanked to a mark (same length): a threshold of 2 or a
        run index rendered from a result is that result's value, not a claim, and small integers need a labelled
        source; the mark still tells the number check that a value followed its label. The spans are tracked
        through rendering rather than re-read from the text, which a note may follow."""
        rendered, spans = self.rendered
        offset = text.find(rendered) if rendered else -1
        if offset < 0:
            return text
        for start, end in spans:
            text = text[:offset + start] + RENDERED_MARK + " " * (end - start - 1) + text[offset + end:]
        return text

    def _unused_settings(self) -> set[float]:
        """Values the request states for a parameter of an offered tool that no successful call used."""
        if not any(step.ok for step in self.steps.values()):
            return set()  # a refusal may quote the request
        stated: set[float] = set()
        for name in self.context.offered:
            settings = stated_settings(spec(name).parameters_schema(), self.context.messages)
            stated |= {float(v) for v in settings.values() if isinstance(v, (int, float))}
        used = {s.value for s in self.sources if s.origin in ("argument", "result")}
        return {v for v in stated if not any(abs(v - u) <= 1e-9 * max(1.0, abs(v)) for u in used)}

    def failure_note(self) -> str:
        """A sentence for each step that failed and was not recovered, or ''."""
        done_tools = {s.tool for s in self.steps.values() if s.ok}
        failed = [s for s in self.steps.values() if not s.ok and s.tool not in done_tools]
        return " ".join(f"Step {s.number} ({s.tool}) failed: {s.error}" for s in failed)

    def passages(self) -> list[tuple[str, str]]:
        """(citation, text) of every passage the model was shown: retrieved first, or by a search step."""
        shown = [(h.citation, h.text) for h in self.context.passages]
        for step in self.steps.values():
            for hit in getattr(step.outcome.result, "hits", []) if step.outcome else []:
                shown.append((hit.citation, hit.text))
        return shown

    def finish(self, text: str, unsupported: list[str], mislabelled: list[str]) -> Iterator[AgentEvent]:
        answered_from_text = all(s.tool == "search_knowledge" for s in self.steps.values() if s.ok)
        text, raw = without_unrenderable(text)
        if raw:
            self.record.findings.append("dropped sentences with placeholders no result holds: " + ", ".join(raw))
        cleaned = self.context.without_prompt_echo(text, self._our_messages(), [t for _, t in self.passages()])
        if cleaned and not self.record.error and answered_from_text:  # a knowledge answer names its source
            cleaned = cite_passages(cleaned, self.passages())  # after the echo check: the prompt lists citations
        if not cleaned:  # the model only repeated what the loop told it
            cleaned = "I could not produce an answer: " + (self.record.plan[-1].get("refused", [""])[0]
                                                           if self.record.plan else "the model only echoed "
                                                           "its instructions") + "."
            self.record.findings.append("the answer only echoed the instructions")
        text = self._without_controls(cleaned)
        if unsupported:
            text += f"\n\n[unverified: {', '.join(unsupported)} appear in no tool result]"
        if mislabelled:
            text += f"\n\n[mislabelled: {', '.join(mislabelled)} come from a result of another quantity]"
        self.record.mislabelled = mislabelled
        self.record.timing = {"model_s": round(self.model_s, 2), "tools_s": round(self.tool_s, 2),
                              "prompt_s": round(self.usage.prompt_ms / 1e3, 2),
                              "generation_s": round(self.usage.generation_ms / 1e3, 2)}
        self.record.finish(text, extract_numbers(text), unsupported, self.usage, time.perf_counter() - self.start,
                           self.turns)
        yield self.emit(AnswerEvent(session=self.a.session, step=self.turns, text=text,
                                    numbers=self.record.numbers, unsupported=unsupported))

    def _without_controls(self, text: str) -> str:
        """The answer with control characters written out, each kind a finding: they garble the answer on screen,
        and usually are LaTeX read as a JSON escape (``\\bar`` as backspace + ``ar``)."""
        found = control_characters(text.replace("\r\n", "\n"))
        if found:
            self.record.findings.append(f"the answer held control characters {', '.join(found)}, written out as "
                                        "\\b, \\f, \\r or \\uHHHH (a JSON escape the model meant as LaTeX?)")
        return visible_controls(text)

    def _our_messages(self) -> list[str]:
        """What the loop wrote to the model as feedback (refused plans, retries): never an answer."""
        messages: list[dict[str, Any]] = getattr(self, "messages", [])
        asked = [i for i, m in enumerate(messages) if m.get("role") == "user" and m.get("content") == self.request]
        later = messages[asked[0] + 1:] if asked else []
        return self.feedback + [str(m.get("content") or "") for m in later if m.get("role") == "user"]

    def beyond_reach(self, reason: str) -> Iterator[AgentEvent]:
        """A request for an ability no tool has (:mod:`~physagent.agent.abilities`): the reason and what would work,
        with no model turn (a small model plans the nearest tool instead)."""
        yield self.emit(PlanEvent(session=self.a.session, step=0, request=self.request, tools=[]))
        self.record.findings.append("the request asks for an ability no tool has; answered without a model turn")
        yield from self.finish(reason, [], [])

    def stop(self, reason: str) -> Iterator[AgentEvent]:
        yield self.emit(ErrorEvent(session=self.a.session, step=self.turns, message=reason))
        self.record.error = reason
        done = [f"{c['tool']} ({'ok' if c['ok'] else 'failed'})" for c in self.record.tool_calls]
        text = f"I could not finish: {reason}." + (f" Tool calls so far: {', '.join(done)}." if done else "")
        yield from self.finish(text, [], [])

    def emit(self, event: AgentEvent) -> AgentEvent:
        self.record.events.append(event.model_dump(mode="json"))
        if isinstance(event, ArtifactEvent):
            self.record.artifacts.append({"id": event.id, "kind": event.kind, "path": event.path,
                                          "summary": event.summary})
        return event

    def memory(self) -> list[dict[str, Any]]:
        """What later turns of a chat remember: the request and the answer with its artifact ids."""
        made = "; ".join(f"{a['id']} ({a['kind']}): {a['summary']}" for a in self.record.artifacts)
        answer = self.record.answer + (f"\nArtifacts: {made}" if made else "")
        return [{"role": "user", "content": self.request}, {"role": "assistant", "content": answer}]


def _result(step: StepOutcome) -> dict[str, Any]:
    return step.outcome.result.model_dump(mode="json") if step.outcome else {}


def _to_float(written: str) -> float:
    return float(written.replace(",", ""))


def _tag_artifacts(text: str, rendered: list[Rendered]) -> tuple[str, list[Rendered]]:
    """Each artifact's id once, at the end of the clause holding the first value taken from it; the rendered
    values with their spans moved past the tags put before them."""
    for artifact in dict.fromkeys(v.artifact for v in rendered if v.artifact and v.problem is None):
        first = next(v for v in rendered if v.artifact == artifact and v.problem is None)
        end = _CLAUSE_END.search(text, first.end)
        cut = end.start() if end else len(text)
        tag = f" [{artifact}]"
        text = text[:cut] + tag + text[cut:]
        rendered = [v if v.start < cut else replace(v, start=v.start + len(tag), end=v.end + len(tag))
                    for v in rendered]
    return text, rendered


def observation(outcome: CallOutcome) -> str:
    """A short text for the model: inline values, then each artifact's id and summary."""
    if (custom := outcome.result.observation()) is not None:  # e.g. retrieved passages: citations first
        text = f"{outcome.tool} OK. {custom}"
        return text if len(text) <= _LONG_OBSERVATION_CHARS else text[: _LONG_OBSERVATION_CHARS - 3] + "..."
    values = {k: v for k, v in outcome.result.model_dump(mode="json").items() if not _is_artifact(v)}
    artifacts = "; ".join(f"{a.id} ({a.kind}): {a.summary}" for a in outcome.artifacts)
    status = "ran, but its checks FAILED (see report)" if values.get("ok") is False else "OK"
    text = f"{outcome.tool} {status}. Artifacts: {artifacts or 'none'}. {json.dumps(values, default=str)}"
    return text if len(text) <= _OBSERVATION_CHARS else text[: _OBSERVATION_CHARS - 3] + "..."


def _is_artifact(value: Any) -> bool:
    items = value if isinstance(value, list) else [value]
    return bool(items) and all(isinstance(i, dict) and {"id", "sha256"} <= i.keys() for i in items)

