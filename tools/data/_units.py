r"""The momentum unit of a file (GeV or MeV), and its momenta converted to GeV.

Used by ``read_root`` and ``read_table``. The unit of flat trees and tables: ``units`` given > the file's hint (a
TObjString ``units``, or ``[MeV]``/``[GeV]`` in the tree title) > a guess from the median of the transverse momenta
(pt, et, met, … fields; > 1000 → MeV), reported as a warning. NanoAOD and Delphes files store GeV. A field is
momentum-like by its name (pt, e, mass, jet_pt, MET, …); a name stating its unit (``mll_gev``) is never rescaled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from physagent.tools._errors import ToolInputError
from physagent.tools._pdg import to_gev

__all__ = ["UnitChoice", "Units", "choose_units", "momentum_paths", "unit_hint"]

Units = Literal["auto", "GeV", "MeV"]

_MOMENTUM_TOKENS = frozenset({"pt", "e", "energy", "m", "mass", "px", "py", "pz", "et", "met", "msd", "ht", "sumet",
                              "msoftdrop", "mjj", "mll", "mt", "mvis"})
_UNIT_TOKENS = frozenset({"gev", "mev", "tev"})  # a name that states its unit is never rescaled
# The guess looks at transverse momenta only: invariant masses (a dijet mjj of a few TeV) and energies of forward
# objects are legitimately above 1000 GeV, a median pT hardly ever; MeV files have pT medians of 10^4–10^5.
_TRANSVERSE_TOKENS = frozenset({"pt", "et", "met", "ht", "sumet", "px", "py"})
_MEV_MEDIAN = 1000.0


@dataclass
class UnitChoice:
    """The momentum unit a file was read in, and why."""

    unit: str = "GeV"
    source: str = "none"  # given | file | schema | guess | none (no momentum-like fields)
    warnings: list[str] = field(default_factory=list)


def momentum_paths(array: Any) -> list[tuple[str, ...]]:
    """Paths of the floating-point fields whose names are momenta or energies (pt, e, mass, jet_pt, MET, …)."""
    import awkward as ak

    found: list[tuple[str, ...]] = []
    for name in ak.fields(array):
        inner = ak.fields(array[name])
        for path in [(name, sub) for sub in inner] if inner else [(name,)]:
            tokens = set(re.split(r"[_.]", "_".join(path).lower()))
            values = array[path]
            if tokens & _UNIT_TOKENS or not (set(re.split(r"[_.]", path[-1].lower())) & _MOMENTUM_TOKENS):
                continue
            if _is_float(values):
                found.append(path)
    return found


def _is_float(values: Any) -> bool:
    import awkward as ak

    try:
        return bool(np.issubdtype(ak.to_numpy(ak.ravel(values[:0])).dtype, np.floating))
    except (TypeError, ValueError):  # strings and other non-numeric leaves
        return False


def choose_units(
    tool: str, array: Any, given: str, hint: tuple[str, str] | None, schema: str
) -> tuple[Any, UnitChoice]:
    """Resolve the unit (given > file hint > schema > guess) and return the array in GeV.

    ``hint`` is (what the file says, where it says it). A given unit wins over the file's note (the user may know
    the note is wrong) but the disagreement is reported; a note naming no unit we know is an error.
    """
    warnings = []
    if hint is not None and given == "auto":
        hint = (_parse_unit(tool, hint[0], hint[1]), hint[1])
    elif hint is not None and hint[0].lower() != given.lower():
        warnings.append(f"units='{given}' overrides the file's {hint[1]}, which says {hint[0]!r}; momenta were "
                        f"read as {given}. Pass units='auto' to follow the file.")
    if schema in ("nanoaod", "delphes"):
        if given == "MeV":
            raise ToolInputError.for_param(tool, "units", given, f"does not apply: {schema} files store GeV. "
                                           "Pass units='auto'.")
        return array, UnitChoice("GeV", "schema")
    if given != "auto":
        return _scaled(array, given), UnitChoice(given, "given", warnings)
    if hint is not None and schema == "flat":
        return _scaled(array, hint[0]), UnitChoice(hint[0], "file")
    return _guess(array)


def _guess(array: Any) -> tuple[Any, UnitChoice]:
    import awkward as ak

    paths = momentum_paths(array)
    if not paths:
        return array, UnitChoice()
    basis = [p for p in paths if set(re.split(r"[_.]", p[-1].lower())) & _TRANSVERSE_TOKENS]
    values = np.abs(np.concatenate([np.zeros(0), *(ak.to_numpy(ak.ravel(array[p])).astype(np.float64)
                                                   for p in basis)]))
    values = values[np.isfinite(values) & (values > 0)]
    if not values.size:
        note = (f"units taken as GeV: the file states none and has no transverse momenta to guess from (its "
                f"momentum-like fields: {_listing(paths)}); pass units='MeV' if it is in MeV.")
        return array, UnitChoice("GeV", "guess", [note])
    median = float(np.median(values))
    unit = "MeV" if median > _MEV_MEDIAN else "GeV"
    other = "GeV" if unit == "MeV" else "MeV"
    note = (f"units guessed as {unit}: the file states none, and the median of its transverse momenta "
            f"({_listing(basis)}) is {median:.4g} ({'>' if unit == 'MeV' else '≤'} {_MEV_MEDIAN:g}); "
            f"pass units='{other}' if that is wrong.")
    return _scaled(array, unit, paths), UnitChoice(unit, "guess", [note])


def _listing(paths: list[tuple[str, ...]]) -> str:
    return ", ".join(".".join(p) for p in paths[:6]) + (" …" if len(paths) > 6 else "")


def _scaled(array: Any, unit: str, paths: list[tuple[str, ...]] | None = None) -> Any:
    """Momentum-like float fields × (unit/GeV), computed in float64 and cast back to the stored type."""
    import awkward as ak

    if unit == "GeV":
        return array
    for path in momentum_paths(array) if paths is None else paths:
        values = array[path]
        dtype = ak.to_numpy(ak.ravel(values[:0])).dtype
        scaled = ak.values_astype(to_gev(ak.values_astype(values, np.float64), unit), dtype)  # type: ignore[arg-type]
        array = ak.with_field(array, scaled, list(path))
    return array


def unit_hint(file: Any, tree: Any) -> tuple[str, str] | None:
    """The unit a ROOT file states: a TObjString 'units' at the top, else '[MeV]'/'[GeV]' in the tree title."""
    for key, classname in file.classnames(recursive=False).items():
        if key.rsplit(";", 1)[0] == "units" and classname == "TObjString":
            return str(file[key]).strip(), "TObjString 'units'"
    title = str(getattr(tree, "title", "") or "")
    match = re.search(r"\[\s*(MeV|GeV)\s*\]", title, re.IGNORECASE)
    return (match.group(1), f"tree title {title!r}") if match else None


def _parse_unit(tool: str, text: str, where: str) -> str:
    for unit in ("MeV", "GeV"):
        if text.lower() == unit.lower():
            return unit
    raise ToolInputError.for_param(
        tool, "units", "auto", f"cannot follow the file: its {where} says {text!r}, not 'MeV' or 'GeV'. "
        "Pass units='MeV' or units='GeV'.",
    )
