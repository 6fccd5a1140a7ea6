r"""``plot``: draw histogram artifacts as in a paper, with matplotlib and mplhep (PNG + PDF).

Up to eight 1-D histograms share one set of axes, or one 2-D histogram is drawn as a colour map.
- Style: neutral by default (``mplhep.style.plothist``); an experiment's style (ATLAS, CMS, LHCb2,
  ALICE, ROOT) on request — the style only, never the experiment's name.
- Label (mplhep ``exp_label``): "Simulation", "Simulation Private work", "Private work" or none, with
  "L fb⁻¹ (√s TeV)" on the right; √s and L come from the histograms' samples unless given.
- Legend: the samples' names ("Drell–Yan μμ, Pythia8, 13.6 TeV", a merged sample's name, a file's
  stem), not the fields; ``labels`` overrides.
- Uncertainties: √(Σw²) per bin, as a shaded band (``stat_band``) or error bars; ``ratio=True`` adds a
  panel of each histogram divided by the first, with the first's relative band around 1.
- y axis: "Events / bin" for luminosity-normalised histograms (σ·L), "Entries / bin" otherwise;
  ``density=True`` normalises each histogram to unit area, so the y axis is in 1/[unit of x].

No pyplot figure is opened (figures are ``matplotlib.figure.Figure`` objects; ``exp_label`` is called
with ``scilocator_adjust=False``, which would otherwise touch pyplot). The files are reproducible: no
creation date or software version is written into the PNG or the PDF, so identical calls give identical
hashes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from physagent.tools._artifacts import Artifact, HistogramRef
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import ToolResult, tool
from physagent.tools.data._normalise import sample_info
from physagent.tools.data.histograms import _LUMI_NAMES, load_histogram

__all__ = ["ExperimentLabel", "PlotResult", "Style", "draw", "experiment_label", "plot", "save_figure",
           "style_context"]

Style = Literal["neutral", "ATLAS", "CMS", "LHCb2", "ALICE", "ROOT", "plain"]
ExperimentLabel = Literal["simulation", "simulation_private_work", "private_work", "none"]
_DPI = 150
# what a request says for label='none' (agent argument hygiene keeps only stated values)
_NO_LABEL = dict.fromkeys(("no label", "without a label", "without any label", "no experiment label",
                           "without an experiment label", "without any experiment label",
                           "without the experiment label", "unlabelled"), "none")
_LLABELS = {"simulation": "Simulation", "simulation_private_work": "Simulation Private work",
            "private_work": "Private work", "none": None}


class PlotResult(ToolResult):
    """A figure of one or more histograms, as PNG and PDF."""

    plot: Artifact = Field(description="The plot artifact (kind 'plot'): plot.png (primary) and plot.pdf.")
    n_histograms: int = Field(description="Histograms drawn.")
    x_label: str = Field(description="x-axis label, with units.")
    y_label: str = Field(description="y-axis label (or colour-bar label for a 2-D histogram).")
    style: Style = Field(description="The mplhep style used.")
    legend: list[str] = Field(description="Legend entries, one per histogram (the sample names).")
    experiment_label: str | None = Field(description="The label drawn, e.g. 'Simulation | 10 fb⁻¹ (13.6 TeV)'.")
    ratio: bool = Field(description="Whether a ratio panel (each / the first histogram) was drawn.")


# "on a log scale" states log_y: a plot step the loop adds (the model left it out) still gets it
_LOG_PHRASES = dict.fromkeys(("log scale", "log-scale", "logarithmic", "log y", "log-y", "log axis", "log plot",
                              "log-log"), True)


@tool(category="data", version="2")  # v2: paper style, label, ratio, band (issue 18)
def plot(
    histograms: Annotated[
        list[HistogramRef],
        Field(min_length=1, max_length=8, description="Ids of 1 to 8 histogram artifacts (1-D overlaid, "
              "or a single 2-D histogram); with ratio, the first is the reference."),
    ],
    labels: Annotated[
        list[str] | None, Field(json_schema_extra={"x-derived": True},
            description="Legend entries, one per histogram (None: the samples' names).")
    ] = None,
    title: Annotated[str | None, Field(max_length=200, description="Figure title (None: no title).")] = None,
    log_y: Annotated[bool, Field(description="Logarithmic y axis (2-D: logarithmic colour scale).",
                                 json_schema_extra={"x-phrases": _LOG_PHRASES})] = False,
    density: Annotated[bool, Field(description="Normalise each histogram to unit area (shapes).")] = False,
    style: Annotated[Style, Field(description="'neutral' (mplhep plothist), an experiment's mplhep style "
                                  "(ATLAS, CMS, LHCb2, ALICE, ROOT), or 'plain' matplotlib.")] = "neutral",
    label: Annotated[ExperimentLabel, Field(description="Label at the top left: 'simulation', "
                                            "'simulation_private_work', 'private_work' or 'none'.",
                                            json_schema_extra={"x-phrases": _NO_LABEL})] = "simulation",
    sqrt_s_tev: Annotated[float | None, Field(gt=0, description="√s in TeV for the label (None: from the "
                                              "histograms' samples).")] = None,
    luminosity_fb: Annotated[float | None, Field(gt=0, description="Integrated luminosity in fb⁻¹ for the label "
                                                 "(None: from luminosity-normalised histograms).",
                                                 json_schema_extra={"x-names": _LUMI_NAMES})] = None,
    ratio: Annotated[bool, Field(description="Add a ratio panel: each histogram divided by the first.")] = False,
    stat_band: Annotated[bool, Field(description="Shade the statistical uncertainty √(Σw²) as a band "
                                     "(False: error bars).",
                                     json_schema_extra={"x-phrases": {"error bars": False}})] = True,
    *,
    ctx: ToolContext,
) -> PlotResult:
    """Plot histograms as in a paper (sample legend, Simulation label, ratio panel) as PNG and PDF.

    Overlays up to eight 1-D histograms with a legend naming the samples, or draws one 2-D histogram
    as a colour map; axis labels carry the histograms' units.
    """
    if labels is not None and len(labels) != len(histograms):
        raise ToolInputError.for_param(
            "plot", "labels", labels, f"must have one entry per histogram ({len(histograms)}), "
            f"got {len(labels)}. Give one label per histogram or leave labels unset.",
        )
    artifacts = [ctx.artifact(h, "histograms") for h in histograms]
    loaded = [load_histogram(a.path) for a in artifacts]
    _check_dimensions(loaded, histograms, ratio)
    names = labels or default_labels(ctx, artifacts)
    options = _Options(title, log_y, density, stat_band, ratio, _y_kind(artifacts))
    energy = sqrt_s_tev if sqrt_s_tev is not None else _common(artifacts, "sqrt_s_tev")
    lumi = luminosity_fb if luminosity_fb is not None else _common(artifacts, "luminosity_fb")
    with style_context(style):
        figure, y_label = draw(loaded, names, artifacts[0].metadata, options)
        text = experiment_label(figure.axes[0], label, energy, lumi)
    pending = ctx.new_artifact("plot")
    save_figure(figure, pending.directory)
    x_label = loaded[0].axes[0].label
    summary = f"plot of {len(loaded)} histogram(s) ({x_label}), {style} style" + (", ratio panel" if ratio else "")
    meta = {"histograms": histograms, "labels": names, "title": title, "log_y": log_y, "density": density,
            "style": style, "x_label": x_label, "y_label": y_label, "label": text, "ratio": ratio,
            "stat_band": stat_band, "sqrt_s_tev": energy, "luminosity_fb": lumi}
    artifact = pending.finish("plot.png", summary, meta)
    return PlotResult(plot=artifact, n_histograms=len(loaded), x_label=x_label, y_label=y_label, style=style,
                      legend=names, experiment_label=text, ratio=ratio)


@dataclass(frozen=True)
class _Options:
    """How to draw: title, scales, normalisation, band or bars, ratio panel, y-axis wording."""

    title: str | None
    log_y: bool
    density: bool
    stat_band: bool
    ratio: bool
    y_kind: str  # "Events" (luminosity-normalised) or "Entries"


def _check_dimensions(loaded: list[Any], ids: list[str], ratio: bool) -> None:
    dims = [h.ndim for h in loaded]
    if any(d == 2 for d in dims) and len(dims) > 1:
        raise ToolInputError.for_param(
            "plot", "histograms", ids, "mix a 2-D histogram with others; a 2-D histogram is drawn "
            "alone. Plot it in its own call.",
        )
    if ratio and (len(loaded) < 2 or dims[0] != 1):
        raise ToolInputError.for_param(
            "plot", "ratio", ratio, "needs at least two 1-D histograms (the first is the reference). "
            "Add a histogram to compare, or leave ratio unset.")
    if ratio and any(not np.array_equal(h.axes[0].edges, loaded[0].axes[0].edges) for h in loaded[1:]):
        raise ToolInputError.for_param(
            "plot", "ratio", ratio, "needs histograms with the same bins as the first. Fill them with the "
            "same bins, range_min and range_max.")


def default_labels(ctx: ToolContext, artifacts: list[Artifact]) -> list[str]:
    """Legend entries: the samples' names; with the field's label when samples repeat, then the id."""
    samples = [str(a.metadata.get("sample") or sample_info(ctx, a).label) for a in artifacts]
    if len(set(samples)) == len(samples):
        return samples
    with_field = [f"{s}: {a.metadata.get('label') or a.metadata.get('field', '')}"
                  for s, a in zip(samples, artifacts, strict=True)]
    if len(set(with_field)) == len(with_field):
        return with_field
    return [f"{s} ({a.id})" for s, a in zip(with_field, artifacts, strict=True)]


def _common(artifacts: list[Artifact], key: str) -> float | None:
    """The histograms' shared value of ``key`` (None when one lacks it or they differ)."""
    values = {a.metadata.get(key) for a in artifacts}
    value = values.pop() if len(values) == 1 else None
    return float(value) if value is not None else None


