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

from agent.grounding import numbers_in

__all__ = ["keep_stated_arguments"]

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
