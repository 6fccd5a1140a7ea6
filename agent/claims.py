r"""Claim-level grounding: answers name values of tool results by placeholder; the loop writes the numbers.

A placeholder names one value of one result:

- ``{$3.peak}`` — field ``peak`` of step 3's result (plans);
- ``{hist-3f2a9c1b7d:mean}`` — field ``mean`` of the call that made that artifact (any turn);
- paths go into nested values: ``{$2.values.fraction}``, ``{$2.stats.jets.pt.median}`` (dict keys may
  contain dots; the longest key that matches wins).

:func:`render` replaces each by the value with its unit and, at its first mention, the artifact id
(``172.4 GeV [hist-3f2a9c1b7d]``). :func:`mislabelled` catches a placeholder whose field is another
quantity than the word written beside it (the *median* asked for, the *mean* referenced). Units come
from the field name (``sigma_pb`` → pb, ``pt_min_gev`` → GeV), a sibling ``unit`` value, or the
``[unit]`` of the result's axis label.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

__all__ = [
    "RENDERED_MARK", "Placeholder", "Rendered", "field_meant", "find_placeholders", "format_value",
    "is_single_value", "mend_fields", "mislabelled", "missing_quantities", "quantity_before",
    "quantity_of_field", "render", "resolve_path", "result_field_type", "unit_of", "value_fields",
    "without_sentences", "without_unrenderable",
]

_PLACEHOLDER = re.compile(r"\{\s*(?:\$(\d+)|([a-z]{2,5}-[0-9a-f]{10}))\s*[.:]\s*([A-Za-z_][\w.\-\[\]]*)\s*\}")
_UNITS = {"gev": "GeV", "tev": "TeV", "mev": "MeV", "pb": "pb", "fb": "fb", "nb": "nb", "mm": "mm", "cm": "cm",
          "s": "s", "mb": "MB", "percent": "%"}
_LABEL_UNIT = re.compile(r"\[([^\]]+)\]\s*$")
_SENTENCE_END = re.compile(r"((?<=[.!?])\s+|\n+)")
_SHORT_TEXT = 40

# words a person writes for a quantity, and the field-name tokens that hold it
QUANTITIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "mean": (("mean", "average", "avg"), ("mean",)),
    "median": (("median",), ("median", "q50", "p50")),
    "std": (("standard deviation", "std", "rms", "spread", "width"), ("std", "stddev", "rms")),
    "peak": (("peak", "peaks", "mode", "most probable"), ("peak", "mode")),
    "auc": (("auc", "area under"), ("auc",)),
    "accuracy": (("accuracy",), ("accuracy",)),
    "efficiency": (("efficiency", "efficiencies"), ("efficiency",)),
    "rejection": (("rejection",), ("rejection",)),
    "cross_section": (("cross-section", "cross section", "σ"), ("sigma",)),
    "fraction": (("fraction", "percentage", "share"), ("fraction",)),
    "minimum": (("minimum", "lowest", "smallest"), ("min", "minimum")),
    "maximum": (("maximum", "highest", "largest"), ("max", "maximum")),
    # events a luminosity holds: a histogram's Σw once weighted with luminosity_fb (not the generated n_events)
    "event_yield": (("event yield", "expected events", "events expected"), ("weights",)),
    "angle": ((), ("deg",)),  # a setting echoed in a result (θ = 0°): it supports "at 0°", nobody asks for it
}
_COMPATIBLE = {frozenset({"peak", "maximum"})}
_WINDOW_WORDS = 6
# stands in for a value rendered from a result when typed numbers are checked (the text keeps its length)
RENDERED_MARK = "\u25af"
# a quantity word already followed by its value ("AUC 0.80, SIC 1.9 at ε_S = 0.2"): it labels that value only
_HAS_VALUE = re.compile(rf"\s*(?:(?:=|:|≈|is|of|was)\s*)?(?:[-+]?\d|{RENDERED_MARK})")


@dataclass(frozen=True)
class Placeholder:
    """One ``{...}`` reference in an answer; exactly one of ``step`` and ``artifact`` is set."""

    text: str
    step: int | None
    artifact: str | None
    path: str
    start: int
    end: int

    @property
    def source(self) -> str:
        return f"${self.step}" if self.step is not None else str(self.artifact)


@dataclass(frozen=True)
class Rendered:
    """A placeholder's value as the answer shows it, or why it cannot be shown; ``unknown``: the placeholder names
    a field its result does not have (or holds no value), which the model can fix; ``start``/``end``: where
    :func:`render` wrote ``text`` in the answer (its numbers are the results', not the model's)."""

    text: str
    value: Any = None
    artifact: str | None = None
    problem: str | None = None
    unknown: bool = False
    start: int = -1
    end: int = -1


def find_placeholders(text: str) -> list[Placeholder]:
    """Every placeholder in ``text``, in order."""
    return [Placeholder(m.group(0), int(m.group(1)) if m.group(1) else None, m.group(2), m.group(3).rstrip("."),
                        m.start(), m.end()) for m in _PLACEHOLDER.finditer(text)]


def field_meant(path: str, fields: Iterable[str]) -> str | None:
    """The one field whose name holds every word of ``path`` (``mean_mass_gev`` → ``leading_jet_mean_mass_gev``),
    or None when none or several do: a small model shortens long field names, and only a unique match is safe.
    First, the one field ending in the path's tail: a small model puts a count under the wrong group.

    >>> field_meant("stats.jets.mean", ["stats.jets.pt.mean", "multiplicities.jets.mean"])
    'multiplicities.jets.mean'
    >>> field_meant("stats.jets_mass_gev.mean", ["n_jets", "leading_jet_mean_mass_gev", "leading_jet_mean_pt_gev"])
    'leading_jet_mean_mass_gev'
    """
    fields = list(dict.fromkeys(fields))
    if path.count(".") >= 2:  # the right tail in the wrong group: stats.jets.mean → multiplicities.jets.mean
        tail = "." + path.split(".", 1)[1].lower()
        in_other_group = [f for f in fields if f.lower().endswith(tail)]
        if len(in_other_group) == 1:
            return in_other_group[0]
    words = _name_words(path) - _GROUP_WORDS
    found = [f for f in fields if words and words <= _name_words(f)]
    return found[0] if len(found) == 1 else None


_GROUP_WORDS = frozenset({"stat", "statistic", "value", "result"})  # containers a model invents (singular)


def _name_words(name: str) -> set[str]:
    """The words of a field name, singular: ``stats.jets_mass_gev.mean`` → {stat, jet, mass, gev, mean}."""
    return {w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
            for w in re.split(r"[._]", name.lower()) if w}


def mend_fields(template: str, fields_of: Callable[[Placeholder], Iterable[str] | None]
                ) -> tuple[str, list[str]]:
    """``template`` with each placeholder that ``fields_of`` gives candidate fields for (None: leave it) pointed at
    the one it can only mean (:func:`field_meant`), and the findings saying so."""
    findings = []
    for placeholder in find_placeholders(template):
        fields = fields_of(placeholder)
        meant = field_meant(placeholder.path, fields) if fields is not None else None
        if meant is not None:
            template = template.replace(placeholder.text, f"{{${placeholder.step}.{meant}}}")
            findings.append(f"mended {placeholder.text} to the field {meant}")
    return template, findings


def result_field_type(model: type[BaseModel], path: str) -> Any:
    """The annotation at ``path`` in a result model, or None if the path cannot exist.

    Goes through nested models, list indices (``hits.0.citation``) and dict keys (``stats.jets_pt_gev.mean``,
    ``values.fraction``); below a plain dict of unknown keys any path is accepted (``Any``).
    """
    head, _, rest = path.partition(".")
    info = model.model_fields.get(head)
    if info is None:
        return None
    return _walk(info.annotation, rest)


def _walk(annotation: Any, rest: str) -> Any:
    if not rest:
        return annotation if annotation is not None else Any
    nested = _model_in(annotation)
    origin = typing.get_origin(annotation)
    if nested is not None and origin not in (list, dict):
        return result_field_type(nested, rest)
    head, _, tail = rest.partition(".")
    if origin is list:
        return _walk(typing.get_args(annotation)[0], tail) if head.lstrip("-").isdigit() else None
    if origin is dict:
        value_type = typing.get_args(annotation)[1] if typing.get_args(annotation) else Any
        return Any if _model_in(value_type) is None else _walk_keyed(value_type, rest)
    return Any if annotation is Any or (origin is None and nested is None and annotation is dict) else None


def _walk_keyed(value_type: Any, rest: str) -> Any:
    """Below a dict of models: the key may contain dots, so try every split point."""
    parts = rest.split(".")
    for size in range(1, len(parts) + 1):
        found = _walk(value_type, ".".join(parts[size:]))
        if found is not None:
            return found
    return None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def is_single_value(annotation: Any) -> bool:
    """Whether a placeholder to a field of this type names one value (not a list, dict or model)."""
    origin = typing.get_origin(annotation)
    if origin in (list, dict) or annotation in (list, dict):
        return False
    if origin is not None:  # Optional / Union: one value if every alternative is
        return all(is_single_value(a) for a in typing.get_args(annotation) if a is not type(None))
    return _model_in(annotation) is None


def resolve_path(data: Any, path: str) -> Any:
    """The value at a dotted ``path`` in JSON-like ``data`` (dict keys with dots match whole).

    Raises:
        KeyError: nothing at that path; the message names what is there.
    """
    parts = path.split(".")
    while parts:
        data, parts = _step_into(data, parts, path)
    return data


def _step_into(data: Any, parts: list[str], path: str) -> tuple[Any, list[str]]:
    if isinstance(data, dict):
        for size in range(len(parts), 0, -1):  # the longest key first: field paths such as 'jets.pt' are keys
            key = ".".join(parts[:size])
            if key in data:
                return data[key], parts[size:]
        if len(data) == 1 and len(parts) > 1:  # {stats.particles.pt.mean} of the one field summarised (lep_pt)
            return _in_only_entry(next(iter(data.values())), parts, path), []
        raise KeyError(f"no {parts[0]!r} in {path!r}; there is {', '.join(map(str, data)) or 'nothing'}")
    if isinstance(data, list) and parts[0].lstrip("-").isdigit() and abs(int(parts[0])) < len(data) + 1:
        return data[int(parts[0])], parts[1:]
    raise KeyError(f"{path!r} goes into a {type(data).__name__}, which has no {parts[0]!r}")


def _in_only_entry(entry: Any, parts: list[str], path: str) -> Any:
    """The value the rest of ``parts`` names inside a mapping's one entry, the model's own key parts skipped."""
    for skip in range(1, len(parts)):
        try:
            return resolve_path(entry, ".".join(parts[skip:]))
        except KeyError:
            continue
    raise KeyError(f"no {parts[0]!r} in {path!r}")


def quantity_of_field(path: str) -> str | None:
    """The quantity a result field holds, from its name (``leading_jet_mean_mass_gev`` → mean), if known.

    The last path segment that names a quantity decides (``stats.jets.pt.median`` → median); an
    uncertainty (``sigma_err_pb``) or a segment naming two quantities decides nothing.
    """
    for segment in reversed(path.lower().split(".")):
        tokens = set(re.split(r"[_\-\[\]]+", segment))
        if tokens & {"err", "error", "unc"}:
            return None
        found = [q for q, (_, field_tokens) in QUANTITIES.items() if tokens & set(field_tokens)]
        if found:
            return found[0] if len(found) == 1 else None
    return None


def quantity_before(text: str, position: int, holds: str | None = None) -> str | None:
    """The quantity named by the nearest word before ``position`` in the same clause (a few words back) that no
    other value follows already; ``holds`` (the value's own quantity) when one of those words names it ("the
    mean leading-jet mass peaks at {mean}" labels a mean)."""
    clause = re.split(r"[.;:!?\n]|\}|,\s+(?:and|while|with)\b", text[:position])[-1].lower()
    words = clause.split()[-_WINDOW_WORDS:]
    window = " ".join(words)
    named: list[tuple[int, str]] = []
    for quantity, (spoken, _) in QUANTITIES.items():
        for word in spoken:
            named += [(match.start(), quantity) for match in re.finditer(rf"(?<![\w-]){re.escape(word)}(?![\w-])",
                                                                         window)
                      if not _HAS_VALUE.match(window, match.end())]
    if holds is not None and any(quantity == holds for _, quantity in named):
        return holds
    return max(named)[1] if named else None


def conflicting(said: str | None, holds: str | None) -> bool:
    """Whether the quantity written and the quantity held are both known and different."""
    return bool(said and holds and said != holds and frozenset({said, holds}) not in _COMPATIBLE)


def mislabelled(template: str) -> list[str]:
    """Each placeholder whose field holds another quantity than the word written before it."""
    problems = []
    for placeholder in find_placeholders(template):
        holds = quantity_of_field(placeholder.path)
        said = quantity_before(template, placeholder.start, holds)
        if conflicting(said, holds):
            problems.append(f"the answer says {said!r} before {placeholder.text}, but that field is a {holds}")
    return problems


_ASKABLE = ("median", "mean", "fraction", "peak", "cross_section", "auc", "efficiency", "rejection", "std")
# asked for only right after an asking word ("what maximum SIC"): "the highest-pT jet" or "a maximum η of 2.5"
# in a question name an object or a setting, not the value wanted
_ASKABLE_AFTER_ASKING = {"maximum": ("maximum",), "minimum": ("minimum",)}
# words that ask for a value ("tell me the median", "what fraction", "compute the AUC"), not that set one
_ASKING = r"(?:what|which|tell|give|report|quote|compute|calculate|find|measure|determine|estimate|how|where|show)"


# "how many tt̄ events in 139 fb⁻¹": asked only beside a luminosity ("how many events pass" is a count)
_HOW_MANY_EVENTS = re.compile(r"\bhow many\b(?:\W+\w+){0,3}?\W+events\b|\b(?:expected|predicted) (?:number of )?"
                              r"events\b|\bevent yields?\b")
_SPOKEN = {"event_yield": "number of events the luminosity holds (a histogram's sum_weights)"}
_LUMINOSITY = re.compile(r"\b(?:fb|pb)\s*(?:\^\s*\{?\s*-\s*1|⁻¹|-1)|/(?:fb|pb)\b|\bluminosit")


def missing_quantities(request: str, template: str) -> list[tuple[str, str]]:
    """Quantities the request asks for that no placeholder of the answer holds ("the fraction of events
    with ≥ 4 jets" answered with a mean multiplicity), each with the problem in words."""
    held = {quantity_of_field(p.path) for p in find_placeholders(template)}
    lowered = request.lower()
    asked = ["event_yield"] if (_HOW_MANY_EVENTS.search(lowered) and _LUMINOSITY.search(lowered)
                                and not _holds(held, "event_yield")) else []
    for quantity in (*_ASKABLE, *_ASKABLE_AFTER_ASKING):
        words = "|".join(re.escape(w) for w in _ASKABLE_AFTER_ASKING.get(quantity, QUANTITIES[quantity][0]))
        asking = rf"\b{_ASKING}\b(?:\W+\w+){{0,6}}?\W+(?:{words})(?![\w-])"
        if quantity in _ASKABLE:
            asking += rf"|(?<![\w-])(?:{words})\b[^.?!]*\?"
        if re.search(asking, lowered) and not _holds(held, quantity):
            asked.append(quantity)
    return [(q, f"the request asks for the {_SPOKEN.get(q, q.replace('_', '-'))}, but no placeholder in the "
             "answer holds one") for q in asked]


def _holds(held: set[str | None], quantity: str) -> bool:
    return quantity in held or any(frozenset({quantity, h}) in _COMPATIBLE for h in held)


def unit_of(path: str, result: Any) -> str:
    """The unit of a result value: from its field name, a sibling ``unit``, or the result's axis label."""
    last = path.rsplit(".", maxsplit=1)[-1].lower()
    words = last.split("_")
    if len(words) >= 3 and words[-2] == "per" and words[-1] in _UNITS:  # inference_jets_per_s → jets/s
        return f"{words[-3]}/{_UNITS[words[-1]]}"
    suffix = words[-1] if len(words) > 1 else ""
    if suffix in _UNITS:
        return _UNITS[suffix]
    parent = path.rsplit(".", 1)[0] if "." in path else None
    try:
        sibling = resolve_path(result, f"{parent}.unit") if parent else None
    except KeyError:
        sibling = None
    if isinstance(sibling, str):
        return sibling
    label = result.get("label") if isinstance(result, dict) else None
    match = _LABEL_UNIT.search(label) if isinstance(label, str) and last in ("mean", "std", "peak") else None
    return match.group(1) if match else ""


def format_value(value: Any, unit: str = "") -> str:
    """A number as a physicist writes it (4 significant digits, integers whole), with its unit."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        text = str(value)
    elif isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e7):
        text = f"{int(value)}"
    elif abs(value) >= 1e7 or abs(value) < 1e-3:
        text = f"{value:.3e}"
    elif abs(value) >= 1e4:
        text = f"{value:.0f}"
    else:
        text = f"{value:.4g}"
    if not unit:
        return text
    return f"{text}{unit}" if unit == "%" else f"{text} {unit}"


def render(template: str, lookup: Callable[[Placeholder], Rendered]) -> tuple[str, list[Rendered]]:
    """The template with each placeholder replaced by ``lookup``'s text; also returns every lookup, with the span
    of the answer it wrote."""
    parts, rendered, last, length = [], [], 0, 0
    for placeholder in find_placeholders(template):
        value = lookup(placeholder)
        before = template[last:placeholder.start]
        start = length + len(before)
        rendered.append(dataclasses.replace(value, start=start, end=start + len(value.text)))
        parts += [before, value.text]
        last, length = placeholder.end + _repeated_unit(value.text, template[placeholder.end:]), start + len(value.text)
    parts.append(template[last:])
    return "".join(parts), rendered


_WITH_UNIT = re.compile(r"[-+]?\d[\d.]*(?:e[-+]?\d+)? (\S+)")


def _repeated_unit(text: str, rest: str) -> int:
    """Characters of the template that repeat the unit the value was rendered with ("{$1.compile_s} s" → "6.01 s",
    not "6.01 s s")."""
    shown = _WITH_UNIT.fullmatch(text)
    if shown is None:
        return 0
    repeated = re.match(rf" ?{re.escape(shown.group(1))}(?!\w)", rest)
    return repeated.end() if repeated else 0


def value_fields(result: Any, limit: int = 12, depth: int = 1) -> list[str]:
    """The fields of a result a placeholder can show, compactly: numbers and short texts, ``depth`` levels into
    dicts of them (``values.fraction``; ``multiplicities.jets.mean`` at depth 2); no lists, artifacts, long texts or
    empty (None) values.

    >>> value_fields({"auc": 0.7, "max_sic": None, "scores": {"id": "x", "sha256": "y"}, "values": {"f": 0.1}})
    ['auc', 'values.f']
    >>> value_fields({"multiplicities": {"jets": {"mean": 4.1}}}, depth=2)
    ['multiplicities.jets.mean']
    """
    def shown(value: Any) -> bool:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return number or (isinstance(value, str) and len(value) <= _SHORT_TEXT)

    fields = []
    for key, value in (result.items() if isinstance(result, dict) else []):
        if shown(value):
            fields.append(key)
        elif isinstance(value, dict) and "sha256" not in value and depth > 0:
            fields += [f"{key}.{inner}" for inner in value_fields(value, limit=10**6, depth=depth - 1)]
    return fields[:limit]


def without_sentences(template: str, placeholders: list[Placeholder]) -> str:
    """The template without each sentence that holds one of ``placeholders`` ('' when none is left)."""
    texts = {p.text for p in placeholders}
    return _sentences_kept(template, lambda sentence: not any(t in sentence for t in texts))


def _sentences_kept(text: str, keep: Callable[[str], bool]) -> str:
    """``text`` with only the sentences ``keep`` accepts."""
    pieces = [*_SENTENCE_END.split(text.strip()), ""]  # sentence, separator, sentence, ..., ""
    return "".join(s + gap for s, gap in zip(pieces[::2], pieces[1::2], strict=True) if keep(s)).strip()


_UNRENDERABLE = re.compile(r"\{\s*\$\d+[^{}]*\}")  # "{$2.n_jets / $1.n_events}": arithmetic no result holds


def without_unrenderable(text: str) -> tuple[str, list[str]]:
    """``text`` without the sentences holding a placeholder no renderer reads (an expression of placeholders), and
    those placeholders: shown raw they would read as an answer.

    >>> without_unrenderable("Made 300 events. Jets per event: {$2.n_jets / $1.n_events}.")
    ('Made 300 events.', ['{$2.n_jets / $1.n_events}'])
    """
    found = _UNRENDERABLE.findall(text)
    if not found:
        return text, []
    return _sentences_kept(text, lambda sentence: not _UNRENDERABLE.search(sentence)), found
