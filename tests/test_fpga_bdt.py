"""FPGA export of the substructure BDT through conifer: export, emulation against float, reload, refusals.

Two conifer builds (≈ 10–30 s each): the export, and compare_fixed_point's rebuild at the recorded precision.
"""

from __future__ import annotations

import json
import tarfile

import pytest
from test_taggers import TOP_DATASET  # the same jets as the tagger tests: whichever runs first generates them

from physagent.tools import Artifact, CallOutcome, ToolInputError, Workspace, call_tool

pytestmark = pytest.mark.slow  # the jet dataset (≈ 30 s of Pythia) and conifer builds

# jet masses reach a few hundred GeV and constituent counts ~100: 10 integer bits (±512) hold them
PRECISION = "ap_fixed<24,10>"


@pytest.fixture(scope="module")
def top_dataset(shared_workspace: Workspace) -> Artifact:
    """700 top and 700 QCD jets, 500 < pT < 600 GeV (make_jet_dataset; cached across test modules)."""
    return call_tool("make_jet_dataset", TOP_DATASET, workspace=shared_workspace).result.dataset


@pytest.fixture(scope="module")
def bdt(shared_workspace: Workspace, top_dataset: Artifact) -> Artifact:
    """The tiny substructure BDT (as test_taggers trains it)."""
    arguments = {"dataset": top_dataset.id, "model": "bdt", "size": "tiny", "batch_size": 64, "seed": 5}
    return call_tool("train_tagger", arguments, workspace=shared_workspace).result.model


@pytest.fixture(scope="module")
def exported(shared_workspace: Workspace, bdt: Artifact, top_dataset: Artifact) -> CallOutcome:
    """The BDT through conifer at ap_fixed<24,10>, compared on all jets."""
    return call_tool("export_fpga", {"model": bdt.id, "dataset": top_dataset.id, "split": "all",
                                     "precision": PRECISION}, workspace=shared_workspace)


def test_bdt_exports_through_conifer_and_keeps_its_auc(exported: CallOutcome) -> None:
    """The conifer emulation's log-odds track the float BDT's: |ΔAUC| < 0.005, and the project is conifer's."""
    result = exported.result
    fid = result.fidelity
    assert result.converter == "conifer" and result.model_kind == "bdt" and result.precision == PRECISION
    assert fid.output.startswith("BDT log-odds") and fid.score.startswith("signal probability: sigmoid")
    assert fid.auc_float > 0.85 and abs(fid.delta_auc) < 0.005 and fid.mean_abs_delta_score < 0.02
    assert result.layers[0].precision == {"input": PRECISION, "threshold": PRECISION, "score": PRECISION}
    project = result.project
    assert {"hls_project.tar.gz", "conifer_config.json", "report.json", "fixed_point.png"} <= set(project.files)
    with tarfile.open(project.path) as archive:
        names = archive.getnames()
    assert {"hls_project/bdt.json", "hls_project/bridge.cpp"} <= set(names)
    report = json.loads((project.directory / "report.json").read_text())
    assert report["converter"] == "conifer" and report["settings"] == {"precision": PRECISION}


def test_compare_rebuilds_the_bdt_at_the_recorded_precision(
    shared_workspace: Workspace, exported: CallOutcome, top_dataset: Artifact
) -> None:
    """compare_fixed_point rebuilds the conifer model and reproduces the export's numbers on the same jets."""
    result = call_tool("compare_fixed_point", {"project": exported.result.project.id, "dataset": top_dataset.id,
                                               "split": "all"}, workspace=shared_workspace).result
    assert result.model_kind == "bdt" and result.precision == PRECISION
    assert result.fidelity.model_dump() == exported.result.fidelity.model_dump()


def test_bdt_settings_that_do_not_apply_are_refused_or_named(
    shared_workspace: Workspace, bdt: Artifact, exported: CallOutcome
) -> None:
    """layer_precision is refused for a BDT (one type); synthesize_fpga refuses conifer's C++ project."""
    with pytest.raises(ToolInputError, match=r"layer_precision.*does not apply to a BDT"):
        call_tool("export_fpga", {"model": bdt.id, "layer_precision": {"ensemble": "ap_fixed<18,8>"}},
                  workspace=shared_workspace)
    with pytest.raises(ToolInputError, match=r"conifer BDT project.*C\+\+ emulation backend"):
        call_tool("synthesize_fpga", {"project": exported.result.project.id}, workspace=shared_workspace)
