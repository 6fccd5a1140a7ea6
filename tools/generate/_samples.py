r"""The feature matrices ``compare_samples`` compares, read from two artifacts and checked.

- ``showers``: the observables of :mod:`tools.generate._observables` (one row per shower), plus the
  pooled cell-energy spectrum as ``log10_cell_energy_mev`` (log10 of E/MeV over every cell above
  threshold), which is compared on its own and not used by the classifiers, FPD or KPD.
- ``table``, ``jets``, ``events``: each feature is an expression of the safe language of
  :mod:`tools.data._expressions` with one value per row (``jets.mass[0]``, ``tau21`` …), evaluated with
  the loader ``summarize`` uses (collections ordered by decreasing pT, ``muons``-style aliases of
  ``particles``). Rows where a feature is missing (``jets.pt[0]`` of an event without jets) are skipped
  and counted; NaN or ±inf values are refused, naming the feature and the count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from physagent.tools._artifacts import Artifact
from physagent.tools._errors import ToolInputError
from physagent.tools.data._expressions import (
    Binary,
    Call,
    ExpressionError,
    FieldPath,
    Index,
    Node,
    Unary,
    evaluate,
    field_paths,
    parse,
)
from physagent.tools.data._fields import field_unit
from physagent.tools.data.summarize import field_resolver, open_data  # summarize's loader: aliases, pT order
from physagent.tools.generate._observables import (
    SUMMARY_OBSERVABLES,
    cell_energy_spectrum,
    layer_name,
    observable_unit,
    shower_observables,
)

__all__ = ["CELL_SPECTRUM", "JET_FEATURES", "Sample", "check_kinds", "load_pair"]

TOOL = "compare_samples"
CELL_SPECTRUM = "log10_cell_energy_mev"
JET_FEATURES = ("jets.pt[0]", "jets.eta[0]", "jets.mass[0]", "jets.tau21[0]", "jets.tau32[0]", "jets.msd[0]",
                "jets.n_constituents[0]")
_TABULAR = ("table", "jets", "events")
_NOT_FEATURES = ("event", "row", "index", "weight")  # bookkeeping columns left out of the default features


@dataclass
class Sample:
    """One sample's features: ``values`` (rows × features) and the pooled distributions compared on their own."""

    names: list[str]
    units: list[str]
    values: np.ndarray
    pooled: dict[str, np.ndarray] = field(default_factory=dict)
    n_skipped: int = 0


def check_kinds(reference: Artifact, candidate: Artifact, features: list[str] | None) -> None:
    """Same kind, or a table against jets/events when ``features`` names the expressions to evaluate."""
    if reference.kind == candidate.kind:
        return
    kinds = {reference.kind, candidate.kind}
    if kinds <= set(_TABULAR) and "table" in kinds and (features or _generated(reference) or _generated(candidate)):
        return
    hint = ("a table can be compared with jets or events when features names expressions both have, e.g. "
            "features=['jets.pt[0]']" if kinds <= set(_TABULAR) and "table" in kinds else
            "convert one of them first")
    raise ToolInputError.for_param(
        TOOL, "candidate", candidate.id, f"is a {candidate.kind} artifact but reference={reference.id!r} is "
        f"{reference.kind}. Compare two samples of one kind (showers with showers, jets with jets, …); {hint}.")


def load_pair(reference: Artifact, candidate: Artifact, features: list[str] | None,
              hit_threshold_mev: float) -> tuple[Sample, Sample]:
    """Both samples' features, checked: not empty, the same features, all finite."""
    check_kinds(reference, candidate, features)
    if reference.kind == "showers":
        pair = _shower_pair(reference, candidate, features, hit_threshold_mev)
    else:
        chosen = features or _default_expressions(reference, candidate)
        pair = (_expression_sample(reference, "reference", chosen), _expression_sample(candidate, "candidate", chosen))
    for sample, artifact, param in zip(pair, (reference, candidate), ("reference", "candidate"), strict=True):
        _check_finite(sample, artifact, param)
    return pair


def _empty(artifact: Artifact, param: str, what: str) -> ToolInputError:
    return ToolInputError.for_param(TOOL, param, artifact.id, f"holds no {what}; there is nothing to compare. "
                                    "Pass a sample with data.")


