r"""Generator architectures by size, building a model from its card, and loading a ``generator`` artifact.

Sizes: ``tiny`` (seconds, for tests), ``small`` (minutes on 2 CPU cores), ``large`` (closer to the published
models). ``calofast`` (:mod:`._calofast`) has a spline coupling flow for the layer energies and a voxel
network whose share head has rank ``rank``; ``calohits`` (:mod:`._calohits`) the same flow and ``templates``
hit templates per layer whose intensities come from a network of ``hidden_features``. A model is rebuilt from
``card.json`` (model, flow kind, architecture, dimensions) and its weights ``model.pt``; the feature transforms
are buffers of the model, so they come back with the weights. A ``pointcloud`` card holds ``showers``
(calorimeter points) or ``jets`` (constituents, :mod:`._jet_points`).
"""

from __future__ import annotations

from typing import Any

from physagent.tools._artifacts import Artifact
from physagent.tools.generate._calofast import CALOFAST_REFERENCE, FastCalo
from physagent.tools.generate._caloflow import CALOFLOW_REFERENCE, CaloFlow
from physagent.tools.generate._calohits import CALOHITS_REFERENCE, CaloHits
from physagent.tools.generate._flows import FLOW_REFERENCES, TabularFlow
from physagent.tools.generate._pointcloud import JET_POINTS, POINTCLOUD_REFERENCE, PointCloudModel

__all__ = ["ARCHITECTURES", "DEFAULT_ODE_STEPS", "build_model", "load_generator", "reference_for"]

DEFAULT_ODE_STEPS = 25


def _flow(transforms: int, hidden: list[int]) -> dict[str, Any]:
    return {"transforms": transforms, "hidden_features": hidden, "bins": 8}


ARCHITECTURES: dict[str, dict[str, dict[str, Any]]] = {
    "flow": {"tiny": _flow(3, [32, 32]), "small": _flow(5, [64, 64]), "large": _flow(8, [128, 128, 128])},
    "caloflow": {
        "tiny": {"energy_flow": _flow(3, [32, 32]), "shape_flow": _flow(4, [64, 64])},
        "small": {"energy_flow": _flow(4, [64, 64]), "shape_flow": _flow(6, [256, 256])},
        "large": {"energy_flow": _flow(6, [128, 128]), "shape_flow": _flow(8, [512, 512])},
    },
    "calofast": {
        "tiny": {"energy_flow": _flow(2, [32, 32]), "voxel_net": {"hidden_features": [32, 16], "rank": 4}},
        "small": {"energy_flow": _flow(2, [64, 64]), "voxel_net": {"hidden_features": [64, 16], "rank": 8}},
        "large": {"energy_flow": _flow(4, [128, 128]), "voxel_net": {"hidden_features": [128, 64], "rank": 16}},
    },
    "calohits": {
        "tiny": {"energy_flow": _flow(2, [32, 32]), "hit_model": {"hidden_features": [32], "templates": 2}},
        "small": {"energy_flow": _flow(2, [64, 64]), "hit_model": {"hidden_features": [64, 64], "templates": 4}},
        "large": {"energy_flow": _flow(4, [128, 128]), "hit_model": {"hidden_features": [128, 128], "templates": 8}},
    },
    "pointcloud": {
        "tiny": {"set_flow": _flow(3, [32, 32]), "velocity": {"local": 32, "global": 16, "layers": 2}},
        "small": {"set_flow": _flow(4, [64, 64]), "velocity": {"local": 96, "global": 32, "layers": 3}},
        "large": {"set_flow": _flow(5, [64, 64]), "velocity": {"local": 128, "global": 64, "layers": 6}},
    },
}


def reference_for(model: str, flow_kind: str) -> str:
    """The paper(s) a model follows."""
    return {"flow": FLOW_REFERENCES[flow_kind], "caloflow": CALOFLOW_REFERENCE, "calofast": CALOFAST_REFERENCE,
            "calohits": CALOHITS_REFERENCE, "pointcloud": POINTCLOUD_REFERENCE}[model]


def build_model(card: dict[str, Any]) -> Any:
    """An untrained model with the card's architecture and dimensions."""
    kind, arch = card["flow_kind"], card["architecture"]
    if card["model"] == "flow":
        return TabularFlow(kind, len(card["features"]), len(card["conditions"]), arch)
    if "jets" in card:
        return PointCloudModel(kind, arch, JET_POINTS)
    grid = card["showers"]["geometry"]
    if card["model"] == "caloflow":
        return CaloFlow(kind, (grid["n_layers"], grid["n_a"], grid["n_b"]), arch)
    if card["model"] == "calofast":
        return FastCalo((grid["n_layers"], grid["n_a"], grid["n_b"]), arch)
    if card["model"] == "calohits":
        return CaloHits((grid["n_layers"], grid["n_a"], grid["n_b"]), arch)
    return PointCloudModel(kind, arch, n_layers=grid["n_layers"])


def load_generator(artifact: Artifact) -> tuple[Any, dict[str, Any]]:
    """The trained model of a ``generator`` artifact (eval mode, CPU) and its card (with the ids)."""
    import torch

    card = dict(artifact.metadata)
    model = build_model(card)
    model.load_state_dict(torch.load(artifact.directory / "model.pt", map_location="cpu", weights_only=True))
    return model.eval(), card
