r"""Everything the model is shown before its first turn, gathered once per request.

- the tools on offer: the most similar by embedding (:class:`~physagent.agent.selection.ToolSelector`),
  the tools of the closest worked examples, and the ones the request asks for outright;
- the closest worked examples (:mod:`physagent.agent.examples`);
- the artifacts the session may use — made in earlier turns of this chat, or the workspace's latest —
  with kind and summary: the only ids a call may name;
- passages from the documents close to the request (retrieval first: a question about a talk is
  answered from it even when the model would have picked another tool), with their citations.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from physagent.agent.agent_tools import WRITE_CODE, is_known, spec
from physagent.agent.arguments import is_stated
from physagent.agent.examples import WorkedExample, default_bank
from physagent.agent.grounding import Source, numbers_in, sources_in
from physagent.agent.plan import asked_actions
from physagent.agent.selection import SOURCE_WORDS, named_methods, statistic_tools, wants_code
from physagent.knowledge import Hit, KnowledgeBase, sync_samples
from physagent.knowledge.excerpt import excerpt
from physagent.tools import ProgressUpdate, registry

if TYPE_CHECKING:
    from physagent.agent.loop import Assistant

__all__ = ["RequestContext", "gather_context"]

_LISTED_WORKSPACE_ARTIFACTS = 8
_PASSAGE_SCORE = 0.62  # dense cosine; tool requests score up to ~0.6 on the sample corpus
_PASSAGE_SCORE_ASKED = 0.35  # when the request asks for sources outright
_PASSAGE_SCORE_QUESTION = 0.5  # a question (not an order): a talk's passage scores 0.55–0.6
_QUESTION = re.compile(r"^\s*(which|what|who|whom|whose|when|where|how|why|does|do|did|is|are|was|were|can|"
                       r"according)\b|\?\s*$", re.IGNORECASE)
_PASSAGE_CHARS = 420
_MAX_TOOLS = 7
_ORDERED_ALWAYS = frozenset({"plot", "histogram", "cluster_jets", "detector_response", "merge_samples", "write_root",
                             "export_histograms", "write_hepmc", "export_session", "summarize", "compare_samples",
                             "train_generator", "evaluate_tagger"})
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass
class RequestContext:
    """The prompt material for one request."""

    request: str
    offered: list[str]
    examples: list[WorkedExample]
    artifacts: dict[str, str]  # id → kind
    artifact_lines: list[str]
    passages: list[Hit]
    messages: list[dict[str, Any]] = field(default_factory=list)  # history + the request (argument hygiene)
    prompt_text: str = ""

    def example_values(self, tool: str) -> dict[str, list[Any]]:
        """Values the shown examples *derive* for each parameter of ``tool`` ("boosted" → a p̂T cut of 400):
        a model copying one of those derives it too. A value the example's request states (a number it wrote,
        "without hadronisation") is not one of them: copied into another request it would be invented."""
        values: dict[str, list[Any]] = {}
        parameters = spec(tool).parameters_schema() if is_known(tool) else {}
        for example in self.examples:
            written = set(numbers_in(example.request))
            request = [{"role": "user", "content": example.request}]
            for step in example.steps:
                if step["tool"] != tool:
                    continue
                for name, value in step.get("arguments", {}).items():
                    copied = ((isinstance(value, (int, float)) and value in written)
                              or (parameters and is_stated(name, value, parameters, request)))
                    if not copied:  # derived, not copied: "without hadronisation" derives nothing
                        values.setdefault(name, []).append(value)
        return values

    @property
    def sources(self) -> list[Source]:
        """Numbers the answer may quote before any tool ran: the passages', earlier answers' and the listed
        session artifacts' summaries (a histogram's 30 bins, recorded when it was made)."""
        found = [s for hit in self.passages for s in sources_in(hit.text, "passage")]
        history = [m["content"] for m in self.messages[:-1] if m.get("role") in ("user", "assistant")]
        return found + sources_in(history, "passage") + sources_in(self.artifact_lines, "result")

    def sections(self) -> str:
        """Examples, session artifacts and passages as prompt text (empty sections left out)."""
        parts = []
        if self.examples:
            parts.append("Worked examples (similar requests and the replies that answered them):\n\n"
                         + "\n\n".join(e.as_prompt() for e in self.examples))
        if self.artifact_lines:
            parts.append("Session artifacts (the only ids you may pass; or use '$N.field' for a step's output):\n"
                         + "\n".join(self.artifact_lines))
        if self.passages:
            parts.append("Passages from the documents (cite each you use as written in brackets):\n"
                         + "\n".join(f"{h.citation} {excerpt(h.text, self.request, _PASSAGE_CHARS, h.source)}"
                                     for h in self.passages))
        return "\n\n".join(parts)

    def without_prompt_echo(self, answer: str, our_messages: Sequence[str] = (), quotable: Sequence[str] = ()) -> str:
        """The answer without sentences copied from the instructions or from the loop's own messages to the
        model (a small model sometimes echoes them); '' when nothing else is left. A sentence of a ``quotable``
        text (a retrieved passage, which the loop's messages may repeat) is the answer's source, not an echo."""
        ours = " | ".join(_normal(text) for text in [self.prompt_text, *our_messages])
        sources = " | ".join(_normal(text) for text in quotable)
        kept = [s for s in _SENTENCE.split(answer)
                if len(s.split()) < 4 or _normal(s) not in ours or _normal(s) in sources]
        return " ".join(kept).strip()


def gather_context(assistant: Assistant, request: str) -> RequestContext:
    """Select tools and examples, list the artifacts, retrieve passages — before the first model turn."""
    examples = default_bank().similar(_selection_text(assistant, request), k=assistant.examples_per_request) \
        if assistant.examples_per_request else []
    artifacts, lines = _session_artifacts(assistant)
    passages = _passages(assistant, request)
    offered = _offered(assistant, request, examples, bool(passages))
    messages = [*assistant.history, {"role": "user", "content": request}]
    return RequestContext(request, offered, examples, artifacts, lines, passages, messages)


def _selection_text(assistant: Assistant, request: str) -> str:
    earlier = " ".join(m["content"] for m in assistant.history[-2:] if m["role"] == "user")
    return f"{earlier} {request}".strip()


def _offered(assistant: Assistant, request: str, examples: list[WorkedExample], has_passages: bool) -> list[str]:
    # the data and output steps the request's verbs order ("write … to ROOT as an RNTuple"): offered whatever the
    # examples are, so the plan can hold them and the loop can add them when the model leaves them out ("train"
    # or "compare" say less about which tool: those stay with similarity)
    ordered = [t for t in asked_actions(request, [s.name for s in registry], {}) if t in _ORDERED_ALWAYS]
    wanted = [*statistic_tools(request), *ordered, *(tool for example in reversed(examples) for tool in example.tools)]
    if has_passages or SOURCE_WORDS.search(request):
        wanted.insert(0, "search_knowledge")
    text = _selection_text(assistant, request)
    chosen = assistant.selector.select(text, list(dict.fromkeys(wanted)))
    kept = set(_method_tools_first(request, _by_similarity(assistant, text, chosen))[:max(_MAX_TOOLS,
                                                                                          assistant.selector.k)])
    kept |= set(ordered)
    names = _method_tools_first(request, [s.name for s in registry if s.name in kept])
    if wants_code(request) or WRITE_CODE in wanted:  # code no tool covers: written and repaired for the model
        names.append(WRITE_CODE)
    return names


def _by_similarity(assistant: Assistant, text: str, names: list[str]) -> list[str]:
    """``names`` the request writes out first, then the most similar: over the tool limit the cut keeps those, not
    the earliest registered (an example's generate_events must not push out the make_jet_dataset asked for)."""
    rank = {name: i for i, (name, _) in enumerate(assistant.selector.rank(text))}
    return sorted(names, key=lambda name: (name not in text, rank.get(name, len(rank))))


def _method_tools_first(request: str, names: list[str]) -> list[str]:
    """The tools of the methods the request names ("CATHODE"), then summarize for an asked statistic, first: a small
    model takes the first tool that fits, and a cut to the tool limit keeps them. Otherwise registry order (the
    prompt cache reuses it)."""
    first = [tool for tools in named_methods(request).values() for tool in tools if tool in names]
    first += [tool for tool in statistic_tools(request) if tool in names]
    return list(dict.fromkeys([*first, *names]))


def _session_artifacts(assistant: Assistant) -> tuple[dict[str, str], list[str]]:
    """This chat's artifacts, then the workspace's latest (uploads, earlier sessions)."""
    listed: dict[str, tuple[str, str]] = {}
    for record in assistant.records:
        for made in record.artifacts:
            listed[made["id"]] = (made["kind"], made["summary"])
    for artifact in assistant.workspace.list_artifacts()[-_LISTED_WORKSPACE_ARTIFACTS:]:
        listed.setdefault(artifact.id, (artifact.kind, artifact.summary))
    lines = [f"- {i} ({kind}): {summary}" for i, (kind, summary) in listed.items()]
    return {i: kind for i, (kind, _) in listed.items()}, lines


def _passages(assistant: Assistant, request: str) -> list[Hit]:
    """The user's documents and the bundled books, searched before the model's first turn."""
    if not assistant.retrieve_first:
        return []
    kb = KnowledgeBase.open(assistant.workspace.root)
    sync_samples(kb, progress=_progress(assistant))  # seconds once cached on this machine; ~1 min the first time
    threshold = (_PASSAGE_SCORE_ASKED if SOURCE_WORDS.search(request) else
                 _PASSAGE_SCORE_QUESTION if _QUESTION.search(request) else _PASSAGE_SCORE)
    hits = kb.search(request, k=3, mode="dense", collections=["documents", "samples"])
    return [h for h in hits if h.score >= threshold]


def _progress(assistant: Assistant) -> Callable[[int, int, str], None] | None:
    sink = assistant.progress
    if sink is None:
        return None

    def report(done: int, total: int, message: str) -> None:
        del message
        sink(ProgressUpdate(tool="knowledge", task="indexing the bundled books of abstracts", completed=done,
                            total=total, unit="chunks", finished=done >= total))

    return report


def _normal(sentence: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", sentence.lower()).split())
