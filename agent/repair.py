r"""Generated analysis code with repair: ask the model for code → run and validate it → feed failures back.

For requests no tool covers ("the fraction of events with ≥ 4 jets above 30 GeV"):

    >>> from physagent.agent.repair import write_and_run
    >>> result = write_and_run("Fraction of events with at least 4 jets above 30 GeV", inputs=["jet-3f2a9c1b7d"],
    ...                        values={"fraction": "float"}, checks={"fraction": {"quantity": "fraction"}})
    ... # doctest: +SKIP
    >>> result.ok, result.values  # doctest: +SKIP

Each attempt asks the model for a whole program through one offered tool, ``submit_code`` (``{"code": ...}``;
the embedded backend decodes replies under that schema; a reply in text with a ```` ```python ```` fence
works too), runs it with :func:`tools.call_tool` ``("run_python", ...)`` so the run is recorded in the
workspace under the session, and reads the :class:`~tools.code.ValidationReport`. On failure the report
(errors, the traceback's relevant lines) and, when a ``docs`` lookup is given, API documentation for the
error go back to the model — at most ``max_attempts`` times. The session record (every attempt) is saved
in the workspace like an :class:`~agent.Assistant` session.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, cast

from pydantic import BaseModel, Field

from physagent.agent.backends import BackendError, ChatBackend, ModelTurn
from physagent.agent.backends.scripted import ScriptExhaustedError
from physagent.agent.events import AnswerEvent, ArtifactEvent, ToolCallEvent, ToolResultEvent
from physagent.agent.prompts import prompt
from physagent.agent.record import AgentRecord
from physagent.tools import ToolError, Workspace, call_tool
from physagent.tools.code import RunPythonResult

__all__ = ["SUBMIT_CODE", "Attempt", "RepairResult", "api_docs", "extract_code", "write_and_run"]

Docs = Callable[[str], str]

SUBMIT_CODE: dict[str, Any] = {
    "name": "submit_code",
    "description": "Submit the complete Python program to run in the sandbox.",
    "parameters": {
        "type": "object",
        "properties": {"code": {"type": "string", "description": "The whole program, ready to run."}},
        "required": ["code"],
        "additionalProperties": False,
    },
}
_DOCS_CHARS = 2000
_CODE_TOKENS = 1536
_TYPE_CHARS = 800
_PROGRAMS_SHOWN = 1
_VARIED = 0.7  # sampling temperature once the model has repeated a failed program
_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)


class Attempt(BaseModel):
    """One generate → run → validate round."""

    number: int
    code: str = Field(description="The program the model submitted ('' if it submitted none).")
    ok: bool
    report: str = Field(description="The validation report, or why the attempt could not run.")
    call_id: str | None = Field(default=None, description="The run_python call in the workspace's provenance.")
    values: dict[str, Any] = Field(default_factory=dict)
    outputs: list[str] = Field(default_factory=list, description="Artifact ids of the validated outputs.")
    repeat_of: int | None = Field(default=None, description="The earlier attempt this one resubmitted verbatim.")


class RepairResult(BaseModel):
    """A validated result, or a failure report with the last error; every attempt either way."""

    ok: bool
    task: str
    session: str
    attempts: list[Attempt]
    final: RunPythonResult | None = Field(description="The last run's full result (None if nothing ran).")
    error: str | None = Field(description="Why it failed after the last attempt (None when ok).")
    prompt_tokens: int = Field(default=0, description="Tokens the model read over all attempts.")
    completion_tokens: int = Field(default=0, description="Tokens the model wrote over all attempts.")

    @property
    def values(self) -> dict[str, Any]:
        return self.final.values if self.final else {}

    @property
    def code(self) -> str:
        return self.attempts[-1].code if self.attempts else ""


class _Searchable(Protocol):
    def search(self, query: str, k: int = 5, collections: Sequence[str] | None = None) -> Sequence[Any]: ...


def api_docs(knowledge_base: _Searchable, k: int = 3) -> Docs:
    """A ``docs`` lookup over the knowledge base's ``api`` collection (signatures and docstrings).

    >>> docs = api_docs(KnowledgeBase.open(workspace.root))  # doctest: +SKIP
    """

    def lookup(query: str) -> str:
        hits = knowledge_base.search(query, k=k, collections=["api"])
        return "\n\n".join(f"[{hit.source}: {hit.title}]\n{hit.text}" for hit in hits)

    return lookup


def _indexed_api_docs(workspace: Workspace) -> Docs | None:
    """API docs from the workspace's knowledge base when its ``api`` collection is built (`physagent kb build`)."""
    from physagent.knowledge import KnowledgeBase

    kb = KnowledgeBase.open(workspace.root)
    if not any(c["collection"] == "api" for c in kb.collections()):
        return None
    return api_docs(kb)


