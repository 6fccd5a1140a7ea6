r"""The figure of ``compare_samples``: reference and candidate histograms per feature, with ratio panels.

Each panel shows both samples normalised to unit area on the same equal-width bins over the central
99 % of the pooled values (integer-valued features with few values get one bin per integer), and below
it the ratio candidate / reference with its statistical error
:math:`\sigma = \text{ratio}\sqrt{1/c_i + 1/r_i}` (counts :math:`r_i, c_i`). Up to :data:`MAX_PANELS`
features are drawn, in an mplhep (ATLAS) style; files carry no dates, so identical calls give identical bytes.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MAX_PANELS", "Panel", "draw_comparison", "plot_edges", "save_comparison"]

MAX_PANELS = 12
_COLUMNS = 4
_DPI = 120
_CANDIDATE_COLOUR = "#1f5fa8"
# small panels: smaller fonts, and no minor ticks (drawing their ticks was most of the time to render)
_RC = {"font.size": 9, "axes.labelsize": 9, "axes.titlesize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8,
       "legend.fontsize": 8, "xtick.minor.visible": False, "ytick.minor.visible": False}
_PANEL_IN = (3.6, 3.3)  # width, height of one feature's panel pair, inches
_MARGIN_IN = (0.75, 0.25, 0.75, 0.6)  # left, right, top (suptitle), bottom

Panel = tuple[str, str, np.ndarray, np.ndarray, str]
"""(feature name, unit, reference values, candidate values, the distances as a short line)."""


def plot_edges(reference: np.ndarray, candidate: np.ndarray, n_bins: int) -> np.ndarray:
    """Common bin edges: one bin per integer for integer features with ≤ n_bins values, else equal width."""
    pooled = np.concatenate([reference, candidate])
    low, high = (float(v) for v in np.quantile(pooled, [0.005, 0.995]))
    if np.all(pooled == np.round(pooled)) and high - low + 1 <= n_bins:
        return np.arange(math.floor(low), math.floor(high) + 2) - 0.5
    if high <= low:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, n_bins + 1)


def draw_comparison(panels: list[Panel], labels: tuple[str, str], title: str, n_bins: int) -> Any:
    """The figure (not registered with pyplot, so nothing global is kept)."""
    import mplhep
    from matplotlib import style
    from matplotlib.figure import Figure

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # styles ask for fonts servers lack
    columns = min(_COLUMNS, len(panels))
    rows = math.ceil(len(panels) / columns)
    width, height = _PANEL_IN[0] * columns + _MARGIN_IN[0] + _MARGIN_IN[1], _PANEL_IN[1] * rows + sum(_MARGIN_IN[2:])
    with style.context([mplhep.style.ATLAS, _RC]):
        figure = Figure(figsize=(width, height))
        outer = figure.add_gridspec(rows, columns, hspace=0.55, wspace=0.4, left=_MARGIN_IN[0] / width,
                                    right=1 - _MARGIN_IN[1] / width, top=1 - _MARGIN_IN[2] / height,
                                    bottom=_MARGIN_IN[3] / height)
        for index, panel in enumerate(panels):
            inner = outer[index // columns, index % columns].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.06)
            main = figure.add_subplot(inner[0])
            ratio = figure.add_subplot(inner[1], sharex=main)
            _draw_panel(main, ratio, panel, labels, n_bins)
            if index == 0:
                main.legend(loc="best")
        figure.suptitle(title, fontsize=10, y=1 - 0.2 / height)
    return figure


def _draw_panel(main: Any, ratio: Any, panel: Panel, labels: tuple[str, str], n_bins: int) -> None:
    import mplhep

    name, unit, reference, candidate, line = panel
    edges = plot_edges(reference, candidate, n_bins)
    r, c = np.histogram(reference, edges)[0].astype(float), np.histogram(candidate, edges)[0].astype(float)
    widths = np.diff(edges)
    r_density, c_density = r / max(r.sum(), 1.0) / widths, c / max(c.sum(), 1.0) / widths
    mplhep.histplot(r_density, bins=edges, ax=main, label=labels[0], histtype="fill", color="0.8")
    mplhep.histplot(c_density, bins=edges, ax=main, label=labels[1], histtype="step", color=_CANDIDATE_COLOUR,
                     lw=1.4)
    main.set_ylabel("normalised" + (f" / {unit}" if unit else ""))
    main.set_title(f"{name}\n{line}")
    main.tick_params(labelbottom=False)
    filled = (r > 0) & (c > 0)
    quotient = np.divide(c_density, r_density, out=np.full_like(r_density, np.nan), where=r_density > 0)
    error = np.where(filled, quotient * np.sqrt(1.0 / np.where(filled, c, 1.0) + 1.0 / np.where(filled, r, 1.0)),
                     np.nan)
    centres = 0.5 * (edges[1:] + edges[:-1])
    ratio.errorbar(centres, quotient, yerr=error, fmt="o", ms=2, color=_CANDIDATE_COLOUR, elinewidth=0.8)
    ratio.axhline(1.0, color="0.4", lw=0.8, ls="--")
    ratio.set_ylim(0.5, 1.5)
    ratio.set_yticks([0.6, 1.0, 1.4])
    ratio.set_ylabel("ratio")
    ratio.set_xlabel(name + (f" [{unit}]" if unit else ""))


def save_comparison(figure: Any, directory: Path) -> None:
    """Write plot.png and plot.pdf without dates or version strings (fixed margins: one render per file)."""
    figure.savefig(directory / "plot.png", dpi=_DPI, metadata={"Software": None})
    figure.savefig(directory / "plot.pdf", metadata={"CreationDate": None, "Producer": None})
