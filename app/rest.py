r"""The REST API (FastAPI): the tool registry, the agent and the workspace over HTTP.

``physagent serve`` runs :func:`create_app` under uvicorn. Routes (OpenAPI schema at ``/openapi.json``,
interactive docs at ``/docs``)::

    GET  /tools                   registered tools: name, category, version, summary
    GET  /tools/{name}            one tool: description, JSON schema of its parameters, an example
    POST /tools/{name}            call it: body = the arguments as a JSON object → the typed result
    POST /agent/ask               the agent: Server-Sent Events (one per agent event, then the record),
                                  or with "stream": false the record `physagent ask --json` prints
    POST /uploads                 upload a ROOT/Parquet/CSV/HDF5 file (→ artifact) or a PDF/Markdown document
    POST /sessions                a new session (its own workspace)
    GET  /sessions/{id}           its provenance: artifacts, tool calls, agent conversations
    GET  /sessions/{id}/export    a Python script that reproduces the session's artifacts
    GET  /artifacts/{id}          download an artifact's file (?file=<name> for another file of it)

**Sessions.** Every client works in a session: a workspace of its own under ``<home>/sessions/<id>/``.
Send its id in the ``X-Physagent-Session`` header (or ``?session=``). A call without one starts a new
session, kept only if the call succeeds; the response's ``X-Physagent-Session`` header says which — reuse
it to chain calls (``ev-…`` ids from one call feed the next) and to keep the agent's chat memory. Sessions
idle for an hour (``PHYSAGENT_SESSION_IDLE_S``) or beyond the 256 most recent (``PHYSAGENT_MAX_SESSIONS``)
leave the server's memory, not the disk: their id reopens them, with their artifacts and provenance (the
agent's chat memory starts afresh).

**Errors.** Invalid input (also a body that is not UTF-8 JSON or is nested too deeply) → 422
``{"detail": [{"loc", "field", "msg", "type"}]}`` with the message the CLI prints; a file path outside the
folders the tools may read → 403; unknown tool, session or artifact → 404; a busy session → 409; a request
body or an upload over its limit → 413; a model backend that cannot be reached → 503;
a tool that failed on valid input → 500. Other errors have the body
``{"detail": "<message>", "type"?: "<error class>"}``. The OpenAPI document declares these bodies
(``InvalidInput``, ``ErrorBody``) on the routes that can return them, and each tool route's own response
model (``GenerateEventsResponse`` …: call id, cached, wall time, the typed result, artifacts with download
URLs, session).

**Security.** Binds to 127.0.0.1 by default; another address needs ``PHYSAGENT_API_TOKEN``, and a
configured token is required on every route as ``Authorization: Bearer <token>``. Artifact ids are
checked against their pattern before any path is built. Request bodies are limited to 1 MB
(``PHYSAGENT_MAX_BODY_MB``) and uploads to 200 MB (``--max-upload-mb``), counted as they arrive. The
data tools read host files only from the session's uploads and the folders in ``PHYSAGENT_DATA_DIRS``
(never the server's current directory, ``/proc``, ``/sys`` or ``/dev``); anything else is refused with 403.
"""

import dataclasses
import importlib.metadata
import inspect
import json
import mimetypes
import os
import re
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, FastAPI, File, Header, HTTPException, Query, Request, Response, UploadFile
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from physagent.agent import AgentEvent, AgentRecord
from physagent.agent.backends import BackendError
from physagent.app._schemas import rest_call_model
from physagent.app._security import BearerTokenMiddleware
from physagent.app._session import (
    DEFAULT_MAX_SESSIONS,
    DEFAULT_SESSION_IDLE_S,
    BackendChoice,
    Session,
    SessionBusyError,
    SessionNotFoundError,
    SessionStore,
    UploadTooLargeError,
    event_payload,
    import_upload,
    provenance,
    save_upload,
    stream_request,
    write_export,
)
from physagent.tools import (
    ARTIFACT_ID_PATTERN,
    CallOutcome,
    ProgressUpdate,
    ToolAccessError,
    ToolCancelledError,
    ToolDependencyError,
    ToolInputError,
    ToolRuntimeError,
    ToolSpec,
    call_tool,
    default_home,
    registry,
)

__all__ = ["SESSION_HEADER", "AskBody", "ErrorBody", "InvalidInput", "Problem", "create_app"]

