r"""``bump_hunt``: cut on any method's anomaly score and look for a bump in m_jj, before and after the cut.

A weakly supervised or unsupervised search ends the same way: keep the most anomalous events, fit a
smooth background to the m_jj sidebands of what is kept, and count what the signal region holds above
it. ``bump_hunt`` does that for the scores table of any method (``autoencoder_search``, ``cwola_hunt``,
``cathode_search``, the references — or any ``table`` with columns ``mjj_gev`` and ``score``):

1. *before*: the 4-parameter dijet fit of all events' m_jj (:func:`tools.anomaly._bump.fit_bump`), the
   plain bump hunt without any anomaly score;
2. the selection: among the events of the fit range (signal region and sidebands), keep the fraction
   ``selection_efficiency`` with the largest scores, or those with score ≥ ``score_threshold``;
3. *after*: the same fit of the selected events.

Each fit gives the observed count N in the signal region, the fitted background B ± σ_B, the one-sided
local significance Z (σ) and p-value of the excess (pyhf, q0), and χ²/ndf of the sideband fit. A score
that sculpts m_jj (keeps background unevenly in m_jj) can fake a bump: compare the selection's
efficiency in the signal region and the sidebands, and the χ²/ndf, before trusting a large Z. So can
scores made differently in the two regions — out of fold in the signal region but by a fold average in
the sidebands, as ``cathode_search`` and the references do: the average has narrower tails, so a cut
keeps more signal-region events (on background alone the idealized reference gave Z ≈ 6σ after a 10 %
cut). Scores made the same way everywhere (``cwola_hunt``, ``autoencoder_search``) avoid that. The
significance is local: the look-elsewhere effect of trying several windows or cuts is not included.
``warnings`` lists a reference's scores, a poor fit, or few sideband events.

Given an ``anomaly_dataset`` instead of a table, only the plain fit is made (there is no score to cut on).
Output: the numbers, and a ``plot`` artifact ``bump.png``/``.pdf`` (:mod:`tools.anomaly._bump_plot`).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, Field

from physagent.tools._artifacts import ARTIFACT_ID_PATTERN, Accepts, Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import ToolResult, tool
from physagent.tools.anomaly._bump import BumpFit, fit_bump
from physagent.tools.anomaly._search_data import KIND, MASS, Windows, read_search_data

__all__ = ["BumpFitSummary", "BumpHunt", "bump_hunt"]

TOOL = "bump_hunt"
SCORE = "score"
BINS_PER_SIGNAL_REGION = 10  # the binning cwola_hunt uses, so both report the same fit
MAX_CHI2_PER_NDF = 2.0  # a sideband fit worse than this is flagged
FEW_SIDEBAND_EVENTS = 100  # fewer selected sideband events than this are flagged
SourceRef = Annotated[str, Accepts(("table", KIND)), Field(pattern=ARTIFACT_ID_PATTERN)]


class BumpFitSummary(BaseModel):
    """One bump fit: the signal-region count against the background fitted to the sidebands."""

    n_events: int = Field(description="Events in the fit range (signal region and sidebands) that entered the fit.")
    observed: int = Field(description="Events observed in the signal region.")
    expected: float = Field(description="Background expected in the signal region from the sideband fit.")
    expected_uncertainty: float = Field(description="1σ uncertainty of the expected background (fit covariance).")
    excess: float = Field(description="observed − expected, in events.")
    z_local: float = Field(description="One-sided local significance of the excess in σ (0 for a deficit).")
    p_local: float = Field(description="Local p-value of the background-only hypothesis (0.5 for a deficit).")
    chi2_per_ndf: float = Field(description="Pearson χ²/ndf of the sideband fit (≈ 1 for a good fit).")

    @classmethod
    def of(cls, fit: BumpFit) -> BumpFitSummary:
        return cls(n_events=int(fit.counts.sum()), observed=fit.observed, expected=fit.expected,
                   expected_uncertainty=fit.expected_uncertainty, excess=fit.observed - fit.expected,
                   z_local=fit.z_local, p_local=fit.p_local, chi2_per_ndf=fit.chi2_per_ndf)


class BumpHunt(ToolResult):
    """The m_jj bump fit before and after a cut on an anomaly score, and the plot of both."""

    method: str = Field(description="Which method's scores were cut on ('none' for a dataset without scores).")
    signal_region_gev: list[float] = Field(description="The m_jj signal region [low, high) in GeV.")
    sidebands_gev: list[float] = Field(description="Outer edges of the sidebands [low, high) in GeV.")
    n_bins: int = Field(description="m_jj bins of the fit range.")
    before: BumpFitSummary = Field(description="The fit of every event, without a cut on the score.")
    after: BumpFitSummary | None = Field(description="The fit of the selected events (None without scores).")
    selection: str = Field(description="The cut, in words.")
    score_threshold: float | None = Field(description="Events with score ≥ this were kept (None without scores).")
    selection_efficiency: float | None = Field(description="Fraction of the fit range's events kept.")
    efficiency_signal_region: float | None = Field(description="Fraction of the signal region's events kept.")
    efficiency_sidebands: float | None = Field(description="Fraction of the sidebands' events kept; much lower or "
                                                           "higher than in the signal region means a signal or "
                                                           "a score that sculpts m_jj.")
    plot: Artifact = Field(description="Plot artifact bump.png / .pdf: m_jj before and after the cut with the "
                                       "fitted background, the signal region shaded, pulls below.")
    warnings: list[str] = Field(description="Reasons to distrust the numbers (a reference's scores, a poor fit, "
                                            "few sideband events); empty if none.")


@tool(category="anomaly", version="1")
def bump_hunt(
    source: Annotated[SourceRef, Field(description=(
        "Id of a scores table (autoencoder_search, cwola_hunt, cathode_search, reference_anomaly_classifier, "
        "or any table with columns mjj_gev and score) — or of an anomaly_dataset, for the plain m_jj fit."))],
    selection_efficiency: Annotated[float, Field(gt=0, le=1, description=(
        "Fraction of the events in the fit range with the largest scores to keep, e.g. 0.1 for the top 10 % "
        "(1: no cut). Ignored when score_threshold is given."))] = 0.1,
    score_threshold: Annotated[float | None, Field(description=(
        "Keep the events with score ≥ this instead of a fixed fraction (None: use selection_efficiency)."))
    ] = None,
    signal_region_gev: Annotated[list[float] | None, Field(min_length=2, max_length=2, description=(
        "Signal region [low, high] in m_jj, GeV (None: the one of the scores table or dataset)."))] = None,
    sidebands_gev: Annotated[list[float] | None, Field(min_length=2, max_length=2, description=(
        "Outer edges [low, high] of the sidebands in m_jj, GeV (None: those of the scores table or dataset)."))
    ] = None,
    n_bins: Annotated[int | None, Field(ge=5, le=1000, description=(
        "m_jj bins over the fit range (None: 10 per signal-region width, as cwola_hunt)."))] = None,
    sqrt_s_tev: Annotated[float, Field(gt=0, le=100, description=(
        "Collider energy √s in TeV: the dijet function's variable is m_jj/√s."))] = 13.0,
    *,
    ctx: ToolContext,
) -> BumpHunt:
    """Fit the m_jj spectrum for a bump before and after keeping the most anomalous events of a scores table.

    Returns the observed and expected signal-region counts, the local significance and p-value, and the
    fit χ²/ndf without and with the cut on the anomaly score, and a plot of both fits.
    """
    artifact = ctx.artifact(source, "source")
    if artifact.kind == KIND:
        if score_threshold is not None:
            raise ToolInputError.for_param(TOOL, "score_threshold", score_threshold, (
                f"needs anomaly scores, but {source} is an anomaly_dataset. Run a method first "
                "(autoencoder_search, cwola_hunt, …) and pass its scores table."))
        data = read_search_data(ctx, source, "source")
        mjj, scores, method = np.asarray(data.observed()[MASS], dtype=np.float64), None, "none"
        windows = _windows(signal_region_gev, sidebands_gev, data.card)
    else:
        mjj, scores, meta = _read_scores(artifact)
        method = str(meta.get("method", "unknown"))
        windows = _windows(signal_region_gev, sidebands_gev, meta)
    reference = artifact.kind != KIND and bool(artifact.metadata.get("is_reference"))
    bins = n_bins or _default_bins(windows)
    sqrt_s_gev = 1000.0 * sqrt_s_tev
    in_range = _in_range(mjj, windows)
    before = _fit(mjj[in_range], windows, bins, sqrt_s_gev, "the m_jj spectrum of all events")
    if scores is None:
        return _result(ctx, source, method, windows, bins, before, None, None, "no cut (a dataset has no scores)",
                       reference)
    threshold = _threshold(scores[in_range], selection_efficiency, score_threshold)
    keep = in_range & (scores >= threshold)
    words = (f"score ≥ {score_threshold:g}" if score_threshold is not None else
             f"the most anomalous {100 * selection_efficiency:.3g} % (score ≥ {threshold:.4g})")
    after = _fit(mjj[keep], windows, bins, sqrt_s_gev, f"the events with {words}")
    effs = _efficiencies(mjj, in_range, keep, windows)
    return _result(ctx, source, method, windows, bins, before, after, (threshold, *effs), words, reference)


def _read_scores(artifact: Artifact) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    import awkward as ak

    if artifact.path.suffix != ".parquet":
        raise ToolInputError.for_param(TOOL, "source", artifact.id, (
            f"is a table in {artifact.path.name}, not Parquet. Pass the scores table of an anomaly method."))
    table = ak.from_parquet(artifact.path)
    missing = [name for name in (MASS, SCORE) if name not in ak.fields(table)]
    if missing:
        raise ToolInputError.for_param(TOOL, "source", artifact.id, (
            f"has no column {' or '.join(repr(m) for m in missing)} (it has {', '.join(ak.fields(table)) or 'none'}). "
            "Pass the scores table of autoencoder_search, cwola_hunt or cathode_search, or a table with the m_jj "
            f"in GeV as {MASS!r} and the anomaly score as {SCORE!r}."))
    mjj, scores = (np.asarray(ak.to_numpy(table[name]), dtype=np.float64) for name in (MASS, SCORE))
    bad = ~(np.isfinite(mjj) & np.isfinite(scores))
    if bad.any():
        raise ToolInputError.for_param(TOOL, "source", artifact.id, (
            f"has {int(bad.sum()):,} rows with NaN or infinite {MASS} or {SCORE}. Drop them or rerun the method."))
    return mjj, scores, artifact.metadata


def _windows(signal_region: list[float] | None, sidebands: list[float] | None, meta: dict[str, Any]) -> Windows:
    sr, sb = signal_region or meta.get("signal_region_gev"), sidebands or meta.get("sidebands_gev")
    for name, value in (("signal_region_gev", sr), ("sidebands_gev", sb)):
        if value is None:
            raise ToolInputError.for_param(TOOL, name, None, (
                "is needed: the source does not record its m_jj windows. Pass signal_region_gev and "
                "sidebands_gev, e.g. [3300, 3700] and [2700, 5000]."))
    (sr_lo, sr_hi), (lo, hi) = (float(v) for v in sr), (float(v) for v in sb)  # type: ignore[union-attr]
    if not lo < sr_lo < sr_hi < hi:
        raise ToolInputError.for_param(TOOL, "signal_region_gev", [sr_lo, sr_hi], (
            f"must lie strictly inside the sidebands [{lo:g}, {hi:g}] GeV with low < high, leaving sidebands on "
            "both sides. Adjust signal_region_gev or sidebands_gev."))
    return Windows((sr_lo, sr_hi), (lo, hi))


def _default_bins(windows: Windows) -> int:
    (lo, hi), (sr_lo, sr_hi) = windows.sidebands_gev, windows.signal_region_gev
    return max(12, round(BINS_PER_SIGNAL_REGION * (hi - lo) / (sr_hi - sr_lo)))


def _in_range(mjj: np.ndarray, windows: Windows) -> np.ndarray:
    return windows.in_signal_region(mjj) | windows.in_sidebands(mjj)


def _threshold(scores: np.ndarray, efficiency: float, threshold: float | None) -> float:
    """The given threshold, or the score of the ⌈ε·n⌉-th most anomalous event of the fit range."""
    if threshold is not None:
        return float(threshold)
    if len(scores) == 0:
        return math.inf
    k = max(1, math.ceil(efficiency * len(scores) - 1e-9))
    return float(np.partition(scores, len(scores) - k)[len(scores) - k])


def _fit(mjj: np.ndarray, windows: Windows, n_bins: int, sqrt_s_gev: float, what: str) -> BumpFit:
    try:
        return fit_bump(mjj, windows, n_bins=n_bins, sqrt_s_gev=sqrt_s_gev)
    except ValueError as error:
        param = "selection_efficiency" if "score" in what else "source"
        raise ToolInputError(f"{TOOL}: cannot fit {what}: {error}.", tool=TOOL, param=param) from None


def _efficiencies(mjj: np.ndarray, in_range: np.ndarray, keep: np.ndarray, windows: Windows
                  ) -> tuple[float, float, float]:
    def fraction(region: np.ndarray) -> float:
        return float(keep[region].sum() / max(region.sum(), 1))

    return fraction(in_range), fraction(windows.in_signal_region(mjj)), fraction(windows.in_sidebands(mjj))


def _warnings(before: BumpFit, after: BumpFit | None, reference: bool) -> list[str]:
    found = []
    if reference:
        found.append("the scores come from a reference method (it read the reference background or truth "
                     "labels): an upper bound on what a search can do, not a search; a bump after its cut is "
                     "not evidence of a signal")
    for name, fit in (("before", before), ("after", after)):
        if fit is None:
            continue
        if fit.chi2_per_ndf > MAX_CHI2_PER_NDF:
            found.append(f"the sideband fit {name} the cut is poor (χ²/ndf = {fit.chi2_per_ndf:.2f}): the dijet "
                         "function does not describe the spectrum" + (", which the cut may have sculpted"
                                                                       if name == "after" else ""))
        n_sidebands = int(fit.counts.sum()) - fit.observed
        if n_sidebands < FEW_SIDEBAND_EVENTS:
            found.append(f"only {n_sidebands} sideband events {name} the cut: the fit, and so Z, is uncertain; "
                         "raise selection_efficiency")
    return found


def _result(ctx: ToolContext, source: str, method: str, windows: Windows, n_bins: int, before: BumpFit,
            after: BumpFit | None, cut: tuple[float, float, float, float] | None, words: str, reference: bool
            ) -> BumpHunt:
    from physagent.tools.anomaly._bump_plot import draw_bump_hunt, save_bump_hunt

    lo, hi = windows.signal_region_gev
    pending = ctx.new_artifact("plot")
    title = f"bump hunt on {source} ({method}): signal region {lo:g}–{hi:g} GeV"
    save_bump_hunt(draw_bump_hunt(before, after, words, title), pending.directory)
    z = f"Z = {before.z_local:.2f}σ before" + (f", {after.z_local:.2f}σ after the cut" if after else "")
    plot = pending.finish("bump.png", f"m_jj bump fit of {source}, {lo:g}–{hi:g} GeV: {z}",
                          {"source": source, "method": method, **windows.as_dict()})
    threshold, eff, eff_sr, eff_sb = cut if cut is not None else (None, None, None, None)
    return BumpHunt(
        method=method, signal_region_gev=[lo, hi], sidebands_gev=list(windows.sidebands_gev), n_bins=n_bins,
        before=BumpFitSummary.of(before), after=BumpFitSummary.of(after) if after else None, selection=words,
        score_threshold=threshold, selection_efficiency=eff, efficiency_signal_region=eff_sr,
        efficiency_sidebands=eff_sb, plot=plot, warnings=_warnings(before, after, reference),
    )
