r"""Grounded answers: every number in a final answer must come from a tool result or the request.

Small models invent numbers; this check is what makes their answers trustworthy. A number in the
answer is *supported* when some source number rounds to it at the precision the answer wrote
(``173`` is supported by ``172.6``; ``0.3`` by ``0.298``), or agrees within 1 % (for rescaled
units, ``1.5 pb`` vs ``1.50e+00``), or equals it ×100 / ÷100 (fractions quoted as percentages).
Artifact ids and call ids are removed before numbers are read, so their hex digits never count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["extract_numbers", "numbers_in", "unsupported_numbers"]

_IDS = re.compile(r"\b[a-z]{1,5}-[0-9a-f]{10}\b")
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?(?!\w|\.\d)")
_SKIP = {"0", "1", "2", "3"}  # counts like "two jets" or "1 plot" are not claims worth checking


def extract_numbers(text: str) -> list[str]:
    """The numbers written in ``text``, as written (artifact ids removed)."""
    cleaned = _IDS.sub(" ", text)
    return [m.group(0) for m in _NUMBER.finditer(cleaned) if re.search(r"\d", m.group(0))]


def numbers_in(value: Any) -> list[float]:
    """Every number in a JSON-like value, including numbers written inside its strings."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, str):
        return [_to_float(n) for n in extract_numbers(value)]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [number for item in value for number in numbers_in(item)]
    return []


def unsupported_numbers(answer: str, sources: Iterable[float]) -> list[str]:
    """Numbers in ``answer`` that no source supports (see the module docstring)."""
    pool = list(sources)
    return [n for n in extract_numbers(answer) if n.lstrip("+-") not in _SKIP and not _supported(n, pool)]


def _to_float(text: str) -> float:
    return float(text.replace(",", ""))


def _supported(written: str, pool: list[float]) -> bool:
    value = _to_float(written)
    half_step = 0.5 * 10.0 ** -_decimals(written)
    for source in pool:
        for candidate in (source, source * 100.0, source / 100.0):
            if abs(candidate - value) <= half_step * 1.0001 or abs(candidate - value) <= 0.01 * abs(candidate):
                return True
    return False


def _decimals(written: str) -> int:
    mantissa, _, exponent = written.lower().partition("e")
    places = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return places - int(exponent or 0)
