"""Retrieval evals over the sample corpus: recall@1, recall@5 and MRR per retrieval mode."""

from physagent.evals.rag.runner import (
    DEFAULT_QUESTIONS,
    RetrievalScores,
    evaluate_retrieval,
    format_scores,
    load_questions,
)

__all__ = ["DEFAULT_QUESTIONS", "RetrievalScores", "evaluate_retrieval", "format_scores", "load_questions"]
