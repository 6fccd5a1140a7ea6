r"""The agent: request → context (tools, worked examples, artifacts, passages) → plan or steps → grounded answer.

A small loop of our own rather than a framework's: small local models need their tool list cut to a
few relevant tools, worked examples to copy, constrained JSON replies and a check of every number in
the answer, and those fit in a few readable functions. Two modes:

- ``plan`` (default): the whole plan in one constrained reply, checked against every schema before
  anything runs, executed, replanned from a failed step (:mod:`physagent.agent.planner`);
- ``step``: one tool call per model turn, each result read before the next call (below).

Every step is emitted as a typed event (:mod:`physagent.agent.events`); tool errors, unknown tools and
invalid arguments become observations the model can act on, never crashes.
"""

from __future__ import annotations

import json
import os
import typing
import uuid
from collections.abc import Iterator
from typing import Any, Literal

from physagent.agent.abilities import missing_ability
from physagent.agent.agent_tools import spec
from physagent.agent.backends import BackendError, ChatBackend, ToolCallRequest
from physagent.agent.backends.scripted import ScriptExhaustedError
from physagent.agent.claims import mislabelled
from physagent.agent.context import gather_context
from physagent.agent.events import AgentEvent, PlanEvent
from physagent.agent.execution import Run, observation
from physagent.agent.planner import PlanRun
from physagent.agent.prompts import prompt
from physagent.agent.record import AgentRecord
from physagent.agent.references import ASKED_TO_REPEAT
from physagent.agent.selection import ToolSelector
from physagent.tools import ProgressSink, Workspace

__all__ = ["Assistant", "Mode", "checked_mode", "default_mode"]

Mode = Literal["plan", "step"]


class Assistant:
    """A conversation with tools: ``ask`` one request, or keep calling it for a chat with memory.

    Args:
        backend: the model (default: ``$PHYSAGENT_LLM`` or the embedded one).
        workspace: where artifacts and provenance go (default: ``$PHYSAGENT_HOME`` or ``~/.physagent``).
        mode: ``"plan"`` (plan-then-execute) or ``"step"`` (one call per model turn); default: the mode a
            scripted backend's script was written for, else ``$PHYSAGENT_AGENT_MODE``, else ``"plan"``.
        max_steps: model turns allowed per request.
        max_seconds: wall time allowed per request.
        tools_per_request: tools offered by similarity (plus those the examples and the request name).
        examples_per_request: worked examples shown to the model (0: none).
        replans: plans allowed after a failed step; ``plan_fixes``: corrected plans after a refused one.
        hygiene: drop optional arguments nobody stated (default: when the backend is a small model).
        retrieve_first: put passages close to the request into the prompt before the first turn.
    """

    def __init__(
        self,
        backend: ChatBackend | None = None,
        workspace: Workspace | None = None,
        mode: Mode | None = None,
        max_steps: int = 10,
        max_seconds: float = 1800.0,
        tools_per_request: int = 5,
        examples_per_request: int = 3,
        grounding_retries: int = 1,
        replans: int = 2,
        plan_fixes: int = 2,
        hygiene: bool | None = None,
        retrieve_first: bool = True,
        progress: ProgressSink | None = None,
    ) -> None:
        from physagent.agent.backends import get_backend

        self.backend = backend or get_backend()
        self.workspace = workspace or Workspace()
        self.mode: Mode = checked_mode(mode or default_mode(self.backend))
        self.max_steps, self.max_seconds = max_steps, max_seconds
        self.examples_per_request = examples_per_request
        self.grounding_retries, self.replans, self.plan_fixes = grounding_retries, replans, plan_fixes
        self.hygiene = getattr(self.backend, "needs_hygiene", False) if hygiene is None else hygiene
        self.retrieve_first = retrieve_first
        self.progress = progress
        self.selector = ToolSelector(k=tools_per_request)
        self.session = f"s-{uuid.uuid4().hex[:10]}"
        self.history: list[dict[str, Any]] = []  # earlier turns, for chat memory
        self.records: list[AgentRecord] = []

    def ask(self, request: str) -> AgentRecord:
        """Run one request to completion; returns the record (also stored in the workspace)."""
        for _ in self.stream(request):
            pass
        return self.records[-1]

    def stream(self, request: str) -> Iterator[AgentEvent]:
        """Run one request, yielding each event as it happens."""
        context = gather_context(self, request)
        run: Run = PlanRun(self, request, context) if self.mode == "plan" else StepRun(self, request, context)
        run.record.mode = self.mode
        beyond_reach = missing_ability(request)
        try:
            yield from run.beyond_reach(beyond_reach) if beyond_reach else run.events()
        finally:
            self.records.append(run.record)
            self.history += run.memory()
            self.workspace.save_session(
                self.session, self.backend.name, {"turns": [r.model_dump(mode="json") for r in self.records]}
            )


