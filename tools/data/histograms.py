r"""``histogram``: 1-D and 2-D histograms of any field of an events, jets or table artifact, with ``hist``.

A field is a dotted path: ``pt_hat_gev`` (one value per event), ``jets.mass`` (one per jet),
``particles.pt`` (pT, η, φ and mass are derived from px, py, pz, e [GeV] when not stored). With
``object_index=k`` only the k-th object by decreasing pT of each event is used (0 = leading; events
with fewer objects are skipped); ``abs_pid`` keeps particles or partons of the given |PDG id| only.
An event-level ``weight_field`` weights every object of its event.

``luminosity_fb=L`` weights events to expected events, w_i · σ · 1000 · L / Σ_j w_j (σ in pb from the
generator card the artifact's ``source`` links lead to, or ``cross_section_pb``; w the sample's ``weight``
column; 1 pb = 1000 fb), or w_i · 1000 · L for samples whose weights already are σ-weights in pb
(``merge_samples``); see :mod:`tools.data._normalise`.

The histogram is stored as UHI JSON (``histogram.json``, sorted keys, so equal histograms have equal
hashes) with a Weight storage and under/overflow bins; :func:`load_histogram` reads it back into a
``hist.Hist``. Axis labels carry units: GeV for momenta, energies, masses and ``*_gev`` fields.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from physagent.tools._artifacts import Artifact, DataRef
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._io import read_parquet
from physagent.tools._registry import ToolResult, tool
from physagent.tools.data._fields import field_label, field_unit, leaf_paths, object_ordering, resolve_field
from physagent.tools.data._normalise import PB_TO_FB, SampleInfo, sample_info

__all__ = ["HistogramResult", "histogram", "load_histogram"]

# how physicists write an integrated luminosity: "139 fb^-1", "139 fb-1", "139 ifb" (agent argument hygiene)
_LUMI_NAMES = ["fb^-1", "fb-1", "fb⁻¹", "ifb", "/fb", "inverse femtobarn", "inverse femtobarns"]


class HistogramResult(ToolResult):
    """A filled histogram and its summary statistics (in the units of the field)."""

    histogram: Artifact = Field(description="The histogram artifact (kind 'histogram', UHI JSON).")
    label: str = Field(description="x-axis label with units, e.g. 'leading jet mass [GeV]'.")
    label_y: str | None = Field(description="y-axis label with units for a 2-D histogram, else None.")
    bins: int = Field(description="Number of x bins.")
    range_min: float = Field(description="Lower edge of the x axis, in the field's units.")
    range_max: float = Field(description="Upper edge of the x axis, in the field's units.")
    entries: int = Field(description="Values filled, under- and overflow included.")
    sum_weights: float = Field(description="Sum of the weights filled (= entries when unweighted).")
    mean: float | None = Field(description="Weighted mean of the in-range x values (None if none).")
    std: float | None = Field(description="Weighted standard deviation of the in-range x values.")
    underflow: float = Field(description="Sum of weights below range_min.")
    overflow: float = Field(description="Sum of weights at or above range_max.")
    peak: float | None = Field(description="x centre of the highest bin (2-D: of the highest cell).")
    peak_y: float | None = Field(description="2-D only: y centre of the highest cell.")
    mean_y: float | None = Field(description="2-D only: weighted mean of the in-range y values.")
    dropped_nonfinite: int = Field(description="Values skipped because they were NaN or infinite.")
    sample: str = Field(description="The sample's name, e.g. 'Drell–Yan μμ, Pythia8, 13.6 TeV' (legend entry).")
    sqrt_s_tev: float | None = Field(description="Centre-of-mass energy of the sample in TeV (None: unknown).")
    luminosity_fb: float | None = Field(description="Integrated luminosity the weights are normalised to, "
                                        "in fb⁻¹ (None: not normalised).")
    sigma_pb: float | None = Field(description="Cross-section used for the normalisation, in pb.")
    normalisation: str | None = Field(description="How the weights were normalised, e.g. "
                                      "'w·σ·L/Σw: σ = 1520 pb (ev-…), L = 10 fb⁻¹, Σw = 1000'.")


# "histogram pT-hat" names the event's hard scale, which a small model reads as the tops' parton pT
_HARD_SCALE_PHRASES = {f"{before}{name}{after}": field for name, field in (
    ("pt-hat", "pt_hat_gev"), ("pthat", "pt_hat_gev"), ("p̂t", "pt_hat_gev"), ("pt hat", "pt_hat_gev"),
    ("m-hat", "m_hat_gev"), ("mhat", "m_hat_gev"), ("m̂", "m_hat_gev"))
    for before, after in (("histogram ", ""), ("histogram the ", ""), ("histogram of ", ""), ("", " histogram"))}

# a field a small model picks for the plain one the user asked for: the soft-drop mass for "the jet mass"
_FIELD_VARIANTS = {"jets.msd": ["jets.mass", "soft-drop", "soft drop", "softdrop", "msd", "m_sd", "groomed",
                                "grooming", "sd mass"],
                   # cluster_jets' summary fields named for a histogram of the leading jet ("leading" sets index 0)
                   "leading_jet_mean_pt_gev": ["jets.pt"], "leading_jet_mean_mass_gev": ["jets.mass"]}


@tool(category="data", version="2")  # v2: σ·L weighting, sample names in results (issue 18)
def histogram(
    source: Annotated[
        DataRef, Field(description="Id of an events, jets or table artifact.")
    ],
    field: Annotated[str, Field(description="Dotted field path for x, e.g. 'jets.mass' [GeV], "
                                "'particles.pt' [GeV], 'particles.eta', 'pt_hat_gev'.",
                                json_schema_extra={"x-phrases": _HARD_SCALE_PHRASES,
                                                   "x-variants": _FIELD_VARIANTS})],
    object_index: Annotated[
        int | None, Field(ge=0, le=100, description="Use only the k-th object by decreasing pT per event "
                          "(0 = leading; events with fewer are skipped); None uses every object.",
                          json_schema_extra={"x-phrases": {"leading": 0, "subleading": 1, "second": 1}})
    ] = None,
    bins: Annotated[int, Field(ge=1, le=10_000, description="Number of x bins.")] = 50,
    range_min: Annotated[float | None, Field(description="Lower x edge in the field's units (None: data min).")] = None,
    range_max: Annotated[float | None, Field(description="Upper x edge in the field's units (None: data max).")] = None,
    weight_field: Annotated[
        str | None, Field(description="Event-level weight field, e.g. 'weight' (None: unweighted).")
    ] = None,
    field_y: Annotated[
        str | None, Field(description="Second field for a 2-D histogram, e.g. 'jets.pt' (None: 1-D).")
    ] = None,
    bins_y: Annotated[int, Field(ge=1, le=10_000, description="Number of y bins (2-D only).")] = 50,
    range_min_y: Annotated[float | None, Field(description="Lower y edge (2-D; None: data min).")] = None,
    range_max_y: Annotated[float | None, Field(description="Upper y edge (2-D; None: data max).")] = None,
    abs_pid: Annotated[
        list[int] | None, Field(description="Keep only objects with these |PDG ids|, e.g. [13] for muons "
                                "(collections with a pid field; None: all).")
    ] = None,
    luminosity_fb: Annotated[
        float | None, Field(gt=0, description="Integrated luminosity in fb⁻¹: weight events to σ·L, "
                            "w·σ·L/Σw with σ from the generator card (None: raw counts or weights).",
                            json_schema_extra={"x-names": _LUMI_NAMES})
    ] = None,
    cross_section_pb: Annotated[
        float | None, Field(gt=0, description="Cross-section in pb for luminosity_fb, overriding the "
                            "generator's (None: from the sample's generator card).",
                            json_schema_extra={"x-names": ["cross-section", "cross section", "xsec"]})
    ] = None,
    *,
    ctx: ToolContext,
) -> HistogramResult:
    """Fill a 1-D or 2-D histogram of a field of an events, jets or table artifact.

    Returns entries, mean, std, under/overflow and the peak bin centre inline, and the histogram
    (UHI JSON, labelled axes with units) as an artifact for `plot`; with luminosity_fb, events are
    weighted to σ·L (expected events).
    """
    _check_range("range_min", range_min, "range_max", range_max)
    _check_range("range_min_y", range_min_y, "range_max_y", range_max_y)
    artifact = ctx.artifact(source, "source")
    info = sample_info(ctx, artifact)
    weight_field = _lumi_weight_field(artifact.path, weight_field, luminosity_fb, cross_section_pb)
    array = _load_columns(artifact.path, [field, field_y, weight_field])
    weights = _weight_values(array, weight_field, source)
    weights, normalisation = _normalise(info, source, weights, len(array), luminosity_fb, cross_section_pb)
    array = _prepare_collections(array, [field, field_y], object_index, abs_pid)
    values = [_field_values(array, "field", field, source)]
    if field_y is not None:
        values.append(_field_values(array, "field_y", field_y, source))
    columns, dropped = _flatten(*_pick_objects(values, weights, object_index), field_y)
    axes = [_axis(columns[0], bins, range_min, range_max, "range_min", "range_max", field_label(
        field, object_index, abs_pid))]
    if field_y is not None:
        axes.append(_axis(columns[1], bins_y, range_min_y, range_max_y, "range_min_y", "range_max_y",
                          field_label(field_y, object_index, abs_pid)))
    filled = _fill(axes, columns)
    meta = {"source": source, "field": field, "field_y": field_y, "object_index": object_index,
            "abs_pid": abs_pid, "weight_field": weight_field, "unit": field_unit(field),
            "unit_y": field_unit(field_y) if field_y else None, "sample": info.label,
            "sqrt_s_tev": info.sqrt_s_tev, "luminosity_fb": luminosity_fb, **normalisation}
    return _store(ctx, filled, columns, dropped, meta)


def load_histogram(path: Path | str) -> Any:
    """Read a histogram artifact's ``histogram.json`` back into a ``hist.Hist``."""
    from hist import serialization

    return serialization.from_uhi(json.loads(Path(path).read_text()))


