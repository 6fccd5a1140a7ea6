r"""A tiny scripted OpenAI chat-completions server on 127.0.0.1, for testing clients without a real model.

Standard library only (``http.server`` in a thread, ephemeral port). ``POST /v1/chat/completions``
answers from a queue of scripted replies — tool calls in the OpenAI format, plain text, or an HTTP
error — and records each request body and its headers, so a test can assert on the messages and tool
schemas the client sent. When the queue runs out the server answers HTTP 500 with a message saying
so: a test that asks for more turns than it scripted fails loudly, never hangs.

Usage::

    with FakeOpenAIServer(api_key="sk-test") as server:
        server.reply_tool_call("generate_events", process="ttbar", n_events=100)
        server.reply_text("Done.", prompt_tokens=42, completion_tokens=7)
        backend = OpenAICompatibleBackend(server.base_url, "fake-model", api_key="sk-test")
        ...
        assert server.requests[0]["tools"][0]["function"]["name"] == "generate_events"

Other test modules can reuse the ``fake_openai_server`` fixture by defining their own fixture around
the context manager (fixtures are not shared across modules without a conftest).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import pytest

__all__ = ["FakeOpenAIServer", "fake_openai_server"]

_ids = itertools.count(1)


def _completion(message: dict[str, Any], finish_reason: str, prompt_tokens: int, completion_tokens: int) -> dict:
    """One chat-completion response body in the OpenAI shape."""
    return {
        "id": f"chatcmpl-fake-{next(_ids)}",
        "object": "chat.completion",
        "created": 0,
        "model": "fake-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _encode(arguments: dict[str, Any] | str) -> str:
    """Tool-call arguments as OpenAI sends them: a JSON string (a given string is kept, valid or not)."""
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


class FakeOpenAIServer:
    """A scripted chat-completions endpoint; ``base_url`` ends in ``/v1`` like a real server's."""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._replies: deque[tuple[int, dict[str, Any]]] = deque()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        # A short poll interval: shutdown() waits for one poll, and tests start and stop many servers.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-openai", daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    # -- scripting -----------------------------------------------------------------------------

    def reply_text(self, text: str, prompt_tokens: int = 10, completion_tokens: int = 5) -> None:
        """Queue a final text answer."""
        message = {"role": "assistant", "content": text}
        self._replies.append((200, _completion(message, "stop", prompt_tokens, completion_tokens)))

    def reply_tool_call(self, name: str, call_id: str | None = None, **arguments: Any) -> None:
        """Queue one native tool call (arguments JSON-encoded, as OpenAI sends them)."""
        self.reply_tool_calls([(name, arguments)], call_ids=[call_id] if call_id else None)

    def reply_tool_calls(
        self, calls: list[tuple[str, dict[str, Any] | str]], call_ids: list[str] | None = None,
        prompt_tokens: int = 10, completion_tokens: int = 5,
    ) -> None:
        """Queue a turn with several native tool calls; string arguments are sent verbatim (even if not JSON)."""
        ids = call_ids or [f"call_{next(_ids)}" for _ in calls]
        tool_calls = [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": _encode(args)}}
            for cid, (name, args) in zip(ids, calls, strict=True)
        ]
        message = {"role": "assistant", "content": None, "tool_calls": tool_calls}
        self._replies.append((200, _completion(message, "tool_calls", prompt_tokens, completion_tokens)))

    def reply_error(self, status: int = 500, message: str = "fake server: internal error") -> None:
        """Queue an HTTP error with an OpenAI-style error body."""
        self._replies.append((status, {"error": {"message": message, "type": "server_error", "code": status}}))

    @property
    def remaining(self) -> int:
        return len(self._replies)

    # -- serving -------------------------------------------------------------------------------

    def _answer(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Record the request and pop the next scripted reply (auth checked first)."""
        self.requests.append(body)
        self.headers.append(headers)
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {"error": {"message": "fake server: missing or wrong bearer token", "code": 401}}
        if not self._replies:
            return 500, {"error": {"message": f"fake server: script ran out after {len(self.requests) - 1} "
                                              "request(s)", "code": 500}}
        return self._replies.popleft()

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _handler_for(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    """A request-handler class bound to ``server`` (http.server wants a class, not an instance)."""

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"fake server: no route {self.path}", "code": 404}})
                return
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            headers = {k.lower(): v for k, v in self.headers.items()}
            self._send(*server._answer(body, headers))

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: keeps test output clean."""

    return _Handler


@pytest.fixture
def fake_openai_server() -> Iterator[FakeOpenAIServer]:
    """A running fake server with no bearer-token check, stopped after the test."""
    with FakeOpenAIServer() as server:
        yield server
