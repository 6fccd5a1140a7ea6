"""FPGA export with hls4ml: fixed-point emulation against float, precision scan, tarball rebuild, refusals, synthesis.

Each hls4ml compile costs 10–25 s (more on a loaded machine), so the compiled projects are module fixtures
shared by the tests: the mlp at ap_fixed<16,6> and <6,2>, the scan's probes, a deepsets tagger, the
autoencoder, and one g++ rebuild from the tarball — seven builds when the scan needs two probes (its usual).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from anomaly_toy import toy_anomaly_dataset
from test_taggers import TOP_DATASET  # the same jets as the tagger tests: whichever runs first generates them
from torch import nn

from physagent.tools import (
    Artifact,
    CallOutcome,
    CallRecord,
    ToolDependencyError,
    ToolInputError,
    Workspace,
    call_tool,
)
from physagent.tools._io import write_json
from physagent.tools.fpga._emulator import Emulator
from physagent.tools.fpga._hls import HlsSettings, hls_config
from physagent.tools.fpga._models import check_layers
from physagent.tools.fpga._project import write_tarball
from physagent.tools.fpga._synthesis import parse_synthesis

pytestmark = pytest.mark.slow  # the jet dataset (≈ 30 s of Pythia) and hls4ml compiles

MLP = {"model": "mlp", "size": "tiny", "epochs": 15, "learning_rate": 3e-3, "batch_size": 64, "seed": 5}


@pytest.fixture(scope="module")
def top_dataset(shared_workspace: Workspace) -> Artifact:
    """700 top and 700 QCD jets, 500 < pT < 600 GeV (make_jet_dataset; cached across test modules)."""
    return call_tool("make_jet_dataset", TOP_DATASET, workspace=shared_workspace).result.dataset


@pytest.fixture(scope="module")
def mlp_tagger(shared_workspace: Workspace, top_dataset: Artifact) -> Artifact:
    """A tiny mlp trigger tagger (8 jet features → 16 → 16 → 2 logits)."""
    return call_tool("train_tagger", {"dataset": top_dataset.id, **MLP}, workspace=shared_workspace).result.model


def export(workspace: Workspace, model: Artifact, dataset: Artifact, **arguments: object) -> CallOutcome:
    return call_tool("export_fpga", {"model": model.id, "dataset": dataset.id, "split": "all", **arguments},
                     workspace=workspace)


@pytest.fixture(scope="module")
def at_16_6(shared_workspace: Workspace, mlp_tagger: Artifact, top_dataset: Artifact) -> CallOutcome:
    """The mlp exported at hls4ml's default ap_fixed<16,6>, compared on all 1,400 jets."""
    return export(shared_workspace, mlp_tagger, top_dataset)


@pytest.fixture(scope="module")
def at_6_2(shared_workspace: Workspace, mlp_tagger: Artifact, top_dataset: Artifact) -> CallOutcome:
    """The same mlp at ap_fixed<6,2>: ±2 range, 1/16 resolution."""
    return export(shared_workspace, mlp_tagger, top_dataset, precision="ap_fixed<6,2>")


def test_mlp_at_16_6_emulates_the_float_tagger_closely(at_16_6: CallOutcome, mlp_tagger: Artifact) -> None:
    """At ap_fixed<16,6> the C simulation's logits stay within 0.1 of float and |ΔAUC| < 0.002, with no warnings."""
    result = at_16_6.result
    fid = result.fidelity
    assert result.converter == "hls4ml" and result.model_kind == "mlp" and result.backend == "Vitis"
    assert result.part == "xcvu13p-flga2577-2-e" and result.precision == "ap_fixed<16,6>"
    assert fid.n_events == 1400 and fid.output.startswith("2 logits")
    assert 0 < fid.max_abs_delta_output < 0.1 and fid.mean_abs_delta_output < 0.03
    assert fid.auc_float > 0.85 and abs(fid.delta_auc) < 0.002
    assert fid.delta_auc == pytest.approx(fid.auc_fixed - fid.auc_float)
    assert result.warnings == [] and result.compile_s > 0
    dense = [layer for layer in result.layers if layer.layer_type == "Dense"]
    assert len(dense) == 3 and all(layer.precision["weight"] == "ap_fixed<16,6>" for layer in dense)
    assert "only from synthesis" in result.latency_and_resources


