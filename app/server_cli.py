"""``physagent ui``, ``serve`` and ``mcp``: the web UI, the REST API and the MCP server from the command line.

All three listen on 127.0.0.1 by default; another ``--host`` needs ``PHYSAGENT_API_TOKEN`` (see
:mod:`app._security`). Sessions live under the workspace (``--home`` / ``PHYSAGENT_HOME``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

import typer

from physagent.app._common import err, error_line
from physagent.app._security import InsecureBindError, check_bind, token_from_env
from physagent.tools import Workspace, default_home

__all__ = ["register"]

Host = Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs PHYSAGENT_API_TOKEN.")]
Backend = Annotated[str | None, typer.Option(help="Default model: embedded | embedded:0.5b | openai | "
                                                  "scripted:/path.json (default: $PHYSAGENT_LLM or embedded).")]
MaxUpload = Annotated[float, typer.Option(help="Largest upload accepted, in MB.")]


def ui(host: Host = "127.0.0.1", port: Annotated[int, typer.Option(help="Port.")] = 7860,
       backend: Backend = None, max_upload_mb: MaxUpload = 200.0) -> None:
    """Serve the chat web UI: streamed agent steps, inline plots, uploads, downloads, a tool runner."""
    from physagent.app.web import launch_ui

    token = _checked(host)
    err.print(f"physagent UI on http://{_url_host(host)}:{port} — sessions in {default_home() / 'sessions'}")
    _refusing(lambda: launch_ui(default_home(), host=host, port=port, token=token, backend=backend,
                                max_upload_mb=max_upload_mb))


def serve(host: Host = "127.0.0.1", port: Annotated[int, typer.Option(help="Port.")] = 8000,
          backend: Backend = None, max_upload_mb: MaxUpload = 200.0) -> None:
    """Serve the REST API (OpenAPI schema at /openapi.json, docs at /docs)."""
    import uvicorn

    from physagent.app.rest import create_app

    token = _checked(host)
    err.print(f"physagent API on http://{_url_host(host)}:{port} (docs: /docs) — sessions in "
              f"{default_home() / 'sessions'}" + (" — token required" if token else ""))
    uvicorn.run(create_app(default_home(), token, backend=backend, max_upload_mb=max_upload_mb), host=host, port=port)


def mcp(transport: Annotated[Literal["stdio", "http"], typer.Option(
            help="stdio (an MCP client launches this command) or http (streamable HTTP at /mcp).")] = "stdio",
        host: Host = "127.0.0.1", port: Annotated[int, typer.Option(help="Port (http only).")] = 8765) -> None:
    """Serve every tool, and the workspace's artifacts as resources, over the Model Context Protocol."""
    from physagent.app.mcp_server import create_server, run_http, run_stdio

    server = create_server(Workspace())
    if transport == "stdio":
        run_stdio(server)
        return
    token = _checked(host)
    err.print(f"physagent MCP server on http://{_url_host(host)}:{port}/mcp — workspace {Workspace().root}")
    run_http(server, host, port, token)


def _checked(host: str) -> str | None:
    token = token_from_env()
    _refusing(lambda: check_bind(host, token))
    return token


def _refusing(action: Callable[[], object]) -> None:
    try:
        action()
    except InsecureBindError as exc:
        err.print(error_line(str(exc)), highlight=False)
        raise typer.Exit(2) from None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def register(app: typer.Typer) -> None:
    """Add the server commands to the main CLI."""
    app.command()(ui)
    app.command()(serve)
    app.command()(mcp)
