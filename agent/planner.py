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

import json
import re
from collections.abc import Generator, Iterator, Sequence
from typing import Any

from physagent.agent.agent_tools import WRITE_CODE, is_known, spec
from physagent.agent.arguments import clean_arguments, fill_stated_arguments, spread_windows
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
from physagent.agent.cuts import multiplicity_asked, selection_from_words
from physagent.agent.events import AgentEvent, PlanEvent
from physagent.agent.execution import Run, observation
from physagent.agent.grounding import extract_numbers, sources_in
from physagent.agent.plan import (
    DATA_MAKERS,
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
    step_reference,
    with_derived_steps,
)
from physagent.agent.prompting import relevant_parameters, render_tools
from physagent.agent.prompts import prompt
from physagent.agent.references import (
    drop_artifact_reads,
    drop_repeated_steps,
    drop_unasked_exports,
    mend_invented_ids,
    mend_misread_sources,
    use_named_artifacts,
)
from physagent.agent.selection import method_hints, named_methods, statistic_tools
from physagent.tools.data.summarize import ALIASES, stats_key

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
            reply = self._after_advice(reply, fixes)
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
            reply = _counted_objects_quoted(self._with_asked_quantities(self._completed(reply)), self.request)
            failed = yield from self._execute(reply)
            while failed is not None and self._needless(reply, failed):
                reply = self._without_step(reply, failed)
                failed = yield from self._execute(reply)  # the steps before it are served from the tool cache
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
            plan = self._sound_steps(self._cleaned(self._continued(parse_plan(call.arguments))))
        except PlanError as error:
            self.sources += sources_in(error.problems, "error")  # limits the model may quote in a refusal
            if _caused_by_request(error.problems, self.context.messages):  # the user's own values: refuse
                self.record.plan.append({"steps": call.arguments.get("steps"), "refused": error.problems})
                return _refusal(error.problems)
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
        the placeholder the advice would name ("Mean hits per shower: {$1.mean_hits_per_shower}."). Always: a
        quantity the answer quotes from a step the request describes less well than another (a slice's σ for
        "the total cross-section of the merged sample") gets the better step's value beside it."""
        if not plan.answer or self._reads_text(plan):
            return plan
        added = []
        for quantity, _ in missing_quantities(self.request, plan.answer) if (self.checked_labels or late) else []:
            found = _asked_field(plan, quantity, self.request)
            # a generic statistic of a field the request does not describe (mean_particles for "the mean muon pT")
            if found and (found[2] > 0 or quantity not in _SUMMARIZED):
                added.append(f"{found[1].replace('_', ' ').capitalize()}: {found[0]}.")
        added += self._better_described(plan)
        if not added:
            return plan
        self.record.findings.append("the answer lacked what the request asks for; the loop added " + " ".join(added))
        return Plan(plan.steps, " ".join([plan.answer.rstrip(), *added]), plan.notes)

    def _better_described(self, plan: Plan) -> list[str]:
        """'Total cross-section Σσ_k: {$3.sigma_pb}.' for each asked quantity whose best-described field the
        answer does not quote, while it quotes a field of that quantity the request describes less well."""
        tools = {s.number: s.tool for s in plan.steps if is_known(s.tool)}
        quoted = [(tools[p.step], p.path) for p in find_placeholders(plan.answer) if p.step in tools]
        added = []
        for quantity, _ in missing_quantities(self.request, ""):
            best = _asked_field(plan, quantity, self.request)
            same = [_shared_words(tool, path, self.request) for tool, path in quoted
                    if quantity_of_field(path) == quantity]
            if best and same and best[0] not in plan.answer and best[2] > max(same):
                number = int(best[0][2:].split(".", 1)[0])
                added.append(f"{_label(tools[number], best[1])}: {best[0]}.")
        return added

    def _check(self, plan: Plan) -> None:
        done = {n: (s.tool, s.outcome.result) for n, s in self.steps.items() if s.outcome is not None}
        check_plan(plan, self.context.offered, self.allowed_ids(), done)
        labels = mislabelled(plan.answer) + missing_actions(self.request, plan, self.context.offered,
                                                            self.allowed_ids()) + self._named_methods_unused(plan)
        if plan.answer and not self._reads_text(plan):
            labels += [problem + _hint(plan, quantity, self.request, self.context.offered)
                       for quantity, problem in missing_quantities(self.request, plan.answer)]
        elif not self._reads_text(plan):  # answered after the results: still, some step must compute what is asked
            labels += self._uncomputed(plan)
        if labels and not self.checked_labels:  # sent back once; a second time it runs and is reported
            self.checked_labels = True
            self.advised = plan  # run as it is if the model cannot do better
            raise PlanError(labels)

    def _uncomputed(self, plan: Plan) -> list[str]:
        """The statistics the request asks for that no step's result holds as the request describes them, each
        with the summarize step to add ("the mean lepton pT" of a file that is only read)."""
        problems = []
        for quantity, _ in missing_quantities(self.request, ""):
            found = _asked_field(plan, quantity, self.request)
            step = (_summarize_step(plan, quantity, self.context.offered, multiplicity_asked(self.request))
                    if not found or found[2] == 0 else "")
            if step:
                problems.append(f"the request asks for the {quantity}, but {step}")
        return problems

    def _after_advice(self, reply: Plan | PlanError | str, fixes: int) -> Plan | PlanError | str:
        """The plan sent back for advice runs as it was when the model did not take the advice (a text, a broken
        plan with no fixes left) or took it by leaving out steps the request asks for."""
        advised = self.advised
        if advised is None:
            return self._derived_instead(reply) if isinstance(reply, str) else reply
        worse = isinstance(reply, Plan) and self._skips_more(reply, advised)
        if isinstance(reply, str) or (isinstance(reply, PlanError) and fixes <= 0) or worse:
            if worse:
                self.record.findings.append("the plan written after the advice left out steps the request asks "
                                            "for; the plan before it ran")
            self.advised = None
            return advised
        return reply

    def _continued(self, plan: Plan) -> Plan:
        """A reply to advice that holds only the steps to add ("summarize $1", numbered 1 but meant as step 2,
        its answer quoting {$2…}) is read as the advised plan followed by those steps."""
        advised = self.advised
        if advised is None or not advised.steps or not plan.steps:
            return plan
        first = max(s.number for s in advised.steps) + 1
        used = {s.number: _referenced(s.arguments) for s in plan.steps}
        if not any(n >= number for number, refs in used.items() for n in refs) or any(
                n >= first for refs in used.values() for n in refs):
            return plan  # sound as written, or refers beyond the advised plan: not a continuation
        steps = [*advised.steps, *(Step(first + i, s.tool, s.arguments) for i, s in enumerate(plan.steps))]
        return Plan(steps, plan.answer, [*plan.notes, "the steps sent after the advice continue the advised plan"])

    def _derived_instead(self, reply: str) -> Plan | str:
        """A model that answers in words — giving up after a refused plan ("the paths do not exist"), or making up
        an outcome with no plan at all ("no R = 0.8 jets above 250 GeV in that sample") — is overruled when the
        steps the request orders follow from the request and the session alone (export hist-… and hist-… to
        ROOT; cluster jets in the session's sample): that plan runs."""
        if self.steps:
            return reply
        derived = self._completed(self._same_again())
        if not derived.steps:
            return self._refused_derivation() or reply
        refused = any("refused" in entry for entry in self.record.plan)
        self.record.findings.append(("the model gave up after its plan was refused" if refused else
                                     "the model answered in words without running anything") +
                                    "; the steps the request orders were derived from it and ran")
        return derived

    def _refused_derivation(self) -> str | None:
        """The tool's reason when the steps the request orders would run only with a value the user stated that the
        tool refuses ("cluster them with a radius of exactly zero"): said, rather than the model's story."""
        derived = with_derived_steps(Plan([], "", []), self.request, self.context.offered, self.allowed_ids(),
                                     self.context.messages)
        try:
            check_plan(derived, self.context.offered, self.allowed_ids())
        except PlanError as error:
            if derived.steps and _caused_by_request(error.problems, self.context.messages):
                self.sources += sources_in(error.problems, "error")  # the limits the refusal quotes
                return _refusal(error.problems)
        return None

    def _same_again(self) -> Plan:
        """For "do the same at 13 TeV": the previous request's calls again, with the settings this request states
        ("13 TeV" → ``sqrt_s_tev=13``); empty unless the request asks for the same, and the calls did not read one
        another's outputs (those would need the new outputs wired in)."""
        earlier = self.a.records[-1] if self.a.records else None
        if earlier is None or not _SAME_AGAIN.search(self.request):
            return Plan([], "", [])
        calls = [c for c in earlier.tool_calls if c["ok"] and is_known(c["tool"])]
        made = {a["id"] for a in earlier.artifacts}
        if not calls or any(_mentions(c["arguments"], made) for c in calls):
            return Plan([], "", [])
        asked = [{"role": "user", "content": self.request}]
        steps = [Step(i, c["tool"], fill_stated_arguments(dict(c["arguments"]), spec(c["tool"]).parameters_schema(),
                                                          asked, model_wrote=set(c["arguments"])))
                 for i, c in enumerate(calls, start=1)]
        return Plan(steps, "", ["the previous request's steps again, with the settings this request states"])

    def _skips_more(self, plan: Plan, than: Plan) -> bool:
        """Whether ``plan`` leaves out more of the steps the request orders than ``than`` does (a small model
        rewrote its plan to fix the answer and lost the histogram)."""
        def skipped(candidate: Plan) -> int:
            return len(missing_actions(self.request, candidate, self.context.offered, self.allowed_ids()))
        return skipped(plan) > skipped(than)

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

    def _needless(self, plan: Plan, failed: int) -> bool:
        """Whether a failed step is one the request does not ask for and no later step reads, while later steps
        remain: a small model adds a make_jet_dataset nobody asked for before the compare_samples asked for, and
        its refusal must not end the run nor cost a replan."""
        later = [s for s in plan.steps if s.number > failed]
        tool = self.steps[failed].tool
        reads = re.compile(rf"\$\{{?{failed}(?!\d)")
        asked = asked_actions(self.request, self.context.offered, self.context.artifacts)
        return bool(later) and tool not in asked and not any(reads.search(json.dumps(s.arguments)) for s in later)

    def _without_step(self, plan: Plan, failed: int) -> Plan:
        step = self.steps.pop(failed)
        self.record.findings.append(f"left out step {failed} ({step.tool}): it failed, the request does not ask "
                                    f"for it and no later step reads it ({step.error.split(': ', 1)[-1][:200]})")
        return Plan([s for s in plan.steps if s.number != failed], plan.answer, plan.notes)

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
        self._record_failed()
        self.steps = {}

    def _record_failed(self) -> None:
        self.record.failed_steps += [{"step": n, "tool": s.tool, "error": s.error}
                                     for n, s in self.steps.items() if not s.ok]

    def _cleaned(self, plan: Plan) -> Plan:
        """The plan with each step's arguments as the user stated them, before it is checked: a stated
        value the model changed ("-10 bins" written as 10) goes back as stated, and the check says why. Steps
        that read a session artifact as a file go, hygiene or not: they cannot work."""
        mended = drop_artifact_reads(plan, self.allowed_ids())
        if self.a.hygiene:
            steps = [Step(s.number, s.tool, clean_arguments(s.arguments, spec(s.tool).parameters_schema(),
                                                            self.context.messages,
                                                            self.context.example_values(s.tool)))
                     if is_known(s.tool) else s for s in mended.steps]
            mended = mend_misread_sources(mend_invented_ids(Plan(self._windows_spread(steps), mended.answer,
                                                                 mended.notes), self.allowed_ids()))
            mended = use_named_artifacts(drop_repeated_steps(mended, self.request), self.request, self.allowed_ids())
            mended = drop_unasked_exports(mended, asked_actions(self.request, self.context.offered,
                                                                self.allowed_ids()), self.request)
            mended = _multiplicity_summarized(_with_stated_selection(mended, self.request), self.request)
            if statistic_tools(self.request) and "summarize" in self.context.offered:
                mended = _statistics_summarized(mended)
        if len(mended.notes) > len(plan.notes):
            self.record.findings.append("; ".join(mended.notes[len(plan.notes):]))
        return mended

    def _windows_spread(self, steps: list[Step]) -> list[Step]:
        """Steps of one tool get the windows the request writes, one each in order (two p̂T slices)."""
        spread: dict[int, dict[str, Any]] = {}
        for tool in {s.tool for s in steps if is_known(s.tool)}:
            same = [s for s in steps if s.tool == tool]
            arguments = spread_windows([s.arguments for s in same], spec(tool).parameters_schema(),
                                       self.context.messages)
            spread |= {s.number: a for s, a in zip(same, arguments, strict=True)}
        return [Step(s.number, s.tool, spread.get(s.number, s.arguments)) for s in steps]

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
        if self.steps and not any(s.ok for s in self.steps.values()):  # a model writes success stories even so
            self._record_failed()
            yield from self.finish(" ".join(filter(None, ["Nothing was done.", self.failure_note(), self._not_done()])),
                                   [], [])
            return
        # a template written before the passages were read cannot know what they say: answer after reading
        reading = any(s.outcome is not None and s.outcome.result.observation() is not None for s in self.steps.values())
        if reading or not plan.answer:
            template = self.with_known_fields(self._late_answer(plan, reading))
        else:
            template = self.with_known_fields(self._with_code_values(plan.answer))
        text, problems = self.render_answer(template)
        unsupported = self.check_numbers(text)[0]
        if unsupported and not reading and self.a.grounding_retries:
            template = self._without_unsupported(plan, template, unsupported)
            text, problems = self.render_answer(template)
        if unsupported := self.check_numbers(text)[0]:
            template, dropped = _without_asides_holding(template, unsupported)
            if dropped:
                self.record.findings.append("dropped asides with numbers no result holds: " + " ".join(dropped))
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
        template = self._answer_template(written_before=bool(plan.answer) and reading)
        if reading:
            return template
        template = self._with_code_values(template)
        problems = [problem + _hint(plan, quantity, self.request, self.context.offered)
                    for quantity, problem in missing_quantities(self.request, template)]
        if problems:
            self.messages += [{"role": "assistant", "content": template}, {"role": "user", "content": (
                "; ".join(problems) + ". Answer again, writing each value as a placeholder {$N.field}.")}]
            template = self.complete(self.messages, []).text
        return self._with_asked_quantities(Plan(plan.steps, template, plan.notes), late=True).answer

    def _with_code_values(self, template: str) -> str:
        """The template with the values of each generated-code step it does not quote: what the user asked the
        code for (a small model's answer quoted a histogram's statistics instead, or nothing)."""
        for number, step in self.steps.items():
            values = getattr(step.outcome.result, "values", None) if step.ok and step.outcome else None
            if step.tool != WRITE_CODE or not values or f"{{${number}.values." in template:
                continue
            quoted = ", ".join(f"{name.replace('_', ' ')} = {{${number}.values.{name}}}" for name in values)
            # no step number in the prose: "step 4" is a number no result holds, and the user never numbered steps
            template = f"{template.rstrip()} Computed by the generated code: {quoted}.".strip()
        return template

    def _without_unsupported(self, plan: Plan, template: str, unsupported: list[str]) -> str:
        """The answer written again once, without the numbers no result and not the request gives (a small model
        copies "p̂T > 250 GeV, seed 21" from a worked example); what the request asks for is still added."""
        self.messages += [{"role": "assistant", "content": template}, {"role": "user", "content": (
            f"The numbers {', '.join(unsupported)} are in no tool result and not in the request. Write the answer "
            "again without them, writing each value a tool computed as a placeholder {$N.field}.")}]
        again = self.with_known_fields(self.complete(self.messages, []).text)
        if not again.strip():
            return template
        return self._with_asked_quantities(Plan(plan.steps, again, plan.notes), late=True).answer

    def _answer_template(self, written_before: bool = False) -> str:
        """When the plan left the answer empty, or wrote it before the passages it must read: ask for one, with the
        results in view (``written_before``: the plan's answer is in the conversation and, greedily decoded, the
        model repeated it word for word — a welcome page quoted before the search found the abstract)."""
        results = "\n".join(f"step {n} {s.tool}: {observation(s.outcome)}" for n, s in self.steps.items()
                            if s.outcome)
        # with passages, the question again next to them: a small model quoted a passage shown before the search (a
        # book's welcome page) instead of the searched abstract holding the asked value
        asked = (f"The request was: {self.request}\nAnswer it from the passage above that answers it, in its words,"
                 if any(s.tool == "search_knowledge" for s in self.steps.values() if s.ok) else
                 "Now answer the request from these results")
        earlier = ("The answer in your plan was written before these passages were found: do not repeat it.\n"
                   if written_before else "")
        self.messages.append({"role": "user", "content": (
            f"Results:\n{results}\n{earlier}{asked} in two or three sentences. Cite each passage you use as "
            "[source: title], exactly as written. Write each value a tool computed as a placeholder {$N.field}.")})
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


