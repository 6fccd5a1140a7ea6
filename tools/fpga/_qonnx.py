r"""A quantization-aware-trained brevitas network → QONNX, the form hls4ml's ONNX frontend converts.

brevitas ``export_qonnx`` writes the network with one ``Quant`` node (scale, zero point, bit width) per
quantizer; qonnx's cleanup folds constants and infers shapes, ``GemmToMatMul`` gives the MatMul + Add form
hls4ml reads, and ``ConvertToChannelsLastAndClean`` is the layout step hls4ml's QONNX guide applies
(a no-op for a dense network). hls4ml then turns every ``Quant`` with a power-of-two scale into an
``ap_fixed``/``ap_ufixed`` type on the tensor it quantizes (hls4ml 1.3, QONNX docs).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from physagent.tools._errors import ToolDependencyError, ToolRuntimeError, one_line
from physagent.tools.fpga._hls import captured_output

__all__ = ["to_qonnx"]


def to_qonnx(tool: str, network: Any, input_shape: tuple[int, ...]) -> Any:
    """The cleaned QONNX ``ModelWrapper`` of a brevitas network taking (1, *input_shape) float32."""
    import torch

    export_qonnx, cleanup_model, transforms = _qonnx(tool)
    with (tempfile.TemporaryDirectory(prefix="physagent-qonnx-") as tmp, warnings.catch_warnings(),
          captured_output(), _quiet("torch.onnx")):  # the exporter reports progress; a tool's output is its result
        warnings.simplefilter("ignore")  # the exporter warns about dynamo internals, not about the model
        path = Path(tmp) / "model.onnx"
        try:
            export_qonnx(network.eval(), input_t=torch.zeros((1, *input_shape)), export_path=str(path))
            from qonnx.core.modelwrapper import ModelWrapper

            model = cleanup_model(ModelWrapper(str(path)))
            for transform in transforms:
                model = model.transform(transform())
            return cleanup_model(model)
        except Exception as exc:  # brevitas and qonnx raise many types; the message says what failed
            raise ToolRuntimeError(f"{tool}: brevitas could not export the quantized network to QONNX "
                                   f"({one_line(exc)}). Nothing was saved.") from exc


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """The exporter logs a warning per torchvision operator it cannot register; none concern this network."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _qonnx(tool: str) -> tuple[Any, Any, list[Any]]:
    try:
        with warnings.catch_warnings():  # import-time chatter of brevitas about optional kernels
            warnings.simplefilter("ignore")
            from brevitas.export import export_qonnx
            from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
            from qonnx.transformation.gemm_to_matmul import GemmToMatMul
            from qonnx.util.cleanup import cleanup_model
    except ImportError as exc:
        raise ToolDependencyError(f"{tool}: a quantization-aware-trained model goes to hls4ml through QONNX, which "
                                  f"needs brevitas, qonnx and onnxoptimizer ({exc}). Install them with pip install "
                                  "'brevitas>=0.13.4,<0.14' 'qonnx>=1.0,<1.1' onnxoptimizer.") from exc
    return export_qonnx, cleanup_model, [ConvertToChannelsLastAndClean, GemmToMatMul]
