"""``physagent kb``: ingest documents, search them, list and remove them, and score retrieval."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from physagent.app._common import JsonFlag, err, error_line, out, print_json, print_rows
from physagent.app._progress import RichProgress
from physagent.knowledge import (
    COLLECTIONS,
    GENERATED,
    SAMPLES,
    IngestReport,
    KnowledgeBase,
    SearchMode,
    ingest_sample_corpus,
    sync_samples,
)
from physagent.tools import ProgressUpdate, Workspace

__all__ = ["kb_app"]

kb_app = typer.Typer(help="The knowledge base: your documents, the bundled sample corpus, the tool catalogue and "
                          "library API docs, with citations.",
                     no_args_is_help=True)

Collection = Annotated[str, typer.Option(help="Collection: 'documents' (default) or a name of yours.")]
_ABOUT = {  # what the built-in collections hold, for `kb list`
    "documents": "your documents",
    SAMPLES: "bundled sample corpus (built on first search; your copy of a book replaces it)",
    "tools": "this assistant's tool catalogue",
    "api": "installed libraries' API reference",
}


def _kb() -> KnowledgeBase:
    return KnowledgeBase.open(Workspace().root)


@contextmanager
def _progress(task: str) -> Iterator[Callable[[int, int, str], None]]:
    """A progress bar on stderr fed by the knowledge base's (done, total, message) callback."""
    with RichProgress(err) as bar:
        yield lambda done, total, _msg: bar(ProgressUpdate("kb", task, done, total, "chunks"))


def _print_report(report: IngestReport, as_json: bool) -> None:
    if as_json:
        print_json(report.to_dict())
        return
    for label, names in (("added", report.added), ("updated", report.updated), ("removed", report.removed),
                         ("unchanged", report.unchanged)):
        if names:
            out.print(f"{label}: {', '.join(names)}", highlight=False, markup=False)
    for name, reason in report.skipped:
        err.print(error_line(f"skipped {name}: {reason}", "warning:", "yellow"), highlight=False)
    for name, note in report.notes:
        err.print(error_line(f"{name}: {note}", "note:", "yellow"), highlight=False)
    out.print(f"{report.chunks_written} chunks written to '{report.collection}'", highlight=False, markup=False)


def _fail(message: str) -> typer.Exit:
    err.print(error_line(message), highlight=False)
    return typer.Exit(2)


@kb_app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (.md .txt .pdf .html .ipynb .py ...).")],
    collection: Collection = "documents",
    as_json: JsonFlag = False,
) -> None:
    """Add documents; unchanged files are skipped, changed ones replace their old chunks."""
    try:
        with _progress("embedding") as progress:
            report = _kb().ingest(paths, collection, progress=progress)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    _print_report(report, as_json)


@kb_app.command("ingest-sample")
def ingest_sample(as_json: JsonFlag = False) -> None:
    """Add the bundled sample corpus to your documents (searches already include it as 'samples').

    Five books of abstracts from physics-and-ML meetings. Your copy then replaces the 'samples' one in
    results, so no passage appears twice.
    """
    with _progress("embedding the sample corpus") as progress:
        report = ingest_sample_corpus(_kb(), "documents", progress=progress)
    _print_report(report, as_json)


@kb_app.command()
def build(
    api: Annotated[bool, typer.Option(help="Also index the installed libraries' API (≈ 1-3 min once).")] = True,
    samples: Annotated[bool, typer.Option(help="Also index the bundled sample corpus (≈ 1-3 min the first time "
                                                "on this machine, seconds after).")] = True,
    as_json: JsonFlag = False,
) -> None:
    """(Re)build the generated collections: the tool catalogue, the sample corpus and the library API reference.

    `search_knowledge` builds each on first use; this does it ahead of time.
    """
    from physagent.knowledge.api_reference import sync_api_reference
    from physagent.knowledge.catalogue import sync_tool_catalogue
    from physagent.tools import registry

    kb = _kb()
    reports = [sync_tool_catalogue(kb, registry)]
    if samples:
        with _progress("indexing the sample corpus") as progress:
            reports.append(sync_samples(kb, progress=progress))
    if api:
        with _progress("indexing library APIs") as progress:
            reports.append(sync_api_reference(kb, progress=progress))
    for report in reports:
        _print_report(report, as_json)


