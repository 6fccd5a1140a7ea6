r"""The tagger models: ParT and ParticleNet (weaver-core), PFN and EFN (Deep Sets), and a substructure BDT.

- **ParT** — Particle Transformer (Qu, Li, Qian, arXiv:2202.03772): particle self-attention with the
  pairwise features ln Δ, ln kT, ln z, ln m² of every particle pair embedded as an attention bias,
  then class-attention blocks. ``weaver.nn.model.ParticleTransformer.ParticleTransformer``.
- **ParticleNet** (Qu, Gouskos, arXiv:1902.08570): EdgeConv blocks on the k nearest neighbours in
  (Δη, Δφ), then in feature space. ``weaver.nn.model.ParticleNet.ParticleNet``.
- **PFN / EFN** (Komiske, Metodiev, Thaler, arXiv:1810.05165): F(Σ_i Φ(p_i)); the Energy Flow Network
  F(Σ_i z_i Φ(Δη_i, Δφ_i)) with z_i = pT_i / Σ_j pT_j is infrared- and collinear-safe.
- **BDT**: scikit-learn's HistGradientBoostingClassifier on jet mass, soft-drop mass, τ1–τ3, τ21, τ32
  and the constituent count — the classic substructure baseline.
- **Trigger networks** (FPGA export with hls4ml, :mod:`tools.tag._trigger`): ``mlp``, a dense network on
  the standardised jet features (the hls4ml jet-tagging benchmark, Duarte et al. arXiv:1804.06913), and
  ``deepsets``, Deep Sets (Zaheer et al. arXiv:1703.06114) as at Level 1 (Odagiu et al. arXiv:2402.01876):
  ρ(mean_i φ(x_i)) with φ as 1×1 convolutions and the mean as ``AvgPool1d`` over all particle slots. Both
  are one ``nn.Sequential`` of layers hls4ml's PyTorch frontend converts (``layers``).

Every network returns two logits (background, signal); its ``for_inference`` twin (used for ONNX and
TorchScript export) returns probabilities. Sizes: ``tiny`` (tests, quick looks), ``small`` (the
default: minutes on two CPU cores), ``large`` (the published architectures).
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from physagent.tools.tag._features import JET_FEATURES

__all__ = ["EFN", "PFN", "DeepSets", "JetMLP", "ParTNet", "ParticleNetNet", "build_bdt", "build_network",
           "count_parameters", "jet_standardisation"]

# ParT's pairwise features take atan2 of (px, py); ONNX has no atan2 and its decomposition gives NaN
# at (0, 0), so padded slots get a tiny stand-in momentum. They are masked out of the attention.
_PAD_MOMENTUM = (1e-3, 0.0, 0.0, 1e-3)
_EFN_ANGLE_SCALE = 5.0  # Δη, Δφ of jet constituents are ~0.1–0.8; scaled to order one for Φ
_MIN_STD = 1e-6  # a jet feature constant in the training split is only centred, not divided by ~0

logging.getLogger("weaver").setLevel(logging.WARNING)  # weaver logs every constructor's arguments at INFO


class ParTNet(nn.Module):
    """weaver's ParticleTransformer with two classes; inputs x (B, F, P), v (B, 4, P), mask (B, 1, P)."""

    def __init__(self, n_features: int, arch: dict[str, Any], for_inference: bool = False) -> None:
        from weaver.nn.model.ParticleTransformer import ParticleTransformer

        super().__init__()
        self.returns_probabilities = for_inference
        # dense pair embedding: faster than weaver's sparse path for full jets, and the one ONNX exports
        self.net = ParticleTransformer(
            input_dim=n_features, num_classes=2, pair_input_dim=4, fc_params=[], trim=False,
            for_inference=for_inference, pair_embed_sparse_eval=(False, False), **arch)
        self.pad: torch.Tensor
        self.register_buffer("pad", torch.tensor(_PAD_MOMENTUM).view(1, 4, 1), persistent=False)

    def forward(self, x: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net(x, torch.where(mask > 0, v, self.pad), mask)


class ParticleNetNet(nn.Module):
    """weaver's ParticleNet with two classes; inputs points (B, 2, P), x (B, F, P), mask (B, 1, P)."""

    def __init__(self, n_features: int, arch: dict[str, Any], for_inference: bool = False) -> None:
        from weaver.nn.model.ParticleNet import ParticleNet

        super().__init__()
        self.returns_probabilities = for_inference
        conv = [(int(k), tuple(int(c) for c in channels)) for k, channels in arch["conv_params"]]
        fc = [(int(n), float(p)) for n, p in arch["fc_params"]]
        self.net = ParticleNet(n_features, 2, conv_params=conv, fc_params=fc, trim=False, for_inference=for_inference)

    def forward(self, points: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net(points, x, mask)


def _dense(sizes: list[int], pointwise: bool) -> list[nn.Module]:
    """Linear + ReLU layers; ``pointwise`` applies them to every particle (1×1 convolutions)."""
    layers: list[nn.Module] = []
    for n_in, n_out in itertools.pairwise(sizes):
        layers += [nn.Conv1d(n_in, n_out, 1) if pointwise else nn.Linear(n_in, n_out), nn.ReLU()]
    return layers


def _mlp(sizes: list[int], pointwise: bool) -> nn.Sequential:
    return nn.Sequential(*_dense(sizes, pointwise))


class PFN(nn.Module):
    """Particle Flow Network F(Σ_i Φ(x_i)); inputs x (B, F, P), mask (B, 1, P)."""

    def __init__(self, n_features: int, arch: dict[str, Any], for_inference: bool = False) -> None:
        super().__init__()
        self.returns_probabilities = for_inference
        self.phi = _mlp([n_features, *arch["phi_sizes"]], pointwise=True)
        self.f = nn.Sequential(_mlp([arch["phi_sizes"][-1], *arch["f_sizes"]], pointwise=False),
                               nn.Linear(arch["f_sizes"][-1], 2))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = self.f((self.phi(x) * mask).sum(dim=-1))
        return torch.softmax(logits, dim=1) if self.returns_probabilities else logits


class EFN(nn.Module):
    """Energy Flow Network F(Σ_i z_i Φ(Δη_i, Δφ_i)), IRC safe; inputs points (B, 2, P), v (B, 4, P), mask."""

    def __init__(self, n_features: int, arch: dict[str, Any], for_inference: bool = False) -> None:
        super().__init__()
        self.returns_probabilities = for_inference
        self.phi = _mlp([2, *arch["phi_sizes"]], pointwise=True)
        self.f = nn.Sequential(_mlp([arch["phi_sizes"][-1], *arch["f_sizes"]], pointwise=False),
                               nn.Linear(arch["f_sizes"][-1], 2))

    def forward(self, points: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pt = torch.sqrt(v[:, 0:1] ** 2 + v[:, 1:2] ** 2) * mask
        z = pt / pt.sum(dim=-1, keepdim=True).clamp(min=1e-9)
        logits = self.f((self.phi(points * _EFN_ANGLE_SCALE) * z).sum(dim=-1))
        return torch.softmax(logits, dim=1) if self.returns_probabilities else logits


def jet_standardisation(jet: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per jet feature (float32); a constant feature keeps std 1."""
    values = np.asarray(jet, dtype=np.float64)
    std = values.std(axis=0)
    return values.mean(axis=0).astype(np.float32), np.where(std > _MIN_STD, std, 1.0).astype(np.float32)


class JetMLP(nn.Module):
    """Dense network on the jet features (hls4ml benchmark, arXiv:1804.06913); input jet (B, J), raw.

    ``layers`` (Linear and ReLU only) takes the standardised features, as the FPGA does; the mean and std
    of the training split are buffers, so every checkpoint and export carries its own standardisation.
    With ``arch["quantize_bits"]`` the layers are brevitas quantized layers (:mod:`tools.tag._quantized`).
    """

    def __init__(self, n_features: int, arch: dict[str, Any], for_inference: bool = False) -> None:
        super().__init__()
        self.returns_probabilities = for_inference
        sizes = [len(JET_FEATURES), *arch["hidden_sizes"]]  # the jet features are fixed; n_features is per particle
        bits = arch.get("quantize_bits")
        if bits:
            from physagent.tools.tag._quantized import quantized_mlp

            self.layers = quantized_mlp(sizes, int(bits))
        else:
            self.layers = nn.Sequential(*_dense(sizes, pointwise=False), nn.Linear(sizes[-1], 2))
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.zeros(len(JET_FEATURES)))
        self.register_buffer("std", torch.ones(len(JET_FEATURES)))

    def set_standardisation(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Use these per-feature means and standard deviations (those of the training split)."""
        self.mean.copy_(torch.from_numpy(mean))
        self.std.copy_(torch.from_numpy(std))

    def forward(self, jet: torch.Tensor) -> torch.Tensor:
        logits = self.layers((jet - self.mean) / self.std)
        return torch.softmax(logits, dim=1) if self.returns_probabilities else logits


class DeepSets(nn.Module):
    """Deep Sets ρ(mean_i φ(x_i)) from layers hls4ml converts (arXiv:2402.01876); input x (B, F, P).

    No mask: padded slots of x are exactly zero (tagger_inputs multiplies by the mask), so the average
    over all P slots includes φ(0) once per empty slot; training learns around that offset, and it
    keeps the network one ``nn.Sequential`` (``layers``) of Conv1d, ReLU, AvgPool1d, Flatten and Linear.
    """

    def __init__(self, n_features: int, arch: dict[str, Any], for_inference: bool = False) -> None:
        super().__init__()
        self.returns_probabilities = for_inference
        phi, rho = [n_features, *arch["phi_sizes"]], [arch["phi_sizes"][-1], *arch["rho_sizes"]]
        self.layers = nn.Sequential(
            *_dense(phi, pointwise=True), nn.AvgPool1d(int(arch["n_particles"])), nn.Flatten(),
            *_dense(rho, pointwise=False), nn.Linear(rho[-1], 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.layers(x)
        return torch.softmax(logits, dim=1) if self.returns_probabilities else logits


_NETWORKS: dict[str, type[nn.Module]] = {"part": ParTNet, "particlenet": ParticleNetNet, "pfn": PFN, "efn": EFN,
                                         "mlp": JetMLP, "deepsets": DeepSets}


def build_network(kind: str, arch: dict[str, Any], n_features: int, for_inference: bool = False) -> nn.Module:
    """A fresh network of ``kind`` with architecture ``arch`` (see :data:`ARCHITECTURES`)."""
    return _NETWORKS[kind](n_features, arch, for_inference)


def count_parameters(model: Any) -> int:
    """Trainable parameters of a network; tree nodes of a fitted BDT."""
    if isinstance(model, nn.Module):
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    return int(sum(predictor[0].get_n_leaf_nodes() * 2 - 1 for predictor in model._predictors))


def build_bdt(arch: dict[str, Any], seed: int) -> Any:
    """An unfitted gradient-boosted tree classifier with early stopping on a given validation set."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=arch["max_iter"], max_leaf_nodes=arch["max_leaf_nodes"], learning_rate=arch["learning_rate"],
        early_stopping=True, n_iter_no_change=20, scoring="loss", random_state=seed)
