r"""One build path for every model: hls4ml for networks, conifer for the BDT, and the hls_project artifact.

:func:`build_project` converts and compiles a model at given settings into a directory and returns a
:class:`Built` whose ``predict`` is the bit-accurate emulation; :func:`write_project` turns a built project
(and, when a dataset was given, its float-vs-fixed comparison) into the artifact of
:mod:`tools.fpga._project`; :func:`reload_built` gives compare_fixed_point the emulation of a stored project
(the compiled hls4ml library, or a rebuild of the conifer model at the recorded precision).
"""

from __future__ import annotations

import importlib.metadata
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from physagent.tools._artifacts import Artifact
from physagent.tools._context import ToolContext
from physagent.tools._errors import ToolInputError
from physagent.tools.fpga._emulator import Emulator
from physagent.tools.fpga._fidelity import Comparison
from physagent.tools.fpga._hls import CONFIG_FILE, PROJECT_NAME, HlsSettings, compile_network, hls_config
from physagent.tools.fpga._models import Exportable
from physagent.tools.fpga._project import (
    PROJECT_DIR,
    REPORT_FILE,
    SYNTHESIS_NOTE,
    TARBALL,
    ProjectInfo,
    write_json_file,
    write_tarball,
)

__all__ = ["Built", "build_project", "reload_built", "settings_warnings", "write_project"]

DEFAULTS = HlsSettings("Vitis", "xcvu13p-flga2577-2-e", 5.0, "ap_fixed<16,6>")
PLOT_FILE = "fixed_point.png"


@dataclass
class Built:
    """A compiled project: its emulation, per-layer types, configuration and what it took."""

    converter: str  # hls4ml or conifer
    predict: Callable[[np.ndarray], np.ndarray]
    layers: list[dict[str, Any]]
    config: dict[str, Any]
    project: dict[str, Any]
    conversion_s: float
    compile_s: float
    warnings: list[str] = field(default_factory=list)


def settings_warnings(model: Exportable, settings: HlsSettings) -> list[str]:
    """Settings that do not apply to a BDT (conifer's C++ emulation has one type and no HLS directives)."""
    if model.kind != "bdt":
        return []
    ignored = [name for name in ("backend", "part", "clock_period_ns", "reuse_factor", "strategy", "io_type")
               if getattr(settings, name) != getattr(DEFAULTS, name)]
    return [f"{', '.join(ignored)} do not apply to a BDT: conifer's C++ emulation uses one fixed-point type and "
            "no HLS directives; they were ignored."] if ignored else []


def check_buildable(tool: str, model: Exportable, settings: HlsSettings) -> dict[str, Any] | None:
    """Everything that can be refused before files are written; returns the hls4ml configuration (networks)."""
    if model.kind == "bdt":
        if settings.layer_precision:
            raise ToolInputError.for_param(tool, "layer_precision", settings.layer_precision, "does not apply to a "
                                           "BDT: conifer uses one type for inputs, thresholds and scores. Leave it "
                                           "out and set precision.")
        return None
    return hls_config(tool, model.network, model.input_shape, settings, model.qonnx)


def build_project(tool: str, model: Exportable, settings: HlsSettings, config: dict[str, Any] | None,
                  output_dir: Path) -> Built:
    """Convert and compile ``model`` into ``output_dir`` (created)."""
    if model.kind == "bdt":
        from physagent.tools.fpga._bdt import compile_bdt

        compiled_bdt = compile_bdt(tool, model.bdt, settings.precision, output_dir)
        project = {"name": "bdt", "input_shape": list(model.input_shape), "output_size": 1}
        return Built("conifer", compiled_bdt.predict, compiled_bdt.layers, compiled_bdt.config, project, 0.0,
                     compiled_bdt.compile_s, compiled_bdt.warnings)
    if config is None:
        config = hls_config(tool, model.network, model.input_shape, settings, model.qonnx)
    compiled = compile_network(tool, model.network, model.input_shape, config, settings, output_dir, model.qonnx)
    emulator = compiled.emulator
    project = {"name": PROJECT_NAME, "library": f"firmware/{emulator.library.name}", "stamp": compiled.stamp,
               "input_shape": list(model.input_shape), "input_size": emulator.input_size,
               "output_size": emulator.output_size, "channels_first_to_last": emulator.channels_first_to_last}
    return Built("hls4ml", emulator.predict, compiled.layers, compiled.config, project, compiled.conversion_s,
                 compiled.compile_s)