def _hint(plan: Plan, quantity: str, request: str, offered: Sequence[str] = ()) -> str:
    """Where the plan's own steps hold the quantity: ' (write {$1.sigma_pb})'; where none holds it as the request
    describes it (only generate_events' mean_particles for "the mean muon pT") and a step makes data, the summarize
    step to add."""
    found = _asked_field(plan, quantity, request)
    summarize = _summarize_hint(plan, quantity, offered, multiplicity_asked(request))
    if found and (found[2] > 0 or not summarize):
        return f" (write {found[0]})"
    return summarize


_SUMMARIZED = {"mean": "mean", "median": "median", "std": "std", "minimum": "min", "maximum": "max"}


def _summarize_hint(plan: Plan, quantity: str, offered: Sequence[str], counted: str | None = None) -> str:
    """' (no step computes it: add step 3 summarize with source '$1' …)' where a step makes data."""
    step = _summarize_step(plan, quantity, offered, counted)
    return f" ({step})" if step else ""


def _summarize_step(plan: Plan, quantity: str, offered: Sequence[str], counted: str | None = None) -> str:
    """'no step computes it: add step 3 summarize with source '$1' …' where a step makes data, else ''; for a mean
    number of objects per event (``counted``: "jets") the multiplicity to quote instead of a field's statistic."""
    data = [s for s in plan.steps if s.tool in DATA_MAKERS]
    if quantity not in _SUMMARIZED or "summarize" not in offered or not data:
        return ""
    after = max(s.number for s in plan.steps) + 1
    if counted and quantity == "mean":
        return (f"no step computes it: add step {after} summarize with source '${data[-1].number}' and no fields, "
                f"and write {{${after}.multiplicities.{counted}.mean}}")
    return (f"no step computes it: add step {after} summarize with source '${data[-1].number}' and the field asked "
            f"for, and write {{${after}.stats.<field>.{_SUMMARIZED[quantity]}}}")


