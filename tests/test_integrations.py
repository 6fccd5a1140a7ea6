"""The LangChain and LlamaIndex adapters: a real LangChain agent and LlamaIndex tools driving the real tools."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from physagent.integrations import langchain as lc_adapter
from physagent.integrations import llama_index as li_adapter
from physagent.tools import Workspace, registry

GENERATE = {"process": "ttbar", "n_events": 60, "pt_hat_min_gev": 400.0, "decay": "hadronic", "mpi": False,
            "seed": 1}
CLUSTER = {"radius": 1.0, "pt_min_gev": 300.0}
N_EVENTS_ERROR = "generate_events: n_events=-5 must be greater than or equal to 1"
MISSING_EVENTS_ERROR = "cluster_jets: events='ev-0000000000' is not an artifact in the workspace"

Step = Callable[[list[BaseMessage]], AIMessage]


class ScriptedChatModel(BaseChatModel):
    """A chat model that answers each turn with the next step of its script; fails loudly when it runs out."""

    script: list[Step]
    seen: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:  # type: ignore[override]
        return self

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        if len(self.seen) >= len(self.script):
            raise AssertionError(f"the scripted model ran out after {len(self.script)} replies; "
                                 f"it was sent {messages[-1].content!r}")
        step = self.script[len(self.seen)]
        self.seen.append(list(messages))
        return ChatResult(generations=[ChatGeneration(message=step(messages))])


def call(name: str, arguments: dict[str, Any]) -> AIMessage:
    """A model turn that asks for one tool call."""
    return AIMessage(content="", tool_calls=[{"name": name, "args": arguments, "id": f"call-{name}",
                                             "type": "tool_call"}])


def artifact_id(text: str, kind: str) -> str:
    """The id of the ``kind`` artifact in a tool's JSON result, as a model would read it."""
    ids = [a["id"] for a in json.loads(text)["artifacts"] if a["kind"] == kind]
    assert len(ids) == 1, f"expected one {kind} artifact in {text!r}"
    return ids[0]


def last_tool_message(messages: list[BaseMessage]) -> ToolMessage:
    """The newest tool message the model was sent."""
    found = [m for m in messages if isinstance(m, ToolMessage)]
    assert found, f"the model was sent no tool message: {messages!r}"
    return found[-1]


def run_agent(model: ScriptedChatModel, workspace: Workspace, request: str) -> list[BaseMessage]:
    """Run a LangChain 1.x agent over physagent's tools and return its messages."""
    agent = create_agent(model, lc_adapter.tools(workspace))
    state = agent.invoke({"messages": [HumanMessage(request)]})
    return list(state["messages"])


def test_a_langchain_agent_chains_generate_events_into_cluster_jets_by_artifact_id(workspace: Workspace) -> None:
    """The agent generates events, clusters jets on the id it read from the tool message, and answers."""
    model = ScriptedChatModel(script=[
        lambda m: call("generate_events", GENERATE),
        lambda m: call("cluster_jets", {"events": artifact_id(str(last_tool_message(m).content), "events")} | CLUSTER),
        lambda m: AIMessage(f"Jets are in {artifact_id(str(last_tool_message(m).content), 'jets')}."),
    ])
    messages = run_agent(model, workspace, "Generate 60 boosted ttbar events and cluster R=1.0 jets.")
    generated, clustered = [m for m in messages if isinstance(m, ToolMessage)]
    events, jets = workspace.list_artifacts("events"), workspace.list_artifacts("jets")
    assert [a.id for a in events] == [artifact_id(str(generated.content), "events")]
    assert [a.id for a in jets] == [artifact_id(str(clustered.content), "jets")]
    assert generated.status == clustered.status == "success"
    assert json.loads(str(generated.content))["result"]["n_events"] == 60
    assert clustered.artifact["result"]["n_events"] == 60 and clustered.artifact["tool"] == "cluster_jets"
    cluster_call = next(c for c in workspace.calls() if c.tool == "cluster_jets")
    assert list(cluster_call.input_artifacts) == [events[0].id]
    assert messages[-1].content == f"Jets are in {jets[0].id}."


