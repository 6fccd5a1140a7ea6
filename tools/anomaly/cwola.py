r"""``cwola_hunt``: Classification Without Labels — a classifier of signal region vs sidebands in m_jj.

A resonance X → jj appears as a bump in m_jj whose jets differ from QCD jets. If the features x
(default :data:`~tools.anomaly._search_data.FEATURES`: m_j1, Δm_j, τ21 of both jets) do not depend on
m_jj for the background, the optimal classifier between the *mixed* samples "signal region" and
"sidebands" is a monotonic function of the signal-vs-background likelihood ratio
(Metodiev, Nachman, Thaler, arXiv:1708.02949): the search learns what the signal looks like without a
single label. m_jj itself is never a feature (:func:`~tools.anomaly._search_data.check_features`).

Every data event in the signal region and sidebands is scored by a classifier that did not train on it
(k-fold, :mod:`tools.anomaly._classifiers`); events outside them and the labelled test set get the mean
of the fold classifiers. The most anomalous fraction ``selection_efficiency`` of the events is kept
and the m_jj sidebands of that selection are fitted with the dijet function; the excess in the signal
region gives a local significance (:func:`tools.anomaly._bump.fit_bump`).

With ``scan=True`` this is *CWoLa hunting* (Collins, Howe, Nachman, arXiv:1805.02664, 1902.02634): the
signal region, of the dataset's width, slides over the dataset's m_jj range in steps of half a width, the
rest of the range serving as its sidebands (as in the LHC Olympics R&D comparisons, e.g. CATHODE,
arXiv:2109.00546, rather than the original's adjacent bins: every event of the fit is then scored out of
fold, and the fit spans the whole range); each window gets its own k-fold classifiers, selection and bump
fit, and the window with the largest local significance is reported (its scores in the table).
The significance is *local*: scanning n windows raises the chance of a large fluctuation (look-elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
from pydantic import BaseModel, Field

from physagent.tools._artifacts import Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import tool
from physagent.tools.anomaly._bump import BumpFit, fit_bump
from physagent.tools.anomaly._classifiers import (
    MIN_PER_FOLD,
    ClassifierParam,
    DatasetParam,
    FoldModels,
    check_class_counts,
    check_not_empty,
    feature_matrix,
    kfold_classify,
    search_windows,
)
from physagent.tools.anomaly._method_result import AnomalyScores, save_png, write_scores
from physagent.tools.anomaly._search_data import (
    MASS,
    SearchData,
    Windows,
    check_features,
    read_search_data,
)

__all__ = ["BumpWindow", "CwolaHunt", "cwola_hunt", "signal_region_windows"]

_TOOL = "cwola_hunt"
_BINS_PER_WIDTH = 10  # bump-fit bins per signal-region width


class BumpWindow(BaseModel):
    """One signal-region window: its classifier's selection and the bump fit of the selected events."""

    signal_region_gev: list[float] = Field(description="The m_jj signal region [low, high) in GeV.")
    sidebands_gev: list[float] = Field(description="Outer edges of the sidebands [low, high) in GeV.")
    n_signal_region: int = Field(description="Data events in the signal region.")
    n_sidebands: int = Field(description="Data events in the sidebands.")
    n_selected: int = Field(description="Events passing the anomaly-score cut, signal region and sidebands.")
    observed: int | None = Field(description="Selected events in the signal region (None: not fitted).")
    expected: float | None = Field(description="Background expected there from the sideband fit.")
    expected_uncertainty: float | None = Field(description="1σ of the expectation from the fit covariance.")
    z_local: float | None = Field(description="One-sided local significance of the excess, in σ (0 for a deficit).")
    chi2_per_ndf: float | None = Field(description="Quality of the sideband fit (≈ 1 for a good fit).")
    note: str = Field(default="", description="Why the window was not fitted, if it was not.")


class CwolaHunt(AnomalyScores):
    """CWoLa anomaly scores with the bump fit of the selected events in each searched window."""

    selection_efficiency: float = Field(description="Fraction of the most anomalous events kept for the bump fit.")
    searched_windows: list[BumpWindow] = Field(description="Each searched window (one without a scan), in m_jj order.")
    best_signal_region_gev: list[float] = Field(description="The window with the largest local significance.")
    best_signal_region_min_gev: float = Field(description="Lower m_jj edge of that window, in GeV.")
    best_signal_region_max_gev: float = Field(description="Upper m_jj edge of that window, in GeV.")
    z_local_max: float = Field(description="Its local significance in σ (not corrected for the look-elsewhere "
                                           "effect of a scan).")
    scan_plot: Artifact = Field(description="Plot artifact bump.png: local significance per window, and "
                                            "the selected m_jj spectrum with the sideband fit of the best window.")


