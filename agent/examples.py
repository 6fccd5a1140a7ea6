r"""Worked examples (dynamic few-shot): request → plan → answer, the k most similar put in the prompt.

A small model copies a close example far better than it follows rules. The bank lives in
``agent/examples/*.yaml`` (shipped as package data); each entry is::

    - request: Generate 800 Z to mu mu events without MPI and give me the cross-section.
      context: []          # optional: artifacts of earlier turns the request refers to (id, kind, summary)
      steps:
        - tool: generate_events
          arguments: {process: drell_yan_mumu, n_events: 800, mpi: false}
      answer: Generated {$1.n_events} Drell-Yan μμ events; σ = {$1.sigma_pb} ± {$1.sigma_err_pb}.

``$N.field`` in an argument is step N's output, ``{$N.field}`` in the answer a placeholder the loop
fills (see :mod:`physagent.agent.plan`, :mod:`physagent.agent.claims`). An example with no steps and an
answer is a refusal or a question answered from passages. Requests are embedded with the bundled
MiniLM model once per process; :meth:`ExampleBank.similar` ranks by cosine similarity.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from physagent.agent.plan import PLAN_TOOL
from physagent.knowledge import embedder

__all__ = ["ExampleBank", "WorkedExample", "default_bank"]

_CODE_TOOL = "run_python"


@dataclass(frozen=True)
class WorkedExample:
    """One request and the plan that answers it."""

    request: str
    steps: list[dict[str, Any]]
    answer: str
    context: list[dict[str, str]] = field(default_factory=list)
    source: str = ""

    @property
    def tools(self) -> list[str]:
        return [step["tool"] for step in self.steps]

    @property
    def program(self) -> str:
        """The code of the example's ``run_python`` step ('' when it has none)."""
        return next((str(step["arguments"].get("code", "")) for step in self.steps if step["tool"] == _CODE_TOOL), "")

    def as_prompt(self) -> str:
        """The example as the model should reply: the request, then the ``submit_plan`` call."""
        lines = [f"Request: {self.request}"]
        if self.context:
            listed = "; ".join(f"{a['id']} ({a['kind']}): {a['summary']}" for a in self.context)
            lines.insert(0, f"Session artifacts: {listed}")
        if self.steps:
            call = {"tool": PLAN_TOOL, "arguments": {"steps": self.steps, "answer": self.answer}}
        else:
            call = {"answer": self.answer}
        lines.append("Reply: " + json.dumps(call, ensure_ascii=False))
        return "\n".join(lines)


class ExampleBank:
    """Worked examples with their request embeddings."""

    def __init__(self, examples: list[WorkedExample]) -> None:
        if not examples:
            raise ValueError("an example bank needs at least one example")
        self.examples = examples
        self._vectors: np.ndarray | None = None

    @classmethod
    def load(cls, directory: Path) -> ExampleBank:
        """Every ``*.yaml`` file of ``directory``, in name order."""
        examples = []
        for path in sorted(directory.glob("*.yaml")):
            for entry in yaml.safe_load(path.read_text()) or []:
                examples.append(WorkedExample(entry["request"], entry.get("steps") or [], entry.get("answer", ""),
                                              entry.get("context") or [], path.name))
        return cls(examples)

    def vectors(self) -> np.ndarray:
        if self._vectors is None:
            texts = [e.request for e in self.examples]
            self._vectors = embedder().encode(texts, normalize_embeddings=True, show_progress_bar=False)
        return self._vectors

    def similarities(self, text: str) -> np.ndarray:
        """Cosine similarity of ``text`` to every example's request."""
        query = embedder().encode([text], normalize_embeddings=True, show_progress_bar=False)[0]
        return self.vectors() @ query

    def similar(self, request: str, k: int = 3) -> list[WorkedExample]:
        """The ``k`` examples closest to ``request``, closest last (nearest the request in the prompt)."""
        order = np.argsort(-self.similarities(request), kind="stable")[:k]
        return [self.examples[i] for i in reversed(order)]

    def similar_programs(self, task: str, k: int = 2) -> list[WorkedExample]:
        """The ``k`` examples with a program whose requests are closest to ``task``, closest last."""
        similarity = self.similarities(task)
        with_code = [i for i in np.argsort(-similarity, kind="stable") if self.examples[i].program][:k]
        return [self.examples[i] for i in reversed(with_code)]


@functools.cache
def default_bank() -> ExampleBank:
    """The bank shipped with physagent (``agent/examples/``)."""
    return ExampleBank.load(Path(str(files("physagent.agent") / "examples")))
