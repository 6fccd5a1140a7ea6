r"""``synthesize_fpga``: high-level synthesis of an exported project, and its latency and resources.

Runs only where the vendor tool is installed: ``vitis-run`` for a Vitis project (AMD Vitis 2024.2+, what
hls4ml 1.3 calls), ``vivado_hls`` for a Vivado project. Otherwise it stops with an error naming the missing
executable and how to get it, before anything is copied or run. With the tool, it copies the project into a
new artifact, runs hls4ml's ``build(csim=False, synth=True, …)`` there, and reads latency (cycles; ns at
the target clock) and resources (LUT, FF, DSP, BRAM_18K, URAM, with the part's totals) from the tool's
C-synthesis report (:mod:`tools.fpga._synthesis`). These are HLS estimates; ``vsynth=True`` also runs
Vivado logic synthesis, whose report refines them.

For orientation only, never as this project's numbers: the hls4ml jet-tagging MLP reached ~100 ns
(arXiv:1804.06913) and conifer BDTs ~60 ns (arXiv:2002.02534); the CMS Global Trigger's AXOL1TL
autoencoder fits in its 50 ns budget.

Output: an ``hls_project`` artifact: the synthesised project directory, ``synthesis.json`` (the parsed
numbers) and the report files ``csynth.xml`` / ``csynth.rpt``.
"""

from __future__ import annotations

import shutil
from typing import Annotated, Any

from pydantic import Field

from physagent.tools._artifacts import Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError, ToolRuntimeError
from physagent.tools._registry import ToolResult, tool
from physagent.tools._workspace import PendingArtifact
from physagent.tools.fpga._params import ProjectRef
from physagent.tools.fpga._project import PROJECT_DIR, ProjectInfo, read_project, write_json_file
from physagent.tools.fpga._synthesis import (
    EXECUTABLES,
    SynthesisNumbers,
    check_executable,
    parse_synthesis,
    run_synthesis,
)

__all__ = ["SynthesisReport", "synthesize_fpga"]

TOOL = "synthesize_fpga"
RESULT_FILE = "synthesis.json"


class SynthesisReport(ToolResult):
    """Latency and resources of a project, as the HLS tool's C-synthesis report states them."""

    project: Artifact = Field(description="hls_project artifact of the synthesised project with synthesis.json "
                                          "and the csynth reports.")
    source_project: str = Field(description="Id of the project synthesised.")
    backend: str = Field(description="Vitis or Vivado.")
    part: str = Field(description="FPGA part.")
    precision: str = Field(description="Default fixed-point type of the project.")
    clock_period_target_ns: float = Field(description="Target clock period in ns.")
    clock_period_estimated_ns: float = Field(description="Clock period HLS estimates the design achieves, ns.")
    latency_cycles_best: int = Field(description="Best-case latency in clock cycles.")
    latency_cycles_worst: int = Field(description="Worst-case latency in clock cycles.")
    latency_ns_best: float = Field(description="Best-case latency in ns (cycles × target clock period).")
    latency_ns_worst: float = Field(description="Worst-case latency in ns.")
    interval_cycles_min: int = Field(description="Initiation interval (cycles between new inputs), minimum.")
    interval_cycles_max: int = Field(description="Initiation interval, maximum.")
    lut: int | None = Field(description="Look-up tables used.")
    ff: int | None = Field(description="Flip-flops used.")
    dsp: int | None = Field(description="DSP slices used.")
    bram_18k: int | None = Field(description="18-kbit block RAMs used.")
    utilization_percent: dict[str, float] = Field(description="Share of the part's LUT, FF, DSP, BRAM_18K, URAM.")
    source: str = Field(description="Where the numbers come from.")
    synthesis_wall_s: float = Field(description="Wall time of the synthesis run in seconds.")


