"""The OpenAI-compatible backend against a scripted local chat-completions server (127.0.0.1 only)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from fake_openai_server import FakeOpenAIServer

from physagent.agent.backends import BackendError, ChatBackend, ModelTurn, ToolCallRequest
from physagent.agent.backends.openai_compat import (
    MalformedToolCallError,
    OpenAICompatibleBackend,
    extract_text_tool_calls,
)
from physagent.tools import registry

_ENV_VARS = (
    "PHYSAGENT_OPENAI_BASE_URL", "PHYSAGENT_OPENAI_MODEL", "PHYSAGENT_OPENAI_API_KEY", "OPENAI_API_KEY",
    "OPENAI_BASE_URL", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
    "LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No user keys, proxies or tracing leak into the tests (nothing may leave 127.0.0.1)."""
    for var in _ENV_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    """A fake server that requires the bearer token ``sk-test``."""
    with FakeOpenAIServer(api_key="sk-test") as fake:
        yield fake


def _backend(server: FakeOpenAIServer, **kwargs: Any) -> OpenAICompatibleBackend:
    return OpenAICompatibleBackend(server.base_url, "fake-model", api_key="sk-test", max_retries=0, **kwargs)


def _tools() -> list[dict[str, Any]]:
    return [registry.get("generate_events").json_schema()]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_backend_satisfies_the_chat_backend_protocol(server: FakeOpenAIServer) -> None:
    """The backend is a ChatBackend and names itself after its model."""
    backend = _backend(server)
    assert isinstance(backend, ChatBackend)
    assert backend.name == "openai:fake-model"


def test_tool_call_round_trip_sends_schemas_observations_and_returns_usage(server: FakeOpenAIServer) -> None:
    """Schemas go out as OpenAI tools, a native call comes back parsed, the observation goes back as role tool."""
    server.reply_tool_call("generate_events", call_id="call_1", process="ttbar", n_events=100)
    server.reply_text("Generated 100 ttbar events.", prompt_tokens=321, completion_tokens=12)
    backend, tools = _backend(server), _tools()
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a physics assistant."},
        {"role": "user", "content": "Make 100 ttbar events."},
    ]

    first = backend.complete(messages, tools)
    assert first.tool_calls == [ToolCallRequest("generate_events", {"process": "ttbar", "n_events": 100}, "call_1")]
    assert first.text == ""
    sent_tool = server.requests[0]["tools"][0]
    assert sent_tool["type"] == "function"
    assert sent_tool["function"]["name"] == "generate_events"
    assert sent_tool["function"]["parameters"] == tools[0]["parameters"]
    assert server.requests[0]["model"] == "fake-model"

    messages += [
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "name": "generate_events", "arguments": {"process": "ttbar", "n_events": 100}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"n_events": 100, "sigma_pb": 800.0}'},
    ]
    final = backend.complete(messages, tools)
    assert final == ModelTurn(text="Generated 100 ttbar events.", usage=final.usage)
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (321, 12)

    sent = server.requests[1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]
    call = sent[2]["tool_calls"][0]
    assert call["id"] == "call_1"
    assert call["function"]["name"] == "generate_events"
    assert '"n_events": 100' in call["function"]["arguments"]
    assert sent[3]["tool_call_id"] == "call_1"
    assert "sigma_pb" in sent[3]["content"]


def test_api_key_is_sent_as_a_bearer_token(server: FakeOpenAIServer) -> None:
    """The configured key reaches the server as ``Authorization: Bearer``."""
    server.reply_text("hi")
    _backend(server).complete([{"role": "user", "content": "hello"}], [])
    assert server.headers[0]["authorization"] == "Bearer sk-test"
    assert "tools" not in server.requests[0]


def test_wrong_api_key_names_the_variable_to_set(server: FakeOpenAIServer) -> None:
    """An HTTP 401 says which environment variable holds the key."""
    backend = OpenAICompatibleBackend(server.base_url, "fake-model", api_key="sk-wrong", max_retries=0)
    with pytest.raises(BackendError, match="HTTP 401") as caught:
        backend.complete([{"role": "user", "content": "hello"}], [])
    assert "PHYSAGENT_OPENAI_API_KEY" in str(caught.value)


def test_fenced_json_in_text_becomes_a_tool_call(server: FakeOpenAIServer) -> None:
    """A server without native tool calls that writes a fenced JSON call still yields a tool call."""
    server.reply_text('I will generate them.\n```json\n{"name": "generate_events", '
                      '"arguments": {"process": "ttbar", "n_events": 50}}\n```')
    turn = _backend(server).complete([{"role": "user", "content": "50 ttbar events"}], _tools())
    assert [(c.name, c.arguments) for c in turn.tool_calls] == [
        ("generate_events", {"process": "ttbar", "n_events": 50})
    ]
    assert turn.text == ""


