r"""``summarize``: count, mean, std, median, quantiles, min and max of fields, after a safe selection.

Answers statistics questions about an events, jets or table artifact without generating code. A
field is a dotted path as in ``histogram``: ``m_hat_gev`` (one value per event), ``jets.pt`` (one per
jet), ``particles.eta`` (pT, η, φ, mass derived from px, py, pz, e [GeV] when not stored). In events
with a ``particles`` collection, ``electrons``, ``muons``, ``photons`` and ``neutrinos`` are the final-state
particles of that |PDG id| (11; 13; 22; 12, 14, 16), e.g. ``muons.pt``, and ``invisible`` those the detector
never sees and jets never hold (neutrinos, neutralinos, … — :data:`tools._pdg.INVISIBLE_PIDS`). Objects are ordered by
decreasing pT, so ``object_index=0`` and ``jets.pt[0]`` mean the leading object.

The ``selection`` is an expression of the small language of :mod:`tools.data._expressions`
(comparisons, and/or/not, + - * /, abs count any all sum min max len, ``[k]``), parsed and evaluated
with awkward — never with ``eval``. A selection with one value per event (``count(jets.pt > 30) >= 4``)
keeps events; one with a value per object (``abs(jets.eta) < 2.5``) keeps objects of its collection
and is then ``selection_level='object'``.

Statistics are unweighted, over finite values only, in float64: ``std`` is numpy's population
standard deviation (``ddof=0``), quantiles use numpy's default linear interpolation. Values of
momenta, energies, masses and ``*_gev`` fields are in GeV; their keys in ``stats`` end in ``_gev``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from physagent.tools._artifacts import DataRef
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._io import read_parquet
from physagent.tools._pdg import INVISIBLE_PIDS
from physagent.tools._registry import ToolResult, tool
from physagent.tools.data._expressions import ExpressionError, Node, evaluate_condition, field_paths, parse
from physagent.tools.data._fields import field_label, field_unit, leaf_paths, object_ordering, resolve_field

__all__ = ["ALIASES", "FieldStats", "LoadedData", "Multiplicity", "SummaryResult", "field_resolver", "lookup_field",
           "open_data", "stats_key", "summarize"]

ALIASES = {"electrons": (11,), "muons": (13,), "photons": (22,), "neutrinos": (12, 14, 16),
           "invisible": tuple(sorted(INVISIBLE_PIDS))}
Level = Literal["event", "object"]


class FieldStats(BaseModel):
    """Statistics of one field, in its unit (None where no value was left)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="The field path as asked, e.g. 'jets.pt'.")
    label: str = Field(description="Readable name with unit, e.g. 'leading jet $p_{T}$ [GeV]'.")
    unit: str = Field(description="'GeV' for momenta, energies, masses and *_gev fields; '' if dimensionless.")
    level: Level = Field(description="'event': one value per event; 'object': one per object (e.g. per jet).")
    count: int = Field(description="Finite values summarised, after the selection and object_index.")
    n_nonfinite: int = Field(description="NaN or infinite values left out.")
    mean: float | None = Field(description="Arithmetic mean.")
    std: float | None = Field(description="Standard deviation with ddof=0 (numpy's np.std default).")
    median: float | None = Field(description="Median (the 0.5 quantile).")
    quantiles: dict[str, float | None] = Field(
        description="Quantiles by level: key 'q16' for 0.16, 'q2_5' for 0.025 (numpy, linear interpolation).")
    min: float | None = Field(description="Smallest value.")
    max: float | None = Field(description="Largest value.")


class Multiplicity(BaseModel):
    """Objects of one collection per event (after the selection)."""

    model_config = ConfigDict(extra="forbid")

    collection: str = Field(description="Collection name, e.g. 'jets' or 'muons'.")
    n_objects: int = Field(description="Objects counted, over all counted events.")
    n_events: int = Field(description="Events counted: the passing events for an event-level selection, else all.")
    mean: float | None = Field(description="Mean number of objects per event.")
    std: float | None = Field(description="Standard deviation (ddof=0) of the number of objects per event.")
    median: float | None = Field(description="Median number of objects per event.")
    min: int | None = Field(description="Fewest objects in an event.")
    max: int | None = Field(description="Most objects in an event.")


