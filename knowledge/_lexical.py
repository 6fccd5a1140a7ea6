r"""BM25 over chunk texts (``bm25s``), with a tokenizer that keeps the exact terms physicists search for.

Function names (``uproot.open``), particle and detector names (``H→bb``, ``Super-Kamiokande``) and
acronyms survive as whole tokens *and* as their parts, so "uproot open" and "uproot.open" both match.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import bm25s
import numpy as np

__all__ = ["LexicalIndex", "tokenize"]

_TOKEN = re.compile(r"[0-9a-zα-ω]+(?:[._\-+@/][0-9a-zα-ω]+)*")
_PARTS = re.compile(r"[._\-+@/]")
_STOPWORDS = frozenset(bm25s.stopwords.STOPWORDS_EN)


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens without English stop words; compound tokens also yield their parts."""
    tokens = []
    for token in _TOKEN.findall(text.casefold()):
        if token in _STOPWORDS:
            continue
        tokens.append(token)
        if _PARTS.search(token):
            tokens.extend(p for p in _PARTS.split(token) if p and p not in _STOPWORDS)
    return tokens


class LexicalIndex:
    """A BM25 index over a fixed list of texts."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.size = len(texts)
        self._bm25 = bm25s.BM25()
        if self.size:
            self._bm25.index([tokenize(t) or ["_"] for t in texts], show_progress=False)

    def rank(self, query: str, n: int) -> list[tuple[int, float]]:
        """Up to ``n`` (text index, BM25 score) pairs with a positive score, best first."""
        tokens = tokenize(query)
        if not self.size or not tokens:
            return []
        indices, scores = self._bm25.retrieve([tokens], k=min(n, self.size), show_progress=False)
        return [(int(i), float(s)) for i, s in zip(indices[0], scores[0], strict=True) if s > 0 and np.isfinite(s)]
