r"""The knowledge base: chunks of documents in SQLite, their embeddings in chromadb, BM25 beside them.

Layout under ``<home>/knowledge/``: ``manifest.sqlite`` (documents with content hashes, chunks with
text and metadata) is the source of truth; ``chroma/`` holds one chromadb collection of vectors per
knowledge collection. A document is replaced in three steps — new vectors are added under new ids,
one SQLite transaction swaps the document's chunks, then the old vectors are deleted — and searches
only return chunks the manifest lists, so a crash at any point leaves the previous state queryable
(stray vectors of an interrupted ingest are ignored and swept up by the next one).

Search fuses a dense ranking (MiniLM cosine similarity) and a BM25 ranking by weighted reciprocal
rank (Cormack et al., SIGIR 2009): ``score = Σ w / (10 + rank)`` with w = 1.5 for dense, 1 for BM25;
the best chunk per section is kept, so the ``k`` hits name ``k`` different abstracts or sections.
Document collections (``documents``, the generated ``samples``, any of the user's) are ranked together
as one pool, so a passage's rank does not depend on which collection holds it; a generated
collection's copy of a file the user also ingested (same file name) is left out of the pool, so each
passage appears once. The reference collections ``tools`` and ``api`` are ranked on their own.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from physagent.knowledge._chunk import CHUNK_OVERLAP_WORDS, CHUNK_WORDS, Chunk, chunk_sections
from physagent.knowledge._embed import embed
from physagent.knowledge._lexical import LexicalIndex
from physagent.knowledge._load import MAX_FILE_MB, SUPPORTED_SUFFIXES, UnreadableFileError, load_sections
from physagent.knowledge._sections import Section

__all__ = ["COLLECTIONS", "GENERATED", "Hit", "IngestReport", "KnowledgeBase", "SearchMode", "SourceDocument",
           "file_document"]

SearchMode = Literal["hybrid", "dense", "bm25"]
_SECTIONS_VERSION = "sections-2"  # bump when parsing changes: files are then re-ingested
COLLECTIONS = ("documents", "samples", "tools", "api")
# built by physagent (``sync``), never by ``ingest``: the bundled sample corpus, the tool catalogue, library APIs
GENERATED = ("samples", "tools", "api")
_REFERENCE = ("tools", "api")  # searched only when named, each ranked on its own
# weighted reciprocal-rank fusion, tuned on evals/rag (README): a small k lets a passage that one
# ranking puts first beat passages both rankings put in the middle (k = 60 lost the paraphrased
# questions BM25 cannot match), and meaning counts 1.5× exact words
_RRF_K = 10
_RRF_WEIGHTS = {"dense": 1.5, "bm25": 1.0}
_COLLECTION_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{1,40}$")
Progress = Callable[[int, int, str], None]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    collection TEXT NOT NULL, key TEXT NOT NULL, source TEXT NOT NULL, sha256 TEXT NOT NULL,
    n_chunks INTEGER NOT NULL, ingested_at REAL NOT NULL, PRIMARY KEY (collection, key));
CREATE TABLE IF NOT EXISTS chunks (
    id TEXT PRIMARY KEY, collection TEXT NOT NULL, doc_key TEXT NOT NULL, ordinal INTEGER NOT NULL,
    source TEXT NOT NULL, title TEXT NOT NULL, page INTEGER, text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_by_doc ON chunks (collection, doc_key);
CREATE TABLE IF NOT EXISTS generation (collection TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class Hit:
    """One retrieved passage and where it comes from."""

    text: str
    source: str
    title: str
    page: int | None
    score: float
    collection: str

    @property
    def citation(self) -> str:
        """How an answer cites this passage: ``[source: title]``."""
        return f"[{self.source}: {self.title}]"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "citation": self.citation}


@dataclass(frozen=True)
class SourceDocument:
    """A document to ingest: a stable key, a display name, a content hash and a way to read it.

    ``vector_cache``: a file where this document's chunk embeddings may be kept and found again (by
    any workspace); name it by the content hash. Only for public documents such as the bundled corpus.
    """

    key: str
    source: str
    sha256: str
    read: Callable[[list[str]], list[Section]]
    vector_cache: Path | None = None


@dataclass
class IngestReport:
    """What an ingest did, per document."""

    collection: str
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    chunks_written: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Snapshot:
    """What a search needs of one collection's manifest, cached until the collection changes."""

    generation: tuple[int, ...]
    index: LexicalIndex
    ids: list[str]
    live: frozenset[str]
    titles: dict[str, list[str]]  # lower-cased title → the first chunk of each section with that title
    sources: dict[str, frozenset[str]]  # document source (file name) → its chunk ids

    @classmethod
    def build(cls, generation: tuple[int, ...], rows: list[sqlite3.Row]) -> _Snapshot:
        titles: dict[str, list[str]] = {}
        by_source: dict[str, set[str]] = {}
        for r in rows:
            by_source.setdefault(r["source"], set()).add(r["id"])
        seen: set[tuple[str, str]] = set()
        for r in rows:  # a section's first chunk stands for it (a signature, an abstract's start)
            if (r["doc_key"], r["title"]) not in seen:
                seen.add((r["doc_key"], r["title"]))
                titles.setdefault(r["title"].casefold(), []).append(r["id"])
        ids = [r["id"] for r in rows]
        index = LexicalIndex([f"{r['title']}\n{r['text']}" for r in rows])
        return cls(generation, index, ids, frozenset(ids), titles,
                   {source: frozenset(chunks) for source, chunks in by_source.items()})

    def rank(self, query: str, depth: int) -> list[tuple[str, float]]:
        """BM25 ranking of chunk ids."""
        return [(self.ids[i], score) for i, score in self.index.rank(query, depth)]


