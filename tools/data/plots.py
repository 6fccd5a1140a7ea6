r"""``plot``: draw histogram artifacts with matplotlib and an mplhep experiment style (PNG + PDF).

Up to eight 1-D histograms share one set of axes (a legend names them, also when there is one), or one 2-D histogram is
drawn as a colour map. Axis labels come from the histograms and carry their units (GeV for
momenta, energies and masses); ``density=True`` normalises each histogram to unit area, so the
y axis is in 1/[unit of x]. Error bars are √(Σw²) per bin.

The files are reproducible: no creation date or software version is written into the PNG or the
PDF, so identical calls give identical hashes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from physagent.tools._artifacts import Artifact, HistogramRef
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import ToolResult, tool
from physagent.tools.data.histograms import load_histogram

__all__ = ["PlotResult", "plot"]

Style = Literal["ATLAS", "CMS", "LHCb2", "ALICE", "ROOT", "plain"]
_DPI = 150


class PlotResult(ToolResult):
    """A figure of one or more histograms, as PNG and PDF."""

    plot: Artifact = Field(description="The plot artifact (kind 'plot'): plot.png (primary) and plot.pdf.")
    n_histograms: int = Field(description="Histograms drawn.")
    x_label: str = Field(description="x-axis label, with units.")
    y_label: str = Field(description="y-axis label (or colour-bar label for a 2-D histogram).")
    style: Style = Field(description="The mplhep style used.")


@tool(category="data")
def plot(
    histograms: Annotated[
        list[HistogramRef],
        Field(min_length=1, max_length=8, description="Ids of 1 to 8 histogram artifacts (1-D overlaid, "
              "or a single 2-D histogram)."),
    ],
    labels: Annotated[
        list[str] | None, Field(json_schema_extra={"x-derived": True},
            description="Legend entries, one per histogram (None: from the fields).")
    ] = None,
    title: Annotated[str | None, Field(max_length=200, description="Figure title (None: no title).")] = None,
    log_y: Annotated[bool, Field(description="Logarithmic y axis (2-D: logarithmic colour scale).")] = False,
    density: Annotated[bool, Field(description="Normalise each histogram to unit area (shapes).")] = False,
    style: Annotated[Style, Field(description="mplhep experiment style, or 'plain' matplotlib.")] = "ATLAS",
    *,
    ctx: ToolContext,
) -> PlotResult:
    """Plot histograms with an experiment style and save the figure as PNG and PDF.

    Overlays up to eight 1-D histograms with a legend, or draws one 2-D histogram as a colour map;
    axis labels carry the histograms' units.
    """
    if labels is not None and len(labels) != len(histograms):
        raise ToolInputError.for_param(
            "plot", "labels", labels, f"must have one entry per histogram ({len(histograms)}), "
            f"got {len(labels)}. Give one label per histogram or leave labels unset.",
        )
    artifacts = [ctx.artifact(h, "histograms") for h in histograms]
    loaded = [load_histogram(a.path) for a in artifacts]
    _check_dimensions(loaded, histograms)
    names = labels or default_labels(artifacts)
    with _style(style):
        figure, y_label = draw(loaded, names, artifacts[0].metadata, title, log_y, density)
    pending = ctx.new_artifact("plot")
    save_figure(figure, pending.directory)
    x_label = loaded[0].axes[0].label
    summary = f"plot of {len(loaded)} histogram(s) ({x_label}), {style} style"
    meta = {"histograms": histograms, "labels": names, "title": title, "log_y": log_y,
            "density": density, "style": style, "x_label": x_label, "y_label": y_label}
    artifact = pending.finish("plot.png", summary, meta)
    return PlotResult(plot=artifact, n_histograms=len(loaded), x_label=x_label, y_label=y_label, style=style)


def _check_dimensions(loaded: list[Any], ids: list[str]) -> None:
    dims = [h.ndim for h in loaded]
    if any(d == 2 for d in dims) and len(dims) > 1:
        raise ToolInputError.for_param(
            "plot", "histograms", ids, "mix a 2-D histogram with others; a 2-D histogram is drawn "
            "alone. Plot it in its own call.",
        )


def default_labels(artifacts: list[Artifact]) -> list[str]:
    """Legend entries: the field names, or the source ids when every histogram shows one field."""
    fields = [str(a.metadata.get("field", a.id)) for a in artifacts]
    if len(set(fields)) == len(fields):
        return fields
    return [f"{field} ({a.metadata.get('source', a.id)})" for field, a in zip(fields, artifacts, strict=True)]


def _style(style: str) -> Any:
    import logging

    import matplotlib as mpl
    import mplhep

    # experiment styles ask for fonts (e.g. 'cursive') a server rarely has; the fallback is fine
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    return mpl.style.context("default" if style == "plain" else getattr(mplhep.style, style))


def draw(
    loaded: list[Any], names: list[str], meta: dict[str, Any], title: str | None, log_y: bool, density: bool
) -> tuple[Any, str]:
    """The figure (not attached to pyplot, so no global state) and its y label."""
    from matplotlib.figure import Figure

    figure = Figure()
    ax = figure.subplots()
    if loaded[0].ndim == 2:
        y_label = _draw_2d(ax, loaded[0], log_y, density)
    else:
        y_label = _draw_1d(ax, loaded, names, str(meta.get("unit") or ""), log_y, density)
        ax.legend()
    ax.set_xlabel(loaded[0].axes[0].label)
    if title:
        ax.set_title(title)
    return figure, y_label


def _draw_1d(ax: Any, loaded: list[Any], names: list[str], unit: str, log_y: bool, density: bool) -> str:
    import mplhep

    for h, name in zip(loaded, names, strict=True):
        values, errors = h.values(), np.sqrt(h.variances())
        if density:
            scale = _area(values, np.diff(h.axes[0].edges))
            values, errors = values * scale, errors * scale
        mplhep.histplot(values, bins=h.axes[0].edges, yerr=errors, ax=ax, label=name)
    if log_y:
        ax.set_yscale("log")
    y_label = ("Normalised entries" + (f" / {unit}" if unit else "")) if density else "Entries / bin"
    ax.set_ylabel(y_label)
    return y_label


def _draw_2d(ax: Any, h: Any, log_y: bool, density: bool) -> str:
    from matplotlib.colors import LogNorm

    x_edges, y_edges = h.axes[0].edges, h.axes[1].edges
    values = h.values()
    if density:
        values = values * _area(values, np.outer(np.diff(x_edges), np.diff(y_edges)))
    label = "Normalised entries" if density else "Entries / cell"
    positive = values[values > 0]
    norm = LogNorm(vmin=positive.min(), vmax=positive.max()) if log_y and positive.size else None
    # not mplhep.hist2dplot: it registers the figure with pyplot (plt.sca), which never frees it
    mesh = ax.pcolormesh(x_edges, y_edges, np.ma.masked_less_equal(values, 0).T, norm=norm)
    ax.figure.colorbar(mesh, ax=ax, label=label)
    ax.set_ylabel(h.axes[1].label)
    return label


def _area(values: np.ndarray, widths: np.ndarray) -> float | np.ndarray:
    """The factor making ``values`` a density: 1 / (sum × bin width), 0 for an empty histogram."""
    total = float(values.sum())
    return 1.0 / (total * widths) if total > 0 else np.zeros_like(widths)


def save_figure(figure: Any, directory: Path) -> None:
    """Write plot.png and plot.pdf without dates or version strings (reproducible bytes)."""
    options = {"bbox_inches": "tight", "pad_inches": 0.1}
    figure.savefig(directory / "plot.png", dpi=_DPI, metadata={"Software": None}, **options)
    figure.savefig(directory / "plot.pdf", metadata={"CreationDate": None, "Producer": None}, **options)
