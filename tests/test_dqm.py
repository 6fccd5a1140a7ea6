"""Data-quality monitoring: synthetic monitoring data with injected faults, the EWMA χ² and autoencoder
monitors, a user's own histogram table, and the errors bad input gets."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from physagent.tools import CallOutcome, ToolInputError, Workspace, call_tool

FAULTS = ("dead_channel", "gain_drift", "noise_burst")


def _make(workspace: Workspace, **arguments: object) -> CallOutcome:
    return call_tool("make_monitoring_data", dict(arguments), workspace=workspace)


def _monitor(workspace: Workspace, data: str, **arguments: object) -> CallOutcome:
    return call_tool("monitor_histograms", {"data": data, **arguments}, workspace=workspace)


def _per_fault(outcome: CallOutcome) -> dict[str, object]:
    evaluation = outcome.result.evaluation
    assert evaluation is not None
    return {p.fault: p for p in evaluation.per_fault}


def _rows(outcome: CallOutcome, histogram: str) -> np.ndarray:
    """Counts of one generated histogram as a (run, bin) matrix."""
    table = ak.from_parquet(outcome.result.data.path)
    picked = table[table.histogram == histogram]
    return np.asarray(picked["count"]).reshape(outcome.result.n_runs, -1)


def _peak_gev(counts: np.ndarray) -> float:
    """Position of the calibration peak: a Gaussian on a linear background fitted to 35–58 GeV."""
    from scipy.optimize import curve_fit

    x, y = np.arange(35, 58) + 0.5, counts[35:58].astype(float)
    model = lambda e, a, mu, s, b0, b1: a * np.exp(-0.5 * ((e - mu) / s) ** 2) + b0 + b1 * (e - 45)  # noqa: E731
    return float(curve_fit(model, x, y, p0=[y.max(), 45.0, 2.0, y.min(), 0.0], sigma=np.sqrt(y + 1))[0][1])


# --- the generator -----------------------------------------------------------------------------


def test_generated_faults_do_what_their_names_say(workspace: Workspace) -> None:
    """A dead channel reads zero, a gain drift moves the 45 GeV peak by the set percentage, a noise burst adds hits."""
    made = _make(workspace, seed=3, gain_drift_percent=4.0)
    faults, dead = made.result.fault_runs, made.result.dead_channel
    occupancy, energy = _rows(made, "occupancy"), _rows(made, "energy")
    assert set(faults) == set(FAULTS) and made.result.n_clean_runs == 60 - sum(map(len, faults.values()))
    assert all(occupancy[r - 1, dead] == 0 for r in faults["dead_channel"])
    assert all(occupancy[r - 1, dead] > 500 for r in range(1, 11))
    before, last = faults["gain_drift"][0] - 1, faults["gain_drift"][-1]
    assert _peak_gev(energy[last - 1]) / _peak_gev(energy[before - 1]) == pytest.approx(1.04, abs=0.004)
    burst = faults["noise_burst"][0]
    share = energy[:, 0] / energy.sum(axis=1)  # hits below 1 GeV: noise is soft
    assert share[burst - 1] > 1.2 * share[burst - 2]
    assert occupancy[burst - 1].sum() == pytest.approx(1.1 * occupancy[burst - 2].sum(), rel=0.25)


def test_same_seed_gives_the_same_monitoring_data_and_the_card_holds_the_truth(workspace: Workspace) -> None:
    """Equal seeds give byte-identical artifacts; card.json carries binning units and the fault truth."""
    first = _make(workspace, seed=5, n_runs=30, dead_channel_runs=[], gain_drift_runs=[], noise_burst_runs=[20])
    again = call_tool("make_monitoring_data", {"seed": 5, "n_runs": 30, "dead_channel_runs": [],
                                               "gain_drift_runs": [], "noise_burst_runs": [20]},
                      workspace=workspace, use_cache=False)
    assert first.result.data.sha256 == again.result.data.sha256 and first.result.data.id.startswith("mon-")
    card = first.result.data.metadata
    assert card["faults"] == [{"run": 20, "fault": "noise_burst"}] and card["axes"]["energy"]["unit"] == "GeV"
    assert first.result.dead_channel is None and first.result.n_clean_runs == 29


# --- the EWMA χ² monitor -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chi2_monitor_flags_every_fault_type_and_no_clean_run(workspace: Workspace, seed: int) -> None:
    """At the default threshold every fault episode is caught, dead channels and bursts in every run, no clean run."""
    made = _make(workspace, seed=seed)
    outcome = _monitor(workspace, made.result.data.id)
    per_fault = _per_fault(outcome)
    assert set(per_fault) == set(FAULTS)
    assert all(p.n_episodes_detected == p.n_episodes for p in per_fault.values())
    assert per_fault["dead_channel"].efficiency == 1.0 and per_fault["noise_burst"].efficiency == 1.0
    # the drift ramps 0.5 % per run: only its first step may stay below threshold
    assert per_fault["gain_drift"].missed_runs in ([], made.result.fault_runs["gain_drift"][:1])
    evaluation = outcome.result.evaluation
    assert evaluation.n_clean == 40 and evaluation.n_clean_flagged == 0 and evaluation.false_positive_rate == 0.0
    assert outcome.result.threshold == 3.0 and 0.8 < outcome.result.median_chi2_ndf < 1.2


def test_chi2_monitor_writes_a_per_run_table_and_a_plot(workspace: Workspace) -> None:
    """The table has one row per run with the scores; the plot artifact holds PNG and PDF."""
    made = _make(workspace, seed=0)
    result = _monitor(workspace, made.result.data.id).result
    table = ak.from_parquet(result.table.path)
    assert len(table) == 60 and {"run", "chi2_ndf", "flagged", "method", "role", "chi2_ndf_occupancy",
                                 "chi2_ndf_energy", "true_fault"} <= set(ak.fields(table))
    flagged = np.asarray(table.run)[np.asarray(table.flagged)]
    assert flagged.tolist() == result.flagged_runs and set(np.asarray(table.method).tolist()) == {"chi2"}
    assert np.isnan(np.asarray(table.chi2_ndf)[:10]).all()  # reference runs are not scored
    assert result.plot.files == ["plot.pdf", "plot.png"] and result.plot.path.stat().st_size > 10_000
    assert all(f.chi2_ndf > 3.0 and f.true_fault in FAULTS for f in result.flagged)


def test_a_flagged_run_never_enters_the_reference(workspace: Workspace) -> None:
    """A channel dead for ten runs is flagged in all ten: the fault does not become the reference."""
    made = _make(workspace, seed=4, dead_channel_runs=list(range(20, 30)), gain_drift_runs=[], noise_burst_runs=[])
    result = _monitor(workspace, made.result.data.id, histograms=["occupancy"]).result
    assert result.flagged_runs == list(range(20, 30)) and result.histograms == ["occupancy"]


# --- the autoencoder ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_autoencoder_flags_the_faults_and_no_clean_run(workspace: Workspace, seed: int) -> None:
    """The autoencoder, thresholded from out-of-sample reference scores, catches every fault episode."""
    made = _make(workspace, seed=seed)
    outcome = _monitor(workspace, made.result.data.id, method="autoencoder", seed=seed)
    per_fault = _per_fault(outcome)
    assert per_fault["dead_channel"].efficiency == 1.0 and per_fault["noise_burst"].efficiency == 1.0
    assert per_fault["gain_drift"].n_episodes_detected == 1 and per_fault["gain_drift"].efficiency >= 5 / 6
    assert outcome.result.evaluation.n_clean_flagged == 0
    assert 1.2 < outcome.result.threshold < 4.0 and outcome.result.method == "autoencoder"


# --- a user's own histograms -------------------------------------------------------------------


def _user_table(path: Path, *, n_runs: int = 30, dead: tuple[int, int] = (25, 7), rows: list[str] | None = None
                ) -> Path:
    """A CSV of 20-bin Gaussian-shaped histograms, one bin of run ``dead[0]`` empty, with a fault column."""
    rng = np.random.default_rng(11)
    shape = np.exp(-0.5 * ((np.arange(20) - 9.5) / 4.0) ** 2)
    lines = rows if rows is not None else ["run,bin,count,fault"]
    if rows is None:
        for run in range(1, n_runs + 1):
            counts = rng.poisson(20_000 * shape / shape.sum())
            if run == dead[0]:
                counts[dead[1]] = 0
            lines += [f"{run},{b},{c},{'dead_bin' if run == dead[0] else ''}" for b, c in enumerate(counts)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _read(workspace: Workspace, path: Path) -> str:
    return call_tool("read_table", {"path": str(path)}, workspace=workspace).result.data.id


def test_a_users_table_of_runs_bins_and_counts_is_monitored(
        workspace: Workspace, tmp_path: Path, grant_pytest_temp: None) -> None:
    """A CSV with run, bin, count (and a fault column) read with read_table is monitored and evaluated."""
    table = _read(workspace, _user_table(tmp_path / "dqm.csv"))
    result = _monitor(workspace, table).result
    assert result.flagged_runs == [25] and result.histograms == ["histogram"] and result.n_runs == 30
    assert result.evaluation.per_fault[0].fault == "dead_bin" and result.evaluation.per_fault[0].efficiency == 1.0
    assert result.evaluation.n_clean == 19 and result.evaluation.n_clean_flagged == 0


def test_named_histograms_with_bin_edges_and_real_run_numbers_are_monitored(
        workspace: Workspace, tmp_path: Path, grant_pytest_temp: None) -> None:
    """Two named histograms with bin edges, run numbers with gaps: an emptied run and a shifted shape are flagged."""
    rng = np.random.default_rng(2)
    edges = np.linspace(0.0, 10.0, 21)
    shape = np.exp(-0.5 * ((edges[:-1] + 0.25 - 5.0) / 2.0) ** 2)
    lines = ["run,histogram,bin_low,bin_high,count,fault"]
    for run in range(355100, 355150, 2):
        for name, expected in (("pt", shape), ("flat", np.ones(20))):
            counts = rng.poisson(5000 * expected / expected.sum())
            fault = {(355130, "flat"): "empty", (355140, "pt"): "shift"}.get((run, name), "")
            counts = counts * 0 if fault == "empty" else rng.poisson(5000 * np.roll(shape, 1) / shape.sum()) if (
                fault == "shift") else counts
            lines += [f"{run},{name},{lo:g},{hi:g},{n},{fault}" for lo, hi, n in zip(edges[:-1], edges[1:], counts,
                                                                                   strict=True)]
    table = _read(workspace, _user_table(tmp_path / "named.csv", rows=lines))
    result = _monitor(workspace, table, n_reference=5).result
    assert result.histograms == ["pt", "flat"] and result.flagged_runs == [355130, 355140]
    empty, shifted = result.flagged
    assert (empty.chi2_ndf, empty.histogram, shifted.histogram) == (None, "flat", "pt") and shifted.chi2_ndf > 5
    assert result.evaluation.n_clean_flagged == 0 and {p.fault for p in result.evaluation.per_fault} == {
        "empty", "shift"}


def test_the_autoencoder_monitor_is_reproducible(workspace: Workspace) -> None:
    """The same seed gives the same per-run table and plot, byte for byte."""
    data = _make(workspace, seed=0, n_runs=30).result.data.id
    arguments = {"data": data, "method": "autoencoder", "epochs": 30, "seed": 4}
    first = call_tool("monitor_histograms", arguments, workspace=workspace).result
    again = call_tool("monitor_histograms", arguments, workspace=workspace, use_cache=False).result
    assert (first.table.sha256, first.plot.sha256) == (again.table.sha256, again.plot.sha256)


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("rows", "message"), [
    (["run,bin,count"], r"data='tab-[0-9a-f]+' holds no rows, so there are no histograms to monitor"),
    (["run,bin,count", "1,0,5", "1,1,6", "2,0,5", "2,1,-3", "3,0,4", "3,1,4"],
     r"has negative counts \(run 2: count -3\); bin contents are entries and must be ≥ 0"),
    (["run,bin,count", "1,0,5", "1,1,6", "2,0,5", "2,1,6", "2,2,7", "3,0,4", "3,1,4"],
     r"has histograms with different binning between runs: 'histogram' has 2 bins in run 1 but 3 distinct bins "
     r"over all runs\. .* rebin the runs to one binning first"),
    (["run,bin_low,bin_high,count", "1,0,1,5", "1,1,2,6", "2,0,1,5", "2,1,3,6"],
     r"different binning between runs: bin_high of histogram 'histogram' differs from run to run"),
    (["run,channel,count", "1,0,5"], r"lacks the column\(s\) bin \(it has run, channel, count\)"),
])
def test_bad_tables_are_refused_with_the_fix(
        workspace: Workspace, tmp_path: Path, grant_pytest_temp: None, rows: list[str], message: str) -> None:
    """Empty tables, negative counts, binning that changes between runs and missing columns are input errors."""
    table = _read(workspace, _user_table(tmp_path / "bad.csv", rows=rows))
    with pytest.raises(ToolInputError, match=message) as info:
        _monitor(workspace, table, n_reference=2)
    assert info.value.param == "data"


def test_bad_settings_are_refused_naming_the_parameter(
        workspace: Workspace, tmp_path: Path, grant_pytest_temp: None) -> None:
    """Threshold ≤ 0, too few runs for the reference and unknown histograms are refused before any work."""
    table = _read(workspace, _user_table(tmp_path / "dqm.csv", n_runs=8))
    cases = [
        ({"threshold": 0.0}, "threshold", r"monitor_histograms: threshold=0.0 must be greater than 0"),
        ({"threshold": -2.0}, "threshold", r"threshold=-2.0 must be greater than 0 — Flag a run when"),
        ({"n_reference": 8}, "n_reference", r"n_reference=8 leaves no run to monitor: .* holds 8 run\(s\).* Lower "
                                            r"n_reference \(below 8\) or pass more runs"),
        ({"method": "autoencoder", "n_reference": 3}, "n_reference", r"needs at least 4 reference runs"),
        ({"histograms": ["energy"]}, "histograms", r"names histograms not in .*: energy\. Available: histogram"),
    ]
    for arguments, param, message in cases:
        with pytest.raises(ToolInputError, match=message) as info:
            _monitor(workspace, table, **arguments)
        assert info.value.param == param


@pytest.mark.parametrize(("arguments", "param", "message"), [
    ({"gain_drift_runs": [0, 1]}, "gain_drift_runs", r"lists run\(s\) \[0\] outside 1 … n_runs=60"),
    ({"dead_channel_runs": [30], "noise_burst_runs": [30]}, "noise_burst_runs",
     r"shares run\(s\) \[30\] with dead_channel_runs; one fault per run"),
    ({"dead_channel": 70}, "dead_channel", r"must be a channel number below n_channels=64\. Pick 0 … 63"),
])
def test_bad_fault_scenarios_are_refused(no_workspace_writes: Workspace, arguments: dict[str, object], param: str,
                                         message: str) -> None:
    """Fault runs outside the sequence, two faults in one run, or a channel that does not exist are input errors."""
    with pytest.raises(ToolInputError, match=message) as info:
        _make(no_workspace_writes, **arguments)
    assert info.value.param == param