def _check_finite(sample: Sample, artifact: Artifact, param: str) -> None:
    columns = {name: sample.values[:, i] for i, name in enumerate(sample.names)} | sample.pooled
    bad = {name: int(np.count_nonzero(~np.isfinite(v))) for name, v in columns.items()}
    bad = {name: count for name, count in bad.items() if count}
    if bad:
        listed = ", ".join(f"{name} ({count:,})" for name, count in bad.items())
        raise ToolInputError.for_param(
            TOOL, param, artifact.id, f"has NaN or infinite values in feature(s) {listed}. Fix or remove those rows "
            "first (e.g. a ratio whose denominator can be 0), or leave the feature out of features.")


# showers -----------------------------------------------------------------------------------------


def _shower_pair(reference: Artifact, candidate: Artifact, features: list[str] | None,
                 threshold: float) -> tuple[Sample, Sample]:
    from physagent.tools.simulate._calo import read_showers

    ref, cand = read_showers(reference.path, with_points=False), read_showers(candidate.path, with_points=False)
    for showers, artifact, param in ((ref, reference, "reference"), (cand, candidate, "candidate")):
        if len(showers) == 0:
            raise _empty(artifact, param, "showers")
    if ref.geometry != cand.geometry:
        raise ToolInputError.for_param(
            TOOL, "candidate", candidate.id, f"has a {_geometry_text(cand.geometry)} geometry, but reference="
            f"{reference.id!r} has {_geometry_text(ref.geometry)}. Showers compare only on the same cell grid: "
            "sample the candidate in the reference's geometry.")
    available = [*SUMMARY_OBSERVABLES, *(layer_name(i) for i in range(ref.geometry.n_layers)), CELL_SPECTRUM]
    chosen = features or available
    unknown = [name for name in chosen if name not in available]
    if unknown:
        listed = (f"{', '.join(SUMMARY_OBSERVABLES)}, {layer_name(0)} … {layer_name(ref.geometry.n_layers - 1)}, "
                  f"{CELL_SPECTRUM}")
        raise ToolInputError.for_param(TOOL, "features", features, f"names unknown shower observable(s) "
                                       f"{', '.join(map(repr, unknown))}. Available: {listed}.")
    return _shower_sample(ref, chosen, threshold, "reference"), _shower_sample(cand, chosen, threshold, "candidate")


def _geometry_text(geometry: Any) -> str:
    return (f"{geometry.kind} {geometry.n_layers}×{geometry.n_a}×{geometry.n_b} (cells {geometry.cell_size_mm:g} mm, "
            f"layers {geometry.layer_thickness_mm:g} mm)")


def _shower_sample(showers: Any, chosen: list[str], threshold: float, param: str) -> Sample:
    observables = shower_observables(showers, threshold)
    names = [name for name in chosen if name != CELL_SPECTRUM]
    pooled = {}
    if CELL_SPECTRUM in chosen:
        cells = cell_energy_spectrum(showers, threshold)
        if cells.size == 0:
            raise ToolInputError.for_param(
                TOOL, "hit_threshold_mev", threshold, f"leaves no cell of the {param} above threshold for "
                f"{CELL_SPECTRUM}. Lower hit_threshold_mev, or leave {CELL_SPECTRUM} out of features.")
        pooled[CELL_SPECTRUM] = np.log10(cells)
    values = np.column_stack([observables[name] for name in names]) if names else np.empty((len(showers), 0))
    return Sample(names, [observable_unit(name) for name in names], values, pooled)


# tables, jets and events -------------------------------------------------------------------------


def _default_expressions(reference: Artifact, candidate: Artifact) -> list[str]:
    """A generator's samples against its kind of data: the expressions the generator learned; jets: the
    leading jet's kinematics and substructure; tables and events: the common numeric columns (events also
    the multiplicity of each common collection, e.g. len(particles))."""
    for artifact in (candidate, reference):
        if _generated(artifact) and reference.kind != candidate.kind:
            return list(_generated(artifact))
    if reference.kind == "jets":
        return list(JET_FEATURES)
    ref_columns, ref_collections = _columns(reference)
    cand_columns, cand_collections = _columns(candidate)
    common = [c for c in ref_columns if c in cand_columns]
    if reference.kind == "events":
        common += [f"len({c})" for c in ref_collections if c in cand_collections]
    if not common:
        raise ToolInputError.for_param(
            TOOL, "features", None, f"must be given: reference={reference.id!r} (numeric columns: "
            f"{', '.join(ref_columns) or 'none'}) and candidate={candidate.id!r} ({', '.join(cand_columns) or 'none'}) "
            "have no numeric column in common. Name expressions to compare, e.g. features=['jets.pt[0]'].")
    return common


