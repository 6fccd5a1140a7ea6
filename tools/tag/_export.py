r"""Export trained tagger networks to ONNX and TorchScript for C++, FPGA and grid use.

Both files hold a *score module*: the network's ``for_inference`` twin (same weights; ParT with its
dense, ONNX-friendly pair embedding) followed by the signal probability, so they map the model
inputs to one score per jet in [0, 1]:

- inputs (float32, channels first, batch axis dynamic; see :mod:`tools.tag._features`):
  ``x`` (B, F, P) particle features, ``v`` (B, 4, P) px, py, pz, E in GeV, ``points`` (B, 2, P) Δη, Δφ,
  ``mask`` (B, 1, P) — each model takes the subset listed in the model card (``export.inputs``);
- output ``score`` (B,).

ONNX uses the TorchScript-based exporter (``dynamo=False``, opset 17; the dynamo exporter needs
onnxscript, which is not installed) and is checked right away with onnxruntime. TorchScript uses
``torch.jit.trace`` (weaver's ParT does not compile with ``torch.jit.script``) into a fresh class
namespace, so both files are byte-identical when the training is rerun. A failed export is reported in
the card instead of failing the training.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from physagent.tools.tag._architectures import INPUT_NAMES
from physagent.tools.tag._models import build_network

__all__ = ["ONNX_FILE", "OPSET", "TORCHSCRIPT_FILE", "ScoreModule", "export_network", "run_onnx"]

ONNX_FILE = "model.onnx"
TORCHSCRIPT_FILE = "model.torchscript.pt"
OPSET = 17
_CHECK_JETS = 64


class ScoreModule(nn.Module):
    """A ``for_inference`` network → the signal probability per jet, shape (B,)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.network(*inputs)[:, 1]


def score_module(kind: str, arch: dict[str, Any], n_features: int, state: dict[str, torch.Tensor]) -> ScoreModule:
    """The exportable score module of a trained network (CPU, eval mode)."""
    network = build_network(kind, arch, n_features, for_inference=True)
    network.load_state_dict(state)
    return ScoreModule(network).eval()


def export_network(
    kind: str, arch: dict[str, Any], n_features: int, state: dict[str, torch.Tensor],
    example: dict[str, np.ndarray], directory: Path,
) -> dict[str, Any]:
    """Write model.onnx and model.torchscript.pt; returns what was written and how well ONNX agrees."""
    state = {name: tensor.detach().cpu() for name, tensor in state.items()}
    module = score_module(kind, arch, n_features, state)
    names = INPUT_NAMES[kind]
    inputs = tuple(torch.from_numpy(example[name][:_CHECK_JETS]) for name in names)
    with torch.no_grad():
        reference = module(*inputs).numpy()
    info: dict[str, Any] = {"inputs": list(names), "output": "score", "opset": OPSET}
    info |= _try("onnx", lambda: _onnx(module, inputs, names, directory / ONNX_FILE, reference))
    info |= _try("torchscript", lambda: _torchscript(module, inputs, directory / TORCHSCRIPT_FILE, reference))
    return info


def _try(what: str, action: Any) -> dict[str, Any]:
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer and exporter deprecation chatter, not our users' concern
            return {what: action()}
    except Exception as exc:  # an exporter limitation must not lose a trained model; the card says why
        return {what: {"error": f"{type(exc).__name__}: {exc}"[:500]}}


def _onnx(module: ScoreModule, inputs: tuple[torch.Tensor, ...], names: tuple[str, ...], path: Path,
          reference: np.ndarray) -> dict[str, Any]:
    dynamic = {name: {0: "jets"} for name in (*names, "score")}
    torch.onnx.export(module, inputs, str(path), dynamo=False, input_names=list(names), output_names=["score"],
                      dynamic_axes=dynamic, opset_version=OPSET)
    scores = run_onnx(path, {name: tensor.numpy() for name, tensor in zip(names, inputs, strict=True)})
    return {"file": path.name, "max_abs_diff_vs_torch": float(np.abs(scores - reference).max())}


def _torchscript(module: ScoreModule, inputs: tuple[torch.Tensor, ...], path: Path, reference: np.ndarray
                 ) -> dict[str, Any]:
    # the archive's debug info holds the Python stack of the trace: a thread of its own makes that stack
    # the same whoever calls us, so a rerun writes the same bytes
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        traced = pool.submit(_trace, module, inputs).result()
    traced.save(str(path))
    scores = torch.jit.load(str(path))(*inputs).numpy()
    return {"file": path.name, "max_abs_diff_vs_torch": float(np.abs(scores - reference).max())}


def _trace(module: ScoreModule, inputs: tuple[torch.Tensor, ...]) -> Any:
    with _fresh_jit_namespace(), torch.no_grad():
        return torch.jit.trace(module, inputs)


@contextlib.contextmanager
def _fresh_jit_namespace() -> Iterator[None]:
    """Trace into an empty TorchScript class namespace, so the archive is byte-identical on a rerun.

    TorchScript names a module's class ``___torch_mangle_<n>`` with n counting the classes traced
    before in the process; starting from an empty namespace makes n depend on this model only. The
    traced module keeps its own namespace; the process's namespace is restored afterwards.
    """
    import torch.jit._recursive as recursive
    import torch.jit._state as state

    saved = state._python_cu, recursive.concrete_type_store
    state._python_cu = torch._C.CompilationUnit()
    recursive.concrete_type_store = recursive.ConcreteTypeStore()
    try:
        yield
    finally:
        state._python_cu, recursive.concrete_type_store = saved


def run_onnx(path: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Scores from an exported model.onnx with onnxruntime (CPU)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    wanted = [i.name for i in session.get_inputs()]
    return np.asarray(session.run(["score"], {name: inputs[name] for name in wanted})[0])