# checks and selection --------------------------------------------------------------------------


def _load_columns(path: Path, paths: list[str | None]) -> Any:
    """Only the top-level columns the fields need (event files are mostly particles we may skip)."""
    import awkward as ak

    needed = sorted({p.split(".")[0] for p in paths if p})
    stored = ak.metadata_from_parquet(path)["form"].fields
    return read_parquet(path, columns=needed if set(needed) <= set(stored) else None)


def _lumi_weight_field(path: Path, weight_field: str | None, luminosity_fb: float | None,
                       cross_section_pb: float | None) -> str | None:
    """The event weights to normalise: the one asked for, else the sample's own 'weight' column."""
    import pyarrow.parquet as pq

    if luminosity_fb is None:
        if cross_section_pb is not None:
            raise ToolInputError.for_param(
                "histogram", "cross_section_pb", cross_section_pb, "only applies together with luminosity_fb "
                "(the integrated luminosity in fb⁻¹ to weight to). Give luminosity_fb too, or leave it unset.")
        return weight_field
    if weight_field is not None:
        return weight_field
    return "weight" if "weight" in pq.ParquetFile(path).schema_arrow.names else None


def _normalise(info: SampleInfo, source: str, weights: Any, n_events: int, luminosity_fb: float | None,
               cross_section_pb: float | None) -> tuple[Any, dict[str, Any]]:
    """Event weights times σ·1000·L/Σw (or 1000·L for σ-weights in pb) and a record of what was done."""
    import awkward as ak

    if luminosity_fb is None:
        return weights, {"sigma_pb": None, "normalisation": None}
    lumi = f"L = {luminosity_fb:g} fb⁻¹"
    if cross_section_pb is None and info.weight_unit == "pb":
        scale = PB_TO_FB * luminosity_fb
        note = f"w·1000·L (weights are σ-weights in pb, Σσ = {info.sigma_pb:.6g} pb from {info.sigma_from}), {lumi}"
        return _scaled(weights, n_events, scale), {"sigma_pb": info.sigma_pb, "normalisation": note}
    sigma = cross_section_pb if cross_section_pb is not None else info.sigma_pb
    if sigma is None:
        raise ToolInputError.for_param(
            "histogram", "luminosity_fb", luminosity_fb, f"needs the cross-section of {source}, but no "
            "generator card in its lineage states sigma_pb (a file read from disk carries none). Pass "
            "cross_section_pb (in pb), or leave luminosity_fb unset for raw counts.")
    total = float(n_events) if weights is None else float(ak.sum(ak.values_astype(weights, np.float64)))
    if not np.isfinite(total) or total == 0.0:
        raise ToolInputError.for_param(
            "histogram", "luminosity_fb", luminosity_fb, f"cannot normalise {source}: its weights sum to "
            f"{total:g}. Check weight_field, or leave luminosity_fb unset.")
    scale = sigma * PB_TO_FB * luminosity_fb / total
    origin = "given" if cross_section_pb is not None else f"card of {info.sigma_from}"
    note = f"w·σ·L/Σw: σ = {sigma:.6g} pb ({origin}), {lumi}, Σw = {total:.6g}"
    return _scaled(weights, n_events, scale), {"sigma_pb": sigma, "normalisation": note}


def _scaled(weights: Any, n_events: int, scale: float) -> Any:
    """Weights (1 when None) times ``scale``, in float64 (float32 weights would round σ·L away)."""
    import awkward as ak

    if weights is None:
        return ak.Array(np.full(n_events, scale))
    return ak.values_astype(weights, np.float64) * scale


def _check_range(name_min: str, low: float | None, name_max: str, high: float | None) -> None:
    if low is not None and high is not None and high <= low:
        raise ToolInputError.for_param(
            "histogram", name_max, high, f"must be larger than {name_min}={low:g}. Swap or widen the range."
        )


def _prepare_collections(array: Any, paths: list[str | None], index: int | None, abs_pid: list[int] | None) -> Any:
    """Filter the named collections by |pid| and, when one object is picked, sort them by pT."""
    import awkward as ak

    names = {p.split(".")[0] for p in paths if p}
    collections = [n for n in names if n in ak.fields(array) and array[n].ndim >= 2 and ak.fields(array[n])]
    if abs_pid and not any("pid" in ak.fields(array[n]) for n in collections):
        raise ToolInputError.for_param(
            "histogram", "abs_pid", abs_pid, "needs a field in a collection with a 'pid' field "
            "(e.g. particles.pt, partons.eta). Leave abs_pid unset for other fields.",
        )
    for name in sorted(collections):
        objects = array[name]
        if abs_pid and "pid" in ak.fields(objects):
            flat = np.isin(np.abs(ak.to_numpy(ak.flatten(objects.pid))), abs_pid)
            objects = objects[ak.unflatten(flat, ak.num(objects.pid, axis=1))]
        if index is not None:
            objects = objects[object_ordering(objects)]
        array = ak.with_field(array, objects, name)
    return array


