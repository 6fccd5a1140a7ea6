r"""The tool registry: one decorated, typed function → schema, validation, CLI, REST and MCP.

>>> from typing import Annotated
>>> from pydantic import Field
>>> class Sum(ToolResult):
...     total: int = Field(description="The sum.")
>>> @tool(category="demo")
... def add(a: Annotated[int, Field(description="First term.")],
...         b: Annotated[int, Field(description="Second term.")] = 1) -> Sum:
...     '''Add two integers.'''
...     return Sum(total=a + b)
>>> registry.get("add").validate({"a": 2}).model_dump()
{'a': 2, 'b': 1}
>>> registry.get("add").validate({"a": "two"})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
physagent.tools._errors.ToolInputError: add: a='two' must be a valid integer, ... — First term.
>>> registry.remove("add")

The registry refuses, at import time, a tool whose parameters are untyped or undocumented or whose
return type is not a :class:`ToolResult`.

Input rules every tool gets from the registry (one place, so no tool can forget them):

- a float parameter rejects NaN and ±Infinity (``allow_inf_nan=False`` on every argument model; a
  parameter that means to accept them says so with ``Field(allow_inf_nan=True)`` and in its description);
- a list parameter holds at most :data:`MAX_ITEMS` items unless it declares ``max_length``;
- an integer parameter without its own limits stays within int64 (:data:`INT_RANGE`), what numpy, uproot
  and torch can hold;
- a parameter named ``seed`` lies in :data:`SEED_RANGE`, ``0 … 2**32 - 1``, what numpy and
  scikit-learn accept as a seed.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import types
import typing
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from annotated_types import Ge, Le, MaxLen
from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic.fields import FieldInfo
from pydantic.functional_validators import AfterValidator, BeforeValidator, PlainValidator, WrapValidator

from physagent.tools._artifacts import Accepts, Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError

__all__ = ["INT_RANGE", "MAX_ITEMS", "SEED_RANGE", "Registry", "ToolResult", "ToolSpec", "registry", "tool",
           "tool_spec"]

F = TypeVar("F", bound=Callable[..., Any])

#: Most items a list parameter takes when its tool declares no ``max_length`` of its own.
MAX_ITEMS = 10_000
#: Range of an integer parameter without limits of its own: int64, what numpy, uproot and torch hold.
INT_RANGE = (-(2**63), 2**63 - 1)
#: Range of every parameter named ``seed``: what numpy and scikit-learn accept.
SEED_RANGE = (0, 2**32 - 1)
#: Configuration of every tool's argument model: unknown keys and non-finite floats are refused.
_INPUT_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)
_SIZED = (list, set, frozenset)
_VALIDATORS = (AfterValidator, BeforeValidator, PlainValidator, WrapValidator)


class ToolResult(BaseModel):
    """Base of every tool's result: inline values plus artifacts (fields typed ``Artifact``)."""

    model_config = ConfigDict(extra="forbid")

    def observation(self) -> str | None:
        """What an LLM reads of this result, when plain JSON of the values would not fit (None: the JSON)."""
        return None

    def artifacts(self) -> list[Artifact]:
        """Every artifact in the result, in field order."""
        found: list[Artifact] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            items = value if isinstance(value, list) else [value]
            found += [item for item in items if isinstance(item, Artifact)]
        return found


