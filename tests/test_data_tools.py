"""The data tools: ROOT in and out, tables, histograms and plots, on small real Pythia samples."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import awkward as ak
import h5py
import numpy as np
import pandas as pd
import pytest
import uproot

from physagent.tools import CallOutcome, ToolInputError, Workspace, call_tool
from physagent.tools.data import load_histogram

# these tests read files pytest writes (tmp_path, the shared samples); they grant that folder
pytestmark = pytest.mark.usefixtures("grant_pytest_temp")


def _assert_same_arrays(expected: ak.Array, actual: ak.Array) -> None:
    """Field by field (records included): same type and same values."""
    assert ak.fields(actual) == ak.fields(expected)
    for name in ak.fields(expected):
        assert str(actual[name].type) == str(expected[name].type), name
        for sub in ak.fields(expected[name]):
            assert ak.array_equal(actual[name][sub], expected[name][sub]), f"{name}.{sub}"
        assert ak.array_equal(actual[name], expected[name]), name


def _import(sample: CallOutcome, workspace: Workspace) -> str:
    """Copy a shared sample's events into ``workspace`` (the shared workspace stays untouched)."""
    return call_tool("read_table", {"path": str(sample.result.events.path)}, workspace=workspace).result.data.id


def _round_trip(sample: CallOutcome, workspace: Workspace, fmt: str) -> tuple[CallOutcome, CallOutcome]:
    source = _import(sample, workspace)
    written = call_tool("write_root", {"source": source, "format": fmt}, workspace=workspace)
    read = call_tool("read_root", {"path": str(written.result.root.path)}, workspace=workspace)
    return written, read


@contextmanager
def _unchanged(workspace: Workspace) -> Iterator[None]:
    """Checks that no file appears in or disappears from a (shared) workspace."""
    before = sorted(workspace.root.rglob("*"))
    yield
    assert sorted(workspace.root.rglob("*")) == before


def test_ttree_round_trip_preserves_every_jagged_branch_of_ttbar_events(
    ttbar_sample: CallOutcome, workspace: Workspace
) -> None:
    """events → write_root(ttree) → read_root gives back the same events, records and dtypes included."""
    written, read = _round_trip(ttbar_sample, workspace, "ttree")
    assert {"nparticles", "particles_px", "particles_charge", "npartons", "weight"} <= set(written.result.branches)
    assert written.result.root.path.name == "events.root"
    assert read.result.kind == "events"
    assert read.result.data.path.name == "events.parquet"
    _assert_same_arrays(ak.from_parquet(ttbar_sample.result.events.path), ak.from_parquet(read.result.data.path))


def test_rntuple_round_trip_preserves_ttbar_events(ttbar_sample: CallOutcome, workspace: Workspace) -> None:
    """The RNTuple path round-trips the same events exactly."""
    written, read = _round_trip(ttbar_sample, workspace, "rntuple")
    assert uproot.open(written.result.root.path).classnames() == {"events;1": "ROOT::RNTuple"}
    assert read.result.n_rows == ttbar_sample.result.n_events
    _assert_same_arrays(ak.from_parquet(ttbar_sample.result.events.path), ak.from_parquet(read.result.data.path))


def _jets_like(tmp_path: Path) -> Path:
    """A doubly-jagged table shaped like cluster_jets output (jets with constituents)."""
    jets = ak.Array({
        "event": np.arange(3, dtype=np.int64),
        "jets": [[{"pt": 410.0, "constituents": [{"pt": 200.0}, {"pt": 210.0}]}], [],
                 [{"pt": 95.5, "constituents": [{"pt": 95.5}]}, {"pt": 30.0, "constituents": []}]],
    })
    path = tmp_path / "jets.parquet"
    ak.to_parquet(jets, path)
    return path


def test_ttree_refuses_doubly_jagged_jets_and_rntuple_keeps_them(tmp_path: Path, workspace: Workspace) -> None:
    """TTree cannot hold jet constituents: a clear error pointing at rntuple, which round-trips them."""
    table = call_tool("read_table", {"path": str(_jets_like(tmp_path))}, workspace=workspace)
    with pytest.raises(ToolInputError, match=r"format='ttree'.*'jets'.*doubly jagged.*format='rntuple'"):
        call_tool("write_root", {"source": table.result.data.id, "tree": "jets"}, workspace=workspace)
    assert workspace.list_artifacts("root") == []
    written = call_tool("write_root", {"source": table.result.data.id, "tree": "jets", "format": "rntuple"},
                        workspace=workspace)
    read = call_tool("read_root", {"path": str(written.result.root.path)}, workspace=workspace)
    assert read.result.kind == "table"
    _assert_same_arrays(ak.from_parquet(table.result.data.path), ak.from_parquet(read.result.data.path))