def _field_values(array: Any, param: str, path: str, source: str) -> Any:
    found = resolve_field(array, path)
    if found is None or not _numeric(found):
        raise ToolInputError.for_param(
            "histogram", param, path, f"is not a numeric field of {source}. Available: "
            f"{', '.join(leaf_paths(array))}.",
        )
    return found


def _numeric(values: Any) -> bool:
    import awkward as ak

    leaf = ak.flatten(values, axis=None) if values.ndim > 1 else values
    return np.issubdtype(ak.to_numpy(leaf[:0]).dtype, np.number) if not ak.fields(leaf) else False


def _weight_values(array: Any, weight_field: str | None, source: str) -> Any:
    if weight_field is None:
        return None
    found = _field_values(array, "weight_field", weight_field, source)
    if found.ndim != 1:
        raise ToolInputError.for_param(
            "histogram", "weight_field", weight_field, "must have one value per event (e.g. 'weight'), "
            "not one per object.",
        )
    return found


def _pick_objects(values: list[Any], weights: Any, index: int | None) -> tuple[list[Any], Any]:
    """The index-th object of every per-object field; events with too few objects are skipped."""
    import awkward as ak

    if index is None:
        return values, weights
    jagged = [v.ndim >= 2 for v in values]
    if not any(jagged):
        raise ToolInputError.for_param(
            "histogram", "object_index", index, "only applies to per-object fields such as 'jets.pt'; "
            "the field has one value per event. Leave object_index unset.",
        )
    keep = np.ones(len(values[0]), dtype=bool)
    for v, is_jagged in zip(values, jagged, strict=True):
        if is_jagged:
            keep &= ak.to_numpy(ak.num(v, axis=1) > index)
    picked = [v[keep][:, index] if j else v[keep] for v, j in zip(values, jagged, strict=True)]
    return picked, None if weights is None else weights[keep]


def _flatten(values: list[Any], weights: Any, field_y: str | None) -> tuple[list[np.ndarray], int]:
    """Broadcast fields and weights to one value per object, flatten, drop non-finite values."""
    import awkward as ak

    arrays = [*values, weights if weights is not None else ak.ones_like(values[0], dtype=np.float64)]
    try:
        arrays = ak.broadcast_arrays(*arrays)
    except ValueError:
        raise ToolInputError.for_param(
            "histogram", "field_y", field_y, "has a different number of values per event than field "
            "(e.g. jets vs particles). Pick fields of one collection, or an event-level field.",
        ) from None
    flat = [np.asarray(ak.to_numpy(ak.flatten(a, axis=None)), dtype=np.float64) for a in arrays]
    finite = np.logical_and.reduce([np.isfinite(a) for a in flat])
    return [a[finite] for a in flat], int(np.count_nonzero(~finite))


# filling and storing ---------------------------------------------------------------------------


def _axis(
    values: np.ndarray, bins: int, low: float | None, high: float | None, name_min: str, name_max: str,
    label: str,
) -> Any:
    """A regular axis; a missing edge is the data's min or max (the max lands in the last bin)."""
    import hist

    if values.size == 0 and (low is None or high is None):
        raise ToolInputError.for_param(
            "histogram", name_min if low is None else name_max, None, "cannot be taken from the data: "
            "the selection holds no values. Check field, object_index and abs_pid, or give both edges.",
        )
    given = (name_min, low) if high is None else (name_max, high)
    low, high = _edges(values, low, high)
    if high <= low:
        missing = name_max if given[0] == name_min else name_min
        raise ToolInputError.for_param(
            "histogram", given[0], given[1], f"leaves no room: the data lie in [{values.min():g}, "
            f"{values.max():g}] and {missing} is unset. Give {missing} explicitly.",
        )
    return hist.axis.Regular(bins, low, high, name="y" if name_min.endswith("_y") else "x", label=label)