class KnowledgeBase:
    """Documents, the tool catalogue and library API docs, searchable by meaning and by exact terms."""

    def __init__(self, root: Path, chunk_words: int = CHUNK_WORDS, overlap_words: int = CHUNK_OVERLAP_WORDS) -> None:
        self.root = Path(root)
        self.chunking = (chunk_words, overlap_words)
        self.pipeline_version = f"{_SECTIONS_VERSION}/chunks-{chunk_words}-{overlap_words}"
        self._chroma: Any = None
        self._snapshots: dict[tuple[str, ...], _Snapshot] = {}
        self._schema_ready = False

    @classmethod
    def open(cls, home: Path | str) -> KnowledgeBase:
        """The knowledge base of a workspace (``<home>/knowledge``); created on first ingest."""
        return cls(Path(home) / "knowledge")

    def __repr__(self) -> str:
        return f"KnowledgeBase({str(self.root)!r})"

    # --- storage ---------------------------------------------------------------------------

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.root.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.root / "manifest.sqlite", timeout=30)
        con.row_factory = sqlite3.Row
        try:
            if not self._schema_ready:
                con.executescript(_SCHEMA)
                self._schema_ready = True
            yield con
        finally:
            con.close()

    def _vectors(self, collection: str) -> Any:
        if self._chroma is None:
            import chromadb
            from chromadb.config import Settings

            self._chroma = chromadb.PersistentClient(
                path=str(self.root / "chroma"), settings=Settings(anonymized_telemetry=False))
        return self._chroma.get_or_create_collection(
            f"kb-{collection}", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None)

    def exists(self) -> bool:
        return (self.root / "manifest.sqlite").exists()

    # --- ingest ----------------------------------------------------------------------------

    def ingest(self, paths: Iterable[Path | str], collection: str = "documents",
               progress: Progress | None = None, max_file_mb: float = MAX_FILE_MB) -> IngestReport:
        """Ingest files and folders (recursively): new and changed files are (re)chunked, unchanged ones skipped.

        Unreadable files (binary, empty, encrypted, corrupt, too large) are skipped with the reason
        in the report; the rest of the batch still ingests.
        """
        _check_collection(collection)
        if collection in GENERATED:
            raise ValueError(f"collection {collection!r} is built by physagent itself and would drop what you "
                             "add at its next update: ingest into 'documents' or a collection of your own")
        report = IngestReport(collection)
        documents = []
        for path in _expand(paths, report):
            try:
                documents.append(file_document(path, max_file_mb, self.pipeline_version))
            except OSError as err:
                report.skipped.append((str(path), f"cannot read: {err.strerror or err}"))
        self._ingest_documents(collection, documents, report, progress)
        return report

    def add_documents(self, collection: str, documents: list[SourceDocument],
                      progress: Progress | None = None) -> IngestReport:
        """Ingest prepared documents (new or changed ones); others in the collection stay."""
        _check_collection(collection)
        report = IngestReport(collection)
        self._ingest_documents(collection, documents, report, progress)
        return report

    def sync(self, collection: str, documents: list[SourceDocument], progress: Progress | None = None) -> IngestReport:
        """Make ``collection`` hold exactly ``documents``: ingest new/changed ones, remove the rest."""
        report = self.add_documents(collection, documents, progress)
        wanted = {d.key for d in documents}
        stale = [key for key in self._document_hashes(collection) if key not in wanted]
        self._remove_keys(collection, stale, report)
        return report

    def remove(self, sources: Iterable[str], collection: str = "documents") -> IngestReport:
        """Remove documents by path (as ingested) or file name."""
        report = IngestReport(collection)
        with self._db() as con:
            rows = con.execute("SELECT key, source FROM documents WHERE collection = ?", (collection,)).fetchall()
        keys = []
        for name in sources:
            resolved = str(Path(name).resolve()) if Path(name).exists() else name
            matches = [r["key"] for r in rows if r["key"] in (name, resolved) or r["source"] == name]
            if matches:
                keys.extend(matches)
            else:
                report.skipped.append((name, "not in the knowledge base"))
        self._remove_keys(collection, keys, report)
        return report

    def _ingest_documents(self, collection: str, documents: list[SourceDocument], report: IngestReport,
                          progress: Progress | None) -> None:
        known = self._document_hashes(collection)
        report.unchanged.extend(d.source for d in documents if known.get(d.key) == d.sha256)
        chunked = self._read_changed([d for d in documents if known.get(d.key) != d.sha256], report)
        total, done = sum(len(chunks) for _, chunks in chunked), 0
        for document, chunks in chunked:
            def advance(n: int, _: int, done: int = done, source: str = document.source) -> None:
                if progress:
                    progress(done + n, total, f"{collection}: {source}")

            self._replace_document(collection, document, chunks, advance)
            done += len(chunks)
            (report.updated if document.key in known else report.added).append(document.source)
            report.chunks_written += len(chunks)
        if chunked:
            self._sweep_orphans(collection)

    def _read_changed(self, documents: list[SourceDocument],
                      report: IngestReport) -> list[tuple[SourceDocument, list[Chunk]]]:
        """Read and chunk each document; unreadable ones are skipped with the reason."""
        chunked = []
        for document in documents:
            notes: list[str] = []
            try:
                chunks = chunk_sections(document.read(notes), *self.chunking)
            except UnreadableFileError as err:
                report.skipped.append((document.source, str(err)))
                continue
            report.notes.extend((document.source, note) for note in notes)
            chunked.append((document, chunks))
        return chunked

    def _replace_document(self, collection: str, document: SourceDocument, chunks: list[Chunk],
                          progress: Callable[[int, int], None]) -> None:
        ids = [_chunk_id(document, i) for i in range(len(chunks))]
        vectors = _document_vectors(document, chunks, progress)
        store = self._vectors(collection)
        for start in range(0, len(ids), 1000):
            store.upsert(ids=ids[start : start + 1000], embeddings=vectors[start : start + 1000].tolist())
        old_ids = self._commit_document(collection, document, chunks, ids)
        if stale := [i for i in old_ids if i not in set(ids)]:
            store.delete(ids=stale)

    def _commit_document(self, collection: str, document: SourceDocument, chunks: list[Chunk],
                         ids: list[str]) -> list[str]:
        """Swap the document's chunks in one transaction; returns the ids it replaced."""
        with self._db() as con, con:
            old = [r[0] for r in con.execute(
                "SELECT id FROM chunks WHERE collection = ? AND doc_key = ?", (collection, document.key))]
            con.execute("DELETE FROM chunks WHERE collection = ? AND doc_key = ?", (collection, document.key))
            con.executemany(
                "INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(i, collection, document.key, n, document.source, c.title, c.page, c.text)
                 for n, (i, c) in enumerate(zip(ids, chunks, strict=True))])
            con.execute("INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, ?)",
                        (collection, document.key, document.source, document.sha256, len(chunks), time.time()))
            _bump_generation(con, collection)
        return old

    def _remove_keys(self, collection: str, keys: list[str], report: IngestReport) -> None:
        if not keys:
            return
        with self._db() as con, con:
            rows = con.execute(
                f"SELECT id FROM chunks WHERE collection = ? AND doc_key IN ({','.join('?' * len(keys))})",
                (collection, *keys)).fetchall()
            sources = [r[0] for r in con.execute(
                f"SELECT source FROM documents WHERE collection = ? AND key IN ({','.join('?' * len(keys))})",
                (collection, *keys))]
            for table, column in (("chunks", "doc_key"), ("documents", "key")):
                con.executemany(f"DELETE FROM {table} WHERE collection = ? AND {column} = ?",
                                [(collection, k) for k in keys])
            _bump_generation(con, collection)
        if rows:
            self._vectors(collection).delete(ids=[r[0] for r in rows])
        report.removed.extend(sources)

    def _sweep_orphans(self, collection: str) -> None:
        """Delete vectors no manifest chunk refers to (left by an interrupted ingest)."""
        store = self._vectors(collection)
        with self._db() as con:
            live = {r[0] for r in con.execute("SELECT id FROM chunks WHERE collection = ?", (collection,))}
        orphans = [i for i in store.get(include=[])["ids"] if i not in live]
        if orphans:
            store.delete(ids=orphans)

    def _document_hashes(self, collection: str) -> dict[str, str]:
        with self._db() as con:
            return {r["key"]: r["sha256"] for r in con.execute(
                "SELECT key, sha256 FROM documents WHERE collection = ?", (collection,))}

    # --- listing ---------------------------------------------------------------------------

    def collections(self) -> list[dict[str, Any]]:
        """Each collection with its document and chunk counts."""
        if not self.exists():
            return []
        with self._db() as con:
            rows = con.execute("SELECT collection, COUNT(*) AS documents, SUM(n_chunks) AS chunks "
                               "FROM documents GROUP BY collection ORDER BY collection").fetchall()
        return [dict(r) for r in rows]

    def documents(self, collection: str | None = None) -> list[dict[str, Any]]:
        """Documents (source, key, chunks, hash, time of ingest), optionally of one collection."""
        if not self.exists():
            return []
        with self._db() as con:
            rows = con.execute(
                "SELECT collection, source, key, n_chunks AS chunks, sha256, ingested_at FROM documents "
                "WHERE ? IS NULL OR collection = ? ORDER BY collection, source", (collection, collection)).fetchall()
        return [dict(r) for r in rows]

    # --- search ----------------------------------------------------------------------------

    def search(self, query: str, k: int = 5, collections: Iterable[str] | None = None,
               mode: SearchMode = "hybrid") -> list[Hit]:
        """The ``k`` best passages for ``query`` (at most one per section), best first.

        ``collections=None`` searches the document collections (every collection but the reference
        collections ``tools`` and ``api``); name those to search them. Document collections are ranked
        together as one pool; a file the user ingested hides the generated ``samples`` copy of it.
        """
        if not query.strip():
            raise ValueError("the search query is empty: give a question or some key words")
        populated = self._populated()
        wanted = collections or [c for c in populated if c not in _REFERENCE]
        names = [c for c in dict.fromkeys(wanted) if c in populated]
        pools = [tuple(c for c in names if c not in _REFERENCE)] + [(c,) for c in names if c in _REFERENCE]
        vector = embed([query]).tolist() if names and mode != "bm25" else []
        scored: dict[str, float] = {}
        for pool in filter(None, pools):
            scored.update(self._ranked(pool, query, vector, max(40, 8 * k), mode))
        return self._hits(scored, k)

    def _populated(self) -> list[str]:
        return [c["collection"] for c in self.collections()]

    def _ranked(self, pool: tuple[str, ...], query: str, vector: list[list[float]], depth: int,
                mode: SearchMode) -> dict[str, float]:
        """Chunk id → score: cosine similarity, BM25, or the reciprocal-rank fusion of both."""
        snapshot = self._snapshot(pool)
        named = named_source(query, list(snapshot.sources))
        depth = max(depth, _NAMED_DEPTH) if named else depth
        dense = self._dense(pool, snapshot, vector, depth) if mode != "bm25" else []
        # within the named document its name says nothing: ranked by it, the book's title page comes first
        lexical = snapshot.rank(_without_name_of(query, named) if named else query, depth) if mode != "dense" else []
        if mode == "hybrid":
            fused: dict[str, float] = {}
            for weight, ranking in ((_RRF_WEIGHTS["dense"], dense), (_RRF_WEIGHTS["bm25"], lexical)):
                for rank, (chunk_id, _) in enumerate(ranking, start=1):
                    fused[chunk_id] = fused.get(chunk_id, 0.0) + weight / (_RRF_K + rank)
            scored = fused
        else:
            scored = dict(dense or lexical)
        for chunk_id in snapshot.titles.get(query.strip().casefold(), []):
            scored[chunk_id] = scored.get(chunk_id, 0.0) + 1.0  # "uproot.open" asks for uproot.open first
        if named:  # "according to the 2024 DESY round table": that book's passages only
            scored = {chunk_id: score for chunk_id, score in scored.items() if chunk_id in snapshot.sources[named]}
        return scored

    def _dense(self, pool: tuple[str, ...], snapshot: _Snapshot, vector: list[list[float]],
               depth: int) -> list[tuple[str, float]]:
        """The pool's nearest chunks by cosine similarity (one query per collection, merged), best first."""
        pairs: list[tuple[str, float]] = []
        for collection in pool:
            store = self._vectors(collection)
            n = min(depth, store.count())
            if n == 0:
                continue
            found = store.query(query_embeddings=vector, n_results=n, include=["distances"])
            pairs += [(i, 1.0 - float(d)) for i, d in zip(found["ids"][0], found["distances"][0], strict=True)
                      if i in snapshot.live]
        return sorted(pairs, key=lambda pair: -pair[1])[:depth]

    def _snapshot(self, pool: tuple[str, ...]) -> _Snapshot:
        """The pool's chunk ids, titles and BM25 index, rebuilt only when one of its collections changed."""
        marks = ",".join("?" * len(pool))
        with self._db() as con:
            found = {r["collection"]: r["value"] for r in con.execute(
                f"SELECT collection, value FROM generation WHERE collection IN ({marks})", pool)}
            generation = tuple(found.get(c, 0) for c in pool)
            cached = self._snapshots.get(pool)
            if cached is None or cached.generation != generation:
                rows = con.execute(f"SELECT id, collection, doc_key, source, title, text FROM chunks "
                                   f"WHERE collection IN ({marks}) ORDER BY collection, doc_key, ordinal",
                                   pool).fetchall()
                self._snapshots[pool] = _Snapshot.build(generation, _without_shadowed(rows))
        return self._snapshots[pool]

    def _hits(self, scored: dict[str, float], k: int) -> list[Hit]:
        if not scored:
            return []
        with self._db() as con:
            rows = {r["id"]: r for r in con.execute(
                f"SELECT * FROM chunks WHERE id IN ({','.join('?' * len(scored))})", tuple(scored))}
        scored = {i: score * (_CONTENTS_WEIGHT if _is_contents(rows[i]["text"]) else 1.0)
                  for i, score in scored.items() if i in rows}
        hits, seen = [], set()
        for chunk_id in sorted(rows, key=lambda i: -scored[i]):
            r = rows[chunk_id]
            section = (r["collection"], r["doc_key"], r["title"], r["page"])
            if section in seen:
                continue
            seen.add(section)
            hits.append(Hit(r["text"], r["source"], r["title"], r["page"], round(scored[chunk_id], 6), r["collection"]))
            if len(hits) == k:
                break
        return hits


