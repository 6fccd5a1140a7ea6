r"""``export_fpga``: a trained model → an hls4ml (or conifer) firmware project and its bit-accurate C simulation.

Takes a ``model`` artifact: a trigger tagger (``mlp`` on jet features — float, or quantization-aware
trained with brevitas, which goes through QONNX — or ``deepsets`` on particles) or the anomaly
autoencoder → hls4ml (Duarte et al., arXiv:1804.06913); a ``bdt`` tagger → conifer (Summers et al.,
arXiv:2002.02534). Kinds hls4ml cannot take (ParT, ParticleNet, PFN/EFN) and networks with layers outside
hls4ml's PyTorch list are refused, naming the kind or layer, before any file is written.

The project is configured (backend Vitis or Vivado, FPGA part, clock, default precision ``ap_fixed<W,I>``
with per-layer overrides, reuse factor, latency/resource strategy, io_parallel/io_stream), converted, and
its C simulation compiled with g++ (≈ 10–25 s). Given a dataset, the float model and the emulation are
compared on it (:mod:`tools.fpga._fidelity`): max/mean |Δ| of the outputs and ΔAUC; for the autoencoder
also the relative change of the mean reconstruction error.

Latency and resources are never estimated here: they come only from synthesis (``synthesize_fpga``). The
published anchors — the hls4ml jet-tagging MLP at ~100 ns (arXiv:1804.06913), conifer BDTs at ~60 ns
(arXiv:2002.02534) — are other designs on other parts, not numbers for this project.

Output: an ``hls_project`` artifact (:mod:`tools.fpga._project`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import numpy as np
from pydantic import Field

from physagent.tools._artifacts import Artifact
from physagent.tools._context import ToolContext
from physagent.tools._registry import ToolResult, tool
from physagent.tools.fpga._build import build_project, check_buildable, settings_warnings, write_project
from physagent.tools.fpga._data import EvalData, EvalDatasetRef, Split, evaluation_data
from physagent.tools.fpga._fidelity import Comparison, Fidelity, compare_outputs
from physagent.tools.fpga._hls import HlsSettings
from physagent.tools.fpga._models import Exportable, float_outputs, load_exportable
from physagent.tools.fpga._params import (
    Backend,
    ClockPeriod,
    IoType,
    LayerPrecision,
    LayerPrecisionMap,
    MaxEvents,
    ModelRef,
    Part,
    PrecisionText,
    ReuseFactor,
    Strategy,
    make_settings,
)
from physagent.tools.fpga._project import PROJECT_DIR, SYNTHESIS_NOTE

__all__ = ["DELTA_AUC_WARNING", "FpgaExport", "export_fpga", "fidelity_warnings"]

TOOL = "export_fpga"
DELTA_AUC_WARNING = 0.005


class FpgaExport(ToolResult):
    """A firmware project of a model, compiled to a bit-accurate C simulation."""

    project: Artifact = Field(description="The hls_project artifact: hls_project.tar.gz (sources, build scripts, "
                                          "configuration), hls4ml_config.json, report.json. Pass its id to "
                                          "compare_fixed_point or synthesize_fpga.")
    model: str = Field(description="Id of the exported model artifact.")
    model_kind: str = Field(description="mlp, deepsets, autoencoder or bdt.")
    converter: str = Field(description="hls4ml (networks) or conifer (BDT).")
    precision: str = Field(description="Default fixed-point type, ap_fixed<total bits, integer bits incl. sign>.")
    quantization: str | None = Field(description="For a quantization-aware-trained model: which types training "
                                                 "fixed (the default precision covers the rest); else None.")
    backend: str = Field(description="HLS backend the project is written for: Vitis or Vivado.")
    part: str = Field(description="FPGA part.")
    clock_period_ns: float = Field(description="Target clock period in ns.")
    strategy: str = Field(description="latency or resource.")
    io_type: str = Field(description="io_parallel or io_stream.")
    reuse_factor: int = Field(description="Reuse factor of every layer.")
    layers: list[LayerPrecision] = Field(description="Every layer with its fixed-point types.")
    conversion_s: float = Field(description="Wall time of the hls4ml conversion in seconds.")
    compile_s: float = Field(description="Wall time of the g++ build of the C simulation in seconds.")
    fidelity: Fidelity | None = Field(description="Float vs fixed point on the dataset (None: no dataset given).")
    warnings: list[str] = Field(description="Values outside the type's range, a large ΔAUC, ignored settings.")
    latency_and_resources: str = Field(description="Why no latency or resource numbers are given here.")


@tool(category="fpga", version="1")
def export_fpga(
    model: Annotated[ModelRef, Field(description=(
        "Id of a model artifact: an mlp or deepsets tagger or a bdt (train_tagger), or the autoencoder of "
        "autoencoder_search."))],
    precision: Annotated[PrecisionText, Field(description=(
        "Default fixed-point type ap_fixed<W,I>: W total bits, I integer bits including the sign."))
    ] = "ap_fixed<16,6>",
    dataset: Annotated[EvalDatasetRef | None, Field(description=(
        "Optional: compare float vs fixed point on it (taggers: a dataset or jets artifact; autoencoder: an "
        "anomaly_dataset)."))] = None,
    split: Annotated[Split, Field(description="Split of a jet dataset to compare on.")] = "test",
    layer_precision: LayerPrecisionMap = None,
    backend: Annotated[Backend, Field(description="HLS backend: Vitis (default) or Vivado.")] = "Vitis",
    part: Part = "xcvu13p-flga2577-2-e",
    clock_period_ns: ClockPeriod = 5.0,
    reuse_factor: ReuseFactor = 1,
    strategy: Annotated[Strategy, Field(description=(
        "latency (fully unrolled, fastest) or resource (shares multipliers; for larger layers)."))] = "latency",
    io_type: Annotated[IoType, Field(description=(
        "io_parallel (all values at once, lowest latency) or io_stream (FIFOs, for larger inputs)."))
    ] = "io_parallel",
    max_events: MaxEvents = 20_000,
    *,
    ctx: ToolContext,
) -> FpgaExport:
    """Export a trained tagger or autoencoder to an FPGA firmware project (hls4ml; BDT: conifer) at a precision.

    Compiles the bit-accurate C simulation; with a dataset, reports what fixed point costs (max |Δ| of the
    outputs, ΔAUC). Latency and resources come only from synthesize_fpga.
    """
    exportable = load_exportable(TOOL, ctx.artifact(model, "model"))
    settings = make_settings(TOOL, precision, layer_precision, backend=backend, part=part,
                             clock_period_ns=clock_period_ns, reuse_factor=reuse_factor, strategy=strategy,
                             io_type=io_type)
    config = check_buildable(TOOL, exportable, settings)
    data = evaluation_data(TOOL, exportable, ctx.artifact(dataset, "dataset"), split, max_events) if dataset else None
    pending = ctx.new_artifact("hls_project")
    with ctx.progress(f"convert and compile {exportable.kind} at {settings.precision}", total=1,
                      unit="compiles") as bar:
        built = build_project(TOOL, exportable, settings, config, pending.directory / PROJECT_DIR)
        bar.advance()
    comparison = _compare(exportable, data, built.predict) if data is not None else None
    warnings = settings_warnings(exportable, settings) + built.warnings + fidelity_warnings(
        exportable, settings, data, comparison)
    artifact = write_project(ctx, pending, exportable, settings, built, comparison, warnings)
    return FpgaExport(
        project=artifact, model=model, model_kind=exportable.kind, converter=built.converter,
        precision=settings.precision, quantization=_quantization(exportable), backend=settings.backend,
        part=settings.part,
        clock_period_ns=settings.clock_period_ns, strategy=settings.strategy, io_type=settings.io_type,
        reuse_factor=settings.reuse_factor, layers=[LayerPrecision(**row) for row in built.layers],
        conversion_s=round(built.conversion_s, 3), compile_s=round(built.compile_s, 3),
        fidelity=comparison.fidelity if comparison is not None else None, warnings=warnings,
        latency_and_resources=SYNTHESIS_NOTE)


def _quantization(model: Exportable) -> str | None:
    bits = model.quantize_bits
    if bits is None:
        return None
    return (f"{bits}-bit quantization-aware training (brevitas, converted through QONNX): inputs and weights are "
            f"signed and ReLU outputs unsigned {bits}-bit fixed point as trained; biases, accumulators and the "
            "output logits take the default precision")


def _compare(model: Exportable, data: EvalData, predict: Callable[[np.ndarray], np.ndarray]) -> Comparison:
    return compare_outputs(model, data, float_outputs(model, data.x), predict(data.x))


def fidelity_warnings(model: Exportable, settings: HlsSettings, data: EvalData | None,
                      comparison: Comparison | None) -> list[str]:
    """Stored values beyond the default type's range (they wrap), and a ΔAUC beyond 0.5 %."""
    found: list[str] = []
    if data is not None and model.network is not None and model.quantize_bits is None:  # QAT: types from training
        from physagent.tools.fpga._precision import parse_precision
        from physagent.tools.fpga._profile import profile_network

        limit = parse_precision(settings.precision).max_value
        overridden = {key.partition(".")[0] for key in settings.layer_precision}
        for profile in profile_network(model.network, data.x):
            if profile.at_default_precision and profile.layer not in overridden and profile.max_abs > limit:
                found.append(f"{profile.layer} {profile.quantity} reaches |value| {profile.max_abs:.4g} on the "
                             f"dataset, beyond ±{limit:.4g} of {settings.precision}: such values wrap around. Use "
                             "more integer bits (scan_precision picks them from these ranges).")
    fidelity = comparison.fidelity if comparison is not None else None
    if fidelity is not None and fidelity.delta_auc is not None and abs(fidelity.delta_auc) > DELTA_AUC_WARNING:
        found.append(f"ΔAUC = {fidelity.delta_auc:+.4f} is beyond ±{DELTA_AUC_WARNING}: {settings.precision} costs "
                     "separation. Try more bits, or scan_precision for the smallest type that keeps it.")
    if fidelity is not None and fidelity.auc_float is None:
        found.append(f"dataset {fidelity.dataset} has no labels of both classes, so no AUC: only the outputs "
                     "were compared.")
    return found