def write_project(ctx: ToolContext, pending: Any, model: Exportable, settings: HlsSettings, built: Built,
                  comparison: Comparison | None, warnings: list[str]) -> Artifact:
    """Seal the hls_project artifact whose project directory ``built`` was compiled into."""
    from physagent.tools.tag._metrics import save_png

    directory = pending.directory
    names = write_tarball(directory / PROJECT_DIR, directory / TARBALL)
    config_name = "hls4ml_config.json" if built.converter == "hls4ml" else "conifer_config.json"
    write_json_file(built.config, directory / config_name)
    if built.converter == "hls4ml":
        shutil.copyfile(directory / PROJECT_DIR / CONFIG_FILE, directory / CONFIG_FILE)
    if comparison is not None:
        from physagent.tools.fpga._fidelity import fidelity_plot

        save_png(fidelity_plot(model, comparison, settings.precision), directory / PLOT_FILE)
    report = _report(model, settings, built, comparison, warnings, names)
    write_json_file(report, directory / REPORT_FILE)
    summary = (f"{built.converter} project of {model.kind} {model.artifact.id} at {settings.precision}"
               + (f" ({settings.backend}, {settings.part})" if built.converter == "hls4ml" else " (conifer C++)"))
    if comparison is not None and comparison.fidelity.delta_auc is not None:
        summary += f", ΔAUC {comparison.fidelity.delta_auc:+.4f}"
    # ids and timings vary from run to run: they go into the artifact record, not into the hashed files
    metadata = report | {"model": report["model"] | {"id": model.artifact.id},
                         "fidelity": comparison.fidelity.model_dump() if comparison is not None else None,
                         "timing": {"conversion_s": built.conversion_s, "compile_s": built.compile_s}}
    return pending.finish(TARBALL, summary, metadata)


def _report(model: Exportable, settings: HlsSettings, built: Built, comparison: Comparison | None,
            warnings: list[str], names: list[str]) -> dict[str, Any]:
    return {
        "converter": built.converter, "versions": _versions(built.converter, model.quantize_bits is not None),
        "model": {"kind": model.kind, "task": model.task, "sha256": model.artifact.sha256,
                  "summary": model.artifact.summary, "output": model.output, "score": model.score,
                  "quantization": model.card.get("quantization")},
        "settings": settings.as_dict() if built.converter == "hls4ml" else {"precision": settings.precision},
        "project": built.project | {"directory": PROJECT_DIR, "tarball": TARBALL, "n_files": len(names)},
        "layers": built.layers,
        "fidelity": _fidelity_record(comparison),
        "warnings": warnings, "latency_and_resources": SYNTHESIS_NOTE,
    }


def _fidelity_record(comparison: Comparison | None) -> dict[str, Any] | None:
    """The comparison for the file: the dataset by content hash (ids go into the artifact record)."""
    if comparison is None:
        return None
    return comparison.fidelity.model_dump() | {"dataset": {"sha256": comparison.dataset_sha256}}


def _versions(converter: str, quantized: bool) -> dict[str, str]:
    names = ["hls4ml", "torch"] if converter == "hls4ml" else ["conifer", "scikit-learn"]
    names += ["brevitas", "qonnx"] if quantized else []
    return {name: importlib.metadata.version(name) for name in names}


def reload_built(tool: str, info: ProjectInfo, model: Exportable, workdir: Path) -> Callable[[np.ndarray], np.ndarray]:
    """The emulation of a stored project: its hls4ml library, or conifer rebuilt at the recorded precision."""
    if info.converter == "conifer":
        from physagent.tools.fpga._bdt import compile_bdt

        return compile_bdt(tool, model.bdt, info.precision, workdir / "conifer").predict
    project = info.project
    library = info.directory / project["library"]
    if not library.is_file():
        raise ToolInputError.for_param(tool, "project", info.artifact.id, f"has no compiled library "
                                       f"{project['library']} in its project directory. Export the model again "
                                       "with export_fpga.")
    return Emulator(library, project["name"], int(project["input_size"]), int(project["output_size"]),
                    bool(project["channels_first_to_last"])).predict
