"""Knowledge base: ingest throughput, search latency after warm-up, and retrieval quality per mode.

    python benchmarks/bench_knowledge.py [--api] [--sweep 100/20,150/30,250/50]

Ingests the bundled sample corpus into a fresh temporary workspace, times `kb search` queries (the
eval questions) per retrieval mode after a warm-up, prints recall@1/recall@5/MRR, and with --api
also times indexing the installed libraries' API reference; --sweep scores chunk sizes (words/overlap)
to tune the default. Target: hybrid search < 200 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from physagent.evals.rag import evaluate_retrieval, format_scores, load_questions
from physagent.knowledge import KnowledgeBase, sample_corpus
from physagent.knowledge.api_reference import sync_api_reference


def bench_ingest(kb: KnowledgeBase) -> None:
    start = time.perf_counter()
    report = kb.ingest(sample_corpus())
    seconds = time.perf_counter() - start
    size_kb = sum(p.stat().st_size for p in sample_corpus()) / 1e3
    print(f"ingest sample corpus: {len(report.added)} files, {size_kb:.0f} kB, {report.chunks_written} chunks "
          f"in {seconds:.1f} s ({report.chunks_written / seconds:.1f} chunks/s)")
    start = time.perf_counter()
    kb.ingest(sample_corpus())
    print(f"re-ingest, nothing changed: {1000 * (time.perf_counter() - start):.0f} ms")


def bench_latency(kb: KnowledgeBase, questions: list[str]) -> None:
    for question in questions[:5]:  # warm-up: model weights, BM25 index, chroma segments
        kb.search(question)
    for mode in ("hybrid", "dense", "bm25"):
        times = []
        for question in questions:
            start = time.perf_counter()
            kb.search(question, k=5, mode=mode)
            times.append(1000 * (time.perf_counter() - start))
        times.sort()
        print(f"search ({mode}): median {statistics.median(times):.0f} ms, "
              f"95th percentile {times[int(0.95 * (len(times) - 1))]:.0f} ms over {len(times)} queries")


def bench_api(kb: KnowledgeBase) -> None:
    start = time.perf_counter()
    report = sync_api_reference(kb)
    seconds = time.perf_counter() - start
    print(f"API reference: {len(report.added)} modules, {report.chunks_written} entries in {seconds:.0f} s")


def sweep_chunking(questions: list[dict[str, str]], words: int, overlap: int) -> None:
    with tempfile.TemporaryDirectory() as home:
        kb = KnowledgeBase(Path(home) / "knowledge", chunk_words=words, overlap_words=overlap)
        chunks = kb.ingest(sample_corpus()).chunks_written
        print(f"\nchunks of {words} words, {overlap} overlap: {chunks} chunks")
        print(format_scores(evaluate_retrieval(kb, questions)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", action="store_true", help="also time indexing the library API reference")
    parser.add_argument("--sweep", default="", help="chunk sizes to score, e.g. 100/20,150/30,250/50")
    args = parser.parse_args()
    questions = load_questions()
    for setting in filter(None, args.sweep.split(",")):
        sweep_chunking(questions, *map(int, setting.split("/")))
    with tempfile.TemporaryDirectory() as home:
        kb = KnowledgeBase.open(Path(home))
        bench_ingest(kb)
        bench_latency(kb, [q["question"] for q in questions])
        print(format_scores(evaluate_retrieval(kb, questions)))
        if args.api:
            bench_api(kb)


if __name__ == "__main__":
    main()
