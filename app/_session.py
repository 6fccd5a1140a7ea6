r"""What every server front end shares: per-session workspaces, backends, the streamed agent run.

One place for it, so the web UI, the REST API and the MCP server behave the same:

- :class:`SessionStore` gives each browser tab or API client its own workspace directory,
  ``<home>/sessions/<16 hex digits>/`` (artifacts, provenance database, uploads, exports), so two
  users never see each other's artifacts. A session id is a capability: unguessable, checked
  against :data:`SESSION_ID_PATTERN` before it touches the filesystem.
- :class:`BackendChoice` names the model (``embedded:1.5b``, ``openai:<model>`` with an optional
  endpoint URL, ``scripted:/path.json``); the embedded model is loaded once per process and shared.
- :func:`stream_request` runs one agent request in a worker thread and yields its events *and* the
  tools' progress updates as they happen; :func:`event_payload` turns either into one JSON object.
- :func:`save_upload` / :func:`import_upload` store an uploaded file in the session and turn data
  files into artifacts (ROOT → ``read_root``, Parquet/CSV/HDF5 → ``read_table``).
"""

from __future__ import annotations

import json
import os
import queue
import re
import secrets
import shutil
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from physagent.agent import AgentEvent, AgentRecord, Assistant, ChatBackend, get_backend
from physagent.agent.backends import DEFAULT_BACKEND, BackendError, ModelTurn
from physagent.agent.loop import checked_mode, default_mode
from physagent.tools import SERVER_ACCESS, Artifact, ProgressUpdate, ToolError, Workspace, call_tool, export_script

__all__ = [
    "DEFAULT_MAX_SESSIONS", "DEFAULT_SESSION_IDLE_S", "DOCUMENT_SUFFIXES", "SESSION_ID_PATTERN", "UPLOAD_SUFFIXES",
    "BackendChoice", "Session", "SessionBusyError",
    "SessionNotFoundError", "SessionStore", "StreamFailure", "StreamItem", "ThrottledProgress", "UploadResult",
    "UploadTooLargeError", "event_payload", "import_upload", "provenance", "safe_filename", "save_upload",
    "stream_request", "write_export",
]

SESSION_ID_PATTERN = r"^[0-9a-f]{16}$"
DEFAULT_SESSION_IDLE_S = 3600.0
DEFAULT_MAX_SESSIONS = 256
_SESSION_FILE = "session.json"
_DATA_SUFFIXES = {".root": "read_root", ".parquet": "read_table", ".pq": "read_table", ".csv": "read_table",
                  ".h5": "read_table", ".hdf5": "read_table", ".hdf": "read_table"}
DOCUMENT_SUFFIXES = frozenset({".pdf", ".md", ".markdown", ".txt"})
UPLOAD_SUFFIXES = frozenset(_DATA_SUFFIXES) | DOCUMENT_SUFFIXES


class SessionNotFoundError(LookupError):
    """No session with this id (or the id is not a session id at all)."""


class SessionBusyError(RuntimeError):
    """The session is already answering a request; its conversation runs one request at a time."""


class UploadTooLargeError(ValueError):
    """An upload exceeded the server's size limit; nothing was kept."""


# backends -----------------------------------------------------------------------------------------

_OPENAI_VARS = ("PHYSAGENT_OPENAI_BASE_URL", "PHYSAGENT_OPENAI_MODEL")
_SHARED: dict[str, ChatBackend] = {}
_SHARED_LOCK = threading.Lock()


class _Serialised:
    """One in-process model shared by every session: calls take turns (llama.cpp runs one at a time)."""

    def __init__(self, backend: ChatBackend) -> None:
        self.backend, self.name = backend, backend.name
        self._lock = threading.Lock()

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelTurn:
        with self._lock:
            return self.backend.complete(messages, tools)


@dataclass(frozen=True)
class BackendChoice:
    """Which model answers: a backend spec as for ``--backend``, plus an endpoint URL for ``openai``.

    ``embedded`` / ``embedded:1.5b`` / ``embedded:0.5b`` (one copy per process, shared),
    ``openai`` / ``openai:<model>`` (``base_url`` overrides ``PHYSAGENT_OPENAI_BASE_URL``),
    ``scripted:/path.json`` (tests and demos).
    """

    spec: str = ""
    base_url: str = ""

    @classmethod
    def default(cls, spec: str | None = None) -> BackendChoice:
        return cls((spec or os.environ.get("PHYSAGENT_LLM") or DEFAULT_BACKEND).strip())

    @property
    def label(self) -> str:
        return f"{self.spec} @ {self.base_url}" if self.base_url else self.spec

    def build(self) -> ChatBackend:
        """A backend for one session (the embedded model is shared); raises :class:`BackendError`."""
        kind, _, option = self.spec.partition(":")
        if kind == "embedded":
            return _shared(self.spec, lambda: get_backend(self.spec))
        if kind == "openai":
            from physagent.agent.backends.openai_compat import OpenAICompatibleBackend

            env = dict(os.environ)  # never mutate os.environ: other sessions run concurrently
            env.update({k: v for k, v in zip(_OPENAI_VARS, (self.base_url.strip(), option.strip()), strict=True) if v})
            return OpenAICompatibleBackend.from_env(env)
        if self.base_url:
            raise BackendError(f"backend {self.spec!r}: an endpoint URL only applies to 'openai'.")
        return get_backend(self.spec)


