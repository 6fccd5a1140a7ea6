r"""``search_knowledge``: passages from the knowledge base, each with a citation ``[source: title]``.

What it searches: ``documents`` (papers, notes and books of abstracts the user ingested, together with
``samples``, the bundled books of abstracts: ML4Jets 2023, the DESY deep-learning round tables 2022 and
2024, EuCAIFCon 2025, a DPG normalizing-flows session), ``api`` (signatures and docstrings of the
installed libraries) and ``tools`` (this tool catalogue). The generated collections (``samples``,
``api``, ``tools``) are built on first use, with a progress bar, and afterwards only what changed is
re-indexed. A workspace's first search of documents indexes the samples: 1,028 passages, ≈ 110 CPU-s
(≈ 1 min on 2 idle cores, ≈ 3 min on a busy machine) the first time on a machine, ≈ 3 s in every later
workspace, which copies the vectors from the machine-wide cache (:mod:`physagent.knowledge.samples`).
Retrieval is hybrid: MiniLM embeddings and BM25 fused by reciprocal rank.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from physagent.knowledge import KnowledgeBase, sync_samples
from physagent.knowledge.api_reference import sync_api_reference
from physagent.knowledge.catalogue import sync_tool_catalogue
from physagent.knowledge.excerpt import excerpt
from physagent.tools._context import ProgressTask, ToolContext
from physagent.tools._registry import ToolResult, registry, tool

__all__ = ["KnowledgeHit", "KnowledgeSearch", "search_knowledge"]

_EXCERPT_CHARS = 380  # per passage in what the model reads: five passages stay within ~500 tokens

Collection = Literal["documents", "api", "tools", "all"]
# the knowledge base's collections behind each choice; "documents" includes the bundled sample books
_SEARCHED: dict[str, list[str]] = {
    "documents": ["documents", "samples"], "api": ["api"], "tools": ["tools"],
    "all": ["documents", "samples", "api", "tools"],
}
_EMPTY_NOTE = ("There are no documents to search: neither documents of the user's nor the bundled sample corpus "
               "could be indexed. Add documents with `physagent kb ingest PATH` and search again.")


class KnowledgeHit(BaseModel):
    """A retrieved passage."""

    text: str = Field(description="The passage.")
    source: str = Field(description="File (or library module / tool) it comes from.")
    title: str = Field(description="Title of the abstract, section, function or tool.")
    page: int | None = Field(description="Page number in the source, where the format has pages.")
    score: float = Field(description="Retrieval score (higher is better; reciprocal-rank fusion).")
    citation: str = Field(description="Cite it in an answer as written here: [source: title].")
    collection: str = Field(description="Where it was found: documents (the user's), samples (the bundled "
                                        "books of abstracts), api or tools.")


class KnowledgeSearch(ToolResult):
    """Ranked passages for a query."""

    query: str = Field(description="The query searched.")
    collection: Collection = Field(description="The collection(s) searched.")
    hits: list[KnowledgeHit] = Field(description="Best passages first, at most one per section.")
    note: str | None = Field(default=None, description="Why there are no hits, when there are none.")

    def observation(self) -> str:
        """Each passage as its citation and an excerpt: what a model needs to answer and cite."""
        if not self.hits:
            return self.note or "No passages found."
        lines = [f"{len(self.hits)} passages for {self.query!r}; cite as written in brackets:"]
        lines += [f"{h.citation} {excerpt(h.text, self.query, _EXCERPT_CHARS, h.source)}" for h in self.hits]
        return "\n".join(lines)


@tool(category="knowledge", cacheable=False)
def search_knowledge(
    query: Annotated[str, Field(min_length=2, max_length=500,
                                description="What to look up: a question or key words (names, acronyms).")],
    collection: Annotated[Collection, Field(
        description="'documents' (the user's papers and notes, and the bundled books of abstracts of ML4Jets "
                    "2023, the DESY deep-learning round tables 2022/2024, EuCAIFCon 2025 and a DPG normalizing-flows "
                    "session), 'api' (installed library functions), 'tools' (this assistant's tools) or "
                    "'all'.")] = "documents",
    k: Annotated[int, Field(ge=1, le=20, description="How many passages to return.")] = 5,
    *,
    ctx: ToolContext,
) -> KnowledgeSearch:
    """Search documents, library API docs or the tool catalogue for passages to cite.

    Use it for background questions (what a talk, paper or method says) and before writing code
    against a library; cite each passage you use as [source: title].
    """
    kb = KnowledgeBase.open(ctx.workspace.root)
    _prepare(kb, collection, ctx)
    hits = kb.search(query, k=k, collections=_SEARCHED[collection])
    note = None
    if not hits:
        note = _EMPTY_NOTE if collection == "documents" else f"Nothing in {collection!r} matches {query!r}."
    return KnowledgeSearch(query=query, collection=collection, note=note,
                           hits=[KnowledgeHit(**h.to_dict()) for h in hits])


def _prepare(kb: KnowledgeBase, collection: Collection, ctx: ToolContext) -> None:
    """Build the generated collections the query needs (only what changed since last time)."""
    if collection in ("documents", "all"):
        with ctx.progress("indexing the bundled sample corpus (first use only)", unit="chunks") as task:
            sync_samples(kb, progress=_advance(task))
    if collection in ("tools", "all"):
        sync_tool_catalogue(kb, registry)
    if collection in ("api", "all"):
        with ctx.progress("indexing the installed libraries' API", unit="modules") as task:
            sync_api_reference(kb, progress=_advance(task))


def _advance(task: ProgressTask) -> Callable[[int, int, str], None]:
    def report(done: int, total: int, message: str) -> None:
        del message
        task.total = total
        task.advance(done - task.completed)

    return report