SESSION_HEADER = "X-Physagent-Session"
DEFAULT_MAX_UPLOAD_MB = 200
DEFAULT_MAX_BODY_MB = 1.0  # a JSON tool call or agent request; uploads have their own limit
_MULTIPART_OVERHEAD_BYTES = 64 * 1024
# backends a client may pick; anything else (file paths, scripted runs) only as the server's own default
_CLIENT_BACKENDS = re.compile(r"^(embedded(:(0\.5b|1\.5b))?|openai(:[\w.:/-]{1,100})?)$")


class AskBody(BaseModel):
    """One request to the agent."""

    model_config = ConfigDict(extra="forbid")

    request: str = Field(min_length=1, max_length=8000, description="What you want, in plain language.",
                         examples=["Generate 500 ttbar events and plot the leading-jet pT"])
    backend: str | None = Field(None, description="embedded | embedded:0.5b | embedded:1.5b | openai | "
                                "openai:<model> (the server's endpoint); default: the server's backend.")
    max_steps: int = Field(10, ge=1, le=50, description="Model turns allowed for this request.")
    mode: Literal["plan", "step"] | None = Field(None, description="'plan': the whole plan in one reply, checked, "
                                                "then run (default); 'step': one tool call per model turn.")
    stream: bool = Field(True, description="true: Server-Sent Events as the agent works; false: one JSON record.")


class Problem(BaseModel):
    """One reason a request was refused."""

    loc: list[str | int] = Field(description="Where: ['body', <parameter>], ['query', ...], ['header', ...].")
    field: str | None = Field(description="The parameter or field at fault (null when the whole body is).")
    msg: str = Field(description="What is wrong and what is allowed: the message the CLI prints.")
    type: str = Field(description="Kind of problem, e.g. tool_input, missing, int_parsing, value_error.")


class InvalidInput(BaseModel):
    """The body of a 422: every problem found."""

    detail: list[Problem]


class ErrorBody(BaseModel):
    """The body of every other error (401, 403, 404, 409, 411, 413, 500, 503)."""

    detail: str = Field(description="What went wrong and what to do next.")
    type: str | None = Field(None, description="The error's class (e.g. SessionNotFoundError, ToolRuntimeError); "
                                               "absent for unknown tools and artifacts and for size limits.")