def default_mode(backend: ChatBackend) -> str:
    """The mode a scripted backend's script was written for, else ``$PHYSAGENT_AGENT_MODE``, else plan."""
    return getattr(backend, "mode", None) or os.environ.get("PHYSAGENT_AGENT_MODE") or "plan"


def checked_mode(mode: str) -> Mode:
    if mode in ("plan", "step"):
        return typing.cast(Mode, mode)
    raise ValueError(f"mode={mode!r}: use 'plan' (plan-then-execute) or 'step' (one tool call per model turn); "
                     "set it with --mode or PHYSAGENT_AGENT_MODE.")


class StepRun(Run):
    """One request in step mode: a tool call per model turn, each observation read before the next."""

    def events(self) -> Iterator[AgentEvent]:
        yield self.emit(PlanEvent(session=self.a.session, step=0, request=self.request, tools=self.context.offered))
        self.messages = self._messages()
        schemas = [spec(name).json_schema() for name in self.context.offered]
        succeeded: set[str] = set()
        failed: dict[str, str] = {}
        while (stop := self.out_of_budget()) is None:
            try:
                turn = self.complete(self.messages, schemas)
            except ScriptExhaustedError:
                raise
            except BackendError as exc:
                if exc.retryable:
                    self.messages.append({"role": "user", "content": f"{exc} Reply again with a valid tool call."})
                    continue
                yield from self.stop(f"the model backend failed: {exc}")
                return
            if not turn.tool_calls:
                yield from self._answer(turn.text)
                return
            if any(_key(r) in failed for r in turn.tool_calls):
                yield from self.stop(f"the model repeated a failing call: {failed[_key(turn.tool_calls[0])]}")
                return
            if any(_key(r) in succeeded for r in turn.tool_calls) and not ASKED_TO_REPEAT.search(self.request):
                yield from self._answer(self._forced_answer(turn.tool_calls[0]))
                return
            for call in turn.tool_calls:
                yield from self._step(call, succeeded, failed)
        yield from self.stop(stop)

    def _messages(self) -> list[dict[str, Any]]:
        system = "\n\n".join(filter(None, [prompt("system"), self.context.sections()]))
        self.context.prompt_text = prompt("system")
        return [{"role": "system", "content": system}, *self.a.history, {"role": "user", "content": self.request}]

    def _step(self, call: ToolCallRequest, succeeded: set[str], failed: dict[str, str]) -> Iterator[AgentEvent]:
        number = len(self.steps) + 1
        yield from self.execute(number, call.name, call.arguments)
        step = self.steps[number]
        record = {"id": call.id or f"call-{number}", "name": call.name, "arguments": call.arguments}
        self.messages.append({"role": "assistant", "content": "", "tool_calls": [record]})
        if step.outcome is None:
            failed[_key(call)] = step.error
            advice = ("No other tool call can supply that software: answer now, saying what is missing and how to "
                      "install it." if step.missing_software else
                      "Fix the arguments and try again, or answer if you cannot.")
            text = f"{call.name} FAILED: {step.error} {advice}"
        else:
            succeeded.add(_key(call))
            text = observation(step.outcome)
        self.messages.append({"role": "tool", "tool_call_id": record["id"], "content": text})

    def _forced_answer(self, repeated: ToolCallRequest) -> str:
        """Small models repeat a finished call instead of answering: take that as 'done', ask for the answer."""
        self.messages.append({"role": "user", "content": (
            f"{repeated.name} already ran with these arguments; its result is above. "
            f"Now answer my request: {self.request}")})
        return self.complete(self.messages, []).text

    def _answer(self, template: str) -> Iterator[AgentEvent]:
        template = self.with_known_fields(template)
        text, problems = self.render_answer(template)
        unsupported, wrong = self.check_numbers(text)
        for _ in range(self.a.grounding_retries):
            if not (unsupported or wrong or mislabelled(template)):
                break
            self.messages += [{"role": "assistant", "content": template}, {"role": "user", "content": (
                _grounding_feedback(unsupported, wrong, mislabelled(template)))}]
            template = self.with_known_fields(self.complete(self.messages, []).text, ask=False)
            text, problems = self.render_answer(template)
            unsupported, wrong = self.check_numbers(text)
        note = self.failure_note()
        self.record.findings += problems
        text = f"{text}\n\n{note}".strip() if note else text
        yield from self.finish(text, unsupported, wrong + mislabelled(template))


def _grounding_feedback(unsupported: list[str], wrong: list[str], labels: list[str]) -> str:
    parts = []
    if unsupported:
        parts.append("these numbers appear in no tool result: " + ", ".join(unsupported))
    if wrong or labels:
        parts.append("these values are labelled as the wrong quantity: " + ", ".join(wrong + labels))
    return ("; ".join(parts).capitalize() + ". Answer again with placeholders {artifact-id:field} for values the "
            "tools returned, naming each quantity correctly.")


def _key(request: ToolCallRequest) -> str:
    return f"{request.name}:{json.dumps(request.arguments, sort_keys=True, default=str)}"
