r"""Splitting simulated background and signal into the three tables of an anomaly dataset.

The background pool is shuffled and split into the observed data, the reference background (for the
idealized reference) and the test background, by :data:`BACKGROUND_SPLIT`. Signal is injected into the
data at ``s_over_b`` = N_signal / N_background of the observed sample; the test set gets *other*
signal events, so evaluation never scores an event a method trained on. The test set keeps only the
signal region (where a search selects). All splits are fixed by the seed.
"""

from __future__ import annotations

import numpy as np

from physagent.tools.anomaly._search_data import MASS, TRUTH, Table, Windows

__all__ = ["BACKGROUND_SPLIT", "InjectionError", "split_and_inject"]

BACKGROUND_SPLIT = {"data": 0.6, "reference": 0.2, "test": 0.2}


class InjectionError(ValueError):
    """The pools cannot make the requested dataset (the message says what is missing)."""


def split_and_inject(
    background: Table, signal: Table, s_over_b: float, windows: Windows, seed: int,
) -> dict[str, Table]:
    """The ``data``, ``reference`` and ``test`` tables, each with the truth column ``label``."""
    rng = np.random.default_rng(seed)
    n_background = _length(background)
    order = rng.permutation(n_background)
    cuts = np.cumsum([round(BACKGROUND_SPLIT[k] * n_background) for k in ("data", "reference")])
    data_b, reference, test_b = (_take(background, part) for part in np.split(order, cuts))
    n_inject = round(s_over_b * _length(data_b))
    signal_order = rng.permutation(_length(signal))
    if n_inject > len(signal_order):
        raise InjectionError(f"S/B = {s_over_b:g} needs {n_inject:,} signal events in the data but the signal "
                             f"sample has {len(signal_order):,}; lower s_over_b or generate more signal")
    injected, held_out = _take(signal, signal_order[:n_inject]), _take(signal, signal_order[n_inject:])
    test_s, test_b = (_in_window(t, windows) for t in (held_out, test_b))
    if _length(test_s) == 0 or _length(test_b) == 0:
        raise InjectionError("no held-out signal or background events fall in the signal region "
                             f"{windows.signal_region_gev[0]:g}–{windows.signal_region_gev[1]:g} GeV, so no "
                             "method could be evaluated; generate more events or move the signal region")
    return {
        "data": _shuffled(_concat(_labelled(data_b, 0), _labelled(injected, 1)), rng),
        "reference": _labelled(reference, 0),
        "test": _shuffled(_concat(_labelled(test_s, 1), _labelled(test_b, 0)), rng),
    }


def _length(table: Table) -> int:
    return len(next(iter(table.values()))) if table else 0


def _take(table: Table, index: np.ndarray) -> Table:
    return {name: np.asarray(values)[index] for name, values in table.items()}


def _labelled(table: Table, label: int) -> Table:
    return {**{k: v for k, v in table.items() if k != TRUTH}, TRUTH: np.full(_length(table), label, np.int8)}


def _concat(first: Table, second: Table) -> Table:
    return {name: np.concatenate([first[name], second[name]]) for name in first}


def _shuffled(table: Table, rng: np.random.Generator) -> Table:
    return _take(table, rng.permutation(_length(table)))


def _in_window(table: Table, windows: Windows) -> Table:
    return _take(table, np.flatnonzero(windows.in_signal_region(np.asarray(table[MASS]))))