_ERRORS: dict[int, tuple[type[BaseModel], str]] = {
    401: (ErrorBody, "Missing or wrong API token."),
    403: (ErrorBody, "A file path outside the folders the server's tools may read (uploads, PHYSAGENT_DATA_DIRS)."),
    404: (ErrorBody, "Unknown tool, session or artifact."),
    409: (ErrorBody, "The session is still answering another request."),
    411: (ErrorBody, "The upload has no Content-Length header."),
    413: (ErrorBody, "The request body or upload is over the server's size limit (the message names it)."),
    422: (InvalidInput, "Invalid input: each problem names its field and says what is allowed."),
    500: (ErrorBody, "The tool failed on valid input."),
    503: (ErrorBody, "A dependency or the model backend is not available."),
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error statuses a route can return, with the bodies the handlers send."""
    return {code: {"model": _ERRORS[code][0], "description": _ERRORS[code][1]} for code in codes}


def create_app(home: Path | str | None = None, token: str | None = None, *, backend: str | None = None,
               max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, max_body_mb: float | None = None,
               session_idle_s: float | None = None, max_sessions: int | None = None) -> FastAPI:
    """Build the API over sessions in ``home``/sessions; with ``token``, every route requires it.

    ``backend`` is the default model spec for ``/agent/ask`` (default: ``$PHYSAGENT_LLM`` or the embedded model).
    Limits (each unset one from its environment variable, else its default): ``max_body_mb`` for a request body
    other than an upload (``PHYSAGENT_MAX_BODY_MB``, 1 MB); ``max_upload_mb`` for an upload; ``session_idle_s``
    and ``max_sessions`` for the sessions kept in memory (``PHYSAGENT_SESSION_IDLE_S``, 3600 s;
    ``PHYSAGENT_MAX_SESSIONS``, 256) — an evicted session stays on disk and reopens by its id.
    """
    max_body_mb = _limit("max_body_mb", max_body_mb, "PHYSAGENT_MAX_BODY_MB", DEFAULT_MAX_BODY_MB)
    store = SessionStore(home or default_home(),
                         idle_s=_limit("session_idle_s", session_idle_s, "PHYSAGENT_SESSION_IDLE_S",
                                       DEFAULT_SESSION_IDLE_S),
                         max_sessions=int(_limit("max_sessions", max_sessions, "PHYSAGENT_MAX_SESSIONS",
                                                 DEFAULT_MAX_SESSIONS)))
    app = FastAPI(title="physagent", version=importlib.metadata.version("physagent"),
                  summary="Typed physics and ML tools, and an agent that uses them.",
                  description=(__doc__ or "").split("\n\n", 1)[1], responses=_errors(401) if token else None)
    app.state.store = store
    _add_error_handlers(app)
    _add_tool_routes(app, store)
    _add_agent_routes(app, store, BackendChoice.default(backend))
    _add_session_routes(app, store, int(max_upload_mb * 1e6))
    app.add_middleware(_BodyLimit, max_body_bytes=int(max_body_mb * 1e6), max_upload_bytes=int(max_upload_mb * 1e6))
    if token:
        app.add_middleware(BearerTokenMiddleware, token=token)
    return app


def _limit(name: str, value: float | None, env: str, default: float) -> float:
    """``value``, else the environment variable ``env``, else ``default``; a positive number.

    Raises:
        ValueError: not a positive number (the message names the argument or variable).
    """
    if value is None:
        text = os.environ.get(env, "").strip()
        try:
            value = float(text) if text else default
        except ValueError:
            raise ValueError(f"{env}={text!r} is not a number: set a positive number or unset it.") from None
        name = env
    if not value > 0:  # NaN too
        raise ValueError(f"{name}={value!r} must be a positive number.")
    return value


# sessions ------------------------------------------------------------------------------------------

def _session_dependency(store: SessionStore, *, create: bool) -> Any:
    """Resolve the client's session from the header or query.

    With ``create``, no session given resolves to None: the route runs in a new session through
    ``store.using(None)``, which keeps it only if the request succeeds.
    """

    def dependency(
        response: Response,
        header: Annotated[str | None, Header(alias=SESSION_HEADER, description="Session id.")] = None,
        session: Annotated[str | None, Query(description=f"Session id (instead of the {SESSION_HEADER} header).")]
        = None,
    ) -> Session | None:
        chosen = header or session
        if chosen is None and not create:
            raise HTTPException(422, detail=[_problem(["header", SESSION_HEADER], SESSION_HEADER, (
                f"this route needs the session: send its id in the {SESSION_HEADER} header or ?session=."),
                "missing")])
        if chosen is None:
            return None
        found = store.get(chosen)
        response.headers[SESSION_HEADER] = found.id
        return found

    return dependency


def _problem(loc: list[Any], field: str | None, msg: str, kind: str) -> dict[str, Any]:
    return {"loc": loc, "field": field, "msg": msg, "type": kind}


# tools ---------------------------------------------------------------------------------------------

def _add_tool_routes(app: FastAPI, store: SessionStore) -> None:
    session_dep = _session_dependency(store, create=True)

    @app.get("/tools", tags=["tools"], summary="List registered tools.", responses=_errors(422))
    def list_tools(category: str | None = None) -> list[dict[str, str]]:
        return [{"name": s.name, "category": s.category, "version": s.version, "summary": s.summary}
                for s in registry if category in (None, s.category)]

    @app.get("/tools/{name}", tags=["tools"], summary="Describe one tool: its JSON schema and an example call.",
             responses=_errors(404, 422))
    def describe_tool(name: str) -> dict[str, Any]:
        spec = _known_tool(name)
        return spec.json_schema() | {"category": spec.category, "version": spec.version, "example": spec.example()}

    for spec in registry:
        app.add_api_route(f"/tools/{spec.name}", _tool_endpoint(spec, store, session_dep), methods=["POST"],
                          tags=["tools"], summary=spec.summary, description=spec.description,
                          operation_id=f"call_{spec.name}", response_model=rest_call_model(spec),
                          responses=_errors(403, 404, 413, 422, 500, 503))

    @app.post("/tools/{name}", tags=["tools"], summary="Unknown tools: 404.", include_in_schema=False)
    def unknown_tool(name: str) -> None:
        _known_tool(name)


def _known_tool(name: str) -> ToolSpec:
    if name not in registry:
        raise HTTPException(404, detail=f"unknown tool {name!r}. Known tools: {', '.join(registry.names())}.")
    return registry.get(name)


def _tool_endpoint(spec: ToolSpec, store: SessionStore, session_dep: Any) -> Any:
    """A POST endpoint whose body is the tool's own input model (so OpenAPI shows every parameter)."""

    def endpoint(arguments: BaseModel, response: Response, session: Session | None,
                 no_cache: bool = False) -> dict[str, Any]:
        raw = arguments.model_dump(mode="json", exclude_unset=True)
        with store.using(session) as used:
            outcome = call_tool(spec.name, raw, workspace=used.workspace, use_cache=not no_cache)
        response.headers[SESSION_HEADER] = used.id
        return _outcome_json(outcome, used)

    keyword = inspect.Parameter.KEYWORD_ONLY
    endpoint.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        inspect.Parameter("arguments", keyword, annotation=Annotated[spec.input_model, Body(
            description=f"Arguments of {spec.name} as one JSON object ({{}} for all defaults).")]),
        inspect.Parameter("response", keyword, annotation=Response),
        inspect.Parameter("session", keyword, annotation=Annotated[Session | None, Depends(session_dep)]),
        inspect.Parameter("no_cache", keyword, default=False, annotation=Annotated[bool, Query(
            description="Rerun even if an identical call is cached.")]),
    ], return_annotation=dict[str, Any])
    endpoint.__name__ = f"call_{spec.name}"
    return endpoint