def test_read_root_selects_tree_branches_and_entries(tmp_path: Path, workspace: Workspace) -> None:
    """A TTree and an RNTuple need tree=...; branches and the entry window pick what is read."""
    path = tmp_path / "two.root"
    with uproot.recreate(path) as file:
        file.mktree("a", {"x": np.float64, "y": np.int32})
        file["a"].extend({"x": np.arange(10.0), "y": np.arange(10, dtype=np.int32)})
        file["b"] = {"z": np.ones(3)}
    ambiguous = r"tree=None is ambiguous.*several trees: a \(TTree\), b \(ROOT::RNTuple\)"
    with pytest.raises(ToolInputError, match=ambiguous):
        call_tool("read_root", {"path": str(path)}, workspace=workspace)
    read = call_tool("read_root", {"path": str(path), "tree": "a", "branches": ["y"], "entry_start": 2,
                                   "entry_stop": 5}, workspace=workspace)
    assert read.result.fields == ["y"]
    assert ak.from_parquet(read.result.data.path).y.tolist() == [2, 3, 4]


def test_read_table_reads_csv_with_numbers_and_text(tmp_path: Path, workspace: Workspace) -> None:
    """A CSV becomes a table artifact with its columns, values and text intact."""
    path = tmp_path / "cuts.csv"
    pd.DataFrame({"mjj_gev": [3500.0, 3612.5], "n_jets": [2, 3], "region": ["SR", "CR"]}).to_csv(path, index=False)
    read = call_tool("read_table", {"path": str(path)}, workspace=workspace)
    table = ak.from_parquet(read.result.data.path)
    assert (read.result.kind, read.result.n_rows, read.result.fields) == ("table", 2, ["mjj_gev", "n_jets", "region"])
    assert table.tolist() == [{"mjj_gev": 3500.0, "n_jets": 2, "region": "SR"},
                              {"mjj_gev": 3612.5, "n_jets": 3, "region": "CR"}]


def test_reading_a_file_again_after_it_changed_gives_the_new_contents(tmp_path: Path, workspace: Workspace) -> None:
    """A file read earlier and then edited is read afresh, never replayed from the call cache."""
    path = tmp_path / "yields.csv"
    pd.DataFrame({"n": [1, 2]}).to_csv(path, index=False)
    first = call_tool("read_table", {"path": str(path)}, workspace=workspace)
    pd.DataFrame({"n": [1, 2, 3]}).to_csv(path, index=False)
    second = call_tool("read_table", {"path": str(path)}, workspace=workspace)
    assert (first.result.n_rows, second.result.n_rows) == (2, 3) and not second.cached


def test_read_table_parquet_with_particles_becomes_events(ttbar_sample: CallOutcome, workspace: Workspace) -> None:
    """A Parquet file with particles (px, py, pz, e, pid, charge) is read as an events artifact."""
    read = call_tool("read_table", {"path": str(ttbar_sample.result.events.path)}, workspace=workspace)
    assert read.result.kind == "events"
    _assert_same_arrays(ak.from_parquet(ttbar_sample.result.events.path), ak.from_parquet(read.result.data.path))


def test_read_table_hdf5_group_datasets_become_columns(tmp_path: Path, workspace: Workspace) -> None:
    """Equal-length datasets in the HDF5 group ``key`` become columns; a 2-D one becomes vectors."""
    path = tmp_path / "jets.h5"
    rng = np.random.default_rng(1)
    mass = rng.normal(80.0, 10.0, 5).astype(np.float32)
    with h5py.File(path, "w") as handle:
        handle["jets/mass_gev"] = mass
        handle["jets/tau21"] = np.linspace(0.1, 0.9, 5)
        handle["jets/p4"] = np.ones((5, 4))
        handle["other"] = np.arange(7)
    read = call_tool("read_table", {"path": str(path), "key": "jets"}, workspace=workspace)
    table = ak.from_parquet(read.result.data.path)
    assert read.result.fields == ["mass_gev", "p4", "tau21"]
    assert np.array_equal(ak.to_numpy(table.mass_gev), mass)
    assert ak.to_numpy(table.p4).shape == (5, 4)
    with pytest.raises(ToolInputError, match=r"key='muons' is not a group in .*jets.h5. Groups at the top: jets\."):
        call_tool("read_table", {"path": str(path), "key": "muons"}, workspace=workspace)


