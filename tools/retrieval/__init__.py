"""``search_knowledge``: retrieval over the knowledge base (documents, tool catalogue, library APIs)."""

from physagent.tools.retrieval.search import KnowledgeHit, KnowledgeSearch, search_knowledge

__all__ = ["KnowledgeHit", "KnowledgeSearch", "search_knowledge"]
