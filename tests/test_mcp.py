"""The MCP server through the SDK's in-memory client, and once over a real stdio subprocess."""

from __future__ import annotations

import base64
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest
from mcp import Client, MCPError, StdioServerParameters

from physagent.app._schemas import call_model
from physagent.app.mcp_server import create_server
from physagent.tools import Workspace, registry

DY = {"process": "drell_yan_mumu", "n_events": 40, "mpi": False, "seed": 2}


def _run(workspace: Workspace, scenario: Any) -> Any:
    """Run ``scenario(client)`` against a fresh in-memory server on ``workspace``."""

    async def main() -> Any:
        async with Client(create_server(workspace)) as client:
            return await scenario(client)

    return anyio.run(main)


def test_listed_tools_match_the_registry_with_their_schemas(workspace: Workspace) -> None:
    """tools/list offers every registered tool with its description and exact JSON input schema."""

    async def scenario(client: Client) -> Any:
        return (await client.list_tools()).tools

    listed = {tool.name: tool for tool in _run(workspace, scenario)}
    assert list(listed) == [spec.name for spec in registry]
    for spec in registry:
        assert listed[spec.name].input_schema == spec.parameters_schema()
        assert listed[spec.name].description == spec.description


def test_listed_tools_declare_output_schemas_and_behaviour_annotations(workspace: Workspace) -> None:
    """Every tool has an outputSchema around its result model; generate_events is idempotent, not read-only;
    search_knowledge is read-only, not idempotent."""

    async def scenario(client: Client) -> Any:
        return (await client.list_tools()).tools

    listed = {tool.name: tool for tool in _run(workspace, scenario)}
    for spec in registry:
        schema = listed[spec.name].output_schema
        assert schema == call_model(spec).model_json_schema(mode="serialization")
        assert schema["type"] == "object" and schema["properties"]["tool"]["const"] == spec.name
        result = schema["$defs"][schema["properties"]["result"]["$ref"].rsplit("/", 1)[-1]]
        assert set(result["properties"]) == set(spec.result_model.model_fields)
    events, search = listed["generate_events"], listed["search_knowledge"]
    assert {"n_events", "sigma_pb", "events"} <= set(events.output_schema["$defs"]["EventSample"]["properties"])
    assert events.title == events.annotations.title == "Generate events"
    assert (events.annotations.read_only_hint, events.annotations.idempotent_hint) == (False, True)
    assert search.annotations.title == "Search knowledge"
    assert (search.annotations.read_only_hint, search.annotations.idempotent_hint) == (True, False)


def test_structured_content_validates_and_the_hints_hold(workspace: Workspace) -> None:
    """Structured content conforms to outputSchema; the read-only tool adds no artifact; repeating the
    idempotent tool replays the same result and adds none."""

    async def scenario(client: Client) -> Any:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        calls = [await client.call_tool("generate_events", DY), await client.call_tool("generate_events", DY),
                 await client.call_tool("search_knowledge", {"query": "anti-kt jet clustering"})]
        return tools, calls

    tools, (first, again, search) = _run(workspace, scenario)
    for name, result in (("generate_events", first), ("generate_events", again), ("search_knowledge", search)):
        assert not result.is_error
        jsonschema.validate(result.structured_content, tools[name].output_schema)
    assert not jsonschema.Draft202012Validator(tools["search_knowledge"].output_schema).is_valid(
        first.structured_content)  # another tool's document does not fit
    assert again.structured_content["cached"] and not first.structured_content["cached"]
    assert again.structured_content["result"] == first.structured_content["result"]
    assert [a.kind for a in workspace.list_artifacts()] == ["events"]  # search and the replay added nothing


def test_a_tool_call_returns_the_typed_result_with_progress(workspace: Workspace) -> None:
    """tools/call runs the real tool: structured content is the typed result; progress reaches the client."""
    progress: list[tuple[float, float | None, str | None]] = []

    async def scenario(client: Client) -> Any:
        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append((done, total, message))

        return await client.call_tool("generate_events", DY, progress_callback=on_progress)

    result = _run(workspace, scenario)
    assert not result.is_error
    typed = registry.get("generate_events").result_model.model_validate(result.structured_content["result"])
    assert typed.n_events == 40 and typed.sigma_pb > 0  # type: ignore[attr-defined]
    artifact_id = typed.events.id  # type: ignore[attr-defined]
    assert workspace.get_artifact(artifact_id) is not None
    links = [block for block in result.content if block.type == "resource_link"]
    assert [link.uri for link in links] == [f"artifact://{artifact_id}"]
    assert progress and progress[-1][0] == progress[-1][1] == 40 and "events" in str(progress[-1][2])


