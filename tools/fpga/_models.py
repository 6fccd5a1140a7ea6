r"""What can go on an FPGA: the float model behind a ``model`` artifact, checked before any code is generated.

- Trigger taggers (``mlp`` on the standardised jet features, ``deepsets`` on the particles, channels first):
  the ``nn.Sequential`` of :func:`tools.tag._trigger.trigger_network`, two logits → hls4ml; a
  quantization-aware-trained mlp (brevitas) through QONNX (:mod:`tools.fpga._qonnx`).
- The anomaly autoencoder (:mod:`tools.anomaly._autoencoder`): the network z → ẑ on standardised features;
  the score ‖ẑ − z‖²/F is computed outside, from the network's output → hls4ml.
- The substructure BDT (scikit-learn ``HistGradientBoostingClassifier``): its log-odds → conifer.

Refused, with the reason: ``part`` (attention), ``particlenet`` (dynamic kNN graph), ``pfn``/``efn``
(masked sum pooling; Deep Sets is the convertible form), and any network holding a ``torch.nn`` layer
that is not in hls4ml's PyTorch layer list (:func:`check_layers`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from physagent.tools._artifacts import Artifact
from physagent.tools._errors import ToolInputError

__all__ = ["REFUSED_KINDS", "Exportable", "check_layers", "float_outputs", "load_exportable", "task_scores",
           "torch_layers"]

REFUSED_KINDS = {
    "part": "its particle self-attention (MultiheadAttention over particle pairs, with masks) is not a layer "
            "hls4ml converts",
    "particlenet": "its EdgeConv builds a k-nearest-neighbour graph per jet at run time (dynamic kNN, "
                   "gather/top-k), which hls4ml does not convert",
    "pfn": "its masked sum over particles (x · mask, summed) is not a layer hls4ml converts",
    "efn": "its pT-weighted masked sum over particles is not a layer hls4ml converts",
}
_SUGGEST = ("Train an hls4ml-ready tagger instead: train_tagger(model='deepsets') for particles (the "
            "convertible Deep Sets form), or train_tagger(model='mlp') on jet features; or a bdt (via conifer).")
_SKIPPED = ("Dropout", "Sequential")  # hls4ml drops these
_CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")


@dataclass(frozen=True)
class Exportable:
    """The float model of a model artifact, ready for hls4ml (``network``) or conifer (``bdt``)."""

    artifact: Artifact
    kind: str  # mlp, deepsets, autoencoder, bdt
    task: str  # tagger or autoencoder
    card: dict[str, Any]
    input_shape: tuple[int, ...]  # per event: (J,), (F, P) or (F,)
    network: Any = None  # torch.nn.Module in eval mode, on the CPU
    bdt: Any = None

    @property
    def quantize_bits(self) -> int | None:
        """Bit width of a quantization-aware-trained network (its types come from training), else None."""
        bits = self.card.get("architecture", {}).get("quantize_bits")
        return int(bits) if bits else None

    @functools.cached_property
    def qonnx(self) -> Any:
        """The QONNX form hls4ml converts a quantization-aware-trained network from (None for float ones)."""
        if self.quantize_bits is None:
            return None
        from physagent.tools.fpga._qonnx import to_qonnx

        return to_qonnx("export_fpga", self.network, self.input_shape)

    @property
    def output(self) -> str:
        """What the exported model outputs, for a person."""
        if self.kind == "bdt":
            return "BDT log-odds (decision_function)"
        if self.task == "autoencoder":
            return f"reconstruction ẑ of the {self.input_shape[0]} standardised features z"
        return "2 logits (background, signal)"

    @property
    def score(self) -> str:
        """The task score computed from the output."""
        if self.task == "autoencoder":
            return "reconstruction error ‖ẑ − z‖²/F (anomaly score)"
        if self.kind == "bdt":
            return "signal probability: sigmoid(log-odds)"
        return "signal probability: softmax(logits)[1]"


def load_exportable(tool: str, artifact: Artifact, param: str = "model") -> Exportable:
    """The float model of ``artifact``; refuses kinds hls4ml and conifer cannot take, before loading anything."""
    card = dict(artifact.metadata)
    kind = str(card.get("model"))
    if kind in REFUSED_KINDS:
        raise ToolInputError.for_param(tool, param, artifact.id, f"is a {kind!r} tagger, which cannot go to an FPGA "
                                       f"with hls4ml: {REFUSED_KINDS[kind]}. {_SUGGEST}")
    if kind == "autoencoder":
        return _autoencoder(tool, artifact, card)
    if kind == "bdt":
        import joblib

        from physagent.tools.tag._features import JET_FEATURES

        return Exportable(artifact, "bdt", "tagger", card, (len(JET_FEATURES),),
                          bdt=joblib.load(artifact.directory / "model.joblib"))
    from physagent.tools.tag._trigger import TRIGGER_KINDS, trigger_network

    if kind not in TRIGGER_KINDS:
        raise ToolInputError.for_param(tool, param, artifact.id, f"is a {kind!r} model, not one this tool exports. "
                                       "It takes trigger taggers (mlp, deepsets) and bdt from train_tagger, and "
                                       "the autoencoder of autoencoder_search.")
    network, card = trigger_network(artifact)
    exportable = Exportable(artifact, kind, "tagger", card, tuple(int(n) for n in card["trigger"]["input_shape"]),
                            network=network)
    if exportable.quantize_bits is None:  # brevitas layers go through QONNX, not hls4ml's PyTorch list
        check_layers(tool, network, f"model {artifact.id} ({kind})")
    return exportable


def _autoencoder(tool: str, artifact: Artifact, card: dict[str, Any]) -> Exportable:
    from physagent.tools.anomaly._autoencoder import load_autoencoder

    network, _ = load_autoencoder(artifact.directory, card)
    check_layers(tool, network, f"model {artifact.id} (autoencoder)")
    return Exportable(artifact, "autoencoder", "autoencoder", card, (int(card["architecture"]["n_features"]),),
                      network=network)


def check_layers(tool: str, module: Any, what: str = "the network") -> None:
    """Refuse a torch module holding a ``torch.nn`` layer hls4ml's PyTorch frontend does not convert.

    Containers and user-defined modules are walked into; a supported layer is not (an LSTM's own parts are
    hls4ml's business). The message names the layer's path and type, before any code is generated.
    """
    supported = _supported_layers()
    for path, layer in torch_layers(module, ""):
        name = type(layer).__name__
        if name not in supported:
            raise ToolInputError(
                f"{tool}: {what} holds layer {path or '(top)'!r} of type {name}, which hls4ml's PyTorch frontend "
                f"cannot convert (it converts e.g. Linear, Conv1d/2d, ReLU, AvgPool1d, BatchNorm1d, Flatten; not "
                f"attention, embeddings or graph operations). {_SUGGEST}", tool=tool, param="model", value=name)


def torch_layers(module: Any, prefix: str) -> list[tuple[str, Any]]:
    """(path, module) of every built-in torch.nn layer: containers and user classes are opened up."""
    name = type(module).__name__
    builtin = type(module).__module__.startswith("torch.nn")
    if builtin and name not in _CONTAINERS:
        return [(prefix, module)]
    found: list[tuple[str, Any]] = []
    for child_name, child in module.named_children():
        found += torch_layers(child, f"{prefix}.{child_name}" if prefix else child_name)
    return found


def _supported_layers() -> set[str]:
    import importlib

    frontend = importlib.import_module("hls4ml.converters.pytorch_to_hls")  # the package re-exports a function
    return set(frontend.get_supported_pytorch_layers()) | set(_SKIPPED)


def float_outputs(model: Exportable, x: np.ndarray, batch_size: int = 65_536) -> np.ndarray:
    """The float model's outputs (n, k) for inputs ``x`` (n, *input_shape): logits, ẑ or BDT log-odds (n, 1)."""
    if model.bdt is not None:
        return np.asarray(model.bdt.decision_function(x), dtype=np.float64).reshape(len(x), -1)
    import torch

    from physagent.tools.anomaly._autoencoder import one_thread

    out = []
    with torch.no_grad(), one_thread():  # one thread: the same sums, so the same outputs, on every machine
        for start in range(0, len(x), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(x[start:start + batch_size], dtype=np.float32))
            out.append(model.network(batch).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, 1))


def task_scores(model: Exportable, outputs: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The task score per event from outputs: signal probability (taggers) or reconstruction error (autoencoder)."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if model.task == "autoencoder":
        return np.mean((outputs - np.asarray(x, dtype=np.float64).reshape(outputs.shape)) ** 2, axis=1)
    if outputs.shape[1] == 1:  # log-odds
        return 1.0 / (1.0 + np.exp(-outputs[:, 0]))
    shifted = outputs - outputs.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    return probabilities[:, 1]
