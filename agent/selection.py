r"""Offer the model only the few tools a request needs: embedding similarity over the tool catalogue.

Small models choose well among four or five tools and badly among forty. Each tool's entry in the
knowledge base's tool catalogue (name, description, parameters: ``ToolSpec.catalogue_text``) is
embedded once with MiniLM (bundled offline, :func:`physagent.knowledge.embedder`); a request is embedded and the
``k`` most similar tools (cosine) are offered, plus any tool the request names outright or by its
method's name ("CATHODE" → ``cathode_search``: :func:`named_methods`, offered first and hinted in the prompt).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from physagent.knowledge import embedder
from physagent.tools import registry

__all__ = ["SOURCE_WORDS", "ToolSelector", "method_hints", "named_methods", "statistic_tools", "wants_code"]

# words that ask for sources: a tool description cannot compete with them on embedding similarity
SOURCE_WORDS = re.compile(r"\b(cite|citation|according to|abstract|paper|talk|proceedings|literature|"
                           r"conference|workshop|book of abstracts|round table|tool catalog(?:ue)?)\b", re.IGNORECASE)
# words that ask for a computation no tool names: offer write_code (generated code in the sandbox)
_CODE_WORDS = re.compile(r"\b(compute|calculate|fraction of|python|write code|count the)\b", re.IGNORECASE)


# methods people call by their paper's (or community's) name → the tools that implement them, as patterns. A
# named method's tool is offered first, named in the planning prompt, and a plan without it is sent back once.
_METHODS: dict[str, tuple[str, ...]] = {
    r"cwola": ("cwola_hunt",), r"cathode": ("cathode_search",), r"autoencoders?": ("autoencoder_search",),
    r"calochallenge": ("read_calochallenge",), r"dinamo": ("monitor_histograms",),
    r"sbi": ("sbi_train",), r"simulation[- ]based inference": ("sbi_train",), r"npe": ("sbi_train",),
    r"nle": ("sbi_train",), r"nre": ("sbi_train",), r"neural posteriors?": ("sbi_train",),
    r"sbc": ("sbi_diagnostics",), r"simulation[- ]based calibration": ("sbi_diagnostics",),
    r"tarp": ("sbi_diagnostics",), r"coverage": ("sbi_diagnostics",), r"calibrat\w*": ("sbi_diagnostics",),
    r"hls4ml": ("export_fpga",), r"fpgas?": ("export_fpga",), r"firmware": ("export_fpga",),
    r"conifer": ("export_fpga",), r"ap_fixed": ("export_fpga",),
    r"fixed[- ]point": ("compare_fixed_point", "export_fpga"), r"bit[- ]widths?": ("scan_precision",),
    r"precision scan": ("scan_precision",), r"synthes\w+": ("synthesize_fpga",),
}
# abilities asked for in words no tool description can outrank on similarity when other tools share the verb:
# offered first and required like a named method, hinted as what the request asks to do
_ABILITIES: dict[str, tuple[str, tuple[str, ...]]] = {
    r"export (?:the |this |our |my )?(?:session|analysis)|(?:as|into) a (?:python )?script":
        ("export the session as a script", ("export_session",)),
    r"nanoaod|delphes": ("read or write a NanoAOD or Delphes file", ("read_root", "write_root")),
    r"(?:write|save|export|convert|put|give)\b[^.]*\bhepmc3?": ("write a HepMC3 file", ("write_hepmc",)),
    r"merge\b[^.]*\b(?:samples|slices)|p̂t[- ]?slices|pt[- ]?hat slices": ("merge samples", ("merge_samples",)),
    # "scan" alone is a precision scan or a bump hunt's: only beside a training setting it asks for scan_training
    r"(?:hyper[- ]?parameters?\b[^.]*\b(?:scan|search|sweep|grid|tun\w*|optimi[sz]\w*)|(?:scan|sweep|grid[- ]search|"
    r"vary)\w*\b[^.]*\b(?:learning[- ]rates?|batch[- ]sizes?|weight[- ]decays?|model sizes?|hyper[- ]?parameters?))":
        ("scan training hyper-parameters", ("scan_training",)),
}
# words too common to name a method alone: "calibration constants" of a photomultiplier are no SBC, and a
# "synthesis" of results is no FPGA synthesis, so they count only beside their field's words
_INFERENCE = re.compile(r"\b(posteriors?|inference|sbi|npe|nle|nre|likelihoods?|priors?|simulators?)\b",
                        re.IGNORECASE)
_HARDWARE = re.compile(r"\b(fpgas?|hls4ml|hls|firmware|vivado|vitis|trigger|latency|resources?)\b", re.IGNORECASE)
_NEEDS_CONTEXT = {r"coverage": _INFERENCE, r"calibrat\w*": _INFERENCE, r"synthes\w+": _HARDWARE}


# a statistic of a field ("give me the mean lepton pT"): summarize computes it from the data, but the readers and
# generators outrank it on similarity; offered first (not required) unless a histogram, which has a mean, is asked
_STATISTIC = re.compile(r"\b(mean|average|median|standard deviation|std|rms|quantiles?|percentiles?)\b", re.IGNORECASE)
_BINNED = re.compile(r"\b(histogram\w*|plot\w*|distributions?|draw)\b", re.IGNORECASE)


def statistic_tools(request: str) -> list[str]:
    """``["summarize"]`` when the request asks for a statistic of a field and no histogram; else nothing."""
    asked = _STATISTIC.search(request) and not _BINNED.search(request)
    return ["summarize"] if asked and "summarize" in registry else []


def named_methods(request: str) -> dict[str, tuple[str, ...]]:
    """The methods ``request`` names, as written ("CATHODE"), each with its registered tools (none: left out).

    A tool that is not registered yet (the SBI tools before they land) is skipped, so nothing names it.
    """
    return {written: tools for written, _, tools in _named(request)}


def _named(request: str) -> list[tuple[str, str | None, tuple[str, ...]]]:
    """(words as written, the ability they ask for or None for a method, registered tools), first match each."""
    found: dict[str, tuple[str, str | None, tuple[str, ...]]] = {}
    patterns = [(p, None, tools) for p, tools in _METHODS.items()] + [(p, a, t) for p, (a, t) in _ABILITIES.items()]
    for pattern, ability, tools in patterns:
        context = _NEEDS_CONTEXT.get(pattern)
        if context is not None and not context.search(request):
            continue
        match = re.search(rf"\b{pattern}\b", request, re.IGNORECASE)
        registered = tuple(t for t in tools if t in registry)
        if match and registered:
            found.setdefault(match.group(0), (match.group(0), ability, registered))
    return list(found.values())


def method_hints(request: str, offered: Sequence[str]) -> list[str]:
    """One line per named method or asked ability whose tool is offered: "The request names CATHODE: use
    cathode_search.", "The request asks to write a HepMC3 file: use write_hepmc."."""
    hints = []
    for written, ability, tools in _named(request):
        usable = " or ".join(t for t in tools if t in offered)
        if usable:
            asks = f"asks to {ability}" if ability else f"names {written}"
            hints.append(f"The request {asks}: use {usable}.")
    return hints