def _outcome_json(outcome: CallOutcome, session: Session) -> dict[str, Any]:
    document = outcome.to_json() | {"session": session.id}
    for artifact in document["artifacts"]:
        artifact["url"] = f"/artifacts/{artifact['id']}?session={session.id}"
    return document


# agent ---------------------------------------------------------------------------------------------

def _add_agent_routes(app: FastAPI, store: SessionStore, default: BackendChoice) -> None:
    session_dep = _session_dependency(store, create=True)

    @app.post("/agent/ask", tags=["agent"], summary="Ask the agent; stream its events (SSE) or get the record.",
              responses={200: _ask_response()} | _errors(404, 409, 413, 422, 503))
    def ask(body: AskBody, session: Annotated[Session | None, Depends(session_dep)]) -> Response:
        choice = _backend_choice(body.backend, default)
        with store.using(session) as used:
            items = stream_request(used, choice, body.request, body.max_steps, mode=body.mode)
            headers = {SESSION_HEADER: used.id}
            if body.stream:
                return EventSourceResponse(_sse(items), headers=headers, ping=15)
            record = _last_record(items)
        return JSONResponse(record.model_dump(mode="json"), headers=headers)


def _ask_response() -> dict[str, Any]:
    """The 200 of /agent/ask: an SSE stream (``stream: true``) or the JSON record (``stream: false``)."""
    stream = {"schema": {"type": "string", "description": "Server-Sent Events; see the response description."},
              "itemSchema": {"type": "object", "required": ["event", "data"], "properties": {
                  "event": {"type": "string", "enum": [*_event_fields(), "record"]},
                  "data": {"type": "string", "contentMediaType": "application/json"}}}}
    return {"model": AgentRecord, "description": _ask_description(), "content": {"text/event-stream": stream}}


def _ask_description() -> str:
    events = "\n".join(f"- `{kind}`: {', '.join(fields)}" for kind, fields in _event_fields().items())
    return ("With stream=true (the default), text/event-stream: one message per agent event, `event:` its type "
            "and `data:` one JSON object whose `type` repeats it:\n\n" + events +
            f"\n- `record` (last): the AgentRecord ({', '.join(AgentRecord.model_fields)})\n\n"
            "A run that fails after the stream has started ends with `event: error`, data `{type, message}`. "
            "With stream=false, application/json: the AgentRecord that `physagent ask --json` prints.")


def _event_fields() -> dict[str, list[str]]:
    """Event type → the fields of its JSON payload (see ``event_payload``), besides ``type``."""
    fields = {model.model_fields["type"].default: [f for f in model.model_fields if f != "type"]
              for model in typing.get_args(AgentEvent)}
    return fields | {"progress": [f.name for f in dataclasses.fields(ProgressUpdate)]}


def _backend_choice(requested: str | None, default: BackendChoice) -> BackendChoice:
    if requested is None or requested == default.spec:
        return default
    if not _CLIENT_BACKENDS.fullmatch(requested):
        raise HTTPException(422, detail=[_problem(["body", "backend"], "backend", (
            f"backend={requested!r} is not available: use embedded, embedded:0.5b, embedded:1.5b, openai or "
            f"openai:<model>, or leave it unset for the server's backend ({default.spec})."), "value_error")])
    return BackendChoice(requested)