@dataclass(frozen=True)
class ToolSpec:
    """Everything known about one registered tool."""

    name: str
    category: str
    version: str
    description: str
    function: Callable[..., ToolResult]
    input_model: type[BaseModel]
    result_model: type[ToolResult]
    artifact_params: dict[str, tuple[str, ...]]
    wants_context: bool
    cacheable: bool = True  # False for tools whose answer depends on state outside their inputs
    file_params: tuple[str, ...] = ()  # parameters naming host files: their content joins the cache key

    @property
    def summary(self) -> str:
        """The first docstring line: one imperative sentence."""
        return self.description.splitlines()[0]

    @property
    def read_only(self) -> bool:
        """True when a call adds no artifact to the workspace: the result model holds no :class:`Artifact`
        anywhere, so the tool returns none (e.g. ``search_knowledge``). The call is still logged in the
        provenance record, and derived caches (a search index) may be refreshed."""
        return not _holds_artifacts(self.result_model)

    @property
    def idempotent(self) -> bool:
        """True when repeating a call with the same inputs gives the same result and no new artifact:
        a cacheable tool (deterministic given its inputs and seed) replays the stored call."""
        return self.cacheable

    def parameters_schema(self) -> dict[str, Any]:
        """JSON schema of the parameters (what an LLM or a form sees)."""
        schema = self.input_model.model_json_schema()
        schema.pop("title", None)
        return schema

    def catalogue_text(self) -> str:
        """The tool described in words (name, description, parameters with types, defaults and allowed
        values): what a person or a retriever reads to pick it."""
        schema = self.parameters_schema()
        required = set(schema.get("required", []))
        lines = [f"{self.name} (category {self.category}): {self.description}", "Parameters:"]
        for name, prop in schema.get("properties", {}).items():
            lines.append(_parameter_line(name, _resolve_ref(prop, schema), name in required))
        return "\n".join(lines)

    def json_schema(self) -> dict[str, Any]:
        """The tool as an LLM function definition: name, description, parameters."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters_schema()}

    def validate(self, arguments: dict[str, Any]) -> BaseModel:
        """Validate raw arguments; raise :class:`ToolInputError` naming the parameter and the rule."""
        if not isinstance(arguments, dict):
            raise ToolInputError(f"{self.name}: arguments must be a JSON object, got {arguments!r}.",
                                 tool=self.name, value=arguments)
        try:
            return self.input_model.model_validate(arguments)
        except ValidationError as exc:
            raise self.explain(exc) from None

    def explain(self, exc: ValidationError) -> ToolInputError:
        """The error a front end shows for a pydantic validation failure of these arguments."""
        error = exc.errors()[0]
        param = ".".join(str(part) for part in error["loc"]) or "arguments"
        field = self.input_model.model_fields.get(str(error["loc"][0])) if error["loc"] else None
        value = error.get("input")
        if error["type"] == "extra_forbidden":
            allowed = ", ".join(self.input_model.model_fields)
            message = f"{self.name}: unknown parameter {param!r}. Allowed parameters: {allowed}."
        elif error["type"] == "missing":
            hint = f" ({field.description})" if field and field.description else ""
            message, value = f"{self.name}: parameter {param!r} is required{hint}.", None
        else:
            problem = re.sub(r"^(Input|String|List|Dictionary|Value) should", "must", error["msg"])
            problem = problem.replace("Value error, ", "").replace(" after validation", "")
            hint = f" — {field.description}" if field and field.description else ""
            more = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
            message = f"{self.name}: {param}={_short_repr(value)} {problem}{hint}{more}"
        return ToolInputError(message, tool=self.name, param=param, value=value)

    def example(self) -> dict[str, Any]:
        """Example arguments: a value for each required parameter (defaults fill in the rest)."""
        properties = self.parameters_schema().get("properties", {})
        example: dict[str, Any] = {}
        for name, field in self.input_model.model_fields.items():
            if field.is_required():
                enum = properties.get(name, {}).get("enum")
                example[name] = (field.examples or enum or [f"<{name}>"])[0]
        return example


def _short_repr(value: Any, limit: int = 120) -> str:
    """``repr(value)`` on one line and at most ``limit`` characters (a 10,000-item list is not echoed)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f" ({len(value)} items)" if isinstance(value, list | dict | tuple | set) else ""
    return f"{text[:limit - 3]}...{size}"


def _parameter_line(name: str, schema: dict[str, Any], required: bool) -> str:
    kind = schema.get("type") or "/".join(str(s.get("type", "")) for s in schema.get("anyOf", [])) or "value"
    extras = []
    if "enum" in schema:
        extras.append("one of " + ", ".join(map(str, schema["enum"])))
    if "default" in schema:
        extras.append(f"default {json.dumps(schema['default'])}")
    if required:
        extras.append("required")
    suffix = f" [{'; '.join(extras)}]" if extras else ""
    return f"- {name} ({kind}){suffix}: {schema.get('description', '')}"


def _holds_artifacts(annotation: Any, seen: frozenset[type] = frozenset()) -> bool:
    """Whether a type, or any type inside it (unions, lists, nested models), is an :class:`Artifact`."""
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        if issubclass(annotation, Artifact) or annotation in seen:
            return issubclass(annotation, Artifact)
        return any(_holds_artifacts(f.annotation, seen | {annotation}) for f in annotation.model_fields.values())
    return any(_holds_artifacts(arg, seen) for arg in typing.get_args(annotation))


