r"""``scan_precision``: the smallest ``ap_fixed<W,I>`` that keeps the task metric, with the profile behind it.

1. **Profile** (:mod:`tools.fpga._profile`): forward hooks record, on the dataset's events, the input, the
   weights and biases and every stored activation per layer (a BDT: features, thresholds, leaf scores and
   log-odds). The integer bits I are the fewest (sign included) that hold the largest of them: hls4ml
   wraps values beyond the range.
2. **Estimate**: a numpy fake-quantised network (values truncated and wrapped to ``ap_fixed<W,I>``, sums
   exact) gives an estimated ΔAUC for every total width W in microseconds; its smallest passing W is
   the first width compiled. (A BDT starts in the middle of the range.)
3. **Compile and bisect**: each probe is a full hls4ml (conifer) project and its C simulation, ≈ 10–25 s.
   After the first probe the neighbouring width settles the answer when the estimate was right (two
   compiles); otherwise bisection continues. ΔAUC = AUC(fixed) − AUC(float); a width passes when
   |ΔAUC| ≤ ``max_delta_auc``. Bisection assumes more bits never hurt, which holds for truncation.

Every reported ΔAUC comes from a compiled C simulation; estimates are labelled as such. Jet datasets
are scanned on the validation split by default, so the test split stays unbiased for a final
compare_fixed_point; the autoencoder uses the anomaly dataset's labelled test table.

Outputs: the chosen precision's ``hls_project`` artifact (as ``export_fpga`` writes it) and a ``plot``
artifact: ``profile.png`` (log2|value| per layer, box and whisker, with the chosen type's range and
resolution) and ``scan.png`` (ΔAUC against W: estimate and compiled points).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, replace
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, Field

from physagent.tools._artifacts import Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools._registry import ToolResult, tool
from physagent.tools.fpga._build import Built, build_project, check_buildable, settings_warnings, write_project
from physagent.tools.fpga._data import EvalData, EvalDatasetRef, Split, evaluation_data
from physagent.tools.fpga._fidelity import Comparison, auc, compare_outputs
from physagent.tools.fpga._hls import HlsSettings
from physagent.tools.fpga._models import Exportable, float_outputs, load_exportable, task_scores
from physagent.tools.fpga._params import (
    Backend,
    ClockPeriod,
    IoType,
    MaxEvents,
    ModelRef,
    Part,
    ReuseFactor,
    Strategy,
    make_settings,
)
from physagent.tools.fpga._precision import fixed, parse_precision
from physagent.tools.fpga._profile import LayerProfile, integer_bits_needed, profile_plot
from physagent.tools.fpga._project import PROJECT_DIR

__all__ = ["LayerRange", "PrecisionScan", "ScanRow", "scan_precision"]

TOOL = "scan_precision"


class ScanRow(BaseModel):
    """One compiled precision."""

    precision: str = Field(description="ap_fixed<W,I>.")
    total_bits: int = Field(description="W.")
    integer_bits: int = Field(description="I (sign included).")
    delta_auc: float = Field(description="AUC(fixed) − AUC(float), from the compiled C simulation.")
    auc_fixed: float = Field(description="AUC of the fixed-point score.")
    max_abs_delta_output: float = Field(description="Largest |fixed − float| over all outputs.")
    passed: bool = Field(description="|ΔAUC| ≤ max_delta_auc.")
    compile_s: float = Field(description="Wall time of the build in seconds.")


class LayerRange(BaseModel):
    """The values one layer holds on the dataset (or its weights)."""

    layer: str = Field(description="hls4ml layer name.")
    layer_type: str = Field(description="torch layer type (BDT: what the values are).")
    quantity: str = Field(description="input, weight, bias, output (BDT: threshold, leaf score).")
    min: float = Field(description="Smallest value.")
    max: float = Field(description="Largest value.")
    max_abs: float = Field(description="Largest |value|: sets the integer bits.")
    min_abs_nonzero: float = Field(description="Smallest nonzero |value|.")
    median_abs_nonzero: float = Field(description="Median nonzero |value|: what the fractional bits must resolve.")
    at_default_precision: bool = Field(description="Stored in the default type (False: an auto-typed accumulator).")


class PrecisionScan(ToolResult):
    """The smallest fixed-point type keeping |ΔAUC| within the threshold, and the compiles behind it."""

    chosen_precision: str | None = Field(description="Smallest passing ap_fixed<W,I> (None: none up to "
                                                     "max_total_bits passed).")
    chosen_total_bits: int | None = Field(description="Its W.")
    integer_bits: int = Field(description="I used for every probe (sign included).")
    integer_bits_reason: str = Field(description="Which value set I.")
    max_delta_auc: float = Field(description="The threshold on |ΔAUC|.")
    auc_float: float = Field(description="AUC of the float model on the scanned events.")
    n_events: int = Field(description="Events scanned.")
    rows: list[ScanRow] = Field(description="Every compiled precision, by total bits.")
    table: str = Field(description="The rows as a Markdown table.")
    estimated_delta_auc: dict[str, float] = Field(description="Numpy estimate of ΔAUC per precision (networks only; "
                                                              "not a C-simulation result).")
    layer_ranges: list[LayerRange] = Field(description="Per-layer value ranges that motivate the integer bits.")
    n_compiles: int = Field(description="Projects compiled.")
    compile_s: float = Field(description="Total build wall time in seconds.")
    project: Artifact | None = Field(description="hls_project artifact of the chosen precision (None if none).")
    plots: Artifact = Field(description="Plot artifact: profile.png (per-layer log2 ranges), scan.png (ΔAUC vs W).")
    warnings: list[str] = Field(description="E.g. no width passed, or settings that do not apply.")


@tool(category="fpga", version="1")
def scan_precision(
    model: Annotated[ModelRef, Field(description=(
        "Id of a model artifact: an mlp, deepsets or bdt tagger (train_tagger) or the autoencoder."))],
    dataset: Annotated[EvalDatasetRef, Field(description=(
        "Labelled events: a jet dataset (make_jet_dataset) for taggers, an anomaly_dataset for the autoencoder."))],
    max_delta_auc: Annotated[float, Field(gt=0, le=0.5, description="Largest allowed |ΔAUC| (0.005 = 0.5 %).")
                             ] = 0.005,
    min_total_bits: Annotated[int, Field(ge=2, le=32, description="Smallest total width W to consider.")] = 4,
    max_total_bits: Annotated[int, Field(ge=2, le=32, description="Largest total width W to consider.")] = 18,
    integer_bits: Annotated[int | None, Field(ge=1, le=32, description=(
        "Integer bits I incl. sign (None: the fewest holding the profiled ranges)."))] = None,
    split: Annotated[Split, Field(description="Split of a jet dataset to scan on.")] = "validation",
    backend: Annotated[Backend, Field(description="HLS backend: Vitis (default) or Vivado.")] = "Vitis",
    part: Part = "xcvu13p-flga2577-2-e",
    clock_period_ns: ClockPeriod = 5.0,
    reuse_factor: ReuseFactor = 1,
    strategy: Annotated[Strategy, Field(description="latency or resource.")] = "latency",
    io_type: Annotated[IoType, Field(description="io_parallel or io_stream.")] = "io_parallel",
    max_events: MaxEvents = 20_000,
    *,
    ctx: ToolContext,
) -> PrecisionScan:
    """Find the smallest FPGA fixed-point precision ap_fixed<W,I> of a model keeping |ΔAUC| below a threshold.

    Integer bits from per-layer value ranges (profiled on the dataset), total bits by compiling and
    bisecting. Returns the (precision, ΔAUC, max |Δ|) table, the profile plots and the chosen project.
    """
    exportable = load_exportable(TOOL, ctx.artifact(model, "model"))
    if exportable.quantize_bits is not None:
        raise ToolInputError.for_param(TOOL, "model", model, f"was trained quantization-aware at "
                                       f"{exportable.quantize_bits} bits: its types are fixed by training, so there "
                                       "is no precision to scan. Export it with export_fpga (with a dataset for "
                                       "the comparison), or train with another quantize_bits.")
    if min_total_bits > max_total_bits:
        raise ToolInputError.for_param(TOOL, "min_total_bits", min_total_bits, f"is above max_total_bits="
                                       f"{max_total_bits}. Give a range with min ≤ max.")
    base = make_settings(TOOL, fixed(max_total_bits, 1), None, backend=backend, part=part,
                         clock_period_ns=clock_period_ns, reuse_factor=reuse_factor, strategy=strategy,
                         io_type=io_type)
    data = _labelled(evaluation_data(TOOL, exportable, ctx.artifact(dataset, "dataset"), split, max_events))
    scan = _Scan(ctx, exportable, data, base, max_delta_auc)
    profiles = scan.profiles()
    bits, reason = (integer_bits, "given") if integer_bits is not None else integer_bits_needed(profiles)
    widths = list(range(max(min_total_bits, bits + 1), max_total_bits + 1))
    if not widths:
        raise ToolInputError.for_param(TOOL, "max_total_bits", max_total_bits, f"leaves no width above the "
                                       f"{bits} integer bits ({reason}). Raise max_total_bits above {bits}.")
    estimates = scan.estimates(widths, bits)
    scan.search(widths, bits, _first_guess(widths, bits, estimates, max_delta_auc))
    return scan.result(bits, reason, profiles, estimates)


def _labelled(data: EvalData) -> EvalData:
    if data.labels is None or len(np.unique(data.labels)) < 2:
        raise ToolInputError.for_param(TOOL, "dataset", data.dataset.id, "has no labels of both classes in the "
                                       "scanned events, so there is no AUC to keep. Use a dataset from "
                                       "make_jet_dataset (or make_anomaly_dataset), or another split.")
    return data


def _first_guess(widths: list[int], bits: int, estimates: dict[str, float], threshold: float) -> int:
    passing = [w for w in widths if abs(estimates.get(fixed(w, bits), math.inf)) <= threshold]
    return passing[0] if passing and estimates else widths[len(widths) // 2]


@dataclass
class _Probe:
    row: ScanRow
    built: Built
    comparison: Comparison
    directory: Any


class _Scan:
    """The state of one scan: data, float reference, the compiled probes."""

    def __init__(self, ctx: ToolContext, model: Exportable, data: EvalData, base: HlsSettings,
                 threshold: float) -> None:
        self.ctx, self.model, self.data, self.base, self.threshold = ctx, model, data, base, threshold
        self.float_out = float_outputs(model, data.x)
        self.auc_float = float(auc(data, task_scores(model, self.float_out, data.x)) or 0.0)
        self.probes: dict[int, _Probe] = {}

    def profiles(self) -> list[LayerProfile]:
        if self.model.bdt is not None:
            from physagent.tools.fpga._bdt import bdt_profiles

            return bdt_profiles(self.model.bdt, self.data.x)
        from physagent.tools.fpga._profile import profile_network

        return profile_network(self.model.network, self.data.x)

    def estimates(self, widths: list[int], bits: int) -> dict[str, float]:
        """Fake-quantised ΔAUC per width (networks; a BDT gets none)."""
        if self.model.network is None:
            return {}
        from physagent.tools.fpga._profile import fake_quantized_outputs

        found = {}
        for width in widths:
            out = fake_quantized_outputs(self.model.network, self.data.x, width, bits)
            found[fixed(width, bits)] = float(auc(self.data, task_scores(self.model, out, self.data.x)) or 0.0) \
                - self.auc_float
        return found

    def search(self, widths: list[int], bits: int, guess: int) -> None:
        """Bisection for the smallest passing width, first probing ``guess`` and then its neighbour."""
        lo, hi, probe = 0, len(widths) - 1, widths.index(guess)
        bound = math.ceil(math.log2(len(widths) + 1)) + 1
        with self.ctx.progress(f"compile ap_fixed<W,{bits}> for W in {widths[0]}..{widths[-1]}", total=bound,
                               unit="compiles") as bar:
            first = True
            while lo <= hi:
                passed = self._compile(widths[probe], bits).row.passed
                bar.advance()
                lo, hi = (lo, probe - 1) if passed else (probe + 1, hi)
                probe = (hi if passed else lo) if first else (lo + hi) // 2
                first = False

    def _compile(self, width: int, bits: int) -> _Probe:
        settings = replace(self.base, precision=fixed(width, bits))
        config = check_buildable(TOOL, self.model, settings)
        directory = self.ctx.staging / "scan" / f"w{width}"
        built = build_project(TOOL, self.model, settings, config, directory)
        comparison = compare_outputs(self.model, self.data, self.float_out, built.predict(self.data.x))
        fid = comparison.fidelity
        delta = float(fid.delta_auc or 0.0)
        row = ScanRow(precision=settings.precision, total_bits=width, integer_bits=bits, delta_auc=delta,
                      auc_fixed=float(fid.auc_fixed or 0.0), max_abs_delta_output=fid.max_abs_delta_output,
                      passed=abs(delta) <= self.threshold, compile_s=round(built.compile_s + built.conversion_s, 3))
        self.probes[width] = _Probe(row, built, comparison, directory)
        return self.probes[width]

    def result(self, bits: int, reason: str, profiles: list[LayerProfile], estimates: dict[str, float]
               ) -> PrecisionScan:
        rows = [self.probes[w].row for w in sorted(self.probes)]
        chosen = next((row for row in rows if row.passed), None)
        warnings = settings_warnings(self.model, self.base)
        if chosen is None:
            warnings.append(f"no width up to {rows[-1].total_bits if rows else '?'} bits keeps |ΔAUC| ≤ "
                            f"{self.threshold}; raise max_total_bits or integer_bits, or accept a larger ΔAUC.")
        project = self._project(chosen, warnings) if chosen is not None else None
        plots = self._plots(profiles, chosen, estimates, bits)
        return PrecisionScan(
            chosen_precision=chosen.precision if chosen else None, chosen_total_bits=chosen.total_bits if chosen
            else None, integer_bits=bits, integer_bits_reason=reason, max_delta_auc=self.threshold,
            auc_float=self.auc_float, n_events=len(self.data), rows=rows, table=_markdown(rows),
            estimated_delta_auc=estimates, layer_ranges=[LayerRange(**p.as_dict()) for p in profiles],
            n_compiles=len(rows), compile_s=round(sum(r.compile_s for r in rows), 3), project=project, plots=plots,
            warnings=warnings)

    def _project(self, chosen: ScanRow, warnings: list[str]) -> Artifact:
        probe = self.probes[chosen.total_bits]
        pending = self.ctx.new_artifact("hls_project")
        shutil.move(str(probe.directory), str(pending.directory / PROJECT_DIR))
        settings = replace(self.base, precision=chosen.precision)
        return write_project(self.ctx, pending, self.model, settings, probe.built, probe.comparison,
                             warnings + probe.built.warnings)

    def _plots(self, profiles: list[LayerProfile], chosen: ScanRow | None, estimates: dict[str, float],
               bits: int) -> Artifact:
        from physagent.tools.tag._metrics import save_png

        pending = self.ctx.new_artifact("plot")
        precision = parse_precision(chosen.precision) if chosen else None
        save_png(profile_plot(profiles, precision, f"{self.model.kind} {self.model.artifact.id}: values per layer"),
                 pending.directory / "profile.png")
        save_png(_scan_figure(self.probes, estimates, bits, self.threshold), pending.directory / "scan.png")
        summary = (f"precision scan of {self.model.kind} {self.model.artifact.id}: "
                   + (f"chose {chosen.precision}" if chosen else "no width passed"))
        return pending.finish("scan.png", summary, {"model": self.model.artifact.id, "dataset": self.data.dataset.id})


def _markdown(rows: list[ScanRow]) -> str:
    lines = ["| precision | ΔAUC | max abs Δ output | passes | compile s |", "|---|---:|---:|:-:|---:|"]
    lines += [f"| {r.precision} | {r.delta_auc:+.5f} | {r.max_abs_delta_output:.4g} | {'yes' if r.passed else 'no'} "
              f"| {r.compile_s:.1f} |" for r in rows]
    return "\n".join(lines)


def _scan_figure(probes: dict[int, _Probe], estimates: dict[str, float], bits: int, threshold: float) -> Any:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.0, 3.6))
    ax = figure.subplots()
    if estimates:
        widths = [parse_precision(p).total_bits for p in estimates]
        ax.plot(widths, list(estimates.values()), color="grey", marker=".", lw=1, label="estimate (numpy)")
    compiled = sorted(probes)
    ax.plot(compiled, [probes[w].row.delta_auc for w in compiled], "o", color="C0", label="compiled C simulation")
    ax.axhspan(-threshold, threshold, color="C2", alpha=0.15, label=f"|ΔAUC| ≤ {threshold}")
    ax.set_yscale("symlog", linthresh=threshold / 5)
    ax.set_xlabel(f"total bits W of ap_fixed<W,{bits}>")
    ax.set_ylabel("ΔAUC = AUC(fixed) − AUC(float)")
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure
