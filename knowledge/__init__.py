r"""physagent's knowledge base: retrieval over documents, the bundled sample corpus, the tool catalogue and
installed library APIs.

>>> from physagent.knowledge import KnowledgeBase
>>> kb = KnowledgeBase.open("~/.physagent")          # doctest: +SKIP
>>> kb.ingest(["papers/"])                            # doctest: +SKIP
>>> [h.citation for h in kb.search("top tagging with transformers", k=3)]  # doctest: +SKIP
"""

from physagent.knowledge._cache import CACHE_VARIABLE, user_cache_dir
from physagent.knowledge._embed import embed, embedder
from physagent.knowledge.samples import SAMPLES, ingest_sample_corpus, sample_corpus, sync_samples
from physagent.knowledge.store import (
    COLLECTIONS,
    GENERATED,
    Hit,
    IngestReport,
    KnowledgeBase,
    SearchMode,
    SourceDocument,
)

__all__ = [
    "CACHE_VARIABLE", "COLLECTIONS", "GENERATED", "SAMPLES",
    "Hit", "IngestReport", "KnowledgeBase", "SearchMode", "SourceDocument",
    "embed", "embedder", "ingest_sample_corpus", "sample_corpus", "sync_samples", "user_cache_dir",
]
