r"""``make_monitoring_data``: synthetic detector-monitoring histograms, run by run, with injected faults.

Each run (or lumisection) of a toy calorimeter with ``n_channels`` readout channels gives two
histograms, as a data-quality-monitoring (DQM) system would book them:

- ``occupancy``: hits per channel (bin = channel number, 0 … n_channels − 1);
- ``energy``: the hit-energy spectrum, 60 bins of 1 GeV from 0 to 60 GeV (hits above 60 GeV are
  not booked): soft pile-up hits (exponential, 2 GeV slope), hard hits (12 GeV slope) and an
  electron calibration peak at 45 GeV (σ = 1.8 GeV).

Counts are multinomial in the run's number of hits, N ~ Poisson(hits_per_run · L), and clean data
drift slowly the way real conditions do: the instantaneous luminosity L falls within each fill of
six runs (1.15 → 0.85) and jitters by 3 % (hits, and the pile-up share of soft hits, follow it); the
gain oscillates by ±0.1 % (temperature, 30-run period); the beam spot moves the occupancy map's
left-right asymmetry by ±0.5 %.

Injected faults (the runs are chosen by the caller, or by a default scenario after run 10):

- ``dead_channel``: one channel reads zero (occupancy bin empties; the energy shape is unchanged);
- ``gain_drift``: the energy scale drifts linearly over the listed runs up to ``gain_drift_percent``
  (the spectrum and its 45 GeV peak move), then is recalibrated;
- ``noise_burst``: extra hits, ``noise_burst_fraction`` of the run's hits, spread over all channels
  with an exponential 0.8 GeV energy spectrum (the soft end of the energy spectrum jumps; the
  occupancy map only flattens slightly).

The artifact (kind ``monitoring``) holds ``monitoring.parquet``, one row per run, histogram and bin:
``run`` (int), ``histogram`` (name), ``bin`` (index from 0), ``bin_low``, ``bin_high`` (edges, in the
histogram's unit) and ``count`` (entries, ≥ 0) — the same table a user passes to
``monitor_histograms`` for real data — and ``card.json``: binning, axis labels and units, the
generator settings and the truth (which runs are faulty and how), which only the evaluation reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from physagent.tools._artifacts import Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import ToolResult, tool

__all__ = ["FAULT_TYPES", "MonitoringData", "make_monitoring_data"]

FAULT_TYPES = ("dead_channel", "gain_drift", "noise_burst")
ENERGY_EDGES_GEV = np.linspace(0.0, 60.0, 61)
CLEAN_START = 10  # the default scenario leaves runs 1 … 10 clean, for the reference
FILL_RUNS = 6  # runs per LHC-like fill: the luminosity falls within a fill and jumps back at a refill
_SOFT_GEV, _HARD_GEV, _NOISE_GEV = 2.0, 12.0, 0.8
_PEAK_GEV, _PEAK_SIGMA_GEV, _PEAK_SHARE = 45.0, 1.8, 0.08

RunList = Annotated[list[int] | None, Field(max_length=1000, description=(
    "Run numbers (1 … n_runs) with this fault; None: the default scenario, []: none."))]


class MonitoringData(ToolResult):
    """A sequence of monitoring histograms with known injected faults."""

    data: Artifact = Field(description="The monitoring artifact (kind 'monitoring'): monitoring.parquet "
                                       "(run, histogram, bin, bin_low, bin_high, count) and card.json.")
    n_runs: int = Field(description="Runs generated, numbered 1 … n_runs.")
    histograms: list[str] = Field(description="Histogram names per run: occupancy (hits per channel) and "
                                              "energy (hit energy, GeV).")
    mean_hits_per_run: float = Field(description="Mean entries per run in the occupancy histogram (noise hits "
                                                 "included).")
    fault_runs: dict[str, list[int]] = Field(description="Truth: the runs of each injected fault type "
                                                         "(for evaluation only).")
    dead_channel: int | None = Field(description="The channel that goes dead (None: no dead-channel fault).")
    n_clean_runs: int = Field(description="Runs without any injected fault.")


@tool(category="anomaly", version="1")
def make_monitoring_data(
    n_runs: Annotated[int, Field(ge=20, le=10_000, description="Runs (or lumisections) to generate.")] = 60,
    hits_per_run: Annotated[int, Field(ge=1_000, le=100_000_000, description=(
        "Mean hits per run at nominal luminosity; more hits, smaller statistical fluctuations."))] = 100_000,
    n_channels: Annotated[int, Field(ge=8, le=4096, description="Readout channels (bins of the occupancy "
                                                               "histogram).")] = 64,
    dead_channel_runs: RunList = None,
    gain_drift_runs: RunList = None,
    noise_burst_runs: RunList = None,
    dead_channel: Annotated[int | None, Field(ge=0, le=4095, description=(
        "Channel that goes dead in the dead-channel runs (None: a random one, from the seed)."))] = None,
    gain_drift_percent: Annotated[float, Field(ge=-20, le=20, description=(
        "Energy-scale shift in % reached at the last gain-drift run (linear ramp from the first)."))] = 3.0,
    noise_burst_fraction: Annotated[float, Field(gt=0, le=5, description=(
        "Extra noise hits in a noise-burst run, as a fraction of the run's hits."))] = 0.1,
    seed: Annotated[int, Field(ge=0, description="Random seed; same seed, same histograms.")] = 0,
    *,
    ctx: ToolContext,
) -> MonitoringData:
    """Generate synthetic run-by-run monitoring histograms with injected dead-channel, gain-drift and noise faults.

    Returns a monitoring artifact (occupancy per channel and hit-energy spectrum in GeV for every run,
    Poisson counts, slow realistic drifts) with the truth of which runs are faulty, for monitor_histograms.
    """
    if dead_channel is not None and dead_channel >= n_channels:
        raise ToolInputError.for_param(
            "make_monitoring_data", "dead_channel", dead_channel,
            f"must be a channel number below n_channels={n_channels}. Pick 0 … {n_channels - 1}.")
    rng = np.random.default_rng(seed)
    faults = _fault_runs(n_runs, {"dead_channel": dead_channel_runs, "gain_drift": gain_drift_runs,
                                  "noise_burst": noise_burst_runs})
    dead = dead_channel if dead_channel is not None else int(rng.integers(n_channels))
    settings = Settings(n_runs, hits_per_run, n_channels, dead, gain_drift_percent / 100.0, noise_burst_fraction)
    with ctx.progress("generating runs", total=n_runs, unit="runs") as progress:
        rows = generate(settings, faults, rng, progress.advance)
    return _store(ctx, rows, settings, faults, seed)


# --- the fault scenario ------------------------------------------------------------------------


def default_scenario(n_runs: int) -> dict[str, list[int]]:
    """Faults spread over the runs after :data:`CLEAN_START`: two dead-channel runs, a gain drift over 3 to 6
    runs, two single-run noise bursts."""
    first, span = CLEAN_START + 1, n_runs - CLEAN_START
    at = lambda share: first + int(share * span)  # noqa: E731
    drift = max(3, min(6, span // 8))
    return {"dead_channel": [at(0.15), at(0.15) + 1], "gain_drift": list(range(at(0.4), at(0.4) + drift)),
            "noise_burst": [at(0.7), min(at(0.9), n_runs)]}


def _fault_runs(n_runs: int, given: dict[str, list[int] | None]) -> dict[str, list[int]]:
    defaults = default_scenario(n_runs)
    chosen = {kind: sorted(set(defaults[kind] if runs is None else runs)) for kind, runs in given.items()}
    owner: dict[int, str] = {}
    for kind, runs in chosen.items():
        outside = [r for r in runs if not 1 <= r <= n_runs]
        if outside:
            raise ToolInputError.for_param(
                "make_monitoring_data", f"{kind}_runs", given[kind],
                f"lists run(s) {outside[:5]} outside 1 … n_runs={n_runs}. Use run numbers from 1 to {n_runs}.")
        twice = [r for r in runs if r in owner]
        if twice:
            raise ToolInputError.for_param(
                "make_monitoring_data", f"{kind}_runs", given[kind],
                f"shares run(s) {twice[:5]} with {owner[twice[0]]}_runs; one fault per run keeps the truth "
                "unambiguous. Move one of them.")
        owner.update(dict.fromkeys(runs, kind))
    return chosen


# --- the detector model ------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    n_runs: int
    hits_per_run: int
    n_channels: int
    dead_channel: int
    gain_drift: float  # fractional energy-scale shift at the end of the drift
    noise_fraction: float


def generate(settings: Settings, faults: dict[str, list[int]], rng: np.random.Generator,
             advance: Any = None) -> dict[str, np.ndarray]:
    """Counts of every run: ``{"run", "histogram", "bin", "count"}`` columns, occupancy before energy."""
    channel_eff = rng.uniform(0.92, 1.08, settings.n_channels)  # fixed channel-to-channel response
    x = (np.arange(settings.n_channels) + 0.5) / settings.n_channels * 2.0 - 1.0  # position across the detector
    drift_step = {run: (i + 1) / len(faults["gain_drift"]) for i, run in enumerate(faults["gain_drift"])}
    occupancy, energy = [], []
    for run in range(1, settings.n_runs + 1):
        lumi = 1.15 * np.exp(-0.055 * ((run - 1) % FILL_RUNS)) * (1.0 + 0.03 * rng.standard_normal())
        hits = int(rng.poisson(settings.hits_per_run * lumi))
        gain = 1.0 + 0.001 * np.sin(2 * np.pi * run / 30.0) + settings.gain_drift * drift_step.get(run, 0.0)
        profile = (1.0 + 0.8 * x**2) * channel_eff * (1.0 + 0.005 * np.sin(2 * np.pi * run / 40.0) * x)
        if run in faults["dead_channel"]:
            profile[settings.dead_channel] = 0.0
        occ = rng.multinomial(hits, profile / profile.sum())
        spectrum = rng.multinomial(hits, _energy_probabilities(gain, 0.25 + 0.01 * (lumi - 1.0)))[:-1]
        if run in faults["noise_burst"]:
            noise = int(rng.poisson(settings.noise_fraction * hits))
            occ = occ + rng.multinomial(noise, np.full(settings.n_channels, 1.0 / settings.n_channels))
            spectrum = spectrum + rng.multinomial(noise, _exponential_probabilities(_NOISE_GEV))[:-1]
        occupancy.append(occ)
        energy.append(spectrum)
        if advance is not None:
            advance()
    return _long_table(np.asarray(occupancy), np.asarray(energy))


def _energy_probabilities(gain: float, soft_share: float) -> np.ndarray:
    """Probability per 1 GeV bin (and a last entry for ≥ 60 GeV) of a hit seen with energy scale ``gain``."""
    from scipy.stats import norm

    edges = ENERGY_EDGES_GEV / gain  # E_seen = gain · E_true
    hard_share = 1.0 - soft_share - _PEAK_SHARE
    cdf = (soft_share * (1.0 - np.exp(-edges / _SOFT_GEV)) + hard_share * (1.0 - np.exp(-edges / _HARD_GEV))
           + _PEAK_SHARE * norm.cdf(edges, _PEAK_GEV, _PEAK_SIGMA_GEV))
    return _with_overflow(np.diff(cdf))


def _exponential_probabilities(slope_gev: float) -> np.ndarray:
    return _with_overflow(np.diff(1.0 - np.exp(-ENERGY_EDGES_GEV / slope_gev)))


def _with_overflow(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 0.0, None)
    return np.append(p, max(0.0, 1.0 - p.sum()))


def _long_table(occupancy: np.ndarray, energy: np.ndarray) -> dict[str, np.ndarray]:
    n_runs, n_channels = occupancy.shape
    channel_edges = np.arange(n_channels + 1, dtype=np.float64)
    parts = [("occupancy", occupancy, channel_edges), ("energy", energy, ENERGY_EDGES_GEV)]
    columns: dict[str, list[np.ndarray]] = {k: [] for k in ("run", "histogram", "bin", "bin_low", "bin_high", "count")}
    for name, counts, edges in parts:
        n_bins = counts.shape[1]
        columns["run"].append(np.repeat(np.arange(1, n_runs + 1, dtype=np.int64), n_bins))
        columns["histogram"].append(np.full(n_runs * n_bins, name, dtype=object))
        columns["bin"].append(np.tile(np.arange(n_bins, dtype=np.int64), n_runs))
        columns["bin_low"].append(np.tile(edges[:-1], n_runs))
        columns["bin_high"].append(np.tile(edges[1:], n_runs))
        columns["count"].append(counts.reshape(-1).astype(np.int64))
    return {k: np.concatenate(v) for k, v in columns.items()}


# --- the artifact ------------------------------------------------------------------------------


def histogram_axes() -> dict[str, dict[str, Any]]:
    """Axis label and unit of each generated histogram (written into card.json)."""
    return {"occupancy": {"label": "channel", "unit": "", "y_label": "hits per channel"},
            "energy": {"label": "hit energy [GeV]", "unit": "GeV", "y_label": "hits per GeV"}}


def _store(ctx: ToolContext, rows: dict[str, np.ndarray], settings: Settings, faults: dict[str, list[int]],
           seed: int) -> MonitoringData:
    import awkward as ak

    from physagent.tools._io import write_json, write_parquet

    is_occupancy = rows["histogram"] == "occupancy"
    occupancy_entries = np.bincount(rows["run"], weights=np.where(is_occupancy, rows["count"], 0))[1:]
    pending = ctx.new_artifact("monitoring")
    array = ak.zip({k: ak.Array(v.tolist()) if v.dtype == object else v for k, v in rows.items()}, depth_limit=1)
    write_parquet(array, pending.directory / "monitoring.parquet")
    truth = [{"run": run, "fault": kind} for run, kind in sorted((r, k) for k, runs in faults.items() for r in runs)]
    dead = settings.dead_channel if faults["dead_channel"] else None
    card = {"generator": "make_monitoring_data", "seed": seed, "n_runs": settings.n_runs,
            "hits_per_run": settings.hits_per_run, "n_channels": settings.n_channels, "dead_channel": dead,
            "gain_drift_percent": 100.0 * settings.gain_drift, "noise_burst_fraction": settings.noise_fraction,
            "axes": histogram_axes(), "faults": truth}
    write_json(card, pending.directory / "card.json")
    n_faulty = sum(len(r) for r in faults.values())
    summary = (f"monitoring data: {settings.n_runs} runs × (occupancy of {settings.n_channels} channels, energy "
               f"spectrum 0–60 GeV), {settings.hits_per_run:,} hits/run, {n_faulty} faulty runs injected")
    artifact = pending.finish("monitoring.parquet", summary, card)
    return MonitoringData(data=artifact, n_runs=settings.n_runs, histograms=["occupancy", "energy"],
                          mean_hits_per_run=float(occupancy_entries.mean()), fault_runs=faults, dead_channel=dead,
                          n_clean_runs=settings.n_runs - n_faulty)
