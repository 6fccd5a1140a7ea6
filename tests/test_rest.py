"""The REST API through FastAPI's test client: real tools, a scripted agent over SSE, errors and security."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from physagent.agent import AgentRecord
from physagent.app._security import InsecureBindError, check_bind
from physagent.app._session import SessionStore
from physagent.app.cli import app as cli_app
from physagent.app.rest import SESSION_HEADER, create_app
from physagent.tools import ARTIFACT_ID_PATTERN, file_sha256, registry

DY = {"process": "drell_yan_mumu", "n_events": 50, "mpi": False, "seed": 5}


@pytest.fixture
def script(plot_pipeline_script: Callable[[str], Path]) -> Path:
    """A scripted model: generate → histogram → plot → answer."""
    return plot_pipeline_script("Generated 200 Drell-Yan events and plotted the mass.")


@pytest.fixture
def client(tmp_path: Path, script: Path) -> TestClient:
    return TestClient(create_app(tmp_path / "home", backend=f"scripted:{script}"))


def _generate(client: TestClient, session: str | None = None, **overrides: Any) -> dict[str, Any]:
    headers = {SESSION_HEADER: session} if session else {}
    response = client.post("/tools/generate_events", json=DY | overrides, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def _sse(lines: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """(event type, JSON data) pairs from a Server-Sent Events body."""
    events, kind = [], None
    for line in lines:
        if line.startswith("event:"):
            kind = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            events.append((kind or "message", json.loads(line.removeprefix("data:").strip())))
    return events


def _declared(client: TestClient, path: str, method: str, status: int, media: str = "application/json"
              ) -> jsonschema.Draft202012Validator:
    """A validator for the body a route declares in /openapi.json for ``status`` (refs resolve in the document)."""
    document = client.get("/openapi.json").json()
    schema = document["paths"][path][method]["responses"][str(status)]["content"][media]["schema"]
    return jsonschema.Draft202012Validator(schema | {"components": document["components"]})


def _component(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The component a ``{"$ref": "#/components/schemas/<name>"}`` points to."""
    return document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]


def test_tools_are_listed_and_described_from_the_registry(client: TestClient) -> None:
    """GET /tools lists every registered tool; GET /tools/{name} gives its parameter schema and an example."""
    listed = client.get("/tools").json()
    assert [t["name"] for t in listed] == [s.name for s in registry]
    described = client.get("/tools/generate_events").json()
    assert described["parameters"] == registry.get("generate_events").parameters_schema()
    assert described["parameters"]["properties"]["n_events"]["minimum"] == 1 and "process" in described["example"]
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/tools/generate_events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("GenerateEventsInput")


def test_a_tool_call_returns_the_typed_result_and_its_artifact_downloads(client: TestClient) -> None:
    """POST /tools/{name} runs the real tool in the client's session; the artifact downloads byte for byte."""
    document = _generate(client)
    session = document["session"]
    result = registry.get("generate_events").result_model.model_validate(document["result"])
    assert result.n_events == 50 and result.sigma_pb > 0  # type: ignore[attr-defined]
    artifact = document["artifacts"][0]
    assert re.fullmatch(ARTIFACT_ID_PATTERN, artifact["id"]) and artifact["kind"] == "events"
    download = client.get(artifact["url"])
    assert download.status_code == 200 and download.headers[SESSION_HEADER] == session
    assert hashlib.sha256(download.content).hexdigest() == file_sha256(Path(artifact["path"]))
    histogram = client.post("/tools/histogram", json={"source": artifact["id"], "field": "m_hat_gev", "bins": 10},
                            headers={SESSION_HEADER: session})
    assert histogram.status_code == 200 and histogram.json()["result"]["entries"] == 50


