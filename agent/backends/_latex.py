r"""Decode a model's JSON so that LaTeX in its strings survives: ``\rho`` stays ``\rho``, not CR + ``ho``.

Models write ``{"answer": "$\tau_{21}$ \rightarrow 0"}`` with single backslashes; plain ``json.loads``
reads ``\t`` as a tab and ``\r`` as a carriage return (``\n``, ``\b``, ``\f`` likewise), and rejects
``\sqrt`` or ``\alpha`` outright. :func:`latex_safe` rewrites the JSON source first, doubling every
backslash meant as LaTeX, then :func:`loads` decodes it.

The rule, for a backslash followed by a maximal run of ASCII letters (``\nabla`` → run ``nabla``):

1. ``\\``, ``\"``, ``\/`` and ``\uHHHH`` (four hex digits) are JSON escapes, as always.
2. A backslash JSON does not accept (``\sqrt``, ``\alpha``, ``\Delta``, ``\upsilon``, ``\{``, ``\,``) is
   a literal backslash: the text cannot have meant anything else.
3. ``\b``, ``\f``, ``\r`` followed by at least one more letter (``\beta``, ``\frac``, ``\rho``,
   ``\rightarrow``) are LaTeX: prose never puts a backspace, form feed or lone carriage return before a
   word. ``\r\n`` stays a line break.
4. ``\n`` and ``\t`` start LaTeX only when the whole run is a command in :data:`N_T_COMMANDS` (``\nu``,
   ``\neq``, ``\tau``, ``\theta``, ``\times``, ``\to``, ``\text`` …): a newline or tab before a word is
   ordinary prose, so ``\nThe`` and ``\nnuclear`` are a newline then the word. The run is matched
   whole and case-sensitively, so only a line starting with a command's lowercase tail (``\nu`` for
   a line starting "u") is misread; that is the price of keeping ``\nu``.

Anything else (a lone ``\n``, ``\t``, ``\b`` before a space, digit or symbol) is a JSON escape. Control
characters left after decoding are reported by :func:`control_characters` so the agent can record them.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

__all__ = ["N_T_COMMANDS", "control_characters", "latex_safe", "loads", "raw_decode", "redecode", "visible_controls"]

_N_T_NAMES = """
    nu nabla ne neq ni not notin neg nleq ngeq nless ngtr nsim nmid nparallel nsubseteq nsupseteq nearrow
    nwarrow newline nolimits nonumber natural
    tau theta times to tilde text textrm textbf textit textsf texttt textnormal textstyle tfrac tan tanh top
    triangle triangleleft triangleright therefore thinspace tt tiny textsc thicksim
"""
N_T_COMMANDS = frozenset(_N_T_NAMES.split())

_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|[A-Za-z]+|.)", re.DOTALL)
_JSON_SINGLE = frozenset('"\\/')


def latex_safe(text: str) -> str:
    r"""``text`` (JSON source) with each backslash meant as LaTeX doubled; see the module docstring.

    >>> latex_safe(r'{"answer": "$\rho \rightarrow \pi\pi$\nThe end"}')
    '{"answer": "$\\\\rho \\\\rightarrow \\\\pi\\\\pi$\\nThe end"}'
    """
    return _ESCAPE.sub(_rewrite, text)


def _rewrite(match: re.Match[str]) -> str:
    run = match.group(1)
    return match.group(0) if _is_json_escape(run) else "\\" + match.group(0)


def _is_json_escape(run: str) -> bool:
    """Whether ``\\`` + ``run`` (a hex escape, a letter run, or one other character) is meant as JSON."""
    first = run[0]
    if not first.isascii() or not first.isalpha():
        return first in _JSON_SINGLE
    if first == "u":
        return len(run) == 5 and all(c in "0123456789abcdefABCDEF" for c in run[1:])
    if first in "bfr":
        return len(run) == 1
    if first in "nt":
        return run not in N_T_COMMANDS
    return False


def loads(text: str, *, strict: bool = True) -> Any:
    """``json.loads`` of a model's reply under the LaTeX rule (``strict=False`` allows raw control characters)."""
    return json.loads(latex_safe(text), strict=strict)


def raw_decode(text: str) -> tuple[Any, int]:
    """``json.JSONDecoder().raw_decode`` under the LaTeX rule; the end index refers to the rewritten text."""
    return json.JSONDecoder().raw_decode(latex_safe(text))


_KEPT = frozenset("\n\t")


def control_characters(text: str) -> list[str]:
    """The control characters in ``text`` other than newline and tab, as ``U+000D`` names, once each, in order."""
    seen = dict.fromkeys(f"U+{ord(c):04X}" for c in text if c not in _KEPT and unicodedata.category(c) == "Cc")
    return list(seen)


_SHOWN = {"\b": "\\b", "\f": "\\f", "\r": "\\r"}


def visible_controls(text: str) -> str:
    r"""``text`` with CR LF as a newline and each other control character (not newline, tab) written out:
    ``\b``, ``\f``, ``\r`` as the two characters the model most likely typed, others as ``\uHHHH``."""
    text = text.replace("\r\n", "\n")
    return "".join(_SHOWN.get(c, f"\\u{ord(c):04x}") if c not in _KEPT and unicodedata.category(c) == "Cc" else c
                   for c in text)


def redecode(value: Any) -> Any:
    r"""``value``, already decoded by plain ``json.loads`` elsewhere (langchain decodes native tool calls), as
    :func:`loads` would have decoded its source: ``json.dumps`` writes tab, CR, newline, backspace and form feed
    back as ``\t``, ``\r``, ``\n``, ``\b``, ``\f``, so the tab + ``au`` of ``\tau`` becomes ``\tau`` again.

    >>> redecode({"title": "\tau_{21} \rightarrow 0"})
    {'title': '\\tau_{21} \\rightarrow 0'}
    """
    return loads(json.dumps(value, ensure_ascii=False), strict=False)
