r"""Keep only the optional arguments a person actually stated: small models invent the rest.

A 0.5B model asked for "300 Drell-Yan events with MPI off" also writes ``pt_hat_max_gev=20`` and
``isr=false``; a 1.5B model adds ``style="CMS"`` nobody asked for. Optional arguments are therefore kept
only when the conversation supports them, or a worked example the model was shown gave the same
parameter the same value (``shown``: "boosted" → a p̂T cut is derived, not invented):

- numbers: the value is written in the conversation — also as ``2 TeV`` for 2000 (GeV), ``5k`` for
  5000, ``30%`` for 0.3;
- booleans: a word of the parameter's name (``mpi``, ``hadronisation``/``hadronization``,
  ``density``/"normalised", ``log``) appears in a user message;
- enum choices: the value's stem ("hadronic" in "hadronically", "leptonic" in "dileptonic", "cambridge
  aachen" for ``cambridge_aachen``) or one of the parameter's ``x-phrases`` for it appears in a user
  message;
- optional lists of names (``histograms=["occupancy"]``, feature columns): only the items whose words
  the user wrote (any word of the item, case-insensitive, ``_``/``-`` read as spaces, plural ``s``) — a
  small model copies names from the examples and the descriptions (:func:`drop_unstated_names`). Kept
  whole: items that are expressions (``jets.pt[0]``, ``Tune:pp = 14``, ``njets.png``), artifact ids,
  ``$N`` references, and every item of a parameter marked ``"x-derived": true`` (its items are derived
  from the data or the task: selections, a table's columns, file names, legend labels);
- free strings and objects (selections, queries, artifact ids, ``$N`` references): kept — they are
  content the model derives, and the tool validates them.

Required arguments are always kept. Dropped arguments take the tool's documented defaults.

What the user stated goes to the tool as stated (:func:`fill_stated_arguments`): a phrase that names
one value ("top quark pair" → ``ttbar``) or a number written next to the parameter's name ("-5
events", "seed 4", "20k events") wins over the model's value — unless the model's own value is stated
too — so the tool, not the model, refuses a bad one.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from physagent.agent.grounding import numbers_in

__all__ = [
    "clean_arguments", "drop_defaults", "drop_unstated_names", "fill_stated_arguments", "is_choice", "is_stated",
    "keep_stated_arguments", "known_names", "name_from_offer", "plain_variants", "sized_by_words", "spread_windows",
    "stated_settings", "value_words_stated", "without_borrowed_numbers",
]

_SPELLINGS = {
    "hadronisation": ("hadronisation", "hadronization", "hadronise", "hadronize"),
    "density": ("density", "normalis", "normaliz", "unit area"),
}
_UNIT_WORDS = {"gev", "tev", "min", "max", "mm", "pb", "n"}
_NOT_NAME_WORDS = frozenset({*_UNIT_WORDS, "mev", "of", "the", "and", "in", "on", "at", "to", "for", "per", "vs"})
_DERIVED_ITEM = re.compile(r"[.\[\](){}=<>:+*/]")  # "jets.pt[0]", "Tune:pp = 14", "njets.png": expressions
_REFERENCE_OR_ID = re.compile(r"\$\d+(?:\.\w+)?|[a-z]{2,5}-[0-9a-f]{10}")
_SCALED = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*([kKmM])\b")
_TEV = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*tev\b", re.IGNORECASE)
_PERCENT = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*(?:%|percent)", re.IGNORECASE)


def clean_arguments(arguments: dict[str, Any], parameters: dict[str, Any], messages: list[dict[str, Any]],
                    shown: dict[str, list[Any]] | None = None) -> dict[str, Any]:
    """What the user stated, not what a small model imagined: drop the unstated, fill the stated."""
    user_text = _user_text(messages)
    arguments = mend_paths(known_names(arguments, parameters), messages)
    kept = keep_stated_arguments(drop_defaults(arguments, parameters, user_text), parameters, messages, shown)
    kept = drop_unstated_names(kept, parameters, user_text)  # after ``shown``: examples' names leak
    kept = without_borrowed_numbers(kept, parameters, user_text)  # before filling: what is stated returns
    filled = fill_stated_arguments(kept, parameters, messages, model_wrote=set(arguments))
    return plain_variants(sized_by_words(filled, arguments, parameters, user_text), parameters, user_text)


def plain_variants(arguments: dict[str, Any], parameters: dict[str, Any], user_text: str) -> dict[str, Any]:
    """A variant the user never named goes back to the plain value (``histogram.field="jets.msd"`` for "the
    leading-jet mass": the soft-drop mass only when soft drop or grooming is written). A parameter lists them as
    ``"x-variants": {variant: [plain value, words that name the variant, ...]}``.

    >>> schema = {"properties": {"field": {"x-variants": {"jets.msd": ["jets.mass", "soft-drop", "groomed"]}}}}
    >>> plain_variants({"field": "jets.msd"}, schema, "histogram the leading-jet mass")
    {'field': 'jets.mass'}
    >>> plain_variants({"field": "jets.msd"}, schema, "the groomed jet mass")
    {'field': 'jets.msd'}
    """
    plain = dict(arguments)
    for name, value in arguments.items():
        variants = parameters.get("properties", {}).get(name, {}).get("x-variants", {})
        if isinstance(value, str) and value in variants:
            replacement, *words = variants[value]
            if not any(_said(word, user_text) for word in words):
                plain[name] = replacement
    return plain


# "use a small sample", "a quick test run", "just a few events": a size in words, no number
_SMALL_SAMPLE = re.compile(r"\b(?:small|quick|tiny|short|little|few|modest)\b(?:[\s-]+[\w-]+){0,3}?[\s-]+"
                           r"(?:samples?|runs?|tests?|statistics|events?|jets?|showers?|datasets?)\b", re.IGNORECASE)
SMALL_SAMPLE_FRACTION = 10  # "a small sample" with no number: a tenth of the tool's default size


def sized_by_words(arguments: dict[str, Any], model_arguments: dict[str, Any], parameters: dict[str, Any],
                   user_text: str) -> dict[str, Any]:
    """A sample size asked for in words ("use a small sample") on a parameter marked ``"x-sample-size": true``
    that no number states: the model's own smaller value, else a tenth of the default. Hygiene would otherwise
    drop the model's (unstated) count and run the default, which is no small sample.

    >>> schema = {"properties": {"n_events": {"type": "integer", "default": 10000, "x-sample-size": True}}}
    >>> sized_by_words({}, {"n_events": 500}, schema, "the cross-section, use a small sample")
    {'n_events': 500}
    >>> sized_by_words({}, {}, schema, "a quick test run of Z events")
    {'n_events': 1000}
    >>> sized_by_words({}, {"n_events": 500}, schema, "Z events at 13 TeV")
    {}
    """
    if not _SMALL_SAMPLE.search(user_text):
        return arguments
    sized = dict(arguments)
    for name, schema in parameters.get("properties", {}).items():
        default = schema.get("default")
        if not schema.get("x-sample-size") or name in arguments or not isinstance(default, int):
            continue
        own = model_arguments.get(name)
        smaller = isinstance(own, int) and not isinstance(own, bool) and 0 < own < default
        sized[name] = own if smaller else max(1, default // SMALL_SAMPLE_FRACTION)
    return sized


# a file path as users write them: with a folder (/data/x.root, ./x.root, run_01/y.lhe.gz) or a bare file name
_WRITTEN_PATH = re.compile(r"(?<![\w/.~-])(?:[~.\w+-]*/)+[\w.+-]+|(?<![\w/.~-])[\w+-]+(?:\.[\w+-]+)*\.[A-Za-z]\w*")


def mend_paths(arguments: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    """A file path the model copied with a character lost (most often the leading '/' of an absolute path written
    first in the request) is replaced by the one path the user wrote that it is a tail of."""
    text = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")
    written = {path.rstrip(".") for path in _WRITTEN_PATH.findall(text)}  # a sentence's full stop is no suffix
    mended = dict(arguments)
    for name, value in arguments.items():
        if not (name == "path" or name.endswith("_path")) or not isinstance(value, str) or value in written:
            continue
        tails = [path for path in written if path.endswith("/" + value.lstrip("/")) or path == "/" + value]
        same_file = [path for path in written if _file_name(path) == _file_name(value)]
        if len(tails) == 1:
            mended[name] = tails[0]
        elif not tails and len(same_file) == 1:  # moved to another folder, or given a ".gz" it never had
            mended[name] = same_file[0]
    return mended


def _file_name(path: str) -> str:
    return re.sub(r"\.(?:gz|bz2|xz|zst)$", "", path.rsplit("/", 1)[-1])


def drop_unstated_names(arguments: dict[str, Any], parameters: dict[str, Any], user_text: str) -> dict[str, Any]:
    """Each optional list of names without the names the user never wrote; without the argument if none is left.

    >>> schema = {"properties": {"histograms": {"type": "array", "items": {"type": "string"}}}}
    >>> drop_unstated_names({"histograms": ["occupancy", "hit_energy"]}, schema, "monitor the hit energies")
    {'histograms': ['hit_energy']}
    >>> drop_unstated_names({"histograms": ["occupancy"]}, schema, "flag the bad runs")
    {}
    """
    properties = parameters.get("properties", {})
    required = set(parameters.get("required", []))
    kept = {}
    for name, value in arguments.items():
        if name in required or not _is_name_list(value, properties.get(name, {})):
            kept[name] = value
        elif stated := [item for item in value if _name_stated(item, user_text)]:
            kept[name] = stated
    return kept


def _is_name_list(value: Any, schema: dict[str, Any]) -> bool:
    """A list of strings for a parameter whose items are names the user picks (no ``x-derived`` marker)."""
    arrays = [s for s in schema.get("anyOf", [schema]) if s.get("type") == "array"]
    return (isinstance(value, list) and all(isinstance(item, str) for item in value) and bool(arrays)
            and arrays[0].get("items", {}).get("type") == "string" and not schema.get("x-derived"))


def _name_stated(item: str, user_text: str) -> bool:
    """Whether a word of ``item`` is in the user's text (``hit_energy`` in "hit energies"); an expression, id or
    ``$N`` reference is the model's derivation, not a name it could invent, and always counts."""
    if _DERIVED_ITEM.search(item) or _REFERENCE_OR_ID.fullmatch(item.strip()):
        return True
    spoken = re.sub(r"[_\-]+", " ", user_text.lower())
    words = [w for w in re.split(r"[\s_\-]+", item.lower()) if len(w) >= 2 and w not in _NOT_NAME_WORDS]
    return any(re.search(rf"(?<![a-z0-9]){_singular_or_plural(w)}(?![a-z0-9])", spoken) for w in words)


def _singular_or_plural(word: str) -> str:
    """A pattern for ``word`` in the singular or plural: energy/energies, hit/hits, box/boxes."""
    stem = word.removesuffix("s")
    if stem.endswith("y"):
        return rf"{re.escape(stem[:-1])}(?:y|ies)"
    return rf"{re.escape(stem)}(?:s|es)?"


def known_names(arguments: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """``arguments`` with each unknown name that abbreviates exactly one free parameter renamed to it.

    Small models shorten names the way physicists speak ("r" for ``radius``, "pt_min" for
    ``pt_min_gev``); a name that fits no parameter, or several, stays for the schema check to refuse.

    >>> known_names({"r": 0.4, "events": "$1"}, {"properties": {"events": {}, "radius": {}, "pt_min_gev": {}}})
    {'radius': 0.4, 'events': '$1'}
    >>> known_names({"pt": 30}, {"properties": {"pt_min_gev": {}, "pt_max_gev": {}}})
    {'pt': 30}
    """
    properties = parameters.get("properties", {})
    renamed = {}
    for name, value in arguments.items():
        fits = [] if name in properties else [
            p for p in properties if p not in arguments and p.lower().startswith(name.lower())]
        renamed[fits[0] if len(fits) == 1 else name] = value
    return renamed


def keep_stated_arguments(arguments: dict[str, Any], parameters: dict[str, Any],
                          messages: list[dict[str, Any]], shown: dict[str, list[Any]] | None = None) -> dict[str, Any]:
    """``arguments`` without the optional ones the conversation does not state (module docstring)."""
    required = set(parameters.get("required", []))
    properties = parameters.get("properties", {})
    user_text = _user_text(messages)
    numbers = _stated_numbers(messages)
    shown = shown or {}
    return {name: value for name, value in arguments.items()
            if name in required or value in shown.get(name, [])
            or _stated(name, value, properties.get(name, {}), user_text, numbers)}


def is_stated(name: str, value: Any, parameters: dict[str, Any], messages: list[dict[str, Any]],
              strict: bool = False) -> bool:
    """Whether the user stated this argument (required ones count as stated). ``strict``: a list or free
    string counts only if a word of the parameter's name appears (``abs_pid`` for "muons" does not)."""
    if name in parameters.get("required", []):
        return True
    user_text = _user_text(messages)
    schema = parameters.get("properties", {}).get(name, {})
    if strict and isinstance(value, (list, str)) and "enum" not in _enum_schema(schema):
        words = [w for w in name.split("_") if len(w) >= 3 and w not in _UNIT_WORDS]
        return any(re.search(rf"\b{re.escape(w)}", user_text) for w in words)
    return _stated(name, value, schema, user_text, _stated_numbers(messages))


def value_words_stated(value: Any, messages: list[dict[str, Any]]) -> bool:
    """Whether a word of a structured value (a name in a list of prior entries, say) is in the user's text."""
    user_text = _user_text(messages)
    leaves = value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
    return any(value_words_stated(leaf, messages) if isinstance(leaf, (list, dict))
               else isinstance(leaf, str) and len(leaf) >= 2 and _said(leaf, user_text) for leaf in leaves)


_SIGN_WORD = re.compile(r"\b(?:minus|negative)\s+(?=\d)", re.IGNORECASE)  # "minus 20 events" states -20
_ZERO = re.compile(r"\bzero\b(?!-)", re.IGNORECASE)  # "a radius of exactly zero" (not "zero-bias")
_SMALL = {"a single": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
          "nine": 9, "ten": 10, "twelve": 12, "twenty": 20}
# "for a single epoch", "two epochs": a count before a noun (not "one of them", "the one with MPI off")
_SMALL_COUNT = re.compile(rf"\b({'|'.join(_SMALL)})\s+(?!(?:of|with|that|which|another|by|more|or|and|in|at|to|"
                          r"for|is|are|was|the|a|an)\b)(?=[a-z])", re.IGNORECASE)
_SCALE_WORD = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s+(thousand|million|billion)\b", re.IGNORECASE)
_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9}


def _user_text(messages: list[dict[str, Any]], lower: bool = True) -> str:
    text = _numbers_as_digits(" ".join(str(m.get("content", "")) for m in messages if m.get("role") == "user"))
    return text.lower() if lower else text


def _numbers_as_digits(text: str) -> str:
    """``text`` with a sign, a scale, zero or a small count written as a word in digits: "minus 20" → "-20", "200
    million" → "200000000", "zero" → "0", "a single epoch" → "1 epoch" (the user's number goes to the tool, which
    refuses what it cannot do)."""
    scaled = _SCALE_WORD.sub(lambda m: f"{float(m[1]) * _SCALES[m[2].lower()]:.0f}", text)
    counted = _SMALL_COUNT.sub(lambda m: f"{_SMALL[m[1].lower()]} ", scaled)
    return _SIGN_WORD.sub("-", _ZERO.sub("0", counted))


def _stated_numbers(messages: list[dict[str, Any]]) -> list[float]:
    """Numbers of the conversation (earlier answers and their artifact summaries included), with
    the scalings people write: 2 TeV = 2000 GeV, 5k = 5000, 30% = 0.3."""
    text = _numbers_as_digits(" ".join(str(m.get("content", "")) for m in messages
                            if m.get("role") in {"user", "tool", "assistant"}))
    plain = numbers_in(text)
    scaled = [float(n) * {"k": 1e3, "m": 1e6}[s.lower()] for n, s in _SCALED.findall(text)]
    tev = [float(n) * 1000 for n in _TEV.findall(text)]
    percent = [float(n) / 100 for n in _PERCENT.findall(text)]
    return plain + scaled + tev + percent


def _stated(name: str, value: Any, schema: dict[str, Any], user_text: str, numbers: list[float]) -> bool:
    if isinstance(value, bool):
        words = _SPELLINGS.get(name, tuple(w for w in name.split("_") if w not in _UNIT_WORDS and len(w) >= 3))
        return any(re.search(rf"\b{re.escape(word)}", user_text) for word in words) or _phrase_names(
            schema, value, user_text)
    if isinstance(value, (int, float)):
        return any(abs(value - number) <= 1e-9 * max(1.0, abs(number)) for number in numbers)
    if isinstance(value, str) and "enum" in _enum_schema(schema):
        return _enum_stated(value, _enum_schema(schema), user_text)
    if isinstance(value, str) and (name == "path" or name.endswith("_path")):
        return _file_name(value).lower() in user_text  # "path/to/lhe_file.lhe" is a model's placeholder, no file
    return True


def _enum_stated(value: str, schema: dict[str, Any], user_text: str) -> bool:
    """The value's stem, its words, or an x-phrase for it, appears in the user's text. With
    ``x-phrases-only`` only the phrases count ("train" is a verb before it is a split)."""
    if schema.get("x-phrases-only"):
        return _phrase_names(schema, value, user_text)
    lowered = value.lower()
    if len(lowered) <= 4:  # short values ("CMS", "all", "log") must be whole words
        return _said(lowered, user_text) or _phrase_names(schema, value, user_text)
    stem = lowered[: max(4, len(lowered) - 2)]
    spellings = {lowered.replace("_", " "), lowered.replace("_", "-")}
    if stem in user_text or any(s in user_text for s in spellings):
        return True
    return _phrase_names(schema, value, user_text)


def _phrase_names(schema: dict[str, Any], value: Any, user_text: str) -> bool:
    return any(v == value and _said(phrase, user_text) for phrase, v in schema.get("x-phrases", {}).items())


def _said(phrase: str, user_text: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(phrase.lower())}(?![\w])", user_text) is not None


def is_choice(schema: dict[str, Any]) -> bool:
    """Whether the parameter takes one of listed values (an enum, possibly optional)."""
    return "enum" in _enum_schema(schema)


def _enum_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema itself, or its one non-null alternative (``Literal[...] | None``)."""
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    return {**options[0], **{k: v for k, v in schema.items() if k != "anyOf"}} if len(options) == 1 else schema


def fill_stated_arguments(arguments: dict[str, Any], parameters: dict[str, Any], messages: list[dict[str, Any]],
                          model_wrote: set[str] | None = None) -> dict[str, Any]:
    """Set the arguments the user stated, where the model left them out or got them wrong.

    A parameter may list phrases that state its value (``"x-phrases": {"leading": 0}`` on
    ``histogram.object_index``, ``{"top quark": "ttbar"}`` on ``generate_events.process``): when the
    user's words state exactly one value that way, it wins over the model's — unless the model's value
    is stated in the text too ("VBF Higgs with custom settings": ``custom`` stays). A number written
    next to the parameter's one-word name ("seed 4", "-5 events") wins likewise. An enum value written
    as a word ("all-hadronic" → ``decay="hadronic"``) fills a parameter the model did not write at all
    (``model_wrote``: the model's own keys, before hygiene), when exactly one non-default value is written. A
    parameter marked ``"x-needs": [other, …]`` is filled only beside one of those (``object_index`` picks among
    ``fields``: without fields, "the leading muon" belongs to the selection).
    """
    user_text, raw_text = _user_text(messages), _user_text(messages, lower=False)
    wrote = set(arguments) if model_wrote is None else model_wrote
    filled = dict(arguments)
    for name, schema in parameters.get("properties", {}).items():
        needs = schema.get("x-needs")
        if needs and name not in filled and not any(filled.get(other) for other in needs):
            continue  # "the leading muon" in a selection sets no object_index for a summarize without fields
        own = filled.get(name)
        if own is not None and isinstance(own, str) and _enum_stated(own, _enum_schema(schema), user_text):
            continue  # the model took a value the user named: keep it
        if _several_windows(name, user_text):
            continue  # each window is one step's ("50–100 GeV, and one above 100"): the model placed them
        phrased = _phrased_values(schema, user_text)
        named = _named_values(name, schema, parameters, user_text, raw_text)
        if len(named) == 1:  # the user's own number, even one the tool will refuse
            filled[name] = named[0]
        elif len(phrased) == 1:
            filled[name] = phrased[0]
        elif name not in wrote and not phrased:
            words = _enum_words(_enum_schema(schema), user_text)
            if len(words) == 1:
                filled[name] = words[0]
    return filled


def _named_values(name: str, schema: dict[str, Any], parameters: dict[str, Any], user_text: str,
                  raw_text: str = "") -> list[Any]:
    """The numbers the user's words give parameter ``name`` by its name, an alias, a bound, a unit or a range;
    or the name they give it ("call the tree 'zll'"; ``raw_text``: the same text as written, for its case)."""
    return (_named_number(name, schema, user_text) or _aliased_number(schema, user_text)
            or _named_string(schema, user_text, raw_text)
            or _bound_number(name, schema, user_text)
            or _unit_number(name, schema, parameters, user_text) or _axis_range(name, user_text)
            or _quantity_range(name, schema, user_text) or _entry_window(name, user_text))


def without_borrowed_numbers(arguments: dict[str, Any], parameters: dict[str, Any], user_text: str) -> dict[str, Any]:
    """Without the optional numbers the model took from a phrase that gives another parameter its value, when the
    request writes that number once: "pT-hat above 400 GeV" states ``pt_hat_min_gev=400``, not
    ``m_wprime_gev=400`` for a tt̄ sample.

    >>> schema = {"properties": {"pt_hat_min_gev": {"type": "number"}, "m_wprime_gev": {"type": "number"}}}
    >>> without_borrowed_numbers({"pt_hat_min_gev": 400, "m_wprime_gev": 400}, schema, "tt with pt-hat above 400 gev")
    {'pt_hat_min_gev': 400}
    """
    properties = parameters.get("properties", {})
    claimed = {name: _named_values(name, schema, parameters, user_text) for name, schema in properties.items()}
    written = numbers_in(user_text)
    kept = {}
    for name, value in arguments.items():
        borrowed = (isinstance(value, (int, float)) and not isinstance(value, bool) and not claimed.get(name)
                    and name not in parameters.get("required", []) and written.count(float(value)) == 1
                    and value not in _phrased_values(properties.get(name, {}), user_text)  # "leading" → index 0
                    and any(value in values for other, values in claimed.items() if other != name))
        if not borrowed:
            kept[name] = value
    return kept


def stated_settings(parameters: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Numbers the user's words give this tool's parameters ("pT-hat above 400 GeV", "seed 4")."""
    user_text = _user_text(messages)
    found = {}
    for name, schema in parameters.get("properties", {}).items():
        values = (_named_number(name, schema, user_text) or _aliased_number(schema, user_text)
                  or _bound_number(name, schema, user_text))
        if values:
            found[name] = values[0]
    return found


def _named_number(name: str, schema: dict[str, Any], user_text: str) -> list[Any]:
    """A number written right next to the parameter's one-word name: "seed 4", "radius = 1.0", "30 bins",
    "-5 events", "20k events". Bounds (``*_min``/``*_max``) are never guessed from "range 0 to 200"."""
    types = {s.get("type") for s in schema.get("anyOf", [schema])}
    parts = name.split("_")
    stems = [w for w in parts if w not in _UNIT_WORDS]
    if len(stems) != 1 or {"min", "max"} & set(parts) or not types & {"integer", "number"}:
        return []
    word = stems[0]
    stem = re.escape(word[:-1]) + "s?" if word.endswith("s") and len(word) > 3 else re.escape(word)  # "1 epoch"
    number = r"([-+]?\d[\d,]*(?:\.\d+)?)\s*([km])?"
    found = re.findall(rf"\b{stem}(?:\s+(?:parameter|value|size))?\s*(?:=|:|of|is|to)?\s*"
                       rf"(?:(?:exactly|precisely|just)\s+)?{number}(?!\w|\.\d)", user_text)
    between = r"(?:(?!(?:gev|tev|mev|mm|pb|fb|%)\b)[a-z][\w-]*\s+){0,2}"  # "-5 ttbar events", not "400 GeV events"
    found += re.findall(rf"(?<![\w.]){number}\s+{between}{stem}\b", user_text)
    values = {float(digits.replace(",", "")) * {"k": 1e3, "m": 1e6}.get(suffix, 1) for digits, suffix in found}
    if "number" not in types:  # "S/B = 0.03 with seed 4": 0.03 is no seed
        values = {v for v in values if v.is_integer()}
    if len(values) != 1:
        return []
    value = values.pop()
    return [int(value) if "integer" in types and value.is_integer() else value]


def _named_string(schema: dict[str, Any], user_text: str, raw_text: str = "") -> list[Any]:
    """A name the user gives a string parameter by one of its ``x-names``: "call the tree 'zll'", "a tree named
    zll", "tree = zll" (user text is lower-cased, so a name written in capitals comes back in lower case)."""
    types = {s.get("type") for s in schema.get("anyOf", [schema])}
    if "string" not in types or "enum" in _enum_schema(schema):
        return []
    cased = raw_text if len(raw_text) == len(user_text) else user_text  # the name as written, "Events" not "events"
    found = set()
    for alias in schema.get("x-names", []):
        name, quote = re.escape(alias.lower()), r"['\"‘“]?"
        for pattern in (rf"\b(?:call|name)\w*\s+(?:the\s+|its\s+|it\s+|a\s+)?{name}\s+{quote}(\w+)",
                        rf"\b{name}\s+(?:called|named)\s+{quote}(\w+)", rf"\b{name}\s*[=:]\s*{quote}(\w+)"):
            found |= {cased[m.start(1):m.end(1)] for m in re.finditer(pattern, user_text)}
    return list(found) if len(found) == 1 else []


def _aliased_number(schema: dict[str, Any], user_text: str) -> list[Any]:
    """A number written next to one of the names physicists give the parameter (``x-names`` on it: "S/B",
    "QCD" for ``s_over_b``, ``n_background_events``): "S/B = 0.03", "S/B of 0.5%" (→ 0.005), "5000 QCD
    events"; none when the names carry two different numbers."""
    types = {s.get("type") for s in schema.get("anyOf", [schema])}
    if not types & {"integer", "number"}:
        return []
    number = r"([-+]?\d[\d,]*(?:\.\d+)?)\s*([km%])?"
    found = []
    for alias in schema.get("x-names", []):
        name = re.escape(alias.lower())
        found += re.findall(rf"(?<![\w/]){name}\s*(?:=|:|of|is|at)?\s*{number}(?!\w|\.\d)", user_text)
        if re.search(r"(?:above|over|below|under|[<>])$", alias):
            continue  # "jets above" takes the number after it; "1.0 jets above 300" is R, not the cut
        found += re.findall(rf"(?<![\w.])([-+]?\d[\d,]*(?:\.\d+)?)\s*([km])?\s+"
                            rf"(?:(?!(?:gev|tev|mev|mm|pb|fb)\b)[a-z][\w-]*\s+)?{name}(?!\w)", user_text)
    scale = {"k": 1e3, "m": 1e6, "%": 1e-2}
    values = {float(digits.replace(",", "")) * scale.get(suffix, 1) for digits, suffix in found}
    if "number" not in types:
        values = {v for v in values if v.is_integer()}
    if len(values) != 1:
        return []
    value = values.pop()
    return [int(value) if "integer" in types and value.is_integer() else value]


_ABOVE = r"(?:above|over|greater than|larger than|at least|>=|>|≥)"
_BELOW = r"(?:below|under|less than|smaller than|at most|<=|<|≤)"


def spread_windows(steps: list[dict[str, Any]], parameters: dict[str, Any], messages: list[dict[str, Any]]
                   ) -> list[dict[str, Any]]:
    """The arguments of several steps of one tool, with the windows the request writes for a quantity given out
    one per step in the order written, when there are as many as steps ("one sample with pT-hat between 50 and
    100 GeV, one with pT-hat above 100 GeV" → steps 1 and 2); otherwise unchanged."""
    user_text = _user_text(messages)
    spread = [dict(arguments) for arguments in steps]
    properties = parameters.get("properties", {})
    for low_name, high_name in _bound_pairs(properties):
        windows = _windows_in_order(low_name, user_text)
        if len(steps) < 2 or len(windows) != len(steps):
            continue
        for arguments, window in zip(spread, windows, strict=True):
            for name, value in zip((low_name, high_name), window, strict=True):
                if value is None:
                    arguments.pop(name, None)
                else:
                    arguments[name] = _as_schema_number(value, properties[name])
    return spread


def _bound_pairs(properties: dict[str, Any]) -> list[tuple[str, str]]:
    """(``x_min…``, ``x_max…``) parameter pairs: ``pt_hat_min_gev`` with ``pt_hat_max_gev``."""
    pairs = []
    for name in properties:
        parts = name.split("_")
        if "min" in parts and not name.startswith("range_"):
            partner = "_".join("max" if part == "min" else part for part in parts)
            if partner in properties:
                pairs.append((name, partner))
    return pairs


def _windows_in_order(name: str, user_text: str) -> list[tuple[float | None, float | None]]:
    """The windows written for a bound's quantity, in text order: "above 100" → (100, None), "between 50 and 100"
    → (50, 100), "below 30" → (None, 30)."""
    stems = [w for w in name.split("_") if w not in _UNIT_WORDS]
    quantity = r"[\s\-_|]*".join(re.escape(w) for w in stems) + r"\|?"
    number = r"([-+]?\d[\d,]*(?:\.\d+)?)"
    found: list[tuple[int, tuple[float | None, float | None]]] = []
    for word, is_low in ((_ABOVE, True), (_BELOW, False)):
        for match in re.finditer(rf"(?<![\w-]){quantity}\s*{word}\s*{number}", user_text):
            value = float(match.group(1).replace(",", ""))
            found.append((match.start(), (value, None) if is_low else (None, value)))
    for match in re.finditer(rf"(?<![\w-]){quantity}(?:[\s-]+[a-z]+){{0,3}}?\s+(?:{_SPAN.pattern})", user_text):
        if not _AXIS_BEFORE.search(user_text[:match.start()]):
            low, high, low2, high2 = match.groups()
            found.append((match.start(), (float(low or low2), float(high or high2))))
    return [window for _, window in sorted(found)]


# "histogram pT-hat from 0 to 400 GeV": the span is the axis of a histogram, not a window of the sample
_AXIS_NEAR = re.compile(r"\b(?:histogram\w*|plot|draw|axis|range|bins?)\b[^,.;]{0,30}$")
_AXIS_BEFORE = re.compile(r"\b(?:histogram\w*|plot|draw|bin)\s+(?:the\s+|of\s+|in\s+)?$")


def _as_schema_number(value: float, schema: dict[str, Any]) -> int | float:
    types = {s.get("type") for s in schema.get("anyOf", [schema])}
    return int(value) if "integer" in types and value.is_integer() else value


def _several_windows(name: str, user_text: str) -> bool:
    """Whether the text gives this bound's quantity more than one window ("pT-hat between 50 and 100 GeV,
    and one with pT-hat above 100 GeV"): no single stated value is then every step's."""
    parts = name.split("_")
    if not {"min", "max"} & set(parts) or name.startswith("range_") or not set(parts) - _UNIT_WORDS:
        return False
    return len(set(_windows_in_order(name, user_text))) > 1


def _bound_number(name: str, schema: dict[str, Any], user_text: str) -> list[Any]:
    """A bound written as words: "pT-hat above 400 GeV" → ``pt_hat_min_gev=400``, "minimum pT of 30" →
    ``pt_min_gev=30``, "|eta| below 2.5" → ``eta_max=2.5``."""
    parts = name.split("_")
    bound = "min" if "min" in parts else "max" if "max" in parts else None
    stems = [w for w in parts if w not in _UNIT_WORDS]
    types = {s.get("type") for s in schema.get("anyOf", [schema])}
    if bound is None or not stems or not types & {"integer", "number"}:
        return []
    quantity = r"[\s\-_|]*".join(re.escape(w) for w in stems) + r"\|?"
    number = r"([-+]?\d[\d,]*(?:\.\d+)?)"
    word = _ABOVE if bound == "min" else _BELOW
    extreme = "min(?:imum)?" if bound == "min" else "max(?:imum)?"
    found = re.findall(rf"(?<![\w-]){quantity}\s*{word}\s*{number}", user_text)
    found += re.findall(rf"\b{extreme}\s+{quantity}\s*(?:of|=|:|is)?\s*{number}", user_text)
    values = {float(v.replace(",", "")) for v in found}
    if len(values) != 1:
        return []
    value = values.pop()
    return [int(value) if "integer" in types and value.is_integer() else value]


# "300 pb^-1" is a luminosity, not a cross-section in pb
_UNIT_PATTERNS = {"tev": r"tev", "mm": r"mm", "pb": r"pb(?!\s*(?:\^?\s*-\s*1|⁻¹))", "deg": r"(?:deg(?:rees?)?|°)"}
_SPAN = re.compile(r"(?:\bfrom|\bbetween)\s+(-?\d+(?:\.\d+)?)\s*(?:gev)?\s+(?:to|and)\s+(-?\d+(?:\.\d+)?)"
                   r"|(?<![\w.])(-?\d+(?:\.\d+)?)\s*[–-]\s*(\d+(?:\.\d+)?)\s*gev")


def _axis_range(name: str, user_text: str) -> list[Any]:
    """A histogram range written as a span: "from 0 to 300 GeV", "between 60 and 120", "0–150 GeV" (one span
    in the text; with two, which one is the axis is not clear)."""
    if name not in ("range_min", "range_max"):
        return []
    spans = {(float(a or c), float(b or d)) for a, b, c, d in _SPAN.findall(user_text)}
    if len(spans) > 1:  # "samples between 50 and 100 GeV …, histogram pT-hat from 0 to 400 GeV": the histogram's
        spans = {(float(m[1] or m[3]), float(m[2] or m[4])) for m in _SPAN.finditer(user_text)
                 if _AXIS_NEAR.search(user_text[max(0, m.start() - 40):m.start()])}
    if len(spans) != 1:
        return []
    low, high = spans.pop()
    return [low if name == "range_min" else high]


_ENTRIES = re.compile(r"\b(?:entries|entry|events|rows)\s+(\d+)\s*(?:to|through|thru|until|-|–)\s*(\d+)\b|"
                      r"\bfirst\s+(\d+)\s+(?:entries|events|rows)\b")


def _entry_window(name: str, user_text: str) -> list[Any]:
    """``entry_start``/``entry_stop`` from the entries a person counts inclusively: "entries 100 to 199" → 100 and
    200 (the stop is exclusive), "the first 50 events" → 0 and 50."""
    if name not in ("entry_start", "entry_stop"):
        return []
    windows = {(int(a), int(b) + 1) if a else (0, int(n)) for a, b, n in _ENTRIES.findall(user_text)}
    if len(windows) != 1:
        return []
    start, stop = windows.pop()
    return [start if name == "entry_start" else stop]


def _quantity_range(name: str, schema: dict[str, Any], user_text: str) -> list[Any]:
    """The bound of a ``<quantity>_min``/``_max`` pair from a span written after the quantity: "energies flat
    between 10 and 100 GeV" → ``energy_min_gev=10``, ``energy_max_gev=100``; "pT from 300 to 400" likewise."""
    parts = name.split("_")
    bound = "min" if "min" in parts else "max" if "max" in parts else None
    stems = [w for w in parts if w not in _UNIT_WORDS]
    types = {s.get("type") for s in schema.get("anyOf", [schema])}
    if bound is None or len(stems) != 1 or not types & {"integer", "number"} or name.startswith("range_"):
        return []
    stem = re.escape(stems[0][: max(2, len(stems[0]) - 1)])
    spans = {(float(a or c), float(b or d)) for a, b, c, d in re.findall(
        rf"\b{stem}\w*\b(?:[\s-]+[a-z]+){{0,3}}?\s+(?:{_SPAN.pattern})", user_text)}
    if len(spans) != 1:
        return []
    low, high = spans.pop()
    value = low if bound == "min" else high
    return [int(value) if "integer" in types and value.is_integer() else value]


# "a 3.5 TeV W′", "a 2 TeV resonance": a mass, not the collision energy
_NOT_A_MASS = (r"(?!\s*(?:w'|w′|z'|z′|w[- ]?prime|z[- ]?prime|resonance|mass|signal|particle|bump|graviton|gluon|"
               r"x\b))")


def _unit_number(name: str, schema: dict[str, Any], parameters: dict[str, Any], user_text: str) -> list[Any]:
    """A number written with the unit that only this parameter of the tool carries: "13 TeV" →
    ``sqrt_s_tev=13`` (GeV is left alone: many parameters are in GeV)."""
    unit = name.rsplit("_", 1)[-1]
    if unit not in _UNIT_PATTERNS or "_" not in name:
        return []
    carriers = [p for p in parameters.get("properties", {}) if p.rsplit("_", 1)[-1] == unit]
    if carriers != [name]:
        return []
    values = {float(v) for v in re.findall(rf"(?<![\w.])(\d+(?:\.\d+)?)\s*{_UNIT_PATTERNS[unit]}(?!\w){_NOT_A_MASS}",
                                           user_text)}
    types = {s.get("type") for s in schema.get("anyOf", [schema])}
    if len(values) != 1 or not types & {"integer", "number"}:
        return []
    return [values.pop()]


def _phrased_values(schema: dict[str, Any], user_text: str) -> list[Any]:
    stated = [value for phrase, value in schema.get("x-phrases", {}).items() if _said(phrase, user_text)]
    return list({_json_key(v): v for v in stated}.values())


def _json_key(value: Any) -> str:
    return f"{type(value).__name__}:{value}"


def _enum_words(schema: dict[str, Any], user_text: str) -> list[str]:
    if schema.get("x-phrases-only"):
        return []
    return [v for v in schema.get("enum", []) if isinstance(v, str) and len(v) >= 3
            and v != schema.get("default") and re.search(rf"\b{re.escape(v.lower())}\b", user_text)]


def drop_defaults(arguments: dict[str, Any], parameters: dict[str, Any], user_text: str = "") -> dict[str, Any]:
    """Drop arguments equal, in value and JSON type, to their parameter's default (small models spell them out),
    and empty lists for a parameter whose default is None (a small model's filler, not a choice) unless the
    user's text negates the parameter ("no noise bursts", "without a dead channel")."""
    properties = parameters.get("properties", {})

    def is_default(name: str, value: Any) -> bool:
        schema = properties.get(name, {})
        if value in ([], {}) and schema.get("default", "unset") is None:  # an empty list written as filler,
            return not _negated(name, user_text)  # unless the user said "no noise bursts"
        return "default" in schema and type(value) is type(schema["default"]) and value == schema["default"]

    return {name: value for name, value in arguments.items() if not is_default(name, value)}


def _negated(name: str, user_text: str) -> bool:
    """Whether the text says "no …"/"without …" before a word of the parameter's name ("no noise bursts")."""
    words = [w for w in name.split("_") if len(w) >= 4 and w not in ("runs", "list", "values")]
    return any(re.search(rf"\b(?:no|without|zero)\s+(?:\w+\s+){{0,2}}{re.escape(w)}", user_text) for w in words)


def name_from_offer(error: str, messages: list[dict[str, Any]], rejected: str = "") -> str | None:
    """The one name of a tool error's "Available: a, b, c." list whose every word the user wrote, whole or as a
    prefix ("lep_pt" for "the mean lepton pT", "muons.pt" for "muon pT"); of several, the one that shares a word
    with the ``rejected`` name the model wrote ("jets.tau32" for "stats.tau32.median" when "the median tau32 of the
    leading jet" also fits jets.pt and jets.tau3); None when none or several fit."""
    listed = re.search(r"Available: ([^;]+?)\.(?:\s|$)", error)
    if listed is None:
        return None
    words = re.findall(r"[a-z0-9]+", _user_text(messages))
    fits = [name for name in (n.strip() for n in listed.group(1).split(",")) if re.fullmatch(r"[\w.\[\]]+", name)
            and _all_written(re.findall(r"[a-z0-9]+", name.lower()), words)]
    model_words = set(re.findall(r"[a-z0-9]+", rejected.lower())) - {"jets", "particles", "events", "stats"}
    if len(fits) > 1 and model_words:
        fits = [name for name in fits if model_words & set(re.findall(r"[a-z0-9]+", name.lower()))]
    return fits[0] if len(fits) == 1 else None


def example_from_error(error: str, messages: list[dict[str, Any]]) -> list[str] | None:
    """The list a tool error gives as its example ("features=[] is empty … e.g. ['jets.mass[0]', 'jets.tau21[0]']")
    when the user wrote every name's words ("the leading-jet mass and tau21"); None otherwise. The collection
    prefix and indices are no words a user writes."""
    given = re.search(r"e\.g\. (\[[^\[\]]*(?:\[\d+\][^\[\]]*)*\])", error)
    if given is None:
        return None
    try:
        example = ast.literal_eval(given.group(1))
    except (ValueError, SyntaxError):
        return None
    if not example or not all(isinstance(name, str) for name in example):
        return None
    words = re.findall(r"[a-z0-9]+", _user_text(messages))
    generic = {"jets", "particles", "events", "stats"}

    def written(name: str) -> bool:
        tokens = [t for t in re.findall(r"[a-z0-9]+", name.lower()) if t not in generic and not t.isdigit()]
        return bool(tokens) and _all_written(tokens, words)

    return list(example) if all(written(name) for name in example) else None


def _all_written(tokens: list[str], words: list[str]) -> bool:
    """Whether the user wrote each token, whole or as a prefix of a word (or a word as its prefix)."""
    return all(any(_prefixed(token, word) for word in words) for token in tokens)


def _prefixed(token: str, word: str) -> bool:
    return min(len(token), len(word)) >= 2 and (word.startswith(token) or token.startswith(word))
