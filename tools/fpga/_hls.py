r"""hls4ml for PyTorch networks: configuration, conversion and the g++ build of the bit-accurate C simulation.

hls4ml 1.3: ``config_from_pytorch_model(net, input_shape, granularity='name', backend, default_precision,
default_reuse_factor)`` gives one entry per layer; this module adds the strategy (Latency: fully unrolled,
Resource: reuses multipliers), per-layer precision overrides, then
``convert_from_pytorch_model(net, hls_config, output_dir, backend, io_type, part, clock_period)`` and
``compile()`` (g++ through the project's ``build_lib.sh``). Dense/Conv accumulators and results keep
hls4ml's ``auto`` precision (wide enough for the sum of products, so no internal overflow); inputs,
weights, biases and activation outputs take the default precision unless overridden.

Three choices make the project reproducible and relocatable: weights are compiled into the firmware
headers (``write_weights_txt=False``: the library never reads files, so it works after the artifact
directory moves), the library stamp is derived from the model and configuration instead of a random
UUID, and ``hls4ml_config.yml`` is rewritten without the pickled PyTorch model and the absolute output
path hls4ml puts there. hls4ml's own output (topology, g++ messages) is captured and logged, not printed.

A quantization-aware-trained mlp is converted from its QONNX form (:mod:`tools.fpga._qonnx`) with
``config_from_onnx_model`` / ``convert_from_onnx_model``: its inputs, weights and ReLU outputs take the
types training fixed; biases and accumulators the default precision. The project input is
``fixed<32,16>`` (``QAT_INPUT_PRECISION``) so the first quantizer rounds the float input as training did.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from physagent.tools._errors import ToolDependencyError, ToolInputError, ToolRuntimeError, one_line
from physagent.tools._stdio import capture_fd_stdout
from physagent.tools.fpga._emulator import Emulator
from physagent.tools.fpga._precision import parse_precision

__all__ = ["CONFIG_FILE", "PROJECT_NAME", "Compiled", "HlsSettings", "captured_output", "compile_network", "hls_config"]

log = logging.getLogger(__name__)

PROJECT_NAME = "myproject"
CONFIG_FILE = "hls4ml_config.yml"
_PRECISION_KEYS = ("weight", "bias", "result", "accum")
QAT_INPUT, QAT_INPUT_PRECISION = "global_in", "fixed<32,16,RND_CONV,SAT>"
_LOCK = threading.Lock()  # the stamp patch below is process-wide: one conversion at a time


@dataclass(frozen=True)
class HlsSettings:
    """What the caller chose for the hls4ml project."""

    backend: str  # Vitis or Vivado
    part: str
    clock_period_ns: float
    precision: str
    layer_precision: dict[str, str] = field(default_factory=dict)
    reuse_factor: int = 1
    strategy: str = "latency"  # latency or resource
    io_type: str = "io_parallel"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Compiled:
    """A converted and compiled project: its emulator, per-layer types and what it took."""

    emulator: Emulator
    layers: list[dict[str, Any]]
    config: dict[str, Any]  # the project's configuration, as written to hls4ml_config.yml
    stamp: str
    conversion_s: float
    compile_s: float
    log: str


def hls_config(tool: str, network: Any, input_shape: tuple[int, ...], settings: HlsSettings,
               qonnx: Any = None) -> dict[str, Any]:
    """hls4ml's per-layer configuration with the strategy, reuse factor and precision overrides applied.

    ``qonnx``: the QONNX form of a quantization-aware-trained ``network``, converted instead of it.
    """
    import hls4ml

    with captured_output() as said:
        if qonnx is None:
            config = hls4ml.utils.config_from_pytorch_model(
                network, input_shape=input_shape, granularity="name", backend=settings.backend,
                default_precision=settings.precision, default_reuse_factor=settings.reuse_factor)
        else:
            config = hls4ml.utils.config_from_onnx_model(
                qonnx, granularity="name", backend=settings.backend, default_precision=settings.precision,
                default_reuse_factor=settings.reuse_factor)
            # the float input reaches the first Quant node intact, so it rounds as in training
            config["LayerName"][QAT_INPUT]["Precision"]["result"] = QAT_INPUT_PRECISION
    _log("config", said)
    config["Model"]["Strategy"] = settings.strategy.capitalize()
    for layer in config["LayerName"].values():
        layer["ReuseFactor"] = settings.reuse_factor
    _override(tool, config["LayerName"], settings.layer_precision)
    return config


def _override(tool: str, layers: dict[str, Any], overrides: dict[str, str]) -> None:
    """``{'fc1': P}`` sets weight, bias and result of fc1; ``{'fc1.accum': P}`` one type."""
    for key, precision in overrides.items():
        name, _, which = key.partition(".")
        if name not in layers:
            raise ToolInputError.for_param(tool, "layer_precision", overrides, f"names layer {name!r}, which the "
                                           f"network does not have. Its layers: {', '.join(layers)}.")
        if which and which not in _PRECISION_KEYS:
            raise ToolInputError.for_param(tool, "layer_precision", overrides, f"has {key!r}; after the layer name "
                                           f"use one of .{', .'.join(_PRECISION_KEYS)} (or nothing).")
        _check_precision(tool, "layer_precision", precision)
        entry = layers[name].setdefault("Precision", {})
        for part in [which] if which else [k for k in ("weight", "bias", "result") if k in entry or k == "result"]:
            entry[part] = precision


def _check_precision(tool: str, param: str, text: str) -> None:
    try:
        parse_precision(text)
    except ValueError as exc:
        raise ToolInputError.for_param(tool, param, text, f"{exc}.") from None


def compile_network(tool: str, network: Any, input_shape: tuple[int, ...], config: dict[str, Any],
                    settings: HlsSettings, output_dir: Path, qonnx: Any = None) -> Compiled:
    """Convert ``network`` (or its QONNX form) into an hls4ml project in ``output_dir``; build its C simulation."""
    import hls4ml

    if shutil.which("g++") is None:
        raise ToolDependencyError(f"{tool}: g++ is not on PATH; hls4ml needs it to build the bit-accurate C "
                                  "simulation. Install it (Debian/Ubuntu: apt-get install g++) and retry.")
    stamp = _stamp(network, config, settings)
    error: Exception | None = None
    with _LOCK, _fixed_stamp(stamp), captured_output() as said:
        try:
            start = time.perf_counter()
            convert = (functools.partial(hls4ml.converters.convert_from_pytorch_model, network) if qonnx is None
                       else functools.partial(hls4ml.converters.convert_from_onnx_model, qonnx))
            model = convert(hls_config=config, output_dir=str(output_dir), project_name=PROJECT_NAME,
                            backend=settings.backend, io_type=settings.io_type, part=settings.part,
                            clock_period=settings.clock_period_ns, write_weights_txt=False)
            converted = time.perf_counter()
            model.compile()
            compiled = time.perf_counter()
        except Exception as exc:  # hls4ml raises bare Exceptions; the captured log says what g++ said
            error = exc
    text = "".join(said)
    if error is not None:
        log.warning("hls4ml failed:\n%s", text)
        raise _failure(tool, error, text) from error
    _log("conversion and compile", [text])
    written = _rewrite_config(model, output_dir, network, qonnx is not None)
    return Compiled(_emulator(model, input_shape, output_dir, stamp), _layers(model), written, stamp,
                    converted - start, compiled - converted, text)


def _failure(tool: str, exc: Exception, text: str) -> ToolRuntimeError:
    errors = [line.strip() for line in text.splitlines() if "error" in line.lower()][:2]
    said = f" The build said: {' | '.join(errors)[:400]}." if errors else ""
    return ToolRuntimeError(f"{tool}: hls4ml could not convert or compile the network ({one_line(exc)}).{said} "
                            "Nothing was saved. Check the layer types and the precision; if they are fine, report "
                            "the error with the hls4ml version.")


@contextlib.contextmanager
def captured_output() -> Iterator[list[str]]:
    """hls4ml's prints (Python's sys.stdout, wherever it points) and g++'s (fd 1), as text for the log."""
    import io

    python = io.StringIO()
    with capture_fd_stdout() as native, contextlib.redirect_stdout(python):
        said: list[str] = []
        yield said
    said += [python.getvalue(), *native]