def _referenced(value: Any) -> list[int]:
    """The step numbers a value refers to ("$1.events", lists and objects of them)."""
    if isinstance(value, dict):
        return [n for item in value.values() for n in _referenced(item)]
    if isinstance(value, list):
        return [n for item in value for n in _referenced(item)]
    reference = step_reference(value)
    return [reference[0]] if reference else []


def _shared_words(tool: str, field: str, request: str) -> int:
    """Words (4+ letters, not common) the field's name and description share with the request."""
    info = spec(tool).result_model.model_fields.get(field.split(".", 1)[0])
    text = f"{field.replace('_', ' ')} {info.description if info else ''}".lower()
    words = set(re.findall(r"[a-z]{4,}", request.lower())) - _COMMON_WORDS
    return len(words & set(re.findall(r"[a-z]{4,}", text)))


def _label(tool: str, field: str) -> str:
    """A result field's name for people, from its description: 'Total cross-section Σσ_k'."""
    description = spec(tool).result_model.model_fields[field].description or field.replace("_", " ")
    return re.split(r"\s+in\s+|\s*[(,:;.]", description, maxsplit=1)[0].strip()


# "do the same at 13 TeV", "same again with seed 5", "repeat that for W+jets"
_SAME_AGAIN = re.compile(r"\b(?:do|make|run) (?:the )?same\b|\bsame again\b|\brepeat (?:that|it|this)\b",
                         re.IGNORECASE)


