r"""High-level synthesis of an hls4ml project, and the latency and resources its reports give.

hls4ml 1.3 runs synthesis through the vendor tool: the Vitis backend calls ``vitis-run --tcl build_prj.tcl
--mode hls`` (AMD Vitis 2024.2 and newer; older Vitis HLS releases ship ``vitis_hls``, which hls4ml 1.3 no
longer calls), the Vivado backend ``vivado_hls -f build_prj.tcl`` (Vivado HLS ≤ 2020.1). Nothing here
estimates latency or resources: every number comes from the tool's C-synthesis report
``<project>_prj/solution1/syn/report/<project>_csynth.xml``, read by ``hls4ml.report.parse_vivado_report``.

Latency in ns = cycles × the target clock period of the report (the clock the design is scheduled for).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from physagent.tools._errors import ToolDependencyError, ToolRuntimeError
from physagent.tools.fpga._hls import captured_output

__all__ = ["EXECUTABLES", "SynthesisNumbers", "check_executable", "parse_synthesis", "run_synthesis"]

EXECUTABLES = {"Vitis": "vitis-run", "Vivado": "vivado_hls"}
_HOW = {
    "Vitis": "Install AMD Vitis (2024.2 or newer; Vitis HLS is free for most parts) and, in the shell that starts "
             "physagent, run `source <install dir>/Vitis/<version>/settings64.sh` so that vitis-run is on PATH",
    "Vivado": "Install Xilinx Vivado HLS (2020.1 or older) and run `source <install dir>/Vivado/<version>/"
              "settings64.sh` so that vivado_hls is on PATH; or export the model again with backend='Vitis'",
}
_RESOURCES = ("LUT", "FF", "DSP", "BRAM_18K", "URAM")


@dataclass(frozen=True)
class SynthesisNumbers:
    """Latency and resources as the C-synthesis report states them."""

    clock_period_target_ns: float
    clock_period_estimated_ns: float
    latency_cycles_best: int
    latency_cycles_worst: int
    interval_cycles_min: int
    interval_cycles_max: int
    resources: dict[str, int]
    available: dict[str, int]

    @property
    def latency_ns_best(self) -> float:
        return self.latency_cycles_best * self.clock_period_target_ns

    @property
    def latency_ns_worst(self) -> float:
        return self.latency_cycles_worst * self.clock_period_target_ns

    def utilization_percent(self) -> dict[str, float]:
        return {k: round(100.0 * v / self.available[k], 3) for k, v in self.resources.items()
                if self.available.get(k)}


def check_executable(tool: str, backend: str) -> str:
    """The synthesis executable of ``backend`` on PATH, or a ToolDependencyError naming it and how to get it."""
    name = EXECUTABLES[backend]
    found = shutil.which(name)
    if found:
        return found
    older = " (vitis_hls is on PATH, but hls4ml 1.3 calls vitis-run, which Vitis 2024.2 introduced)" if (
        backend == "Vitis" and shutil.which("vitis_hls")) else ""
    raise ToolDependencyError(f"{tool}: synthesis with backend {backend} needs the executable {name}, which is not on "
                              f"PATH{older}. {_HOW[backend]}. The C simulation (export_fpga, compare_fixed_point) "
                              "needs only g++; latency and resources need this synthesis.")


def run_synthesis(backend: str, project_dir: Path, project_name: str, *, export_ip: bool, vsynth: bool) -> str:
    """hls4ml's ``build(csim=False, synth=True, …)`` on the project in ``project_dir``; returns the captured log."""
    from hls4ml.backends import get_backend

    handle = _ProjectHandle(project_dir, project_name)
    options: dict[str, Any] = {"reset": False, "csim": False, "synth": True, "cosim": False, "validation": False,
                               "export": export_ip, "vsynth": vsynth}
    if backend == "Vitis":
        options["log_to_stdout"] = False  # hls4ml writes build_stdout.log / build_stderr.log into the project
    with captured_output() as said:
        try:
            get_backend(backend).build(handle, **options)
        except Exception as exc:  # hls4ml raises bare Exceptions
            said.append(f"\n{exc}")
            failure: Exception | None = exc
        else:
            failure = None
    text = "".join(said)
    if failure is not None:
        raise ToolRuntimeError(f"synthesize_fpga: {EXECUTABLES[backend]} failed ({failure}). Its logs are in the "
                               "project (build_stdout.log, vitis_hls.log / vivado_hls.log); nothing was saved.")
    return text


class _ProjectHandle:
    """What hls4ml's backend ``build`` reads of a ModelGraph: the project's directory and name."""

    def __init__(self, directory: Path, name: str) -> None:
        self.config = self
        self._directory, self._name = directory, name

    def get_output_dir(self) -> str:
        return str(self._directory)

    def get_project_name(self) -> str:
        return self._name


def parse_synthesis(project_dir: Path) -> SynthesisNumbers | None:
    """The C-synthesis numbers of a project directory (``project.tcl`` + ``<name>_prj/``), None without a report."""
    from hls4ml.report import parse_vivado_report

    with captured_output():  # the parser prints what it did not find
        try:
            report = parse_vivado_report(str(project_dir))
        except (IndexError, KeyError, AttributeError, NameError, OSError, ValueError, SyntaxError):  # odd files
            return None
    csynth = (report or {}).get("CSynthesisReport")
    if not csynth:
        return None
    return SynthesisNumbers(
        clock_period_target_ns=float(csynth["TargetClockPeriod"]),
        clock_period_estimated_ns=float(csynth["EstimatedClockPeriod"]),
        latency_cycles_best=int(csynth["BestLatency"]), latency_cycles_worst=int(csynth["WorstLatency"]),
        interval_cycles_min=int(csynth["IntervalMin"]), interval_cycles_max=int(csynth["IntervalMax"]),
        resources={k: int(csynth[k]) for k in _RESOURCES if k in csynth},
        available={k: int(csynth[f"Available{k}"]) for k in _RESOURCES if f"Available{k}" in csynth})