def _y_kind(artifacts: list[Artifact]) -> str:
    return "Events" if all(a.metadata.get("luminosity_fb") for a in artifacts) else "Entries"


@contextmanager
def style_context(style: str) -> Iterator[None]:
    """matplotlib rc settings of a style: 'neutral' = mplhep plothist, an experiment's, or 'plain'."""
    import logging

    import matplotlib as mpl
    import mplhep

    # experiment styles ask for fonts (e.g. 'cursive') a server rarely has; the fallback is fine
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    chosen = {"plain": "default", "neutral": mplhep.style.plothist}.get(style) or getattr(mplhep.style, style)
    with mpl.style.context(chosen):
        yield


def experiment_label(ax: Any, label: str, sqrt_s_tev: float | None, luminosity_fb: float | None) -> str | None:
    """Draw 'Simulation' (etc.) and 'L fb⁻¹ (√s TeV)' on ``ax`` without touching pyplot; returns the text."""
    import mplhep

    llabel = _LLABELS[label]
    if llabel is None:
        return None
    right = " ".join(part for part in (
        f"{luminosity_fb:g} fb$^{{-1}}$" if luminosity_fb else "", f"({sqrt_s_tev:g} TeV)" if sqrt_s_tev else ""
    ) if part)
    mplhep.label.exp_label(exp="", llabel=llabel, rlabel=right, ax=ax, scilocator_adjust=False)
    return llabel + (f" | {right.replace('$^{-1}$', '⁻¹')}" if right else "")