def _shared(key: str, build: Callable[[], ChatBackend]) -> ChatBackend:
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = _Serialised(build())
        return _SHARED[key]


# sessions -----------------------------------------------------------------------------------------

@dataclass
class Session:
    """One user's workspace and conversation (the assistant keeps chat memory between requests)."""

    id: str
    workspace: Workspace
    lock: threading.Lock = field(default_factory=threading.Lock)
    assistant: Assistant | None = None
    backend_label: str = ""

    @property
    def root(self) -> Path:
        return self.workspace.root

    def __post_init__(self) -> None:
        self._notes: list[str] = []  # remembered before the assistant existed

    def assistant_for(self, choice: BackendChoice, max_steps: int = 10, mode: str | None = None) -> Assistant:
        """The session's assistant, switched to ``choice`` if another backend was used before.

        Raises:
            BackendError: the backend cannot be built (unknown spec, endpoint not configured).
        """
        if self.assistant is None:
            self.assistant = Assistant(backend=choice.build(), workspace=self.workspace, max_steps=max_steps)
            for note in self._notes:
                self.remember(note)
            self._notes.clear()
        elif self.backend_label != choice.label:
            self.assistant.backend = choice.build()
        self.assistant.max_steps = max_steps
        self.assistant.mode = checked_mode(mode or default_mode(self.assistant.backend))
        self.backend_label = choice.label
        return self.assistant

    def remember(self, note: str) -> None:
        """Tell later requests of the conversation about something done outside it (an upload)."""
        if self.assistant is None:
            self._notes.append(note)
            return
        self.assistant.history += [{"role": "user", "content": note}, {"role": "assistant", "content": "Noted."}]


class SessionStore:
    """Sessions under ``<home>/sessions/``; ids are random and checked before any path is built.

    A session's tools read host files only from its uploads and ``PHYSAGENT_DATA_DIRS``, never the
    server's current directory: a client must not read whatever the server process can.

    In memory, the store keeps at most ``max_sessions`` sessions and none idle for more than ``idle_s``
    seconds; an evicted session stays on disk and reopens by its id (its files and provenance intact,
    its chat memory fresh). A session in use (a request running in it) is never evicted.
    """

    def __init__(self, home: Path | str, *, idle_s: float = DEFAULT_SESSION_IDLE_S,
                 max_sessions: int = DEFAULT_MAX_SESSIONS) -> None:
        self.home = Path(home).expanduser().resolve()
        self.directory = self.home / "sessions"
        self.idle_s, self.max_sessions = idle_s, max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()  # least recently used first
        self._used: dict[str, float] = {}
        self._in_use: Counter[str] = Counter()
        self._lock = threading.Lock()

    def create(self) -> Session:
        """A new, empty session with its own workspace directory."""
        session_id = secrets.token_hex(8)
        root = self.directory / session_id
        root.mkdir(parents=True)
        # the marker keeps the directory (a failed first call removes an *empty* workspace root)
        (root / _SESSION_FILE).write_text(json.dumps({"id": session_id, "created": time.time()}) + "\n")
        with self._lock:
            return self._keep(Session(session_id, Workspace(root, file_access=SERVER_ACCESS)))

    def get(self, session_id: str) -> Session:
        """The session with this id (also one created before a restart or evicted from memory).

        Raises:
            SessionNotFoundError: malformed id or no such session.
        """
        if not isinstance(session_id, str) or not re.fullmatch(SESSION_ID_PATTERN, session_id):
            raise SessionNotFoundError(f"{session_id!r} is not a session id (16 hex digits, e.g. '3f2a9c1b7d0e4a5b').")
        with self._lock:
            if session_id in self._sessions:
                return self._keep(self._sessions[session_id])
            root = self.directory / session_id
            if not (root / _SESSION_FILE).is_file():
                raise SessionNotFoundError(f"no session {session_id!r}; create one with POST /sessions.")
            return self._keep(Session(session_id, Workspace(root, file_access=SERVER_ACCESS)))

    @contextmanager
    def using(self, session: Session | None) -> Iterator[Session]:
        """Run a request in ``session``, or with None in a new session that is kept only if the block succeeds.

        A failed first call (invalid input, a tool error) leaves no directory and no session behind.
        While the block runs, the session is not evicted.
        """
        created = session is None
        session = self.create() if session is None else session
        with self._lock:
            self._keep(session)
            self._in_use[session.id] += 1
        try:
            yield session
        except BaseException:
            if created:
                self.discard(session.id)
            raise
        finally:
            with self._lock:
                self._in_use[session.id] -= 1
                if self._in_use[session.id] <= 0:
                    del self._in_use[session.id]

    def discard(self, session_id: str) -> None:
        """Forget a session and delete its directory (for a new session whose first request failed)."""
        with self._lock:
            self._sessions.pop(session_id, None)
            self._used.pop(session_id, None)
        if re.fullmatch(SESSION_ID_PATTERN, session_id):
            shutil.rmtree(self.directory / session_id, ignore_errors=True)

    def _keep(self, session: Session) -> Session:
        """Mark ``session`` most recently used (adding it if evicted meanwhile), then evict; hold the lock."""
        now = time.monotonic()
        self._sessions.setdefault(session.id, session)
        self._sessions.move_to_end(session.id)
        self._used[session.id] = now
        for session_id in list(self._sessions)[:-1]:  # least recently used first; never the one just used
            if len(self._sessions) <= self.max_sessions and now - self._used[session_id] < self.idle_s:
                break
            if self._in_use[session_id] or self._sessions[session_id].lock.locked():  # a request is running
                continue
            del self._sessions[session_id], self._used[session_id]
        return self._sessions[session.id]

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: object) -> bool:
        """Whether the session is in memory now (an evicted one is still on disk)."""
        return session_id in self._sessions


