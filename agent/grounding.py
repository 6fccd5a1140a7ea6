r"""Grounded answers: every number in a final answer must come from a tool result or the request.

Small models invent numbers; this check is what makes their answers trustworthy. A number in the
answer is *supported* when some source number rounds to it at the precision the answer wrote
(``173`` is supported by ``172.6``; ``0.3`` by ``0.298``), or agrees within 1 % (for rescaled
units, ``1.5 pb`` vs ``1.50e+00``), or equals it ×100 / ÷100 (fractions quoted as percentages).
Artifact ids and call ids are removed before numbers are read, so their hex digits never count.

Sources carry the quantity their field holds (:func:`physagent.agent.claims.quantity_of_field`), so a
number written after a quantity word must come from a source of that quantity: "the median is 172"
backed only by a field ``mean`` is *mislabelled*. Small integers (0–3) written as counts ("2 jets",
"1 plot") are not claims; written as a result ("the fraction is 0") they need a source of the same
quantity or the request — a zero somewhere in an unrelated field is no support — or must be quoted: written
after the same 16 characters as in a passage or result text (the 3 of "π(1800) → 3π" copied from an abstract).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from physagent.agent.claims import conflicting, quantity_before, quantity_of_field

__all__ = [
    "Source", "cite_passages", "extract_numbers", "mislabelled_numbers", "numbers_in", "sources_in",
    "unsupported_numbers",
]

_IDS = re.compile(r"\b[a-z]{1,5}-[0-9a-f]{10}\b")
_SUBSCRIPT = re.compile(r"_\{[^{}$]*\}")  # a LaTeX subscript names, not counts: the 21 of $\tau_{21}$
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?(?!\w|\.\d)")
_TRIVIAL = {0.0, 1.0, 2.0, 3.0}
_QUOTED_CHARS = 16  # a small integer after the same 16 characters as in a source text is quoted from it
_COUNT_WORD = re.compile(r"\s+(?!gev|tev|mev|pb|fb|nb|mm|cm|%|percent|sigma)[a-zA-Zα-ωΑ-Ω]")

Origin = Literal["request", "argument", "result", "passage", "error"]


@dataclass(frozen=True)
class Source:
    """A number the answer may quote: its value, the quantity its field holds (if known), where it came from."""

    value: float
    quantity: str | None = None
    origin: Origin = "result"
    before: str = ""  # for a number inside a text: the words written just before it (a quotation repeats them)


def extract_numbers(text: str) -> list[str]:
    """The numbers written in ``text``, as written (artifact ids removed)."""
    return [m.group(0) for m in _numbers(_without_names(text))]


def _without_names(text: str) -> str:
    """``text`` with artifact ids and LaTeX subscripts blanked (same length): they hold no values."""
    return _SUBSCRIPT.sub(lambda m: " " * len(m.group(0)), _IDS.sub(lambda m: " " * len(m.group(0)), text))


def _numbers(text: str) -> list[re.Match[str]]:
    return [m for m in _NUMBER.finditer(text) if re.search(r"\d", m.group(0))]


def numbers_in(value: Any) -> list[float]:
    """Every number in a JSON-like value, including numbers written inside its strings."""
    return [source.value for source in sources_in(value)]


def sources_in(value: Any, origin: Origin = "result", path: str = "") -> list[Source]:
    """Every number in a JSON-like value as a :class:`Source` labelled by its field path."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [Source(float(value), quantity_of_field(path) if path else None, origin)]
    if isinstance(value, str):
        cleaned = _without_names(value)
        return [Source(_to_float(m.group(0)), None, origin, _words_before(cleaned, m.start()))
                for m in _numbers(cleaned)]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in sources_in(item, origin, f"{path}.{key}".strip("."))]
    if isinstance(value, (list, tuple)):
        return [s for item in value for s in sources_in(item, origin, path)]
    return []


def unsupported_numbers(answer: str, sources: Iterable[Source | float]) -> list[str]:
    """Numbers in ``answer`` that no source supports (see the module docstring)."""
    return [written for written, verdict in _verdicts(answer, sources) if verdict == "unsupported"]


def mislabelled_numbers(answer: str, sources: Iterable[Source | float]) -> list[str]:
    """Numbers in ``answer`` whose only support is a source holding another quantity than the word beside it."""
    return [written for written, verdict in _verdicts(answer, sources) if verdict == "mislabelled"]


def _verdicts(answer: str, sources: Iterable[Source | float]) -> list[tuple[str, str]]:
    pool = [s if isinstance(s, Source) else Source(float(s), None, "request") for s in sources]
    cleaned = _without_names(answer)
    verdicts = []
    for match in _numbers(cleaned):
        written, value = match.group(0), _to_float(match.group(0))
        if abs(value) in _TRIVIAL and _COUNT_WORD.match(cleaned, match.end()):
            continue  # "2 jets", "1 plot": a count in the prose, not a claim
        said = quantity_before(cleaned, match.start())
        verdicts.append((written, _verdict(written, value, said, pool, _words_before(cleaned, match.start()))))
    return [(w, v) for w, v in verdicts if v != "supported"]


def _verdict(written: str, value: float, said: str | None, pool: list[Source], before: str = "") -> str:
    if abs(value) in _TRIVIAL:  # a result of 0 or 1 needs a source that says so, not any stray zero
        matching = [s for s in pool if abs(s.value - value) <= 0.01
                    and (s.origin in ("request", "argument", "error") or s.quantity is not None
                         or (len(before) >= _QUOTED_CHARS and s.before == before))]
    else:
        matching = [s for s in pool if _matches(written, value, s.value)]
    if not matching:
        return "unsupported"
    if any(not conflicting(said, s.quantity) for s in matching):
        return "supported"
    return "mislabelled"


_CITATION = re.compile(r"\[[^\[\]]+?:\s*[^\[\]]+?\]")
_WORD = re.compile(r"[a-zα-ω0-9]{3,}")


def cite_passages(answer: str, passages: list[tuple[str, str]]) -> str:
    """The answer with a citation of the passages it draws on, when it cites none itself.

    ``passages`` are (citation, text) pairs that were shown to the model; a passage is cited when it shares
    at least half as many of the answer's words as the best-matching one (and at least three words).
    """
    if not passages or _CITATION.search(answer):
        return answer
    words = set(_WORD.findall(answer.lower()))
    overlaps = [(len(words & set(_WORD.findall(text.lower()))), citation) for citation, text in passages]
    best = max(overlap for overlap, _ in overlaps)
    cited = list(dict.fromkeys(c for overlap, c in overlaps if overlap >= max(3, best / 2)))
    return f"{answer.rstrip()} {' '.join(cited)}" if cited else answer


def _words_before(text: str, at: int) -> str:
    """The last ``_QUOTED_CHARS`` characters before ``at``, spaces collapsed, lower case ('' at a text's start)."""
    return " ".join(text[max(0, at - 3 * _QUOTED_CHARS):at].lower().split())[-_QUOTED_CHARS:]


def _to_float(text: str) -> float:
    return float(text.replace(",", ""))


def _matches(written: str, value: float, source: float) -> bool:
    half_step = 0.5 * 10.0 ** -_decimals(written)
    for candidate in (source, source * 100.0, source / 100.0):
        if abs(candidate - value) <= half_step * 1.0001 or abs(candidate - value) <= 0.01 * abs(candidate):
            return True
    return False


def _decimals(written: str) -> int:
    mantissa, _, exponent = written.lower().partition("e")
    places = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return places - int(exponent or 0)