def _log(stage: str, said: list[str]) -> None:
    text = "".join(said).strip()
    if text:
        log.debug("hls4ml %s:\n%s", stage, text)


def _stamp(network: Any, config: dict[str, Any], settings: HlsSettings) -> str:
    """8 hex digits from the weights and the configuration: same model and settings, same project files."""
    digest = hashlib.sha256(json.dumps([config, settings.as_dict()], sort_keys=True, default=str).encode())
    for name, tensor in sorted(network.state_dict().items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(tensor.detach().cpu().numpy()).tobytes())
    return digest.hexdigest()[:8]


@contextlib.contextmanager
def _fixed_stamp(stamp: str) -> Iterator[None]:
    """hls4ml's ``make_stamp`` pass takes the last 8 characters of ``uuid.uuid4()``; give it ours."""
    import importlib
    from unittest import mock

    module = importlib.import_module("hls4ml.model.optimizer.passes.stamp")
    fixed = uuid.UUID(int=int(stamp, 16))
    with mock.patch.object(module, "uuid", mock.Mock(uuid4=lambda: fixed)):
        yield


def _rewrite_config(model: Any, output_dir: Path, network: Any, from_qonnx: bool) -> dict[str, Any]:
    """hls4ml_config.yml without the pickled network and the absolute output path (see module docstring)."""
    import yaml

    config = json.loads(json.dumps(model.config.config, default=str))
    config["OutputDir"] = "."
    config["OnnxModel" if from_qonnx else "PytorchModel"] = (
        ("QONNX export of " if from_qonnx else "") + " ".join(repr(network).split()))
    (output_dir / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=True))
    return config


def _emulator(model: Any, input_shape: tuple[int, ...], output_dir: Path, stamp: str) -> Emulator:
    inputs, outputs = model.get_input_variables(), model.get_output_variables()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ToolRuntimeError(f"hls4ml made a project with {len(inputs)} inputs and {len(outputs)} outputs; one "
                               "of each was expected.")
    shape = tuple(int(n) for n in inputs[0].shape)
    swap = len(input_shape) == 2 and shape == input_shape[::-1] and shape != input_shape
    library = output_dir / "firmware" / f"{PROJECT_NAME}-{stamp}.so"
    return Emulator(library, PROJECT_NAME, int(inputs[0].size()), int(outputs[0].size()), swap)


def _layers(model: Any) -> list[dict[str, Any]]:
    """Name, hls4ml class, fixed-point types and reuse factor of every layer."""
    rows = []
    for layer in model.get_layers():
        types = {key.removesuffix("_t"): _cpp(t.precision) for key, t in layer.types.items() if key != "index_t"}
        if layer.get_attr("activation") in ("relu", "linear"):
            types.pop("table", None)  # a lookup table only sigmoid, tanh, softmax … use
        rows.append({"name": layer.name, "layer_type": layer.class_name, "precision": types,
                     "reuse_factor": int(layer.get_attr("reuse_factor") or 1)})
    return rows


def _cpp(precision: Any) -> str:
    definition = getattr(precision, "definition_cpp", None)
    return str(definition() if callable(definition) else precision)