def test_project_artifact_holds_sources_configuration_and_no_invented_numbers(at_16_6: CallOutcome) -> None:
    """hls_project: tarball, configuration json/yaml, report.json with layers and fidelity but no latency numbers."""
    project = at_16_6.result.project
    assert project.kind == "hls_project" and project.id.startswith("hls-") and project.path.name == "hls_project.tar.gz"
    assert {"hls_project.tar.gz", "hls4ml_config.json", "hls4ml_config.yml", "report.json", "fixed_point.png"} <= set(
        project.files)
    report = json.loads((project.directory / "report.json").read_text())
    assert report["settings"]["precision"] == "ap_fixed<16,6>" and report["model"]["kind"] == "mlp"
    assert report["fidelity"]["delta_auc"] == pytest.approx(at_16_6.result.fidelity.delta_auc)
    text = json.dumps(report).lower()
    assert "latency_ns" not in text and "lut" not in text.replace("latency_and_resources", "")
    config = json.loads((project.directory / "hls4ml_config.json").read_text())
    assert config["OutputDir"] == "." and config["HLSConfig"]["Model"]["Precision"]["default"] == "ap_fixed<16,6>"
    assert "!!python" not in (project.directory / "hls4ml_config.yml").read_text()  # no pickled network


def test_compare_fixed_point_reproduces_the_export_from_the_stored_library(
    shared_workspace: Workspace, at_16_6: CallOutcome, top_dataset: Artifact
) -> None:
    """compare_fixed_point reloads the project's compiled library (no rebuild) and gets the export's numbers."""
    outcome = call_tool("compare_fixed_point", {"project": at_16_6.result.project.id, "dataset": top_dataset.id,
                                                "split": "all"}, workspace=shared_workspace)
    result = outcome.result
    assert result.fidelity.model_dump() == at_16_6.result.fidelity.model_dump()
    assert result.within_half_percent is True and result.emulation_events_per_s > 100
    assert outcome.wall_s < 20  # no compile
    assert result.plot.kind == "plot" and (result.plot.directory / "fixed_point.png").stat().st_size > 10_000
    test_split = call_tool("compare_fixed_point", {"project": at_16_6.result.project.id, "dataset": top_dataset.id},
                           workspace=shared_workspace).result.fidelity
    assert test_split.split == "test" and test_split.n_events == 280


def test_six_bits_measurably_degrade_the_tagger(at_6_2: CallOutcome, at_16_6: CallOutcome) -> None:
    """ap_fixed<6,2> wraps the standardised inputs and activations: ΔAUC beyond 0.5 %, warnings say so."""
    coarse, fine = at_6_2.result.fidelity, at_16_6.result.fidelity
    assert coarse.delta_auc < -0.005 and coarse.max_abs_delta_output > 10 * fine.max_abs_delta_output
    warnings = " ".join(at_6_2.result.warnings)
    assert "wrap around" in warnings and "ΔAUC" in warnings and "scan_precision" in warnings


@pytest.fixture(scope="module")
def qat_tagger(shared_workspace: Workspace, top_dataset: Artifact) -> CallOutcome:
    """The tiny mlp trained quantization-aware (brevitas) at 6 bits."""
    return call_tool("train_tagger", {"dataset": top_dataset.id, **MLP, "quantize_bits": 6},
                     workspace=shared_workspace)


