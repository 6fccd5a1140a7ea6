r"""The MCP server: every registered tool, and every artifact as a resource, for any MCP client.

``physagent mcp`` serves :func:`create_server` over stdio (desktop assistants, IDEs launch it as a
subprocess); ``physagent mcp --transport http`` serves streamable HTTP at ``http://127.0.0.1:8765/mcp``.

- **Tools**: each tool's name, description and JSON input schema come straight from the registry
  (the low-level SDK server, not signature introspection: the schemas already exist), with an
  ``outputSchema`` (the tool's result model inside the call document, :func:`app._schemas.call_model`)
  and annotations: ``readOnlyHint`` for tools that add no artifact (:attr:`ToolSpec.read_only`),
  ``idempotentHint`` for cacheable ones, whose repeated call replays the cached result
  (:attr:`ToolSpec.idempotent`). A call runs :func:`tools.call_tool` in a worker thread, reports the
  tool's progress to the client, and returns the typed result as structured content conforming to
  that schema (the same JSON ``physagent tools call --json`` prints), a text copy of it, a link to
  each artifact and, for plots, the PNG inline. A tool error (bad argument, failed run) is an error
  *result* the model can read; protocol faults stay protocol errors.
- **Resources**: every artifact of the workspace as ``artifact://<id>`` (primary file) and
  ``artifact://<id>/<file>`` (any file of it), with its MIME type; text files as text, others base64.

One server, one workspace (``PHYSAGENT_HOME`` or ``--home``): an MCP client is one user. The data tools
read host files only from the workspace's ``uploads/`` and ``PHYSAGENT_DATA_DIRS`` (see :mod:`tools._paths`).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import importlib.metadata
import json
import mimetypes
import re
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from physagent.app._schemas import call_model, output_schema
from physagent.app._session import ThrottledProgress
from physagent.tools import (
    ARTIFACT_ID_PATTERN,
    Artifact,
    CallOutcome,
    ProgressUpdate,
    ToolError,
    ToolSpec,
    Workspace,
    call_tool,
    registry,
)

__all__ = ["MAX_RESOURCE_BYTES", "create_server", "run_http", "run_stdio"]

MAX_RESOURCE_BYTES = 50_000_000
_INLINE_IMAGE_BYTES = 2_000_000
_TEXT_TYPES = ("text/", "application/json", "application/x-python", "application/xml")
_URI = re.compile(r"^artifact://([^/]+)(?:/([^/]+))?$")
_INSTRUCTIONS = (
    "physagent: typed physics and ML tools (Pythia8 event generation, FastJet jets, detector response, "
    "histograms, plots, ROOT/Parquet I/O). Tools return artifact ids such as 'ev-3f2a9c1b7d': pass them to the "
    "next tool. Read artifacts as resources artifact://<id>."
)


def create_server(workspace: Workspace | None = None) -> Server[Any]:
    """An MCP server over the tool registry and the artifacts of ``workspace`` (default: ``PHYSAGENT_HOME``).

    Its tools read host files from the workspace's uploads and granted folders (``PHYSAGENT_DATA_DIRS``),
    never the server's current directory: the client, often a model, must not read whatever this process can.
    """
    given = workspace or Workspace()
    workspace = Workspace(given.root, file_access=dataclasses.replace(given.file_access, allow_cwd=False))

    async def list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
                         ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[_tool(spec) for spec in registry])

    async def call(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        return await _call(ctx, workspace, params.name, params.arguments or {})

    async def list_resources(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
                             ) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[_resource(a) for a in workspace.list_artifacts()])

    async def list_templates(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
                             ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=[
            types.ResourceTemplate(name="artifact", uri_template="artifact://{id}",
                                   description="The primary file of an artifact, e.g. artifact://plot-3f2a9c1b7d."),
            types.ResourceTemplate(name="artifact-file", uri_template="artifact://{id}/{file}",
                                   description="Any file of an artifact, e.g. artifact://plot-3f2a9c1b7d/plot.pdf."),
        ])

    async def read(ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
                   ) -> types.ReadResourceResult:
        return types.ReadResourceResult(contents=[_read(workspace, str(params.uri))])

    return Server("physagent", version=importlib.metadata.version("physagent"), instructions=_INSTRUCTIONS,
                  on_list_tools=list_tools, on_call_tool=call, on_list_resources=list_resources,
                  on_list_resource_templates=list_templates, on_read_resource=read)


def _tool(spec: ToolSpec) -> types.Tool:
    title = _title(spec)
    annotations = types.ToolAnnotations(title=title, read_only_hint=spec.read_only, idempotent_hint=spec.idempotent)
    return types.Tool(name=spec.name, title=title, description=spec.description, input_schema=spec.parameters_schema(),
                      output_schema=output_schema(spec), annotations=annotations)


def _title(spec: ToolSpec) -> str:
    """A display name from the tool's verb phrase: ``generate_events`` → 'Generate events'."""
    return spec.name.replace("_", " ").capitalize()


