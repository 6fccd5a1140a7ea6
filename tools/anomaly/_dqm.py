r"""Data-quality monitoring core: histogram sequences, a DINAMO-like EWMA reference with a χ² test, evaluation.

Each monitored histogram h of run k is normalised, p_i = n_i / N. Its reference is an exponentially weighted
moving average (EWMA) over earlier *good* runs, μ_i ← μ_i + α (p_i − μ_i), started from the mean of the first
``n_reference`` runs; a run that is flagged is not folded in, so a fault cannot become the reference. The
per-bin variance is the run's Poisson term plus an intrinsic run-to-run term,

    σ_i² = max(w_i, 0) + c · max(μ_i, 1/N) / N,      c = 1 + α / (2 − α),

where c adds the reference's own statistical variance (that of an EWMA of Poisson means) and w_i is the
EWMA of the excess spread, w_i ← (1 − β) (w_i + β (d_i² − c μ_i / N)) with d_i = p_i − μ_i and a slower
weight β = α/10. The test statistic is χ²/ndf = Σ_i d_i² / σ_i² / (n_bins − 1) over the bins where the
reference or the run has entries; a run is flagged when any of its histograms exceeds the threshold.

References: A. Gavrikov, J. García Pardiñas, A. Garfagnini, "DINAMO: Dynamic and INterpretable Anomaly
MOnitoring for large-scale particle physics experiments", arXiv:2501.19237 (the statistical EWMA variant,
commissioned at LHCb); J. S. Hunter, "The exponentially weighted moving average", J. Qual. Technol. 18
(1986) 203.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from physagent.tools._errors import ToolInputError

__all__ = ["DEFAULT_CHI2_THRESHOLD", "Histograms", "Scores", "Sequence", "episodes", "evaluate", "ewma_chi2",
           "read_sequence"]

TOOL = "monitor_histograms"
DEFAULT_CHI2_THRESHOLD = 3.0  # χ²/ndf; clean runs scatter around 1 with σ ≈ √(2/ndf)
# The intrinsic variance adapts this much slower than the mean: a drift the mean follows (with a lag) then
# still shows as a growing χ² instead of being absorbed into a widening band (with the same weight α, a
# 3 % gain drift over six runs went unflagged in a third of the seeds tried).
VARIANCE_SLOWDOWN = 0.1
CLEAN = ""  # the truth label of a run without a fault
_NO_FAULT = {"", "none", "clean", "good", "ok"}


@dataclass(frozen=True)
class Histograms:
    """One monitored histogram across runs: counts (n_runs × n_bins) and its binning."""

    name: str
    counts: np.ndarray
    edges: np.ndarray | None  # bin edges in ``unit``; None when only bin indices are known
    label: str
    unit: str


@dataclass(frozen=True)
class Sequence:
    """Monitoring histograms of consecutive runs (ascending run numbers) and, if known, the fault truth."""

    runs: np.ndarray
    histograms: list[Histograms]
    truth: dict[int, str] | None = None  # run → fault type, "" when clean; None: no truth given


@dataclass
class Scores:
    """The per-run result of a monitoring method."""

    chi2_ndf: np.ndarray  # (n_runs, n_histograms); NaN where not scored, +inf for an empty histogram
    flagged: np.ndarray  # (n_runs,) bool
    reference: list[np.ndarray]  # per histogram: (n_runs, n_bins) normalised reference each run was tested on
    sigma: list[np.ndarray]  # per histogram: (n_runs, n_bins) per-bin σ of the normalised content
    threshold: float
    extra: dict[str, Any] = field(default_factory=dict)  # method details for the card (e.g. training losses)


# --- reading and checking ----------------------------------------------------------------------


def read_sequence(path: Path, kind: str, card: dict[str, Any] | None, artifact_id: str) -> Sequence:
    """A sequence from a ``monitoring`` artifact or a user's ``table`` artifact (same long format)."""
    from physagent.tools._io import read_parquet

    array = read_parquet(path)
    columns = _columns(array, artifact_id)
    truth = _truth_from_card(card) if kind == "monitoring" and card else _truth_from_column(columns)
    axes = (card or {}).get("axes", {})
    runs = np.unique(columns["run"]).astype(np.int64)
    names = list(dict.fromkeys(columns["histogram"].tolist()))  # in order of first appearance
    histograms = [_one_histogram(columns, name, runs, axes.get(name, {}), artifact_id) for name in names]
    if truth is not None:
        truth = {int(r): truth.get(int(r), CLEAN) for r in runs}
    return Sequence(runs.astype(np.int64), histograms, truth)


