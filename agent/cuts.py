r"""Event selections written in words, as ``summarize`` expressions: "how many events have a leading muon harder
than 40 GeV" → ``muons.pt[0] > 40``.

A small model answers such a count in words (with a made-up number) or plans a histogram; the selection itself
is plain enough to read from the request: an optional count or rank, an object, a pT bound in GeV.

- "a leading / the hardest / the second muon above 40 GeV" → ``muons.pt[0] > 40`` (``[1]`` for the second);
- "a muon above 40 GeV", "at least two jets above 30 GeV", "both muons above 25 GeV" → ``count(muons.pt > 40)
  >= 1``, ``count(jets.pt > 30) >= 2``, ``count(muons.pt > 25) >= 2``;
- "harder than", "above", "over", "with pT above", "greater than" → ``>``; "below", "under", "softer than" → ``<``.

Only a question that counts events or asks for their fraction is read ("how many events …", "what fraction
of the events …", "how many of them …"), from the question on; anything else is left to the model. The mean
number of objects per event ("how many jets an event has on average") is :func:`multiplicity_asked`.
"""

from __future__ import annotations

import re

__all__ = ["COUNT_QUESTION", "multiplicity_asked", "selection_from_words"]

_COLLECTIONS = {"muon": "muons", "electron": "electrons", "photon": "photons", "jet": "jets"}
_RANKS = {"leading": 0, "hardest": 0, "first": 0, "highest-pt": 0, "second": 1, "subleading": 1,
          "sub-leading": 1, "second-hardest": 1, "third": 2}
_COUNTS = {"a": 1, "an": 1, "one": 1, "any": 1, "two": 2, "both": 2, "three": 3, "four": 4, "five": 5, "six": 6}
_ABOVE = r"harder than|above|over|greater than|larger than|more than|of at least|at least|>=?|≥"
_BELOW = r"softer than|below|under|less than|smaller than|<=?|≤"
_SELECTION = re.compile(
    rf"(?:(?P<least>at least )?(?P<count>(?<![\d.])\d+|\b(?:{'|'.join(_COUNTS)}))\s+)?(?:(?:the|a|an)\s+)?"
    rf"(?P<rank>{'|'.join(map(re.escape, _RANKS))})?[\s-]*(?P<object>{'|'.join(_COLLECTIONS)})s?\s+"
    rf"(?:with (?:a |its )?(?:p_?t|pt|transverse momentum)\s+)?(?P<relation>{_ABOVE}|{_BELOW})\s*"
    rf"(?P<value>\d+(?:\.\d+)?)\s*gev\b", re.IGNORECASE)
COUNT_QUESTION = re.compile(r"\bhow many (?:of (?:them|those|these|the events)\b|(?:[\w-]+ )?events?\b|"
                            r"(?:have|contain|pass)\b)|\b(?:what|which) (?:fraction|share|percentage|proportion) of\b",
                            re.IGNORECASE)
_OBJECTS = r"(jet|muon|electron|photon)s?"
_MULTIPLICITY = re.compile(rf"\b(?:average|mean) number of (?:[\w-]+ )?{_OBJECTS}\b[^.?]*\bper event|"
                           rf"\bhow many {_OBJECTS} (?:an|per|each|every) event\b[^.?]*\bon average|"
                           rf"\b(?:average|mean) {_OBJECTS} multiplicity", re.IGNORECASE)


def selection_from_words(request: str) -> str | None:
    """The ``summarize`` selection a count question writes in words, or None (no count question, no such phrase,
    or several).

    >>> selection_from_words("Out of those, how many events have a leading muon harder than 40 GeV?")
    'muons.pt[0] > 40'
    >>> selection_from_words("What fraction of the events has at least two jets above 30 GeV?")
    'count(jets.pt > 30) >= 2'
    >>> selection_from_words("Plot the leading muon above 40 GeV") is None
    True
    """
    question = COUNT_QUESTION.search(request)
    if question is None:
        return None
    found = list(_SELECTION.finditer(request, question.start()))  # not "cluster jets above 30 GeV" before it
    return _expression(found[0]) if len(found) == 1 else None


def multiplicity_asked(request: str) -> str | None:
    """The collection whose mean number per event the request asks for ("how many jets an event has on average",
    "the average number of jets per event") — ``summarize``'s ``multiplicities`` — or None.

    >>> multiplicity_asked("cluster R = 0.4 jets above 30 GeV and tell me how many jets an event has on average")
    'jets'
    """
    found = _MULTIPLICITY.search(request)
    return _COLLECTIONS[next(g for g in found.groups() if g).lower()] if found else None


def _expression(match: re.Match[str]) -> str:
    collection = _COLLECTIONS[match["object"].lower()]
    relation = ">" if re.fullmatch(_ABOVE, match["relation"].lower()) else "<"
    value = match["value"].removesuffix(".0")
    if match["rank"]:
        return f"{collection}.pt[{_RANKS[match['rank'].lower()]}] {relation} {value}"
    count = match["count"].lower() if match["count"] else "a"
    return f"count({collection}.pt {relation} {value}) >= {_COUNTS.get(count) or int(count)}"