def _generated(artifact: Artifact) -> dict[str, str]:
    """expression → column of a table ``sample_generator`` wrote (``jets.mass[0]`` → ``jets_mass_0``), else {}."""
    if artifact.kind != "table":
        return {}
    return {expression: column for column, expression in artifact.metadata.get("expressions", {}).items()}


def _columns(artifact: Artifact) -> tuple[list[str], list[str]]:
    """Top-level numeric columns (one value per row) and collections (lists of records) of a Parquet artifact."""
    import awkward as ak

    form = ak.metadata_from_parquet(artifact.path)["form"]
    columns, collections = [], []
    for name in form.fields:
        content = form.content(name)
        content = content.content if content.is_option else content
        if content.purelist_depth == 1 and getattr(content, "primitive", "datetime").startswith(("int", "uint",
                                                                                                 "float", "bool")):
            if name not in _NOT_FEATURES:
                columns.append(name)
        elif content.purelist_depth == 2 and content.fields:
            collections.append(name)
    return columns, collections


def _expression_sample(artifact: Artifact, param: str, expressions: list[str]) -> Sample:
    """The features of one table/jets/events artifact; a generated table reads its own column for an
    expression it was generated from."""
    names, expressions = list(expressions), [_generated(artifact).get(text, text) for text in expressions]
    trees = []
    for text in expressions:
        try:
            trees.append(parse(text))
        except ExpressionError as error:
            raise ToolInputError.for_param(TOOL, "features", text, f"is not a valid expression: {error}.") from None
    roots = list(dict.fromkeys(path.partition(".")[0] for tree in trees for path in field_paths(tree)))
    data = open_data(artifact.path, artifact.id, roots, None, False)
    if len(data.array) == 0:
        raise _empty(artifact, param, "rows")
    columns, missing = [], np.zeros(len(data.array), dtype=bool)
    for text, tree in zip(expressions, trees, strict=True):
        values, absent = _evaluate(data, tree, text, artifact, param)
        columns.append(values)
        missing |= absent
    if missing.all():
        raise ToolInputError.for_param(
            TOOL, param, artifact.id, f"has no row where every feature has a value ({len(missing):,} rows; e.g. "
            "jets.pt[0] is missing in events without jets). Drop the features that are missing everywhere.")
    values = np.column_stack(columns)[~missing]
    return Sample(names, [_unit(t) for t in trees], values, n_skipped=int(missing.sum()))


def _unit(tree: Node) -> str:
    """The unit of an expression's value: a field's ('GeV' for jets.pt[0], max(jets.pt), -x, a - b of one unit),
    '' for counts, conditions and products."""
    match tree:
        case FieldPath(path=path):
            return field_unit(path)
        case Index(operand=child) | Unary(op="-", operand=child) | Call(function="abs" | "min" | "max" | "sum",
                                                                          argument=child):
            return _unit(child)
        case Binary(op="+" | "-", left=left, right=right) if _unit(left) == _unit(right):
            return _unit(left)
    return ""


def _evaluate(data: Any, tree: Any, text: str, artifact: Artifact, param: str) -> tuple[np.ndarray, np.ndarray]:
    """One feature's values (float64) and which rows lack it."""
    import awkward as ak

    try:
        value = evaluate(tree, field_resolver(data, f" in {param} {artifact.id}"))
    except ExpressionError as error:
        raise ToolInputError.for_param(TOOL, "features", text, f"cannot be evaluated on {param} "
                                       f"{artifact.id}: {error}.") from None
    if value.depth != 1:
        what = ("is a constant, not a quantity of the data" if value.depth == 0 else
                "has one value per object; pick one object with [0] (e.g. jets.pt[0]) or reduce with max(), "
                "sum() or count()")
        raise ToolInputError.for_param(TOOL, "features", text, f"{what}. Each feature needs one value per row.")
    array = ak.Array(value.data) if not isinstance(value.data, ak.Array) else value.data
    absent = np.asarray(ak.to_numpy(ak.is_none(array, axis=0)), dtype=bool)
    values = np.asarray(ak.to_numpy(ak.fill_none(array, 0)), dtype=np.float64)
    return values, absent