def _columns(array: Any, artifact_id: str) -> dict[str, np.ndarray]:
    import awkward as ak

    fields = list(ak.fields(array))
    if len(array) == 0:
        raise ToolInputError.for_param(
            TOOL, "data", artifact_id, "holds no rows, so there are no histograms to monitor. Pass a table with "
            "one row per run and bin (columns run, bin, count), e.g. from make_monitoring_data or read_table.")
    missing = [c for c in ("run", "count") if c not in fields] + ([] if {"bin", "bin_low"} & set(fields) else ["bin"])
    if missing:
        raise ToolInputError.for_param(
            TOOL, "data", artifact_id, f"lacks the column(s) {', '.join(missing)} (it has {', '.join(fields)}). A "
            "monitoring table needs run, bin (or bin_low) and count, optionally histogram, bin_high and fault.")
    columns = {name: _numeric(array, name, artifact_id) for name in ("run", "count", "bin", "bin_low", "bin_high")
               if name in fields}
    columns["histogram"] = _text(array, "histogram", "histogram") if "histogram" in fields else np.full(
        len(array), "histogram", dtype=object)
    if "fault" in fields:
        columns["fault"] = np.array([_label(v) for v in ak.to_list(array["fault"])], dtype=object)
    _check_values(columns, artifact_id)
    return columns


def _numeric(array: Any, name: str, artifact_id: str) -> np.ndarray:
    import awkward as ak

    try:
        values = np.asarray(ak.to_numpy(ak.fill_none(array[name], np.nan)), dtype=np.float64)
    except (TypeError, ValueError):
        values = np.array([np.nan])
    if values.ndim != 1 or not np.isfinite(values).all():
        raise ToolInputError.for_param(
            TOOL, "data", artifact_id, f"has a column {name!r} that is not a finite number in every row. Fill or "
            "drop the missing values; run, bin and count are numbers.")
    return values


def _text(array: Any, name: str, missing: str) -> np.ndarray:
    import awkward as ak

    return np.array([missing if v is None else str(v) for v in ak.to_list(array[name])], dtype=object)