def _mentions(value: Any, ids: set[str]) -> bool:
    """Whether ``value`` (an argument, possibly a list or mapping) names one of ``ids``."""
    if isinstance(value, dict):
        return any(_mentions(item, ids) for item in value.values())
    if isinstance(value, list):
        return any(_mentions(item, ids) for item in value)
    return isinstance(value, str) and value in ids


_OBJECTS = r"(jet|particle|photon|muon|electron|lepton|hit|cell|track|constituent|shower)s?"
# the objects a request counts: "the average number of jets per event", "the mean jet multiplicity"
_COUNTED = re.compile(rf"\b(?:number|count|multiplicity) of (?:\w+ )?{_OBJECTS}\b|\b{_OBJECTS} multiplicit|"
                      rf"\bhow many {_OBJECTS}\b", re.IGNORECASE)


def _counts_other(tool: str, field: str, counted: re.Match[str] | None) -> bool:
    """Whether a result field counts other objects than those the request counts (``mean_particles`` for "the
    average number of jets per event")."""
    if counted is None:
        return False
    info = spec(tool).result_model.model_fields.get(field)
    text = f"{field.replace('_', ' ')} {info.description if info else ''}".lower()
    named = {m.group(1) for m in re.finditer(rf"\b{_OBJECTS}\b", text)}
    return bool(named) and next(g for g in counted.groups() if g).lower() not in named