def test_histogram_of_pt_hat_matches_numpy(drell_yan_sample: CallOutcome, workspace: Workspace) -> None:
    """pt_hat_gev in 40 bins on [0, 100) GeV equals numpy's histogram; flows count the rest."""
    pt_hat = ak.to_numpy(ak.from_parquet(drell_yan_sample.result.events.path).pt_hat_gev)
    source = _import(drell_yan_sample, workspace)
    result = call_tool("histogram", {"source": source, "field": "pt_hat_gev", "bins": 40,
                                     "range_min": 0.0, "range_max": 100.0}, workspace=workspace).result
    counts, _ = np.histogram(pt_hat, bins=40, range=(0.0, 100.0))
    filled = load_histogram(result.histogram.path)
    assert np.array_equal(filled.values(), counts)
    assert result.entries == len(pt_hat) == 1000
    assert result.overflow == np.count_nonzero(pt_hat >= 100.0)
    assert result.underflow == 0.0
    assert result.mean == pytest.approx(pt_hat[pt_hat < 100.0].mean())
    assert result.label == r"$\hat{p}_{T}$ [GeV]"
    assert filled.axes[0].label == result.label


def test_histogram_of_leading_muon_pt_takes_highest_pt_muon(
    drell_yan_sample: CallOutcome, workspace: Workspace
) -> None:
    """object_index=0 with abs_pid=[13] histograms the highest-pT muon of each event that has one."""
    events = ak.from_parquet(drell_yan_sample.result.events.path)
    source = _import(drell_yan_sample, workspace)
    muons = events.particles[abs(events.particles.pid) == 13]
    pt = np.sqrt(ak.values_astype(muons.px, np.float64) ** 2 + ak.values_astype(muons.py, np.float64) ** 2)
    leading = ak.to_numpy(ak.max(pt[ak.num(pt) > 0], axis=1))
    result = call_tool("histogram", {"source": source, "field": "particles.pt", "object_index": 0,
                                     "abs_pid": [13], "bins": 30, "range_min": 0.0, "range_max": 150.0},
                       workspace=workspace).result
    counts, _ = np.histogram(leading, bins=30, range=(0.0, 150.0))
    assert result.entries == len(leading) > 900
    assert np.array_equal(load_histogram(result.histogram.path).values(), counts)
    assert result.label == "leading muon $p_{T}$ [GeV]"
    assert 30.0 < result.peak < 50.0  # Z → μμ: Jacobian peak near m_Z / 2


def test_histogram_auto_range_keeps_every_value_and_broadcasts_weights(
    drell_yan_sample: CallOutcome, workspace: Workspace
) -> None:
    """Without edges the data's min and max bound the axis; event weights weight each particle."""
    source = _import(drell_yan_sample, workspace)
    events = ak.from_parquet(drell_yan_sample.result.events.path)
    result = call_tool("histogram", {"source": source, "field": "particles.e",
                                     "weight_field": "weight"}, workspace=workspace).result
    assert result.entries == int(ak.sum(ak.num(events.particles)))
    assert result.sum_weights == pytest.approx(float(ak.sum(events.weight * ak.num(events.particles))))
    assert (result.underflow, result.overflow) == (0.0, 0.0)
    assert result.range_min == pytest.approx(float(ak.min(events.particles.e)))


def test_two_dimensional_histogram_matches_numpy(drell_yan_sample: CallOutcome, workspace: Workspace) -> None:
    """field_y fills a 2-D histogram equal to numpy's histogram2d."""
    source = _import(drell_yan_sample, workspace)
    events = ak.from_parquet(drell_yan_sample.result.events.path)
    result = call_tool("histogram", {
        "source": source, "field": "m_hat_gev", "bins": 12, "range_min": 60.0, "range_max": 120.0,
        "field_y": "pt_hat_gev", "bins_y": 10, "range_min_y": 0.0, "range_max_y": 50.0}, workspace=workspace).result
    expected, _, _ = np.histogram2d(ak.to_numpy(events.m_hat_gev), ak.to_numpy(events.pt_hat_gev), bins=(12, 10),
                                    range=((60.0, 120.0), (0.0, 50.0)))
    assert np.array_equal(load_histogram(result.histogram.path).values(), expected)
    assert result.label_y == r"$\hat{p}_{T}$ [GeV]"
    assert 85.0 < result.peak < 95.0  # the Z peak


