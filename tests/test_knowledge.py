"""The knowledge base: ingest → search with titles, incremental updates, bad files, crash safety, API docs, and the
bundled sample corpus searchable with no setup."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import physagent.knowledge.samples
import physagent.knowledge.store
from physagent.app.cli import app
from physagent.evals.rag import load_questions
from physagent.knowledge import KnowledgeBase, sample_corpus, sync_samples
from physagent.knowledge._sections import split_sections
from physagent.knowledge.api_reference import api_entries, sync_api_reference
from physagent.knowledge.catalogue import sync_tool_catalogue
from physagent.tools import ProgressUpdate, Workspace, call_tool, registry

SMALL_BOOKS = ("dpg-normalizing-flows-session-abstracts.txt", "desy-deep-learning-round-table-2022-abstracts.txt")
SAXS = "[dpg-normalizing-flows-session-abstracts.txt: Reconstruction of SAXS Data using Invertible Neural Networks]"


def _norm(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.casefold())


@pytest.fixture(scope="module")
def books_kb(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    """Two of the sample books of abstracts, ingested once (read-only for the tests)."""
    kb = KnowledgeBase.open(tmp_path_factory.mktemp("kb-home"))
    report = kb.ingest([p for p in sample_corpus() if p.name in SMALL_BOOKS])
    assert sorted(report.added) == sorted(SMALL_BOOKS) and not report.skipped
    return kb


@pytest.fixture
def small_samples(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The bundled corpus cut to its two small books (64 chunks), with a private vector cache (its folder)."""
    books = [p for p in sample_corpus() if p.name in SMALL_BOOKS]
    monkeypatch.setattr(physagent.knowledge.samples, "sample_corpus", lambda: books)
    monkeypatch.setenv("PHYSAGENT_CACHE", str(tmp_path / "cache"))
    return physagent.knowledge.samples.vector_cache_dir()