def _asked_field(plan: Plan, quantity: str, request: str) -> tuple[str, str, int] | None:
    """(placeholder, field, words shared with the request) of the plan's result field holding ``quantity``; of
    several, the one whose name and description share the most words with the request ("how many cells fire on
    average" → ``mean_hits_per_shower``, "mean number of cells above threshold", not ``mean_incident_energy_gev``)."""
    candidates: list[tuple[int, int, str, str]] = []
    counted = _COUNTED.search(request)
    for step in plan.steps:
        if not is_known(step.tool):
            continue
        for field in spec(step.tool).result_model.model_fields:
            if quantity_of_field(field) == quantity and not _counts_other(step.tool, field, counted):
                candidates.append((_shared_words(step.tool, field, request), -len(candidates),
                                   f"{{${step.number}.{field}}}", field))
    if not candidates:
        return None
    shared, _, placeholder, field = max(candidates)
    return placeholder, field, shared


_BAD_VALUE = re.compile(r"\b(\w+): (\w+)=(-?[\d.]+|'[^']*')\s+(?:must|is not|is more|is less|should)")


_TOTAL = re.compile(r"\b(?:how many|(?:total )?number of)\s+(jet|muon|electron|photon|particle)s?\b", re.IGNORECASE)


_ASIDE = re.compile(r"\s*\(([^(){}]*)\)")