def draw(loaded: list[Any], names: list[str], meta: dict[str, Any], options: _Options) -> tuple[Any, str]:
    """The figure (not attached to pyplot, so no global state) and its y label."""
    from matplotlib.figure import Figure

    figure = Figure()
    if options.ratio:
        ax, ratio_ax = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05})
    else:
        ax, ratio_ax = figure.subplots(), None
    if loaded[0].ndim == 2:
        y_label = _draw_2d(ax, loaded[0], options)
    else:
        y_label = _draw_1d(ax, loaded, names, str(meta.get("unit") or ""), options)
        ax.legend()
    if ratio_ax is not None:
        _draw_ratio(ratio_ax, loaded, options)
    (ratio_ax or ax).set_xlabel(loaded[0].axes[0].label)
    if options.title:
        figure.suptitle(options.title)  # not ax.set_title: the experiment label sits just above the axes
    return figure, y_label


def _colours() -> list[str]:
    import matplotlib as mpl

    return list(mpl.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"]))


def _draw_1d(ax: Any, loaded: list[Any], names: list[str], unit: str, options: _Options) -> str:
    import mplhep

    colours = _colours()
    for k, (h, name) in enumerate(zip(loaded, names, strict=True)):
        values, errors = _scaled(h, options.density)
        colour, edges = colours[k % len(colours)], h.axes[0].edges
        if options.stat_band:
            mplhep.histplot(values, bins=edges, yerr=False, ax=ax, label=name, color=colour, histtype="step")
            ax.stairs(values + errors, edges, baseline=values - errors, fill=True, alpha=0.25, color=colour, lw=0)
        else:
            mplhep.histplot(values, bins=edges, yerr=errors, ax=ax, label=name, color=colour)
    if options.log_y:
        ax.set_yscale("log")
    per_area = "Normalised entries" + (f" / {unit}" if unit else "")
    y_label = per_area if options.density else f"{options.y_kind} / bin"
    y_label += "" if options.log_y else _power_in_label(ax)
    ax.set_ylabel(y_label)
    return y_label


def _power_in_label(ax: Any) -> str:
    """Write a large or small y scale into the axis label (' [×10⁵]') instead of matplotlib's offset text,
    which sits where the Simulation label goes (mplhep only moves it through pyplot)."""
    import matplotlib as mpl
    from matplotlib.ticker import FuncFormatter

    top = max(abs(limit) for limit in ax.get_ylim())
    low_limit, high_limit = mpl.rcParams["axes.formatter.limits"]
    power = int(np.floor(np.log10(top))) if top > 0 else 0
    if low_limit < power < high_limit:
        return ""
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value / 10.0**power:g}"))
    return f" [×10$^{{{power}}}$]"