# the streamed agent run ---------------------------------------------------------------------------

StreamItem = AgentEvent | ProgressUpdate | AgentRecord


@dataclass(frozen=True)
class StreamFailure:
    """The agent run raised (a bug, or a scripted model that ran out): the consumer re-raises it."""

    error: BaseException


_DONE = object()


def stream_request(session: Session, choice: BackendChoice, request: str, max_steps: int = 10,
                   progress_interval_s: float = 0.25, mode: str | None = None) -> Iterator[StreamItem]:
    """Run ``request`` in a worker thread; yield its events and (throttled) tool progress as they happen,
    then its :class:`AgentRecord` (what ``physagent ask --json`` prints).

    The session's lock is taken now (not at the first ``next``) and held until the run ends, even if
    nobody reads the events.

    Raises:
        SessionBusyError: the session is already running a request.
        BackendError: the backend cannot be built.
        Exception: whatever the agent loop raised (after the events before it were yielded).
    """
    if not session.lock.acquire(blocking=False):
        raise SessionBusyError(f"session {session.id} is still answering a request; wait for it to finish.")
    try:
        assistant = session.assistant_for(choice, max_steps, mode)
    except BaseException:
        session.lock.release()
        raise
    items: queue.Queue[Any] = queue.Queue()
    assistant.progress = ThrottledProgress(items.put, progress_interval_s)
    threading.Thread(target=_work, args=(session, assistant, request, items), daemon=True,
                     name=f"agent-{session.id}").start()
    return _drain(items)


def _drain(items: queue.Queue[Any]) -> Iterator[StreamItem]:
    while (item := items.get()) is not _DONE:
        if isinstance(item, StreamFailure):
            raise item.error
        yield item


def _work(session: Session, assistant: Assistant, request: str, items: queue.Queue[Any]) -> None:
    try:
        for event in assistant.stream(request):
            items.put(event)
        items.put(assistant.records[-1])
    except BaseException as exc:  # handed to the consumer thread, which re-raises it
        items.put(StreamFailure(exc))
    finally:
        assistant.progress = None
        session.lock.release()
        items.put(_DONE)


class ThrottledProgress:
    """A progress sink forwarding at most one update per task every ``interval_s`` (first and last always)."""

    def __init__(self, sink: Any, interval_s: float) -> None:
        self.sink, self.interval_s = sink, interval_s
        self._last: dict[str, float] = {}

    def __call__(self, update: ProgressUpdate) -> None:
        now = time.monotonic()
        last = self._last.get(update.task)
        if update.finished or last is None or now - last >= self.interval_s:
            self._last[update.task] = now
            self.sink(update)


def event_payload(item: StreamItem) -> dict[str, Any]:
    """One JSON object with a ``type``: an agent event as recorded, ``progress``, or the final ``record``."""
    if isinstance(item, ProgressUpdate):
        return {"type": "progress", "tool": item.tool, "task": item.task, "completed": item.completed,
                "total": item.total, "unit": item.unit, "finished": item.finished}
    if isinstance(item, AgentRecord):
        return item.model_dump(mode="json") | {"type": "record"}
    return item.model_dump(mode="json")