@tool(category="anomaly", version="1")
def cwola_hunt(
    dataset: DatasetParam,
    features: Annotated[list[str] | None, Field(max_length=16, description=(
        "Classifier inputs, columns of the dataset (None: mj1_gev, delta_mj_gev, tau21_j1, tau21_j2). Never "
        "mjj_gev, the variable the search scans."))] = None,
    classifier: ClassifierParam = "bdt",
    n_folds: Annotated[int, Field(ge=2, le=10, description="k of the k-fold training: every event is scored by "
                                                           "a classifier trained on the other k−1 folds.")] = 5,
    signal_region_gev: Annotated[list[float] | None, Field(min_length=2, max_length=2, description=(
        "Signal region [low, high] in m_jj, GeV (None: the dataset's). With scan, sets the window width."))
    ] = None,
    scan: Annotated[bool, Field(description="Slide the signal region over m_jj in steps of half its width and "
                                            "report the window with the largest local significance (CWoLa "
                                            "hunting).")] = False,
    selection_efficiency: Annotated[float, Field(gt=0, le=0.5, description=(
        "Fraction of the most anomalous events (signal region and sidebands) kept for the bump fit, e.g. "
        "0.1 for the top 10 %."))] = 0.1,
    seed: Annotated[int, Field(ge=0, description="Random seed for the folds and the classifiers.")] = 0,
    *,
    ctx: ToolContext,
) -> CwolaHunt:
    """Search for an anomaly with CWoLa: a classifier of m_jj signal region vs sidebands, then a bump fit.

    Scores every data event without truth labels (k-fold), evaluates AUC and SIC on the labelled test set,
    and fits the m_jj spectrum of the most anomalous events for a local significance; with scan=True it
    slides the signal region over m_jj and reports the most significant window.
    """
    data = read_search_data(ctx, dataset)
    chosen = check_features(_TOOL, features, data)
    base = search_windows(_TOOL, data, signal_region_gev)
    searched = signal_region_windows(base) if scan else [base]
    if not searched:
        raise ToolInputError.for_param(_TOOL, "signal_region_gev", signal_region_gev, (
            "is too wide to slide over the sidebands "
            f"{base.sidebands_gev[0]:g}–{base.sidebands_gev[1]:g} GeV. Choose a narrower signal region."))
    observed = data.observed()
    x, mjj = feature_matrix(observed, chosen), np.asarray(observed[MASS], dtype=np.float64)
    runs = _run_windows(ctx, x, mjj, searched, classifier, n_folds, selection_efficiency, seed, scan)
    best = max((run for run in runs if run.models is not None), key=lambda run: run.report.z_local or 0.0)
    models = best.models
    assert models is not None  # only trained windows compete, and _run_windows refuses a search without one
    seen = [f"data: {', '.join(chosen)} as classifier inputs; {MASS} only to sort events into signal region "
            f"and sidebands{' (per scanned window)' if scan else ''} and for the bump fit"]
    plot = _write_scan_plot(ctx, data, runs, best, classifier)
    return write_scores(
        ctx, data, _scores(models, best.out_of_fold_region, x), models.predict(feature_matrix(data.test, chosen)),
        "cwola", seen, n_data_events_seen=best.n_trained, windows=best.windows, label=f"CWoLa ({classifier})",
        notes=_notes(classifier, n_folds, scan, len(searched), best.windows), result_type=CwolaHunt,
        selection_efficiency=selection_efficiency, searched_windows=[run.report for run in runs],
        best_signal_region_gev=list(best.windows.signal_region_gev),
        best_signal_region_min_gev=best.windows.signal_region_gev[0],
        best_signal_region_max_gev=best.windows.signal_region_gev[1], z_local_max=float(best.report.z_local or 0.0),
        scan_plot=plot,
    )


@dataclass(frozen=True, eq=False)  # compared by identity: it holds arrays
class _Run:
    """One searched window: its classifiers (None: skipped), bump fit and the events they trained on."""

    windows: Windows
    models: FoldModels | None
    report: BumpWindow
    fit: BumpFit | None
    n_trained: int
    out_of_fold_region: np.ndarray  # the data events scored out of fold (signal region and sidebands)


def signal_region_windows(base: Windows) -> list[Windows]:
    """Signal regions of ``base``'s width stepped by half a width over ``base.sidebands_gev``, with those sidebands.

    Every window keeps at least half a width of sideband below and above it, for the fit to interpolate.
    """
    (lo, hi), (sr_lo, sr_hi) = base.sidebands_gev, base.signal_region_gev
    width = sr_hi - sr_lo
    starts = np.arange(lo + 0.5 * width, hi - 1.5 * width + 1e-6, 0.5 * width)
    return [Windows((float(a), float(a + width)), (lo, hi)) for a in starts]


