r"""The figure of a CWoLa bump hunt: local significance per m_jj window, and the best window's fit.

Left: the one-sided local significance Z (σ) of each searched signal region, drawn at its m_jj range,
with the 3σ and 5σ lines. Right: the m_jj spectrum of the selected (most anomalous) events in the best
window's signal region and sidebands, with the dijet fit to the sidebands interpolated under the signal
region (shaded). mplhep (ATLAS) style.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from physagent.tools.anomaly._bump import BumpFit
    from physagent.tools.anomaly.cwola import BumpWindow

__all__ = ["draw_bump_scan"]


def draw_bump_scan(windows: list[BumpWindow], best: int, fit: BumpFit | None, title: str) -> Any:
    """The two-panel figure (not registered with pyplot, so nothing global is kept)."""
    import mplhep
    from matplotlib import style
    from matplotlib.figure import Figure

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # styles ask for fonts servers lack
    with style.context([mplhep.style.ATLAS, {"font.size": 10, "legend.fontsize": 8, "xtick.minor.visible": False,
                                                 "ytick.minor.visible": False}]):
        figure = Figure(figsize=(10.0, 4.2))
        scan_ax, fit_ax = figure.subplots(1, 2)
        _draw_scan(scan_ax, windows, best)
        if fit is not None:
            _draw_fit(fit_ax, fit)
        else:
            fit_ax.text(0.5, 0.5, "no bump fit", ha="center", va="center", transform=fit_ax.transAxes)
        figure.suptitle(title, fontsize=10)
        figure.tight_layout()
    return figure


def _draw_scan(ax: Any, windows: list[BumpWindow], best: int) -> None:
    for index, window in enumerate(windows):
        lo, hi = window.signal_region_gev
        z = window.z_local
        if z is None:
            continue
        ax.plot([lo, hi], [z, z], color="C3" if index == best else "C0", lw=2.5 if index == best else 1.5)
    for level in (3.0, 5.0):
        ax.axhline(level, color="grey", lw=0.8, ls="--")
        ax.text(1.0, level, f" {level:g}σ", transform=ax.get_yaxis_transform(), va="center", fontsize=8)
    tops = [w.z_local for w in windows if w.z_local is not None]
    ax.set_ylim(0.0, max(5.5, *tops, 0.0) * 1.1)
    ax.set_xlabel(r"signal region $m_{jj}$ [GeV]")
    ax.set_ylabel(r"local significance $Z$ [$\sigma$]")
    ax.set_title("best window in red", fontsize=9)


def _draw_fit(ax: Any, fit: BumpFit) -> None:
    import mplhep

    from physagent.tools.anomaly._method_result import plain_log_ticks

    edges, centres = fit.bin_edges_gev, 0.5 * (fit.bin_edges_gev[1:] + fit.bin_edges_gev[:-1])
    mplhep.histplot(fit.counts, bins=edges, yerr=np.sqrt(fit.counts), histtype="errorbar", ax=ax, color="black",
                    label="selected data", markersize=3)
    ax.plot(centres, fit.fitted, color="C1", label="sideband fit")
    lo, hi = fit.windows.signal_region_gev
    ax.axvspan(lo, hi, color="C3", alpha=0.12, label="signal region")
    ax.set_yscale("log")
    plain_log_ticks(ax)
    ax.set_xlabel(r"$m_{jj}$ [GeV]")
    ax.set_ylabel("events / bin")
    ax.set_title(f"observed {fit.observed}, expected {fit.expected:.1f} ± {fit.expected_uncertainty:.1f}, "
                 f"Z = {fit.z_local:.2f}σ", fontsize=9)
    ax.legend(loc="upper right")
