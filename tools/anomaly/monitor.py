r"""``monitor_histograms``: data-quality monitoring of run-by-run histograms, flagging runs that look wrong.

Two methods score every run after the first ``n_reference`` (which are taken to be good):

- ``chi2`` (default, DINAMO-like, arXiv:2501.19237): each histogram's normalised shape is compared with an
  exponentially weighted moving average (weight ``alpha``) of the earlier good runs, with per-bin
  uncertainties from Poisson statistics, the reference's own statistics and the learned run-to-run
  spread; flagged runs are never folded into the reference (:mod:`tools.anomaly._dqm`).
- ``autoencoder``: a small torch autoencoder learns the reference runs' shapes; the score is the χ²/ndf
  against its reconstruction (:mod:`tools.anomaly._dqm_autoencoder`).

Either way the score is a χ²/ndf, about 1 for a good run. A run is flagged when any of its histograms
exceeds the threshold: 3.0 by default for ``chi2``; for the autoencoder mean + k_sigma·σ of the reference
runs' out-of-sample scores.

Input: a ``monitoring`` artifact from ``make_monitoring_data`` or the user's own ``table`` (e.g. from
``read_table`` of a CSV/Parquet file) in long format, one row per run and bin:

==========  ========  =======================================================================
column      required  meaning
==========  ========  =======================================================================
run         yes       run or lumisection number (integer); runs are monitored in this order
bin         yes*      bin index (integer); *or give bin_low instead
count       yes       entries in the bin (≥ 0; list empty bins with 0)
histogram   no        histogram name, e.g. 'occupancy'; several histograms per run are allowed
bin_low     no        lower bin edge (unit of the quantity); with bin_high, the binning
bin_high    no        upper bin edge
fault       no        truth for evaluation: a fault name, or '' / 'none' for a clean run
==========  ========  =======================================================================

Every run must have the same bins for each histogram. Output: a ``table`` artifact (``table.parquet``,
one row per run: run, chi2_ndf (worst histogram), histogram, flagged, method, role, chi2_ndf_<name> per
histogram, true_fault when known) and a ``plot`` artifact (PNG + PDF). When the data carries the truth,
the result also holds the detection efficiency per fault type and the false-positive rate on clean runs —
an evaluation only; the monitoring never reads the truth.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from physagent.tools._artifacts import ARTIFACT_ID_PATTERN, Accepts, Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import ToolResult, tool
from physagent.tools.anomaly._dqm import DEFAULT_CHI2_THRESHOLD, Scores, Sequence, evaluate, ewma_chi2, read_sequence

__all__ = ["DqmEvaluation", "FaultEfficiency", "FlaggedRun", "MonitorResult", "MonitoringRef", "monitor_histograms"]

TOOL = "monitor_histograms"
MonitoringRef = Annotated[str, Accepts(("monitoring", "table")), Field(pattern=ARTIFACT_ID_PATTERN)]
Method = Literal["chi2", "autoencoder"]
_MAX_LISTED = 200


class FlaggedRun(BaseModel):
    """One run the monitoring flagged."""

    run: int = Field(description="Run (or lumisection) number.")
    chi2_ndf: float | None = Field(description="Score of its worst histogram (None: that histogram is empty).")
    histogram: str = Field(description="The histogram with the highest score.")
    true_fault: str | None = Field(description="Evaluation only: the injected fault ('' clean; None: no truth).")


class FaultEfficiency(BaseModel):
    """How well one fault type was caught (evaluation against the truth)."""

    fault: str = Field(description="Fault type, e.g. dead_channel, gain_drift, noise_burst.")
    n_runs: int = Field(description="Monitored runs with this fault.")
    n_flagged: int = Field(description="Of those, runs flagged.")
    efficiency: float = Field(description="n_flagged / n_runs.")
    n_episodes: int = Field(description="Stretches of consecutive runs with this fault.")
    n_episodes_detected: int = Field(description="Stretches with at least one flagged run.")
    missed_runs: list[int] = Field(description="Faulty runs not flagged (e.g. the first, small step of a drift).")


class DqmEvaluation(BaseModel):
    """Evaluation against the truth stored with the data; the monitoring itself never reads it."""

    per_fault: list[FaultEfficiency] = Field(description="Detection efficiency per fault type.")
    n_clean: int = Field(description="Monitored runs without a fault.")
    n_clean_flagged: int = Field(description="Clean runs flagged (false positives).")
    false_positive_rate: float = Field(description="n_clean_flagged / n_clean.")
    false_positive_runs: list[int] = Field(description="The clean runs that were flagged.")
    faults_in_reference: list[str] = Field(description="Fault types inside the reference runs (they are not "
                                                       "monitored and spoil the reference; start it later).")


class MonitorResult(ToolResult):
    """Per-run data-quality scores, the flagged runs and, with truth, the detection performance."""

    table: Artifact = Field(description="Per-run table (kind 'table'): run, chi2_ndf, histogram, flagged, method, "
                                        "role, chi2_ndf_<histogram>, true_fault.")
    plot: Artifact = Field(description="Figure (kind 'plot'): χ²/ndf per run with threshold and flagged runs, and "
                                       "the worst run's histogram against its reference band.")
    method: Method = Field(description="chi2 (EWMA reference) or autoencoder.")
    threshold: float = Field(description="χ²/ndf above which a run is flagged.")
    histograms: list[str] = Field(description="Histograms monitored per run.")
    n_runs: int = Field(description="Runs in the data.")
    n_reference: int = Field(description="Leading runs taken as good to build the reference (not monitored).")
    n_flagged: int = Field(description="Monitored runs flagged.")
    flagged_runs: list[int] = Field(description=f"Flagged run numbers (at most {_MAX_LISTED} listed).")
    flagged: list[FlaggedRun] = Field(description=f"Flagged runs with score and worst histogram (at most "
                                                  f"{_MAX_LISTED}).")
    median_chi2_ndf: float = Field(description="Median score of the monitored runs (≈ 1 when most runs are good).")
    evaluation: DqmEvaluation | None = Field(description="Evaluation against the data's fault truth: efficiency "
                                                         "per fault type and false-positive rate (None: no truth).")
    notes: list[str] = Field(description="Anything to know: weak settings, faults among the reference runs.")


@tool(category="anomaly", version="1")
def monitor_histograms(
    data: Annotated[MonitoringRef, Field(description=(
        "Id of a monitoring artifact (make_monitoring_data) or a table with columns run, bin (or bin_low), "
        "count and optionally histogram, bin_high, fault."))],
    method: Annotated[Method, Field(description=(
        "chi2: χ² against an EWMA reference of earlier good runs (DINAMO-like); autoencoder: χ² against a "
        "torch autoencoder's reconstruction, trained on the reference runs."),
        json_schema_extra={"x-phrases": {"ewma": "chi2", "dinamo": "chi2", "chi-square": "chi2",
                                         "autoencoder": "autoencoder", "neural network": "autoencoder"}})] = "chi2",
    threshold: Annotated[float | None, Field(gt=0, le=1e6, description=(
        "Flag a run when a histogram's χ²/ndf exceeds this (> 0; None: 3.0 for chi2, mean + k_sigma·σ of the "
        "reference runs' out-of-sample scores for the autoencoder)."))] = None,
    n_reference: Annotated[int, Field(ge=2, le=100_000, description=(
        "Leading runs taken as good: they start the EWMA reference or train the autoencoder (≥ 4) and are "
        "not monitored."))] = 10,
    alpha: Annotated[float, Field(gt=0, le=1, description=(
        "chi2: EWMA weight of the newest good run (0.1–0.3 typical; larger follows drifts faster)."))] = 0.2,
    histograms: Annotated[list[str] | None, Field(max_length=100, description=(
        "Names of the histograms to monitor, e.g. ['occupancy'] (None: all in the data)."))] = None,
    k_sigma: Annotated[float, Field(gt=0, le=100, description=(
        "autoencoder: threshold = mean + k_sigma·σ of the reference runs' out-of-sample scores, when threshold "
        "is None."))] = 5.0,
    epochs: Annotated[int, Field(ge=10, le=10_000, description="autoencoder: training epochs per network.")] = 200,
    seed: Annotated[int, Field(ge=0, description="Random seed (autoencoder initialisation and training).")] = 0,
    *,
    ctx: ToolContext,
) -> MonitorResult:
    """Monitor run-by-run histograms for data-quality problems and flag runs whose χ²/ndf exceeds a threshold.

    Compares each run with an EWMA reference of earlier good runs (or an autoencoder trained on them), returns
    the flagged runs, a per-run table and a plot, and — when the data carries fault truth — the detection
    efficiency per fault type and the false-positive rate.
    """
    source = ctx.artifact(data, "data")
    sequence = _load(source, data, histograms)
    _check_reference(sequence, n_reference, method, data)
    n_runs = len(sequence.runs)
    if method == "chi2":
        cut = DEFAULT_CHI2_THRESHOLD if threshold is None else threshold
        with ctx.progress("monitoring runs", total=n_runs - n_reference, unit="runs") as progress:
            scores = ewma_chi2(sequence, n_reference, alpha, cut, progress.advance)
    else:
        from physagent.tools.anomaly._dqm_autoencoder import autoencoder_scores, training_steps

        total = training_steps(epochs, len(sequence.histograms))
        with ctx.progress("training autoencoders", total=total, unit="epochs") as progress:
            scores = autoencoder_scores(sequence, n_reference, threshold, k_sigma, epochs, seed, progress.advance)
    monitored = np.arange(n_runs) >= n_reference
    evaluation = evaluate(sequence, scores.flagged, monitored)
    settings = {"method": method, "threshold": scores.threshold, "n_reference": n_reference, "alpha": alpha,
                "k_sigma": k_sigma, "epochs": epochs, "seed": seed}
    return _store(ctx, source, sequence, scores, settings, evaluation)


# --- checks ------------------------------------------------------------------------------------


def _load(source: Artifact, data: str, names: list[str] | None) -> Sequence:
    card = _card(source)
    sequence = read_sequence(source.path, source.kind, card, data)
    available = [h.name for h in sequence.histograms]
    if names is not None:
        unknown = [n for n in names if n not in available]
        if unknown or not names:
            raise ToolInputError.for_param(
                TOOL, "histograms", names, f"names histograms not in {data}: {', '.join(unknown) or 'none given'}. "
                f"Available: {', '.join(available)}; or leave histograms unset to monitor all.")
        sequence = Sequence(sequence.runs, [h for h in sequence.histograms if h.name in names], sequence.truth)
    for hist in sequence.histograms:
        if hist.counts.shape[1] < 2:
            raise ToolInputError.for_param(
                TOOL, "data", data, f"has histogram {hist.name!r} with a single bin; a shape test needs at least "
                "2 bins. Monitor histograms with several bins (or leave this one out with histograms=[...]).")
    return sequence


def _card(source: Artifact) -> dict[str, Any] | None:
    path = source.path.parent / "card.json"
    return json.loads(path.read_text()) if source.kind == "monitoring" and path.exists() else None


def _check_reference(sequence: Sequence, n_reference: int, method: str, data: str) -> None:
    n_runs = len(sequence.runs)
    if n_reference >= n_runs:
        raise ToolInputError.for_param(
            TOOL, "n_reference", n_reference, f"leaves no run to monitor: {data} holds {n_runs} run(s), and the "
            f"reference needs n_reference runs plus at least one more. Lower n_reference (below {n_runs}) or "
            "pass more runs.")
    if method == "autoencoder" and n_reference < 4:
        raise ToolInputError.for_param(
            TOOL, "n_reference", n_reference, "is too few to train and cross-check the autoencoder; it needs at "
            "least 4 reference runs (10 or more is better). Raise n_reference or use method='chi2'.")
    for hist in sequence.histograms:
        empty = np.flatnonzero(hist.counts[:n_reference].sum(axis=1) == 0)
        if empty.size:
            raise ToolInputError.for_param(
                TOOL, "data", data, f"has no entries in histogram {hist.name!r} of reference run "
                f"{sequence.runs[empty[0]]}; the reference is built from filled histograms. Drop the empty runs "
                "from the table or start the reference after them.")


# --- output ------------------------------------------------------------------------------------


def _store(ctx: ToolContext, source: Artifact, sequence: Sequence, scores: Scores, settings: dict[str, Any],
           evaluation: dict[str, Any] | None) -> MonitorResult:
    from physagent.tools.anomaly._dqm_plot import monitoring_figure
    from physagent.tools.data.plots import save_figure

    n_runs, n_reference = len(sequence.runs), settings["n_reference"]
    worst_value = np.where(np.isnan(scores.chi2_ndf), -np.inf, scores.chi2_ndf)
    worst_hist = np.argmax(worst_value, axis=1)
    run_score = worst_value[np.arange(n_runs), worst_hist]
    names = [h.name for h in sequence.histograms]
    table = _write_table(ctx, source, sequence, scores, settings, worst_hist, run_score)
    monitored = np.arange(n_runs) >= n_reference
    # the bottom panel shows the worst run with entries (an empty histogram has nothing to compare)
    shown = np.where(np.isfinite(run_score) & monitored, run_score, -np.inf)
    worst_run = int(np.argmax(shown)) if np.isfinite(shown).any() else int(np.argmax(monitored))
    worst = (worst_run, int(worst_hist[worst_run]))
    figure = monitoring_figure(sequence, scores, n_reference, settings["method"], worst)
    pending = ctx.new_artifact("plot")
    save_figure(figure, pending.directory)
    plot = pending.finish("plot.png", f"data-quality monitoring of {source.id}: χ²/ndf per run, worst run "
                          f"{sequence.runs[worst_run]}", {"source": source.id, **settings})
    flagged_index = np.flatnonzero(scores.flagged)
    flagged = [FlaggedRun(run=int(sequence.runs[k]), chi2_ndf=_finite(run_score[k]), histogram=names[worst_hist[k]],
                          true_fault=None if sequence.truth is None else sequence.truth[int(sequence.runs[k])])
               for k in flagged_index[:_MAX_LISTED]]
    finite = run_score[monitored][np.isfinite(run_score[monitored])]
    return MonitorResult(
        table=table, plot=plot, method=settings["method"], threshold=float(scores.threshold), histograms=names,
        n_runs=n_runs, n_reference=n_reference, n_flagged=int(scores.flagged.sum()),
        flagged_runs=[int(r) for r in sequence.runs[flagged_index[:_MAX_LISTED]]], flagged=flagged,
        median_chi2_ndf=float(np.median(finite)) if finite.size else 0.0,
        evaluation=None if evaluation is None else DqmEvaluation.model_validate(evaluation),
        notes=_notes(settings, evaluation, n_reference),
    )


def _write_table(ctx: ToolContext, source: Artifact, sequence: Sequence, scores: Scores, settings: dict[str, Any],
                 worst_hist: np.ndarray, run_score: np.ndarray) -> Artifact:
    import awkward as ak

    from physagent.tools._io import write_parquet

    n_runs = len(sequence.runs)
    role = np.where(np.arange(n_runs) < settings["n_reference"], "reference", "monitored")
    columns: dict[str, Any] = {
        "run": sequence.runs.astype(np.int64), "chi2_ndf": np.where(np.isneginf(run_score), np.nan, run_score),
        "histogram": ak.Array([sequence.histograms[j].name for j in worst_hist]), "flagged": scores.flagged,
        "method": ak.Array([settings["method"]] * n_runs), "role": ak.Array(role.tolist()),
    }
    for j, hist in enumerate(sequence.histograms):
        columns[f"chi2_ndf_{re.sub(r'[^0-9A-Za-z_]+', '_', hist.name)}"] = scores.chi2_ndf[:, j]
    if sequence.truth is not None:
        columns["true_fault"] = ak.Array([sequence.truth[int(r)] for r in sequence.runs])
    pending = ctx.new_artifact("table")
    write_parquet(ak.zip(columns, depth_limit=1), pending.directory / "table.parquet")
    summary = (f"data-quality scores ({settings['method']}) of {n_runs} runs from {source.id}: "
               f"{int(scores.flagged.sum())} flagged at χ²/ndf > {scores.threshold:.3g}")
    return pending.finish("table.parquet", summary, {"source": source.id, **settings, **scores.extra,
                                                      "histograms": [h.name for h in sequence.histograms]})


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _notes(settings: dict[str, Any], evaluation: dict[str, Any] | None, n_reference: int) -> list[str]:
    notes = []
    if settings["method"] == "chi2" and n_reference < 5:
        notes.append(f"n_reference={n_reference} is small: the starting reference and its spread are noisy; "
                     "10 or more good runs are better.")
    if evaluation and evaluation["faults_in_reference"]:
        notes.append(f"the reference runs contain faults ({', '.join(evaluation['faults_in_reference'])}); they "
                     "are not monitored and bias the reference. Start with clean runs or lower n_reference.")
    if settings["method"] == "autoencoder":
        notes.append("the autoencoder does not adapt: slow drifts beyond what the reference runs showed are "
                     "flagged too; retrain (rerun) with newer reference runs when conditions change.")
    return notes