_CONTENTS_WEIGHT = 0.5  # a table of contents names every talk: it matches many questions and answers none
_CONTENTS_LINE = re.compile(r"(?:\t|(?:\s*\.){3,}|\s{2,})\s*\d{1,4}\s*$")  # "title<TAB>4", "title . . . 4"
_NAMED_DEPTH = 400  # a named document's passages are ranked among this many of the pool's best
_NOT_NAME_WORDS = frozenset({"abstracts", "contributions", "txt", "pdf", "md", "html", "the", "of", "and", "notes"})


def _is_contents(text: str) -> bool:
    """Whether a passage is (mostly) a table of contents: at least three lines, two thirds of them a title
    followed by a page number."""
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) >= 3 and sum(bool(_CONTENTS_LINE.search(line)) for line in lines) >= 2 * len(lines) / 3


def named_source(query: str, sources: list[str]) -> str | None:
    """The one document the query names by the words of its file name ("the 2024 DESY deep-learning round table" →
    ``desy-deep-learning-round-table-2024-abstracts.txt``): at least two of its name's words and three quarters of
    them written, and more of them than of any other document's.

    >>> books = [f"desy-deep-learning-round-table-{year}-abstracts.txt" for year in (2022, 2024)]
    >>> named_source("According to the 2024 DESY deep-learning round table, which method …", books)
    'desy-deep-learning-round-table-2024-abstracts.txt'
    >>> named_source("Which round table talk used CATHODE?", books) is None
    True
    """
    written = set(re.findall(r"[a-z0-9]+", query.casefold()))
    coverage = []
    for source in sources:
        words = set(re.findall(r"[a-z0-9]+", source.casefold())) - _NOT_NAME_WORDS
        found = len(words & written)
        if words and found >= 2 and found >= 0.75 * len(words):
            coverage.append((found / len(words), source))
    coverage.sort(reverse=True)
    if not coverage or (len(coverage) > 1 and coverage[1][0] == coverage[0][0]):
        return None
    return coverage[0][1]