@pytest.mark.parametrize(("body", "field", "reason"), [
    (DY | {"n_events": -5}, "n_events", "n_events=-5 must be greater than or equal to 1"),
    (DY | {"n_events": "many"}, "n_events", "must be a valid integer"),
    (DY | {"energy": 13}, "energy", "unknown parameter 'energy'. Allowed parameters: process, n_events"),
    ({"n_events": 10}, "process", "parameter 'process' is required"),
])
def test_invalid_arguments_are_422_naming_the_field_and_the_reason(
    client: TestClient, body: dict[str, Any], field: str, reason: str
) -> None:
    """Schema violations come back as 422 with the parameter and the message the CLI would print."""
    response = client.post("/tools/generate_events", json=body)
    assert response.status_code == 422
    problem = response.json()["detail"][0]
    assert problem["field"] == field and reason in problem["msg"], problem


def test_inputs_the_tool_rejects_and_malformed_bodies_are_422_never_500(client: TestClient) -> None:
    """A missing artifact, a non-JSON body and a bad backend choice are all 422 with the field."""
    missing = client.post("/tools/histogram", json={"source": "ev-0123456789", "field": "m_hat_gev"})
    assert missing.status_code == 422
    problem = missing.json()["detail"][0]
    assert problem["field"] == "source" and "is not an artifact" in problem["msg"]
    garbled = client.post("/tools/generate_events", content=b"{not json", headers={"content-type": "application/json"})
    assert garbled.status_code == 422
    backend = client.post("/agent/ask", json={"request": "hi", "backend": "scripted:/etc/passwd"})
    assert backend.status_code == 422 and backend.json()["detail"][0]["field"] == "backend"
    empty = client.post("/agent/ask", json={"request": ""})
    assert empty.status_code == 422 and empty.json()["detail"][0]["field"] == "request"


def test_unknown_tools_sessions_and_artifacts_are_404(client: TestClient) -> None:
    """Unknown names get 404 with a hint, whether described, called or downloaded."""
    assert client.get("/tools/make_coffee").status_code == 404
    unknown = client.post("/tools/make_coffee", json={})
    assert unknown.status_code == 404 and "Known tools: " in unknown.json()["detail"]
    assert client.get("/sessions/0123456789abcdef").status_code == 404
    assert client.get("/sessions/not-a-session").status_code == 404
    session = _generate(client)["session"]
    gone = client.get("/artifacts/ev-0123456789", headers={SESSION_HEADER: session})
    assert gone.status_code == 404 and "no artifact 'ev-0123456789'" in gone.json()["detail"]
    assert client.get("/artifacts/ev-0123456789").status_code == 422  # which session? say so


def test_artifact_ids_and_file_names_cannot_traverse_paths(client: TestClient) -> None:
    """Path-like ids and file names are refused before any path is built; nothing outside artifacts/ leaks."""
    document = _generate(client)
    session, artifact = document["session"], document["artifacts"][0]
    headers = {SESSION_HEADER: session}
    for attempt in ("..%2Fsession.json", "..%2F..%2Fphysagent.sqlite", "%2E%2E", "ev-0123456789%2F..%2F..",
                    "..", "ev-%2e%2e%2f%2e%2e"):
        response = client.get(f"/artifacts/{attempt}", headers=headers)
        assert response.status_code == 404, (attempt, response.status_code)
        assert b"SQLite" not in response.content and b'"created"' not in response.content
    for name in ("../../session.json", "/etc/passwd", "..", "events.parquet/../../../session.json"):
        response = client.get(f"/artifacts/{artifact['id']}", params={"file": name}, headers=headers)
        assert response.status_code == 404 and b'"created"' not in response.content