def test_a_6_bit_quantization_aware_mlp_keeps_on_the_fpga_what_6_bit_rounding_costs_a_float_one(
    shared_workspace: Workspace, qat_tagger: CallOutcome, top_dataset: Artifact, at_6_2: CallOutcome
) -> None:
    """QAT at 6 bits → QONNX → hls4ml: 6-bit weights and ReLU outputs, emulation = training model, AUC kept."""
    trained = qat_tagger.result
    card = trained.model.metadata
    assert card["architecture"]["quantize_bits"] == 6 and card["quantization"]["library"] == "brevitas"
    assert "6-bit QAT" in trained.model.summary and trained.test_auc > 0.85
    result = export(shared_workspace, trained.model, top_dataset).result
    assert result.quantization is not None and "6-bit" in result.quantization
    dense = [layer for layer in result.layers if layer.layer_type == "Dense"]
    relu = [layer for layer in result.layers if layer.name.startswith("Relu")]
    assert len(dense) == 3 and all(layer.precision["weight"].startswith("ap_fixed<6,") for layer in dense)
    assert len(relu) == 2 and all(layer.precision["result"].startswith("ap_ufixed<6,") for layer in relu)
    fid, ptq = result.fidelity, at_6_2.result.fidelity
    assert abs(fid.delta_auc) < 0.005 and fid.mean_abs_delta_output < 0.05
    assert fid.auc_fixed > ptq.auc_fixed + 0.01  # post-training rounding to 6 bits loses what QAT keeps
    report = json.loads((result.project.directory / "report.json").read_text())
    assert report["model"]["quantization"]["bits"] == 6 and "brevitas" in report["versions"]


def test_quantization_is_refused_where_it_does_not_apply(
    shared_workspace: Workspace, qat_tagger: CallOutcome, top_dataset: Artifact
) -> None:
    """quantize_bits on a BDT, and a precision scan of a QAT model, are refused with what to do instead."""
    with pytest.raises(ToolInputError, match=r"quantize_bits=6 applies to model='mlp' only.*not to 'bdt'"):
        call_tool("train_tagger", {"dataset": top_dataset.id, "model": "bdt", "quantize_bits": 6},
                  workspace=shared_workspace)
    with pytest.raises(ToolInputError, match=r"quantization-aware at 6 bits.*fixed by training.*export_fpga"):
        call_tool("scan_precision", {"model": qat_tagger.result.model.id, "dataset": top_dataset.id},
                  workspace=shared_workspace)


@pytest.fixture(scope="module")
def scan(shared_workspace: Workspace, mlp_tagger: Artifact, top_dataset: Artifact) -> CallOutcome:
    """scan_precision over ap_fixed<W,I> for W up to 16 on all jets (compiles around the numpy estimate)."""
    return call_tool("scan_precision", {"model": mlp_tagger.id, "dataset": top_dataset.id, "split": "all",
                                        "max_total_bits": 16}, workspace=shared_workspace)


def test_scan_finds_the_smallest_type_between_the_failing_and_default_ones(
    scan: CallOutcome, at_6_2: CallOutcome
) -> None:
    """The chosen ap_fixed<W,I> keeps |ΔAUC| ≤ 0.5 % where <6,2> does not, with W ≤ 16; W − 1 was compiled and failed
    (unless W is the narrowest considered); the integer bits just cover the profiled ranges."""
    result = scan.result
    assert result.chosen_precision not in (None, "ap_fixed<6,2>") and result.chosen_total_bits <= 16
    assert abs(at_6_2.result.fidelity.delta_auc) > 0.005
    rows = {row.total_bits: row for row in result.rows}
    widths = range(max(4, result.integer_bits + 1), 17)
    chosen = rows[result.chosen_total_bits]
    assert chosen.passed and abs(chosen.delta_auc) <= 0.005 and chosen.precision == result.chosen_precision
    assert all(not row.passed for w, row in rows.items() if w < result.chosen_total_bits)
    assert result.chosen_total_bits - 1 in rows or result.chosen_total_bits == widths[0]
    assert 1 <= result.n_compiles == len(rows) <= 4
    stored = [r for r in result.layer_ranges if r.at_default_precision]
    assert 2.0 ** (result.integer_bits - 1) > max(r.max_abs for r in stored) >= 2.0 ** (result.integer_bits - 2)
    assert {"input", "weight", "bias", "output"} <= {r.quantity for r in result.layer_ranges}
    assert result.chosen_precision in result.table and len(result.estimated_delta_auc) == len(widths)
    assert {"profile.png", "scan.png"} <= set(result.plots.files)
    project = result.project
    assert project.kind == "hls_project" and project.metadata["settings"]["precision"] == result.chosen_precision
    assert project.metadata["fidelity"]["delta_auc"] == pytest.approx(chosen.delta_auc)