def _run_windows(ctx: ToolContext, x: np.ndarray, mjj: np.ndarray, searched: list[Windows], classifier: str,
                 n_folds: int, efficiency: float, seed: int, scan: bool) -> list[_Run]:
    """Per window: k-fold classifiers, the selection and its bump fit (in a scan, thin windows are skipped)."""
    runs = []
    for index, windows in enumerate(searched):
        in_sr, in_sb = windows.in_signal_region(mjj), windows.in_sidebands(mjj)
        counts = {"signal region": int(in_sr.sum()), "sidebands": int(in_sb.sum())}
        region = in_sr | in_sb
        if min(counts.values()) < MIN_PER_FOLD * n_folds:
            if not scan:
                _refuse(windows, counts, n_folds)
            report = _report(windows, counts, 0, None, f"skipped: fewer than {MIN_PER_FOLD * n_folds} events for "
                             f"{n_folds} folds")
            runs.append(_Run(windows, None, report, None, 0, region))
            continue
        models = kfold_classify(ctx, x[region], in_sr[region].astype(np.int64), classifier, n_folds, seed,
                                f"CWoLa window {index + 1}/{len(searched)}")
        selected = mjj[region][models.out_of_fold >= np.quantile(models.out_of_fold, 1.0 - efficiency)]
        fit, note = _fit(selected, windows)
        runs.append(_Run(windows, models, _report(windows, counts, len(selected), fit, note), fit,
                         int(region.sum()), region))
    if all(run.models is None for run in runs):
        raise ToolInputError.for_param(_TOOL, "n_folds", n_folds, (
            f"leaves every scanned window with fewer than {MIN_PER_FOLD * n_folds} events in its signal region or "
            "sidebands. Lower n_folds, widen signal_region_gev, or make a larger dataset."))
    return runs


def _refuse(windows: Windows, counts: dict[str, int], n_folds: int) -> None:
    check_not_empty(_TOOL, windows, counts)
    check_class_counts(_TOOL, counts, n_folds, "widen signal_region_gev, or make a larger dataset")


def _fit(selected: np.ndarray, windows: Windows) -> tuple[BumpFit | None, str]:
    try:
        return fit_bump(selected, windows, n_bins=_n_bins(windows)), ""
    except ValueError as error:
        return None, f"not fitted: {error}"


def _report(windows: Windows, counts: dict[str, int], n_selected: int, fit: BumpFit | None, note: str
            ) -> BumpWindow:
    values = ({"observed": fit.observed, "expected": fit.expected, "expected_uncertainty": fit.expected_uncertainty,
               "z_local": fit.z_local, "chi2_per_ndf": fit.chi2_per_ndf} if fit is not None else
              dict.fromkeys(("observed", "expected", "expected_uncertainty", "z_local", "chi2_per_ndf")))
    return BumpWindow(signal_region_gev=list(windows.signal_region_gev), sidebands_gev=list(windows.sidebands_gev),
                      n_signal_region=counts["signal region"], n_sidebands=counts["sidebands"],
                      n_selected=n_selected, note=note, **values)


def _n_bins(windows: Windows) -> int:
    (lo, hi), (sr_lo, sr_hi) = windows.sidebands_gev, windows.signal_region_gev
    return max(12, round(_BINS_PER_WIDTH * (hi - lo) / (sr_hi - sr_lo)))


def _scores(models: FoldModels, scored_out_of_fold: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Out-of-fold scores inside the window's signal region and sidebands, the fold mean elsewhere."""
    scores = np.empty(len(x))
    scores[scored_out_of_fold] = models.out_of_fold
    scores[~scored_out_of_fold] = models.predict(x[~scored_out_of_fold])
    return scores


def _notes(classifier: str, n_folds: int, scan: bool, n_windows: int, windows: Windows) -> str:
    lo, hi = windows.signal_region_gev
    text = (f"{classifier} classifiers, {n_folds}-fold: data events in the signal region and sidebands are "
            "scored out of fold, the rest by the mean of the fold classifiers.")
    if scan:
        text += (f" Scanned {n_windows} windows; the scores are those of the most significant, {lo:g}–{hi:g} GeV. "
                 "Its significance is local: a scan over many windows finds large fluctuations more often.")
    return text


def _write_scan_plot(ctx: ToolContext, data: SearchData, runs: list[_Run], best: _Run, classifier: str) -> Artifact:
    from physagent.tools.anomaly._scan_plot import draw_bump_scan

    reports = [run.report for run in runs]
    pending = ctx.new_artifact("plot")
    figure = draw_bump_scan(reports, runs.index(best), best.fit, f"CWoLa ({classifier}) on {data.artifact.summary}")
    save_png(figure, pending.directory / "bump.png")
    return pending.finish("bump.png", f"CWoLa local significance per m_jj window on {data.artifact.id}",
                          {"windows": [r.model_dump() for r in reports], "best": runs.index(best)})
