r"""The chat web UI (gradio): the agent's steps as they happen, plots inline, uploads, downloads, tools.

``physagent ui`` serves :func:`create_ui` at http://127.0.0.1:7860. Each browser tab is a session
with its own workspace (``<home>/sessions/<id>/``, see :mod:`app._session`); two users never see each
other's artifacts.

- **Chat**: each tool call appears as a collapsible step (arguments, result, artifacts) that shows the
  tool's live progress while it runs; plots appear inline, tables as a preview, then the answer.
- **Session** panel: upload ROOT/Parquet/CSV/HDF5 files (they become artifacts) or PDF/Markdown
  documents; the session's artifacts with the call that made each; download any artifact file;
  export the session as a Python script that reproduces its artifacts without the agent.
- **Tools** tab: every registered tool with a form generated from its JSON schema; runs it directly,
  without the model.
- **Model backend**: the embedded model, or an OpenAI-compatible endpoint (URL and model name).
"""

from __future__ import annotations

import functools
import hmac
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry, no version check over the network

import gradio as gr

from physagent.agent.backends import BackendError
from physagent.app._security import check_bind
from physagent.app._session import (
    UPLOAD_SUFFIXES,
    BackendChoice,
    Session,
    SessionBusyError,
    SessionStore,
    StreamItem,
    import_upload,
    provenance,
    save_upload,
    stream_request,
    write_export,
)
from physagent.tools import ProgressUpdate, ToolError, call_tool, default_home, registry

__all__ = ["LATEX_DELIMITERS", "create_ui", "launch_ui"]

DEFAULT_MAX_UPLOAD_MB = 200
_PREVIEW_ROWS, _PREVIEW_COLUMNS, _RESULT_CHARS = 8, 8, 600
_FORM_COLUMNS = 3
_CSS = "#chat .message { max-width: 100%; }"
# answers and passages write physics as LaTeX: KaTeX renders $…$ inline and $$…$$ displayed ($$ first)
LATEX_DELIMITERS = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
_PASSAGE_CHARS = 400


@dataclass
class _Tab:
    """One browser tab: its session and the conversation as shown."""

    session: Session
    messages: list[gr.ChatMessage] = field(default_factory=list)