def test_tarball_rebuilds_with_gpp_to_identical_outputs(at_16_6: CallOutcome, tmp_path: Path) -> None:
    """The tarball holds sources and configuration, no binaries; its build_lib.sh builds an equal library."""
    project = at_16_6.result.project
    with tarfile.open(project.path) as archive:
        names = archive.getnames()
        archive.extractall(tmp_path, filter="data")
    for needed in ("build_lib.sh", "build_prj.tcl", "hls4ml_config.yml", "firmware/myproject.cpp",
                   "firmware/parameters.h", "firmware/defines.h", "firmware/nnet_utils/nnet_dense.h"):
        assert f"hls_project/{needed}" in names, needed
    assert not any(name.endswith((".so", ".o")) for name in names)
    root = tmp_path / "hls_project"
    subprocess.run(["nice", "-n", "15", "bash", "build_lib.sh"], cwd=root, check=True, capture_output=True)
    info = project.metadata["project"]
    rebuilt = Emulator(root / info["library"], info["name"], info["input_size"], info["output_size"])
    stored = Emulator(project.directory / "hls_project" / info["library"], info["name"], info["input_size"],
                      info["output_size"])
    x = np.random.default_rng(0).normal(0.0, 1.5, (500, info["input_size"])).astype(np.float32)
    assert np.array_equal(rebuilt.predict(x), stored.predict(x))


def test_tarball_is_byte_reproducible(at_16_6: CallOutcome, tmp_path: Path) -> None:
    """Archiving the same project twice gives the same bytes (sorted entries, no timestamps)."""
    source = at_16_6.result.project.directory / "hls_project"
    write_tarball(source, tmp_path / "a.tar.gz")
    time.sleep(1.1)
    write_tarball(source, tmp_path / "b.tar.gz")
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()
    assert (tmp_path / "a.tar.gz").read_bytes() == at_16_6.result.project.path.read_bytes()


def test_deepsets_tagger_exports_with_its_particle_layout(shared_workspace: Workspace, top_dataset: Artifact) -> None:
    """A deepsets tagger (Conv1d φ, AvgPool1d, Linear ρ) on (F, P) particles converts and matches float."""
    model = call_tool("train_tagger", {"dataset": top_dataset.id, "model": "deepsets", "size": "tiny", "epochs": 4,
                                       "learning_rate": 3e-3, "batch_size": 64, "seed": 5},
                      workspace=shared_workspace).result.model
    result = export(shared_workspace, model, top_dataset).result
    assert result.model_kind == "deepsets"
    assert {"PointwiseConv1D", "Pooling1D", "Dense"} <= {layer.layer_type for layer in result.layers}
    assert result.fidelity.max_abs_delta_output < 0.1 and abs(result.fidelity.delta_auc) < 0.005


# --- the autoencoder --------------------------------------------------------------------------------


def test_autoencoder_export_keeps_the_reconstruction_error_and_its_auc(shared_workspace: Workspace) -> None:
    """The emulated ẑ gives a mean reconstruction error within 10 % of float and |ΔAUC| < 0.01 on the toy's test set."""
    toy = toy_anomaly_dataset(shared_workspace, n_background=8_000, n_signal=1_000, s_over_b=0.02, seed=5)
    search = call_tool("autoencoder_search", {"dataset": toy.id, "train_on": "all", "epochs": 6, "batch_size": 256,
                                              "learning_rate": 3e-3, "seed": 3}, workspace=shared_workspace).result
    result = call_tool("export_fpga", {"model": search.model.id, "dataset": toy.id},
                       workspace=shared_workspace).result
    fid = result.fidelity
    assert result.model_kind == "autoencoder" and fid.output.startswith("reconstruction")
    assert fid.score.startswith("reconstruction error") and fid.split == "test"
    assert abs(fid.relative_delta_mean_score) < 0.1 and abs(fid.delta_auc) < 0.01
    assert fid.auc_float == pytest.approx(search.auc, abs=1e-9)  # the anomaly tools' AUC on the same events


