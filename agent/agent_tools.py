r"""Tools that live in the agent, not the tool layer, because they need the model: ``write_code``.

``write_code`` is how a request no tool covers reaches generated code from the loop: the planner (or
the step-by-step model) says *what* to compute, on which inputs, and which values to print; the code
itself is written in a separate, focused conversation that shows each input's awkward row type and the
sandbox conventions (``INPUTS``/``INPUT_FILES``), run by ``run_python``, validated and repaired
(:func:`physagent.agent.repair.write_and_run`). Its result is the last ``run_python`` result, so an
answer's placeholders read ``{$N.values.fraction}``.

:func:`spec` looks a tool up here first, then in the registry.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from physagent.tools import ARTIFACT_ID_PATTERN, Accepts, ToolSpec, registry, tool_spec
from physagent.tools.code import RunPythonResult, ValueCheck

if TYPE_CHECKING:
    from physagent.agent.execution import Run

__all__ = ["AGENT_TOOLS", "WRITE_CODE", "is_known", "spec", "values_by_name"]

WRITE_CODE = "write_code"
_InputRef = Annotated[str, Accepts(("events", "jets", "table", "histogram", "root", "dataset", "model", "file")),
                      Field(pattern=ARTIFACT_ID_PATTERN)]


def write_code(
    task: Annotated[str, Field(min_length=5, max_length=1000, description=(
        "What to compute, in words, with every cut and unit: e.g. 'the fraction of events with at least "
        "four jets with pT > 30 GeV'.")
    )],
    inputs: Annotated[list[_InputRef], Field(min_length=1, max_length=10, description=(
        "Artifacts the code reads: '$N.field' of an earlier step, or a session artifact id."))],
    values: Annotated[dict[str, str], Field(min_length=1, max_length=10, description=(
        "Values the code prints, name → type ('float', 'int', 'list[float]'); the answer uses "
        "{$N.values.<name>}."))],
    checks: Annotated[dict[str, ValueCheck] | None, Field(description=(
        "Physics checks per value, e.g. {'fraction': {'quantity': 'fraction'}}."))] = None,
) -> RunPythonResult:
    """Compute what no tool covers: the code is written for you, run in the sandbox and validated.

    Give the task in words, the input artifacts and the values to print; read them as {$N.values.<name>}.
    """
    raise RuntimeError("write_code runs inside the agent loop (agent.execution.Run), never directly")


AGENT_TOOLS: dict[str, ToolSpec] = {WRITE_CODE: tool_spec(write_code, category="code", cacheable=False)}


_TYPES = ("float", "int", "bool", "str", "list[float]", "list[int]", "list[str]")


def values_by_name(values: dict[str, str]) -> dict[str, str]:
    """``values`` with a pair written the wrong way round (``{"float": "$4.mean"}``: type → name) turned into
    name → type, the name taken from the last word of what the model wrote.

    >>> values_by_name({"float": "$4.mean", "n_pairs": "int"})
    {'mean': 'float', 'n_pairs': 'int'}
    """
    mended = {}
    for name, kind in values.items():
        words = re.findall(r"[A-Za-z_]\w*", kind)
        swapped = name in _TYPES and kind not in _TYPES and bool(words)
        mended[words[-1] if swapped else name] = name if swapped else kind
    return mended


def spec(name: str) -> ToolSpec:
    """An agent tool or a registered tool by name (``ToolInputError`` naming the known ones otherwise)."""
    return AGENT_TOOLS.get(name) or registry.get(name)


def is_known(name: str) -> bool:
    return name in AGENT_TOOLS or name in registry


def run_write_code(run: Run, arguments: dict[str, Any]) -> tuple[Any, str]:
    """Write, run and repair the code; returns (a CallOutcome of the last run or None, the error)."""
    from physagent.agent.backends import Usage
    from physagent.agent.repair import write_and_run
    from physagent.tools import CallOutcome

    validated = spec(WRITE_CODE).validate(arguments).model_dump()
    validated["values"] = values_by_name(validated["values"])
    result = write_and_run(validated["task"], backend=run.a.backend, workspace=run.a.workspace,
                           inputs=validated["inputs"], values=validated["values"], checks=validated["checks"],
                           session=run.a.session, request=run.request)
    run.usage += Usage(result.prompt_tokens, result.completion_tokens)
    if not result.ok or result.final is None:
        return None, result.error or "the generated code did not validate"
    call_id = result.attempts[-1].call_id or ""
    return CallOutcome(call_id=call_id, tool="run_python", result=result.final, cached=False, wall_s=0.0), ""
