r"""Plan-then-execute: one constrained reply holds the whole plan; the loop checks it, runs it, renders the answer.

1. The model sees the offered tools (signatures with their result fields), the closest worked
   examples, the session's artifacts and any passages, and replies with ``submit_plan`` (steps +
   answer template) — or a plain answer when no tool applies (a refusal, a question from passages).
2. :func:`~physagent.agent.plan.check_plan` refuses a plan that cannot work before anything runs
   (dangling references, schema errors, unknown ids, placeholders to missing fields, a quantity word
   that disagrees with its placeholder's field); the problems go back to the model, a bounded number
   of times.
3. The steps run in order (``$N.field`` resolved to the ids they made). A failed step: the model gets
   the error, its plan and the results so far, and replans from that step (bounded).
4. The answer template is rendered from the results; a step that failed contributes no value. Placeholders
   to fields the results lack are sent back once with the fields there are, then dropped with their sentence.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from typing import Any

from physagent.agent.agent_tools import is_known, spec
from physagent.agent.arguments import clean_arguments, fill_stated_arguments
from physagent.agent.backends import BackendError
from physagent.agent.backends.scripted import ScriptExhaustedError
from physagent.agent.claims import (
    Placeholder,
    find_placeholders,
    mend_fields,
    mislabelled,
    missing_quantities,
    quantity_of_field,
    result_field_type,
)
from physagent.agent.events import AgentEvent, PlanEvent
from physagent.agent.execution import Run, observation
from physagent.agent.grounding import sources_in
from physagent.agent.plan import (
    Plan,
    PlanError,
    Step,
    asked_actions,
    check_plan,
    complete_plan,
    missing_actions,
    parse_plan,
    plan_schema,
    resolve_arguments,
)
from physagent.agent.prompting import relevant_parameters, render_tools
from physagent.agent.prompts import prompt
from physagent.agent.references import mend_invented_ids
from physagent.agent.selection import method_hints, named_methods

__all__ = ["PlanRun"]


class PlanRun(Run):
    """One request in plan-then-execute mode."""

    def events(self) -> Iterator[AgentEvent]:
        yield self.emit(PlanEvent(session=self.a.session, step=0, request=self.request, tools=self.context.offered))
        self.messages = self._messages()
        self.plan_tool = plan_schema([spec(name).json_schema() for name in self.context.offered])
        self.checked_labels = False
        self.advised: Plan | None = None  # a plan sent back only for advice (labels, skipped steps)
        replans, fixes = self.a.replans, self.a.plan_fixes
        while True:
            if (stop := self.out_of_budget()) is not None:
                yield from self.stop(stop)
                return
            try:
                reply = self._ask_for_plan()
            except ScriptExhaustedError:
                raise
            except BackendError as exc:
                yield from self.stop(f"the model backend failed: {exc}")
                return
            if isinstance(reply, str) and self.advised is not None:
                reply, self.advised = self.advised, None  # advice not taken: run the plan as it was
            elif isinstance(reply, PlanError) and fixes <= 0 and self.advised is not None:
                reply, self.advised = self.advised, None
            if isinstance(reply, str):
                if fixes > 0 and not self.steps and any(p.step for p in find_placeholders(reply)):
                    fixes -= 1  # placeholders to steps that were never planned: ask for the plan itself
                    self.messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": (
                        "Your answer uses {$N.field} placeholders, but you sent no plan, so nothing ran. Reply "
                        "with submit_plan: the steps that compute those values, and this answer.")}]
                    continue
                yield from self._answer_directly(reply)
                return
            if isinstance(reply, PlanError):
                if fixes <= 0:
                    yield from self.stop(f"the model's plan could not run: {reply}")
                    return
                fixes -= 1
                continue
            reply = self._completed(self._with_asked_quantities(reply))
            failed = yield from self._execute(reply)
            if failed is None:
                yield from self._answer(reply)
                return
            if self.steps[failed].ends_run or replans <= 0:
                yield from self._refuse(failed) if self.steps[failed].ends_run else self._answer(reply)
                return
            replans -= 1
            self._ask_to_replan(reply, failed)

    # prompt ------------------------------------------------------------------------------------

    def _messages(self) -> list[dict[str, Any]]:
        tools = [spec(name).json_schema() for name in self.context.offered]
        listing = render_tools(tools, _returns(self.context.offered), self._shown_parameters(tools))
        hints = "\n".join(method_hints(self.request, self.context.offered))  # last: nearest the request
        system = "\n\n".join(filter(None, [prompt("plan"), listing, self.context.sections(), hints]))
        self.context.prompt_text = "\n".join(filter(None, [prompt("plan"), hints]))
        return [{"role": "system", "content": system}, *self.a.history, {"role": "user", "content": self.request}]

    def _shown_parameters(self, tools: list[dict[str, Any]]) -> dict[str, set[str]] | None:
        """For a small model: each tool's parameters the request mentions or the similar examples use."""
        if not self.a.hygiene:
            return None
        used: dict[str, set[str]] = {}
        for example in self.context.examples:
            for step in example.steps:
                used.setdefault(step["tool"], set()).update(step.get("arguments", {}))
        text = " ".join([self.request, *(m["content"] for m in self.a.history if m["role"] == "user")])
        return {t["name"]: used.get(t["name"], set()) | relevant_parameters(t["parameters"], text) for t in tools}

    # model turns -------------------------------------------------------------------------------

    def _ask_for_plan(self) -> Plan | PlanError | str:
        """The model's plan (checked), its problems, or a direct answer."""
        try:
            turn = self.complete(self.messages, [self.plan_tool])
        except BackendError as exc:
            if not exc.retryable or isinstance(exc, ScriptExhaustedError):
                raise
            self.messages.append({"role": "user", "content": f"{exc} Reply again with a valid plan."})
            return PlanError([str(exc)])
        if not turn.tool_calls:
            return turn.text
        call = turn.tool_calls[0]
        self.messages.append({"role": "assistant", "content": "", "tool_calls": [
            {"id": call.id or f"plan-{self.turns}", "name": call.name, "arguments": call.arguments}]})
        try:
            plan = self._sound_steps(self._cleaned(parse_plan(call.arguments)))
        except PlanError as error:
            self.sources += sources_in(error.problems, "error")  # limits the model may quote in a refusal
            if _caused_by_request(error.problems, self.context.messages):  # the user's own values: refuse
                self.record.plan.append({"steps": call.arguments.get("steps"), "refused": error.problems})
                return "I can't do this as asked: " + "; ".join(p.removeprefix("step ").split(": ", 1)[-1]
                                                                for p in error.problems)
            self._tell(call.id, "Your plan was NOT run. Problems: " + "; ".join(error.problems)
                       + ". Reply with a corrected submit_plan (or an answer if the request cannot be done).")
            self.record.plan.append({"steps": call.arguments.get("steps"), "refused": error.problems})
            return error
        self.record.plan.append({"steps": [s.__dict__ for s in plan.steps], "answer": plan.answer})
        return plan

    def _sound_steps(self, plan: Plan) -> Plan:
        """The plan, checked. Sound steps under an answer template that names fields no step will have run
        anyway, and the answer is asked for once the results are in view: a small model rarely repairs a
        template for results it has not seen, and refusing the whole plan lost runs that would have worked."""
        plan = self._mended_answer(plan)
        try:
            self._check(plan)
            return plan
        except PlanError as error:
            if not plan.steps or not all(p.startswith("answer: ") for p in error.problems):
                raise
            problems = error.problems
        bare = Plan(plan.steps, "", [*plan.notes, *(f"answer written after the results ({p})" for p in problems)])
        self._check(bare)
        self.record.findings.append("the plan's answer template named fields its steps do not have; answered "
                                    "from the results instead")
        return bare

    def _mended_answer(self, plan: Plan) -> Plan:
        """The answer template with each placeholder to a field its step's result cannot have pointed at the one
        field it can only mean (:func:`field_meant`)."""
        tools = {step.number: step.tool for step in plan.steps if is_known(step.tool)}

        def fields_of(placeholder: Placeholder) -> list[str] | None:
            model = spec(tools[placeholder.step]).result_model if placeholder.step in tools else None
            if model is None or result_field_type(model, placeholder.path) is not None:
                return None
            return list(model.model_fields)

        answer, findings = mend_fields(plan.answer, fields_of)
        self.record.findings += findings
        return plan if answer == plan.answer else Plan(plan.steps, answer, plan.notes)

    def _with_asked_quantities(self, plan: Plan, late: bool = False) -> Plan:
        """After the advice round, or for an answer written after the results (``late``, which no advice
        round saw): each quantity the request asks for that the answer still lacks is added by the loop, as
        the placeholder the advice would name ("Mean hits per shower: {$1.mean_hits_per_shower}.")."""
        if not (self.checked_labels or late) or not plan.answer or self._reads_text(plan):
            return plan
        added = []
        for quantity, _ in missing_quantities(self.request, plan.answer):
            found = _asked_field(plan, quantity, self.request)
            if found:
                added.append(f"{found[1].replace('_', ' ').capitalize()}: {found[0]}.")
        if not added:
            return plan
        self.record.findings.append("the answer lacked what the request asks for; the loop added " + " ".join(added))
        return Plan(plan.steps, " ".join([plan.answer.rstrip(), *added]), plan.notes)

    def _check(self, plan: Plan) -> None:
        done = {n: (s.tool, s.outcome.result) for n, s in self.steps.items() if s.outcome is not None}
        check_plan(plan, self.context.offered, self.allowed_ids(), done)
        labels = mislabelled(plan.answer) + missing_actions(self.request, plan, self.context.offered,
                                                            self.allowed_ids()) + self._named_methods_unused(plan)
        if plan.answer and not self._reads_text(plan):
            labels += [problem + _hint(plan, quantity, self.request)
                       for quantity, problem in missing_quantities(self.request, plan.answer)]
        if labels and not self.checked_labels:  # sent back once; a second time it runs and is reported
            self.checked_labels = True
            self.advised = plan  # run as it is if the model cannot do better
            raise PlanError(labels)

    def _named_methods_unused(self, plan: Plan) -> list[str]:
        """The hint made explicit when no step uses a tool of the methods the request names (asked for CATHODE, a
        small model still picked another offered tool); one problem naming them all."""
        named = {t: w for w, tools in named_methods(self.request).items() for t in tools if t in self.context.offered}
        if not plan.steps or not named or named.keys() & {step.tool for step in plan.steps}:
            return []
        used = ", ".join(dict.fromkeys(step.tool for step in plan.steps))
        return [f"the request names {' and '.join(dict.fromkeys(named.values()))}, so a step must call "
                f"{' or '.join(named)} (your plan calls {used})"]

    def _completed(self, plan: Plan) -> Plan:
        """The plan with the steps the request orders but the model left out, where they follow from it."""
        completed = complete_plan(plan, self.request, self.context.offered, self.allowed_ids(), self.context.messages)
        if completed is not plan:
            self.record.plan.append({"steps": [s.__dict__ for s in completed.steps], "answer": completed.answer,
                                     "added": completed.notes[len(plan.notes):]})
        return completed

    @staticmethod
    def _reads_text(plan: Plan) -> bool:
        """Whether the plan's answer must come from reading passages (no values to check yet)."""
        return any(step.tool == "search_knowledge" for step in plan.steps)

    def _tell(self, call_id: str, text: str) -> None:
        self.feedback.append(text)
        self.messages.append({"role": "tool", "tool_call_id": call_id or f"plan-{self.turns}", "content": text})

    def _ask_to_replan(self, plan: Plan, failed: int) -> None:
        """Show the error and the results so far; the model sends a corrected complete plan. Steps that
        ran before are served from the tool cache, so a plan numbered from 1 again costs nothing extra."""
        done = [f"step {n} {s.tool}: {observation(s.outcome)}" for n, s in self.steps.items() if s.outcome]
        error = self.steps[failed].error
        self._tell("", f"Step {failed} ({self.steps[failed].tool}) FAILED: {error}\nResults so far:\n"
                       + ("\n".join(done) or "none")
                       + "\nReply with a corrected complete submit_plan, steps numbered from 1 (steps that "
                         "already ran are served from the cache), or answer if it cannot be done.")
        self.record.failed_steps += [{"step": n, "tool": s.tool, "error": s.error}
                                     for n, s in self.steps.items() if not s.ok]
        self.steps = {}

    def _cleaned(self, plan: Plan) -> Plan:
        """The plan with each step's arguments as the user stated them, before it is checked: a stated
        value the model changed ("-10 bins" written as 10) goes back as stated, and the check says why."""
        if not self.a.hygiene:
            return plan
        steps = [Step(s.number, s.tool, clean_arguments(s.arguments, spec(s.tool).parameters_schema(),
                                                        self.context.messages, self.context.example_values(s.tool)))
                 if is_known(s.tool) else s for s in plan.steps]
        mended = mend_invented_ids(Plan(steps, plan.answer, plan.notes), self.allowed_ids())
        if len(mended.notes) > len(plan.notes):
            self.record.findings.append("; ".join(mended.notes[len(plan.notes):]))
        return mended

    # execution ---------------------------------------------------------------------------------

    def _execute(self, plan: Plan) -> Generator[AgentEvent, None, int | None]:
        """Run the steps in order; returns the number of the first failed step, or None."""
        for step in plan.steps:
            outputs = {n: [(name, a) for name, a in _artifact_items(s.outcome.result)]
                       for n, s in self.steps.items() if s.outcome}
            arguments = resolve_arguments(step.arguments, outputs)
            yield from self.execute(step.number, step.tool, arguments)
            if not self.steps[step.number].ok:
                return step.number
        return None

    # answers -----------------------------------------------------------------------------------

    def _answer(self, plan: Plan) -> Iterator[AgentEvent]:
        # a template written before the passages were read cannot know what they say: answer after reading
        reading = any(s.outcome is not None and s.outcome.result.observation() is not None for s in self.steps.values())
        if reading or not plan.answer:
            template = self.with_known_fields(self._late_answer(plan, reading))
        else:
            template = self.with_known_fields(plan.answer)
        text, problems = self.render_answer(template)
        note = " ".join(filter(None, [self.failure_note(), self._not_done()]))
        if note:
            text = f"{text}\n\n{note}".strip()
        unsupported, mislabelled_numbers = self.check_numbers(text)
        self.record.findings += problems  # after what the loop found on the way (mended ids, dropped fields)
        yield from self.finish(text, unsupported, mislabelled_numbers + mislabelled(template))

    def _not_done(self) -> str:
        """What the request ordered that no step did, whatever the answer claims ("drawn in ALICE style")."""
        done = {s.tool for s in self.steps.values() if s.ok}
        skipped = [t for t in asked_actions(self.request, self.context.offered, self.context.artifacts)
                   if t not in done and not any(f["tool"] == t for f in self.record.failed_steps)]
        if skipped:
            self.record.findings.append(f"asked for but not done: {', '.join(skipped)}")
        return f"Not done: {', '.join(skipped)} (no step ran it)." if skipped else ""

    def _late_answer(self, plan: Plan, reading: bool) -> str:
        """An answer written after the results; one lacking a quantity the request asks for is sent back once
        with the field that holds it, and what is still missing is then added by the loop."""
        template = self._answer_template()
        if reading:
            return template
        problems = [problem + _hint(plan, quantity, self.request)
                    for quantity, problem in missing_quantities(self.request, template)]
        if problems:
            self.messages += [{"role": "assistant", "content": template}, {"role": "user", "content": (
                "; ".join(problems) + ". Answer again, writing each value as a placeholder {$N.field}.")}]
            template = self.complete(self.messages, []).text
        return self._with_asked_quantities(Plan(plan.steps, template, plan.notes), late=True).answer

    def _answer_template(self) -> str:
        """When the plan left the answer empty: ask for one, with the results in view."""
        results = "\n".join(f"step {n} {s.tool}: {observation(s.outcome)}" for n, s in self.steps.items()
                            if s.outcome)
        self.messages.append({"role": "user", "content": (
            f"Results:\n{results}\nNow answer the request from these results in two or three sentences. Cite "
            "each passage you use as [source: title], exactly as written. Write each value a tool computed as a "
            "placeholder {$N.field}.")})
        return self.complete(self.messages, []).text

    def _refuse(self, failed: int) -> Iterator[AgentEvent]:
        """The tool refused a value the user gave, or needs software this machine lacks: say so with the tool's
        reason; no workaround is tried (another call would answer another request, or invent the numbers)."""
        step = self.steps[failed]
        self.record.failed_steps += [{"step": failed, "tool": step.tool, "error": step.error}]
        opening = "I can't do this on this machine" if step.missing_software else "I can't do this as asked"
        yield from self.finish(f"{opening}: " + step.error.split(": ", 1)[-1], [], [])

    def _answer_directly(self, text: str) -> Iterator[AgentEvent]:
        """A reply without a plan: a refusal, or an answer from passages; its numbers must have a source."""
        rendered, problems = self.render_answer(text)
        note = self.failure_note()
        if note:  # after a failed step and a reply without a new plan: say what failed
            rendered = f"{rendered}\n\n{note}".strip()
        unsupported, mislabelled_numbers = self.check_numbers(rendered)
        if (unsupported or problems) and self.a.grounding_retries:
            self.messages += [{"role": "assistant", "content": text}, {"role": "user", "content": (
                "These values have no source: " + ", ".join(unsupported + problems)
                + ". Answer again using only numbers from the passages or the request, or plan tool calls.")}]
            retry = self.complete(self.messages, [self.plan_tool])
            if not retry.tool_calls:
                rendered, problems = self.render_answer(retry.text)
                unsupported, mislabelled_numbers = self.check_numbers(rendered)
        yield from self.finish(rendered, unsupported, mislabelled_numbers)