class SummaryResult(ToolResult):
    """Statistics of the asked fields, what the selection kept, and object multiplicities."""

    stats: dict[str, FieldStats] = Field(description="Per field, keyed by its path with '_' for '.' and a "
                                         "'_gev' suffix for GeV fields, e.g. 'jets_pt_gev', 'm_hat_gev', 'jets_eta'.")
    n_events: int = Field(description="Events (rows) in the source.")
    selection: str | None = Field(description="The selection as given (None: every event and object).")
    selection_level: Level | None = Field(
        description="'event' when the selection keeps events, 'object' when it keeps objects; None without one.")
    selection_collection: str | None = Field(description="The collection an object-level selection filters.")
    n_considered: int = Field(description="Events (event-level or no selection) or objects of "
                              "selection_collection (object-level) the selection was applied to.")
    n_passing: int = Field(description="Events or objects (see selection_level) that pass.")
    fraction_passing: float | None = Field(description="n_passing / n_considered (None when nothing was considered).")
    n_events_passing: int = Field(description="Events passing; for an object-level selection, events with at "
                                  "least one passing object.")
    multiplicities: dict[str, Multiplicity] = Field(
        description="Objects per event, by collection: those the fields and selection use (every collection "
                    "when neither names one); an object-level selection counts only passing objects.")


@dataclass(frozen=True)
class LoadedData:
    """The loaded source, and what explains a bad field or selection."""

    array: Any
    source: str
    available: list[str]  # every field path of the stored data, for messages
    aliases: frozenset[str]  # alias collections added from particles
    selection: str | None


@dataclass(frozen=True)
class _Selection:
    level: Level | None
    mask: Any  # numpy bool per event, awkward bool per object, or None
    collection: str | None


@tool(category="data")
def summarize(
    source: Annotated[DataRef, Field(description="Id of an events, jets or table artifact.")],
    fields: Annotated[list[str], Field(json_schema_extra={"x-derived": True}, max_length=50, description=(
        "Dotted field paths to summarise, e.g. ['jets.pt', 'm_hat_gev', 'muons.eta']; may be empty when only "
        "the selection's passing fraction or object multiplicities are wanted."))] = [],  # noqa: B006 — pydantic copies defaults; a list reads best in the schema
    object_index: Annotated[
        int | None, Field(ge=0, le=100, description="Use only the k-th object by decreasing pT per event "
                          "(0 = leading; events with fewer are skipped); None uses every object.",
                          json_schema_extra={"x-phrases": {"leading": 0, "subleading": 1, "second": 1},
                                             "x-needs": ["fields"]})
    ] = None,
    selection: Annotated[str | None, Field(max_length=1000, description=(
        "Cut expression, e.g. 'count(jets.pt > 30) >= 4', 'abs(jets.eta) < 2.5', 'jets.pt[0] > 400 and "
        "abs(jets.eta[0]) < 2', 'm_hat_gev > 80 and m_hat_gev < 100'. Operators > >= < <= == != and or not "
        "+ - * /; functions abs count any all sum min max len; [k] picks the k-th object. GeV units."))] = None,
    quantiles: Annotated[
        list[Annotated[float, Field(ge=0, le=1)]],
        Field(max_length=20, description="Quantile levels in [0, 1], e.g. [0.16, 0.5, 0.84] for the median "
              "and a ±1σ band."),
    ] = [0.16, 0.5, 0.84],  # noqa: B006 — pydantic copies defaults
    *,
    ctx: ToolContext,
) -> SummaryResult:
    """Summarize fields of an events, jets or table artifact: count, mean, std, median, quantiles, min, max.

    Also reports how many events or objects pass an optional selection (e.g. 'count(jets.pt > 30) >= 4')
    and the mean number of objects per event. Computed from the data; no code needed.
    """
    tree = _parse(selection)
    roots = _roots([*fields, *(field_paths(tree) if tree else [])])
    everything = not fields and tree is None  # nothing named: count every collection
    data = open_data(ctx.artifact(source, "source").path, source, roots, selection, everything)
    chosen = _select(data, tree)
    if object_index is not None:
        _check_object_index(data, fields, object_index)
    levels = list(dict.fromkeys(quantiles))
    stats = {stats_key(f): _field_stats(data, f, chosen, object_index, levels) for f in dict.fromkeys(fields)}
    counted = _top_level_fields(data.array) if everything else roots
    return SummaryResult(
        stats=stats, n_events=len(data.array), selection=selection, selection_level=chosen.level,
        selection_collection=chosen.collection, **_passing(data.array, chosen),
        multiplicities=_multiplicities(data.array, counted, chosen),
    )