def test_tool_errors_are_error_results_the_model_can_read(workspace: Workspace) -> None:
    """Bad arguments and unknown tools come back as is_error results carrying the CLI's message."""

    async def scenario(client: Client) -> Any:
        return (await client.call_tool("generate_events", DY | {"n_events": -1}),
                await client.call_tool("make_coffee", {}))

    invalid, unknown = _run(workspace, scenario)
    assert invalid.is_error and "n_events=-1 must be greater than or equal to 1" in invalid.content[0].text
    assert unknown.is_error and "unknown tool 'make_coffee'" in unknown.content[0].text
    assert not workspace.list_artifacts()


def test_artifacts_are_resources_with_mime_types(workspace: Workspace) -> None:
    """A plot made through MCP is listed and readable as artifact://<id> (PNG) and artifact://<id>/plot.pdf."""

    async def scenario(client: Client) -> Any:
        events = (await client.call_tool("generate_events", DY)).structured_content["artifacts"][0]["id"]
        histogram = await client.call_tool("histogram", {"source": events, "field": "m_hat_gev", "bins": 10})
        plot = await client.call_tool("plot", {"histograms": [histogram.structured_content["artifacts"][0]["id"]]})
        plot_id = plot.structured_content["artifacts"][0]["id"]
        listed = (await client.list_resources()).resources
        png = (await client.read_resource(f"artifact://{plot_id}")).contents[0]
        pdf = (await client.read_resource(f"artifact://{plot_id}/plot.pdf")).contents[0]
        refused = []
        for uri in ("artifact://../../physagent.sqlite", f"artifact://{plot_id}/../../physagent.sqlite",
                    "artifact://ev-0123456789", f"artifact://{plot_id}/nope.txt"):
            with pytest.raises(MCPError) as caught:
                await client.read_resource(uri)
            refused.append(str(caught.value))
        return plot, listed, png, pdf, refused

    plot, listed, png, pdf, refused = _run(workspace, scenario)
    assert [b.type for b in plot.content] == ["text", "resource_link", "image"]
    by_uri = {r.uri: r for r in listed}
    assert {a.id for a in workspace.list_artifacts()} == {uri.removeprefix("artifact://") for uri in by_uri}
    plot_uri = next(uri for uri in by_uri if uri.startswith("artifact://plot-"))
    assert by_uri[plot_uri].mime_type == "image/png" and by_uri[plot_uri].size > 1000
    assert png.mime_type == "image/png" and base64.b64decode(png.blob).startswith(b"\x89PNG")
    assert pdf.mime_type == "application/pdf" and base64.b64decode(pdf.blob).startswith(b"%PDF")
    assert all("no artifact" in message or "has no file" in message for message in refused)


def test_stdio_transport_keeps_the_wire_clean_while_tools_redirect_stdout(tmp_path: Path) -> None:
    """`physagent mcp` as a subprocess: progress notifications sent while Pythia's output is captured on
    fd 1 still reach the client, and the JSON-RPC stream stays intact."""
    physagent = shutil.which("physagent", path=str(Path(sys.executable).parent))
    assert physagent is not None, "the physagent console script is not installed beside this Python"
    env = {k: v for k, v in os.environ.items() if k != "PHYSAGENT_HOME"} | {"HF_HUB_OFFLINE": "1"}
    params = StdioServerParameters(command=physagent, args=["--home", str(tmp_path / "home"), "mcp"], env=env)
    progress: list[float] = []

    async def main() -> Any:
        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append(done)

        async with Client(params) as client:
            names = [tool.name for tool in (await client.list_tools()).tools]
            return names, await client.call_tool("generate_events", DY, progress_callback=on_progress)

    names, result = anyio.run(main)
    assert names == [spec.name for spec in registry]
    assert not result.is_error and result.structured_content["result"]["n_events"] == 40
    assert progress and progress[-1] == 40
    assert Workspace(tmp_path / "home").list_artifacts()[0].kind == "events"