@pytest.mark.parametrize("name", ["generate_events", "cluster_jets"])
def test_openapi_documents_each_tools_own_result_and_its_errors(client: TestClient, name: str) -> None:
    """Each tool route declares its own 200 schema (the call document around its result model) and its errors."""
    document = client.get("/openapi.json").json()
    responses = document["paths"][f"/tools/{name}"]["post"]["responses"]
    response = _component(document, responses["200"]["content"]["application/json"]["schema"])
    assert response["title"] == "".join(part.title() for part in name.split("_")) + "Response"
    assert set(response["required"]) == {"call_id", "tool", "cached", "wall_s", "result", "artifacts", "session"}
    assert response["properties"]["tool"]["const"] == name
    result = _component(document, response["properties"]["result"])
    assert set(result["properties"]) == set(registry.get(name).result_model.model_fields)
    linked = _component(document, response["properties"]["artifacts"]["items"])
    assert {"id", "kind", "path", "sha256", "summary", "url"} == set(linked["properties"])
    errors = {code: responses[code]["content"]["application/json"]["schema"]["$ref"] for code in responses
              if code != "200"}
    assert errors == {"403": "#/components/schemas/ErrorBody", "404": "#/components/schemas/ErrorBody",
                      "413": "#/components/schemas/ErrorBody", "422": "#/components/schemas/InvalidInput",
                      "500": "#/components/schemas/ErrorBody", "503": "#/components/schemas/ErrorBody"}


def test_openapi_gives_distinct_response_schemas_per_tool(client: TestClient) -> None:
    """generate_events and cluster_jets (and every other tool) have different response components."""
    paths = client.get("/openapi.json").json()["paths"]
    refs = {spec.name: paths[f"/tools/{spec.name}"]["post"]["responses"]["200"]["content"]["application/json"]
            ["schema"]["$ref"] for spec in registry}
    assert len(set(refs.values())) == len(registry)
    assert refs["generate_events"] != refs["cluster_jets"]


def test_real_calls_validate_against_their_declared_response_schemas(client: TestClient) -> None:
    """The JSON of a real generate_events and cluster_jets call conforms to the schema its route declares."""
    events = _generate(client)
    jets = client.post("/tools/cluster_jets", json={"events": events["artifacts"][0]["id"], "pt_min_gev": 5.0},
                       headers={SESSION_HEADER: events["session"]})
    assert jets.status_code == 200, jets.text
    for name, body in (("generate_events", events), ("cluster_jets", jets.json())):
        validator = _declared(client, f"/tools/{name}", "post", 200)
        assert not list(validator.iter_errors(body)), name
        assert body["tool"] == name and body["artifacts"][0]["url"].startswith("/artifacts/")
    wrong = events | {"result": events["result"] | {"n_events": "fifty"}}
    assert not _declared(client, "/tools/generate_events", "post", 200).is_valid(wrong)  # the schema can fail


def test_agent_ask_documents_the_event_stream_and_the_json_record(client: TestClient) -> None:
    """/agent/ask declares text/event-stream (every event type described) and the AgentRecord as JSON."""
    document = client.get("/openapi.json").json()
    ok = document["paths"]["/agent/ask"]["post"]["responses"]["200"]
    assert set(ok["content"]) == {"text/event-stream", "application/json"}
    assert ok["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/AgentRecord"}
    kinds = ok["content"]["text/event-stream"]["itemSchema"]["properties"]["event"]["enum"]
    assert set(kinds) == {"plan", "tool_call", "tool_result", "artifact", "answer", "error", "progress", "record"}
    assert all(f"`{kind}`" in ok["description"] for kind in kinds)
    assert "tool, task, completed, total, unit, finished" in ok["description"]
    assert set(document["components"]["schemas"]["AgentRecord"]["properties"]) == set(AgentRecord.model_fields)