def _sse(items: Iterator[Any]) -> Iterator[dict[str, str]]:
    """One SSE message per event (``event:`` its type, ``data:`` its JSON); a failure ends with ``error``."""
    try:
        for item in items:
            payload = event_payload(item)
            yield {"event": payload["type"], "data": json.dumps(payload, default=str)}
    except Exception as exc:  # the stream has started: the status line is sent, so report in-band
        yield {"event": "error", "data": json.dumps({"type": "error", "message": f"{type(exc).__name__}: {exc}"})}


def _last_record(items: Iterator[Any]) -> AgentRecord:
    record = None
    for item in items:
        if isinstance(item, AgentRecord):
            record = item
    if record is None:
        raise RuntimeError("the agent run ended without a record")
    return record


# sessions, uploads, artifacts ----------------------------------------------------------------------

def _add_session_routes(app: FastAPI, store: SessionStore, max_upload_bytes: int) -> None:
    new_session = _session_dependency(store, create=True)
    existing_session = _session_dependency(store, create=False)

    @app.post("/sessions", tags=["sessions"], status_code=201, summary="Start a session with its own workspace.")
    def create_session() -> JSONResponse:
        session = store.create()
        return JSONResponse({"session": session.id}, status_code=201, headers={SESSION_HEADER: session.id})

    @app.get("/sessions/{session_id}", tags=["sessions"], summary="A session's provenance.",
             responses=_errors(404, 422))
    def session_provenance(session_id: str) -> dict[str, Any]:
        return provenance(store.get(session_id))

    @app.get("/sessions/{session_id}/export", tags=["sessions"], response_class=PlainTextResponse,
             summary="A Python script that reproduces the session's artifacts without the agent.",
             responses=_errors(404, 422))
    def export_session(session_id: str) -> PlainTextResponse:
        session = store.get(session_id)
        try:
            script = write_export(session)
        except KeyError as exc:
            raise HTTPException(404, detail=exc.args[0]) from None
        return PlainTextResponse(script.read_text(), media_type="text/x-python")

    @app.post("/uploads", tags=["sessions"], summary="Upload a data file or a document into the session.",
              responses=_errors(404, 411, 413, 422))
    def upload(file: Annotated[UploadFile, File(description="ROOT, Parquet, CSV, HDF5, PDF or Markdown file.")],
               response: Response, session: Annotated[Session | None, Depends(new_session)]) -> dict[str, Any]:
        with store.using(session) as used:
            try:
                path = save_upload(used, file.filename or "upload", iter(lambda: file.file.read(1 << 20), b""),
                                   max_upload_bytes)
            except UploadTooLargeError:
                raise
            except ValueError as exc:
                raise HTTPException(422, detail=[_problem(["body", "file"], "file", str(exc), "value_error")]
                                    ) from None
            imported = import_upload(used, path)
        response.headers[SESSION_HEADER] = used.id
        return imported.to_json() | {"session": used.id}

    @app.get("/artifacts/{artifact_id}", tags=["artifacts"], response_class=FileResponse,
             summary="Download an artifact's primary file, or another of its files with ?file=.",
             responses=_errors(404, 422))
    def download(artifact_id: str, session: Annotated[Session, Depends(existing_session)],
                 file: Annotated[str | None, Query(description="One of the artifact's files.")] = None,
                 ) -> FileResponse:
        path = _artifact_file(session, artifact_id, file)
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=media_type, filename=f"{artifact_id}_{path.name}",
                            headers={SESSION_HEADER: session.id})


def _artifact_file(session: Session, artifact_id: str, file: str | None) -> Path:
    """The file to send, after checking the id's pattern, the artifact's file list and the final path."""
    missing = HTTPException(404, detail=f"no artifact {artifact_id!r} in session {session.id} (ids look like "
                                        "'ev-3f2a9c1b7d'; list them with GET /sessions/{id}).")
    if not re.fullmatch(ARTIFACT_ID_PATTERN, artifact_id):
        raise missing
    artifact = session.workspace.get_artifact(artifact_id)
    if artifact is None:
        raise missing
    name = file or artifact.path.name
    if name not in artifact.files:
        raise HTTPException(404, detail=f"artifact {artifact_id} has no file {name!r}; it has {artifact.files}.")
    path = (artifact.directory / name).resolve()
    if not path.is_relative_to((session.root / "artifacts").resolve()) or not path.is_file():
        raise missing
    return path


# errors --------------------------------------------------------------------------------------------