def _without_asides_holding(template: str, numbers: list[str]) -> tuple[str, list[str]]:
    """``template`` without the parenthesised asides that write one of ``numbers`` (a small model copies a worked
    example's "(45 layers × 16 × 9 voxels)" as text), and the asides dropped. Asides holding placeholders stay."""
    dropped: list[str] = []

    def drop(aside: re.Match[str]) -> str:
        if not set(extract_numbers(aside.group(1))) & set(numbers):
            return aside.group(0)
        dropped.append(aside.group(0).strip())
        return ""

    return _ASIDE.sub(drop, template), dropped


def _counted_objects_quoted(plan: Plan, request: str) -> Plan:
    """For "how many jets there are in total": the answer's count in the sentence naming the objects reads the one
    step's ``n_jets``, not another count (``read_table``'s ``n_rows`` was quoted as the number of jets); when no
    such sentence has a count, the count is added. Per-event averages are left to ``summarize``."""
    asked = _TOTAL.search(request)
    if asked is None or multiplicity_asked(request) or re.search(r"\bper event\b", request) or not plan.answer:
        return plan
    word = asked.group(1).lower() + "s"
    field = f"n_{word}"
    holders = [s for s in plan.steps if is_known(s.tool) and field in spec(s.tool).result_model.model_fields]
    if len(holders) != 1 or f"{{${holders[0].number}.{field}}}" in plan.answer:
        return plan
    right = f"{{${holders[0].number}.{field}}}"
    answer = plan.answer
    for sentence in re.split(r"(?<=[.!?])\s+", plan.answer):
        counts = [p for p in find_placeholders(sentence) if p.path.startswith("n_") and word[:-1] not in p.path]
        if word[:-1] in sentence.lower() and len(counts) == 1:
            answer = answer.replace(sentence, sentence.replace(counts[0].text, right))
    if answer == plan.answer:
        answer = f"{answer.rstrip()} Number of {word}: {right}."
    return Plan(plan.steps, answer, [*plan.notes, f"the count of {word} reads {right}"])


def _with_stated_selection(plan: Plan, request: str) -> Plan:
    """The plan's one summarize step with a selection given the selection the request writes in words ("both muons
    above 25 GeV" → ``count(muons.pt > 25) >= 2``; a small model wrote ``any(muons.pt > 25 and muons.pt > 25)``)."""
    stated = selection_from_words(request)
    selecting = [s for s in plan.steps if s.tool == "summarize" and s.arguments.get("selection")]
    if stated is None or len(selecting) != 1 or selecting[0].arguments["selection"] == stated:
        return plan
    step = selecting[0]
    steps = [Step(s.number, s.tool, {**s.arguments, "selection": stated}) if s is step else s for s in plan.steps]
    return Plan(steps, plan.answer, [*plan.notes, f"step {step.number}: the selection as the request writes it, "
                                                  f"{stated} (not {step.arguments['selection']})"])