def test_error_bodies_match_the_declared_error_schemas(client: TestClient) -> None:
    """404, 409 and 422 bodies sent by the handlers validate against the schemas their routes declare."""
    session = client.post("/sessions").json()["session"]
    cases = [
        ("/tools/generate_events", "post", 404, client.post("/tools/generate_events", json=DY,
                                                           headers={SESSION_HEADER: "0123456789abcdef"})),
        ("/tools/{name}", "get", 404, client.get("/tools/make_coffee")),
        ("/artifacts/{artifact_id}", "get", 404, client.get("/artifacts/ev-0123456789",
                                                            headers={SESSION_HEADER: session})),
        ("/tools/generate_events", "post", 422, client.post("/tools/generate_events", json=DY | {"n_events": -5})),
        ("/artifacts/{artifact_id}", "get", 422, client.get("/artifacts/ev-0123456789")),
        ("/agent/ask", "post", 422, client.post("/agent/ask", json={"request": ""})),
    ]
    with client.app.state.store.get(session).lock:  # type: ignore[attr-defined]
        cases.append(("/agent/ask", "post", 409, client.post("/agent/ask", json={"request": "hi"},
                                                             headers={SESSION_HEADER: session})))
    for path, method, status, response in cases:
        assert response.status_code == status, (path, response.text)
        assert not list(_declared(client, path, method, status).iter_errors(response.json())), (path, status)
    assert cases[0][3].json()["type"] == "SessionNotFoundError"
    assert not _declared(client, "/tools/generate_events", "post", 422).is_valid({"detail": "just a string"})


@pytest.mark.slow  # the first agent run in a process loads the MiniLM tool selector (10-20 s on 2 busy cores)
def test_agent_request_streams_each_event_over_sse(client: TestClient) -> None:
    """POST /agent/ask streams plan, tool calls with progress, results, artifacts, the answer, then the record."""
    with client.stream("POST", "/agent/ask", json={"request": "Generate 200 Drell-Yan events and plot the mass"}
                       ) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        session = response.headers[SESSION_HEADER]
        events = _sse(list(response.iter_lines()))
    # a fresh home first indexes the bundled books (progress from "knowledge"); then the plan opens the run
    setup = [data for kind, data in events if kind == "progress" and data["tool"] == "knowledge"]
    assert all(data["finished"] or data["completed"] < data["total"] for data in setup)
    events = [(kind, data) for kind, data in events if not (kind == "progress" and data["tool"] == "knowledge")]
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "plan" and kinds[-2:] == ["answer", "record"]
    assert all(data["type"] == kind for kind, data in events)
    calls = [data["tool"] for kind, data in events if kind == "tool_call"]
    assert calls == ["generate_events", "histogram", "plot"]
    progress = [data for kind, data in events if kind == "progress"]
    assert progress and progress[-1]["finished"] and progress[-1]["completed"] == progress[-1]["total"] == 200
    assert kinds.index("progress") < kinds.index("tool_result")  # progress arrives while the tool runs
    record = events[-1][1]
    assert record["answer"] == "Generated 200 Drell-Yan events and plotted the mass." and record["error"] is None
    plot = next(a for a in record["artifacts"] if a["kind"] == "plot")
    png = client.get(f"/artifacts/{plot['id']}", headers={SESSION_HEADER: session})
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG") and png.headers["content-type"] == "image/png"
    made = client.get(f"/sessions/{session}").json()
    assert {a["id"] for a in made["artifacts"]} == {a["id"] for a in record["artifacts"]}
    assert len(made["conversations"]) == 1 and made["conversations"][0]["record"]["turns"][0]["request"]


def test_non_streaming_ask_returns_the_record_ask_json_prints(tmp_path: Path) -> None:
    """With stream=false the response is one AgentRecord: answer, tool calls with status, artifacts, numbers."""
    script = tmp_path / "short.json"
    script.write_text(json.dumps([{"tool": "generate_events", "arguments": DY},
                                  {"answer": "Generated 50 Drell-Yan events."}]))
    client = TestClient(create_app(tmp_path / "home", backend=f"scripted:{script}"))
    response = client.post("/agent/ask", json={"request": "Generate 50 Drell-Yan events", "stream": False})
    assert response.status_code == 200
    assert set(response.json()) == set(AgentRecord.model_fields)
    record = AgentRecord.model_validate(response.json())
    assert [c["tool"] for c in record.tool_calls] == ["generate_events"] and record.tool_calls[0]["ok"]
    assert record.numbers == ["50"] and record.backend == "scripted" and record.artifacts[0]["kind"] == "events"
    assert response.headers[SESSION_HEADER] in record.artifacts[0]["path"]


