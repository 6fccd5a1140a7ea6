r"""Inputs and outputs of the generator tools: feature columns from tables, jets and events; showers.

Features and conditions of the tabular flow are expressions of the selection language of
:mod:`tools.data._expressions` with one number per row: a table column (``mass``), a per-event field
(``m_hat_gev``) or one object of a collection (``jets.mass[0]``, ``jets.tau21[0]``, the leading jet by pT,
as in ``summarize``), or arithmetic of those (``jets.mass[0] / jets.pt[0]``). Rows where an expression
has no value (an event without a second jet for ``jets.pt[1]``) are left out and counted; NaN or
infinite values are refused, naming the feature. Sampled tables name their columns
:func:`column_name` of the expression (``jets.mass[0]`` → ``jets_mass_0``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from physagent.tools._errors import ToolInputError
from physagent.tools.data._expressions import ExpressionError, Node, evaluate, parse
from physagent.tools.data._fields import leaf_paths, object_ordering, resolve_field

__all__ = ["Columns", "check_showers", "column_name", "column_names", "default_features", "read_columns",
           "read_rows"]


@dataclass(frozen=True)
class Columns:
    """Values of expressions, one row per kept entry of the source."""

    expressions: list[str]
    values: np.ndarray  # (N, k) float64
    n_source: int  # rows of the source, before rows without a value were left out


def column_name(expression: str) -> str:
    """The column a feature gets in a sampled table.

    >>> column_name("jets.mass[0]"), column_name("m_hat_gev"), column_name("jets.mass[0] / jets.pt[0]")
    ('jets_mass_0', 'm_hat_gev', 'jets_mass_0_jets_pt_0')
    """
    return re.sub(r"[^0-9A-Za-z_]+", "_", expression).strip("_") or "feature"


def column_names(expressions: list[str]) -> list[str]:
    """:func:`column_name` of each expression, made unique with a numeric suffix where two coincide."""
    names: list[str] = []
    for expression in expressions:
        name, k = column_name(expression), 1
        while name in names:
            k += 1
            name = f"{column_name(expression)}_{k}"
        names.append(name)
    return names


def read_rows(path: Path, expressions: list[str]) -> Any:
    """The source rows with the collections the expressions use, objects ordered by decreasing pT."""
    import awkward as ak

    from physagent.tools._io import read_parquet

    stored = ak.fields(ak.metadata_from_parquet(path)["form"].length_zero_array())
    roots = {p.partition(".")[0] for e in expressions for p in _paths(e)} & set(stored)
    array = read_parquet(path, columns=sorted(roots) if roots else None)
    for name in roots:
        if array[name].ndim >= 2 and ak.fields(array[name]):
            array = ak.with_field(array, array[name][object_ordering(array[name])], name)
    return array


def default_features(array: Any) -> list[str]:
    """The numeric columns with one value per row (the default features of a table)."""
    import awkward as ak

    return [name for name in ak.fields(array) if array[name].ndim == 1 and not ak.fields(array[name])
            and _numeric(array[name])]


def read_columns(tool: str, param: str, source_id: str, array: Any, expressions: list[str]) -> Columns:
    """Evaluate ``expressions`` on ``array``; rows where one has no value are left out.

    Raises:
        ToolInputError: an expression that does not parse, names an unknown field, is a condition or has
            more than one value per row; NaN or infinite values (naming the feature).
    """
    import awkward as ak

    columns, present = [], np.ones(len(array), dtype=bool)
    for expression in expressions:
        values = _evaluate(tool, param, source_id, array, expression)
        missing = np.asarray(ak.is_none(values))
        filled = np.asarray(ak.to_numpy(ak.fill_none(values, 0.0)), dtype=np.float64)
        bad = ~np.isfinite(filled) & ~missing
        if np.any(bad):
            raise ToolInputError.for_param(
                tool, param, expression, f"has {int(bad.sum())} NaN or infinite values in {source_id}. Drop "
                "those rows first (e.g. with a cleaned table), or pick another feature.")
        columns.append(filled)
        present &= ~missing
    values = np.stack(columns, axis=1)[present] if columns else np.zeros((int(present.sum()), 0))
    return Columns(list(expressions), values, len(array))


def _evaluate(tool: str, param: str, source_id: str, array: Any, expression: str) -> Any:
    import awkward as ak

    def resolve(path: str, position: int) -> Any:
        found = resolve_field(array, path)
        if found is None or not _numeric(found):
            raise ExpressionError(f"unknown numeric field {path!r} at position {position}; available: "
                                  f"{', '.join(leaf_paths(array[:0])[:40])}", path, position)
        return found

    try:
        value = evaluate(parse(expression), resolve)
    except ExpressionError as error:
        raise ToolInputError.for_param(
            tool, param, expression, f"cannot be evaluated on {source_id}: {error}.") from None
    if value.condition or value.depth != 1:
        what = ("is a condition, not a number" if value.condition else "is a constant" if value.depth == 0 else
                "has one value per object, not one per row")
        raise ToolInputError.for_param(
            tool, param, expression, f"{what}. A feature needs one number per row, e.g. 'jets.mass[0]' (the leading "
            "jet) or a table column.")
    return ak.values_astype(value.data, np.float64)


def _paths(expression: str) -> list[str]:
    from physagent.tools.data._expressions import field_paths

    try:
        node: Node = parse(expression)
    except ExpressionError:
        return []  # reported with its position when evaluated
    return field_paths(node)


def _numeric(values: Any) -> bool:
    import awkward as ak

    if ak.fields(values):
        return False
    leaf = ak.to_numpy(ak.flatten(values, axis=None)[:0])
    return bool(np.issubdtype(leaf.dtype, np.number))


def check_showers(tool: str, param: str, source_id: str, showers: Any) -> None:
    """Refuse showers that cannot be learned: none, non-finite or negative energies.

    Raises:
        ToolInputError: naming what is wrong and how to fix it.
    """
    if len(showers) == 0:
        raise ToolInputError.for_param(tool, param, source_id, "holds no showers. Simulate or load some first.")
    if not np.all(np.isfinite(showers.incident_energy_gev)) or not np.all(np.isfinite(showers.cells_mev)):
        what = "incident_energy_gev" if not np.all(np.isfinite(showers.incident_energy_gev)) else "cell energies"
        raise ToolInputError.for_param(
            tool, param, source_id, f"has NaN or infinite values in {what}. Drop those showers before training.")
    if np.any(showers.incident_energy_gev <= 0) or np.any(showers.cells_mev < 0):
        raise ToolInputError.for_param(
            tool, param, source_id, "has negative energies (incident energies must be > 0, cells ≥ 0). Fix the "
            "file or drop those showers.")
