r"""A chat backend for any OpenAI-compatible server: OpenAI itself, vLLM, Ollama, llama.cpp's ``llama-server``.

Built on langchain-openai's ``ChatOpenAI`` with the Chat Completions API (never the Responses API,
which local servers lack). Our tool schemas become OpenAI function tools bound with ``bind_tools``;
our OpenAI-shaped message dicts become langchain messages; the reply becomes one :class:`ModelTurn`.

Servers without native tool calling often write the call as JSON in the text — bare, in a
```` ```json ```` fence, or in Hermes-style ``<tool_call>…</tool_call>`` tags. :func:`extract_text_tool_calls`
turns such text into tool calls when the name is one of the offered tools. Those calls get ids starting
with ``textcall_``; when the conversation is sent back, their assistant turn and observations are
written as plain text, so a server that rejects ``role: tool`` messages still understands them.

Tool-call arguments (native or in text) are decoded under :mod:`~physagent.agent.backends._latex`'s rule, so
``\tau`` or ``\sqrt{s}`` written with one backslash stays LaTeX instead of becoming a tab or an error.

Configuration (see :meth:`OpenAICompatibleBackend.from_env`):
``PHYSAGENT_OPENAI_BASE_URL`` (default ``https://api.openai.com/v1``), ``PHYSAGENT_OPENAI_MODEL``
(required), ``PHYSAGENT_OPENAI_API_KEY`` or ``OPENAI_API_KEY`` (local servers need none).

Server flags for tool calling: vLLM ``--enable-auto-tool-choice --tool-call-parser hermes`` (or the
model's parser); llama.cpp ``llama-server --jinja``; Ollama serves ``/v1/chat/completions`` with tools.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Mapping
from typing import Any, NoReturn

import openai
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from physagent.agent.backends import _latex
from physagent.agent.backends.base import BackendError, ModelTurn, ToolCallRequest, Usage

__all__ = [
    "DEFAULT_BASE_URL",
    "MalformedToolCallError",
    "OpenAICompatibleBackend",
    "extract_text_tool_calls",
    "to_langchain_messages",
    "to_openai_tools",
]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_BASE_URL_VAR = "PHYSAGENT_OPENAI_BASE_URL"
_MODEL_VAR = "PHYSAGENT_OPENAI_MODEL"
_KEY_VARS = ("PHYSAGENT_OPENAI_API_KEY", "OPENAI_API_KEY")
# Local servers ignore the key, but the openai client refuses to start without one.
_PLACEHOLDER_KEY = "not-needed"
_TEXT_CALL_PREFIX = "textcall_"
_TOOL_FLAGS_HINT = (
    "If it concerns tools, enable tool calling on the server: vLLM needs "
    "`--enable-auto-tool-choice --tool-call-parser <parser>`, llama.cpp's llama-server needs `--jinja`."
)


class MalformedToolCallError(BackendError):
    """The model asked for a tool but its arguments were not valid JSON (worth one retry)."""

    retryable = True


class OpenAICompatibleBackend:
    """Talks to an OpenAI-compatible ``/chat/completions`` endpoint with native tool calling.

    Args:
        base_url: The API root, usually ending in ``/v1`` (e.g. ``http://localhost:8000/v1`` for vLLM).
        model: The model name the server serves.
        api_key: Bearer token; ``None`` sends a placeholder (local servers need no key).
        timeout_s: Seconds to wait for one reply.
        temperature: Sampling temperature; 0 for reproducible tool use.
        max_retries: Retries on connection errors and HTTP 5xx/429 (kept small: errors should surface).
    """

    def __init__(
        self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 120.0,
        temperature: float = 0.0, max_retries: int = 1,
    ) -> None:
        if not base_url or not model:
            raise BackendError(f"openai backend: base_url={base_url!r} and model={model!r} must both be set.")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.name = f"openai:{model}"
        self._chat = ChatOpenAI(
            model=model, base_url=self.base_url, api_key=SecretStr(api_key or _PLACEHOLDER_KEY), timeout=timeout_s,
            temperature=temperature, max_retries=max_retries, use_responses_api=False,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OpenAICompatibleBackend:
        """Build the backend from ``PHYSAGENT_OPENAI_*`` environment variables (``env`` defaults to os.environ).

        Raises:
            BackendError: ``PHYSAGENT_OPENAI_MODEL`` is unset, or the OpenAI API is used without a key.
        """
        env = os.environ if env is None else env
        base_url = env.get(_BASE_URL_VAR, "").strip() or DEFAULT_BASE_URL
        model = env.get(_MODEL_VAR, "").strip()
        if not model:
            raise BackendError(
                f"openai backend: {_MODEL_VAR} is not set. Set it to a model the server at {base_url} serves, "
                f"e.g. `export {_MODEL_VAR}=gpt-4o-mini` (a local server lists its names at {base_url}/models)."
            )
        api_key = next((env[v].strip() for v in _KEY_VARS if env.get(v, "").strip()), None)
        if api_key is None and base_url.rstrip("/") == DEFAULT_BASE_URL:
            raise BackendError(
                f"openai backend: {base_url} needs an API key. Set {_KEY_VARS[0]} (or {_KEY_VARS[1]}), "
                f"or point {_BASE_URL_VAR} at a local server."
            )
        return cls(base_url, model, api_key=api_key)

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelTurn:
        """Send the conversation and offered tools; return the model's tool calls or final text.

        Raises:
            BackendError: The server could not be reached, refused the request, or timed out.
            MalformedToolCallError: The model called a tool with arguments that are not JSON.
        """
        chat = self._chat.bind_tools(to_openai_tools(tools)) if tools else self._chat
        try:
            reply = chat.invoke(to_langchain_messages(messages))
        except openai.OpenAIError as exc:
            raise self._explain(exc) from exc
        if not isinstance(reply, AIMessage):
            raise BackendError(f"{self.name}: expected an AIMessage from langchain, got {type(reply).__name__}.")
        return _to_model_turn(reply, {t["name"] for t in tools}, self.name)

    def _explain(self, exc: openai.OpenAIError) -> BackendError:
        """Turn a client error into a message that says where and what to check."""
        where = f"{self.name} at {self.base_url}"
        if isinstance(exc, openai.APITimeoutError):
            return BackendError(
                f"{where}: no reply within {self.timeout_s:g} s. The model may still be loading or be too slow "
                "for this prompt: check the server's log, or raise timeout_s."
            )
        if isinstance(exc, openai.APIConnectionError):
            return BackendError(
                f"{where}: cannot connect ({exc.__cause__ or exc}). Is the server running, and is the base URL "
                f"right (it usually ends in /v1)? Set {_BASE_URL_VAR} to change it."
            )
        if isinstance(exc, openai.APIStatusError):
            detail = _status_detail(exc).rstrip(".")
            return BackendError(f"{where}: HTTP {exc.status_code}: {detail}. {_status_hint(exc.status_code)}")
        return BackendError(f"{where}: {type(exc).__name__}: {exc}")


def _status_detail(exc: openai.APIStatusError) -> str:
    """The server's own error message, shortened."""
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else None
    text = str(message or exc.message)
    return text if len(text) <= 300 else text[:300] + "…"


def _status_hint(status: int) -> str:
    """What to check for an HTTP error status."""
    if status in (401, 403):
        return f"The server refused the API key: set {_KEY_VARS[0]} (or {_KEY_VARS[1]})."
    if status == 404:
        return f"Check that {_MODEL_VAR} names a model the server serves and that the base URL ends in /v1."
    if status == 429:
        return "The server is rate-limiting: wait and retry, or use another model or key."
    return f"Check the server's log. {_TOOL_FLAGS_HINT}"


# -- outgoing: our dicts → OpenAI tools and langchain messages -------------------------------------------


def to_openai_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Wrap ``{"name", "description", "parameters"}`` schemas as OpenAI function tools."""
    return [
        {
            "type": "function",
            "function": {
                "name": t["name"],
                "description": t.get("description", ""),
                "parameters": t.get("parameters") or {"type": "object", "properties": {}},
            },
        }
        for t in tools
    ]


def to_langchain_messages(messages: list[dict[str, Any]]) -> list[BaseMessage]:
    """Convert OpenAI-shaped message dicts (see ``agent.backends.base``) to langchain messages."""
    return [_to_langchain(m) for m in messages]


def _to_langchain(message: dict[str, Any]) -> BaseMessage:
    role, content = message.get("role"), _as_text(message.get("content"))
    if role == "system":
        return SystemMessage(content=content)
    if role == "user":
        return HumanMessage(content=content)
    if role == "assistant":
        return _assistant_message(content, message.get("tool_calls") or [])
    if role == "tool":
        call_id = str(message.get("tool_call_id", ""))
        if call_id.startswith(_TEXT_CALL_PREFIX):
            return HumanMessage(content=f"Result of tool call {call_id}:\n{content}")
        return ToolMessage(content=content, tool_call_id=call_id)
    raise BackendError(f"openai backend: message role {role!r} is not one of system, user, assistant, tool.")


def _assistant_message(content: str, tool_calls: list[dict[str, Any]]) -> AIMessage:
    """An assistant turn; calls that came from text go back as text (the server may not know tools)."""
    if tool_calls and all(str(c.get("id", "")).startswith(_TEXT_CALL_PREFIX) for c in tool_calls):
        written = [{"name": c["name"], "arguments": _as_args(c.get("arguments"))} for c in tool_calls]
        return AIMessage(content="\n".join(f"<tool_call>{json.dumps(w)}</tool_call>" for w in written))
    lc_calls = [
        {"name": c["name"], "args": _as_args(c.get("arguments")), "id": str(c.get("id", "")), "type": "tool_call"}
        for c in tool_calls
    ]
    return AIMessage(content=content, tool_calls=lc_calls)


def _as_text(content: Any) -> str:
    if content is None:
        return ""
    return content if isinstance(content, str) else json.dumps(content, default=str)


def _as_args(arguments: Any) -> dict[str, Any]:
    """Tool-call arguments as a dict, whether given as a dict or as a JSON string."""
    if isinstance(arguments, str):
        arguments = json.loads(arguments) if arguments.strip() else {}
    return dict(arguments or {})


# -- incoming: langchain reply → ModelTurn -----------------------------------------------------------------


def _to_model_turn(reply: AIMessage, tool_names: set[str], backend: str) -> ModelTurn:
    usage = Usage()
    if reply.usage_metadata:
        usage = Usage(reply.usage_metadata.get("input_tokens", 0), reply.usage_metadata.get("output_tokens", 0))
    # langchain decoded the arguments with plain json.loads: redo it under the LaTeX rule (agent.backends._latex)
    calls = [ToolCallRequest(c["name"], _latex.redecode(dict(c["args"])), id=c.get("id") or _new_id("call_"))
             for c in reply.tool_calls]
    for bad in reply.invalid_tool_calls:
        recovered = _recovered_call(bad)  # e.g. "\\sqrt{s}" is no JSON escape, but fine LaTeX
        if recovered is None:
            _raise_malformed(bad, backend)
        calls.append(recovered)
    text = _strip_thinking(reply.text)
    if not calls and tool_names:
        calls = extract_text_tool_calls(text, tool_names)
    return ModelTurn(tool_calls=calls, text="" if calls else text, usage=usage)


def _recovered_call(bad: Any) -> ToolCallRequest | None:
    """A native call langchain could not decode, decoded under the LaTeX rule; None if it still is not JSON."""
    raw = bad.get("args")
    try:
        arguments = _latex.loads(raw, strict=False) if isinstance(raw, str) and raw.strip() else None
    except json.JSONDecodeError:
        return None
    if not isinstance(arguments, dict) or not bad.get("name"):
        return None
    return ToolCallRequest(str(bad["name"]), arguments, id=bad.get("id") or _new_id("call_"))


def _raise_malformed(bad: Any, backend: str) -> NoReturn:
    raise MalformedToolCallError(
        f"{backend}: the model called {bad.get('name')!r} with arguments that are not valid JSON: "
        f"{str(bad.get('args'))[:200]!r}. Retry the turn, or use a model or server parser with reliable tool calls."
    )


_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)
_FENCED = re.compile(r"```[a-zA-Z_]*\s*(.*?)```", re.DOTALL)
_ARG_KEYS = ("arguments", "parameters", "args", "input")


def _strip_thinking(text: str) -> str:
    """Drop reasoning models' ``<think>…</think>`` blocks: not part of the answer, and may hold stray JSON."""
    return _THINK.sub("", text).strip()


def extract_text_tool_calls(text: str, tool_names: set[str]) -> list[ToolCallRequest]:
    """Find tool calls written as JSON in ``text``; keep only those naming an offered tool.

    Accepts ``<tool_call>`` tags, fenced code blocks, or the whole text as JSON; objects shaped
    ``{"name", "arguments"|"parameters"|"args"}`` or ``{"function": {...}}``, alone or in a list.

    >>> extract_text_tool_calls('```json\\n{"name": "f", "arguments": {"x": 1}}\\n```', {"f"})[0].arguments
    {'x': 1}
    """
    chunks = _TAGGED.findall(text) or _FENCED.findall(text) or [text]
    calls = []
    for chunk in chunks:
        for obj in _json_objects(chunk):
            call = _as_call(obj, tool_names)
            if call is not None:
                calls.append(call)
    return calls


def _json_objects(chunk: str) -> list[dict[str, Any]]:
    """The dict(s) in the first JSON object or array in ``chunk`` (trailing prose is ignored)."""
    starts = [i for i in (chunk.find("{"), chunk.find("[")) if i >= 0]
    if not starts:
        return []
    try:
        value, _ = _latex.raw_decode(chunk[min(starts):])
    except json.JSONDecodeError:
        return []
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, dict)]


def _as_call(obj: dict[str, Any], tool_names: set[str]) -> ToolCallRequest | None:
    spec = obj["function"] if isinstance(obj.get("function"), dict) else obj
    name = spec.get("name") or spec.get("tool")
    raw: Any = next((spec[k] for k in _ARG_KEYS if k in spec), {})
    try:
        arguments = dict(_latex.loads(raw) if isinstance(raw, str) and raw.strip() else raw or {})
    except (json.JSONDecodeError, TypeError, ValueError):
        return None
    if name not in tool_names:
        return None
    return ToolCallRequest(str(name), arguments, id=_new_id(_TEXT_CALL_PREFIX))


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:12]