def stats_key(path: str) -> str:
    """The key of a field in ``stats``: dots become underscores, GeV fields end in ``_gev``.

    >>> stats_key("jets.pt"), stats_key("m_hat_gev"), stats_key("muons.eta")
    ('jets_pt_gev', 'm_hat_gev', 'muons_eta')
    """
    key = path.replace(".", "_")
    return key + "_gev" if field_unit(path) == "GeV" and not key.endswith("_gev") else key


def _top_level_fields(array: Any) -> list[str]:
    import awkward as ak

    return list(ak.fields(array))


# loading ----------------------------------------------------------------------------------------


def _parse(selection: str | None) -> Node | None:
    if selection is None:
        return None
    try:
        return parse(selection)
    except ExpressionError as error:
        raise _selection_error(selection, error) from None


def _selection_error(selection: str | None, error: ExpressionError) -> ToolInputError:
    return ToolInputError.for_param("summarize", "selection", selection, f"is not a valid selection: {error}.")


def _roots(paths: list[str]) -> list[str]:
    return list(dict.fromkeys(p.partition(".")[0] for p in paths))


def open_data(path: Path, source: str, roots: list[str], selection: str | None, everything: bool) -> LoadedData:
    import awkward as ak

    form = ak.metadata_from_parquet(path)["form"]
    array, aliases = _prepare(_load(path, form, roots, everything), roots)
    return LoadedData(array, source, _available(form), aliases, selection)


def _available(form: Any) -> list[str]:
    """Every field path of the stored data (from the Parquet schema, not the data), aliases included."""
    import awkward as ak

    empty = ak.Array(form.length_zero_array())
    paths = leaf_paths(empty)
    if "particles" in ak.fields(empty) and "pid" in ak.fields(empty.particles):
        aliases = [f"{alias}.*" for alias in ALIASES if alias not in ak.fields(empty)]
        paths.append(f"{', '.join(aliases)} (particles of one |pid|, with the particles fields)")
    return paths


def _load(path: Path, form: Any, roots: list[str], everything: bool) -> Any:
    """Only the top-level columns the paths need (an alias needs ``particles``); with none of them stored
    (a constant selection, unknown fields), one per-event column, which still counts the events."""
    needed = {"particles" if r in ALIASES and r not in form.fields else r for r in roots} & set(form.fields)
    needed = needed or {next((n for n in form.fields if form.content(n).purelist_depth == 1), "")} - {""}
    return read_parquet(path, columns=None if everything or not needed else sorted(needed))


def _prepare(array: Any, roots: list[str]) -> tuple[Any, frozenset[str]]:
    """Add the particle aliases that are used and order every used collection by decreasing pT."""
    import awkward as ak

    aliases = set()
    for name in roots:
        if name in ALIASES and name not in ak.fields(array) and "particles" in ak.fields(array) \
                and "pid" in ak.fields(array.particles):
            wanted = np.isin(np.abs(ak.to_numpy(ak.flatten(array.particles.pid))), ALIASES[name])
            array = ak.with_field(array, array.particles[ak.unflatten(wanted, ak.num(array.particles.pid))], name)
            aliases.add(name)
        if name in ak.fields(array) and array[name].ndim >= 2 and ak.fields(array[name]):
            array = ak.with_field(array, array[name][object_ordering(array[name])], name)
    return array, frozenset(aliases)


