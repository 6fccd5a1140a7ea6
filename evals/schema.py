r"""The eval task schema: a request, its setup and conversation, and what a correct run shows.

The header of ``evals/basic.yaml`` documents every field for suite authors; these models validate it.
Every reference in a task — a tool, a tool's parameter or result field, a setup step, a file, an
artifact check — is checked when the suite loads (:mod:`physagent.evals.suite`), so a typo fails at
once with the file, the task and the field named.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from physagent.tools import registry

__all__ = [
    "MEASURES", "ArgumentMatch", "ArtifactCheck", "ArtifactKind", "EvalSuiteError", "Expectation", "FileSpec",
    "NumberExpectation", "SetupStep", "Task", "substitute",
]

ArtifactKind = Literal["events", "jets", "table", "histogram", "plot", "root", "dataset", "model", "script", "file",
                       "showers", "generator", "anomaly_dataset", "monitoring", "posterior", "hls_project",
                       "hepmc"]

# measure → the artifact kinds it can be recomputed from (see physagent.evals.measures)
MEASURES: dict[str, tuple[str, ...]] = {
    "n_rows": ("events", "jets", "table", "dataset", "anomaly_dataset", "monitoring"),
    "n_jets": ("jets",),
    "column_mean": ("events", "jets", "table", "dataset", "anomaly_dataset"),
    "entries": ("histogram",),
    "sum_weights": ("histogram",),
    "mean": ("histogram",),
    "std": ("histogram",),
    "peak": ("histogram",),
    "tree_entries": ("root",),
    "auc": ("model",),
    "n_showers": ("showers",),
    "shower_energy_mean": ("showers",),
    "bytes": ("events", "jets", "table", "histogram", "plot", "root", "dataset", "model", "script", "file",
              "showers", "generator", "anomaly_dataset", "monitoring", "posterior", "hls_project", "hepmc"),
}

_NAME = r"^[a-z][a-z0-9_]*$"
# {files.NAME} and {setup.NAME} or {setup.NAME.field} in requests and setup arguments
PLACEHOLDER = re.compile(r"\{(files|setup)\.([a-z][a-z0-9_]*)(?:\.([A-Za-z_][\w.]*))?\}")


class EvalSuiteError(ValueError):
    """A suite file or a task selection is malformed; the message names the file, task and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# expectations --------------------------------------------------------------------------------------


