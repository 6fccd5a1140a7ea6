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

Every network returns two logits (background, signal); its ``for_inference`` twin (used for ONNX and
TorchScript export) returns probabilities. Sizes: ``tiny`` (tests, quick looks), ``small`` (the
default: minutes on two CPU cores), ``large`` (the published architectures).
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

import torch
from torch import nn

__all__ = ["EFN", "PFN", "ParTNet", "ParticleNetNet", "build_bdt", "build_network", "count_parameters"]

# ParT's pairwise features take atan2 of (px, py); ONNX has no atan2 and its decomposition gives NaN
# at (0, 0), so padded slots get a tiny stand-in momentum. They are masked out of the attention.
_PAD_MOMENTUM = (1e-3, 0.0, 0.0, 1e-3)
_EFN_ANGLE_SCALE = 5.0  # Δη, Δφ of jet constituents are ~0.1–0.8; scaled to order one for Φ

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


def _mlp(sizes: list[int], pointwise: bool) -> nn.Sequential:
    """Linear + ReLU layers; ``pointwise`` applies them to every particle (1×1 convolutions)."""
    layers: list[nn.Module] = []
    for n_in, n_out in itertools.pairwise(sizes):
        layers += [nn.Conv1d(n_in, n_out, 1) if pointwise else nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers)


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


_NETWORKS: dict[str, type[nn.Module]] = {"part": ParTNet, "particlenet": ParticleNetNet, "pfn": PFN, "efn": EFN}


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