def field_resolver(data: LoadedData, where: str = "") -> Callable[[str, int], Any]:
    """The field callback of the expression evaluator: a field of ``data``, or an error naming what exists."""
    def resolve(path: str, position: int) -> Any:
        found = lookup_field(data.array, path)
        if found is None:
            raise ExpressionError(f"unknown field {path!r} at position {position}; available{where}: "
                                  f"{', '.join(data.available)}", path, position)
        return found

    return resolve


def lookup_field(array: Any, path: str) -> Any | None:
    """A numeric leaf (derived kinematics included) or a whole collection at ``path``; None if absent."""
    import awkward as ak

    found = resolve_field(array, path)
    if found is not None:
        return found if _numeric(found) else None
    node = array
    for part in path.split("."):
        if part not in ak.fields(node):
            return None
        node = node[part]
    return node


def _numeric(values: Any) -> bool:
    """Numbers or booleans (strings flatten to text and are refused)."""
    import awkward as ak

    if ak.fields(values):
        return False
    leaf = ak.to_numpy(ak.flatten(values, axis=None)[:0])
    return bool(np.issubdtype(leaf.dtype, np.number) or np.issubdtype(leaf.dtype, np.bool_))


# the selection ----------------------------------------------------------------------------------


def _select(data: LoadedData, tree: Node | None) -> _Selection:
    """Evaluate the selection: an event mask (numpy) or an object mask (awkward) of one collection."""
    import awkward as ak

    array, selection = data.array, data.selection
    if tree is None:
        return _Selection(None, None, None)

    try:
        value = evaluate_condition(tree, field_resolver(data))
    except ExpressionError as error:
        raise _selection_error(selection, error) from None
    if value.depth == 0:
        return _Selection("event", np.full(len(array), bool(value.data)), None)
    mask = ak.fill_none(value.data, False)
    if value.depth == 1:
        return _Selection("event", np.asarray(ak.to_numpy(mask), dtype=bool), None)
    if value.depth > 2 or len(value.collections) != 1:
        what = ("selects objects inside objects (e.g. constituents of jets)" if value.depth > 2 else
                f"mixes per-object values of {', '.join(sorted(value.collections))}")
        raise ToolInputError.for_param(
            "summarize", "selection", selection, f"{what}. Reduce it to one value per event or per object, "
            "e.g. any(jets.constituents.pt > 1) or count(jets.pt > 30) >= 2.")
    return _Selection("object", mask, next(iter(value.collections)))


def _passing(array: Any, chosen: _Selection) -> dict[str, Any]:
    import awkward as ak

    n_events = len(array)
    if chosen.level is None:
        considered = passing = events = n_events
    elif chosen.level == "event":
        considered, passing = n_events, int(np.count_nonzero(chosen.mask))
        events = passing
    else:
        considered = int(ak.sum(ak.num(chosen.mask, axis=1)))
        passing = int(ak.count_nonzero(chosen.mask))
        events = int(np.count_nonzero(ak.to_numpy(ak.any(chosen.mask, axis=1))))
    return {"n_considered": considered, "n_passing": passing, "n_events_passing": events,
            "fraction_passing": passing / considered if considered else None}


# statistics -------------------------------------------------------------------------------------


def _field_values(data: LoadedData, path: str) -> Any:
    import awkward as ak

    found = lookup_field(data.array, path)
    if found is None or ak.fields(found):
        kind = "a collection, not a numeric field" if found is not None else "not a numeric field"
        raise ToolInputError.for_param(
            "summarize", "fields", path, f"is {kind} of {data.source}. Available: {', '.join(data.available)}.")
    return found


def _check_object_index(data: LoadedData, fields: list[str], index: int) -> None:
    if not any(_field_values(data, f).ndim >= 2 for f in fields):
        raise ToolInputError.for_param(
            "summarize", "object_index", index, "only applies to per-object fields such as 'jets.pt'; "
            f"fields={fields} has none. Leave object_index unset, or use [k] in the selection.")


