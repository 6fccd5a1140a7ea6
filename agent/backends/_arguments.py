r"""Keep only the optional arguments a person actually stated: small models invent the rest.

A 0.5B model asked for "300 Drell-Yan events with MPI off" also writes ``pt_hat_max_gev=20`` and
``isr=false``. Optional arguments are therefore kept only when the conversation supports them:

- numbers: the value is written in a user message or a tool observation;
- booleans: a word of the parameter's name (``mpi``, ``hadronisation``/``hadronization``, ``log``)
  appears in a user message;
- strings, lists and objects (enum choices, artifact ids, field names): kept — the tool validates them.

Required arguments are always kept. Dropped arguments take the tool's documented defaults.
"""

from __future__ import annotations

import re
from typing import Any

from physagent.agent.grounding import numbers_in

__all__ = ["fill_stated_arguments", "keep_stated_arguments"]

_SPELLINGS = {"hadronisation": ("hadronisation", "hadronization", "hadronise", "hadronize")}
_UNIT_WORDS = {"gev", "tev", "min", "max", "mm", "pb", "n"}


def keep_stated_arguments(arguments: dict[str, Any], parameters: dict[str, Any],
                          messages: list[dict[str, Any]]) -> dict[str, Any]:
    """``arguments`` without the optional ones the conversation does not state (module docstring)."""
    required = set(parameters.get("required", []))
    user_text = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "user").lower()
    seen_text = " ".join(str(m.get("content", "")) for m in messages if m.get("role") in {"user", "tool"})
    stated_numbers = numbers_in(seen_text)
    return {name: value for name, value in arguments.items()
            if name in required or _stated(name, value, user_text, stated_numbers)}


def _stated(name: str, value: Any, user_text: str, numbers: list[float]) -> bool:
    if isinstance(value, bool):
        words = _SPELLINGS.get(name, tuple(w for w in name.split("_") if w not in _UNIT_WORDS and len(w) >= 3))
        return any(re.search(rf"\b{re.escape(word)}", user_text) for word in words)
    if isinstance(value, (int, float)):
        return any(abs(value - number) <= 1e-9 * max(1.0, abs(number)) for number in numbers)
    return True


def fill_stated_arguments(arguments: dict[str, Any], parameters: dict[str, Any],
                          messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Set the arguments the user stated, where the model left them out or got them wrong.

    A parameter may list phrases that state its value (``"x-phrases": {"leading": 0}`` on
    ``histogram.object_index``, ``{"top quark": "ttbar"}`` on ``generate_events.process``): when the
    user's words state exactly one value that way, it wins over the model's. Otherwise an enum value
    written as a word in the request ("all-hadronic" → ``decay="hadronic"``, "CMS style" →
    ``style="CMS"``) fills a parameter the model left out, when exactly one non-default value is written.
    """
    user_text = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "user").lower()
    filled = dict(arguments)
    for name, schema in parameters.get("properties", {}).items():
        phrased = _phrased_values(schema, user_text)
        if len(phrased) == 1:
            filled[name] = phrased[0]
        elif name not in filled and not phrased:
            words = _enum_words(schema, user_text) or _named_number(name, schema, user_text)
            if len(words) == 1:
                filled[name] = words[0]
    return filled


def _named_number(name: str, schema: dict[str, Any], user_text: str) -> list[Any]:
    """A number written right next to the parameter's one-word name: "seed 4", "radius = 1.0", "30 bins"."""
    types = {s.get("type") for s in schema.get("anyOf", [schema])}
    stems = [w for w in name.split("_") if w not in _UNIT_WORDS]
    if len(stems) != 1 or not types & {"integer", "number"}:
        return []
    stem = re.escape(stems[0])
    found = re.findall(rf"\b{stem}\s*(?:=|:|of|is)?\s*([-+]?\d+(?:\.\d+)?)\b", user_text)
    found += re.findall(rf"\b(\d+)\s+{stem}\b", user_text)
    values = {float(v) for v in found}
    if len(values) != 1:
        return []
    value = values.pop()
    return [int(value) if "integer" in types and value.is_integer() else value]


def _phrased_values(schema: dict[str, Any], user_text: str) -> list[Any]:
    stated = [value for phrase, value in schema.get("x-phrases", {}).items()
              if re.search(rf"(?<![\w]){re.escape(phrase.lower())}(?![\w])", user_text)]
    return list({_json_key(v): v for v in stated}.values())


def _json_key(value: Any) -> str:
    return f"{type(value).__name__}:{value}"


def _enum_words(schema: dict[str, Any], user_text: str) -> list[str]:
    return [v for v in schema.get("enum", []) if isinstance(v, str) and len(v) >= 3
            and v != schema.get("default") and re.search(rf"\b{re.escape(v.lower())}\b", user_text)]