def _label(value: Any) -> str:
    """A truth label: text names the fault ('', 'none', 'clean', 'good', 'ok': clean); a number flags a fault
    when non-zero (0, NaN and missing: clean)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return CLEAN
    if isinstance(value, bool | int | float):
        return "fault" if value else CLEAN
    text = str(value).strip()
    return CLEAN if text.lower() in _NO_FAULT else text


def _check_values(columns: dict[str, np.ndarray], artifact_id: str) -> None:
    counts, runs = columns["count"], columns["run"]
    if (counts < 0).any():
        i = int(np.argmax(counts < 0))
        raise ToolInputError.for_param(
            TOOL, "data", artifact_id, f"has negative counts (run {runs[i]:g}: count {counts[i]:g}); bin contents "
            "are entries and must be ≥ 0. Fix the table (or drop background subtraction) before monitoring.")
    for name in ("run", "bin"):
        if name in columns and (columns[name] != np.round(columns[name])).any():
            raise ToolInputError.for_param(
                TOOL, "data", artifact_id, f"has non-integer values in column {name!r}; runs and bin indices are "
                "whole numbers. Use bin_low/bin_high for bin edges.")


def _one_histogram(columns: dict[str, np.ndarray], name: str, runs: np.ndarray, axis: dict[str, Any],
                   artifact_id: str) -> Histograms:
    rows = columns["histogram"] == name
    key = columns["bin"][rows] if "bin" in columns else columns["bin_low"][rows]
    bins = np.unique(key)
    counts = np.zeros((len(runs), len(bins)))
    run_index, bin_index = np.searchsorted(runs, columns["run"][rows]), np.searchsorted(bins, key)
    seen = np.zeros_like(counts, dtype=np.int64)
    np.add.at(seen, (run_index, bin_index), 1)
    np.add.at(counts, (run_index, bin_index), columns["count"][rows])
    _check_binning(seen, runs, bins, name, artifact_id)
    edges = _edges(columns, rows, bins, key, name, artifact_id)
    unit = str(axis.get("unit", ""))
    return Histograms(name, counts, edges, str(axis.get("label", "bin" if edges is None else name)), unit)


def _check_binning(seen: np.ndarray, runs: np.ndarray, bins: np.ndarray, name: str, artifact_id: str) -> None:
    if (seen > 1).any():
        r, b = np.argwhere(seen > 1)[0]
        raise ToolInputError.for_param(
            TOOL, "data", artifact_id, f"lists bin {bins[b]:g} of histogram {name!r} in run {runs[r]} more than "
            "once. Give one row per run, histogram and bin (sum duplicates first).")
    per_run = seen.sum(axis=1)
    if (per_run != len(bins)).any():
        r = int(np.argmax(per_run != len(bins)))
        raise ToolInputError.for_param(
            TOOL, "data", artifact_id, f"has histograms with different binning between runs: {name!r} has "
            f"{per_run[r]} bins in run {runs[r]} but {len(bins)} distinct bins over all runs. Every run needs the "
            "same bins (list empty bins with count 0), so rebin the runs to one binning first.")


def _edges(columns: dict[str, np.ndarray], rows: np.ndarray, bins: np.ndarray, key: np.ndarray, name: str,
           artifact_id: str) -> np.ndarray | None:
    if "bin_low" not in columns:
        return None
    low = columns["bin_low"][rows]
    high = columns["bin_high"][rows] if "bin_high" in columns else None
    index = np.searchsorted(bins, key)
    for values, what in ((low, "bin_low"), (high, "bin_high")):
        if values is None:
            continue
        per_bin = np.full(len(bins), np.nan)
        per_bin[index] = values
        if not np.allclose(values, per_bin[index], rtol=1e-9, atol=0.0):
            raise ToolInputError.for_param(
                TOOL, "data", artifact_id, f"has histograms with different binning between runs: {what} of "
                f"histogram {name!r} differs from run to run. Rebin every run to the same edges first.")
    lows = np.unique(low)
    tops = np.unique(high) if high is not None else np.array([])
    top = float(tops.max()) if tops.size else float(lows[-1] + (lows[-1] - lows[-2] if lows.size > 1 else 1.0))
    return np.append(lows, top)


def _truth_from_card(card: dict[str, Any]) -> dict[int, str]:
    return {int(item["run"]): str(item["fault"]) for item in card.get("faults", [])}


def _truth_from_column(columns: dict[str, np.ndarray]) -> dict[int, str] | None:
    if "fault" not in columns:
        return None
    truth: dict[int, str] = {}
    for run, label in zip(columns["run"].astype(np.int64), columns["fault"], strict=True):
        if truth.get(int(run), CLEAN) == CLEAN:  # a run is faulty if any of its rows says so
            truth[int(run)] = label
    return truth


# --- the EWMA χ² test --------------------------------------------------------------------------


def normalised(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-run shapes p = n / N and totals N (an empty run gives zeros)."""
    totals = counts.sum(axis=1)
    return counts / np.where(totals > 0, totals, 1.0)[:, None], totals


@dataclass
class _Reference:
    """The EWMA reference of one histogram: mean shape μ and intrinsic variance w."""

    mean: np.ndarray
    excess: np.ndarray
    alpha: float

    @property
    def stat_factor(self) -> float:
        return 1.0 + self.alpha / (2.0 - self.alpha)

    def variance(self, total: float) -> np.ndarray:
        return np.maximum(self.excess, 0.0) + self.stat_factor * np.maximum(self.mean, 1.0 / total) / total

    def chi2_ndf(self, shape: np.ndarray, total: float) -> float:
        if total <= 0:
            return float("inf")
        used = (self.mean > 0) | (shape > 0)
        chi2 = float((((shape - self.mean) ** 2) / self.variance(total))[used].sum())
        return chi2 / max(int(used.sum()) - 1, 1)

    def update(self, shape: np.ndarray, total: float) -> None:
        d = shape - self.mean
        poisson = self.stat_factor * np.maximum(self.mean, 1.0 / total) / total
        self.mean = self.mean + self.alpha * d
        a = self.alpha * VARIANCE_SLOWDOWN
        self.excess = (1.0 - a) * (self.excess + a * (d**2 - poisson))


