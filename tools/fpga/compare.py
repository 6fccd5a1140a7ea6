r"""``compare_fixed_point``: float model against its exported fixed-point emulation on a dataset.

Reads an ``hls_project`` artifact of ``export_fpga`` (or ``scan_precision``) and the model it was exported
from (which must still be in the workspace, unchanged), runs both on the dataset's events and reports what
fixed point costs (:mod:`tools.fpga._fidelity`): max and mean |Δ| of the outputs, ΔAUC of the tagger's
signal probability on the dataset's labels, or for the autoencoder the relative change of the mean
reconstruction error and the ΔAUC of the anomaly score against the signal truth.

The emulation of an hls4ml project is its compiled C simulation library (no rebuild); a conifer BDT project
is rebuilt at the recorded precision (a few seconds of g++).

Output: a ``plot`` artifact ``fixed_point.png`` (fixed against float outputs; score distributions per class).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from physagent.tools._artifacts import Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import ToolResult, tool
from physagent.tools.fpga._build import PLOT_FILE, reload_built
from physagent.tools.fpga._data import EvalDatasetRef, Split, evaluation_data
from physagent.tools.fpga._fidelity import Comparison, Fidelity, compare_outputs, fidelity_plot
from physagent.tools.fpga._models import Exportable, float_outputs, load_exportable
from physagent.tools.fpga._params import MaxEvents, ProjectRef
from physagent.tools.fpga._project import ProjectInfo, read_project
from physagent.tools.fpga.export import DELTA_AUC_WARNING

__all__ = ["FixedPointComparison", "compare_fixed_point"]

TOOL = "compare_fixed_point"


class FixedPointComparison(ToolResult):
    """What the fixed-point firmware costs in outputs and in the task metric."""

    project: str = Field(description="Id of the hls_project compared.")
    model: str = Field(description="Id of the float model it was exported from.")
    model_kind: str = Field(description="mlp, deepsets, autoencoder or bdt.")
    precision: str = Field(description="Default fixed-point type of the project.")
    fidelity: Fidelity = Field(description="max/mean |Δ| of the outputs, scores, AUC float and fixed, ΔAUC.")
    within_half_percent: bool | None = Field(description="|ΔAUC| ≤ 0.005 (None: no AUC without labels).")
    emulation_events_per_s: float = Field(description="Throughput of the C simulation on this machine, events/s.")
    plot: Artifact = Field(description="Plot artifact fixed_point.png: fixed vs float outputs, score histograms.")


@tool(category="fpga", version="1")
def compare_fixed_point(
    project: Annotated[ProjectRef, Field(description="Id of an hls_project artifact from export_fpga or "
                                                     "scan_precision.")],
    dataset: Annotated[EvalDatasetRef, Field(description=(
        "Events to compare on: for taggers a dataset (make_jet_dataset; labels give ΔAUC) or jets artifact; for "
        "the autoencoder an anomaly_dataset (its labelled test table)."))],
    split: Annotated[Split, Field(description="Split of a jet dataset to compare on.")] = "test",
    max_events: MaxEvents = 50_000,
    *,
    ctx: ToolContext,
) -> FixedPointComparison:
    """Compare a model with its fixed-point FPGA emulation on a dataset: max |Δ| of the outputs and ΔAUC.

    For the autoencoder also the relative change of the mean reconstruction error. Returns a plot of fixed vs
    float outputs and score distributions.
    """
    import time

    info = read_project(TOOL, ctx.artifact(project, "project"))
    source = _source_model(ctx, info)
    model = load_exportable(TOOL, source)
    data = evaluation_data(TOOL, model, ctx.artifact(dataset, "dataset"), split, max_events)
    predict = reload_built(TOOL, info, model, ctx.staging)
    with ctx.progress(f"emulate {len(data):,} events at {info.precision}", total=1, unit="runs") as bar:
        start = time.perf_counter()
        fixed = predict(data.x)
        speed = len(data) / max(time.perf_counter() - start, 1e-9)
        bar.advance()
    comparison = compare_outputs(model, data, float_outputs(model, data.x), fixed)
    plot = _plot(ctx, model, comparison, info)
    delta = comparison.fidelity.delta_auc
    return FixedPointComparison(
        project=project, model=source.id, model_kind=model.kind, precision=info.precision,
        fidelity=comparison.fidelity, within_half_percent=None if delta is None else abs(delta) <= DELTA_AUC_WARNING,
        emulation_events_per_s=round(speed, 1), plot=plot)


def _source_model(ctx: ToolContext, info: ProjectInfo) -> Artifact:
    found = ctx.workspace.get_artifact(info.model_id)
    if found is None or found.sha256 != info.model_sha256:
        what = "is no longer in this workspace" if found is None else "has changed since the export"
        raise ToolInputError.for_param(TOOL, "project", info.artifact.id, f"was exported from model {info.model_id}, "
                                       f"which {what}; the float reference is needed to compare. Export again from "
                                       "a model in this workspace.")
    return found


def _plot(ctx: ToolContext, model: Exportable, comparison: Comparison, info: ProjectInfo) -> Artifact:
    from physagent.tools.tag._metrics import save_png

    pending = ctx.new_artifact("plot")
    save_png(fidelity_plot(model, comparison, info.precision), pending.directory / PLOT_FILE)
    fid = comparison.fidelity
    summary = f"float vs {info.precision} of {model.kind} {info.model_id} on {fid.dataset}"
    return pending.finish(PLOT_FILE, summary, {"project": info.artifact.id, "fidelity": fid.model_dump()})