def write_and_run(
    task: str,
    *,
    backend: ChatBackend | None = None,
    workspace: Workspace | None = None,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    values: dict[str, str] | None = None,
    checks: dict[str, dict[str, Any]] | None = None,
    max_attempts: int = 3,
    docs: Docs | None = None,
    timeout_s: float = 60.0,
    memory_mb: int = 4096,
    session: str | None = None,
    request: str = "",
) -> RepairResult:
    """Have the model write code for ``task``, run it in the sandbox, and repair it until it validates.

    Args:
        task: What the code must compute, in words.
        backend: The model (default: :func:`agent.backends.get_backend`).
        workspace: Where inputs live and outputs and provenance go (default: ``PHYSAGENT_HOME``).
        inputs: Artifact ids the code reads (``INPUTS[id]`` inside the sandbox).
        outputs: File names the code must write; each becomes an artifact when validated.
        values: Values the code must print as JSON, name → type (``"float"``, ``"int"``, ``"list[float]"`` …).
        checks: Physics checks per value (:class:`tools.code.ValueCheck` fields, e.g. ``{"quantity": "fraction"}``).
        max_attempts: Model submissions at most (≥ 1).
        docs: Optional lookup, query → API documentation text (see :func:`api_docs`), used for repairs;
            default: the workspace knowledge base's ``api`` collection when it is built.
        timeout_s, memory_mb: Limits of each run.
        session: Session id for the records (default: a new one).
        request: The user's whole request when ``task`` is a part of it: it finds the worked programs shown.

    Returns:
        A :class:`RepairResult`; ``ok`` False with ``error`` set when no attempt validated.
    """
    if max_attempts < 1:
        raise ValueError(f"write_and_run: max_attempts={max_attempts} must be at least 1.")
    if backend is None:
        from physagent.agent.backends import get_backend

        backend = get_backend()
    workspace = workspace or Workspace()
    if docs is None:
        docs = _indexed_api_docs(workspace)
    loop = _RepairLoop(backend, workspace, session or f"s-{uuid.uuid4().hex[:10]}", docs)
    arguments = {"inputs": list(inputs), "outputs": list(outputs), "values": values or {}, "checks": checks or {},
                 "timeout_s": timeout_s, "memory_mb": memory_mb}
    with _long_replies(backend):
        return loop.run(task, arguments, max_attempts, request or task)


@contextmanager
def _long_replies(backend: ChatBackend) -> Iterator[None]:
    """Whole programs need longer replies than tool calls (the embedded default of 512 tokens cuts them)."""
    before = getattr(backend, "max_tokens", None)
    if before is not None and before < _CODE_TOKENS:
        backend.max_tokens = _CODE_TOKENS  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if before is not None:
            backend.max_tokens = before  # type: ignore[attr-defined]