def _start(shapes: np.ndarray, totals: np.ndarray, alpha: float) -> _Reference:
    mean = shapes.mean(axis=0)
    poisson = (np.maximum(mean, 1.0 / totals[:, None]) / totals[:, None]).mean(axis=0)
    return _Reference(mean, shapes.var(axis=0, ddof=1) - poisson, alpha)


def ewma_chi2(sequence: Sequence, n_reference: int, alpha: float, threshold: float, advance: Any = None) -> Scores:
    """Score every run after the first ``n_reference`` against the EWMA reference of each histogram."""
    n_runs = len(sequence.runs)
    prepared = [normalised(h.counts) for h in sequence.histograms]
    references = [_start(shapes[:n_reference], totals[:n_reference], alpha) for shapes, totals in prepared]
    chi2 = np.full((n_runs, len(prepared)), np.nan)
    flagged = np.zeros(n_runs, dtype=bool)
    ref_shapes = [np.full_like(shapes, np.nan) for shapes, _ in prepared]
    sigmas = [np.full_like(shapes, np.nan) for shapes, _ in prepared]
    for k in range(n_reference, n_runs):
        for j, ((shapes, totals), ref) in enumerate(zip(prepared, references, strict=True)):
            chi2[k, j] = ref.chi2_ndf(shapes[k], totals[k])
            ref_shapes[j][k] = ref.mean
            sigmas[j][k] = np.sqrt(ref.variance(totals[k])) if totals[k] > 0 else np.nan
        flagged[k] = bool((chi2[k] > threshold).any())
        if not flagged[k]:  # a flagged run never becomes part of the reference
            for (shapes, totals), ref in zip(prepared, references, strict=True):
                ref.update(shapes[k], totals[k])
        if advance is not None:
            advance()
    return Scores(chi2, flagged, ref_shapes, sigmas, threshold)


# --- evaluation against the truth --------------------------------------------------------------


def episodes(runs: np.ndarray, labels: list[str]) -> list[tuple[str, list[int]]]:
    """Maximal stretches of neighbouring runs (in sequence order) with the same fault label; clean ones left out."""
    found: list[tuple[str, list[int]]] = []
    previous = CLEAN
    for run, label in zip(runs.tolist(), labels, strict=True):
        if label != CLEAN and label == previous:
            found[-1][1].append(run)
        elif label != CLEAN:
            found.append((label, [run]))
        previous = label
    return found


def evaluate(sequence: Sequence, flagged: np.ndarray, monitored: np.ndarray) -> dict[str, Any] | None:
    """Efficiency per fault type and the false-positive rate on clean runs, over the monitored runs only."""
    if sequence.truth is None:
        return None
    labels = [sequence.truth[int(r)] for r in sequence.runs]
    runs, flags = sequence.runs[monitored], flagged[monitored]
    kept = [label for label, m in zip(labels, monitored, strict=True) if m]
    per_type = []
    for kind in sorted({label for label in kept if label != CLEAN}):
        mask = np.array([label == kind for label in kept])
        found = [(runs_, any(flags[np.isin(runs, runs_)])) for label, runs_ in episodes(runs, kept) if label == kind]
        per_type.append({"fault": kind, "n_runs": int(mask.sum()), "n_flagged": int(flags[mask].sum()),
                         "efficiency": float(flags[mask].mean()), "n_episodes": len(found),
                         "n_episodes_detected": sum(hit for _, hit in found),
                         "missed_runs": [int(r) for r in runs[mask & ~flags]]})
    clean = np.array([label == CLEAN for label in kept], dtype=bool)
    in_reference = sorted({labels[i] for i in np.flatnonzero(~monitored)} - {CLEAN})
    return {"per_fault": per_type, "n_clean": int(clean.sum()), "n_clean_flagged": int(flags[clean].sum()),
            "false_positive_rate": float(flags[clean].mean()) if clean.any() else 0.0,
            "false_positive_runs": [int(r) for r in runs[clean & flags]], "faults_in_reference": in_reference}
