r"""What every anomaly-search method returns: per-event scores, test-set metrics, and what it read.

Each method (CWoLa, CATHODE, the autoencoder, the idealized and supervised references) ends with
:func:`write_scores`, which

- writes a ``table`` artifact ``scores.parquet`` with one row per observed data event, in the order of
  the dataset's ``data.parquet``: ``row``, ``mjj_gev``, ``score`` (larger = more anomalous) and
  ``in_signal_region`` (the m_jj window the method searched); ``test_scores.parquet`` next to it holds
  the scores of the labelled test set with its ``label``, so every metric can be recomputed;
- scores the test set with :func:`tools.anomaly._evaluation.evaluate_scores` (the only reader of truth):
  AUC, SIC = ε_S/√ε_B at ε_S = 0.2, and the maximum SIC;
- draws a ``plot`` artifact ``roc_sic.png``: background rejection 1/ε_B and SIC against ε_S;
- returns :class:`AnomalyScores`, which names the method, whether it is a reference that may read what a
  search may not (``is_reference``), and ``inputs_seen``: exactly which tables and columns it read.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import Field

from physagent.tools._artifacts import Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolRuntimeError
from physagent.tools._registry import ToolResult
from physagent.tools.anomaly._evaluation import MIN_BACKGROUND, SIGNAL_EFFICIENCY, Metrics, evaluate_scores
from physagent.tools.anomaly._search_data import MASS, TRUTH, SearchData, Windows

__all__ = ["AnomalyScores", "plain_log_ticks", "plot_roc_sic", "save_png", "write_scores"]

_DPI = 120
_MAX_POINTS = 400  # ROC points drawn per curve: the full ROC of 10⁵ events makes a slow, heavy PDF
# no minor ticks: drawing them was most of the time to render
_RC = {"font.size": 10, "legend.fontsize": 8, "xtick.minor.visible": False, "ytick.minor.visible": False}


class AnomalyScores(ToolResult):
    """Per-event anomaly scores of one method, their test-set performance, and what the method read."""

    method: str = Field(description="The method, e.g. 'cwola', 'cathode', 'autoencoder', 'idealized', 'supervised'.")
    is_reference: bool = Field(description="True for a reference that reads what a real search cannot (the "
                                           "reference background or truth labels): an upper bound, not a search.")
    scores: Artifact = Field(description="Table artifact scores.parquet, one row per observed data event: row, "
                                         "mjj_gev, score (larger = more anomalous), in_signal_region; "
                                         "test_scores.parquet holds the test-set scores with their labels.")
    plot: Artifact = Field(description="Plot artifact roc_sic.png: background rejection 1/ε_B and "
                                       "SIC = ε_S/√ε_B against signal efficiency ε_S on the test set.")
    model: Artifact | None = Field(default=None, description="Model artifact, when the method saves one.")
    auc: float = Field(description="Area under the ROC curve on the labelled test set (0.5 = random).")
    sic_at_signal_eff_0p2: float = Field(description="Significance improvement ε_S/√ε_B at ε_S = 0.2 on the test "
                                                     "set (1 = no gain over no cut); it counts every cut, so on a "
                                                     "small test background it can exceed max_sic.")
    sic_signal_efficiency: float = Field(
        default=SIGNAL_EFFICIENCY, description="The signal efficiency ε_S of the quoted SIC working point (0.2).")
    max_sic: float | None = Field(description=f"Largest SIC on the test set where ≥ {MIN_BACKGROUND} test "
                                              "background events pass (None if no cut leaves that many); a "
                                              "tighter cut's SIC rests on too few events to count.")
    n_test_signal: int = Field(description="Signal events in the test set.")
    n_test_background: int = Field(description="Background events in the test set.")
    signal_region_gev: list[float] = Field(description="The m_jj signal region [low, high) in GeV the method "
                                                       "searched (in_signal_region of the scores table).")
    n_data_events_seen: int = Field(description="Observed data events the method learnt from (e.g. signal region "
                                                "and sidebands); any others were only scored.")
    inputs_seen: list[str] = Field(description="Exactly which tables and columns the method read. Only "
                                               "reference methods may name the reference background or truth.")
    notes: str = Field(default="", description="What to know about this run (settings, warnings).")


Result = TypeVar("Result", bound=AnomalyScores)


def write_scores(
    ctx: ToolContext, data: SearchData, scores_data: np.ndarray, scores_test: np.ndarray, method: str,
    inputs_seen: list[str], *, n_data_events_seen: int, is_reference: bool = False, model: Artifact | None = None,
    notes: str = "", windows: Windows | None = None, label: str | None = None,
    result_type: type[Result] = AnomalyScores,  # type: ignore[assignment]  # (mypy: a TypeVar default)
    **extra: Any,
) -> Result:
    """Write the scores table and the ROC/SIC plot, evaluate on the test set, and build the result.

    Args:
        ctx: the calling tool's context.
        data: the dataset the method ran on.
        scores_data: one score per row of ``data.data`` (larger = more anomalous).
        scores_test: one score per row of ``data.test``, from the same method.
        method: short method name ('cwola', …).
        inputs_seen: what the method read, e.g. ``["data: mj1_gev, … (sidebands vs signal region)"]``.
        n_data_events_seen: observed data events the method read.
        is_reference: the method read the reference background or truth labels.
        model: a model artifact the method wrote, if any.
        notes: free text for the result.
        windows: the m_jj windows searched (default: the dataset's).
        label: legend name in the plot (default: ``method``).
        result_type: :class:`AnomalyScores` or a subclass; ``extra`` fills its additional fields.

    Returns:
        The result, of ``result_type``.

    Raises:
        ToolRuntimeError: a score is NaN or infinite, or the counts do not match the tables.
    """
    windows = windows or data.windows
    scores_data, scores_test = _checked(ctx.tool, scores_data, data.data), _checked(ctx.tool, scores_test, data.test)
    metrics = evaluate_scores(scores_test, data)
    meta = {"method": method, "dataset": data.artifact.id, "is_reference": is_reference, "inputs_seen": inputs_seen,
            **windows.as_dict(), "metrics": metrics.as_dict()}
    table = _write_table(ctx, data, scores_data, scores_test, windows, method, meta)
    plot = _write_plot(ctx, data, [(label or method, metrics)], method, meta)
    return result_type(
        method=method, is_reference=is_reference, scores=table, plot=plot, model=model, auc=metrics.auc,
        sic_at_signal_eff_0p2=metrics.sic_at_signal_eff_0p2,
        max_sic=None if np.isnan(metrics.max_sic) else metrics.max_sic,
        n_test_signal=metrics.n_signal, n_test_background=metrics.n_background,
        signal_region_gev=list(windows.signal_region_gev), n_data_events_seen=int(n_data_events_seen),
        inputs_seen=list(inputs_seen), notes=notes, **extra,
    )


def _checked(tool: str, scores: np.ndarray, table: dict[str, np.ndarray]) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    expected = len(table[MASS])
    if len(scores) != expected:
        raise ToolRuntimeError(f"{tool}: produced {len(scores):,} scores for {expected:,} events; this is a bug "
                               "in the method, please report it.")
    if not np.all(np.isfinite(scores)):
        raise ToolRuntimeError(f"{tool}: {int(np.sum(~np.isfinite(scores))):,} scores are NaN or infinite (the "
                               "training diverged); try another seed or fewer epochs.")
    return scores


def _write_table(ctx: ToolContext, data: SearchData, scores_data: np.ndarray, scores_test: np.ndarray,
                 windows: Windows, method: str, meta: dict[str, Any]) -> Artifact:
    import awkward as ak

    from physagent.tools._io import write_parquet

    mjj = np.asarray(data.data[MASS], dtype=np.float64)
    pending = ctx.new_artifact("table")
    write_parquet(ak.zip({"row": np.arange(len(mjj), dtype=np.int64), "mjj_gev": mjj,
                          "score": scores_data, "in_signal_region": windows.in_signal_region(mjj)}, depth_limit=1),
                  pending.directory / "scores.parquet")
    write_parquet(ak.zip({"mjj_gev": np.asarray(data.test[MASS], dtype=np.float64), "score": scores_test,
                          TRUTH: np.asarray(data.test[TRUTH]).astype(np.int8)}, depth_limit=1),
                  pending.directory / "test_scores.parquet")
    lo, hi = windows.signal_region_gev
    summary = (f"{method} anomaly scores of {len(mjj):,} data events of {data.artifact.id} "
               f"(signal region {lo:g}–{hi:g} GeV; test AUC {meta['metrics']['auc']:.3f})")
    return pending.finish("scores.parquet", summary, meta)


def _write_plot(ctx: ToolContext, data: SearchData, curves: list[tuple[str, Metrics]], method: str,
                meta: dict[str, Any]) -> Artifact:
    pending = ctx.new_artifact("plot")
    figure = plot_roc_sic(curves, f"{method} on {data.artifact.summary}")
    save_png(figure, pending.directory / "roc_sic.png")
    return pending.finish("roc_sic.png", f"ROC and SIC of {method} on the test set of {data.artifact.id}", meta)


def plot_roc_sic(curves: list[tuple[str, Metrics]], title: str) -> Any:
    """1/ε_B (log) and SIC against ε_S for (label, metrics) pairs, random guessing dotted; returns the Figure."""
    import mplhep
    from matplotlib import style
    from matplotlib.figure import Figure

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # styles ask for fonts servers lack
    with style.context([mplhep.style.ATLAS, _RC]):
        figure = Figure(figsize=(10.0, 4.2))
        roc_ax, sic_ax = figure.subplots(1, 2)
        grid = np.linspace(0.005, 1.0, 200)
        for name, m in curves:
            eps_s, eps_b = _thinned(m.signal_efficiency, m.background_efficiency)
            keep = eps_b * max(m.n_background, 1) >= 1  # at least one background event passes
            roc_ax.plot(eps_s[keep], 1.0 / eps_b[keep], label=f"{name}: AUC {m.auc:.3f}")
            usable = eps_b * m.n_background >= MIN_BACKGROUND
            sic_ax.plot(eps_s[usable], eps_s[usable] / np.sqrt(eps_b[usable]),
                        label=f"{name}: max SIC {m.max_sic:.2f}")
        roc_ax.plot(grid, 1.0 / grid, ls=":", color="grey", label="random")
        sic_ax.plot(grid, np.sqrt(grid), ls=":", color="grey", label="random")
        roc_ax.set_yscale("log")
        plain_log_ticks(roc_ax)
        roc_ax.set_ylabel(r"Background rejection $1/\epsilon_B$")
        sic_ax.set_ylabel(r"SIC = $\epsilon_S/\epsilon_B^{1/2}$")
        sic_ax.axhline(1.0, color="grey", lw=0.6)
        roc_ax.set_ylim(bottom=1.0)
        sic_ax.set_ylim(bottom=0.0)
        for ax in (roc_ax, sic_ax):
            ax.set_xlim(0.0, 1.0)
            ax.set_xlabel(r"Signal efficiency $\epsilon_S$")
            ax.axvline(SIGNAL_EFFICIENCY, color="grey", lw=0.6, ls="--")
            ax.legend(loc="upper right")
        figure.suptitle(title, fontsize=10)
        figure.tight_layout()
    return figure


def plain_log_ticks(ax: Any) -> None:
    """Tick labels 1, 10, 100 on a log y axis: mplhep's 10^n labels go through mathtext, most of a render's time."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def save_png(figure: Any, path: Path) -> None:
    """Write a PNG without a software stamp (the layout is fixed: one render), so identical figures give
    identical bytes."""
    figure.savefig(path, dpi=_DPI, metadata={"Software": None})


def _thinned(eps_s: np.ndarray, eps_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most :data:`_MAX_POINTS` points of the ROC, evenly spaced along it, ends kept."""
    if len(eps_s) <= _MAX_POINTS:
        return eps_s, eps_b
    keep = np.unique(np.linspace(0, len(eps_s) - 1, _MAX_POINTS).round().astype(int))
    return eps_s[keep], eps_b[keep]