class _RepairLoop:
    """The conversation and the record of one :func:`write_and_run`."""

    def __init__(self, backend: ChatBackend, workspace: Workspace, session: str, docs: Docs | None) -> None:
        self.backend, self.workspace, self.session, self.docs = backend, workspace, session, docs
        self.attempts: list[Attempt] = []
        self.final: RunPythonResult | None = None
        self.write_program = getattr(backend, "write_program", None)  # free-text programs (the embedded model)

    def run(self, task: str, arguments: dict[str, Any], max_attempts: int, request: str) -> RepairResult:
        record = AgentRecord(session=self.session, backend=self.backend.name, request=task)
        shown = _worked_programs(request, arguments["inputs"])
        opening = [{"role": "system", "content": prompt("code")},
                   {"role": "user", "content": self._task_prompt(task, arguments, shown)}]
        messages: list[dict[str, Any]] = list(opening)
        for number in range(1, max_attempts + 1):
            try:
                turn = self._ask(messages)
            except ScriptExhaustedError:
                raise  # a test's script ran out: fail loudly
            except BackendError as exc:  # e.g. a reply cut off at max_tokens: one failed attempt, not a crash
                attempt = Attempt(number=number, code="", ok=False, report=f"the model's reply was unusable: {exc}")
                self.attempts.append(attempt)
                messages.append({"role": "user", "content": f"{attempt.report} Submit a shorter program."})
                continue
            record.prompt_tokens += turn.usage.prompt_tokens
            record.completion_tokens += turn.usage.completion_tokens
            attempt = self._attempt(number, extract_code(turn), arguments, record)
            self.attempts.append(attempt)
            mended = _mended(attempt, arguments["values"], shown)
            if mended:  # a known slip (a value printed under another name, curve_fit unpacked flat): no model turn
                attempt = self._attempt(number, mended, arguments, record)
                self.attempts.append(attempt)
            if attempt.ok:
                break
            if attempt.repeat_of is None:
                messages += self._feedback(attempt, max_attempts, f"call-{number}")
            else:  # the same conversation gives the same program again: start afresh, warned of the error
                messages = [*opening[:-1], {"role": "user", "content": opening[-1]["content"] + "\n\n" + prompt(
                    "code_restart").format(report=self.attempts[attempt.repeat_of - 1].report)}]
        return self._finish(task, record)

    def _ask(self, messages: list[dict[str, Any]]) -> ModelTurn:
        """The model's next program: in free text where the backend can write it so (sampled after a program was
        resubmitted verbatim: greedy decoding would repeat it), else a submit_code call."""
        if self.write_program is None:
            return self.backend.complete(messages, [SUBMIT_CODE])
        repeated = any(attempt.repeat_of is not None for attempt in self.attempts)
        return cast(ModelTurn, self.write_program(messages, temperature=_VARIED if repeated else 0.0))

    def _attempt(self, number: int, code: str, arguments: dict[str, Any], record: AgentRecord) -> Attempt:
        if not code.strip():
            return Attempt(number=number, code="", ok=False, report="the reply contained no program: call "
                           "submit_code with the whole program as 'code'.")
        repeated = next((a for a in self.attempts if a.code.strip() == code.strip()), None)
        if repeated is not None:  # small models resubmit failed code verbatim: do not rerun it
            return Attempt(number=number, code=code, ok=False, repeat_of=repeated.number, report=(
                f"this is the same program as attempt {repeated.number}, which failed with:\n{repeated.report}\n"
                "Change the line the traceback points to."))
        call = {"code": code, **arguments}
        self._event(record, ToolCallEvent(session=self.session, step=number, tool="run_python", arguments=call))
        try:
            outcome = call_tool("run_python", call, workspace=self.workspace, session=self.session)
        except ToolError as exc:  # e.g. an input id that does not exist: the model may fix the call
            record.add_call("run_python", call, ok=False, error=str(exc))
            self._event(record, ToolResultEvent(session=self.session, step=number, tool="run_python", ok=False,
                                                summary=str(exc)))
            return Attempt(number=number, code=code, ok=False, report=str(exc))
        result = cast(RunPythonResult, outcome.result)
        self.final = result
        record.add_call("run_python", call, ok=result.ok, call_id=outcome.call_id,
                        error="" if result.ok else result.report)
        self._event(record, ToolResultEvent(session=self.session, step=number, tool="run_python", ok=result.ok,
                                            summary=result.report, call_id=outcome.call_id,
                                            result=result.model_dump(mode="json")))
        for artifact in result.outputs:
            self._event(record, ArtifactEvent(session=self.session, step=number, id=artifact.id, kind=artifact.kind,
                                              path=str(artifact.path), summary=artifact.summary))
        return Attempt(number=number, code=code, ok=result.ok, report=result.report, call_id=outcome.call_id,
                       values=result.values, outputs=[a.id for a in result.outputs])

    def _feedback(self, attempt: Attempt, max_attempts: int, call_id: str) -> list[dict[str, Any]]:
        """The failed submission as the model's tool call, and the report (+ API docs) as its observation."""
        docs = self._docs(attempt.report)
        report = attempt.report + "".join(f"\nHint: {found.expand(hint)}" for pattern, hint in _patterned("code_hints")
                                          if (found := pattern.search(attempt.report)))
        text = prompt("code_repair").format(attempt=attempt.number, max_attempts=max_attempts, report=report,
                                            docs=f"\nAPI documentation that may help:\n{docs}\n" if docs else "")
        if self.write_program is not None:
            return [{"role": "assistant", "content": f"```python\n{attempt.code.rstrip()}\n```"},
                    {"role": "user", "content": text}]
        submitted = {"id": call_id, "name": "submit_code", "arguments": {"code": attempt.code}}
        return [{"role": "assistant", "content": "", "tool_calls": [submitted]},
                {"role": "tool", "tool_call_id": call_id, "content": text}]

    def _docs(self, report: str) -> str:
        if self.docs is None:
            return ""
        query = _error_line(report)
        return self.docs(query)[:_DOCS_CHARS] if query else ""

    def _task_prompt(self, task: str, arguments: dict[str, Any], programs: str) -> str:
        return prompt("code_task").format(
            task=task, inputs=self._describe_inputs(arguments["inputs"]),
            outputs=", ".join(arguments["outputs"]) or "none",
            values=json.dumps(arguments["values"]) if arguments["values"] else "none",
            checks=json.dumps(arguments["checks"]) if arguments["checks"] else "none",
            programs=programs, expressions=_expressions_for(task),
        )

    def _describe_inputs(self, inputs: list[str]) -> str:
        """One line per input: kind, file, summary, and for Parquet the awkward type of one row."""
        lines = []
        for artifact_id in inputs:
            artifact = self.workspace.get_artifact(artifact_id)
            if artifact is None:
                lines.append(f"- INPUTS[{artifact_id!r}]: (not in the workspace)")
                continue
            line = f"- INPUTS[{artifact_id!r}]: {artifact.kind}, {artifact.path.name}: {artifact.summary}"
            lines.append(line + _row_type(artifact.path))
        return "\n".join(lines) or "none"

    def _finish(self, task: str, record: AgentRecord) -> RepairResult:
        last = self.attempts[-1]
        if last.ok:
            answer, error = f"Validated on attempt {last.number}: values {json.dumps(last.values)}.", None
        else:
            error = f"no attempt validated after {len(self.attempts)} attempt(s); last error: {last.report}"
            answer, record.error = f"I could not produce validated code: {error}", error
        record.answer, record.steps = answer, len(self.attempts)
        self._event(record, AnswerEvent(session=self.session, step=len(self.attempts), text=answer))
        self.workspace.save_session(self.session, self.backend.name, {
            "turns": [record.model_dump(mode="json")], "repair": [a.model_dump(mode="json") for a in self.attempts]})
        return RepairResult(ok=last.ok, task=task, session=self.session, attempts=self.attempts, final=self.final,
                            error=error, prompt_tokens=record.prompt_tokens,
                            completion_tokens=record.completion_tokens)

    @staticmethod
    def _event(record: AgentRecord, event: Any) -> None:
        record.events.append(event.model_dump(mode="json"))
        if isinstance(event, ArtifactEvent):
            record.artifacts.append({"id": event.id, "kind": event.kind, "path": event.path, "summary": event.summary})


