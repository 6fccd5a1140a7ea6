r"""The default, fully offline backend: Qwen2.5-Coder-Instruct (0.5B or 1.5B, GGUF) run by llama.cpp.

Why constrained JSON instead of native tool calling: small Qwen2.5-Coder models often wrap a call in a
```json fence instead of ``<tool_call>`` tags, so llama.cpp returns no structured call. Instead every
reply is decoded under a JSON schema (llama.cpp's llguidance grammar, compact: no free whitespace,
:func:`compact_grammar`), one of

    {"tool": "<offered name>", "arguments": {...the tool's own parameter schema...}}
    {"answer": "<text>"}

so each reply parses, names an offered tool and has schema-valid arguments (up to keywords the
grammar cannot enforce, e.g. ``exclusiveMinimum`` on floats; the tool layer still validates).

The model is shown the tools as Python signatures with ``Args:`` docstrings (a code model reads them
well; about 300 tokens per tool, half the JSON schema), appended to the agent's system prompt with a
one-line reply-format instruction. Earlier calls are replayed as the JSON the model wrote, and tool
observations as Qwen's ``<tool_response>`` user turns, exactly as Qwen's chat template renders them.
Arguments equal to a parameter's default are dropped: small models like to spell out every default.
Replies are decoded under :mod:`~physagent.agent.backends._latex`'s rule: ``\rho`` written with one
backslash stays LaTeX, not a carriage return and ``ho``.

Weights: :func:`agent.backends._gguf.ensure_gguf` (hash-pinned, assembled once).
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

from physagent.agent.arguments import drop_defaults
from physagent.agent.backends import _latex
from physagent.agent.backends._gguf import PINNED, ensure_gguf
from physagent.agent.backends._prompt_cache import PromptCache
from physagent.agent.backends.base import BackendError, ModelTurn, ToolCallRequest, Usage
from physagent.agent.plan import PLAN_TOOL
from physagent.agent.prompting import inline_refs, render_tools, simplify_schema
from physagent.tools import worker_count

__all__ = ["SEED", "EmbeddedBackend", "LoopedReplyError", "compact_grammar", "parse_reply", "reply_schema",
           "to_prompt"]

SEED = 1234
_FORMAT = ('Reply with one JSON object: {"tool": <tool name>, "arguments": {...}} to call a tool, '
           'or {"answer": <text>} when every step the user asked for is done.')
_ANSWER_ONLY = 'Reply with one JSON object: {"answer": <text>}.'
_PLAN_TOKENS = 1500
_GRAMMAR_MAX_INT = 2**53  # larger integer bounds (the registry's int64 default) fail llguidance's compiler
_GRAMMAR_MAX_ITEMS = 64  # the longest list a reply writes (the tool layer still checks each tool's own limit)
_PLAN_FORMAT = ('Reply with one JSON object: {"tool": "submit_plan", "arguments": {"steps": [...], "answer": "..."}}, '
                'or {"answer": "..."} when the request cannot or need not be done with the tools.')
_ANSWER = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"],
           "additionalProperties": False}
class EmbeddedBackend:
    """Qwen2.5-Coder-Instruct in-process via xllamacpp; no network, no server, no API key.

    ``needs_hygiene``: the agent drops optional arguments this small model invents
    (:mod:`physagent.agent.arguments`).

    Args:
        model: ``"0.5b"`` (default, ~0.5 GB), ``"1.5b"`` (~1.1 GB, better arguments) or a ``.gguf`` path.
        n_ctx: context window in tokens; 8 tools take ~2,400 tokens of it, a few steps of history the rest.
        threads: CPU threads (default: ``PHYSAGENT_WORKERS``, else every core this process may use; see
            :func:`physagent.tools.worker_count`).
        max_tokens: longest reply in tokens.
        keep_prompt_state: save llama.cpp's prompt state after the first reply and restore it when the
            next process loads the model, so a new ``physagent ask`` does not re-read the fixed system
            prompt (:mod:`~physagent.agent.backends._prompt_cache`; kept in ``$PHYSAGENT_CACHE``).
    """

    needs_hygiene = True

    def __init__(self, model: str = "0.5b", n_ctx: int = 8192, threads: int | None = None, max_tokens: int = 512,
                 keep_prompt_state: bool = True):
        self.model = model
        self.name = f"embedded:{model if model in PINNED else Path(model).name}"
        self.n_ctx, self.max_tokens = n_ctx, max_tokens
        self.threads = threads or worker_count()
        self._server: Any = None
        self.last_response: dict[str, Any] = {}  # the raw llama.cpp reply, with "timings" (for benchmarks)
        self._simplify = 0  # how far tool schemas must be simplified for the grammar (0, 1, 2)
        self._ids = itertools.count(1)
        self.keep_prompt_state = keep_prompt_state
        self._prompt_cache: PromptCache | None = None
        self.restored_tokens = 0  # prompt tokens restored from the previous process's saved state

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelTurn:
        """Answer the conversation with one tool call or, with ``tools=[]`` or when done, a text answer."""
        # a whole plan (several steps and an answer) needs more room than one tool call
        plan = [tool["name"] for tool in tools] == [PLAN_TOOL]
        request = {"messages": to_prompt(messages, tools), "temperature": 0.0, "seed": SEED,
                   "max_tokens": max(self.max_tokens, _PLAN_TOKENS) if plan else self.max_tokens}
        response = self.last_response = self._chat(request, tools)
        return parse_reply(response, tools, call_id=f"call-{next(self._ids)}")

    def write_program(self, messages: list[dict[str, Any]], temperature: float = 0.0) -> ModelTurn:
        """A free-text reply, no reply schema: a program in a ```` ```python ```` block. Code inside a JSON string
        is where this model slips (an unescaped quote ends the string and the grammar closes the call).
        ``temperature`` > 0 (seeded) gives another program where greedy decoding repeats a failed one."""
        self.load()
        chat = [{"role": message.get("role", "user"), "content": message.get("content") or ""} for message in messages]
        request = {"messages": chat, "temperature": temperature, "seed": SEED, "max_tokens": self.max_tokens}
        response = self.last_response = _checked(self._server.handle_chat_completions(request), self)
        if self._prompt_cache:
            self._prompt_cache.save()
        choice = response["choices"][0]
        return ModelTurn(text=choice.get("message", {}).get("content") or "", usage=_usage(response))

    def load(self) -> None:
        """Load the model now (otherwise the first :meth:`complete` does); idempotent."""
        if self._server is None:
            gguf = ensure_gguf(self.model)
            cache = PromptCache(f"{gguf.stem}-ctx{self.n_ctx}") if self.keep_prompt_state else None
            self._server = _load_server(gguf, self.n_ctx, self.threads, cache)
            self._prompt_cache = cache
            self.restored_tokens = cache.attach(self._server) if cache else 0

    def _chat(self, request: dict[str, Any], tools: list[dict[str, Any]]) -> dict[str, Any]:
        """Run one request, simplifying the tool schemas while llama.cpp cannot turn them into a grammar or
        (llguidance giving up on it) returns a reply that is no JSON object at all; a reply that looped until the
        token limit is asked for once more: without the optional parameter whose number never ended (DRY cannot stop
        a counting sequence, ``1000000.0000000125000002500…``), else under the DRY sampler."""
        self.load()
        left_out: set[str] = set()
        while True:
            schema = _without_optional(reply_schema(tools, simplify=self._simplify), left_out)
            try:
                response = self._server.handle_chat_completions(dict(request, grammar=compact_grammar(schema)))
            except ValueError as error:
                if self._simplify >= 2 or not tools:
                    raise BackendError(f"{self.name}: llama.cpp refused the reply schema: {error}") from error
                self._simplify += 1
                continue
            checked = _checked(response, self)
            if self._prompt_cache:
                self._prompt_cache.save()
            if _grammar_ignored(checked) and self._simplify < 2 and tools:
                self._simplify += 1  # llguidance gave up on this grammar (it logs, llama.cpp samples freely)
                continue
            endless = _endless_parameter(checked) if _looped(checked) else None
            if endless and endless not in left_out and _is_optional(schema, endless):
                left_out.add(endless)
                continue
            if _looped(checked) and "dry_multiplier" not in request:
                request = {**request, **_DRY}  # once more, penalising repeats: "0.0000…" stops after a few zeros
                continue
            return checked


_ENDLESS_PARAMETER = re.compile(r'"(\w+)":\s*-?[\d.eE+-]{40,}$')


def _endless_parameter(response: dict[str, Any]) -> str | None:
    """The parameter a reply cut off at the token limit was writing an endless number for, or None."""
    content = response.get("choices", [{}])[0].get("message", {}).get("content") or ""
    found = _ENDLESS_PARAMETER.search(content[-4000:])
    return found.group(1) if found else None


def _is_optional(schema: Any, name: str) -> bool:
    """Whether ``name`` is a property somewhere in ``schema`` and required nowhere."""
    found, required = _property_use(schema, name)
    return found and not required


def _property_use(node: Any, name: str) -> tuple[bool, bool]:
    if isinstance(node, list):
        uses = [_property_use(item, name) for item in node]
        return any(u[0] for u in uses), any(u[1] for u in uses)
    if not isinstance(node, dict):
        return False, False
    found = name in (node.get("properties") or {})
    required = name in (node.get("required") or [])
    for value in node.values():
        inner = _property_use(value, name)
        found, required = found or inner[0], required or inner[1]
    return found, required


def _without_optional(schema: Any, names: set[str]) -> Any:
    """``schema`` with the optional properties ``names`` left out everywhere (the model cannot write them)."""
    if not names:
        return schema
    if isinstance(schema, list):
        return [_without_optional(item, names) for item in schema]
    if not isinstance(schema, dict):
        return schema
    pruned = {key: _without_optional(value, names) for key, value in schema.items()}
    if isinstance(schema.get("properties"), dict):
        pruned["properties"] = {key: _without_optional(value, names)
                                for key, value in schema["properties"].items() if key not in names}
    return pruned


# llama.cpp's DRY sampler ("don't repeat yourself"), only for a reply that looped until the token limit: on every
# reply it would also push the model off the plan's legitimately repeated keys and references
_DRY = {"dry_multiplier": 0.8, "dry_allowed_length": 3}


def _looped(response: dict[str, Any]) -> bool:
    """Whether a reply ran into the token limit repeating itself (a number's endless zeros)."""
    choice = response.get("choices", [{}])[0]
    return choice.get("finish_reason") == "length" and bool(_looped_on(choice.get("message", {}).get("content") or ""))


def _grammar_ignored(response: dict[str, Any]) -> bool:
    """Whether a complete reply is no reply object at all: the grammar cannot have been applied."""
    choice = response.get("choices", [{}])[0]
    if choice.get("finish_reason") == "length":
        return False
    try:
        _decode(choice.get("message", {}).get("content") or "", choice.get("finish_reason"))
    except BackendError:
        return True
    return False


def compact_grammar(schema: dict[str, Any]) -> str:
    """llama.cpp's (llguidance) grammar for replies matching ``schema``, as compact JSON: free whitespace
    lets a small model indent, or loop on newlines, until it runs out of tokens."""
    import xllamacpp

    compact = {"x-guidance": {"whitespace_flexible": False}, **_grammar_schema(schema)}
    return str(xllamacpp.json_schema_to_grammar(json.dumps(compact)))


def _grammar_schema(node: Any) -> Any:
    """``node`` with each ``maxItems`` above :data:`_GRAMMAR_MAX_ITEMS` lowered to it (llguidance unrolls
    ``maxItems`` into that many grammar rules, and the registry bounds every list at 10,000 items) and
    integer bounds beyond ±2⁵³ left out (the tool layer still checks them)."""
    if isinstance(node, list):
        return [_grammar_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    short = {key: _grammar_schema(value) for key, value in node.items()}
    if isinstance(node.get("maxItems"), int) and node.get("type") == "array":
        short["maxItems"] = min(node["maxItems"], _GRAMMAR_MAX_ITEMS)
    for bound in ("minimum", "maximum"):  # llguidance reads bounds as doubles and gives up on int64's
        if isinstance(node.get(bound), int) and abs(node[bound]) > _GRAMMAR_MAX_INT:
            del short[bound]
    return short


def _load_server(gguf: Path, n_ctx: int, threads: int, cache: PromptCache | None = None) -> Any:
    try:
        import xllamacpp
    except ImportError as error:
        raise BackendError(f"embedded backend: xllamacpp is missing ({error}). Run: pip install xllamacpp") from error
    params = xllamacpp.CommonParams()
    params.model.path = str(gguf)
    params.n_ctx, params.n_parallel, params.use_jinja = n_ctx, 1, True
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = threads
    params.sampling.seed, params.sampling.temp = SEED, 0.0
    params.verbosity = -1  # llama.cpp logs every slot event to stderr otherwise
    if cache:
        cache.configure(params)
    try:
        return xllamacpp.Server(params)
    except Exception as error:  # xllamacpp raises bare RuntimeError/ValueError subclasses from C++
        raise BackendError(
            f"embedded backend: llama.cpp could not load {gguf} ({type(error).__name__}: {error}). "
            "Check the file is a llama.cpp GGUF model and that there is enough memory; "
            "for the built-in models delete the file and let physagent assemble it again."
        ) from error


def _checked(response: dict[str, Any], backend: EmbeddedBackend) -> dict[str, Any]:
    error = response.get("error")
    if not error:
        return response
    message = error.get("message", error) if isinstance(error, dict) else error
    hint = f" Use EmbeddedBackend(n_ctx={2 * backend.n_ctx}) or offer fewer tools." if "context" in str(message) else ""
    raise BackendError(f"{backend.name}: llama.cpp failed: {message}.{hint}")


# ---------------------------------------------------------------------------------------------- reply schema


def reply_schema(tools: list[dict[str, Any]], simplify: int = 0) -> dict[str, Any]:
    """The JSON schema every reply must match: one offered tool with valid arguments, or an answer.

    Args:
        tools: tool schemas ``{"name", "description", "parameters"}``.
        simplify: 0 uses each tool's parameter schema as is, 1 a simplified copy
            (:func:`simplify_schema`), 2 any JSON object.

    Returns:
        ``{"anyOf": [{"tool": {"const": name}, "arguments": parameters} ..., {"answer": str}]}``.
    """
    shapes = [_call_shape(tool["name"], _arguments_schema(tool["parameters"], simplify)) for tool in tools]
    return {"anyOf": [*shapes, _ANSWER]}


def _arguments_schema(parameters: dict[str, Any], simplify: int) -> dict[str, Any]:
    if simplify >= 2:
        return {"type": "object"}
    return simplify_schema(parameters) if simplify else inline_refs(parameters)


def _call_shape(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {"tool": {"const": name}, "arguments": arguments},
            "required": ["tool", "arguments"], "additionalProperties": False}


# ------------------------------------------------------------------------------------------------- prompt


def to_prompt(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The agent's OpenAI-style messages as plain chat turns this model understands.

    The tools and the reply format go at the end of the (first) system message; tool calls are replayed
    as the JSON the model wrote, text answers as ``{"answer": ...}``, and consecutive tool observations
    become one user turn of ``<tool_response>`` blocks, as Qwen's own chat template renders them.
    """
    prompt: list[dict[str, str]] = []
    for message in messages:
        role, content = message.get("role", "user"), message.get("content") or ""
        if role == "tool":
            _append_observation(prompt, content)
        elif role == "assistant":
            prompt.append({"role": "assistant", "content": _replay(message)})
        else:
            prompt.append({"role": role, "content": content})
    if [tool["name"] for tool in tools] == [PLAN_TOOL]:  # the loop lists the real tools in the system message
        instruction = _PLAN_FORMAT
    else:
        instruction = f"{render_tools(tools)}\n\n{_FORMAT}" if tools else _ANSWER_ONLY
    if prompt and prompt[0]["role"] == "system":
        prompt[0] = {"role": "system", "content": f"{prompt[0]['content']}\n\n{instruction}"}
    else:
        prompt.insert(0, {"role": "system", "content": instruction})
    return prompt


def _append_observation(prompt: list[dict[str, str]], content: str) -> None:
    block = f"<tool_response>\n{content}\n</tool_response>"
    if prompt and prompt[-1]["role"] == "user" and prompt[-1]["content"].endswith("</tool_response>"):
        prompt[-1] = {"role": "user", "content": f"{prompt[-1]['content']}\n{block}"}
    else:
        prompt.append({"role": "user", "content": block})


def _replay(message: dict[str, Any]) -> str:
    calls = message.get("tool_calls") or []
    if not calls:
        return json.dumps({"answer": message.get("content") or ""}, ensure_ascii=False)
    return "\n".join(json.dumps({"tool": call["name"], "arguments": _as_dict(call.get("arguments"))},
                               ensure_ascii=False) for call in calls)


def _as_dict(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, str):  # OpenAI-style messages carry arguments as a JSON string
        arguments = json.loads(arguments or "{}")
    return dict(arguments or {})


# -------------------------------------------------------------------------------------------------- reply


def parse_reply(response: dict[str, Any], tools: list[dict[str, Any]], call_id: str = "call-1") -> ModelTurn:
    """Map a chat completion whose content matches :func:`reply_schema` to a :class:`ModelTurn`.

    Raises:
        BackendError: the content is not a JSON object (e.g. cut off at ``max_tokens``) or names a tool
            that was not offered.
    """
    choice = response["choices"][0]
    usage = _usage(response)
    reply = _decode(choice.get("message", {}).get("content") or "", choice.get("finish_reason"))
    if "tool" not in reply:
        return ModelTurn(text=str(reply.get("answer", "")), usage=usage)
    offered = {tool["name"]: tool for tool in tools}
    if reply["tool"] not in offered:
        raise BackendError(f"embedded model called {reply['tool']!r}, which was not offered ({sorted(offered)}).")
    parameters = offered[reply["tool"]].get("parameters", {})
    if "code" in parameters.get("properties", {}):
        reply = _plain_json(choice["message"]["content"], reply)
    arguments = drop_defaults(_as_dict(reply.get("arguments")), parameters)
    return ModelTurn(tool_calls=[ToolCallRequest(reply["tool"], arguments, id=call_id)], usage=usage)


def _usage(response: dict[str, Any]) -> Usage:
    counts, timings = response.get("usage", {}), response.get("timings", {})
    return Usage(counts.get("prompt_tokens", 0), counts.get("completion_tokens", 0),
                 float(timings.get("prompt_ms", 0.0)), float(timings.get("predicted_ms", 0.0)))


def _plain_json(content: str, decoded: dict[str, Any]) -> dict[str, Any]:
    r"""A call carrying a program decoded as plain JSON: in code ``\n`` before ``e`` is a line break, not the
    LaTeX ``\ne`` the prose rule keeps (``decoded`` when plain JSON cannot read it)."""
    try:
        reply = json.loads(content)
    except json.JSONDecodeError:
        return decoded
    return reply if isinstance(reply, dict) else decoded


def _decode(content: str, finish_reason: str | None) -> dict[str, Any]:
    try:
        reply = _latex.loads(content)  # \rho and \tau stay LaTeX, not CR and tab (see _latex)
    except json.JSONDecodeError as error:
        unconstrained = _unconstrained_object(content)
        if unconstrained is not None:
            return unconstrained
        salvaged = _salvage_answer(content) if finish_reason == "length" else None
        if salvaged is not None:
            return {"answer": salvaged}
        plan = _salvage_plan(content) if finish_reason == "length" else None
        if plan is not None:
            return plan
        if finish_reason == "length" and (looped := _looped_on(content)):
            raise LoopedReplyError(
                f"Your reply repeated {looped!r} until it was cut off at the token limit, so nothing of it could "
                "be used. Write each number with at most 6 significant digits (100, 0.25, 1.5e4) and each text "
                "once.") from error
        hint = "it stopped at max_tokens; raise max_tokens" if finish_reason == "length" else "please report it"
        shown = content if len(content) <= 400 else f"{content[:200]} … {content[-200:]}"
        message = f"embedded model: the reply is not the JSON asked for ({hint}): {shown!r}"
        raise BackendError(message) from error
    if not isinstance(reply, dict):
        raise BackendError(f"embedded model: the reply is not a JSON object: {content[:200]!r}")
    return reply


class LoopedReplyError(BackendError):
    """A reply cut off at the token limit while repeating itself (``100.000000…``, a phrase over and over): the
    model is told so and asked again; the changed prompt is what gets a deterministic (temperature 0) model out
    of the loop."""

    retryable = True


_LOOP = re.compile(r"(.{1,12}?)\1{11,}$", re.DOTALL)  # one to twelve characters, at least 12 times, at the end


_ENDLESS_NUMBER = re.compile(r"[-+]?[\d.]{40,}$")  # no argument has 40 digits: "00203000204000205…" counts up
_LOOPED_SENTENCE = re.compile(r"(.{20,300}?)\1{2,}", re.DOTALL)  # a sentence thrice in a row, cut off mid-repeat


def _looped_on(content: str) -> str:
    """What a reply cut off at the token limit repeats at its end ('0', ' the same', a number that never ends, a
    sentence written again and again), or ''.

    >>> "The script uses the tools provided" in _looped_on("Here it is. " + "The script uses the tools provided. " * 5)
    True
    >>> _looped_on("A plain answer that ran out of tokens in the middle of a long sentence about jets")
    ''
    """
    match = _LOOP.search(content[-400:])
    if match:
        return match.group(1)
    endless = _ENDLESS_NUMBER.search(content[-400:])
    if endless:
        return f"{endless.group(0)[:12]}… (a number without end)"
    sentence = _LOOPED_SENTENCE.search(content[-1500:])
    return sentence.group(1).strip() if sentence else ""


def _unconstrained_object(content: str) -> dict[str, Any] | None:
    """The first JSON object of a reply the grammar did not constrain, or None.

    When llguidance cannot run a grammar (it logs the error, muted here) llama.cpp samples freely, and
    the model writes what it was trained on: a fenced, indented object, or one closing brace too many.
    The object inside is still the reply; every check after decoding still applies to it."""
    start = content.find("{")
    if start < 0:
        return None
    try:  # free text may break lines inside strings: allow raw control characters
        reply, _ = json.JSONDecoder(strict=False).raw_decode(_latex.latex_safe(content[start:]))
    except json.JSONDecodeError:
        return None
    return reply if isinstance(reply, dict) and ("tool" in reply or "answer" in reply) else None


def _salvage_plan(content: str) -> dict[str, Any] | None:
    """The complete steps of a plan whose answer template ran into the token limit (a small model can loop
    on one phrase), with the answer left empty — the loop then asks for it with the results in view."""
    cut = content.find('],"answer":"')
    if not content.startswith(f'{{"tool":"{PLAN_TOOL}"') or cut < 0:
        return None
    try:
        reply = json.loads(content[:cut + 1] + ',"answer":""}}')
    except json.JSONDecodeError:
        return None
    return reply if isinstance(reply, dict) else None


def _salvage_answer(content: str) -> str | None:
    """The text of an ``{"answer": "...`` reply cut off by the token limit, marked as cut; None otherwise."""
    prefix = re.match(r'\s*\{\s*"answer"\s*:\s*"', content)
    if prefix is None:
        return None
    body = content[prefix.end():]
    body = body[: len(body) - 1] if body.endswith("\\") else body  # never end inside an escape
    try:
        return str(_latex.loads(f'"{body}"')) + " […]"
    except json.JSONDecodeError:
        return None
