r"""The agent loop: request → relevant tools → model turns with validated tool calls → grounded answer.

A small loop of our own rather than a framework's: small local models need their tool list cut to a
few relevant tools, constrained JSON replies and a number check on the final answer, and those fit
in one readable function. Every step is emitted as a typed event (:mod:`agent.events`); tool errors,
unknown tools and invalid arguments become observations the model can act on, never crashes.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from physagent.agent.backends import BackendError, ChatBackend, ModelTurn, ToolCallRequest, Usage
from physagent.agent.backends.scripted import ScriptExhaustedError
from physagent.agent.events import (
    AgentEvent,
    AnswerEvent,
    ArtifactEvent,
    ErrorEvent,
    PlanEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from physagent.agent.grounding import extract_numbers, numbers_in, unsupported_numbers
from physagent.agent.prompts import prompt
from physagent.agent.record import AgentRecord
from physagent.agent.selection import ToolSelector, wants_code, wants_knowledge
from physagent.tools import CallOutcome, ProgressSink, ToolError, Workspace, call_tool, registry

__all__ = ["Assistant"]

_OBSERVATION_CHARS = 900
_LONG_OBSERVATION_CHARS = 2400  # results that are text to read (passages), written compactly by the tool


class Assistant:
    """A conversation with tools: ``ask`` one request, or keep calling it for a chat with memory."""

    def __init__(
        self,
        backend: ChatBackend | None = None,
        workspace: Workspace | None = None,
        max_steps: int = 10,
        max_seconds: float = 1800.0,
        tools_per_request: int = 5,
        grounding_retries: int = 1,
        progress: ProgressSink | None = None,
    ) -> None:
        from physagent.agent.backends import get_backend

        self.backend = backend or get_backend()
        self.workspace = workspace or Workspace()
        self.max_steps, self.max_seconds = max_steps, max_seconds
        self.grounding_retries = grounding_retries
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
        run = _Run(self, request)
        try:
            yield from run.events()
        finally:
            self.records.append(run.record)
            self.history += run.memory()
            self.workspace.save_session(
                self.session, self.backend.name, {"turns": [r.model_dump(mode="json") for r in self.records]}
            )


class _Run:
    """The state of one request: messages, sources for the number check, the record."""

    def __init__(self, assistant: Assistant, request: str) -> None:
        self.a = assistant
        self.request = request
        self.start = time.perf_counter()
        self.step = 0
        self.usage = Usage()
        self.sources: list[float] = numbers_in(request) + numbers_in([m["content"] for m in assistant.history])
        self.record = AgentRecord(session=assistant.session, backend=assistant.backend.name, request=request)
        wanted = ["search_knowledge"] if wants_knowledge(request, assistant.workspace.root) else []
        wanted += ["run_python"] if wants_code(request) else []
        self.offered = assistant.selector.select(self._context(), wanted)
        self.succeeded: set[str] = set()  # calls that ran, to catch a model repeating itself
        self.failed: dict[str, str] = {}  # failing calls and their errors: repeating one ends the run
        self.messages: list[dict[str, Any]] = [
            {"role": "system", "content": prompt("system")}, *assistant.history,
            {"role": "user", "content": request},
        ]

    def _context(self) -> str:
        earlier = " ".join(m["content"] for m in self.a.history[-2:] if m["role"] == "user")
        return f"{earlier} {self.request}".strip()

    def events(self) -> Iterator[AgentEvent]:
        yield self._emit(PlanEvent(session=self.a.session, step=0, request=self.request, tools=self.offered))
        schemas = [registry.get(name).json_schema() for name in self.offered]
        while True:
            stop = self._limit_reached()
            if stop:
                yield from self._stop(stop)
                return
            self.step += 1
            try:
                turn = self._complete(schemas)
            except ScriptExhaustedError:
                raise
            except BackendError as exc:
                if exc.retryable:
                    self.messages.append({"role": "user", "content": f"{exc} Reply again with a valid tool call."})
                    continue
                yield from self._stop(f"the model backend failed: {exc}")
                return
            if not turn.tool_calls:
                yield from self._answer(turn.text)
                return
            if any(_key(r) in self.failed for r in turn.tool_calls):
                yield from self._stop(f"the model repeated a failing call: {self.failed[_key(turn.tool_calls[0])]}")
                return
            if any(_key(r) in self.succeeded for r in turn.tool_calls):
                yield from self._answer(self._forced_answer(turn.tool_calls[0]))
                return
            for request in turn.tool_calls:
                yield from self._tool(request)

    def _complete(self, schemas: list[dict[str, Any]]) -> ModelTurn:
        turn = self.a.backend.complete(self.messages, schemas)
        self.usage += turn.usage
        return turn

    def _forced_answer(self, repeated: ToolCallRequest) -> str:
        """Small models repeat a finished call instead of answering: take that as 'done', ask for the answer."""
        self.messages.append({"role": "user", "content": (
            f"{repeated.name} already ran with these arguments; its result is above. "
            f"Now answer my request: {self.request}")})
        self.step += 1
        return self._complete([]).text

    def _limit_reached(self) -> str | None:
        if self.step >= self.a.max_steps:
            return f"stopped after {self.step} model turns without a final answer (max_steps={self.a.max_steps})"
        if time.perf_counter() - self.start > self.a.max_seconds:
            return f"stopped after {self.a.max_seconds:.0f} s without a final answer"
        return None

    # tools -------------------------------------------------------------------------------------

    def _tool(self, request: ToolCallRequest) -> Iterator[AgentEvent]:
        yield self._emit(ToolCallEvent(session=self.a.session, step=self.step, tool=request.name,
                                       arguments=request.arguments))
        self.sources += numbers_in(request.arguments)
        outcome, error = self._run_tool(request)
        call = {"id": request.id or f"call-{self.step}", "name": request.name, "arguments": request.arguments}
        self.messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
        if outcome is None:
            observation = f"{request.name} FAILED: {error} Fix the arguments and try again, or answer if you cannot."
            self.failed[_key(request)] = error
            self.record.add_call(request.name, request.arguments, ok=False, error=error)
            yield self._emit(ToolResultEvent(session=self.a.session, step=self.step, tool=request.name,
                                             ok=False, summary=error))
        else:
            observation = _observation(outcome)
            self.succeeded.add(_key(request))
            self.sources += numbers_in(outcome.result.model_dump(mode="json"))
            self.record.add_call(request.name, request.arguments, ok=True, call_id=outcome.call_id)
            yield self._emit(ToolResultEvent(
                session=self.a.session, step=self.step, tool=request.name, ok=True, summary=observation,
                call_id=outcome.call_id, cached=outcome.cached, result=outcome.result.model_dump(mode="json"),
            ))
            for artifact in outcome.artifacts:
                yield self._emit(ArtifactEvent(session=self.a.session, step=self.step, id=artifact.id,
                                               kind=artifact.kind, path=str(artifact.path), summary=artifact.summary))
        self.messages.append({"role": "tool", "tool_call_id": call["id"], "content": observation})

    def _run_tool(self, request: ToolCallRequest) -> tuple[CallOutcome | None, str]:
        if request.name not in self.offered and request.name not in registry:
            return None, f"unknown tool {request.name!r}. Available tools: {', '.join(self.offered)}."
        try:
            return call_tool(request.name, request.arguments, workspace=self.a.workspace,
                             session=self.a.session, progress=self.a.progress), ""
        except ToolError as exc:
            return None, str(exc)

    # answers -----------------------------------------------------------------------------------

    def _answer(self, text: str) -> Iterator[AgentEvent]:
        unsupported = unsupported_numbers(text, self.sources)
        for _ in range(self.a.grounding_retries):
            if not unsupported:
                break
            self.messages += [
                {"role": "assistant", "content": text},
                {"role": "user", "content": "These numbers appear in no tool result: " + ", ".join(unsupported)
                 + ". Answer again using only numbers the tools returned."},
            ]
            text = self._complete([]).text
            unsupported = unsupported_numbers(text, self.sources)
        if unsupported:
            text += f"\n\n[unverified: {', '.join(unsupported)} appear in no tool result]"
        yield from self._finish(text, unsupported)

    def _stop(self, reason: str) -> Iterator[AgentEvent]:
        yield self._emit(ErrorEvent(session=self.a.session, step=self.step, message=reason))
        self.record.error = reason
        done = [f"{c['tool']} ({'ok' if c['ok'] else 'failed'})" for c in self.record.tool_calls]
        text = f"I could not finish: {reason}." + (f" Tool calls so far: {', '.join(done)}." if done else "")
        yield from self._finish(text, [])

    def _finish(self, text: str, unsupported: list[str]) -> Iterator[AgentEvent]:
        self.record.finish(text, extract_numbers(text), unsupported, self.usage, time.perf_counter() - self.start,
                           self.step)
        yield self._emit(AnswerEvent(session=self.a.session, step=self.step, text=text,
                                     numbers=self.record.numbers, unsupported=unsupported))

    def _emit(self, event: AgentEvent) -> AgentEvent:
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


def _key(request: ToolCallRequest) -> str:
    return f"{request.name}:{json.dumps(request.arguments, sort_keys=True, default=str)}"


def _observation(outcome: CallOutcome) -> str:
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