def _scaled(h: Any, density: bool) -> tuple[np.ndarray, np.ndarray]:
    """In-range values and √(Σw²), per unit area when ``density``."""
    values, errors = h.values(), np.sqrt(h.variances())
    if density:
        scale = _area(values, np.diff(h.axes[0].edges))
        values, errors = values * scale, errors * scale
    return values, errors


def _draw_ratio(ax: Any, loaded: list[Any], options: _Options) -> None:
    """Each histogram / the first, with the first's relative uncertainty as a band around 1."""
    import mplhep

    colours = _colours()
    reference, reference_errors = _scaled(loaded[0], options.density)
    edges = loaded[0].axes[0].edges
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(reference > 0, reference_errors / reference, 0.0)
        ax.stairs(1 + relative, edges, baseline=1 - relative, fill=True, alpha=0.25, color=colours[0], lw=0)
        for k, h in enumerate(loaded[1:], start=1):
            values, errors = _scaled(h, options.density)
            ratio = np.where(reference > 0, values / reference, np.nan)
            spread = np.where(reference > 0, errors / reference, np.nan)
            mplhep.histplot(ratio, bins=edges, yerr=spread, ax=ax, color=colours[k % len(colours)],
                            histtype="errorbar")
    ax.axhline(1.0, color="0.5", lw=0.8)
    ax.set_ylabel("Ratio")


def _draw_2d(ax: Any, h: Any, options: _Options) -> str:
    from matplotlib.colors import LogNorm

    x_edges, y_edges = h.axes[0].edges, h.axes[1].edges
    values = h.values()
    if options.density:
        values = values * _area(values, np.outer(np.diff(x_edges), np.diff(y_edges)))
    label = "Normalised entries" if options.density else f"{options.y_kind} / cell"
    positive = values[values > 0]
    norm = LogNorm(vmin=positive.min(), vmax=positive.max()) if options.log_y and positive.size else None
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
