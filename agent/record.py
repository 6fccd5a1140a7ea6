"""The machine-readable record of one agent request (what ``physagent ask --json`` prints)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from physagent.agent.backends.base import Usage

__all__ = ["AgentRecord"]


class AgentRecord(BaseModel):
    """A request, every tool call with its status, the artifacts, the answer and what it cost."""

    session: str
    backend: str
    request: str
    answer: str = ""
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    artifacts: list[dict[str, Any]] = Field(default_factory=list)
    numbers: list[str] = Field(default_factory=list, description="Numbers the answer reports.")
    unsupported: list[str] = Field(default_factory=list, description="Numbers no source supports.")
    mislabelled: list[str] = Field(default_factory=list,
                                   description="Numbers whose only source holds another quantity than the answer says.")
    findings: list[str] = Field(default_factory=list,
                                description="Placeholders that could not be filled, and other problems of the answer.")
    mode: str = Field(default="plan", description="How the agent ran: 'plan' (plan-then-execute) or 'step'.")
    plan: list[dict[str, Any]] = Field(default_factory=list, description="The plans submitted, in order.")
    failed_steps: list[dict[str, Any]] = Field(default_factory=list,
                                               description="Steps that failed before a replan (step, tool, error).")
    timing: dict[str, float] = Field(default_factory=dict,
                                     description="Seconds in the model (prompt, generation) and in tools.")
    error: str | None = None
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    events: list[dict[str, Any]] = Field(default_factory=list)

    def add_call(self, tool: str, arguments: dict[str, Any], ok: bool, call_id: str | None = None,
                 error: str = "") -> None:
        self.tool_calls.append({"tool": tool, "arguments": arguments, "ok": ok, "call_id": call_id,
                                "error": error or None})

    def finish(self, answer: str, numbers: list[str], unsupported: list[str], usage: Usage, wall_s: float,
               steps: int) -> None:
        self.answer, self.numbers, self.unsupported = answer, numbers, unsupported
        self.prompt_tokens, self.completion_tokens = usage.prompt_tokens, usage.completion_tokens
        self.wall_s, self.steps = round(wall_s, 3), steps

    @property
    def ok(self) -> bool:
        """Finished with an answer, no stop, and every reported number supported and labelled right."""
        return self.error is None and not self.unsupported and not self.mislabelled
