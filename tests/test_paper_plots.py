"""Paper-style plots: sample legends, the Simulation label with √s and L, ratio panel, statistical band."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
import matplotlib.pyplot as plt
import pytest
from matplotlib.patches import StepPatch

from physagent.tools import CallOutcome, Workspace, call_tool
from physagent.tools._errors import ToolInputError
from physagent.tools.data import plots

_DIJET = "QCD dijet, p̂T > 20 GeV, Pythia8, 13.6 TeV"
_DRELL_YAN = "Drell–Yan μμ, Pythia8, 13.6 TeV"


@pytest.fixture(scope="module")
def two_samples(drell_yan_sample: CallOutcome, shared_workspace: Workspace) -> list[str]:
    """p̂T histograms (0–100 GeV, 20 bins, L = 10 fb⁻¹) of Drell–Yan and of 150 dijet events (MPI, hadronisation off)."""
    dijet = call_tool("generate_events", {"process": "qcd_dijet", "n_events": 150, "mpi": False,
                                          "hadronisation": False, "seed": 21}, workspace=shared_workspace)
    ids = []
    for sample in (drell_yan_sample, dijet):
        result = call_tool("histogram", {"source": sample.result.events.id, "field": "pt_hat_gev", "bins": 20,
                                         "range_min": 0.0, "range_max": 100.0, "luminosity_fb": 10.0},
                           workspace=shared_workspace).result
        ids.append(result.histogram.id)
    return ids


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The figures plot saves, kept for inspection (the files are written as usual)."""
    kept: list[Any] = []
    original = plots.save_figure

    def keep(figure: Any, directory: Path) -> None:
        kept.append(figure)
        original(figure, directory)

    monkeypatch.setattr(plots, "save_figure", keep)
    return kept


def _texts(figure: Any) -> list[str]:
    return [t.get_text() for ax in figure.axes for t in ax.texts if t.get_text()]


def _bands(ax: Any) -> int:
    return sum(isinstance(p, StepPatch) and p.get_fill() for p in ax.patches)


def test_paper_plot_has_label_ratio_and_band(
    two_samples: list[str], shared_workspace: Workspace, figures: list[Any]
) -> None:
    """Simulation label with 'L fb⁻¹ (13.6 TeV)', a ratio panel, sample legend, bands; no pyplot; same bytes."""
    assert plt.get_fignums() == []
    arguments = {"histograms": two_samples, "ratio": True}
    result = call_tool("plot", arguments, workspace=shared_workspace, use_cache=False).result
    figure = figures[-1]
    texts = _texts(figure)
    assert "Simulation" in texts and any("(13.6 TeV)" in t and "10 fb" in t for t in texts)
    main, ratio = figure.axes
    assert [t.get_text() for t in main.get_legend().get_texts()] == [_DRELL_YAN, _DIJET] == result.legend
    assert _bands(main) == 2 and _bands(ratio) == 1
    assert main.get_ylabel().startswith("Events / bin") and ratio.get_ylabel() == "Ratio"
    assert result.style == "neutral" and result.experiment_label == "Simulation | 10 fb⁻¹ (13.6 TeV)"
    assert plt.get_fignums() == []
    again = call_tool("plot", arguments, workspace=shared_workspace, use_cache=False).result
    assert again.plot.sha256 == result.plot.sha256
    assert (again.plot.directory / "plot.pdf").read_bytes() == (result.plot.directory / "plot.pdf").read_bytes()


def test_private_work_label_takes_the_given_energy_and_none_draws_no_label(
    two_samples: list[str], shared_workspace: Workspace, figures: list[Any]
) -> None:
    """label='private_work' with sqrt_s_tev=13 says 'Private work' and '(13 TeV)'; label='none' writes no text."""
    result = call_tool("plot", {"histograms": two_samples[:1], "label": "private_work", "sqrt_s_tev": 13.0,
                                "stat_band": False, "style": "CMS"}, workspace=shared_workspace).result
    texts = _texts(figures[-1])
    assert "Private work" in texts and "10 fb$^{-1}$ (13 TeV)" in texts and "Simulation" not in texts
    assert _bands(figures[-1].axes[0]) == 0 and result.style == "CMS"
    call_tool("plot", {"histograms": two_samples[:1], "label": "none"}, workspace=shared_workspace)
    assert _texts(figures[-1]) == []


def test_ratio_needs_two_histograms_with_the_same_bins(
    two_samples: list[str], drell_yan_sample: CallOutcome, shared_workspace: Workspace
) -> None:
    """ratio with one histogram, or with different bins, is refused naming ratio."""
    with pytest.raises(ToolInputError, match=r"plot: ratio=True needs at least two 1-D histograms"):
        call_tool("plot", {"histograms": two_samples[:1], "ratio": True}, workspace=shared_workspace)
    other = call_tool("histogram", {"source": drell_yan_sample.result.events.id, "field": "pt_hat_gev", "bins": 10,
                                    "range_min": 0.0, "range_max": 100.0}, workspace=shared_workspace).result
    with pytest.raises(ToolInputError, match=r"plot: ratio=True needs histograms with the same bins"):
        call_tool("plot", {"histograms": [two_samples[0], other.histogram.id], "ratio": True},
                  workspace=shared_workspace)


@pytest.mark.usefixtures("grant_pytest_temp")
def test_legend_names_a_file_by_its_stem_and_unnormalised_axes_say_entries(
    tmp_path: Path, workspace: Workspace, figures: list[Any]
) -> None:
    """A histogram of a file read from disk is named by the file's stem; without L the y axis counts entries."""
    path = tmp_path / "my_ntuple.parquet"
    ak.to_parquet(ak.Array({"mass_gev": [1.0, 2.0, 2.5, 3.0]}), path)
    table = call_tool("read_table", {"path": str(path)}, workspace=workspace).result.data.id
    hist_id = call_tool("histogram", {"source": table, "field": "mass_gev", "bins": 4},
                        workspace=workspace).result.histogram.id
    result = call_tool("plot", {"histograms": [hist_id]}, workspace=workspace).result
    assert result.legend == ["my_ntuple"] and result.y_label == "Entries / bin"
    assert "Simulation" in _texts(figures[-1]) and result.experiment_label == "Simulation"