def _without_name_of(query: str, source: str) -> str:
    """``query`` without the words of ``source``'s file name ("2024 DESY deep-learning round table").

    >>> _without_name_of("CATHODE in the 2024 DESY round table", "desy-deep-learning-round-table-2024.txt")
    'CATHODE in the'
    """
    name = set(re.findall(r"[a-z0-9]+", source.casefold()))
    return " ".join(word for word in re.findall(r"\S+", query)
                    if not set(re.findall(r"[a-z0-9]+", word.casefold())) <= name) or query


def _without_shadowed(rows: list[sqlite3.Row]) -> list[sqlite3.Row]:
    """Leave out a generated collection's chunks of a file the user ingested too (same file name): theirs wins."""
    own = {r["source"] for r in rows if r["collection"] not in GENERATED}
    return [r for r in rows if r["collection"] not in GENERATED or r["source"] not in own]


def _document_vectors(document: SourceDocument, chunks: list[Chunk],
                      progress: Callable[[int, int], None]) -> np.ndarray:
    """The chunks' embeddings: from the document's vector cache when it holds them, else computed (and kept)."""
    texts = [c.embedding_text for c in chunks]
    cache = document.vector_cache
    if cache is not None:
        try:
            cached = np.load(cache, allow_pickle=False)
        except (OSError, ValueError, EOFError):  # absent, unreadable or truncated: embed again
            cached = None
        if cached is not None and cached.ndim == 2 and cached.shape[0] == len(texts):
            progress(len(texts), len(texts))
            return cached.astype(np.float32, copy=False)
    vectors = embed(texts, progress)
    if cache is not None:
        _keep(cache, vectors)
    return vectors