_COMMON_WORDS = frozenset({"with", "from", "into", "that", "this", "than", "what", "many", "much", "have", "does",
                           "over", "each", "their", "them", "they", "tell", "give", "average", "mean"})


def _hint(plan: Plan, quantity: str, request: str) -> str:
    """Where the plan's own steps hold the quantity: ' (write {$1.sigma_pb})'."""
    found = _asked_field(plan, quantity, request)
    return f" (write {found[0]})" if found else ""


def _asked_field(plan: Plan, quantity: str, request: str) -> tuple[str, str] | None:
    """(placeholder, field) of the plan's result field holding ``quantity``; of several, the one whose name and
    description share the most words with the request ("how many cells fire on average" →
    ``mean_hits_per_shower``, "mean number of cells above threshold", not ``mean_incident_energy_gev``)."""
    words = set(re.findall(r"[a-z]{4,}", request.lower())) - _COMMON_WORDS
    candidates: list[tuple[int, int, str, str]] = []
    for step in plan.steps:
        if not is_known(step.tool):
            continue
        for field, info in spec(step.tool).result_model.model_fields.items():
            if quantity_of_field(field) == quantity:
                text = f"{field.replace('_', ' ')} {info.description or ''}".lower()
                candidates.append((len(words & set(re.findall(r"[a-z]{4,}", text))), -len(candidates),
                                   f"{{${step.number}.{field}}}", field))
    return max(candidates)[2:] if candidates else None