_HISTOGRAM_STATISTICS = ("mean", "std")
_UNBINNABLE = ("range_min", "range_max", "weight_field", "field_y", "luminosity_fb", "cross_section_pb")


def _multiplicity_summarized(plan: Plan, request: str) -> Plan:
    """For "the average number of jets per event": the plan's one summarize step without a selection reads no
    fields (its multiplicities hold the count; a small model wrote ``fields: ["stats.mean"]``), and the answer
    quotes ``multiplicities.jets.mean`` instead of that step's other statistics."""
    counted = multiplicity_asked(request)
    summaries = [s for s in plan.steps if s.tool == "summarize" and not s.arguments.get("selection")]
    if counted is None or len(summaries) != 1:
        return plan
    step, right = summaries[0], f"{{${summaries[0].number}.multiplicities.{counted}.mean}}"
    fields = [f for f in step.arguments.get("fields") or [] if str(f).split(".")[0] == counted]
    arguments = {k: v for k, v in step.arguments.items() if k != "fields"} | ({"fields": fields} if fields else {})
    answer = plan.answer
    for placeholder in find_placeholders(answer):
        if placeholder.step == step.number and not placeholder.path.startswith("multiplicities."):
            answer = answer.replace(placeholder.text, right)
    if right not in answer:
        answer = f"{answer.rstrip()} Mean number of {counted} per event: {right}.".strip()
    if arguments == step.arguments and answer == plan.answer:
        return plan
    steps = [Step(s.number, s.tool, arguments) if s is step else s for s in plan.steps]
    return Plan(steps, answer, [*plan.notes, f"step {step.number}: the mean number of {counted} per event reads "
                                             f"{right}"])


def _statistics_summarized(plan: Plan) -> Plan:
    """For a statistic asked without a histogram ("the mean and standard deviation of the leading muon pT"), each
    answer placeholder to a histogram's mean or std reads a summarize step of the same field instead (exact and
    unbinned, with the field's name); the histogram stays for whatever else reads it."""
    steps, answer, notes = list(plan.steps), plan.answer, list(plan.notes)
    for step in plan.steps:
        quoted = [p for p in find_placeholders(answer) if p.step == step.number and p.path in _HISTOGRAM_STATISTICS]
        field = _summary_field(step) if step.tool == "histogram" and quoted else None
        if field is None:
            continue
        number = max(s.number for s in steps) + 1
        index = step.arguments.get("object_index")
        steps.append(Step(number, "summarize", {"source": step.arguments["source"], "fields": [field],
                                                **({"object_index": index} if index is not None else {})}))
        for placeholder in quoted:
            answer = answer.replace(placeholder.text, f"{{${number}.stats.{stats_key(field)}.{placeholder.path}}}")
        notes.append(f"step {number} (summarize) added: the {'/'.join(p.path for p in quoted)} asked for, unbinned")
    return plan if len(steps) == len(plan.steps) else Plan(steps, answer, notes)


def _summary_field(histogram: Step) -> str | None:
    """The summarize field of a histogram step (``particles.pt`` with ``abs_pid=[13]`` → ``muons.pt``), or None
    when its statistics are not the field's own (a range, weights, a 2-D histogram, a mix of particle kinds)."""
    arguments, field = histogram.arguments, histogram.arguments.get("field")
    if not isinstance(field, str) or any(arguments.get(name) is not None for name in _UNBINNABLE):
        return None
    pids = tuple(sorted(abs(p) for p in arguments.get("abs_pid") or []))
    if not pids:
        return field
    alias = next((name for name, ids in ALIASES.items() if ids == pids), None)
    return f"{alias}.{field.split('.', 1)[1]}" if alias and field.startswith("particles.") else None


def _refusal(problems: list[str]) -> str:
    """The answer to a request whose own values the tools refuse: each reason, without its step number."""
    return "I can't do this as asked: " + "; ".join(p.removeprefix("step ").split(": ", 1)[-1] for p in problems)


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