class ArgumentMatch(_Strict):
    """How one argument is judged: ``equals`` a value, is ``one_of`` several, lies in ``[min, max]``, or is
    the id of an artifact of kind ``earlier`` made before the judged request (by setup or an earlier turn)."""

    equals: Any = None
    one_of: list[Any] | None = None
    min: float | None = None
    max: float | None = None
    earlier: ArtifactKind | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_value_means_equals(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else {"equals": value}

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> ArgumentMatch:
        kinds = [self.equals is not None, self.one_of is not None, self.min is not None or self.max is not None,
                 self.earlier is not None]
        if sum(kinds) != 1:
            raise ValueError("give a bare value, or a mapping with exactly one of: equals, one_of, min/max, earlier")
        return self

    def matches(self, value: Any, earlier: dict[str, str] | None = None) -> bool:
        """Whether ``value`` passes; ``earlier`` maps the ids made before the judged request to their kinds."""
        if self.earlier is not None:
            ids = value if isinstance(value, list) else [value]
            return bool(ids) and all(isinstance(i, str) and (earlier or {}).get(i) == self.earlier for i in ids)
        if self.one_of is not None:
            return any(same(value, option) for option in self.one_of)
        if self.equals is not None:
            return same(value, self.equals)
        return is_number(value) and in_range(float(value), self.min, self.max)

    def describe(self) -> str:
        if self.earlier is not None:
            article = "an" if self.earlier[0] in "aeiou" else "a"
            return f"the id of {article} {self.earlier} artifact made before this request"
        if self.one_of is not None:
            return "one of " + ", ".join(map(repr, self.one_of))
        return repr(self.equals) if self.equals is not None else range_text(self.min, self.max)


class NumberExpectation(_Strict):
    """A quantity the run must show.

    - ``min``/``max`` without ``from``: some number of the answer lies in the range (``in_answer``), and/or the
      ``result`` field of the first successful call lies there;
    - ``from``: the reference value — an artifact check's recomputation or ``tool.field`` (a dotted path into
      the result) — must lie in ``min``/``max`` when given, and some number of the answer must equal it
      within ``rel_tol``/``abs_tol`` (a percentage written with ``%`` counts as its fraction).
    """

    in_answer: bool = True
    result: str | None = Field(default=None, description="'tool.field' of the first successful call's result.")
    source: str | None = Field(default=None, alias="from",
                               description="An artifact check's name, or 'tool.field.path' of a result.")
    rel_tol: float = Field(default=0.02, ge=0, le=1)
    abs_tol: float = Field(default=0.0, ge=0)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _is_checkable(self) -> NumberExpectation:
        if self.min is None and self.max is None and self.source is None:
            raise ValueError("give min, max, or from")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min={self.min} is above max={self.max}")
        bounded = self.min is not None or self.max is not None
        if not self.in_answer and self.result is None and (self.source is None or not bounded):
            raise ValueError("in_answer is false and no result field or range of 'from' is given: nothing to check")
        if self.result is not None and self.min is None and self.max is None:
            raise ValueError("result needs min, max or both")
        return self


class ArtifactCheck(_Strict):
    """A value recomputed from an artifact's file, optionally with bounds.

    The artifact is the last (``pick: first``: first) of kind ``kind`` — made by ``made_by`` when given — in
    the judged request's artifacts (``turn: any``: in the first turn that has one, looking at the judged
    request, the history turns newest first, then the visible setup).
    """

    kind: ArtifactKind
    measure: str
    field: str | None = Field(default=None, description="column_mean: the column, e.g. 'score'.")
    made_by: str | None = None
    turn: Literal["request", "any"] = "request"
    pick: Literal["last", "first"] = "last"
    equals: float | None = None
    min: float | None = None
    max: float | None = None
    rel_tol: float = Field(default=1e-9, ge=0, le=1, description="Tolerance of 'equals'.")

    @model_validator(mode="after")
    def _measure_fits_kind(self) -> ArtifactCheck:
        if self.measure not in MEASURES:
            raise ValueError(f"unknown measure {self.measure!r}; known: {', '.join(MEASURES)}")
        if self.kind not in MEASURES[self.measure]:
            raise ValueError(f"measure {self.measure!r} reads {', '.join(MEASURES[self.measure])} artifacts, "
                             f"not {self.kind!r}")
        if (self.measure == "column_mean") != (self.field is not None):
            raise ValueError("field is required by column_mean, and only by it")
        if self.made_by is not None and self.made_by not in registry:
            raise ValueError(f"made_by: unknown tool {self.made_by!r}")
        if self.equals is not None and (self.min is not None or self.max is not None):
            raise ValueError("give equals or min/max, not both")
        return self

    def describe(self) -> str:
        field = f"({self.field})" if self.field else ""
        return f"{self.measure}{field} of the {self.pick} {self.kind} artifact"


class Expectation(_Strict):
    """What a correct run shows (every field optional; an empty expectation passes any finished run)."""

    tools: list[str] = Field(default_factory=list, description="Called successfully, in this order (subsequence).")
    attempted: list[str] = Field(default_factory=list, description="Called, successfully or not: a refusal must come "
                                 "from the tool's own check (e.g. synthesis without the vendor tools installed).")
    artifacts: list[ArtifactKind] = Field(default_factory=list, description="Artifact kinds that must exist.")
    arguments: dict[str, ArgumentMatch] = Field(default_factory=dict, description="'tool.param' → expected value.")
    numbers: dict[str, NumberExpectation] = Field(default_factory=dict)
    artifact_checks: dict[str, ArtifactCheck] = Field(default_factory=dict,
                                                      description="Values recomputed from the artifacts' files.")
    grounded: bool = Field(default=True, description="No number in the answer lacks a source or is mislabelled.")
    answer_contains: list[str] = Field(default_factory=list, description="Phrases the answer must contain "
                                       "(case-insensitive).")
    cites: bool = Field(default=False, description="The answer cites a retrieved passage as [source: title].")
    cite_source: str | None = Field(default=None, description="The cited passage's citation must contain this, "
                                    "e.g. the source file's name (implies cites).")
    finished: bool = Field(default=True, description="The run ended with an answer, not at a step/time limit.")
    refusal: bool = Field(default=False, description="The run must end in a refusal: no successful call that "
                          "makes an artifact, and an answer that says it cannot.")

    @field_validator("tools", "attempted")
    @classmethod
    def _known_tools(cls, tools: list[str]) -> list[str]:
        unknown = [t for t in tools if t not in registry]
        if unknown:
            raise ValueError(f"unknown tool(s) {unknown}; registered: {', '.join(s.name for s in registry)}")
        return tools

    @model_validator(mode="after")
    def _references_resolve(self) -> Expectation:
        for key in self.arguments:
            _check_reference(key, self.tools, "arguments", lambda spec: spec.input_model.model_fields)
        for name, number in self.numbers.items():
            if number.result:
                _check_reference(number.result, self.tools, f"numbers.{name}.result",
                                 lambda spec: spec.result_model.model_fields)
            if number.source and "." not in number.source and number.source not in self.artifact_checks:
                raise ValueError(f"numbers.{name}.from: {number.source!r} is neither an artifact check "
                                 f"({', '.join(self.artifact_checks) or 'none'}) nor 'tool.field'")
            if number.source and "." in number.source:
                _check_reference(number.source, list(registry.names()), f"numbers.{name}.from",
                                 lambda spec: spec.result_model.model_fields)
        if self.refusal and (self.artifacts or self.artifact_checks):
            raise ValueError("a refusal makes no artifacts: drop artifacts and artifact_checks")
        return self

    @property
    def from_tools(self) -> list[str]:
        """Tools named by ``numbers.*.from`` as 'tool.field'."""
        return [n.source.partition(".")[0] for n in self.numbers.values() if n.source and "." in n.source]


def _check_reference(dotted: str, tools: list[str], where: str, fields: Callable[[Any], dict[str, Any]]) -> None:
    tool, _, path = dotted.partition(".")
    name = path.partition(".")[0]
    if tool not in tools:
        raise ValueError(f"{where}: {dotted!r} names tool {tool!r}, which is not in expect.tools {tools}")
    known = fields(registry.get(tool))
    if name not in known:
        raise ValueError(f"{where}: {tool} has no field {name!r}; it has: {', '.join(known)}")


# setup, files and the conversation ------------------------------------------------------------------


class SetupStep(_Strict):
    """A tool call made before the request, not by the agent and not judged.

    String arguments may name an earlier step's artifact as ``{setup.NAME}`` (its first artifact) or a
    result field as ``{setup.NAME.field}``, and a file as ``{files.NAME}``.
    """

    name: str = Field(pattern=_NAME)
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)

    @field_validator("tool")
    @classmethod
    def _registered(cls, tool: str) -> str:
        if tool not in registry:
            raise ValueError(f"unknown tool {tool!r}; registered: {', '.join(registry.names())}")
        return tool

    @model_validator(mode="after")
    def _known_arguments(self) -> SetupStep:
        known = registry.get(self.tool).input_model.model_fields
        unknown = sorted(set(self.arguments) - set(known))
        if unknown:
            raise ValueError(f"{self.tool} has no parameter(s) {unknown}; it has: {', '.join(known)}")
        return self


