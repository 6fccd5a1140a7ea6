r"""Figures of ``sbi_diagnostics``: SBC rank histograms, the TARP coverage curve, the posterior predictive
check and the L-C2ST null distribution. Each function returns a matplotlib ``Figure`` (no pyplot state) for
:func:`tools.tag._metrics.save_png`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from physagent.tools.sbi._calibration import SbcMarginal, TarpCheck
from physagent.tools.sbi._lc2st import Lc2stCheck
from physagent.tools.sbi._predictive import CENTRAL, PredictiveCheck

__all__ = ["MAX_PANELS", "plot_lc2st", "plot_predictive", "plot_sbc", "plot_tarp"]

MAX_PANELS = 24  # panels of one figure; further parameters or observables are listed in the result only
BAND = 0.99  # the binomial band drawn around the expected rank-histogram count


def _grid(n: int, width: float = 3.0, height: float = 2.4) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    columns = min(n, 4)
    rows = math.ceil(n / columns)
    figure = Figure(figsize=(width * columns, height * rows + 0.4))
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return figure, list(axes[:n])


def plot_sbc(marginals: list[SbcMarginal], title: str) -> Any:
    """Rank histogram of each parameter with the expected count and its ±99 % binomial band."""
    from scipy.stats import binom

    shown = marginals[:MAX_PANELS]
    figure, axes = _grid(len(shown))
    for ax, marginal in zip(axes, shown, strict=True):
        m, n_ranks = len(marginal.ranks), marginal.n_samples + 1
        bins = max(min(20, m // 10, n_ranks), 2)
        edges = np.unique(np.round(np.linspace(0, n_ranks, bins + 1)))  # whole ranks per bin
        counts, _ = np.histogram(marginal.ranks, bins=edges)
        p = np.diff(edges) / n_ranks
        lo, hi = binom.ppf((1 - BAND) / 2, m, p), binom.ppf((1 + BAND) / 2, m, p)
        ax.fill_between(edges, np.append(lo, lo[-1]), np.append(hi, hi[-1]), step="post", color="grey",
                        alpha=0.3, lw=0, label=f"{100 * BAND:g} % band")
        ax.stairs(m * p, edges, baseline=None, color="grey", ls="--", lw=0.8)
        ax.stairs(counts, edges, baseline=None, color="C1" if marginal.verdict != "calibrated" else "C0", lw=1.5)
        ax.set_title(f"{marginal.name}: {marginal.verdict} (KS p = {marginal.ks_pvalue:.2g})", fontsize=8)
        ax.set_xlabel(f"rank among {marginal.n_samples} posterior samples", fontsize=8)
        ax.set_ylabel("pseudo-experiments", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    _title(figure, title + (f" (first {MAX_PANELS} of {len(marginals)} parameters)"
                            if len(marginals) > MAX_PANELS else ""))
    return figure


def plot_tarp(tarp: TarpCheck, title: str) -> Any:
    """Expected coverage probability against credibility level, with the diagonal of a calibrated posterior."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.6, 4.4))
    ax = figure.subplots()
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8, label="calibrated")
    ax.plot(tarp.alpha, tarp.ecp, color="C0", lw=1.5, label=f"TARP: ATC {tarp.atc:+.3f}, KS p {tarp.ks_pvalue:.2g}")
    ax.text(0.05, 0.9, "under-confident", transform=ax.transAxes, fontsize=7, color="grey")
    ax.text(0.6, 0.08, "over-confident", transform=ax.transAxes, fontsize=7, color="grey")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("credibility level α")
    ax.set_ylabel("expected coverage")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, 0.85))
    _title(figure, f"{title}: {tarp.verdict}")
    return figure


def plot_predictive(check: PredictiveCheck, title: str) -> Any:
    """Predictive histogram of each observable with x_o marked and its central 99 % shaded; flagged ones first."""
    order = sorted(range(len(check.observables)), key=lambda j: not check.observables[j].flagged)[:MAX_PANELS]
    figure, axes = _grid(len(order))
    for ax, j in zip(axes, order, strict=True):
        row, draws = check.observables[j], check.x_predictive[:, j]
        lo, hi = min(draws.min(), row.x_o), max(draws.max(), row.x_o)
        ax.hist(draws, bins=30, range=(lo, hi + 1e-9 * max(abs(hi), 1.0)), histtype="stepfilled", alpha=0.5,
                color="C0")
        ax.axvspan(row.low, row.high, color="grey", alpha=0.15, lw=0)
        ax.axvline(row.x_o, color="C3" if row.flagged else "k", lw=1.5)
        ax.set_title(f"{row.name}: quantile {row.quantile:.3f}" + (" — flagged" if row.flagged else ""), fontsize=8)
        ax.tick_params(labelsize=7)
    _title(figure, f"{title}: x_o (line) against the posterior predictive, central {100 * CENTRAL:g} % shaded"
           + (f" ({len(order)} of {len(check.observables)} observables)" if len(order) < len(check.observables)
              else ""))
    return figure


def plot_lc2st(check: Lc2stCheck, title: str) -> Any:
    """The L-C2ST statistic at x_o against its null distribution from permuted labels."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.8, 3.4))
    ax = figure.subplots()
    ax.hist(check.null_statistics, bins=20, histtype="stepfilled", alpha=0.5, color="grey",
            label=f"null ({len(check.null_statistics)} permutations)")
    ax.axvline(check.statistic, color="C3" if check.p_value < 0.05 else "C0", lw=1.5,
               label=f"at x_o: p = {check.p_value:.2g}")
    ax.set_xlabel("L-C2ST statistic (MSE of class probability from ½)")
    ax.set_ylabel("trials")
    ax.legend(fontsize=7)
    _title(figure, title)
    return figure


def _title(figure: Any, text: str) -> None:
    figure.suptitle(text, fontsize=9)
    figure.tight_layout()