class _Tabs:
    """Browser tab (gradio's ``session_hash``) → its own session, created on first use."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store
        self._tabs: dict[str, _Tab] = {}
        self._lock = threading.Lock()

    def get(self, request: gr.Request) -> _Tab:
        key = request.session_hash
        if not key:  # never let callers without a browser session share one workspace
            raise gr.Error("this request carries no session; open the UI in a browser.")
        with self._lock:
            if key not in self._tabs:
                self._tabs[key] = _Tab(self.store.create())
            return self._tabs[key]

    def forget(self, request: gr.Request) -> None:
        """The tab closed: drop it from memory (its workspace stays on disk)."""
        with self._lock:
            self._tabs.pop(request.session_hash or "", None)


def create_ui(home: Path | str | None = None, *, backend: str | None = None,
              max_steps: int = 10) -> gr.Blocks:
    """The gradio app over sessions in ``home``/sessions; ``backend`` is the default model spec."""
    _settle_matplotlib()
    tabs = _Tabs(SessionStore(home or default_home()))
    default = BackendChoice.default(backend)
    with gr.Blocks(title="physagent") as demo:
        gr.Markdown("## physagent\nAsk for simulations, jets, histograms and plots; every step is a typed, "
                    "reproducible tool call.")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat-tab"):
                panel = _chat_tab(tabs, default, max_steps)
            with gr.Tab("Tools", id="tools-tab", elem_id="tools-tab"):
                _tools_tab(tabs, panel)
        demo.unload(tabs.forget)
    return demo


def _settle_matplotlib() -> None:
    """Fix the Agg backend and import pyplot before serving.

    gradio calls ``matplotlib.use()`` around every event: a real backend switch closes every open figure
    (a plot tool drawing in another session's thread), and a first ``import matplotlib.pyplot`` in a
    tool's thread races it ("partially initialized module 'matplotlib.pyplot'"). With Agg already set
    and pyplot imported, those calls do nothing.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot


# chat ----------------------------------------------------------------------------------------------

@dataclass
class _Panel:
    """The session panel's components, refreshed after anything that can create artifacts."""

    artifacts: gr.Dataframe
    files: gr.Dropdown

    @property
    def outputs(self) -> list[Any]:
        return [self.artifacts, self.files]


def _chat_tab(tabs: _Tabs, default: BackendChoice, max_steps: int) -> _Panel:
    with gr.Row():
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(elem_id="chat", height=620, label="Conversation", buttons=["copy_all"],
                                 latex_delimiters=LATEX_DELIMITERS,
                                 placeholder="Try: *Generate 500 Drell-Yan events and plot the dimuon mass*")
            with gr.Row():
                box = gr.Textbox(elem_id="request", show_label=False, scale=6, autofocus=True,
                                 placeholder="What do you want to compute? (Enter sends)")
                send = gr.Button("Send", variant="primary", elem_id="send", scale=1)
            with gr.Accordion("Model backend", open=False):
                choices = list(dict.fromkeys([default.spec, "embedded:1.5b", "embedded:0.5b", "openai"]))
                spec = gr.Dropdown(choices, value=default.spec, label="Backend", elem_id="backend",
                                   info="embedded: offline, in-process; openai: any OpenAI-compatible endpoint.")
                url = gr.Textbox(label="Endpoint URL (openai)", placeholder="http://localhost:8000/v1",
                                 elem_id="backend-url")
                model = gr.Textbox(label="Model name (openai)", placeholder="e.g. Qwen/Qwen2.5-7B-Instruct",
                                   elem_id="backend-model")
        with gr.Column(scale=2):
            panel = _session_column(tabs)
    ask = _asker(tabs, max_steps)
    chatbot.clear(_forgetter(tabs))
    for trigger in (box.submit, send.click):
        trigger(ask, [box, spec, url, model], [chatbot, box], concurrency_limit=4).then(
            _refresher(tabs), None, panel.outputs)
    return panel


def _session_column(tabs: _Tabs) -> _Panel:
    gr.Markdown("### Session")
    upload = gr.File(label="Upload data (ROOT, Parquet, CSV, HDF5) or documents (PDF, Markdown)",
                     file_count="multiple", file_types=sorted(UPLOAD_SUFFIXES), elem_id="upload", height=110)
    status = gr.Markdown(elem_id="upload-status")
    artifacts = gr.Dataframe(headers=["artifact", "kind", "summary", "made by"], label="Artifacts",
                             interactive=False, wrap=True, elem_id="artifacts", max_height=260)
    files = gr.Dropdown([], label="Artifact file", elem_id="artifact-file", interactive=True,
                        info="Pick a file to download it and see how it was made.")
    download = gr.DownloadButton("Download", elem_id="download", interactive=False)
    made = gr.JSON(label="Provenance", elem_id="provenance", open=False)
    export = gr.Button("Export as script", elem_id="export")
    script = gr.File(label="Reproduction script", elem_id="export-file", interactive=False)
    panel = _Panel(artifacts, files)
    upload.upload(_uploader(tabs), upload, [status, *panel.outputs])
    files.change(_selector(tabs), files, [download, made])
    export.click(_exporter(tabs), None, script)
    return panel


def _asker(tabs: _Tabs, max_steps: int) -> Any:
    def ask(message: str, spec: str, url: str, model: str, request: gr.Request
            ) -> Iterator[tuple[list[gr.ChatMessage], str]]:
        """Stream one agent request into the conversation."""
        tab = tabs.get(request)
        if not message.strip():
            yield tab.messages, ""
            return
        tab.messages.append(gr.ChatMessage(role="user", content=message))
        yield tab.messages, ""
        view = _ChatView(tab.messages)
        try:
            for item in stream_request(tab.session, _choice(spec, url, model), message, max_steps):
                if view.add(item):
                    yield tab.messages, ""
        except (SessionBusyError, BackendError, ToolError) as exc:
            tab.messages.append(gr.ChatMessage(content=f"⚠️ {exc}"))
        yield tab.messages, ""

    return ask


def _forgetter(tabs: _Tabs) -> Any:
    def clear(request: gr.Request) -> None:
        """The conversation was cleared: start its memory afresh (the artifacts stay in the session)."""
        tab = tabs.get(request)
        tab.messages.clear()
        if tab.session.assistant is not None and not tab.session.lock.locked():
            tab.session.assistant.history.clear()

    return clear


def _choice(spec: str, url: str, model: str) -> BackendChoice:
    if (spec or "").startswith("openai"):
        name = model.strip() or spec.partition(":")[2]
        return BackendChoice(f"openai:{name}" if name else "openai", url.strip())
    return BackendChoice(spec)


class _ChatView:
    """Turns agent events into chat messages: a collapsible step per tool call, images, tables, the answer."""

    def __init__(self, messages: list[gr.ChatMessage]) -> None:
        self.messages = messages
        self.step: gr.ChatMessage | None = None
        self.started = 0.0

    def add(self, item: StreamItem) -> bool:
        """Update the messages for one item; True when something visible changed."""
        if isinstance(item, ProgressUpdate):
            return self._progress(item)
        kind = getattr(item, "type", "")
        handler = getattr(self, f"_on_{kind}", None)
        return bool(handler(item)) if handler else False

    def _on_tool_call(self, event: Any) -> bool:
        arguments = json.dumps(event.arguments, indent=1)
        self.step = gr.ChatMessage(content=f"**arguments**\n```json\n{arguments}\n```",
                                   metadata={"title": f"Tool: {event.tool}", "status": "pending"})
        self.started = time.monotonic()
        self.messages.append(self.step)
        return True

    def _progress(self, update: ProgressUpdate) -> bool:
        if self.step is None:
            return False
        total = f"/{update.total:g}" if update.total else ""
        self.step.metadata["log"] = f"{update.task}: {update.completed:g}{total} {update.unit}".rstrip()
        return True

    def _on_tool_result(self, event: Any) -> bool:
        if self.step is None:
            return False
        values = "\n\n".join(filter(None, [_values_table(event.result or {}), _passages(event.result or {})]))
        values = values if event.ok else ""
        text = event.summary if len(event.summary) <= _RESULT_CHARS else event.summary[:_RESULT_CHARS] + "…"
        shown = f"**result** ✓\n\n{values}" if values else f"**result** {'✓' if event.ok else '✗'} {text}"
        self.step.content = f"{self.step.content}\n\n{shown}"
        self.step.metadata["status"] = "done"
        self.step.metadata["duration"] = round(time.monotonic() - self.started, 2)
        self.step.metadata["log"] = "cached" if event.cached else ("" if event.ok else "failed")
        return True

    def _on_artifact(self, event: Any) -> bool:
        path = Path(event.path)
        if path.suffix == ".png":
            self.messages.append(gr.ChatMessage(content=gr.Image(str(path), label=event.id)))
        elif event.kind == "table" and path.suffix == ".parquet":
            self.messages.append(gr.ChatMessage(content=f"`{event.id}` {event.summary}\n\n{_table_preview(path)}"))
        elif self.step is not None:
            self.step.content = f"{self.step.content}\n\nartifact `{event.id}` ({event.kind}) {event.summary}"
        return True

    def _on_error(self, event: Any) -> bool:
        self.messages.append(gr.ChatMessage(content=event.message, metadata={"title": "Stopped"}))
        return True

    def _on_answer(self, event: Any) -> bool:
        self.messages.append(gr.ChatMessage(content=event.text))
        return True


def _values_table(result: dict[str, Any]) -> str:
    """The inline scalar values of a tool result as a Markdown table (artifacts and long lists left out)."""
    rows = [(k, v) for k, v in result.items() if isinstance(v, int | float | str | bool) and len(str(v)) < 80]
    if not rows:
        return ""
    body = "\n".join(f"| {k} | {f'{v:.6g}' if isinstance(v, float) else v} |" for k, v in rows)
    return f"| result | value |\n|---|---|\n{body}"


def _passages(result: dict[str, Any]) -> str:
    """Retrieved passages as quotes under their citations, LaTeX verbatim (the chat renders it)."""
    hits = result.get("hits")
    if not isinstance(hits, list):
        return ""
    quotes = []
    for hit in hits:
        text = " ".join(str(hit.get("text", "")).split())
        text = text if len(text) <= _PASSAGE_CHARS else text[:_PASSAGE_CHARS].rsplit(" ", 1)[0] + " …"
        quotes.append(f"{hit.get('citation', '')}\n> {text}")
    return "\n\n".join(quotes)


def _table_preview(path: Path) -> str:
    """The first rows and columns of a Parquet table as Markdown."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    table = parquet.read_row_group(0) if parquet.num_row_groups else parquet.read()
    n_rows = parquet.metadata.num_rows
    columns = table.column_names[:_PREVIEW_COLUMNS]
    rows = table.select(columns).slice(0, _PREVIEW_ROWS).to_pylist()

    def cell(value: Any) -> str:
        text = f"{value:.5g}" if isinstance(value, float) else str(value)
        return (text[:30] + "…" if len(text) > 30 else text).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
    more = f"\n\n*first {len(rows)} of {n_rows:,} rows*" if n_rows > len(rows) else ""
    return "\n".join(lines) + more


# session panel -------------------------------------------------------------------------------------

def _panel_values(tab: _Tab) -> tuple[list[list[str]], Any]:
    """Artifact rows (id, kind, summary, the call that made it) and the downloadable files."""
    made = provenance(tab.session)
    calls = {c["id"]: c["tool"] for c in made["calls"]}
    rows = [[a["id"], a["kind"], a["summary"], f"{calls.get(a['call'], 'upload')} ({a['call']})"]
            for a in made["artifacts"]]
    files = [f"{a['id']}/{name}" for a in made["artifacts"] for name in a["files"]]
    return rows, gr.Dropdown(choices=files, value=None)


def _refresher(tabs: _Tabs) -> Any:
    def refresh(request: gr.Request) -> tuple[list[list[str]], Any]:
        return _panel_values(tabs.get(request))

    return refresh


def _uploader(tabs: _Tabs) -> Any:
    def upload(paths: list[str] | None, request: gr.Request) -> tuple[str, list[list[str]], Any]:
        """Save each file into the session and import data files as artifacts."""
        tab = tabs.get(request)
        lines = []
        for temp in paths or []:
            name = Path(temp).name
            try:
                with Path(temp).open("rb") as handle:
                    chunks = iter(functools.partial(handle.read, 1 << 20), b"")
                    saved = save_upload(tab.session, name, chunks, max_bytes=2**62)  # gradio enforced max_file_size
            except ValueError as exc:
                lines.append(f"✗ {exc}")
                continue
            lines.append(f"✓ **{saved.name}**: {import_upload(tab.session, saved).message}")
        return "\n\n".join(lines), *_panel_values(tab)

    return upload


def _selector(tabs: _Tabs) -> Any:
    def select(choice: str | None, request: gr.Request) -> tuple[Any, dict[str, Any] | None]:
        """Offer the chosen artifact file for download and show the call that made it."""
        tab = tabs.get(request)
        artifact_id, _, name = (choice or "").partition("/")
        artifact = tab.session.workspace.get_artifact(artifact_id) if artifact_id else None
        if artifact is None or name not in artifact.files:
            return gr.DownloadButton(value=None, interactive=False), None
        made = provenance(tab.session)
        call = next((c for c in made["calls"] if c["id"] == _producer(made, artifact_id)), None)
        return (gr.DownloadButton(f"Download {name}", value=str(artifact.directory / name), interactive=True),
                {"artifact": artifact.model_dump(mode="json"), "made by": call})

    return select


def _producer(made: dict[str, Any], artifact_id: str) -> str | None:
    return next((a["call"] for a in made["artifacts"] if a["id"] == artifact_id), None)


def _exporter(tabs: _Tabs) -> Any:
    def export(request: gr.Request) -> str | None:
        """Write the session's reproduction script and offer it for download."""
        try:
            return str(write_export(tabs.get(request).session))
        except KeyError as exc:
            gr.Warning(str(exc.args[0]))
            return None

    return export


# tools tab -----------------------------------------------------------------------------------------

def _tools_tab(tabs: _Tabs, panel: _Panel) -> None:
    gr.Markdown("Run any tool directly, without the model. Results land in this tab's session.")
    pick = gr.Dropdown(registry.names(), value="generate_events" if "generate_events" in registry else None,
                       label="Tool", elem_id="tool-pick")

    @gr.render(inputs=pick)
    def form(name: str | None) -> None:
        if not name:
            return
        spec = registry.get(name)
        gr.Markdown(f"**{spec.name}** ({spec.category}, v{spec.version})\n\n{spec.description}")
        schema = spec.parameters_schema()
        required = set(schema.get("required", []))
        properties = list(schema.get("properties", {}).items())
        fields: dict[str, _Field] = {}
        for start in range(0, len(properties), _FORM_COLUMNS):
            with gr.Row(equal_height=True):
                for pname, prop in properties[start:start + _FORM_COLUMNS]:
                    fields[pname] = _field(pname, prop, pname in required, schema.get("$defs", {}))
        run = gr.Button(f"Run {name}", variant="primary", elem_id="run-tool")
        run.click(_runner(tabs, name, fields), {f.component for f in fields.values()},
                  [status, result, images, *panel.outputs])

    status = gr.Markdown(elem_id="tool-status")
    with gr.Row():
        result = gr.JSON(label="Result", elem_id="tool-result", scale=1)
        images = gr.Gallery(label="Plots", elem_id="tool-plots", height=360, columns=1, interactive=False, scale=1)


def _resolved(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` and unwrap ``anyOf: [X, null]`` (an optional parameter) to X."""
    if "$ref" in prop:
        prop = {**defs.get(prop["$ref"].rsplit("/", 1)[-1], {}), **{k: v for k, v in prop.items() if k != "$ref"}}
    options = [p for p in prop.get("anyOf", []) if p.get("type") != "null"]
    if len(options) == 1:
        prop = {**_resolved(options[0], defs), **{k: v for k, v in prop.items() if k != "anyOf"}}
    return prop


@dataclass(frozen=True)
class _Field:
    """A form component and how its value becomes an argument (None: leave the argument out)."""

    component: Any
    convert: Any


def _field(name: str, prop: dict[str, Any], required: bool, defs: dict[str, Any]) -> _Field:
    """A form component for one parameter, chosen from its JSON schema."""
    prop = _resolved(prop, defs)
    label, info, default = name + (" (required)" if required else ""), prop.get("description"), prop.get("default")
    common: dict[str, Any] = {"label": label, "info": info, "elem_id": f"tool-field-{name}", "interactive": True}
    kind = prop.get("type")
    if "enum" in prop:
        value = default if default in prop["enum"] else None
        return _Field(gr.Dropdown(prop["enum"], value=value, **common), _given)
    if kind == "boolean":
        return _Field(gr.Checkbox(value=bool(default), **common), _given)
    if kind in {"integer", "number"} and default is not None:
        precision = 0 if kind == "integer" else None
        return _Field(gr.Number(value=default, precision=precision, **common), int if kind == "integer" else _given)
    if kind in {"integer", "number"}:  # a gr.Number cannot be empty: None would show (and send) 0
        return _Field(gr.Textbox(placeholder="empty: not set", **common), _number)
    if kind == "string":
        return _Field(gr.Textbox(value=default or "", **common), _given)
    shown = "" if default is None else json.dumps(default)
    placeholder = 'JSON, e.g. ["hist-3f2a9c1b7d"] (comma-separated ids work too)'
    return _Field(gr.Textbox(value=shown, placeholder=placeholder, **common), _json_or_list)


def _given(value: Any) -> Any:
    return None if value == "" else value


def _number(text: str) -> Any:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text  # the tool's validation names the parameter and what it needs


def _json_or_list(text: str) -> Any:
    if not (text or "").strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return [part.strip() for part in text.split(",") if part.strip()]


def _form_arguments(fields: dict[str, _Field], values: dict[Any, Any]) -> dict[str, Any]:
    """Form values → tool arguments: empty fields are left out (the tool's default applies)."""
    arguments = {name: field.convert(values[field.component]) for name, field in fields.items()
                 if values[field.component] is not None}
    return {name: value for name, value in arguments.items() if value is not None}


def _runner(tabs: _Tabs, name: str, fields: dict[str, _Field]) -> Any:
    def run(values: dict[Any, Any], request: gr.Request, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008
        """Call the tool with the form's arguments in the tab's session, showing its progress."""
        tab = tabs.get(request)

        def sink(update: ProgressUpdate) -> None:
            done = (int(update.completed), int(update.total)) if update.total else None
            progress(done, desc=update.task, unit=update.unit)

        try:
            outcome = call_tool(name, _form_arguments(fields, values), workspace=tab.session.workspace,
                                progress=sink)
        except ToolError as exc:
            return f"✗ {exc}", None, [], *_panel_values(tab)
        plots = [str(a.path) for a in outcome.artifacts if a.path.suffix == ".png"]
        note = " (cached result)" if outcome.cached else f" in {outcome.wall_s:.1f} s"
        made = ", ".join(f"`{a.id}`" for a in outcome.artifacts)
        return (f"✓ **{name}** finished{note}" + (f" — {made}" if made else ""), outcome.to_json(), plots,
                *_panel_values(tab))

    return run


# launching -----------------------------------------------------------------------------------------

def launch_ui(home: Path | str | None = None, *, host: str = "127.0.0.1", port: int = 7860,
              token: str | None = None, backend: str | None = None, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
              block: bool = True) -> gr.Blocks:
    """Serve the UI; beyond loopback a token is required and asked for at login (any user name).

    Raises:
        InsecureBindError: ``host`` is not loopback and ``token`` is empty.
    """
    check_bind(host, token)
    sessions = SessionStore(home or default_home()).directory
    sessions.mkdir(parents=True, exist_ok=True)
    demo = create_ui(home, backend=backend)
    demo.queue(default_concurrency_limit=4)
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=True, ssr_mode=False,
                show_error=True, allowed_paths=[str(sessions)], max_file_size=int(max_upload_mb * 1e6),
                auth=_checker(token) if token else None, css=_CSS, footer_links=[])
    return demo


def _checker(token: str) -> Any:
    def check(username: str, password: str) -> bool:
        return hmac.compare_digest(password.encode(), token.encode())

    return check
