r"""The agent's event stream: one typed event per step, rendered by every front end.

``plan`` (tools offered for the request), ``tool_call`` (what the model asked for), ``tool_result``
(the typed result, or the error the model will see), ``artifact`` (a file produced), ``answer``
(the final text, with the numbers it reports and any it could not support), ``error`` (the run
stopped: step/time limit or a backend failure).
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "AgentEvent", "AnswerEvent", "ArtifactEvent", "ErrorEvent", "PlanEvent", "ToolCallEvent", "ToolResultEvent",
]


class _Event(BaseModel):
    session: str = Field(description="Agent session id.")
    step: int = Field(description="Model turn the event belongs to (0: before the first turn).")
    time: float = Field(default_factory=time.time, description="Unix time of the event.")


class PlanEvent(_Event):
    type: Literal["plan"] = "plan"
    request: str
    tools: list[str] = Field(description="Tools offered to the model for this request.")


class ToolCallEvent(_Event):
    type: Literal["tool_call"] = "tool_call"
    tool: str
    arguments: dict[str, Any]


class ToolResultEvent(_Event):
    type: Literal["tool_result"] = "tool_result"
    tool: str
    ok: bool
    summary: str = Field(description="Short text: the result's values, or the error message.")
    call_id: str | None = None
    cached: bool = False
    result: dict[str, Any] | None = None


class ArtifactEvent(_Event):
    type: Literal["artifact"] = "artifact"
    id: str
    kind: str
    path: str
    summary: str


class AnswerEvent(_Event):
    type: Literal["answer"] = "answer"
    text: str
    numbers: list[str] = Field(default_factory=list, description="Numbers the answer reports.")
    unsupported: list[str] = Field(
        default_factory=list, description="Numbers found in no tool result, argument, request or passage."
    )


class ErrorEvent(_Event):
    type: Literal["error"] = "error"
    message: str


AgentEvent = PlanEvent | ToolCallEvent | ToolResultEvent | ArtifactEvent | AnswerEvent | ErrorEvent
