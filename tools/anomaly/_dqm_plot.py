r"""The monitoring figure: score per run with the threshold, and the worst run's histogram against its reference.

Top panel: χ²/ndf per run for every monitored histogram (log scale), the threshold, flagged runs (red
crosses), the reference runs (grey) and — when the data carries truth — the injected faults as coloured
bands. Bottom panel: the normalised histogram of the worst run, with the reference it was tested on and
its ±1σ band.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from physagent.tools.anomaly._dqm import CLEAN, Scores, Sequence, episodes

__all__ = ["monitoring_figure"]

_FAULT_COLOURS = ("tab:orange", "tab:purple", "tab:green", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


def monitoring_figure(sequence: Sequence, scores: Scores, n_reference: int, method: str, worst: tuple[int, int]
                      ) -> Any:
    """The figure (not attached to pyplot); ``worst`` is (run index, histogram index) of the bottom panel."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.0, 7.5))
    top, bottom = figure.subplots(2, 1, gridspec_kw={"height_ratios": [1.1, 1.0]})
    _scores_panel(top, sequence, scores, n_reference, method)
    _histogram_panel(bottom, sequence, scores, worst)
    figure.tight_layout()
    return figure


def _scores_panel(ax: Any, sequence: Sequence, scores: Scores, n_reference: int, method: str) -> None:
    runs = sequence.runs
    finite = scores.chi2_ndf[np.isfinite(scores.chi2_ndf)]
    ceiling = float(max(finite.max(), scores.threshold) * 2.0) if finite.size else scores.threshold * 2.0
    shown = np.where(np.isinf(scores.chi2_ndf), ceiling, scores.chi2_ndf)  # empty histograms: drawn at the top
    ax.axvspan(runs[0] - 0.5, runs[n_reference - 1] + 0.5, color="0.85", label="reference runs")
    _truth_bands(ax, sequence)
    for j, hist in enumerate(sequence.histograms):
        ax.plot(runs, shown[:, j], marker="o", markersize=3, linewidth=1, label=hist.name)
    flagged = scores.flagged
    if flagged.any():
        ax.plot(runs[flagged], np.nanmax(shown[flagged], axis=1), "x", color="red", markersize=9, mew=2,
                label=f"flagged ({int(flagged.sum())})")
    ax.axhline(scores.threshold, color="red", linestyle="--", label=f"threshold {scores.threshold:.2f}")
    ax.set_yscale("log")
    ax.ticklabel_format(axis="x", style="plain", useOffset=False)  # run numbers as they are, e.g. 355100
    ax.set_xlabel("run")
    ax.set_ylabel("χ²/ndf" + (" vs reconstruction" if method == "autoencoder" else " vs EWMA reference"))
    ax.set_title(f"data-quality monitoring ({'autoencoder' if method == 'autoencoder' else 'EWMA χ²'})")
    ax.legend(fontsize=7, ncol=3, loc="upper left")


def _truth_bands(ax: Any, sequence: Sequence) -> None:
    if sequence.truth is None:
        return
    labels = [sequence.truth[int(r)] for r in sequence.runs]
    kinds = sorted({label for label in labels if label != CLEAN})
    colours = {kind: _FAULT_COLOURS[i % len(_FAULT_COLOURS)] for i, kind in enumerate(kinds)}
    named: set[str] = set()
    for kind, runs in episodes(sequence.runs, labels):
        label = None if kind in named else f"true {kind}"
        named.add(kind)
        ax.axvspan(runs[0] - 0.5, runs[-1] + 0.5, color=colours[kind], alpha=0.25, label=label)


def _histogram_panel(ax: Any, sequence: Sequence, scores: Scores, worst: tuple[int, int]) -> None:
    k, j = worst
    hist = sequence.histograms[j]
    counts = hist.counts[k]
    total = counts.sum()
    shape = counts / total if total > 0 else counts
    edges = hist.edges if hist.edges is not None else np.arange(len(counts) + 1, dtype=float) - 0.5
    reference, sigma = scores.reference[j][k], scores.sigma[j][k]
    if np.isfinite(reference).all() and np.isfinite(sigma).all():  # no band for an empty run
        ax.fill_between(edges, np.append(reference - sigma, reference[-1] - sigma[-1]),
                        np.append(reference + sigma, reference[-1] + sigma[-1]), step="post", color="tab:blue",
                        alpha=0.3, label="reference ±1σ")
        ax.stairs(reference, edges, baseline=None, color="tab:blue", label="reference")
    errors = np.sqrt(counts) / total if total > 0 else np.zeros_like(counts)
    ax.errorbar(0.5 * (edges[1:] + edges[:-1]), shape, yerr=errors, fmt="o", color="black", markersize=3,
                label=f"run {sequence.runs[k]}")
    value = scores.chi2_ndf[k, j]
    text = "no entries" if np.isinf(value) else f"χ²/ndf = {value:.2f}"
    ax.set_title(f"worst run {sequence.runs[k]}: {hist.name} ({text})", fontsize=10)
    ax.set_xlabel(hist.label if hist.edges is not None else f"{hist.label} (index)")
    ax.set_ylabel("fraction of entries per bin")
    ax.legend(fontsize=8)
