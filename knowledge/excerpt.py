r"""A passage cut to the sentences a question is about, for prompts and tool observations.

Why not the passage's first characters: an abstract often names the asked fact in its last sentence ("… via the
differentiable matrix elements provided by MadJax"), and a small model answers from what it is shown — a head
cut made it quote the opening sentences instead. Sentences are ranked by the question's words they hold
(stop words left out, as in the lexical index) and kept in the passage's order; a gap is marked " … ".

>>> excerpt("Flows sample decays. We use splines. Later we plan to use MadJax for more particles.",
...         "which package for more particles", limit=70)
'Flows sample decays. … Later we plan to use MadJax for more particles.'
"""

from __future__ import annotations

import re

from physagent.knowledge._lexical import tokenize

__all__ = ["excerpt"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9$\\(\[])")
_GAP = " …"


def excerpt(text: str, query: str = "", limit: int = 400, source: str = "") -> str:
    """``text`` on one line, or when longer than ``limit`` characters the sentences holding most of ``query``'s
    words and, if it still fits, the opening one (what the passage is about), in their order, gaps marked " … ".

    The words of ``source``'s file name do not count: every passage of "ml4jets-2023-contributions.txt" is an
    ML4Jets 2023 contribution, and counted they picked the book's welcome ("We explicitly welcome contributions")
    for a question about one contribution."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    sentences = _SENTENCE_END.split(flat)
    wanted = {_stem(t) for t in tokenize(query)} - {_stem(t) for t in tokenize(source.replace("-", " "))}
    scores = [len(wanted & {_stem(t) for t in tokenize(s)}) for s in sentences]
    if not any(scores):
        return _head(flat, limit)
    kept: set[int] = set()
    for i in sorted((i for i, score in enumerate(scores) if score or i == 0), key=lambda i: (-scores[i], i)):
        if _length(sentences, kept | {i}) <= limit:
            kept.add(i)
    return _joined(sentences, kept) if kept else _head(sentences[scores.index(max(scores))], limit)


def _stem(token: str) -> str:
    """'particles' and 'particle' as one word: the plural ending is all a question and a passage differ in."""
    return token[:-1] if len(token) > 3 and token.endswith("s") and not token.endswith("ss") else token


def _head(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + _GAP


def _length(sentences: list[str], kept: set[int]) -> int:
    return len(_joined(sentences, kept))


def _joined(sentences: list[str], kept: set[int]) -> str:
    """The kept sentences in order, " … " where sentences were left out between or after them."""
    parts, previous = [], -1
    for i in sorted(kept):
        parts.append(("… " if i != previous + 1 else "") + sentences[i])
        previous = i
    text = " ".join(parts)
    return text + _GAP if previous < len(sentences) - 1 else text