# calls ---------------------------------------------------------------------------------------------

async def _call(ctx: ServerRequestContext[Any], workspace: Workspace, name: str, arguments: dict[str, Any]
                ) -> types.CallToolResult:
    """Run the tool off the event loop; a :class:`ToolError` becomes an error result the model can read."""
    progress = ThrottledProgress(functools.partial(_report, ctx), 0.5)
    run = functools.partial(call_tool, name, arguments, workspace=workspace, progress=progress)
    try:
        outcome = await anyio.to_thread.run_sync(run)
    except ToolError as exc:
        return types.CallToolResult(content=[types.TextContent(text=str(exc))], is_error=True)
    return _result(outcome)


def _report(ctx: ServerRequestContext[Any], update: ProgressUpdate) -> None:
    """Forward a tool's progress from its worker thread; a client that asked for none gets none."""
    message = f"{update.task}: {update.completed:g}" + (f"/{update.total:g}" if update.total else "") + \
        f" {update.unit}".rstrip()
    try:
        anyio.from_thread.run(ctx.session.report_progress, update.completed, update.total, message)
    except Exception:
        return


def _result(outcome: CallOutcome) -> types.CallToolResult:
    """The call document, checked against the tool's ``outputSchema`` model, as structured content and text."""
    document = call_model(registry.get(outcome.tool)).model_validate(outcome.to_json()).model_dump(mode="json")
    content: list[types.ContentBlock] = [types.TextContent(text=json.dumps(document, indent=1))]
    for artifact in outcome.artifacts:
        content.append(types.ResourceLink(**_resource(artifact).model_dump(exclude_none=True)))
        if artifact.path.suffix == ".png" and artifact.path.stat().st_size <= _INLINE_IMAGE_BYTES:
            content.append(types.ImageContent(data=base64.b64encode(artifact.path.read_bytes()).decode(),
                                              mime_type="image/png"))
    return types.CallToolResult(content=content, structured_content=document)


# resources -----------------------------------------------------------------------------------------

def _mime(path: Path) -> str:
    if path.suffix in {".parquet", ".pq"}:
        return "application/vnd.apache.parquet"
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _resource(artifact: Artifact) -> types.Resource:
    size = artifact.path.stat().st_size if artifact.path.is_file() else None
    return types.Resource(uri=f"artifact://{artifact.id}", name=artifact.id, title=f"{artifact.kind} {artifact.id}",
                          description=artifact.summary, mime_type=_mime(artifact.path), size=size)


def _read(workspace: Workspace, uri: str) -> types.TextResourceContents | types.BlobResourceContents:
    """One artifact file as resource contents, after checking the id's pattern and the artifact's file list."""
    match = _URI.match(uri)
    artifact_id, file = (match.group(1), match.group(2)) if match else ("", None)
    artifact = workspace.get_artifact(artifact_id) if re.fullmatch(ARTIFACT_ID_PATTERN, artifact_id) else None
    if artifact is None:
        raise MCPError(INVALID_PARAMS, f"no artifact at {uri!r}: URIs look like artifact://ev-3f2a9c1b7d; "
                                       "list them with resources/list.")
    name = file or artifact.path.name
    if name not in artifact.files:
        raise MCPError(INVALID_PARAMS, f"artifact {artifact.id} has no file {name!r}; it has {artifact.files}.")
    path = artifact.directory / name
    size = path.stat().st_size
    if size > MAX_RESOURCE_BYTES:
        raise MCPError(INVALID_PARAMS, f"{uri} is {size / 1e6:.0f} MB, over the {MAX_RESOURCE_BYTES / 1e6:.0f} MB "
                                       f"resource limit; read it from disk at {path}.")
    mime = _mime(path)
    if mime.startswith(_TEXT_TYPES):
        return types.TextResourceContents(uri=uri, mime_type=mime, text=path.read_text(errors="replace"))
    return types.BlobResourceContents(uri=uri, mime_type=mime, blob=base64.b64encode(path.read_bytes()).decode())


# transports ----------------------------------------------------------------------------------------

def run_stdio(server: Server[Any]) -> None:
    """Serve over stdin/stdout until the client closes (library output on fd 1 is diverted to stderr)."""
    from mcp.server.stdio import stdio_server

    async def main() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(main)


def run_http(server: Server[Any], host: str, port: int, token: str | None) -> None:
    """Serve streamable HTTP at ``http://host:port/mcp`` (with ``token``: every request needs it)."""
    import uvicorn

    from physagent.app._security import BearerTokenMiddleware, check_bind

    check_bind(host, token)
    app: Any = server.streamable_http_app(host=host)
    if token:
        app = BearerTokenMiddleware(app, token)
    uvicorn.run(app, host=host, port=port)