@kb_app.command("list")
def list_documents(
    collection: Annotated[str | None, typer.Option(help="Only this collection's documents.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Collections with document and chunk counts, then the documents."""
    kb = _kb()
    if not kb.exists():
        out.print("The knowledge base is empty. The bundled sample corpus is indexed on the first search_knowledge "
                  "call (or now: `physagent kb build`); add your own with `physagent kb ingest PATH`.")
        return
    collections = [c | {"generated": c["collection"] in GENERATED, "holds": _ABOUT.get(c["collection"], "yours")}
                   for c in kb.collections()]
    if as_json:
        print_json({"collections": collections, "documents": kb.documents(collection)})
        return
    print_rows(collections, ("collection", "documents", "chunks", "holds"), False)
    if not any(c["collection"] == SAMPLES for c in collections):
        out.print("[dim]No 'samples' collection: the first search_knowledge call (or `physagent kb build`) indexes "
                  "the bundled books of abstracts you have not ingested yourself.[/]", highlight=False)
    out.print()
    print_rows(kb.documents(collection), ("collection", "source", "chunks"), False)


@kb_app.command()
def remove(
    sources: Annotated[list[str], typer.Argument(help="Paths as ingested, or file names (see `kb list`).")],
    collection: Collection = "documents",
    as_json: JsonFlag = False,
) -> None:
    """Remove documents and their chunks."""
    report = _kb().remove(sources, collection)
    _print_report(report, as_json)
    if report.skipped and not report.removed:
        raise typer.Exit(2)


@kb_app.command()
def search(
    query: Annotated[str, typer.Argument(help="A question or key words.")],
    k: Annotated[int, typer.Option("-k", min=1, max=50, help="How many passages.")] = 5,
    collection: Annotated[list[str] | None, typer.Option(
        help=f"Search only these collections (repeatable; built-in: {', '.join(COLLECTIONS)}).")] = None,
    mode: Annotated[str, typer.Option(help="hybrid (default), dense or bm25.")] = "hybrid",
    as_json: JsonFlag = False,
) -> None:
    """Ranked passages with their source, title/section and score."""
    if mode not in ("hybrid", "dense", "bm25"):
        raise _fail(f"--mode {mode!r} must be one of hybrid, dense, bm25")
    try:
        hits = _kb().search(query, k=k, collections=collection, mode=_mode(mode))
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        print_json({"query": query, "mode": mode, "hits": [h.to_dict() for h in hits]})
        return
    if not hits:
        out.print("No passages found. Is the knowledge base empty? See `physagent kb list`; "
                  "`physagent kb build` indexes the bundled sample corpus.")
    for rank, hit in enumerate(hits, start=1):
        page = f", page {hit.page}" if hit.page else ""
        out.print(f"[bold]{rank}. {escape(hit.title)}[/]  [dim]{escape(f'{hit.source}{page} · {hit.collection}')} · "
                  f"score {hit.score:.4f}[/]", highlight=False)
        out.print(_excerpt(hit.text), highlight=False, markup=False)
        out.print()


def _mode(mode: str) -> SearchMode:
    return "dense" if mode == "dense" else "bm25" if mode == "bm25" else "hybrid"


def _excerpt(text: str, limit: int = 400) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit].rsplit(" ", 1)[0] + " …"


@kb_app.command("eval")
def evaluate(
    questions: Annotated[Path | None, typer.Option(help="Question set (YAML); default: evals/rag/questions.yaml.")]
    = None,
    as_json: JsonFlag = False,
) -> None:
    """Score retrieval on the sample corpus: recall@1, recall@5 and MRR for dense, BM25 and hybrid."""
    from physagent.evals.rag import DEFAULT_QUESTIONS, evaluate_retrieval, format_scores, load_questions

    kb = _kb()
    with _progress("embedding the sample corpus") as progress:
        ingest_sample_corpus(kb, "documents", progress=progress)
    results = evaluate_retrieval(kb, load_questions(questions or DEFAULT_QUESTIONS))
    if as_json:
        print_json([r.to_dict() for r in results])
        return
    out.print(format_scores(results), highlight=False, markup=False)
    for r in results:
        for question in r.misses:
            out.print(f"[dim]{r.mode} missed (not in top 5): {escape(question)}[/]", highlight=False)
