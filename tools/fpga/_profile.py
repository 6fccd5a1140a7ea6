r"""Per-layer numerical ranges of a network, and what they say about its fixed-point type.

Forward hooks on every layer record, on the dataset's events, the values each layer holds: the network
input, the weights and biases of Linear/Conv layers, and the outputs of the other layers (ReLU, pooling,
flatten). Those are the values hls4ml stores in the default precision; the outputs of Linear/Conv layers
are not, they keep hls4ml's ``auto`` accumulator type, wide enough for the sum (see :mod:`tools.fpga._hls`).

The integer bits I of ``ap_fixed<W,I>`` must cover the largest |value| (AP_WRAP wraps anything beyond);
the fractional bits W − I set the resolution 2^−(W−I) of the smallest values. The box plot shows log2|v|
per layer (as hls4ml's ``profiling.numerical`` does) with both limits of a type drawn across.

:func:`fake_quantized_outputs` is a numpy estimate of the fixed-point network (weights, biases, input and
stored activations truncated and wrapped to ``ap_fixed<W,I>``, sums exact): it ranks widths in
microseconds so ``scan_precision`` compiles only around the estimated answer. It is an estimate; every
number the scan reports comes from the compiled C simulation.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from physagent.tools.fpga._precision import Precision, integer_bits_for, quantize

__all__ = ["LayerProfile", "fake_quantized_outputs", "integer_bits_needed", "profile_network", "profile_plot"]

_ACCUMULATING = ("Linear", "Conv1d", "Conv2d")
_MAX_EVENTS = 2000  # enough for ranges; keeps the hooks' memory small


@dataclass(frozen=True)
class LayerProfile:
    """The values one layer holds (or its weights), for ranges and the box plot."""

    layer: str  # hls4ml's layer name (the torch path with '.' → '_')
    layer_type: str
    quantity: str  # input, weight, bias, output
    values: np.ndarray  # a flat sample
    at_default_precision: bool  # stored in the default type (not an auto-typed accumulator)

    @property
    def max_abs(self) -> float:
        return float(np.abs(self.values).max()) if self.values.size else 0.0

    def as_dict(self) -> dict[str, Any]:
        nonzero = np.abs(self.values[self.values != 0])
        return {"layer": self.layer, "layer_type": self.layer_type, "quantity": self.quantity,
                "min": float(self.values.min()) if self.values.size else 0.0,
                "max": float(self.values.max()) if self.values.size else 0.0, "max_abs": self.max_abs,
                "min_abs_nonzero": float(nonzero.min()) if nonzero.size else 0.0,
                "median_abs_nonzero": float(np.median(nonzero)) if nonzero.size else 0.0,
                "at_default_precision": self.at_default_precision}


def hls_name(path: str) -> str:
    """The name hls4ml's PyTorch frontend gives the layer at ``path`` (torch.fx: '.' → '_', '_' before a digit)."""
    name = path.replace(".", "_")
    return f"_{name}" if name[:1].isdigit() else name


def profile_network(network: Any, x: np.ndarray) -> list[LayerProfile]:
    """Input, weights, biases and layer outputs of ``network`` on up to 2,000 events of ``x``."""
    import torch

    from physagent.tools.fpga._models import torch_layers

    layers = torch_layers(network, "")
    seen: dict[str, np.ndarray] = {}
    handles = [layer.register_forward_hook(_recorder(seen, path)) for path, layer in layers]
    try:
        with torch.no_grad():
            network(torch.from_numpy(np.ascontiguousarray(x[:_MAX_EVENTS], dtype=np.float32)))
    finally:
        for handle in handles:
            handle.remove()
    profiles = [LayerProfile("input", "Input", "input", np.asarray(x[:_MAX_EVENTS], np.float64).ravel(), True)]
    for path, layer in layers:
        kind = type(layer).__name__
        for quantity in ("weight", "bias"):
            tensor = getattr(layer, quantity, None)
            if isinstance(tensor, torch.Tensor):
                profiles.append(LayerProfile(hls_name(path), kind, quantity,
                                             tensor.detach().double().numpy().ravel(), True))
        if path in seen:
            profiles.append(LayerProfile(hls_name(path), kind, "output", seen[path], kind not in _ACCUMULATING))
    return profiles


def _recorder(seen: dict[str, np.ndarray], path: str) -> Any:
    def hook(module: Any, inputs: Any, output: Any) -> None:
        seen[path] = output.detach().double().numpy().ravel()

    return hook


def integer_bits_needed(profiles: list[LayerProfile]) -> tuple[int, str]:
    """Integer bits (with sign) covering every value stored at the default precision, and why."""
    stored = [p for p in profiles if p.at_default_precision and p.values.size]
    widest = max(stored, key=lambda p: p.max_abs)
    bits = integer_bits_for(widest.max_abs)
    return bits, (f"largest stored |value| {widest.max_abs:.4g} ({widest.layer} {widest.quantity}) needs "
                  f"{bits} integer bits including the sign (range ±{2.0 ** (bits - 1):g})")


def fake_quantized_outputs(network: Any, x: np.ndarray, total_bits: int, integer_bits: int) -> np.ndarray:
    """The network's outputs with weights, biases, input and stored activations in ``ap_fixed<W,I>`` (estimate)."""
    import torch

    from physagent.tools.fpga._models import torch_layers

    twin = copy.deepcopy(network).double().eval()

    def q(values: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(quantize(values.detach().numpy(), total_bits, integer_bits))

    handles = []
    with torch.no_grad():
        for _, layer in torch_layers(twin, ""):
            if type(layer).__name__ in _ACCUMULATING:
                for tensor in (layer.weight, layer.bias):
                    if tensor is not None:
                        tensor.copy_(q(tensor))
            else:
                handles.append(layer.register_forward_hook(lambda m, i, out: q(out)))
        try:
            return twin(q(torch.from_numpy(np.asarray(x, dtype=np.float64)))).numpy()
        finally:
            for handle in handles:
                handle.remove()


def profile_plot(profiles: list[LayerProfile], precision: Precision | None, title: str) -> Any:
    """Box and whisker of log2|v| per layer and quantity, with the range and resolution of ``precision``."""
    from matplotlib.figure import Figure

    rows = [p for p in profiles if np.any(p.values != 0)]
    figure = Figure(figsize=(7.0, 0.32 * len(rows) + 1.6))
    ax = figure.subplots()
    data = [np.log2(np.abs(p.values[p.values != 0])) for p in rows]
    box = ax.boxplot(data, orientation="horizontal", whis=(0, 100), widths=0.6, patch_artist=True,
                     showfliers=False)
    for patch, p in zip(box["boxes"], rows, strict=True):
        patch.set_facecolor({"weight": "C0", "bias": "C2", "output": "C1", "input": "C4"}.get(p.quantity, "C5"))
        patch.set_alpha(0.55 if p.at_default_precision else 0.2)
    names = [p.layer if p.layer == p.quantity else f"{p.layer} {p.quantity}" for p in rows]
    ax.set_yticks(range(1, len(rows) + 1), names, fontsize=7)
    ax.invert_yaxis()
    if precision is not None:
        ax.axvline(np.log2(precision.max_value + precision.resolution), color="C3", lw=1,
                   label=f"range of {precision.text}")
        ax.axvline(np.log2(precision.resolution), color="C3", lw=1, ls="--", label="its resolution")
        ax.legend(fontsize=7, loc="best")
    ax.set_xlabel("log2 |value|  (whiskers: min and max; pale: accumulators, not stored at the default type)",
                  fontsize=7)
    ax.set_title(title, fontsize=9)
    figure.tight_layout()
    return figure
