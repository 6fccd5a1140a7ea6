r"""The bundled sample corpus, searchable with no setup: the generated collection ``samples``.

Five books of abstracts ship with the package (:func:`sample_corpus`): ML4Jets 2023, the DESY deep-learning
round tables of 2022 and 2024, EuCAIFCon 2025 and a DPG session on normalizing flows. The
``search_knowledge`` tool calls :func:`sync_samples` before it searches documents, so a fresh workspace
indexes them on first use (1,028 chunks) and later calls find every hash unchanged and embed nothing
(0.4–0.8 s for a whole search call).

A book is one document keyed ``sample:<file name>`` and hashed by its bytes and the chunking pipeline;
its citations read ``[<file name>: <abstract title>]``, as after ``physagent kb ingest-sample``. A book
the user ingested too is theirs: it is left out of ``samples`` and searches hide any copy left there.

Embedding the books is the whole cost of a first use, and each workspace (each web or REST session,
each eval task) has its own knowledge base; so their vectors are also kept in a machine-wide cache,
``$PHYSAGENT_CACHE`` (default ``$XDG_CACHE_HOME/physagent`` or ``~/.cache/physagent``), named by the
model and the book's hash (1.6 MB). Measured on 2 cores shared with other jobs (load 5–8): the first
build ever takes 162–169 s (≈ 110 CPU-s: ≈ 1 min when the cores are idle), a first use in another
workspace 2–3 s.

>>> [p.name for p in sample_corpus()][:2]
['desy-deep-learning-round-table-2022-abstracts.txt', 'desy-deep-learning-round-table-2024-abstracts.txt']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from importlib import resources
from pathlib import Path

from physagent.knowledge._cache import user_cache_dir
from physagent.knowledge._embed import model_id
from physagent.knowledge.store import GENERATED, IngestReport, KnowledgeBase, SourceDocument, file_document

__all__ = ["SAMPLES", "ingest_sample_corpus", "sample_corpus", "sample_documents", "sync_samples",
           "vector_cache_dir"]

SAMPLES = "samples"


def sample_corpus() -> list[Path]:
    """The bundled sample corpus: five books of abstracts from physics-and-ML meetings (plain text)."""
    return sorted(Path(str(resources.files("physagent.knowledge") / "corpus")).glob("*.txt"))


def vector_cache_dir() -> Path:
    """Where the sample books' vectors are kept for every workspace of this user."""
    return user_cache_dir("sample-vectors")


def _book(kb: KnowledgeBase, path: Path, key: str) -> SourceDocument:
    document = file_document(path, pipeline_version=kb.pipeline_version)
    cache = vector_cache_dir() / f"{model_id()}-{document.sha256[:32]}.npy"
    return replace(document, key=key, vector_cache=cache)


def sample_documents(kb: KnowledgeBase) -> list[SourceDocument]:
    """One document per bundled book, keyed by file name (a reinstall elsewhere changes nothing)."""
    return [_book(kb, path, f"sample:{path.name}") for path in sample_corpus()]


def sync_samples(kb: KnowledgeBase, progress: Callable[[int, int, str], None] | None = None) -> IngestReport:
    """Make the ``samples`` collection hold the bundled books the user has not ingested themselves.

    New or changed books are indexed, unchanged ones kept; a book the user holds in a collection of
    theirs (same file name, e.g. after ``physagent kb ingest-sample``) is left out — searches would
    hide its copy anyway — and comes back if they remove theirs.
    """
    held = {d["source"] for d in kb.documents() if d["collection"] not in GENERATED}
    return kb.sync(SAMPLES, [d for d in sample_documents(kb) if d.source not in held], progress)


def ingest_sample_corpus(kb: KnowledgeBase, collection: str = "documents",
                         progress: Callable[[int, int, str], None] | None = None) -> IngestReport:
    """Add the books to one of the user's collections as files (``physagent kb ingest-sample``).

    Keyed by path, like :meth:`KnowledgeBase.ingest` of the same files; the vectors come from the cache
    when a workspace of this machine has indexed the books before. In searches the user's copy then
    replaces the ``samples`` one.
    """
    return kb.add_documents(collection, [_book(kb, path, str(path.resolve())) for path in sample_corpus()],
                            progress)