def test_a_session_answering_a_request_refuses_a_second_one(client: TestClient) -> None:
    """A conversation runs one request at a time: a concurrent request to the same session is 409."""
    session = client.post("/sessions").json()["session"]
    store = client.app.state.store  # type: ignore[attr-defined]
    with store.get(session).lock:
        busy = client.post("/agent/ask", json={"request": "hello"}, headers={SESSION_HEADER: session})
    assert busy.status_code == 409 and "still answering" in busy.json()["detail"]


def test_two_concurrent_sessions_keep_separate_workspaces(client: TestClient, tmp_path: Path) -> None:
    """Two clients calling at the same time each see only their own artifacts, in separate directories."""
    sessions = [client.post("/sessions").json()["session"] for _ in range(2)]
    made: dict[str, str] = {}

    def work(session: str) -> None:
        with TestClient(client.app) as own:
            made[session] = _generate(own, session)["artifacts"][0]["id"]

    threads = [threading.Thread(target=work, args=(s,)) for s in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    first, second = sessions
    for mine, other in ((first, second), (second, first)):
        listed = [a["id"] for a in client.get(f"/sessions/{mine}").json()["artifacts"]]
        assert listed == [made[mine]]
        assert client.get(f"/artifacts/{made[other]}", headers={SESSION_HEADER: mine}).status_code == 404
    assert {p.name for p in (tmp_path / "home" / "sessions").iterdir()} == set(sessions)


def _sessions_on_disk(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "sessions").iterdir()) if (home / "sessions").is_dir() else []


def test_a_body_over_the_limit_is_413_and_the_server_stays_responsive(tmp_path: Path) -> None:
    """A JSON body over the limit is refused by its declared size or while it streams in; nothing is created."""
    home = tmp_path / "home"
    client = TestClient(create_app(home, max_body_mb=0.01))
    big = json.dumps(DY | {"settings": ["Tune:pp = 14"] * 2000}).encode()
    declared = client.post("/tools/generate_events", content=big, headers={"content-type": "application/json"})
    assert declared.status_code == 413 and "limit of 0.01 MB (10000 bytes)" in declared.json()["detail"]
    assert not list(_declared(client, "/tools/generate_events", "post", 413).iter_errors(declared.json()))
    streamed = client.post("/tools/generate_events", content=(big[i:i + 1000] for i in range(0, len(big), 1000)),
                           headers={"content-type": "application/json"})  # chunked: no Content-Length to trust
    assert streamed.status_code == 413 and "PHYSAGENT_MAX_BODY_MB" in streamed.json()["detail"]
    ask = client.post("/agent/ask", json={"request": "x" * 20_000})
    assert ask.status_code == 413
    assert _sessions_on_disk(home) == [] and len(client.app.state.store) == 0  # type: ignore[attr-defined]
    assert client.get("/tools").status_code == 200
    assert _generate(client)["result"]["n_events"] == 50  # a normal call still works


