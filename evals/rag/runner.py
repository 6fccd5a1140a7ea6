r"""Score retrieval on question → abstract pairs: does the right abstract come first, or in the top 5?

A question counts as found at rank r when the r-th hit is the expected abstract (same source file,
same title up to spacing, case and punctuation). recall@k is the fraction found at rank ≤ k; MRR is
the mean of 1/r (0 when not in the top ``depth``).
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from physagent.knowledge import KnowledgeBase, SearchMode

__all__ = ["DEFAULT_QUESTIONS", "RetrievalScores", "evaluate_retrieval", "format_scores", "load_questions"]

DEFAULT_QUESTIONS = Path(__file__).with_name("questions.yaml")
_DEPTH = 10


@dataclass
class RetrievalScores:
    """Scores of one retrieval mode over a question set."""

    mode: str
    ranks: list[int | None] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)
    median_ms: float = 0.0

    def recall(self, k: int, kind: str | None = None) -> float:
        ranks = [r for r, q in zip(self.ranks, self.kinds, strict=True) if kind in (None, q)]
        return sum(r is not None and r <= k for r in ranks) / max(1, len(ranks))

    @property
    def mrr(self) -> float:
        return sum(1.0 / r for r in self.ranks if r) / max(1, len(self.ranks))

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "questions": len(self.ranks), "recall@1": round(self.recall(1), 3),
                "recall@5": round(self.recall(5), 3), "mrr": round(self.mrr, 3),
                "median_ms": round(self.median_ms, 1), "misses": self.misses}


def load_questions(path: Path = DEFAULT_QUESTIONS) -> list[dict[str, str]]:
    """The question set: dicts with question, source, title, answer and kind."""
    questions = yaml.safe_load(Path(path).read_text())
    if not isinstance(questions, list) or not all({"question", "source", "title"} <= set(q) for q in questions):
        raise ValueError(f"{path}: expected a YAML list of entries with question, source and title")
    return questions


def _same(a: str, b: str) -> bool:
    def norm(s: str) -> str:
        return re.sub(r"[^0-9a-z]", "", s.casefold())

    return norm(a) == norm(b)


def _rank(kb: KnowledgeBase, question: dict[str, str], mode: SearchMode) -> int | None:
    hits = kb.search(question["question"], k=_DEPTH, collections=["documents"], mode=mode)
    for rank, hit in enumerate(hits, start=1):
        if hit.source == question["source"] and _same(hit.title, question["title"]):
            return rank
    return None


def evaluate_retrieval(kb: KnowledgeBase, questions: list[dict[str, str]],
                       modes: tuple[SearchMode, ...] = ("dense", "bm25", "hybrid")) -> list[RetrievalScores]:
    """Rank of the expected abstract for every question, per mode."""
    results = []
    for mode in modes:
        scores, times = RetrievalScores(mode), []
        for question in questions:
            start = time.perf_counter()
            rank = _rank(kb, question, mode)
            times.append(1000 * (time.perf_counter() - start))
            scores.ranks.append(rank)
            scores.kinds.append(question.get("kind", "other"))
            if rank is None or rank > 5:
                scores.misses.append(question["question"])
        scores.median_ms = statistics.median(times) if times else 0.0
        results.append(scores)
    return results


def format_scores(results: list[RetrievalScores]) -> str:
    """A Markdown table: one row per mode."""
    lines = ["| retrieval | questions | recall@1 | recall@5 | MRR | median time per query |",
             "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.mode} | {len(r.ranks)} | {r.recall(1):.2f} | {r.recall(5):.2f} | {r.mrr:.2f} | "
                     f"{r.median_ms:.0f} ms |")
    return "\n".join(lines) + "\n\n" + _by_kind(results)


def _by_kind(results: list[RetrievalScores]) -> str:
    """recall@1 / recall@5 per question kind (fact, number, paraphrase, …) and mode."""
    kinds = sorted(set(results[0].kinds)) if results else []
    lines = ["| kind (questions) | " + " | ".join(f"{r.mode} R@1 / R@5" for r in results) + " |",
             "|---|" + "---|" * len(results)]
    for kind in kinds:
        cells = " | ".join(f"{r.recall(1, kind):.2f} / {r.recall(5, kind):.2f}" for r in results)
        lines.append(f"| {kind} ({results[0].kinds.count(kind)}) | {cells} |")
    return "\n".join(lines)
