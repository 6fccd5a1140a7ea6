r"""Quantization-aware training (QAT) of the mlp trigger tagger with brevitas, for hls4ml through QONNX.

``train_tagger(model='mlp', quantize_bits=b)`` builds the mlp's layers from brevitas quantized layers
(Pappalardo et al., github.com/Xilinx/brevitas): the standardised input, every weight matrix and every
ReLU output are rounded to b-bit fixed point — signed for inputs and weights, unsigned after a ReLU —
with per-tensor power-of-two scales, so each is an ``ap_fixed``/``ap_ufixed`` type on the FPGA. Training
sees the rounding (straight-through gradients) and learns around it; this is what lets a 4–6-bit network
keep the float network's separation where post-training quantization at the same width loses it
(Coelho et al., arXiv:2006.10159). Biases and the last layer's output stay unquantized: hls4ml gives
them the export's default type.

Export goes brevitas → QONNX (``export_qonnx``, Pappalardo et al. arXiv:2206.07527) → hls4ml's ONNX
frontend, which turns each ``Quant`` node into the fixed-point type of the layer it follows
(:mod:`tools.fpga._qonnx`). brevitas supports hls4ml only through QONNX; HGQ2 needs Keras 3, which is not
installed beside our PyTorch stack.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from physagent.tools._errors import ToolDependencyError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["MAX_BITS", "MIN_BITS", "quantization_card", "quantized_mlp"]

MIN_BITS, MAX_BITS = 2, 16


def quantized_mlp(sizes: list[int], bits: int) -> nn.Sequential:
    """Input quantizer, then (QuantLinear, QuantReLU) per hidden layer, then a QuantLinear to 2 logits.

    ``sizes`` = [inputs, hidden…]; weights and activations at ``bits`` with power-of-two scales.
    """
    qnn, quant = _brevitas()
    from torch import nn

    layers: list[nn.Module] = [qnn.QuantIdentity(act_quant=quant.Int8ActPerTensorFixedPoint, bit_width=bits,
                                                 return_quant_tensor=True)]
    for n_in, n_out in itertools.pairwise(sizes):
        layers += [_linear(qnn, quant, n_in, n_out, bits),
                   qnn.QuantReLU(act_quant=quant.Uint8ActPerTensorFixedPoint, bit_width=bits,
                                 return_quant_tensor=True)]
    layers.append(_linear(qnn, quant, sizes[-1], 2, bits))
    return nn.Sequential(*layers)


def quantization_card(arch: dict[str, Any]) -> dict[str, Any]:
    """The model-card entry of a quantization-aware-trained network (empty for a float one)."""
    bits = arch.get("quantize_bits")
    if not bits:
        return {}
    import importlib.metadata

    return {"quantization": {
        "method": "quantization-aware training", "library": "brevitas",
        "version": importlib.metadata.version("brevitas"), "bits": int(bits),
        "inputs": f"signed {bits}-bit fixed point", "weights": f"signed {bits}-bit fixed point",
        "activations": f"unsigned {bits}-bit fixed point after each ReLU", "scales": "per tensor, powers of two",
        "unquantized": "biases and the output logits (export_fpga gives them its default type)"}}


def _linear(qnn: Any, quant: Any, n_in: int, n_out: int, bits: int) -> nn.Module:
    return qnn.QuantLinear(n_in, n_out, bias=True, weight_quant=quant.Int8WeightPerTensorFixedPoint,
                           weight_bit_width=bits, return_quant_tensor=False)


def _brevitas() -> tuple[Any, Any]:
    try:
        import brevitas.nn as qnn
        from brevitas import quant
    except ImportError as exc:
        raise ToolDependencyError(f"train_tagger: quantize_bits needs brevitas, which is not importable ({exc}). "
                                  "Install it with pip install 'brevitas>=0.13.4,<0.14' qonnx onnxoptimizer, or "
                                  "train without quantize_bits.") from exc
    return qnn, quant