@tool(category="fpga", version="1")
def synthesize_fpga(
    project: Annotated[ProjectRef, Field(description="Id of an hls_project artifact from export_fpga or "
                                                     "scan_precision.")],
    vsynth: Annotated[bool, Field(description="Also run Vivado logic synthesis (slower; refines resources).")
                      ] = False,
    export_ip: Annotated[bool, Field(description="Also export the design as an IP core.")] = False,
    *,
    ctx: ToolContext,
) -> SynthesisReport:
    """Synthesise an exported FPGA project with Vitis HLS (or Vivado HLS) and report latency and resources.

    Needs vitis-run (Vitis backend) or vivado_hls (Vivado backend) on PATH; without it, an error says what
    to install. Latency in cycles and ns, LUT/FF/DSP/BRAM from the tool's own report.
    """
    import time

    info = read_project(TOOL, ctx.artifact(project, "project"))
    backend = _backend(info)
    check_executable(TOOL, backend)
    pending = ctx.new_artifact("hls_project")
    target = pending.directory / PROJECT_DIR
    shutil.copytree(info.directory, target)
    start = time.perf_counter()
    with ctx.progress(f"{EXECUTABLES[backend]}: C synthesis", total=1, unit="runs") as bar:
        run_synthesis(backend, target, str(info.project["name"]), export_ip=export_ip, vsynth=vsynth)
        bar.advance()
    wall = time.perf_counter() - start
    numbers = parse_synthesis(target)
    if numbers is None:
        raise ToolRuntimeError(f"{TOOL}: {EXECUTABLES[backend]} finished but wrote no C-synthesis report "
                               f"(<project>_prj/solution1/syn/report/*_csynth.xml). See build_stdout.log and the "
                               "tool's log in the project; nothing was saved.")
    return _result(pending, info, backend, numbers, wall)


def _backend(info: ProjectInfo) -> str:
    if info.converter != "hls4ml":
        raise ToolInputError.for_param(TOOL, "project", info.artifact.id, "is a conifer BDT project built with the "
                                       "C++ emulation backend, which has no HLS code to synthesise. conifer's "
                                       "own xilinxhls backend would be needed for firmware.")
    return str(info.settings["backend"])


def _result(pending: PendingArtifact, info: ProjectInfo, backend: str, numbers: SynthesisNumbers, wall: float
            ) -> SynthesisReport:
    directory = pending.directory
    name = info.project["name"]
    reports = next((directory / PROJECT_DIR).glob(f"{name}_prj/*/syn/report"), None)
    for suffix in ("xml", "rpt"):
        found = reports / f"{name}_csynth.{suffix}" if reports else None
        if found is not None and found.is_file():
            shutil.copyfile(found, directory / f"csynth.{suffix}")
    source = f"{EXECUTABLES[backend]} C-synthesis report ({name}_csynth.xml), HLS estimates"
    values: dict[str, Any] = {"backend": backend, "part": info.settings.get("part"), "precision": info.precision,
              "clock_period_target_ns": numbers.clock_period_target_ns,
              "clock_period_estimated_ns": numbers.clock_period_estimated_ns,
              "latency_cycles_best": numbers.latency_cycles_best, "latency_cycles_worst": numbers.latency_cycles_worst,
              "latency_ns_best": numbers.latency_ns_best, "latency_ns_worst": numbers.latency_ns_worst,
              "interval_cycles_min": numbers.interval_cycles_min, "interval_cycles_max": numbers.interval_cycles_max,
              "lut": numbers.resources.get("LUT"), "ff": numbers.resources.get("FF"),
              "dsp": numbers.resources.get("DSP"), "bram_18k": numbers.resources.get("BRAM_18K"),
              "utilization_percent": numbers.utilization_percent(), "source": source}
    write_json_file(values | {"resources": numbers.resources, "available": numbers.available}, directory / RESULT_FILE)
    artifact = pending.finish(
        RESULT_FILE, f"synthesis of {info.artifact.id}: {numbers.latency_cycles_worst} cycles "
        f"({numbers.latency_ns_worst:g} ns), {numbers.resources.get('LUT')} LUT, {numbers.resources.get('DSP')} DSP",
        dict(info.artifact.metadata) | {"synthesis": values, "timing": {"synthesis_wall_s": wall}})
    return SynthesisReport(project=artifact, source_project=info.artifact.id, synthesis_wall_s=round(wall, 3),
                           **values)