def _embed_only(query: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on embedding anything but the search query itself fails the test."""
    real = physagent.knowledge.store.embed

    def only_the_query(texts: list[str], progress: object = None) -> object:
        if list(texts) != [query]:
            raise AssertionError(f"{len(texts)} passages were embedded again")
        return real(texts)

    monkeypatch.setattr(physagent.knowledge.store, "embed", only_the_query)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_sample_corpus_ships_with_the_package() -> None:
    names = {p.name for p in sample_corpus()}
    assert len(names) == 5 and "eucaifcon-2025-abstracts.txt" in names


def test_every_eval_question_title_is_a_section_title() -> None:
    """The titles a citation shows are the abstracts' titles, for every question of the eval set."""
    titles = {p.name: {_norm(s.title) for s in split_sections(p.read_text(), p.stem)} for p in sample_corpus()}
    questions = load_questions()
    assert len(questions) >= 40
    missing = [q["title"] for q in questions if _norm(q["title"]) not in titles[q["source"]]]
    assert not missing


@pytest.mark.parametrize(("question", "title"), [
    ("How can normalizing flows sample from differentiable matrix elements?",
     "Efficient Sampling from Differentiable Matrix Elements with Normalizing Flows"),
    ("Which machine learning is used for the fault diagnosis of the LLRF system at the European XFEL?",
     "Fault diagnosis for the LLRF system at the European XFEL"),
    ("gravitational wave parameter estimation for the Einstein Telescope",
     "Normalising Flows for Parameter Estimation from Gravitational Wave Signals"),
    ("small-angle X-ray scattering reconstruction with invertible networks",
     "Reconstruction of SAXS Data using Invertible Neural Networks"),
])
def test_search_finds_the_right_abstract_first(books_kb: KnowledgeBase, question: str, title: str) -> None:
    hits = books_kb.search(question, k=3)
    assert hits[0].title == title
    assert hits[0].citation == f"[{hits[0].source}: {title}]"
    assert len({h.title for h in hits}) == len(hits)  # one passage per abstract


def test_each_mode_ranks_and_bm25_matches_exact_terms(books_kb: KnowledgeBase) -> None:
    for mode in ("dense", "bm25", "hybrid"):
        hits = books_kb.search("SAXS", k=2, mode=mode)
        assert hits and hits[0].title == "Reconstruction of SAXS Data using Invertible Neural Networks", mode
    assert books_kb.search("zzqxv nonexistentterm", k=3, mode="bm25") == []
    with pytest.raises(ValueError, match="empty"):
        books_kb.search("  ")


def test_reingesting_unchanged_files_does_no_work(books_kb: KnowledgeBase, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_embedding(*args: object, **kwargs: object) -> None:
        raise AssertionError("an unchanged file was embedded again")

    monkeypatch.setattr(physagent.knowledge.store, "embed", no_embedding)
    report = books_kb.ingest([p for p in sample_corpus() if p.name in SMALL_BOOKS])
    assert sorted(report.unchanged) == sorted(SMALL_BOOKS)
    assert not report.changed and report.chunks_written == 0


def test_changed_file_replaces_its_chunks(tmp_path: Path) -> None:
    kb = KnowledgeBase.open(tmp_path / "home")
    note = _write(tmp_path / "docs" / "notes.md", "# Muon tagging\nThe zebrafish detector tags muons.\n")
    kb.ingest([tmp_path / "docs"])
    assert kb.search("zebrafish", mode="bm25")[0].title == "Muon tagging"
    note.write_text("# Muon tagging\nThe kangaroo detector tags muons.\n\n# Pile-up\nPile-up mitigation with PUPPI.\n")
    report = kb.ingest([tmp_path / "docs"])
    assert report.updated == ["notes.md"] and report.chunks_written == 2
    assert kb.search("zebrafish", mode="bm25") == []
    assert kb.search("kangaroo", mode="bm25")[0].title == "Muon tagging"
    assert kb.documents()[0]["chunks"] == 2
    assert kb._vectors("documents").count() == 2  # the old vector is gone too


def test_remove_and_list(tmp_path: Path) -> None:
    kb = KnowledgeBase.open(tmp_path / "home")
    kb.ingest([_write(tmp_path / "a.md", "# A\nalpha text"), _write(tmp_path / "b.txt", "Beta\nbeta text")])
    assert kb.collections() == [{"collection": "documents", "documents": 2, "chunks": 2}]
    report = kb.remove(["a.md", "missing.md"])
    assert report.removed == ["a.md"] and report.skipped[0][0] == "missing.md"
    assert [d["source"] for d in kb.documents()] == ["b.txt"]
    assert kb.search("alpha", mode="bm25") == []


def _bad_files(folder: Path) -> None:
    """One of each kind of file a batch must survive."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pypdf import PdfWriter

    (folder / "corrupt.pdf").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 20)
    figure = plt.figure()
    figure.text(0.1, 0.5, "secret muon results")
    figure.savefig(folder / "plain.pdf")
    plt.close(figure)
    writer = PdfWriter(clone_from=folder / "plain.pdf")
    writer.encrypt("password")
    writer.write(folder / "encrypted.pdf")
    (folder / "plain.pdf").unlink()
    (folder / "junk.txt").write_bytes(b"\x00\x01\x02\xff" * 1000)
    (folder / "empty.md").write_text("")
    (folder / "latin1.txt").write_bytes("Détecteur à muons — cavité résonante\n".encode("latin-1", "replace"))
    with (folder / "huge.txt").open("wb") as f:
        f.truncate(200_000_000)  # sparse: 200 MB on paper, nothing on disk
    (folder / "good.md").write_text("# Good\nThe axion helioscope is fine.\n")


def test_bad_files_are_skipped_with_a_reason_and_the_batch_goes_on(tmp_path: Path) -> None:
    folder = tmp_path / "batch"
    folder.mkdir()
    _bad_files(folder)
    report = KnowledgeBase.open(tmp_path / "home").ingest([folder, tmp_path / "nope.md"])
    assert sorted(report.added) == ["good.md", "latin1.txt"]
    skipped = dict(report.skipped)
    assert "not a readable PDF" in skipped["corrupt.pdf"]
    assert "encrypted" in skipped["encrypted.pdf"]
    assert "binary" in skipped["junk.txt"]
    assert "empty" in skipped["empty.md"]
    assert "200 MB is over the 50 MB limit" in skipped["huge.txt"]
    assert "no such file" in skipped[str(tmp_path / "nope.md")]
    assert "Latin-1" in dict(report.notes)["latin1.txt"]


def test_pdf_pages_html_and_notebook_sections(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import nbformat
    from matplotlib.backends.backend_pdf import PdfPages

    with PdfPages(tmp_path / "talk.pdf") as pdf:
        for text in ("Muon collider overview", "The wombat calorimeter on page two"):
            figure = plt.figure()
            figure.text(0.1, 0.5, text)
            pdf.savefig(figure)
            plt.close(figure)
    (tmp_path / "page.html").write_text("<html><head><title>Trigger notes</title><script>var koala = 1</script></head>"
                                        "<body><h2>Level-1 latency</h2><p>The okapi trigger runs in 4 us.</p></body>")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Fit the peak"),
                                               nbformat.v4.new_code_cell("import pyhf  # platypus")])
    (tmp_path / "fit.ipynb").write_text(nbformat.writes(notebook))
    kb = KnowledgeBase.open(tmp_path / "home")
    report = kb.ingest([tmp_path])
    assert sorted(report.added) == ["fit.ipynb", "page.html", "talk.pdf"]
    wombat = kb.search("wombat", mode="bm25")[0]
    assert (wombat.source, wombat.page) == ("talk.pdf", 2)
    assert kb.search("okapi", mode="bm25")[0].title == "Level-1 latency"
    assert kb.search("koala", mode="bm25") == []  # scripts are not text
    assert kb.search("platypus", mode="bm25")[0].title == "Fit the peak"


_CRASHING_INGEST = """
import os, sys
import physagent.knowledge.store as store
def crash(*args, **kwargs):
    os._exit(3)  # dies like a killed process: no cleanup, no exception handlers
store.KnowledgeBase._commit_document = crash
store.KnowledgeBase.open(sys.argv[1]).ingest([sys.argv[2]])
"""


@pytest.mark.slow  # a second Python process loads the embedding model
def test_a_crash_mid_ingest_leaves_the_previous_state_queryable(tmp_path: Path) -> None:
    home = tmp_path / "home"
    doc = _write(tmp_path / "docs" / "run.md", "# Run 1\nThe narwhal trigger fired.\n")
    kb = KnowledgeBase.open(home)
    kb.ingest([doc])
    doc.write_text("# Run 2\nThe manatee trigger fired.\n")
    crashed = subprocess.run([sys.executable, "-c", _CRASHING_INGEST, str(home), str(doc)],
                             capture_output=True, text=True, timeout=300, check=False)
    assert crashed.returncode == 3, crashed.stderr[-2000:]
    after = KnowledgeBase.open(home)
    assert after.search("narwhal")[0].title == "Run 1"  # the previous state, dense and lexical
    assert after.search("manatee", mode="bm25") == []
    assert after.ingest([doc]).updated == ["run.md"]  # the next ingest completes the update …
    assert after.search("manatee")[0].title == "Run 2"
    assert after._vectors("documents").count() == 1  # … and sweeps the crashed run's vector


@pytest.mark.slow  # embeds ~60 API entries on 2 cores
def test_api_reference_records_the_installed_signatures(tmp_path: Path) -> None:
    import hls4ml.converters
    import uproot

    entries = {s.title: s.text for s in api_entries("uproot")}
    assert entries["uproot.open"].startswith(f"uproot.open{inspect.signature(uproot.open)}")
    kb = KnowledgeBase.open(tmp_path / "home")
    report = sync_api_reference(kb, modules=["hls4ml.converters"])
    assert report.added == [f"hls4ml.converters {hls4ml.__version__}"]
    signature = f"convert_from_pytorch_model{inspect.signature(hls4ml.converters.convert_from_pytorch_model)}"
    exact = kb.search("hls4ml.converters.convert_from_pytorch_model", k=1, collections=["api"])[0]
    assert exact.title == "hls4ml.converters.convert_from_pytorch_model" and signature in exact.text
    described = kb.search("convert a PyTorch model to an HLS project", k=3, collections=["api"])
    assert "hls4ml.converters.convert_from_pytorch_model" in [h.title for h in described]
    assert sync_api_reference(kb, modules=["hls4ml.converters"]).unchanged  # same version: no re-indexing


def test_compiled_modules_get_signatures_from_their_docstrings() -> None:
    titles = {s.title: s.text for s in api_entries("pythia8mc")}
    assert "readString(self: pythia8mc.Pythia, line: str) -> bool" in titles["pythia8mc.Pythia.readString"]


def test_tool_catalogue_follows_the_registry(tmp_path: Path) -> None:
    kb = KnowledgeBase.open(tmp_path / "home")
    specs = [registry.get(n) for n in ("generate_events", "cluster_jets", "histogram", "plot", "search_knowledge")]
    assert len(sync_tool_catalogue(kb, specs).added) == len(specs)
    assert len(sync_tool_catalogue(kb, specs).unchanged) == len(specs)
    report = sync_tool_catalogue(kb, [s for s in specs if s.name != "plot"])
    assert report.removed == ["tool plot"] and not report.added
    hit = kb.search("anti-kT jets with a radius", k=1, collections=["tools"])[0]
    assert hit.title == "cluster_jets" and "radius" in hit.text


def test_a_fresh_workspace_searches_the_bundled_samples_and_cites_them(
        workspace: Workspace, small_samples: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No setup: the first search indexes the sample books with a progress bar; the second embeds only the query."""
    updates: list[ProgressUpdate] = []
    found = call_tool("search_knowledge", {"query": "SAXS reconstruction", "k": 2}, workspace=workspace,
                      progress=updates.append)
    assert found.result.hits[0].citation == SAXS and found.result.hits[0].collection == "samples"
    indexing = [u for u in updates if u.task.startswith("indexing the bundled sample corpus")]
    assert indexing[-1].finished and indexing[-1].completed == indexing[-1].total == 64
    assert len(list(small_samples.glob("*.npy"))) == len(SMALL_BOOKS)  # kept for the next workspace

    _embed_only("SAXS reconstruction", monkeypatch)
    again = call_tool("search_knowledge", {"query": "SAXS reconstruction", "k": 2}, workspace=workspace)
    assert not again.cached  # the base can change between calls: never served from the cache
    assert again.result.hits[0].citation == SAXS


def test_a_new_workspace_copies_the_sample_vectors_from_the_machine_cache(
        tmp_path: Path, small_samples: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another workspace (a web session, an eval task) embeds nothing; a damaged cache file is embedded again."""
    built = sync_samples(KnowledgeBase.open(tmp_path / "first"))
    assert sorted(built.added) == sorted(SMALL_BOOKS) and built.chunks_written == 64
    damaged = sorted(small_samples.glob("*.npy"))[0]
    damaged.write_bytes(damaged.read_bytes()[:100])
    repaired = sync_samples(KnowledgeBase.open(tmp_path / "second"))
    assert repaired.chunks_written == 64 and damaged.stat().st_size > 1000

    _embed_only("never", monkeypatch)
    copied = KnowledgeBase.open(tmp_path / "third")
    assert sync_samples(copied).chunks_written == 64
    hits = copied.search("SAXS reconstruction", k=1, mode="bm25")
    assert hits[0].citation == SAXS and hits[0].collection == "samples"


def test_sample_books_the_user_ingested_too_appear_once(workspace: Workspace, small_samples: Path) -> None:
    """`kb ingest-sample` still works; the user's copy then replaces the samples copy, and removing it brings it
    back."""
    call_tool("search_knowledge", {"query": "normalizing flows"}, workspace=workspace)
    runner = CliRunner()
    ingested = runner.invoke(app, ["kb", "ingest-sample", "--json"])
    assert ingested.exit_code == 0, ingested.output
    assert sorted(json.loads(ingested.stdout)["added"]) == sorted(SMALL_BOOKS)
    searched = runner.invoke(app, ["kb", "search", "SAXS reconstruction", "-k", "10", "--json"])
    shadowed = json.loads(searched.stdout)["hits"]  # 'samples' still holds both books: the search hides them
    assert {h["collection"] for h in shadowed} == {"documents"} and len({h["citation"] for h in shadowed}) == 10
    hits = call_tool("search_knowledge", {"query": "SAXS reconstruction", "k": 10}, workspace=workspace).result.hits
    assert hits[0].citation == SAXS and {h.collection for h in hits} == {"documents"}
    assert len({h.citation for h in hits}) == len(hits) == 10
    listed = json.loads(runner.invoke(app, ["kb", "list", "--json"]).stdout)["collections"]
    assert [(c["collection"], c["generated"], c["documents"]) for c in listed] == [("documents", False, 2)]

    assert runner.invoke(app, ["kb", "remove", SMALL_BOOKS[0]]).exit_code == 0
    back = call_tool("search_knowledge", {"query": "SAXS reconstruction", "k": 1}, workspace=workspace).result.hits
    assert back[0].citation == SAXS and back[0].collection == "samples"


def test_with_nothing_to_search_the_note_says_how_to_add_documents(workspace: Workspace,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """No user documents and no sample books: no hits, and a note naming the command that adds documents."""
    monkeypatch.setattr(physagent.knowledge.samples, "sample_corpus", list)
    empty = call_tool("search_knowledge", {"query": "normalizing flows"}, workspace=workspace).result
    assert empty.hits == [] and "`physagent kb ingest PATH`" in (empty.note or "")


def test_generated_collections_refuse_ingest(tmp_path: Path) -> None:
    """What a user ingests into 'samples' would vanish at its next update: refused, naming where to put it."""
    note = _write(tmp_path / "notes.md", "# A note\nSome text about jets.\n")
    with pytest.raises(ValueError, match="ingest into 'documents' or a collection of your own"):
        KnowledgeBase.open(tmp_path / "home").ingest([note], collection="samples")


def test_kb_cli_ingest_search_list_remove(workspace: Workspace, tmp_path: Path) -> None:
    runner = CliRunner()
    doc = _write(tmp_path / "notes.md", "# Beam dump\nThe SHiP beam dump searches for hidden sectors.\n")
    ingested = runner.invoke(app, ["kb", "ingest", str(doc), "--json"])
    assert ingested.exit_code == 0, ingested.output
    assert json.loads(ingested.stdout)["added"] == ["notes.md"]
    found = runner.invoke(app, ["kb", "search", "hidden sector beam dump", "-k", "2", "--json"])
    hits = json.loads(found.stdout)["hits"]
    assert hits[0]["title"] == "Beam dump" and hits[0]["source"] == "notes.md" and hits[0]["score"] > 0
    assert "Beam dump" in runner.invoke(app, ["kb", "search", "SHiP"]).stdout
    assert "notes.md" in runner.invoke(app, ["kb", "list"]).stdout
    assert runner.invoke(app, ["kb", "remove", "notes.md"]).exit_code == 0
    bad = runner.invoke(app, ["kb", "search", "x", "--mode", "fuzzy"])
    assert bad.exit_code == 2 and "must be one of" in bad.output


def test_the_agent_retrieves_and_its_answer_cites_the_passage(workspace: Workspace,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the real loop: the model asks search_knowledge, sees the passages, and cites one."""
    from physagent.agent import Assistant
    from physagent.agent.backends.scripted import ScriptedBackend, answer, call

    KnowledgeBase.open(workspace.root).ingest([p for p in sample_corpus() if p.name == SMALL_BOOKS[0]])
    monkeypatch.setattr(physagent.knowledge.samples, "sample_corpus", lambda: [])  # only the ingested book

    def cite(messages: list[dict[str, object]]) -> object:
        seen = str(messages[-1]["content"])
        assert "Reconstruction of SAXS Data using Invertible Neural Networks" in seen
        citation = re.search(r"\[dpg[^\]]*SAXS[^\]]*\]", seen)
        assert citation, seen[:500]
        return answer(f"Invertible neural networks reconstruct SAXS data {citation.group(0)}.")

    backend = ScriptedBackend([call("search_knowledge", query="SAXS reconstruction", k=3), cite])
    record = Assistant(backend=backend, workspace=workspace).ask("How are SAXS data reconstructed? Cite it.")
    assert record.tool_calls[0]["tool"] == "search_knowledge" and record.tool_calls[0]["ok"]
    assert record.answer.endswith(
        "[dpg-normalizing-flows-session-abstracts.txt: Reconstruction of SAXS Data using Invertible Neural Networks].")


@pytest.mark.slow  # embeds the whole sample corpus (~700 chunks)
def test_hybrid_retrieval_keeps_its_recall_on_the_eval_set(tmp_path: Path) -> None:
    """The README's retrieval figures hold: hybrid recall@5 ≥ 0.9, and no worse than dense or BM25 alone."""
    from physagent.evals.rag import evaluate_retrieval

    kb = KnowledgeBase.open(tmp_path / "home")
    kb.ingest(sample_corpus())
    dense, bm25, hybrid = evaluate_retrieval(kb, load_questions())
    assert hybrid.recall(5) >= 0.9, hybrid.misses
    assert hybrid.recall(5) >= max(dense.recall(5), bm25.recall(5))


@pytest.mark.slow  # the first use indexes the whole sample corpus (1,028 chunks) unless this machine has before
@pytest.mark.parametrize(("question", "source", "title", "fact"), [
    ("Which clustering algorithm does the Cluster Scanning method presented at ML4Jets 2023 use?",
     "ml4jets-2023-contributions.txt", "Cluster Scanning", "k-means"),
    ("Which two tasks did the OmniJet-alpha foundation model transfer between, at the DESY round table 2024?",
     "desy-deep-learning-round-table-2024-abstracts.txt",
     "OmniJet-α : The first cross-task foundation model for particle physics", "jet tagging"),
])
def test_a_fresh_workspace_answers_about_the_shipped_books_with_no_setup(
        workspace: Workspace, question: str, source: str, title: str, fact: str) -> None:
    """The whole bundled corpus: the passage that answers is among the three the model reads, with its citation."""
    hits = call_tool("search_knowledge", {"query": question, "k": 3}, workspace=workspace).result.hits
    answering = [h for h in hits if h.source == source and _norm(h.title) == _norm(title)]
    assert answering, [h.citation for h in hits]
    assert fact in answering[0].text and answering[0].citation == f"[{source}: {answering[0].title}]"


def test_the_agent_retrieves_passages_and_offers_search_knowledge_when_the_request_needs_sources(
        workspace: Workspace) -> None:
    """Retrieval first: a question about a talk brings its passage into the prompt and offers search_knowledge;
    a generation request brings none."""
    from physagent.agent import Assistant, ScriptedBackend
    from physagent.agent.context import gather_context
    from physagent.agent.selection import ToolSelector, wants_code

    assistant = Assistant(backend=ScriptedBackend([]), workspace=workspace)
    asked = gather_context(assistant, "Which clustering algorithm does the Cluster Scanning method use?")
    assert any("Cluster Scanning" in h.citation for h in asked.passages) and "search_knowledge" in asked.offered
    ordered = gather_context(assistant, "Generate 300 Drell-Yan mu mu events with seed 4 and MPI off.")
    assert ordered.passages == [] and "generate_events" in ordered.offered
    assert wants_code("Compute the fraction of events with at least 4 jets above 30 GeV in that sample")
    assert not wants_code("Generate 300 Drell-Yan mu mu events with seed 4 and MPI off.")
    offered = ToolSelector(k=3).select("Generate 300 Drell-Yan events", wanted=["search_knowledge"])
    assert "search_knowledge" in offered and "generate_events" in offered and len(offered) == 3


def test_a_method_named_by_its_papers_name_offers_the_tool_that_implements_it() -> None:
    """'CATHODE style' offers cathode_search and 'CWoLa' cwola_hunt, however the request's other words rank."""
    from physagent.agent.selection import ToolSelector

    offered = ToolSelector(k=3).select("Learn the sideband background with a tiny conditional flow, sample it into "
                                       "the signal region and classify data against it, CATHODE style.")
    assert "cathode_search" in offered and len(offered) == 3
    assert "cwola_hunt" in ToolSelector(k=2).select("Run cwola on my dijets")


def test_within_a_named_document_its_name_does_not_rank_the_passages() -> None:
    """Once a search keeps to the document the query names, the name's words are left out of the lexical ranking
    (they would put the book's title page first)."""
    from physagent.knowledge.store import _without_name_of

    book = "desy-deep-learning-round-table-2024-abstracts.txt"
    assert _without_name_of("CATHODE soft particles (desy deep learning round table 2024 abstracts)", book) == (
        "CATHODE soft particles")
    assert _without_name_of("2024 DESY", book) == "2024 DESY"  # nothing else left: the query as it was


def test_a_long_passage_is_cut_to_the_sentences_the_question_is_about(books_kb: KnowledgeBase) -> None:
    """A small model answers from the excerpt it is shown: the MadJax abstract names the asked package in its last
    sentence, which the first 380 characters leave out. The excerpt keeps it, within the limit, in order."""
    from physagent.knowledge.excerpt import excerpt
    from physagent.tools.retrieval.search import KnowledgeHit, KnowledgeSearch

    question = "Which package of differentiable matrix elements do they plan to use for more final-state particles?"
    hit = books_kb.search("sampling three-body hadronic decays with normalizing flows", k=1)[0]
    assert "MadJax" in hit.text and "MadJax" not in " ".join(hit.text.split())[:380]
    cut = excerpt(hit.text, question, 380)
    assert "provided by MadJax" in cut and len(cut) <= 380 and cut.startswith("… ")
    text = "Flows sample decays. We use splines. Later we plan to use MadJax for more particles. Thanks."
    assert excerpt(text, "which flows sample more particles", 80) == (
        "Flows sample decays. … Later we plan to use MadJax for more particles. …")  # in order, gaps marked
    assert excerpt("Short enough.", question) == "Short enough."
    no_overlap = excerpt(hit.text, "calorimeter", 100)
    assert no_overlap.endswith(" …") and hit.text.startswith(no_overlap[:40])  # nothing asked: the head
    found = KnowledgeSearch(query=question, collection="documents", hits=[KnowledgeHit(
        text=hit.text, source=hit.source, title=hit.title, page=None, score=1.0, citation=hit.citation,
        collection="samples")])
    assert "MadJax" in found.observation()


def test_a_table_of_contents_ranks_below_the_abstracts_it_lists(books_kb: KnowledgeBase) -> None:
    """A book's contents page names every talk, so it matched questions about any of them (a question about the
    2024 round table's soft-particle search got the contents page first and cited it); it now counts half."""
    from physagent.knowledge.store import _is_contents

    contents = ("Crystallography with Deep Learning\t6\nMachine learning denoising for nanotomography\t6\n"
                "Fault diagnosis\t6")
    assert _is_contents(contents) and _is_contents(contents.replace("\t", " . . . . "))
    assert not _is_contents("We present a model.\nIt was trained on 6\nshowers of 2 GeV and reached 0.9 AUC in 3 days.")
    for question in ("anomaly searches at the LHC with deep learning", "crystallography deep learning"):
        hits = books_kb.search(question, k=3)  # the contents page scored second for both before
        assert not any(_is_contents(h.text) for h in hits[:2]), [h.title for h in hits]
