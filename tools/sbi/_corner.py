r"""The corner plot of posterior samples: 1-d marginals on the diagonal, 2-d histograms below it.

Diagonal: the marginal histogram, the central credible interval at the requested level shaded and the 95 %
interval dashed, the median in the title with its interval (``median −a +b``). Lower triangle: the 2-d
histogram of each pair. θ_true, when known, is a red line and a red cross. Axis ranges cover the central 99.8 %
of the samples (and θ_true). At most :data:`MAX_PARAMETERS` parameters are drawn (the first ones).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["MAX_PARAMETERS", "corner_figure"]

MAX_PARAMETERS = 12
_MAX_BINS = 40
_TRUE_COLOUR = "#d62728"
_FILL_COLOUR = "#1f77b4"


def corner_figure(samples: np.ndarray, labels: list[str], credible_level: float, theta_true: np.ndarray | None,
                  title: str) -> Any:
    """The corner plot of ``samples`` (n, d) with axis ``labels``; returns a matplotlib Figure."""
    from matplotlib import style
    from matplotlib.figure import Figure

    d = min(samples.shape[1], MAX_PARAMETERS)
    size = min(2.0 * d + 0.6, 18.0)
    with style.context({"font.size": 7 if d > 4 else 8, "axes.titlesize": 7 if d > 4 else 8}):
        figure = Figure(figsize=(size, size))
        axes = np.atleast_2d(figure.subplots(d, d, squeeze=False))
        ranges = [_range(samples[:, i], None if theta_true is None else theta_true[i]) for i in range(d)]
        for row in range(d):
            for col in range(d):
                ax = axes[row, col]
                if col > row:
                    ax.set_visible(False)
                    continue
                if row == col:
                    _diagonal(ax, samples[:, row], ranges[row], credible_level,
                              None if theta_true is None else theta_true[row], labels[row])
                else:
                    _pair(ax, samples[:, col], samples[:, row], ranges[col], ranges[row],
                          None if theta_true is None else (theta_true[col], theta_true[row]))
                _label(ax, row, col, d, labels)
        shown = "" if d == samples.shape[1] else f" (first {d} of {samples.shape[1]} parameters)"
        figure.suptitle(f"{title}{shown}", fontsize=9)
        figure.tight_layout()
    return figure


def _range(values: np.ndarray, true: float | None) -> tuple[float, float]:
    low, high = np.quantile(values, [0.001, 0.999])
    if true is not None and np.isfinite(true):
        low, high = min(low, true), max(high, true)
    pad = 0.05 * (high - low) or 0.5 * max(abs(low), 1e-3)
    return float(low - pad), float(high + pad)


def _bins(cells: float) -> int:
    """Bins per axis for about ``cells`` bins, between 10 and :data:`_MAX_BINS`."""
    return int(np.clip(round(cells), 10, _MAX_BINS))


def _diagonal(ax: Any, values: np.ndarray, span: tuple[float, float], level: float, true: float | None,
              label: str) -> None:
    counts, edges = np.histogram(values, bins=_bins(len(values) / 20), range=span)
    ax.stairs(counts, edges, color="black", lw=0.9)
    low, median, high = np.quantile(values, [(1 - level) / 2, 0.5, (1 + level) / 2])
    ax.axvspan(low, high, color=_FILL_COLOUR, alpha=0.25, lw=0)
    for edge in np.quantile(values, [0.025, 0.975]):
        ax.axvline(edge, color=_FILL_COLOUR, ls="--", lw=0.8)
    if true is not None:
        ax.axvline(true, color=_TRUE_COLOUR, lw=1.1)
    ax.set_yticks([])
    ax.set_xlim(*span)
    ax.set_title(f"{label.split(' [', maxsplit=1)[0]} = {median:.3g} −{median - low:.2g} +{high - median:.2g}")


def _pair(ax: Any, xs: np.ndarray, ys: np.ndarray, x_span: tuple[float, float], y_span: tuple[float, float],
          true: tuple[float, float] | None) -> None:
    counts, x_edges, y_edges = np.histogram2d(xs, ys, bins=_bins(np.sqrt(len(xs) / 5)), range=[x_span, y_span])
    ax.pcolormesh(x_edges, y_edges, np.ma.masked_equal(counts.T, 0), cmap="Blues", rasterized=True)
    if true is not None:
        ax.axvline(true[0], color=_TRUE_COLOUR, lw=0.8)
        ax.axhline(true[1], color=_TRUE_COLOUR, lw=0.8)
        ax.plot([true[0]], [true[1]], marker="x", color=_TRUE_COLOUR, ms=5)
    ax.set_xlim(*x_span)
    ax.set_ylim(*y_span)


def _label(ax: Any, row: int, col: int, d: int, labels: list[str]) -> None:
    if row == d - 1:
        ax.set_xlabel(labels[col])
    else:
        ax.set_xticklabels([])
    if col == 0 and row > 0:
        ax.set_ylabel(labels[row])
    elif row != col:
        ax.set_yticklabels([])