def _field_stats(data: LoadedData, path: str, chosen: _Selection, index: int | None, levels: list[float]) -> FieldStats:
    """Statistics of one field after the selection (and the index-th object when asked)."""
    import awkward as ak

    values = _field_values(data, path)
    level: Level = "object" if values.ndim >= 2 else "event"
    if chosen.level == "event":
        values = values[chosen.mask]
    elif chosen.level == "object":
        _check_same_collection(path, level, chosen, data.selection)
        values = values[chosen.mask]
    if index is not None and level == "object":
        values = values[ak.num(values, axis=1) > index][:, index]
    flat = np.asarray(ak.to_numpy(ak.flatten(values, axis=None)), dtype=np.float64)
    finite = flat[np.isfinite(flat)]
    return FieldStats(path=path, label=_label(data, path, index if level == "object" else None),
                      unit=field_unit(path), level=level, n_nonfinite=int(flat.size - finite.size),
                      **_statistics(finite, levels))


def _label(data: LoadedData, path: str, index: int | None) -> str:
    """'leading muon $p_{T}$ [GeV]' for ``muons.pt`` (an alias labels like the particles it selects)."""
    root, _, rest = path.partition(".")
    if root == "invisible" and root in data.aliases:  # some forty ids: name the class, not each id
        return field_label(path, index)
    if root in data.aliases:
        return field_label(f"particles.{rest}", index, list(ALIASES[root]))
    return field_label(path, index)


def _check_same_collection(path: str, level: Level, chosen: _Selection, selection: str | None) -> None:
    if level == "object" and path.partition(".")[0] == chosen.collection:
        return
    what = "has one value per event" if level == "event" else f"belongs to {path.partition('.')[0]}"
    raise ToolInputError.for_param(
        "summarize", "fields", path, f"{what}, but selection={selection!r} keeps {chosen.collection} one by one. "
        f"Make the selection event-level (e.g. any(...) or count(...) >= 1 around it) or summarise "
        f"{chosen.collection} fields.")


def _statistics(values: np.ndarray, levels: list[float]) -> dict[str, Any]:
    """count, mean, std (ddof=0), median, quantiles, min, max of finite float64 values."""
    keys = [_quantile_key(q) for q in levels]
    if values.size == 0:
        return {"count": 0, "mean": None, "std": None, "median": None, "min": None, "max": None,
                "quantiles": dict.fromkeys(keys)}
    found = np.quantile(values, levels) if levels else np.empty(0)
    return {"count": int(values.size), "mean": float(np.mean(values)), "std": float(np.std(values)),
            "median": float(np.median(values)), "min": float(np.min(values)), "max": float(np.max(values)),
            "quantiles": {k: float(v) for k, v in zip(keys, found, strict=True)}}


def _quantile_key(level: float) -> str:
    """'q16' for 0.16, 'q2_5' for 0.025, 'q100' for 1."""
    return "q" + f"{round(level * 100, 10):g}".replace(".", "_")


def _multiplicities(array: Any, roots: list[str], chosen: _Selection) -> dict[str, Multiplicity]:
    import awkward as ak

    found = {}
    for name in roots:
        if name not in ak.fields(array) or array[name].ndim < 2:
            continue
        if chosen.level == "object" and name == chosen.collection:
            counts = ak.to_numpy(ak.count_nonzero(chosen.mask, axis=1))
        else:
            counts = ak.to_numpy(ak.num(array[name], axis=1))
            counts = counts[chosen.mask] if chosen.level == "event" else counts
        stats = _statistics(np.asarray(counts, dtype=np.float64), [])
        found[name] = Multiplicity(
            collection=name, n_objects=int(np.sum(counts)), n_events=int(counts.size), mean=stats["mean"],
            std=stats["std"], median=stats["median"], min=None if counts.size == 0 else int(np.min(counts)),
            max=None if counts.size == 0 else int(np.max(counts)))
    return found
