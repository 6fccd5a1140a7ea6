r"""Offer the model only the few tools a request needs: embedding similarity over the tool catalogue.

Small models choose well among four or five tools and badly among forty. Each tool's entry in the
knowledge base's tool catalogue (name, description, parameters: ``ToolSpec.catalogue_text``) is
embedded once with MiniLM (bundled offline, :func:`physagent.knowledge.embedder`); a request is embedded and the
``k`` most similar tools (cosine) are offered, plus any tool the request names outright.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from physagent.knowledge import embedder
from physagent.tools import registry

__all__ = ["SOURCE_WORDS", "ToolSelector", "wants_code"]

# words that ask for sources: a tool description cannot compete with them on embedding similarity
SOURCE_WORDS = re.compile(r"\b(cite|citation|according to|abstract|paper|talk|proceedings|literature|"
                           r"conference|workshop|book of abstracts|round table)\b", re.IGNORECASE)
# words that ask for a computation no tool names: offer write_code (generated code in the sandbox)
_CODE_WORDS = re.compile(r"\b(compute|calculate|fraction of|python|write code|count the)\b", re.IGNORECASE)


# methods people call by their paper's name: the tool that implements each is offered outright
_METHODS = {"cwola": ("cwola_hunt",), "cathode": ("cathode_search",), "autoencoder": ("autoencoder_search",),
            "calochallenge": ("read_calochallenge",), "dinamo": ("monitor_histograms",)}
_METHOD = re.compile(r"\b(" + "|".join(_METHODS) + r")\b", re.IGNORECASE)


def wants_code(request: str) -> bool:
    """Whether to offer ``write_code``: the request asks to compute something (no tool may cover it)."""
    return bool(_CODE_WORDS.search(request))


class ToolSelector:
    """Ranks registered tools by similarity to a request."""

    def __init__(self, k: int = 5, exclude: tuple[str, ...] = ()) -> None:
        self.k = k
        self.specs = [s for s in registry if s.name not in exclude]
        self._vectors: np.ndarray | None = None

    def _tool_vectors(self) -> np.ndarray:
        if self._vectors is None:
            texts = [s.catalogue_text() for s in self.specs]
            self._vectors = embedder().encode(texts, normalize_embeddings=True, show_progress_bar=False)
        return self._vectors

    def rank(self, request: str) -> list[tuple[str, float]]:
        """All tools with their cosine similarity to ``request``, best first."""
        query = embedder().encode([request], normalize_embeddings=True, show_progress_bar=False)[0]
        scores = self._tool_vectors() @ query
        order = np.argsort(-scores, kind="stable")
        return [(self.specs[i].name, float(scores[i])) for i in order]

    def select(self, request: str, wanted: Sequence[str] = ()) -> list[str]:
        """The ``k`` best tools for ``request`` plus tools it names explicitly (by name, by the method's name:
        "CATHODE", or ``wanted``), in registry order.

        Registry order, not rank order: a local model's prompt cache then reuses the longest common
        prefix of tool listings between requests.
        """
        by_method = {tool for method in _METHOD.findall(request) for tool in _METHODS[method.lower()]}
        named = [s.name for s in self.specs if s.name in request or s.name in wanted or s.name in by_method]
        ranked = [name for name, _ in self.rank(request) if name not in named]
        chosen = set(named + ranked[: max(0, self.k - len(named))])
        return [s.name for s in self.specs if s.name in chosen]
