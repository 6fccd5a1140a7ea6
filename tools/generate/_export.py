r"""Export the sampling networks of trained generators to ONNX, checked against torch with onnxruntime.

What is exported (float32, batch axis dynamic; the point axis too), by model:

- ``flow``: ``sampler.onnx``, noise → sample: inputs ``z`` (B, n_features) standard normal and, if
  conditional, ``conditions`` (B, n_conditions) in the features' units; output ``x`` (B, n_features), the
  inverse of the flow with the feature transform undone (:meth:`~._flows.TabularFlow.sample`).
- ``caloflow``: ``sampler.onnx``, inputs ``energy_gev`` (B,), ``z_layers`` (B, L), ``z_cells`` (B, V);
  output ``cells`` (B, L, A, B) in MeV (:meth:`~._caloflow.CaloFlow.sample`).
- ``calofast``: ``sampler.onnx``, inputs ``energy_gev`` (B,), ``z_layers`` (B, L) standard normal and
  ``bits`` (B, V) int32 uniformly random words (one per voxel); output ``cells`` (B, L, A, B) in MeV
  (:meth:`~._calofast.FastCalo.sample`, hits found with ``NonZero``, cells written with ``ScatterND``).
- ``calohits``: nothing; its hits are drawn in a compiled numba loop (Poisson counts, alias tables, merged
  repeats) that ONNX cannot express, so ``export_problems`` says so and ``sample_generator`` samples it.
- ``pointcloud``: ``velocity.onnx``, one network call of the ODE dx/dt = v_θ(x, t | c, n): inputs
  ``points`` (B, P, D) standardised, ``mask`` (B, P) 1 for real points and 0 for padding, ``t`` (B, 1),
  ``condition`` (B, K) in GeV (n is read from the mask); output ``velocity`` (B, P, D). Integrate it from
  Gaussian noise at t = 0 to t = 1, then points = x · point_scale + point_shift (card ``export``) with the
  last coordinate exponentiated. ``set_flow.onnx`` maps noise ``z`` (B, 2) and ``condition`` (B, K) to
  (log(n + u), log W) of :mod:`tools.generate._pointcloud`.

ONNX uses the TorchScript-based exporter (``dynamo=False``, opset 17; the dynamo exporter needs
onnxscript, which is not installed), as :mod:`tools.tag._export` does. Each file is traced on 4 samples
(a few points) and checked by onnxruntime on the first 64 training samples at their full size, so the
dynamic axes are tested too. A failed export is reported in the card (``export.<name>.error``) instead
of failing the training.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["OPSET", "export_generator", "run_onnx"]

OPSET = 17
_TRACE_ROWS, _TRACE_POINTS, _CHECK_ROWS = 4, 5, 64


class _FlowSampler(nn.Module):
    def __init__(self, flow: Any, log_conditions: bool = False) -> None:
        super().__init__()
        self.flow, self.log_conditions = flow, log_conditions

    def forward(self, z: torch.Tensor, *conditions: torch.Tensor) -> torch.Tensor:
        c = conditions[0] if conditions else z[:, :0]
        return self.flow.sample(torch.log(c) if self.log_conditions else c, z)


class _CaloFlowSampler(nn.Module):
    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, energy_gev: torch.Tensor, z_layers: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.model.sample(energy_gev, z_layers, noise)


class _VelocityStep(nn.Module):
    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, points: torch.Tensor, mask: torch.Tensor, t: torch.Tensor, condition: torch.Tensor
                ) -> torch.Tensor:
        return self.model.velocity_step(points, t, condition, mask)


def export_generator(model: Any, name: str, train: tuple[torch.Tensor, ...], directory: Path) -> dict[str, Any]:
    """Write the ONNX files of a trained generator (eval mode); returns per file its inputs and the largest
    difference to torch, or the exporter's error."""
    generator = torch.Generator().manual_seed(0)
    if name == "calohits":
        return {"sampler": {"error": "not exported: calohits draws its hits in a compiled numba loop (Poisson "
                                     "counts, alias tables) that ONNX cannot express; sample it with "
                                     "sample_generator"}}
    if name == "flow":
        values, given = train
        inputs = {"z": torch.randn(values[:_CHECK_ROWS].shape, generator=generator)}
        if given.shape[1]:
            inputs["conditions"] = given[:_CHECK_ROWS]
        return {"sampler": _try(_FlowSampler(model), inputs, "x", directory / "sampler.onnx")}
    if name in ("caloflow", "calofast"):
        energies = train[1]
        rows = len(energies[:_CHECK_ROWS])
        inputs = {"energy_gev": energies[:rows],
                  "z_layers": torch.randn((rows, model.grid_shape[0]), generator=generator)}
        if name == "caloflow":
            inputs["z_cells"] = torch.randn((rows, model.n_voxels), generator=generator)
        else:
            inputs["bits"] = torch.randint(-2**31, 2**31 - 1, (rows, model.n_voxels), dtype=torch.int32,
                                           generator=generator)
        return {"sampler": _try(_CaloFlowSampler(model), inputs, "cells", directory / "sampler.onnx")}
    points, mask, cond = (t[:_CHECK_ROWS] for t in train)
    step = {"points": torch.randn(points.shape, generator=generator), "mask": mask.float(),
            "t": torch.rand((len(points), 1), generator=generator), "condition": cond}
    info = _try(_VelocityStep(model), step, "velocity", directory / "velocity.onnx")
    if "file" in info:
        info |= {"point_shift": model.point_shift.tolist(), "point_scale": model.point_scale.tolist(),
                 "coordinates": list(model.spec.coordinates), "last_coordinate": "log"}
    sets = {"z": torch.randn((len(cond), 2), generator=generator), "condition": cond}
    return {"velocity": info,
            "set_flow": _try(_FlowSampler(model.set_flow, log_conditions=True), sets, "y", directory / "set_flow.onnx")}


def _try(module: nn.Module, inputs: dict[str, torch.Tensor], output: str, path: Path) -> dict[str, Any]:
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer and exporter deprecation chatter, not our users' concern
            return _export(module.eval(), inputs, output, path)
    except Exception as exc:  # an exporter limitation must not lose a trained model; the card says why
        path.unlink(missing_ok=True)
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def _export(module: nn.Module, inputs: dict[str, torch.Tensor], output: str, path: Path) -> dict[str, Any]:
    names = list(inputs)
    small = tuple(t[:_TRACE_ROWS, :_TRACE_POINTS] if name in ("points", "mask") else t[:_TRACE_ROWS]
                  for name, t in inputs.items())
    dynamic = {name: {0: "batch", 1: "points"} if name in ("points", "mask") else {0: "batch"} for name in names}
    dynamic[output] = {0: "batch", 1: "points"} if "points" in inputs else {0: "batch"}
    torch.onnx.export(module, small, str(path), dynamo=False, input_names=names, output_names=[output],
                      dynamic_axes=dynamic, opset_version=OPSET)
    reference = module(*inputs.values()).numpy()
    exported = run_onnx(path, {name: t.numpy() for name, t in inputs.items()}, output)
    return {"file": path.name, "inputs": names, "output": output, "opset": OPSET,
            "max_abs_diff_vs_torch": float(np.abs(exported - reference).max())}


def run_onnx(path: Path, inputs: dict[str, np.ndarray], output: str) -> np.ndarray:
    """The ``output`` of an exported generator network with onnxruntime (CPU)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    wanted = [i.name for i in session.get_inputs()]
    return np.asarray(session.run([output], {name: inputs[name] for name in wanted})[0])