# --- refusals: before any file is written ---------------------------------------------------------


def _forge(workspace: Workspace, kind: str, metadata: dict) -> str:
    """Register an artifact of ``kind`` with ``metadata`` directly (what a tool would leave; files left empty)."""
    with workspace.staging_area() as staging:
        pending = workspace.new_pending(kind, staging)
        write_json(metadata, pending.directory / "card.json")
        pending.finish("card.json", f"forged {kind} for a test", metadata)
        record = CallRecord(id=f"c-{uuid.uuid4().hex[:10]}", seq=0, tool="test", tool_version="1", inputs={},
                            input_artifacts={}, outputs=[pending.id], result={}, seed=None, started=time.time(),
                            wall_s=0.0, packages={}, cache_key=uuid.uuid4().hex, cached_from=None)
        workspace.commit([pending], record)
    return pending.id


def _artifact_dirs(workspace: Workspace) -> set[str]:
    return {p.name for p in (workspace.root / "artifacts").iterdir()}


@pytest.mark.parametrize(("kind", "reason"), [("part", "attention"), ("particlenet", "kNN"),
                                              ("pfn", "masked sum")])
@pytest.mark.parametrize("tool", ["export_fpga", "scan_precision"])
def test_unconvertible_tagger_kinds_are_refused_with_the_reason(
    kind: str, reason: str, tool: str, workspace: Workspace
) -> None:
    """ParT, ParticleNet and PFN are refused naming the kind and why, suggesting deepsets; nothing is written."""
    model = _forge(workspace, "model", {"model": kind})
    dataset = _forge(workspace, "dataset", {})  # never read: the model is refused first
    before = _artifact_dirs(workspace)
    with pytest.raises(ToolInputError, match=rf"{tool}: model='{model}' is a '{kind}' tagger.*{reason}.*deepsets"):
        call_tool(tool, {"model": model, "dataset": dataset}, workspace=workspace)
    assert _artifact_dirs(workspace) == before
    assert not any((workspace.root / ".staging").glob("*/*"))


class _AttentionTagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(7, 16)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(16, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        return self.head(self.attn(h, h, h)[0].mean(dim=1))


def test_a_layer_hls4ml_cannot_convert_is_named_with_its_type() -> None:
    """check_layers names the attention layer's path and type; a Linear/ReLU/Conv1d/AvgPool network passes."""
    with pytest.raises(ToolInputError, match=r"layer 'attn' of type MultiheadAttention.*cannot convert"):
        check_layers("export_fpga", _AttentionTagger())
    with pytest.raises(ToolInputError, match=r"layer '1.1' of type Embedding"):
        check_layers("export_fpga", nn.Sequential(nn.Linear(4, 4), nn.ModuleList([nn.ReLU(), nn.Embedding(10, 4)])))
    check_layers("export_fpga", nn.Sequential(nn.Conv1d(7, 8, 1), nn.ReLU(), nn.AvgPool1d(16), nn.Flatten(),
                                              nn.Linear(8, 2), nn.Dropout(0.1)))


def test_layer_precision_of_an_unknown_layer_lists_the_layers() -> None:
    """A per-layer override naming no layer of the network is refused with the network's layer names."""
    network = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)).eval()
    settings = HlsSettings("Vitis", "xcvu13p-flga2577-2-e", 5.0, "ap_fixed<16,6>", {"fc9": "ap_fixed<18,8>"})
    with pytest.raises(ToolInputError, match=r"layer 'fc9'.*Its layers: input_1, _0, _1, _2"):
        hls_config("export_fpga", network, (8,), settings)
    settings = HlsSettings("Vitis", "xcvu13p-flga2577-2-e", 5.0, "ap_fixed<16,6>",
                           {"_0": "ap_fixed<18,8>", "_2.result": "ap_fixed<20,10>"})
    config = hls_config("export_fpga", network, (8,), settings)["LayerName"]
    assert config["_0"]["Precision"]["weight"] == config["_0"]["Precision"]["result"] == "ap_fixed<18,8>"
    assert config["_2"]["Precision"]["result"] == "ap_fixed<20,10>"


