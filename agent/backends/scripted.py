"""A scripted chat model for tests: replays given turns and fails loudly when the script runs out."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from physagent.agent.backends.base import BackendError, ModelTurn, ToolCallRequest, Usage

__all__ = ["ScriptExhaustedError", "ScriptedBackend", "answer", "call", "last_artifact", "plan"]

PLAN_TOOL = "submit_plan"  # the plan-then-execute reply (physagent.agent.plan)

Turn = ModelTurn | Callable[[list[dict[str, Any]]], ModelTurn]


class ScriptExhaustedError(BackendError):
    """The agent asked the scripted model for more turns than the test scripted."""


def call(name: str, **arguments: Any) -> ModelTurn:
    """A scripted turn that calls one tool."""
    return ModelTurn(tool_calls=[ToolCallRequest(name, arguments, id=f"call-{name}")], usage=Usage(10, 5))


def plan(steps: list[dict[str, Any]], answer: str = "") -> ModelTurn:
    """A scripted plan: ``[{"tool": ..., "arguments": {...}}, ...]`` and an answer template."""
    return call(PLAN_TOOL, steps=steps, answer=answer)


def answer(text: str) -> ModelTurn:
    """A scripted final answer."""
    return ModelTurn(text=text, usage=Usage(10, 5))


def last_artifact(messages: list[dict[str, Any]], prefix: str) -> str:
    """The most recent artifact id with ``prefix`` (e.g. 'ev') the conversation mentions."""
    for message in reversed(messages):
        found = re.findall(rf"\b{prefix}-[0-9a-f]{{10}}\b", str(message.get("content", "")))
        if found:
            return found[-1]
    raise AssertionError(f"scripted model: no {prefix}-… artifact in the conversation yet")


class ScriptedBackend:
    """Returns its turns in order; records what it was shown so tests can assert on prompts.

    A turn may be a function of the messages so far, to use artifact ids only known at run time:
    ``lambda m: call("cluster_jets", events=last_artifact(m, "ev"))``.
    """

    name = "scripted"

    def __init__(self, turns: Iterable[Turn]) -> None:
        self._turns = list(turns)
        self.seen: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = []
        plans = any(isinstance(t, ModelTurn) and any(c.name == PLAN_TOOL for c in t.tool_calls) for t in self._turns)
        self.mode = "plan" if plans else "step"  # the agent mode this script was written for

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelTurn:
        self.seen.append((list(messages), list(tools)))
        if not self._turns:
            last = messages[-1].get("content", "") if messages else ""
            raise ScriptExhaustedError(
                f"scripted model: script ran out after {len(self.seen) - 1} turn(s); last message: {last[:200]!r}"
            )
        turn = self._turns.pop(0)
        return turn(messages) if callable(turn) else turn

    @property
    def remaining(self) -> int:
        return len(self._turns)

    @classmethod
    def from_file(cls, path: str) -> ScriptedBackend:
        """Turns from a JSON list of ``{"tool": name, "arguments": {...}}``, ``{"answer": text}`` or
        ``{"plan": [steps], "answer": template}`` (a plan-mode script).

        An argument written ``"$last:ev"`` becomes the latest ``ev-…`` id in the conversation, so a
        script can chain tools from the command line (``PHYSAGENT_LLM=scripted:script.json``).
        """
        with open(path) as handle:
            return cls(_turn_from_json(item) for item in json.load(handle))


def _turn_from_json(item: dict[str, Any]) -> Turn:
    if "plan" in item:
        return plan(item["plan"], item.get("answer", ""))
    if "answer" in item:
        return answer(item["answer"])

    def turn(messages: list[dict[str, Any]]) -> ModelTurn:
        arguments = {k: _resolve(v, messages) for k, v in item.get("arguments", {}).items()}
        return call(item["tool"], **arguments)

    return turn


def _resolve(value: Any, messages: list[dict[str, Any]]) -> Any:
    if isinstance(value, list):
        return [_resolve(v, messages) for v in value]
    if isinstance(value, str) and value.startswith("$last:"):
        return last_artifact(messages, value.removeprefix("$last:"))
    return value