_STATUS: dict[type[Exception], int] = {ToolAccessError: 403, ToolCancelledError: 409, ToolDependencyError: 503,
                                       ToolRuntimeError: 500}


def _add_error_handlers(app: FastAPI) -> None:
    """Map every error family once: bad input 422, unknown things 404, state conflicts 409 …"""

    @app.exception_handler(ToolInputError)
    def tool_input(request: Request, exc: ToolInputError) -> JSONResponse:
        loc = ["body", exc.param] if exc.param else ["body"]
        return JSONResponse({"detail": [_problem(loc, exc.param, str(exc), "tool_input")]}, status_code=422)

    @app.exception_handler(RequestValidationError)
    def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": [_explained(request, error, exc.body) for error in exc.errors()]},
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        problem = _unparsable_body(exc)
        if problem is None:
            return await http_exception_handler(request, exc)
        return JSONResponse({"detail": [problem]}, status_code=422)

    def handler(status: int) -> Any:
        def handle(request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc), "type": type(exc).__name__}, status_code=status)
        return handle

    statuses: dict[type[Exception], int] = {**_STATUS, SessionNotFoundError: 404, SessionBusyError: 409,
                                            UploadTooLargeError: 413, BackendError: 503}
    for error, status in statuses.items():
        app.add_exception_handler(error, handler(status))


def _explained(request: Request, error: Any, body: Any) -> dict[str, Any]:
    """FastAPI's error with the field named and, for a tool's arguments, the message the CLI would print."""
    loc = list(error.get("loc", ()))
    field = str(loc[1]) if len(loc) > 1 and loc[0] == "body" else (str(loc[-1]) if loc else None)
    message = error.get("msg", "invalid")
    name = request.url.path.removeprefix("/tools/")
    if request.method == "POST" and name in registry and isinstance(body, dict):
        try:
            registry.get(name).validate(body)
        except ToolInputError as exc:
            message = str(exc)
    return _problem(loc, field, message, error.get("type", "invalid"))


def _unparsable_body(exc: StarletteHTTPException) -> dict[str, Any] | None:
    """The 422 problem for a JSON body FastAPI could not decode (it answers 400): not UTF-8, or nested too deeply."""
    cause = exc.__cause__
    if exc.status_code != 400:
        return None
    if isinstance(cause, UnicodeDecodeError):
        byte = cause.object[cause.start] if isinstance(cause.object, bytes) else 0
        return _problem(["body"], None, f"the body is not valid UTF-8 (byte 0x{byte:02x} at position {cause.start}). "
                        "Send the arguments as one JSON object encoded as UTF-8.", "json_invalid")
    if isinstance(cause, RecursionError):
        return _problem(["body"], None, "the JSON body is nested too deeply to parse. Send the arguments as one "
                        "object of plain values and lists, as GET /tools/{name} describes.", "json_too_deep")
    return None


class _BodyTooLarge(StarletteHTTPException):
    """A request body over the limit, found while it was read (413)."""


class _BodyLimit:
    """Refuse a request body over the limit with 413 naming it: unread when its Content-Length says so, else as
    soon as the bytes read pass it (a chunked body has no length). Uploads have their own, larger limit and
    must declare their size (411)."""

    def __init__(self, app: Any, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app, self.max_body_bytes, self.max_upload_bytes = app, max_body_bytes, max_upload_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = scope["path"] == "/uploads" and scope["method"] == "POST"
        limit = self.max_upload_bytes + _MULTIPART_OVERHEAD_BYTES if upload else self.max_body_bytes
        too_large = (f"the upload is larger than the limit of {self.max_upload_bytes / 1e6:g} MB." if upload else
                     f"the request body is larger than the server's limit of {self.max_body_bytes / 1e6:g} MB "
                     f"({self.max_body_bytes} bytes). Send fewer or shorter values (data files go to POST /uploads), "
                     "or start the server with a higher PHYSAGENT_MAX_BODY_MB.")
        length = dict(scope["headers"]).get(b"content-length")
        if upload and (length is None or not length.isdigit()):
            await _send_json(send, 411, "send the upload with a Content-Length header.")
            return
        if length is not None and length.isdigit() and int(length) > limit:
            await _send_json(send, 413, too_large)
            return
        received, started = 0, False

        async def counted() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(413, detail=too_large)
            return message

        async def watched(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _BodyTooLarge:  # raised outside the routes' handlers (they answer it themselves)
            if started:
                raise
            await _send_json(send, 413, too_large)


async def _send_json(send: Any, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