_BAD_VALUE = re.compile(r"\b(\w+): (\w+)=(-?[\d.]+|'[^']*')\s+(?:must|is not|is more|is less|should)")


def _caused_by_request(problems: list[str], messages: list[dict[str, Any]]) -> bool:
    """Whether every problem is a tool refusing a value the user wrote for that very parameter ("-5 events",
    "500 TeV"); a model's ``eta_max=0`` is its own mistake even when "from 0 to 400 GeV" holds a 0."""
    for problem in problems:
        match = _BAD_VALUE.search(problem)
        if match is None or not is_known(match.group(1)):
            return False
        tool, name, value = match.group(1), match.group(2), match.group(3).strip("'")
        stated = fill_stated_arguments({}, spec(tool).parameters_schema(), messages, model_wrote=set()).get(name)
        if stated is None or (str(stated).lower() != value.lower() and not _same_number(stated, value)):
            return False
    return bool(problems)


def _same_number(stated: Any, written: str) -> bool:
    try:
        return float(stated) == float(written)
    except (TypeError, ValueError):
        return False


def _returns(offered: list[str]) -> dict[str, str]:
    """Each tool's result fields for its signature: artifacts (for '$N.field') and values (for placeholders)."""
    lines = {}
    for name in offered:
        tool = spec(name)
        artifacts = [f for f, info in tool.result_model.model_fields.items() if "Artifact" in str(info.annotation)]
        values = [f for f in tool.result_model.model_fields if f not in artifacts]
        lines[name] = (f"artifacts {', '.join(artifacts)}; " if artifacts else "") + f"values {', '.join(values)}"
    return lines


def _artifact_items(result: Any) -> list[tuple[str, Any]]:
    """(field, artifact) pairs of a result, in field order (lists of artifacts flattened)."""
    items = []
    for name in type(result).model_fields:
        value = getattr(result, name)
        for item in value if isinstance(value, list) else [value]:
            if hasattr(item, "sha256") and hasattr(item, "kind"):
                items.append((name, item))
    return items