def _worked_programs(request: str, inputs: Sequence[str]) -> str:
    """Programs of the worked examples closest to ``request``, reading this task's inputs: a small model
    adapts a close program far more reliably than it follows rules about the data layout."""
    from physagent.agent.examples import default_bank

    shown = []
    for example in default_bank().similar_programs(request, k=_PROGRAMS_SHOWN):
        program = example.program.rstrip()
        for index, artifact_id in enumerate(inputs):  # the model copies INPUT_FILES[0] as INPUT_FILES['<id>']
            program = program.replace(f"INPUT_FILES[{index}]", f"INPUTS[{artifact_id!r}]")
        shown.append(f"Task: {example.request}\n```python\n{program}\n```")
    heading = ("\nWorked programs for other tasks on the same data layouts (adapt them; print this task's promised "
               "values, not theirs):\n")
    return heading + "\n".join(shown) if shown else ""


@functools.cache
def _patterned(name: str) -> list[tuple[re.Pattern[str], str]]:
    """The ``regex :: text`` lines of prompt ``name``."""
    lines = [line.split(" :: ", 1) for line in prompt(name).splitlines() if " :: " in line and line[0] != "#"]
    return [(re.compile(pattern.strip(), re.IGNORECASE), text.strip()) for pattern, text in lines]


def _expressions_for(task: str) -> str:
    """The expressions the task's words call for, shown last (nearest the program the model writes): a small
    model otherwise keeps the worked program's own quantity (a pair's mass where the task asks its pT)."""
    matched = [f"- {text}" for pattern, text in _patterned("code_expressions") if pattern.search(task)]
    heading = "\nExpressions this task needs (use these, not the worked program's own quantity):\n"
    return heading + "\n".join(matched) if matched else ""