def test_tool_errors_reach_the_langchain_agent_as_messages_instead_of_raising(workspace: Workspace) -> None:
    """A schema violation and a ToolError both come back as error tool messages the model reads."""
    model = ScriptedChatModel(script=[
        lambda m: call("generate_events", GENERATE | {"n_events": -5}),
        lambda m: call("cluster_jets", {"events": "ev-0000000000"}),
        lambda m: AIMessage("Both calls failed."),
    ])
    messages = run_agent(model, workspace, "Generate -5 events.")
    bad_count, missing = [m for m in messages if isinstance(m, ToolMessage)]
    assert bad_count.status == missing.status == "error"
    assert str(bad_count.content).startswith(N_EVENTS_ERROR)
    assert str(missing.content).startswith(MISSING_EVENTS_ERROR)
    assert last_tool_message(model.seen[1]).content == bad_count.content
    assert last_tool_message(model.seen[2]).content == missing.content
    assert workspace.list_artifacts() == []


def test_an_unexpected_exception_in_a_langchain_tool_propagates(workspace: Workspace,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure that is not a ToolError (a bug, a broken disk) stops the agent instead of reaching the model."""

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the workspace disk is gone")

    monkeypatch.setattr("physagent.integrations._common.call_tool", broken)
    model = ScriptedChatModel(script=[lambda m: call("generate_events", GENERATE)])
    with pytest.raises(RuntimeError, match="the workspace disk is gone"):
        run_agent(model, workspace, "Generate events.")


def test_every_registered_tool_is_a_langchain_tool_with_its_input_model_as_schema(workspace: Workspace) -> None:
    """Names, descriptions and argument schemas are the registry's own."""
    tools = lc_adapter.tools(workspace)
    assert [t.name for t in tools] == [spec.name for spec in registry]
    for tool, spec in zip(tools, registry, strict=True):
        assert tool.args_schema is spec.input_model and tool.description == spec.description
        assert tool.handle_tool_error is True


def test_llama_index_tools_chain_generate_events_into_cluster_jets_by_artifact_id(workspace: Workspace) -> None:
    """FunctionTools called in turn make events and jets in the default workspace (PHYSAGENT_HOME)."""
    tools = {t.metadata.name: t for t in li_adapter.tools()}
    generated = tools["generate_events"].call(**GENERATE)
    clustered = tools["cluster_jets"].call(events=artifact_id(generated.content, "events"), **CLUSTER)
    assert not generated.is_error and not clustered.is_error
    assert [a.id for a in workspace.list_artifacts("events")] == [artifact_id(generated.content, "events")]
    assert [a.id for a in workspace.list_artifacts("jets")] == [artifact_id(clustered.content, "jets")]
    assert json.loads(clustered.content)["result"]["n_events"] == 60


def test_every_registered_tool_is_a_llama_index_tool_with_its_input_model_as_schema(workspace: Workspace) -> None:
    """Each FunctionTool's fn_schema is the tool's input model, and its OpenAI definition is accepted."""
    tools = li_adapter.tools(workspace)
    assert [t.metadata.name for t in tools] == [spec.name for spec in registry]
    for tool, spec in zip(tools, registry, strict=True):
        assert tool.metadata.fn_schema is spec.input_model and tool.metadata.description == spec.description
        assert tool.metadata.to_openai_tool()["function"]["parameters"]["properties"].keys() == \
            spec.input_model.model_fields.keys()


def test_a_tool_error_comes_back_from_a_llama_index_tool_as_error_content(workspace: Workspace) -> None:
    """Sync and async calls with bad arguments return is_error outputs with the message, and write nothing."""
    tools = {t.metadata.name: t for t in li_adapter.tools(workspace)}
    bad_count = tools["generate_events"].call(**GENERATE | {"n_events": -5})
    missing = asyncio.run(tools["cluster_jets"].acall(events="ev-0000000000"))
    assert bad_count.is_error and bad_count.content.startswith(N_EVENTS_ERROR)
    assert missing.is_error and missing.content.startswith(MISSING_EVENTS_ERROR)
    assert workspace.list_artifacts() == []


def test_importing_physagent_integrations_imports_no_agent_framework() -> None:
    """The package stays cheap: langchain and llama-index load only with their adapter."""
    code = ("import sys, physagent.integrations as i; "
            "print(sorted(m for m in sys.modules if m.startswith(('langchain', 'llama_index'))), i.__all__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] ['langchain', 'llama_index']"