def _plot_in_fresh_workspace(root: Path, csv: Path) -> CallOutcome:
    workspace = Workspace(root)
    table = call_tool("read_table", {"path": str(csv)}, workspace=workspace, use_cache=False)
    hists = [call_tool("histogram", {"source": table.result.data.id, "field": name, "bins": 20},
                       workspace=workspace, use_cache=False).result.histogram.id for name in ("mass_gev", "pt_gev")]
    return call_tool("plot", {"histograms": hists, "labels": ["mass", "pT"], "title": "Toy", "log_y": True},
                     workspace=workspace, use_cache=False)


def test_plot_writes_png_and_pdf_with_identical_hashes_for_identical_calls(tmp_path: Path) -> None:
    """Two identical plot calls in two workspaces give byte-identical PNG and PDF files."""
    rng = np.random.default_rng(42)
    csv = tmp_path / "toy.csv"
    toy = pd.DataFrame({"mass_gev": rng.normal(91.0, 3.0, 500), "pt_gev": rng.exponential(30.0, 500)})
    toy.to_csv(csv, index=False)
    first = _plot_in_fresh_workspace(tmp_path / "one", csv).result
    second = _plot_in_fresh_workspace(tmp_path / "two", csv).result
    png, pdf = first.plot.directory / "plot.png", first.plot.directory / "plot.pdf"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert pdf.read_bytes()[:5] == b"%PDF-" and b"CreationDate" not in pdf.read_bytes()
    assert first.plot.sha256 == second.plot.sha256
    assert hashlib.sha256(png.read_bytes()).hexdigest() == hashlib.sha256(
        (second.plot.directory / "plot.png").read_bytes()).hexdigest()
    assert (first.x_label, first.y_label) == ("mass [GeV]", "Entries / bin")


@pytest.mark.parametrize(("tool", "name"), [("read_root", "x.root"), ("read_table", "x.parquet")])
def test_missing_and_corrupt_files_are_input_errors(
    tool: str, name: str, tmp_path: Path, no_workspace_writes: Workspace
) -> None:
    """A missing file and random bytes named like the format both fail clearly, writing nothing."""
    with pytest.raises(ToolInputError, match=rf"{tool}: path='nope/{name}' does not exist \(looked for .*nope/{name}"):
        call_tool(tool, {"path": f"nope/{name}"}, workspace=no_workspace_writes)
    corrupt = tmp_path / name
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ToolInputError, match=rf"{tool}: path='.*{name}' is not a readable (ROOT|Parquet) file"):
        call_tool(tool, {"path": str(corrupt)}, workspace=no_workspace_writes)


def test_wrong_artifact_id_is_an_input_error(no_workspace_writes: Workspace) -> None:
    """An id that is not in the workspace names the parameter and how to list artifacts."""
    with pytest.raises(ToolInputError, match=r"histogram: source='ev-0123456789' is not an artifact.*artifacts list"):
        call_tool("histogram", {"source": "ev-0123456789", "field": "pt_hat_gev"}, workspace=no_workspace_writes)
    with pytest.raises(ToolInputError, match=r"plot: histograms='hist-0123456789' is not an artifact"):
        call_tool("plot", {"histograms": ["hist-0123456789"]}, workspace=no_workspace_writes)


def test_inverted_range_and_unknown_field_are_input_errors(
    drell_yan_sample: CallOutcome, shared_workspace: Workspace
) -> None:
    """range_max <= range_min names both; an unknown field lists the available ones, derived ones included."""
    source = drell_yan_sample.result.events.id
    with _unchanged(shared_workspace):
        with pytest.raises(ToolInputError, match=r"histogram: range_max=10.0 must be larger than range_min=50"):
            call_tool("histogram", {"source": source, "field": "pt_hat_gev", "range_min": 50.0, "range_max": 10.0},
                      workspace=shared_workspace)
        with pytest.raises(ToolInputError, match=r"field='jets.mass' is not a numeric field.*Available: "
                           r"particles.px.*particles.pt, particles.eta, particles.phi, particles.mass.*pt_hat_gev"):
            call_tool("histogram", {"source": source, "field": "jets.mass"}, workspace=shared_workspace)
        with pytest.raises(ToolInputError, match=r"object_index=0 only applies to per-object fields"):
            call_tool("histogram", {"source": source, "field": "weight", "object_index": 0},
                      workspace=shared_workspace)


def test_write_root_is_byte_reproducible(ttbar_sample: CallOutcome, tmp_path: Path) -> None:
    """The same events written twice, in two workspaces, give ROOT files with the same sha256."""
    hashes = []
    for name in ("one", "two"):
        workspace = Workspace(tmp_path / name)
        written = call_tool("write_root", {"source": _import(ttbar_sample, workspace)}, workspace=workspace)
        hashes.append(written.result.root.sha256)
    assert hashes[0] == hashes[1]