# uploads ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UploadResult:
    """An uploaded file: where it was saved and what it became (an artifact, a knowledge-base document)."""

    name: str
    path: Path
    size_bytes: int
    artifact: Artifact | None = None
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        artifact = self.artifact.model_dump(mode="json") if self.artifact else None
        return {"name": self.name, "path": str(self.path), "size_bytes": self.size_bytes, "artifact": artifact,
                "message": self.message}


def safe_filename(name: str) -> str:
    """The last path component of ``name`` with only ``[A-Za-z0-9._-]`` (never '', '.', '..' or hidden)."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", Path(str(name).replace("\\", "/")).name).lstrip(".")
    return base[-120:] or "upload"


def save_upload(session: Session, filename: str, chunks: Iterable[bytes], max_bytes: int) -> Path:
    """Write an upload atomically to ``<session>/uploads/<safe name>`` (never overwriting an earlier one).

    Raises:
        UploadTooLargeError: more than ``max_bytes`` arrived (the partial file is removed).
        ValueError: the file type is not one the session can use.
    """
    name = safe_filename(filename)
    if Path(name).suffix.lower() not in UPLOAD_SUFFIXES:
        raise ValueError(f"cannot use {filename!r}: upload one of {', '.join(sorted(UPLOAD_SUFFIXES))}.")
    directory = session.root / "uploads"
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f".{uuid.uuid4().hex}.partial"
    size = 0
    try:
        with partial.open("wb") as handle:
            for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLargeError(
                        f"{filename!r} is larger than the upload limit of {max_bytes / 1e6:g} MB.")
                handle.write(chunk)
        target = _free_name(directory, name)
        partial.rename(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _free_name(directory: Path, name: str) -> Path:
    stem, suffix = Path(name).stem, Path(name).suffix
    candidate, n = directory / name, 1
    while candidate.exists():
        candidate, n = directory / f"{stem}-{n}{suffix}", n + 1
    return candidate


def import_upload(session: Session, path: Path) -> UploadResult:
    """Turn a saved upload into something the tools can use, and note it in the conversation.

    Data files become artifacts through ``read_root`` / ``read_table`` (recorded in provenance);
    a file those tools refuse (e.g. a ROOT file with several trees) stays in ``uploads/`` and the
    message says why. Documents go to the knowledge base (see :func:`_add_to_knowledge_base`).
    """
    size = path.stat().st_size
    tool = _DATA_SUFFIXES.get(path.suffix.lower())
    if tool is None:
        result = UploadResult(path.name, path, size, message=_add_to_knowledge_base(session, path))
    else:
        try:
            outcome = call_tool(tool, {"path": str(path)}, workspace=session.workspace)
        except ToolError as exc:
            result = UploadResult(path.name, path, size, message=f"saved; {tool} could not import it: {exc}")
        else:
            artifact = outcome.artifacts[0]
            result = UploadResult(path.name, path, size, artifact,
                                  f"imported as {artifact.id} ({artifact.kind}): {artifact.summary}")
    session.remember(f"I uploaded the file {path.name}; it is saved at {path}. {result.message}")
    return result


def _add_to_knowledge_base(session: Session, path: Path) -> str:
    """Ingest an uploaded document into the session's knowledge base (``<session>/knowledge``).

    The session's workspace root is the knowledge base's home, as for the ``search_knowledge`` tool,
    so a user's documents are searchable in their session and invisible to others.
    """
    from physagent.knowledge import KnowledgeBase

    report = KnowledgeBase.open(session.root).ingest([path])
    if report.skipped:
        return "saved, but not added to the knowledge base: " + "; ".join(why for _, why in report.skipped)
    return (f"added to the knowledge base ({report.chunks_written} passages); the agent can now search it "
            "with search_knowledge.")


# provenance and export ----------------------------------------------------------------------------

def provenance(session: Session) -> dict[str, Any]:
    """The session's artifacts (each with the call that made it), its tool calls and its conversations."""
    workspace = session.workspace
    calls = workspace.calls()
    producer = {output: call.id for call in calls if call.cached_from is None for output in call.outputs}
    artifacts = [a.model_dump(mode="json") | {"call": producer.get(a.id)} for a in workspace.list_artifacts()]
    return {
        "session": session.id,
        "artifacts": artifacts,
        "calls": [call.__dict__ for call in calls],
        "conversations": workspace.sessions(),
    }


def write_export(session: Session) -> Path:
    """Write ``<session>/exports/reproduce.py``: a plain script reproducing every artifact of the session.

    Raises:
        KeyError: the session has no artifacts yet.
    """
    if not session.workspace.list_artifacts():
        raise KeyError(f"session {session.id} has no artifacts yet: run a tool or ask the agent first.")
    target = session.root / "exports" / "reproduce.py"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".py.partial")
    partial.write_text(export_script(session.workspace))
    partial.replace(target)
    return target
