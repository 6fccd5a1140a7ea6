r"""Tools as a small code model reads them: Python signatures with ``Args:`` docstrings.

A code model reads a signature well (about 300 tokens per tool, half the JSON schema). With
``results=True`` each signature also lists the result's value fields — the names a plan's answer
uses in placeholders (``{$1.sigma_pb}``) — and its artifact fields (what ``$1.events`` refers to).
:func:`simplify_schema` inlines ``$ref``s and drops keywords llama.cpp's grammar cannot take.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

__all__ = ["inline_refs", "relevant_parameters", "render_tools", "simplify_schema"]

_UNIT_WORDS = frozenset({"gev", "tev", "min", "max", "mm", "pb"})
_LITERAL = frozenset({"default", "enum", "const", "examples", "required", "description", "title"})
_PYTHON_TYPES = {"integer": "int", "number": "float", "string": "str", "boolean": "bool", "null": "None",
                 "object": "dict"}
# Keywords dropped by simplify_schema: llama.cpp either rejects or cannot enforce them.
_UNSUPPORTED = frozenset({"pattern", "format", "not", "if", "then", "else", "dependentSchemas", "dependentRequired",
                          "patternProperties", "propertyNames", "unevaluatedProperties", "contains", "$schema", "$id"})


def simplify_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` with local ``$ref``s inlined and grammar-hostile keywords (patterns...) dropped.

    >>> simplify_schema({"$defs": {"R": {"type": "number", "format": "x"}}, "properties": {"r": {"$ref": "#/$defs/R"}}})
    {'properties': {'r': {'type': 'number'}}}
    """
    definitions = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    return _simplified(copy.deepcopy(schema), definitions, 0, _UNSUPPORTED)


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` with its local ``$ref``s inlined and nothing else changed: a schema nested in a
    larger one (a tool's arguments in the reply schema) keeps no pointer to a ``$defs`` that is not the root.

    >>> inline_refs({"$defs": {"R": {"type": "number", "format": "x"}}, "properties": {"r": {"$ref": "#/$defs/R"}}})
    {'properties': {'r': {'type': 'number', 'format': 'x'}}}
    """
    definitions = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    return _simplified(copy.deepcopy(schema), definitions, 0, frozenset())


def _simplified(node: Any, definitions: dict[str, Any], depth: int, dropped: frozenset[str]) -> Any:
    if isinstance(node, list):
        return [_simplified(item, definitions, depth, dropped) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(("#/$defs/", "#/definitions/")) and depth < 8:  # bounds recursion
        merged = {**definitions.get(ref.rsplit("/", 1)[-1], {}), **{k: v for k, v in node.items() if k != "$ref"}}
        return _simplified(merged, definitions, depth + 1, dropped)
    simplified: dict[str, Any] = {}
    for key, value in node.items():
        if key in dropped or key in ("$ref", "$defs", "definitions"):
            continue  # an unresolvable $ref is dropped too: any value then passes
        if key == "properties" and isinstance(value, dict):  # its keys are parameter names, not keywords
            simplified[key] = {name: _simplified(sub, definitions, depth, dropped) for name, sub in value.items()}
        else:
            simplified[key] = value if key in _LITERAL else _simplified(value, definitions, depth, dropped)
    return simplified


def render_tools(tools: list[dict[str, Any]], returns: dict[str, str] | None = None,
                 shown: dict[str, set[str]] | None = None) -> str:
    '''The offered tools as Python signatures with ``Args:`` docstrings, in a ```python block.

    >>> print(render_tools([{"name": "f", "description": "Do f.", "parameters": {"properties": {
    ...     "n": {"type": "integer", "default": 1, "description": "How many."}}}}]))
    Tools:
    ```python
    def f(n: int = 1):
        """Do f.
    <BLANKLINE>
        Args:
            n: How many.
        """
    ```
    '''
    returns, shown = returns or {}, shown or {}
    signatures = (_signature(tool, returns.get(tool["name"]), shown.get(tool["name"])) for tool in tools)
    return "Tools:\n```python\n" + "\n\n".join(signatures) + "\n```"


def _signature(tool: dict[str, Any], returns: str | None = None, shown: set[str] | None = None) -> str:
    parameters = simplify_schema(tool.get("parameters", {}))
    properties, required = parameters.get("properties", {}), set(parameters.get("required", []))
    if shown is not None:  # a small model reads fewer parameters better: required + relevant ones
        properties = {name: sub for name, sub in properties.items() if name in required or name in shown}
    arguments = [f"{name}: {_python_type(sub)}" + ("" if name in required or "default" not in sub else
                                                  f" = {sub['default']!r}") for name, sub in properties.items()]
    summary = tool.get("description", "").strip().split("\n\n")[0]
    lines = [f"def {tool['name']}({', '.join(arguments)}):", f'    """{summary}']
    if properties:
        lines += ["", "    Args:", *(f"        {name}: {sub.get('description', '')}"
                                      for name, sub in properties.items())]
    if returns:
        lines += ["", f"    Returns: {returns}"]
    return "\n".join([*lines, '    """'])


def _python_type(schema: dict[str, Any]) -> str:
    if "enum" in schema or "const" in schema:
        return "Literal[" + ", ".join(json.dumps(v) for v in schema.get("enum", [schema.get("const")])) + "]"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(_python_type(alternative) for alternative in schema[key])
    kinds = schema.get("type", "Any")
    if isinstance(kinds, list):
        return " | ".join(_python_type({**schema, "type": kind}) for kind in kinds)
    if kinds == "array":
        return f"list[{_python_type(schema.get('items', {}))}]"
    return _PYTHON_TYPES.get(kinds, "Any")




def relevant_parameters(parameters: dict[str, Any], text: str) -> set[str]:
    """Optional parameters the text mentions: a word of the name, one of its enum values, an x-phrase or an
    x-name (what physicists call it: "S/B").

    >>> sorted(relevant_parameters({"properties": {"mpi": {"type": "boolean"}, "isr": {"type": "boolean"},
    ...     "decay": {"enum": ["hadronic", "leptonic"]}}}, "hadronic tops, MPI off"))
    ['decay', 'mpi']
    """
    lowered = text.lower()
    found = set()
    for name, schema in simplify_schema(parameters).get("properties", {}).items():
        words = [w for w in name.split("_") if len(w) >= 3 and w not in _UNIT_WORDS]
        options = [] if schema.get("x-phrases-only") else [
            str(v).lower() for v in _enum_values(schema) if isinstance(v, str) and len(str(v)) >= 3]
        phrases = [p.lower() for p in [*schema.get("x-phrases", {}), *schema.get("x-names", [])]]
        if any(re.search(rf"(?<![\w]){re.escape(w)}", lowered) for w in [*words, *options, *phrases]):
            found.add(name)
    return found


def _enum_values(schema: dict[str, Any]) -> list[Any]:
    values = list(schema.get("enum", []))
    for option in schema.get("anyOf", []):
        values += option.get("enum", [])
    return values