def test_text_tool_calls_are_sent_back_as_plain_text(server: FakeOpenAIServer) -> None:
    """A call recovered from text goes back as text, not as role tool, for servers without tool support."""
    server.reply_text('<tool_call>{"name": "generate_events", "arguments": {"process": "ttbar"}}</tool_call>')
    server.reply_text("Done.")
    backend, tools = _backend(server), _tools()
    messages: list[dict[str, Any]] = [{"role": "user", "content": "ttbar please"}]
    call = backend.complete(messages, tools).tool_calls[0]
    messages += [
        {"role": "assistant", "content": "",
         "tool_calls": [{"id": call.id, "name": call.name, "arguments": call.arguments}]},
        {"role": "tool", "tool_call_id": call.id, "content": "ok: 10000 events"},
    ]
    assert backend.complete(messages, tools).text == "Done."
    sent = server.requests[1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert "generate_events" in sent[1]["content"]
    assert "ok: 10000 events" in sent[2]["content"]


def test_text_extractor_ignores_unknown_tools_and_plain_answers() -> None:
    """Only offered tool names become calls; prose and JSON naming other tools stay text."""
    offered = {"generate_events"}
    assert extract_text_tool_calls('{"name": "rm_rf", "arguments": {}}', offered) == []
    assert extract_text_tool_calls("The cross-section is 800 pb.", offered) == []
    calls = extract_text_tool_calls(
        '[{"function": {"name": "generate_events", "arguments": "{\\"n_events\\": 5}"}}]', offered
    )
    assert [(c.name, c.arguments) for c in calls] == [("generate_events", {"n_events": 5})]
    assert extract_text_tool_calls('{"name": "generate_events", "parameters": {"seed": 1}}', offered)[0].arguments == {
        "seed": 1
    }


def test_malformed_native_arguments_raise_a_retryable_error(server: FakeOpenAIServer) -> None:
    """Native tool-call arguments that are not JSON raise MalformedToolCallError naming the tool."""
    server.reply_tool_calls([("generate_events", '{"n_events": ')])
    with pytest.raises(MalformedToolCallError, match="generate_events"):
        _backend(server).complete([{"role": "user", "content": "go"}], _tools())


def test_server_error_gives_a_backend_error_naming_url_and_tool_flags(server: FakeOpenAIServer) -> None:
    """An HTTP 500 names the URL, the server's message and the tool-calling flags to check."""
    server.reply_error(500, "tools param requires --jinja flag")
    with pytest.raises(BackendError) as caught:
        _backend(server).complete([{"role": "user", "content": "hello"}], _tools())
    message = str(caught.value)
    assert server.base_url in message
    assert "HTTP 500" in message
    assert "tools param requires --jinja flag" in message
    assert "--enable-auto-tool-choice" in message


def test_closed_port_gives_a_backend_error_asking_whether_the_server_runs() -> None:
    """Nothing listening: the error names the URL and asks whether the server is running."""
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    backend = OpenAICompatibleBackend(url, "fake-model", max_retries=0, timeout_s=5)
    with pytest.raises(BackendError, match="cannot connect") as caught:
        backend.complete([{"role": "user", "content": "hello"}], [])
    assert url in str(caught.value)
    assert "server running" in str(caught.value)


def test_from_env_without_a_model_names_the_variable() -> None:
    """A missing PHYSAGENT_OPENAI_MODEL is reported by name."""
    with pytest.raises(BackendError, match="PHYSAGENT_OPENAI_MODEL is not set"):
        OpenAICompatibleBackend.from_env({"PHYSAGENT_OPENAI_BASE_URL": "http://127.0.0.1:1/v1"})


def test_from_env_reads_url_model_and_key(server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """from_env talks to the configured server with the OPENAI_API_KEY fallback as the bearer token."""
    monkeypatch.setenv("PHYSAGENT_OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("PHYSAGENT_OPENAI_MODEL", "fake-model")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    server.reply_text("hello back")
    backend = OpenAICompatibleBackend.from_env()
    assert backend.name == "openai:fake-model"
    assert backend.complete([{"role": "user", "content": "hello"}], []).text == "hello back"
    assert server.headers[0]["authorization"] == "Bearer sk-test"


def test_from_env_for_the_openai_api_without_a_key_says_which_variable_to_set() -> None:
    """The public OpenAI API without a key fails before any request, naming the key variables."""
    with pytest.raises(BackendError, match="PHYSAGENT_OPENAI_API_KEY"):
        OpenAICompatibleBackend.from_env({"PHYSAGENT_OPENAI_MODEL": "gpt-4o-mini"})


def test_local_server_without_a_key_gets_a_placeholder() -> None:
    """A local server needs no key: the backend builds without one."""
    with FakeOpenAIServer() as fake:
        fake.reply_text("ok")
        env = {"PHYSAGENT_OPENAI_BASE_URL": fake.base_url, "PHYSAGENT_OPENAI_MODEL": "local"}
        assert OpenAICompatibleBackend.from_env(env).complete([{"role": "user", "content": "hi"}], []).text == "ok"
        assert fake.headers[0]["authorization"].startswith("Bearer ")