def _row_type(path: Path) -> str:
    """``; each row: {jets: var * {pt: float32, ...}}`` for a Parquet file (from its footer), else ''."""
    if path.suffix != ".parquet":
        return ""
    import awkward as ak

    try:
        text = str(ak.metadata_from_parquet(path)["form"].type)
    except Exception:  # an unreadable file: the run will say so; the prompt just lacks the type
        return ""
    return f"; each row: {text if len(text) <= _TYPE_CHARS else text[:_TYPE_CHARS] + '...'}"


def extract_code(turn: ModelTurn) -> str:
    """The program in a model turn: a ``submit_code`` call's ``code``, else a fenced block, else the bare text."""
    for call in turn.tool_calls:
        code = call.arguments.get("code")
        if isinstance(code, str):
            return _unescaped(code)
    blocks = _FENCE.findall(turn.text)
    if blocks:
        return str(max(blocks, key=len))
    return turn.text if _parses(turn.text) else ""


def _unescaped(code: str) -> str:
    """``code`` with literal ``\\n`` turned into line breaks when only that makes it parse: small models
    escape a newline twice inside the JSON string of a tool call."""
    if "\\n" not in code or _parses(code):
        return code
    mended = code.replace("\\n", "\n")
    return mended if _parses(mended) else code


def _parses(text: str) -> bool:
    import ast

    if not text.strip():
        return False
    try:
        ast.parse(text)
    except SyntaxError:
        return False
    return True


def _mended(attempt: Attempt, promised: dict[str, str], shown: str = "") -> str:
    """``attempt``'s program with a known slip mended, or '' when it has none (``shown``: the prompt's worked
    programs, whose value names are never taken for the promised one)."""
    if attempt.ok:
        return ""
    return _with_promised_names(attempt, promised, shown) or _curve_fit_unpacked(attempt)


_FLAT_UNPACK = re.compile(r"^(\s*)\(?((?:\w+\s*,\s*)+\w+)\)?\s*=\s*((?:\w+\.)*curve_fit\()", re.MULTILINE)
_COVARIANCE_NAMES = {"_", "pcov", "cov", "covariance", "errors"}


def _curve_fit_unpacked(attempt: Attempt) -> str:
    """``a, b, c = curve_fit(...)`` (or ``a, b, c, _ = ...``) as ``(a, b, c), _ = curve_fit(...)``, when the run
    failed unpacking it: curve_fit returns (parameters, covariance)."""
    if "values to unpack" not in attempt.report or "curve_fit" not in attempt.report:
        return ""

    def regrouped(match: re.Match[str]) -> str:
        names = [name.strip() for name in match.group(2).split(",")]
        if len(names) == 2 and names[1] in _COVARIANCE_NAMES:
            return match.group(0)
        parameters = names[:-1] if names[-1] in _COVARIANCE_NAMES else names
        return f"{match.group(1)}({', '.join(parameters)}), _ = {match.group(3)}"

    mended = _FLAT_UNPACK.sub(regrouped, attempt.code)
    return mended if mended != attempt.code else ""


def _with_promised_names(attempt: Attempt, promised: dict[str, str], shown: str = "") -> str:
    """``attempt``'s program printing its one missing value under the promised name, when it printed it under
    another name sharing a word ("mean_pair_pt_gev" for "mean"), the only such name. Never a name the worked
    program prints: that value is the example's own quantity (a pair's mass copied where its pT was asked), and
    the model must hear that the promised value is missing. '' when nothing qualifies."""
    missing = [name for name in promised if name not in attempt.values]
    if len(missing) != 1:
        return ""
    words = set(missing[0].split("_"))
    candidates = [name for name in attempt.values
                  if name not in promised and words & set(name.split("_")) and name not in shown]
    if len(candidates) != 1:
        return ""
    renamed = re.sub(rf"""(["']){re.escape(candidates[0])}\1""", repr(missing[0]), attempt.code)
    return renamed if renamed != attempt.code else ""


def _error_line(report: str) -> str:
    """The most specific error in a report: the exception line of a traceback, else its first error."""
    lines = [line.strip() for line in report.splitlines() if line.strip()]
    exceptions = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception|Warning)\b.*:", line)]
    if exceptions:
        return exceptions[-1]
    errors = [line.removeprefix("- ") for line in lines if line.startswith("- ") and not line.startswith("- warning")]
    return errors[0] if errors else ""
