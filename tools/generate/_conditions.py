r"""The conditions of ``sample_generator``: values, ranges or a reference artifact, checked against the training
ranges before anything is sampled or written.

For a conditional flow and for jets (``jets.pt[0]``, GeV) either ``condition_values`` (per condition a value
or a [min, max] range, drawn uniformly) or a ``reference`` artifact whose rows give them (cycled when ``n``
exceeds its rows); for showers an incident-energy range ``energy_min_gev`` … ``energy_max_gev`` (drawn
log-uniformly) or the incident energies of a reference showers artifact. Conditions more than
:data:`MARGIN` of the training range outside it are refused: a generator does not extrapolate.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools.generate._generator_io import read_columns, read_rows

__all__ = ["DEFAULT_N", "MARGIN", "ConditionSource", "flow_conditions", "jet_axes", "shower_energies"]

ConditionSource = Literal["none", "values", "energy_range", "reference"]
_TOOL = "sample_generator"
MARGIN = 0.05  # share of the training range a condition may lie beyond it
DEFAULT_N = 1000


def flow_conditions(ctx: ToolContext, card: dict[str, Any], n: int | None, values: dict[str, list[float]] | None,
                     reference: str | None, e_min: float | None, e_max: float | None, rng: np.random.Generator
                     ) -> tuple[np.ndarray, ConditionSource]:
    names = card["conditions"]
    if e_min is not None or e_max is not None:
        raise ToolInputError.for_param(
            _TOOL, "energy_min_gev" if e_min is not None else "energy_max_gev", e_min if e_min is not None else e_max,
            f"applies to shower generators; this one makes {'jets' if 'jets' in card else 'tables'}. " + (
                f"Give its conditions {names} with condition_values or reference." if names else "Leave it out."))
    if not names:
        if values or reference:
            raise ToolInputError.for_param(
                _TOOL, "condition_values" if values else "reference", values or reference,
                "gives conditions, but the generator was trained unconditionally (on "
                f"{', '.join(card['features'])}). Leave it out, or train with conditions=[...].")
        return np.zeros((n or DEFAULT_N, 0)), "none"
    if values and reference:
        raise ToolInputError.for_param(_TOOL, "reference", reference, "and condition_values both give the "
                                       "conditions. Give one of them.")
    if reference:
        return _reference_conditions(ctx, card, n, reference), "reference"
    if not values:
        raise ToolInputError.for_param(
            _TOOL, "condition_values", values, f"is needed: the generator is conditioned on {names}. Give e.g. "
            f"condition_values={{{names[0]!r}: [value]}} or [min, max], or reference=<artifact with those fields>.")
    return _given_conditions(card, n or DEFAULT_N, values, rng), "values"


def _given_conditions(card: dict[str, Any], n: int, values: dict[str, list[float]], rng: np.random.Generator
                      ) -> np.ndarray:
    names, columns = card["conditions"], card["condition_columns"]
    by_key = {key: i for i, (name, column) in enumerate(zip(names, columns, strict=True)) for key in (name, column)}
    unknown = sorted(set(values) - set(by_key))
    missing = [name for i, name in enumerate(names) if not any(by_key.get(k) == i for k in values)]
    if unknown or missing:
        problem = f"names {unknown}, which the generator does not know" if unknown else f"lacks {missing}"
        raise ToolInputError.for_param(_TOOL, "condition_values", values, f"{problem}. Its conditions are {names}; "
                                       "give each a value [v] or a range [min, max].")
    out = np.empty((n, len(names)))
    for key, bounds in values.items():
        if len(bounds) not in (1, 2) or (len(bounds) == 2 and bounds[0] > bounds[1]):
            raise ToolInputError.for_param(_TOOL, "condition_values", values, f"gives {key!r} {bounds}; each "
                                           "condition takes [value] or [min, max] with min ≤ max.")
        i = by_key[key]
        _check_range(card["ranges"]["conditions"][names[i]], np.asarray(bounds), "condition_values", names[i])
        out[:, i] = bounds[0] if len(bounds) == 1 else rng.uniform(bounds[0], bounds[1], n)
    return out


def _reference_conditions(ctx: ToolContext, card: dict[str, Any], n: int | None, reference: str) -> np.ndarray:
    data = ctx.artifact(reference, "reference")
    names = card["conditions"]
    if data.kind == "showers":
        raise ToolInputError.for_param(_TOOL, "reference", reference, f"holds showers, but the generator is "
                                       f"conditioned on {names}. Use a table, jets or events artifact with them.")
    given = read_columns(_TOOL, "reference", reference, read_rows(data.path, names), names).values
    if len(given) == 0:
        raise ToolInputError.for_param(_TOOL, "reference", reference, f"has no row with values of {names}. "
                                       "Use another reference or condition_values.")
    for i, name in enumerate(names):
        _check_range(card["ranges"]["conditions"][name], given[:, i], "reference", name)
    return given[np.arange(n or len(given)) % len(given)]


def jet_axes(ctx: ToolContext, card: dict[str, Any], reference: str | None, n: int, rng: np.random.Generator
              ) -> np.ndarray:
    """(n, 2) η, φ of the generated jets' axes: the reference's leading jets (cycled), else drawn."""
    from physagent.tools.generate._jet_points import draw_axes

    if reference is None:
        return draw_axes(card["jets"]["eta_quantiles"], n, rng)
    path = ctx.artifact(reference, "reference").path
    names = ["jets.pt[0]", "jets.eta[0]", "jets.phi[0]"]
    axes = read_columns(_TOOL, "reference", reference, read_rows(path, names), names).values[:, 1:]
    return axes[np.arange(n) % len(axes)]


def shower_energies(ctx: ToolContext, card: dict[str, Any], n: int | None, e_min: float | None, e_max: float | None,
              values: dict[str, list[float]] | None, reference: str | None, rng: np.random.Generator
              ) -> tuple[np.ndarray, ConditionSource]:
    trained = card["showers"]["incident_energy_gev_range"]
    if values:
        raise ToolInputError.for_param(_TOOL, "condition_values", values, "applies to tabular flows; a shower "
                                       "generator is conditioned on the incident energy. Use energy_min_gev/"
                                       "energy_max_gev or reference.")
    if reference and (e_min is not None or e_max is not None):
        raise ToolInputError.for_param(_TOOL, "reference", reference, "and an energy range both give the incident "
                                       "energies. Give one of them.")
    if reference:
        return _reference_energies(ctx, card, n, reference), "reference"
    if e_min is None:
        raise ToolInputError.for_param(
            _TOOL, "energy_min_gev", e_min if e_max is None else f"None (energy_max_gev={e_max})",
            f"is needed: the generator is conditioned on the incident energy (trained on {trained[0]:.4g}–"
            f"{trained[1]:.4g} GeV). Give energy_min_gev (and energy_max_gev for a range), or reference=<showers id>.")
    high = e_min if e_max is None else e_max
    if high < e_min:
        raise ToolInputError.for_param(_TOOL, "energy_max_gev", e_max, f"is below energy_min_gev={e_min}. Give "
                                       "min ≤ max.")
    _check_range(trained, np.array([e_min, high]), "energy_min_gev" if e_min < trained[0] else "energy_max_gev",
                 "the incident energy [GeV]")
    count = n or DEFAULT_N
    return np.exp(rng.uniform(np.log(e_min), np.log(high), count)) if high > e_min else np.full(count, e_min), \
        "energy_range"


def _reference_energies(ctx: ToolContext, card: dict[str, Any], n: int | None, reference: str) -> np.ndarray:
    from physagent.tools.simulate._calo import CaloGeometry, read_showers

    data = ctx.artifact(reference, "reference")
    if data.kind != "showers":
        raise ToolInputError.for_param(_TOOL, "reference", reference, f"is a {data.kind} artifact; a shower "
                                       "generator takes incident energies from a showers artifact.")
    showers = read_showers(data.path, with_points=False)
    trained = CaloGeometry(**card["showers"]["geometry"])
    if showers.geometry.grid_shape != trained.grid_shape:
        raise ToolInputError.for_param(
            _TOOL, "reference", reference, f"has a {'×'.join(map(str, showers.geometry.grid_shape))} grid, but the "
            f"generator makes {'×'.join(map(str, trained.grid_shape))} showers. Use a reference of the trained "
            "geometry, or an energy range (energy_min_gev, energy_max_gev).")
    if len(showers) == 0:
        raise ToolInputError.for_param(_TOOL, "reference", reference, "holds no showers. Use an energy range.")
    energies = showers.incident_energy_gev
    _check_range(card["showers"]["incident_energy_gev_range"], energies, "reference", "the incident energy [GeV]")
    return energies[np.arange(n or len(energies)) % len(energies)]


def _check_range(trained: list[float], values: np.ndarray, param: str, name: str) -> None:
    low, high = trained
    margin = MARGIN * (high - low)
    outside = (values < low - margin) | (values > high + margin)
    if np.any(outside):
        raise ToolInputError.for_param(
            _TOOL, param, f"{name}: {float(values[outside][0]):.6g}", f"lies outside the range the generator was "
            f"trained on, {low:.6g} … {high:.6g} ({int(outside.sum())} of {values.size} values). A generator does "
            "not extrapolate: stay within it, or train on data covering it.")