class FileSpec(_Strict):
    """A file of the physicist's: a setup artifact's file copied (``from``), or literal ``text``, written as
    ``<task directory>/data/<name>``; requests name it as ``{files.NAME}`` (the absolute path)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", description="File name in the data folder.")
    source: str | None = Field(default=None, alias="from", description="A setup step's name.")
    file: str | None = Field(default=None, description="Which file of the artifact (default: its primary file).")
    text: str | None = None

    @model_validator(mode="after")
    def _one_origin(self) -> FileSpec:
        if (self.source is None) == (self.text is None):
            raise ValueError("give exactly one of: from (a setup step), text")
        if self.file is not None and self.source is None:
            raise ValueError("file only applies with from")
        return self


class Task(_Strict):
    """One judged request of a suite, what runs before it, and what a correct run of it shows."""

    id: str = Field(pattern=_NAME)
    request: str = Field(min_length=1)
    expect: Expectation = Field(default_factory=Expectation)
    max_steps: int = Field(default=8, ge=1, le=50, description="Model turns allowed (per request).")
    max_seconds: float = Field(default=300.0, gt=0, description="Wall-time cap of each request.")
    tags: list[str] = Field(default_factory=list, description="e.g. explicit, implicit, multi_step.")
    knowledge: Literal["none", "sample"] = Field(
        default="none", description="'sample': the task's workspace starts with the sample corpus ingested.")
    setup: list[SetupStep] = Field(default_factory=list, description="Tool calls made before the request.")
    setup_visible: bool = Field(default=True, description="false: setup runs in a scratch workspace, so only the "
                                "copied files reach the agent.")
    files: dict[str, FileSpec] = Field(default_factory=dict, description="NAME → a file under the task directory.")
    history: list[str] = Field(default_factory=list, description="Earlier requests of the same conversation, run "
                               "through the same assistant and not judged.")
    suite: str = Field(default="", description="Set by load_suite: the stem of the file the task came from.")

    @model_validator(mode="after")
    def _references_resolve(self) -> Task:
        steps = [s.name for s in self.setup]
        duplicates = sorted(n for n, c in Counter(steps).items() if c > 1)
        if duplicates:
            raise ValueError(f"setup: duplicate step names {duplicates}")
        for name, spec in self.files.items():
            if spec.source is not None and spec.source not in steps:
                raise ValueError(f"files.{name}.from: no setup step {spec.source!r} (steps: {steps or 'none'})")
        for i, step in enumerate(self.setup):
            _check_placeholders(f"setup.{step.name}", _strings(step.arguments), steps[:i], self.files, True)
        for where, text in [("request", self.request), *((f"history.{i}", h) for i, h in enumerate(self.history))]:
            _check_placeholders(where, [text], steps if self.setup_visible else [], self.files, self.setup_visible)
        earlier_turns = bool(self.history or self.setup)
        if not earlier_turns and any(a.earlier for a in self.expect.arguments.values()):
            raise ValueError("expect.arguments: 'earlier' needs setup or history")
        if not earlier_turns and any(c.turn == "any" for c in self.expect.artifact_checks.values()):
            raise ValueError("expect.artifact_checks: turn 'any' needs setup or history")
        stray = [t for t in self.expect.from_tools if t not in self.expect.tools and not earlier_turns]
        if stray:
            raise ValueError(f"expect.numbers: 'from' names {stray}, not in expect.tools and no history or setup")
        return self


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def _check_placeholders(where: str, texts: Iterable[str], steps: list[str], files: dict[str, FileSpec],
                        setup_allowed: bool) -> None:
    for text in texts:
        for match in PLACEHOLDER.finditer(text):
            group, name = match.group(1), match.group(2)
            if group == "files" and name not in files:
                raise ValueError(f"{where}: {match.group(0)} names no file (files: {', '.join(files) or 'none'})")
            if group == "setup" and not setup_allowed:
                raise ValueError(f"{where}: {match.group(0)}: setup_visible is false, so the agent cannot use "
                                 "setup artifacts")
            if group == "setup" and name not in steps:
                raise ValueError(f"{where}: {match.group(0)} names no earlier setup step (steps: "
                                 f"{', '.join(steps) or 'none'})")


def substitute(value: Any, lookup: Callable[[str, str, str | None], Any]) -> Any:
    """``value`` with every ``{files.X}`` / ``{setup.X[.field]}`` replaced by ``lookup(group, name, field)``;
    a string that is exactly one placeholder takes the looked-up value's type."""
    if isinstance(value, dict):
        return {k: substitute(v, lookup) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, lookup) for v in value]
    if not isinstance(value, str):
        return value
    whole = PLACEHOLDER.fullmatch(value)
    if whole:
        return lookup(*whole.groups())
    return PLACEHOLDER.sub(lambda m: str(lookup(*m.groups())), value)


# small helpers shared by the checks ------------------------------------------------------------------


def same(value: Any, expected: Any) -> bool:
    """Equality with numbers compared as numbers (300 == 300.0), lists and dicts element by element."""
    import math

    if is_number(value) and is_number(expected):
        return math.isclose(float(value), float(expected), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(value, list) and isinstance(expected, list):
        return len(value) == len(expected) and all(map(same, value, expected))
    if isinstance(value, dict) and isinstance(expected, dict):
        return value.keys() == expected.keys() and all(same(value[k], expected[k]) for k in value)
    return bool(value == expected)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def in_range(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def range_text(low: float | None, high: float | None) -> str:
    if low is None:
        return f"≤ {high:g}"
    return f"≥ {low:g}" if high is None else f"[{low:g}, {high:g}]"