def test_a_malformed_precision_is_refused_before_compiling(shared_workspace: Workspace, mlp_tagger: Artifact) -> None:
    """precision='ap_fixed<80,6>' and a non-type string are input errors naming the parameter."""
    with pytest.raises(ToolInputError, match=r"precision='ap_fixed<80,6>' has 80 total bits; use 1 to 64"):
        call_tool("export_fpga", {"model": mlp_tagger.id, "precision": "ap_fixed<80,6>"}, workspace=shared_workspace)
    with pytest.raises(ToolInputError, match=r"export_fpga: precision="):
        call_tool("export_fpga", {"model": mlp_tagger.id, "precision": "float16"}, workspace=shared_workspace)


# --- synthesis ----------------------------------------------------------------------------------


def test_synthesize_without_vitis_names_the_missing_executable(
    at_16_6: CallOutcome, shared_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without vitis-run on PATH: ToolDependencyError naming it and settings64.sh; no artifact is made."""
    monkeypatch.setenv("PATH", str(tmp_path))
    before = {a.name for a in (shared_workspace.root / "artifacts").iterdir()}
    with pytest.raises(ToolDependencyError, match=r"synthesize_fpga: synthesis with backend Vitis needs the "
                                                  r"executable vitis-run, which is not on PATH.*settings64\.sh"):
        call_tool("synthesize_fpga", {"project": at_16_6.result.project.id}, workspace=shared_workspace)
    assert {a.name for a in (shared_workspace.root / "artifacts").iterdir()} == before


def test_synthesize_a_vivado_project_without_vivado_hls_names_it(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Vivado-backend project asks for vivado_hls (checked before anything is copied)."""
    monkeypatch.setenv("PATH", str(tmp_path))
    project = _forge_project(workspace, "Vivado")
    with pytest.raises(ToolDependencyError, match=r"needs the executable vivado_hls.*Vivado HLS"):
        call_tool("synthesize_fpga", {"project": project}, workspace=workspace)


def _forge_project(workspace: Workspace, backend: str) -> str:
    return _forge(workspace, "hls_project", {
        "converter": "hls4ml", "model": {"id": "model-0000000000", "sha256": "0"}, "project": {"name": "myproject"},
        "settings": {"backend": backend, "precision": "ap_fixed<16,6>", "part": "xcvu13p-flga2577-2-e"}})


# A Vitis HLS C-synthesis report in the tool's format; the numbers are made up for the parser test.
CSYNTH_XML = """<?xml version="1.0" encoding="UTF-8"?>
<profile>
  <ReportVersion><Version>2024.2</Version></ReportVersion>
  <UserAssignments>
    <unit>ns</unit><ProductFamily>virtexuplus</ProductFamily><Part>xcvu13p-flga2577-2-e</Part>
    <TopModelName>myproject</TopModelName><TargetClockPeriod>5.00</TargetClockPeriod>
    <ClockUncertainty>1.35</ClockUncertainty><FlowTarget>vivado</FlowTarget>
  </UserAssignments>
  <PerformanceEstimates>
    <PipelineType>yes</PipelineType>
    <SummaryOfTimingAnalysis><unit>ns</unit><EstimatedClockPeriod>3.912</EstimatedClockPeriod></SummaryOfTimingAnalysis>
    <SummaryOfOverallLatency>
      <unit>clock cycles</unit><Best-caseLatency>7</Best-caseLatency><Average-caseLatency>7</Average-caseLatency>
      <Worst-caseLatency>8</Worst-caseLatency><Best-caseRealTimeLatency>35.000 ns</Best-caseRealTimeLatency>
      <Worst-caseRealTimeLatency>40.000 ns</Worst-caseRealTimeLatency>
      <Interval-min>1</Interval-min><Interval-max>1</Interval-max>
    </SummaryOfOverallLatency>
  </PerformanceEstimates>
  <AreaEstimates>
    <Resources><BRAM_18K>0</BRAM_18K><DSP>123</DSP><FF>4567</FF><LUT>23456</LUT><URAM>0</URAM></Resources>
    <AvailableResources>
      <BRAM_18K>5376</BRAM_18K><DSP>12288</DSP><FF>3456000</FF><LUT>1728000</LUT><URAM>1280</URAM>
    </AvailableResources>
  </AreaEstimates>
</profile>
"""
HLS_APP = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="com.autoesl.autopilot.project" name="myproject_prj" top="myproject">
  <solutions xmlns=""><solution name="solution1" status="active"/></solutions>
</project>
"""


def _write_synthesis_output(project: Path) -> None:
    """What vitis-run leaves in a project after C synthesis (report and solution list)."""
    reports = project / "myproject_prj" / "solution1" / "syn" / "report"
    reports.mkdir(parents=True)
    (project / "myproject_prj" / "hls.app").write_text(HLS_APP)
    (reports / "myproject_csynth.xml").write_text(CSYNTH_XML)


def test_synthesis_numbers_are_read_from_the_csynth_report(tmp_path: Path) -> None:
    """parse_synthesis (hls4ml's parser) reads cycles, clocks and resources; ns = cycles × target period."""
    (tmp_path / "project.tcl").write_text('set project_name "myproject"\nset backend "vitis"\n')
    assert parse_synthesis(tmp_path) is None  # not synthesised yet
    _write_synthesis_output(tmp_path)
    numbers = parse_synthesis(tmp_path)
    assert numbers is not None
    assert (numbers.latency_cycles_best, numbers.latency_cycles_worst) == (7, 8)
    assert (numbers.latency_ns_best, numbers.latency_ns_worst) == (35.0, 40.0)
    assert numbers.clock_period_estimated_ns == 3.912 and numbers.interval_cycles_max == 1
    assert numbers.resources == {"LUT": 23456, "FF": 4567, "DSP": 123, "BRAM_18K": 0, "URAM": 0}
    assert numbers.utilization_percent()["DSP"] == pytest.approx(100 * 123 / 12288, abs=1e-3)


def test_synthesize_runs_hls4ml_build_and_reports_the_tool_numbers(
    at_16_6: CallOutcome, shared_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a (stand-in) vitis-run on PATH, hls4ml's build runs it in a copy of the project and its report is read."""
    fake = tmp_path / "vitis-run"  # writes what C synthesis leaves: the solution list and the report
    fake.write_text(f"#!{sys.executable}\nfrom pathlib import Path\n"
                    "reports = Path('myproject_prj/solution1/syn/report')\n"
                    f"reports.mkdir(parents=True)\nPath('myproject_prj/hls.app').write_text({HLS_APP!r})\n"
                    f"(reports / 'myproject_csynth.xml').write_text({CSYNTH_XML!r})\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    result = call_tool("synthesize_fpga", {"project": at_16_6.result.project.id}, workspace=shared_workspace).result
    assert (result.latency_cycles_worst, result.latency_ns_worst, result.lut, result.dsp) == (8, 40.0, 23456, 123)
    assert result.source.startswith("vitis-run C-synthesis report") and result.backend == "Vitis"
    assert {"synthesis.json", "csynth.xml"} <= set(result.project.files)
    options = (result.project.directory / "hls_project" / "build_opt.tcl").read_text()
    assert "csim       0" in options and "synth      1" in options  # build(csim=False, synth=True)
    assert not (at_16_6.result.project.directory / "hls_project" / "myproject_prj").exists()  # the input is untouched