def _resolve_ref(prop: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Inline a ``$ref`` to a definition (enums of Literal types live there)."""
    ref = prop.get("$ref") or next((s.get("$ref") for s in prop.get("allOf", []) if "$ref" in s), None)
    if not ref:
        return prop
    definition = schema.get("$defs", {}).get(ref.split("/")[-1], {})
    return {**definition, **{k: v for k, v in prop.items() if k not in ("$ref", "allOf")}}


class Registry:
    """Name → :class:`ToolSpec`. Import :mod:`tools` to get every built-in tool registered."""

    def __init__(self) -> None:
        self._tools: dict[str, ToolSpec] = {}

    def add(self, spec: ToolSpec) -> None:
        if spec.name in self._tools and self._tools[spec.name].function is not spec.function:
            raise ValueError(f"a tool named {spec.name!r} is already registered")
        self._tools[spec.name] = spec

    def remove(self, name: str) -> None:
        """Unregister a tool (e.g. one a test or a plugin added for a while)."""
        self._tools.pop(name, None)

    def get(self, name: str) -> ToolSpec:
        try:
            return self._tools[name]
        except KeyError:
            known = ", ".join(sorted(self._tools))
            raise ToolInputError(f"unknown tool {name!r}. Known tools: {known}.", tool=name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(sorted(self._tools.values(), key=lambda s: (s.category, s.name)))

    def __len__(self) -> int:
        return len(self._tools)

    def names(self) -> list[str]:
        return sorted(self._tools)


registry = Registry()


def tool(*, category: str, version: str = "1", name: str | None = None, cacheable: bool = True,
         file_params: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Register a typed function as a tool; see the module docstring.

    ``cacheable=False`` for tools whose result depends on more than their inputs and input artifacts
    (e.g. a search over a knowledge base that changes): every call then runs. ``file_params`` names the
    parameters that hold a host file's path (read through ``ctx.input_file``): the runner hashes the file's
    content into the cache key, so an edited file is never answered from a stale result.
    """

    def register(function: F) -> F:
        spec = _build_spec(function, category, version, name or function.__name__, cacheable)
        unknown = [p for p in file_params if p not in spec.input_model.model_fields]
        if unknown:
            raise TypeError(f"tool {spec.name}: file_params {unknown} are not parameters of the tool")
        registry.add(dataclasses.replace(spec, file_params=tuple(file_params)))
        return function

    return register


def tool_spec(function: Callable[..., Any], *, category: str, version: str = "1", name: str | None = None,
              cacheable: bool = True) -> ToolSpec:
    """A spec for a typed function without registering it: for tools that live above the tool layer
    (the agent's ``write_code`` needs a model), validated by the same rules as :func:`tool`."""
    return _build_spec(function, category, version, name or function.__name__, cacheable)


def _build_spec(function: Callable[..., Any], category: str, version: str, name: str,
                cacheable: bool = True) -> ToolSpec:
    description = inspect.cleandoc(function.__doc__ or "")
    if not description:
        raise TypeError(f"tool {name}: add a docstring; its first line is what the LLM sees")
    hints = typing.get_type_hints(function, include_extras=True)
    result_model = hints.get("return")
    if not (inspect.isclass(result_model) and issubclass(result_model, ToolResult)):
        raise TypeError(f"tool {name}: the return annotation must be a ToolResult subclass")
    fields: dict[str, Any] = {}
    artifact_params: dict[str, tuple[str, ...]] = {}
    wants_context = False
    for param in inspect.signature(function).parameters.values():
        annotation = hints.get(param.name)
        if annotation is ToolContext:
            wants_context = True
            continue
        _check_documented(name, param.name, annotation)
        default = ... if param.default is inspect.Parameter.empty else param.default
        ints = SEED_RANGE if param.name == "seed" else INT_RANGE
        fields[param.name] = (_bounded(annotation, (), ints, f"tool {name}: parameter {param.name!r}"), default)
        kinds = _accepted_kinds(annotation)
        if kinds:
            artifact_params[param.name] = kinds
    model_name = "".join(part.title() for part in name.split("_")) + "Input"
    with warnings.catch_warnings():  # a parameter named like a BaseModel attribute ('schema') is fine here
        warnings.filterwarnings("ignore", message="Field name .* shadows an attribute", category=UserWarning)
        input_model = create_model(model_name, __config__=_INPUT_CONFIG, **fields)
    return ToolSpec(
        name, category, version, description, function, input_model, result_model,
        artifact_params, wants_context, cacheable,
    )


def _bounded(annotation: Any, known: tuple[Any, ...], ints: tuple[int, int], where: str) -> Any:
    """``annotation`` with the registry's limits (module docstring) added wherever the tool declared none.

    ``known`` holds the constraints of the enclosing ``Annotated`` layers (they reach through
    ``X | None``). Added constraints go after the tool's own: pydantic lets the last one of a kind win,
    and ours are only added where they are tighter.
    """
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        inner, *meta = typing.get_args(annotation)
        rebuilt = _bounded(inner, (*known, *_constraints(meta)), ints, where)
        if typing.get_origin(rebuilt) is Annotated:  # our additions: behind the tool's limits, before its validators
            base, *added = typing.get_args(rebuilt)
            cut = next((i for i, item in enumerate(meta) if isinstance(item, _VALIDATORS)), len(meta))
            return Annotated[(base, *meta[:cut], *added, *meta[cut:])]
        return Annotated[(rebuilt, *meta)]
    if origin in (typing.Union, types.UnionType):
        args = tuple(_bounded(arg, known, ints, where) for arg in typing.get_args(annotation))
        return typing.Union[args]  # noqa: UP007 (rebuilt from a tuple of members)
    if origin in (*_SIZED, dict):
        args = tuple(_bounded(arg, (), INT_RANGE, where) for arg in typing.get_args(annotation))
        rebuilt = origin[args] if args else annotation
        if origin is dict:  # bounded by the front ends' body limits; llguidance has no maxProperties
            return rebuilt
        has_max = any(getattr(c, "max_length", None) is not None for c in known)
        return rebuilt if has_max else Annotated[rebuilt, MaxLen(MAX_ITEMS)]
    if annotation is int:
        added = _int_limits(known, ints)
        return Annotated[(int, *added)] if added else int
    nested_model = inspect.isclass(annotation) and issubclass(annotation, BaseModel)
    if nested_model and annotation.model_config.get("allow_inf_nan", True):
        raise TypeError(f"{where}: model {annotation.__name__} must set ConfigDict(allow_inf_nan=False) "
                        "so its floats refuse NaN and ±inf like every tool parameter")
    return annotation


def _constraints(metadata: Iterable[Any]) -> list[Any]:
    """The constraint objects in ``Annotated`` metadata (a ``Field(...)`` carries its own list)."""
    found: list[Any] = []
    for item in metadata:
        found += item.metadata if isinstance(item, FieldInfo) else [item]
    return found


def _int_limits(known: tuple[Any, ...], ints: tuple[int, int]) -> list[Any]:
    """``Ge``/``Le`` for the ends of ``ints`` the declared constraints leave looser (or open)."""
    low, high = ints
    lows = [c.ge for c in known if getattr(c, "ge", None) is not None]
    lows += [c.gt + 1 for c in known if getattr(c, "gt", None) is not None]
    highs = [c.le for c in known if getattr(c, "le", None) is not None]
    highs += [c.lt - 1 for c in known if getattr(c, "lt", None) is not None]
    added: list[Any] = []
    if not lows or max(lows) < low:
        added.append(Ge(low))
    if not highs or min(highs) > high:
        added.append(Le(high))
    return added


def _check_documented(tool_name: str, param: str, annotation: Any) -> None:
    if annotation is None:
        raise TypeError(f"tool {tool_name}: parameter {param!r} has no type annotation")
    infos = [m for m in getattr(annotation, "__metadata__", ()) if isinstance(m, FieldInfo)]
    if not any(info.description for info in infos):
        raise TypeError(
            f"tool {tool_name}: parameter {param!r} needs Annotated[..., Field(description=...)]"
        )


def _accepted_kinds(annotation: Any) -> tuple[str, ...]:
    """Artifact kinds accepted by a parameter, found anywhere in its (nested) annotation."""
    kinds: tuple[str, ...] = ()
    for item in getattr(annotation, "__metadata__", ()):
        if isinstance(item, Accepts):
            kinds += item.kinds
    for arg in typing.get_args(annotation):
        kinds += _accepted_kinds(arg)
    return tuple(dict.fromkeys(kinds))
