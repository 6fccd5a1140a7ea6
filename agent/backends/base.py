r"""The one interface every LLM backend implements.

A backend takes OpenAI-style chat messages and the JSON schemas of the tools on offer, and returns
one :class:`ModelTurn`: either tool calls or a final text answer. Messages use the OpenAI shape:
``{"role": "system"|"user"|"assistant"|"tool", "content": str}``; an assistant turn that called
tools carries ``"tool_calls": [{"id", "name", "arguments"}]`` and each tool observation
``"tool_call_id"``. Tool schemas are ``{"name", "description", "parameters"}`` (JSON schema).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["BackendError", "ChatBackend", "ModelTurn", "ToolCallRequest", "Usage"]


class BackendError(RuntimeError):
    """The model could not be reached, loaded or understood; the message says what to do.

    ``retryable`` errors (a malformed reply) are fed back to the model as an observation instead.
    """

    retryable = False


@dataclass(frozen=True)
class ToolCallRequest:
    """A tool call as the model asked for it (arguments not yet validated)."""

    name: str
    arguments: dict[str, Any]
    id: str = ""


@dataclass(frozen=True)
class Usage:
    """Tokens the model read and wrote for one turn, and (where the backend knows) the time each took."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_ms: float = 0.0
    generation_ms: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens,
                     self.prompt_ms + other.prompt_ms, self.generation_ms + other.generation_ms)


@dataclass(frozen=True)
class ModelTurn:
    """One model response: tool calls to run, or a final answer in ``text``."""

    tool_calls: list[ToolCallRequest] = field(default_factory=list)
    text: str = ""
    usage: Usage = field(default_factory=Usage)


@runtime_checkable
class ChatBackend(Protocol):
    """What the agent loop needs from a model."""

    name: str

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelTurn:
        """Answer the conversation, calling at most the offered ``tools`` (empty: answer in text)."""
        ...
