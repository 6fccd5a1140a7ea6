r"""The figure of ``bump_hunt``: the m_jj spectrum before and after the cut on the anomaly score.

One column per fit (before the cut; after it, when there is one). Above: the events per bin with
Poisson errors √n, the fitted dijet background per bin (fitted to the sidebands, interpolated under the
signal region), the signal region shaded, log scale, and the fit's numbers (N, B ± σ_B, Z, χ²/ndf). Below:
the pull (n − μ)/√μ per bin, μ the fitted count. mplhep's ATLAS style; files carry no dates, so identical
calls give identical bytes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from physagent.tools.anomaly._bump import BumpFit

__all__ = ["draw_bump_hunt", "save_bump_hunt"]

_DPI = 120
_FIT_COLOUR = "#d6604d"
_RC = {"font.size": 10, "legend.fontsize": 8, "xtick.minor.visible": False, "ytick.minor.visible": False}


def draw_bump_hunt(before: BumpFit, after: BumpFit | None, selection: str, title: str) -> Any:
    """The figure (not registered with pyplot, so nothing global is kept)."""
    import mplhep
    from matplotlib import style
    from matplotlib.figure import Figure

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # styles ask for fonts servers lack
    fits = [("before the cut: all events", before)] + ([(f"after the cut: {selection}", after)] if after else [])
    with style.context([mplhep.style.ATLAS, _RC]):
        figure = Figure(figsize=(5.6 * len(fits), 5.6))
        grid = figure.add_gridspec(2, len(fits), height_ratios=[3, 1], hspace=0.06, wspace=0.28)
        for column, (name, fit) in enumerate(fits):
            main = figure.add_subplot(grid[0, column])
            pull = figure.add_subplot(grid[1, column], sharex=main)
            _draw(main, pull, fit, name)
        figure.suptitle(title, fontsize=10)
        figure.subplots_adjust(left=0.09, right=0.98, top=0.9, bottom=0.1)
    return figure


def _draw(main: Any, pull: Any, fit: BumpFit, name: str) -> None:
    import mplhep

    edges, counts, fitted = fit.bin_edges_gev, fit.counts.astype(float), fit.fitted
    centres = 0.5 * (edges[1:] + edges[:-1])
    for ax in (main, pull):
        ax.axvspan(*fit.windows.signal_region_gev, color="0.9", zorder=0)
    mplhep.histplot(fitted, bins=edges, ax=main, histtype="step", color=_FIT_COLOUR, lw=1.4,
                    label="dijet fit to the sidebands")
    main.errorbar(centres, counts, yerr=np.sqrt(counts), fmt="o", ms=3, color="black", elinewidth=0.8, label="data")
    main.set_yscale("log")
    main.set_ylim(bottom=max(0.5, 0.3 * float(np.min(fitted[fitted > 0], initial=1.0))))
    main.set_ylabel("events / bin")
    main.set_title(name, fontsize=9)
    main.tick_params(labelbottom=False)
    main.legend(loc="upper right", title=(
        f"SR: N = {fit.observed}, B = {fit.expected:.1f} ± {fit.expected_uncertainty:.1f}\n"
        f"Z = {fit.z_local:.2f}σ (local), χ²/ndf = {fit.chi2_per_ndf:.2f}"), title_fontsize=8)
    pulls = (counts - fitted) / np.sqrt(np.maximum(fitted, 1e-9))
    pull.bar(centres, pulls, width=np.diff(edges), color=_FIT_COLOUR, alpha=0.7)
    pull.axhline(0.0, color="0.4", lw=0.8)
    limit = max(3.0, float(np.ceil(np.max(np.abs(pulls), initial=0.0))))
    pull.set_ylim(-limit, limit)
    pull.set_ylabel("(n − μ)/√μ")
    pull.set_xlabel(r"$m_{jj}$ [GeV]")
    pull.set_xlim(edges[0], edges[-1])


def save_bump_hunt(figure: Any, directory: Path) -> None:
    """Write bump.png and bump.pdf without dates or version strings."""
    figure.savefig(directory / "bump.png", dpi=_DPI, metadata={"Software": None})
    figure.savefig(directory / "bump.pdf", metadata={"CreationDate": None, "Producer": None})
