r"""physagent's knowledge base: retrieval over documents, the tool catalogue and installed library APIs.

>>> from knowledge import KnowledgeBase
>>> kb = KnowledgeBase.open("~/.physagent")          # doctest: +SKIP
>>> kb.ingest(["papers/"])                            # doctest: +SKIP
>>> [h.citation for h in kb.search("top tagging with transformers", k=3)]  # doctest: +SKIP
"""

from importlib import resources
from pathlib import Path

from knowledge.store import COLLECTIONS, Hit, IngestReport, KnowledgeBase, SearchMode, SourceDocument

__all__ = ["COLLECTIONS", "Hit", "IngestReport", "KnowledgeBase", "SearchMode", "SourceDocument", "sample_corpus"]


def sample_corpus() -> list[Path]:
    """The bundled sample corpus: five books of abstracts from physics-and-ML meetings (plain text)."""
    return sorted(Path(str(resources.files("knowledge") / "corpus")).glob("*.txt"))
