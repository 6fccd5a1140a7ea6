r"""physagent's knowledge base: retrieval over documents, the tool catalogue and installed library APIs.

>>> from physagent.knowledge import KnowledgeBase
>>> kb = KnowledgeBase.open("~/.physagent")          # doctest: +SKIP
>>> kb.ingest(["papers/"])                            # doctest: +SKIP
>>> [h.citation for h in kb.search("top tagging with transformers", k=3)]  # doctest: +SKIP
"""

from importlib import resources
from pathlib import Path

from physagent.knowledge._embed import embed, embedder
from physagent.knowledge.store import COLLECTIONS, Hit, IngestReport, KnowledgeBase, SearchMode, SourceDocument

__all__ = [
    "COLLECTIONS", "Hit", "IngestReport", "KnowledgeBase", "SearchMode", "SourceDocument", "embed", "embedder",
    "sample_corpus",
]


def sample_corpus() -> list[Path]:
    """The bundled sample corpus: five books of abstracts from physics-and-ML meetings (plain text)."""
    return sorted(Path(str(resources.files("physagent.knowledge") / "corpus")).glob("*.txt"))