def _keep(path: Path, vectors: np.ndarray) -> None:
    """Write ``vectors`` to ``path`` atomically; a cache that cannot be written is only a missed saving."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as handle:
            np.save(handle, vectors, allow_pickle=False)
        tmp.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def file_document(path: Path, max_file_mb: float = MAX_FILE_MB, pipeline_version: str = "") -> SourceDocument:
    """A file as a document: keyed by its absolute path, hashed by its bytes."""
    size_mb = path.stat().st_size / 1e6
    if size_mb > max_file_mb:  # never hash (or read) a huge file just to reject it
        sha = f"size-{path.stat().st_size}-{path.stat().st_mtime_ns}"
    else:  # the pipeline's version is hashed in too: better parsing re-ingests old files
        sha = hashlib.sha256(path.read_bytes() + pipeline_version.encode()).hexdigest()
    return SourceDocument(str(path.resolve()), path.name, sha,
                          lambda notes: load_sections(path, notes, max_file_mb))


def _expand(paths: Iterable[Path | str], report: IngestReport) -> list[Path]:
    """Files to ingest: the given files, and supported files found in the given folders."""
    files = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES))
        elif path.is_file():
            files.append(path)
        else:
            report.skipped.append((str(path), "no such file or folder"))
    return files


def _chunk_id(document: SourceDocument, ordinal: int) -> str:
    key = hashlib.sha256(document.key.encode()).hexdigest()[:10]
    return f"{key}-{document.sha256[:12]}-{ordinal}"


def _bump_generation(con: sqlite3.Connection, collection: str) -> None:
    con.execute("INSERT INTO generation VALUES (?, 1) ON CONFLICT (collection) DO UPDATE SET value = value + 1",
                (collection,))


def _check_collection(name: str) -> None:
    if not _COLLECTION_NAME.match(name):
        raise ValueError(f"collection name {name!r} must be 2-41 lower-case letters, digits, '-' or '_' "
                         "starting with a letter or digit, e.g. 'documents' or 'my-papers'")