def wants_code(request: str) -> bool:
    """Whether to offer ``write_code``: the request asks to compute something (no tool may cover it)."""
    return bool(_CODE_WORDS.search(request))


class ToolSelector:
    """Ranks registered tools by similarity to a request."""

    def __init__(self, k: int = 5, exclude: tuple[str, ...] = ()) -> None:
        self.k = k
        self.specs = [s for s in registry if s.name not in exclude]
        self._vectors: np.ndarray | None = None

    def _tool_vectors(self) -> np.ndarray:
        if self._vectors is None:
            texts = [s.catalogue_text() for s in self.specs]
            self._vectors = embedder().encode(texts, normalize_embeddings=True, show_progress_bar=False)
        return self._vectors

    def rank(self, request: str) -> list[tuple[str, float]]:
        """All tools with their cosine similarity to ``request``, best first."""
        query = embedder().encode([request], normalize_embeddings=True, show_progress_bar=False)[0]
        scores = self._tool_vectors() @ query
        order = np.argsort(-scores, kind="stable")
        return [(self.specs[i].name, float(scores[i])) for i in order]

    def select(self, request: str, wanted: Sequence[str] = ()) -> list[str]:
        """The ``k`` best tools for ``request`` plus tools it names explicitly (by name, by the method's name:
        "CATHODE", or ``wanted``), in registry order.

        Registry order, not rank order: a local model's prompt cache then reuses the longest common
        prefix of tool listings between requests.
        """
        by_method = {tool for tools in named_methods(request).values() for tool in tools}
        named = [s.name for s in self.specs if s.name in request or s.name in wanted or s.name in by_method]
        ranked = [name for name, _ in self.rank(request) if name not in named]
        chosen = set(named + ranked[: max(0, self.k - len(named))])
        return [s.name for s in self.specs if s.name in chosen]
