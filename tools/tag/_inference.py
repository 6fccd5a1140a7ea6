r"""Scoring with trained taggers: model inputs from jets, loading a model artifact, signal scores.

Used by ``train_tagger`` (validation and test scores), ``evaluate_tagger`` and ``apply_tagger``.
:func:`inputs_for` builds the arrays a network reads (the ``export.inputs`` of the model card: ``x``
(B, F, P), ``v`` (B, 4, P), ``points`` (B, 2, P), ``mask`` (B, 1, P), ``jet`` (B, J)) or the substructure a
BDT reads; scores are signal probabilities in [0, 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np

from physagent.tools._artifacts import Artifact
from physagent.tools._errors import ToolInputError
from physagent.tools.tag._architectures import INPUT_NAMES, JET_LEVEL_KINDS
from physagent.tools.tag._features import JET_FEATURES, TaggerInputs, has_pid, non_finite_fields
from physagent.tools.tag._runtime import device, torch_threads

__all__ = ["check_inputs_match", "inputs_for", "load_tagger", "particle_set", "score_model", "score_network"]

_SCORE_BATCH = 1024


def particle_set(feature_set: str) -> str:
    """The particle features of a feature set: ``kinematic+pid`` or ``kinematic`` (EFN, BDT, MLP: unused)."""
    return "kinematic+pid" if feature_set == "kinematic+pid" else "kinematic"


def inputs_for(jets: Any, n_constituents: int, feature_set: str) -> TaggerInputs:
    """Model inputs for flat jet records; EFN, BDT and MLP need no particle-feature choice."""
    from physagent.tools.tag._features import tagger_inputs

    return tagger_inputs(jets, n_constituents, particle_set(feature_set))


def score_network(net: Any, kind: str, inputs: TaggerInputs, where: str = "cpu") -> np.ndarray:
    """Signal probabilities of a (logit-returning) network, in eval mode, in fixed-size batches."""
    import torch

    net.eval()
    tensors = [torch.from_numpy(getattr(inputs, name)) for name in INPUT_NAMES[kind]]
    out = []
    with torch.no_grad():
        for start in range(0, len(inputs), _SCORE_BATCH):
            logits = net(*(t[start:start + _SCORE_BATCH].to(where) for t in tensors))
            out.append(torch.softmax(logits.float(), dim=1)[:, 1].cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def score_model(model: Any, kind: str, inputs: TaggerInputs) -> np.ndarray:
    """Signal scores of a network or a fitted BDT."""
    with torch_threads():
        if kind == "bdt":
            return model.predict_proba(inputs.jet)[:, 1].astype(np.float32)
        return score_network(model, kind, inputs, device())


def load_tagger(artifact: Artifact) -> tuple[Any, dict[str, Any]]:
    """The fitted model of a model artifact (network in eval mode, or BDT) and its card (with the ids)."""
    card = dict(artifact.metadata)
    kind = card["model"]
    if kind == "bdt":
        import joblib

        return joblib.load(artifact.directory / "model.joblib"), card
    import torch

    from physagent.tools.tag._models import build_network

    net = build_network(kind, card["architecture"], card["features"]["n_particle_features"])
    net.load_state_dict(torch.load(artifact.directory / "model.pt", map_location="cpu", weights_only=True))
    return net.to(device()).eval(), card


def check_inputs_match(card: dict[str, Any], jets: Any, tool_name: str, param: str, data_id: str) -> None:
    """Raise a ToolInputError when ``jets`` lack what the model of ``card`` was trained on, or hold NaNs."""
    import awkward as ak

    kind, feature_set = card["model"], card["features"]["set"]
    fields = set(ak.fields(jets))
    needed = set(JET_FEATURES) if kind in JET_LEVEL_KINDS else {"constituents", "pt", "e"}
    missing = sorted(needed - fields)
    if missing:
        raise ToolInputError.for_param(
            tool_name, param, data_id, f"has no {', '.join(missing)}, which model {kind} ({feature_set} features) "
            "reads. Use jets from cluster_jets or make_jet_dataset.")
    if feature_set == "kinematic+pid" and not has_pid(jets):
        raise ToolInputError.for_param(
            tool_name, param, data_id, "has no pid and charge for its constituents, but the model was trained "
            "with features 'kinematic+pid'. Use jets with particle ids, or train with features='kinematic'.")
    bad = non_finite_fields(jets)
    if bad:
        raise ToolInputError.for_param(
            tool_name, param, data_id, f"has NaN or infinite values in {', '.join(bad)}. Drop or fix those jets first.")