def _edges(values: np.ndarray, low: float | None, high: float | None) -> tuple[float, float]:
    """Fill missing edges from the data; the top edge is nudged up so the maximum is in range."""
    if low is None and high is None and values.min() == values.max():
        return float(values.min()) - 0.5, float(values.max()) + 0.5
    low = float(values.min()) if low is None else low
    if high is None:
        top = float(values.max())
        high = float(np.nextafter(top + max(top - low, 1.0) * 1e-6, np.inf))
    return low, high


def _fill(axes: list[Any], columns: list[np.ndarray]) -> Any:
    import hist

    filled = hist.Hist(*axes, storage=hist.storage.Weight())
    filled.fill(*columns[:-1], weight=columns[-1])
    return filled


def _moments(values: np.ndarray, weights: np.ndarray, axis: Any) -> tuple[float | None, float | None]:
    inside = (values >= axis.edges[0]) & (values < axis.edges[-1])
    total = float(weights[inside].sum())
    if not inside.any() or total == 0.0:
        return None, None
    mean = float(np.average(values[inside], weights=weights[inside]))
    variance = float(np.average((values[inside] - mean) ** 2, weights=weights[inside]))
    return mean, float(np.sqrt(variance))


def _peak(filled: Any) -> tuple[float | None, float | None]:
    counts = filled.values()
    if not counts.size or counts.max() <= 0:
        return None, None
    cell = np.unravel_index(int(np.argmax(counts)), counts.shape)
    centres = [float(axis.centers[i]) for axis, i in zip(filled.axes, cell, strict=True)]
    return centres[0], centres[1] if len(centres) > 1 else None


def summarise(filled: Any, columns: list[np.ndarray], dropped: int) -> dict[str, Any]:
    """Entries, weights, moments, flows and peak of a filled histogram, in the field's units."""
    x, weights, x_axis = columns[0], columns[-1], filled.axes[0]
    mean, std = _moments(x, weights, x_axis)
    peak, peak_y = _peak(filled)
    mean_y = _moments(columns[1], weights, filled.axes[1])[0] if len(columns) > 2 else None
    return {
        "bins": x_axis.size, "range_min": float(x_axis.edges[0]), "range_max": float(x_axis.edges[-1]),
        "entries": int(x.size), "sum_weights": float(weights.sum()), "mean": mean, "std": std,
        "underflow": float(weights[x < x_axis.edges[0]].sum()),
        "overflow": float(weights[x >= x_axis.edges[-1]].sum()),
        "peak": peak, "peak_y": peak_y, "mean_y": mean_y, "dropped_nonfinite": dropped,
    }


def histogram_json(filled: Any) -> str:
    """The UHI serialisation as deterministic JSON (sorted keys, arrays as lists)."""
    from hist import serialization

    document = serialization.to_uhi(filled)
    return json.dumps(document, sort_keys=True, default=lambda value: np.asarray(value).tolist()) + "\n"


def _store(
    ctx: ToolContext, filled: Any, columns: list[np.ndarray], dropped: int, meta: dict[str, Any]
) -> HistogramResult:
    stats = summarise(filled, columns, dropped)
    labels = [axis.label for axis in filled.axes]
    pending = ctx.new_artifact("histogram")
    (pending.directory / "histogram.json").write_text(histogram_json(filled))
    shape = " x ".join(str(axis.size) for axis in filled.axes)
    field = meta["field"] + (f" vs {meta['field_y']}" if meta["field_y"] else "")
    summary = f"histogram of {field} from {meta['source']}: {shape} bins, {stats['entries']:,} entries"
    if meta["luminosity_fb"] is not None:
        summary += f", weighted to L = {meta['luminosity_fb']:g} fb⁻¹"
    metadata = {**meta, "label": labels[0], "label_y": labels[1] if len(labels) > 1 else None,
                "dimensions": len(labels), **stats}
    artifact = pending.finish("histogram.json", summary, metadata)
    recorded = {k: meta[k] for k in ("sample", "sqrt_s_tev", "luminosity_fb", "sigma_pb", "normalisation")}
    return HistogramResult(histogram=artifact, label=labels[0], label_y=metadata["label_y"], **recorded, **stats)