def test_the_body_limit_comes_from_the_environment_when_not_given(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """PHYSAGENT_MAX_BODY_MB sets the limit; a value that is not a positive number is refused by name."""
    monkeypatch.setenv("PHYSAGENT_MAX_BODY_MB", "0.001")
    client = TestClient(create_app(tmp_path / "home"))
    response = client.post("/tools/generate_events", json=DY | {"settings": ["Tune:pp = 14"] * 100})
    assert response.status_code == 413 and "0.001 MB (1000 bytes)" in response.json()["detail"]
    monkeypatch.setenv("PHYSAGENT_MAX_BODY_MB", "lots")
    with pytest.raises(ValueError, match="PHYSAGENT_MAX_BODY_MB='lots' is not a number"):
        create_app(tmp_path / "home")


def test_a_failed_call_without_a_session_leaves_no_session_behind(client: TestClient, tmp_path: Path) -> None:
    """Invalid input, a tool's refusal, a bad upload or a bad backend: no sessions/<id>/ and none in memory."""
    home, store = tmp_path / "home", client.app.state.store  # type: ignore[attr-defined]
    failures = [
        client.post("/tools/generate_events", json=DY | {"n_events": -5}),  # refused by the schema
        client.post("/tools/histogram", json={"source": "ev-0123456789", "field": "m_hat_gev"}),  # by the tool
        client.post("/uploads", files={"file": ("run.sh", b"rm -rf /", "text/plain")}),
        client.post("/agent/ask", json={"request": "hi", "backend": "scripted:/etc/passwd"}),
    ]
    assert [response.status_code for response in failures] == [422] * 4
    assert all(SESSION_HEADER not in response.headers for response in failures)
    assert _sessions_on_disk(home) == [] and len(store) == 0
    made = _generate(client)
    assert _sessions_on_disk(home) == [made["session"]] and made["session"] in store


def test_idle_sessions_leave_memory_and_reopen_by_their_id(tmp_path: Path) -> None:
    """Beyond the cap or idle too long, a session leaves memory, not the disk: its id reopens it, artifacts intact."""
    client = TestClient(create_app(tmp_path / "home", max_sessions=2))
    store = client.app.state.store  # type: ignore[attr-defined]
    made = _generate(client)
    first, artifact = made["session"], made["artifacts"][0]["id"]
    others = [client.post("/sessions").json()["session"] for _ in range(2)]
    assert len(store) == 2 and first not in store and all(other in store for other in others)
    headers = {SESSION_HEADER: first}
    assert client.get(f"/artifacts/{artifact}", headers=headers).status_code == 200
    again = client.post("/tools/histogram", json={"source": artifact, "field": "m_hat_gev", "bins": 5}, headers=headers)
    assert again.status_code == 200 and again.json()["session"] == first and first in store and len(store) == 2

    idle = SessionStore(tmp_path / "idle", idle_s=0.05)
    old, busy = idle.create(), idle.create()
    with busy.lock:  # answering a request: never evicted
        time.sleep(0.1)
        fresh = idle.create()
        assert old.id not in idle and busy.id in idle and fresh.id in idle
    assert idle.get(old.id).root == old.root  # reopened from disk


def test_bodies_that_are_not_utf8_or_nest_too_deeply_are_422_with_the_declared_shape(
    client: TestClient, tmp_path: Path
) -> None:
    """Undecodable or absurdly nested JSON is invalid input (422, the declared InvalidInput body), not a 400."""
    headers = {"content-type": "application/json"}
    not_utf8 = client.post("/tools/generate_events", content=b'{"process": "drell_yan_mumu\xff"}', headers=headers)
    deep = client.post("/tools/generate_events", content=b'{"settings": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                       headers=headers)
    ask = client.post("/agent/ask", content=b'{"request": "\xc3\x28"}', headers=headers)
    for response, kind, route in ((not_utf8, "json_invalid", "/tools/generate_events"), (ask, "json_invalid",
                                  "/agent/ask"), (deep, "json_too_deep", "/tools/generate_events")):
        assert response.status_code == 422, response.text
        assert not list(_declared(client, route, "post", 422).iter_errors(response.json()))
        problem = response.json()["detail"][0]
        assert problem["type"] == kind and problem["loc"] == ["body"] and problem["field"] is None
    assert "not valid UTF-8 (byte 0xff" in not_utf8.json()["detail"][0]["msg"]
    assert "nested too deeply" in deep.json()["detail"][0]["msg"]
    assert _sessions_on_disk(tmp_path / "home") == []


def test_uploads_become_artifacts_within_the_size_limit(tmp_path: Path) -> None:
    """A CSV upload becomes a table artifact; an oversized upload is 413; other file types are 422."""
    client = TestClient(create_app(tmp_path / "home", max_upload_mb=0.01))
    csv = b"pt_gev,eta\n" + b"".join(f"{10 + i},{0.1 * i:.1f}\n".encode() for i in range(30))
    response = client.post("/uploads", files={"file": ("../../muons.csv", csv, "text/csv")})
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["artifact"]["kind"] == "table" and "30 rows" in document["artifact"]["summary"]
    assert Path(document["path"]).parent == tmp_path / "home" / "sessions" / document["session"] / "uploads"
    same = {SESSION_HEADER: document["session"]}
    over = client.post("/uploads", files={"file": ("big.csv", b"x" * 20_000, "text/csv")}, headers=same)
    assert over.status_code == 413 and "upload limit of 0.01 MB" in over.json()["detail"]  # counted while saved
    declared = client.post("/uploads", files={"file": ("huge.csv", b"x" * 200_000, "text/csv")}, headers=same)
    assert declared.status_code == 413 and "larger than the limit" in declared.json()["detail"]  # refused unread
    uploads = tmp_path / "home" / "sessions" / document["session"] / "uploads"
    assert [p.name for p in uploads.iterdir()] == ["muons.csv"]  # nothing partial left behind
    wrong = client.post("/uploads", files={"file": ("run.sh", b"rm -rf /", "text/plain")})
    assert wrong.status_code == 422 and ".csv" in wrong.json()["detail"][0]["msg"]


def test_uploaded_documents_are_searchable_in_their_own_session_only(client: TestClient) -> None:
    """A Markdown upload goes into the session's knowledge base: search_knowledge finds it there, not elsewhere."""
    note = b"# Top tagging\n\nThe ParticleNet tagger reaches an AUC of 0.985 on the landscape dataset.\n"
    response = client.post("/uploads", files={"file": ("notes.md", note, "text/markdown")})
    assert response.status_code == 200 and "added to the knowledge base" in response.json()["message"]
    mine, other = response.json()["session"], client.post("/sessions").json()["session"]
    query = {"query": "ParticleNet AUC on the landscape dataset"}
    found = client.post("/tools/search_knowledge", json=query, headers={SESSION_HEADER: mine}).json()
    assert found["result"]["hits"][0]["source"] == "notes.md" and "0.985" in found["result"]["hits"][0]["text"]
    elsewhere = client.post("/tools/search_knowledge", json=query, headers={SESSION_HEADER: other}).json()
    assert all(hit["source"] != "notes.md" for hit in elsewhere["result"]["hits"])


def test_session_provenance_and_reproduction_script(client: TestClient) -> None:
    """GET /sessions/{id} records each call (inputs, seed, versions); /export writes a script that reruns it."""
    document = _generate(client)
    session = document["session"]
    made = client.get(f"/sessions/{session}").json()
    call = made["calls"][0]
    assert call["tool"] == "generate_events" and call["seed"] == 5 and "pythia8mc" in call["packages"]
    assert made["artifacts"][0]["call"] == call["id"] == document["call_id"]
    script = client.get(f"/sessions/{session}/export")
    assert script.status_code == 200 and "run('generate_events'" in script.text and document["artifacts"][0]["id"] \
        in script.text


def test_a_configured_token_is_required_on_every_route(tmp_path: Path) -> None:
    """With a token, every route (including the schema and docs) answers 401 unless the bearer token matches."""
    client = TestClient(create_app(tmp_path / "home", token="s3cret-token"))
    for path in ("/tools", "/openapi.json", "/docs", "/sessions/0123456789abcdef", "/artifacts/ev-0123456789"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/tools/generate_events", json=DY).status_code == 401
    assert client.get("/tools", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    paths = client.get("/openapi.json", headers={"Authorization": "Bearer s3cret-token"}).json()["paths"]
    assert all("401" in operation["responses"] for route in paths.values() for operation in route.values())


def test_listening_beyond_loopback_needs_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """check_bind allows loopback, refuses other addresses without a token; the CLI says how to fix it."""
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "s3cret")
    with pytest.raises(InsecureBindError, match="PHYSAGENT_API_TOKEN"):
        check_bind("0.0.0.0", None)
    monkeypatch.delenv("PHYSAGENT_API_TOKEN", raising=False)
    result = CliRunner().invoke(cli_app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "refusing to listen on 0.0.0.0" in result.stderr
